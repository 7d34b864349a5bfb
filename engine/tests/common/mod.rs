//! Helpers shared by the golden tests (`dit.rs`, `vae.rs`, `umt5.rs`).
#![allow(dead_code)] // each test binary uses its own subset

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use engine::tensor_file::F32Tensor;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// `engine/tests/goldens`.
pub fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens")
}

/// A golden tensor on the backend's default device, in f32.
pub fn tensor<Bk: Backend, const D: usize>(t: &F32Tensor) -> Tensor<Bk, D> {
    Tensor::from_data(
        TensorData::new(t.data.clone(), t.shape.clone()),
        (&Default::default(), DType::F32),
    )
}

/// A tensor's values as f32 on the host.
pub fn values<Bk: Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.cast(DType::F32).into_data().to_vec().unwrap()
}

/// `max |a − b| / max |b|`.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    f64::from(diff / scale)
}

/// The light-VAE goldens' weight formula (`engine/scripts/gen_light_vae_goldens.py` says it
/// in full): FNV-1a of the key seeds a splitmix64-style hash per element, `u` in [0, 1) from
/// its top 53 bits, then `1 + 0.1·(2u − 1)` for RMS-norm gammas, `0.05·(2u − 1)` for other
/// 1-D tensors and `sqrt(3 / fan_in)·(2u − 1)` otherwise, in f64, rounded to f32 once.
pub fn formula(key: &str, shape: &[usize]) -> Vec<f32> {
    let mut seed: u64 = 0xCBF2_9CE4_8422_2325;
    for b in key.bytes() {
        seed = (seed ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let n: usize = shape.iter().product();
    let (offset, scale) = if key.ends_with("gamma") {
        (1.0, 0.1)
    } else if shape.len() == 1 {
        (0.0, 0.05)
    } else {
        (
            0.0,
            (3.0 / shape[1..].iter().product::<usize>() as f64).sqrt(),
        )
    };
    (0..n as u64)
        .map(|i| {
            let mut h = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            h ^= h >> 31;
            let u = (h >> 11) as f64 / (1u64 << 53) as f64;
            (offset + scale * (2.0 * u - 1.0)) as f32
        })
        .collect()
}

/// The keys and shapes a golden `*_keys.json` lists, with their formula weights.
pub fn formula_weights(keys_file: &str) -> BTreeMap<String, F32Tensor> {
    let text = std::fs::read_to_string(goldens().join(keys_file)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<(String, Vec<usize>)> = serde_json::from_value(v["keys"].clone()).unwrap();
    keys.into_iter()
        .map(|(k, s)| {
            let data = formula(&k, &s);
            (k, F32Tensor::new(s, data))
        })
        .collect()
}
