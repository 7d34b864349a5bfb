//! A [`WanStream`] as the media loop's [`Pipeline`]: RGB24 frames in (resized to the loaded
//! size, `x/127.5 − 1`), RGB24 frames out (`(x + 1)·127.5`, rounded, clamped).

use super::{Geometry, WanStream};
use crate::{
    frame::Frame,
    pipeline::{Pipeline, PipelineError, Requirements, params::Params},
};
use burn::tensor::{DType, FloatDType, Int, IntDType, Tensor, TensorData, backend::Backend};

/// Frames → `[1, 3, T, H, W]` in [-1, 1]. The bytes go to the device as they are (RGB rows,
/// resized first where a frame's size differs) and are widened, scaled and laid out there.
pub fn frames_to_tensor<B: Backend>(
    frames: &[Frame],
    height: usize,
    width: usize,
    device: &B::Device,
) -> Tensor<B, 5> {
    let t = frames.len();
    let mut bytes = Vec::with_capacity(t * height * width * 3);
    for frame in frames {
        if frame.width() as usize == width && frame.height() as usize == height {
            bytes.extend_from_slice(frame.data());
        } else {
            bytes.extend_from_slice(frame.resized(width as u32, height as u32).data());
        }
    }
    // Flat while widened (the kernel's loads are vectorised along the last axis: 3 would
    // leave them one byte wide).
    let n = bytes.len();
    let rgb: Tensor<B, 1, Int> =
        Tensor::from_data(TensorData::new(bytes, [n]), (device, DType::U8));
    (rgb.cast(FloatDType::F32) / 127.5 - 1.0)
        .reshape([t, height, width, 3])
        .permute([3, 0, 1, 2])
        .unsqueeze_dim(0)
}

/// `[1, 3, T, H, W]` in [-1, 1] → frames. The levels (`(x + 1)·127.5`, rounded half up,
/// clamped), their interleaving into RGB rows and the narrowing to bytes are computed on the
/// device, so a quarter of the f32 bytes come back and the host only splits them into frames
/// (12 frames at 480×832 are 14.4 MB: narrowing them on the host took ~34 ms on a 2-core
/// build machine).
pub fn tensor_to_frames<B: Backend>(video: Tensor<B, 5>) -> Result<Vec<Frame>, PipelineError> {
    let [_, _, t, h, w] = video.dims();
    if t == 0 {
        return Ok(Vec::new());
    }
    let levels = ((video.cast(DType::F32) + 1.0) * 127.5 + 0.5)
        .floor()
        .clamp(0.0, 255.0)
        .squeeze_dim::<4>(0)
        .permute([1, 2, 3, 0])
        .cast(IntDType::U8);
    let bytes: Vec<u8> = levels
        .into_data()
        .to_vec()
        .map_err(|e| PipelineError::Fatal(format!("{e:?}")))?;
    bytes
        .chunks_exact(h * w * 3)
        .map(|f| {
            Frame::new(w as u32, h as u32, f.to_vec())
                .map_err(|e| PipelineError::Fatal(e.to_string()))
        })
        .collect()
}

/// One stream as a [`Pipeline`].
pub struct StreamPipeline<B: Backend> {
    stream: Box<dyn WanStream<B>>,
    geometry: Geometry,
    device: B::Device,
}

impl<B: Backend> StreamPipeline<B> {
    pub fn new(stream: Box<dyn WanStream<B>>, geometry: Geometry, device: B::Device) -> Self {
        Self {
            stream,
            geometry,
            device,
        }
    }
}

impl<B: Backend> Pipeline for StreamPipeline<B> {
    fn prepare(&mut self, params: &Params, reset: bool) -> Result<Requirements, PipelineError> {
        self.stream.apply(params, reset)?;
        Ok(Requirements {
            input_frames: self.stream.input_frames(),
        })
    }

    fn process(&mut self, input: Vec<Frame>, params: &Params) -> Result<Vec<Frame>, PipelineError> {
        let mut frames = Vec::new();
        self.process_into(input, params, &mut |f| frames.push(f))?;
        Ok(frames)
    }

    /// Each piece of the chunk's video is read back and emitted as soon as it is decoded
    /// ([`WanStream::next_chunk_pieces`]).
    fn process_into(
        &mut self,
        input: Vec<Frame>,
        _params: &Params,
        emit: &mut dyn FnMut(Frame),
    ) -> Result<usize, PipelineError> {
        let g = &self.geometry;
        let input = (!input.is_empty())
            .then(|| frames_to_tensor::<B>(&input, g.height, g.width, &self.device));
        let (mut count, mut failed) = (0, None);
        self.stream.next_chunk_pieces(input, &mut |video| {
            if failed.is_some() {
                return;
            }
            match tensor_to_frames(video) {
                Ok(frames) => {
                    count += frames.len();
                    frames.into_iter().for_each(&mut *emit);
                }
                Err(e) => failed = Some(e),
            }
        })?;
        failed.map_or(Ok(count), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    #[test]
    fn frames_and_tensors_convert_both_ways() {
        // Two 2×3 frames: levels −1, 1, 0 and out-of-range values in frame 0's red plane, a
        // ramp elsewhere; [1, 3, T, H, W] → RGB rows, pixel (y, x) at 3·(y·W + x).
        let (t, h, w) = (2, 2, 3);
        let mut values: Vec<f32> = (0..3 * t * h * w)
            .map(|i| (i as f32 * 0.173).sin())
            .collect();
        values[..6].copy_from_slice(&[-1.0, 1.0, 0.0, -1.5, 1.5, 0.25]);
        let video = Tensor::<B, 5>::from_data(
            TensorData::new(values.clone(), [1, 3, t, h, w]),
            &Default::default(),
        );
        let frames = tensor_to_frames(video).unwrap();
        assert_eq!(frames.len(), t);
        let level = |x: f32| ((x + 1.0) * 127.5 + 0.5).floor().clamp(0.0, 255.0) as u8;
        for (f, frame) in frames.iter().enumerate() {
            assert_eq!((frame.width(), frame.height()), (w as u32, h as u32));
            for p in 0..h * w {
                for c in 0..3 {
                    let x = values[(c * t + f) * h * w + p];
                    assert_eq!(
                        frame.data()[3 * p + c],
                        level(x),
                        "frame {f} pixel {p} channel {c}"
                    );
                }
            }
        }
        let red: Vec<u8> = (0..6).map(|p| frames[0].data()[3 * p]).collect();
        assert_eq!(red, [0, 255, 128, 0, 255, 159]);
        // Back to a tensor and out again: the same bytes.
        let again = tensor_to_frames(frames_to_tensor::<B>(&frames, h, w, &Default::default()));
        assert!(again.unwrap() == frames);
    }
}
