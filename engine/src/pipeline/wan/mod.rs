//! The Wan2.1 streaming pipelines: Self-Forcing and LongLive (text → video) and
//! StreamDiffusionV2 (video → video), on the engine's DiT, VAE and UMT5.
//!
//! | module | what it holds |
//! |---|---|
//! | [`spec`] | each pipeline's description and parameters (defaults and their sources) |
//! | [`files`] | where the files live under `--models-dir` (one table, reused by downloads) |
//! | [`load`] | loading the models with progress and typed errors; [`load::WanModels`] |
//! | [`t2v`] | the Self-Forcing / LongLive chunk loop (rolling cache, LongLive's re-cache) |
//! | [`sdv2`] | StreamDiffusionV2: streaming encode, noise controller, stream batch |
//! | [`ring`] | StreamDiffusionV2's rolling KV cache with the adaptive sink |
//! | [`prompts`] | weighted prompts, blending and transitions |
//! | [`noise`] | per-chunk seeded noise, replay and recording |
//! | [`stream`] | a stream as the media loop's [`crate::pipeline::Pipeline`] (frames ↔ tensors) |
//! | [`tiny`] | the small real tokenizer and the tiny model sets of `engine make-tiny` |
//!
//! A loaded pipeline ([`LoadedWan`]) holds the models once; every stream gets its own
//! [`WanStream`] with all its state (caches, RNG, positions, prompts).

mod core;
pub mod files;
pub mod load;
pub mod noise;
pub mod prompts;
pub mod ring;
pub mod sdv2;
pub mod spec;
pub mod stream;
pub mod t2v;
pub mod tiny;

use crate::{
    backend::{BackendKind, WithBackend},
    frame::Frame,
    pipeline::{
        LoadedPipeline, Pipeline, PipelineError, PipelineSpec,
        params::{self, ParamValue, Params},
    },
    wan::quant::Quantization,
};
use burn::tensor::{Tensor, backend::Backend};
use load::{LoadContext, LoadStage, WanLoadError, WanModels};
use noise::Noise;
use serde_json::Value;
use std::{sync::Arc, time::Duration};

/// The Wan pipelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WanPipeline {
    SelfForcing,
    LongLive,
    StreamDiffusionV2,
}

impl WanPipeline {
    pub const ALL: [WanPipeline; 3] = [
        WanPipeline::StreamDiffusionV2,
        WanPipeline::SelfForcing,
        WanPipeline::LongLive,
    ];

    pub fn id(self) -> &'static str {
        match self {
            WanPipeline::SelfForcing => "self-forcing",
            WanPipeline::LongLive => "longlive",
            WanPipeline::StreamDiffusionV2 => "streamdiffusionv2",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.id() == id)
    }

    pub fn spec(self) -> PipelineSpec {
        spec::spec(self)
    }
}

/// Time a chunk spent in each model (the GPU is synchronised at each boundary).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChunkTimings {
    /// Prompt encoding, blending and the cross-attention cache.
    pub text: Duration,
    pub dit: Duration,
    /// Encode (video → video) and decode.
    pub vae: Duration,
}

impl ChunkTimings {
    pub fn total(&self) -> Duration {
        self.text + self.dit + self.vae
    }
}

/// What one chunk produced.
#[derive(Clone, Debug)]
pub struct ChunkOutput<B: Backend> {
    /// `[1, 3, T, H, W]` in [-1, 1]; `None` while a stream batch fills, and from
    /// [`WanStream::next_chunk_pieces`] (which hands the video over in pieces).
    pub video: Option<Tensor<B, 5>>,
    /// The denoised latents decoded into `video`, `[1, 16, F, H/8, W/8]`.
    pub latents: Option<Tensor<B, 5>>,
    pub timings: ChunkTimings,
}

