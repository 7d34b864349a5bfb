//! Fused attention on burn-cuda tensors: `softmax(q·kᵀ/√d)·v` for head_dim 128 in bf16 with
//! f32 softmax and accumulation, by the FlashAttention-2 kernel in `flash_attention.cu`
//! (compiled by NVRTC at first use for the GPU's architecture), as one custom operation of
//! burn's fusion stream, queued on cubecl's CUDA stream like [`super::gemm`].
//!
//! K and V are read through their strides (an expanded batch of the cross-attention cache, a
//! `[B, L, H, d]` projection seen as `[B, H, L, d]`) without copies; the output is written as
//! `[B, Lq, H, d]`, the layout the output projection reads, and handed back as its
//! `[B, H, Lq, d]` view.

use super::gemm::Cuda;
use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};
use burn_cubecl::{
    CubeBackend, cubecl::cuda::CudaRuntime, fusion::FusionCubeRuntime, kernel::into_contiguous,
    tensor::CubeTensor,
};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, OperationOutput, TensorIr};
use cudarc::{driver::sys as cu, nvrtc::result as nvrtc};
use std::{
    ffi::{CString, c_void},
    sync::OnceLock,
};

type Inner = CubeBackend<CudaRuntime, f32, i32, u8>;
type Runtime = FusionCubeRuntime<CudaRuntime>;
type Handles = HandleContainer<<Runtime as burn_fusion::FusionRuntime>::FusionHandle>;

/// The kernel's head dimension.
pub const HEAD_DIM: usize = 128;
/// Queries per block of the kernel.
const BLOCK_M: usize = 64;
const SOURCE: &str = include_str!("flash_attention.cu");
const ENTRY: &str = "flash_attention_d128";

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
    assert!(
        supports(&q, &k, &v),
        "flash_attention_bf16: q {:?}, k {:?}, v {:?} ({:?})",
        q.dims(),
        k.dims(),
        v.dims(),
        q.dtype()
    );
    let [b, h, lq, d] = q.dims();
    let [q, k, v] = [q, k, v].map(|t| t.into_primitive().tensor());
    let client = q.client.clone();
    let mut streams = OperationStreams::default();
    for t in [&q, &k, &v] {
        streams.tensor(t);
    }
    let out = TensorIr::uninit(
        client.create_empty_handle(),
        Shape::new([b, lq, h, d]),
        DType::BF16,
    );
    let inputs = [q.into_ir(), k.into_ir(), v.into_ir()];
    let desc = CustomOpIr::new("flash_attention_bf16", &inputs, &[out]);
    let o = client
        .register(
            streams,
            OperationIr::Custom(desc.clone()),
            AttentionOp { desc },
        )
        .output();
    Tensor::<Cuda, 4>::from_primitive(TensorPrimitive::Float(o)).swap_dims(1, 2)
}

#[derive(Debug)]
struct AttentionOp {
    desc: CustomOpIr,
}

impl Operation<Runtime> for AttentionOp {
    fn execute(&self, handles: &mut Handles) {
        let [q, k, v] = [0, 1, 2].map(|i| handles.get_float_tensor::<Inner>(&self.desc.inputs[i]));
        let o = attend(q, k, v);
        handles.register_float_tensor::<Inner>(&self.desc.outputs[0].id, o);
    }
}

/// The kernel reads rows of 16 bytes: the last dimension contiguous, the others multiples of
/// 8 elements (0 for an expanded dimension is fine). Anything else is copied first.
fn readable(t: CubeTensor<CudaRuntime>) -> CubeTensor<CudaRuntime> {
    let s = t.meta.strides();
    if s[3] == 1 && s[..3].iter().all(|x| x % 8 == 0) {
        t
    } else {
        into_contiguous(t)
    }
}

fn attend(
    q: CubeTensor<CudaRuntime>,
    k: CubeTensor<CudaRuntime>,
    v: CubeTensor<CudaRuntime>,
) -> CubeTensor<CudaRuntime> {
    let [q, k, v] = [q, k, v].map(readable);
    let (b, h, lq, d) = (
        q.meta.shape()[0],
        q.meta.shape()[1],
        q.meta.shape()[2],
        q.meta.shape()[3],
    );
    let lk = k.meta.shape()[2];
    let client = q.client.clone();
    let o = CubeTensor::new_contiguous(
        client.clone(),
        q.device.clone(),
        Shape::new([b, lq, h, d]),
        client.empty((b * lq * h * d * 2).max(16)),
        DType::BF16,
    );
    if lq == 0 || b == 0 || h == 0 {
        return o;
    }
    let strides = |t: &CubeTensor<CudaRuntime>| {
        let s = t.meta.strides();
        [s[0] as i64, s[1] as i64, s[2] as i64]
    };
    // o as [B, H, Lq, d]: batch, head and row strides of the [B, Lq, H, d] buffer.
    let o_strides = [(lq * h * d) as i64, d as i64, (h * d) as i64];
    let get = |hd: &burn_cubecl::cubecl::server::Handle| {
        client
            .get_resource(hd.clone())
            .expect("cubecl gives the buffer's device pointer")
    };
    let (rq, rk, rv, ro) = (
        get(&q.handle),
        get(&k.handle),
        get(&v.handle),
        get(&o.handle),
    );
    let ptrs = [
        rq.resource().ptr,
        rk.resource().ptr,
        rv.resource().ptr,
        ro.resource().ptr,
    ];
    assert!(
        ptrs.iter().all(|p| p % 16 == 0),
        "flash attention needs 16-byte aligned buffers, got {ptrs:x?}"
    );
    let launch = Launch {
        stream: ro.resource().stream as usize,
        ptrs,
        dims: [b as u32, h as u32],
        lens: [lq as i32, lk as i32],
        strides: [strides(&q), strides(&k), strides(&v), o_strides],
        scale_log2: std::f32::consts::LOG2_E / (d as f32).sqrt(),
    };
    client
        .exclusive(move || {
            // SAFETY: live cubecl buffers of the sizes the shapes and strides describe (held
            // by the resources until this returns), cubecl's stream for the output, run on
            // cubecl's device thread where its context is current.
            unsafe { launch.run() }
        })
        .expect("cubecl's device thread is running")
        .unwrap_or_else(|e| panic!("flash attention: {e}"));
    drop((rq, rk, rv, ro));
    o
}

