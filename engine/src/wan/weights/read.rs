//! Reading checkpoint files **lazily**: opening a file reads only its index (the safetensors
//! header, the pickle's tensor table); each tensor's bytes are read when a loader takes it,
//! so loading never holds the whole file in memory next to the model it builds.
//!
//! | file | index | a tensor's bytes |
//! |---|---|---|
//! | `.safetensors` | the JSON header (offsets checked against the file's length: a truncated file is an error naming it) | one positioned read |
//! | `*.safetensors.index.json` | every shard's header | as above, per shard |
//! | `.pt` / `.pth` / `.bin` (torch zip) | burn-store's pickle reader (no tensor data) | one read of the storage's zip entry |

use super::{LoadError, Variant, fp8};
use burn::tensor::{DType, TensorData};
use burn_store::TensorSnapshot;
use std::{
    collections::BTreeMap,
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// One tensor of a checkpoint, not yet read.
pub enum Entry {
    /// Already in memory (made-up weights, tests).
    Data(TensorData),
    /// A tensor of a torch pickle.
    Pickle(TensorSnapshot),
    /// A byte range of a safetensors file.
    Safetensors(Slice),
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, shape) = match self {
            Entry::Data(d) => ("data", d.shape.to_vec()),
            Entry::Pickle(s) => ("pickle", s.shape.to_vec()),
            Entry::Safetensors(s) => ("safetensors", s.shape.clone()),
        };
        write!(f, "{kind}{shape:?}")
    }
}

/// Where a safetensors tensor lies.
#[derive(Clone, Debug)]
pub struct Slice {
    file: Arc<SharedFile>,
    /// `F32`, `BF16`, `F16` or `F8_E4M3`.
    pub dtype: safetensors::Dtype,
    pub shape: Vec<usize>,
    /// Absolute byte offset in the file.
    offset: u64,
    len: usize,
}

#[derive(Debug)]
struct SharedFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl Entry {
    /// The shape, without reading the data.
    pub fn shape(&self) -> Vec<usize> {
        match self {
            Entry::Data(d) => d.shape.to_vec(),
            Entry::Pickle(s) => s.shape.to_vec(),
            Entry::Safetensors(s) => s.shape.clone(),
        }
    }

    /// Bytes the tensor takes as stored.
    pub fn bytes(&self) -> usize {
        match self {
            Entry::Data(d) => d.bytes.len(),
            Entry::Pickle(s) => s.shape.num_elements() * s.dtype.size(),
            Entry::Safetensors(s) => s.len,
        }
    }

    /// Whether it is float8 (dequantised on read).
    pub fn is_fp8(&self) -> bool {
        matches!(self, Entry::Safetensors(s) if s.dtype == safetensors::Dtype::F8_E4M3)
    }

    /// Reads the tensor. float8 e4m3fn data is returned as raw bytes in a `U8` tensor of the
    /// same shape; [`fp8::dequantise`] turns it into floats.
    pub fn read(self, key: &str, path: &Path) -> Result<TensorData, LoadError> {
        match self {
            Entry::Data(d) => Ok(d),
            Entry::Pickle(s) => {
                let data = s.to_data().map_err(|e| LoadError::Format {
                    path: path.to_owned(),
                    message: format!("{key}: {e:?}"),
                })?;
                check_float(path, key, data.dtype)?;
                Ok(data)
            }
            Entry::Safetensors(s) => {
                let mut bytes = vec![0u8; s.len];
                {
                    let mut f = s.file.file.lock().unwrap_or_else(|p| p.into_inner());
                    f.seek(SeekFrom::Start(s.offset))
                        .and_then(|_| f.read_exact(&mut bytes))
                        .map_err(|e| LoadError::Truncated {
                            path: s.file.path.clone(),
                            message: format!("{key}: {e}"),
                        })?;
                }
                let dtype = match s.dtype {
                    safetensors::Dtype::F32 => DType::F32,
                    safetensors::Dtype::BF16 => DType::BF16,
                    safetensors::Dtype::F16 => DType::F16,
                    safetensors::Dtype::F8_E4M3 => DType::U8,
                    other => {
                        return Err(LoadError::Dtype {
                            path: s.file.path.clone(),
                            key: key.to_owned(),
                            dtype: format!("{other:?}"),
                        });
                    }
                };
                Ok(TensorData::from_bytes_vec(bytes, s.shape, dtype))
            }
        }
    }
}

