//! StreamDiffusionV2's adaptive sink written on the device in three kernels a cache row
//! (`ring.cu`): the sink frames' and the new frame's mean K and V, the similarity and the §8
//! rule, the copy into the chosen slot. burn takes ~60 small operations a row for the same
//! (means, norms, argmin, a mask over the row's frames), which at 512×512 cost more than the
//! rest of the DiT call (docs/perf.md).

use super::{
    gemm::Cuda,
    op::{Arg, Cube, Module, contiguous, custom_many, empty, fused, launch, on_device},
};
use burn::tensor::{DType, Tensor, TensorPrimitive};
use burn_cubecl::kernel::into_contiguous;

const MODULE: Module = Module {
    name: "ring",
    source: include_str!("ring.cu"),
};

/// The most sink frames `ring_choose` takes.
const MAX_SINK: usize = 8;

/// One cache row's adaptive write: the new frame is batch row `batch` of the call's K/V, the
/// ring row `row`, and `fifo` the slot it takes unless a sink is replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveWrite {
    pub batch: usize,
    pub row: usize,
    pub fifo: usize,
}

/// Whether [`adaptive_write`] takes these: K and V rings of one shape and dtype (f32 or bf16)
/// of `frames` slots, one new frame per batch row of the same dtype and token width, a sink of
/// 1–8 frames, rows and slots in range.
pub fn supports(
    ring: [&Tensor<Cuda, 4>; 2],
    new: [&Tensor<Cuda, 4>; 2],
    frames: usize,
    sink: usize,
    writes: &[AdaptiveWrite],
) -> bool {
    let [rows, tokens, h, d] = ring[0].dims();
    let [batch, fs, nh, nd] = new[0].dims();
    let dtype = ring[0].dtype();
    matches!(dtype, DType::F32 | DType::BF16)
        && ring[1].dims() == ring[0].dims()
        && new[1].dims() == new[0].dims()
        && [ring[1].dtype(), new[0].dtype(), new[1].dtype()] == [dtype; 3]
        && frames > 0
        && tokens == frames * fs
        && [nh, nd] == [h, d]
        && (1..=MAX_SINK).contains(&sink)
        && sink < frames
        && !writes.is_empty()
        && writes
            .iter()
            .all(|w| w.batch < batch && w.row < rows && w.fifo < frames)
        && (fs * h * d).div_ceil(256) < u32::MAX as usize
        && (h * d).div_ceil(32) < 65_536
}

