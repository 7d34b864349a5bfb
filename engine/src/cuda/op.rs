//! What the own kernels share: one custom operation of burn's fusion stream around a function
//! of the inner `CubeTensor`s, NVRTC modules compiled once per process, and launches on
//! cubecl's CUDA stream from its device thread.

use super::gemm::Cuda;
use burn::tensor::{DType, Shape, Tensor, TensorPrimitive};
use burn_cubecl::{
    CubeBackend, cubecl::cuda::CudaRuntime, fusion::FusionCubeRuntime, kernel::into_contiguous,
    tensor::CubeTensor,
};
use burn_fusion::stream::{Operation, OperationStreams};
use burn_ir::{CustomOpIr, HandleContainer, OperationIr, TensorIr};
use cudarc::{driver::sys as cu, nvrtc::result as nvrtc};
use std::{
    collections::HashMap,
    ffi::{CString, c_void},
    sync::{Arc, Mutex, OnceLock},
};

pub(crate) type Inner = CubeBackend<CudaRuntime, f32, i32, u8>;
pub(crate) type Cube = CubeTensor<CudaRuntime>;
type Runtime = FusionCubeRuntime<CudaRuntime>;
type Handles = HandleContainer<<Runtime as burn_fusion::FusionRuntime>::FusionHandle>;
/// A tensor of burn's CUDA backend as its fusion stream holds it (float or int alike).
pub(crate) type Fused = burn_fusion::FusionTensor<Runtime>;

/// A float tensor's [`Fused`] form.
pub(crate) fn fused<const D: usize>(t: Tensor<Cuda, D>) -> Fused {
    t.into_primitive().tensor()
}

/// Queues `run` on burn's fusion stream after whatever produces `inputs`: when the stream
/// reaches it, `run` gets the inner tensors (in order) and returns the output, which must
/// have `shape` and `dtype`.
pub(crate) fn custom<const D: usize>(
    name: &'static str,
    inputs: Vec<Fused>,
    shape: [usize; D],
    dtype: DType,
    run: impl Fn(Vec<Cube>) -> Cube + Send + Sync + 'static,
) -> Tensor<Cuda, D> {
    let [y]: [Fused; 1] = custom_many(name, inputs, vec![(shape.to_vec(), dtype)], move |t| {
        vec![run(t)]
    })
    .try_into()
    .expect("one output");
    Tensor::from_primitive(TensorPrimitive::Float(y))
}

/// [`custom`] with several float outputs: `run` returns them in the order of `outputs`
/// (shapes and dtypes), which must match. An output may be an input's buffer written in place
/// when that input was moved in (its last use) and nothing else holds it
/// ([`CubeTensor::can_mut`]).
pub(crate) fn custom_many(
    name: &'static str,
    inputs: Vec<Fused>,
    outputs: Vec<(Vec<usize>, DType)>,
    run: impl Fn(Vec<Cube>) -> Vec<Cube> + Send + Sync + 'static,
) -> Vec<Fused> {
    let client = inputs[0].client.clone();
    let mut streams = OperationStreams::default();
    for t in &inputs {
        streams.tensor(t);
    }
    let outs: Vec<TensorIr> = outputs
        .into_iter()
        .map(|(shape, dtype)| {
            TensorIr::uninit(client.create_empty_handle(), Shape::from(shape), dtype)
        })
        .collect();
    let irs: Vec<_> = inputs.into_iter().map(|t| t.into_ir()).collect();
    let desc = CustomOpIr::new(name, &irs, &outs);
    client.register(
        streams,
        OperationIr::Custom(desc.clone()),
        CustomOp {
            desc,
            run: Arc::new(run),
        },
    )
}

type Run = dyn Fn(Vec<Cube>) -> Vec<Cube> + Send + Sync;

struct CustomOp {
    desc: CustomOpIr,
    run: Arc<Run>,
}

impl std::fmt::Debug for CustomOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomOp")
            .field("desc", &self.desc)
            .finish()
    }
}

impl Operation<Runtime> for CustomOp {
    fn execute(&self, handles: &mut Handles) {
        let inputs = self
            .desc
            .inputs
            .iter()
            .map(|t| handles.get_float_tensor::<Inner>(t))
            .collect();
        let ys = (self.run)(inputs);
        assert_eq!(ys.len(), self.desc.outputs.len(), "one tensor per output");
        for (out, y) in self.desc.outputs.iter().zip(ys) {
            handles.register_float_tensor::<Inner>(&out.id, y);
        }
    }
}

/// `t` itself when contiguous, else a contiguous copy (queued on its stream).
pub(crate) fn contiguous(t: Cube) -> Cube {
    if t.is_contiguous() {
        t
    } else {
        into_contiguous(t)
    }
}

