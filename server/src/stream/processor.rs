//! The per-stream worker threads, never on the async executor:
//!
//! * **processor**: takes parameter updates, asks the pipeline what it needs, takes a chunk
//!   from the [`InputBuffer`], runs the pipeline, queues the output (bounded; video-input
//!   pipelines drop and count when it is full, generators wait);
//! * **output**: paces frames out at the measured pipeline rate — for a live-input pipeline at
//!   most the input's rate, a little faster while more than a chunk waits ([`output_fps`]) —,
//!   encodes them (H.264) and hands the access units to the async writer through a bounded
//!   channel.

use super::buffer::{InputBuffer, TimedFrame};
use crate::media::h264::{EncoderSettings, H264Encoder};
use engine::pipeline::{
    InputKind, Pipeline, PipelineError,
    params::{ParamValue, Params},
};
use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Output pacing bounds and start value (frames per second).
pub const MIN_FPS: f64 = 1.0;
pub const MAX_FPS: f64 = 60.0;
pub const DEFAULT_FPS: f64 = 30.0;
/// How often the measured rate is recomputed.
pub const FPS_UPDATE_INTERVAL: Duration = Duration::from_millis(500);
/// Output queue length in chunks.
pub const OUTPUT_QUEUE_CHUNKS: usize = 3;
/// How long a thread waits before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(25);
/// This many encode failures in a row end the stream (the encoder restarts after each).
const MAX_ENCODE_FAILURES: u32 = 30;

/// Figures of one stream, shared by its threads and read by the metrics.
#[derive(Default)]
pub struct StreamStats {
    /// Frames decoded from the viewer.
    pub frames_in: AtomicU64,
    /// Frames the pipeline produced.
    pub frames_processed: AtomicU64,
    /// Frames written to the viewer.
    pub frames_out: AtomicU64,
    /// Input frames the pipeline never saw because it fell behind: the stream's
    /// [`InputBuffer`] counts into it (see [`InputBuffer::dropped`]).
    pub dropped_in: Arc<AtomicU64>,
    /// Output frames dropped because the queue was full.
    pub dropped_out: AtomicU64,
    /// Output frames the encoder could not code (even after restarting).
    pub encode_errors: AtomicU64,
    /// Frames the last chunk produced.
    pub chunk_frames: AtomicU64,
    /// Current pacing rate (f64 bits).
    pipeline_fps: AtomicU64,
    /// Recent frame-received → frame-sent latencies, in microseconds.
    latencies: Mutex<VecDeque<(Instant, u64)>>,
    /// Recent send times, for the output rate.
    sends: Mutex<VecDeque<Instant>>,
}

impl StreamStats {
    pub fn new() -> Self {
        let s = Self::default();
        s.set_pipeline_fps(DEFAULT_FPS);
        s
    }

    pub fn pipeline_fps(&self) -> f64 {
        f64::from_bits(self.pipeline_fps.load(Ordering::Relaxed))
    }

    pub fn set_pipeline_fps(&self, fps: f64) {
        self.pipeline_fps
            .store(fps.clamp(MIN_FPS, MAX_FPS).to_bits(), Ordering::Relaxed);
    }

    /// Records one frame written to the viewer.
    pub fn record_sent(&self, origin: Instant, now: Instant) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        let micros = now.saturating_duration_since(origin).as_micros() as u64;
        let window = Duration::from_secs(2);
        {
            let mut l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
            l.push_back((now, micros));
            while l
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > window)
            {
                l.pop_front();
            }
        }
        let mut s = self.sends.lock().unwrap_or_else(|p| p.into_inner());
        s.push_back(now);
        while s
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            s.pop_front();
        }
    }

    /// Frames sent during the last second.
    pub fn output_fps(&self, now: Instant) -> f64 {
        let s = self.sends.lock().unwrap_or_else(|p| p.into_inner());
        s.iter()
            .filter(|t| now.duration_since(**t) <= Duration::from_secs(1))
            .count() as f64
    }

    /// The figures the metrics report, rounded to 0.1.
    pub fn figures(&self, now: Instant) -> app::wire::StreamFigures {
        let round1 = |x: f64| (x * 10.0).round() / 10.0;
        app::wire::StreamFigures {
            fps: round1(self.output_fps(now)),
            pipeline_fps: round1(self.pipeline_fps()),
            latency_ms: self.latency_ms().map(round1),
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            dropped_in: self.dropped_in.load(Ordering::Relaxed),
            dropped_out: self.dropped_out.load(Ordering::Relaxed),
            encode_errors: self.encode_errors.load(Ordering::Relaxed),
        }
    }

    /// Mean latency over the last two seconds, in milliseconds.
    pub fn latency_ms(&self) -> Option<f64> {
        let l = self.latencies.lock().unwrap_or_else(|p| p.into_inner());
        if l.is_empty() {
            return None;
        }
        Some(l.iter().map(|(_, us)| *us as f64).sum::<f64>() / l.len() as f64 / 1000.0)
    }
}

