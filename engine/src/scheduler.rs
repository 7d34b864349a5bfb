//! Flow-matching noise schedule of the Wan2.1 streaming methods (CausVid, Self-Forcing,
//! LongLive, StreamDiffusionV2).
//!
//! Upstream: `FlowMatchScheduler(shift=S, sigma_min=0, extra_one_step=True)` with
//! `set_timesteps(1000)` (Wan / DiffSynth `flow_match.py`). The base grid is
//! `σ̂_i = 1 − i/1000` for `i = 0..999`; the shifted grid is
//! `σ_i = S·σ̂_i / (1 + (S−1)·σ̂_i)` and the timesteps are `τ_i = 1000·σ_i`.
//!
//! All arithmetic is `f64`: the model sees these values as floats, and the few-step
//! samplers look σ up by the nearest grid timestep, so rounding here would move the lookup.

use thiserror::Error;

/// Number of training timesteps of the grid.
pub const NUM_TRAIN_TIMESTEPS: usize = 1000;

/// A timestep that cannot be used with the schedule.
#[derive(Debug, Error, PartialEq)]
pub enum ScheduleError {
    /// The shift must be a finite number > 0.
    #[error("shift must be finite and > 0, got {0}")]
    InvalidShift(f64),
    /// A denoising step outside `0..=1000`.
    #[error("denoising step {0} is outside 0..=1000")]
    StepOutOfRange(u32),
}

/// The shifted flow-matching grid: 1000 σ values and their timesteps.
#[derive(Clone, Debug)]
pub struct FlowMatchSchedule {
    shift: f64,
    sigmas: Vec<f64>,
    timesteps: Vec<f64>,
}

impl FlowMatchSchedule {
    /// Builds the grid for `shift` (5.0 for Self-Forcing / LongLive, 8.0 for CausVid).
    pub fn new(shift: f64) -> Result<Self, ScheduleError> {
        if !shift.is_finite() || shift <= 0.0 {
            return Err(ScheduleError::InvalidShift(shift));
        }
        let sigmas: Vec<f64> = (0..NUM_TRAIN_TIMESTEPS)
            .map(|i| shift_sigma(shift, 1.0 - i as f64 / NUM_TRAIN_TIMESTEPS as f64))
            .collect();
        let timesteps = sigmas
            .iter()
            .map(|s| s * NUM_TRAIN_TIMESTEPS as f64)
            .collect();
        Ok(Self {
            shift,
            sigmas,
            timesteps,
        })
    }

    /// The shift `S` this grid was built with.
    pub fn shift(&self) -> f64 {
        self.shift
    }

    /// `σ_i`, `i = 0..999`, decreasing from 1.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// `τ_i = 1000·σ_i`, decreasing from 1000.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// σ for a (possibly fractional) timestep `t`: the σ of the grid timestep nearest to `t`
    /// (`argmin_j |τ_j − t|`, first index on ties, as `torch.argmin` does).
    pub fn sigma_at(&self, t: f64) -> f64 {
        let mut best = 0;
        let mut best_dist = f64::INFINITY;
        for (j, tau) in self.timesteps.iter().enumerate() {
            let d = (tau - t).abs();
            if d < best_dist {
                best = j;
                best_dist = d;
            }
        }
        self.sigmas[best]
    }

    /// Warps one integer denoising step onto the shifted grid:
    /// `[τ_0 … τ_999, 0][1000 − t]`, i.e. `1000·shift(t/1000)`.
    pub fn warp_step(&self, t: u32) -> Result<f64, ScheduleError> {
        let t_us = t as usize;
        if t_us > NUM_TRAIN_TIMESTEPS {
            return Err(ScheduleError::StepOutOfRange(t));
        }
        let index = NUM_TRAIN_TIMESTEPS - t_us;
        Ok(self.timesteps.get(index).copied().unwrap_or(0.0))
    }

    /// Warps a whole denoising step list (`warp_denoising_step: true`).
    pub fn warp_steps(&self, steps: &[u32]) -> Result<Vec<f64>, ScheduleError> {
        steps.iter().map(|&t| self.warp_step(t)).collect()
    }
}

/// `σ ↦ S·σ / (1 + (S−1)·σ)`.
fn shift_sigma(shift: f64, sigma: f64) -> f64 {
    shift * sigma / (1.0 + (shift - 1.0) * sigma)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: &[f64], expected: &[f64], tol: f64) {
        assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
        for (a, e) in actual.iter().zip(expected) {
            assert!(
                (a - e).abs() <= tol,
                "got {actual:?}, expected {expected:?}"
            );
        }
    }

    #[test]
    fn warp_matches_the_published_values_for_shift_5() {
        let s = FlowMatchSchedule::new(5.0).unwrap();
        let warped = s.warp_steps(&[1000, 750, 500, 250]).unwrap();
        assert_close(&warped, &[1000.0, 937.5, 2500.0 / 3.0, 625.0], 1e-9);
    }

    #[test]
    fn warp_matches_the_published_values_for_shift_8() {
        let s = FlowMatchSchedule::new(8.0).unwrap();
        let warped = s.warp_steps(&[1000, 750, 500, 250]).unwrap();
        assert_close(&warped, &[1000.0, 960.0, 8000.0 / 9.0, 8000.0 / 11.0], 1e-9);
    }

    #[test]
    fn grid_ends_where_upstream_says() {
        // τ_0 = 1000; last τ = 4.98 (S=5) and 7.94 (S=8).
        let s5 = FlowMatchSchedule::new(5.0).unwrap();
        assert_eq!(s5.timesteps().len(), 1000);
        assert_eq!(s5.timesteps()[0], 1000.0);
        assert!((s5.timesteps()[999] - 4.98).abs() < 5e-3);
        let s8 = FlowMatchSchedule::new(8.0).unwrap();
        assert!((s8.timesteps()[999] - 7.94).abs() < 5e-3);
        assert!(s8.timesteps().windows(2).all(|w| w[0] > w[1]));
    }

    #[test]
    fn sigma_lookup_uses_the_nearest_grid_timestep() {
        // Unwarped integer t gives σ(t) ≈ t/1000 (S=8: σ(700) = 0.70023, σ(500) = 0.49972).
        let s8 = FlowMatchSchedule::new(8.0).unwrap();
        assert!(
            (s8.sigma_at(700.0) - 0.70023).abs() < 1e-5,
            "{}",
            s8.sigma_at(700.0)
        );
        assert!(
            (s8.sigma_at(500.0) - 0.49972).abs() < 1e-5,
            "{}",
            s8.sigma_at(500.0)
        );
        // A warped step hits the grid exactly.
        let s5 = FlowMatchSchedule::new(5.0).unwrap();
        assert_eq!(s5.sigma_at(937.5), 0.9375);
        assert_eq!(s5.sigma_at(1000.0), 1.0);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            FlowMatchSchedule::new(0.0).unwrap_err(),
            ScheduleError::InvalidShift(0.0)
        );
        assert!(FlowMatchSchedule::new(f64::NAN).is_err());
        let s = FlowMatchSchedule::new(5.0).unwrap();
        assert_eq!(s.warp_step(1001), Err(ScheduleError::StepOutOfRange(1001)));
        assert_eq!(s.warp_step(0), Ok(0.0));
    }
}
