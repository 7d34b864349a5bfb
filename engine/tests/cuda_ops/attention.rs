//! The fused attention kernel against softmax(q·kᵀ/√d)·v in f32 on the same GPU, on odd
//! lengths, strided and expanded inputs (compute capability 8.0+ and NVRTC needed).

use super::relative_error;
use burn::tensor::{DType, Distribution, Tensor, activation::softmax};
use engine::cuda::{
    attention::{
        FlashKernel, cudnn_fallback, flash_attention_bf16, flash_attention_spans_bf16,
        flash_attention_with,
    },
    gemm::Cuda,
};

/// The cuDNN variant must have run cuDNN, not its fallback.
fn ran_as_named(kernel: FlashKernel) {
    if kernel == FlashKernel::Cudnn {
        assert_eq!(cudnn_fallback(), None, "cuDNN's attention fell back");
    }
}

fn reference(q: Tensor<Cuda, 4>, k: Tensor<Cuda, 4>, v: Tensor<Cuda, 4>) -> Tensor<Cuda, 4> {
    let d = q.dims()[3] as f64;
    let [q, k, v] = [q, k, v].map(|t| t.cast(DType::F32));
    softmax(q.matmul(k.swap_dims(2, 3)) / d.sqrt(), 3).matmul(v)
}

fn bf16(shape: [usize; 4]) -> Tensor<Cuda, 4> {
    Tensor::<Cuda, 4>::random(shape, Distribution::Normal(0.0, 1.0), &Default::default())
        .cast(DType::BF16)
}

