//! A webrtc-rs peer playing the browser's part: offers H.264 video (sending synthetic
//! frames, or receive-only), opens the `parameters` data channel, decodes what comes back.

use bytes::Bytes;
use engine::frame::Frame;
use rtc::{
    data_channel::RTCDataChannelInit,
    media::Sample,
    rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication,
    rtp_transceiver::{
        RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
        rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind},
    },
};
use server::{
    media::h264::{EncoderSettings, H264Decoder, H264Encoder, is_keyframe},
    stream::{
        assembler::{Assembled, FrameAssembler},
        rtc::{RoomyUdpRuntime, h264_codec, media_engine_and_interceptors},
    },
};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::sync::mpsc;
use webrtc::{
    data_channel::{DataChannel, DataChannelEvent},
    media_stream::{
        MediaStreamTrack,
        track_local::{TrackLocal, TrackLocalEvent, static_sample::TrackLocalStaticSample},
        track_remote::{TrackRemote, TrackRemoteEvent},
    },
    peer_connection::{
        PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
        RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription,
    },
    rtp_transceiver::RtpSender,
};

/// Aborts a task when dropped (the sender's keyframe-request watcher ends with it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct ClientHandler {
    gathered: mpsc::UnboundedSender<()>,
    state: mpsc::UnboundedSender<RTCPeerConnectionState>,
    frames: mpsc::UnboundedSender<Frame>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        let _ = self.state.send(s);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let frames = self.frames.clone();
        tokio::spawn(async move {
            let mut assembler = FrameAssembler::new();
            let mut decoder = H264Decoder::new().unwrap();
            // As a browser: after a loss, ask for a keyframe and wait for it.
            let (mut awaiting_keyframe, mut last_pli) = (true, None::<Instant>);
            while let Some(ev) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(p) = ev else {
                    continue;
                };
                let ssrc = p.header.ssrc;
                for out in assembler.push(p) {
                    match out {
                        Assembled::Frame(au) if !awaiting_keyframe || is_keyframe(&au) => {
                            awaiting_keyframe = false;
                            match decoder.decode(&au) {
                                Ok(decoded) => decoded.into_iter().for_each(|f| {
                                    let _ = frames.send(f);
                                }),
                                Err(_) => awaiting_keyframe = true,
                            }
                        }
                        Assembled::Frame(_) => {}
                        Assembled::Lost => awaiting_keyframe = true,
                    }
                }
                if awaiting_keyframe
                    && last_pli.is_none_or(|t| t.elapsed() > Duration::from_millis(300))
                {
                    last_pli = Some(Instant::now());
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    };
                    let _ = track.write_rtcp(vec![Box::new(pli)]).await;
                }
            }
        });
    }
}

/// The test's browser.
pub struct Client {
    pub pc: Arc<dyn PeerConnection>,
    pub channel: Arc<dyn DataChannel>,
    pub messages: mpsc::UnboundedReceiver<serde_json::Value>,
    pub frames: mpsc::UnboundedReceiver<Frame>,
    states: mpsc::UnboundedReceiver<RTCPeerConnectionState>,
    track: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>)>,
}

impl Client {
    /// Builds the peer and its offer (non-trickle). `send_video` adds a camera-like track;
    /// otherwise the video transceiver is receive-only.
    pub async fn offer(send_video: bool) -> (Self, String) {
        Self::offer_on(send_video, 0).await
    }

    /// As [`Client::offer`], the connection driven on its own reactor thread when
    /// `reactor_threads > 0` (such a connection stops without a word when dropped:
    /// [`Client::vanish`]).
    pub async fn offer_on(send_video: bool, reactor_threads: usize) -> (Self, String) {
        Self::build(send_video, reactor_threads, None).await
    }

    /// As [`Client::offer`], its data channel never announced to the server (negotiated out
    /// of band, which the server does not do): to the server this viewer has no data channel,
    /// as one that leaves before its channel opens.
    pub async fn offer_with_unannounced_channel(send_video: bool) -> (Self, String) {
        let init = RTCDataChannelInit {
            negotiated: Some(1),
            ..Default::default()
        };
        Self::build(send_video, 0, Some(init)).await
    }

