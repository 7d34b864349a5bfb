//! CUDA custom operations for burn's CUDA backend (feature `cuda`): library calls that burn
//! 0.21's own kernels are slower than, run on burn's tensors and streams. The engine stays a
//! burn engine: every op takes and returns `Tensor<burn::backend::Cuda, D>`, and the CPU and
//! Metal backends keep the portable path.
//!
//! Raw device pointers and CUDA streams need `unsafe`; it is confined to this module.

pub mod attention;
pub mod conv;
pub mod dnn;
pub mod fp8;
pub mod gemm;
pub mod norms;
mod op;
pub mod ring;
mod sdpa;
pub mod vae;

use burn::tensor::{DType, Int, Tensor, TensorKind, backend::Backend};
use std::{any::Any, sync::OnceLock};

/// Whether the engine routes work to these ops where they apply: a GPU of compute capability
/// 8.0 or newer (bf16 tensor cores), unless `HANZO_LIVE_CUDA_OPS` is `0`, `false`, `off` or
/// `no` (burn's own kernels throughout, for comparison). On by default since they were checked and timed on an H200
/// (docs/perf.md); read once.
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| {
        !switched_off("HANZO_LIVE_CUDA_OPS")
            && compute_capability().is_some_and(|(major, _)| major >= 8)
    })
}

/// Whether the environment variable `name` says `0`, `false`, `off` or `no`.
fn switched_off(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "0" | "false" | "off" | "no"
        )
    })
}

/// Whether the environment variable `name` is `1` (an opt-in switch: a path not yet timed).
fn switched_on(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v.trim() == "1")
}

