//! Fused attention on burn-cuda tensors: `softmax(q·kᵀ/√d)·v` for head_dim 128 in bf16 with
//! f32 softmax and accumulation, by the FlashAttention-2 kernel in `flash_attention.cu`
//! (compiled by NVRTC at first use for the GPU's architecture), as one custom operation of
//! burn's fusion stream, queued on cubecl's CUDA stream like [`super::gemm`].
//!
//! K and V are read through their strides (an expanded batch of the cross-attention cache, a
//! `[B, L, H, d]` projection seen as `[B, H, L, d]`) without copies; the output is written as
//! `[B, Lq, H, d]`, the layout the output projection reads, and handed back as its
//! `[B, H, Lq, d]` view.
//!
//! [`FlashKernel::Cudnn`] hands the same call to cuDNN's fused flash-attention engine
//! ([`super::sdpa`]); two key spans are attended apart and merged by their softmax
//! statistics. Where cuDNN is missing or has no engine for a shape, the wide kernel runs
//! instead ([`cudnn_fallback`] says why).

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Module, custom, empty, fused, launch, launch_shared, on_device_with},
    sdpa,
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
    /// cuDNN's fused flash-attention engine (not a kernel of the source; the wide kernel
    /// where cuDNN has none).
    Cudnn,
}

impl FlashKernel {
    /// Every kernel, for tests and benchmarks.
    pub const ALL: [FlashKernel; 4] = [
        FlashKernel::Reference,
        FlashKernel::Pipelined,
        FlashKernel::Wide,
        FlashKernel::Cudnn,
    ];

    /// `HANZO_LIVE_FLASH_KERNEL=reference|pipelined|wide|cudnn` picks one; the default is
    /// [`FlashKernel::Cudnn`], 2.0–2.4× faster than the wide kernel on an H100 and within
    /// 1.2× of PyTorch's SDPA on the pipelines' cached shapes (docs/perf.md); without cuDNN
    /// it runs the wide kernel, the fastest of ours. Read once.
    pub fn from_env() -> Self {
        static KERNEL: std::sync::OnceLock<FlashKernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(
            || match std::env::var("HANZO_LIVE_FLASH_KERNEL").as_deref() {
                Ok("reference") => FlashKernel::Reference,
                Ok("pipelined") => FlashKernel::Pipelined,
                Ok("wide") => FlashKernel::Wide,
                _ => FlashKernel::Cudnn,
            },
        )
    }