    async fn build(
        send_video: bool,
        reactor_threads: usize,
        channel_init: Option<RTCDataChannelInit>,
    ) -> (Self, String) {
        let (engine, registry) = media_engine_and_interceptors().unwrap();
        let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
        let (state_tx, states) = mpsc::unbounded_channel();
        let (frames_tx, frames) = mpsc::unbounded_channel();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(ClientHandler {
                gathered: gathered_tx,
                state: state_tx,
                frames: frames_tx,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .with_runtime(RoomyUdpRuntime::shared())
            .with_dedicated_reactor_pool_size(reactor_threads)
            .build()
            .await
            .unwrap();
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let track = if send_video {
            let media = MediaStreamTrack::new(
                "camera".into(),
                "camera".into(),
                "camera".into(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(0x1234_5678),
                        ..Default::default()
                    },
                    codec: h264_codec(),
                    ..Default::default()
                }],
            );
            let t = Arc::new(TrackLocalStaticSample::new(Instant::now(), media).unwrap());
            let sender = pc
                .add_track(Arc::clone(&t) as Arc<dyn TrackLocal>)
                .await
                .unwrap();
            Some((t, sender))
        } else {
            pc.add_transceiver_from_kind(
                RtpCodecKind::Video,
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
            None
        };
        let channel = pc
            .create_data_channel("parameters", channel_init)
            .await
            .unwrap();
        let (msg_tx, messages) = mpsc::unbounded_channel();
        {
            let channel = Arc::clone(&channel);
            tokio::spawn(async move {
                while let Some(ev) = channel.poll().await {
                    match ev {
                        DataChannelEvent::OnMessage(m) => {
                            if let Ok(v) = serde_json::from_slice(&m.data) {
                                let _ = msg_tx.send(v);
                            }
                        }
                        DataChannelEvent::OnClose => break,
                        _ => {}
                    }
                }
            });
        }
        let offer = pc.create_offer(None).await.unwrap();
        pc.set_local_description(offer).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), gathered.recv())
            .await
            .unwrap();
        let sdp = pc.local_description().await.unwrap().sdp;
        (
            Self {
                pc,
                channel,
                messages,
                frames,
                states,
                track,
            },
            sdp,
        )
    }

    pub async fn accept(&self, answer_sdp: String) {
        let answer = RTCSessionDescription::answer(answer_sdp).unwrap();
        self.pc.set_remote_description(answer).await.unwrap();
    }

    /// Takes the server's answer (the offer route's JSON body) and waits until connected.
    pub async fn complete(&mut self, answer: &serde_json::Value, timeout: Duration) {
        self.accept(answer["sdp"].as_str().expect("an answer SDP").to_owned())
            .await;
        self.wait_state(RTCPeerConnectionState::Connected, timeout)
            .await;
    }

    pub async fn wait_state(&mut self, want: RTCPeerConnectionState, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.states.recv()).await {
                Ok(Some(s)) if s == want => return,
                Ok(Some(_)) => {}
                _ => panic!("peer never reached {want}"),
            }
        }
    }

    /// Sends `frames` at about `fps` from a background task.
    pub fn stream(&self, frames: Vec<Frame>, fps: f64) -> tokio::task::JoinHandle<()> {
        self.stream_timed(frames, fps, EncoderSettings::default(), |_, _| {})
    }

    /// As [`Client::stream`], encoding with `settings` and calling `sent(index, when)` after
    /// each frame is written.
    pub fn stream_timed(
        &self,
        frames: Vec<Frame>,
        fps: f64,
        settings: EncoderSettings,
        sent: impl Fn(usize, Instant) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let (track, sender) = self.track.clone().expect("a sending client");
        // Answer the server's keyframe requests (PLI) as a browser does.
        let keyframe = Arc::new(AtomicBool::new(false));
        let requests = {
            let (track, keyframe) = (Arc::clone(&track), Arc::clone(&keyframe));
            tokio::spawn(async move {
                while let Some(event) = track.poll().await {
                    if let TrackLocalEvent::OnRtcpPacket(_) = event {
                        keyframe.store(true, Ordering::Relaxed);
                    }
                }
            })
        };
        tokio::spawn(async move {
            let _requests = AbortOnDrop(requests);
            let mut encoder = H264Encoder::new(settings).unwrap();
            let period = Duration::from_secs_f64(1.0 / fps);
            let mut tick = tokio::time::interval(period);
            let mut pt = None;
            for (i, frame) in frames.iter().enumerate().cycle() {
                tick.tick().await;
                if pt.is_none() {
                    pt = sender
                        .get_parameters()
                        .await
                        .ok()
                        .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type));
                    if pt.is_none() {
                        continue;
                    }
                    encoder.request_keyframe();
                }
                if keyframe.swap(false, Ordering::Relaxed) {
                    encoder.request_keyframe();
                }
                let data = encoder.encode(frame).unwrap();
                let sample = Sample {
                    data: Bytes::from(data),
                    duration: period,
                    ..Sample::new(Instant::now())
                };
                if track
                    .sample_writer(0x1234_5678, pt.unwrap())
                    .write_sample(&sample)
                    .await
                    .is_ok()
                {
                    sent(i, Instant::now());
                }
            }
        })
    }

    pub async fn send(&self, text: &str) {
        self.channel.send_text(text).await.unwrap();
    }

    /// The next data-channel message of `kind`.
    pub async fn next_message(&mut self, kind: &str, timeout: Duration) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.messages.recv()).await {
                Ok(Some(m)) if m["type"] == kind => return m,
                Ok(Some(_)) => {}
                _ => panic!("no {kind} message"),
            }
        }
    }

    pub async fn next_frame(&mut self, timeout: Duration) -> Frame {
        tokio::time::timeout(timeout, self.frames.recv())
            .await
            .expect("no frame arrived in time")
            .expect("frame stream ended")
    }

    /// Closes as a browser does: the data channel first (an SCTP stream reset), then the
    /// connection.
    pub async fn close(&self) {
        let _ = self.channel.close().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = self.pc.close().await;
    }

    /// Goes away without a word (a client made with [`Client::offer_on`] and a reactor
    /// thread): dropping the connection stops its driver at its next turn, before it sends
    /// anything more, and its socket closes; the other side only notices the silence.
    pub fn vanish(self) {
        drop(self);
    }
}
