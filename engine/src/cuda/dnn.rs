//! What the cuDNN ops share: the library's presence, one handle, and the backend (graph) API's
//! descriptors with the few typed setters the attention graph needs.
//!
//! libcudnn is loaded at first use (cudarc's dynamic loading: `libcudnn.so.9` through the
//! dynamic linker's search path, e.g. the `nvidia-cudnn` wheel's `lib` that PyTorch ships).

use cudarc::cudnn::{result as dnn, sys};
use std::{
    ffi::{CStr, c_char, c_void},
    sync::OnceLock,
};
use sys::{
    cudnnBackendAttributeName_t as Attr, cudnnBackendAttributeType_t as Ty,
    cudnnBackendDescriptorType_t as Kind, cudnnBackendHeurMode_t as Heur,
    cudnnPointwiseMode_t as Pointwise, cudnnReduceTensorOp_t as Reduce,
};

/// Whether libcudnn can be loaded here.
pub fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to open the library.
    *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() })
}

/// The process's cuDNN handle with its stream set to `stream` (cubecl's), for the call that
/// follows on this thread.
///
/// # Safety
/// `stream` must be a live CUDA stream of the current context.
pub(super) unsafe fn handle_on(stream: u64) -> Result<sys::cudnnHandle_t, String> {
    let handle = handle()?;
    // SAFETY: as the caller promises.
    unsafe { dnn::set_stream(handle, stream as sys::cudaStream_t) }
        .map_err(|e| format!("cuDNN stream: {e:?}"))?;
    Ok(handle)
}

/// The process's cuDNN handle, made at first use on cubecl's device thread (its context
/// current).
fn handle() -> Result<sys::cudnnHandle_t, String> {
    static HANDLE: OnceLock<Result<usize, String>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            dnn::create_handle()
                .map(|h| h as usize)
                .map_err(|e| format!("cuDNN: {e:?}"))
        })
        .clone()
        .map(|h| h as sys::cudnnHandle_t)
}

/// cuDNN's version as a number (9.10.2 → 91002).
pub fn version() -> usize {
    dnn::get_version()
}

/// `Ok` for success, else an error naming `what` with cuDNN's own explanation of its last
/// failure.
pub(super) fn check(status: sys::cudnnStatus_t, what: &str) -> Result<(), String> {
    status.result().map_err(|e| {
        let mut buf = [0 as c_char; 1024];
        // SAFETY: cuDNN writes at most `buf.len()` bytes, NUL-terminated.
        let detail = unsafe {
            sys::cudnnGetLastErrorString(buf.as_mut_ptr(), buf.len());
            CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned()
        };
        if detail.is_empty() {
            format!("cuDNN {what}: {e:?}")
        } else {
            format!("cuDNN {what}: {e:?}: {detail}")
        }
    })
}

/// One backend descriptor, destroyed when dropped.
pub(super) struct Desc(sys::cudnnBackendDescriptor_t);

// SAFETY: a descriptor is plain host memory owned by this value; cuDNN's descriptors may be
// used from any thread, one at a time (the plan cache's mutex sees to that).
unsafe impl Send for Desc {}

impl Desc {
    pub(super) fn new(kind: Kind) -> Result<Self, String> {
        let mut d = std::ptr::null_mut();
        // SAFETY: cuDNN writes the new descriptor into `d`.
        check(
            unsafe { sys::cudnnBackendCreateDescriptor(kind, &mut d) },
            &format!("create {kind:?}"),
        )?;
        Ok(Self(d))
    }

    pub(super) fn raw(&self) -> sys::cudnnBackendDescriptor_t {
        self.0
    }

    /// # Safety
    /// `T` must be the C type `ty` names.
    unsafe fn set<T>(&self, name: Attr, ty: Ty, values: &[T]) -> Result<(), String> {
        let (count, values) = (values.len() as i64, values.as_ptr().cast());
        // SAFETY: `count` elements of the type `ty` names, as the caller promises; the
        // descriptor is live.
        check(
            unsafe { sys::cudnnBackendSetAttribute(self.0, name, ty, count, values) },
            &format!("set {name:?}"),
        )
    }

    // SAFETY (each setter below): the element type is the one its `Ty` names.

