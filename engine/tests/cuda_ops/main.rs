//! The CUDA custom ops (`engine::cuda`) on the GPU machine, against burn's own f32 path on the
//! same GPU: `cargo test -p engine --features cuda --test cuda_ops --
//! --ignored` (the engine's `Linear` and `attention` go through them unless
//! `HANZO_LIVE_CUDA_OPS=0`;
//! `tools/build-device-tests.sh` builds the binary for a machine without Rust). Type-checked
//! wherever the `cuda` feature builds; every test is ignored elsewhere.
#![cfg(feature = "cuda")]

use burn::tensor::{DType, Tensor};
use engine::cuda::gemm::Cuda;

mod attention;
mod conv;
mod frames;
mod gemm;
mod norms;
mod ring;
mod vae;

/// max |ours − reference| / max |reference|, `ours` in any float dtype.
fn relative_error<const D: usize>(ours: Tensor<Cuda, D>, reference: Tensor<Cuda, D>) -> f32 {
    let scale = reference.clone().abs().max().into_scalar();
    let err = (ours.cast(DType::F32) - reference)
        .abs()
        .max()
        .into_scalar();
    err / scale
}
