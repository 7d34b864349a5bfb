//! webrtc-rs building blocks: the codec we negotiate, the interceptor chain (NACK, RTCP
//! reports, and keyframe requests forwarded to us), the runtime (tokio, with roomy UDP
//! buffers) and the peer-connection event handler.

use rtc::{
    interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket},
    peer_connection::configuration::media_engine::MIME_TYPE_H264,
    rtcp::payload_feedbacks::{
        full_intra_request::FullIntraRequest, picture_loss_indication::PictureLossIndication,
    },
    rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind},
    sansio::Protocol,
};
use std::{
    collections::VecDeque,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};
use tokio::sync::mpsc::UnboundedSender;
use webrtc::{
    data_channel::DataChannel,
    media_stream::track_remote::TrackRemote,
    peer_connection::{
        MediaEngine, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
        Registry, register_default_interceptors,
    },
    runtime::{
        AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, Runtime,
        TokioRuntime,
    },
};

/// The H.264 profile browsers offer and OpenH264 produces: constrained baseline, level 3.1,
/// non-interleaved packetization.
pub const H264_FMTP: &str =
    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
/// RTP payload type we offer for it (the answer follows the offer's number).
const H264_PAYLOAD_TYPE: u8 = 102;
/// Position of the keyframe-request forwarder: after every built-in interceptor.
const FORWARDER_SLOT: usize = 14_000;

/// The only video codec: H.264 with NACK, PLI, FIR and REMB feedback.
pub fn h264_codec() -> RTCRtpCodec {
    let feedback = [
        ("goog-remb", ""),
        ("ccm", "fir"),
        ("nack", ""),
        ("nack", "pli"),
    ]
    .into_iter()
    .map(|(typ, parameter)| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    })
    .collect();
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: H264_FMTP.to_owned(),
        rtcp_feedback: feedback,
    }
}

/// The UDP receive and send buffers asked for (Linux caps them at `net.core.rmem_max` /
/// `wmem_max`).
///
/// A video frame leaves its sender as a burst of packets: a keyframe of a noisy 512×512
/// picture is ~200 KB, 170 packets at once from a sender that does not pace. The kernel's
/// default 208 KB buffer (which counts ~2 KB per packet) overflows before the reactor reads,
/// and the loss costs a NACK round trip or a keyframe; 4 MB holds a second of 30 Mbit/s.
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// tokio, as webrtc-rs runs it, with [`UDP_BUFFER_BYTES`] socket buffers.
#[derive(Debug)]
pub struct RoomyUdpRuntime(TokioRuntime);

impl RoomyUdpRuntime {
    pub fn shared() -> Arc<dyn Runtime> {
        Arc::new(Self(TokioRuntime))
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Runtime for RoomyUdpRuntime {
    fn spawn(&self, future: BoxFuture<'static, ()>) -> Box<dyn JoinHandle> {
        self.0.spawn(future)
    }

    fn spawn_reactor(&self, pool: usize, future: BoxFuture<'static, ()>) -> Box<dyn JoinHandle> {
        self.0.spawn_reactor(pool, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let s = socket2::SockRef::from(&socket);
        // Best effort: a smaller buffer than asked for still works, with more loss on bursts.
        let _ = s.set_send_buffer_size(UDP_BUFFER_BYTES);
        let got = s
            .set_recv_buffer_size(UDP_BUFFER_BYTES)
            .and_then(|()| s.recv_buffer_size())
            .unwrap_or(0);
        static WARNED: std::sync::Once = std::sync::Once::new();
        if got < UDP_BUFFER_BYTES {
            WARNED.call_once(|| {
                tracing::warn!(
                    asked = UDP_BUFFER_BYTES,
                    got,
                    "UDP receive buffer smaller than asked: raise net.core.rmem_max \
                     (sysctl -w net.core.rmem_max=4194304) or bursts of video may be lost"
                )
            });
        }
        self.0.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        listener: std::net::TcpListener,
    ) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.0.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> BoxFuture<'a, io::Result<Arc<dyn AsyncTcpStream>>> {
        self.0.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(&'a self, host: &'a str) -> BoxFuture<'a, io::Result<Vec<SocketAddr>>> {
        self.0.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        self.0.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.0.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.0.block_on(future)
    }

    fn yield_now(&self) -> BoxFuture<'static, ()> {
        self.0.yield_now()
    }

    fn name(&self) -> &'static str {
        "tokio (roomy UDP buffers)"
    }
}

/// A media engine with H.264 only, and the interceptor chain to go with it.
pub fn media_engine_and_interceptors() -> Result<(MediaEngine, Registry), webrtc::error::Error> {
    let mut engine = MediaEngine::default();
    engine.register_codec(
        RTCRtpCodecParameters {
            rtp_codec: h264_codec(),
            payload_type: H264_PAYLOAD_TYPE,
        },
        RtpCodecKind::Video,
    )?;
    let registry = register_default_interceptors(Registry::new(), &mut engine)?.with(
        Slot::from(FORWARDER_SLOT),
        KeyframeRequestForwarder::default(),
    );
    Ok((engine, registry))
}

/// Lets the viewer's keyframe requests (PLI, FIR) through to the application, which
/// answers them by encoding the next frame as a keyframe. Every other inbound RTCP packet
/// was consumed by the interceptors before this one and stops here.
#[derive(Default)]
pub struct KeyframeRequestForwarder {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for KeyframeRequestForwarder {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let requests: Vec<_> = packets
                .iter()
                .filter(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                })
                .cloned()
                .collect();
            if requests.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(requests);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for KeyframeRequestForwarder {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What the peer connection tells its session.
pub enum PeerEvent {
    GatheringComplete,
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
    DataChannel(Arc<dyn DataChannel>),
}

/// Forwards every event to the session's control task. Runs on the connection's driver,
/// so it does nothing but send.
pub struct Handler {
    pub events: UnboundedSender<PeerEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.events.send(PeerEvent::GatheringComplete);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PeerEvent::State(state));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PeerEvent::Track(track));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.events.send(PeerEvent::DataChannel(channel));
    }
}
