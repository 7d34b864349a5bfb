//! One stream: a peer connection, its worker threads, and the control task that ties them
//! together and tears everything down when the stream ends (peer failed or closed, DELETE,
//! server shutdown, or a fatal pipeline error).

use super::{
    buffer::{InputBuffer, TimedFrame},
    media_io::{spawn_receiver, watch_keyframe_requests, write_output},
    params_channel::parameter_channel,
    processor::{
        EncodedFrame, OUTPUT_QUEUE_CHUNKS, ProcessorConfig, StreamStats, spawn_output,
        spawn_processor,
    },
    rtc::{Handler, PeerEvent, h264_codec, media_engine_and_interceptors},
};
use crate::media::h264::EncoderSettings;
use crate::service::history::Figures;
use app::wire::{ServerMessage, SystemFigures};
use engine::pipeline::{
    InputKind, LoadedPipeline,
    params::{ParamSpec, Params},
};
use rtc::{
    peer_connection::{
        configuration::media_engine::MIME_TYPE_H264, transport::RTCDtlsTransportState,
    },
    rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind},
};
use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
        mpsc::{SyncSender, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, watch};
use webrtc::{
    data_channel::DataChannel,
    media_stream::{
        MediaStreamTrack,
        track_local::{TrackLocal, static_sample::TrackLocalStaticSample},
    },
    peer_connection::{
        PeerConnection, PeerConnectionBuilder, RTCConfigurationBuilder, RTCIceServer,
        RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
    },
    rtp_transceiver::RtpSender,
};

/// How long ICE gathering may take before the answer is sent anyway.
const GATHER_TIMEOUT: Duration = Duration::from_secs(5);
/// Parameter updates waiting for the processor.
const UPDATE_QUEUE: usize = 8;
/// The largest chunk (input frames per call) a pipeline asks for; the output queue holds
/// [`OUTPUT_QUEUE_CHUNKS`] of them.
const MAX_CHUNK_FRAMES: usize = 4;
/// Encoded frames waiting for the network.
const ENCODED_QUEUE: usize = 4;
/// Metrics pushed to the viewer this often.
const METRICS_INTERVAL: Duration = Duration::from_secs(1);
/// ICE liveness: with no packet from the viewer for this long the connection is
/// `disconnected`, this much later `failed` (the stream then ends), with keep-alives this
/// often. A viewer that vanishes is released within about 7 s (webrtc-rs' defaults, 5 s + 25 s,
/// held a closed tab's stream for 30 s).
const ICE_DISCONNECTED: Duration = Duration::from_secs(3);
const ICE_FAILED: Duration = Duration::from_secs(4);
const ICE_KEEPALIVE: Duration = Duration::from_secs(1);
/// How often the stream looks whether the viewer closed the connection (a DTLS
/// `close_notify`). A viewer that closes before its data channel is open sends nothing else:
/// without this look its stream would wait for the ICE timeouts above.
const CLOSE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The offer itself is unusable (400).
    #[error("{0}")]
    BadOffer(String),
    /// Something failed on our side (500).
    #[error("{0}")]
    Internal(String),
}

fn internal(what: &str) -> impl FnOnce(webrtc::error::Error) -> StartError + '_ {
    move |e| StartError::Internal(format!("{what}: {e}"))
}

/// What the registry keeps of a running session.
pub struct SessionHandle {
    pub id: String,
    /// Who may see and control it.
    pub owner: super::owner::Owner,
    pub pipeline_id: String,
    pub started_at: Instant,
    pub stats: Arc<StreamStats>,
    pc: Arc<dyn PeerConnection>,
    stop: watch::Sender<bool>,
    finished: watch::Receiver<bool>,
    /// Current runtime parameters, as the viewer last set them.
    pub params: Arc<Mutex<Params>>,
}

impl SessionHandle {
    /// Asks the session to end (idempotent).
    pub fn request_stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Waits until the session has released everything.
    pub async fn wait_finished(&self) {
        let mut rx = self.finished.clone();
        let _ = rx.wait_for(|done| *done).await;
    }

