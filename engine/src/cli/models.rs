//! `vae-encode`, `vae-decode` and `encode-text`: the VAEs and the text encoder from files;
//! `bench-vae` and `bench-text` with made-up weights.

use super::{check_dtype, device_tensor};
use crate::{
    backend::{BackendKind, WithBackend},
    tensor_file::{self, F32Tensor},
    text::tokenizer::{MAX_LENGTH, Umt5Tokenizer},
    wan::{
        umt5::{Umt5Config, Umt5Encoder},
        vae::{AutoencoderKLWanConfig, LatentSpace, WanVae},
        video_vae::{DecodeStream, EncodeStream, VaeType, VideoVae},
    },
};
use burn::tensor::{DType, Int, Tensor, TensorData, backend::Backend};
use std::{collections::BTreeMap, path::PathBuf, time::Instant};

pub(super) fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<F32Tensor, String> {
    let shape = t.dims().to_vec();
    let data = t
        .cast(DType::F32)
        .into_data()
        .to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    Ok(F32Tensor::new(shape, data))
}

fn input<'a>(
    inputs: &'a BTreeMap<String, F32Tensor>,
    path: &std::path::Path,
    name: &str,
) -> Result<&'a F32Tensor, String> {
    inputs
        .get(name)
        .ok_or_else(|| format!("{}: no tensor `{name}`", path.display()))
}

/// Loads autoencoder `vae` from `weights`: the Wan VAE and LightVAE with a diffusers
/// `config` when given (else their width is read from the checkpoint), the TAEs as they are.
fn open_vae<B: Backend>(
    vae: VaeType,
    weights: &std::path::Path,
    config: Option<&PathBuf>,
    device: &B::Device,
    dtype: DType,
) -> Result<VideoVae<B>, String> {
    match (vae, config) {
        (VaeType::Wan | VaeType::LightVae, Some(p)) => {
            let cfg = AutoencoderKLWanConfig::from_file(p)?;
            WanVae::<B>::from_file(cfg, weights, device, dtype)
                .map(|v| VideoVae::Wan(Box::new(v)))
                .map_err(|e| e.to_string())
        }
        (VaeType::Tae | VaeType::LightTae, Some(_)) => Err(format!(
            "--config is for the wan and lightvae autoencoders, not {vae}"
        )),
        (_, None) => VideoVae::from_file(vae, weights, device, dtype).map_err(|e| e.to_string()),
    }
}

/// `vae-encode`.
pub struct VaeEncodeJob {
    pub vae: VaeType,
    pub weights: PathBuf,
    pub config: Option<PathBuf>,
    pub inputs: PathBuf,
    pub out: PathBuf,
    pub stream: bool,
    pub dtype: DType,
}

impl WithBackend for VaeEncodeJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        check_dtype(kind, self.dtype)?;
        let inputs = tensor_file::read(&self.inputs)?;
        let video = input(&inputs, &self.inputs, "video")?;
        if video.shape.len() != 5 {
            return Err(format!(
                "video must be [B, 3, T, H, W], got {:?}",
                video.shape
            ));
        }
        let vae = open_vae::<B>(
            self.vae,
            &self.weights,
            self.config.as_ref(),
            &device,
            self.dtype,
        )?;
        let x: Tensor<B, 5> = device_tensor(video, &device);
        let start = Instant::now();
        let mu = if self.stream {
            // Chunk by chunk through one stream, as a live source would feed it.
            let t = video.shape[2];
            let q = 4;
            let mut stream = vae.encode_stream();
            let mut outs = Vec::new();
            let mut at = 0;
            while at < t {
                let n = if at == 0 { 1 } else { q.min(t - at) };
                outs.push(
                    vae.encode_chunk(&mut stream, x.clone().narrow(2, at, n), LatentSpace::Raw)
                        .map_err(|e| e.to_string())?,
                );
                at += n;
            }
            Tensor::cat(outs, 2)
        } else {
            vae.encode(x, LatentSpace::Raw).map_err(|e| e.to_string())?
        };
        let latents = vae.normalize(mu.clone());
        eprintln!(
            "vae-encode on {kind}: {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        let mut map = BTreeMap::new();
        map.insert("mu".to_owned(), host(mu)?);
        map.insert("latents".to_owned(), host(latents)?);
        tensor_file::write(&self.out, &map)
    }
}

