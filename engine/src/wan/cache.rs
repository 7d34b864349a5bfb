//! The causal DiT's caches, held outside the model (`forward_causal(&self, …, cache)`).
//!
//! Self-attention goes through a [`KvCache`]: each layer hands it the call's keys (already
//! roped) and values and gets back what its queries attend to. [`WanCache`] is the cache of
//! CausVid / Self-Forcing / LongLive (`Self-Forcing@33593df wan/modules/causal_model.py`,
//! `LongLive@2462895` the same file): per layer a K/V buffer of `capacity` tokens with
//! `global_end` (absolute tokens written) and `local_end` (fill position). K is stored after
//! RoPE (absolute frame index), V raw. A call for tokens `[s, e)`:
//! - if `e > global_end` and `local_end + n > capacity`: evict `local_end + n − capacity`
//!   tokens after the `sink` ones by moving `[sink + evict, local_end)` to `[sink, …)`;
//! - `local_end += e − global_end` (minus the eviction); the chunk is written at
//!   `[local_end − n, local_end)`, so repeated passes over one chunk (later denoising steps,
//!   the clean pass) overwrite the same slots;
//! - a *recompute* (LongLive's re-cache after a prompt switch, flagged by the caller with
//!   [`WanCache::recompute`]) starting past frame 0 does not overwrite the sink tokens
//!   (LongLive's `global_sink`); upstream infers it from `e ≤ global_end and s > 0`, which also
//!   matches a chunk's later passes and, with a sink longer than a chunk, would leave the
//!   first pass's noisy K/V in the sink;
//! - the queries attend to `[max(0, local_end − max_attention), local_end)`, keeping the sink
//!   tokens when that span would drop them.
//!
//! StreamDiffusionV2's ring buffer with its adaptive sink is another [`KvCache`]
//! (`pipeline::wan::ring`).
//!
//! Cross-attention: per layer the projected K/V of the context ([`CrossCache`]), computed
//! once per context and reused until the prompt changes.
//!
//! Streams longer than the 1024-position RoPE table are **re-based**: every cached key is
//! rotated back by `Δ` frames ([`WanCache::rebase`], with [`super::rope::Rope::temporal_shift`])
//! and the positions continue from `p − Δ`. RoPE attention scores depend only on the
//! difference of positions, so a re-based cache gives the same attention as the unbounded
//! positions would, up to one rounding of the cached keys.

use super::rope::Rope;
use burn::tensor::{Bool, Tensor, backend::Backend};

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

/// The keys and values one layer's queries attend to.
#[derive(Clone, Debug)]
pub struct Attend<B: Backend> {
    /// `[B, Lk, H, d]`, or the buffer `spans` select from.
    pub k: Tensor<B, 4>,
    /// `[B, Lk, H, d]`, or the buffer `spans` select from.
    pub v: Tensor<B, 4>,
    /// The key ranges of `k` and `v` attended, in order (a cache's sink and recent window);
    /// `None`: all of them.
    pub spans: Option<Vec<std::ops::Range<usize>>>,
    /// `true` where a key is hidden, `[B, 1, 1, Lk]` (rows that see different spans).
    pub mask: Option<Tensor<B, 4, Bool>>,
}

impl<B: Backend> Attend<B> {
    /// The attended keys and values themselves (the spans concatenated) and the mask.
    ///
    /// # Shapes
    /// → `[B, Lk, H, d]` twice, `[B, 1, 1, Lk]`
    #[allow(clippy::type_complexity)]
    pub fn gathered(self) -> (Tensor<B, 4>, Tensor<B, 4>, Option<Tensor<B, 4, Bool>>) {
        match &self.spans {
            Some(spans) => (
                gather_spans(&self.k, spans),
                gather_spans(&self.v, spans),
                self.mask,
            ),
            None => (self.k, self.v, self.mask),
        }
    }
}

