//! The DiT's row-wise element-wise work as single kernels (`norms.cu`): RMSNorm (alone or with
//! the rotary embedding after it), LayerNorm with the per-frame modulation or its own affine,
//! and the gated residual add. bf16 in and out, f32 math, the
//! modulation in f32 as the DiT computes it. burn runs each of these as several kernels with
//! f32 intermediates in memory.

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Fused, Module, contiguous, custom, empty, fused, launch, on_device},
};
use burn::tensor::{DType, Tensor};

const MODULE: Module = Module {
    name: "norms",
    source: include_str!("norms.cu"),
};
const THREADS: u32 = 256;
/// The widest row the `_v8` kernels take: 8 elements a thread, 1024 threads.
const V8_MAX_D: usize = 8 * 1024;

/// Whether the row kernels take a modulation of these dims for `x`: one row per batch row and
/// frame (the portable path also broadcasts a batch or frame of 1; the kernels do not).
pub(crate) fn modulation_fits([b, l, d]: [usize; 3], [mb, f, six, md]: [usize; 4]) -> bool {
    mb == b && six == 6 && md == d && f > 0 && l % f == 0
}

/// Whether [`rms_norm_rope_bf16`] takes angle tables of these dims for `x`: one table row
/// per token, shared by the batch or one per batch row, half a head wide.
pub(crate) fn rope_fits([b, l, d]: [usize; 3], cos: [usize; 4], sin: [usize; 4]) -> bool {
    let [cb, cl, one, half] = cos;
    (cb == b || cb == 1)
        && cl == l
        && one == 1
        && half > 0
        && d.is_multiple_of(2 * half)
        && sin == cos
}

/// The kernels' frame arguments for `x` `[B, L, D]` over `frames` frames: D, L, tokens per
/// frame, frames.
fn frame_args([_, l, d]: [usize; 3], frames: usize) -> [Arg; 4] {
    [
        Arg::I32(d as i32),
        Arg::I32(l as i32),
        Arg::I32((l / frames) as i32),
        Arg::I32(frames as i32),
    ]
}

/// Queues the kernel `entry` of `norms.cu` for a `[B, L, D]` bf16 result, one block per row.
/// Every kernel there takes its inputs' pointers (made contiguous, in order), the output's,
/// then `scalars`.
fn row_kernel(
    entry: &'static str,
    inputs: Vec<Fused>,
    shape: [usize; 3],
    scalars: Vec<Arg>,
) -> Tensor<Cuda, 3> {
    row_kernel_with(entry, inputs, shape, scalars, false, true)
}

/// [`row_kernel`]; with `strided_x` the first input is read where it is when its rows are
/// evenly spaced ([`even_rows`]: a view of a wider tensor's last axis, as q and k of the
/// joined q|k|v projection are) and its row stride in elements follows `scalars` (the
/// kernel's `ld`); otherwise it is copied first and `ld` is D. The kernel's `_v8` form runs
/// where `v8` and the layout allow it (D and `ld` multiples of 8, D ≤ [`V8_MAX_D`], every
/// buffer 16-byte aligned), the form for any D otherwise.
fn row_kernel_with(
    entry: &'static str,
    inputs: Vec<Fused>,
    shape: [usize; 3],
    scalars: Vec<Arg>,
    strided_x: bool,
    v8: bool,
) -> Tensor<Cuda, 3> {
    custom(entry, inputs, shape, DType::BF16, move |t| {
        let mut t = t.into_iter();
        let x = t.next().expect("an input");
        let in_place = strided_x.then(|| even_rows(&x, shape)).flatten();
        let x = if in_place.is_some() { x } else { contiguous(x) };
        let inputs: Vec<Cube> = std::iter::once(x).chain(t.map(contiguous)).collect();
        let y = empty(&inputs[0], shape, DType::BF16);
        let rows = (shape[0] * shape[1]) as u32;
        if rows > 0 {
            let tensors: Vec<&Cube> = std::iter::once(&y).chain(&inputs).collect();
            let mut scalars = scalars.clone();
            let (d, ld) = (shape[2], in_place.unwrap_or(shape[2]));
            if strided_x {
                scalars.push(Arg::I64(ld as i64));
            }
            let v8 = v8 && d.is_multiple_of(8) && ld.is_multiple_of(8) && d <= V8_MAX_D;
            on_device(&tensors, move |p, stream| {
                let (name, threads) = if v8 && p.iter().all(|ptr| ptr.is_multiple_of(16)) {
                    (format!("{entry}_v8"), (d / 8).next_multiple_of(32) as u32)
                } else {
                    (entry.to_owned(), THREADS)
                };
                let args: Vec<Arg> = p[1..]
                    .iter()
                    .chain(&p[..1])
                    .map(|ptr| Arg::Ptr(*ptr))
                    .chain(scalars)
                    .collect();
                // SAFETY: contiguous buffers (the first, with `strided_x`, rows `ld` apart)
                // of the shapes the public functions check, on cubecl's device thread and
                // stream; the arguments in the kernel's order.
                unsafe { launch(&MODULE, &name, (rows, 1, 1), (threads, 1, 1), stream, &args) }
            });
        }
        y
    })
}

