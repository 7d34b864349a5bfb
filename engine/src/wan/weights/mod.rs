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
//!
//! Files are read lazily ([`read`]): opening one reads its index only, and each tensor's bytes
//! are read when the loader takes it, so a model is built with one tensor in flight rather
//! than a whole file in memory.

pub mod fp8;
pub mod pickle;
pub mod random;
pub mod read;

pub use random::{RandomFill, Recorder};
pub use read::read_tensors;

use burn::tensor::{DType, TensorData};
use read::Entry;
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Why a checkpoint cannot be loaded. Each names the file or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} is not a readable checkpoint: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{path} is truncated (an incomplete download?): {message}")]
    Truncated { path: PathBuf, message: String },
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

/// A checkpoint's tensors under their original Wan keys, read one at a time as a loader
/// [`take`](Checkpoint::take)s them.
pub struct Checkpoint {
    tensors: BTreeMap<String, Entry>,
    /// `<module>.scale_weight` of float8 files.
    scales: BTreeMap<String, Entry>,
    /// What float8 tensors are dequantised into.
    fp8_to: DType,
    pub layout: Layout,
    /// The file (or index) read.
    pub path: PathBuf,
    /// Benchmarks only: tensors that are not present are made up (see [`RandomFill`]).
    pub fill: Option<RandomFill>,
    /// Bytes of all tensors as stored, and of those taken so far.
    total_bytes: usize,
    taken_bytes: usize,
    progress: Option<Box<dyn FnMut(f64)>>,
}

impl std::fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("path", &self.path)
            .field("layout", &self.layout)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Checkpoint {
    fn from_entries(
        tensors: BTreeMap<String, Entry>,
        layout: Layout,
        path: PathBuf,
        fill: Option<RandomFill>,
    ) -> Self {
        let total_bytes = tensors.values().map(Entry::bytes).sum();
        Self {
            tensors,
            scales: BTreeMap::new(),
            fp8_to: DType::BF16,
            layout,
            path,
            fill,
            total_bytes,
            taken_bytes: 0,
            progress: None,
        }
    }

    /// A checkpoint over an index [`read::index`] returned (keys as they are).
    pub fn from_index(entries: BTreeMap<String, Entry>, path: PathBuf) -> Self {
        Self::from_entries(entries, Layout::Original, path, None)
    }

    /// Tensors already in memory, under original keys (tests, tools).
    pub fn from_tensors(tensors: BTreeMap<String, TensorData>, path: PathBuf) -> Self {
        let entries = tensors
            .into_iter()
            .map(|(k, v)| (k, Entry::Data(v)))
            .collect();
        Self::from_entries(entries, Layout::Original, path, None)
    }

    /// Opens `path`: a `.safetensors` file, a sharded `*.safetensors.index.json`, a directory
    /// holding either (`diffusion_pytorch_model.safetensors[.index.json]`), or a `.pt`/`.pth`
    /// pickle. Only the index is read here.
    pub fn read(path: &Path, variant: Variant) -> Result<Self, LoadError> {
        Self::read_with(
            path,
            variant,
            DType::BF16,
            detect_layout,
            diffusers_to_original,
        )
    }

    /// Opens `path` as [`read::index`] does (fp8 tensors will be dequantised into `fp8_to`),
    /// tells its layout with `detect`, and renames the diffusers/transformers layout's keys
    /// with `to_original`. Each model (DiT, VAE, UMT5) passes its own pair.
    pub fn read_with(
        path: &Path,
        variant: Variant,
        fp8_to: DType,
        detect: impl Fn(&BTreeSet<String>) -> Option<Layout>,
        to_original: impl Fn(&str) -> String,
    ) -> Result<Self, LoadError> {
        let mut raw = read::index(path, variant)?;
        let scales = fp8::take_scales(&mut raw);
        let keys: BTreeSet<String> = raw.keys().cloned().collect();
        let layout = detect(&keys).ok_or_else(|| LoadError::UnknownLayout {
            path: path.to_owned(),
            sample: keys.iter().take(5).cloned().collect(),
        })?;
        let tensors = match layout {
            Layout::Original => raw,
            Layout::Diffusers => raw.into_iter().map(|(k, v)| (to_original(&k), v)).collect(),
        };
        let mut ck = Self::from_entries(tensors, layout, path.to_owned(), None);
        ck.scales = scales;
        ck.fp8_to = fp8_to;
        Ok(ck)
    }

    /// Calls `progress` with the fraction of the checkpoint's bytes taken, after each tensor.
    pub fn on_progress(&mut self, progress: impl FnMut(f64) + 'static) {
        self.progress = Some(Box::new(progress));
    }

    /// Whether `key` is present (and not yet taken).
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The keys not yet taken.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }

    /// The shape of `key`, without reading it.
    pub fn shape(&self, key: &str) -> Option<Vec<usize>> {
        self.tensors.get(key).map(Entry::shape)
    }

    /// Reads the tensor `key`, checking its shape first.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<TensorData, LoadError> {
        if let Some(fill) = &mut self.fill
            && !self.tensors.contains_key(key)
        {
            return Ok(fill.make(key, expected));
        }
        let entry = self.tensors.remove(key).ok_or_else(|| LoadError::Missing {
            key: key.to_owned(),
            expected: expected.to_vec(),
        })?;
        let found = entry.shape();
        if found != expected {
            return Err(LoadError::Shape {
                key: key.to_owned(),
                expected: expected.to_vec(),
                found,
            });
        }
        self.taken_bytes += entry.bytes();
        let data = if entry.is_fp8() {
            fp8::dequantise(key, entry, &self.scales, self.fp8_to, &self.path)?
        } else {
            entry.read(key, &self.path)?
        };
        if let Some(p) = &mut self.progress {
            p(self.taken_bytes as f64 / self.total_bytes.max(1) as f64);
        }
        Ok(data)
    }

    /// Reads every tensor not yet taken (tools and tests).
    pub fn into_tensors(mut self) -> Result<BTreeMap<String, TensorData>, LoadError> {
        let keys: Vec<(String, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(k, e)| (k.clone(), e.shape()))
            .collect();
        keys.into_iter()
            .map(|(k, shape)| self.take(&k, &shape).map(|d| (k, d)))
            .collect()
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

fn detect_layout(keys: &BTreeSet<String>) -> Option<Layout> {
    if keys.contains("time_embedding.0.weight") || keys.contains("head.modulation") {
        Some(Layout::Original)
    } else if keys.iter().any(|k| k.starts_with("condition_embedder.")) {
        Some(Layout::Diffusers)
    } else {
        None
    }
}

/// The original key of a diffusers `WanTransformer3DModel` key (the table above); unknown
/// keys pass through.
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

#[cfg(test)]
mod tests {
    use super::*;
    use read::strip_containers;

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
