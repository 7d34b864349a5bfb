//! H.264 encode (RGB frames → Annex-B access units) and decode (Annex-B → RGB frames) with
//! OpenH264.

use engine::frame::Frame;
use openh264::{
    OpenH264API,
    decoder::{Decoder, DecoderConfig},
    encoder::{
        BitRate, Encoder, EncoderConfig, FrameRate, IntraFramePeriod, Profile, QpRange,
        RateControlMode, UsageType,
    },
    formats::{RgbSliceU8, YUVBuffer, YUVSource},
};
use thiserror::Error;

/// A codec failure.
#[derive(Debug, Error)]
#[error("H.264 {op}: {message}")]
pub struct CodecError {
    op: &'static str,
    message: String,
}

impl CodecError {
    fn new(op: &'static str, e: impl std::fmt::Display) -> Self {
        Self {
            op,
            message: e.to_string(),
        }
    }
}

/// Encoder settings.
#[derive(Clone, Copy, Debug)]
pub struct EncoderSettings {
    /// Target bitrate in bits per second.
    pub bitrate_bps: u32,
    /// Highest frame rate the rate control plans for.
    pub max_fps: f32,
    /// A keyframe at least this often (frames); keyframes are also sent on request (PLI).
    pub keyframe_interval: u32,
    /// Let rate control drop frames to hold the bitrate. Off by default: every generated
    /// frame reaches the viewer, and a burst of hard frames (noise) is coded coarser and a
    /// little over the bitrate instead of stuttering. (OpenH264 warns once per encoder that
    /// it cannot then hold the bitrate strictly.)
    pub skip_frames: bool,
    /// The finest quantiser rate control may pick (0..=51, lower is finer).
    ///
    /// OpenH264 sizes its output buffer from the picture size, and a frame of fine noise (what
    /// a diffusion model shows at high noise) coded at a very low QP overflows it at some sizes
    /// (128×128 and 512×512 among them): the encode fails and every later one with it. At 22
    /// no size from 16×16 to 1024×1024 overflows, with margin (20 was the lowest that held),
    /// and 22 is still visually lossless for camera and generated video.
    pub min_qp: u8,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        Self {
            bitrate_bps: 4_000_000,
            max_fps: 30.0,
            keyframe_interval: 120,
            skip_frames: false,
            min_qp: 22,
        }
    }
}

/// RGB frames in, Annex-B access units out.
///
/// An encode that fails (OpenH264 leaves its encoder unusable after one) restarts the encoder
/// at a coarser quantiser and encodes the frame again as a keyframe: the stream goes on, a
/// little coarser, instead of failing frame after frame.
pub struct H264Encoder {
    encoder: Encoder,
    settings: EncoderSettings,
    keyframe_requested: bool,
    restarts: u32,
}

/// How much coarser the quantiser gets on each restart.
const RESTART_QP_STEP: u8 = 8;