/// Per write: the similarity of each sink frame of ring row `row` to the new frame (the
/// cosine of the mean keys and of the mean values, averaged), the least similar sink's slot
/// when that is below `threshold` (the first on ties) else `fifo`, and the new frame written
/// there in K and V. The rings are written in place where nothing else holds them (else a copy
/// is written); the slots come back as floats.
///
/// # Shapes
/// - ring_k, ring_v: `[rows, frames·fs, H, d]`, new_k, new_v: `[batch, fs, H, d]` →
///   `([rows, frames·fs, H, d], [rows, frames·fs, H, d], [writes])`
///
/// # Panics
/// When [`supports`] says no.
#[allow(clippy::too_many_arguments)]
pub fn adaptive_write(
    ring_k: Tensor<Cuda, 4>,
    ring_v: Tensor<Cuda, 4>,
    new_k: Tensor<Cuda, 4>,
    new_v: Tensor<Cuda, 4>,
    frames: usize,
    sink: usize,
    threshold: f64,
    writes: &[AdaptiveWrite],
) -> (Tensor<Cuda, 4>, Tensor<Cuda, 4>, Tensor<Cuda, 1>) {
    assert!(
        supports([&ring_k, &ring_v], [&new_k, &new_v], frames, sink, writes),
        "ring::adaptive_write: rings {:?} {:?}, new {:?} {:?}, {frames} frames, sink {sink}, \
         {writes:?}",
        ring_k.dims(),
        ring_k.dtype(),
        new_k.dims(),
        new_k.dtype()
    );
    let shape = ring_k.dims();
    let [_, tokens, h, d] = shape;
    let (fs, hd) = (tokens / frames, h * d);
    let dtype = ring_k.dtype();
    let writes = writes.to_vec();
    let m = writes.len();
    let outputs = vec![
        (shape.to_vec(), dtype),
        (shape.to_vec(), dtype),
        (vec![m], DType::F32),
    ];
    let inputs = vec![fused(ring_k), fused(ring_v), fused(new_k), fused(new_v)];
    let out = custom_many("ring_adaptive_write", inputs, outputs, move |t| {
        let [rk, rv, nk, nv]: [Cube; 4] = t.try_into().expect("four inputs");
        let (rk, rv) = (writable(rk), writable(rv));
        let (nk, nv) = (contiguous(nk), contiguous(nv));
        let means = empty(&nk, [m, 2, sink + 1, hd], DType::F32);
        let slots = empty(&nk, [m], DType::F32);
        let bf16 = dtype == DType::BF16;
        let writes = writes.clone();
        on_device(&[&rk, &rv, &nk, &nv, &means, &slots], move |p, stream| {
            let (rk, rv, nk, nv, means, slots) = (p[0], p[1], p[2], p[3], p[4], p[5]);
            let (means_entry, write_entry) = if bf16 {
                ("ring_means_bf16", "ring_write_bf16")
            } else {
                ("ring_means_f32", "ring_write_f32")
            };
            let count = (fs * hd) as i64;
            for (i, w) in writes.iter().enumerate() {
                let row_offset = (w.row * tokens * hd) as i64;
                let new_offset = (w.batch * fs * hd) as i64;
                let mean_i = means + (i * 2 * (sink + 1) * hd * 4) as u64;
                let slot_i = slots + (i * 4) as u64;
                // Both per-row kernels start with the rings, the row, the new frames and the
                // batch row.
                let frames = [
                    Arg::Ptr(rk),
                    Arg::Ptr(rv),
                    Arg::I64(row_offset),
                    Arg::Ptr(nk),
                    Arg::Ptr(nv),
                    Arg::I64(new_offset),
                ];
                let with = |rest: &[Arg]| [&frames[..], rest].concat();
                let means_args = with(&[
                    Arg::Ptr(mean_i),
                    Arg::I32(sink as i32),
                    Arg::I32(fs as i32),
                    Arg::I32(hd as i32),
                ]);
                let choose_args = [
                    Arg::Ptr(mean_i),
                    Arg::I32(sink as i32),
                    Arg::I32(hd as i32),
                    Arg::F32(threshold as f32),
                    Arg::I32(w.fifo as i32),
                    Arg::Ptr(slot_i),
                ];
                let write_args = with(&[Arg::Ptr(slot_i), Arg::I64(count)]);
                let means_grid = (hd.div_ceil(32) as u32, (sink + 1) as u32, 2);
                let write_grid = ((count as usize).div_ceil(256) as u32, 1, 2);
                // SAFETY (the three launches): live buffers of the shapes above (rings and
                // new frames contiguous; means and slots f32), cubecl's stream and device
                // thread; the arguments in the kernels' order and types.
                unsafe {
                    launch(
                        &MODULE,
                        means_entry,
                        means_grid,
                        (256, 1, 1),
                        stream,
                        &means_args,
                    )?;
                    launch(
                        &MODULE,
                        "ring_choose",
                        (1, 1, 1),
                        (256, 1, 1),
                        stream,
                        &choose_args,
                    )?;
                    launch(
                        &MODULE,
                        write_entry,
                        write_grid,
                        (256, 1, 1),
                        stream,
                        &write_args,
                    )?;
                }
            }
            Ok(())
        });
        vec![rk, rv, slots]
    });
    let [k, v, slots]: [_; 3] = out.try_into().expect("three outputs");
    let float = |t| TensorPrimitive::Float(t);
    (
        Tensor::from_primitive(float(k)),
        Tensor::from_primitive(float(v)),
        Tensor::from_primitive(float(slots)),
    )
}

/// `t` where it may be written (contiguous, nothing else holding its buffer), else a
/// contiguous copy.
fn writable(t: Cube) -> Cube {
    if !t.is_contiguous() {
        into_contiguous(t)
    } else if t.can_mut() {
        t
    } else {
        t.copy()
    }
}
