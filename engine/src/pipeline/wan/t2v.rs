//! Self-Forcing and LongLive: text → video, chunk by chunk
//! (`guandeh17/Self-Forcing@33593df pipeline/causal_inference.py`,
//! `NVlabs/LongLive@2462895 pipeline/interactive_causal_inference.py`).
//!
//! Each chunk is 3 latent frames (12 video frames; the stream's first gives 9):
//! 1. noise `ε ~ N(0, 1)` `[1, 16, 3, H/8, W/8]`, from the chunk's generator (`seed + f`);
//! 2. for each warped step `t_k` (shift 5: [1000, 750, 500, 250] → 1000, 937.5, 833.3, 625):
//!    `x0 = x − σ(t_k)·G(x, t_k)`; before the next step `x = (1 − σ')·x0 + σ'·ε'` with fresh
//!    noise; the chunk is the last `x0`;
//! 3. a clean pass `G(x0, t = 0)` writes the chunk's clean K/V into the cache;
//! 4. the VAE decodes the chunk, streaming.
//!
//! The cache holds `local_attn_size` frames (Self-Forcing 21 = its global 81-frame cache,
//! LongLive 12); when full it rolls, keeping the first `sink_size` frames (see
//! [`crate::wan::cache`]). Positions are re-based before the 1024-frame RoPE table runs out,
//! so a stream never ends. LongLive re-caches on a prompt jump: the last ≤ `local_attn_size`
//! clean frames run through the DiT once more at t = 0 with the new prompt, overwriting their
//! K/V in place (the sink keeps its K/V unless the re-cached span starts at frame 0).
//!
//! Noise draw order per chunk: the initial noise, then one draw before each later step
//! (`|steps|` draws, each `[1, 16, 3, H/8, W/8]`).

use super::{
    ChunkOutput, ChunkTimings, Geometry, WanPipeline, WanStream,
    core::StreamCore,
    int,
    load::WanModels,
    noise::{ChunkRng, Noise},
};
use crate::{
    pipeline::{
        PipelineError,
        params::{ParamValue, Params},
    },
    scheduler::FlowMatchSchedule,
    wan::{
        Timesteps,
        cache::{CacheConfig, CrossCache, WanCache},
        config::ROPE_MAX_POSITIONS,
        rope::Rope,
        sampling::{add_noise, x0_from_v},
        video_vae::DecodeStream,
    },
};
use burn::tensor::{Tensor, backend::Backend};
use std::{sync::Arc, time::Instant};

/// Latent frames per chunk (`num_frame_per_block`).
pub const CHUNK_FRAMES: usize = 3;
/// The schedule's shift (`timestep_shift`).
pub const SHIFT: f64 = 5.0;

/// A text → video stream's fixed settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub kind: WanPipeline,
    pub geometry: Geometry,
    /// Frames the self-attention cache holds.
    pub local_attn_size: usize,
    /// Frames never evicted.
    pub sink_size: usize,
    /// Positions are re-based before a chunk would pass this (the RoPE table's 1024).
    pub rope_limit: usize,
}

impl Settings {
    /// From validated load parameters (defaults included).
    pub fn from_params(kind: WanPipeline, p: &Params) -> Result<Self, String> {
        let geometry = Geometry::from_params(p);
        let local_attn_size = int(p, "local_attn_size").unwrap_or(21) as usize;
        let sink_size = int(p, "sink_size").unwrap_or(3) as usize;
        if local_attn_size < CHUNK_FRAMES || sink_size + CHUNK_FRAMES > local_attn_size {
            return Err(format!(
                "the cache ({local_attn_size} frames) must hold the sink ({sink_size}) and a \
                 chunk ({CHUNK_FRAMES})"
            ));
        }
        Ok(Self {
            kind,
            geometry,
            local_attn_size,
            sink_size,
            rope_limit: ROPE_MAX_POSITIONS,
        })
    }
}

/// One text → video stream.
pub struct T2vStream<B: Backend> {
    core: StreamCore<B>,
    pub settings: Settings,
    schedule: FlowMatchSchedule,
    /// The warped steps.
    steps: Vec<f64>,
    cache: WanCache<B>,
    decoder: DecodeStream<B>,
    /// RoPE position (latent frame) of the next chunk.
    position: usize,
    /// Latent frames generated (the seed offset; never re-based).
    generated: u64,
    /// The last ≤ `local_attn_size` clean latent frames (LongLive's re-cache).
    history: Option<Tensor<B, 5>>,
    /// Re-caches done (LongLive).
    pub recaches: u64,
    /// Position re-basings done.
    pub rebases: u64,
}

impl<B: Backend> T2vStream<B> {
    pub fn new(models: Arc<WanModels<B>>, settings: Settings) -> Self {
        let schedule = FlowMatchSchedule::new(SHIFT).unwrap_or_else(|e| unreachable!("{e}"));
        let steps = schedule
            .warp_steps(&[1000, 750, 500, 250])
            .unwrap_or_else(|e| unreachable!("{e}"));
        let cache = Self::empty_cache(&models, &settings);
        let decoder = models.decoder.decode_stream();
        Self {
            core: StreamCore::new(models),
            settings,
            schedule,
            steps,
            cache,
            decoder,
            position: 0,
            generated: 0,
            history: None,
            recaches: 0,
            rebases: 0,
        }
    }