fn open(settings: &EncoderSettings) -> Result<Encoder, CodecError> {
    let min_qp = settings.min_qp.min(51);
    let config = EncoderConfig::new()
        .bitrate(BitRate::from_bps(settings.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(settings.max_fps))
        .rate_control_mode(RateControlMode::Bitrate)
        .usage_type(UsageType::CameraVideoRealTime)
        .profile(Profile::Baseline)
        // With skipping on, rate control may skip a frame (an empty access unit, which
        // callers drop).
        .skip_frames(settings.skip_frames)
        .qp(QpRange::new(min_qp, 51))
        .intra_frame_period(IntraFramePeriod::from_num_frames(
            settings.keyframe_interval,
        ));
    Encoder::with_api_config(OpenH264API::from_source(), config)
        .map_err(|e| CodecError::new("encoder init", e))
}

impl H264Encoder {
    pub fn new(settings: EncoderSettings) -> Result<Self, CodecError> {
        Ok(Self {
            encoder: open(&settings)?,
            settings,
            keyframe_requested: false,
            restarts: 0,
        })
    }

    /// How often a failed encode restarted the encoder.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// The finest quantiser the encoder may use now (raised by restarts).
    pub fn min_qp(&self) -> u8 {
        self.settings.min_qp
    }

    /// The next encoded frame will be a keyframe (IDR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Encodes one frame. Odd widths/heights lose their last column/row (4:2:0 needs even
    /// sizes). Returns an empty buffer when the encoder skips the frame.
    pub fn encode(&mut self, frame: &Frame) -> Result<Vec<u8>, CodecError> {
        let (w, h) = (frame.width() as usize & !1, frame.height() as usize & !1);
        if w == 0 || h == 0 {
            return Err(CodecError::new(
                "encode",
                format!("frame {w}x{h} is too small"),
            ));
        }
        let yuv = if w == frame.width() as usize && h == frame.height() as usize {
            YUVBuffer::from_rgb8_source(RgbSliceU8::new(frame.data(), (w, h)))
        } else {
            let stride = frame.width() as usize * 3;
            let mut cropped = Vec::with_capacity(w * h * 3);
            for row in frame.data().chunks(stride).take(h) {
                cropped.extend_from_slice(&row[..w * 3]);
            }
            YUVBuffer::from_rgb8_source(RgbSliceU8::new(&cropped, (w, h)))
        };
        if std::mem::take(&mut self.keyframe_requested) {
            self.encoder.force_intra_frame();
        }
        let first = match self.encoder.encode(&yuv).map(|b| b.to_vec()) {
            Ok(data) => return Ok(data),
            Err(e) => e,
        };
        // The failed encoder is stuck: open a coarser one and code this frame as a keyframe.
        let coarser = self.settings.min_qp.saturating_add(RESTART_QP_STEP).min(51);
        let settings = EncoderSettings {
            min_qp: coarser,
            ..self.settings
        };
        self.encoder = open(&settings)?;
        self.settings = settings;
        self.restarts += 1;
        self.encoder.force_intra_frame();
        self.encoder
            .encode(&yuv)
            .map(|b| b.to_vec())
            .map_err(|again| {
                CodecError::new(
                    "encode",
                    format!("{first}; again after a restart at min QP {coarser}: {again}"),
                )
            })
    }
}

/// Whether an Annex-B access unit holds an IDR slice (a decoder can start from it).
pub fn is_keyframe(annexb: &[u8]) -> bool {
    openh264::nal_units(annexb).any(|nal| nal_type(nal) == 5)
}

/// The type of a NAL unit with or without its start code.
fn nal_type(nal: &[u8]) -> u8 {
    let start = if nal.starts_with(&[0, 0, 0, 1]) {
        4
    } else if nal.starts_with(&[0, 0, 1]) {
        3
    } else {
        0
    };
    nal.get(start).map_or(0, |b| b & 0x1f)
}

/// Annex-B in, RGB frames out.
pub struct H264Decoder {
    decoder: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, CodecError> {
        let decoder = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| CodecError::new("decoder init", e))?;
        Ok(Self { decoder })
    }

    /// Decodes Annex-B data (one access unit or a whole stream); returns the frames it
    /// completes. Data before the first keyframe yields nothing.
    pub fn decode(&mut self, annexb: &[u8]) -> Result<Vec<Frame>, CodecError> {
        let mut frames = Vec::new();
        for nal in openh264::nal_units(annexb) {
            if let Some(yuv) = self
                .decoder
                .decode(nal)
                .map_err(|e| CodecError::new("decode", e))?
            {
                frames.push(to_frame(&yuv)?);
            }
        }
        Ok(frames)
    }

    /// Frames still buffered inside the decoder (end of a stream).
    pub fn flush(&mut self) -> Result<Vec<Frame>, CodecError> {
        let remaining = self
            .decoder
            .flush_remaining()
            .map_err(|e| CodecError::new("flush", e))?;
        remaining.iter().map(to_frame).collect()
    }
}