/// One launch of the kernel.
#[derive(Clone, Copy, Debug)]
struct Launch {
    stream: usize,
    /// q, k, v, o.
    ptrs: [u64; 4],
    /// batch, heads.
    dims: [u32; 2],
    /// Lq, Lk.
    lens: [i32; 2],
    /// (batch, head, row) strides in elements of q, k, v, o.
    strides: [[i64; 3]; 4],
    scale_log2: f32,
}

/// The kernel, compiled and loaded once per process (in cubecl's context, device 0's).
fn function() -> Result<cu::CUfunction, String> {
    static FUNCTION: OnceLock<Result<usize, String>> = OnceLock::new();
    FUNCTION
        .get_or_init(|| {
            // SAFETY: called on cubecl's device thread, where its context is current.
            unsafe { compile() }.map(|f| f as usize)
        })
        .clone()
        .map(|f| f as cu::CUfunction)
}

/// NVRTC for this GPU's compute capability (PTX, finished by the driver at load).
///
/// # Safety
/// A CUDA context must be current on this thread.
unsafe fn compile() -> Result<cu::CUfunction, String> {
    // SAFETY: as the caller promises; every handle below is created and used here.
    unsafe {
        let mut dev: cu::CUdevice = 0;
        cu::cuCtxGetDevice(&mut dev)
            .result()
            .map_err(|e| format!("no current CUDA device: {e:?}"))?;
        let attr = |a| cudarc::driver::result::device::get_attribute(dev, a);
        let major = attr(cu::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
            .map_err(|e| format!("{e:?}"))?;
        let minor = attr(cu::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
            .map_err(|e| format!("{e:?}"))?;
        if major < 8 {
            return Err(format!(
                "needs compute capability 8.0 or newer (bf16 tensor cores), this GPU has {major}.{minor}"
            ));
        }
        let source = CString::new(SOURCE).expect("no NUL in the kernel source");
        let program = nvrtc::create_program(&source, None).map_err(|e| format!("NVRTC: {e:?}"))?;
        let arch = format!("--gpu-architecture=compute_{major}{minor}");
        let compiled = nvrtc::compile_program(program, &[arch.as_str(), "-lineinfo"]);
        let ptx = match compiled {
            Ok(()) => nvrtc::get_ptx(program).map_err(|e| format!("NVRTC: {e:?}")),
            Err(e) => {
                let log = nvrtc::get_program_log(program)
                    .map(|l| {
                        let bytes: Vec<u8> = l.iter().map(|c| *c as u8).collect();
                        String::from_utf8_lossy(&bytes).into_owned()
                    })
                    .unwrap_or_default();
                Err(format!("NVRTC could not compile the kernel ({e:?}): {log}"))
            }
        };
        let _ = nvrtc::destroy_program(program);
        let ptx = ptx?;
        let module = cudarc::driver::result::module::load_data(ptx.as_ptr() as *const c_void)
            .map_err(|e| format!("loading the kernel: {e:?}"))?;
        cudarc::driver::result::module::get_function(module, CString::new(ENTRY).expect("no NUL"))
            .map_err(|e| format!("finding {ENTRY}: {e:?}"))
    }
}

impl Launch {
    /// # Safety
    /// The pointers must be live device buffers large enough for the shapes and strides, the
    /// stream live, and cubecl's context current on this thread.
    unsafe fn run(self) -> Result<(), String> {
        let f = function()?;
        let [b, h] = self.dims;
        let [lq, lk] = self.lens;
        let [mut q, mut k, mut v, mut o] = self.ptrs;
        let (mut heads, mut lq_, mut lk_, mut scale) = (h as i32, lq, lk, self.scale_log2);
        let mut s = self.strides;
        let mut params: Vec<*mut c_void> = vec![
            &mut q as *mut u64 as *mut c_void,
            &mut k as *mut u64 as *mut c_void,
            &mut v as *mut u64 as *mut c_void,
            &mut o as *mut u64 as *mut c_void,
            &mut heads as *mut i32 as *mut c_void,
            &mut lq_ as *mut i32 as *mut c_void,
            &mut lk_ as *mut i32 as *mut c_void,
        ];
        for t in s.iter_mut() {
            for x in t.iter_mut() {
                params.push(x as *mut i64 as *mut c_void);
            }
        }
        params.push(&mut scale as *mut f32 as *mut c_void);
        let grid = ((lq as usize).div_ceil(BLOCK_M) as u32, h, b);
        // SAFETY: the parameters match the kernel's signature in order and type and live
        // until the launch has copied them; the rest as the caller promises.
        unsafe {
            cudarc::driver::result::launch_kernel(
                f,
                grid,
                (128, 1, 1),
                0,
                self.stream as cu::CUstream,
                &mut params,
            )
        }
        .map_err(|e| format!("launch: {e:?}"))
    }
}