    /// Adds trickled ICE candidates.
    pub async fn add_ice_candidate(
        &self,
        candidate: webrtc::peer_connection::RTCIceCandidateInit,
    ) -> Result<(), String> {
        self.pc
            .add_ice_candidate(candidate)
            .await
            .map_err(|e| e.to_string())
    }
}

/// Everything a new session needs from the server.
pub struct StartContext {
    pub id: String,
    pub owner: super::owner::Owner,
    pub loaded: Arc<dyn LoadedPipeline>,
    pub initial: Params,
    pub ice_servers: Vec<RTCIceServer>,
    pub udp_addrs: Vec<String>,
    /// Called with the session id once everything is released.
    pub on_finished: Box<dyn FnOnce(&str) + Send>,
    /// System figures merged into the metrics messages.
    pub system_metrics: Arc<dyn Fn() -> SystemFigures + Send + Sync>,
    /// The history row of a signed-in user's stream.
    pub history: Option<super::history::HistoryLog>,
}

/// Answers an offer and starts the stream. Returns the handle and the answer SDP.
pub async fn start(
    ctx: StartContext,
    offer: RTCSessionDescription,
) -> Result<(Arc<SessionHandle>, String), StartError> {
    let (engine, registry) = media_engine_and_interceptors().map_err(internal("media engine"))?;
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(ctx.ice_servers.clone())
        .build();
    let settings = SettingEngineBuilder::new()
        .with_ice_timeouts(
            Some(ICE_DISCONNECTED),
            Some(ICE_FAILED),
            Some(ICE_KEEPALIVE),
        )
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_setting_engine(settings)
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { events: events_tx }))
        .with_udp_addrs(ctx.udp_addrs.clone())
        .with_runtime(super::rtc::RoomyUdpRuntime::shared())
        .build()
        .await
        .map_err(internal("peer connection"))?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    match negotiate(&pc, offer, &mut events).await {
        Ok((answer, output, early)) => Ok(launch(ctx, pc, events, early, output, answer)),
        Err(e) => {
            let _ = pc.close().await;
            Err(e)
        }
    }
}

/// The answer, the output's pieces, the peer events that came before the stream started.
type Negotiated = (String, Output, VecDeque<PeerEvent>);

/// The stream's outgoing video.
struct Output {
    track: Arc<TrackLocalStaticSample>,
    /// Its sender: the sender's DTLS transport tells when the viewer closed the connection.
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    payload_type: u8,
}

async fn negotiate(
    pc: &Arc<dyn PeerConnection>,
    offer: RTCSessionDescription,
    events: &mut mpsc::UnboundedReceiver<PeerEvent>,
) -> Result<Negotiated, StartError> {
    let ssrc: u32 = rand_ssrc();
    let encoding = RTCRtpEncodingParameters {
        rtp_coding_parameters: RTCRtpCodingParameters {
            ssrc: Some(ssrc),
            ..Default::default()
        },
        codec: h264_codec(),
        ..Default::default()
    };
    let media = MediaStreamTrack::new(
        "hanzo-live".into(),
        "output".into(),
        "output".into(),
        RtpCodecKind::Video,
        vec![encoding],
    );
    let track = Arc::new(
        TrackLocalStaticSample::new(Instant::now(), media).map_err(internal("output track"))?,
    );
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
        .await
        .map_err(internal("add track"))?;
    pc.set_remote_description(offer)
        .await
        .map_err(|e| StartError::BadOffer(format!("offer rejected: {e}")))?;
    let answer = pc
        .create_answer(None)
        .await
        .map_err(|e| StartError::BadOffer(format!("cannot answer this offer: {e}")))?;
    pc.set_local_description(answer)
        .await
        .map_err(internal("set local description"))?;

    // Non-trickle: wait for every candidate to be in the answer.
    let mut early = VecDeque::new();
    let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(PeerEvent::GatheringComplete)) | Err(_) | Ok(None) => break,
            Ok(Some(other)) => early.push_back(other),
        }
    }
    let payload_type = sender
        .get_parameters()
        .await
        .map_err(internal("sender parameters"))?
        .rtp_parameters
        .codecs
        .iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_H264))
        .map(|c| c.payload_type)
        .ok_or_else(|| {
            StartError::BadOffer(
                "the offer has no H.264 video (profile-level-id 42e01f, packetization-mode 1)"
                    .into(),
            )
        })?;
    let answer = pc
        .local_description()
        .await
        .ok_or_else(|| StartError::Internal("no local description".into()))?
        .sdp;
    let output = Output {
        track,
        sender,
        ssrc,
        payload_type,
    };
    Ok((answer, output, early))
}

