//! Made-up weights: for benchmarks at full size without files ([`RandomFill`]) and for the
//! tiny model sets `engine make-tiny` writes ([`Checkpoint::random`]).

use super::{Checkpoint, Layout, read::Entry};
use burn::tensor::{DType, TensorData};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Mutex},
};

/// Made-up weights for benchmarks at full size without files: every tensor a loader asks
/// for is generated on request (so only one host copy exists at a time), uniform with the
/// variance of `N(0, 1/fan_in)` for matrices and kernels, `1 ± 0.1` for norm weights and
/// gammas, `± 0.05` for biases and vectors. Deterministic for a seed.
#[derive(Clone, Debug)]
pub struct RandomFill {
    state: u64,
    pub dtype: DType,
    /// Every tensor made, when recording (how `make-tiny` learns a loader's key set).
    recorder: Option<Recorder>,
}

/// The tensors a recording [`RandomFill`] made, in the order a loader asked for them.
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Vec<(String, TensorData)>>>);

impl Recorder {
    /// Takes what was recorded so far.
    pub fn take(&self) -> Vec<(String, TensorData)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl RandomFill {
    pub fn new(seed: u64, dtype: DType) -> Self {
        Self {
            state: seed.max(1),
            dtype,
            recorder: None,
        }
    }

    /// A fill that also keeps a copy of every tensor it makes.
    pub fn recording(seed: u64, dtype: DType) -> (Self, Recorder) {
        let recorder = Recorder::default();
        let fill = Self {
            recorder: Some(recorder.clone()),
            ..Self::new(seed, dtype)
        };
        (fill, recorder)
    }

    pub fn make(&mut self, key: &str, shape: &[usize]) -> TensorData {
        let data = self.generate(key, shape);
        if let Some(r) = &self.recorder {
            r.0.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((key.to_owned(), data.clone()));
        }
        data
    }

    fn generate(&mut self, key: &str, shape: &[usize]) -> TensorData {
        let n: usize = shape.iter().product();
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let (center, half) = if key.contains("norm") || key.ends_with("gamma") {
            (1.0f32, 0.1f32 * 3f32.sqrt())
        } else if shape.len() < 2 {
            (0.0, 0.05 * 3f32.sqrt())
        } else {
            (0.0, (3.0 / fan_in as f32).sqrt())
        };
        self.state = self
            .state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let seed = self.state;
        let dtype = self.dtype;
        let width = match dtype {
            DType::BF16 | DType::F16 => 2,
            _ => 4,
        };
        let mut bytes = vec![0u8; n * width];
        // Billions of values for UMT5-XXL: fill chunks on every core, straight into the
        // target dtype.
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let per = n.div_ceil(threads).max(1 << 16);
        std::thread::scope(|scope| {
            for (i, chunk) in bytes.chunks_mut(per * width).enumerate() {
                scope.spawn(move || {
                    let mut s = (seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).max(1);
                    for out in chunk.chunks_exact_mut(width) {
                        // xorshift64*
                        s ^= s >> 12;
                        s ^= s << 25;
                        s ^= s >> 27;
                        let u = (s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32
                            / (1u64 << 24) as f32;
                        let v = center + half * (2.0 * u - 1.0);
                        match dtype {
                            DType::BF16 => {
                                out.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes())
                            }
                            DType::F16 => {
                                out.copy_from_slice(&half::f16::from_f32(v).to_le_bytes())
                            }
                            _ => out.copy_from_slice(&v.to_le_bytes()),
                        }
                    }
                });
            }
        });
        let dtype = match dtype {
            DType::BF16 | DType::F16 => dtype,
            _ => DType::F32,
        };
        TensorData::from_bytes_vec(bytes, shape.to_vec(), dtype)
    }
}

impl Checkpoint {
    /// An empty checkpoint that makes up every tensor asked for (benchmarks).
    pub fn random_fill(seed: u64, dtype: DType) -> Self {
        Self::with_fill(RandomFill::new(seed, dtype))
    }

    /// An empty checkpoint that makes up every tensor asked for with `fill`.
    pub fn with_fill(fill: RandomFill) -> Self {
        Self::from_entries(
            BTreeMap::new(),
            Layout::Original,
            PathBuf::from("<random>"),
            Some(fill),
        )
    }

    /// Random weights for `cfg` (benchmarks): `N(0, 1/fan_in)` for matrices, norms near 1,
    /// small modulation tables. Deterministic for a seed.
    pub fn random(cfg: &crate::wan::WanConfig, seed: u64, dtype: DType) -> Self {
        let mut state = seed.max(1);
        let mut next = move || {
            // xorshift64* → two uniforms → Box–Muller.
            let mut u = || {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 + 0.5)
                    / (1u64 << 53) as f64
            };
            let (a, b) = (u(), u());
            ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
        };
        let tensors = super::expected_tensors(cfg)
            .into_iter()
            .map(|(key, shape)| {
                let n: usize = shape.iter().product();
                let fan_in = if shape.len() >= 2 {
                    shape[1..].iter().product::<usize>()
                } else {
                    1
                };
                let (mean, std) = if key.contains("norm") && key.ends_with("weight") {
                    (1.0, 0.1)
                } else if key.ends_with("modulation") || key.ends_with("bias") {
                    (0.0, 0.1)
                } else {
                    (0.0, 1.0 / (fan_in as f32).sqrt())
                };
                let data: Vec<f32> = (0..n).map(|_| mean + std * next()).collect();
                let data = TensorData::new(data, shape).convert_dtype(dtype);
                (key, Entry::Data(data))
            })
            .collect();
        Self::from_entries(tensors, Layout::Original, PathBuf::from("<random>"), None)
    }
}