/// What the processor needs besides the pipeline.
pub struct ProcessorConfig {
    pub input_kind: InputKind,
    /// Fixed rate of a self-paced pipeline (clip playback).
    pub output_fps: Option<f64>,
    /// Runtime parameters before any update.
    pub initial: Params,
}

/// Runs the pipeline until `stop` is set or the pipeline fails; `on_fail` gets the message of
/// a fatal error (the stream then ends).
#[allow(clippy::too_many_arguments)]
pub fn spawn_processor(
    name: &str,
    mut pipeline: Box<dyn Pipeline>,
    config: ProcessorConfig,
    input: Arc<InputBuffer>,
    output: SyncSender<TimedFrame>,
    updates: Receiver<Params>,
    stop: Arc<AtomicBool>,
    stats: Arc<StreamStats>,
    on_fail: Box<dyn FnOnce(String) + Send>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("proc-{name}"))
        .spawn(move || {
            let mut on_fail = Some(on_fail);
            let mut fail = |msg: String| {
                stop.store(true, Ordering::Relaxed);
                if let Some(f) = on_fail.take() {
                    f(msg);
                }
            };
            let mut params = config.initial;
            let mut prepared = false;
            let mut paused = matches!(params.remove("paused"), Some(ParamValue::Bool(true)));
            let mut reset = false;
            let mut per_frame = VecDeque::with_capacity(2);
            let mut last_fps_update = Instant::now();
            let mut input_rate = RateMeter::new(stats.frames_in.load(Ordering::Relaxed));
            if let Some(fps) = config.output_fps {
                stats.set_pipeline_fps(fps);
            }
            while !stop.load(Ordering::Relaxed) {
                // Parameter updates, in order.
                while let Ok(update) = updates.try_recv() {
                    for (k, v) in update {
                        match (k.as_str(), v) {
                            ("paused", ParamValue::Bool(p)) => paused = p,
                            ("reset_cache", ParamValue::Bool(r)) => reset |= r,
                            (_, v) => {
                                params.insert(k, v);
                            }
                        }
                    }
                }
                if paused {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
                let requirements = match guarded(|| pipeline.prepare(&params, !prepared || reset)) {
                    Ok(r) => r,
                    Err(e) => match fatal_message(e) {
                        Some(msg) => {
                            fail(msg);
                            break;
                        }
                        None => continue,
                    },
                };
                prepared = true;
                // A transition is an action: the pipeline has started it.
                params.remove("transition");
                if std::mem::take(&mut reset) {
                    input.clear();
                }
                let started = Instant::now();
                let (chunk, origin) =
                    if config.input_kind == InputKind::Video && requirements.input_frames > 0 {
                        let Some(chunk) = input.take_chunk(requirements.input_frames, POLL) else {
                            continue;
                        };
                        let origin = chunk.iter().map(|f| f.origin).max().unwrap_or(started);
                        (chunk.into_iter().map(|f| f.frame).collect(), origin)
                    } else {
                        (Vec::new(), started)
                    };
                let process_start = Instant::now();
                // Frames go out as the pipeline makes them (a Wan chunk piece by piece).
                let mut emit = |frame| {
                    // Counted before it is queued: the output thread's backlog is processed
                    // − dropped − taken.
                    stats.frames_processed.fetch_add(1, Ordering::Relaxed);
                    let item = TimedFrame { frame, origin };
                    if config.input_kind == InputKind::Video {
                        // Live input: never block the loop; a full queue drops (and counts).
                        if let Err(TrySendError::Full(_)) = output.try_send(item) {
                            stats.dropped_out.fetch_add(1, Ordering::Relaxed);
                        }
                    } else {
                        // A generator waits for room; a stopped stream drops the rest.
                        send_waiting(&output, item, &stop);
                    }
                };
                let made = match guarded(|| pipeline.process_into(chunk, &params, &mut emit)) {
                    Ok(n) => n,
                    Err(e) => match fatal_message(e) {
                        Some(msg) => {
                            fail(msg);
                            break;
                        }
                        None => continue,
                    },
                };
                if made == 0 {
                    continue;
                }
                // Pacing rate: processing time per frame over the last two chunks; a video
                // pipeline faster than its input goes at the input's rate (frames spread
                // evenly instead of bursts and gaps).
                if config.output_fps.is_none() {
                    per_frame.push_back(process_start.elapsed().as_secs_f64() / made as f64);
                    if per_frame.len() > 2 {
                        per_frame.pop_front();
                    }
                    if last_fps_update.elapsed() >= FPS_UPDATE_INTERVAL {
                        let avg = per_frame.iter().sum::<f64>() / per_frame.len() as f64;
                        let processing = if avg > 0.0 { 1.0 / avg } else { MAX_FPS };
                        let input_fps = input_rate
                            .update(stats.frames_in.load(Ordering::Relaxed), Instant::now());
                        stats.set_pipeline_fps(pacing_fps(
                            config.input_kind,
                            processing,
                            input_fps,
                        ));
                        last_fps_update = Instant::now();
                    }
                }
                stats.chunk_frames.store(made as u64, Ordering::Relaxed);
            }
            // Dropping `output` here ends the output thread.
        })
}

