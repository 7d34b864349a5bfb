//! Loading a Wan pipeline's models: the text encoder (where `--text-encoder-device` says),
//! the DiT (with LongLive's LoRA merged), the VAE, then a warm-up, each stage reported
//! through a progress callback. Files are read one tensor at a time (see
//! [`crate::wan::weights::read`]); errors are typed and name the file or tensor at fault.

use super::{
    WanPipeline,
    files::{ModelFiles, VaeChoice},
    prompts::Context,
};
use crate::{
    backend::{self, BackendKind, TextEncoderDevice, WithBackend},
    text::tokenizer::{TokenizerError, Umt5Tokenizer},
    wan::{
        Checkpoint, LoadError, Variant, WanConfig, WanModel,
        lora::{self, Lora},
        nn::AttentionKernel,
        quant::Quantization,
        text_encoder::{DEFAULT_CACHE_PROMPTS, PromptContext, TextEncoder},
        umt5::{Umt5Config, Umt5Encoder},
        video_vae::{VaeType, VideoVae},
    },
};
use burn::tensor::{DType, backend::Backend};
use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
};

/// The text encoder's length step on a GPU ([`Umt5Encoder::length_step`]).
pub const TEXT_LENGTH_STEP: usize = 128;

/// A stage of a load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStage {
    TextEncoder,
    Dit,
    Vae,
    WarmUp,
}

impl LoadStage {
    /// The stage's share of a load's time, by the size of what it reads: the 5.7 B-parameter
    /// text encoder, the 1.4 B DiT, the VAE; the warm-up.
    fn span(self) -> (f64, f64) {
        match self {
            LoadStage::TextEncoder => (0.0, 0.6),
            LoadStage::Dit => (0.6, 0.85),
            LoadStage::Vae => (0.85, 0.9),
            LoadStage::WarmUp => (0.9, 1.0),
        }
    }
}

/// Where a load stands.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct LoadProgress {
    pub stage: LoadStage,
    /// 0..1 within the stage.
    pub stage_fraction: f64,
    /// 0..1 over the whole load.
    pub overall: f64,
}

/// Called as a load advances (from the loading thread).
pub type ProgressFn = Arc<dyn Fn(LoadProgress) + Send + Sync>;

/// Where the weights come from.
#[derive(Clone, Debug)]
pub enum Weights {
    /// The files under a models directory ([`super::files`]).
    Files(PathBuf),
    /// Made-up weights at these shapes (benchmarks; nothing is read). The tokenizer is the
    /// small one `make-tiny` writes.
    Random {
        dit: Box<WanConfig>,
        text: Box<Umt5Config>,
        seed: u64,
    },
}

/// Everything a load needs besides the pipeline's own parameters.
#[derive(Clone)]
pub struct LoadContext {
    pub weights: Weights,
    pub backend: BackendKind,
    /// Compute dtype of the DiT [default: bf16 on a GPU, f32 on the CPU].
    pub dtype: Option<DType>,
    /// Compute dtype of the VAE [default: f32].
    pub vae_dtype: Option<DType>,
    pub text_encoder_device: TextEncoderDevice,
    pub progress: Option<ProgressFn>,
    /// Run one chunk before the load completes (compiles and tunes GPU kernels).
    pub warm_up: bool,
}

impl LoadContext {
    /// Files under `models_dir` on `backend`, defaults otherwise.
    pub fn files(models_dir: impl Into<PathBuf>, backend: BackendKind) -> Self {
        Self {
            weights: Weights::Files(models_dir.into()),
            backend,
            dtype: None,
            vae_dtype: None,
            text_encoder_device: TextEncoderDevice::Auto,
            progress: None,
            warm_up: !backend.is_cpu(),
        }
    }

    /// The VAE's dtype: f32 unless told otherwise (on burn-cuda 0.21 a bf16 VAE trips a
    /// fusion bug in fused reductions; see docs/perf.md).
    pub fn vae_dtype(&self) -> DType {
        self.vae_dtype.unwrap_or(DType::F32)
    }

    /// The DiT's dtype on the chosen backend.
    pub fn dtype(&self) -> DType {
        self.dtype.unwrap_or(if self.backend.is_cpu() {
            DType::F32
        } else {
            DType::BF16
        })
    }