    fn entry(self) -> &'static str {
        match self {
            FlashKernel::Reference => "flash_attention_d128",
            FlashKernel::Pipelined => "flash_attention_d128_pipelined",
            FlashKernel::Wide | FlashKernel::Cudnn => "flash_attention_d128_wide",
        }
    }

    /// Queries per block.
    fn block_m(self) -> usize {
        match self {
            FlashKernel::Reference | FlashKernel::Pipelined => 64,
            FlashKernel::Wide | FlashKernel::Cudnn => 128,
        }
    }

    /// Dynamic shared memory per block in bytes (`WIDE_SHARED` in the source: Q's 128 rows
    /// and two stages of 32 K and 32 V rows, each row 136 bf16).
    fn shared(self) -> u32 {
        match self {
            FlashKernel::Reference | FlashKernel::Pipelined => 0,
            FlashKernel::Wide | FlashKernel::Cudnn => ((128 + 4 * 32) * 136 * 2) as u32,
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
    let call = Call {
        b,
        h,
        lq,
        d,
        keys,
        strides: [strides(&q), strides(&k), strides(&v), o_strides],
    };
    if kernel != FlashKernel::Cudnn {
        on_device_with(&[&o, &q, &k, &v], 0, move |p, stream| {
            // SAFETY: live buffers of the call's shapes and strides on cubecl's stream and
            // device thread.
            unsafe { call.launch(kernel, p[0], p[1], p[2], p[3], stream) }
        });
        return o;
    }
    // cuDNN: one span straight into o; two spans into o and a second output, merged into o
    // by their statistics. Its tensors take no batch stride of 0 where the batch is larger
    // than 1: an expanded K or V (the cross-attention's, batch 1 for the stream batch's 2–4)
    // is copied first (a few hundred rows).
    let [k, v] = [k, v].map(|t| {
        if b > 1 && t.meta.strides()[0] == 0 {
            into_contiguous(t)
        } else {
            t
        }
    });
    let mut call = call;
    call.strides[1] = strides(&k);
    call.strides[2] = strides(&v);
    let two = keys.split < keys.lk;
    let mut scratch = vec![];
    if two {
        scratch.push(empty(&q, [b, lq, h, d], DType::BF16));
        // Two statistics buffers of `stats_rows` f32 each, the second 16-byte aligned.
        scratch.push(empty(&q, [2 * stats_rows(b, h, lq)], DType::F32));
    }
    let mut tensors = vec![&o, &q, &k, &v];
    tensors.extend(scratch.iter());
    on_device_with(&tensors, sdpa::WORKSPACE, move |p, stream| {
        let (o, q, k, v) = (p[0], p[1], p[2], p[3]);
        let workspace = *p.last().expect("a workspace");
        let scratch = two.then(|| (p[4], p[5]));
        // SAFETY: as above, the scratch buffers of the sizes made for them.
        let done = unsafe { call.cudnn(o, q, k, v, scratch, workspace, stream) };
        match done {
            Ok(()) => Ok(()),
            Err(e) => {
                note_fallback(e);
                // SAFETY: as above.
                unsafe { call.launch(FlashKernel::Wide, o, q, k, v, stream) }
            }
        }
    });
    o
}

/// Rows of one span's statistics buffer: `b·h·lq` rounded up to a multiple of 4 (16 bytes of
/// f32), so that the second buffer starts as aligned as cuDNN is told.
fn stats_rows(b: usize, h: usize, lq: usize) -> usize {
    (b * h * lq).next_multiple_of(4)
}

/// Why cuDNN's attention last fell back to the wide kernel (`None`: it never did).
pub fn cudnn_fallback() -> Option<String> {
    fallbacks()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
}

fn fallbacks() -> &'static std::sync::Mutex<Option<String>> {
    static WHY: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
    &WHY
}

fn note_fallback(why: String) {
    let mut last = fallbacks().lock().unwrap_or_else(|p| p.into_inner());
    if last.as_deref() != Some(why.as_str()) {
        tracing::warn!("cuDNN attention unavailable, the wide kernel runs instead: {why}");
        *last = Some(why);
    }
}

const MERGE: &str = "attention_merge_d128";

/// One attention call's shapes, strides and keys.
#[derive(Clone, Copy, Debug)]
struct Call {
    b: usize,
    h: usize,
    lq: usize,
    d: usize,
    keys: Keys,
    /// Batch, head and row strides of q, k, v and o (o's of its [B, Lq, H, d] buffer).
    strides: [[i64; 3]; 4],
}

impl Call {
    /// Launches one of the source's kernels.
    ///
    /// # Safety
    /// Live device buffers of the call's shapes and strides, cubecl's stream, on its device
    /// thread.
    unsafe fn launch(
        &self,
        kernel: FlashKernel,
        o: u64,
        q: u64,
        k: u64,
        v: u64,
        stream: u64,
    ) -> Result<(), String> {
        let p = [o, q, k, v];
        if p.iter().any(|x| x % 16 != 0) {
            return Err(format!(
                "flash attention needs 16-byte aligned buffers, got {p:x?}"
            ));
        }
        let keys = self.keys;
        let mut args = vec![
            Arg::Ptr(q),
            Arg::Ptr(k),
            Arg::Ptr(v),
            Arg::Ptr(o),
            Arg::I32(self.h as i32),
            Arg::I32(self.lq as i32),
            Arg::I32(keys.lk as i32),
        ];
        args.extend(self.strides.iter().flatten().map(|s| Arg::I64(*s)));
        args.extend([keys.split, keys.off0, keys.off1].map(|x| Arg::I32(x as i32)));
        args.push(Arg::F32(std::f32::consts::LOG2_E / (self.d as f32).sqrt()));
        let grid = (
            self.lq.div_ceil(kernel.block_m()) as u32,
            self.h as u32,
            self.b as u32,
        );
        // SAFETY: as the caller promises; the arguments in the kernel's order and types.
        unsafe {
            launch_shared(
                &MODULE,
                kernel.entry(),
                grid,
                (128, 1, 1),
                kernel.shared(),
                stream,
                &args,
            )
        }
    }

