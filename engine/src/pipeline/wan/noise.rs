//! The pipelines' Gaussian noise.
//!
//! Every chunk draws from its own generator, seeded with `seed + f` where `f` is the
//! stream's absolute index of the chunk's first latent frame (as the upstream app seeds
//! `base_seed + current_start_frame`): ChaCha8 with standard-normal samples (rand_distr's
//! ziggurat), computed on the host, so a seed gives the same noise on every backend.
//!
//! A stream can instead **replay** draws from a file (`noise_0`, `noise_1`, … in the order the
//! pipeline draws them), so an external reference can reproduce a run exactly, and can
//! **record** its draws in that format. The draw order of each pipeline is documented in the
//! README ("Noise files").

use crate::tensor_file::{self, F32Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::{collections::BTreeMap, path::Path};

/// One chunk's generator.
#[derive(Clone, Debug)]
pub struct ChunkRng(ChaCha8Rng);

impl ChunkRng {
    /// The generator of the chunk whose first latent frame is frame `frame` of the stream.
    pub fn new(seed: u64, frame: u64) -> Self {
        Self(ChaCha8Rng::seed_from_u64(seed.wrapping_add(frame)))
    }
}

/// Why noise cannot be drawn.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NoiseError {
    #[error("the noise file has no more draws (it holds {0}; this run needs more)")]
    Exhausted(usize),
    #[error("noise_{index} has shape {found:?}, but the pipeline draws {expected:?} there")]
    Shape {
        index: usize,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{0}")]
    File(String),
}

/// Where a stream's noise comes from, and whether it is recorded.
#[derive(Debug, Default)]
pub struct Noise {
    replay: Option<Vec<F32Tensor>>,
    next: usize,
    record: Option<Vec<F32Tensor>>,
}

impl Noise {
    /// Fresh draws from the chunk generators.
    pub fn seeded() -> Self {
        Self::default()
    }

    /// Draws replayed from `noise_0`, `noise_1`, … of a safetensors file.
    pub fn replay(path: &Path) -> Result<Self, NoiseError> {
        let mut file = tensor_file::read(path).map_err(NoiseError::File)?;
        let mut draws = Vec::new();
        while let Some(t) = file.remove(&format!("noise_{}", draws.len())) {
            draws.push(t);
        }
        if draws.is_empty() {
            return Err(NoiseError::File(format!(
                "{}: no tensor noise_0",
                path.display()
            )));
        }
        Ok(Self {
            replay: Some(draws),
            ..Self::default()
        })
    }

    /// Also keep every draw, for [`Self::recorded`].
    pub fn recording(mut self) -> Self {
        self.record = Some(Vec::new());
        self
    }

    /// Draws so far.
    pub fn draws(&self) -> usize {
        self.next
    }

    /// Standard-normal values of `shape` (row-major), from `rng` or the next replayed draw.
    pub fn draw(&mut self, rng: &mut ChunkRng, shape: &[usize]) -> Result<Vec<f32>, NoiseError> {
        let n: usize = shape.iter().product();
        let values = match &mut self.replay {
            Some(draws) => {
                let held = draws.len();
                let t = draws
                    .get_mut(self.next)
                    .ok_or(NoiseError::Exhausted(held))?;
                if t.shape != shape {
                    return Err(NoiseError::Shape {
                        index: self.next,
                        expected: shape.to_vec(),
                        found: t.shape.clone(),
                    });
                }
                std::mem::take(&mut t.data)
            }
            None => (0..n).map(|_| StandardNormal.sample(&mut rng.0)).collect(),
        };
        self.next += 1;
        if let Some(r) = &mut self.record {
            r.push(F32Tensor::new(shape.to_vec(), values.clone()));
        }
        Ok(values)
    }

    /// The recorded draws as `noise_0`, `noise_1`, … (empty unless [`Self::recording`]).
    pub fn recorded(&self) -> BTreeMap<String, F32Tensor> {
        self.record
            .iter()
            .flatten()
            .enumerate()
            .map(|(i, t)| (format!("noise_{i}"), t.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_seed_gives_the_same_standard_normal_draws() {
        let mut noise = Noise::seeded();
        let a = noise.draw(&mut ChunkRng::new(42, 3), &[4, 1000]).unwrap();
        let b = noise.draw(&mut ChunkRng::new(42, 3), &[4, 1000]).unwrap();
        let c = noise.draw(&mut ChunkRng::new(42, 4), &[4, 1000]).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mean = a.iter().map(|x| f64::from(*x)).sum::<f64>() / a.len() as f64;
        let var = a
            .iter()
            .map(|x| (f64::from(*x) - mean).powi(2))
            .sum::<f64>()
            / a.len() as f64;
        assert!(
            mean.abs() < 0.06 && (var - 1.0).abs() < 0.08,
            "{mean} {var}"
        );
    }

    #[test]
    fn recorded_draws_replay_bit_for_bit_and_mismatches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = Noise::seeded().recording();
        let mut rng = ChunkRng::new(7, 0);
        let first = rec.draw(&mut rng, &[2, 3]).unwrap();
        let second = rec.draw(&mut rng, &[5]).unwrap();
        let path = dir.path().join("noise.safetensors");
        tensor_file::write(&path, &rec.recorded()).unwrap();

        let mut replay = Noise::replay(&path).unwrap();
        let mut other = ChunkRng::new(999, 0);
        assert_eq!(replay.draw(&mut other, &[2, 3]).unwrap(), first);
        assert_eq!(replay.draw(&mut other, &[5]).unwrap(), second);
        assert_eq!(replay.draw(&mut other, &[5]), Err(NoiseError::Exhausted(2)));
        let mut replay = Noise::replay(&path).unwrap();
        assert_eq!(
            replay.draw(&mut other, &[6]).unwrap_err().to_string(),
            "noise_0 has shape [2, 3], but the pipeline draws [6] there"
        );
    }
}