    pub(crate) fn report(&self, stage: LoadStage, fraction: f64) {
        if let Some(p) = &self.progress {
            let (a, b) = stage.span();
            let f = fraction.clamp(0.0, 1.0);
            p(LoadProgress {
                stage,
                stage_fraction: f,
                overall: a + (b - a) * f,
            });
        }
    }
}

/// Why a Wan pipeline could not load.
#[derive(Debug, thiserror::Error)]
pub enum WanLoadError {
    #[error(transparent)]
    MissingFiles(#[from] super::files::MissingFiles),
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    /// A checkpoint problem; `file` is the checkpoint being read (the error names the tensor).
    #[error("{}: {source}", file.display())]
    Checkpoint { file: PathBuf, source: LoadError },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error("{0}")]
    Unsupported(String),
    #[error(
        "not enough memory to load {what}: needs about {needed_mib} MiB, {available_mib} MiB available"
    )]
    OutOfMemory {
        what: String,
        needed_mib: u64,
        available_mib: u64,
    },
    #[error("loading failed: {0}")]
    Panic(String),
    #[error("invalid load parameters: {0}")]
    Params(String),
}

fn ck_err(file: &std::path::Path) -> impl Fn(LoadError) -> WanLoadError + '_ {
    move |source| WanLoadError::Checkpoint {
        file: file.to_owned(),
        source,
    }
}

/// Prompt → context, on whichever backend the encoder lives.
pub trait PromptEncoder: Send {
    fn encode(&mut self, prompt: &str) -> Result<Arc<PromptContext>, TokenizerError>;
    /// (hits, misses) of its prompt cache.
    fn cache_stats(&self) -> (u64, u64);
}

impl<T: Backend> PromptEncoder for TextEncoder<T> {
    fn encode(&mut self, prompt: &str) -> Result<Arc<PromptContext>, TokenizerError> {
        TextEncoder::encode(self, prompt)
    }
    fn cache_stats(&self) -> (u64, u64) {
        TextEncoder::cache_stats(self)
    }
}

/// A loaded pipeline's models, shared by all its streams.
pub struct WanModels<B: Backend> {
    pub dit: WanModel<B>,
    /// Decodes the DiT's latents.
    pub decoder: VideoVae<B>,
    /// Encodes a video → video stream's input (the decoder's model when they are the same
    /// type); `None` for text → video.
    pub encoder: Option<VideoVae<B>>,
    text: Mutex<Box<dyn PromptEncoder>>,
    /// Where the text encoder runs.
    pub text_backend: BackendKind,
    pub backend: BackendKind,
}

impl<B: Backend> WanModels<B> {
    /// The input's encoder (a video → video load has one; otherwise the decoder's model).
    pub fn encoder(&self) -> &VideoVae<B> {
        self.encoder.as_ref().unwrap_or(&self.decoder)
    }

    /// A prompt's context (`[512, text_dim]`), from the encoder's cache when seen before.
    pub fn encode(&self, prompt: &str) -> Result<Context, String> {
        let mut enc = self.text.lock().unwrap_or_else(|p| p.into_inner());
        let ctx = enc.encode(prompt).map_err(|e| e.to_string())?;
        let shape = ctx.context.shape.to_vec();
        let values: Vec<f32> = ctx
            .context
            .clone()
            .convert_dtype(DType::F32)
            .to_vec()
            .map_err(|e| format!("{e:?}"))?;
        Ok(Context::new(values, *shape.last().unwrap_or(&1)))
    }

    /// (hits, misses) of the text encoder's prompt cache.
    pub fn prompt_cache_stats(&self) -> (u64, u64) {
        self.text
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cache_stats()
    }
}

/// Bytes of RAM a CPU load needs for `params` parameters in `dtype`.
fn check_memory(what: &str, bytes: u64) -> Result<(), WanLoadError> {
    let Some((_, available)) = backend::system_memory_mib() else {
        return Ok(());
    };
    let needed_mib = bytes / (1 << 20);
    if needed_mib > available {
        return Err(WanLoadError::OutOfMemory {
            what: what.to_owned(),
            needed_mib,
            available_mib: available,
        });
    }
    Ok(())
}

fn dit_parameters(c: &WanConfig) -> u64 {
    crate::wan::weights::expected_tensors(c)
        .iter()
        .map(|(_, s)| s.iter().product::<usize>() as u64)
        .sum()
}