    /// The attention by cuDNN: one span into `o`; two spans into `o` and `scratch`'s second
    /// output (`[B, Lq, H, d]` bf16), with their statistics (`[2, B, H, Lq]` f32), then merged
    /// into `o`.
    ///
    /// # Safety
    /// As [`Call::launch`], and `workspace` of [`sdpa::WORKSPACE`] bytes.
    #[allow(clippy::too_many_arguments)]
    unsafe fn cudnn(
        &self,
        o: u64,
        q: u64,
        k: u64,
        v: u64,
        scratch: Option<(u64, u64)>,
        workspace: u64,
        stream: u64,
    ) -> Result<(), String> {
        let keys = self.keys;
        let scale = 1.0 / (self.d as f32).sqrt();
        let [_, sk, sv, _] = self.strides;
        // cuDNN's tensors take no batch stride of 0; with a batch of one any stride past the
        // last element will do.
        let mut strides = self.strides;
        if self.b == 1 {
            let rows = [self.lq, keys.lk, keys.lk, self.lq];
            for (s, rows) in strides.iter_mut().zip(rows) {
                if s[0] == 0 {
                    s[0] = (s[1] * self.h as i64)
                        .max(s[2] * (rows + keys.off0.max(keys.off1)) as i64)
                        .max(self.d as i64);
                }
            }
        }
        // A span of `len` keys (its rows found through the pointers below).
        let span = |len: usize, stats: bool| sdpa::Problem {
            b: self.b as i64,
            h: self.h as i64,
            lq: self.lq as i64,
            lk: len as i64,
            d: self.d as i64,
            strides,
            stats,
        };
        // Row `row` of a bf16 K or V.
        let at =
            |base: u64, stride: &[i64; 3], row: usize| base + (row as i64 * stride[2] * 2) as u64;
        let stats = scratch.map(|(_, stats)| stats);
        // SAFETY: as the caller promises.
        unsafe {
            span(keys.split, stats.is_some()).run(
                q,
                at(k, &sk, keys.off0),
                at(v, &sv, keys.off0),
                o,
                stats,
                scale,
                workspace,
                stream,
            )?;
        }
        let Some((o2, stats)) = scratch else {
            return Ok(());
        };
        let rows = (self.b * self.h * self.lq) as u64;
        let second_stats = stats + stats_rows(self.b, self.h, self.lq) as u64 * 4;
        let args = [
            Arg::Ptr(o),
            Arg::Ptr(stats),
            Arg::Ptr(o2),
            Arg::Ptr(second_stats),
            Arg::Ptr(o),
            Arg::I32(self.b as i32),
            Arg::I32(self.h as i32),
            Arg::I32(self.lq as i32),
        ];
        // SAFETY: as the caller promises; the statistics buffer holds two of `stats_rows`
        // f32, the second from `second_stats`.
        unsafe {
            span(keys.lk - keys.split, true).run(
                q,
                at(k, &sk, keys.off1),
                at(v, &sv, keys.off1),
                o2,
                Some(second_stats),
                scale,
                workspace,
                stream,
            )?;
            launch(
                &MODULE,
                MERGE,
                (rows.div_ceil(4) as u32, 1, 1),
                (128, 1, 1),
                stream,
                &args,
            )
        }
    }
}
