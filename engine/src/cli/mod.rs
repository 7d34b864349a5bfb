//! `hanzo-live engine …`: backend info; one DiT forward, VAE encode/decode and text encode
//! from files (how others check parity); and benchmarks. The server binary embeds [`EngineArgs`] as its `engine`
//! subcommand; [`run`] does the work and returns the process exit code.

mod generate;
mod models;

pub use crate::backend::TextEncoderDevice;
pub use generate::{BenchLoadArgs, GenerateArgs, MakeTinyArgs, VideoCodec, peak_rss_mib};
pub use models::default_text_dtype;

use crate::{
    backend::{self, BackendKind, WithBackend},
    tensor_file::{self, F32Tensor},
    wan::{
        Checkpoint, Timesteps, Variant, WanConfig, WanModel, nn::AttentionKernel,
        quant::Quantization, video_vae::VaeType,
    },
};
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

/// `hanzo-live engine`: the Wan engine's tools.
#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    /// Backend: cuda, metal, flex or candle [default: CUDA > Metal > CPU, the first usable]
    #[arg(long, global = true, env = "HANZO_LIVE_BACKEND")]
    pub backend: Option<String>,
    /// Use a CPU backend even where a GPU works
    #[arg(long, global = true)]
    pub cpu: bool,
    /// Where the text encoder runs: auto (the selected backend) or cpu (keeps its 11.4 GB
    /// off the GPU; the DiT stays on the GPU)
    #[arg(
        long,
        global = true,
        default_value = "auto",
        env = "HANZO_LIVE_TEXT_ENCODER_DEVICE"
    )]
    pub text_encoder_device: String,
    /// Where GPU kernels and autotune results are kept between runs [default:
    /// ~/.hanzo-live/kernels, the server's with its default data directory]
    #[arg(long, global = true, env = "HANZO_LIVE_KERNEL_CACHE")]
    pub kernel_cache: Option<PathBuf>,
    #[command(subcommand)]
    pub command: EngineCommand,
}

