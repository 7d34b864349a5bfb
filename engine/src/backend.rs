//! The burn backends compiled into this build, whether each can run here, and which one is
//! used: CUDA > Metal > CPU unless told otherwise (`--cpu`, `--backend`).
//!
//! | backend | feature | device |
//! |---|---|---|
//! | `cuda` | `cuda` (off by default) | NVIDIA GPU 0; needs the driver, NVRTC and the CUDA headers at run time |
//! | `metal` | `metal` | Apple GPU through wgpu (macOS only) |
//! | `flex` | `flex` (default) | CPU: bf16 storage, tiled attention |
//! | `candle` | `candle` (default) | CPU through candle (f32 and f16 only: candle cannot matmul bf16 on CPU) |

use burn::tensor::{Tensor, backend::Backend};

/// A burn backend this engine knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Cuda,
    Metal,
    Flex,
    Candle,
}

/// The CPU backend used when none is named: the faster of flex and candle on
/// `hanzo-live engine bench` (see `docs/perf.md`).
pub const DEFAULT_CPU: BackendKind = BackendKind::Flex;

/// Why no backend could be used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend {0:?} (known: cuda, metal, flex, candle)")]
    Unknown(String),
    #[error("backend {0} is not compiled into this build (enable the cargo feature `{0}`)")]
    NotCompiled(&'static str),
    #[error("backend {name} cannot run here: {reason}")]
    Unusable { name: &'static str, reason: String },
}

impl BackendKind {
    /// In order of preference.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Cuda,
        BackendKind::Metal,
        BackendKind::Flex,
        BackendKind::Candle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cuda => "cuda",
            BackendKind::Metal => "metal",
            BackendKind::Flex => "flex",
            BackendKind::Candle => "candle",
        }
    }

    pub fn parse(s: &str) -> Result<Self, BackendError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s.to_ascii_lowercase())
            .ok_or_else(|| BackendError::Unknown(s.to_owned()))
    }

    pub fn is_cpu(self) -> bool {
        matches!(self, BackendKind::Flex | BackendKind::Candle)
    }

    /// Whether this build has it.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::Metal => cfg!(feature = "metal"),
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Candle => cfg!(feature = "candle"),
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A computation to run on whichever backend is chosen.
pub trait WithBackend {
    type Output;
    fn run<B: Backend>(self, kind: BackendKind, device: B::Device) -> Self::Output;
}

/// Runs `job` on `kind` (which must be compiled).
pub fn dispatch<W: WithBackend>(kind: BackendKind, job: W) -> Result<W::Output, BackendError> {
    match kind {
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(job.run::<burn::backend::Cuda>(kind, Default::default())),
        #[cfg(feature = "metal")]
        BackendKind::Metal => Ok(job.run::<burn::backend::Metal>(kind, Default::default())),
        #[cfg(feature = "flex")]
        BackendKind::Flex => Ok(job.run::<burn::backend::Flex>(kind, Default::default())),
        // burn-candle is deprecated in 0.21 (and gone in 0.22); it is kept as the issue asks.
        #[cfg(feature = "candle")]
        #[allow(deprecated)]
        BackendKind::Candle => Ok(job.run::<burn::backend::Candle>(kind, Default::default())),
        #[allow(unreachable_patterns)]
        other => {
            let _ = job;
            Err(BackendError::NotCompiled(other.name()))
        }
    }
}

/// Where the text encoder runs (`--text-encoder-device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextEncoderDevice {
    /// The selected backend (the GPU where there is one).
    Auto,
    /// The default CPU backend, whatever the DiT uses.
    Cpu,
}

impl TextEncoderDevice {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            other => Err(format!("unknown text encoder device {other:?} (auto, cpu)")),
        }
    }

    /// The backend the encoder runs on when the DiT runs on `dit`.
    pub fn backend(self, dit: BackendKind) -> BackendKind {
        match self {
            Self::Auto if dit != BackendKind::Candle => dit,
            // candle cannot run the bf16 encoder on the CPU.
            _ => DEFAULT_CPU,
        }
    }
}

/// Runs a tiny computation to see whether the backend works on this machine.
struct Smoke;

impl WithBackend for Smoke {
    type Output = Result<String, String>;
    fn run<B: Backend>(self, _kind: BackendKind, device: B::Device) -> Self::Output {
        let device_name = format!("{device:?}");
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let a: Tensor<B, 2> = Tensor::ones([2, 2], &device);
            let v: Vec<f32> = a.clone().matmul(a).into_data().to_vec().unwrap_or_default();
            v
        }))
        .map_err(|p| {
            crate::panic_message(&*p).unwrap_or_else(|| "it panicked while starting".into())
        })
        .and_then(|v| {
            if v == [2.0; 4] {
                Ok(device_name)
            } else {
                Err(format!("a 2×2 matmul gave {v:?}"))
            }
        })
    }
}