/// A self-attention cache the causal forward writes through.
pub trait KvCache<B: Backend> {
    /// Stores layer `layer`'s keys (roped) and values for a call whose row `i` covers tokens
    /// `starts[i]..starts[i] + n`, and returns what the queries attend to.
    ///
    /// # Shapes
    /// - k, v: `[B, n, H, d]`
    fn attend(
        &mut self,
        layer: usize,
        starts: &[usize],
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Attend<B>;
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
    /// Where the call's tokens are written: `write.start` is past the sink on a recompute.
    pub write: std::ops::Range<usize>,
    /// Key ranges attended (one, or the sink and the recent span).
    pub spans: Vec<std::ops::Range<usize>>,
}

/// The bookkeeping for a call over `[start, start + n)`, without touching tensors.
pub fn plan(
    cfg: &CacheConfig,
    global_end: usize,
    local_end: usize,
    start: usize,
    n: usize,
    recompute: bool,
) -> Plan {
    let end = start + n;
    let grow = end as i64 - global_end as i64;
    let (evict, new_local) = if end > global_end && local_end + n > cfg.capacity {
        let evict = local_end + n - cfg.capacity;
        (evict, (local_end as i64 + grow - evict as i64) as usize)
    } else {
        (0, (local_end as i64 + grow).max(n as i64) as usize)
    };
    let write_start = if recompute && start > 0 {
        (new_local - n).max(cfg.sink.min(new_local))
    } else {
        new_local - n
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
        write: write_start..new_local,
        spans,
    }
}

/// Takes a tensor out of `slot`, leaving an empty one, so the caller holds the only handle
/// and burn can update it in place.
pub(crate) fn take_tensor<B: Backend>(slot: &mut Tensor<B, 4>) -> Tensor<B, 4> {
    let empty = Tensor::empty([0, 0, 0, 0], (&slot.device(), slot.dtype()));
    std::mem::replace(slot, empty)
}

/// `t[:, range] = value` in place where the backend can.
pub(crate) fn write_rows<B: Backend>(
    slot: &mut Tensor<B, 4>,
    rows: std::ops::Range<usize>,
    range: std::ops::Range<usize>,
    value: Tensor<B, 4>,
) {
    let [_, _, h, d] = slot.dims();
    let t = take_tensor(slot);
    *slot = t.slice_assign([rows, range, 0..h, 0..d], value);
}

/// The key ranges `spans` of `t`, concatenated.
pub(crate) fn gather_spans<B: Backend>(
    t: &Tensor<B, 4>,
    spans: &[std::ops::Range<usize>],
) -> Tensor<B, 4> {
    let parts: Vec<Tensor<B, 4>> = spans
        .iter()
        .map(|r| t.clone().narrow(1, r.start, r.len()))
        .collect();
    if parts.len() == 1 {
        parts.into_iter().next().unwrap_or_else(|| t.clone())
    } else {
        Tensor::cat(parts, 1)
    }
}

impl<B: Backend> LayerKv<B> {
    /// Writes a chunk's K/V and returns what to attend to: the whole buffers and the key
    /// ranges attended ([`Attend::gathered`] concatenates them).
    ///
    /// # Shapes
    /// - k, v: `[B, n, H, d]` → buffers `[B, capacity, H, d]` with their spans
    pub fn update(
        &mut self,
        cfg: &CacheConfig,
        start: usize,
        recompute: bool,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Attend<B> {
        let n = k.dims()[1];
        let b = self.k.dims()[0];
        let p = plan(cfg, self.global_end, self.local_end, start, n, recompute);
        if p.evict > 0 && self.local_end > cfg.sink + p.evict {
            let (from, to) = (
                cfg.sink + p.evict..self.local_end,
                cfg.sink..self.local_end - p.evict,
            );
            let moved_k = self.k.clone().narrow(1, from.start, from.len());
            let moved_v = self.v.clone().narrow(1, from.start, from.len());
            write_rows(&mut self.k, 0..b, to.clone(), moved_k);
            write_rows(&mut self.v, 0..b, to, moved_v);
        }
        let skip = p.write.start - (p.local_end - n);
        if !p.write.is_empty() {
            let (k, v) = if skip > 0 {
                (k.narrow(1, skip, n - skip), v.narrow(1, skip, n - skip))
            } else {
                (k, v)
            };
            write_rows(&mut self.k, 0..b, p.write.clone(), k);
            write_rows(&mut self.v, 0..b, p.write.clone(), v);
        }
        self.global_end = self.global_end.max(start + n);
        self.local_end = p.local_end;
        Attend {
            k: self.k.clone(),
            v: self.v.clone(),
            spans: Some(p.spans),
            mask: None,
        }
    }
}

/// The self-attention caches of every layer for one stream (the semantics above).
#[derive(Clone, Debug)]
pub struct WanCache<B: Backend> {
    pub config: CacheConfig,
    pub layers: Vec<LayerKv<B>>,
    /// The next calls recompute frames already written (LongLive's re-cache): the sink is
    /// kept unless they start at frame 0.
    pub recompute: bool,
}

impl<B: Backend> KvCache<B> for WanCache<B> {
    fn attend(
        &mut self,
        layer: usize,
        starts: &[usize],
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Attend<B> {
        let start = starts.first().copied().unwrap_or(0);
        debug_assert!(
            starts.iter().all(|s| *s == start),
            "WanCache rows share one position"
        );
        let config = self.config;
        self.layers[layer].update(&config, start, self.recompute, k, v)
    }
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
            recompute: false,
        }
    }