/// `vae-decode`.
pub struct VaeDecodeJob {
    pub vae: VaeType,
    pub weights: PathBuf,
    pub config: Option<PathBuf>,
    pub inputs: PathBuf,
    pub out: PathBuf,
    pub stream: bool,
    pub raw: bool,
    pub dtype: DType,
}

impl WithBackend for VaeDecodeJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        check_dtype(kind, self.dtype)?;
        let inputs = tensor_file::read(&self.inputs)?;
        let (name, space) = if self.raw {
            ("mu", LatentSpace::Raw)
        } else {
            ("latents", LatentSpace::Normalized)
        };
        let z = input(&inputs, &self.inputs, name)?;
        if z.shape.len() != 5 {
            return Err(format!("{name} must be [B, z, T, h, w], got {:?}", z.shape));
        }
        let vae = open_vae::<B>(
            self.vae,
            &self.weights,
            self.config.as_ref(),
            &device,
            self.dtype,
        )?;
        let z: Tensor<B, 5> = device_tensor(z, &device);
        let start = Instant::now();
        let video = if self.stream {
            let t = z.dims()[2];
            let mut stream = vae.decode_stream();
            let mut outs = Vec::with_capacity(t);
            for i in 0..t {
                outs.push(
                    vae.decode_chunk(&mut stream, z.clone().narrow(2, i, 1), space)
                        .map_err(|e| e.to_string())?,
                );
            }
            Tensor::cat(outs, 2)
        } else {
            vae.decode(z, space).map_err(|e| e.to_string())?
        };
        eprintln!(
            "vae-decode on {kind}: {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        let mut map = BTreeMap::new();
        map.insert("video".to_owned(), host(video)?);
        tensor_file::write(&self.out, &map)
    }
}

/// `encode-text`.
pub struct EncodeTextJob {
    pub weights: PathBuf,
    pub config: Option<PathBuf>,
    pub prompts: Vec<String>,
    pub tokenizer: Option<PathBuf>,
    pub inputs: Option<PathBuf>,
    pub out: PathBuf,
    pub dtype: Option<DType>,
}

/// The dtype the encoder runs in when none is given: bf16 for models over a billion
/// parameters (UMT5-XXL: 11.4 GB instead of 22.7 GB), else f32.
pub fn default_text_dtype(cfg: &Umt5Config, kind: BackendKind) -> DType {
    if cfg.parameters() > 1_000_000_000 && kind != BackendKind::Candle {
        DType::BF16
    } else {
        DType::F32
    }
}

