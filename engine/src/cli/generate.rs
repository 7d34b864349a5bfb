//! `generate`, `make-tiny` and `bench-load`: the Wan pipelines from the command line, the
//! tiny model sets, and the loader's memory figure.

use super::models::host;
use crate::{
    backend::{BackendKind, TextEncoderDevice, WithBackend},
    frame::Frame,
    pipeline::{
        params::{self, ParamValue},
        wan::{
            LoadedWan, WanPipeline,
            load::{LoadContext, LoadProgress, Weights},
            noise::Noise,
            stream::{frames_to_tensor, tensor_to_frames},
            tiny,
        },
    },
    tensor_file,
    wan::{Checkpoint, Variant, WanConfig, WanModel, umt5::Umt5Config},
};
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

/// Reads and writes compressed video files (`.mp4`); the server binary provides one (it owns
/// the codecs), the engine alone reads and writes safetensors.
pub trait VideoCodec {
    /// Frames and frame rate of a clip.
    fn read(&self, path: &Path) -> Result<(Vec<Frame>, f64), String>;
    /// Writes frames at `fps`.
    fn write(&self, path: &Path, frames: &[Frame], fps: f64) -> Result<(), String>;
}

/// `hanzo-live engine generate`.
#[derive(clap::Args, Debug, Clone)]
pub struct GenerateArgs {
    /// self-forcing, longlive or streamdiffusionv2
    #[arg(long)]
    pub pipeline: String,
    /// The models directory (the original app's layout; `engine make-tiny` writes one)
    #[arg(
        long,
        env = "HANZO_LIVE_MODELS_DIR",
        required_unless_present = "random_weights"
    )]
    pub models_dir: Option<PathBuf>,
    /// Benchmarks: made-up weights at these shapes instead of files (1.3b or tiny)
    #[arg(long)]
    pub random_weights: Option<String>,
    /// A prompt; repeat to blend several (weights with --prompt-weights)
    #[arg(long)]
    pub prompt: Vec<String>,
    /// Weights of the prompts, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub prompt_weights: Vec<f64>,
    /// Switch prompts before chunk K: `K:prompt` (repeatable; LongLive re-caches)
    #[arg(long)]
    pub switch: Vec<String>,
    /// Start a transition before chunk K: `K:STEPS:prompt` (repeatable)
    #[arg(long)]
    pub transition: Vec<String>,
    /// Input video for video → video: .safetensors (`video` [1,3,T,H,W] in [-1,1]) or .mp4
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Chunks to run
    #[arg(long, default_value_t = 4)]
    pub chunks: usize,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Replay every Gaussian draw from this file (noise_0, noise_1, …)
    #[arg(long)]
    pub noise: Option<PathBuf>,
    /// Write every Gaussian draw to this file
    #[arg(long)]
    pub dump_noise: Option<PathBuf>,
    /// Denoising steps, comma-separated
    #[arg(long, value_delimiter = ',')]
    pub steps: Vec<i64>,
    #[arg(long)]
    pub height: Option<i64>,
    #[arg(long)]
    pub width: Option<i64>,
    /// Any other load or runtime parameter: `key=<json>` (repeatable)
    #[arg(long = "set")]
    pub set: Vec<String>,
    /// DiT compute dtype: f32, bf16 or f16 [default: bf16 on a GPU, f32 on the CPU]
    #[arg(long)]
    pub dtype: Option<String>,
    /// VAE compute dtype [default: f32]
    #[arg(long)]
    pub vae_dtype: Option<String>,
    /// Frame rate written into an .mp4
    #[arg(long, default_value_t = 16.0, value_parser = positive_fps)]
    pub fps: f64,
    /// Run one chunk before timing (GPU kernel compilation)
    #[arg(long)]
    pub warm_up: bool,
    /// Time what the studio does around the models: each chunk's input uploaded as RGB bytes
    /// (the clip narrowed to bytes first, as a camera's frames are) and each decoded piece
    /// read back as RGB bytes, in the timed loop (`frames_to_tensor` / `tensor_to_frames`)
    #[arg(long)]
    pub studio_io: bool,
    /// Output: .safetensors (`video` [1,3,T,H,W] in [-1,1] and `latents`) or .mp4
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the per-chunk timings here (JSON)
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `hanzo-live engine make-tiny`.
#[derive(clap::Args, Debug, Clone)]
pub struct MakeTinyArgs {
    /// A pipeline id, or `all`
    pub pipeline: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// `hanzo-live engine bench-load`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchLoadArgs {
    /// Write a made-up Wan2.1-1.3B DiT checkpoint (bf16, `generator` + `model.` keys, as the
    /// streaming checkpoints are published) here and exit
    #[arg(long, conflicts_with = "weights")]
    pub make: Option<PathBuf>,
    /// Load this DiT checkpoint and report the process's peak memory
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// The DiT's config.json [default: Wan2.1-T2V-1.3B]
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
}

