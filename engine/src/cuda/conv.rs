//! 2-D convolutions through cuDNN on burn-cuda tensors (the Wan VAE's per-frame convolutions,
//! the light VAEs'), as one custom operation of burn's fusion stream on cubecl's CUDA stream.
//!
//! Precision, chosen: bf16 tensors run on bf16 tensor cores with f32 accumulation; f32
//! tensors let cuDNN use TF32 tensor cores (its default math on Ampere and newer: 10-bit
//! mantissa products, f32 accumulation), as PyTorch's cuDNN convolutions do by default.
//!
//! Layout: cuDNN's tensor-core convolutions read and write channels-last (NHWC) tensors; on
//! NCHW ones it either transposes in a workspace of the tensors' size or, within a small
//! workspace, falls back to CUDA-core kernels (measured on an H100: 43 ms where PyTorch takes
//! 6.4 ms, docs/perf.md). So a convolution whose channel counts suit the tensor cores (multiples
//! of 8) runs on NHWC: the input is read through its channels-last view (a copy unless it
//! already is channels-last underneath), the output is made channels-last, the bias added
//! along its contiguous axis, and handed back as an NCHW view of it (no copy); others (the
//! VAE's 3-channel ends) stay NCHW. The algorithm is the
//! fastest cuDNN measures for the shape at its first use (`cudnnFindConvolutionForwardAlgorithmEx`,
//! within a fixed workspace; its heuristic's choice where measuring fails), cached.
//!
//! libcudnn is loaded at first use ([`super::dnn`]).

pub use super::dnn::available;
use super::{
    dnn::handle_on,
    gemm::Cuda,
    op::{Cube, contiguous, custom, empty, fused, on_device_with},
};
use burn::tensor::{DType, Tensor};
use cudarc::cudnn::{result as dnn, sys};
use std::{
    collections::HashMap,
    ffi::c_void,
    sync::{Mutex, OnceLock},
};

/// Scratch memory a convolution may use (algorithms needing more are passed over).
const WORKSPACE: usize = 64 << 20;

/// Whether [`conv2d`] takes these: f32 or bf16 alike, `[N, C, H, W]` by `[O, C, kh, kw]`.
pub fn supports(x: &Tensor<Cuda, 4>, w: &Tensor<Cuda, 4>) -> bool {
    let ([n, c, h, wd], [o, wc, kh, kw]) = (x.dims(), w.dims());
    matches!(x.dtype(), DType::F32 | DType::BF16)
        && w.dtype() == x.dtype()
        && c == wc
        && [n, c, h, wd, o, kh, kw]
            .iter()
            .all(|d| *d > 0 && *d < i32::MAX as usize)
}