impl WithBackend for EncodeTextJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        let cfg = match &self.config {
            Some(p) => Umt5Config::from_file(p)?,
            None => Umt5Config::umt5_xxl(),
        };
        let dtype = self.dtype.unwrap_or_else(|| default_text_dtype(&cfg, kind));
        check_dtype(kind, dtype)?;
        // ids [B, L] and mask [B, L], from prompts or from the inputs file.
        let (ids, mask, b, l) = match (&self.inputs, self.prompts.is_empty()) {
            (Some(_), false) => return Err("give --prompt or --inputs, not both".into()),
            (None, true) => return Err("give --prompt (with --tokenizer) or --inputs".into()),
            (None, false) => {
                let path = self
                    .tokenizer
                    .as_ref()
                    .ok_or("--prompt needs --tokenizer (tokenizer.json or its directory)")?;
                let tok = Umt5Tokenizer::from_path(path).map_err(|e| e.to_string())?;
                let tokens = self
                    .prompts
                    .iter()
                    .map(|p| tok.encode(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| e.to_string())?;
                // Padded to the longest prompt (the DiT context is padded to 512 below).
                let l = tokens.iter().map(|t| t.ids.len()).max().unwrap_or(1);
                let (mut ids, mut mask) = (Vec::new(), Vec::new());
                for t in &tokens {
                    let (i, m) = t.padded(l);
                    ids.extend(i);
                    mask.extend(m);
                }
                (ids, mask, tokens.len(), l)
            }
            (Some(path), true) => {
                let inputs = tensor_file::read(path)?;
                let ids = input(&inputs, path, "input_ids")?;
                let [b, l] = ids.shape[..] else {
                    return Err(format!("input_ids must be [B, L], got {:?}", ids.shape));
                };
                let mask = match inputs.get("attention_mask") {
                    Some(m) if m.shape == ids.shape => m.data.iter().map(|v| *v as i64).collect(),
                    Some(m) => {
                        return Err(format!(
                            "attention_mask must be [{b}, {l}] like input_ids, got {:?}",
                            m.shape
                        ));
                    }
                    None => vec![1; b * l],
                };
                (ids.data.iter().map(|v| *v as i64).collect(), mask, b, l)
            }
        };
        if b == 0 || l == 0 || l > MAX_LENGTH {
            return Err(format!(
                "need 1 to {MAX_LENGTH} tokens per row, got [{b}, {l}]"
            ));
        }
        if let Some(bad) = ids
            .iter()
            .find(|i| **i < 0 || **i as usize >= cfg.vocab_size)
        {
            return Err(format!(
                "token id {bad} is outside the vocabulary (0..{})",
                cfg.vocab_size
            ));
        }
        if mask.iter().any(|m| *m != 0 && *m != 1) {
            return Err("attention_mask must hold only 0 and 1".into());
        }
        let model = Umt5Encoder::<B>::from_file(cfg, &self.weights, &device, dtype)
            .map_err(|e| e.to_string())?;
        let d = model.config.d_model;
        let ids_t = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [b, l]), &device);
        let mask_f: Vec<f32> = mask.iter().map(|m| *m as f32).collect();
        let mask_t = Tensor::<B, 2>::from_data(TensorData::new(mask_f.clone(), [b, l]), &device);
        let start = Instant::now();
        let hidden = host(model.forward(ids_t, mask_t))?;
        eprintln!(
            "encode-text on {kind} ({dtype:?}): {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        // Rows past each prompt's length zeroed, padded to 512: what the DiT sees.
        let mut context = vec![0f32; b * MAX_LENGTH * d];
        for row in 0..b {
            let len = mask[row * l..(row + 1) * l]
                .iter()
                .filter(|m| **m == 1)
                .count();
            for j in 0..len.min(l) {
                let src = (row * l + j) * d;
                let dst = (row * MAX_LENGTH + j) * d;
                context[dst..dst + d].copy_from_slice(&hidden.data[src..src + d]);
            }
        }
        let mut map = BTreeMap::new();
        map.insert("hidden".to_owned(), hidden);
        map.insert(
            "context".to_owned(),
            F32Tensor::new(vec![b, MAX_LENGTH, d], context),
        );
        map.insert("mask".to_owned(), F32Tensor::new(vec![b, l], mask_f));
        tensor_file::write(&self.out, &map)
    }
}

/// `bench-vae`: an autoencoder's decode and encode at full size with made-up weights.
pub struct BenchVaeJob {
    pub vae: VaeType,
    pub height: usize,
    pub width: usize,
    pub iters: usize,
    pub dtype: DType,
    pub json: Option<PathBuf>,
    /// Also decode a stream's first latent frame on the CPU (flex) with the same weights and
    /// input, and print the relative error of this backend's result against it.
    pub check_cpu: bool,
    /// Also decode a stream's first latent frame in f32 on this backend with the same
    /// weights and input, and print the relative difference of `dtype`'s result from it
    /// (how far bf16 moves the output: `bench_vae_t5_torch.py --check-f32` prints PyTorch's).
    pub check_f32: bool,
    /// The rows to time, in this order.
    pub rows: Vec<VaeRow>,
}

/// One `bench-vae` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum VaeRow {
    /// Decode of a stream's first latent frame (→ 1 pixel frame).
    First,
    /// Decode of a later latent frame (→ 4 pixel frames): a live stream's steady state.
    Next,
    /// Decode of three later latent frames in one call (→ 12 pixel frames): a text → video
    /// chunk.
    Chunk,
    /// Encode of 4 pixel frames after the first (→ 1 latent frame).
    Encode,
}

/// A fixed, backend-independent latent frame: values in [-2, 2) from a xorshift stream.
///
/// # Shapes
/// - → `[1, 16, 1, h, w]`
fn check_latent(h: usize, w: usize) -> TensorData {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let values: Vec<f32> = (0..16 * h * w)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    TensorData::new(values, [1, 16, 1, h, w])
}

/// Decodes [`check_latent`] as a stream's first latent frame; returns the video on the host.
fn decode_check<B: Backend>(
    vae: &VideoVae<B>,
    device: &B::Device,
    h: usize,
    w: usize,
) -> Result<Vec<f32>, String> {
    let z = Tensor::<B, 5>::from_data(check_latent(h, w), device);
    let video = vae
        .decode(z, LatentSpace::Normalized)
        .map_err(|e| e.to_string())?;
    video
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| format!("{e:?}"))
}

