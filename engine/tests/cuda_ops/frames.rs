//! A stream's frames read back from the GPU: the levels computed and narrowed to bytes on the
//! device (`tensor_to_frames`) against the same levels computed on the host from the values.

use burn::tensor::{DType, Distribution, Tensor};
use engine::{cuda::gemm::Cuda, pipeline::wan::stream::tensor_to_frames};

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn frames_are_narrowed_to_bytes_on_the_device_as_on_the_host() {
    let device = Default::default();
    // Odd sizes; values past [-1, 1] so that both clamps are hit; f32 and bf16 videos.
    let (t, h, w) = (3, 17, 29);
    for dtype in [DType::F32, DType::BF16] {
        let video =
            Tensor::<Cuda, 5>::random([1, 3, t, h, w], Distribution::Uniform(-1.3, 1.3), &device)
                .cast(dtype);
        let values: Vec<f32> = video.clone().cast(DType::F32).into_data().to_vec().unwrap();
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
                        "{dtype:?} frame {f} pixel {p} channel {c}"
                    );
                }
            }
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and NVRTC"]
fn frames_are_widened_on_the_device_as_on_the_host() {
    use engine::{frame::Frame, pipeline::wan::stream::frames_to_tensor};
    let device = Default::default();
    let (t, h, w) = (2, 5, 7);
    let frames: Vec<Frame> = (0..t)
        .map(|f| {
            let rgb = (0..h * w * 3)
                .map(|i| ((i * 37 + f * 101) % 256) as u8)
                .collect();
            Frame::new(w as u32, h as u32, rgb).unwrap()
        })
        .collect();
    let video = frames_to_tensor::<Cuda>(&frames, h, w, &device);
    assert_eq!(video.dims(), [1, 3, t, h, w]);
    let values: Vec<f32> = video.cast(DType::F32).into_data().to_vec().unwrap();
    for (f, frame) in frames.iter().enumerate() {
        for p in 0..h * w {
            for c in 0..3 {
                let expected = f32::from(frame.data()[3 * p + c]) / 127.5 - 1.0;
                let got = values[(c * t + f) * h * w + p];
                assert!(
                    (got - expected).abs() <= 1e-6,
                    "frame {f} pixel {p} channel {c}: {got} vs {expected}"
                );
            }
        }
    }
}