/// One stream of a Wan pipeline, on backend `B`.
pub trait WanStream<B: Backend>: Send {
    /// Applies the runtime parameters (all of them, every chunk; unchanged values change
    /// nothing). `reset` starts the stream afresh.
    fn apply(&mut self, params: &Params, reset: bool) -> Result<(), PipelineError>;
    /// Input frames the next chunk needs (0 for text → video).
    fn input_frames(&self) -> usize;
    /// The next chunk, its decoded video handed to `piece` as it comes out of the
    /// autoencoder (in order; `[1, 3, T_i, H, W]` in [-1, 1]; none while a stream batch
    /// fills): a viewer sees a chunk's first frames while the rest decode. `input` is
    /// `[1, 3, T, H, W]` in [-1, 1] (video → video).
    fn next_chunk_pieces(
        &mut self,
        input: Option<Tensor<B, 5>>,
        piece: &mut dyn FnMut(Tensor<B, 5>),
    ) -> Result<ChunkOutput<B>, PipelineError>;
    /// The next chunk with its whole video.
    fn next_chunk(&mut self, input: Option<Tensor<B, 5>>) -> Result<ChunkOutput<B>, PipelineError> {
        let mut pieces = Vec::new();
        let mut out = self.next_chunk_pieces(input, &mut |v| pieces.push(v))?;
        out.video = match pieces.len() {
            0 => None,
            1 => pieces.pop(),
            _ => Some(Tensor::cat(pieces, 2)),
        };
        Ok(out)
    }
    /// The stream's noise (to record or replay it).
    fn noise(&self) -> &Noise;
    fn set_noise(&mut self, noise: Noise);
    /// How often its RoPE positions have moved back (re-based) so far.
    fn rebases(&self) -> u64;
}

/// Load parameters every Wan pipeline has.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    pub height: usize,
    pub width: usize,
    pub seed: u64,
}

impl Geometry {
    /// From validated load parameters (which hold the spec's defaults).
    pub fn from_params(p: &Params) -> Self {
        Self {
            height: int(p, "height").unwrap_or_default() as usize,
            width: int(p, "width").unwrap_or_default() as usize,
            seed: int(p, "seed").unwrap_or_default() as u64,
        }
    }

    /// Latent height and width (÷8).
    pub fn latent(&self) -> (usize, usize) {
        (self.height / 8, self.width / 8)
    }

    /// Tokens per latent frame ((H/16)·(W/16)).
    pub fn frame_tokens(&self) -> usize {
        (self.height / 16) * (self.width / 16)
    }
}

pub(crate) fn int(p: &Params, key: &str) -> Option<i64> {
    match p.get(key) {
        Some(ParamValue::Int(v)) => Some(*v),
        _ => None,
    }
}

pub(crate) fn float(p: &Params, key: &str) -> Option<f64> {
    match p.get(key) {
        Some(ParamValue::Float(v)) => Some(*v),
        Some(ParamValue::Int(v)) => Some(*v as f64),
        _ => None,
    }
}

pub(crate) fn choice<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    match p.get(key) {
        Some(ParamValue::Choice(v)) => Some(v.as_str()),
        _ => None,
    }
}

pub(crate) fn flag(p: &Params, key: &str) -> Option<bool> {
    match p.get(key) {
        Some(ParamValue::Bool(v)) => Some(*v),
        _ => None,
    }
}

/// The warm-up's second prompt (any prompt other than the defaults).
const WARM_UP_SWITCH_PROMPT: &str = "A quiet harbour at dawn, boats rocking on the water.";

/// A loaded Wan pipeline: the models, shared by its streams.
pub struct LoadedWan<B: Backend> {
    pub kind: WanPipeline,
    spec: PipelineSpec,
    load_params: Params,
    pub models: Arc<WanModels<B>>,
}

impl<B: Backend> LoadedWan<B> {
    /// Validates `load_params` (JSON; missing ones take their defaults) and loads `kind`'s
    /// models on `device`, then warms up when `ctx.warm_up`.
    pub fn load(
        kind: WanPipeline,
        ctx: &LoadContext,
        load_params: &Value,
        device: &B::Device,
    ) -> Result<Self, WanLoadError> {
        let spec = kind.spec();
        let mut all = params::defaults(&spec.load_params);
        all.extend(
            params::validate_object(&spec.load_params, load_params, false)
                .map_err(|e| WanLoadError::Params(e.to_string()))?,
        );
        // Check the settings before reading gigabytes.
        match kind {
            WanPipeline::StreamDiffusionV2 => {
                sdv2::Settings::from_params(&all).map_err(WanLoadError::Params)?;
            }
            _ => {
                t2v::Settings::from_params(kind, &all).map_err(WanLoadError::Params)?;
            }
        }
        let vae = files::VaeChoice::from_params(kind, &all).map_err(WanLoadError::Params)?;
        let quantization = choice(&all, "quantization")
            .map(|q| {
                Quantization::parse(q).ok_or_else(|| {
                    WanLoadError::Params(format!("quantization: unknown value {q:?}"))
                })
            })
            .transpose()?
            .unwrap_or_default();
        let models = Arc::new(load::load_models::<B>(
            kind,
            ctx,
            vae,
            quantization,
            device,
        )?);
        let loaded = Self {
            kind,
            spec,
            load_params: all,
            models,
        };
        if ctx.warm_up {
            ctx.report(LoadStage::WarmUp, 0.0);
            load::guarded("the warm-up", || {
                loaded.warm_up(device, &mut |f| ctx.report(LoadStage::WarmUp, f))
            })?
            .map_err(|e| WanLoadError::Panic(format!("the warm-up chunk failed: {e}")))?;
        }
        ctx.report(LoadStage::WarmUp, 1.0);
        Ok(loaded)
    }