/// Frames per second of a growing counter, between two readings. The first reading with
/// frames only starts the clock: the time before the first frame (connection set-up) is no
/// part of the input's rate.
struct RateMeter {
    at: Instant,
    count: u64,
}

impl RateMeter {
    fn new(count: u64) -> Self {
        Self {
            at: Instant::now(),
            count,
        }
    }

    /// The rate since the last reading (`None` before the input started, or when nothing
    /// arrived).
    fn update(&mut self, count: u64, now: Instant) -> Option<f64> {
        let started = self.count > 0;
        let dt = now.duration_since(self.at).as_secs_f64();
        let n = count.saturating_sub(self.count);
        (self.at, self.count) = (now, count);
        (started && dt > 0.0 && n > 0).then(|| n as f64 / dt)
    }
}

/// The output rate: the pipeline's processing rate, capped by the input's rate for a
/// pipeline that transforms live video.
fn pacing_fps(kind: InputKind, processing: f64, input: Option<f64>) -> f64 {
    match (kind, input) {
        (InputKind::Video, Some(input)) => processing.min(input),
        _ => processing,
    }
}

/// A generator waits for room in the queue (it has no input to fall behind on).
fn send_waiting(output: &SyncSender<TimedFrame>, mut item: TimedFrame, stop: &AtomicBool) -> bool {
    loop {
        match output.try_send(item) {
            Ok(()) => return true,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                item = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

/// Runs one pipeline call; a panic in it becomes a fatal error carrying the panic's message,
/// so a broken pipeline ends its own stream and nothing else (the thread, the server and the
/// other streams go on).
fn guarded<T>(call: impl FnOnce() -> Result<T, PipelineError>) -> Result<T, PipelineError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|panic| {
        let msg = engine::panic_message(&*panic).unwrap_or_else(|| "no message".into());
        Err(PipelineError::Fatal(format!(
            "the pipeline panicked: {msg}"
        )))
    })
}

/// Logs a pipeline error; returns its message when it is fatal (the stream must end).
fn fatal_message(e: PipelineError) -> Option<String> {
    match e {
        PipelineError::Retry(msg) => {
            tracing::warn!(error = %msg, "pipeline skipped a chunk");
            std::thread::sleep(Duration::from_millis(10));
            None
        }
        PipelineError::Fatal(msg) => {
            tracing::error!(error = %msg, "pipeline failed; ending its stream");
            Some(msg)
        }
    }
}

/// An encoded access unit for the async writer.
pub struct EncodedFrame {
    pub data: Vec<u8>,
    /// How long it is shown (the pacing period): the RTP timestamp advances by this.
    pub duration: Duration,
    pub origin: Instant,
}

/// The output rate with `backlog` frames waiting (this one included): the pacing rate, raised
/// while more than a chunk waits, so a queue that a slightly low rate let grow drains instead
/// of adding latency; a chunk's own frames play out evenly (`catch_up`: live-input pipelines,
/// whose rate follows the input's).
pub fn output_fps(pacing: f64, backlog: u64, chunk_frames: u64, catch_up: bool) -> f64 {
    if !catch_up {
        return pacing;
    }
    let chunk = chunk_frames.max(1);
    (pacing * (1.0 + backlog.saturating_sub(chunk) as f64 / (2.0 * chunk as f64))).min(MAX_FPS)
}

/// Paces, encodes and hands frames to the writer. An encoder that cannot start, or fails
/// [`MAX_ENCODE_FAILURES`] frames in a row, ends the stream through `on_fail`.
#[allow(clippy::too_many_arguments)]
pub fn spawn_output(
    name: &str,
    catch_up: bool,
    frames: Receiver<TimedFrame>,
    settings: EncoderSettings,
    keyframe: Arc<AtomicBool>,
    encoded: tokio::sync::mpsc::Sender<EncodedFrame>,
    stop: Arc<AtomicBool>,
    stats: Arc<StreamStats>,
    on_fail: Box<dyn FnOnce(String) + Send>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("out-{name}"))
        .spawn(move || {
            let mut encoder = match H264Encoder::new(settings) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the encoder");
                    on_fail(format!("cannot start the video encoder: {e}"));
                    return;
                }
            };
            let mut failures_in_a_row = 0u32;
            let mut restarts = 0u32;
            let mut next = Instant::now();
            let mut taken = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let item = match frames.recv_timeout(POLL) {
                    Ok(f) => f,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                taken += 1;
                // Frames still queued behind this one (+1: this one).
                let backlog = stats
                    .frames_processed
                    .load(Ordering::Relaxed)
                    .saturating_sub(stats.dropped_out.load(Ordering::Relaxed))
                    .saturating_sub(taken)
                    + 1;
                let fps = output_fps(
                    stats.pipeline_fps(),
                    backlog,
                    stats.chunk_frames.load(Ordering::Relaxed),
                    catch_up,
                );
                let period = Duration::from_secs_f64(1.0 / fps);
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else if now - next > period {
                    next = now; // fell behind (a slow pipeline): restart the ticker, no burst
                }
                next += period;
                if keyframe.swap(false, Ordering::Relaxed) {
                    encoder.request_keyframe();
                }
                let result = encoder.encode(&item.frame);
                if encoder.restarts() != restarts {
                    restarts = encoder.restarts();
                    tracing::warn!(
                        restarts,
                        min_qp = encoder.min_qp(),
                        "the encoder failed a frame and restarted coarser"
                    );
                }
                let data = match result {
                    Ok(d) => {
                        failures_in_a_row = 0;
                        if d.is_empty() {
                            continue; // rate control skipped it
                        }
                        d
                    }
                    Err(e) => {
                        let total = stats.encode_errors.fetch_add(1, Ordering::Relaxed) + 1;
                        failures_in_a_row += 1;
                        if failures_in_a_row >= MAX_ENCODE_FAILURES {
                            on_fail(format!(
                                "the video encoder failed {failures_in_a_row} frames in a row: {e}"
                            ));
                            return;
                        }
                        if total == 1 || total.is_multiple_of(100) {
                            tracing::warn!(error = %e, total, "frame not encoded");
                        }
                        continue;
                    }
                };
                let mut frame = EncodedFrame {
                    data,
                    duration: period,
                    origin: item.origin,
                };
                // Never block for good: the writer waits for the connection, which may never come.
                loop {
                    match encoded.try_send(frame) {
                        Ok(()) => break,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            frame = back;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                    }
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_video_pipeline_is_paced_at_most_at_its_inputs_rate() {
        // 120 fps of processing on a 30 fps camera: out at 30, evenly.
        assert_eq!(pacing_fps(InputKind::Video, 120.0, Some(30.0)), 30.0);
        // Slower than the input: its own rate (the input buffer drops the rest).
        assert_eq!(pacing_fps(InputKind::Video, 12.0, Some(30.0)), 12.0);
        // No input yet, or a generator: the processing rate.
        assert_eq!(pacing_fps(InputKind::Video, 50.0, None), 50.0);
        assert_eq!(pacing_fps(InputKind::None, 50.0, Some(30.0)), 50.0);
    }

    #[test]
    fn a_backlog_drains_faster_for_live_input_only() {
        // Up to a chunk waiting (a chunk's frames arrive together): the pacing rate.
        assert_eq!(output_fps(20.0, 1, 1, true), 20.0);
        assert_eq!(output_fps(20.0, 4, 4, true), 20.0);
        // Beyond a chunk: faster in proportion (4-frame chunks, 8 waiting: 1.5×).
        assert_eq!(output_fps(20.0, 8, 4, true), 30.0);
        // One-frame chunks with 3 waiting: twice the rate, never past the cap.
        assert_eq!(output_fps(20.0, 3, 1, true), 40.0);
        assert_eq!(output_fps(50.0, 30, 1, true), MAX_FPS);
        // Generators and clips keep their rate (they wait for room instead).
        assert_eq!(output_fps(20.0, 30, 12, false), 20.0);
    }

    #[test]
    fn the_rate_meter_counts_arrivals_between_readings() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(0);
        // Set-up time before the first frame does not count.
        assert_eq!(m.update(3, t0 + Duration::from_secs(4)), None);
        assert_eq!(m.update(18, t0 + Duration::from_millis(4500)), Some(30.0));
        assert_eq!(m.update(18, t0 + Duration::from_secs(5)), None);
    }
}