fn positive_fps(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 1000.0 => Ok(f),
        _ => Err(format!("{s:?} is not a frame rate (0 < fps ≤ 1000)")),
    }
}

fn parse_json_value(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

/// Load and runtime parameters from the arguments, as JSON objects.
fn parameters(a: &GenerateArgs, kind: WanPipeline) -> Result<(Value, Value), String> {
    let spec = kind.spec();
    let (mut load, mut runtime) = (json!({}), json!({}));
    let mut put = |key: &str, v: Value| -> Result<(), String> {
        if spec.load_params.iter().any(|s| s.key == key) {
            load[key] = v;
        } else if spec.runtime_params.iter().any(|s| s.key == key) {
            runtime[key] = v;
        } else {
            return Err(format!("{} has no parameter {key:?}", kind.id()));
        }
        Ok(())
    };
    if let Some(h) = a.height {
        put("height", json!(h))?;
    }
    if let Some(w) = a.width {
        put("width", json!(w))?;
    }
    if let Some(s) = a.seed {
        put("seed", json!(s))?;
    }
    if !a.steps.is_empty() {
        put("denoising_step_list", json!(a.steps))?;
    }
    if !a.prompt.is_empty() {
        if !a.prompt_weights.is_empty() && a.prompt_weights.len() != a.prompt.len() {
            return Err("--prompt-weights needs one weight per --prompt".into());
        }
        let prompts: Vec<Value> = a
            .prompt
            .iter()
            .enumerate()
            .map(|(i, p)| json!({"text": p, "weight": a.prompt_weights.get(i).copied().unwrap_or(1.0)}))
            .collect();
        put("prompts", json!(prompts))?;
    }
    for kv in &a.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set {kv:?}: expected key=value"))?;
        put(k, parse_json_value(v))?;
    }
    Ok((load, runtime))
}

/// The prompt changes of `--switch K:prompt` and `--transition K:STEPS:prompt`, by chunk.
fn prompt_events(a: &GenerateArgs) -> Result<BTreeMap<usize, ParamValue>, String> {
    let prompt = |text: &str| {
        vec![params::WeightedPrompt {
            text: text.to_owned(),
            weight: 1.0,
        }]
    };
    let chunk = |flag: &str, s: &str, k: &str| {
        k.parse::<usize>()
            .map_err(|_| format!("--{flag} {s:?}: {k:?} is not a chunk index"))
    };
    let mut events = BTreeMap::new();
    for s in &a.switch {
        let (k, p) = s
            .split_once(':')
            .ok_or_else(|| format!("--switch {s:?}: expected CHUNK:prompt"))?;
        events.insert(chunk("switch", s, k)?, ParamValue::Prompts(prompt(p)));
    }
    for s in &a.transition {
        let mut parts = s.splitn(3, ':');
        let (Some(k), Some(n), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("--transition {s:?}: expected CHUNK:STEPS:prompt"));
        };
        let num_steps = n
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=params::MAX_TRANSITION_STEPS).contains(n))
            .ok_or_else(|| format!("--transition {s:?}: {n:?} is not 0 to 64 steps"))?;
        events.insert(
            chunk("transition", s, k)?,
            ParamValue::Transition(params::TransitionValue {
                target_prompts: prompt(p),
                num_steps,
                temporal_interpolation_method: "linear".into(),
            }),
        );
    }
    Ok(events)
}

