//! cuDNN's convolutions against burn's own `conv2d` in f32 on the same GPU (libcudnn needed).

use super::relative_error;
use burn::tensor::{DType, Distribution, Tensor, module::conv2d, ops::ConvOptions};
use engine::cuda::{conv, gemm::Cuda};

#[test]
#[ignore = "needs an NVIDIA GPU with libcudnn (run with --ignored on the GPU machine)"]
fn cudnn_convolutions_match_burns_in_f32_and_bf16() {
    assert!(conv::available(), "libcudnn cannot be loaded here");
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // (x, w, stride, pad): a Wan VAE 3×3 over three folded time taps at a 60×104 latent
    // scale, a stride-2 downsample without padding, a 1×1 projection (these channels-last),
    // odd sizes and the VAE's 3-channel output convolution (these NCHW).
    for (xs, ws, stride, pad) in [
        ([2, 288, 60, 104], [96, 288, 3, 3], [1, 1], [1, 1]),
        ([1, 288, 48, 80], [3, 288, 3, 3], [1, 1], [1, 1]),
        ([1, 32, 61, 105], [32, 32, 3, 3], [2, 2], [0, 0]),
        ([3, 64, 30, 52], [192, 64, 1, 1], [1, 1], [0, 0]),
        ([1, 3, 17, 23], [5, 3, 3, 3], [1, 1], [1, 1]),
    ] {
        let x = Tensor::<Cuda, 4>::random(xs, normal, &device);
        let w = Tensor::<Cuda, 4>::random(ws, normal, &device) * 0.1;
        // With a bias (added to the channels-last result) and without.
        let o = ws[0];
        let bias = Tensor::<Cuda, 1>::random([o], normal, &device);
        let reference = conv2d(
            x.clone(),
            w.clone(),
            Some(bias.clone()),
            ConvOptions::new(stride, pad, [1, 1], 1),
        );
        let bias_free = reference.clone() - bias.clone().reshape([1, o, 1, 1]);
        for dtype in [DType::F32, DType::BF16] {
            let plain = conv::conv2d(
                x.clone().cast(dtype),
                w.clone().cast(dtype),
                None,
                stride,
                pad,
            );
            assert_eq!(plain.dims(), bias_free.dims());
            assert_eq!(plain.dtype(), dtype);
            let err = relative_error(plain, bias_free.clone());
            assert!(err <= 1e-2, "{dtype:?} {xs:?} * {ws:?} without bias: {err}");
            let ours = conv::conv2d(
                x.clone().cast(dtype),
                w.clone().cast(dtype),
                Some(bias.clone().cast(dtype)),
                stride,
                pad,
            );
            assert_eq!(ours.dims(), reference.dims());
            assert_eq!(ours.dtype(), dtype);
            let err = relative_error(ours, reference.clone());
            println!(
                "conv {xs:?} * {ws:?} s{stride:?} p{pad:?} {dtype:?}: relative error {err:.2e}"
            );
            // TF32 products (f32) and bf16 inputs, both with f32 accumulation.
            assert!(err <= 1e-2, "{dtype:?} {xs:?} * {ws:?}: {err}");
        }
    }
}