/// The distance in elements between consecutive rows of `x` `[B, L, D]` when row `b·L + i`
/// starts at `(b·L + i)·stride` with its D elements contiguous; `None` otherwise.
fn even_rows(x: &Cube, [b, l, d]: [usize; 3]) -> Option<usize> {
    let s = x.meta.strides();
    let stride = match (b, l) {
        (_, 1) => s[0],
        (1, _) => s[1],
        _ if s[0] == l * s[1] => s[1],
        _ => return None,
    };
    (s[2] == 1 && stride >= d).then_some(stride)
}

/// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
///
/// # Shapes
/// - x: `[B, L, D]` bf16, w: `[D]` (cast to f32) → `[B, L, D]` bf16
pub fn rms_norm_bf16(x: Tensor<Cuda, 3>, w: &Tensor<Cuda, 1>, eps: f64) -> Tensor<Cuda, 3> {
    let [b, l, d] = x.dims();
    assert_eq!(x.dtype(), DType::BF16, "rms_norm_bf16 takes bf16");
    assert_eq!(w.dims(), [d], "rms_norm_bf16: the weight must be [{d}]");
    row_kernel(
        "rms_norm_bf16",
        vec![fused(x), fused(w.clone().cast(DType::F32))],
        [b, l, d],
        vec![Arg::I32(d as i32), Arg::F32(eps as f32)],
    )
}

/// [`rms_norm_bf16`] across the heads, then Wan's rotary embedding on each head's interleaved
/// pairs (`(a, b) → (a·cos − b·sin, a·sin + b·cos)`, the angles of [`crate::wan::rope::Rope`]).
///
/// # Shapes
/// - x: `[B, L, D]` bf16, w: `[D]`, cos/sin: `[B|1, L, 1, d/2]` f32 (d the head width, D a
///   multiple of d) → `[B, L, D]` bf16
pub fn rms_norm_rope_bf16(
    x: Tensor<Cuda, 3>,
    w: &Tensor<Cuda, 1>,
    cos: &Tensor<Cuda, 4>,
    sin: &Tensor<Cuda, 4>,
    eps: f64,
) -> Tensor<Cuda, 3> {
    let [b, l, d] = x.dims();
    let [cb, cl, one, half] = cos.dims();
    assert_eq!(x.dtype(), DType::BF16, "rms_norm_rope_bf16 takes bf16");
    assert_eq!(
        w.dims(),
        [d],
        "rms_norm_rope_bf16: the weight must be [{d}]"
    );
    assert!(
        (cb == b || cb == 1)
            && cl == l
            && one == 1
            && half > 0
            && d.is_multiple_of(2 * half)
            && sin.dims() == cos.dims(),
        "rms_norm_rope_bf16: x [{b}, {l}, {d}], cos {:?}, sin {:?}",
        cos.dims(),
        sin.dims()
    );
    row_kernel_with(
        "rms_norm_rope_bf16",
        vec![
            fused(x),
            fused(w.clone().cast(DType::F32)),
            fused(cos.clone().cast(DType::F32)),
            fused(sin.clone().cast(DType::F32)),
        ],
        [b, l, d],
        vec![
            Arg::I32(d as i32),
            Arg::I32(l as i32),
            Arg::I32(half as i32),
            Arg::I32(i32::from(cb == b && b > 1)),
            Arg::F32(eps as f32),
        ],
        true,
        // A thread's four pairs turn by four consecutive angles of one head.
        half.is_multiple_of(4),
    )
}