/// A new, uninitialised contiguous tensor of `shape` and `dtype` on `like`'s device (at least
/// 16 bytes, so that an empty one still has a buffer).
pub(crate) fn empty<const D: usize>(like: &Cube, shape: [usize; D], dtype: DType) -> Cube {
    let client = like.client.clone();
    let bytes = shape.iter().product::<usize>() * dtype.size();
    Cube::new_contiguous(
        client.clone(),
        like.device.clone(),
        Shape::new(shape),
        client.empty(bytes.max(16)),
        dtype,
    )
}

/// A CUDA C source of `extern "C"` kernels (no includes), compiled by NVRTC at first use.
pub(crate) struct Module {
    pub name: &'static str,
    pub source: &'static str,
}

/// `entry` of `module`, compiled and loaded once per process in the current context.
///
/// # Safety
/// A CUDA context must be current on this thread (cubecl's device thread, the same context
/// every call: the engine uses one GPU).
pub(crate) unsafe fn function(module: &Module, entry: &str) -> Result<cu::CUfunction, String> {
    static MODULES: OnceLock<Mutex<HashMap<&'static str, Result<usize, String>>>> = OnceLock::new();
    static FUNCTIONS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    let key = format!("{}::{entry}", module.name);
    let mut functions = FUNCTIONS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(f) = functions.get(&key) {
        return Ok(*f as cu::CUfunction);
    }
    let loaded = MODULES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(module.name)
        // SAFETY: as the caller promises.
        .or_insert_with(|| unsafe { compile(module) }.map(|m| m as usize))
        .clone()?;
    // SAFETY: a module loaded above in this context.
    let f = unsafe {
        cudarc::driver::result::module::get_function(
            loaded as cu::CUmodule,
            CString::new(entry).expect("no NUL in a kernel name"),
        )
    }
    .map_err(|e| format!("{}: no kernel {entry}: {e:?}", module.name))?;
    functions.insert(key, f as usize);
    Ok(f)
}

/// NVRTC for this GPU's compute capability (PTX, finished by the driver at load).
///
/// # Safety
/// A CUDA context must be current on this thread.
unsafe fn compile(module: &Module) -> Result<cu::CUmodule, String> {
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
                "{} needs compute capability 8.0 or newer (bf16), this GPU has {major}.{minor}",
                module.name
            ));
        }
        let source = CString::new(module.source).expect("no NUL in a kernel source");
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
                Err(format!(
                    "NVRTC could not compile {} ({e:?}): {log}",
                    module.name
                ))
            }
        };
        let _ = nvrtc::destroy_program(program);
        let ptx = ptx?;
        cudarc::driver::result::module::load_data(ptx.as_ptr() as *const c_void)
            .map_err(|e| format!("loading {}: {e:?}", module.name))
    }
}

/// One kernel argument: a value copied at launch.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    Ptr(u64),
    I32(i32),
    I64(i64),
    F32(f32),
}

/// Launches `entry` of `module` on `stream` with `args` (in the kernel's order and types) and
/// no dynamic shared memory.
///
/// # Safety
/// The pointers must be live device buffers as large as the kernel reads and writes, the
/// stream live, and a CUDA context current on this thread (cubecl's device thread).
pub(crate) unsafe fn launch(
    module: &Module,
    entry: &str,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    stream: u64,
    args: &[Arg],
) -> Result<(), String> {
    // SAFETY: as the caller promises.
    unsafe { launch_shared(module, entry, grid, block, 0, stream, args) }
}

/// [`launch`] with `shared` bytes of dynamic shared memory (above 48 KiB the kernel is allowed
/// that much first, as CUDA requires).
///
/// # Safety
/// As [`launch`].
pub(crate) unsafe fn launch_shared(
    module: &Module,
    entry: &str,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    shared: u32,
    stream: u64,
    args: &[Arg],
) -> Result<(), String> {
    // SAFETY: as the caller promises.
    let f = unsafe { function(module, entry) }?;
    if shared > 48 << 10 {
        // SAFETY: a function loaded in this context.
        unsafe {
            cudarc::driver::result::function::set_function_attribute(
                f,
                cu::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                shared as i32,
            )
        }
        .map_err(|e| {
            format!(
                "{}::{entry}: {shared} bytes of shared memory: {e:?}",
                module.name
            )
        })?;
    }
    // Each argument by address, 8 bytes of room each (the kernel reads its declared size).
    let mut values: Vec<u64> = args
        .iter()
        .map(|a| match *a {
            Arg::Ptr(p) => p,
            Arg::I32(x) => x as u32 as u64,
            Arg::I64(x) => x as u64,
            Arg::F32(x) => x.to_bits() as u64,
        })
        .collect();
    let mut params: Vec<*mut c_void> = values
        .iter_mut()
        .map(|v| v as *mut u64 as *mut c_void)
        .collect();
    // SAFETY: every parameter points at a live value whose first bytes are the argument in
    // its type (little-endian); the rest as the caller promises.
    unsafe {
        cudarc::driver::result::launch_kernel(
            f,
            grid,
            block,
            shared,
            stream as cu::CUstream,
            &mut params,
        )
    }
    .map_err(|e| format!("{}::{entry}: launch failed: {e:?}", module.name))
}

