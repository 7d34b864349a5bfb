//! The few-step flow-matching sampler's tensor steps (Self-Forcing's `pipeline/causal_inference.py`, `FlowMatchScheduler`), on top of the
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

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = burn::backend::Flex;

    fn t5(v: Vec<f32>) -> Tensor<B, 5> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [1, 1, 1, 1, n]), &Default::default())
    }

    #[test]
    fn x0_uses_the_nearest_grid_sigma_and_renoising_inverts_it() {
        let s = FlowMatchSchedule::new(5.0).unwrap();
        // Warped t = 937.5 is on the S=5 grid at σ = 0.9375.
        let t = 937.5;
        assert!((s.sigma_at(t) - 0.9375).abs() < 1e-12);
        let x0 = t5(vec![0.5, -1.0, 2.0]);
        let noise = t5(vec![1.0, 0.25, -0.5]);
        let xt = add_noise(&s, x0.clone(), noise.clone(), t);
        // v = ε − x0 recovers x0.
        let v = noise - x0.clone();
        let back: Vec<f32> = x0_from_v(&s, xt, v, t).into_data().to_vec().unwrap();
        let want: Vec<f32> = x0.into_data().to_vec().unwrap();
        for (a, b) in back.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{back:?} vs {want:?}");
        }
        // An unwarped integer t takes the nearest grid σ (S=8: σ(700) = 0.70023…).
        let s8 = FlowMatchSchedule::new(8.0).unwrap();
        assert!((s8.sigma_at(700.0) - 0.70023).abs() < 1e-5);
        assert_eq!(noise_like(&t5(vec![0.0; 4])).dims(), [1, 1, 1, 1, 4]);
    }
}
