//! cuBLASLt GEMMs on burn-cuda tensors: a Linear layer's `x·wᵀ (+ bias)` in bf16 with f32
//! accumulation, as one custom operation of burn's fusion stream.
//!
//! The operation runs where burn's own kernels run ([`super::op::custom`]): the fusion stream
//! hands it the inner `CubeTensor`s in order, and on cubecl's device thread it takes each
//! buffer's device pointer from cubecl (its server's `get_resource`, which also orders the
//! buffer's stream after earlier kernels) and enqueues `cublasLtMatmul` on the CUDA stream
//! cubecl runs that tensor's kernels on (the vendored cubecl-cuda exposes it:
//! `engine/vendor/README.md`), so it lands in order with the kernels before and after it and
//! the host never waits for the GPU.
//!
//! libcublasLt is loaded at first use (cudarc's dynamic loading: `libcublasLt.so`,
//! `libcublasLt.so.13`, `.12`, … through the dynamic linker's search path, e.g.
//! `LD_LIBRARY_PATH` holding the CUDA toolkit's `lib64` or the `nvidia-cublas` wheel's `lib`);
//! [`available`] says whether it can be.

use super::op::{Cube, custom, empty, fused, on_device_with};
use burn::tensor::{DType, Tensor};
use burn_cubecl::kernel::into_contiguous;
use cudarc::cublaslt::{result as lt, sys};
use std::{
    collections::HashMap,
    ffi::c_void,
    sync::{Mutex, OnceLock},
};

/// burn's CUDA backend (`Fusion<CubeBackend<CudaRuntime, f32, i32, u8>>`).
pub type Cuda = burn::backend::Cuda;

/// cuBLASLt's workspace per call (NVIDIA's recommendation for Hopper); from cubecl's pool.
pub(crate) const WORKSPACE: usize = 32 << 20;

/// Whether libcublasLt can be loaded here.
pub fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the library.
    *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() })
}

/// `x·w_t (+ bias)` through cuBLASLt: bf16 in and out, f32 accumulation, the bias added by the
/// GEMM's epilogue.
///
/// # Shapes
/// - x: `[M, K]` bf16 (rows may be padded; copied when its last dimension is strided)
/// - w_t: `[K, N]` bf16, either a contiguous `[K, N]` or the transposed view of a row-major
///   `[N, K]` weight (as `Linear` keeps it: no copy)
/// - bias: `[N]` bf16
/// - → `[M, N]` bf16, contiguous
///
/// # Panics
/// On other dtypes or mismatched shapes (checked here, before anything is queued).
pub fn linear_bf16(
    x: Tensor<Cuda, 2>,
    w_t: Tensor<Cuda, 2>,
    bias: Option<Tensor<Cuda, 1>>,
) -> Tensor<Cuda, 2> {
    linear_epilogue(x, w_t, bias, None, false)
}

/// [`linear_bf16`] followed by GELU (tanh approximation, `nn.GELU(approximate='tanh')`),
/// applied by cuBLASLt's epilogue to the f32 result before it is rounded to bf16.
///
/// # Shapes
/// As [`linear_bf16`].
pub fn linear_gelu_bf16(
    x: Tensor<Cuda, 2>,
    w_t: Tensor<Cuda, 2>,
    bias: Option<Tensor<Cuda, 1>>,
) -> Tensor<Cuda, 2> {
    linear_epilogue(x, w_t, bias, None, true)
}

/// `residual + x·w_t (+ bias)` through cuBLASLt: the residual is the GEMM's C input (β = 1),
/// so the sum is rounded to bf16 once, from f32 (PyTorch's `x + linear(y)` rounds twice).
///
/// # Shapes
/// As [`linear_bf16`]; residual: `[M, N]` bf16 (copied when not contiguous).
pub fn linear_residual_bf16(
    x: Tensor<Cuda, 2>,
    w_t: Tensor<Cuda, 2>,
    bias: Option<Tensor<Cuda, 1>>,
    residual: Tensor<Cuda, 2>,
) -> Tensor<Cuda, 2> {
    linear_epilogue(x, w_t, bias, Some(residual), false)
}

