//! CUDA custom operations for burn's CUDA backend (feature `cuda`): library calls that burn
//! 0.21's own kernels are slower than, run on burn's tensors and streams. The engine stays a
//! burn engine: every op takes and returns `Tensor<burn::backend::Cuda, D>`, and the CPU and
//! Metal backends keep the portable path.
//!
//! Raw device pointers and CUDA streams need `unsafe`; it is confined to this module.

pub mod gemm;

use burn::tensor::{Tensor, backend::Backend};
use std::any::Any;

/// `t` as a tensor of burn's CUDA backend, when `B` is that backend (`None` otherwise): the
/// way generic engine code reaches the CUDA-only ops.
pub fn as_cuda<B: Backend, const D: usize>(t: Tensor<B, D>) -> Option<Tensor<gemm::Cuda, D>> {
    let any: Box<dyn Any> = Box::new(t);
    any.downcast::<Tensor<gemm::Cuda, D>>().ok().map(|t| *t)
}
