//! StreamDiffusionV2: video → video (`chenfengxu714/StreamDiffusionV2@c5a0f20`,
//! `models/wan/causal_stream_inference.py` and `streamv2v/inference.py`).
//!
//! - **Input**: frames resized to H×W, `x/127.5 − 1`, encoded by the streaming VAE: the first
//!   chunk takes 5 frames (→ 2 latent frames), each later one 4 (→ 1).
//! - **Noise**: `x = ε·s + z·(1 − s)`. The first chunk runs the step list as given; each
//!   later chunk's first step follows its noise: `t0 = int(1000·s) − 100` (floored at 0).
//! - **Noise controller** (on by default): with `d = clamp(max_f √mean((x_f − x_{f−1})²) / 0.2,
//!   0, 1)` over the chunk's frames and the previous chunk's last frame,
//!   `s = 0.9·(s_user − 0.1·d) + 0.1·s_prev`.
//! - **First chunk**: its steps run one after another (cache row 0), the result is decoded
//!   (5 frames), and the cache is copied once per step.
//! - **Stream batch** (`stream_batch`, on by default): slot `i` holds the chunk at step `i`;
//!   each new chunk shifts the slots and one batched DiT call advances them all, row `i`
//!   reading and writing cache copy `i` at its own positions; slot `i < n−1` is then re-noised
//!   to step `i+1`, slot `n−1`'s `x0` is decoded (4 frames). Output is `n−1` chunks late; the
//!   first `n−1` later chunks give none. Off: each chunk runs its `n` steps one after another
//!   (step `i` on cache copy `i`), the same computation without the lag (upstream's
//!   `inference_wo_batch` instead keeps one cache that its last pass writes). There is no clean
//!   pass: copy `i` holds past chunks' K/V from their step-`i` inputs.
//! - **KV cache**: the ring of [`super::ring`] (6 frames, 3 sink, adaptive sink 0.2).
//! - **RoPE refresh**: when a chunk would start at frame 50, positions move back so it starts
//!   at `num_kv_cache − 1`, as upstream; here the cached keys are rotated with them (see
//!   [`crate::wan::cache`]), which keeps the relative positions exact. Upstream only resets
//!   the counter, so for a few chunks after each refresh cached frames look newer than the
//!   query.
//!
//! Noise draw order: the first chunk draws its mixing noise `[1, 16, 2, H/8, W/8]` and one
//! draw before each later step; each later call draws the new chunk's mixing noise
//! `[1, 16, 1, H/8, W/8]`, then one re-noise draw per slot `0, 1, …` that moves to a next step
//! (in the sequential mode: mixing noise, then one draw before each later step).

use super::{
    ChunkOutput, ChunkTimings, Geometry, WanStream,
    core::StreamCore,
    flag, float, int,
    load::WanModels,
    noise::{ChunkRng, Noise},
    ring::{RingCache, RingConfig},
};
use crate::{
    pipeline::{
        PipelineError,
        params::{ParamValue, Params},
    },
    scheduler::FlowMatchSchedule,
    wan::{
        Timesteps,
        cache::CrossCache,
        rope::Rope,
        sampling::{add_noise, x0_from_v},
        vae::LatentSpace,
        video_vae::{DecodeStream, EncodeStream},
    },
};
use burn::tensor::{Tensor, backend::Backend};
use std::{sync::Arc, time::Instant};

/// The schedule's shift (`timestep_shift: 8.0`, steps not warped).
pub const SHIFT: f64 = 8.0;
/// Input frames of the first chunk and of each later one.
pub const FIRST_INPUT_FRAMES: usize = 5;
pub const INPUT_FRAMES: usize = 4;
/// A chunk that would start at this latent frame triggers the RoPE refresh (`t_refresh`).
pub const ROPE_REFRESH_FRAME: usize = 50;

/// A video → video stream's fixed settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub geometry: Geometry,
    pub num_kv_cache: usize,
    pub num_sink: usize,
    pub adapt_sink_threshold: f64,
    pub stream_batch: bool,
    pub normalize_input_latents: bool,
    /// Latent frame at which positions are re-based ([`ROPE_REFRESH_FRAME`]).
    pub rope_refresh: usize,
}