/// GPU 0's compute capability (the GPU burn-cuda uses), from the driver.
pub fn compute_capability() -> Option<(i32, i32)> {
    use cudarc::driver::{result, sys::CUdevice_attribute as A};
    // SAFETY: only tries to open the driver library (cudarc panics on a call without it).
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return None;
    }
    result::init().ok()?;
    let dev = result::device::get(0).ok()?;
    // SAFETY: a device handle the driver just gave.
    unsafe {
        Some((
            result::device::get_attribute(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                .ok()?,
            result::device::get_attribute(dev, A::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
                .ok()?,
        ))
    }
}

/// A Linear layer's `x·w_t (+ bias)`, then GELU (tanh approximation) when `gelu`, plus
/// `residual` when given (cuBLASLt's C input: rounded to bf16 once), through cuBLASLt (the
/// bias, the GELU and the residual in its epilogue) when `B` is burn's CUDA backend, the ops
/// are [`enabled`], libcublasLt loads and everything is bf16; `Err(x)` (given back untouched)
/// otherwise.
///
/// # Shapes
/// - x: `[M, K]`, w_t: `[K, N]`, bias: `[N]`, residual: `[M, N]` → `[M, N]`
pub fn linear<B: Backend>(
    x: Tensor<B, 2>,
    w_t: &Tensor<B, 2>,
    bias: Option<&Tensor<B, 1>>,
    residual: Option<&Tensor<B, 2>>,
    gelu: bool,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let bf16 = x.dtype() == DType::BF16
        && w_t.dtype() == DType::BF16
        && bias.is_none_or(|b| b.dtype() == DType::BF16)
        && residual.is_none_or(|r| r.dtype() == DType::BF16);
    if !bf16 || !enabled() || !gemm::available() {
        return Err(x);
    }
    let (Some(w), Ok(b), Ok(r)) = (
        as_cuda(w_t.clone()),
        as_cuda_opt(bias),
        as_cuda_opt(residual),
    ) else {
        return Err(x);
    };
    let x = as_cuda(x).expect("x has the weight's backend");
    Ok(from_cuda(gemm::linear_epilogue(x, w, b, r, gelu)))
}

/// An fp8 Linear layer (`codes·w_scale` the weight, see [`crate::wan::quant`]) through
/// [`fp8::linear_fp8`] when `B` is burn's CUDA backend and [`fp8::supported`], `x` (and the
/// bias) are bf16 and the shapes suit cuBLASLt's fp8 GEMM; `Err(x)` (untouched) otherwise.
///
/// # Shapes
/// - x: `[M, K]`, codes: `[N, K]` U8, w_scale: `[1]` f32, bias: `[N]` → `[M, N]`
pub fn linear_fp8<B: Backend>(
    x: Tensor<B, 2>,
    codes: &Tensor<B, 2, Int>,
    w_scale: &Tensor<B, 1>,
    bias: Option<&Tensor<B, 1>>,
    gelu: bool,
) -> Result<Tensor<B, 2>, Tensor<B, 2>> {
    let [n, k] = codes.dims();
    let fits = x.dtype() == DType::BF16
        && bias.is_none_or(|b| b.dtype() == DType::BF16)
        && codes.dtype() == DType::U8
        && x.dims()[1] == k
        && fp8::fits(k, n);
    if !fits || !fp8::supported() {
        return Err(x);
    }
    let (Some(c), Some(s), Ok(b)) = (
        as_cuda(codes.clone()),
        as_cuda(w_scale.clone()),
        as_cuda_opt(bias),
    ) else {
        return Err(x);
    };
    let x = as_cuda(x).expect("x has the weight's backend");
    Ok(from_cuda(fp8::linear_fp8(x, c, s, b, gelu)))
}

/// Opens (`on`) or closes the profiler's collection range (`cuProfilerStart` /
/// `cuProfilerStop`) in cubecl's CUDA context, so `ncu --profile-from-start off` profiles only
/// the kernels launched in between.
pub fn profiler_range(on: bool) -> Result<(), String> {
    op::profiler_range(on)
}

/// Whether `B` is burn's CUDA backend.
pub fn is_cuda<B: Backend>() -> bool {
    std::any::TypeId::of::<B>() == std::any::TypeId::of::<gemm::Cuda>()
}

/// `t` (float or int) as a tensor of burn's CUDA backend, when `B` is that backend (`None`
/// otherwise): the way generic engine code reaches the CUDA-only ops.
pub fn as_cuda<B: Backend, const D: usize, K>(
    t: Tensor<B, D, K>,
) -> Option<Tensor<gemm::Cuda, D, K>>
where
    K: TensorKind<B> + TensorKind<gemm::Cuda> + 'static,
{
    let any: Box<dyn Any> = Box::new(t);
    any.downcast::<Tensor<gemm::Cuda, D, K>>().ok().map(|t| *t)
}

/// An optional tensor (a bias) through [`as_cuda`]: `Ok(None)` for none, `Err(())` when there
/// is one and `B` is not burn's CUDA backend.
fn as_cuda_opt<B: Backend, const D: usize>(
    t: Option<&Tensor<B, D>>,
) -> Result<Option<Tensor<gemm::Cuda, D>>, ()> {
    t.map(|t| as_cuda(t.clone()).ok_or(())).transpose()
}

/// Attention through the fused kernel of [`attention`] when `B` is burn's CUDA backend, the
/// ops are [`enabled`], there is no mask and the kernel takes the shapes (bf16, head_dim
/// 128); the inputs given back untouched otherwise.
///
/// # Shapes
/// - q: `[B, H, Lq, d]`, k, v: `[B, H, Lk, d]` → `[B, H, Lq, d]`
#[allow(clippy::type_complexity)]
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Result<Tensor<B, 4>, (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>)> {
    let keys = 0..k.dims()[2];
    attention_spans(q, &k, &v, std::slice::from_ref(&keys)).map_err(|q| (q, k, v))
}

/// [`attention`] over the key `spans` of `k` and `v` (a KV cache's sink and window, read in
/// place); `q` given back when the kernel does not apply.
///
/// # Shapes
/// - q: `[B, H, Lq, d]`, k, v: `[B, H, L, d]`, spans within `0..L` → `[B, H, Lq, d]`
pub fn attention_spans<B: Backend>(
    q: Tensor<B, 4>,
    k: &Tensor<B, 4>,
    v: &Tensor<B, 4>,
    spans: &[std::ops::Range<usize>],
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !enabled() || q.dtype() != DType::BF16 || !matches!(spans.len(), 1 | 2) {
        return Err(q);
    }
    let (Some(cq), Some(ck), Some(cv)) =
        (as_cuda(q.clone()), as_cuda(k.clone()), as_cuda(v.clone()))
    else {
        return Err(q);
    };
    let len = ck.dims()[2];
    if !attention::supports(&cq, &ck, &cv) || !spans.iter().all(|r| r.start < r.end && r.end <= len)
    {
        return Err(q);
    }
    Ok(from_cuda(attention::flash_attention_spans_bf16(
        cq, ck, cv, spans,
    )))
}

/// A 2-D convolution (plus `bias` when given) through cuDNN ([`conv::conv2d`]) when `B` is
/// burn's CUDA backend, the ops are [`enabled`], libcudnn loads and the tensors are f32 or
/// bf16; `x` given back otherwise.
///
/// # Shapes
/// - x: `[N, C, H, W]`, w: `[O, C, kh, kw]`, bias: `[O]` → `[N, O, H', W']`
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    w: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    stride: [usize; 2],
    pad: [usize; 2],
) -> Result<Tensor<B, 4>, Tensor<B, 4>> {
    if !enabled() || !conv::available() {
        return Err(x);
    }
    let (Some(cx), Some(cw), Ok(cb)) = (as_cuda(x.clone()), as_cuda(w.clone()), as_cuda_opt(bias))
    else {
        return Err(x);
    };
    if cb.as_ref().is_some_and(|b| b.dims() != [cw.dims()[0]]) {
        return Err(x);
    }
    let [_, _, h, wd] = cx.dims();
    let [_, _, kh, kw] = cw.dims();
    if !conv::supports(&cx, &cw) || h + 2 * pad[0] < kh || wd + 2 * pad[1] < kw {
        return Err(x);
    }
    Ok(from_cuda(conv::conv2d(cx, cw, cb, stride, pad)))
}

