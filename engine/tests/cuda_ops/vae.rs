//! The Wan VAE's own kernels on the GPU: the causal convolution's folded input built
//! channels-last against the same built by concatenations in burn, exactly (a copy: no
//! arithmetic); the RMS norm + SiLU against burn's in f32; the residual add against burn's.

use burn::tensor::{DType, Distribution, Tensor};
use engine::cuda::{
    gemm::Cuda,
    vae::{Taps, causal_taps_nhwc, residual_add, rms_norm_silu},
};

/// The reference: zeros ++ history ++ x along the frames, then output frame t's taps
/// `first..first + live` side by side on the channels, as `[B·t_out, live·C, H, W]`.
fn by_concatenation(
    history: Option<Tensor<Cuda, 5>>,
    x: Tensor<Cuda, 5>,
    t: Taps,
) -> Tensor<Cuda, 4> {
    let [b, _, c, h, w] = x.dims();
    let mut parts = vec![];
    if t.zeros > 0 {
        parts.push(Tensor::zeros(
            [b, t.zeros, c, h, w],
            (&x.device(), x.dtype()),
        ));
    }
    parts.extend(history);
    parts.push(x);
    let xp = Tensor::cat(parts, 1);
    let mut frames = vec![];
    for out in 0..t.t_out {
        let taps: Vec<_> = (0..t.live)
            .map(|k| xp.clone().narrow(1, out * t.stride_t + t.first + k, 1))
            .collect();
        frames.push(Tensor::cat(taps, 2));
    }
    Tensor::cat(frames, 1).reshape([b * t.t_out, t.live * c, h, w])
}

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn the_taps_kernel_lays_out_the_frames_as_the_concatenations_do() {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // (batch, input frames, history frames, channels, h, w, taps): a stream's first chunk (2
    // zero frames, the last tap only), a later chunk with 2 frames of history, the time
    // downsample's stride 2, odd sizes around the 32×32 tiles.
    let cases = [
        (
            1,
            1,
            0,
            96,
            30,
            52,
            Taps {
                zeros: 2,
                first: 2,
                live: 1,
                stride_t: 1,
                t_out: 1,
            },
        ),
        (
            1,
            4,
            2,
            96,
            30,
            52,
            Taps {
                zeros: 0,
                first: 0,
                live: 3,
                stride_t: 1,
                t_out: 4,
            },
        ),
        (
            2,
            4,
            1,
            40,
            17,
            33,
            Taps {
                zeros: 1,
                first: 0,
                live: 3,
                stride_t: 1,
                t_out: 4,
            },
        ),
        (
            1,
            4,
            1,
            64,
            16,
            16,
            Taps {
                zeros: 0,
                first: 0,
                live: 3,
                stride_t: 2,
                t_out: 2,
            },
        ),
    ];
    for (b, t, nh, c, h, w, taps) in cases {
        for dtype in [DType::F32, DType::BF16] {
            let x = Tensor::<Cuda, 5>::random([b, t, c, h, w], normal, &device).cast(dtype);
            let history = (nh > 0)
                .then(|| Tensor::<Cuda, 5>::random([b, nh, c, h, w], normal, &device).cast(dtype));
            let expected = by_concatenation(history.clone(), x.clone(), taps);
            let ours = causal_taps_nhwc(history, x, taps);
            assert_eq!(ours.dims(), [b * taps.t_out, h, w, taps.live * c]);
            assert_eq!(ours.dtype(), dtype);
            let diff = (ours.permute([0, 3, 1, 2]).cast(DType::F32) - expected.cast(DType::F32))
                .abs()
                .max()
                .into_scalar();
            println!("{taps:?} b {b} t {t} history {nh} c {c} {h}×{w} {dtype:?}: max diff {diff}");
            assert_eq!(diff, 0.0, "{taps:?} {dtype:?}");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn a_history_that_is_a_view_of_a_larger_tensor_is_read_through_its_strides() {
    // The VAE keeps the last two frames of (history ++ x) as a narrowed view.
    let device = Default::default();
    let big = Tensor::<Cuda, 5>::random([1, 5, 48, 20, 24], Distribution::Default, &device);
    let history = big.narrow(1, 3, 2);
    let x = Tensor::<Cuda, 5>::random([1, 4, 48, 20, 24], Distribution::Default, &device);
    let taps = Taps {
        zeros: 0,
        first: 0,
        live: 3,
        stride_t: 1,
        t_out: 4,
    };
    let expected = by_concatenation(Some(history.clone()), x.clone(), taps);
    let ours = causal_taps_nhwc(Some(history), x, taps).permute([0, 3, 1, 2]);
    let diff = (ours - expected).abs().max().into_scalar();
    assert_eq!(diff, 0.0);
}

/// `silu(x / max(‖x‖_C, 1e-12) · √C · γ)` in f32 by burn's own ops.
fn norm_silu_reference(x: Tensor<Cuda, 5>, gamma: Tensor<Cuda, 1>) -> Tensor<Cuda, 5> {
    let c = x.dims()[2];
    let x = x.cast(DType::F32);
    let norm = (x.clone() * x.clone()).sum_dim(2).sqrt().clamp_min(1e-12);
    let g = gamma.cast(DType::F32).reshape([1, 1, c, 1, 1]) * (c as f64).sqrt();
    burn::tensor::activation::silu(x / norm * g)
}

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn the_norm_kernel_matches_burns_on_frame_major_and_channels_last_inputs() {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    for (b, t, c, h, w) in [(1, 4, 96, 30, 52), (2, 1, 40, 17, 33), (1, 2, 384, 8, 12)] {
        let gamma = Tensor::<Cuda, 1>::random([c], normal, &device);
        // Frame-major, and the view of a channels-last [B·T, H, W, C] buffer a convolution
        // leaves.
        let frame_major = Tensor::<Cuda, 5>::random([b, t, c, h, w], normal, &device);
        let channels_last =
            Tensor::<Cuda, 5>::random([b, t, h, w, c], normal, &device).permute([0, 1, 4, 2, 3]);
        for x in [frame_major, channels_last] {
            let expected = norm_silu_reference(x.clone(), gamma.clone());
            for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 1e-2)] {
                let ours = rms_norm_silu(x.clone().cast(dtype), &gamma.clone().cast(dtype));
                assert_eq!(ours.dims(), [b, t, c, h, w]);
                assert_eq!(ours.dtype(), dtype);
                let err = super::relative_error(ours, expected.clone());
                println!("[{b}, {t}, {c}, {h}, {w}] {dtype:?}: relative error {err:.2e}");
                assert!(
                    err <= tolerance,
                    "{dtype:?} [{b}, {t}, {c}, {h}, {w}]: {err}"
                );
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --ignored on the GPU machine)"]
fn the_residual_add_kernel_matches_burns_add_in_every_pair_of_layouts() {
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // The decoder's last stage at 480×832 / 8 (odd pixel and channel tiles), a small odd one
    // with two batches, and 384 channels over two frames.
    for (b, t, c, h, w) in [(1, 4, 96, 60, 104), (2, 3, 40, 17, 33), (1, 2, 384, 8, 12)] {
        let frame_major = || Tensor::<Cuda, 5>::random([b, t, c, h, w], normal, &device);
        let channels_last =
            || Tensor::<Cuda, 5>::random([b, t, h, w, c], normal, &device).permute([0, 1, 4, 2, 3]);
        let pairs = [
            (
                "channels-last + frame-major",
                channels_last(),
                frame_major(),
            ),
            (
                "frame-major + channels-last",
                frame_major(),
                channels_last(),
            ),
            (
                "channels-last + channels-last",
                channels_last(),
                channels_last(),
            ),
            ("frame-major + frame-major", frame_major(), frame_major()),
        ];
        for (name, y, x) in pairs {
            for dtype in [DType::F32, DType::BF16] {
                let (y, x) = (y.clone().cast(dtype), x.clone().cast(dtype));
                let expected = (y.clone() + x.clone()).cast(DType::F32);
                let ours = residual_add(y, x);
                assert_eq!(ours.dims(), [b, t, c, h, w]);
                assert_eq!(ours.dtype(), dtype);
                // f32: the same one addition, exactly; bf16: the f32 sum rounded once, within
                // a bf16 rounding of burn's.
                let scale = expected.clone().abs().max().into_scalar();
                let d = (ours.cast(DType::F32) - expected).abs().max().into_scalar();
                println!("[{b}, {t}, {c}, {h}, {w}] {name} {dtype:?}: max difference {d:e}");
                let tolerance = if dtype == DType::F32 {
                    0.0
                } else {
                    scale / 128.0
                };
                assert!(
                    d <= tolerance,
                    "{name} {dtype:?} [{b}, {t}, {c}, {h}, {w}]: {d}"
                );
            }
        }
    }
}
