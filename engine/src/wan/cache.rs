//! The causal DiT's caches, held outside the model (`forward(&self, …, cache: &mut …)`).
//!
//! Self-attention (`algorithms.md` §4.2): per layer a K/V buffer of `capacity` tokens with
//! `global_end` (absolute tokens written) and `local_end` (fill position). K is stored after
//! RoPE (absolute frame index), V raw. A call for tokens `[s, e)`:
//! - if `e > global_end` and `local_end + n > capacity`: evict `local_end + n − capacity`
//!   tokens after the `sink` ones by moving `[sink + evict, local_end)` to `[sink, …)`;
//! - `local_end += e − global_end` (minus the eviction); the chunk is written at
//!   `[local_end − n, local_end)`, so repeated passes over one chunk (later denoising steps,
//!   the clean pass) overwrite the same slots;
//! - the queries attend to `[max(0, local_end − max_attention), local_end)`, keeping the sink
//!   tokens when that span would drop them.
//!
//! Cross-attention (§4.3): per layer the projected K/V of the context, computed on first use
//! and kept until the prompt changes ([`WanCache::reset_cross`]).

use burn::tensor::{Tensor, backend::Backend};

/// Sizes of the self-attention cache, in tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// Buffer size (e.g. 21 frames × 1560 for a global 81-frame cache, 12 × 1560 for
    /// LongLive's window).
    pub capacity: usize,
    /// Tokens at the start that are never evicted (LongLive: 3 frames).
    pub sink: usize,
    /// Keys a query attends to at most (defaults to `capacity`).
    pub max_attention: usize,
}

impl CacheConfig {
    /// A cache of `frames` latent frames of `frame_tokens` tokens, the first `sink_frames`
    /// kept.
    pub fn frames(frames: usize, sink_frames: usize, frame_tokens: usize) -> Self {
        Self {
            capacity: frames * frame_tokens,
            sink: sink_frames * frame_tokens,
            max_attention: frames * frame_tokens,
        }
    }
}

/// One layer's self-attention K/V.
#[derive(Clone, Debug)]
pub struct LayerKv<B: Backend> {
    /// `[B, capacity, H, d]`, roped.
    pub k: Tensor<B, 4>,
    /// `[B, capacity, H, d]`.
    pub v: Tensor<B, 4>,
    pub global_end: usize,
    pub local_end: usize,
}

/// Where one call reads and writes the buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Tokens to evict (moved over) before writing.
    pub evict: usize,
    /// The new `local_end`.
    pub local_end: usize,
    /// Key ranges attended (one, or the sink and the recent span).
    pub spans: Vec<std::ops::Range<usize>>,
}

/// The §4.2 bookkeeping for a call over `[start, start + n)`, without touching tensors.
pub fn plan(
    cfg: &CacheConfig,
    global_end: usize,
    local_end: usize,
    start: usize,
    n: usize,
) -> Plan {
    let end = start + n;
    let grow = end as i64 - global_end as i64;
    let (evict, new_local) = if end > global_end && local_end + n > cfg.capacity {
        let evict = local_end + n - cfg.capacity;
        (evict, (local_end as i64 + grow - evict as i64) as usize)
    } else {
        (0, (local_end as i64 + grow).max(n as i64) as usize)
    };
    let from = new_local.saturating_sub(cfg.max_attention);
    let spans = if cfg.sink > 0 && from > 0 {
        let recent = new_local - (cfg.max_attention - cfg.sink);
        vec![0..cfg.sink, recent..new_local]
    } else {
        std::iter::once(from..new_local).collect::<Vec<_>>()
    };
    Plan {
        evict,
        local_end: new_local,
        spans,
    }
}