/// Whether the NVIDIA driver library can be found (cudarc loads it at run time and panics
/// on a worker thread when it cannot).
fn nvidia_driver_present() -> bool {
    let mut dirs: Vec<std::path::PathBuf> = std::env::var_os("LD_LIBRARY_PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/lib",
            "/usr/local/nvidia/lib64",
            "/usr/lib/wsl/lib",
        ]
        .map(std::path::PathBuf::from),
    );
    if dirs
        .iter()
        .any(|d| d.join("libcuda.so.1").exists() || d.join("libcuda.so").exists())
    {
        return true;
    }
    std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("libcuda.so"))
        .unwrap_or(false)
}

/// What `engine info` says about one backend.
#[derive(Clone, Debug)]
pub struct BackendStatus {
    pub kind: BackendKind,
    pub compiled: bool,
    /// `Ok(device)` or why it cannot run here.
    pub usable: Result<String, String>,
}

/// Checks one backend (runs a 2×2 matmul on it).
pub fn probe(kind: BackendKind) -> BackendStatus {
    let usable = if !kind.compiled() {
        Err(format!("not compiled (cargo feature `{}`)", kind.name()))
    } else if kind == BackendKind::Metal && !cfg!(target_os = "macos") {
        Err("Metal needs macOS".into())
    } else if kind == BackendKind::Cuda && !nvidia_driver_present() {
        Err("no NVIDIA driver (libcuda.so.1 not found)".into())
    } else {
        dispatch(kind, Smoke).unwrap_or_else(|e| Err(e.to_string()))
    };
    BackendStatus {
        kind,
        compiled: kind.compiled(),
        usable,
    }
}

/// The backend to use: `requested` if given (it must work), else the first usable of
/// CUDA, Metal, CPU — only CPU backends when `cpu_only`.
pub fn select(requested: Option<BackendKind>, cpu_only: bool) -> Result<BackendKind, BackendError> {
    if let Some(kind) = requested {
        if !kind.compiled() {
            return Err(BackendError::NotCompiled(kind.name()));
        }
        return match probe(kind).usable {
            Ok(_) => Ok(kind),
            Err(reason) => Err(BackendError::Unusable {
                name: kind.name(),
                reason,
            }),
        };
    }
    let mut order: Vec<BackendKind> = BackendKind::ALL
        .into_iter()
        .filter(|k| !cpu_only || k.is_cpu())
        .collect();
    // The preferred CPU backend first among the CPU ones.
    order.sort_by_key(|k| (k.is_cpu(), *k != DEFAULT_CPU));
    let mut last = None;
    for kind in order.into_iter().filter(|k| k.compiled()) {
        match probe(kind).usable {
            Ok(_) => return Ok(kind),
            Err(reason) => {
                last = Some(BackendError::Unusable {
                    name: kind.name(),
                    reason,
                })
            }
        }
    }
    Err(last.unwrap_or(BackendError::NotCompiled("flex")))
}

/// Keeps the GPU backends' compiled kernels (CUDA's PTX) and autotune results under `dir`, so
/// that a second start needs neither NVRTC nor the autotune benchmarks for shapes it has seen
/// (cubecl's default is to compile every kernel again in each process and to keep autotune
/// results under the working directory's `target/`). Other cubecl settings still come from a
/// `cubecl.toml` in the working directory and `CUBECL_*` variables.
///
/// cubecl reads its configuration once: call this before the process's first GPU operation.
/// Answers whether it took effect: not without a GPU backend compiled in, nor when cubecl was
/// configured already.
pub fn keep_kernels_in(dir: &std::path::Path) -> bool {
    #[cfg(any(feature = "cuda", feature = "metal"))]
    {
        use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig, cache::CacheConfig};
        let mut slot = CubeClRuntimeConfig::storage().lock();
        if slot.is_some() {
            return false;
        }
        let mut config = CubeClRuntimeConfig::from_current_dir().override_from_env();
        config.autotune.cache = CacheConfig::File(dir.to_owned());
        config.compilation.cache = Some(CacheConfig::File(dir.to_owned()));
        *slot = Some(std::sync::Arc::new(config));
        true
    }
    #[cfg(not(any(feature = "cuda", feature = "metal")))]
    {
        let _ = dir;
        false
    }
}

/// Total and available system memory in MiB (Linux `/proc/meminfo`).
pub fn system_memory_mib() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
            .map(|kib| kib / 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for k in BackendKind::ALL {
            assert_eq!(BackendKind::parse(k.name()).unwrap(), k);
        }
        assert!(matches!(
            BackendKind::parse("tpu"),
            Err(BackendError::Unknown(_))
        ));
    }

    #[test]
    fn the_cpu_backends_run_here_and_are_chosen_without_a_gpu() {
        let flex = probe(BackendKind::Flex);
        assert!(flex.usable.is_ok(), "{:?}", flex.usable);
        let candle = probe(BackendKind::Candle);
        assert!(candle.usable.is_ok(), "{:?}", candle.usable);
        assert!(probe(BackendKind::Metal).usable.is_err());
        assert_eq!(select(None, true).unwrap(), DEFAULT_CPU);
        assert_eq!(
            select(Some(BackendKind::Candle), false).unwrap(),
            BackendKind::Candle
        );
        if !cfg!(feature = "cuda") {
            assert!(matches!(
                select(Some(BackendKind::Cuda), false),
                Err(BackendError::NotCompiled("cuda"))
            ));
        }
    }
}