pub(super) struct GenerateJob<'a> {
    pub args: GenerateArgs,
    pub text_device: TextEncoderDevice,
    pub codec: Option<&'a dyn VideoCodec>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl WithBackend for GenerateJob<'_> {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        let a = &self.args;
        let pipeline = WanPipeline::parse(&a.pipeline).ok_or_else(|| {
            format!(
                "unknown pipeline {:?} (self-forcing, longlive, streamdiffusionv2)",
                a.pipeline
            )
        })?;
        let (load_params, runtime_json) = parameters(a, pipeline)?;
        let events = prompt_events(a)?;
        let weights = match (&a.random_weights, &a.models_dir) {
            (Some(size), _) => {
                let (dit, text) = match size.as_str() {
                    "1.3b" => (WanConfig::t2v_1_3b(), Umt5Config::umt5_xxl()),
                    "tiny" => (tiny::dit_config(), tiny::text_config()),
                    other => return Err(format!("--random-weights {other:?} (1.3b or tiny)")),
                };
                Weights::Random {
                    dit: Box::new(dit),
                    text: Box::new(text),
                    seed: 5,
                }
            }
            (None, Some(dir)) => Weights::Files(dir.clone()),
            (None, None) => return Err("--models-dir or --random-weights".into()),
        };
        // Each stage's start and end, with the seconds since the load began.
        let load_start = Instant::now();
        let progress: Arc<dyn Fn(LoadProgress) + Send + Sync> = Arc::new(move |p: LoadProgress| {
            if p.stage_fraction == 0.0 || p.stage_fraction == 1.0 {
                eprintln!(
                    "load: {:?} {} ({:.0}%, {:.1} s)",
                    p.stage,
                    if p.stage_fraction == 0.0 {
                        "…"
                    } else {
                        "done"
                    },
                    p.overall * 100.0,
                    load_start.elapsed().as_secs_f64()
                );
            }
        });
        let ctx = LoadContext {
            weights,
            backend: kind,
            dtype: a.dtype.as_deref().map(super::parse_dtype).transpose()?,
            vae_dtype: a.vae_dtype.as_deref().map(super::parse_dtype).transpose()?,
            text_encoder_device: self.text_device,
            progress: Some(progress),
            warm_up: a.warm_up,
        };
        let started = Instant::now();
        let loaded = LoadedWan::<B>::load(pipeline, &ctx, &load_params, &device)
            .map_err(|e| e.to_string())?;
        let frame = loaded.frame();
        eprintln!(
            "{} loaded on {kind} in {:.1} s ({}×{}, seed {})",
            pipeline.id(),
            started.elapsed().as_secs_f64(),
            frame.width,
            frame.height,
            frame.seed
        );
        let spec = pipeline.spec();
        let mut runtime = params::defaults(&spec.runtime_params);
        runtime.extend(
            params::validate_object(&spec.runtime_params, &runtime_json, false)
                .map_err(|e| e.to_string())?,
        );
        let mut stream = loaded.stream();
        stream.set_noise(match (&a.noise, &a.dump_noise) {
            (Some(p), _) => Noise::replay(p).map_err(|e| e.to_string())?,
            (None, Some(_)) => Noise::seeded().recording(),
            (None, None) => Noise::seeded(),
        });
        if a.noise.is_some() && a.dump_noise.is_some() {
            return Err("--noise and --dump-noise cannot be combined".into());
        }
        stream.apply(&runtime, true).map_err(|e| e.to_string())?;

        // Input frames (video → video).
        let input: Option<Tensor<B, 5>> = match (&a.input, pipeline) {
            (Some(path), WanPipeline::StreamDiffusionV2) => Some(read_input::<B>(
                path,
                self.codec,
                frame.height,
                frame.width,
                &device,
            )?),
            (None, WanPipeline::StreamDiffusionV2) => {
                return Err("streamdiffusionv2 needs --input (a clip or video.safetensors)".into());
            }
            (Some(_), _) => return Err(format!("{} takes no --input", pipeline.id())),
            (None, _) => None,
        };
        let mut used = 0;
        // --studio-io: the clip as the bytes a camera would send, uploaded chunk by chunk.
        let input_frames = match (&input, a.studio_io) {
            (Some(video), true) => {
                Some(tensor_to_frames(video.clone()).map_err(|e| e.to_string())?)
            }
            _ => None,
        };

        let mut videos = Vec::new();
        let mut latents = Vec::new();
        let mut rows = Vec::new();
        let mut frames_out = 0;
        crate::profile::clear(); // the load's stages are not the stream's
        let run_start = Instant::now();
        let mut first_frame = None;
        for c in 0..a.chunks {
            match events.get(&c) {
                Some(p @ ParamValue::Prompts(_)) => {
                    runtime.insert("prompts".into(), p.clone());
                    stream.apply(&runtime, false).map_err(|e| e.to_string())?;
                }
                Some(t @ ParamValue::Transition(_)) => {
                    let mut once = runtime.clone();
                    once.insert("transition".into(), t.clone());
                    stream.apply(&once, false).map_err(|e| e.to_string())?;
                }
                _ => {}
            }
            // The chunk's time includes its input's way in (with --studio-io, the upload).
            let t = Instant::now();
            let chunk_input = match &input {
                Some(video) => {
                    let need = stream.input_frames();
                    let total = video.dims()[2];
                    if used + need > total {
                        eprintln!("input ends after {used} frames");
                        break;
                    }
                    let x = match &input_frames {
                        Some(frames) => frames_to_tensor::<B>(
                            &frames[used..used + need],
                            frame.height,
                            frame.width,
                            &device,
                        ),
                        None => video.clone().narrow(2, used, need),
                    };
                    used += need;
                    Some(x)
                }
                None => None,
            };
            // The video comes in pieces (the Wan VAE: one latent frame's frames at a time);
            // the first frame is out when the first piece is on the device (with
            // --studio-io: on the host as bytes).
            let mut pieces = Vec::new();
            let mut read_back = Ok(());
            let out = stream
                .next_chunk_pieces(chunk_input, &mut |v| {
                    if a.studio_io && read_back.is_ok() {
                        read_back = tensor_to_frames(v.clone()).map(drop);
                    }
                    if first_frame.is_none() {
                        let _ = B::sync(&device);
                        first_frame = Some(run_start.elapsed());
                    }
                    pieces.push(v);
                })
                .map_err(|e| e.to_string())?;
            read_back.map_err(|e| e.to_string())?;
            let wall = t.elapsed();
            let video = (!pieces.is_empty()).then(|| Tensor::cat(pieces, 2));
            let n = video.as_ref().map_or(0, |v| v.dims()[2]);
            frames_out += n;
            eprintln!(
                "chunk {c}: {n} frames in {:.1} ms (text {:.1}, DiT {:.1}, VAE {:.1})",
                ms(wall),
                ms(out.timings.text),
                ms(out.timings.dit),
                ms(out.timings.vae)
            );
            // HANZO_LIVE_PROFILE: the chunk's stages (each waited for; the report clears them).
            if let Some(table) = crate::profile::report(1) {
                eprintln!("profile of chunk {c} (HANZO_LIVE_PROFILE):\n{table}");
            }
            rows.push(json!({"chunk": c, "frames": n, "ms": ms(wall),
                "text_ms": ms(out.timings.text), "dit_ms": ms(out.timings.dit),
                "vae_ms": ms(out.timings.vae)}));
            if let Some(v) = video {
                videos.push(v);
            }
            if let Some(l) = out.latents {
                latents.push(l);
            }
        }
        let total = run_start.elapsed();
        let fps = frames_out as f64 / total.as_secs_f64().max(1e-9);
        let ttff = first_frame.map_or(f64::NAN, |d| d.as_secs_f64());
        println!(
            "{} frames in {:.2} s: {fps:.2} FPS; first frame after {ttff:.3} s",
            frames_out,
            total.as_secs_f64()
        );
        if let Some(path) = &a.json {
            let j = json!({"pipeline": pipeline.id(), "backend": kind.name(),
                "height": frame.height, "width": frame.width, "frames": frames_out,
                "seconds": total.as_secs_f64(), "fps": fps, "time_to_first_frame_s": ttff,
                "chunks": rows});
            std::fs::write(path, j.to_string()).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        if let Some(path) = &a.dump_noise {
            tensor_file::write(path, &stream.noise().recorded())?;
        }
        if videos.is_empty() {
            return Err(
                "no frames were produced (more chunks are needed to fill the stream batch)".into(),
            );
        }
        let video = Tensor::cat(videos, 2);
        write_output::<B>(&a.out, video, Tensor::cat(latents, 2), self.codec, a.fps)
    }
}