impl<B: Backend> LayerKv<B> {
    /// Writes a chunk's K/V and returns the keys and values to attend to.
    ///
    /// # Shapes
    /// - k, v: `[B, n, H, d]` → (`[B, span, H, d]`, `[B, span, H, d]`)
    pub fn update(
        &mut self,
        cfg: &CacheConfig,
        start: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let n = k.dims()[1];
        let p = plan(cfg, self.global_end, self.local_end, start, n);
        if p.evict > 0 && self.local_end > cfg.sink + p.evict {
            let (from, to) = (
                cfg.sink + p.evict..self.local_end,
                cfg.sink..self.local_end - p.evict,
            );
            let moved_k = self.k.clone().narrow(1, from.start, from.len());
            let moved_v = self.v.clone().narrow(1, from.start, from.len());
            self.k = self.k.clone().slice_assign(
                [
                    0..self.k.dims()[0],
                    to.clone(),
                    0..self.k.dims()[2],
                    0..self.k.dims()[3],
                ],
                moved_k,
            );
            self.v = self.v.clone().slice_assign(
                [
                    0..self.v.dims()[0],
                    to,
                    0..self.v.dims()[2],
                    0..self.v.dims()[3],
                ],
                moved_v,
            );
        }
        let [b, _, h, d] = self.k.dims();
        let write = p.local_end - n..p.local_end;
        self.k = self
            .k
            .clone()
            .slice_assign([0..b, write.clone(), 0..h, 0..d], k);
        self.v = self.v.clone().slice_assign([0..b, write, 0..h, 0..d], v);
        self.global_end = self.global_end.max(start + n);
        self.local_end = p.local_end;
        let take = |t: &Tensor<B, 4>| {
            let parts: Vec<Tensor<B, 4>> = p
                .spans
                .iter()
                .map(|r| t.clone().narrow(1, r.start, r.len()))
                .collect();
            if parts.len() == 1 {
                parts.into_iter().next().unwrap_or_else(|| t.clone())
            } else {
                Tensor::cat(parts, 1)
            }
        };
        (take(&self.k), take(&self.v))
    }
}

/// Every layer's caches for one stream.
#[derive(Clone, Debug)]
pub struct WanCache<B: Backend> {
    pub config: CacheConfig,
    pub layers: Vec<LayerKv<B>>,
    /// Cross-attention K/V per layer, `[B, text_len, H, d]` each.
    pub cross: Vec<Option<(Tensor<B, 4>, Tensor<B, 4>)>>,
}

impl<B: Backend> WanCache<B> {
    /// Empty caches for `layers` layers of `heads × head_dim`, in `dtype`.
    pub fn new(
        config: CacheConfig,
        batch: usize,
        layers: usize,
        heads: usize,
        head_dim: usize,
        device: &B::Device,
        dtype: burn::tensor::DType,
    ) -> Self {
        let zeros = || Tensor::zeros([batch, config.capacity, heads, head_dim], (device, dtype));
        Self {
            config,
            layers: (0..layers)
                .map(|_| LayerKv {
                    k: zeros(),
                    v: zeros(),
                    global_end: 0,
                    local_end: 0,
                })
                .collect(),
            cross: vec![None; layers],
        }
    }

    /// Forgets the prompt's K/V (call when the prompt changes).
    pub fn reset_cross(&mut self) {
        self.cross.iter_mut().for_each(|c| *c = None);
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.k = l.k.clone().zeros_like();
            l.v = l.v.clone().zeros_like();
            l.global_end = 0;
            l.local_end = 0;
        }
        self.reset_cross();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_cache_grows_and_repeated_passes_overwrite_in_place() {
        let cfg = CacheConfig::frames(4, 0, 10);
        let p = plan(&cfg, 0, 0, 0, 10);
        assert_eq!(
            (p.evict, p.local_end, p.spans.clone()),
            (0, 10, std::iter::once(0..10).collect::<Vec<_>>())
        );
        // The same chunk again (next denoising step): same slots.
        let p = plan(&cfg, 10, 10, 0, 10);
        assert_eq!(
            (p.local_end, p.spans.clone()),
            (10, std::iter::once(0..10).collect::<Vec<_>>())
        );
        let p = plan(&cfg, 10, 10, 10, 10);
        assert_eq!(
            (p.local_end, p.spans),
            (20, std::iter::once(0..20).collect::<Vec<_>>())
        );
    }

    #[test]
    fn a_window_evicts_after_the_sink_and_attends_to_sink_plus_recent() {
        // 3-frame window of 1-token frames, 1 sink frame.
        let cfg = CacheConfig::frames(3, 1, 1);
        let p = plan(&cfg, 3, 3, 3, 1);
        assert_eq!(
            (p.evict, p.local_end, p.spans),
            (1, 3, std::iter::once(0..3).collect::<Vec<_>>())
        );
        // A narrower attention span keeps the sink.
        let cfg = CacheConfig {
            max_attention: 2,
            ..cfg
        };
        let p = plan(&cfg, 3, 3, 3, 1);
        assert_eq!(p.spans, vec![0..1, 2..3]);
    }
}
