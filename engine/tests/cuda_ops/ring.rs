//! StreamDiffusionV2's adaptive sink on the GPU (`engine::cuda::ring`): the kernels' slot
//! against the §8 rule over similarities computed here on the host, the frame copied into it
//! exactly, a ring another tensor still holds left untouched; and a `RingCache` stream on the
//! GPU (through the kernels) against the same stream on the CPU (burn's operations): the same
//! slots, refreshes and attended keys.

use burn::{
    backend::Flex,
    tensor::{DType, Distribution, Tensor, TensorData, backend::Backend},
};
use engine::{
    cuda::{
        gemm::Cuda,
        ring::{AdaptiveWrite, adaptive_write},
    },
    pipeline::wan::ring::{RingCache, RingConfig, adaptive_sink_choice},
    wan::cache::KvCache,
};

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.cast(DType::F32)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap()
}

/// The mean over `fs` tokens of each of `frames` frames stored one after another.
fn frame_means(x: &[f32], frames: usize, fs: usize, hd: usize) -> Vec<Vec<f64>> {
    (0..frames)
        .map(|f| {
            (0..hd)
                .map(|j| {
                    (0..fs)
                        .map(|t| x[(f * fs + t) * hd + j] as f64)
                        .sum::<f64>()
                        / fs as f64
                })
                .collect()
        })
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-8)
}

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn the_ring_kernels_write_the_frame_where_the_rule_says() {
    let device = Default::default();
    Cuda::seed(&device, 11);
    let (rows, frames, sink, fs, h, d) = (3, 6, 3, 37, 2, 64);
    let hd = h * d;
    for dtype in [DType::F32, DType::BF16] {
        // Sink frames leaning on their own direction each, so the similarities spread.
        let base = Tensor::<Cuda, 4>::random(
            [rows, frames * fs, h, d],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let lean = Tensor::<Cuda, 4>::random(
            [rows, frames, 1, hd],
            Distribution::Uniform(-2.0, 2.0),
            &device,
        )
        .repeat_dim(2, fs)
        .reshape([rows, frames * fs, h, d]);
        let ring_k = (base + lean).cast(dtype);
        let ring_v = Tensor::<Cuda, 4>::random(
            [rows, frames * fs, h, d],
            Distribution::Normal(0.5, 1.0),
            &device,
        )
        .cast(dtype);
        let new_k =
            Tensor::<Cuda, 4>::random([2, fs, h, d], Distribution::Normal(0.3, 1.0), &device)
                .cast(dtype);
        let new_v =
            Tensor::<Cuda, 4>::random([2, fs, h, d], Distribution::Normal(0.2, 1.0), &device)
                .cast(dtype);
        let (rk, rv, nk, nv) = (
            values(ring_k.clone()),
            values(ring_v.clone()),
            values(new_k.clone()),
            values(new_v.clone()),
        );
        let writes = [
            AdaptiveWrite {
                batch: 0,
                row: 2,
                fifo: 4,
            },
            AdaptiveWrite {
                batch: 1,
                row: 0,
                fifo: 5,
            },
        ];
        let row_len = frames * fs * hd;
        let similarities: Vec<Vec<f64>> = writes
            .iter()
            .map(|w| {
                let ring =
                    |x: &[f32]| frame_means(&x[w.row * row_len..][..sink * fs * hd], sink, fs, hd);
                let new = |x: &[f32]| {
                    frame_means(&x[w.batch * fs * hd..][..fs * hd], 1, fs, hd).remove(0)
                };
                let (sk, sv, fk, fv) = (ring(&rk), ring(&rv), new(&nk), new(&nv));
                (0..sink)
                    .map(|s| (cosine(&sk[s], &fk) + cosine(&sv[s], &fv)) / 2.0)
                    .collect()
            })
            .collect();
        let minima: Vec<f64> = similarities
            .iter()
            .map(|s| s.iter().copied().fold(f64::INFINITY, f64::min))
            .collect();
        // Thresholds below both minima, above both, and between them (one row refreshes).
        let (lo, hi) = (minima[0].min(minima[1]), minima[0].max(minima[1]));
        assert!(
            hi - lo > 1e-3,
            "the rows' minima too close to split: {minima:?}"
        );
        // The last case moves the rings in (nothing else holds them: written in place); the
        // others keep clones (written to copies, the clones untouched).
        let mut rings = Some((ring_k, ring_v));
        for (i, threshold) in [lo - 0.5, (lo + hi) / 2.0, hi + 0.5]
            .into_iter()
            .enumerate()
        {
            let (ring_k, ring_v) = if i == 2 {
                rings.take().unwrap()
            } else {
                rings.clone().unwrap()
            };
            let held = (i < 2).then(|| ring_k.clone());
            let (k, v, slots) = adaptive_write(
                ring_k,
                ring_v,
                new_k.clone(),
                new_v.clone(),
                frames,
                sink,
                threshold,
                &writes,
            );
            let expected: Vec<f32> = writes
                .iter()
                .zip(&similarities)
                .map(|(w, s)| adaptive_sink_choice(s, threshold).unwrap_or(w.fifo) as f32)
                .collect();
            assert_eq!(
                values(slots),
                expected,
                "{dtype:?} at {threshold}: {similarities:?}"
            );
            let (mut ek, mut ev) = (rk.clone(), rv.clone());
            for (w, slot) in writes.iter().zip(&expected) {
                let at = w.row * row_len + *slot as usize * fs * hd;
                let from = w.batch * fs * hd;
                ek[at..at + fs * hd].copy_from_slice(&nk[from..from + fs * hd]);
                ev[at..at + fs * hd].copy_from_slice(&nv[from..from + fs * hd]);
            }
            assert!(
                values(k) == ek,
                "{dtype:?} at {threshold}: K written elsewhere"
            );
            assert!(
                values(v) == ev,
                "{dtype:?} at {threshold}: V written elsewhere"
            );
            if let Some(held) = held {
                assert!(
                    values(held) == rk,
                    "{dtype:?}: a ring still held was written"
                );
            }
            println!("{dtype:?} at {threshold:.3}: slots {expected:?} ({similarities:.3?})");
        }
    }
}

/// The ring the stream test uses: 5 slots, 2 of them sinks, threshold 0.2.
fn stream_config(fs: usize) -> RingConfig {
    RingConfig {
        frames: 5,
        sink: 2,
        frame_tokens: fs,
        adapt_threshold: 0.2,
    }
}

/// Writes one-frame chunks into a 2-layer ring of two rows on `B` (row 0 gets frame `i` of
/// chunk `i`, row 1 frame `i + 5`, wrapping) and returns every layer's and row's slot
/// occupants after each chunk, the refresh count and each layer's last attended keys.
#[allow(clippy::type_complexity)]
fn stream<B: Backend>(
    device: &B::Device,
    frames_k: &[Vec<f32>],
    frames_v: &[Vec<f32>],
    fs: usize,
    h: usize,
    d: usize,
) -> (Vec<Vec<Option<i64>>>, u64, Vec<Vec<f32>>) {
    let mut ring = RingCache::<B>::new(stream_config(fs), 2, 2, h, d, device, DType::F32);
    let n = frames_k.len();
    let two = |frames: &[Vec<f32>], i: usize| {
        let values = [frames[i].clone(), frames[(i + 5) % n].clone()].concat();
        Tensor::<B, 4>::from_data(TensorData::new(values, [2, fs, h, d]), device)
    };
    let mut occupants = vec![];
    let mut last = vec![vec![]; 2];
    for i in 0..n {
        let start = i * fs;
        let (k, v) = (two(frames_k, i), two(frames_v, i));
        for (layer, last) in last.iter_mut().enumerate() {
            *last = values(ring.attend(layer, &[start, start], k.clone(), v.clone()).k);
        }
        for layer in 0..2 {
            for row in 0..2 {
                occupants.push(ring.occupants(layer, row));
            }
        }
    }
    (occupants, ring.sink_refreshes(), last)
}

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn a_ring_cache_stream_on_the_gpu_keeps_the_cpus_books() {
    assert!(
        engine::cuda::ring_kernel_enabled(),
        "run without HANZO_LIVE_RING_KERNEL=0: with it both streams take burn's operations"
    );
    let (fs, h, d, chunks) = (24, 2, 32, 16);
    let hd = h * d;
    // The kernels take the stream's shapes (else both streams would take burn's operations).
    let device = Default::default();
    let ring = Tensor::<Cuda, 4>::zeros([2, 5 * fs, h, d], &device);
    let new = Tensor::<Cuda, 4>::zeros([2, fs, h, d], &device);
    let write = |batch| AdaptiveWrite {
        batch,
        row: batch,
        fifo: 2,
    };
    assert!(engine::cuda::ring::supports(
        [&ring, &ring],
        [&new, &new],
        stream_config(fs).frames,
        stream_config(fs).sink,
        &[write(0), write(1)],
    ));
    // Frames that wander between a few directions: some similar to the sinks, some not.
    let mut seed = 7u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64) as f32 * 2.0 - 1.0
    };
    let directions: Vec<Vec<f32>> = (0..4).map(|_| (0..hd).map(|_| next()).collect()).collect();
    let frame = |dir: &[f32], next: &mut dyn FnMut() -> f32| -> Vec<f32> {
        (0..fs)
            .flat_map(|_| dir.iter().map(|x| x + 0.3 * next()).collect::<Vec<_>>())
            .collect()
    };
    let pick = [0, 0, 1, 1, 2, 0, 3, 3, 1, 2, 2, 0, 3, 1, 0, 2];
    let frames_k: Vec<Vec<f32>> = (0..chunks)
        .map(|i| frame(&directions[pick[i]], &mut next))
        .collect();
    let frames_v: Vec<Vec<f32>> = (0..chunks)
        .map(|i| frame(&directions[(pick[i] + 1) % 4], &mut next))
        .collect();
    let (gpu_occ, gpu_refreshes, gpu_last) =
        stream::<Cuda>(&device, &frames_k, &frames_v, fs, h, d);
    let (cpu_occ, cpu_refreshes, cpu_last) =
        stream::<Flex>(&Default::default(), &frames_k, &frames_v, fs, h, d);
    println!(
        "refreshes: GPU {gpu_refreshes}, CPU {cpu_refreshes}; last occupants {:?}",
        gpu_occ.last()
    );
    assert_eq!(gpu_occ, cpu_occ);
    assert_eq!(gpu_refreshes, cpu_refreshes);
    assert!(
        gpu_refreshes > 0,
        "the stream never refreshed a sink: it tests nothing"
    );
    assert_eq!(gpu_last, cpu_last);
}