/// Cross-correlation (PyTorch's `conv2d`), dilation 1, one group, plus `bias` when given
/// (added to the channels-last result, where it runs along the contiguous axis).
///
/// # Shapes
/// - x: `[N, C, H, W]`, w: `[O, C, kh, kw]`, bias: `[O]` →
///   `[N, O, (H + 2·pad_h − kh) / s_h + 1, …]`
///
/// # Panics
/// When [`supports`] says no, the bias is not `[O]`, or the output would be empty.
pub fn conv2d(
    x: Tensor<Cuda, 4>,
    w: Tensor<Cuda, 4>,
    bias: Option<Tensor<Cuda, 1>>,
    stride: [usize; 2],
    pad: [usize; 2],
) -> Tensor<Cuda, 4> {
    assert!(
        supports(&x, &w),
        "cuda::conv2d: x {:?} {:?}, w {:?} {:?}",
        x.dims(),
        x.dtype(),
        w.dims(),
        w.dtype()
    );
    let ([n, _, h, wd], [o, _, kh, kw]) = (x.dims(), w.dims());
    assert!(
        bias.as_ref().is_none_or(|b| b.dims() == [o]),
        "cuda::conv2d: the bias must be [{o}]"
    );
    if padded_out(x.dims()[1], o) {
        // Zero filters up to the next multiple of 8, the channels-last convolution, then the
        // first `o` channels (a view).
        let extra = o.next_multiple_of(8) - o;
        let (device, dtype) = (w.device(), w.dtype());
        let zeros = Tensor::zeros([extra, w.dims()[1], kh, kw], (&device, dtype));
        let w = Tensor::cat(vec![w, zeros], 0);
        let bias = bias.map(|b| {
            let zeros = Tensor::zeros([extra], (&device, b.dtype()));
            Tensor::cat(vec![b, zeros], 0)
        });
        return conv2d(x, w, bias, stride, pad).narrow(1, 0, o);
    }
    assert!(
        h + 2 * pad[0] >= kh && wd + 2 * pad[1] >= kw,
        "cuda::conv2d: the kernel is larger than the padded input"
    );
    let out = [
        n,
        o,
        (h + 2 * pad[0] - kh) / stride[0] + 1,
        (wd + 2 * pad[1] - kw) / stride[1] + 1,
    ];
    let dtype = x.dtype();
    let c = x.dims()[1];
    let problem = Problem {
        x: [n, c, h, wd].map(|d| d as i32),
        w: [o, c, kh, kw].map(|d| d as i32),
        y: out.map(|d| d as i32),
        stride: stride.map(|d| d as i32),
        pad: pad.map(|d| d as i32),
        bf16: dtype == DType::BF16,
        nhwc: channels_last(c, o),
    };
    // Channels-last views x [N, H, W, C], w [O, kh, kw, C] and y made as [N, H', W', O];
    // or all NCHW.
    let order = if problem.nhwc {
        [0, 2, 3, 1]
    } else {
        [0, 1, 2, 3]
    };
    let inputs = vec![fused(x.permute(order)), fused(w.permute(order))];
    let [_, _, ho, wo] = out;
    let y_shape = if problem.nhwc { [n, ho, wo, o] } else { out };
    let y = custom("cudnn_conv2d", inputs, y_shape, dtype, move |t| {
        let [x, w]: [Cube; 2] = t.try_into().expect("two inputs");
        let [x, w] = [x, w].map(contiguous);
        let y = empty(&x, y_shape, dtype);
        on_device_with(&[&y, &x, &w], WORKSPACE, move |p, stream| {
            // SAFETY: contiguous buffers of the problem's shapes in its layout and a
            // workspace of WORKSPACE bytes, on cubecl's device thread and stream.
            unsafe { problem.run(p[1], p[2], p[0], p[3], stream) }
        });
        y
    });
    // The bias along the channel axis of y's layout, then y as NCHW.
    let (bias_shape, to_nchw) = if problem.nhwc {
        ([1, 1, 1, o], [0, 3, 1, 2])
    } else {
        ([1, o, 1, 1], [0, 1, 2, 3])
    };
    let y = match bias {
        Some(b) => y + b.cast(dtype).reshape(bias_shape),
        None => y,
    };
    y.permute(to_nchw)
}

/// Whether a convolution from `c` to `o` channels runs channels-last: where both are
/// multiples of 8, the shapes cuDNN's tensor-core kernels take, or `o` is padded to one
/// ([`padded_out`]). Otherwise NCHW, which was faster for the Wan VAE's 96 → 3 output
/// convolution unpadded (19.6 ms NCHW, 38.0 ms channels-last on an H100, docs/perf.md).
pub(crate) fn channels_last(c: usize, o: usize) -> bool {
    c.is_multiple_of(8) && (o.is_multiple_of(8) || padded_out(c, o))
}

/// Whether a convolution from `c` to `o` channels runs with its filters padded with zeros to
/// the next multiple of 8 (channels-last on the tensor cores, then the first `o` channels of
/// the result): `c` a multiple of 8, `o` not, and `HANZO_LIVE_CONV_PAD_OUT=1` — off by default
/// until timed (the Wan VAE's 96 → 3 output convolution took 14.9 ms a call NCHW on an H200 at
/// 480×832, 4 frames: 13 % of a latent's decode, for 25 GFLOP).
fn padded_out(c: usize, o: usize) -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    c.is_multiple_of(8)
        && !o.is_multiple_of(8)
        && *ON.get_or_init(|| super::switched_on("HANZO_LIVE_CONV_PAD_OUT"))
}

/// One convolution's shapes and options (the key of the algorithm cache).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Problem {
    x: [i32; 4],
    w: [i32; 4],
    y: [i32; 4],
    stride: [i32; 2],
    pad: [i32; 2],
    bf16: bool,
    /// Channels-last tensors (else NCHW).
    nhwc: bool,
}

/// The algorithm and the math type it was proposed with, per problem.
type Choice = (sys::cudnnConvolutionFwdAlgo_t, sys::cudnnMathType_t);

fn algorithms() -> &'static Mutex<HashMap<Problem, Choice>> {
    static ALGOS: OnceLock<Mutex<HashMap<Problem, Choice>>> = OnceLock::new();
    ALGOS.get_or_init(Mutex::default)
}

