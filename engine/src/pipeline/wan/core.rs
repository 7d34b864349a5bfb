//! What every Wan stream has: the shared models, its prompts with their cross-attention
//! cache, and its noise.

use super::{
    load::WanModels,
    noise::{ChunkRng, Noise},
    prompts::{ChunkConditioning, Conditioning, Interpolation},
};
use crate::{
    pipeline::{
        PipelineError,
        params::{ParamValue, Params},
    },
    wan::{cache::CrossCache, vae::LatentSpace, video_vae::DecodeStream},
};
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

pub(crate) struct StreamCore<B: Backend> {
    pub models: Arc<WanModels<B>>,
    pub cond: Conditioning,
    cross: Option<CrossCache<B>>,
    pub noise: Noise,
}

impl<B: Backend> StreamCore<B> {
    pub fn new(models: Arc<WanModels<B>>) -> Self {
        Self {
            models,
            cond: Conditioning::default(),
            cross: None,
            noise: Noise::seeded(),
        }
    }

    /// Forgets the context in use (a restart keeps the prompts and the noise source).
    pub fn reset(&mut self) {
        self.cross = None;
        self.cond.reset();
    }

    /// Waits for the device (chunk timings are per model).
    pub fn sync(&self) {
        let _ = B::sync(self.models.dit.device());
    }

    /// Decodes a chunk's denoised latents `x0` on the stream's `decoder`, handing the video to
    /// `piece` as it comes ([`crate::wan::video_vae::VideoVae::decode_chunk_pieces`]); the
    /// time it took, the device waited for.
    pub fn decode(
        &self,
        decoder: &mut DecodeStream<B>,
        x0: Tensor<B, 5>,
        piece: &mut dyn FnMut(Tensor<B, 5>),
    ) -> Result<Duration, PipelineError> {
        let started = Instant::now();
        self.models
            .decoder
            .decode_chunk_pieces(decoder, x0, LatentSpace::Normalized, piece)
            .map_err(|e| PipelineError::Fatal(e.to_string()))?;
        self.sync();
        Ok(started.elapsed())
    }

    /// Standard-normal noise of `shape`, from `rng` or the replayed file.
    pub fn draw(
        &mut self,
        rng: &mut ChunkRng,
        shape: [usize; 5],
    ) -> Result<Tensor<B, 5>, PipelineError> {
        let values = self
            .noise
            .draw(rng, &shape)
            .map_err(|e| PipelineError::Fatal(e.to_string()))?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            (self.models.dit.device(), DType::F32),
        ))
    }

    /// `prompts`, `prompt_interpolation_method` and `transition`.
    pub fn apply_prompts(&mut self, params: &Params) -> Result<(), PipelineError> {
        let method = match params.get("prompt_interpolation_method") {
            Some(ParamValue::Choice(m)) => Interpolation::parse(m),
            _ => Interpolation::Linear,
        };
        if let Some(ParamValue::Prompts(p)) = params.get("prompts") {
            self.cond.set_prompts(p, method);
        }
        if let Some(ParamValue::Transition(t)) = params.get("transition") {
            let models = self.models.clone();
            self.cond
                .start_transition(t, &mut |p| models.encode(p))
                .map_err(PipelineError::Fatal)?;
        }
        Ok(())
    }

    /// Whether the next chunk jumps to another context (not a transition step).
    pub fn pending_jump(&mut self) -> Result<bool, PipelineError> {
        let models = self.models.clone();
        self.cond
            .pending_jump(&mut |p| models.encode(p))
            .map_err(|e| PipelineError::Fatal(format!("cannot encode the prompt: {e}")))
    }

    /// The next chunk's context and its cross-attention K/V (recomputed only when the
    /// context changed).
    pub fn conditioning(&mut self) -> Result<(ChunkConditioning, CrossCache<B>), PipelineError> {
        let models = self.models.clone();
        let device = models.dit.device().clone();
        let cond = crate::profile::stage::<B, _>(
            &device,
            || "text: the chunk's context (prompt encodes, blend)".into(),
            || self.cond.next_chunk(&mut |p| models.encode(p)),
        )
        .map_err(|e| PipelineError::Fatal(format!("cannot encode the prompt: {e}")))?;
        let cross = match (&self.cross, cond.changed) {
            (Some(c), false) => c.clone(),
            _ => {
                let c = &cond.context;
                let rows = c.values.len() / c.dim;
                let ctx: Tensor<B, 3> = Tensor::from_data(
                    TensorData::new(c.values.to_vec(), [1, rows, c.dim]),
                    (models.dit.device(), DType::F32),
                );
                let cross = crate::profile::stage::<B, _>(
                    &device,
                    || "text: cross-attention K/V".into(),
                    || models.dit.cross_cache(ctx),
                );
                self.cross = Some(cross.clone());
                cross
            }
        };
        Ok((cond, cross))
    }
}
