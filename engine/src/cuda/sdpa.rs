//! Scaled-dot-product attention by cuDNN's fused flash-attention engine, through the cuDNN 9
//! backend graph API: the operation graph cuDNN's frontend builds for SDPA inference, built
//! once per shape and layout and its execution plan cached.
//!
//! The graph (bf16 Q, K, V, O; f32 in between; P rounded to bf16 for the second product):
//! `S = Q·Kᵀ`, `S·scale`, the softmax as `max`, `−`, `exp`, `Σ`, `÷`, then `O = P·V`, and
//! the softmax statistics `max + ln Σ exp` per row (f32): a virtual tensor unless asked for
//! (the frontend builds them either way: cuDNN's flash-attention engine matches that graph),
//! written out when two key spans attended apart are to be merged ([`super::attention`]).
//!
//! Tensors are read and written through their strides (the DiT's `[B, L, H, d]` buffers seen as
//! `[B, H, L, d]`, a KV cache's rows from an offset) without copies.

use super::dnn::{Desc, check, handle_on};
use cudarc::cudnn::sys;
use std::{
    collections::HashMap,
    ffi::c_void,
    sync::{Mutex, OnceLock},
};
use sys::{
    cudnnBackendAttributeName_t as A, cudnnBackendDescriptorType_t as K, cudnnDataType_t as T,
    cudnnPointwiseMode_t as P, cudnnReduceTensorOp_t as R,
};

/// Scratch memory the plan may use (engine configurations needing more are passed over).
pub(super) const WORKSPACE: usize = 32 << 20;

/// One attention call's shapes and layouts: the key of the plan cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Problem {
    pub b: i64,
    pub h: i64,
    pub lq: i64,
    pub lk: i64,
    pub d: i64,
    /// Batch, head and row strides (in elements) of q, k, v and o; the last dimension of each
    /// is contiguous.
    pub strides: [[i64; 3]; 4],
    /// Also write the statistics, `[B, H, Lq, 1]` f32 contiguous.
    pub stats: bool,
}

/// The graph's tensors' ids in a variant pack.
const Q: i64 = 1;
const KEY: i64 = 2;
const V: i64 = 3;
const O: i64 = 4;
const SCALE: i64 = 5;
const STATS: i64 = 6;

/// A built plan and everything it was built from (kept alive with it).
struct Plan {
    plan: Desc,
    workspace: usize,
    _parts: Vec<Desc>,
}

/// Built plans, and the reason where a problem has none (asked once).
fn plans() -> &'static Mutex<HashMap<Problem, Result<Plan, String>>> {
    static PLANS: OnceLock<Mutex<HashMap<Problem, Result<Plan, String>>>> = OnceLock::new();
    PLANS.get_or_init(Mutex::default)
}

/// A tensor descriptor, not yet finalized: `dims` and `strides` in elements, 16-byte aligned.
fn described(uid: i64, dtype: T, dims: [i64; 4], strides: [i64; 4]) -> Result<Desc, String> {
    let t = Desc::new(K::CUDNN_BACKEND_TENSOR_DESCRIPTOR)?;
    t.set_dtype(A::CUDNN_ATTR_TENSOR_DATA_TYPE, dtype)?;
    t.set_i64s(A::CUDNN_ATTR_TENSOR_DIMENSIONS, &dims)?;
    t.set_i64s(A::CUDNN_ATTR_TENSOR_STRIDES, &strides)?;
    t.set_i64s(A::CUDNN_ATTR_TENSOR_UNIQUE_ID, &[uid])?;
    t.set_i64s(A::CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, &[16])?;
    Ok(t)
}

/// A tensor in device memory, or (`virt`) one the graph keeps to itself.
fn tensor(
    uid: i64,
    dtype: T,
    dims: [i64; 4],
    strides: [i64; 4],
    virt: bool,
) -> Result<Desc, String> {
    let t = described(uid, dtype, dims, strides)?;
    t.set_bool(A::CUDNN_ATTR_TENSOR_IS_VIRTUAL, virt)?;
    t.finalize()
}

