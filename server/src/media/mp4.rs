//! `.mp4` files for `hanzo-live engine generate` (`--input clip.mp4`, `--out out.mp4`): one
//! H.264 video track, muxed and demuxed with the `mp4` crate, coded with OpenH264
//! ([`super::h264`]). The MP4 stores NAL units length-prefixed (AVCC) with SPS/PPS in the
//! `avcC` box; the codec speaks Annex-B; the conversion is here.

use super::h264::{EncoderSettings, H264Decoder, H264Encoder};
use engine::{cli::VideoCodec, frame::Frame};
use mp4::{
    AvcConfig, MediaConfig, Mp4Config, Mp4Reader, Mp4Sample, Mp4Writer, TrackConfig, TrackType,
};
use std::{io::BufReader, path::Path};

/// Time units per second of the video track.
const TIMESCALE: u32 = 90_000;

/// The NAL units of an Annex-B stream (start codes removed).
fn nal_units(annexb: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= annexb.len() {
        let code3 = annexb[i..i + 3] == [0, 0, 1];
        if code3 {
            if let Some(s) = start {
                // A 4-byte start code leaves one zero at the end of the previous unit.
                let mut end = i;
                while end > s && annexb[end - 1] == 0 {
                    end -= 1;
                }
                out.push(&annexb[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start
        && s < annexb.len()
    {
        out.push(&annexb[s..]);
    }
    out
}

/// MP4 through OpenH264.
pub struct Mp4Codec;

impl Mp4Codec {
    fn write_frames(path: &Path, frames: &[Frame], fps: f64) -> Result<(), String> {
        let first = frames.first().ok_or("no frames to write")?;
        let (w, h) = (first.width() & !1, first.height() & !1);
        let bitrate = ((w * h) as f64 * fps * 0.2).clamp(500_000.0, 20_000_000.0) as u32;
        let mut enc = H264Encoder::new(EncoderSettings {
            bitrate_bps: bitrate,
            max_fps: fps as f32,
            keyframe_interval: (fps * 2.0).round().max(1.0) as u32,
            ..EncoderSettings::default()
        })
        .map_err(|e| e.to_string())?;
        let (mut sps, mut pps) = (None, None);
        let mut samples: Vec<(Vec<u8>, bool)> = Vec::with_capacity(frames.len());
        for f in frames {
            let au = enc.encode(f).map_err(|e| e.to_string())?;
            let mut avcc = Vec::with_capacity(au.len() + 16);
            let mut key = false;
            for nal in nal_units(&au) {
                match nal.first().map(|b| b & 0x1f) {
                    Some(7) => sps = Some(nal.to_vec()),
                    Some(8) => pps = Some(nal.to_vec()),
                    Some(9) | None => {}
                    Some(t) => {
                        key |= t == 5;
                        avcc.extend((nal.len() as u32).to_be_bytes());
                        avcc.extend_from_slice(nal);
                    }
                }
            }
            samples.push((avcc, key));
        }
        let (sps, pps) = sps.zip(pps).ok_or("the encoder gave no SPS/PPS")?;
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let brand = |s: &str| s.parse().unwrap_or_else(|_| unreachable!("a valid FourCC"));
        let config = Mp4Config {
            major_brand: brand("isom"),
            minor_version: 512,
            compatible_brands: vec![brand("isom"), brand("iso2"), brand("avc1"), brand("mp41")],
            timescale: 1000,
        };
        let err = |e: mp4::Error| format!("{}: {e}", path.display());
        let mut mp4 =
            Mp4Writer::write_start(std::io::BufWriter::new(file), &config).map_err(err)?;
        mp4.add_track(&TrackConfig {
            track_type: TrackType::Video,
            timescale: TIMESCALE,
            language: "und".into(),
            media_conf: MediaConfig::AvcConfig(AvcConfig {
                width: w as u16,
                height: h as u16,
                seq_param_set: sps,
                pic_param_set: pps,
            }),
        })
        .map_err(err)?;
        let duration = (f64::from(TIMESCALE) / fps).round() as u32;
        for (i, (bytes, key)) in samples.into_iter().enumerate() {
            mp4.write_sample(
                1,
                &Mp4Sample {
                    start_time: i as u64 * u64::from(duration),
                    duration,
                    rendering_offset: 0,
                    is_sync: key,
                    bytes: bytes.into(),
                },
            )
            .map_err(err)?;
        }
        mp4.write_end().map_err(err)?;
        Ok(())
    }

    fn read_frames(path: &Path) -> Result<(Vec<Frame>, f64), String> {
        let err = |e: mp4::Error| format!("{}: {e}", path.display());
        let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file.metadata().map_err(|e| e.to_string())?.len();
        let mut mp4 = Mp4Reader::read_header(BufReader::new(file), size).map_err(err)?;
        let (id, sps, pps, count, fps) = mp4
            .tracks()
            .values()
            .find(|t| matches!(t.track_type(), Ok(TrackType::Video)))
            .map(|t| {
                Ok::<_, mp4::Error>((
                    t.track_id(),
                    t.sequence_parameter_set()?.to_vec(),
                    t.picture_parameter_set()?.to_vec(),
                    t.sample_count(),
                    t.frame_rate(),
                ))
            })
            .ok_or_else(|| format!("{}: no video track", path.display()))?
            .map_err(|e| format!("{}: not H.264 ({e})", path.display()))?;
        let mut dec = H264Decoder::new().map_err(|e| e.to_string())?;
        let annexb = |nal: &[u8], out: &mut Vec<u8>| {
            out.extend([0, 0, 0, 1]);
            out.extend_from_slice(nal);
        };
        let mut frames = Vec::new();
        let mut header = Vec::new();
        annexb(&sps, &mut header);
        annexb(&pps, &mut header);
        frames.extend(dec.decode(&header).map_err(|e| e.to_string())?);
        for i in 1..=count {
            let Some(sample) = mp4.read_sample(id, i).map_err(err)? else {
                continue;
            };
            let mut au = Vec::with_capacity(sample.bytes.len() + 16);
            let mut b = &sample.bytes[..];
            while b.len() >= 4 {
                let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                let nal = b
                    .get(4..4 + n)
                    .ok_or_else(|| format!("{}: sample {i} is cut short", path.display()))?;
                annexb(nal, &mut au);
                b = &b[4 + n..];
            }
            frames.extend(dec.decode(&au).map_err(|e| e.to_string())?);
        }
        frames.extend(dec.flush().map_err(|e| e.to_string())?);
        Ok((frames, if fps > 0.0 { fps } else { 30.0 }))
    }
}

impl VideoCodec for Mp4Codec {
    fn read(&self, path: &Path) -> Result<(Vec<Frame>, f64), String> {
        Self::read_frames(path)
    }

    fn write(&self, path: &Path, frames: &[Frame], fps: f64) -> Result<(), String> {
        Self::write_frames(path, frames, fps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mp4_written_reads_back_with_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Frame> = (0..10)
            .map(|i| Frame::filled(64, 48, [i as u8 * 20, 100, 255 - i as u8 * 20]))
            .collect();
        let path = dir.path().join("out.mp4");
        Mp4Codec.write(&path, &frames, 16.0).unwrap();
        let (back, fps) = Mp4Codec.read(&path).unwrap();
        assert_eq!(back.len(), 10);
        assert!((fps - 16.0).abs() < 0.1, "{fps}");
        assert_eq!((back[3].width(), back[3].height()), (64, 48));
        let d = back[3].mean_abs_diff(&frames[3]);
        assert!(d < 8.0, "mean difference {d}");
        assert_eq!(
            nal_units(&[0, 0, 0, 1, 9, 9, 0, 0, 1, 7]),
            vec![&[9u8, 9][..], &[7u8][..]]
        );
    }
}
