//! fp8 Linear layers (`quantization: fp8_e4m3fn`, see [`crate::wan::quant`]) on GPUs with fp8
//! tensor cores (compute capability 8.9+: Ada, Hopper): the input's largest magnitude and its
//! e4m3fn codes (`fp8.cu`, two kernels), then cuBLASLt's fp8 GEMM with both per-tensor
//! scales read from device memory and the bias (and GELU) in its epilogue. One custom
//! operation of burn's fusion stream, queued on cubecl's stream like [`super::gemm`]; the
//! host never waits for the scale.

use super::{
    gemm::{self, Cuda, Gemm, WORKSPACE},
    op::{Arg, Cube, Module, contiguous, custom, empty, fused, launch, on_device_with},
};
use burn::tensor::{DType, Int, Tensor};
use cudarc::driver::sys as cu;

const MODULE: Module = Module {
    name: "fp8",
    source: include_str!("fp8.cu"),
};
const THREADS: u32 = 256;

/// Whether this GPU and this process can run [`linear_fp8`]: fp8 tensor cores (compute
/// capability 8.9 or newer), the CUDA ops enabled, libcublasLt present.
pub fn supported() -> bool {
    super::enabled()
        && super::compute_capability().is_some_and(|cc| cc >= (8, 9))
        && gemm::available()
}

/// Whether cuBLASLt's fp8 layouts take a `[N, K]` weight: K and N multiples of 16.
pub fn fits(k: usize, n: usize) -> bool {
    k.is_multiple_of(16) && n.is_multiple_of(16)
}

/// `(x·s_x)(codes·s_w)ᵀ (+ bias)`, then GELU (tanh) when `gelu`, with `x` rounded to e4m3fn
/// on the way (`s_x = max|x| / 448`, computed on the GPU), f32 accumulation, bf16 out.
///
/// # Shapes
/// - x: `[M, K]` bf16, codes: `[N, K]` U8 (e4m3fn), w_scale: `[1]` f32, bias: `[N]` bf16
///   → `[M, N]` bf16; K and N multiples of 16 (cuBLASLt's fp8 layouts)
///
/// # Panics
/// On other dtypes or shapes (checked before anything is queued).
pub fn linear_fp8(
    x: Tensor<Cuda, 2>,
    codes: Tensor<Cuda, 2, Int>,
    w_scale: Tensor<Cuda, 1>,
    bias: Option<Tensor<Cuda, 1>>,
    gelu: bool,
) -> Tensor<Cuda, 2> {
    let ([m, k], [n, k2]) = (x.dims(), codes.dims());
    assert!(
        k == k2 && fits(k, n),
        "linear_fp8: x [{m}, {k}] and codes [{n}, {k2}] (K and N multiples of 16)"
    );
    assert_eq!(x.dtype(), DType::BF16, "linear_fp8 takes a bf16 input");
    assert_eq!(codes.dtype(), DType::U8, "linear_fp8: the codes are u8");
    assert_eq!(w_scale.dims(), [1], "linear_fp8: one weight scale");
    if let Some(b) = &bias {
        assert!(
            b.dims() == [n] && b.dtype() == DType::BF16,
            "linear_fp8: the bias must be [{n}] bf16"
        );
    }
    let has_bias = bias.is_some();
    let mut inputs = vec![
        fused(x),
        codes.into_primitive(),
        fused(w_scale.cast(DType::F32)),
    ];
    inputs.extend(bias.map(fused));
    custom(
        "cublaslt_linear_fp8",
        inputs,
        [m, n],
        DType::BF16,
        move |t| {
            let t: Vec<Cube> = t.into_iter().map(contiguous).collect();
            let y = empty(&t[0], [m, n], DType::BF16);
            if m == 0 {
                return y;
            }
            // Scratch after cuBLASLt's workspace: the input's codes, then its max and scale.
            let codes_bytes = (m * k).next_multiple_of(256);
            let tensors: Vec<&Cube> = std::iter::once(&y).chain(&t).collect();
            on_device_with(&tensors, WORKSPACE + codes_bytes + 256, move |p, stream| {
                let (out, x, w, w_scale) = (p[0], p[1], p[2], p[3]);
                let bias = has_bias.then(|| p[4]);
                let workspace = p[p.len() - 1];
                let x_codes = workspace + WORKSPACE as u64;
                let amax = x_codes + codes_bytes as u64;
                let x_scale = amax + 16;
                let elems = (m * k) as i64;
                let blocks = ((m * k) as u64)
                    .div_ceil(u64::from(THREADS) * 8)
                    .clamp(1, 4096) as u32;
                let grid = ((blocks, 1, 1), (THREADS, 1, 1));
                // SAFETY: the pointers are the buffers above (x [M, K] bf16, codes [N, K],
                // scales, bias [N], y [M, N], the scratch sized for its three parts), on cubecl's
                // device thread and stream; the arguments in each kernel's order.
                unsafe {
                    cu::cuMemsetD32Async(amax, 0, 1, stream as cu::CUstream)
                        .result()
                        .map_err(|e| format!("fp8: clearing the max failed: {e:?}"))?;
                    launch(
                        &MODULE,
                        "absmax_bf16",
                        grid.0,
                        grid.1,
                        stream,
                        &[Arg::Ptr(x), Arg::I64(elems), Arg::Ptr(amax)],
                    )?;
                    launch(
                        &MODULE,
                        "quantize_e4m3fn_bf16",
                        grid.0,
                        grid.1,
                        stream,
                        &[
                            Arg::Ptr(x),
                            Arg::I64(elems),
                            Arg::Ptr(amax),
                            Arg::Ptr(x_scale),
                            Arg::Ptr(x_codes),
                        ],
                    )?;
                    // Column-major: D (N×M) = op(W)·X_qᵀ with W's rows read transposed ("TN",
                    // the layout cuBLASLt's fp8 kernels take), i.e. y [M, N] row-major.
                    Gemm {
                        stream: stream as usize,
                        m: n as u64,
                        n: m as u64,
                        k: k as u64,
                        a: w,
                        transa: true,
                        lda: k as i64,
                        b: x_codes,
                        ldb: k as i64,
                        d: out,
                        ldd: n as i64,
                        bias,
                        c: None,
                        gelu,
                        workspace,
                        fp8: Some([w_scale, x_scale]),
                    }
                    .run()
                    .map_err(|e| format!("cublasLtMatmul (fp8) failed: {e:?}"))
                }
            });
            y
        },
    )
}