/// An f32 scalar passed by value (its host pointer in the variant pack).
fn scalar(uid: i64) -> Result<Desc, String> {
    let t = described(uid, T::CUDNN_DATA_FLOAT, [1; 4], [1; 4])?;
    t.set_bool(A::CUDNN_ATTR_TENSOR_IS_BY_VALUE, true)?;
    t.finalize()
}

/// `a·b → c` with f32 accumulation.
fn matmul(a: &Desc, b: &Desc, c: &Desc) -> Result<[Desc; 2], String> {
    let m = Desc::new(K::CUDNN_BACKEND_MATMUL_DESCRIPTOR)?;
    m.set_dtype(A::CUDNN_ATTR_MATMUL_COMP_TYPE, T::CUDNN_DATA_FLOAT)?;
    let m = m.finalize()?;
    let op = Desc::new(K::CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR)?;
    op.set_desc(A::CUDNN_ATTR_OPERATION_MATMUL_ADESC, a)?;
    op.set_desc(A::CUDNN_ATTR_OPERATION_MATMUL_BDESC, b)?;
    op.set_desc(A::CUDNN_ATTR_OPERATION_MATMUL_CDESC, c)?;
    op.set_desc(A::CUDNN_ATTR_OPERATION_MATMUL_DESC, &m)?;
    Ok([op.finalize()?, m])
}

/// `mode(x[, b]) → y` in f32.
fn pointwise(mode: P, x: &Desc, b: Option<&Desc>, y: &Desc) -> Result<[Desc; 2], String> {
    let pw = Desc::new(K::CUDNN_BACKEND_POINTWISE_DESCRIPTOR)?;
    pw.set_pointwise_mode(A::CUDNN_ATTR_POINTWISE_MODE, mode)?;
    pw.set_dtype(A::CUDNN_ATTR_POINTWISE_MATH_PREC, T::CUDNN_DATA_FLOAT)?;
    let pw = pw.finalize()?;
    let op = Desc::new(K::CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR)?;
    op.set_desc(A::CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, &pw)?;
    op.set_desc(A::CUDNN_ATTR_OPERATION_POINTWISE_XDESC, x)?;
    if let Some(b) = b {
        op.set_desc(A::CUDNN_ATTR_OPERATION_POINTWISE_BDESC, b)?;
    }
    op.set_desc(A::CUDNN_ATTR_OPERATION_POINTWISE_YDESC, y)?;
    Ok([op.finalize()?, pw])
}

/// `x` reduced along the last axis by `op` → `y`, in f32.
fn reduction(op: R, x: &Desc, y: &Desc) -> Result<[Desc; 2], String> {
    let r = Desc::new(K::CUDNN_BACKEND_REDUCTION_DESCRIPTOR)?;
    r.set_dtype(A::CUDNN_ATTR_REDUCTION_COMP_TYPE, T::CUDNN_DATA_FLOAT)?;
    r.set_reduction(A::CUDNN_ATTR_REDUCTION_OPERATOR, op)?;
    let r = r.finalize()?;
    let o = Desc::new(K::CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR)?;
    o.set_desc(A::CUDNN_ATTR_OPERATION_REDUCTION_XDESC, x)?;
    o.set_desc(A::CUDNN_ATTR_OPERATION_REDUCTION_YDESC, y)?;
    o.set_desc(A::CUDNN_ATTR_OPERATION_REDUCTION_DESC, &r)?;
    Ok([o.finalize()?, r])
}

