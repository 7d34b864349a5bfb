//! Compiled kernels and autotune results land in the directory `keep_kernels_in` names, so a
//! second start skips NVRTC and the autotune benchmarks. On the GPU machine:
//! `cargo test -p engine --features cuda --test cuda_kernel_cache -- --ignored` (its own
//! process: cubecl's configuration is set once per process).
#![cfg(feature = "cuda")]

use burn::tensor::{DType, Distribution, Tensor};
use engine::cuda::gemm::Cuda;

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
#[ignore = "needs an NVIDIA GPU (run with --ignored on the GPU machine)"]
fn kernels_and_autotune_results_are_kept_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    assert!(engine::backend::keep_kernels_in(dir.path()));
    assert!(
        !engine::backend::keep_kernels_in(dir.path()),
        "cubecl is configured once per process"
    );
    let device = Default::default();
    let normal = Distribution::Normal(0.0, 1.0);
    // An autotuned bf16 matmul and an element-wise kernel.
    let a = Tensor::<Cuda, 2>::random([256, 320], normal, &device).cast(DType::BF16);
    let b = Tensor::<Cuda, 2>::random([320, 192], normal, &device).cast(DType::BF16);
    let c = (a.matmul(b) * 2.0).cast(DType::F32).sum().into_scalar();
    assert!(c.is_finite());
    let files = files_under(dir.path());
    println!("{files:#?}");
    assert!(
        files.iter().any(|f| f.contains("autotune")),
        "no autotune results in {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.contains("ptx") || f.contains("cuda")),
        "no compiled kernels in {files:?}"
    );
}