fn is_safetensors(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "safetensors")
}

fn read_input<B: Backend>(
    path: &Path,
    codec: Option<&dyn VideoCodec>,
    height: usize,
    width: usize,
    device: &B::Device,
) -> Result<Tensor<B, 5>, String> {
    if is_safetensors(path) {
        let f = tensor_file::read(path)?;
        let v = f
            .get("video")
            .ok_or_else(|| format!("{}: no tensor `video`", path.display()))?;
        let [1, 3, t, h, w] = v.shape[..] else {
            return Err(format!("video must be [1, 3, T, H, W], got {:?}", v.shape));
        };
        let video: Tensor<B, 5> = Tensor::from_data(
            TensorData::new(v.data.clone(), [1, 3, t, h, w]),
            (device, DType::F32),
        );
        if (h, w) == (height, width) {
            return Ok(video);
        }
        // Resize through frames, as a live input is.
        let frames = tensor_to_frames(video).map_err(|e| e.to_string())?;
        return Ok(frames_to_tensor::<B>(&frames, height, width, device));
    }
    let codec = codec.ok_or_else(|| {
        format!(
            "{}: only .safetensors here (the hanzo-live binary reads .mp4)",
            path.display()
        )
    })?;
    let (frames, _) = codec.read(path)?;
    if frames.is_empty() {
        return Err(format!("{}: no frames", path.display()));
    }
    Ok(frames_to_tensor::<B>(&frames, height, width, device))
}