impl Problem {
    /// # Safety
    /// The pointers must be live device buffers of the problem's shapes (and `workspace` of
    /// [`WORKSPACE`] bytes), the stream live, and cubecl's context current on this thread.
    unsafe fn run(self, x: u64, w: u64, y: u64, workspace: u64, stream: u64) -> Result<(), String> {
        fn e(what: &'static str) -> impl Fn(dnn::CudnnError) -> String {
            move |err| format!("cuDNN {what}: {err:?}")
        }
        // SAFETY: a live stream, as the caller promises.
        let handle = unsafe { handle_on(stream) }?;
        let dtype = if self.bf16 {
            sys::cudnnDataType_t::CUDNN_DATA_BFLOAT16
        } else {
            sys::cudnnDataType_t::CUDNN_DATA_FLOAT
        };
        let format = if self.nhwc {
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC
        } else {
            sys::cudnnTensorFormat_t::CUDNN_TENSOR_NCHW
        };
        let xd = dnn::create_tensor_descriptor().map_err(e("descriptor"))?;
        let yd = dnn::create_tensor_descriptor().map_err(e("descriptor"))?;
        let wd = dnn::create_filter_descriptor().map_err(e("descriptor"))?;
        let cd = dnn::create_convolution_descriptor().map_err(e("descriptor"))?;
        // SAFETY: the descriptors are created above and freed below; the rest as the caller
        // promises.
        let result = unsafe {
            (|| -> Result<(), String> {
                // Dimensions in NCHW order whatever the memory layout (a filter's NHWC is
                // KRSC).
                dnn::set_tensor4d_descriptor(xd, format, dtype, self.x).map_err(e("x"))?;
                dnn::set_tensor4d_descriptor(yd, format, dtype, self.y).map_err(e("y"))?;
                dnn::set_filter4d_descriptor(wd, dtype, format, self.w).map_err(e("w"))?;
                dnn::set_convolution2d_descriptor(
                    cd,
                    self.pad[0],
                    self.pad[1],
                    self.stride[0],
                    self.stride[1],
                    1,
                    1,
                    sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
                    sys::cudnnDataType_t::CUDNN_DATA_FLOAT,
                )
                .map_err(e("convolution"))?;
                let math = if self.bf16 {
                    sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH
                } else {
                    sys::cudnnMathType_t::CUDNN_DEFAULT_MATH
                };
                dnn::set_convolution_math_type(cd, math).map_err(e("math type"))?;
                let cached = algorithms()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&self)
                    .copied();
                let (algo, math) = match cached {
                    Some(choice) => choice,
                    None => {
                        let mut perf =
                            [std::mem::zeroed::<sys::cudnnConvolutionFwdAlgoPerf_t>(); 8];
                        let mut count = 0;
                        // Measured (fastest first; runs each candidate once, writing y, and
                        // waits for the stream: only at a shape's first use), else the
                        // heuristic's ranking.
                        let measured = sys::cudnnFindConvolutionForwardAlgorithmEx(
                            handle,
                            xd,
                            x as *const c_void,
                            wd,
                            w as *const c_void,
                            cd,
                            yd,
                            y as *mut c_void,
                            perf.len() as i32,
                            &mut count,
                            perf.as_mut_ptr(),
                            workspace as *mut c_void,
                            WORKSPACE,
                        )
                        .result();
                        if measured.is_err() || count <= 0 {
                            dnn::get_convolution_forward_algorithm(
                                handle,
                                xd,
                                wd,
                                cd,
                                yd,
                                perf.len() as i32,
                                &mut count,
                                perf.as_mut_ptr(),
                            )
                            .map_err(e("algorithm"))?;
                        }
                        let choice = perf[..count.max(0) as usize]
                            .iter()
                            .find(|p| {
                                p.status == sys::cudnnStatus_t::CUDNN_STATUS_SUCCESS
                                    && p.memory <= WORKSPACE
                            })
                            .map(|p| (p.algo, p.mathType))
                            .ok_or_else(|| {
                                format!(
                                    "cuDNN has no algorithm for {self:?} within {WORKSPACE} bytes"
                                )
                            })?;
                        algorithms()
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(self, choice);
                        choice
                    }
                };
                // Run with the math type the heuristic proposed the algorithm for (as PyTorch
                // does): a fallback algorithm may use another than the one asked.
                dnn::set_convolution_math_type(cd, math).map_err(e("math type"))?;
                let (alpha, beta) = (1f32, 0f32);
                dnn::convolution_forward(
                    handle,
                    &alpha as *const f32 as *const c_void,
                    xd,
                    x as *const c_void,
                    wd,
                    w as *const c_void,
                    cd,
                    algo,
                    workspace as *mut c_void,
                    WORKSPACE,
                    &beta as *const f32 as *const c_void,
                    yd,
                    y as *mut c_void,
                )
                .map_err(e("forward"))
            })()
        };
        // SAFETY: created above, not freed elsewhere.
        unsafe {
            let _ = dnn::destroy_tensor_descriptor(xd);
            let _ = dnn::destroy_tensor_descriptor(yd);
            let _ = dnn::destroy_filter_descriptor(wd);
            let _ = dnn::destroy_convolution_descriptor(cd);
        }
        result
    }
}