fn check_float(path: &Path, key: &str, dtype: DType) -> Result<(), LoadError> {
    if matches!(dtype, DType::F32 | DType::BF16 | DType::F16) {
        Ok(())
    } else {
        Err(LoadError::Dtype {
            path: path.to_owned(),
            key: key.to_owned(),
            dtype: format!("{dtype:?}"),
        })
    }
}

pub(super) fn io(path: &Path) -> impl Fn(std::io::Error) -> LoadError + '_ {
    move |e| LoadError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

pub(super) fn format_err(path: &Path, message: impl std::fmt::Display) -> LoadError {
    LoadError::Format {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Every tensor of the file(s) at `path`, unread, container prefixes removed, keys as
/// written: a `.safetensors` file, a sharded `*.safetensors.index.json`, a directory holding
/// either, or a `.pt`/`.pth`/`.bin` pickle.
pub fn index(path: &Path, variant: Variant) -> Result<BTreeMap<String, Entry>, LoadError> {
    Ok(strip_containers(index_raw(path)?, variant))
}

/// Every tensor of the file(s) at `path`, read into memory (tools and tests; loaders use
/// [`super::Checkpoint`], which reads one tensor at a time). float8 e4m3fn tensors are
/// dequantised into `fp8_to`.
pub fn read_tensors(
    path: &Path,
    variant: Variant,
    fp8_to: DType,
) -> Result<BTreeMap<String, TensorData>, LoadError> {
    let mut entries = index(path, variant)?;
    let scales = fp8::take_scales(&mut entries);
    let mut out = BTreeMap::new();
    for (key, entry) in entries {
        let data = if entry.is_fp8() {
            fp8::dequantise(&key, entry, &scales, fp8_to, path)?
        } else {
            entry.read(&key, path)?
        };
        out.insert(key, data);
    }
    Ok(out)
}

fn index_raw(path: &Path) -> Result<BTreeMap<String, Entry>, LoadError> {
    if path.is_dir() {
        for name in [
            "diffusion_pytorch_model.safetensors.index.json",
            "diffusion_pytorch_model.safetensors",
            "model.safetensors.index.json",
            "model.safetensors",
        ] {
            if path.join(name).is_file() {
                return index_raw(&path.join(name));
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
    let known = [".safetensors", ".pt", ".pth", ".bin"];
    if !known.iter().any(|e| name.ends_with(e)) && !name.ends_with(".safetensors.index.json") {
        return Err(format_err(
            path,
            "expected .safetensors, .safetensors.index.json, .pt or .pth",
        ));
    }
    if !path.exists() {
        return Err(LoadError::Io {
            path: path.to_owned(),
            message: "no such file".into(),
        });
    }
    if name.ends_with(".safetensors.index.json") {
        index_sharded(path)
    } else if name.ends_with(".safetensors") {
        index_safetensors(path)
    } else {
        index_pickle(path)
    }
}

/// Reads a safetensors header (`u64` length + JSON) and checks every tensor's byte range
/// against the file.
fn index_safetensors(path: &Path) -> Result<BTreeMap<String, Entry>, LoadError> {
    let mut file = File::open(path).map_err(io(path))?;
    let file_len = file.metadata().map_err(io(path))?.len();
    let truncated = |message: String| LoadError::Truncated {
        path: path.to_owned(),
        message,
    };
    let mut len = [0u8; 8];
    file.read_exact(&mut len)
        .map_err(|_| truncated(format!("{file_len} bytes, shorter than a header")))?;
    let header_len = u64::from_le_bytes(len);
    if header_len > 100_000_000 {
        return Err(format_err(
            path,
            format!("not a safetensors file (header length {header_len})"),
        ));
    }
    if 8 + header_len > file_len {
        return Err(truncated(format!(
            "the header claims {header_len} bytes but the file holds {file_len}"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header).map_err(io(path))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| format_err(path, e))?;
    let data_start = 8 + header_len;
    let data_len = file_len - data_start;
    let shared = Arc::new(SharedFile {
        path: path.to_owned(),
        file: Mutex::new(file),
    });
    let mut out = BTreeMap::new();
    for (key, info) in header {
        if key == "__metadata__" {
            continue;
        }
        let info: safetensors::tensor::TensorInfo =
            serde_json::from_value(info).map_err(|e| format_err(path, format!("{key}: {e}")))?;
        let (begin, end) = info.data_offsets;
        let elems: usize = info.shape.iter().product();
        let want = match info.dtype {
            safetensors::Dtype::F32 => 4,
            safetensors::Dtype::BF16 | safetensors::Dtype::F16 => 2,
            safetensors::Dtype::F8_E4M3 => 1,
            other => {
                return Err(LoadError::Dtype {
                    path: path.to_owned(),
                    key,
                    dtype: format!("{other:?}"),
                });
            }
        } * elems;
        if end < begin || end - begin != want {
            return Err(format_err(
                path,
                format!("{key}: byte range {begin}..{end} does not hold {elems} values"),
            ));
        }
        if end as u64 > data_len {
            return Err(truncated(format!(
                "tensor {key} ends at byte {end} of the data, which holds {data_len}"
            )));
        }
        out.insert(
            key,
            Entry::Safetensors(Slice {
                file: shared.clone(),
                dtype: info.dtype,
                shape: info.shape,
                offset: data_start + begin as u64,
                len: want,
            }),
        );
    }
    Ok(out)
}

fn index_sharded(index: &Path) -> Result<BTreeMap<String, Entry>, LoadError> {
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
        out.extend(index_safetensors(&dir.join(shard))?);
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

/// A torch zip file (`PK\x03\x04` …) ends with its central directory; a file cut short
/// has none. Returns the error for such a file.
fn check_zip_end(path: &Path) -> Result<(), LoadError> {
    let mut file = File::open(path).map_err(io(path))?;
    let len = file.metadata().map_err(io(path))?.len();
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || magic != *b"PK\x03\x04" {
        return Ok(()); // not a zip: a legacy pickle, or garbage the reader will name
    }
    // The end-of-central-directory record (22 bytes + a comment of up to 64 KiB).
    let tail = len.min(22 + 65_535);
    let mut buf = vec![0u8; tail as usize];
    file.seek(SeekFrom::Start(len - tail))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(io(path))?;
    if buf.windows(4).any(|w| w == b"PK\x05\x06") {
        Ok(())
    } else {
        Err(LoadError::Truncated {
            path: path.to_owned(),
            message: format!("{len} bytes, and the zip archive's directory is missing"),
        })
    }
}

fn index_pickle(path: &Path) -> Result<BTreeMap<String, Entry>, LoadError> {
    check_zip_end(path)?;
    let reader = burn_store::pytorch::PytorchReader::new(path)
        .map_err(|e| format_err(path, e.to_string()))?;
    let mut out = BTreeMap::new();
    for (key, snapshot) in reader.into_tensors() {
        check_float(path, &key, snapshot.dtype)?;
        out.insert(key, Entry::Pickle(snapshot));
    }
    Ok(out)
}

/// Peels training-checkpoint containers (`generator`, `generator_ema`, `state_dict`), a
/// `model.` prefix on every key and FSDP's `_fsdp_wrapped_module.`.
pub(super) fn strip_containers<T>(
    raw: BTreeMap<String, T>,
    variant: Variant,
) -> BTreeMap<String, T> {
    let has = |p: &str| raw.keys().any(|k| k.starts_with(p));
    let container = match variant {
        Variant::Ema if has("generator_ema.") => Some("generator_ema."),
        _ if has("generator.") => Some("generator."),
        _ if has("generator_ema.") => Some("generator_ema."),
        _ if has("state_dict.") => Some("state_dict."),
        _ => None,
    };
    let chosen: BTreeMap<String, T> = match container {
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