/// `x·w_t (+ bias)`, then GELU when `gelu`, plus `residual` when given: one GEMM, the rest
/// in its epilogue ([`linear_bf16`], [`linear_gelu_bf16`], [`linear_residual_bf16`]).
///
/// # Shapes
/// As [`linear_residual_bf16`].
pub(crate) fn linear_epilogue(
    x: Tensor<Cuda, 2>,
    w_t: Tensor<Cuda, 2>,
    bias: Option<Tensor<Cuda, 1>>,
    residual: Option<Tensor<Cuda, 2>>,
    gelu: bool,
) -> Tensor<Cuda, 2> {
    let ([m, k], [k2, n]) = (x.dims(), w_t.dims());
    assert_eq!(k, k2, "linear_bf16: x is [{m}, {k}] but w_t is [{k2}, {n}]");
    assert!(
        x.dtype() == DType::BF16 && w_t.dtype() == DType::BF16,
        "linear_bf16 takes bf16, got {:?} and {:?}",
        x.dtype(),
        w_t.dtype()
    );
    if let Some(b) = &bias {
        assert_eq!(b.dims(), [n], "linear_bf16: bias must be [{n}]");
        assert_eq!(b.dtype(), DType::BF16, "linear_bf16: bias must be bf16");
    }
    if let Some(r) = &residual {
        assert_eq!(
            r.dims(),
            [m, n],
            "linear_bf16: the residual must be [{m}, {n}]"
        );
        assert_eq!(
            r.dtype(),
            DType::BF16,
            "linear_bf16: the residual must be bf16"
        );
    }
    let has_bias = bias.is_some();
    let mut inputs = vec![fused(x), fused(w_t)];
    inputs.extend(bias.map(fused));
    inputs.extend(residual.map(fused));
    custom(
        "cublaslt_linear_bf16",
        inputs,
        [m, n],
        DType::BF16,
        move |t| {
            let mut t = t.into_iter();
            let (x, w) = (t.next().expect("x"), t.next().expect("w"));
            let b = if has_bias { t.next() } else { None };
            gemm(x, w, b, t.next(), gelu)
        },
    )
}

/// The GEMM on inner tensors: queues copies where a layout needs one, then cuBLASLt.
fn gemm(x: Cube, w: Cube, b: Option<Cube>, residual: Option<Cube>, gelu: bool) -> Cube {
    // Rows must be `ldx ≥ K` apart with unit stride along them; an expanded (stride 0) or
    // overlapping row layout is copied first.
    let (rows, cols) = (x.meta.shape()[0], x.meta.shape()[1]);
    let xs = x.meta.strides();
    let x = if xs[1] == 1 && (rows <= 1 || xs[0] >= cols) {
        x
    } else {
        into_contiguous(x)
    };
    let (m, k) = (x.meta.shape()[0], x.meta.shape()[1]);
    let ldx = x.meta.strides()[0].max(k);
    let n = w.meta.shape()[1];
    let ws = w.meta.strides().to_vec();
    // A transposed [N, K] weight (strides [1, ≥K]) is read as is ("T"); a row-major [K, N] too
    // ("N"); anything else is copied first.
    let (w, transa, ldw) = if ws[0] == 1 && ws[1] >= k {
        (w, true, ws[1])
    } else if ws[1] == 1 && ws[0] >= n {
        (w, false, ws[0])
    } else {
        (into_contiguous(w), false, n)
    };
    let b = b.map(into_contiguous);
    let r = residual.map(into_contiguous);
    let out = empty(&x, [m, n], DType::BF16);
    let (has_bias, has_residual) = (b.is_some(), r.is_some());
    let tensors: Vec<&Cube> = [&out, &x, &w]
        .into_iter()
        .chain(b.as_ref())
        .chain(r.as_ref())
        .collect();
    on_device_with(&tensors, WORKSPACE, move |p, stream| {
        // Column-major view of the row-major product: D (N×M) = op(W)·Xᵀ, so D's memory is y
        // [M, N] row-major; the bias runs along D's rows, i.e. y's columns.
        let args = Gemm {
            stream: stream as usize,
            m: n as u64,
            n: m as u64,
            k: k as u64,
            a: p[2],
            transa,
            lda: ldw as i64,
            b: p[1],
            ldb: ldx as i64,
            d: p[0],
            ldd: n as i64,
            bias: has_bias.then(|| p[3]),
            c: has_residual.then(|| p[3 + usize::from(has_bias)]),
            gelu,
            workspace: p[p.len() - 1],
            fp8: None,
        };
        // SAFETY: the pointers are live cubecl buffers of the sizes the layouts describe;
        // the stream is the one cubecl queues the output's kernels on; this runs on cubecl's
        // device thread, where the device's primary context is current.
        unsafe { args.run() }.map_err(|e| format!("cublasLtMatmul failed: {e:?}"))
    });
    out
}