/// Made-up weights for `vae` (the same for every backend).
fn random_vae<B: Backend>(
    vae: VaeType,
    device: &B::Device,
    dtype: DType,
) -> Result<VideoVae<B>, String> {
    VideoVae::load(
        vae,
        crate::wan::Checkpoint::random_fill(11, dtype),
        device,
        dtype,
    )
    .map_err(|e| e.to_string())
}

/// Decodes the same first latent frame on `vae`'s backend and on flex with the same made-up
/// weights, and prints the relative difference.
#[cfg(feature = "flex")]
fn check_against_cpu<B: Backend>(
    vae: &VideoVae<B>,
    device: &B::Device,
    job: &BenchVaeJob,
    kind: BackendKind,
    (h, w): (usize, usize),
) -> Result<(), String> {
    let got = decode_check(vae, device, h, w)?;
    let started = Instant::now();
    let cpu = random_vae::<burn::backend::Flex>(job.vae, &Default::default(), job.dtype)?;
    let want = decode_check(&cpu, &Default::default(), h, w)?;
    println!(
        "check: decode of a first latent frame on {kind} vs flex (CPU, {:.1} s): \
         max |Δ| / max |flex| = {:.3e}",
        started.elapsed().as_secs_f64(),
        relative_difference(&got, &want)
    );
    Ok(())
}

/// `max |got − want| / max |want|`.
fn relative_difference(got: &[f32], want: &[f32]) -> f32 {
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    diff / scale.max(f32::MIN_POSITIVE)
}

#[cfg(not(feature = "flex"))]
fn check_against_cpu<B: Backend>(
    _: &VideoVae<B>,
    _: &B::Device,
    _: &BenchVaeJob,
    _: BackendKind,
    _: (usize, usize),
) -> Result<(), String> {
    Err("--check-cpu needs the engine built with the `flex` feature".into())
}

impl WithBackend for BenchVaeJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        use burn::tensor::Distribution;
        check_dtype(kind, self.dtype)?;
        let s = 8;
        if !self.height.is_multiple_of(s) || !self.width.is_multiple_of(s) {
            return Err(format!("height and width must be multiples of {s}"));
        }
        let (h, w) = (self.height / s, self.width / s);
        let vae = random_vae::<B>(self.vae, &device, self.dtype)?;
        let sync = || {
            let _ = B::sync(&device);
        };
        eprintln!(
            "bench-vae {} on {kind} ({device:?}), {}×{} pixels = {h}×{w} latents, {:?}",
            self.vae, self.height, self.width, self.dtype
        );
        let z: Tensor<B, 5> =
            Tensor::random([1, 16, 4, h, w], Distribution::Normal(0.0, 1.0), &device);
        let video: Tensor<B, 5> = Tensor::random(
            [1, 3, 5, self.height, self.width],
            Distribution::Uniform(-1.0, 1.0),
            &device,
        );
        let mut rows = super::Rows::default();
        let err = |e: crate::wan::vae::VaeError| e.to_string();
        let (ph, pw) = (self.height, self.width);
        let decode = |st: &mut DecodeStream<B>, t: usize, n: usize| {
            vae.decode_chunk(st, z.clone().narrow(2, t, n), LatentSpace::Normalized)
                .map(|_| ())
                .map_err(err)
        };
        let encode = |st: &mut EncodeStream<B>, t: usize, n: usize| {
            vae.encode_chunk(st, video.clone().narrow(2, t, n), LatentSpace::Raw)
                .map(|_| ())
                .map_err(err)
        };
        // Each row times one chunk on a copy of the stream state before it.
        let after_first = || -> Result<DecodeStream<B>, String> {
            let mut st = vae.decode_stream();
            decode(&mut st, 0, 1)?;
            Ok(st)
        };
        for row in &self.rows {
            let (label, ms) = match row {
                VaeRow::First => (
                    format!("decode first latent frame → 1 frame {ph}×{pw}"),
                    super::time(self.iters, || {
                        let _ = decode(&mut vae.decode_stream(), 0, 1);
                        sync()
                    }),
                ),
                VaeRow::Next => {
                    let st = after_first()?;
                    let ms = super::time(self.iters, || {
                        let _ = decode(&mut st.clone(), 1, 1);
                        sync()
                    });
                    (format!("decode next latent frame → 4 frames {ph}×{pw}"), ms)
                }
                VaeRow::Chunk => {
                    let st = after_first()?;
                    let ms = super::time(self.iters, || {
                        let _ = decode(&mut st.clone(), 1, 3);
                        sync()
                    });
                    (
                        format!("decode next 3 latent frames → 12 frames {ph}×{pw}"),
                        ms,
                    )
                }
                VaeRow::Encode => {
                    let mut st = vae.encode_stream();
                    encode(&mut st, 0, 1)?;
                    let ms = super::time(self.iters, || {
                        let _ = encode(&mut st.clone(), 1, 4);
                        sync()
                    });
                    (
                        format!("encode next 4 frames → 1 latent frame {ph}×{pw}"),
                        ms,
                    )
                }
            };
            if let Some(table) = crate::profile::report(self.iters) {
                println!("profile of \"{label}\" (HANZO_LIVE_PROFILE):\n{table}");
            }
            rows.push((label, ms));
        }
        if self.check_cpu {
            check_against_cpu(&vae, &device, &self, kind, (h, w))?;
        }
        if self.check_f32 {
            let got = decode_check(&vae, &device, h, w)?;
            drop(vae);
            let f32_vae = random_vae::<B>(self.vae, &device, DType::F32)?;
            let want = decode_check(&f32_vae, &device, h, w)?;
            // The decode clamps to [-1, 1]: the share of clamped values says how much of
            // the output the difference could not show.
            let clamped = want.iter().filter(|v| v.abs() >= 1.0).count() as f64;
            println!(
                "check: decode of a first latent frame in {:?} vs f32 on {kind}: \
                 max |Δ| / max |f32| = {:.3e} ({:.1} % of the f32 values clamped)",
                self.dtype,
                relative_difference(&got, &want),
                100.0 * clamped / want.len().max(1) as f64
            );
        }
        rows.finish(kind, self.dtype, self.json.as_deref())
    }
}

