//! Reading Wan DiT checkpoints: both key layouts, safetensors (single or sharded) and
//! PyTorch pickles, f32 / bf16 / f16.
//!
//! Every tensor ends up under its **original Wan key** (`Wan-Video/Wan2.1 wan/modules/model.py`).
//! The diffusers layout (`WanTransformer3DModel`) is renamed on read, by this table (applied
//! to the key after `blocks.N.` for block keys; first match wins):
//!
//! | diffusers | original |
//! |---|---|
//! | `condition_embedder.time_embedder.linear_1.*` / `linear_2.*` | `time_embedding.0.*` / `.2.*` |
//! | `condition_embedder.time_proj.*` | `time_projection.1.*` |
//! | `condition_embedder.text_embedder.linear_1.*` / `linear_2.*` | `text_embedding.0.*` / `.2.*` |
//! | `scale_shift_table` (top level) | `head.modulation` |
//! | `proj_out.*` | `head.head.*` |
//! | `blocks.N.scale_shift_table` | `blocks.N.modulation` |
//! | `blocks.N.attn1.to_{q,k,v}.*` / `to_out.0.*` / `norm_{q,k}.*` | `blocks.N.self_attn.{q,k,v}.*` / `o.*` / `norm_{q,k}.*` |
//! | `blocks.N.attn2.…` (same pattern) | `blocks.N.cross_attn.…` |
//! | `blocks.N.norm2.*` (affine, before cross-attention) | `blocks.N.norm3.*` (the names are swapped) |
//! | `blocks.N.ffn.net.0.proj.*` / `ffn.net.2.*` | `blocks.N.ffn.0.*` / `ffn.2.*` |
//!
//! Streaming checkpoints (CausVid, Self-Forcing, LongLive, StreamDiffusionV2) are pickles whose
//! tensors sit in a `generator`, `generator_ema` or `state_dict` dict, with or without a
//! `model.` prefix (and FSDP's `_fsdp_wrapped_module.`): all of that is peeled off here.

use burn::tensor::{DType, TensorData};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// Why a checkpoint cannot be loaded. Each names the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a readable checkpoint: {message}")]
    Format { path: PathBuf, message: String },
    #[error(
        "{path}: tensor {key} has dtype {dtype}; only f32, bf16, f16 and (safetensors) f8_e4m3 are supported"
    )]
    Dtype {
        path: PathBuf,
        key: String,
        dtype: String,
    },
    #[error(
        "{path}: cannot tell the key layout (neither original Wan nor diffusers); first keys: {sample:?}"
    )]
    UnknownLayout { path: PathBuf, sample: Vec<String> },
    #[error("missing tensor {key} (expected shape {expected:?})")]
    Missing { key: String, expected: Vec<usize> },
    #[error("tensor {key} has shape {found:?}, expected {expected:?}")]
    Shape {
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{count} unexpected tensors in the checkpoint, e.g. {first:?}")]
    Unexpected { count: usize, first: Vec<String> },
}

/// The key layout a checkpoint was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `Wan-Video/Wan2.1` (`blocks.N.self_attn.q.weight`, …).
    Original,
    /// diffusers `WanTransformer3DModel` (`blocks.N.attn1.to_q.weight`, …).
    Diffusers,
}

/// Which weights of a training checkpoint to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Variant {
    /// `generator` (or the only set present).
    #[default]
    Generator,
    /// `generator_ema` (Self-Forcing's `--use_ema`).
    Ema,
}

/// A checkpoint's tensors under their original Wan keys.
#[derive(Debug)]
pub struct Checkpoint {
    pub tensors: BTreeMap<String, TensorData>,
    pub layout: Layout,
    /// The file (or index) read.
    pub path: PathBuf,
    /// Benchmarks only: tensors that are not present are made up (see [`RandomFill`]).
    pub fill: Option<RandomFill>,
}