/// The engine's commands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum EngineCommand {
    /// List every compiled backend, whether it runs here (and why not), and the one selected
    Info,
    /// One DiT forward: reads `x` [B,16,F,H,W], `t` [B] or [B,F] and `context` [B,L,text_dim]
    /// (L ≤ text_len) from a safetensors file, writes `out` [B,16,F,H,W] (f32)
    Forward {
        /// The model's config.json (original or diffusers layout)
        #[arg(long)]
        config: PathBuf,
        /// Weights: .safetensors, a sharded index .json, a directory, or a .pt/.pth
        #[arg(long)]
        weights: PathBuf,
        /// Input tensors (safetensors)
        #[arg(long)]
        inputs: PathBuf,
        /// Where to write `out` (safetensors)
        #[arg(long)]
        out: PathBuf,
        /// Compute dtype: f32, bf16 or f16
        #[arg(long, default_value = "f32")]
        dtype: String,
        /// Use the `generator_ema` weights of a training checkpoint
        #[arg(long)]
        ema: bool,
        /// Attention kernel: fused or naive [default: fused on CPU, naive on cubecl GPUs]
        #[arg(long)]
        attention: Option<String>,
        /// The block linears' quantization: none or fp8_e4m3fn
        #[arg(long, default_value = "none", value_parser = parse_quantization)]
        quantization: Quantization,
    },
    /// VAE encode: reads `video` [B,3,T,H,W] in [-1,1] (T = 1+4k), writes `mu` (raw
    /// encoder mean) and `latents` (normalised: (mu − mean)/std)
    VaeEncode {
        /// The autoencoder: wan, lightvae, tae or lighttae
        #[arg(long, default_value = "wan", value_parser = parse_vae)]
        vae: VaeType,
        /// Weights: Wan2.1_VAE.pth or a diffusers AutoencoderKLWan file/directory (wan),
        /// lightvaew2_1.pth, taew2_1.pth / .safetensors, lighttaew2_1.pth / .safetensors
        #[arg(long)]
        weights: PathBuf,
        /// A diffusers AutoencoderKLWan config.json (wan, lightvae) [default: the width the
        /// checkpoint shows]
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        inputs: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Feed the frames chunk by chunk (1, then 4 at a time) through one stream
        #[arg(long)]
        stream: bool,
        /// Compute dtype: f32, bf16 or f16
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// VAE decode: reads `latents` (normalised), or `mu` with --raw, [B,16,T,h,w]; writes
    /// `video` [B,3,1+4(T−1),8h,8w] in [-1,1]
    VaeDecode {
        /// The autoencoder: wan, lightvae, tae or lighttae
        #[arg(long, default_value = "wan", value_parser = parse_vae)]
        vae: VaeType,
        #[arg(long)]
        weights: PathBuf,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        inputs: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Decode one latent frame per call through one stream
        #[arg(long)]
        stream: bool,
        /// Read the raw encoder mean `mu` instead of normalised `latents`
        #[arg(long)]
        raw: bool,
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// UMT5 text encode: a --prompt (with --tokenizer) or `input_ids`/`attention_mask`
    /// [B,L] from --inputs; writes `hidden` [B,L,d], `context` [B,512,d] (rows past each
    /// prompt zeroed: what the DiT sees) and `mask`
    EncodeText {
        /// Weights: models_t5_umt5-xxl-enc-bf16.pth, a transformers UMT5EncoderModel
        /// file/directory, or an fp8 e4m3fn safetensors file
        #[arg(long)]
        weights: PathBuf,
        /// A transformers UMT5Config config.json [default: UMT5-XXL]
        #[arg(long)]
        config: Option<PathBuf>,
        /// A prompt (repeat for a batch); cleaned as Wan does
        #[arg(long)]
        prompt: Vec<String>,
        /// tokenizer.json, or the directory holding it (Wan's google/umt5-xxl/)
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        #[arg(long)]
        inputs: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        /// Compute dtype: f32, bf16 or f16 [default: bf16 above 1B parameters, else f32]
        #[arg(long)]
        dtype: Option<String>,
    },
    /// Time an autoencoder with made-up weights: decode of the first and of later latent
    /// frames (one, or three in one call), encode of 4 frames
    BenchVae {
        /// The autoencoder: wan, lightvae, tae or lighttae
        #[arg(long, default_value = "wan", value_parser = parse_vae)]
        vae: VaeType,
        #[arg(long, default_value_t = 480)]
        height: usize,
        #[arg(long, default_value_t = 832)]
        width: usize,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        #[arg(long, default_value = "f32")]
        dtype: String,
        #[arg(long)]
        json: Option<PathBuf>,
        /// Then decode one latent frame on this backend and on the CPU (flex) with the same
        /// weights and input, and print the relative difference
        #[arg(long)]
        check_cpu: bool,
        /// Then decode one latent frame in f32 on this backend with the same weights and
        /// input, and print the relative difference of --dtype's result from it
        #[arg(long)]
        check_f32: bool,
        /// Rows to time, comma-separated
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "first,next,encode"
        )]
        rows: Vec<models::VaeRow>,
    },
    /// Time UMT5-XXL with made-up weights on one prompt (trimmed to its tokens, and with
    /// --padded also padded to 512 positions as the reference runs it)
    BenchText {
        /// Prompt length in tokens (</s> included)
        #[arg(long, default_value_t = 32)]
        tokens: usize,
        /// Encoder layers [default: 24]
        #[arg(long)]
        layers: Option<usize>,
        #[arg(long, default_value_t = 3)]
        iters: usize,
        /// f32, bf16 or f16 [default: bf16]
        #[arg(long)]
        dtype: Option<String>,
        /// Also time the 512-position forward
        #[arg(long)]
        padded: bool,
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// Run a Wan pipeline (self-forcing, longlive, streamdiffusionv2) chunk by chunk from
    /// the files under --models-dir; writes `video` [1,3,T,H,W] in [-1,1] and `latents`
    Generate(Box<GenerateArgs>),
    /// Write a tiny random model set in the real file layout (for tests and CPU trials)
    MakeTiny(MakeTinyArgs),
    /// Write a made-up 1.3B DiT checkpoint (--make), or load one and report peak memory
    BenchLoad(BenchLoadArgs),
    /// Time RMSNorm, RoPE, attention, one block and a full forward with random weights
    Bench {
        /// Model: 1.3b, 14b or tiny
        #[arg(long, default_value = "1.3b")]
        model: String,
        /// Compute dtype: f32, bf16 or f16
        #[arg(long, default_value = "f32")]
        dtype: String,
        /// Latent frames per call (3 = one streaming chunk)
        #[arg(long, default_value_t = 3)]
        frames: usize,
        /// Pixel height (latent = /8)
        #[arg(long, default_value_t = 480)]
        height: usize,
        /// Pixel width (latent = /8)
        #[arg(long, default_value_t = 832)]
        width: usize,
        /// Timed repetitions (median reported)
        #[arg(long, default_value_t = 5)]
        iters: usize,
        /// Blocks in the "full forward" row (default: the model's; 0 skips the row)
        #[arg(long)]
        layers: Option<usize>,
        /// Attention kernel for the model rows: fused or naive
        #[arg(long)]
        attention: Option<String>,
        /// fp8_e4m3fn: also time the model rows with fp8 block linears (and, on a GPU with
        /// fp8 tensor cores, the fp8 GEMM rows)
        #[arg(long, default_value = "none", value_parser = parse_quantization)]
        quantization: Quantization,
        /// Also write the rows as JSON here
        #[arg(long)]
        json: Option<PathBuf>,
        /// Row groups to time, comma-separated: the peak GEMM, the single ops, the model rows
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "peak,ops,model"
        )]
        rows: Vec<BenchRows>,
        /// On CUDA: the full forward's last timed run goes between cuProfilerStart and
        /// cuProfilerStop, so `ncu --profile-from-start off` profiles that one forward
        #[arg(long)]
        ncu_range: bool,
    },
}

/// A group of `bench` rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchRows {
    /// The large GEMM whose rate the others are compared with.
    Peak,
    /// The single ops: norms, RoPE, attention, linears.
    Ops,
    /// One block (a 1-layer model) and the full forward.
    Model,
}

fn parse_vae(s: &str) -> Result<VaeType, String> {
    VaeType::parse(s).ok_or_else(|| {
        let all: Vec<&str> = VaeType::ALL.iter().map(|v| v.id()).collect();
        format!("unknown autoencoder {s:?} (one of {})", all.join(", "))
    })
}

fn parse_dtype(s: &str) -> Result<DType, String> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" => Ok(DType::F32),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        "f16" | "float16" => Ok(DType::F16),
        other => Err(format!("unknown dtype {other:?} (f32, bf16, f16)")),
    }
}