/// One `cublasLtMatmul` in cuBLAS's column-major terms.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gemm {
    pub(crate) stream: usize,
    pub(crate) m: u64,
    pub(crate) n: u64,
    pub(crate) k: u64,
    pub(crate) a: u64,
    pub(crate) transa: bool,
    pub(crate) lda: i64,
    pub(crate) b: u64,
    pub(crate) ldb: i64,
    pub(crate) d: u64,
    pub(crate) ldd: i64,
    pub(crate) bias: Option<u64>,
    /// C, added to the product (β = 1): D's layout, another buffer.
    pub(crate) c: Option<u64>,
    pub(crate) gelu: bool,
    pub(crate) workspace: u64,
    /// fp8 operands: A and B are e4m3fn, scaled by the f32s at these device addresses
    /// (`[a_scale, b_scale]`); D (and the bias) stay bf16.
    pub(crate) fp8: Option<[u64; 2]>,
}

/// What picks an algorithm: the problem, its layouts and its pointers' alignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AlgoKey {
    m: u64,
    n: u64,
    k: u64,
    transa: bool,
    lda: i64,
    ldb: i64,
    ldd: i64,
    bias: bool,
    residual: bool,
    gelu: bool,
    fp8: bool,
    /// A, B, C (D's when there is no C), D.
    align: [u32; 4],
}

/// The largest power of two (≤ 256) that divides the address: cuBLASLt's heuristic assumes
/// 256-byte alignment unless told.
fn alignment(ptr: u64) -> u32 {
    1u32 << ptr.trailing_zeros().min(8)
}

fn handle() -> Result<sys::cublasLtHandle_t, lt::CublasError> {
    static HANDLE: OnceLock<usize> = OnceLock::new();
    if let Some(h) = HANDLE.get() {
        return Ok(*h as sys::cublasLtHandle_t);
    }
    let h = lt::create_handle()? as usize;
    Ok(*HANDLE.get_or_init(|| h) as sys::cublasLtHandle_t)
}

fn algorithms() -> &'static Mutex<HashMap<AlgoKey, sys::cublasLtMatmulAlgo_t>> {
    static ALGOS: OnceLock<Mutex<HashMap<AlgoKey, sys::cublasLtMatmulAlgo_t>>> = OnceLock::new();
    ALGOS.get_or_init(Mutex::default)
}

/// Sets one attribute of a descriptor from a value.
///
/// # Safety
/// `desc` must be live; `T` must be the attribute's type.
unsafe fn set_desc<T>(
    desc: sys::cublasLtMatmulDesc_t,
    attr: sys::cublasLtMatmulDescAttributes_t,
    value: &T,
) -> Result<(), lt::CublasError> {
    // SAFETY: as the caller promises; the value outlives the call.
    unsafe {
        lt::set_matmul_desc_attribute(
            desc,
            attr,
            value as *const T as *const c_void,
            size_of::<T>(),
        )
    }
}

/// # Safety
/// `pref` must be live; `T` must be the attribute's type.
unsafe fn set_pref<T>(
    pref: sys::cublasLtMatmulPreference_t,
    attr: sys::cublasLtMatmulPreferenceAttributes_t,
    value: &T,
) -> Result<(), lt::CublasError> {
    // SAFETY: as the caller promises.
    unsafe {
        lt::set_matmul_pref_attribute(
            pref,
            attr,
            value as *const T as *const c_void,
            size_of::<T>(),
        )
    }
}

