//! Fused attention on burn-cuda tensors: `softmax(q·kᵀ/√d)·v` for head_dim 128 in bf16 with
//! f32 softmax and accumulation, by the FlashAttention-2 kernel in `flash_attention.cu`
//! (compiled by NVRTC at first use for the GPU's architecture), as one custom operation of
//! burn's fusion stream, queued on cubecl's CUDA stream like [`super::gemm`].
//!
//! K and V are read through their strides (an expanded batch of the cross-attention cache, a
//! `[B, L, H, d]` projection seen as `[B, H, L, d]`) without copies; the output is written as
//! `[B, Lq, H, d]`, the layout the output projection reads, and handed back as its
//! `[B, H, Lq, d]` view.

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Module, custom, empty, fused, launch_shared, on_device},
};
use burn::tensor::{DType, Tensor};
use burn_cubecl::kernel::into_contiguous;

/// The kernel's head dimension.
pub const HEAD_DIM: usize = 128;
const MODULE: Module = Module {
    name: "flash_attention",
    source: include_str!("flash_attention.cu"),
};

/// Whether [`flash_attention_bf16`] takes these tensors: bf16, head_dim 128, the same batch
/// and heads, K and V of one length.
///
/// # Shapes
/// - q: `[B, H, Lq, d]`, k, v: `[B, H, Lk, d]`
pub fn supports(q: &Tensor<Cuda, 4>, k: &Tensor<Cuda, 4>, v: &Tensor<Cuda, 4>) -> bool {
    let ([b, h, _, d], kd, vd) = (q.dims(), k.dims(), v.dims());
    d == HEAD_DIM
        && kd == vd
        && kd[0] == b
        && kd[1] == h
        && kd[3] == d
        && kd[2] > 0
        && [q.dtype(), k.dtype(), v.dtype()]
            .iter()
            .all(|t| *t == DType::BF16)
}

/// `softmax(q·kᵀ/√d)·v`, no mask.
///
/// # Shapes
/// - q: `[B, H, Lq, 128]`, k, v: `[B, H, Lk, 128]`, bf16 → `[B, H, Lq, 128]` bf16 (the
///   `swap_dims(1, 2)` view of a contiguous `[B, Lq, H, 128]`)
///
/// # Panics
/// When [`supports`] says no.
pub fn flash_attention_bf16(
    q: Tensor<Cuda, 4>,
    k: Tensor<Cuda, 4>,
    v: Tensor<Cuda, 4>,
) -> Tensor<Cuda, 4> {
    let lk = k.dims()[2];
    flash_attention_spans_bf16(q, k, v, std::slice::from_ref(&(0..lk)))
}

/// The kernels of `flash_attention.cu` (same arguments, same results).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashKernel {
    /// Plain loads into shared memory, fragments read element by element.
    Reference,
    /// cp.async copies of the next tile during the current one's math, ldmatrix fragments.
    Pipelined,
    /// 128 queries per block, two 16-row tiles per warp sharing every K and V fragment,
    /// double-buffered key tiles of 32.
    Wide,
}

impl FlashKernel {
    /// Every kernel, for tests and benchmarks.
    pub const ALL: [FlashKernel; 3] = [
        FlashKernel::Reference,
        FlashKernel::Pipelined,
        FlashKernel::Wide,
    ];

    /// `HANZO_LIVE_FLASH_KERNEL=reference|pipelined|wide` picks one; the default is
    /// [`FlashKernel::Wide`], the fastest on an H100 (15–25 % below the pipelined kernel at
    /// every benched shape, docs/perf.md). Read once.
    pub fn from_env() -> Self {
        static KERNEL: std::sync::OnceLock<FlashKernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(
            || match std::env::var("HANZO_LIVE_FLASH_KERNEL").as_deref() {
                Ok("reference") => FlashKernel::Reference,
                Ok("pipelined") => FlashKernel::Pipelined,
                _ => FlashKernel::Wide,
            },
        )
    }

    fn entry(self) -> &'static str {
        match self {
            FlashKernel::Reference => "flash_attention_d128",
            FlashKernel::Pipelined => "flash_attention_d128_pipelined",
            FlashKernel::Wide => "flash_attention_d128_wide",
        }
    }

    /// Queries per block.
    fn block_m(self) -> usize {
        match self {
            FlashKernel::Reference | FlashKernel::Pipelined => 64,
            FlashKernel::Wide => 128,
        }
    }

    /// Dynamic shared memory per block in bytes (`WIDE_SHARED` in the source: Q's 128 rows
    /// and two stages of 32 K and 32 V rows, each row 136 bf16).
    fn shared(self) -> u32 {
        match self {
            FlashKernel::Reference | FlashKernel::Pipelined => 0,
            FlashKernel::Wide => ((128 + 4 * 32) * 136 * 2) as u32,
        }
    }
}