/// Loads the models of pipeline `p` with autoencoders `vae` on backend `B`, the DiT's block
/// linears quantized as `quantization` says (after any LoRA is merged).
pub fn load_models<B: Backend>(
    p: WanPipeline,
    ctx: &LoadContext,
    vae: VaeChoice,
    quantization: Quantization,
    device: &B::Device,
) -> Result<WanModels<B>, WanLoadError> {
    let dtype = ctx.dtype();
    if ctx.backend == BackendKind::Candle && dtype == DType::BF16 {
        return Err(WanLoadError::Unsupported(
            "candle cannot run bf16 on the CPU; use f32 or the flex backend".into(),
        ));
    }
    let files = match &ctx.weights {
        Weights::Files(dir) => Some(ModelFiles::locate(dir, p, vae)?),
        Weights::Random { .. } => None,
    };

    // Text encoder.
    ctx.report(LoadStage::TextEncoder, 0.0);
    let text_backend = ctx.text_encoder_device.backend(ctx.backend);
    let (text, text_dim) = load_text_encoder(ctx, files.as_ref(), text_backend)?;
    ctx.report(LoadStage::TextEncoder, 1.0);

    // DiT.
    ctx.report(LoadStage::Dit, 0.0);
    let (config, mut ck) = match (&ctx.weights, &files) {
        (Weights::Random { dit, seed, .. }, _) => {
            ((**dit).clone(), Checkpoint::random_fill(*seed, dtype))
        }
        (_, Some(f)) => {
            let config = WanConfig::from_file(&f.dit_config).map_err(|e| WanLoadError::Config {
                path: f.dit_config.clone(),
                message: e.to_string(),
            })?;
            // Self-Forcing's README and demo load the EMA weights (`--use_ema`); LongLive's
            // config has `use_ema: false`; StreamDiffusionV2 ships `generator` only.
            let variant = if p == WanPipeline::SelfForcing {
                Variant::Ema
            } else {
                Variant::Generator
            };
            let ck = Checkpoint::read(&f.dit, variant).map_err(ck_err(&f.dit))?;
            (config, ck)
        }
        _ => unreachable!("files are located for Weights::Files"),
    };
    if config.text_dim != text_dim {
        return Err(WanLoadError::Unsupported(format!(
            "the DiT reads {}-wide text contexts but the text encoder gives {text_dim}",
            config.text_dim
        )));
    }
    if ctx.backend.is_cpu() {
        check_memory("the DiT", dit_parameters(&config) * dtype.size() as u64)?;
    }
    let progress = ctx.clone();
    ck.on_progress(move |f| progress.report(LoadStage::Dit, f * 0.95));
    let dit_file = files.as_ref().map(|f| f.dit.clone()).unwrap_or_default();
    let mut dit = guarded("the DiT", || {
        WanModel::<B>::load(config.clone(), ck, device, dtype)
    })?
    .map_err(ck_err(&dit_file))?;
    dit.kernel = if ctx.backend.is_cpu() {
        AttentionKernel::Fused
    } else {
        AttentionKernel::Naive
    };
    if p == WanPipeline::LongLive
        && let Some(path) = files.as_ref().and_then(|f| f.lora.clone())
    {
        let lora = Lora::read(&path).map_err(ck_err(&path))?;
        // LongLive's adapter config sets α = r (256): W += B·A.
        let scale = lora::LONGLIVE_ALPHA / lora::LONGLIVE_RANK as f64;
        let merged = dit.merge_lora(&lora, scale).map_err(ck_err(&path))?;
        let want = lora::BLOCK_LINEARS.len() * config.num_layers;
        if merged != want {
            return Err(WanLoadError::Checkpoint {
                file: path,
                source: LoadError::Format {
                    path: PathBuf::new(),
                    message: format!("the LoRA adapts {merged} of the DiT's {want} linears"),
                },
            });
        }
    }
    if quantization == Quantization::Fp8E4m3fn {
        guarded("the fp8 quantization", || dit.quantize_fp8())?;
    }
    ctx.report(LoadStage::Dit, 1.0);

    // VAE(s).
    ctx.report(LoadStage::Vae, 0.0);
    let dtype = ctx.vae_dtype();
    let load_vae = |t: VaeType| -> Result<VideoVae<B>, WanLoadError> {
        match &files {
            None => VideoVae::load(t, Checkpoint::random_fill(7, dtype), device, dtype)
                .map_err(ck_err(std::path::Path::new("<random>"))),
            Some(f) => {
                let path = f
                    .vae(t)
                    .unwrap_or_else(|| unreachable!("located with the choice"));
                guarded("the VAE", || VideoVae::from_file(t, path, device, dtype))?
                    .map_err(ck_err(path))
            }
        }
    };
    let decoder = load_vae(vae.decoder)?;
    let encoder = match vae.encoder {
        None => None,
        Some(t) if t == vae.decoder => Some(decoder.clone()),
        Some(t) => Some(load_vae(t)?),
    };
    ctx.report(LoadStage::Vae, 1.0);
    Ok(WanModels {
        dit,
        decoder,
        encoder,
        text: Mutex::new(text),
        text_backend,
        backend: ctx.backend,
    })
}