/// Made-up weights for benchmarks at full size without files: every tensor a loader asks
/// for is generated on request (so only one host copy exists at a time), uniform with the
/// variance of `N(0, 1/fan_in)` for matrices and kernels, `1 ± 0.1` for norm weights and
/// gammas, `± 0.05` for biases and vectors. Deterministic for a seed.
#[derive(Clone, Debug)]
pub struct RandomFill {
    state: u64,
    pub dtype: DType,
}

impl RandomFill {
    pub fn new(seed: u64, dtype: DType) -> Self {
        Self {
            state: seed.max(1),
            dtype,
        }
    }

    fn make(&mut self, key: &str, shape: &[usize]) -> TensorData {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let (center, half) = if key.contains("norm") || key.ends_with("gamma") {
            (1.0f32, 0.1f32 * 3f32.sqrt())
        } else if shape.len() < 2 {
            (0.0, 0.05 * 3f32.sqrt())
        } else {
            (0.0, (3.0 / fan_in as f32).sqrt())
        };
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let seed = self.state;
        let dtype = self.dtype;
        let width = match dtype {
            DType::BF16 | DType::F16 => 2,
            _ => 4,
        };
        let mut bytes = vec![0u8; n * width];
        // Billions of values for UMT5-XXL: fill chunks on every core, straight into the
        // target dtype.
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let per = n.div_ceil(threads).max(1 << 16);
        std::thread::scope(|scope| {
            for (i, chunk) in bytes.chunks_mut(per * width).enumerate() {
                scope.spawn(move || {
                    let mut s = (seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).max(1);
                    for out in chunk.chunks_exact_mut(width) {
                        // xorshift64*
                        s ^= s >> 12;
                        s ^= s << 25;
                        s ^= s >> 27;
                        let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32
                            / (1u64 << 24) as f32;
                        let v = center + half * (2.0 * u - 1.0);
                        match dtype {
                            DType::BF16 => {
                                out.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes())
                            }
                            DType::F16 => {
                                out.copy_from_slice(&half::f16::from_f32(v).to_le_bytes())
                            }
                            _ => out.copy_from_slice(&v.to_le_bytes()),
                        }
                    }
                });
            }
        });
        let dtype = match dtype {
            DType::BF16 | DType::F16 => dtype,
            _ => DType::F32,
        };
        TensorData::from_bytes_vec(bytes, shape.to_vec(), dtype)
    }
}

impl Checkpoint {
    /// Reads `path`: a `.safetensors` file, a sharded `*.safetensors.index.json`, a directory
    /// holding either (`diffusion_pytorch_model.safetensors[.index.json]`), or a `.pt`/`.pth`
    /// pickle.
    pub fn read(path: &Path, variant: Variant) -> Result<Self, LoadError> {
        Self::read_with(
            path,
            variant,
            DType::BF16,
            detect_layout,
            diffusers_to_original,
        )
    }

    /// Reads `path` as [`read_tensors`] does (fp8 dequantised into `fp8_to`), tells its layout
    /// with `detect`, and renames the diffusers/transformers layout's keys with `to_original`.
    /// Each model (DiT, VAE, UMT5) passes its own pair.
    pub fn read_with(
        path: &Path,
        variant: Variant,
        fp8_to: DType,
        detect: impl Fn(&BTreeMap<String, TensorData>) -> Option<Layout>,
        to_original: impl Fn(&str) -> String,
    ) -> Result<Self, LoadError> {
        let raw = read_tensors(path, variant, fp8_to)?;
        let layout = detect(&raw).ok_or_else(|| LoadError::UnknownLayout {
            path: path.to_owned(),
            sample: raw.keys().take(5).cloned().collect(),
        })?;
        let tensors = match layout {
            Layout::Original => raw,
            Layout::Diffusers => raw.into_iter().map(|(k, v)| (to_original(&k), v)).collect(),
        };
        Ok(Self {
            tensors,
            layout,
            path: path.to_owned(),
            fill: None,
        })
    }

