//! Video frames as the pipelines see them: tightly packed RGB24, row-major.

use thiserror::Error;

/// A frame whose buffer does not match its dimensions.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("frame buffer holds {len} bytes, {width}x{height} RGB24 needs {expected}")]
pub struct FrameSizeError {
    pub width: u32,
    pub height: u32,
    pub len: usize,
    pub expected: usize,
}

/// One RGB24 image.
///
/// # Shapes
/// `data` is `[height, width, 3]`, row-major, no padding.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}x{})", self.width, self.height)
    }
}

impl Frame {
    /// Wraps an RGB24 buffer; fails if its length is not `width·height·3`.
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<Self, FrameSizeError> {
        let expected = width as usize * height as usize * 3;
        if data.len() != expected {
            return Err(FrameSizeError {
                width,
                height,
                len: data.len(),
                expected,
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    /// A frame of one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        let data = rgb
            .iter()
            .copied()
            .cycle()
            .take(width as usize * height as usize * 3)
            .collect();
        Self {
            width,
            height,
            data,
        }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The RGB24 bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Gives the buffer back.
    pub fn into_data(self) -> Vec<u8> {
        self.data
    }

    /// The pixel at (`x`, `y`).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Mean absolute difference per byte from another frame of the same size (a quick
    /// measure of how far a lossy round trip moved the picture).
    pub fn mean_abs_diff(&self, other: &Frame) -> f64 {
        debug_assert_eq!((self.width, self.height), (other.width, other.height));
        let sum: u64 = self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| a.abs_diff(*b) as u64)
            .sum();
        sum as f64 / self.data.len().max(1) as f64
    }

    /// Bilinear resize with half-pixel centres and edge clamping (the behaviour of
    /// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` without
    /// antialiasing). Returns a clone when the size already matches.
    pub fn resized(&self, width: u32, height: u32) -> Frame {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let (sw, sh) = (self.width as usize, self.height as usize);
        let (dw, dh) = (width as usize, height as usize);
        let mut out = vec![0u8; dw * dh * 3];
        if sw == 0 || sh == 0 {
            return Frame {
                width,
                height,
                data: out,
            };
        }
        // Per output column: left source index, right source index, weight of the right one.
        let taps = |dst: usize, src: usize| -> Vec<(usize, usize, f32)> {
            let scale = src as f32 / dst as f32;
            (0..dst)
                .map(|d| {
                    let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                    let i0 = (s.floor() as usize).min(src - 1);
                    let i1 = (i0 + 1).min(src - 1);
                    (i0, i1, s - i0 as f32)
                })
                .collect()
        };
        let xs = taps(dw, sw);
        let ys = taps(dh, sh);
        for (y, &(y0, y1, wy)) in ys.iter().enumerate() {
            let row0 = &self.data[y0 * sw * 3..(y0 + 1) * sw * 3];
            let row1 = &self.data[y1 * sw * 3..(y1 + 1) * sw * 3];
            let out_row = &mut out[y * dw * 3..(y + 1) * dw * 3];
            for (x, &(x0, x1, wx)) in xs.iter().enumerate() {
                for c in 0..3 {
                    let a = row0[x0 * 3 + c] as f32;
                    let b = row0[x1 * 3 + c] as f32;
                    let p = row1[x0 * 3 + c] as f32;
                    let q = row1[x1 * 3 + c] as f32;
                    let top = a + (b - a) * wx;
                    let bottom = p + (q - p) * wx;
                    out_row[x * 3 + c] =
                        (top + (bottom - top) * wy).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        Frame {
            width,
            height,
            data: out,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_checks_the_buffer_length() {
        assert!(Frame::new(2, 2, vec![0; 12]).is_ok());
        let err = Frame::new(2, 2, vec![0; 11]).unwrap_err();
        assert_eq!(err.expected, 12);
    }

    #[test]
    fn resize_keeps_flat_colours_and_interpolates_edges() {
        let f = Frame::filled(7, 5, [10, 200, 30]);
        let r = f.resized(16, 32);
        assert_eq!((r.width(), r.height()), (16, 32));
        assert!(r.data().chunks(3).all(|p| p == [10, 200, 30]));

        // A 2x1 image [0, 255] doubled to 4x1: half-pixel centres give 0, 64, 191, 255
        // (torch: 0, 63.75, 191.25, 255).
        let g = Frame::new(2, 1, vec![0, 0, 0, 255, 255, 255]).unwrap();
        let r = g.resized(4, 1);
        let reds: Vec<u8> = r.data().chunks(3).map(|p| p[0]).collect();
        assert_eq!(reds, vec![0, 64, 191, 255]);
    }

    #[test]
    fn mean_abs_diff_averages_over_bytes() {
        let a = Frame::filled(2, 2, [10, 20, 30]);
        assert_eq!(a.mean_abs_diff(&a), 0.0);
        let b = Frame::filled(2, 2, [13, 20, 24]);
        assert_eq!(a.mean_abs_diff(&b), 3.0);
    }

    #[test]
    fn downscale_by_two_averages_pairs() {
        // 4x1 -> 2x1 samples at source x = 0.5 and 2.5.
        let g = Frame::new(
            4,
            1,
            vec![0, 0, 0, 100, 100, 100, 200, 200, 200, 250, 250, 250],
        )
        .unwrap();
        let r = g.resized(2, 1);
        assert_eq!(r.pixel(0, 0), [50, 50, 50]);
        assert_eq!(r.pixel(1, 0), [225, 225, 225]);
    }
}
