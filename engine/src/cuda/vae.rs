//! The Wan VAE's own CUDA kernels (`vae.cu`):
//! - [`causal_taps_nhwc`]: the input of a causal 3-D convolution in its folded 2-D form, built
//!   channels-last in one kernel for cuDNN's tensor-core convolutions ([`super::conv`]): the
//!   zero padding, the cached history and the input frames, each output frame's live time taps
//!   side by side on the channel axis. It replaces two concatenations and the transpose to NHWC
//!   the convolution would otherwise make.
//! - [`rms_norm_silu`]: the RMS norm over the channels then SiLU in one pass, reading the
//!   convolutions' channels-last results in place.
//! - [`residual_add`]: the residual blocks' `y + h` of a channels-last convolution result and
//!   a frame-major (or channels-last) shortcut, both read coalesced, written frame-major.

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Module, contiguous, custom, empty, fused, launch, on_device},
};
use burn::tensor::{DType, Tensor};
use burn_cubecl::kernel::into_contiguous;

const MODULE: Module = Module {
    name: "vae",
    source: include_str!("vae.cu"),
};

pub use crate::wan::vae::Taps;

/// Whether [`causal_taps_nhwc`] takes these: f32 or bf16 alike, one batch size, frame shapes
/// and channel count, and taps that stay within the frames there are.
pub fn supports(history: Option<&Tensor<Cuda, 5>>, x: &Tensor<Cuda, 5>, taps: Taps) -> bool {
    let [b, t, c, h, w] = x.dims();
    let nh = history.map_or(0, |hi| hi.dims()[1]);
    let frames = taps.zeros + nh + t;
    matches!(x.dtype(), DType::F32 | DType::BF16)
        && history.is_none_or(|hi| {
            let [hb, _, hc, hh, hw] = hi.dims();
            hi.dtype() == x.dtype() && [hb, hc, hh, hw] == [b, c, h, w]
        })
        && taps.live > 0
        && taps.stride_t > 0
        && taps.t_out > 0
        && (taps.t_out - 1) * taps.stride_t + taps.first + taps.live <= frames
        && b * taps.t_out * taps.live < 65_536
        && c.div_ceil(32) < 65_536
        && c * taps.live < i32::MAX as usize
        && h * w < i32::MAX as usize
}

/// The folded convolution's input, channels-last.
///
/// # Shapes
/// - history: `[B, n, C, H, W]`, x: `[B, T, C, H, W]` → `[B·t_out, H, W, live·C]` (channel
///   `k·C + c` is tap `k`'s channel `c`)
///
/// # Panics
/// When [`supports`] says no.
pub fn causal_taps_nhwc(
    history: Option<Tensor<Cuda, 5>>,
    x: Tensor<Cuda, 5>,
    taps: Taps,
) -> Tensor<Cuda, 4> {
    assert!(
        supports(history.as_ref(), &x, taps),
        "causal_taps_nhwc: history {:?}, x {:?} {:?}, {taps:?}",
        history.as_ref().map(|h| h.dims()),
        x.dims(),
        x.dtype()
    );
    let [b, _, c, h, w] = x.dims();
    let dtype = x.dtype();
    let with_history = history.is_some();
    let mut inputs = vec![fused(x)];
    inputs.extend(history.map(fused));
    let shape = [b * taps.t_out, h, w, taps.live * c];
    custom("causal_taps_nhwc", inputs, shape, dtype, move |t| {
        let mut t = t.into_iter().map(planes);
        let x = t.next().expect("the input");
        let hist = if with_history { t.next() } else { None };
        let out = empty(&x, shape, dtype);
        let nh = hist.as_ref().map_or(0, |h| h.meta.shape()[1]);
        let xs = strides::<3>(&x);
        let hs = hist.as_ref().map_or([0; 3], strides::<3>);
        let pixels = h * w;
        let grid = (
            pixels.div_ceil(32) as u32,
            c.div_ceil(32) as u32,
            (b * taps.t_out * taps.live) as u32,
        );
        let entry = if dtype == DType::BF16 {
            "causal_taps_nhwc_bf16"
        } else {
            "causal_taps_nhwc_f32"
        };
        // The history's buffer stands in for itself when there is none (never read: nh 0).
        let mut tensors = vec![&out, &x];
        tensors.extend(hist.as_ref());
        on_device(&tensors, move |p, stream| {
            let (out, x) = (p[0], p[1]);
            let hist = p.get(2).copied().unwrap_or(x);
            let mut args = vec![Arg::Ptr(hist)];
            args.extend(hs.map(Arg::I64));
            args.extend([Arg::I32(nh as i32), Arg::Ptr(x)]);
            args.extend(xs.map(Arg::I64));
            args.push(Arg::Ptr(out));
            args.extend(
                [
                    taps.zeros,
                    taps.first,
                    taps.live,
                    taps.stride_t,
                    taps.t_out,
                    c,
                    pixels,
                ]
                .map(|v| Arg::I32(v as i32)),
            );
            // SAFETY: live buffers of the shapes and strides given, cubecl's stream and
            // device thread; the arguments in the kernel's order and types.
            unsafe { launch(&MODULE, entry, grid, (256, 1, 1), stream, &args) }
        });
        out
    })
}