fn write_output<B: Backend>(
    path: &Path,
    video: Tensor<B, 5>,
    latents: Tensor<B, 5>,
    codec: Option<&dyn VideoCodec>,
    fps: f64,
) -> Result<(), String> {
    if is_safetensors(path) {
        let mut map = BTreeMap::new();
        map.insert("video".to_owned(), host(video)?);
        map.insert("latents".to_owned(), host(latents)?);
        return tensor_file::write(path, &map);
    }
    let codec = codec.ok_or_else(|| {
        format!(
            "{}: only .safetensors here (the hanzo-live binary writes .mp4)",
            path.display()
        )
    })?;
    let frames = tensor_to_frames(video).map_err(|e| e.to_string())?;
    codec.write(path, &frames, fps)
}

/// `make-tiny`: writes the tiny model set(s).
pub(super) fn make_tiny(a: &MakeTinyArgs, cpu: BackendKind) -> Result<(), String> {
    let pipelines: Vec<WanPipeline> = if a.pipeline == "all" {
        WanPipeline::ALL.to_vec()
    } else {
        vec![WanPipeline::parse(&a.pipeline).ok_or_else(|| {
            format!(
                "unknown pipeline {:?} (self-forcing, longlive, streamdiffusionv2, all)",
                a.pipeline
            )
        })?]
    };
    let files = tiny::write_model_set(&a.out, &pipelines, a.seed, cpu)?;
    for f in &files {
        let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        println!("{:>10} {}", size, f.display());
    }
    println!(
        "wrote {} files for {}; run: hanzo-live engine generate --pipeline {} --models-dir {} …",
        files.len(),
        pipelines
            .iter()
            .map(|p| p.id())
            .collect::<Vec<_>>()
            .join(", "),
        pipelines[0].id(),
        a.out.display()
    );
    Ok(())
}

/// The process's peak resident memory (`VmHWM`), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

pub(super) struct BenchLoadJob(pub BenchLoadArgs);

impl WithBackend for BenchLoadJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        let a = self.0;
        let dtype = super::parse_dtype(&a.dtype)?;
        let config = match &a.config {
            Some(p) => WanConfig::from_file(p).map_err(|e| e.to_string())?,
            None => WanConfig::t2v_1_3b(),
        };
        if let Some(path) = &a.make {
            let tensors = Checkpoint::random(&config, 3, dtype)
                .into_tensors()
                .map_err(|e| e.to_string())?;
            use crate::wan::weights::pickle::{self, Node};
            let state = Node::tensors(tensors.into_iter().map(|(k, v)| (format!("model.{k}"), v)));
            pickle::write(path, &Node::dict([("generator".to_owned(), state)]))?;
            println!(
                "wrote {} ({} bytes)",
                path.display(),
                std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
            );
            return Ok(());
        }
        let path = a.weights.ok_or("--weights or --make")?;
        let size = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len() as f64
            / (1 << 20) as f64;
        let before = peak_rss_mib().unwrap_or(0.0);
        let t = Instant::now();
        let ck = Checkpoint::read(&path, Variant::Generator).map_err(|e| e.to_string())?;
        let model = WanModel::<B>::load(config, ck, &device, dtype).map_err(|e| e.to_string())?;
        let _ = B::sync(&device);
        let secs = t.elapsed().as_secs_f64();
        let peak = peak_rss_mib().unwrap_or(0.0);
        println!(
            "loaded {} ({size:.0} MiB on disk) on {kind} in {dtype:?} in {secs:.1} s: peak RSS \
             {peak:.0} MiB (before: {before:.0} MiB) = {:.2}× the file",
            path.display(),
            peak / size
        );
        drop(model);
        Ok(())
    }
}
