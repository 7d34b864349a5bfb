//! The few-step flow-matching sampler's tensor steps (`algorithms.md` §4.1), on top of the
//! schedule in [`crate::scheduler`].
//!
//! - `x0 = x_t − σ(t)·v`, σ from the nearest grid timestep, computed in f64 upstream: here the
//!   scalar σ is f64 and the tensors f32.
//! - Re-noise for the next step: `x_{t'} = (1 − σ(t'))·x0 + σ(t')·ε` with fresh ε.

use crate::scheduler::FlowMatchSchedule;
use burn::tensor::{DType, Distribution, Tensor, backend::Backend};

/// `x0 = x_t − σ(t)·v` per batch row (one `t` per row).
///
/// # Shapes
/// - x_t, v: `[B, C, F, H, W]` → `[B, C, F, H, W]` (f32)
pub fn x0_from_v<B: Backend>(
    schedule: &FlowMatchSchedule,
    x_t: Tensor<B, 5>,
    v: Tensor<B, 5>,
    t: f64,
) -> Tensor<B, 5> {
    let sigma = schedule.sigma_at(t);
    x_t.cast(DType::F32) - v.cast(DType::F32) * sigma
}

/// `(1 − σ(t))·x0 + σ(t)·ε`.
///
/// # Shapes
/// - x0, noise: `[B, C, F, H, W]` → same
pub fn add_noise<B: Backend>(
    schedule: &FlowMatchSchedule,
    x0: Tensor<B, 5>,
    noise: Tensor<B, 5>,
    t: f64,
) -> Tensor<B, 5> {
    let sigma = schedule.sigma_at(t);
    x0 * (1.0 - sigma) + noise * sigma
}

/// Standard normal noise like `x`.
pub fn noise_like<B: Backend>(x: &Tensor<B, 5>) -> Tensor<B, 5> {
    Tensor::random(x.dims(), Distribution::Normal(0.0, 1.0), &x.device())
}