/// The first `N` strides of `t`, in elements, as the kernels take them.
fn strides<const N: usize>(t: &Cube) -> [i64; N] {
    let s = t.meta.strides();
    std::array::from_fn(|i| s[i] as i64)
}

/// `t` itself where each frame's `H×W` plane is contiguous (the kernel reads pixels at
/// stride 1 from a channel's start), else a contiguous copy.
fn planes(t: Cube) -> Cube {
    let s = t.meta.strides();
    let w = t.meta.shape()[4];
    if s[4] == 1 && s[3] == w {
        t
    } else {
        into_contiguous(t)
    }
}

/// Whether [`rms_norm_silu`] takes these: f32 or bf16 `x`, `gamma` of its channel count, sizes
/// within the kernel's integer ranges.
pub fn norm_supports(x: &Tensor<Cuda, 5>, gamma: &Tensor<Cuda, 1>) -> bool {
    let [b, t, c, h, w] = x.dims();
    matches!(x.dtype(), DType::F32 | DType::BF16)
        && gamma.dims() == [c]
        && [b, t, c, h, w]
            .iter()
            .all(|d| *d > 0 && *d < i32::MAX as usize)
        && (b * t * h * w).div_ceil(256) < u32::MAX as usize
}

/// `silu(F.normalize(x, dim=C) · √C · γ)` (the Wan VAE's `RMS_norm` then SiLU) in one kernel,
/// f32 math.
///
/// # Shapes
/// - x: `[B, T, C, H, W]` (any strides: frame-major, or a channels-last buffer's view),
///   gamma: `[C]` → `[B, T, C, H, W]` contiguous, x's dtype
///
/// # Panics
/// When [`norm_supports`] says no.
pub fn rms_norm_silu(x: Tensor<Cuda, 5>, gamma: &Tensor<Cuda, 1>) -> Tensor<Cuda, 5> {
    assert!(
        norm_supports(&x, gamma),
        "rms_norm_silu: x {:?} {:?}, gamma {:?}",
        x.dims(),
        x.dtype(),
        gamma.dims()
    );
    let [b, t, c, h, w] = x.dims();
    let dtype = x.dtype();
    // γ·√C in f32 (C values, made once per call).
    let scaled = gamma.clone().cast(DType::F32).mul_scalar((c as f64).sqrt());
    let shape = [b, t, c, h, w];
    custom(
        "rms_norm_silu",
        vec![fused(x), fused(scaled)],
        shape,
        dtype,
        move |inputs| {
            let [x, g]: [Cube; 2] = inputs.try_into().expect("two inputs");
            let g = contiguous(g);
            let out = empty(&x, shape, dtype);
            let strides = strides::<5>(&x);
            let pixels = (b * t * h * w) as i64;
            let entry = if dtype == DType::BF16 {
                "rms_norm_silu_channels_bf16"
            } else {
                "rms_norm_silu_channels_f32"
            };
            let grid = ((pixels as usize).div_ceil(256) as u32, 1, 1);
            on_device(&[&out, &x, &g], move |p, stream| {
                let mut args = vec![Arg::Ptr(p[1])];
                args.extend(strides.map(Arg::I64));
                args.extend([Arg::Ptr(p[2]), Arg::Ptr(p[0])]);
                args.extend([t, c, h, w].map(|v| Arg::I32(v as i32)));
                args.push(Arg::I64(pixels));
                // SAFETY: live buffers of the shapes and strides given (g contiguous [C] f32),
                // cubecl's stream and device thread; the arguments in the kernel's order and
                // types.
                unsafe { launch(&MODULE, entry, grid, (256, 1, 1), stream, &args) }
            });
            out
        },
    )
}