fn rand_ssrc() -> u32 {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) | 1
}

/// Threads and channels of a running stream.
pub(super) struct Workers {
    pub(super) stop: Arc<AtomicBool>,
    pub(super) input: Arc<InputBuffer>,
    updates: SyncSender<Params>,
    keyframe: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

#[allow(clippy::too_many_arguments)]
fn launch(
    ctx: StartContext,
    pc: Arc<dyn PeerConnection>,
    events: mpsc::UnboundedReceiver<PeerEvent>,
    early: VecDeque<PeerEvent>,
    output: Output,
    answer: String,
) -> (Arc<SessionHandle>, String) {
    let spec = ctx.loaded.spec().clone();
    let stats = Arc::new(StreamStats::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (finished_tx, finished_rx) = watch::channel(false);
    let params = Arc::new(Mutex::new(ctx.initial.clone()));
    let handle = Arc::new(SessionHandle {
        id: ctx.id.clone(),
        owner: ctx.owner.clone(),
        pipeline_id: spec.id.to_owned(),
        started_at: Instant::now(),
        stats: Arc::clone(&stats),
        pc: Arc::clone(&pc),
        stop: stop_tx,
        finished: finished_rx,
        params: Arc::clone(&params),
    });

    let stop = Arc::new(AtomicBool::new(false));
    let input = Arc::new(InputBuffer::counting_into(
        super::buffer::INPUT_CAPACITY,
        Arc::clone(&stats.dropped_in),
    ));
    let keyframe = Arc::new(AtomicBool::new(false));
    let (updates_tx, updates_rx) = sync_channel(UPDATE_QUEUE);
    let (frames_tx, frames_rx) = sync_channel::<TimedFrame>(OUTPUT_QUEUE_CHUNKS * MAX_CHUNK_FRAMES);
    let (encoded_tx, encoded_rx) = mpsc::channel::<EncodedFrame>(ENCODED_QUEUE);
    let (fail_tx, fail_rx) = mpsc::unbounded_channel::<String>();
    let short = ctx.id.chars().take(8).collect::<String>();
    let mut threads = Vec::new();
    let processor = spawn_processor(
        &short,
        ctx.loaded.new_stream(),
        ProcessorConfig {
            input_kind: spec.input,
            output_fps: spec.output_fps,
            initial: ctx.initial.clone(),
        },
        Arc::clone(&input),
        frames_tx,
        updates_rx,
        Arc::clone(&stop),
        Arc::clone(&stats),
        Box::new({
            let fail_tx = fail_tx.clone();
            move |msg| {
                let _ = fail_tx.send(msg);
            }
        }),
    );
    let output_thread = spawn_output(
        &short,
        spec.input == InputKind::Video,
        frames_rx,
        EncoderSettings::default(),
        Arc::clone(&keyframe),
        encoded_tx,
        Arc::clone(&stop),
        Arc::clone(&stats),
        Box::new(move |msg| {
            let _ = fail_tx.send(msg);
        }),
    );
    let mut start_error = None;
    for t in [processor, output_thread] {
        match t {
            Ok(t) => threads.push(t),
            Err(e) => start_error = Some(format!("cannot start a stream thread: {e}")),
        }
    }
    let workers = Workers {
        stop,
        input,
        updates: updates_tx,
        keyframe,
        threads,
    };
    let control = Control {
        id: ctx.id,
        pc,
        spec_runtime: spec.runtime_params.clone(),
        input_kind: spec.input,
        stats,
        params,
        system_metrics: ctx.system_metrics,
        output,
        history: ctx.history,
        started: Instant::now(),
        latency: (0.0, 0),
    };
    tokio::spawn(control.run(
        workers,
        events,
        early,
        stop_rx,
        fail_rx,
        encoded_rx,
        start_error,
        finished_tx,
        ctx.on_finished,
    ));
    (handle, answer)
}

struct Control {
    id: String,
    pc: Arc<dyn PeerConnection>,
    spec_runtime: Vec<ParamSpec>,
    input_kind: InputKind,
    stats: Arc<StreamStats>,
    params: Arc<Mutex<Params>>,
    system_metrics: Arc<dyn Fn() -> SystemFigures + Send + Sync>,
    output: Output,
    history: Option<super::history::HistoryLog>,
    started: Instant,
    /// Sum and count of the latency samples taken each metrics tick.
    latency: (f64, u64),
}

/// Running figures go to the history every this many metrics ticks.
const HISTORY_EVERY_TICKS: u64 = 5;

impl Control {
    #[allow(clippy::too_many_arguments)]
    async fn run(
        mut self,
        mut workers: Workers,
        mut events: mpsc::UnboundedReceiver<PeerEvent>,
        mut early: VecDeque<PeerEvent>,
        mut stop: watch::Receiver<bool>,
        mut failures: mpsc::UnboundedReceiver<String>,
        encoded: mpsc::Receiver<EncodedFrame>,
        start_error: Option<String>,
        finished: watch::Sender<bool>,
        on_finished: Box<dyn FnOnce(&str) + Send>,
    ) {
        let (connected_tx, connected_rx) = watch::channel(false);
        tokio::spawn(write_output(
            Arc::clone(&self.output.track),
            self.output.ssrc,
            self.output.payload_type,
            encoded,
            connected_rx,
            Arc::clone(&self.stats),
        ));
        tokio::spawn(watch_keyframe_requests(
            Arc::clone(&self.output.track),
            Arc::clone(&workers.keyframe),
        ));
        let mut channel: Option<Arc<dyn DataChannel>> = None;
        // The viewer closing its data channel (the browser does when it stops or its page
        // goes) ends the stream at once.
        let (channel_closed_tx, mut channel_closed) = mpsc::unbounded_channel::<()>();
        let mut ticker = tokio::time::interval(METRICS_INTERVAL);
        let mut close_check = tokio::time::interval(CLOSE_CHECK_INTERVAL);
        let mut ticks = 0u64;
        let mut error: Option<String> = start_error;
        if error.is_none() {
            loop {
                let event = match early.pop_front() {
                    Some(e) => Some(e),
                    None => tokio::select! {
                        e = events.recv() => match e {
                            Some(e) => Some(e),
                            None => break,
                        },
                        msg = failures.recv() => {
                            error = msg.or_else(|| Some("the pipeline stopped".into()));
                            break;
                        }
                        _ = async { stop.wait_for(|s| *s).await.is_ok() } => break,
                        Some(()) = channel_closed.recv() => {
                            tracing::info!(session = %self.id, "the viewer closed the data channel");
                            channel = None;
                            break;
                        }
                        _ = close_check.tick() => {
                            if self.viewer_closed().await {
                                tracing::info!(session = %self.id, "the viewer closed the connection");
                                channel = None;
                                break;
                            }
                            None
                        }
                        _ = ticker.tick() => {
                            ticks += 1;
                            self.sample_figures(ticks);
                            if let Some(dc) = &channel {
                                let _ = dc.send_text(&self.metrics_message().to_text()).await;
                            }
                            None
                        }
                    },
                };
                match event {
                    Some(PeerEvent::State(state)) => {
                        tracing::info!(session = %self.id, %state, "peer connection state");
                        match state {
                            RTCPeerConnectionState::Connected => {
                                let _ = connected_tx.send(true);
                                workers.keyframe.store(true, Ordering::Relaxed);
                            }
                            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed => {
                                break;
                            }
                            _ => {}
                        }
                    }
                    Some(PeerEvent::Track(remote)) => {
                        if self.input_kind == InputKind::Video {
                            match spawn_receiver(remote, &workers, &self.stats) {
                                Ok(t) => workers.threads.push(t),
                                Err(e) => {
                                    error = Some(format!("cannot start the decoder: {e}"));
                                    break;
                                }
                            }
                        }
                    }
                    Some(PeerEvent::DataChannel(dc)) => {
                        tokio::spawn(parameter_channel(
                            Arc::clone(&dc),
                            self.spec_runtime.clone(),
                            workers.updates.clone(),
                            Arc::clone(&self.params),
                            self.history.as_ref().map(|h| h.sender()),
                            channel_closed_tx.clone(),
                        ));
                        channel = Some(dc);
                    }
                    Some(PeerEvent::GatheringComplete) | None => {}
                }
            }
        }

        // Tear down: tell the viewer why, stop the threads, close the connection.
        if let Some(dc) = &channel {
            let msg = ServerMessage::StreamStopped {
                error_message: error.clone(),
            };
            if dc.send_text(&msg.to_text()).await.is_ok() {
                // Let it leave before the connection closes (at most half a second).
                for _ in 0..50 {
                    if dc.outstanding_bytes().await.map_or(true, |n| n == 0) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        match &error {
            Some(e) => tracing::warn!(session = %self.id, error = %e, "stream ended with an error"),
            None => tracing::info!(session = %self.id, "stream ended"),
        }
        workers.stop.store(true, Ordering::Relaxed);
        drop(connected_tx); // a writer still waiting for the connection gives up
        let _ = self.pc.close().await;
        let threads = std::mem::take(&mut workers.threads);
        drop(workers);
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if let Some(h) = self.history.take() {
            h.close(self.figures(), error.as_deref()).await;
        }
        on_finished(&self.id);
        let _ = finished.send(true);
    }

    /// Whether the viewer closed the connection: its DTLS `close_notify` closed the transport
    /// (the peer-connection state stays `connected` then; only ICE's timeouts would end it).
    async fn viewer_closed(&self) -> bool {
        match self.output.sender.transport().await {
            Ok(Some(dtls)) => matches!(dtls.state().await, Ok(RTCDtlsTransportState::Closed)),
            _ => false,
        }
    }

    /// Frames out, mean output FPS since the start, mean of the latency samples (0.1).
    fn figures(&self) -> Figures {
        let frames_out = self.stats.frames_out.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let (sum, n) = self.latency;
        Figures {
            frames_out: i64::try_from(frames_out).unwrap_or(i64::MAX),
            mean_fps: (secs > 0.0 && frames_out > 0)
                .then(|| (frames_out as f64 / secs * 10.0).round() / 10.0),
            mean_latency_ms: (n > 0).then(|| (sum / n as f64 * 10.0).round() / 10.0),
        }
    }

    /// One metrics tick: a latency sample, and every few ticks the figures to the history.
    fn sample_figures(&mut self, ticks: u64) {
        if let Some(l) = self.stats.latency_ms() {
            self.latency.0 += l;
            self.latency.1 += 1;
        }
        if ticks.is_multiple_of(HISTORY_EVERY_TICKS)
            && let Some(h) = &self.history
        {
            h.sender()
                .send(super::history::Event::Figures(self.figures()));
        }
    }

    fn metrics_message(&self) -> ServerMessage {
        ServerMessage::Metrics {
            system: (self.system_metrics)(),
            stream: self.stats.figures(Instant::now()),
        }
    }
}