    /// Takes the tensor `key`, checking its shape.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<TensorData, LoadError> {
        if let Some(fill) = &mut self.fill
            && !self.tensors.contains_key(key)
        {
            return Ok(fill.make(key, expected));
        }
        let data = self.tensors.remove(key).ok_or_else(|| LoadError::Missing {
            key: key.to_owned(),
            expected: expected.to_vec(),
        })?;
        if data.shape.as_slice() != expected {
            return Err(LoadError::Shape {
                key: key.to_owned(),
                expected: expected.to_vec(),
                found: data.shape.to_vec(),
            });
        }
        Ok(data)
    }

    /// Fails if any tensor was not taken.
    pub fn finish_ref(&self) -> Result<(), LoadError> {
        if self.tensors.is_empty() {
            return Ok(());
        }
        Err(LoadError::Unexpected {
            count: self.tensors.len(),
            first: self.tensors.keys().take(5).cloned().collect(),
        })
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LoadError + '_ {
    move |e| LoadError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn format_err(path: &Path, message: impl std::fmt::Display) -> LoadError {
    LoadError::Format {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// All tensors of the file(s) at `path`, container prefixes removed, keys as written:
/// a `.safetensors` file, a sharded `*.safetensors.index.json`, a directory holding either,
/// or a `.pt`/`.pth`/`.bin` pickle. float8 (e4m3fn) tensors of safetensors files are
/// dequantised into `fp8_to` (see [`dequantise_fp8`]); every other tensor keeps its dtype.
pub fn read_tensors(
    path: &Path,
    variant: Variant,
    fp8_to: DType,
) -> Result<BTreeMap<String, TensorData>, LoadError> {
    Ok(strip_containers(read_raw(path, fp8_to)?, variant))
}

fn read_raw(path: &Path, fp8_to: DType) -> Result<BTreeMap<String, TensorData>, LoadError> {
    if path.is_dir() {
        for name in [
            "diffusion_pytorch_model.safetensors.index.json",
            "diffusion_pytorch_model.safetensors",
            "model.safetensors.index.json",
            "model.safetensors",
        ] {
            if path.join(name).is_file() {
                return read_raw(&path.join(name), fp8_to);
            }
        }
        return Err(format_err(
            path,
            "no *.safetensors[.index.json] in this directory",
        ));
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let raw = if name.ends_with(".safetensors.index.json") {
        read_sharded(path, fp8_to)?
    } else if name.ends_with(".safetensors") {
        read_safetensors(path, fp8_to)?
    } else if name.ends_with(".pt") || name.ends_with(".pth") || name.ends_with(".bin") {
        read_pickle(path)?
    } else {
        return Err(format_err(
            path,
            "expected .safetensors, .safetensors.index.json, .pt or .pth",
        ));
    };
    Ok(raw)
}

fn read_safetensors(path: &Path, fp8_to: DType) -> Result<BTreeMap<String, TensorData>, LoadError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| format_err(path, e))?;
    let mut out = BTreeMap::new();
    let mut fp8 = BTreeMap::new();
    for (key, view) in st.iter() {
        let dtype = match view.dtype() {
            safetensors::Dtype::F32 => DType::F32,
            safetensors::Dtype::BF16 => DType::BF16,
            safetensors::Dtype::F16 => DType::F16,
            safetensors::Dtype::F8_E4M3 => {
                fp8.insert(
                    key.to_owned(),
                    (view.data().to_vec(), view.shape().to_vec()),
                );
                continue;
            }
            other => {
                return Err(LoadError::Dtype {
                    path: path.to_owned(),
                    key: key.to_owned(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let data = TensorData::from_bytes_vec(view.data().to_vec(), view.shape().to_vec(), dtype);
        out.insert(key.to_owned(), data);
    }
    if !fp8.is_empty() {
        dequantise_fp8(&mut out, fp8, fp8_to).map_err(|m| format_err(path, m))?;
    }
    Ok(out)
}

/// The value of every float8 e4m3fn bit pattern (sign, 4 exponent bits with bias 7,
/// 3 mantissa bits; exponent 0 is subnormal; `S.1111.111` is NaN; there is no infinity).
fn fp8_e4m3fn_table() -> [f32; 256] {
    std::array::from_fn(|byte| {
        let sign = if byte & 0x80 != 0 { -1.0f32 } else { 1.0 };
        let exp = ((byte >> 3) & 0x0f) as i32;
        let man = (byte & 0x07) as f32;
        if exp == 0x0f && byte & 0x07 == 0x07 {
            f32::NAN
        } else if exp == 0 {
            sign * man / 8.0 * 2f32.powi(-6)
        } else {
            sign * (1.0 + man / 8.0) * 2f32.powi(exp - 7)
        }
    })
}

/// Dequantises float8 e4m3fn tensors (the `*-fp8_e4m3fn.safetensors` text encoders):
/// `w = f32(w_fp8) · scale`, with the per-tensor `scale` read from `<module>.scale_weight`
/// next to `<module>.weight` where present ("scaled fp8"; the `scaled_fp8` marker tensor is
/// dropped), else 1. The product is computed in f32, then stored as `to` (bf16 is exact for
/// unscaled weights: e4m3 values fit bf16's 8-bit exponent and 7-bit mantissa).
fn dequantise_fp8(
    out: &mut BTreeMap<String, TensorData>,
    fp8: BTreeMap<String, (Vec<u8>, Vec<usize>)>,
    to: DType,
) -> Result<(), String> {
    let table = fp8_e4m3fn_table();
    let scales: Vec<String> = out
        .keys()
        .filter(|k| k.ends_with(".scale_weight"))
        .cloned()
        .collect();
    for (key, (bytes, shape)) in fp8 {
        if key == "scaled_fp8" {
            continue;
        }
        let scale_key = key
            .strip_suffix(".weight")
            .map(|m| format!("{m}.scale_weight"));
        let scale = match scale_key.as_ref().and_then(|k| out.get(k)) {
            Some(s) => {
                let v: Vec<f32> = s
                    .clone()
                    .convert_dtype(DType::F32)
                    .to_vec()
                    .map_err(|e| format!("{key}: scale: {e:?}"))?;
                match v[..] {
                    [s] => s,
                    _ => return Err(format!("{key}: scale_weight must hold one value")),
                }
            }
            None => 1.0,
        };
        let values: Vec<f32> = bytes.iter().map(|b| table[*b as usize] * scale).collect();
        out.insert(key, TensorData::new(values, shape).convert_dtype(to));
    }
    for key in scales {
        out.remove(&key);
    }
    Ok(())
}

fn read_sharded(index: &Path, fp8_to: DType) -> Result<BTreeMap<String, TensorData>, LoadError> {
    let text = std::fs::read_to_string(index).map_err(io(index))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| format_err(index, e))?;
    let map = json["weight_map"]
        .as_object()
        .ok_or_else(|| format_err(index, "no weight_map"))?;
    let mut shards: Vec<&str> = map.values().filter_map(|v| v.as_str()).collect();
    shards.sort_unstable();
    shards.dedup();
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut out = BTreeMap::new();
    for shard in shards {
        if shard.contains('/') || shard.contains("..") {
            return Err(format_err(
                index,
                format!("shard name {shard:?} leaves the directory"),
            ));
        }
        out.extend(read_safetensors(&dir.join(shard), fp8_to)?);
    }
    for key in map.keys() {
        if !out.contains_key(key) {
            return Err(format_err(
                index,
                format!("{key} is in weight_map but in no shard"),
            ));
        }
    }
    Ok(out)
}

fn read_pickle(path: &Path) -> Result<BTreeMap<String, TensorData>, LoadError> {
    let reader = burn_store::pytorch::PytorchReader::new(path).map_err(|e| format_err(path, e))?;
    let mut out = BTreeMap::new();
    for (key, snapshot) in reader.into_tensors() {
        let data = snapshot
            .to_data()
            .map_err(|e| format_err(path, format!("{key}: {e:?}")))?;
        if !matches!(data.dtype, DType::F32 | DType::BF16 | DType::F16) {
            return Err(LoadError::Dtype {
                path: path.to_owned(),
                key,
                dtype: format!("{:?}", data.dtype),
            });
        }
        out.insert(key, data);
    }
    Ok(out)
}

/// Peels `generator.` / `generator_ema.` / `state_dict.`, then `model.` and
/// `_fsdp_wrapped_module.`, off every key.
fn strip_containers(
    raw: BTreeMap<String, TensorData>,
    variant: Variant,
) -> BTreeMap<String, TensorData> {
    let has = |p: &str| raw.keys().any(|k| k.starts_with(p));
    let container = match variant {
        Variant::Ema if has("generator_ema.") => Some("generator_ema."),
        _ if has("generator.") => Some("generator."),
        _ if has("generator_ema.") => Some("generator_ema."),
        _ if has("state_dict.") => Some("state_dict."),
        _ => None,
    };
    let chosen: BTreeMap<String, TensorData> = match container {
        Some(prefix) => raw
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_owned(), v)))
            .collect(),
        None => raw,
    };
    let all_model = !chosen.is_empty() && chosen.keys().all(|k| k.starts_with("model."));
    chosen
        .into_iter()
        .map(|(k, v)| {
            let k = if all_model {
                &k["model.".len()..]
            } else {
                k.as_str()
            };
            (k.replace("_fsdp_wrapped_module.", ""), v)
        })
        .collect()
}

fn detect_layout(raw: &BTreeMap<String, TensorData>) -> Option<Layout> {
    if raw.contains_key("time_embedding.0.weight") || raw.contains_key("head.modulation") {
        Some(Layout::Original)
    } else if raw.keys().any(|k| k.starts_with("condition_embedder.")) {
        Some(Layout::Diffusers)
    } else {
        None
    }
}

/// The original Wan key of a diffusers key (see the module docs); unknown keys pass through.
pub fn diffusers_to_original(key: &str) -> String {
    const GLOBAL: &[(&str, &str)] = &[
        // Map condition_embedder.time_embedder.linear_1 -> time_embedding.0
        (
            "condition_embedder.time_embedder.linear_1.",
            "time_embedding.0.",
        ),
        // Map condition_embedder.time_embedder.linear_2 -> time_embedding.2
        (
            "condition_embedder.time_embedder.linear_2.",
            "time_embedding.2.",
        ),
        // Map condition_embedder.time_proj -> time_projection.1
        ("condition_embedder.time_proj.", "time_projection.1."),
        // Map condition_embedder.text_embedder.linear_1 -> text_embedding.0
        (
            "condition_embedder.text_embedder.linear_1.",
            "text_embedding.0.",
        ),
        // Map condition_embedder.text_embedder.linear_2 -> text_embedding.2
        (
            "condition_embedder.text_embedder.linear_2.",
            "text_embedding.2.",
        ),
        // Map proj_out -> head.head
        ("proj_out.", "head.head."),
    ];
    const BLOCK: &[(&str, &str)] = &[
        // Map scale_shift_table -> modulation
        ("scale_shift_table", "modulation"),
        // Map attn1.to_out.0 -> self_attn.o (before the to_q/k/v rule)
        ("attn1.to_out.0.", "self_attn.o."),
        ("attn1.to_q.", "self_attn.q."),
        ("attn1.to_k.", "self_attn.k."),
        ("attn1.to_v.", "self_attn.v."),
        ("attn1.norm_q.", "self_attn.norm_q."),
        ("attn1.norm_k.", "self_attn.norm_k."),
        ("attn2.to_out.0.", "cross_attn.o."),
        ("attn2.to_q.", "cross_attn.q."),
        ("attn2.to_k.", "cross_attn.k."),
        ("attn2.to_v.", "cross_attn.v."),
        ("attn2.norm_q.", "cross_attn.norm_q."),
        ("attn2.norm_k.", "cross_attn.norm_k."),
        // Map norm2 (affine, cross-attention) -> norm3: the names are swapped
        ("norm2.", "norm3."),
        // Map ffn.net.0.proj -> ffn.0
        ("ffn.net.0.proj.", "ffn.0."),
        // Map ffn.net.2 -> ffn.2
        ("ffn.net.2.", "ffn.2."),
    ];
    if key == "scale_shift_table" {
        // Map the top-level scale_shift_table -> head.modulation
        return "head.modulation".into();
    }
    if let Some(rest) = key.strip_prefix("blocks.")
        && let Some((n, tail)) = rest.split_once('.')
    {
        for (from, to) in BLOCK {
            if let Some(t) = tail.strip_prefix(from) {
                return format!("blocks.{n}.{to}{t}");
            }
        }
        return key.to_owned();
    }
    for (from, to) in GLOBAL {
        if let Some(t) = key.strip_prefix(from) {
            return format!("{to}{t}");
        }
    }
    key.to_owned()
}

/// Every tensor of a Wan DiT checkpoint (original keys) with its shape.
pub fn expected_tensors(cfg: &super::WanConfig) -> Vec<(String, Vec<usize>)> {
    let d = cfg.dim;
    let [pt, ph, pw] = cfg.patch_size;
    let mut v: Vec<(String, Vec<usize>)> = vec![
        (
            "patch_embedding.weight".into(),
            vec![d, cfg.in_dim, pt, ph, pw],
        ),
        ("patch_embedding.bias".into(), vec![d]),
        ("text_embedding.0.weight".into(), vec![d, cfg.text_dim]),
        ("text_embedding.0.bias".into(), vec![d]),
        ("text_embedding.2.weight".into(), vec![d, d]),
        ("text_embedding.2.bias".into(), vec![d]),
        ("time_embedding.0.weight".into(), vec![d, cfg.freq_dim]),
        ("time_embedding.0.bias".into(), vec![d]),
        ("time_embedding.2.weight".into(), vec![d, d]),
        ("time_embedding.2.bias".into(), vec![d]),
        ("time_projection.1.weight".into(), vec![6 * d, d]),
        ("time_projection.1.bias".into(), vec![6 * d]),
        ("head.modulation".into(), vec![1, 2, d]),
        (
            "head.head.weight".into(),
            vec![cfg.out_dim * pt * ph * pw, d],
        ),
        ("head.head.bias".into(), vec![cfg.out_dim * pt * ph * pw]),
    ];
    for i in 0..cfg.num_layers {
        let p = format!("blocks.{i}");
        v.push((format!("{p}.modulation"), vec![1, 6, d]));
        for attn in ["self_attn", "cross_attn"] {
            for l in ["q", "k", "v", "o"] {
                v.push((format!("{p}.{attn}.{l}.weight"), vec![d, d]));
                v.push((format!("{p}.{attn}.{l}.bias"), vec![d]));
            }
            v.push((format!("{p}.{attn}.norm_q.weight"), vec![d]));
            v.push((format!("{p}.{attn}.norm_k.weight"), vec![d]));
        }
        v.push((format!("{p}.norm3.weight"), vec![d]));
        v.push((format!("{p}.norm3.bias"), vec![d]));
        v.push((format!("{p}.ffn.0.weight"), vec![cfg.ffn_dim, d]));
        v.push((format!("{p}.ffn.0.bias"), vec![cfg.ffn_dim]));
        v.push((format!("{p}.ffn.2.weight"), vec![d, cfg.ffn_dim]));
        v.push((format!("{p}.ffn.2.bias"), vec![d]));
    }
    v
}

impl Checkpoint {
    /// An empty checkpoint that makes up every tensor asked for (benchmarks).
    pub fn random_fill(seed: u64, dtype: DType) -> Self {
        Self {
            tensors: BTreeMap::new(),
            layout: Layout::Original,
            path: PathBuf::from("<random>"),
            fill: Some(RandomFill::new(seed, dtype)),
        }
    }

    /// Random weights for `cfg` (benchmarks): `N(0, 1/fan_in)` for matrices, norms near 1,
    /// small modulation tables. Deterministic for a seed.
    pub fn random(cfg: &super::WanConfig, seed: u64, dtype: DType) -> Self {
        let mut state = seed.max(1);
        let mut next = move || {
            // xorshift64* → two uniforms → Box–Muller.
            let mut u = || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5)
                    / (1u64 << 53) as f64
            };
            let (a, b) = (u(), u());
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
        };
        let tensors = expected_tensors(cfg)
            .into_iter()
            .map(|(key, shape)| {
                let n: usize = shape.iter().product();
                let fan_in = if shape.len() >= 2 {
                    shape[1..].iter().product::<usize>()
                } else {
                    1
                };
                let (mean, std) = if key.contains("norm") && key.ends_with("weight") {
                    (1.0, 0.1)
                } else if key.ends_with("modulation") || key.ends_with("bias") {
                    (0.0, 0.1)
                } else {
                    (0.0, 1.0 / (fan_in as f32).sqrt())
                };
                let data: Vec<f32> = (0..n).map(|_| mean + std * next()).collect();
                (key, TensorData::new(data, shape).convert_dtype(dtype))
            })
            .collect();
        Self {
            tensors,
            layout: Layout::Original,
            path: PathBuf::from("<random>"),
            fill: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffusers_keys_map_to_the_original_names() {
        for (d, o) in [
            (
                "condition_embedder.time_embedder.linear_1.weight",
                "time_embedding.0.weight",
            ),
            (
                "condition_embedder.time_proj.bias",
                "time_projection.1.bias",
            ),
            (
                "condition_embedder.text_embedder.linear_2.weight",
                "text_embedding.2.weight",
            ),
            ("scale_shift_table", "head.modulation"),
            ("proj_out.weight", "head.head.weight"),
            ("blocks.7.scale_shift_table", "blocks.7.modulation"),
            ("blocks.0.attn1.to_out.0.bias", "blocks.0.self_attn.o.bias"),
            (
                "blocks.0.attn1.norm_k.weight",
                "blocks.0.self_attn.norm_k.weight",
            ),
            (
                "blocks.12.attn2.to_v.weight",
                "blocks.12.cross_attn.v.weight",
            ),
            ("blocks.1.norm2.bias", "blocks.1.norm3.bias"),
            ("blocks.1.ffn.net.0.proj.weight", "blocks.1.ffn.0.weight"),
            ("blocks.1.ffn.net.2.bias", "blocks.1.ffn.2.bias"),
            ("patch_embedding.weight", "patch_embedding.weight"),
        ] {
            assert_eq!(diffusers_to_original(d), o, "{d}");
        }
    }

    #[test]
    fn containers_and_model_prefixes_are_peeled() {
        let t = || TensorData::new(vec![0f32], [1]);
        let raw: BTreeMap<String, TensorData> = [
            ("generator.model.head.modulation", t()),
            (
                "generator_ema.model._fsdp_wrapped_module.head.modulation",
                t(),
            ),
            ("critic.model.x", t()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let keys = |m: BTreeMap<String, TensorData>| m.into_keys().collect::<Vec<_>>();
        let clone = || {
            raw.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(
            keys(strip_containers(clone(), Variant::Generator)),
            ["head.modulation"]
        );
        assert_eq!(
            keys(strip_containers(clone(), Variant::Ema)),
            ["head.modulation"]
        );
    }
}