fn to_frame(yuv: &openh264::decoder::DecodedYUV<'_>) -> Result<Frame, CodecError> {
    let (w, h) = yuv.dimensions();
    let mut rgb = vec![0u8; w * h * 3];
    yuv.write_rgb8(&mut rgb);
    Frame::new(w as u32, h as u32, rgb).map_err(|e| CodecError::new("decode", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame with a gradient and a bright square at `offset`, so motion and colour can be
    /// checked after a round trip.
    pub(crate) fn test_frame(w: u32, h: u32, offset: u32) -> Frame {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let in_square = (x + w - offset % w) % w < w / 4 && y > h / 3 && y < h / 3 + h / 4;
                if in_square {
                    data.extend_from_slice(&[240, 240, 40]);
                } else {
                    data.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 120]);
                }
            }
        }
        Frame::new(w, h, data).unwrap()
    }

    #[test]
    fn round_trip_keeps_the_picture() {
        let mut enc = H264Encoder::new(EncoderSettings::default()).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut decoded = Vec::new();
        let originals: Vec<Frame> = (0..10).map(|i| test_frame(128, 96, i * 8)).collect();
        for f in &originals {
            let au = enc.encode(f).unwrap();
            assert!(au.starts_with(&[0, 0, 0, 1]), "not Annex-B");
            decoded.extend(dec.decode(&au).unwrap());
        }
        decoded.extend(dec.flush().unwrap());
        assert_eq!(decoded.len(), originals.len());
        for (o, d) in originals.iter().zip(&decoded) {
            assert_eq!((d.width(), d.height()), (128, 96));
            let err = o.mean_abs_diff(d);
            assert!(err < 6.0, "mean abs error {err}");
        }
        // The moving square is where it should be in the last frame.
        let last = decoded.last().unwrap();
        let p = last.pixel(82, 40); // square starts at x = 72 in the last frame
        assert!(p[0] > 180 && p[2] < 110, "square missing: {p:?}");
    }

    #[test]
    fn a_requested_keyframe_is_an_idr() {
        let mut enc = H264Encoder::new(EncoderSettings::default()).unwrap();
        let first = enc.encode(&test_frame(64, 64, 0)).unwrap();
        let second = enc.encode(&test_frame(64, 64, 4)).unwrap();
        enc.request_keyframe();
        let third = enc.encode(&test_frame(64, 64, 8)).unwrap();
        assert!(is_keyframe(&first));
        assert!(!is_keyframe(&second));
        assert!(is_keyframe(&third));
    }

    #[test]
    fn odd_sizes_are_cropped_and_garbage_is_an_error_or_nothing() {
        let mut enc = H264Encoder::new(EncoderSettings::default()).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let au = enc.encode(&test_frame(65, 33, 0)).unwrap();
        let frames = dec.decode(&au).unwrap();
        let frames = if frames.is_empty() {
            dec.flush().unwrap()
        } else {
            frames
        };
        assert_eq!((frames[0].width(), frames[0].height()), (64, 32));
        let mut fresh = H264Decoder::new().unwrap();
        let garbage = [0u8, 0, 0, 1, 0x65, 0xff, 0x13, 0x37, 0x00, 0x42];
        assert!(fresh.decode(&garbage).map(|f| f.is_empty()).unwrap_or(true));
    }

    /// Fine RGB noise, the hardest picture to code (a diffusion model's output at high noise).
    pub(crate) fn noise_frame(w: u32, h: u32, seed: u64) -> Frame {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let data = (0..w * h * 3)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect();
        Frame::new(w, h, data).unwrap()
    }

    /// Flat frames, then noise, with keyframes requested now and then; returns the encoder
    /// and how many frames a decoder got back from its output.
    fn flat_then_noise(settings: EncoderSettings, w: u32, h: u32) -> (H264Encoder, usize, usize) {
        let mut enc = H264Encoder::new(settings).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let (mut coded, mut decoded) = (0, 0);
        for i in 0..40u64 {
            let frame = if i < 10 {
                Frame::filled(w, h, [90, 90, 90])
            } else {
                noise_frame(w, h, i)
            };
            if i % 7 == 0 {
                enc.request_keyframe();
            }
            let au = enc
                .encode(&frame)
                .unwrap_or_else(|e| panic!("{w}x{h} frame {i}: {e}"));
            if !au.is_empty() {
                coded += 1;
                for f in dec.decode(&au).unwrap() {
                    assert_eq!((f.width(), f.height()), (w, h));
                    decoded += 1;
                }
            }
        }
        decoded += dec.flush().unwrap().len();
        (enc, coded, decoded)
    }

    #[test]
    fn noise_after_flat_frames_encodes_at_every_size() {
        let file = EncoderSettings {
            bitrate_bps: 20_000_000,
            ..EncoderSettings::default()
        };
        let skipping = EncoderSettings {
            skip_frames: true,
            ..EncoderSettings::default()
        };
        for (w, h) in [(64, 64), (128, 128), (256, 256), (512, 512), (832, 480)] {
            for settings in [EncoderSettings::default(), file, skipping] {
                let (enc, coded, decoded) = flat_then_noise(settings, w, h);
                assert_eq!(enc.restarts(), 0, "{w}x{h}: the encoder had to restart");
                assert_eq!(decoded, coded, "{w}x{h}: frames lost in decoding");
                if !settings.skip_frames {
                    assert_eq!(coded, 40, "{w}x{h}: frames were skipped");
                }
            }
        }
    }

    #[test]
    fn a_failed_encode_restarts_coarser_and_the_stream_goes_on() {
        // At min QP 0 noise overflows OpenH264's buffer at 128×128 (see `min_qp`).
        let settings = EncoderSettings {
            min_qp: 0,
            ..EncoderSettings::default()
        };
        let (enc, coded, decoded) = flat_then_noise(settings, 128, 128);
        assert!(
            enc.restarts() >= 1,
            "min QP 0 no longer overflows: retune the test"
        );
        assert!(enc.min_qp() >= RESTART_QP_STEP);
        assert_eq!((coded, decoded), (40, 40));
    }
}