impl Settings {
    pub fn from_params(p: &Params) -> Result<Self, String> {
        let s = Self {
            geometry: Geometry::from_params(p),
            num_kv_cache: int(p, "num_kv_cache").unwrap_or(6) as usize,
            num_sink: int(p, "num_sink_tokens").unwrap_or(3) as usize,
            adapt_sink_threshold: float(p, "adapt_sink_threshold").unwrap_or(0.2),
            stream_batch: flag(p, "stream_batch").unwrap_or(true),
            normalize_input_latents: flag(p, "normalize_input_latents").unwrap_or(false),
            rope_refresh: ROPE_REFRESH_FRAME,
        };
        if s.num_kv_cache < 3 || s.num_sink + 1 >= s.num_kv_cache {
            return Err(format!(
                "num_kv_cache ({}) must be at least 3 and leave two frames beside the sink ({})",
                s.num_kv_cache, s.num_sink
            ));
        }
        Ok(s)
    }

    fn space(&self) -> LatentSpace {
        if self.normalize_input_latents {
            LatentSpace::Normalized
        } else {
            LatentSpace::Raw
        }
    }
}

/// The motion-aware noise scale: `0.9·(s_user − 0.1·d) + 0.1·s_prev`, with `d` the clamped
/// largest RMS frame difference over 0.2; kept in [0, 1] (a mix outside it would extrapolate).
pub fn controlled_noise_scale(max_rms_diff: f64, s_user: f64, s_prev: f64) -> f64 {
    let d = (max_rms_diff / 0.2).clamp(0.0, 1.0);
    (0.9 * (s_user - 0.1 * d) + 0.1 * s_prev).clamp(0.0, 1.0)
}

/// The first step's timestep for noise scale `s`: `int(1000·s) − 100`, at least 0.
pub fn first_step(s: f64) -> f64 {
    ((1000.0 * s).trunc() - 100.0).max(0.0)
}

/// A chunk in flight.
#[derive(Clone, Debug)]
struct Slot<B: Backend> {
    x: Tensor<B, 5>,
    /// RoPE position of its latent frame.
    position: usize,
    rng: ChunkRng,
    /// Its first step's timestep.
    t0: f64,
}

/// One video → video stream.
pub struct Sdv2Stream<B: Backend> {
    core: StreamCore<B>,
    pub settings: Settings,
    schedule: FlowMatchSchedule,
    steps: Vec<f64>,
    noise_scale: f64,
    controller: bool,
    manage_cache: bool,
    cache: Option<RingCache<B>>,
    encoder: EncodeStream<B>,
    decoder: DecodeStream<B>,
    slots: Vec<Option<Slot<B>>>,
    position: usize,
    generated: u64,
    last_frame: Option<Tensor<B, 5>>,
    s_prev: f64,
    /// Noise scale of the last chunk.
    pub last_noise_scale: f64,
    /// RoPE refreshes done.
    pub rebases: u64,
}

impl<B: Backend> Sdv2Stream<B> {
    pub fn new(models: Arc<WanModels<B>>, settings: Settings) -> Self {
        let encoder = models.encoder().encode_stream();
        let decoder = models.decoder.decode_stream();
        Self {
            core: StreamCore::new(models),
            settings,
            schedule: FlowMatchSchedule::new(SHIFT).unwrap_or_else(|e| unreachable!("{e}")),
            steps: vec![700.0, 500.0],
            noise_scale: 0.8,
            controller: true,
            manage_cache: true,
            cache: None,
            encoder,
            decoder,
            slots: Vec::new(),
            position: 0,
            generated: 0,
            last_frame: None,
            s_prev: 0.8,
            last_noise_scale: 0.8,
            rebases: 0,
        }
    }

    fn restart(&mut self) {
        self.cache = None;
        self.encoder = self.core.models.encoder().encode_stream();
        self.decoder = self.core.models.decoder.decode_stream();
        self.slots.clear();
        self.core.reset();
        self.position = 0;
        self.generated = 0;
        self.last_frame = None;
    }

    /// Sinks the adaptive rule has replaced so far (all layers and rows).
    pub fn sink_refreshes(&mut self) -> u64 {
        self.cache.as_mut().map_or(0, |c| c.sink_refreshes())
    }

    /// Whether the next chunk is a stream's first.
    pub fn fresh(&self) -> bool {
        self.cache.is_none()
    }