/// Whether [`residual_add`] takes these: one shape, one dtype (f32 or bf16), sizes within the
/// kernel's integer ranges and grid.
pub fn add_supports(y: &Tensor<Cuda, 5>, h: &Tensor<Cuda, 5>) -> bool {
    let [b, t, c, hh, w] = y.dims();
    matches!(y.dtype(), DType::F32 | DType::BF16)
        && h.dtype() == y.dtype()
        && h.dims() == y.dims()
        && [b, t, c, hh, w].iter().all(|d| *d > 0)
        && b * t < 65_536
        && c.div_ceil(32) < 65_536
        && hh * w < i32::MAX as usize
        && c < i32::MAX as usize
}

/// `y + h` in one kernel, each operand read through its own strides (a convolution's
/// channels-last result or a frame-major tensor, coalesced either way), the sum in f32.
///
/// # Shapes
/// - y, h: `[B, T, C, H, W]` (any strides) → `[B, T, C, H, W]` contiguous (frame-major)
///
/// # Panics
/// When [`add_supports`] says no.
pub fn residual_add(y: Tensor<Cuda, 5>, h: Tensor<Cuda, 5>) -> Tensor<Cuda, 5> {
    assert!(
        add_supports(&y, &h),
        "residual_add: y {:?} {:?}, h {:?} {:?}",
        y.dims(),
        y.dtype(),
        h.dims(),
        h.dtype()
    );
    let shape = y.dims();
    let [b, t, c, hh, w] = shape;
    let dtype = y.dtype();
    custom(
        "vae_residual_add",
        vec![fused(y), fused(h)],
        shape,
        dtype,
        move |inputs| {
            let [y, h]: [Cube; 2] = inputs.try_into().expect("two inputs");
            let out = empty(&y, shape, dtype);
            let (ys, hs) = (strides::<5>(&y), strides::<5>(&h));
            let pixels = hh * w;
            let entry = if dtype == DType::BF16 {
                "residual_add_bf16"
            } else {
                "residual_add_f32"
            };
            let grid = (
                pixels.div_ceil(32) as u32,
                c.div_ceil(32) as u32,
                (b * t) as u32,
            );
            on_device(&[&out, &y, &h], move |p, stream| {
                let mut args = vec![Arg::Ptr(p[1])];
                args.extend(ys.map(Arg::I64));
                args.push(Arg::Ptr(p[2]));
                args.extend(hs.map(Arg::I64));
                args.push(Arg::Ptr(p[0]));
                args.extend([t, c, w, pixels].map(|v| Arg::I32(v as i32)));
                // SAFETY: live buffers of the shape and the strides given (out contiguous),
                // cubecl's stream and device thread; the arguments in the kernel's order and
                // types.
                unsafe { launch(&MODULE, entry, grid, (256, 1, 1), stream, &args) }
            });
            out
        },
    )
}
