//! Opt-in stage timings for finding where a model's time goes on a GPU
//! (`HANZO_LIVE_PROFILE=1`; off by default and then free): [`stage`] waits for the device
//! before and after a piece of work and adds the wall time to a per-label total, and
//! [`report`] gives and clears the totals. Stages nest: a stage's total is its own time, less
//! the stages inside it, so the totals add up to the profiled work. Waiting for the device
//! after every stage takes away the overlap of host and GPU work, so the totals say what each
//! stage costs the GPU plus its launches, not what a run without profiling takes.

use burn::tensor::backend::Backend;
use std::{
    cell::RefCell,
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

/// Whether `HANZO_LIVE_PROFILE` is set to something other than `0` (read once).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("HANZO_LIVE_PROFILE").is_ok_and(|v| v.trim() != "0"))
}

std::thread_local! {
    /// Per open stage on this thread (innermost last): the time of the stages inside it.
    static OPEN: RefCell<Vec<Duration>> = const { RefCell::new(Vec::new()) };
}

fn totals() -> &'static Mutex<HashMap<String, (usize, Duration)>> {
    static TOTALS: OnceLock<Mutex<HashMap<String, (usize, Duration)>>> = OnceLock::new();
    TOTALS.get_or_init(Mutex::default)
}

/// Runs `f`; when profiling is [`enabled`], with the device idle before and after, adding its
/// time to `label()`'s total (the label is only built then).
pub fn stage<B: Backend, T>(
    device: &B::Device,
    label: impl FnOnce() -> String,
    f: impl FnOnce() -> T,
) -> T {
    if !enabled() {
        return f();
    }
    let _ = B::sync(device);
    /// Closes this stage's frame even when `f` panics (a caught panic must not leave later
    /// stages charging their time to it).
    struct Frame;
    impl Drop for Frame {
        fn drop(&mut self) {
            OPEN.with_borrow_mut(|open| open.pop());
        }
    }
    OPEN.with_borrow_mut(|open| open.push(Duration::ZERO));
    let frame = Frame;
    let started = Instant::now();
    let out = f();
    let _ = B::sync(device);
    let took = started.elapsed();
    let inner = OPEN.with_borrow(|open| open.last().copied().unwrap_or_default());
    drop(frame);
    OPEN.with_borrow_mut(|open| {
        if let Some(parent) = open.last_mut() {
            *parent += took;
        }
    });
    let mut totals = totals().lock().unwrap_or_else(|p| p.into_inner());
    let entry = totals.entry(label()).or_default();
    entry.0 += 1;
    entry.1 += took.saturating_sub(inner);
    out
}

/// Forgets the totals so far (work done before what is to be profiled).
pub fn clear() {
    totals().lock().unwrap_or_else(|p| p.into_inner()).clear();
}

/// The totals since the last report, divided by `runs` (the times the profiled work ran), as
/// a Markdown table (largest first, with each one's share of their sum), then cleared; `None`
/// when profiling is off or nothing was timed.
pub fn report(runs: usize) -> Option<String> {
    if !enabled() {
        return None;
    }
    let mut rows: Vec<_> = totals()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain()
        .collect();
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| a.0.cmp(&b.0)));
    let runs = runs.max(1);
    let sum: f64 = rows.iter().map(|r| r.1.1.as_secs_f64()).sum();
    let sum_ms = sum * 1e3 / runs as f64;
    let mut out =
        format!("| stage (per run, {runs} runs) | calls | ms | share |\n|---|---|---|---|\n");
    for (label, (calls, took)) in rows {
        let ms = took.as_secs_f64() * 1e3 / runs as f64;
        out += &format!(
            "| {label} | {} | {ms:.2} | {:.1} % |\n",
            calls as f64 / runs as f64,
            100.0 * took.as_secs_f64() / sum.max(f64::MIN_POSITIVE)
        );
    }
    out += &format!("| sum of the stages | | {sum_ms:.2} | |\n");
    Some(out)
}