/// Runs `f`, turning a panic (burn's way of failing an allocation) into an error.
pub(crate) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, WanLoadError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = crate::panic_message(&*p).unwrap_or_else(|| "unknown panic".into());
        let lower = msg.to_ascii_lowercase();
        if lower.contains("out of memory") || lower.contains("outofmemory") {
            WanLoadError::OutOfMemory {
                what: what.to_owned(),
                needed_mib: 0,
                available_mib: 0,
            }
        } else {
            WanLoadError::Panic(format!("{what}: {msg}"))
        }
    })
}

struct TextJob<'a> {
    ctx: &'a LoadContext,
    files: Option<&'a ModelFiles>,
}

impl WithBackend for TextJob<'_> {
    type Output = Result<(Box<dyn PromptEncoder>, usize), WanLoadError>;
    fn run<T: Backend>(self, kind: BackendKind, device: T::Device) -> Self::Output {
        let (tokenizer, config, mut ck, file) = match (&self.ctx.weights, self.files) {
            (Weights::Random { text, seed, .. }, _) => {
                let dtype = crate::cli::default_text_dtype(text, kind);
                (
                    super::tiny::tokenizer()?,
                    (**text).clone(),
                    Checkpoint::random_fill(seed.wrapping_add(1), dtype),
                    PathBuf::from("<random>"),
                )
            }
            (_, Some(f)) => {
                let tokenizer = Umt5Tokenizer::from_path(&f.tokenizer)?;
                let ck = Umt5Encoder::<T>::open(&f.text_encoder, DType::BF16)
                    .map_err(ck_err(&f.text_encoder))?;
                let config = Umt5Config::infer(&ck).ok_or_else(|| WanLoadError::Checkpoint {
                    file: f.text_encoder.clone(),
                    source: LoadError::Missing {
                        key: "token_embedding.weight".into(),
                        expected: vec![],
                    },
                })?;
                (tokenizer, config, ck, f.text_encoder.clone())
            }
            _ => unreachable!("files are located for Weights::Files"),
        };
        let dtype = crate::cli::default_text_dtype(&config, kind);
        if kind.is_cpu() {
            check_memory(
                "the text encoder",
                config.parameters() as u64 * dtype.size() as u64,
            )?;
        }
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(WanLoadError::Unsupported(format!(
                "the tokenizer has {} tokens but the text encoder only {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        let ctx = self.ctx.clone();
        ck.on_progress(move |f| ctx.report(LoadStage::TextEncoder, f));
        let d = config.d_model;
        let mut model = guarded("the text encoder", || {
            Umt5Encoder::<T>::load(config, ck, &device, dtype)
        })?
        .map_err(ck_err(&file))?;
        // GPU backends compile and tune per shape: every prompt up to 128 tokens is one shape
        // (the warm-up's), so a new prompt never stalls a stream on a first-use compile.
        if !kind.is_cpu() {
            model.length_step = TEXT_LENGTH_STEP;
        }
        let enc: Box<dyn PromptEncoder> =
            Box::new(TextEncoder::new(tokenizer, model, DEFAULT_CACHE_PROMPTS));
        Ok((enc, d))
    }
}

fn load_text_encoder(
    ctx: &LoadContext,
    files: Option<&ModelFiles>,
    kind: BackendKind,
) -> Result<(Box<dyn PromptEncoder>, usize), WanLoadError> {
    backend::dispatch(kind, TextJob { ctx, files })
        .map_err(|e| WanLoadError::Unsupported(e.to_string()))?
}