fn parse_kernel(s: Option<&str>, kind: BackendKind) -> Result<AttentionKernel, String> {
    match s {
        Some("fused") => Ok(AttentionKernel::Fused),
        Some("naive") => Ok(AttentionKernel::Naive),
        Some(other) => Err(format!("unknown attention kernel {other:?} (fused, naive)")),
        // burn-cuda's autotuned attention is ~15× slower than matmuls for Wan's shapes.
        None if kind.is_cpu() => Ok(AttentionKernel::Fused),
        None => Ok(AttentionKernel::Naive),
    }
}

/// Refuses what a backend cannot compute (candle has no CPU bf16 matmul).
fn check_dtype(kind: BackendKind, dtype: DType) -> Result<(), String> {
    if kind == BackendKind::Candle && dtype == DType::BF16 {
        return Err("candle cannot run bf16 on the CPU; use --dtype f32 or --backend flex".into());
    }
    Ok(())
}

/// Runs a command; returns the exit code (0 ok, 1 failure, 2 bad usage).
pub fn run(args: EngineArgs) -> i32 {
    run_with(args, None)
}

/// [`run`] with a codec for `.mp4` input and output (the server binary passes its own).
pub fn run_with(args: EngineArgs, codec: Option<&dyn VideoCodec>) -> i32 {
    let requested = match args.backend.as_deref().map(BackendKind::parse).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hanzo-live engine: {e}");
            return 2;
        }
    };
    let text_device = match TextEncoderDevice::parse(&args.text_encoder_device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("hanzo-live engine: {e}");
            return 2;
        }
    };
    let kernels = args
        .kernel_cache
        .clone()
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".hanzo-live/kernels")));
    if let Some(dir) = kernels {
        backend::keep_kernels_in(&dir);
    }
    if let EngineCommand::Info = args.command {
        return info(requested, args.cpu, text_device);
    }
    if let EngineCommand::MakeTiny(a) = &args.command {
        let cpu = backend::select(requested.filter(|k| k.is_cpu()), true);
        let result = cpu
            .map_err(|e| e.to_string())
            .and_then(|cpu| generate::make_tiny(a, cpu));
        return match result {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("hanzo-live engine: {e}");
                1
            }
        };
    }
    // The text encoder alone honours --text-encoder-device cpu.
    let cpu = args.cpu
        || (matches!(
            args.command,
            EngineCommand::EncodeText { .. } | EngineCommand::BenchText { .. }
        ) && text_device == TextEncoderDevice::Cpu);
    let kind = match backend::select(requested.filter(|k| !cpu || k.is_cpu()), cpu) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hanzo-live engine: {e}");
            return 1;
        }
    };
    let result = match args.command {
        EngineCommand::Info | EngineCommand::MakeTiny(_) => unreachable!("handled above"),
        EngineCommand::Generate(args) => backend::dispatch(
            kind,
            generate::GenerateJob {
                args: *args,
                text_device,
                codec,
            },
        )
        .map_err(|e| e.to_string())
        .and_then(|r| r),
        EngineCommand::BenchLoad(args) => backend::dispatch(kind, generate::BenchLoadJob(args))
            .map_err(|e| e.to_string())
            .and_then(|r| r),
        EngineCommand::Forward {
            config,
            weights,
            inputs,
            out,
            dtype,
            ema,
            attention,
            quantization,
        } => parse_dtype(&dtype).and_then(|dtype| {
            let kernel = parse_kernel(attention.as_deref(), kind)?;
            let job = ForwardJob {
                config,
                weights,
                inputs,
                out,
                dtype,
                variant: if ema {
                    Variant::Ema
                } else {
                    Variant::Generator
                },
                kernel,
                quantization,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        }),
        EngineCommand::VaeEncode {
            vae,
            weights,
            config,
            inputs,
            out,
            stream,
            dtype,
        } => parse_dtype(&dtype).and_then(|dtype| {
            let job = models::VaeEncodeJob {
                vae,
                weights,
                config,
                inputs,
                out,
                stream,
                dtype,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        }),
        EngineCommand::VaeDecode {
            vae,
            weights,
            config,
            inputs,
            out,
            stream,
            raw,
            dtype,
        } => parse_dtype(&dtype).and_then(|dtype| {
            let job = models::VaeDecodeJob {
                vae,
                weights,
                config,
                inputs,
                out,
                stream,
                raw,
                dtype,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        }),
        EngineCommand::EncodeText {
            weights,
            config,
            prompt,
            tokenizer,
            inputs,
            out,
            dtype,
        } => (|| {
            let job = models::EncodeTextJob {
                weights,
                config,
                prompts: prompt,
                tokenizer,
                inputs,
                out,
                dtype: dtype.as_deref().map(parse_dtype).transpose()?,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        })(),
        EngineCommand::BenchVae {
            vae,
            height,
            width,
            iters,
            dtype,
            json,
            check_cpu,
            check_f32,
            rows,
        } => parse_dtype(&dtype).and_then(|dtype| {
            let job = models::BenchVaeJob {
                vae,
                height,
                width,
                iters: iters.max(1),
                dtype,
                json,
                check_cpu,
                check_f32,
                rows,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        }),
        EngineCommand::BenchText {
            tokens,
            layers,
            iters,
            dtype,
            padded,
            json,
        } => (|| {
            let job = models::BenchTextJob {
                tokens,
                layers,
                iters: iters.max(1),
                dtype: dtype.as_deref().map(parse_dtype).transpose()?,
                padded,
                json,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        })(),
        EngineCommand::Bench {
            model,
            dtype,
            frames,
            height,
            width,
            iters,
            layers,
            attention,
            quantization,
            json,
            rows,
            ncu_range,
        } => (|| {
            let config = match model.as_str() {
                "1.3b" => WanConfig::t2v_1_3b(),
                "14b" => WanConfig::t2v_14b(),
                "tiny" => WanConfig::tiny(),
                other => return Err(format!("unknown model {other:?} (1.3b, 14b, tiny)")),
            };
            let job = BenchJob {
                config,
                dtype: parse_dtype(&dtype)?,
                frames,
                latent_h: height / 8,
                latent_w: width / 8,
                iters: iters.max(1),
                layers,
                kernel: parse_kernel(attention.as_deref(), kind)?,
                quantization,
                json,
                rows,
                ncu_range,
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        })(),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("hanzo-live engine: {e}");
            1
        }
    }
}

fn parse_quantization(s: &str) -> Result<Quantization, String> {
    Quantization::parse(s).ok_or_else(|| format!("unknown quantization {s:?} (none, fp8_e4m3fn)"))
}

fn info(requested: Option<BackendKind>, cpu: bool, text_device: TextEncoderDevice) -> i32 {
    println!("{:<8} {:<9} status", "backend", "compiled");
    for kind in BackendKind::ALL {
        let s = backend::probe(kind);
        let status = match &s.usable {
            Ok(device) => format!("usable ({device})"),
            Err(why) => format!("not usable: {why}"),
        };
        println!(
            "{:<8} {:<9} {status}",
            kind.name(),
            if s.compiled { "yes" } else { "no" }
        );
    }
    println!("default CPU backend: {}", backend::DEFAULT_CPU);
    match backend::select(requested, cpu) {
        Ok(kind) => {
            let device = backend::probe(kind).usable.unwrap_or_default();
            println!("selected: {kind} (device {device})");
            if kind.is_cpu() {
                if let Some((total, avail)) = backend::system_memory_mib() {
                    println!("memory: {avail} MiB available of {total} MiB (system RAM)");
                }
                let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
                println!("threads: {threads}");
            } else {
                println!("memory: see the GPU driver (nvidia-smi); the engine allocates on demand");
            }
            let xxl = crate::wan::umt5::Umt5Config::umt5_xxl();
            let text = text_device.backend(kind);
            let dtype = models::default_text_dtype(&xxl, text);
            let gb = xxl.parameters() as f64 * dtype.size() as f64 / 1e9;
            println!(
                "text encoder: UMT5-XXL on {text} in {dtype:?} (≈{gb:.1} GB of weights; \
                 --text-encoder-device {})",
                match text_device {
                    TextEncoderDevice::Auto =>
                        "auto: the selected backend; cpu keeps it off the GPU",
                    TextEncoderDevice::Cpu => "cpu",
                }
            );
            if text.is_cpu()
                && let Some((_, avail)) = backend::system_memory_mib()
                && (avail as f64) < gb * 1000.0 / 1.048_576
            {
                println!(
                    "warning: {avail} MiB of RAM available, less than the text encoder's weights"
                );
            }
            0
        }
        Err(e) => {
            println!("selected: none ({e})");
            1
        }
    }
}

struct ForwardJob {
    config: PathBuf,
    weights: PathBuf,
    inputs: PathBuf,
    out: PathBuf,
    dtype: DType,
    variant: Variant,
    kernel: AttentionKernel,
    quantization: Quantization,
}

fn device_tensor<B: Backend, const D: usize>(t: &F32Tensor, device: &B::Device) -> Tensor<B, D> {
    Tensor::from_data(
        TensorData::new(t.data.clone(), t.shape.clone()),
        (device, DType::F32),
    )
}

impl WithBackend for ForwardJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        check_dtype(kind, self.dtype)?;
        let cfg = WanConfig::from_file(&self.config).map_err(|e| e.to_string())?;
        let inputs = tensor_file::read(&self.inputs)?;
        let get = |name: &str| {
            inputs
                .get(name)
                .ok_or_else(|| format!("{}: no tensor `{name}`", self.inputs.display()))
        };
        let (x, t, ctx) = (get("x")?, get("t")?, get("context")?);
        let [b, c, f, h, w] = x.shape[..] else {
            return Err(format!(
                "x must be [B, {}, F, H, W], got {:?}",
                cfg.in_dim, x.shape
            ));
        };
        let [_, ph, pw] = cfg.patch_size;
        if c != cfg.in_dim || h % ph != 0 || w % pw != 0 || f == 0 || b == 0 {
            return Err(format!(
                "x must be [B, {}, F, H, W] with H, W multiples of the patch ({ph}×{pw}), got {:?}",
                cfg.in_dim, x.shape
            ));
        }
        if f > crate::wan::config::ROPE_MAX_POSITIONS {
            return Err(format!(
                "at most {} latent frames",
                crate::wan::config::ROPE_MAX_POSITIONS
            ));
        }
        let timesteps = match t.shape[..] {
            [tb] if tb == b => {
                Timesteps::per_row(&t.data.iter().map(|v| f64::from(*v)).collect::<Vec<_>>(), f)
            }
            [tb, tf] if tb == b && tf == f => Timesteps {
                per_frame: t
                    .data
                    .chunks(f)
                    .map(|r| r.iter().map(|v| f64::from(*v)).collect())
                    .collect(),
            },
            _ => return Err(format!("t must be [{b}] or [{b}, {f}], got {:?}", t.shape)),
        };
        match ctx.shape[..] {
            [cb, l, td] if cb == b && td == cfg.text_dim && l >= 1 && l <= cfg.text_len => {}
            _ => {
                return Err(format!(
                    "context must be [{b}, L ≤ {}, {}], got {:?}",
                    cfg.text_len, cfg.text_dim, ctx.shape
                ));
            }
        }
        let ck = Checkpoint::read(&self.weights, self.variant).map_err(|e| e.to_string())?;
        let mut model =
            WanModel::<B>::load(cfg, ck, &device, self.dtype).map_err(|e| e.to_string())?;
        model.kernel = self.kernel;
        if self.quantization == Quantization::Fp8E4m3fn {
            model.quantize_fp8();
        }
        let start = Instant::now();
        let out = model.forward(
            device_tensor(x, &device),
            &timesteps,
            device_tensor(ctx, &device),
            None,
        );
        let shape = out.dims().to_vec();
        let data: Vec<f32> = out.into_data().to_vec().map_err(|e| format!("{e:?}"))?;
        eprintln!(
            "forward on {kind}: {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        let mut map = BTreeMap::new();
        map.insert("out".to_owned(), F32Tensor::new(shape, data));
        tensor_file::write(&self.out, &map)
    }
}

struct BenchJob {
    config: WanConfig,
    dtype: DType,
    frames: usize,
    latent_h: usize,
    latent_w: usize,
    iters: usize,
    layers: Option<usize>,
    kernel: AttentionKernel,
    quantization: Quantization,
    json: Option<PathBuf>,
    rows: Vec<BenchRows>,
    ncu_range: bool,
}

/// Bench rows, each also printed to stderr as soon as it is measured (a run cut short by a
/// time limit still leaves its figures). A row whose floating-point work is known also gives
/// its rate (TFLOP/s) and, once a peak row was measured, its share of that peak.
#[derive(Default)]
struct Rows {
    rows: Vec<Row>,
    /// The card's (or CPU's) rate as measured here by a large GEMM, TFLOP/s.
    peak: Option<f64>,
    /// More fields for the JSON (e.g. the token count).
    meta: serde_json::Map<String, serde_json::Value>,
}

struct Row {
    op: String,
    time: Duration,
    /// TFLOP/s, where the row's work is known.
    tflops: Option<f64>,
}

impl Rows {
    fn push(&mut self, (op, time): (String, Duration)) {
        self.add(op, time, None);
    }

    /// A row that did `flops` floating-point operations.
    fn push_flops(&mut self, (op, time): (String, Duration), flops: f64) {
        self.add(op, time, Some(flops));
    }

    /// The peak row: a large GEMM whose rate the later rows are compared with.
    fn push_peak(&mut self, (op, time): (String, Duration), flops: f64) {
        self.add(op, time, Some(flops));
        self.peak = self.rows.last().and_then(|r| r.tflops);
    }

    fn add(&mut self, op: String, time: Duration, flops: Option<f64>) {
        let tflops = flops.map(|f| f / time.as_secs_f64().max(1e-12) / 1e12);
        let rate = tflops.map_or(String::new(), |t| format!(" ({} TFLOP/s)", rate(t)));
        eprintln!("  {op}: {:.2} ms{rate}", time.as_secs_f64() * 1e3);
        self.rows.push(Row { op, time, tflops });
    }

    /// `tflops` as a share of the peak, where both are known.
    fn of_peak(&self, tflops: Option<f64>) -> Option<f64> {
        Some(tflops? / self.peak.filter(|p| *p > 0.0)? * 100.0)
    }

    /// Prints the rows as a markdown table (with TFLOP/s and % of peak columns where any row
    /// has them) and writes them as JSON to `json` if given.
    fn finish(
        self,
        kind: BackendKind,
        dtype: DType,
        json: Option<&std::path::Path>,
    ) -> Result<(), String> {
        let rated = self.rows.iter().any(|r| r.tflops.is_some());
        if rated {
            println!("| op | {kind} {dtype:?} ms | TFLOP/s | of peak |");
            println!("|---|---|---|---|");
        } else {
            println!("| op | {kind} {dtype:?} ms |");
            println!("|---|---|");
        }
        for r in &self.rows {
            let ms = r.time.as_secs_f64() * 1e3;
            if rated {
                let rate = r.tflops.map_or(String::new(), rate);
                let share = self
                    .of_peak(r.tflops)
                    .map_or(String::new(), |p| format!("{p:.0} %"));
                println!("| {} | {ms:.2} | {rate} | {share} |", r.op);
            } else {
                println!("| {} | {ms:.2} |", r.op);
            }
        }
        if let Some(path) = json {
            let mut out = self.meta.clone();
            out.insert("backend".into(), kind.name().into());
            out.insert("dtype".into(), format!("{dtype:?}").into());
            out.insert("peak_tflops".into(), self.peak.into());
            let rows: Vec<serde_json::Value> = self
                .rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "op": r.op,
                        "ms": r.time.as_secs_f64() * 1e3,
                        "tflops": r.tflops,
                        "of_peak": self.of_peak(r.tflops),
                    })
                })
                .collect();
            out.insert("rows".into(), rows.into());
            std::fs::write(path, serde_json::Value::Object(out).to_string())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// A rate in TFLOP/s: one decimal from 10 up (a GPU's), else three significant digits (a
/// CPU's hundredths).
fn rate(tflops: f64) -> String {
    match tflops {
        t if t >= 10.0 => format!("{t:.1}"),
        t if t >= 1.0 => format!("{t:.2}"),
        t => format!("{t:.3}"),
    }
}

/// Floating-point operations of attention over `lq` queries and `lk` keys of `dim` channels
/// (all heads): `Q·Kᵀ` and `P·V`, 2 per multiply-add.
fn attention_flops(lq: usize, lk: usize, dim: usize) -> f64 {
    4.0 * lq as f64 * lk as f64 * dim as f64
}

/// Floating-point operations of one DiT forward without a cache over `l` video tokens and the
/// config's text length: every block's linears and both attentions, the patch and text
/// embeddings and the head (2 per multiply-add; element-wise work left out).
fn dit_flops(c: &WanConfig, l: usize) -> f64 {
    let (d, ffn, text) = (c.dim as f64, c.ffn_dim as f64, c.text_len);
    let (lf, tf) = (l as f64, text as f64);
    let block = 4.0 * 2.0 * lf * d * d // self-attention q, k, v, o
        + attention_flops(l, l, c.dim)
        + 2.0 * 2.0 * lf * d * d // cross-attention q, o
        + 2.0 * 2.0 * tf * d * d // cross-attention k, v of the text
        + attention_flops(l, text, c.dim)
        + 2.0 * 2.0 * lf * d * ffn; // feed-forward
    let patch = c.patch_size.iter().product::<usize>() as f64;
    let ends = 2.0 * lf * c.in_dim as f64 * patch * d // patch embedding
        + 2.0 * tf * (c.text_dim as f64 * d + d * d) // text embedding
        + 2.0 * lf * d * c.out_dim as f64 * patch; // head
    c.num_layers as f64 * block + ends
}

/// Opens (`on`) or closes the CUDA profiler's range when `active` and `B` is burn's CUDA
/// backend (see `bench --ncu-range`); nothing otherwise.
#[cfg_attr(not(feature = "cuda"), allow(clippy::extra_unused_type_parameters))]
fn profiler_range<B: Backend>(active: bool, on: bool) {
    #[cfg(feature = "cuda")]
    if active
        && crate::cuda::is_cuda::<B>()
        && let Err(e) = crate::cuda::profiler_range(on)
    {
        eprintln!("note: no profiler range: {e}");
    }
    #[cfg(not(feature = "cuda"))]
    let _ = (active, on);
}

/// Median wall time of `iters` runs after one warm-up; `f` must finish its work (sync). The
/// stage profile ([`crate::profile`]) keeps the timed runs only.
fn time(iters: usize, mut f: impl FnMut()) -> Duration {
    f();
    crate::profile::clear();
    let mut runs: Vec<Duration> = (0..iters)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    runs.sort();
    runs[runs.len() / 2]
}

impl WithBackend for BenchJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        use burn::tensor::Distribution;
        check_dtype(kind, self.dtype)?;
        let c = &self.config;
        let (d, heads, hd) = (c.dim, c.num_heads, c.head_dim());
        let (h, w) = (self.latent_h / 2 * 2, self.latent_w / 2 * 2);
        let l = self.frames * c.frame_tokens(h, w);
        let dt = self.dtype;
        let sync = |d: &B::Device| {
            let _ = B::sync(d);
        };
        let rand = |shape: Vec<usize>| -> TensorData {
            let n = shape.iter().product::<usize>();
            let t: Tensor<B, 1> = Tensor::random([n], Distribution::Normal(0.0, 1.0), &device);
            let data = t.into_data().convert_dtype(dt);
            TensorData::from_bytes_vec(data.into_bytes().to_vec(), shape, dt)
        };
        let mut rows = Rows::default();
        eprintln!(
            "bench on {kind} ({}), {} latent frames of {h}×{w} = {l} tokens, dim {d}, {:?}",
            format_args!("{device:?}"),
            self.frames,
            dt
        );

        // The rate to compare with: a large square GEMM in the bench's dtype (cuBLASLt on
        // CUDA in bf16, else burn's matmul); 8192 on a GPU, 1024 on the CPU.
        let n = if matches!(kind, BackendKind::Cuda | BackendKind::Metal) {
            8192
        } else {
            1024
        };
        if self.rows.contains(&BenchRows::Peak) {
            let a: Tensor<B, 2> = Tensor::from_data(rand(vec![n, n]), (&device, dt));
            let bt: Tensor<B, 2> = Tensor::from_data(rand(vec![n, n]), (&device, dt)).transpose();
            let gemm = || {
                #[cfg(feature = "cuda")]
                if dt == DType::BF16
                    && crate::cuda::gemm::available()
                    && let (Some(ac), Some(bc)) = (
                        crate::cuda::as_cuda(a.clone()),
                        crate::cuda::as_cuda(bt.clone()),
                    )
                {
                    let _ = crate::cuda::gemm::linear_bf16(ac, bc, None);
                    return;
                }
                let _ = a.clone().matmul(bt.clone());
            };
            rows.push_peak(
                (
                    format!("peak: GEMM {n}×{n}×{n} (the rate the rows are compared with)"),
                    time(self.iters, || {
                        gemm();
                        sync(&device)
                    }),
                ),
                2.0 * (n * n * n) as f64,
            );
        }

        if self.rows.contains(&BenchRows::Ops) {
            let x: Tensor<B, 3> = Tensor::from_data(rand(vec![1, l, d]), (&device, dt));
            let weight: Tensor<B, 1> = Tensor::ones([d], (&device, DType::F32));
            rows.push((
                format!("RMSNorm [1,{l},{d}]"),
                time(self.iters, || {
                    let _ = crate::wan::nn::rms_norm(x.clone(), &weight, 1e-6);
                    sync(&device)
                }),
            ));
            let rope = crate::wan::rope::Rope::<B>::new(c, 0, self.frames, h / 2, w / 2, &device);
            let q: Tensor<B, 4> = Tensor::from_data(rand(vec![1, l, heads, hd]), (&device, dt));
            rows.push((
                format!("RoPE [1,{l},{heads},{hd}]"),
                time(self.iters, || {
                    let _ = rope.apply(q.clone());
                    sync(&device)
                }),
            ));
            // What the DiT runs for q and k: RMSNorm across the heads, then RoPE (one kernel on
            // CUDA); the Rope tables built as each forward builds them.
            rows.push((
                format!("RMSNorm + RoPE [1,{l},{d}] (one kernel on CUDA)"),
                time(self.iters, || {
                    #[cfg(feature = "cuda")]
                    if crate::cuda::rms_norm_rope(x.clone(), &weight, &rope.cos, &rope.sin, 1e-6)
                        .is_ok()
                    {
                        return sync(&device);
                    }
                    let n = crate::wan::nn::rms_norm(x.clone(), &weight, 1e-6);
                    let _ = rope.apply(n.reshape([1, l, heads, hd]));
                    sync(&device)
                }),
            ));
            rows.push((
                format!("RoPE tables for {l} tokens (host, built anew)"),
                time(self.iters, || {
                    let _ =
                        crate::wan::rope::Rope::<B>::new(c, 0, self.frames, h / 2, w / 2, &device);
                    sync(&device)
                }),
            ));
            let qh = q.clone().swap_dims(1, 2);
            for kernel in [AttentionKernel::Fused, AttentionKernel::Naive] {
                rows.push_flops(
                    (
                        format!("attention {kernel:?} [1,{heads},{l},{hd}]"),
                        time(self.iters, || {
                            let _ = crate::wan::nn::attention(
                                qh.clone(),
                                qh.clone(),
                                qh.clone(),
                                None,
                                kernel,
                            );
                            sync(&device)
                        }),
                    ),
                    attention_flops(l, l, d),
                );
            }
            // The fused CUDA kernel (engine::cuda::attention), also over a KV cache: LongLive's
            // 12-frame window and Self-Forcing's 21 frames.
            #[cfg(feature = "cuda")]
            if let Some(qc) = crate::cuda::as_cuda(qh.clone()).filter(|t| t.dtype() == DType::BF16)
            {
                let per_frame = l / self.frames;
                for kv_frames in [self.frames, 12, 21] {
                    let kv = if kv_frames == self.frames {
                        qc.clone()
                    } else {
                        Tensor::<crate::cuda::gemm::Cuda, 4>::random(
                            [1, heads, kv_frames * per_frame, hd],
                            Distribution::Normal(0.0, 1.0),
                            &qc.device(),
                        )
                        .cast(DType::BF16)
                    };
                    let lk = kv.dims()[2];
                    // One row: `kernel` over the key `spans` of kv.
                    let mut row = |kernel, spans: &[std::ops::Range<usize>], keys: String| {
                        let lk = spans.iter().map(|r| r.len()).sum();
                        rows.push_flops(
                            (
                                format!("attention flash {kernel:?} (CUDA) q {l} kv {keys}"),
                                time(self.iters, || {
                                    let _ = crate::cuda::attention::flash_attention_with(
                                        kernel,
                                        qc.clone(),
                                        kv.clone(),
                                        kv.clone(),
                                        spans,
                                    );
                                    sync(&device)
                                }),
                            ),
                            attention_flops(l, lk, d),
                        );
                    };
                    for kernel in crate::cuda::attention::FlashKernel::ALL {
                        row(kernel, std::slice::from_ref(&(0..lk)), lk.to_string());
                    }
                    // A sink and a recent window read in place (two spans, as a cache whose
                    // attention window is shorter than its buffer reads them): the 3-frame sink
                    // and the last 9 frames of the 21.
                    if kv_frames == 21 {
                        let spans = [0..3 * per_frame, 12 * per_frame..lk];
                        let keys = format!("sink {} + window {}", spans[0].len(), spans[1].len());
                        for kernel in [
                            crate::cuda::attention::FlashKernel::Wide,
                            crate::cuda::attention::FlashKernel::Cudnn,
                        ] {
                            row(kernel, &spans, keys.clone());
                        }
                    }
                }
                if let Some(why) = crate::cuda::attention::cudnn_fallback() {
                    println!("note: the Cudnn rows ran the wide kernel: {why}");
                }
            }
            drop((x, q, qh));

            // The DiT's linear layers (q, k, v as one: 3·d): burn's matmul, and on CUDA in bf16 the
            // cuBLASLt op.
            for (k_in, n_out) in [(d, d), (d, 3 * d), (d, c.ffn_dim), (c.ffn_dim, d)] {
                let xs: Tensor<B, 2> = Tensor::from_data(rand(vec![l, k_in]), (&device, dt));
                let w_t: Tensor<B, 2> =
                    Tensor::from_data(rand(vec![n_out, k_in]), (&device, dt)).transpose();
                let flops = 2.0 * (l * k_in * n_out) as f64;
                rows.push_flops(
                    (
                        format!("linear [{l},{k_in}]→{n_out} burn matmul"),
                        time(self.iters, || {
                            let _ = xs.clone().matmul(w_t.clone());
                            sync(&device)
                        }),
                    ),
                    flops,
                );
                #[cfg(feature = "cuda")]
                if dt == DType::BF16
                    && crate::cuda::gemm::available()
                    && let (Some(xc), Some(wc)) = (
                        crate::cuda::as_cuda(xs.clone()),
                        crate::cuda::as_cuda(w_t.clone()),
                    )
                {
                    rows.push_flops(
                        (
                            format!("linear [{l},{k_in}]→{n_out} cuBLASLt"),
                            time(self.iters, || {
                                let _ =
                                    crate::cuda::gemm::linear_bf16(xc.clone(), wc.clone(), None);
                                sync(&device)
                            }),
                        ),
                        flops,
                    );
                }
                #[cfg(feature = "cuda")]
                if dt == DType::BF16
                    && self.quantization == Quantization::Fp8E4m3fn
                    && crate::cuda::fp8::supported()
                {
                    let f = crate::wan::quant::Fp8Weight::from_weight_t(&w_t);
                    let runs = crate::cuda::linear_fp8(xs.clone(), &f.codes, &f.scale, None, false)
                        .is_ok();
                    if runs {
                        rows.push_flops(
                        (
                            format!(
                                "linear [{l},{k_in}]→{n_out} cuBLASLt fp8 (input quantized per call)"
                            ),
                            time(self.iters, || {
                                let _ = crate::cuda::linear_fp8(
                                    xs.clone(),
                                    &f.codes,
                                    &f.scale,
                                    None,
                                    false,
                                );
                                sync(&device)
                            }),
                        ),
                        flops,
                    );
                    }
                }
            }
        }

        let xin: Tensor<B, 5> = Tensor::from_data(
            rand(vec![1, c.in_dim, self.frames, h, w]),
            (&device, DType::F32),
        );
        let ctx: Tensor<B, 3> =
            Tensor::from_data(rand(vec![1, c.text_len, c.text_dim]), (&device, DType::F32));
        let t = Timesteps::per_row(&[937.5], self.frames);
        let model_rows = [(1usize, "one block (1-layer model)".to_owned())]
            .into_iter()
            .filter(|_| self.rows.contains(&BenchRows::Model))
            .chain(
                Some(self.layers.unwrap_or(c.num_layers))
                    .filter(|n| *n > 0)
                    .map(|n| (n, format!("full forward ({n} layers)")))
                    .filter(|_| self.rows.contains(&BenchRows::Model)),
            );
        for (n, label) in model_rows {
            let mut cfg = c.clone();
            cfg.num_layers = n;
            let ck = Checkpoint::random(&cfg, 7, dt);
            let mut model = WanModel::<B>::load(cfg, ck, &device, dt).map_err(|e| e.to_string())?;
            model.kernel = self.kernel;
            // The host's share: how long queueing the forward takes before the wait for the
            // GPU (when close to the total, launches and not the GPU set the pace).
            let mut queued = Vec::new();
            let flops = dit_flops(&model.config, l);
            rows.push_flops(
                (
                    format!("{label}, {:?} attention", self.kernel),
                    time(self.iters, || {
                        // The full forward's last run (the warm-up is the first of iters + 1).
                        let ncu = self.ncu_range
                            && label.starts_with("full forward")
                            && queued.len() == self.iters;
                        profiler_range::<B>(ncu, true);
                        let started = Instant::now();
                        let _ = model.forward(xin.clone(), &t, ctx.clone(), None);
                        queued.push(started.elapsed());
                        sync(&device);
                        profiler_range::<B>(ncu, false);
                    }),
                ),
                flops,
            );
            queued.remove(0); // the warm-up run
            queued.sort();
            rows.push((
                format!("{label}: host time to queue it"),
                queued[queued.len() / 2],
            ));
            if let Some(table) = crate::profile::report(self.iters) {
                println!("profile of \"{label}\" (HANZO_LIVE_PROFILE):\n{table}");
            }
            if self.quantization == Quantization::Fp8E4m3fn {
                let on_gpu = model.quantize_fp8();
                let how = if on_gpu > 0 {
                    "fp8 GEMM"
                } else {
                    "fp8 emulated"
                };
                rows.push_flops(
                    (
                        format!("{label}, {:?} attention, block linears {how}", self.kernel),
                        time(self.iters, || {
                            let _ = model.forward(xin.clone(), &t, ctx.clone(), None);
                            sync(&device)
                        }),
                    ),
                    flops,
                );
            }
        }

        rows.meta.insert("tokens".into(), l.into());
        rows.finish(kind, dt, self.json.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flop_counts_add_up_by_hand() {
        // Two heads' worth of channels over 3 queries × 5 keys: 4·3·5·24.
        assert_eq!(attention_flops(3, 5, 24), 1440.0);
        // The tiny config (dim 24, ffn 32, 2 layers, text 512 × 32, patches 1×2×2 of 16
        // channels) over 10 tokens: per block 8·10·24² + 4·10²·24 + 4·10·24² + 4·512·24²
        // + 4·10·512·24 + 4·10·24·32 = 1 780 608; the patch embedding 2·10·64·24, the text
        // embedding 2·512·(32·24 + 24²) and the head 2·10·24·64 add 1 437 696.
        assert_eq!(dit_flops(&WanConfig::tiny(), 10), 4_998_912.0);
        // The 1.3B model on one 3-frame 480×832 chunk: 16.3 TFLOP.
        let big = dit_flops(&WanConfig::t2v_1_3b(), 4680);
        assert!((big - 1.6338e13).abs() < 1e9, "{big}");
    }
}
