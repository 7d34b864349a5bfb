//! The input of the Wan VAE's causal 3-D convolution in its folded 2-D form, built
//! channels-last in one kernel (`vae.cu`) for cuDNN's tensor-core convolutions
//! ([`super::conv`]): the zero padding, the cached history and the input frames, each output
//! frame's live time taps side by side on the channel axis. It replaces two concatenations and
//! the transpose to NHWC the convolution would otherwise make.

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Module, custom, empty, fused, launch, on_device},
};
use burn::tensor::{DType, Tensor};
use burn_cubecl::kernel::into_contiguous;

const MODULE: Module = Module {
    name: "vae",
    source: include_str!("vae.cu"),
};

/// Where the taps come from: `zeros` zero frames, then the history's frames, then the input's;
/// output frame `t`'s tap `k` is frame `t·stride_t + first + k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taps {
    pub zeros: usize,
    pub first: usize,
    pub live: usize,
    pub stride_t: usize,
    pub t_out: usize,
}

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
        let strides = |t: &Cube| {
            let s = t.meta.strides();
            [s[0] as i64, s[1] as i64, s[2] as i64]
        };
        let xs = strides(&x);
        let hs = hist.as_ref().map_or([0; 3], strides);
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