    /// Runs the warm-up ([`Self::warm_up_plan`]'s chunks of [`Self::warm_up_stream`], the
    /// default runtime parameters; for video → video black frames uploaded as bytes; every
    /// decoded piece read back as bytes, and the pieces concatenated as `engine generate`
    /// does), reporting the fraction done; returns the stream it ran.
    pub fn warm_up(
        &self,
        device: &B::Device,
        progress: &mut dyn FnMut(f64),
    ) -> Result<Box<dyn WanStream<B>>, PipelineError> {
        let (chunks, switch) = self.warm_up_plan();
        let total = chunks + usize::from(switch);
        let mut s = self.warm_up_stream();
        let spec = &self.spec.runtime_params;
        let defaults = params::defaults(spec);
        s.apply(&defaults, true)?;
        for i in 0..total {
            if switch && i == chunks {
                // Another prompt: LongLive re-caches its full window with it.
                let mut other = defaults.clone();
                other.extend(
                    params::validate_object(
                        spec,
                        &serde_json::json!({ "prompts": [WARM_UP_SWITCH_PROMPT] }),
                        false,
                    )
                    .map_err(|e| PipelineError::Fatal(e.to_string()))?,
                );
                s.apply(&other, false)?;
            }
            // Black frames in and every decoded piece out as the studio moves them (bytes up,
            // bytes back), so those kernels are compiled here too, not at a stream's first chunk.
            let input = (s.input_frames() > 0).then(|| {
                let f = self.frame();
                let black = Frame::filled(f.width as u32, f.height as u32, [0, 0, 0]);
                stream::frames_to_tensor::<B>(
                    &vec![black; s.input_frames()],
                    f.height,
                    f.width,
                    device,
                )
            });
            let (mut read_back, mut pieces) = (Ok(Vec::new()), Vec::new());
            s.next_chunk_pieces(input, &mut |video| {
                if read_back.is_ok() {
                    read_back = stream::tensor_to_frames(video.clone());
                }
                pieces.push(video);
            })?;
            read_back?;
            if pieces.len() > 1 {
                drop(Tensor::cat(pieces, 2));
            }
            progress((i + 1) as f64 / total as f64);
        }
        Ok(s)
    }

    /// The warm-up's chunks before a prompt switch and whether it switches, so that the
    /// shapes a stream meets after its first seconds are compiled and tuned during the load,
    /// not mid-stream (cuDNN's attention plans and burn's kernels are made per shape).
    /// Self-Forcing and LongLive fill their attention window and roll it, and reach a RoPE
    /// re-base (early in the warm-up's stream, [`Self::warm_up_stream`]); LongLive's last
    /// chunk switches prompts, so its re-cache runs as a running stream's does (the sink
    /// kept, the rest of the window recomputed).
    ///
    /// StreamDiffusionV2's shapes change over a stream's first chunks (the stream batch fills
    /// one slot per step, the cache rows fill one frame per chunk, then the ring replaces and
    /// the adaptive sink compares) and at each RoPE refresh: its warm-up runs `num_kv_cache +
    /// steps + 1` chunks whose refresh comes early, so all of them happen during the load (on
    /// an H100 they had cost 2–37 s mid-stream).
    pub fn warm_up_plan(&self) -> (usize, bool) {
        match self.kind {
            WanPipeline::StreamDiffusionV2 => {
                let kv =
                    sdv2::Settings::from_params(&self.load_params).map_or(6, |s| s.num_kv_cache);
                let steps =
                    match params::defaults(&self.spec.runtime_params).get("denoising_step_list") {
                        Some(ParamValue::Steps(s)) => s.len(),
                        _ => 1,
                    };
                (kv + steps + 1, false)
            }
            kind => {
                let window = t2v::Settings::from_params(kind, &self.load_params)
                    .map_or(t2v::CHUNK_FRAMES, |s| s.local_attn_size);
                // The chunk at position ≥ window + 3 re-bases (`warm_up_stream`): LongLive's
                // switch chunk, Self-Forcing's last.
                let fill = window.div_ceil(t2v::CHUNK_FRAMES) + 1;
                match kind {
                    WanPipeline::LongLive => (fill, true),
                    _ => (fill + 1, false),
                }
            }
        }
    }