/// [`flash_attention_bf16`] over the keys and values `spans` (one or two ranges, in order) of
/// `k` and `v`, read where they are: a KV cache's sink and recent window without a copy.
///
/// # Shapes
/// - q: `[B, H, Lq, 128]`, k, v: `[B, H, L, 128]` bf16, spans within `0..L` →
///   `[B, H, Lq, 128]` bf16
///
/// # Panics
/// When [`supports`] says no, or on other spans.
pub fn flash_attention_spans_bf16(
    q: Tensor<Cuda, 4>,
    k: Tensor<Cuda, 4>,
    v: Tensor<Cuda, 4>,
    spans: &[std::ops::Range<usize>],
) -> Tensor<Cuda, 4> {
    flash_attention_with(FlashKernel::from_env(), q, k, v, spans)
}

/// [`flash_attention_spans_bf16`] by the kernel named.
pub fn flash_attention_with(
    kernel: FlashKernel,
    q: Tensor<Cuda, 4>,
    k: Tensor<Cuda, 4>,
    v: Tensor<Cuda, 4>,
    spans: &[std::ops::Range<usize>],
) -> Tensor<Cuda, 4> {
    assert!(
        supports(&q, &k, &v),
        "flash_attention_bf16: q {:?}, k {:?}, v {:?} ({:?})",
        q.dims(),
        k.dims(),
        v.dims(),
        q.dtype()
    );
    let len = k.dims()[2];
    assert!(
        matches!(spans.len(), 1 | 2) && spans.iter().all(|r| r.start < r.end && r.end <= len),
        "flash attention takes one or two non-empty key spans within 0..{len}, got {spans:?}"
    );
    let keys = Keys {
        lk: spans.iter().map(|r| r.len()).sum(),
        split: spans[0].len(),
        off0: spans[0].start,
        off1: spans.get(1).map_or(0, |r| r.start),
    };
    let [b, h, lq, d] = q.dims();
    let inputs = [q, k, v].map(fused).into();
    custom(
        "flash_attention_bf16",
        inputs,
        [b, lq, h, d],
        DType::BF16,
        move |t| {
            let [q, k, v]: [Cube; 3] = t.try_into().expect("three inputs");
            attend(q, k, v, keys, kernel)
        },
    )
    .swap_dims(1, 2)
}

/// Which rows of the K/V buffers are the keys: key `j` is row `off0 + j` below `split`,
/// `off1 + j − split` from there; `lk` keys in all.
#[derive(Clone, Copy, Debug)]
struct Keys {
    lk: usize,
    split: usize,
    off0: usize,
    off1: usize,
}

/// The kernel reads rows of 16 bytes: the last dimension contiguous, the others multiples of
/// 8 elements (0 for an expanded dimension is fine), the view starting 16-byte aligned.
/// Anything else is copied first.
fn readable(t: Cube) -> Cube {
    let s = t.meta.strides();
    let aligned = t.handle.offset_start.unwrap_or(0).is_multiple_of(16);
    if aligned && s[3] == 1 && s[..3].iter().all(|x| x % 8 == 0) {
        t
    } else {
        into_contiguous(t)
    }
}

fn attend(q: Cube, k: Cube, v: Cube, keys: Keys, kernel: FlashKernel) -> Cube {
    let [q, k, v] = [q, k, v].map(readable);
    let (b, h, lq, d) = (
        q.meta.shape()[0],
        q.meta.shape()[1],
        q.meta.shape()[2],
        q.meta.shape()[3],
    );
    let lk = keys.lk;
    let o = empty(&q, [b, lq, h, d], DType::BF16);
    if lq == 0 || b == 0 || h == 0 {
        return o;
    }
    let strides = |t: &Cube| {
        let s = t.meta.strides();
        [s[0] as i64, s[1] as i64, s[2] as i64]
    };
    // o as [B, H, Lq, d]: batch, head and row strides of the [B, Lq, H, d] buffer.
    let o_strides = [(lq * h * d) as i64, d as i64, (h * d) as i64];
    let all = [strides(&q), strides(&k), strides(&v), o_strides];
    let scale_log2 = std::f32::consts::LOG2_E / (d as f32).sqrt();
    let grid = (lq.div_ceil(kernel.block_m()) as u32, h as u32, b as u32);
    let shared = kernel.shared();
    on_device(&[&o, &q, &k, &v], move |p, stream| {
        if p.iter().any(|x| x % 16 != 0) {
            return Err(format!(
                "flash attention needs 16-byte aligned buffers, got {p:x?}"
            ));
        }
        let mut args = vec![
            Arg::Ptr(p[1]),
            Arg::Ptr(p[2]),
            Arg::Ptr(p[3]),
            Arg::Ptr(p[0]),
            Arg::I32(h as i32),
            Arg::I32(lq as i32),
            Arg::I32(lk as i32),
        ];
        args.extend(all.iter().flatten().map(|s| Arg::I64(*s)));
        args.extend([keys.split, keys.off0, keys.off1].map(|x| Arg::I32(x as i32)));
        args.push(Arg::F32(scale_log2));
        // SAFETY: live cubecl buffers of the sizes the shapes and strides describe, cubecl's
        // stream for the output, on cubecl's device thread; the arguments in the kernel's
        // order and types.
        unsafe {
            launch_shared(
                &MODULE,
                kernel.entry(),
                grid,
                (128, 1, 1),
                shared,
                stream,
                &args,
            )
        }
    });
    o
}
