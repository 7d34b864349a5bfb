//! StreamDiffusionV2's sink-token-guided rolling KV cache
//! (`chenfengxu714/StreamDiffusionV2@c5a0f20 models/wan/causal_model.py`,
//! `CausalWanSelfAttention.forward`), one copy per stream-batch row.
//!
//! Per layer and row, a buffer of `frames` latent frames; the first `sink` frame slots hold
//! the sink. It fills linearly; once full, each new frame overwrites the slot of the oldest
//! non-sink frame (a FIFO of slots). **Adaptive sink**: when a one-frame chunk would evict,
//! the cosine similarity between each sink frame's mean key (and mean value) and the new
//! frame's is computed, `avg = (cos_k + cos_v)/2`; if `min(avg) < threshold` the new frame
//! replaces the least similar sink instead. Queries attend to every filled slot (no
//! window). A chunk written again (the same start: later denoising steps of the first chunk)
//! overwrites the slots it took.
//!
//! The adaptive choice is made on the device (the similarity, its minimum against the
//! threshold, the slot written through a mask over the row's frames), so a DiT call never
//! waits for the GPU per layer; the host's bookkeeping (the FIFO, the occupants, the refresh
//! count) reads all of a call's choices back at once, when the next call starts or when asked.
//!
//! Upstream also runs the similarity check while the buffer is still filling, comparing
//! against sink slots that may not be written yet, and queues the result for the first
//! eviction; here the check runs when a frame is about to be evicted, the only time it can
//! change what is kept.

use burn::tensor::{Bool, DType, Int, Tensor, TensorData, backend::Backend};
use std::collections::VecDeque;

use crate::wan::{
    cache::{Attend, KvCache, take_tensor, write_rows},
    rope::Rope,
};

/// The ring's sizes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingConfig {
    /// Slots, in latent frames (`num_kv_cache`).
    pub frames: usize,
    /// Sink slots (`num_sink_tokens`, in frames).
    pub sink: usize,
    /// Tokens per latent frame.
    pub frame_tokens: usize,
    /// `adapt_sink_threshold`; −1 (or below) turns it off, as upstream.
    pub adapt_threshold: f64,
}

#[derive(Clone, Debug, Default)]
struct RowState {
    /// Slots written so far.
    filled: usize,
    /// Non-sink slots, oldest first.
    queue: VecDeque<usize>,
    /// The last chunk written: its first token and the slots its frames took.
    last: Option<(i64, Vec<usize>)>,
    /// The first token of the frame in each slot (negative once re-based past it).
    occupant: Vec<Option<i64>>,
}

#[derive(Clone, Debug)]
struct Layer<B: Backend> {
    /// `[rows, frames·frame_tokens, H, d]`.
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    rows: Vec<RowState>,
}

/// One ring per stream-batch row, for every layer.
#[derive(Clone, Debug)]
pub struct RingCache<B: Backend> {
    pub config: RingConfig,
    layers: Vec<Layer<B>>,
    /// The cache rows the next call's batch rows use.
    active: std::ops::Range<usize>,
    /// How many times a sink was replaced (all layers and rows), as far as settled.
    refreshes: u64,
    /// Choices made on the device whose bookkeeping is not done yet.
    pending: Vec<Pending<B>>,
}

/// Frames written to slots the device chose (each a sink or the FIFO's oldest), one layer's
/// rows at a time.
#[derive(Clone, Debug)]
struct Pending<B: Backend> {
    layer: usize,
    /// Per frame: the cache row, the frame's first token and the slot it took unless a sink
    /// was replaced.
    writes: Vec<(usize, i64, usize)>,
    /// `[writes]`: the slots written (whole numbers, as floats).
    slots: Tensor<B, 1>,
}

