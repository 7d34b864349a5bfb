//! The bundled clip of the `vod` pipeline: 3 s of 512×512 H.264 made by
//! `tools/make-clips.sh`, embedded in the binary and decoded in-process at load time.

use super::h264::{CodecError, H264Decoder};
use engine::frame::Frame;

/// The clip, raw Annex-B H.264.
pub const VOD_CLIP: &[u8] = include_bytes!("../../assets/vod.h264");

/// Decodes the whole clip.
pub fn decode_vod_clip() -> Result<Vec<Frame>, CodecError> {
    decode_all(VOD_CLIP)
}

/// Decodes an Annex-B stream completely.
pub fn decode_all(annexb: &[u8]) -> Result<Vec<Frame>, CodecError> {
    let mut decoder = H264Decoder::new()?;
    let mut frames = decoder.decode(annexb)?;
    frames.extend(decoder.flush()?);
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_clip_decodes_to_90_frames_of_512() {
        let frames = decode_vod_clip().unwrap();
        assert_eq!(frames.len(), 90);
        assert!(frames.iter().all(|f| (f.width(), f.height()) == (512, 512)));
        // It moves: consecutive frames differ.
        assert_ne!(frames[0].data(), frames[1].data());
    }
}