/// `bench-text`: UMT5-XXL (or fewer layers) with made-up weights on one prompt.
pub struct BenchTextJob {
    pub tokens: usize,
    pub layers: Option<usize>,
    pub iters: usize,
    pub dtype: Option<DType>,
    pub padded: bool,
    pub json: Option<PathBuf>,
}

impl WithBackend for BenchTextJob {
    type Output = Result<(), String>;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output {
        let mut cfg = Umt5Config::umt5_xxl();
        let dtype = self.dtype.unwrap_or_else(|| default_text_dtype(&cfg, kind));
        check_dtype(kind, dtype)?;
        if let Some(n) = self.layers {
            cfg.num_layers = n.max(1);
        }
        let n = self.tokens.clamp(1, MAX_LENGTH);
        eprintln!(
            "bench-text on {kind} ({device:?}): UMT5-XXL encoder, {} layers, {:?}, a {n}-token prompt",
            cfg.num_layers, dtype
        );
        let started = Instant::now();
        let model = Umt5Encoder::<B>::load(
            cfg.clone(),
            crate::wan::Checkpoint::random_fill(13, dtype),
            &device,
            dtype,
        )
        .map_err(|e| e.to_string())?;
        eprintln!(
            "  made-up weights in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let host_ids: Vec<i64> = (0..n as i64).map(|i| 3 + (i * 7919) % 250_000).collect();
        let ids =
            Tensor::<B, 2, Int>::from_data(TensorData::new(host_ids.clone(), [1, n]), &device);
        let sync = || {
            let _ = B::sync(&device);
        };
        let mut rows = super::Rows::default();
        rows.push((
            format!(
                "encode {n}-token prompt (runs {n} positions), {} layers",
                cfg.num_layers
            ),
            super::time(self.iters, || {
                let _ = model.context(ids.clone(), &[n], MAX_LENGTH);
                sync()
            }),
        ));
        if self.padded {
            // What the reference pipelines run: the prompt padded to 512 positions.
            let mut padded: Vec<i64> = vec![0; MAX_LENGTH];
            let mut mask = vec![0f32; MAX_LENGTH];
            padded[..n].copy_from_slice(&host_ids);
            mask[..n].fill(1.0);
            let ids =
                Tensor::<B, 2, Int>::from_data(TensorData::new(padded, [1, MAX_LENGTH]), &device);
            let mask = Tensor::<B, 2>::from_data(TensorData::new(mask, [1, MAX_LENGTH]), &device);
            rows.push((
                format!(
                    "encode {n}-token prompt padded to 512 positions, {} layers",
                    cfg.num_layers
                ),
                super::time(self.iters, || {
                    let _ = model.forward(ids.clone(), mask.clone());
                    sync()
                }),
            ));
        }
        rows.finish(kind, dtype, self.json.as_deref())
    }
}