/// `LN(x)·(1 + scale) + shift` with `shift = m[:, f, i_shift]`, `scale = m[:, f, i_scale]` for
/// each token's frame `f` (tokens frame-major, `L / F` per frame); LN without affine.
///
/// # Shapes
/// - x: `[B, L, D]` bf16, m: `[B, F, 6, D]` (cast to f32) → `[B, L, D]` bf16
pub fn layer_norm_modulate_bf16(
    x: Tensor<Cuda, 3>,
    m: &Tensor<Cuda, 4>,
    i_shift: usize,
    i_scale: usize,
    eps: f64,
) -> Tensor<Cuda, 3> {
    let [b, l, d] = x.dims();
    let frames = m.dims()[1];
    assert_eq!(
        x.dtype(),
        DType::BF16,
        "layer_norm_modulate_bf16 takes bf16"
    );
    assert!(
        modulation_fits([b, l, d], m.dims()),
        "layer_norm_modulate_bf16: x [{b}, {l}, {d}] and m {:?}",
        m.dims()
    );
    let mut args = frame_args([b, l, d], frames).to_vec();
    args.extend([
        Arg::I32(i_shift as i32),
        Arg::I32(i_scale as i32),
        Arg::F32(eps as f32),
    ]);
    row_kernel(
        "layer_norm_modulate_bf16",
        vec![fused(x), fused(m.clone().cast(DType::F32))],
        [b, l, d],
        args,
    )
}

/// `LN(x)·w + b` over the last dimension (the statistics and the affine in f32).
///
/// # Shapes
/// - x: `[B, L, D]` bf16, w, b: `[D]` (cast to f32) → `[B, L, D]` bf16
pub fn layer_norm_affine_bf16(
    x: Tensor<Cuda, 3>,
    w: &Tensor<Cuda, 1>,
    b: &Tensor<Cuda, 1>,
    eps: f64,
) -> Tensor<Cuda, 3> {
    let [n, l, d] = x.dims();
    assert_eq!(x.dtype(), DType::BF16, "layer_norm_affine_bf16 takes bf16");
    assert!(
        w.dims() == [d] && b.dims() == [d],
        "layer_norm_affine_bf16: the weight and bias must be [{d}]"
    );
    row_kernel(
        "layer_norm_affine_bf16",
        vec![
            fused(x),
            fused(w.clone().cast(DType::F32)),
            fused(b.clone().cast(DType::F32)),
        ],
        [n, l, d],
        vec![Arg::I32(d as i32), Arg::F32(eps as f32)],
    )
}

/// `x + y·gate` with `gate = m[:, f, i_gate]` for each token's frame.
///
/// # Shapes
/// - x, y: `[B, L, D]` bf16, m: `[B, F, 6, D]` (cast to f32) → `[B, L, D]` bf16
pub fn gated_add_bf16(
    x: Tensor<Cuda, 3>,
    y: Tensor<Cuda, 3>,
    m: &Tensor<Cuda, 4>,
    i_gate: usize,
) -> Tensor<Cuda, 3> {
    let [b, l, d] = x.dims();
    let frames = m.dims()[1];
    assert!(
        x.dtype() == DType::BF16 && y.dtype() == DType::BF16,
        "gated_add_bf16 takes bf16"
    );
    assert!(
        y.dims() == [b, l, d] && modulation_fits([b, l, d], m.dims()),
        "gated_add_bf16: x [{b}, {l}, {d}], y {:?} and m {:?}",
        y.dims(),
        m.dims()
    );
    let mut args = frame_args([b, l, d], frames).to_vec();
    args.push(Arg::I32(i_gate as i32));
    row_kernel(
        "gated_add_bf16",
        vec![fused(x), fused(y), fused(m.clone().cast(DType::F32))],
        [b, l, d],
        args,
    )
}
