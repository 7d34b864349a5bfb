//! Wan's 3-D rotary position embedding.
//!
//! The head is split into (t, h, w) parts of `d − 4·(d/6)`, `2·(d/6)`, `2·(d/6)` real dims
//! (44/42/42 at d = 128); within a part of `n` dims, pair `j` turns by `pos·θ^(−2j/n)` with
//! θ = 10000. Pairs are interleaved (`x[2j]`, `x[2j+1]`). Angles are computed in f64 (the
//! original multiplies in complex f64), then rounded once.

use super::config::{ROPE_MAX_POSITIONS, ROPE_THETA, WanConfig};
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

/// cos and sin of every token's angles.
#[derive(Clone, Debug)]
pub struct Rope<B: Backend> {
    /// `[B|1, L, 1, d/2]`, f32.
    pub cos: Tensor<B, 4>,
    /// `[B|1, L, 1, d/2]`, f32.
    pub sin: Tensor<B, 4>,
}

/// How fast pair `j` of an axis part of `n` dims turns: `θ^(−2j/n)` per position, in f64.
fn inv_freq(j: usize, n: usize) -> f64 {
    ROPE_THETA.powf(-((2 * j) as f64) / n as f64)
}

/// The angle of every pair for a token at (f, h, w), in f64: `[d/2]`.
pub fn angles(cfg: &WanConfig, f: usize, h: usize, w: usize) -> Vec<f64> {
    let [nt, nh, nw] = cfg.rope_split();
    let mut out = Vec::with_capacity(cfg.head_dim() / 2);
    for (pos, n) in [(f, nt), (h, nh), (w, nw)] {
        for j in 0..n / 2 {
            out.push(pos as f64 * inv_freq(j, n));
        }
    }
    out
}