    /// The largest RMS difference between consecutive frames of `[prev, input]`.
    fn motion(&self, input: &Tensor<B, 5>) -> f64 {
        let Some(prev) = &self.last_frame else {
            return 0.0;
        };
        let all = Tensor::cat(vec![prev.clone(), input.clone()], 2);
        let t = all.dims()[2];
        let d = all.clone().narrow(2, 1, t - 1) - all.narrow(2, 0, t - 1);
        let [_, c, _, h, w] = input.dims();
        let per_frame: Vec<f32> = (d.clone() * d)
            .swap_dims(0, 2)
            .reshape([t - 1, c * h * w])
            .mean_dim(1)
            .sqrt()
            .into_data()
            .to_vec()
            .unwrap_or_default();
        per_frame.into_iter().map(f64::from).fold(0.0, f64::max)
    }

    /// The batched (or sequential) DiT call over `slots[rows]`, rows at their steps; returns
    /// each row's `x0`.
    fn denoise(
        &mut self,
        cross: &CrossCache<B>,
        rows: std::ops::Range<usize>,
        first_row_step: usize,
    ) -> Vec<Tensor<B, 5>> {
        let dit = &self.core.models.dit;
        let slots: Vec<&Slot<B>> = rows
            .clone()
            .map(|i| self.slots[i].as_ref().unwrap_or_else(|| unreachable!()))
            .collect();
        let t: Vec<f64> = slots
            .iter()
            .enumerate()
            .map(|(j, s)| {
                let step = first_row_step + j;
                if step == 0 { s.t0 } else { self.steps[step] }
            })
            .collect();
        let x = Tensor::cat(slots.iter().map(|s| s.x.clone()).collect(), 0);
        let positions: Vec<usize> = slots.iter().map(|s| s.position).collect();
        let frames = x.dims()[2];
        let ts = Timesteps {
            per_frame: t.iter().map(|t| vec![*t; frames]).collect(),
        };
        let cache = self.cache.as_mut().unwrap_or_else(|| unreachable!());
        cache.use_rows(first_row_step..first_row_step + rows.len());
        let v = dit.forward_causal(x.clone(), &ts, &positions, cross, cache);
        (0..rows.len())
            .map(|j| {
                x0_from_v(
                    &self.schedule,
                    x.clone().narrow(0, j, 1),
                    v.clone().narrow(0, j, 1),
                    t[j],
                )
            })
            .collect()
    }

    /// The input frames' latents (raw μ or normalised, as the settings say).
    fn encode(
        &mut self,
        input: Tensor<B, 5>,
        timings: &mut ChunkTimings,
    ) -> Result<Tensor<B, 5>, PipelineError> {
        let started = Instant::now();
        let z = self
            .core
            .models
            .encoder()
            .encode_chunk(&mut self.encoder, input, self.settings.space())
            .map_err(|e| PipelineError::Retry(e.to_string()))?;
        self.core.sync();
        timings.vae += started.elapsed();
        Ok(z)
    }

    /// The first chunk: 5 frames → 2 latents, the steps one after another, then one cache
    /// copy per step.
    fn first_chunk(
        &mut self,
        input: Tensor<B, 5>,
        cross: &CrossCache<B>,
        timings: &mut ChunkTimings,
    ) -> Result<Tensor<B, 5>, PipelineError> {
        let models = self.core.models.clone();
        let z = self.encode(input, timings)?;

        let started = Instant::now();
        let dit = &models.dit;
        let s = self.noise_scale;
        let mut rng = ChunkRng::new(self.settings.geometry.seed, 0);
        let eps = self.core.draw(&mut rng, z.dims())?;
        let x = eps * s + z * (1.0 - s);
        let cfg = RingConfig {
            frames: self.settings.num_kv_cache,
            sink: self.settings.num_sink,
            frame_tokens: self.settings.geometry.frame_tokens(),
            adapt_threshold: self.settings.adapt_sink_threshold,
        };
        let c = &dit.config;
        self.cache = Some(RingCache::new(
            cfg,
            1,
            c.num_layers,
            c.num_heads,
            c.head_dim(),
            dit.device(),
            dit.dtype,
        ));
        let n = self.steps.len();
        self.slots = vec![None; n];
        self.slots[0] = Some(Slot {
            x,
            position: 0,
            rng,
            t0: self.steps[0],
        });
        let mut x0 = None;
        for k in 0..n {
            // Every step of the first chunk runs on cache row 0 at the list's timestep.
            let slot = self.slots[0].as_mut().unwrap_or_else(|| unreachable!());
            slot.t0 = self.steps[k];
            let out = self.denoise(cross, 0..1, 0).remove(0);
            if k + 1 < n {
                let mut rng = self.slots[0]
                    .as_ref()
                    .map(|s| s.rng.clone())
                    .unwrap_or_else(|| unreachable!());
                let eps = self.core.draw(&mut rng, out.dims())?;
                let slot = self.slots[0].as_mut().unwrap_or_else(|| unreachable!());
                slot.x = add_noise(&self.schedule, out, eps, self.steps[k + 1]);
                slot.rng = rng;
            } else {
                x0 = Some(out);
            }
        }
        self.slots[0] = None;
        if let Some(cache) = &mut self.cache {
            cache.replicate(n);
        }
        let x0 = x0.unwrap_or_else(|| unreachable!());
        self.core.sync();
        timings.dit += started.elapsed();
        self.position = 2;
        self.generated = 2;
        self.s_prev = s;
        self.last_noise_scale = s;
        Ok(x0)
    }