/// The Wan VAE's causal convolution input in its folded 2-D form, built channels-last by one
/// kernel ([`vae::causal_taps_nhwc`]), where [`vae_kernels_enabled`], `B` is burn's CUDA backend,
/// libcudnn loads and the convolution that reads it (to `out_channels`) runs channels-last;
/// the inputs given back otherwise.
///
/// # Shapes
/// - history: `[B, n, C, H, W]`, x: `[B, T, C, H, W]` → `[B·t_out, live·C, H, W]` (the NCHW
///   view of a channels-last buffer, as [`conv2d`] reads it without a copy)
#[allow(clippy::type_complexity)]
pub fn causal_taps<B: Backend>(
    history: Option<Tensor<B, 5>>,
    x: Tensor<B, 5>,
    taps: vae::Taps,
    out_channels: usize,
) -> Result<Tensor<B, 4>, (Option<Tensor<B, 5>>, Tensor<B, 5>)> {
    if !causal_taps_apply::<B>(x.dims()[2], taps, out_channels) {
        return Err((history, x));
    }
    let (Some(cx), Ok(ch)) = (as_cuda(x.clone()), as_cuda_opt(history.as_ref())) else {
        return Err((history, x));
    };
    if !vae::supports(ch.as_ref(), &cx, taps) {
        return Err((history, x));
    }
    Ok(from_cuda(
        vae::causal_taps_nhwc(ch, cx, taps).permute([0, 3, 1, 2]),
    ))
}

/// Whether [`causal_taps`] may build the input of a causal convolution of `channels` inputs
/// per tap to `out_channels`: [`vae_kernels_enabled`], `B` is burn's CUDA backend, libcudnn
/// loads and the convolution runs channels-last (else its NHWC input would be copied back).
pub fn causal_taps_apply<B: Backend>(
    channels: usize,
    taps: vae::Taps,
    out_channels: usize,
) -> bool {
    is_cuda::<B>()
        && vae_kernels_enabled()
        && conv::available()
        && conv::channels_last(taps.live * channels, out_channels)
}

/// Whether the Wan VAE runs its own kernels ([`vae`]: the causal convolutions' input built
/// channels-last, the RMS norm + SiLU in one pass): the CUDA ops [`enabled`], unless
/// `HANZO_LIVE_VAE_KERNELS` is `0`, `false`, `off` or `no`. On by default since an H100 timed
/// them at or below PyTorch's VAE and the VAE goldens passed through them (docs/perf.md).
/// Read once.
pub fn vae_kernels_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| enabled() && !switched_off("HANZO_LIVE_VAE_KERNELS"))
}

/// The Wan VAE's RMS norm over the channels then SiLU through [`vae::rms_norm_silu`] where
/// [`vae_kernels_enabled`] and `B` is burn's CUDA backend; `x` given back otherwise.
///
/// # Shapes
/// - x: `[B, T, C, H, W]`, gamma: `[C]` → `[B, T, C, H, W]`
pub fn vae_rms_norm_silu<B: Backend>(
    x: Tensor<B, 5>,
    gamma: &Tensor<B, 1>,
) -> Result<Tensor<B, 5>, Tensor<B, 5>> {
    if !vae_kernels_enabled() {
        return Err(x);
    }
    match (as_cuda(x.clone()), as_cuda(gamma.clone())) {
        (Some(cx), Some(cg)) if vae::norm_supports(&cx, &cg) => {
            Ok(from_cuda(vae::rms_norm_silu(cx, &cg)))
        }
        _ => Err(x),
    }
}