impl Gemm {
    /// # Safety
    /// The pointers must be live device buffers large enough for the layouts, the stream
    /// live, and the device's context current on this thread.
    pub(crate) unsafe fn run(self) -> Result<(), lt::CublasError> {
        use sys::{cublasLtMatmulDescAttributes_t as D, cublasLtMatmulPreferenceAttributes_t as P};
        let bf16 = sys::cudaDataType_t::CUDA_R_16BF;
        let operands = if self.fp8.is_some() {
            sys::cudaDataType_t::CUDA_R_8F_E4M3
        } else {
            bf16
        };
        let handle = handle()?;
        let desc = lt::create_matmul_desc(
            sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
            sys::cudaDataType_t::CUDA_R_32F,
        )?;
        let (rows_a, cols_a) = if self.transa {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let la = lt::create_matrix_layout(operands, rows_a, cols_a, self.lda)?;
        let lb = lt::create_matrix_layout(operands, self.k, self.n, self.ldb)?;
        let ld = lt::create_matrix_layout(bf16, self.m, self.n, self.ldd)?;
        let result = (|| -> Result<(), lt::CublasError> {
            // SAFETY: live descriptors; each value has its attribute's type.
            unsafe {
                // cublasOperation_t (a 32-bit enum cudarc's cublasLt bindings leave out):
                // CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
                let op = |t: bool| i32::from(t);
                set_desc(desc, D::CUBLASLT_MATMUL_DESC_TRANSA, &op(self.transa))?;
                set_desc(desc, D::CUBLASLT_MATMUL_DESC_TRANSB, &op(false))?;
                use sys::cublasLtEpilogue_t as E;
                let epilogue = match (self.bias.is_some(), self.gelu) {
                    (true, true) => E::CUBLASLT_EPILOGUE_GELU_BIAS,
                    (true, false) => E::CUBLASLT_EPILOGUE_BIAS,
                    (false, true) => E::CUBLASLT_EPILOGUE_GELU,
                    (false, false) => E::CUBLASLT_EPILOGUE_DEFAULT,
                };
                set_desc(desc, D::CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue)?;
                if let Some(bias) = self.bias {
                    set_desc(desc, D::CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias)?;
                    set_desc(desc, D::CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bf16)?;
                }
                if let Some([a_scale, b_scale]) = self.fp8 {
                    set_desc(desc, D::CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &a_scale)?;
                    set_desc(desc, D::CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &b_scale)?;
                }
                let key = AlgoKey {
                    m: self.m,
                    n: self.n,
                    k: self.k,
                    transa: self.transa,
                    lda: self.lda,
                    ldb: self.ldb,
                    ldd: self.ldd,
                    bias: self.bias.is_some(),
                    residual: self.c.is_some(),
                    gelu: self.gelu,
                    fp8: self.fp8.is_some(),
                    align: [
                        alignment(self.a),
                        alignment(self.b),
                        alignment(self.c.unwrap_or(self.d)),
                        alignment(self.d),
                    ],
                };
                let cached = algorithms()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .copied();
                let algo = match cached {
                    Some(a) => a,
                    None => {
                        let pref = lt::create_matmul_pref()?;
                        let picked = (|| {
                            set_pref(
                                pref,
                                P::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                &(WORKSPACE as u64),
                            )?;
                            for (attr, a) in [
                                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, key.align[0]),
                                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, key.align[1]),
                                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, key.align[2]),
                                (P::CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, key.align[3]),
                            ] {
                                set_pref(pref, attr, &a)?;
                            }
                            lt::get_matmul_algo_heuristic(handle, desc, la, lb, ld, ld, pref)
                        })();
                        lt::destroy_matmul_pref(pref)?;
                        let algo = picked?.algo;
                        algorithms()
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key, algo);
                        algo
                    }
                };
                // β = 0 ignores C: it is then D itself.
                let (alpha, beta) = (1f32, if self.c.is_some() { 1f32 } else { 0f32 });
                let c = self.c.unwrap_or(self.d);
                lt::matmul(
                    handle,
                    desc,
                    &alpha as *const f32 as *const c_void,
                    &beta as *const f32 as *const c_void,
                    self.a as *const c_void,
                    la,
                    self.b as *const c_void,
                    lb,
                    c as *const c_void,
                    ld,
                    self.d as *mut c_void,
                    ld,
                    &algo,
                    self.workspace as *mut c_void,
                    WORKSPACE,
                    self.stream as sys::cudaStream_t,
                )
            }
        })();
        // SAFETY: created above, not freed elsewhere.
        unsafe {
            lt::destroy_matrix_layout(la)?;
            lt::destroy_matrix_layout(lb)?;
            lt::destroy_matrix_layout(ld)?;
            lt::destroy_matmul_desc(desc)?;
        }
        result
    }
}