#[test]
#[ignore = "needs an NVIDIA GPU (compute capability 8.0+) and NVRTC"]
fn the_fused_kernel_matches_the_f32_reference() {
    // (batch, heads, Lq, Lk): one query, odd lengths around the 64-row tiles, Wan's shapes.
    for (b, h, lq, lk) in [
        (1, 1, 1, 1),
        (1, 2, 1, 77),
        (2, 3, 63, 65),
        (1, 2, 65, 129),
        (2, 12, 200, 512),
        (1, 12, 1560, 4680),
        (1, 12, 4680, 4680),
    ] {
        // q, k and v as the DiT makes them: [B, L, H, d] projections seen as [B, H, L, d].
        let q = bf16([b, lq, h, 128]).swap_dims(1, 2);
        let k = bf16([b, lk, h, 128]).swap_dims(1, 2);
        let v = bf16([b, lk, h, 128]).swap_dims(1, 2);
        let expected = reference(q.clone(), k.clone(), v.clone());
        for kernel in FlashKernel::ALL {
            let keys = 0..lk;
            let out = flash_attention_with(
                kernel,
                q.clone(),
                k.clone(),
                v.clone(),
                std::slice::from_ref(&keys),
            );
            assert_eq!(out.dims(), [b, h, lq, 128]);
            assert_eq!(out.dtype(), DType::BF16);
            let err = relative_error(out, expected.clone());
            println!("{kernel:?} [{b}, {h}, {lq}] × kv {lk}: relative error {err:.2e}");
            ran_as_named(kernel);
            assert!(
                err <= 1e-2,
                "{kernel:?}: relative error {err} at b {b} h {h} lq {lq} lk {lk}"
            );
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU (compute capability 8.0+) and NVRTC"]
fn an_expanded_batch_and_a_contiguous_layout_are_read_in_place() {
    // The cross-attention cache: batch 1 expanded to the queries' 3 (stride 0), 512 keys.
    let q = bf16([3, 12, 100, 128]);
    let k = bf16([1, 12, 512, 128]).expand([3, 12, 512, 128]);
    let v = bf16([1, 12, 512, 128]).expand([3, 12, 512, 128]);
    let expected = reference(q.clone(), k.clone(), v.clone());
    let err = relative_error(
        flash_attention_bf16(q.clone(), k.clone(), v.clone()),
        expected.clone(),
    );
    println!("expanded batch: relative error {err:.2e}");
    assert!(err <= 1e-2, "{err}");
    let keys = 0..512;
    let err = relative_error(
        flash_attention_with(FlashKernel::Cudnn, q, k, v, std::slice::from_ref(&keys)),
        expected,
    );
    println!("expanded batch through cuDNN: relative error {err:.2e}");
    assert!(err <= 1e-2, "{err}");
    ran_as_named(FlashKernel::Cudnn);
    // A span of a longer cache (narrowed along the keys): no copy needed, same answer.
    let cache = bf16([1, 4, 300, 128]);
    let (k, v) = (cache.clone().narrow(2, 44, 200), cache.narrow(2, 10, 200));
    let q = bf16([1, 4, 70, 128]);
    let err = relative_error(
        flash_attention_bf16(q.clone(), k.clone(), v.clone()),
        reference(q, k, v),
    );
    println!("narrowed cache span: relative error {err:.2e}");
    assert!(err <= 1e-2, "{err}");
    // A view that starts 8 bytes into its buffer (rows not 16-byte aligned): copied first.
    let q = bf16([1, 4, 70, 136]).narrow(3, 4, 128);
    let (k, v) = (bf16([1, 4, 90, 128]), bf16([1, 4, 90, 128]));
    let err = relative_error(
        flash_attention_bf16(q.clone(), k.clone(), v.clone()),
        reference(q, k, v),
    );
    println!("unaligned view: relative error {err:.2e}");
    assert!(err <= 1e-2, "{err}");
}

#[test]
#[ignore = "needs an NVIDIA GPU (compute capability 8.0+) and NVRTC"]
fn a_caches_sink_and_window_are_read_where_they_are() {
    // A [B, L, H, d] cache of 300 rows seen as [B, H, L, d]; the sink 0..24 and the window
    // 150..300 (two spans), then one span not starting at 0.
    let cache_k = bf16([2, 300, 12, 128]).swap_dims(1, 2);
    let cache_v = bf16([2, 300, 12, 128]).swap_dims(1, 2);
    let q = bf16([2, 150, 12, 128]).swap_dims(1, 2);
    #[allow(clippy::single_range_in_vec_init)]
    let cases = [vec![0..24, 150..300], vec![40..233]];
    for spans in cases {
        let gather = |t: &Tensor<Cuda, 4>| {
            Tensor::cat(
                spans
                    .iter()
                    .map(|r| t.clone().narrow(2, r.start, r.len()))
                    .collect(),
                2,
            )
        };
        let expected = reference(q.clone(), gather(&cache_k), gather(&cache_v));
        for kernel in FlashKernel::ALL {
            let ours =
                flash_attention_with(kernel, q.clone(), cache_k.clone(), cache_v.clone(), &spans);
            let err = relative_error(ours, expected.clone());
            println!("{kernel:?} spans {spans:?}: relative error {err:.2e}");
            ran_as_named(kernel);
            assert!(err <= 1e-2, "{kernel:?} {spans:?}: {err}");
        }
        // The default kernel through the public entry point.
        let ours = flash_attention_spans_bf16(q.clone(), cache_k.clone(), cache_v.clone(), &spans);
        assert!(relative_error(ours, expected) <= 1e-2);
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU (the CUDA ops not turned off by HANZO_LIVE_CUDA_OPS=0)"]
fn the_engines_attention_uses_the_kernel_when_enabled() {
    assert!(
        engine::cuda::enabled(),
        "the CUDA ops are off (HANZO_LIVE_CUDA_OPS=0 or an older GPU)"
    );
    let q = bf16([1, 12, 300, 128]);
    let k = bf16([1, 12, 333, 128]);
    let v = bf16([1, 12, 333, 128]);
    let ours = engine::wan::nn::attention(
        q.clone(),
        k.clone(),
        v.clone(),
        None,
        engine::wan::nn::AttentionKernel::Naive,
    );
    let err = relative_error(ours, reference(q, k, v));
    assert!(err <= 1e-2, "{err}");
}