    fn empty_cache(models: &WanModels<B>, s: &Settings) -> WanCache<B> {
        let fs = s.geometry.frame_tokens();
        models
            .dit
            .new_cache(1, CacheConfig::frames(s.local_attn_size, s.sink_size, fs))
    }

    /// Starts over (same prompts and noise source).
    fn restart(&mut self) {
        self.cache = Self::empty_cache(&self.core.models, &self.settings);
        self.decoder = self.core.models.decoder.decode_stream();
        self.core.reset();
        self.position = 0;
        self.generated = 0;
        self.history = None;
    }

    /// RoPE position of the next chunk.
    pub fn position(&self) -> usize {
        self.position
    }

    /// LongLive's `_recache_after_switch`: the last ≤ `local_attn_size` clean frames again
    /// at t = 0 under the new prompt, in place.
    fn recache(&mut self, cross: &CrossCache<B>) {
        let Some(history) = self.history.clone() else {
            return;
        };
        let n = history.dims()[2];
        let start = self.position - n;
        let t = Timesteps::per_row(&[0.0], n);
        self.cache.recompute = true;
        let _ = self
            .core
            .models
            .dit
            .forward_causal(history, &t, &[start], cross, &mut self.cache);
        self.cache.recompute = false;
        self.recaches += 1;
    }

    /// Moves positions back so the next chunk fits the RoPE table.
    fn rebase_if_needed(&mut self) {
        if self.position + CHUNK_FRAMES <= self.settings.rope_limit {
            return;
        }
        let delta = self.position - self.settings.local_attn_size;
        let dit = &self.core.models.dit;
        let shift = Rope::temporal_shift(&dit.config, -(delta as i64), dit.device());
        self.cache
            .rebase(&shift, delta * self.settings.geometry.frame_tokens());
        self.position -= delta;
        self.rebases += 1;
    }
}

impl<B: Backend> WanStream<B> for T2vStream<B> {
    fn apply(&mut self, params: &Params, reset: bool) -> Result<(), PipelineError> {
        if reset {
            self.restart();
        }
        self.core.apply_prompts(params)?;
        if let Some(ParamValue::Steps(s)) = params.get("denoising_step_list") {
            let steps: Vec<u32> = s.iter().map(|t| *t as u32).collect();
            self.steps = self
                .schedule
                .warp_steps(&steps)
                .map_err(|e| PipelineError::Retry(e.to_string()))?;
        }
        Ok(())
    }

    fn input_frames(&self) -> usize {
        0
    }

    fn next_chunk_pieces(
        &mut self,
        _input: Option<Tensor<B, 5>>,
        piece: &mut dyn FnMut(Tensor<B, 5>),
    ) -> Result<ChunkOutput<B>, PipelineError> {
        let mut timings = ChunkTimings::default();
        let models = self.core.models.clone();
        let dit = &models.dit;

        let started = Instant::now();
        let (cond, cross) = self.core.conditioning()?;
        self.core.sync();
        timings.text = started.elapsed();

        let started = Instant::now();
        if cond.jumped && self.settings.kind == WanPipeline::LongLive {
            self.recache(&cross);
        }
        self.rebase_if_needed();
        let (h, w) = self.settings.geometry.latent();
        let shape = [1, dit.config.in_dim, CHUNK_FRAMES, h, w];
        let mut rng = ChunkRng::new(self.settings.geometry.seed, self.generated);
        let mut x = self.core.draw(&mut rng, shape)?;
        let steps = self.steps.clone();
        let mut x0 = x.clone();
        for (k, &t) in steps.iter().enumerate() {
            let ts = Timesteps::per_row(&[t], CHUNK_FRAMES);
            let v = dit.forward_causal(x.clone(), &ts, &[self.position], &cross, &mut self.cache);
            x0 = x0_from_v(&self.schedule, x.clone(), v, t);
            if let Some(&next) = steps.get(k + 1) {
                let eps = self.core.draw(&mut rng, shape)?;
                x = add_noise(&self.schedule, x0.clone(), eps, next);
            }
        }
        // The clean pass: the chunk's K/V at t = 0 (`context_noise`).
        let t0 = Timesteps::per_row(&[0.0], CHUNK_FRAMES);
        let _ = dit.forward_causal(x0.clone(), &t0, &[self.position], &cross, &mut self.cache);
        if self.settings.kind == WanPipeline::LongLive {
            let keep = self.settings.local_attn_size;
            let history = match self.history.take() {
                Some(h) => Tensor::cat(vec![h, x0.clone()], 2),
                None => x0.clone(),
            };
            let frames = history.dims()[2];
            self.history = Some(if frames > keep {
                history.narrow(2, frames - keep, keep)
            } else {
                history
            });
        }
        self.core.sync();
        timings.dit = started.elapsed();

        timings.vae = self.core.decode(&mut self.decoder, x0.clone(), piece)?;

        self.position += CHUNK_FRAMES;
        self.generated += CHUNK_FRAMES as u64;
        Ok(ChunkOutput {
            video: None,
            latents: Some(x0),
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
