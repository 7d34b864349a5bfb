//! The DiT's row-wise element-wise work as single kernels (`norms.cu`): RMSNorm, LayerNorm
//! with the per-frame modulation, and the gated residual add. bf16 in and out, f32 math, the
//! modulation in f32 as the DiT computes it. burn runs each of these as several kernels with
//! f32 intermediates in memory.

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Module, custom, launch, on_device},
};
use burn::tensor::{DType, Shape, Tensor};
use burn_cubecl::kernel::into_contiguous;

const MODULE: Module = Module {
    name: "norms",
    source: include_str!("norms.cu"),
};
const THREADS: u32 = 256;

fn contiguous(t: Cube) -> Cube {
    if t.is_contiguous() {
        t
    } else {
        into_contiguous(t)
    }
}

fn empty_like_bf16(x: &Cube) -> Cube {
    let client = x.client.clone();
    let n: usize = x.meta.shape().iter().product();
    Cube::new_contiguous(
        client.clone(),
        x.device.clone(),
        Shape::from(x.meta.shape().to_vec()),
        client.empty((n * 2).max(16)),
        DType::BF16,
    )
}

/// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
///
/// # Shapes
/// - x: `[B, L, D]` bf16, w: `[D]` (cast to f32) → `[B, L, D]` bf16
pub fn rms_norm_bf16(x: Tensor<Cuda, 3>, w: &Tensor<Cuda, 1>, eps: f64) -> Tensor<Cuda, 3> {
    let [b, l, d] = x.dims();
    assert_eq!(x.dtype(), DType::BF16, "rms_norm_bf16 takes bf16");
    assert_eq!(w.dims(), [d], "rms_norm_bf16: the weight must be [{d}]");
    let inputs = vec![
        x.into_primitive(),
        w.clone().cast(DType::F32).into_primitive(),
    ];
    custom("rms_norm_bf16", inputs, [b, l, d], DType::BF16, move |t| {
        let [x, w]: [Cube; 2] = t.try_into().expect("two inputs");
        let x = contiguous(x);
        let w = contiguous(w);
        let y = empty_like_bf16(&x);
        let rows = (b * l) as u32;
        if rows > 0 {
            on_device(&[&y, &x, &w], move |p, stream| {
                // SAFETY: contiguous buffers of `rows × d` and `d` elements, on cubecl's
                // device thread and stream.
                unsafe {
                    launch(
                        &MODULE,
                        "rms_norm_bf16",
                        (rows, 1, 1),
                        (THREADS, 1, 1),
                        stream,
                        &[
                            Arg::Ptr(p[1]),
                            Arg::Ptr(p[2]),
                            Arg::Ptr(p[0]),
                            Arg::I32(d as i32),
                            Arg::F32(eps as f32),
                        ],
                    )
                }
            });
        }
        y
    })
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
    let [mb, frames, six, md] = m.dims();
    assert_eq!(
        x.dtype(),
        DType::BF16,
        "layer_norm_modulate_bf16 takes bf16"
    );
    assert!(
        mb == b && six == 6 && md == d && frames > 0 && l % frames == 0,
        "layer_norm_modulate_bf16: x [{b}, {l}, {d}] and m {:?}",
        m.dims()
    );
    let inputs = vec![
        x.into_primitive(),
        m.clone().cast(DType::F32).into_primitive(),
    ];
    custom(
        "layer_norm_modulate_bf16",
        inputs,
        [b, l, d],
        DType::BF16,
        move |t| {
            let [x, m]: [Cube; 2] = t.try_into().expect("two inputs");
            let (x, m) = (contiguous(x), contiguous(m));
            let y = empty_like_bf16(&x);
            let rows = (b * l) as u32;
            if rows > 0 {
                on_device(&[&y, &x, &m], move |p, stream| {
                    // SAFETY: contiguous buffers of the shapes above, on cubecl's device
                    // thread and stream.
                    unsafe {
                        launch(
                            &MODULE,
                            "layer_norm_modulate_bf16",
                            (rows, 1, 1),
                            (THREADS, 1, 1),
                            stream,
                            &[
                                Arg::Ptr(p[1]),
                                Arg::Ptr(p[2]),
                                Arg::Ptr(p[0]),
                                Arg::I32(d as i32),
                                Arg::I32(l as i32),
                                Arg::I32((l / frames) as i32),
                                Arg::I32(frames as i32),
                                Arg::I32(i_shift as i32),
                                Arg::I32(i_scale as i32),
                                Arg::F32(eps as f32),
                            ],
                        )
                    }
                });
            }
            y
        },
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
    let [mb, frames, six, md] = m.dims();
    assert!(
        x.dtype() == DType::BF16 && y.dtype() == DType::BF16,
        "gated_add_bf16 takes bf16"
    );
    assert!(
        y.dims() == [b, l, d] && mb == b && six == 6 && md == d && frames > 0 && l % frames == 0,
        "gated_add_bf16: x [{b}, {l}, {d}], y {:?} and m {:?}",
        y.dims(),
        m.dims()
    );
    let inputs = vec![
        x.into_primitive(),
        y.into_primitive(),
        m.clone().cast(DType::F32).into_primitive(),
    ];
    custom("gated_add_bf16", inputs, [b, l, d], DType::BF16, move |t| {
        let [x, y, m]: [Cube; 3] = t.try_into().expect("three inputs");
        let (x, y, m) = (contiguous(x), contiguous(y), contiguous(m));
        let out = empty_like_bf16(&x);
        let rows = (b * l) as u32;
        if rows > 0 {
            on_device(&[&out, &x, &y, &m], move |p, stream| {
                // SAFETY: contiguous buffers of the shapes above, on cubecl's device thread
                // and stream.
                unsafe {
                    launch(
                        &MODULE,
                        "gated_add_bf16",
                        (rows, 1, 1),
                        (THREADS, 1, 1),
                        stream,
                        &[
                            Arg::Ptr(p[1]),
                            Arg::Ptr(p[2]),
                            Arg::Ptr(p[3]),
                            Arg::Ptr(p[0]),
                            Arg::I32(d as i32),
                            Arg::I32(l as i32),
                            Arg::I32((l / frames) as i32),
                            Arg::I32(frames as i32),
                            Arg::I32(i_gate as i32),
                        ],
                    )
                }
            });
        }
        out
    })
}
