//! `hanzo-live engine …`: backend info, one DiT forward from files (how others check
//! parity), and benchmarks. The server binary embeds [`EngineArgs`] as its `engine`
//! subcommand; [`run`] does the work and returns the process exit code.

use crate::{
    backend::{self, BackendKind, WithBackend},
    tensor_file::{self, F32Tensor},
    wan::{Checkpoint, Timesteps, Variant, WanConfig, WanModel, nn::AttentionKernel},
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
    },
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
        /// Also write the rows as JSON here
        #[arg(long)]
        json: Option<PathBuf>,
    },
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
    let requested = match args.backend.as_deref().map(BackendKind::parse).transpose() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hanzo-live engine: {e}");
            return 2;
        }
    };
    if let EngineCommand::Info = args.command {
        return info(requested, args.cpu);
    }
    let kind = match backend::select(requested, args.cpu) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("hanzo-live engine: {e}");
            return 1;
        }
    };
    let result = match args.command {
        EngineCommand::Info => unreachable!("handled above"),
        EngineCommand::Forward {
            config,
            weights,
            inputs,
            out,
            dtype,
            ema,
            attention,
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
            };
            backend::dispatch(kind, job).map_err(|e| e.to_string())?
        }),
        EngineCommand::Bench {
            model,
            dtype,
            frames,
            height,
            width,
            iters,
            layers,
            attention,
            json,
        } => (|| {
            let config = match model.as_str() {
                "1.3b" => WanConfig::t2v_1_3b(),
                "14b" => WanConfig::t2v_14b(),
                "tiny" => tiny_config(),
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
                json,
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

fn info(requested: Option<BackendKind>, cpu: bool) -> i32 {
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
            0
        }
        Err(e) => {
            println!("selected: none ({e})");
            1
        }
    }
}

/// The golden tests' tiny config (`algorithms.md` §11).
pub fn tiny_config() -> WanConfig {
    let mut c = WanConfig::t2v_1_3b();
    c.dim = 24;
    c.ffn_dim = 32;
    c.num_heads = 2;
    c.num_layers = 2;
    c.text_dim = 32;
    c
}

struct ForwardJob {
    config: PathBuf,
    weights: PathBuf,
    inputs: PathBuf,
    out: PathBuf,
    dtype: DType,
    variant: Variant,
    kernel: AttentionKernel,
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
    json: Option<PathBuf>,
}

/// Bench rows, each also printed to stderr as soon as it is measured (a run cut short by a
/// time limit still leaves its figures).
#[derive(Default)]
struct Rows(Vec<(String, Duration)>);

impl Rows {
    fn push(&mut self, row: (String, Duration)) {
        eprintln!("  {}: {:.2} ms", row.0, row.1.as_secs_f64() * 1e3);
        self.0.push(row);
    }
}

/// Median wall time of `iters` runs after one warm-up; `f` must finish its work (sync).
fn time(iters: usize, mut f: impl FnMut()) -> Duration {
    f();
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
        let qh = q.clone().swap_dims(1, 2);
        for kernel in [AttentionKernel::Fused, AttentionKernel::Naive] {
            rows.push((
                format!("attention {kernel:?} [1,{heads},{l},{hd}]"),
                time(self.iters, || {
                    let _ =
                        crate::wan::nn::attention(qh.clone(), qh.clone(), qh.clone(), None, kernel);
                    sync(&device)
                }),
            ));
        }
        drop((x, q, qh));

        let xin: Tensor<B, 5> = Tensor::from_data(
            rand(vec![1, c.in_dim, self.frames, h, w]),
            (&device, DType::F32),
        );
        let ctx: Tensor<B, 3> =
            Tensor::from_data(rand(vec![1, c.text_len, c.text_dim]), (&device, DType::F32));
        let t = Timesteps::per_row(&[937.5], self.frames);
        let model_rows = [(1usize, "one block (1-layer model)".to_owned())]
            .into_iter()
            .chain(
                Some(self.layers.unwrap_or(c.num_layers))
                    .filter(|n| *n > 0)
                    .map(|n| (n, format!("full forward ({n} layers)"))),
            );
        for (n, label) in model_rows {
            let mut cfg = c.clone();
            cfg.num_layers = n;
            let ck = Checkpoint::random(&cfg, 7, dt);
            let mut model = WanModel::<B>::load(cfg, ck, &device, dt).map_err(|e| e.to_string())?;
            model.kernel = self.kernel;
            rows.push((
                format!("{label}, {:?} attention", self.kernel),
                time(self.iters, || {
                    let _ = model.forward(xin.clone(), &t, ctx.clone(), None);
                    sync(&device)
                }),
            ));
        }

        let rows = rows.0;
        println!("| op | {kind} {dt:?} ms |");
        println!("|---|---|");
        for (name, d) in &rows {
            println!("| {name} | {:.2} |", d.as_secs_f64() * 1e3);
        }
        if let Some(path) = &self.json {
            let json = serde_json::json!({
                "backend": kind.name(),
                "dtype": format!("{dt:?}"),
                "tokens": l,
                "rows": rows.iter().map(|(n, d)| serde_json::json!({"op": n, "ms": d.as_secs_f64() * 1e3})).collect::<Vec<_>>(),
            });
            std::fs::write(path, json.to_string())
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}
