//! float8 e4m3fn weights (the `*-fp8_e4m3fn.safetensors` text encoders), dequantised one
//! tensor at a time as a loader takes it: `w = f32(w_fp8) · scale`, with the per-tensor
//! `scale` read from `<module>.scale_weight` next to `<module>.weight` where present ("scaled
//! fp8"; the `scaled_fp8` marker tensor is dropped), else 1. The product is computed in f32,
//! then stored in the load dtype (bf16 is exact for unscaled weights: e4m3 values fit bf16's
//! 8-bit exponent and 7-bit mantissa).

use super::{LoadError, read::Entry};
use burn::tensor::{DType, TensorData};
use std::{collections::BTreeMap, path::Path};

/// The value of every float8 e4m3fn bit pattern (sign, 4 exponent bits with bias 7,
/// 3 mantissa bits; exponent 0 is subnormal; `S.1111.111` is NaN; there is no infinity).
pub fn e4m3fn_table() -> [f32; 256] {
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

/// Moves the `*.scale_weight` tensors (and drops the `scaled_fp8` marker) out of a file's
/// index when it holds float8 tensors; returns the scales by module.
pub fn take_scales(entries: &mut BTreeMap<String, Entry>) -> BTreeMap<String, Entry> {
    if !entries.values().any(Entry::is_fp8) {
        return BTreeMap::new();
    }
    entries.remove("scaled_fp8");
    let keys: Vec<String> = entries
        .keys()
        .filter(|k| k.ends_with(".scale_weight"))
        .cloned()
        .collect();
    keys.into_iter()
        .filter_map(|k| entries.remove(&k).map(|e| (k, e)))
        .collect()
}

/// Reads and dequantises one float8 tensor into `to`.
pub fn dequantise(
    key: &str,
    entry: Entry,
    scales: &BTreeMap<String, Entry>,
    to: DType,
    path: &Path,
) -> Result<TensorData, LoadError> {
    let shape = entry.shape();
    let raw = entry.read(key, path)?;
    let scale = match key
        .strip_suffix(".weight")
        .map(|m| format!("{m}.scale_weight"))
        .and_then(|k| scales.get(&k).map(|e| (k, e)))
    {
        Some((scale_key, e)) => {
            let data = match e {
                Entry::Data(d) => d.clone(),
                Entry::Safetensors(s) => Entry::Safetensors(s.clone()).read(&scale_key, path)?,
                Entry::Pickle(s) => Entry::Pickle(s.clone()).read(&scale_key, path)?,
            };
            let v: Vec<f32> = data
                .convert_dtype(DType::F32)
                .to_vec()
                .map_err(|e| super::read::format_err(path, format!("{scale_key}: {e:?}")))?;
            match v[..] {
                [s] => s,
                _ => {
                    return Err(super::read::format_err(
                        path,
                        format!("{scale_key} must hold one value"),
                    ));
                }
            }
        }
        None => 1.0,
    };
    let table = e4m3fn_table();
    let values: Vec<f32> = raw
        .as_bytes()
        .iter()
        .map(|b| table[*b as usize] * scale)
        .collect();
    Ok(TensorData::new(values, shape).convert_dtype(to))
}