/// Whether the Wan VAE's residual adds run [`vae::residual_add`]: the VAE's kernels
/// ([`vae_kernels_enabled`]) unless `HANZO_LIVE_VAE_ADD_KERNEL` is `0`, `false`, `off` or
/// `no`. On by default since it was timed (the decoder's 42 adds of a LongLive chunk: 22 ms
/// on an H200, where burn's add of a channels-last and a frame-major operand took 185 ms on
/// an H100) and its GPU test found it equal to burn's add in every pair of layouts
/// (docs/perf.md). Read once.
pub fn vae_add_kernel_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| vae_kernels_enabled() && !switched_off("HANZO_LIVE_VAE_ADD_KERNEL"))
}

/// Whether StreamDiffusionV2's adaptive sink runs [`ring::adaptive_write`]: the CUDA ops
/// [`enabled`] unless `HANZO_LIVE_RING_KERNEL=0`. On since 2026-12-07: its GPU tests pass
/// and on an H100 a 512×512 TAEHV chunk's DiT took 23 ms with it against 85 ms with burn's
/// ~60 operations a row (docs/perf.md). Read once.
pub fn ring_kernel_enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| enabled() && !switched_off("HANZO_LIVE_RING_KERNEL"))
}

/// The adaptive sink's writes through [`ring::adaptive_write`] where [`ring_kernel_enabled`],
/// `B` is burn's CUDA backend and the kernels take the shapes; the four tensors given back
/// otherwise.
///
/// # Shapes
/// - ring_k, ring_v: `[rows, frames·fs, H, d]`, new_k, new_v: `[batch, fs, H, d]` →
///   `([rows, frames·fs, H, d], [rows, frames·fs, H, d], [writes])` (the slots, as floats)
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
pub fn ring_adaptive_write<B: Backend>(
    ring_k: Tensor<B, 4>,
    ring_v: Tensor<B, 4>,
    new_k: Tensor<B, 4>,
    new_v: Tensor<B, 4>,
    frames: usize,
    sink: usize,
    threshold: f64,
    writes: &[ring::AdaptiveWrite],
) -> Result<(Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 1>), [Tensor<B, 4>; 4]> {
    let given = [ring_k, ring_v, new_k, new_v];
    if !ring_kernel_enabled() {
        return Err(given);
    }
    let cuda: Option<Vec<Tensor<gemm::Cuda, 4>>> =
        given.iter().map(|t| as_cuda(t.clone())).collect();
    match cuda.map(|c| <[_; 4]>::try_from(c).ok()) {
        Some(Some([rk, rv, nk, nv]))
            if ring::supports([&rk, &rv], [&nk, &nv], frames, sink, writes) =>
        {
            drop(given);
            let (k, v, slots) =
                ring::adaptive_write(rk, rv, nk, nv, frames, sink, threshold, writes);
            Ok((from_cuda(k), from_cuda(v), from_cuda(slots)))
        }
        _ => Err(given),
    }
}

/// The Wan VAE's residual `y + h` through [`vae::residual_add`] where
/// [`vae_add_kernel_enabled`] and `B` is burn's CUDA backend; both given back otherwise.
///
/// # Shapes
/// - y, h: `[B, T, C, H, W]` → `[B, T, C, H, W]`
#[allow(clippy::type_complexity)]
pub fn vae_residual_add<B: Backend>(
    y: Tensor<B, 5>,
    h: Tensor<B, 5>,
) -> Result<Tensor<B, 5>, (Tensor<B, 5>, Tensor<B, 5>)> {
    if !vae_add_kernel_enabled() {
        return Err((y, h));
    }
    match (as_cuda(y.clone()), as_cuda(h.clone())) {
        (Some(cy), Some(ch)) if vae::add_supports(&cy, &ch) => {
            Ok(from_cuda(vae::residual_add(cy, ch)))
        }
        _ => Err((y, h)),
    }
}

/// RMSNorm through [`norms::rms_norm_bf16`] when `B` is burn's CUDA backend, the ops are
/// [`enabled`] and `x` is bf16; `x` given back otherwise.
///
/// # Shapes
/// - x: `[B, L, D]`, w: `[D]` → `[B, L, D]`
pub fn rms_norm<B: Backend>(
    x: Tensor<B, 3>,
    w: &Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    if !enabled() || x.dtype() != DType::BF16 {
        return Err(x);
    }
    match (as_cuda(x.clone()), as_cuda(w.clone())) {
        (Some(cx), Some(cw)) => Ok(from_cuda(norms::rms_norm_bf16(cx, &cw, eps))),
        _ => Err(x),
    }
}