    pub(super) fn set_i64s(&self, name: Attr, values: &[i64]) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_INT64, values) }
    }

    /// A C `bool` (one byte, as Rust's).
    pub(super) fn set_bool(&self, name: Attr, value: bool) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_BOOLEAN, &[value]) }
    }

    pub(super) fn set_dtype(&self, name: Attr, value: sys::cudnnDataType_t) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_DATA_TYPE, &[value]) }
    }

    pub(super) fn set_pointwise_mode(&self, name: Attr, value: Pointwise) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_POINTWISE_MODE, &[value]) }
    }

    pub(super) fn set_reduction(&self, name: Attr, value: Reduce) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, &[value]) }
    }

    pub(super) fn set_heur_mode(&self, name: Attr, value: Heur) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_HEUR_MODE, &[value]) }
    }

    pub(super) fn set_handle(&self, name: Attr, value: sys::cudnnHandle_t) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_HANDLE, &[value]) }
    }

    pub(super) fn set_descs(&self, name: Attr, values: &[&Desc]) -> Result<(), String> {
        let raw: Vec<sys::cudnnBackendDescriptor_t> = values.iter().map(|d| d.0).collect();
        unsafe { self.set(name, Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR, &raw) }
    }

    pub(super) fn set_desc(&self, name: Attr, value: &Desc) -> Result<(), String> {
        self.set_descs(name, &[value])
    }

    /// Device or host pointers (a variant pack's data, its workspace).
    pub(super) fn set_ptrs(&self, name: Attr, values: &[*mut c_void]) -> Result<(), String> {
        unsafe { self.set(name, Ty::CUDNN_TYPE_VOID_PTR, values) }
    }

    /// One int64 attribute of a finalized descriptor.
    pub(super) fn get_i64(&self, name: Attr) -> Result<i64, String> {
        let (mut value, mut count) = (0i64, 0i64);
        // SAFETY: room for one int64.
        check(
            unsafe {
                sys::cudnnBackendGetAttribute(
                    self.0,
                    name,
                    Ty::CUDNN_TYPE_INT64,
                    1,
                    &mut count,
                    (&mut value as *mut i64).cast(),
                )
            },
            &format!("get {name:?}"),
        )?;
        Ok(value)
    }

    /// The descriptors an attribute holds (an engine heuristic's ranked engine
    /// configurations), each made here as `kind`.
    pub(super) fn get_descs(&self, name: Attr, kind: Kind) -> Result<Vec<Desc>, String> {
        let mut count = 0i64;
        // SAFETY: asks for the count only.
        check(
            unsafe {
                sys::cudnnBackendGetAttribute(
                    self.0,
                    name,
                    Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    0,
                    &mut count,
                    std::ptr::null_mut(),
                )
            },
            &format!("count {name:?}"),
        )?;
        let descs = (0..count.max(0))
            .map(|_| Desc::new(kind))
            .collect::<Result<Vec<_>, _>>()?;
        let mut raw: Vec<sys::cudnnBackendDescriptor_t> = descs.iter().map(|d| d.0).collect();
        let mut got = 0i64;
        // SAFETY: `raw.len()` descriptors of the kind the attribute holds, for cuDNN to fill.
        check(
            unsafe {
                sys::cudnnBackendGetAttribute(
                    self.0,
                    name,
                    Ty::CUDNN_TYPE_BACKEND_DESCRIPTOR,
                    raw.len() as i64,
                    &mut got,
                    raw.as_mut_ptr().cast(),
                )
            },
            &format!("get {name:?}"),
        )?;
        let mut descs = descs;
        descs.truncate(got.clamp(0, count) as usize);
        Ok(descs)
    }

    pub(super) fn finalize(self) -> Result<Self, String> {
        // SAFETY: a live descriptor.
        check(unsafe { sys::cudnnBackendFinalize(self.0) }, "finalize")?;
        Ok(self)
    }
}

impl Drop for Desc {
    fn drop(&mut self) {
        // SAFETY: created by cudnnBackendCreateDescriptor, destroyed once.
        unsafe {
            let _ = sys::cudnnBackendDestroyDescriptor(self.0);
        }
    }
}
