//! Helpers shared by the golden tests (`dit.rs`, `vae.rs`, `umt5.rs`).
#![allow(dead_code)] // each test binary uses its own subset

use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use engine::tensor_file::F32Tensor;
use std::path::{Path, PathBuf};

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