/// RMSNorm then the rotary embedding through [`norms::rms_norm_rope_bf16`] where it applies
/// (CUDA, [`enabled`], bf16 `x`, angles of `x`'s tokens); `x` given back otherwise.
///
/// # Shapes
/// - x: `[B, L, D]`, w: `[D]`, cos/sin: `[B|1, L, 1, d/2]` → `[B, L, D]`
pub fn rms_norm_rope<B: Backend>(
    x: Tensor<B, 3>,
    w: &Tensor<B, 1>,
    cos: &Tensor<B, 4>,
    sin: &Tensor<B, 4>,
    eps: f64,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let fits = norms::rope_fits(x.dims(), cos.dims(), sin.dims());
    if !enabled() || x.dtype() != DType::BF16 || !fits {
        return Err(x);
    }
    match (
        as_cuda(x.clone()),
        as_cuda(w.clone()),
        as_cuda(cos.clone()),
        as_cuda(sin.clone()),
    ) {
        (Some(cx), Some(cw), Some(cc), Some(cs)) => {
            Ok(from_cuda(norms::rms_norm_rope_bf16(cx, &cw, &cc, &cs, eps)))
        }
        _ => Err(x),
    }
}

/// `LN(x)·w + b` through [`norms::layer_norm_affine_bf16`] where it applies (CUDA,
/// [`enabled`], bf16 `x`, `[D]` weight and bias); `x` given back otherwise.
///
/// # Shapes
/// - x: `[B, L, D]`, w, b: `[D]` → `[B, L, D]`
pub fn layer_norm_affine<B: Backend>(
    x: Tensor<B, 3>,
    w: &Tensor<B, 1>,
    b: &Tensor<B, 1>,
    eps: f64,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    let d = x.dims()[2];
    if !enabled() || x.dtype() != DType::BF16 || w.dims() != [d] || b.dims() != [d] {
        return Err(x);
    }
    match (as_cuda(x.clone()), as_cuda(w.clone()), as_cuda(b.clone())) {
        (Some(cx), Some(cw), Some(cb)) => {
            Ok(from_cuda(norms::layer_norm_affine_bf16(cx, &cw, &cb, eps)))
        }
        _ => Err(x),
    }
}

/// `LN(x)·(1 + m[:, f, i_scale]) + m[:, f, i_shift]` through
/// [`norms::layer_norm_modulate_bf16`] where it applies (CUDA, [`enabled`], bf16 `x`).
///
/// # Shapes
/// - x: `[B, L, D]`, m: `[B, F, 6, D]` → `[B, L, D]`
pub fn layer_norm_modulate<B: Backend>(
    x: Tensor<B, 3>,
    m: &Tensor<B, 4>,
    i_shift: usize,
    i_scale: usize,
    eps: f64,
) -> Result<Tensor<B, 3>, Tensor<B, 3>> {
    if !enabled() || x.dtype() != DType::BF16 || !norms::modulation_fits(x.dims(), m.dims()) {
        return Err(x);
    }
    match (as_cuda(x.clone()), as_cuda(m.clone())) {
        (Some(cx), Some(cm)) => Ok(from_cuda(norms::layer_norm_modulate_bf16(
            cx, &cm, i_shift, i_scale, eps,
        ))),
        _ => Err(x),
    }
}

/// `x + y·m[:, f, i_gate]` through [`norms::gated_add_bf16`] where it applies (CUDA,
/// [`enabled`], bf16 `x` and `y`).
///
/// # Shapes
/// - x, y: `[B, L, D]`, m: `[B, F, 6, D]` → `[B, L, D]`
#[allow(clippy::type_complexity)]
pub fn gated_add<B: Backend>(
    x: Tensor<B, 3>,
    y: Tensor<B, 3>,
    m: &Tensor<B, 4>,
    i_gate: usize,
) -> Result<Tensor<B, 3>, (Tensor<B, 3>, Tensor<B, 3>)> {
    if !enabled()
        || x.dtype() != DType::BF16
        || y.dtype() != DType::BF16
        || y.dims() != x.dims()
        || !norms::modulation_fits(x.dims(), m.dims())
    {
        return Err((x, y));
    }
    match (as_cuda(x.clone()), as_cuda(y.clone()), as_cuda(m.clone())) {
        (Some(cx), Some(cy), Some(cm)) => Ok(from_cuda(norms::gated_add_bf16(cx, cy, &cm, i_gate))),
        _ => Err((x, y)),
    }
}

/// The inverse of [`as_cuda`], for a `B` that is burn's CUDA backend.
///
/// # Panics
/// When `B` is another backend.
fn from_cuda<B: Backend, const D: usize>(t: Tensor<gemm::Cuda, D>) -> Tensor<B, D> {
    let any: Box<dyn Any> = Box::new(t);
    *any.downcast::<Tensor<B, D>>()
        .unwrap_or_else(|_| panic!("from_cuda: the backend is not burn's CUDA backend"))
}