    /// The stream the warm-up runs: [`Self::stream`] with its RoPE re-base early, so
    /// [`Self::warm_up_plan`]'s chunks reach one: StreamDiffusionV2's refresh at frame
    /// `num_kv_cache + 1` instead of 50; the text → video streams' re-base before a chunk
    /// would pass frame `local_attn_size + 5` instead of the 1024-frame table's end.
    pub fn warm_up_stream(&self) -> Box<dyn WanStream<B>> {
        match self.kind {
            WanPipeline::StreamDiffusionV2 => {
                let mut settings = sdv2::Settings::from_params(&self.load_params)
                    .unwrap_or_else(|e| unreachable!("{e}"));
                settings.rope_refresh = settings.num_kv_cache + 1;
                Box::new(sdv2::Sdv2Stream::new(self.models.clone(), settings))
            }
            kind => {
                let mut settings = t2v::Settings::from_params(kind, &self.load_params)
                    .unwrap_or_else(|e| unreachable!("{e}"));
                settings.rope_limit = settings.local_attn_size + t2v::CHUNK_FRAMES + 2;
                Box::new(t2v::T2vStream::new(self.models.clone(), settings))
            }
        }
    }

    /// Output height, width and seed.
    pub fn frame(&self) -> Geometry {
        Geometry::from_params(&self.load_params)
    }

    /// A fresh stream (no prompt applied yet: call [`WanStream::apply`]).
    pub fn stream(&self) -> Box<dyn WanStream<B>> {
        match self.kind {
            WanPipeline::StreamDiffusionV2 => Box::new(sdv2::Sdv2Stream::new(
                self.models.clone(),
                sdv2::Settings::from_params(&self.load_params)
                    .unwrap_or_else(|e| unreachable!("{e}")),
            )),
            kind => Box::new(t2v::T2vStream::new(
                self.models.clone(),
                t2v::Settings::from_params(kind, &self.load_params)
                    .unwrap_or_else(|e| unreachable!("{e}")),
            )),
        }
    }
}

impl<B: Backend> LoadedPipeline for LoadedWan<B> {
    fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    fn load_params(&self) -> &Params {
        &self.load_params
    }

    fn new_stream(&self) -> Box<dyn Pipeline> {
        Box::new(stream::StreamPipeline::new(
            self.stream(),
            self.frame(),
            self.models.dit.device().clone(),
        ))
    }
}

struct LoadJob<'a> {
    kind: WanPipeline,
    ctx: &'a LoadContext,
    params: &'a Value,
}

impl WithBackend for LoadJob<'_> {
    type Output = Result<Box<dyn LoadedPipeline>, WanLoadError>;
    fn run<B: Backend>(self, _kind: BackendKind, device: B::Device) -> Self::Output {
        let loaded = LoadedWan::<B>::load(self.kind, self.ctx, self.params, &device)?;
        Ok(Box::new(loaded))
    }
}

/// Loads pipeline `kind` on `ctx.backend` with JSON `load_params`.
pub fn load_pipeline(
    kind: WanPipeline,
    ctx: &LoadContext,
    load_params: &Value,
) -> Result<Box<dyn LoadedPipeline>, WanLoadError> {
    crate::backend::dispatch(
        ctx.backend,
        LoadJob {
            kind,
            ctx,
            params: load_params,
        },
    )
    .map_err(|e| WanLoadError::Unsupported(e.to_string()))?
}