/// cos and sin of every position's angles on one axis, `[ROPE_MAX_POSITIONS, pairs]` row-major:
/// the values [`angles`] gives, computed once per head split instead of per token and call.
struct AxisTable {
    pairs: usize,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl AxisTable {
    fn new(n: usize) -> Self {
        let pairs = n / 2;
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        for pos in 0..ROPE_MAX_POSITIONS {
            for j in 0..pairs {
                let a = pos as f64 * inv_freq(j, n);
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Self { pairs, cos, sin }
    }

    fn cos(&self, pos: usize) -> &[f32] {
        &self.cos[pos * self.pairs..(pos + 1) * self.pairs]
    }

    fn sin(&self, pos: usize) -> &[f32] {
        &self.sin[pos * self.pairs..(pos + 1) * self.pairs]
    }
}

/// The (t, h, w) tables of one head split.
type AxisTables = Arc<[AxisTable; 3]>;

/// The (t, h, w) tables of a head split, made once per process.
fn axis_tables(cfg: &WanConfig) -> AxisTables {
    static TABLES: OnceLock<Mutex<HashMap<[usize; 3], AxisTables>>> = OnceLock::new();
    let split = cfg.rope_split();
    TABLES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(split)
        .or_insert_with(|| Arc::new(split.map(AxisTable::new)))
        .clone()
}

impl<B: Backend> Rope<B> {
    /// Tables for `frames × h × w` tokens (frame-major), frames starting at `first_frame`.
    ///
    /// Panics if a position passes the 1024-entry table upstream has (callers re-base
    /// positions before that, see [`super::cache`]).
    pub fn new(
        cfg: &WanConfig,
        first_frame: usize,
        frames: usize,
        h: usize,
        w: usize,
        device: &B::Device,
    ) -> Self {
        Self::rows(cfg, &[first_frame], frames, h, w, device)
    }

    /// Tables for a batch whose row `i` starts at latent frame `first_frames[i]`:
    /// `[B, L, 1, d/2]`, or `[1, L, 1, d/2]` when every row starts at the same frame.
    pub fn rows(
        cfg: &WanConfig,
        first_frames: &[usize],
        frames: usize,
        h: usize,
        w: usize,
        device: &B::Device,
    ) -> Self {
        let uniform = first_frames.windows(2).all(|p| p[0] == p[1]);
        let starts = if uniform {
            &first_frames[..first_frames.len().min(1)]
        } else {
            first_frames
        };
        let half = cfg.head_dim() / 2;
        let tokens = frames * h * w;
        let mut cos = Vec::with_capacity(starts.len() * tokens * half);
        let mut sin = Vec::with_capacity(starts.len() * tokens * half);
        let [tt, th, tw] = &*axis_tables(cfg);
        for &first_frame in starts {
            assert!(
                first_frame + frames <= ROPE_MAX_POSITIONS
                    && h <= ROPE_MAX_POSITIONS
                    && w <= ROPE_MAX_POSITIONS,
                "RoPE positions past {ROPE_MAX_POSITIONS}"
            );
            for f in first_frame..first_frame + frames {
                for y in 0..h {
                    for x in 0..w {
                        for (table, pos) in [(tt, f), (th, y), (tw, x)] {
                            cos.extend_from_slice(table.cos(pos));
                            sin.extend_from_slice(table.sin(pos));
                        }
                    }
                }
            }
        }
        let rows = starts.len();
        let make = |v: Vec<f32>| {
            Tensor::from_data(
                TensorData::new(v, [rows, tokens, 1, half]),
                (device, DType::F32),
            )
        };
        Self {
            cos: make(cos),
            sin: make(sin),
        }
    }

    /// The rotation that moves a roped key from frame `p` to frame `p + delta` (any `p`):
    /// the temporal pairs turn by `delta·θ_j`, the spatial pairs not at all. `[1, 1, 1, d/2]`.
    pub fn temporal_shift(cfg: &WanConfig, delta: i64, device: &B::Device) -> Self {
        let [nt, _, _] = cfg.rope_split();
        let half = cfg.head_dim() / 2;
        let (mut cos, mut sin) = (vec![1f32; half], vec![0f32; half]);
        for j in 0..nt / 2 {
            let a = delta as f64 * inv_freq(j, nt);
            cos[j] = a.cos() as f32;
            sin[j] = a.sin() as f32;
        }
        let make = |v: Vec<f32>| {
            Tensor::from_data(TensorData::new(v, [1, 1, 1, half]), (device, DType::F32))
        };
        Self {
            cos: make(cos),
            sin: make(sin),
        }
    }

    /// Rotates q or k.
    ///
    /// # Shapes
    /// - x: `[B, L, H, d]` → `[B, L, H, d]` (same dtype)
    pub fn apply(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, l, h, d] = x.dims();
        let dtype = x.dtype();
        let pairs = x.cast(DType::F32).reshape([b, l, h, d / 2, 2]);
        let re: Tensor<B, 4> = pairs.clone().narrow(4, 0, 1).reshape([b, l, h, d / 2]);
        let im: Tensor<B, 4> = pairs.narrow(4, 1, 1).reshape([b, l, h, d / 2]);
        let out_re = re.clone() * self.cos.clone() - im.clone() * self.sin.clone();
        let out_im = re * self.sin.clone() + im * self.cos.clone();
        Tensor::stack::<5>(vec![out_re, out_im], 4)
            .reshape([b, l, h, d])
            .cast(dtype)
    }
}

/// The tables of the last positions a model asked for: a chunk's denoising calls and its
/// clean pass run at the same positions, so all but the first find theirs here (building them
/// is host work the GPU waits for, ~1.7 ms for a 3-frame chunk at 480×832). Clones share it.
#[derive(Clone, Debug)]
pub struct RopeMemo<B: Backend>(Arc<Mutex<Option<Memo<B>>>>);

/// The positions a [`Rope`] was built for: each row's first frame, frames, latent h and w.
type RopeKey = (Vec<usize>, usize, usize, usize);
type Memo<B> = (RopeKey, Rope<B>);

impl<B: Backend> Default for RopeMemo<B> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<B: Backend> RopeMemo<B> {
    /// [`Rope::rows`], or the tables of the last call when it asked for the same positions.
    pub fn rows(
        &self,
        cfg: &WanConfig,
        first_frames: &[usize],
        frames: usize,
        h: usize,
        w: usize,
        device: &B::Device,
    ) -> Rope<B> {
        let key = (first_frames.to_vec(), frames, h, w);
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &*last {
            Some((k, rope)) if *k == key => rope.clone(),
            _ => {
                let rope = Rope::rows(cfg, first_frames, frames, h, w, device);
                *last = Some((key, rope.clone()));
                rope
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_give_every_tokens_own_angles() {
        type B = burn::backend::Flex;
        let cfg = WanConfig::t2v_1_3b();
        let (frames, h, w) = (2, 3, 4);
        let rope = Rope::<B>::rows(&cfg, &[5, 1000], frames, h, w, &Default::default());
        let cos = rope.cos.into_data().to_vec::<f32>().unwrap();
        let sin = rope.sin.into_data().to_vec::<f32>().unwrap();
        let half = cfg.head_dim() / 2;
        let mut i = 0;
        for start in [5, 1000] {
            for f in start..start + frames {
                for y in 0..h {
                    for x in 0..w {
                        let a = angles(&cfg, f, y, x);
                        let want_cos: Vec<f32> = a.iter().map(|v| v.cos() as f32).collect();
                        let want_sin: Vec<f32> = a.iter().map(|v| v.sin() as f32).collect();
                        assert_eq!(
                            cos[i * half..(i + 1) * half],
                            want_cos[..],
                            "({f}, {y}, {x})"
                        );
                        assert_eq!(
                            sin[i * half..(i + 1) * half],
                            want_sin[..],
                            "({f}, {y}, {x})"
                        );
                        i += 1;
                    }
                }
            }
        }
    }

    #[test]
    fn the_memo_gives_the_last_positions_tables_and_builds_new_ones_for_others() {
        type B = burn::backend::Flex;
        let cfg = WanConfig::t2v_1_3b();
        let dev = Default::default();
        let memo = RopeMemo::<B>::default();
        let cos = |r: Rope<B>| r.cos.into_data().to_vec::<f32>().unwrap();
        for starts in [&[3usize][..], &[3], &[6], &[3, 6], &[3, 6], &[3]] {
            let got = memo.rows(&cfg, starts, 2, 3, 4, &dev);
            let want = Rope::<B>::rows(&cfg, starts, 2, 3, 4, &dev);
            assert_eq!(got.cos.dims(), want.cos.dims(), "{starts:?}");
            assert_eq!(cos(got), cos(want), "{starts:?}");
        }
        // Another grid at the same first frame is another key.
        let got = memo.rows(&cfg, &[3], 2, 4, 3, &dev);
        assert_eq!(cos(got), cos(Rope::<B>::rows(&cfg, &[3], 2, 4, 3, &dev)));
    }
}