    /// Moves every position back by `delta` frames (cache keys and chunks in flight).
    fn rebase(&mut self, delta: usize) {
        let dit = &self.core.models.dit;
        let shift = Rope::temporal_shift(&dit.config, -(delta as i64), dit.device());
        let fs = self.settings.geometry.frame_tokens();
        if let Some(cache) = &mut self.cache {
            cache.rebase(&shift, delta * fs);
        }
        for s in self.slots.iter_mut().flatten() {
            s.position -= delta;
        }
        self.position -= delta;
        self.rebases += 1;
    }
}

impl<B: Backend> WanStream<B> for Sdv2Stream<B> {
    fn apply(&mut self, params: &Params, reset: bool) -> Result<(), PipelineError> {
        if reset {
            self.restart();
        }
        self.core.apply_prompts(params)?;
        if let Some(ParamValue::Steps(s)) = params.get("denoising_step_list") {
            let steps: Vec<f64> = s.iter().map(|t| *t as f64).collect();
            if steps.len() != self.steps.len() && !self.fresh() {
                // One stream-batch slot (and cache copy) per step: start over.
                self.restart();
            }
            self.steps = steps;
        }
        if let Some(v) = float(params, "noise_scale") {
            self.noise_scale = v;
        }
        if let Some(v) = flag(params, "noise_controller") {
            self.controller = v;
        }
        if let Some(v) = flag(params, "manage_cache") {
            self.manage_cache = v;
        }
        if self.manage_cache && !self.fresh() && self.core.pending_jump()? {
            // The original restarts its stream session on a new prompt.
            self.restart();
        }
        Ok(())
    }

    fn input_frames(&self) -> usize {
        if self.fresh() {
            FIRST_INPUT_FRAMES
        } else {
            INPUT_FRAMES
        }
    }

