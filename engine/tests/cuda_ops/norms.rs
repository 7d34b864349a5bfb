//! The fused row kernels (RMSNorm, LayerNorm + modulation or affine, gated add) against burn's f32 ops
//! on the same GPU (compute capability 8.0+ and NVRTC needed).

use super::relative_error;
use burn::tensor::{DType, Distribution, Tensor};
use engine::cuda::{gemm::Cuda, norms};

fn random<const D: usize>(shape: [usize; D]) -> Tensor<Cuda, D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
}

/// Part `i` of m `[B, F, 6, D]` broadcast over each frame's tokens: `[B, L, D]`.
fn per_token(m: &Tensor<Cuda, 4>, i: usize, l: usize) -> Tensor<Cuda, 3> {
    let [b, f, _, d] = m.dims();
    let p: Tensor<Cuda, 4> = m.clone().narrow(2, i, 1).reshape([b, f, 1, d]);
    p.expand([b, f, l / f, d]).reshape([b, l, d])
}

#[test]
#[ignore = "needs an NVIDIA GPU (compute capability 8.0+) (the CUDA ops not turned off by HANZO_LIVE_CUDA_OPS=0)"]
fn a_broadcast_modulation_keeps_the_portable_path() {
    assert!(
        engine::cuda::enabled(),
        "the CUDA ops are off (HANZO_LIVE_CUDA_OPS=0 or an older GPU)"
    );
    // One modulation row shared by a batch of 2 (the kernels want one per batch row): the
    // dispatch declines instead of the kernel asserting.
    let x = random([2, 6, 64]).cast(DType::BF16);
    let m = random([1, 3, 6, 64]);
    assert!(engine::cuda::layer_norm_modulate(x.clone(), &m, 0, 1, 1e-6).is_err());
    assert!(engine::cuda::gated_add(x.clone(), x, &m, 2).is_err());
}

#[test]
#[ignore = "needs an NVIDIA GPU (compute capability 8.0+) and NVRTC"]
fn the_fused_row_kernels_match_burns_f32_ops() {
    // (batch, tokens, dim, frames): Wan 1.3B's dim over one 3-frame chunk's tokens at a small
    // size, another dim, the 14B's dim (the kernels' 8-wide forms), a dim that is not a
    // multiple of 8 (the forms for any dim).
    for (b, l, d, f) in [
        (1, 3 * 390, 1536, 3),
        (2, 21, 1000, 3),
        (1, 12, 5120, 1),
        (2, 10, 36, 2),
    ] {
        let x = random([b, l, d]).cast(DType::BF16);
        let x32 = x.clone().cast(DType::F32);

        let w = random([d]);
        let ms = (x32.clone() * x32.clone()).mean_dim(2);
        let reference =
            x32.clone() / (ms + 1e-6).sqrt() * w.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0);
        let err = relative_error(norms::rms_norm_bf16(x.clone(), &w, 1e-6), reference);
        println!("RMSNorm [{b}, {l}, {d}]: relative error {err:.2e}");
        assert!(err <= 1e-2, "RMSNorm: {err}");

        let m = random([b, f, 6, d]) * 0.5;
        let normed = engine::wan::nn::layer_norm_f32(x32.clone(), 1e-6);
        let reference = normed * (per_token(&m, 4, l) + 1.0) + per_token(&m, 3, l);
        let ours = norms::layer_norm_modulate_bf16(x.clone(), &m, 3, 4, 1e-6);
        let err = relative_error(ours, reference);
        println!("LayerNorm + modulation [{b}, {l}, {d}], {f} frames: relative error {err:.2e}");
        assert!(err <= 1e-2, "LayerNorm + modulation: {err}");

        let (lw, lb) = (random([d]), random([d]));
        let normed = engine::wan::nn::layer_norm_f32(x32.clone(), 1e-6);
        let reference = normed * lw.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0)
            + lb.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0);
        let err = relative_error(
            norms::layer_norm_affine_bf16(x.clone(), &lw, &lb, 1e-6),
            reference,
        );
        println!("LayerNorm (affine) [{b}, {l}, {d}]: relative error {err:.2e}");
        assert!(err <= 1e-2, "LayerNorm (affine): {err}");

        let y = random([b, l, d]).cast(DType::BF16);
        let reference = x32 + y.clone().cast(DType::F32) * per_token(&m, 5, l);
        let err = relative_error(norms::gated_add_bf16(x, y, &m, 5), reference);
        println!("gated add [{b}, {l}, {d}]: relative error {err:.2e}");
        assert!(err <= 1e-2, "gated add: {err}");
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU (compute capability 8.0+) and NVRTC"]
fn rms_norm_with_the_rotary_embedding_matches_the_two_steps_in_f32() {
    use engine::wan::{WanConfig, rope::Rope};
    let device = Default::default();
    // The 1.3B's heads (128 wide: the kernel's 8-wide form), the tiny config's (12 wide: six
    // pairs, the form for any width); one chunk of 3 frames of 3×5 tokens (starting at frame
    // 5), then a stream batch of 2 rows at different frames (per-row angles).
    let configs = [WanConfig::t2v_1_3b(), WanConfig::tiny()];
    for (cfg, starts) in configs
        .iter()
        .flat_map(|c| [(c, vec![5usize]), (c, vec![2, 7])])
    {
        let (heads, d) = (cfg.num_heads, cfg.head_dim());
        let b = starts.len();
        let rope = Rope::<Cuda>::rows(cfg, &starts, 3, 3, 5, &device);
        let l = rope.cos.dims()[1];
        let x = random([b, l, heads * d]).cast(DType::BF16);
        let w = random([heads * d]);
        let x32 = x.clone().cast(DType::F32);
        let ms = (x32.clone() * x32.clone()).mean_dim(2);
        let normed =
            x32.clone() / (ms + 1e-6).sqrt() * w.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0);
        let reference = rope
            .apply(normed.reshape([b, l, heads, d]))
            .reshape([b, l, heads * d]);
        let ours = norms::rms_norm_rope_bf16(x.clone(), &w, &rope.cos, &rope.sin, 1e-6);
        let err = relative_error(ours.clone(), reference);
        println!(
            "RMSNorm + RoPE [{b}, {l}, {}], starts {starts:?}: relative error {err:.2e}",
            heads * d
        );
        assert!(err <= 1e-2, "RMSNorm + RoPE: {err}");
        // x read in place as the middle third of a joined q|k|v projection (rows 3·D apart):
        // the same numbers as from the contiguous x.
        let joined = Tensor::cat(
            vec![
                random([b, l, heads * d]).cast(DType::BF16),
                x,
                random([b, l, heads * d]).cast(DType::BF16),
            ],
            2,
        );
        let view = joined.narrow(2, heads * d, heads * d);
        let strided = norms::rms_norm_rope_bf16(view, &w, &rope.cos, &rope.sin, 1e-6);
        let diff = (strided.cast(DType::F32) - ours.cast(DType::F32))
            .abs()
            .max()
            .into_scalar();
        println!("RMSNorm + RoPE of a q|k|v view, starts {starts:?}: max diff {diff}");
        assert_eq!(diff, 0.0, "the strided read differs");
    }
}
