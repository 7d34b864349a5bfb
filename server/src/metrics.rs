//! System figures for the status bar: CPU %, RAM, and GPU % / VRAM through NVML where an
//! NVIDIA driver is present ("n/a" elsewhere). Sampled once a second in the background.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

/// How often the figures are refreshed.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// One reading (the wire type the metrics carry). GPU fields are `None` where no NVIDIA
/// GPU/driver is found.
pub type SystemSnapshot = app::wire::SystemFigures;

/// The latest snapshot, refreshed by a background task.
pub struct SystemMetrics {
    latest: RwLock<SystemSnapshot>,
}

impl SystemMetrics {
    /// Takes a first reading and starts the sampler (inside a tokio runtime).
    pub fn start() -> Arc<Self> {
        let mut sampler = Sampler::new();
        let this = Arc::new(Self {
            latest: RwLock::new(sampler.sample()),
        });
        let weak = Arc::downgrade(&this);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                let snap = sampler.sample();
                *this.latest.write().unwrap_or_else(|p| p.into_inner()) = snap;
            }
        });
        this
    }

    /// Metrics that never refresh (tests without a runtime).
    pub fn fixed(snapshot: SystemSnapshot) -> Arc<Self> {
        Arc::new(Self {
            latest: RwLock::new(snapshot),
        })
    }

    pub fn snapshot(&self) -> SystemSnapshot {
        self.latest
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

struct Sampler {
    system: sysinfo::System,
    gpu: Option<nvml_wrapper::Nvml>,
}

impl Sampler {
    fn new() -> Self {
        let mut system = sysinfo::System::new();
        system.refresh_cpu_usage();
        let gpu = match nvml_wrapper::Nvml::init() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::info!("no NVIDIA GPU metrics ({e})");
                None
            }
        };
        Self { system, gpu }
    }

    fn sample(&mut self) -> SystemSnapshot {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let mut snap = SystemSnapshot {
            cpu_percent: (self.system.global_cpu_usage() as f64 * 10.0).round() / 10.0,
            ram_used_mb: self.system.used_memory() / (1024 * 1024),
            ram_total_mb: self.system.total_memory() / (1024 * 1024),
            ..Default::default()
        };
        if let Some(device) = self.gpu.as_ref().and_then(|n| n.device_by_index(0).ok()) {
            snap.gpu_name = device.name().ok();
            snap.gpu_percent = device.utilization_rates().ok().map(|u| u.gpu as f64);
            if let Ok(m) = device.memory_info() {
                snap.vram_used_mb = Some(m.used / (1024 * 1024));
                snap.vram_total_mb = Some(m.total / (1024 * 1024));
            }
        }
        snap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_cpu_and_memory_and_reports_missing_gpu_as_null() {
        let m = SystemMetrics::start();
        let s = m.snapshot();
        assert!(s.ram_total_mb > 0 && s.ram_used_mb <= s.ram_total_mb);
        assert!((0.0..=100.0).contains(&s.cpu_percent));
        let j = serde_json::to_value(&s).unwrap();
        if s.gpu_name.is_none() {
            assert!(j["gpu_percent"].is_null() && j["vram_used_mb"].is_null());
        }
    }
}