impl<B: Backend> RingCache<B> {
    /// Empty rings of `rows` rows.
    pub fn new(
        config: RingConfig,
        rows: usize,
        layers: usize,
        heads: usize,
        head_dim: usize,
        device: &B::Device,
        dtype: DType,
    ) -> Self {
        let tokens = config.frames * config.frame_tokens;
        let zeros = || Tensor::zeros([rows, tokens, heads, head_dim], (device, dtype));
        let row = RowState {
            occupant: vec![None; config.frames],
            ..RowState::default()
        };
        Self {
            config,
            layers: (0..layers)
                .map(|_| Layer {
                    k: zeros(),
                    v: zeros(),
                    rows: vec![row.clone(); rows],
                })
                .collect(),
            active: 0..rows,
            refreshes: 0,
            pending: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.layers.first().map_or(0, |l| l.rows.len())
    }

    /// The next calls' batch rows are cache rows `rows`.
    pub fn use_rows(&mut self, rows: std::ops::Range<usize>) {
        assert!(rows.end <= self.rows());
        self.active = rows;
    }

    /// Copies row 0 into `rows` rows (after the first chunk, StreamDiffusionV2 replicates
    /// the cache once per denoising step).
    pub fn replicate(&mut self, rows: usize) {
        self.settle();
        for l in &mut self.layers {
            let k = l.k.clone().narrow(0, 0, 1);
            let v = l.v.clone().narrow(0, 0, 1);
            l.k = k.repeat_dim(0, rows);
            l.v = v.repeat_dim(0, rows);
            let first = l.rows[0].clone();
            l.rows = vec![first; rows];
        }
        self.active = 0..rows;
    }

    /// The first token of the frame in each slot of (`layer`, `row`).
    pub fn occupants(&mut self, layer: usize, row: usize) -> Vec<Option<i64>> {
        self.settle();
        self.layers[layer].rows[row].occupant.clone()
    }

    /// How many times a sink was replaced (all layers and rows).
    pub fn sink_refreshes(&mut self) -> u64 {
        self.settle();
        self.refreshes
    }

    /// The bookkeeping of the choices made on the device: one read of all of them, then per
    /// choice, in order, the FIFO advanced (or the refresh counted), the occupant and the
    /// chunk's slot noted.
    fn settle(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let slots = Tensor::cat(pending.iter().map(|p| p.slots.clone()).collect(), 0);
        let slots: Vec<f32> = slots
            .into_data()
            .convert::<f32>()
            .to_vec()
            .expect("the chosen slots read back");
        let writes = pending
            .iter()
            .flat_map(|p| p.writes.iter().map(move |w| (p.layer, *w)));
        for ((layer, (row, start, fifo)), slot) in writes.zip(slots) {
            let slot = slot as usize;
            let state = &mut self.layers[layer].rows[row];
            if slot == fifo {
                let s = state.queue.pop_front().unwrap_or(fifo);
                state.queue.push_back(s);
            } else {
                self.refreshes += 1;
            }
            state.occupant[slot] = Some(start);
            state.last = Some((start, vec![slot]));
        }
    }

    /// Moves every position back by `delta_tokens` (see [`crate::wan::cache`]): keys rotated
    /// by `shift`, bookkeeping shifted.
    pub fn rebase(&mut self, shift: &Rope<B>, delta_tokens: usize) {
        self.settle();
        for l in &mut self.layers {
            let k = take_tensor(&mut l.k);
            l.k = shift.apply(k);
            for r in &mut l.rows {
                if let Some((start, _)) = &mut r.last {
                    *start -= delta_tokens as i64;
                }
                for o in r.occupant.iter_mut().flatten() {
                    *o -= delta_tokens as i64;
                }
            }
        }
    }

    /// `(cos_k + cos_v)/2` of each sink frame against the new frame, for cache row `row`,
    /// on the device (f32).
    ///
    /// # Shapes
    /// - k, v: the new frame's `[1, frame_tokens, H, d]` → `[sink]`
    fn sink_similarity(
        layer: &Layer<B>,
        cfg: &RingConfig,
        row: usize,
        k: &Tensor<B, 4>,
        v: &Tensor<B, 4>,
    ) -> Tensor<B, 1> {
        let fs = cfg.frame_tokens;
        let cos = |cache: &Tensor<B, 4>, new: &Tensor<B, 4>| -> Tensor<B, 1> {
            let [_, _, h, d] = new.dims();
            let sink = cache
                .clone()
                .narrow(0, row, 1)
                .narrow(1, 0, cfg.sink * fs)
                .cast(DType::F32)
                .reshape([cfg.sink, fs, h * d])
                .mean_dim(1)
                .reshape([cfg.sink, h * d]);
            let new = new
                .clone()
                .cast(DType::F32)
                .reshape([1, fs, h * d])
                .mean_dim(1)
                .reshape([1, h * d]);
            let dot = (sink.clone() * new.clone()).sum_dim(1);
            let norms =
                (sink.clone() * sink).sum_dim(1).sqrt() * (new.clone() * new).sum_dim(1).sqrt();
            (dot / norms.clamp_min(1e-8)).reshape([cfg.sink])
        };
        (cos(&layer.k, k) + cos(&layer.v, v)) / 2.0
    }

    /// The §8 rule on the device: the least similar sink when the lowest similarity is below
    /// the threshold, else `fifo`.
    ///
    /// # Shapes
    /// - similarity: `[sink]` → `[1]`
    fn adaptive_slot(similarity: Tensor<B, 1>, threshold: f64, fifo: usize) -> Tensor<B, 1, Int> {
        let device = similarity.device();
        let refresh = similarity.clone().min().lower_elem(threshold as f32).int();
        let least = similarity.argmin(0);
        let fifo = Tensor::<B, 1, Int>::from_data(TensorData::from([fifo as i64]), &device);
        least * refresh.clone() + fifo * (refresh.neg() + 1)
    }

    /// Writes one frame's `value` into the slot `slot` of cache row `row` of `t`, the slot
    /// chosen on the device: the row's frames replaced through a mask.
    ///
    /// # Shapes
    /// - t: `[rows, frames·fs, H, d]`, value: `[1, fs, H, d]`, slot: `[1]`
    fn write_chosen(
        t: &mut Tensor<B, 4>,
        row: usize,
        frames: usize,
        value: Tensor<B, 4>,
        slot: &Tensor<B, 1, Int>,
    ) {
        let [_, tokens, h, d] = t.dims();
        let fs = tokens / frames;
        let device = t.device();
        let current = t.clone().narrow(0, row, 1).reshape([1, frames, fs, h, d]);
        let hit = Tensor::<B, 1, Int>::arange(0..frames as i64, &device)
            .equal(slot.clone().expand([frames]))
            .reshape([1, frames, 1, 1, 1])
            .expand([1, frames, fs, h, d]);
        let value = value
            .reshape([1, 1, fs, h, d])
            .expand([1, frames, fs, h, d]);
        let updated = current.mask_where(hit, value).reshape([1, tokens, h, d]);
        write_rows(t, row..row + 1, 0..tokens, updated);
    }
}

impl<B: Backend> RingCache<B> {
    /// The adaptive sink's writes of one layer (the frames of `k`/`v`'s batch rows in
    /// `chosen`: batch row, cache row, FIFO slot, first token), on the device: through the
    /// CUDA kernels where they run, else burn's operations a row at a time.
    ///
    /// # Shapes
    /// - k, v: `[batch, fs, H, d]`
    fn write_adaptive(
        layer_index: usize,
        layer: &mut Layer<B>,
        cfg: &RingConfig,
        k: &Tensor<B, 4>,
        v: &Tensor<B, 4>,
        chosen: &[(usize, usize, usize, i64)],
    ) -> Pending<B> {
        let writes = chosen
            .iter()
            .map(|&(_, row, fifo, start)| (row, start, fifo))
            .collect();
        #[cfg(feature = "cuda")]
        if crate::cuda::is_cuda::<B>() && crate::cuda::ring_kernel_enabled() {
            let kernel_writes: Vec<_> = chosen
                .iter()
                .map(|&(batch, row, fifo, _)| crate::cuda::ring::AdaptiveWrite { batch, row, fifo })
                .collect();
            let (rk, rv) = (take_tensor(&mut layer.k), take_tensor(&mut layer.v));
            match crate::cuda::ring_adaptive_write(
                rk,
                rv,
                k.clone(),
                v.clone(),
                cfg.frames,
                cfg.sink,
                cfg.adapt_threshold,
                &kernel_writes,
            ) {
                Ok((rk, rv, slots)) => {
                    (layer.k, layer.v) = (rk, rv);
                    return Pending {
                        layer: layer_index,
                        writes,
                        slots,
                    };
                }
                Err([rk, rv, _, _]) => (layer.k, layer.v) = (rk, rv),
            }
        }
        let slots = chosen
            .iter()
            .map(|&(bi, row, fifo, _)| {
                let (rk, rv) = (k.clone().narrow(0, bi, 1), v.clone().narrow(0, bi, 1));
                let similarity = RingCache::sink_similarity(layer, cfg, row, &rk, &rv);
                let slot = RingCache::adaptive_slot(similarity, cfg.adapt_threshold, fifo);
                RingCache::write_chosen(&mut layer.k, row, cfg.frames, rk, &slot);
                RingCache::write_chosen(&mut layer.v, row, cfg.frames, rv, &slot);
                slot.float()
            })
            .collect();
        Pending {
            layer: layer_index,
            writes,
            slots: Tensor::cat(slots, 0),
        }
    }
}

/// The sink slot the adaptive rule replaces, if any: the least similar one when the lowest
/// similarity is below the threshold (first on ties, as `argmin`).
pub fn adaptive_sink_choice(similarity: &[f64], threshold: f64) -> Option<usize> {
    let (idx, min) = similarity.iter().enumerate().fold(
        None,
        |best: Option<(usize, f64)>, (i, s)| match best {
            Some((_, m)) if *s >= m => best,
            _ => Some((i, *s)),
        },
    )?;
    (min < threshold).then_some(idx)
}

impl<B: Backend> KvCache<B> for RingCache<B> {
    fn attend(
        &mut self,
        layer_index: usize,
        starts: &[usize],
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Attend<B> {
        let cfg = self.config;
        let fs = cfg.frame_tokens;
        let n = k.dims()[1] / fs;
        let active = self.active.clone();
        assert_eq!(starts.len(), active.len(), "one start per active row");
        // −1 (or below) is off: no cosine similarity is below it.
        let adaptive = cfg.sink > 0 && cfg.adapt_threshold > -1.0 && n == 1;
        // A new call (its first layer), or a row of this layer with a choice still on the
        // device: the bookkeeping first (one read for all of them).
        if layer_index == 0
            || self
                .pending
                .iter()
                .any(|p| p.layer == layer_index && p.writes.iter().any(|w| active.contains(&w.0)))
        {
            self.settle();
        }
        let layer = &mut self.layers[layer_index];
        // Rows whose frame goes where the device chooses: (batch row, cache row, FIFO slot,
        // first token).
        let mut chosen = Vec::new();
        for (bi, row) in active.clone().enumerate() {
            let start = starts[bi] as i64;
            let state = &layer.rows[row];
            let evicts = !matches!(&state.last, Some((s, _)) if *s == start)
                && state.filled + n > cfg.frames;
            if adaptive && evicts {
                // The choice stays on the device; `settle` does the bookkeeping.
                let fifo = state.queue.front().copied().unwrap_or(cfg.sink);
                chosen.push((bi, row, fifo, start));
                continue;
            }
            let (rk, rv) = (k.clone().narrow(0, bi, 1), v.clone().narrow(0, bi, 1));
            let slots: Vec<usize> = match &state.last {
                Some((s, slots)) if *s == start => slots.clone(),
                _ if state.filled + n <= cfg.frames => (state.filled..state.filled + n).collect(),
                _ => {
                    // Without the adaptive sink: the FIFO's oldest, one per frame.
                    let state = &mut layer.rows[row];
                    (0..n)
                        .map(|_| {
                            let s = state.queue.pop_front().unwrap_or(cfg.sink);
                            state.queue.push_back(s);
                            s
                        })
                        .collect()
                }
            };
            let state = &mut layer.rows[row];
            if state.last.as_ref().is_none_or(|(s, _)| *s != start)
                && state.filled + n <= cfg.frames
            {
                for s in &slots {
                    if *s >= cfg.sink {
                        state.queue.push_back(*s);
                    }
                }
                state.filled += n;
            }
            for (j, slot) in slots.iter().enumerate() {
                state.occupant[*slot] = Some(start + (j * fs) as i64);
            }
            state.last = Some((start, slots.clone()));
            // Contiguous slots are one write.
            let contiguous = slots.windows(2).all(|w| w[1] == w[0] + 1);
            if contiguous {
                let range = slots[0] * fs..(slots[0] + n) * fs;
                write_rows(&mut layer.k, row..row + 1, range.clone(), rk);
                write_rows(&mut layer.v, row..row + 1, range, rv);
            } else {
                for (j, slot) in slots.iter().enumerate() {
                    let range = slot * fs..(slot + 1) * fs;
                    let (fk, fv) = (
                        rk.clone().narrow(1, j * fs, fs),
                        rv.clone().narrow(1, j * fs, fs),
                    );
                    write_rows(&mut layer.k, row..row + 1, range.clone(), fk);
                    write_rows(&mut layer.v, row..row + 1, range, fv);
                }
            }
        }
        if !chosen.is_empty() {
            let pending = RingCache::write_adaptive(layer_index, layer, &cfg, &k, &v, &chosen);
            self.pending.push(pending);
        }
        let layer = &self.layers[layer_index];
        let filled: Vec<usize> = active.clone().map(|r| layer.rows[r].filled).collect();
        let max = filled.iter().copied().max().unwrap_or(0);
        let rows_k = layer.k.clone().narrow(0, active.start, active.len());
        let rows_v = layer.v.clone().narrow(0, active.start, active.len());
        let (k, v) = (rows_k.narrow(1, 0, max * fs), rows_v.narrow(1, 0, max * fs));
        let mask = (filled.iter().any(|f| *f != max)).then(|| {
            let hidden: Vec<bool> = filled
                .iter()
                .flat_map(|f| (0..max * fs).map(move |t| t >= f * fs))
                .collect();
            Tensor::<B, 4, Bool>::from_data(
                TensorData::new(hidden, [filled.len(), 1, 1, max * fs]),
                &k.device(),
            )
        });
        Attend {
            k,
            v,
            spans: None,
            mask,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    #[test]
    fn the_rule_picks_the_least_similar_sink_below_the_threshold() {
        assert_eq!(adaptive_sink_choice(&[0.9, 0.1, 0.5], 0.2), Some(1));
        assert_eq!(adaptive_sink_choice(&[0.9, 0.3, 0.5], 0.2), None);
        assert_eq!(adaptive_sink_choice(&[-0.4, -0.4, 0.5], 0.2), Some(0));
        assert_eq!(adaptive_sink_choice(&[0.9, 0.1], -1.0), None);
    }

    #[test]
    fn the_devices_choice_is_the_rules() {
        let device = Default::default();
        for (similarity, threshold) in [
            (vec![0.9, 0.1, 0.5], 0.2),
            (vec![0.9, 0.3, 0.5], 0.2),
            (vec![0.5, -0.4, 0.7], 0.2),
            (vec![0.9, 0.1], -1.0),
            (vec![0.19999, 0.3], 0.2),
        ] {
            let sims: Vec<f32> = similarity.iter().map(|v| *v as f32).collect();
            let n = sims.len();
            let t = Tensor::<B, 1>::from_data(TensorData::new(sims, [n]), &device);
            let fifo = 7;
            let slot: Vec<i64> = RingCache::<B>::adaptive_slot(t, threshold, fifo)
                .into_data()
                .convert::<i64>()
                .to_vec()
                .unwrap();
            let rule = adaptive_sink_choice(&similarity, threshold).unwrap_or(fifo);
            assert_eq!(slot, [rule as i64], "{similarity:?} at {threshold}");
        }
    }

    #[test]
    fn choices_settle_per_layer_and_row_in_order() {
        // Two layers, two rows: each (layer, row) keeps its own FIFO and sinks; the choices
        // of a call are settled when the next call starts.
        let cfg = RingConfig {
            frames: 3,
            sink: 1,
            frame_tokens: 1,
            adapt_threshold: 0.2,
        };
        let mut ring = RingCache::<B>::new(cfg, 1, 2, 1, 2, &Default::default(), DType::F32);
        let both = |a: [f32; 2], b: [f32; 2]| Tensor::cat(vec![frame(a), frame(b)], 0);
        for (start, dir) in [(0, [1.0, 0.0]), (1, [1.0, 1.0]), (2, [1.0, 1.0])] {
            for layer in 0..2 {
                ring.attend(layer, &[start], frame(dir), frame(dir));
            }
        }
        ring.replicate(2);
        // Row 0 gets a frame like the sink (the FIFO's oldest, slot 1, goes), row 1 one
        // opposite to it (the sink goes), in both layers.
        for layer in 0..2 {
            let kv = both([1.0, 0.5], [-1.0, 0.0]);
            ring.attend(layer, &[3, 3], kv.clone(), kv);
        }
        for layer in 0..2 {
            assert_eq!(ring.occupants(layer, 0), [Some(0), Some(3), Some(2)]);
            assert_eq!(ring.occupants(layer, 1), [Some(3), Some(1), Some(2)]);
        }
        assert_eq!(ring.sink_refreshes(), 2);
        // The next call: row 0's FIFO moved on to slot 2, row 1's did not (slot 1 still).
        for layer in 0..2 {
            let kv = both([1.0, 0.5], [-1.0, 0.1]);
            ring.attend(layer, &[4, 4], kv.clone(), kv);
        }
        for layer in 0..2 {
            assert_eq!(ring.occupants(layer, 0), [Some(0), Some(3), Some(4)]);
            assert_eq!(ring.occupants(layer, 1), [Some(3), Some(4), Some(2)]);
        }
        assert_eq!(ring.sink_refreshes(), 2);
        // What the rows attend to holds the frames written where the bookkeeping says.
        let seen = ring.attend(
            0,
            &[4, 4],
            both([1.0, 0.5], [-1.0, 0.1]),
            both([1.0, 0.5], [-1.0, 0.1]),
        );
        let k: Vec<f32> = seen.k.into_data().to_vec().unwrap();
        assert_eq!(&k[..6], &[1.0, 0.0, 1.0, 0.5, 1.0, 0.5]);
        assert_eq!(&k[6..], &[-1.0, 0.0, -1.0, 0.1, 1.0, 1.0]);
    }

    /// A frame whose keys and values all point along `dir` (one token per frame, one head).
    fn frame(dir: [f32; 2]) -> Tensor<B, 4> {
        Tensor::from_data(
            TensorData::new(dir.to_vec(), [1, 1, 1, 2]),
            &Default::default(),
        )
    }

    fn write(ring: &mut RingCache<B>, start: usize, dir: [f32; 2]) {
        ring.attend(0, &[start], frame(dir), frame(dir));
    }

    #[test]
    fn a_full_ring_evicts_the_oldest_non_sink_frame_or_a_dissimilar_sink() {
        let cfg = RingConfig {
            frames: 4,
            sink: 2,
            frame_tokens: 1,
            adapt_threshold: 0.2,
        };
        let mut ring = RingCache::<B>::new(cfg, 1, 1, 1, 2, &Default::default(), DType::F32);
        // Sinks along x and y, then two frames fill the ring.
        write(&mut ring, 0, [1.0, 0.0]);
        write(&mut ring, 1, [0.0, 1.0]);
        write(&mut ring, 2, [1.0, 1.0]);
        write(&mut ring, 3, [1.0, 1.0]);
        assert_eq!(ring.occupants(0, 0), [Some(0), Some(1), Some(2), Some(3)]);
        // A frame close to both sinks (cos 0.71 each) evicts the oldest non-sink frame.
        write(&mut ring, 4, [1.0, 1.0]);
        assert_eq!(ring.occupants(0, 0), [Some(0), Some(1), Some(4), Some(3)]);
        write(&mut ring, 5, [1.0, 1.0]);
        assert_eq!(ring.occupants(0, 0), [Some(0), Some(1), Some(4), Some(5)]);
        // A frame along −x: cos with sink 0 is −1, with sink 1 is 0: both below 0.2, sink 0
        // is the least similar and is replaced; the FIFO is left as it was.
        write(&mut ring, 6, [-1.0, 0.0]);
        assert_eq!(ring.occupants(0, 0), [Some(6), Some(1), Some(4), Some(5)]);
        assert_eq!(ring.sink_refreshes(), 1);
        // Close to both sinks again (cos 0.71): the FIFO's oldest, slot 2.
        write(&mut ring, 7, [-1.0, 1.0]);
        assert_eq!(ring.occupants(0, 0), [Some(6), Some(1), Some(7), Some(5)]);
        // The same chunk again overwrites its own slot.
        write(&mut ring, 7, [-1.0, 0.9]);
        assert_eq!(ring.occupants(0, 0), [Some(6), Some(1), Some(7), Some(5)]);
    }

    #[test]
    fn rows_that_filled_less_are_masked() {
        let cfg = RingConfig {
            frames: 3,
            sink: 1,
            frame_tokens: 1,
            adapt_threshold: -1.0,
        };
        let mut ring = RingCache::<B>::new(cfg, 1, 1, 1, 2, &Default::default(), DType::F32);
        write(&mut ring, 0, [1.0, 0.0]);
        ring.replicate(2);
        // Row 0 takes a new frame; row 1 writes frame 0 again.
        let kv = Tensor::cat(vec![frame([0.0, 1.0]), frame([1.0, 0.0])], 0);
        let seen = ring.attend(0, &[1, 0], kv.clone(), kv);
        assert_eq!(seen.k.dims(), [2, 2, 1, 2]);
        let mask: Vec<bool> = seen.mask.unwrap().into_data().to_vec().unwrap();
        assert_eq!(mask, [false, false, false, true]);
    }
}
