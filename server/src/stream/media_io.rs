//! A stream's media tracks on the async side: writing the encoded output, the viewer's
//! keyframe requests, and receiving the viewer's video (RTP → access units → the decoder
//! thread → the input buffer, with PLIs after a loss).

use super::{
    buffer::TimedFrame,
    processor::{EncodedFrame, StreamStats},
    session::Workers,
};
use crate::media::h264::H264Decoder;
use bytes::Bytes;
use rtc::{media::Sample, rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};
use tokio::sync::{mpsc, watch};
use webrtc::media_stream::{
    track_local::{TrackLocal, TrackLocalEvent, static_sample::TrackLocalStaticSample},
    track_remote::{TrackRemote, TrackRemoteEvent},
};

/// Access units waiting for the decoder thread.
const DECODE_QUEUE: usize = 16;
/// Keyframe requests to the viewer at most this often.
const PLI_MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Writes encoded frames to the output track once the connection is up.
pub(super) async fn write_output(
    track: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
    mut encoded: mpsc::Receiver<EncodedFrame>,
    mut connected: watch::Receiver<bool>,
    stats: Arc<StreamStats>,
) {
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    while let Some(frame) = encoded.recv().await {
        let sample = Sample {
            data: Bytes::from(frame.data),
            duration: frame.duration,
            ..Sample::new(Instant::now())
        };
        if let Err(e) = track
            .sample_writer(ssrc, payload_type)
            .write_sample(&sample)
            .await
        {
            tracing::debug!(error = %e, "output frame not written");
            continue;
        }
        stats.record_sent(frame.origin, Instant::now());
    }
}

/// Keyframe requests (PLI/FIR) from the viewer, for the encoder.
pub(super) async fn watch_keyframe_requests(
    track: Arc<TrackLocalStaticSample>,
    keyframe: Arc<AtomicBool>,
) {
    while let Some(event) = track.poll().await {
        if let TrackLocalEvent::OnRtcpPacket(_) = event {
            keyframe.store(true, Ordering::Relaxed);
        }
    }
}

/// Starts the decoder thread and the RTP reader for the viewer's video.
pub(super) fn spawn_receiver(
    remote: Arc<dyn TrackRemote>,
    workers: &Workers,
    stats: &Arc<StreamStats>,
) -> std::io::Result<JoinHandle<()>> {
    let (au_tx, au_rx) = sync_channel::<Vec<u8>>(DECODE_QUEUE);
    let need_keyframe = Arc::new(AtomicBool::new(true));
    let input = Arc::clone(&workers.input);
    let stop = Arc::clone(&workers.stop);
    let stats = Arc::clone(stats);
    let nk = Arc::clone(&need_keyframe);
    let thread = std::thread::Builder::new().name("decode".into()).spawn(move || {
        let mut decoder = match H264Decoder::new() {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the decoder");
                return;
            }
        };
        while !stop.load(Ordering::Relaxed) {
            let au = match au_rx.recv_timeout(Duration::from_millis(25)) {
                Ok(au) => au,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            match decoder.decode(&au) {
                Ok(frames) => {
                    for frame in frames {
                        stats.frames_in.fetch_add(1, Ordering::Relaxed);
                        input.push(TimedFrame { frame, origin: Instant::now() });
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "input frame not decoded; asking for a keyframe");
                    nk.store(true, Ordering::Relaxed);
                }
            }
        }
    })?;
    tokio::spawn(async move {
        use super::assembler::{Assembled, FrameAssembler};
        let mut assembler = FrameAssembler::new();
        let mut last_pli: Option<Instant> = None;
        // Until a keyframe arrives (at the start and after a loss) nothing can be decoded:
        // frames before it are dropped here, and keyframes are asked for.
        let mut awaiting_keyframe = true;
        while let Some(event) = remote.poll().await {
            let TrackRemoteEvent::OnRtpPacket(packet) = event else {
                continue;
            };
            let media_ssrc = packet.header.ssrc;
            for assembled in assembler.push(packet) {
                match assembled {
                    Assembled::Frame(au) => {
                        if awaiting_keyframe && !crate::media::h264::is_keyframe(&au) {
                            need_keyframe.store(true, Ordering::Relaxed);
                            continue;
                        }
                        awaiting_keyframe = false;
                        match au_tx.try_send(au) {
                            Ok(()) => {}
                            Err(TrySendError::Full(_)) => {
                                awaiting_keyframe = true;
                                need_keyframe.store(true, Ordering::Relaxed);
                            }
                            Err(TrySendError::Disconnected(_)) => return,
                        }
                    }
                    Assembled::Lost => {
                        awaiting_keyframe = true;
                        need_keyframe.store(true, Ordering::Relaxed);
                    }
                }
            }
            if need_keyframe.load(Ordering::Relaxed)
                && last_pli.is_none_or(|t| t.elapsed() >= PLI_MIN_INTERVAL)
            {
                need_keyframe.store(false, Ordering::Relaxed);
                last_pli = Some(Instant::now());
                let pli = PictureLossIndication {
                    sender_ssrc: 0,
                    media_ssrc,
                };
                let _ = remote.write_rtcp(vec![Box::new(pli)]).await;
            }
        }
    });
    Ok(thread)
}