    fn next_chunk_pieces(
        &mut self,
        input: Option<Tensor<B, 5>>,
        piece: &mut dyn FnMut(Tensor<B, 5>),
    ) -> Result<ChunkOutput<B>, PipelineError> {
        let input = input.ok_or_else(|| PipelineError::Retry("no input frames".into()))?;
        let [_, c, t, h, w] = input.dims();
        let g = &self.settings.geometry;
        if c != 3 || t != self.input_frames() || h != g.height || w != g.width {
            return Err(PipelineError::Retry(format!(
                "expected input [1, 3, {}, {}, {}], got {:?}",
                self.input_frames(),
                g.height,
                g.width,
                input.dims()
            )));
        }
        let mut timings = ChunkTimings::default();

        let started = Instant::now();
        let (_, cross) = self.core.conditioning()?;
        self.core.sync();
        timings.text = started.elapsed();

        let last = input.clone().narrow(2, t - 1, 1);
        let output = if self.fresh() {
            Some(self.first_chunk(input, &cross, &mut timings)?)
        } else {
            let s = if self.controller {
                controlled_noise_scale(self.motion(&input), self.noise_scale, self.s_prev)
            } else {
                self.noise_scale
            };
            let z = self.encode(input, &mut timings)?;

            let started = Instant::now();
            if self.position >= self.settings.rope_refresh {
                // Back to `num_kv_cache − 1` (upstream), but never so far that the oldest
                // chunk in flight (n − 1 frames back) would go below frame 0.
                let target = (self.settings.num_kv_cache - 1).max(self.steps.len() - 1);
                self.rebase(self.position - target);
            }
            let mut rng = ChunkRng::new(self.settings.geometry.seed, self.generated);
            let eps = self.core.draw(&mut rng, z.dims())?;
            let new = Slot {
                x: eps * s + z * (1.0 - s),
                position: self.position,
                rng,
                t0: first_step(s),
            };
            let n = self.steps.len();
            let mut output = None;
            if self.settings.stream_batch {
                self.slots.rotate_right(1);
                self.slots[0] = Some(new);
                let m = self.slots.iter().take_while(|s| s.is_some()).count();
                let x0s = self.denoise(&cross, 0..m, 0);
                for (i, x0) in x0s.into_iter().enumerate() {
                    if i + 1 < n {
                        self.renoise(i, x0)?;
                    } else {
                        output = Some(x0);
                        self.slots[i] = None;
                    }
                }
            } else {
                self.slots[0] = Some(new);
                for i in 0..n {
                    if i > 0 {
                        self.slots.swap(i - 1, i);
                    }
                    let x0 = self.denoise(&cross, i..i + 1, i).remove(0);
                    if i + 1 < n {
                        self.renoise(i, x0)?;
                    } else {
                        output = Some(x0);
                        self.slots[i] = None;
                    }
                }
            }
            self.core.sync();
            timings.dit += started.elapsed();
            self.position += 1;
            self.generated += 1;
            self.s_prev = s;
            self.last_noise_scale = s;
            output
        };
        self.last_frame = Some(last);

        if let Some(x0) = &output {
            timings.vae += self.core.decode(&mut self.decoder, x0.clone(), piece)?;
        }
        Ok(ChunkOutput {
            video: None,
            latents: output,
            timings,
        })
    }

    fn noise(&self) -> &Noise {
        &self.core.noise
    }

    fn set_noise(&mut self, noise: Noise) {
        self.core.noise = noise;
    }

    fn rebases(&self) -> u64 {
        self.rebases
    }
}

impl<B: Backend> Sdv2Stream<B> {
    /// Slot `i`'s `x0` re-noised to step `i + 1` with its chunk's generator.
    fn renoise(&mut self, i: usize, x0: Tensor<B, 5>) -> Result<(), PipelineError> {
        let mut rng = self.slots[i]
            .as_ref()
            .map(|s| s.rng.clone())
            .unwrap_or_else(|| unreachable!());
        let eps = self.core.draw(&mut rng, x0.dims())?;
        let next = self.steps[i + 1];
        let slot = self.slots[i].as_mut().unwrap_or_else(|| unreachable!());
        slot.x = add_noise(&self.schedule, x0, eps, next);
        slot.rng = rng;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noise_controller_and_first_step_follow_the_formula() {
        // No motion: 0.9·0.8 + 0.1·0.8 = 0.8 → t0 = 700.
        let s = controlled_noise_scale(0.0, 0.8, 0.8);
        assert!((s - 0.8).abs() < 1e-12);
        assert_eq!(first_step(s), 700.0);
        // RMS difference 0.1 → d = 0.5: 0.9·(0.8 − 0.05) + 0.1·0.8 = 0.755 → t0 = 655.
        let s = controlled_noise_scale(0.1, 0.8, 0.8);
        assert!((s - 0.755).abs() < 1e-12, "{s}");
        assert_eq!(first_step(s), 655.0);
        // The scale stays in [0, 1]: 0.9·(0.05 − 0.1) + 0.1·0 < 0 → 0.
        assert_eq!(controlled_noise_scale(1.0, 0.05, 0.0), 0.0);
        // d clamps at 1: 0.9·(0.7 − 0.1) + 0.1·0.6 = 0.6 → t0 = 500.
        let s = controlled_noise_scale(3.0, 0.7, 0.6);
        assert!((s - 0.6).abs() < 1e-12, "{s}");
        assert_eq!(first_step(s), 500.0);
        // int() truncates: s = 0.7999 → 799 − 100 = 699; tiny scales floor at 0.
        assert_eq!(first_step(0.7999), 699.0);
        assert_eq!(first_step(0.05), 0.0);
    }
}