impl Problem {
    /// The operation graph and the first engine configuration cuDNN's heuristic ranks that
    /// builds a plan within [`WORKSPACE`].
    fn build(&self, handle: sys::cudnnHandle_t) -> Result<Plan, String> {
        let (b, h, lq, lk, d) = (self.b, self.h, self.lq, self.lk, self.d);
        let [sq, sk, sv, so] = self.strides;
        let bf16 = T::CUDNN_DATA_BFLOAT16;
        let f32 = T::CUDNN_DATA_FLOAT;
        let q = tensor(Q, bf16, [b, h, lq, d], [sq[0], sq[1], sq[2], 1], false)?;
        // Kᵀ: K's last two axes swapped, read through its strides.
        let kt = tensor(KEY, bf16, [b, h, d, lk], [sk[0], sk[1], 1, sk[2]], false)?;
        let v = tensor(V, bf16, [b, h, lk, d], [sv[0], sv[1], sv[2], 1], false)?;
        let o = tensor(O, bf16, [b, h, lq, d], [so[0], so[1], so[2], 1], false)?;
        let scale = scalar(SCALE)?;
        // Virtual intermediates: scores [B, H, Lq, Lk] and per-row values [B, H, Lq, 1].
        let mut uid = 100;
        let mut scores = |dtype| {
            uid += 1;
            tensor(
                uid,
                dtype,
                [b, h, lq, lk],
                [h * lq * lk, lq * lk, lk, 1],
                true,
            )
        };
        let s = scores(f32)?;
        let scaled = scores(f32)?;
        let centred = scores(f32)?;
        let exp = scores(f32)?;
        let p = scores(bf16)?;
        let mut rows = || {
            uid += 1;
            tensor(uid, f32, [b, h, lq, 1], [h * lq, lq, 1, 1], true)
        };
        let max = rows()?;
        let sum = rows()?;
        let log = rows()?;
        let stats = if self.stats {
            tensor(STATS, f32, [b, h, lq, 1], [h * lq, lq, 1, 1], false)?
        } else {
            rows()?
        };

        let mut ops = Vec::new();
        let mut parts = Vec::new();
        let mut add = |[op, desc]: [Desc; 2]| {
            ops.push(op);
            parts.push(desc);
        };
        add(matmul(&q, &kt, &s)?);
        add(pointwise(
            P::CUDNN_POINTWISE_MUL,
            &s,
            Some(&scale),
            &scaled,
        )?);
        add(reduction(R::CUDNN_REDUCE_TENSOR_MAX, &scaled, &max)?);
        add(pointwise(
            P::CUDNN_POINTWISE_SUB,
            &scaled,
            Some(&max),
            &centred,
        )?);
        add(pointwise(P::CUDNN_POINTWISE_EXP, &centred, None, &exp)?);
        add(reduction(R::CUDNN_REDUCE_TENSOR_ADD, &exp, &sum)?);
        add(pointwise(P::CUDNN_POINTWISE_LOG, &sum, None, &log)?);
        add(pointwise(P::CUDNN_POINTWISE_ADD, &max, Some(&log), &stats)?);
        add(pointwise(P::CUDNN_POINTWISE_DIV, &exp, Some(&sum), &p)?);
        add(matmul(&p, &v, &o)?);

        let graph = Desc::new(K::CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR)?;
        graph.set_handle(A::CUDNN_ATTR_OPERATIONGRAPH_HANDLE, handle)?;
        graph.set_descs(
            A::CUDNN_ATTR_OPERATIONGRAPH_OPS,
            &ops.iter().collect::<Vec<_>>(),
        )?;
        let graph = graph.finalize()?;

        // The heuristic's ranking (mode A), then its fallback list, as the frontend's samples
        // try them.
        let (mut heuristics, mut ranked) = (Vec::new(), Vec::new());
        let mut reasons = Vec::new();
        for mode in [
            sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_A,
            sys::cudnnBackendHeurMode_t::CUDNN_HEUR_MODE_FALLBACK,
        ] {
            let got = Desc::new(K::CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR).and_then(|heuristic| {
                heuristic.set_desc(A::CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, &graph)?;
                heuristic.set_heur_mode(A::CUDNN_ATTR_ENGINEHEUR_MODE, mode)?;
                let heuristic = heuristic.finalize()?;
                let configs = heuristic.get_descs(
                    A::CUDNN_ATTR_ENGINEHEUR_RESULTS,
                    K::CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                )?;
                Ok((heuristic, configs))
            });
            match got {
                Ok((heuristic, configs)) => {
                    heuristics.push(heuristic);
                    ranked.extend(configs);
                }
                Err(e) => reasons.push(format!("{mode:?}: {e}")),
            }
        }
        for config in ranked {
            let plan = Desc::new(K::CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR)?;
            let built = plan
                .set_handle(A::CUDNN_ATTR_EXECUTION_PLAN_HANDLE, handle)
                .and_then(|()| plan.set_desc(A::CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, &config))
                .and_then(|()| plan.finalize())
                .and_then(|plan| {
                    let size = plan.get_i64(A::CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE)?;
                    Ok((plan, size.max(0) as usize))
                });
            match built {
                Ok((plan, workspace)) if workspace <= WORKSPACE => {
                    parts.extend(ops);
                    parts.extend([
                        q, kt, v, o, scale, s, scaled, centred, exp, p, max, sum, log, stats,
                    ]);
                    parts.extend([graph, config]);
                    parts.extend(heuristics);
                    return Ok(Plan {
                        plan,
                        workspace,
                        _parts: parts,
                    });
                }
                Ok((_, workspace)) => reasons.push(format!("needs {workspace} bytes")),
                Err(e) => reasons.push(e),
            }
        }
        Err(format!(
            "cuDNN {} has no engine for attention {self:?}{}",
            super::dnn::version(),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        ))
    }

