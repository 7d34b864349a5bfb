//! The cuBLASLt Linear against burn's own matmul in f32 (libcublasLt needed).

use super::relative_error;
use burn::tensor::{DType, Distribution, Tensor};
use engine::cuda::gemm::{Cuda, available, linear_bf16};

/// `x·w_t (+ bias)` in f32 by burn's matmul: the reference.
fn linear_f32(
    x: &Tensor<Cuda, 2>,
    w_t: &Tensor<Cuda, 2>,
    bias: Option<&Tensor<Cuda, 1>>,
) -> Tensor<Cuda, 2> {
    let y = x
        .clone()
        .cast(DType::F32)
        .matmul(w_t.clone().cast(DType::F32));
    match bias {
        Some(b) => y + b.clone().cast(DType::F32).unsqueeze_dim(0),
        None => y,
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU with libcublasLt (run with --ignored on the GPU machine)"]
fn the_cublaslt_linear_matches_burns_matmul() {
    assert!(available(), "libcublasLt cannot be loaded here");
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // (rows, in, out, bias, weight kept as Linear keeps it: the transposed view of [out, in])
    for (m, k, n, with_bias, view) in [
        (4680, 1536, 1536, false, true), // a DiT projection over one 3-latent chunk at 480×832
        (4680, 1536, 8960, true, true),  // the FFN's first layer
        (77, 4096, 1536, true, true),    // the text embedding, odd rows
        (33, 40, 24, true, false),       // small and odd, a contiguous [in, out] weight
    ] {
        let x = Tensor::<Cuda, 2>::random([m, k], normal, &device).cast(DType::BF16);
        let w_t = if view {
            Tensor::<Cuda, 2>::random([n, k], normal, &device)
                .cast(DType::BF16)
                .transpose()
        } else {
            Tensor::<Cuda, 2>::random([k, n], normal, &device).cast(DType::BF16)
        };
        let bias =
            with_bias.then(|| Tensor::<Cuda, 1>::random([n], normal, &device).cast(DType::BF16));
        let reference = linear_f32(&x, &w_t, bias.as_ref());
        let ours = linear_bf16(x, w_t, bias);
        assert_eq!(ours.dims(), [m, n]);
        assert_eq!(ours.dtype(), DType::BF16);
        let err = relative_error(ours, reference);
        println!("[{m}, {k}] x [{k}, {n}] bias={with_bias} view={view}: relative error {err:.2e}");
        assert!(
            err <= 1e-2,
            "relative error {err} for [{m}, {k}] x [{k}, {n}]"
        );
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU with libcublasLt (run with --ignored on the GPU machine)"]
fn the_gemm_is_ordered_with_burns_kernels_around_it() {
    // Kernels queued before and after on the same stream, no host read in between: a GEMM that
    // ran early or late would read a stale input or be overwritten.
    let device = Default::default();
    let x = Tensor::<Cuda, 2>::ones([256, 512], &device).cast(DType::BF16);
    let w_t = Tensor::<Cuda, 2>::ones([512, 128], &device).cast(DType::BF16);
    let mut y = x.clone();
    for _ in 0..4 {
        let doubled = y.clone() * 2.0; // a burn kernel before: twos
        let out = linear_bf16(doubled, w_t.clone().repeat_dim(1, 4), None); // 2·512 each
        y = out / 1024.0; // a burn kernel after: ones again
    }
    let values = y.cast(DType::F32).into_data().to_vec::<f32>().unwrap();
    assert!(
        values.iter().all(|v| (v - 1.0).abs() < 1e-2),
        "{:?}",
        &values[..8]
    );
}

#[test]
#[ignore = "needs an NVIDIA GPU with libcublasLt (the CUDA ops not turned off by HANZO_LIVE_CUDA_OPS=0)"]
fn the_engines_linear_goes_through_cublaslt_when_enabled() {
    assert!(
        engine::cuda::enabled(),
        "the CUDA ops are off (HANZO_LIVE_CUDA_OPS=0 or an older GPU)"
    );
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    let w = Tensor::<Cuda, 2>::random([1536, 4096], normal, &device).cast(DType::BF16);
    let b = Tensor::<Cuda, 1>::random([1536], normal, &device).cast(DType::BF16);
    let linear = engine::wan::nn::Linear::new(w.clone().transpose(), Some(b.clone()));
    // [batch, tokens, in] as the DiT's text embedding sees it.
    let x = Tensor::<Cuda, 3>::random([2, 77, 4096], normal, &device).cast(DType::BF16);
    let ours = linear.forward(x.clone()).reshape([2 * 77, 1536]);
    let reference = x
        .reshape([2 * 77, 4096])
        .cast(DType::F32)
        .matmul(w.cast(DType::F32).transpose())
        + b.cast(DType::F32).unsqueeze_dim(0);
    let err = relative_error(ours, reference);
    println!("Linear [2, 77, 4096] → 1536 through the engine: relative error {err:.2e}");
    assert!(err <= 1e-2, "relative error {err}");
    // f32 stays on burn's matmul (the op is bf16 only) and is exact to f32 rounding.
    let x32 = Tensor::<Cuda, 2>::random([33, 40], normal, &device);
    let w32 = Tensor::<Cuda, 2>::random([40, 24], normal, &device);
    let l32 = engine::wan::nn::Linear::new(w32.clone(), None);
    let d = (l32.forward(x32.clone()) - x32.matmul(w32))
        .abs()
        .max()
        .into_scalar();
    assert!(d <= 1e-4, "{d}");
}

#[test]
#[ignore = "needs an NVIDIA GPU with libcublasLt (run with --ignored on the GPU machine)"]
fn the_gelu_epilogue_matches_gelu_tanh_in_f32() {
    assert!(available(), "libcublasLt cannot be loaded here");
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // The FFN's first layer at one latent frame of 480×832, and a small odd one without bias.
    for (m, k, n, with_bias) in [(1560, 1536, 8960, true), (37, 24, 40, false)] {
        let x = Tensor::<Cuda, 2>::random([m, k], normal, &device).cast(DType::BF16);
        let w_t = Tensor::<Cuda, 2>::random([n, k], normal, &device)
            .cast(DType::BF16)
            .transpose();
        let bias =
            with_bias.then(|| Tensor::<Cuda, 1>::random([n], normal, &device).cast(DType::BF16));
        let reference = engine::wan::nn::gelu_tanh(linear_f32(&x, &w_t, bias.as_ref()));
        let ours = engine::cuda::gemm::linear_gelu_bf16(x, w_t, bias);
        let err = relative_error(ours, reference);
        println!(
            "GELU epilogue [{m}, {k}] x [{k}, {n}] bias={with_bias}: relative error {err:.2e}"
        );
        assert!(err <= 1e-2, "relative error {err}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU with libcublasLt (the CUDA ops not turned off by HANZO_LIVE_CUDA_OPS=0)"]
fn the_residual_epilogue_adds_c_once_and_leaves_it_untouched() {
    assert!(available(), "libcublasLt cannot be loaded here");
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // The cross-attention's o projection over one chunk at 480×832; a small odd one whose
    // residual is a transposed (strided) view, so it is copied first.
    for (m, k, n, strided) in [(4680, 1536, 1536, false), (37, 24, 40, true)] {
        let x = Tensor::<Cuda, 2>::random([m, k], normal, &device).cast(DType::BF16);
        let w_t = Tensor::<Cuda, 2>::random([n, k], normal, &device)
            .cast(DType::BF16)
            .transpose();
        let bias = Tensor::<Cuda, 1>::random([n], normal, &device).cast(DType::BF16);
        let residual = if strided {
            Tensor::<Cuda, 2>::random([n, m], normal, &device)
                .cast(DType::BF16)
                .transpose()
        } else {
            // Made by a burn kernel just before: the GEMM must wait for it.
            Tensor::<Cuda, 2>::random([m, n], normal, &device).cast(DType::BF16) * 4.0
        };
        let before = residual.clone().cast(DType::F32).into_data();
        let reference = linear_f32(&x, &w_t, Some(&bias)) + residual.clone().cast(DType::F32);
        let ours = engine::cuda::gemm::linear_residual_bf16(x, w_t, Some(bias), residual.clone());
        assert_eq!(ours.dims(), [m, n]);
        let err = relative_error(ours, reference);
        println!(
            "residual epilogue [{m}, {k}] x [{k}, {n}] strided={strided}: relative error {err:.2e}"
        );
        assert!(err <= 1e-2, "relative error {err}");
        // C is read, never written.
        residual
            .cast(DType::F32)
            .into_data()
            .assert_eq(&before, true);
    }
    // Through the engine's Linear, [batch, tokens, D] as the DiT's blocks call it.
    let w = Tensor::<Cuda, 2>::random([64, 96], normal, &device).cast(DType::BF16);
    let linear = engine::wan::nn::Linear::new(w.clone().transpose(), None);
    let x = Tensor::<Cuda, 3>::random([2, 50, 96], normal, &device).cast(DType::BF16);
    let r = Tensor::<Cuda, 3>::random([2, 50, 64], normal, &device).cast(DType::BF16);
    let ours = linear.forward_residual(x.clone(), r.clone());
    let reference = linear.forward(x).cast(DType::F32) + r.cast(DType::F32);
    let err = relative_error(ours.reshape([100, 64]), reference.reshape([100, 64]));
    println!("Linear::forward_residual [2, 50, 96] → 64: relative error {err:.2e}");
    assert!(err <= 1e-2, "relative error {err}");
}

#[test]
#[ignore = "needs an NVIDIA GPU with fp8 tensor cores (8.9+), libcublasLt (the CUDA ops not turned off by HANZO_LIVE_CUDA_OPS=0)"]
fn the_fp8_gemm_matches_its_emulation_and_stays_near_bf16() {
    use engine::wan::{
        nn::{Linear, Weight},
        quant,
    };
    assert!(
        engine::cuda::fp8::supported(),
        "needs the CUDA ops on a GPU of compute capability 8.9+ with libcublasLt"
    );
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // The DiT's FFN in (1536 → 8960, GELU) and out (8960 → 1536) over one 3-frame chunk's
    // tokens at a small size, and a q projection over an odd number of rows.
    for (rows, d_in, d_out, gelu) in [
        (390, 1536, 8960, true),
        (390, 8960, 1536, false),
        (77, 1536, 1536, false),
    ] {
        let w = Tensor::<Cuda, 2>::random([d_out, d_in], normal, &device).cast(DType::BF16) * 0.05;
        let b = Tensor::<Cuda, 1>::random([d_out], normal, &device).cast(DType::BF16);
        let x = Tensor::<Cuda, 2>::random([rows, d_in], normal, &device).cast(DType::BF16);
        let mut lin = Linear::new(w.clone().transpose(), Some(b.clone()));
        lin.quantize_fp8();
        let Weight::Fp8(f) = &lin.weight else {
            panic!("a bf16 layer of these shapes quantizes for the fp8 GEMM");
        };
        let ours = if gelu {
            lin.forward_gelu(x.clone())
        } else {
            lin.forward(x.clone())
        };
        let act = |y: Tensor<Cuda, 2>| {
            if gelu {
                engine::wan::nn::gelu_tanh(y)
            } else {
                y
            }
        };
        // The same rounding of the operands, multiplied in f32.
        let emulated = act(
            quant::fake_quantize_input(x.clone()).matmul(f.dequantized_t())
                + b.clone().cast(DType::F32).unsqueeze_dim(0),
        );
        let err = relative_error(ours.clone(), emulated);
        println!(
            "fp8 [{rows}, {d_in}] → {d_out} (gelu {gelu}) vs its emulation: relative error {err:.2e}"
        );
        assert!(err <= 5e-3, "fp8 vs emulation: {err}");
        let exact = act(x.cast(DType::F32).matmul(w.cast(DType::F32).transpose())
            + b.cast(DType::F32).unsqueeze_dim(0));
        let err = relative_error(ours, exact);
        println!("fp8 [{rows}, {d_in}] → {d_out} (gelu {gelu}) vs f32: relative error {err:.2e}");
        assert!(err <= 0.1, "fp8 vs f32: {err}");
    }
}