/// Runs `f` on cubecl's device thread (its CUDA context current, in order with the stream's
/// work), with the device pointers of `tensors` (kept alive until `f` returns) and the CUDA
/// stream of the first one (pass the output first).
///
/// # Panics
/// When `f` fails (queued: when an earlier op failed): a failed launch is a broken GPU
/// state, not bad input.
pub(crate) fn on_device(
    tensors: &[&Cube],
    f: impl FnOnce(&[u64], u64) -> Result<(), String> + Send + 'static,
) {
    on_device_with(tensors, 0, f)
}

/// [`on_device`] with a scratch buffer of `workspace` bytes from cubecl's pool (its pointer
/// last; none when 0).
///
/// The work goes to cubecl's device thread through the queue its own launches use, so it runs
/// after the work that makes its inputs and before whatever is queued after it. With
/// [`queued_ops`] this returns at once (a failure is reported by the next call's panic);
/// otherwise it waits until the work is queued on the stream.
pub(crate) fn on_device_with(
    tensors: &[&Cube],
    workspace: usize,
    f: impl FnOnce(&[u64], u64) -> Result<(), String> + Send + 'static,
) {
    use burn_cubecl::cubecl::{Runtime, device::Device, device_handle::DeviceHandle};
    let queued = queued_ops();
    if queued
        && let Some(e) = queue_failure()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    {
        panic!("{e}");
    }
    let first = tensors[0];
    let mut handles: Vec<_> = tensors.iter().map(|t| t.handle.clone()).collect();
    if workspace > 0 {
        handles.push(first.client.empty(workspace));
    }
    let device = DeviceHandle::<<CudaRuntime as Runtime>::Server>::new(first.device.to_id());
    if !queued {
        device
            .submit_blocking(move |server| run_on(server, handles, f))
            .expect("cubecl's device thread is gone")
            .unwrap_or_else(|e| panic!("{e}"));
        return;
    }
    device.submit(move |server| {
        if let Err(e) = run_on(server, handles, f) {
            eprintln!("a queued custom op failed: {e}");
            queue_failure()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert(e);
        }
    });
}

/// Whether custom ops are queued to cubecl's device thread without waiting for it: on unless
/// `HANZO_LIVE_QUEUED_OPS=0`. The host then queues a forward as fast as burn records it
/// instead of waiting at every op for the device thread to catch up (docs/perf.md, H100: the
/// full DiT forward's host time 11.8 ms instead of 23.0, its wall 33.3 ms instead of 34.3, the
/// same output). Read once.
pub(crate) fn queued_ops() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| !super::switched_off("HANZO_LIVE_QUEUED_OPS"))
}

/// The first failure of a queued op, reported by the next op queued after it.
fn queue_failure() -> &'static Mutex<Option<String>> {
    static FAILED: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    FAILED.get_or_init(Mutex::default)
}

/// On cubecl's device thread: `f` with the buffers' device pointers and the CUDA stream of
/// the first one (the caller's stream: the queue runs each task under the stream it came
/// from). The resources keep the buffers alive until the work is queued; later reuse of a
/// buffer is ordered after it on the same stream. A panic in `f` becomes its failure.
fn run_on(
    server: &mut <CudaRuntime as burn_cubecl::cubecl::Runtime>::Server,
    handles: Vec<burn_cubecl::cubecl::server::Handle>,
    f: impl FnOnce(&[u64], u64) -> Result<(), String>,
) -> Result<(), String> {
    use burn_cubecl::cubecl::{server::ComputeServer, stream_id::StreamId};
    let stream_id = StreamId::current();
    let resources = handles
        .into_iter()
        .map(|h| server.get_resource(h.binding(), stream_id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cubecl gives no device pointer: {e:?}"))?;
    let ptrs: Vec<u64> = resources.iter().map(|r| r.resource().ptr).collect();
    let stream = resources[0].resource().stream as u64;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&ptrs, stream))).unwrap_or_else(
        |p| {
            let why = crate::panic_message(&*p).unwrap_or_else(|| "no message".into());
            Err(format!("panicked: {why}"))
        },
    )
}

/// `cuProfilerStart` (`on`) or `cuProfilerStop` on cubecl's device thread of GPU 0, where its
/// CUDA context is current.
pub(crate) fn profiler_range(on: bool) -> Result<(), String> {
    use burn_cubecl::cubecl::{Runtime, cuda::CudaDevice};
    let client = CudaRuntime::client(&CudaDevice::default());
    let status = client
        .exclusive(move || {
            // SAFETY: no arguments; the context is current on this thread.
            unsafe {
                if on {
                    cu::cuProfilerStart()
                } else {
                    cu::cuProfilerStop()
                }
            }
        })
        .map_err(|e| format!("cubecl's device thread: {e:?}"))?;
    match status {
        cu::CUresult::CUDA_SUCCESS => Ok(()),
        e => Err(format!(
            "cuProfiler{}: {e:?}",
            if on { "Start" } else { "Stop" }
        )),
    }
}