    /// Tokens written so far (the next chunk's absolute start).
    pub fn global_end(&self) -> usize {
        self.layers.first().map_or(0, |l| l.global_end)
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.k = l.k.clone().zeros_like();
            l.v = l.v.clone().zeros_like();
            l.global_end = 0;
            l.local_end = 0;
        }
    }

    /// Moves every position back by `delta_tokens` (a whole number of frames): the cached
    /// keys are rotated by `shift` (`Rope::temporal_shift(−Δ frames)`), and the next chunk
    /// starts `delta_tokens` earlier.
    pub fn rebase(&mut self, shift: &Rope<B>, delta_tokens: usize) {
        for l in &mut self.layers {
            let k = take_tensor(&mut l.k);
            l.k = shift.apply(k);
            l.global_end = l.global_end.saturating_sub(delta_tokens);
        }
    }
}

/// Cross-attention K/V of one context for every layer, `[1, H, text_len, d]` each (already
/// laid out for attention).
#[derive(Clone, Debug)]
pub struct CrossCache<B: Backend> {
    pub layers: Vec<(Tensor<B, 4>, Tensor<B, 4>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_cache_grows_and_repeated_passes_overwrite_in_place() {
        let cfg = CacheConfig::frames(4, 0, 10);
        let p = plan(&cfg, 0, 0, 0, 10, false);
        assert_eq!(
            (p.evict, p.local_end, p.write.clone(), p.spans.clone()),
            (0, 10, 0..10, std::iter::once(0..10).collect::<Vec<_>>())
        );
        // The same chunk again (next denoising step): same slots.
        let p = plan(&cfg, 10, 10, 0, 10, false);
        assert_eq!(
            (p.local_end, p.write.clone(), p.spans.clone()),
            (10, 0..10, std::iter::once(0..10).collect::<Vec<_>>())
        );
        let p = plan(&cfg, 10, 10, 10, 10, false);
        assert_eq!(
            (p.local_end, p.spans),
            (20, std::iter::once(0..20).collect::<Vec<_>>())
        );
    }

    #[test]
    fn a_window_evicts_after_the_sink_and_attends_to_sink_plus_recent() {
        // 3-frame window of 1-token frames, 1 sink frame.
        let cfg = CacheConfig::frames(3, 1, 1);
        let p = plan(&cfg, 3, 3, 3, 1, false);
        assert_eq!(
            (p.evict, p.local_end, p.spans),
            (1, 3, std::iter::once(0..3).collect::<Vec<_>>())
        );
        // A narrower attention span keeps the sink.
        let cfg = CacheConfig {
            max_attention: 2,
            ..cfg
        };
        let p = plan(&cfg, 3, 3, 3, 1, false);
        assert_eq!(p.spans, vec![0..1, 2..3]);
    }

    #[test]
    fn a_recompute_past_the_first_frames_keeps_the_sink() {
        // LongLive: 12-frame window (1 token per frame here), 3 sink frames, 15 frames
        // written; the re-cache recomputes frames 3..15 in place.
        let cfg = CacheConfig::frames(12, 3, 1);
        let p = plan(&cfg, 15, 12, 3, 12, true);
        assert_eq!((p.evict, p.local_end, p.write), (0, 12, 3..12));
        // Starting at frame 0 (a switch within the first 12 frames) rewrites the sink too.
        let p = plan(&cfg, 9, 9, 0, 9, true);
        assert_eq!((p.local_end, p.write), (9, 0..9));
        // A chunk's later passes are not recomputes: with a 4-frame sink, chunk 1 (frames
        // 3..6) rewrites all its frames on every pass.
        let cfg = CacheConfig::frames(12, 4, 1);
        let p = plan(&cfg, 6, 6, 3, 3, false);
        assert_eq!(p.write, 3..6);
    }
}
