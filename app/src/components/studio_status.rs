//! The studio's status bar: the machine's and the stream's figures.

use crate::{
    components::StatusBar,
    studio::{Figures, Phase, Studio},
};
use leptos::prelude::*;

/// `used/total GB` from megabytes.
fn gigabytes(used_mb: u64, total_mb: u64) -> String {
    format!(
        "{:.1}/{:.1} GB",
        used_mb as f64 / 1024.0,
        total_mb as f64 / 1024.0
    )
}

/// The status bar with this page's stream figures.
#[component]
pub fn StudioStatus() -> impl IntoView {
    let s = expect_context::<Studio>();
    let fig = move |f: fn(&Figures) -> Option<String>| {
        move || s.figures.with(f).unwrap_or_else(|| "n/a".into())
    };
    view! {
        <StatusBar
            state=Signal::derive(move || match s.phase.get() {
                Phase::Idle => "Idle".to_owned(),
                Phase::Loading => "Loading".to_owned(),
                Phase::Connecting => "Connecting".to_owned(),
                Phase::Streaming if s.paused.get() => "Paused".to_owned(),
                Phase::Streaming => "Live".to_owned(),
            })
            live=Signal::derive(move || s.phase.get() == Phase::Streaming)
        >
            <span class="status-item" data-testid="metric-cpu">"CPU: " {fig(|f| f.system.as_ref().map(|m| format!("{:.0}%", m.cpu_percent)))}</span>
            <span class="status-item" data-testid="metric-ram">"RAM: " {fig(|f| f.system.as_ref().map(|m| gigabytes(m.ram_used_mb, m.ram_total_mb)))}</span>
            <span class="status-item" data-testid="metric-gpu">"GPU: " {fig(|f| f.system.as_ref()?.gpu_percent.map(|v| format!("{v:.0}%")))}</span>
            <span class="status-item" data-testid="metric-vram">"VRAM: " {fig(|f| {
                let m = f.system.as_ref()?;
                Some(gigabytes(m.vram_used_mb?, m.vram_total_mb?))
            })}</span>
            <span class="status-item" data-testid="metric-fps">"FPS: " {fig(|f| f.stream.as_ref().map(|m| format!("{:.1}", m.fps)))}</span>
            <span class="status-item" data-testid="metric-latency">"Latency: " {fig(|f| match (f.stream.as_ref().and_then(|m| m.latency_ms), f.rtt_ms) {
                (Some(l), Some(r)) => Some(format!("{l:.0} ms + RTT {r:.0} ms")),
                (Some(l), None) => Some(format!("{l:.0} ms")),
                _ => None,
            })}</span>
            <span class="status-item" data-testid="metric-bitrate">"Bitrate: " {fig(|f| f.bitrate_bps.map(|b| if b >= 1e6 { format!("{:.1} Mbps", b / 1e6) } else { format!("{:.0} kbps", b / 1e3) }))}</span>
        </StatusBar>
    }
}