    /// Queues the attention on `stream`; builds the plan at the problem's first use. `Err`
    /// where cuDNN has no engine for it (then nothing was queued, and the next call with the
    /// same problem fails at once).
    ///
    /// # Safety
    /// The pointers must be live device buffers of the problem's shapes and strides (16-byte
    /// aligned), `stats` one of `[B, H, Lq]` f32 when the problem asks for it, `workspace` one
    /// of [`WORKSPACE`] bytes, the stream live, and cubecl's context current on this thread.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn run(
        &self,
        q: u64,
        k: u64,
        v: u64,
        o: u64,
        stats: Option<u64>,
        scale: f32,
        workspace: u64,
        stream: u64,
    ) -> Result<(), String> {
        if !super::dnn::available() {
            return Err("libcudnn cannot be loaded".into());
        }
        // SAFETY: a live stream, as the caller promises.
        let handle = unsafe { handle_on(stream) }?;
        let mut cache = plans().lock().unwrap_or_else(|p| p.into_inner());
        let plan = match cache.entry(*self) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(self.build(handle)),
        };
        let plan = plan.as_ref().map_err(Clone::clone)?;
        let mut scale = scale;
        let mut uids = vec![Q, KEY, V, O, SCALE];
        let mut ptrs: Vec<*mut c_void> = vec![
            q as *mut c_void,
            k as *mut c_void,
            v as *mut c_void,
            o as *mut c_void,
            (&mut scale as *mut f32).cast(),
        ];
        if let (true, Some(s)) = (self.stats, stats) {
            uids.push(STATS);
            ptrs.push(s as *mut c_void);
        } else if self.stats {
            return Err("the attention's statistics need a buffer".into());
        }
        let pack = Desc::new(K::CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR)?;
        pack.set_i64s(A::CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, &uids)?;
        pack.set_ptrs(A::CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, &ptrs)?;
        let ws = if plan.workspace > 0 {
            workspace as *mut c_void
        } else {
            std::ptr::null_mut()
        };
        pack.set_ptrs(A::CUDNN_ATTR_VARIANT_PACK_WORKSPACE, &[ws])?;
        let pack = pack.finalize()?;
        // SAFETY: a finalized plan and variant pack whose pointers are live (the scale until
        // this call returns: cuDNN reads by-value scalars when it queues the work).
        check(
            unsafe { sys::cudnnBackendExecute(handle, plan.plan.raw(), pack.raw()) },
            "execute attention",
        )
    }
}
