//! The Wan VAE's convolutions: the causal 3-D convolution (its time taps folded into one 2-D
//! convolution, its per-stream cache slot) and the plain 2-D one, each with its bias.

use super::CACHE_T;
use crate::profile::stage;
use crate::wan::nn::conv2d;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// One causal convolution's streaming memory.
#[derive(Clone, Debug)]
pub(super) enum Slot<B: Backend> {
    /// Nothing seen yet.
    Empty,
    /// `upsample3d` after its first chunk: the next chunk runs `time_conv` from zeros.
    Rep,
    /// The last (up to [`CACHE_T`]) input frames, `[B, n, C, H, W]`.
    Frames(Tensor<B, 5>),
}

/// The feature caches of one stream.
#[derive(Clone, Debug)]
pub(super) struct Slots<B: Backend>(pub(super) Vec<Slot<B>>);

impl<B: Backend> Slots<B> {
    pub(super) fn new(n: usize) -> Self {
        Self(vec![Slot::Empty; n])
    }
}

/// A 3-D convolution that is causal in time: `front` zero frames (or cached frames) go
/// before the input, none after; symmetric spatial padding.
#[derive(Clone, Debug)]
pub(super) struct CausalConv3d<B: Backend> {
    /// The kernel with its time taps folded into the input channels, `[out, kt·in, kh, kw]`
    /// (channel `k·in + c` is tap `k`, input channel `c`): the live taps are its last channels.
    pub(super) weight: Tensor<B, 4>,
    /// Time taps (`kt`).
    pub(super) taps: usize,
    pub(super) bias: Tensor<B, 1>,
    /// Spatial padding (h, w).
    pub(super) pad: [usize; 2],
    /// Zero frames before the input (2·p_t).
    pub(super) front: usize,
    pub(super) stride_t: usize,
    /// Cache slot (k_t > 1 only).
    pub(super) slot: Option<usize>,
}

#[derive(Clone, Debug)]
pub(super) struct Conv2d<B: Backend> {
    pub(super) weight: Tensor<B, 4>,
    pub(super) bias: Tensor<B, 1>,
}

impl<B: Backend> Conv2d<B> {
    /// # Shapes
    /// - x: `[N, C, H, W]` → `[N, O, H', W']`
    pub(super) fn forward(&self, x: Tensor<B, 4>, stride: usize, pad: usize) -> Tensor<B, 4> {
        let ([n, c, h, w], [o, _, k, _]) = (x.dims(), self.weight.dims());
        conv_bias(
            x,
            &self.weight,
            &self.bias,
            [stride, stride],
            [pad, pad],
            || format!("conv2d {k}×{k}/{stride} {c}→{o} at {h}×{w}, {n} frames"),
        )
    }
}

/// `conv2d(x, w) + bias`, a profile stage labelled `label()`. With the CUDA ops the bias joins
/// cuDNN's convolution (added to its channels-last result, along the contiguous axis);
/// elsewhere the convolution runs bias-free and [`add_bias`] follows (burn's GPU kernels are
/// tuned per convolution shape *and* bias flag: a causal convolution's chunks then share
/// tuned kernels, and the add fuses with what follows).
///
/// # Shapes
/// - x: `[N, C, H, W]`, w: `[O, C, kh, kw]`, bias: `[O]` → `[N, O, H', W']`
fn conv_bias<B: Backend>(
    x: Tensor<B, 4>,
    w: &Tensor<B, 4>,
    bias: &Tensor<B, 1>,
    stride: [usize; 2],
    pad: [usize; 2],
    label: impl Fn() -> String,
) -> Tensor<B, 4> {
    let device = x.device();
    #[cfg(feature = "cuda")]
    let x = if crate::cuda::is_cuda::<B>() && crate::cuda::enabled() {
        let fused = stage::<B, _>(
            &device,
            || format!("{} + bias", label()),
            || crate::cuda::conv2d(x, w, Some(bias), stride, pad),
        );
        match fused {
            Ok(y) => return y,
            Err(x) => x,
        }
    } else {
        x
    };
    let y = stage::<B, _>(&device, &label, || conv2d(x, w, None, stride, pad));
    stage::<B, _>(&device, || "bias add".into(), || add_bias(y, bias))
}

/// `y + bias` over the channel axis.
///
/// # Shapes
/// - y: `[N, O, H, W]`, bias: `[O]` → `[N, O, H, W]`
fn add_bias<B: Backend>(y: Tensor<B, 4>, bias: &Tensor<B, 1>) -> Tensor<B, 4> {
    let o = bias.dims()[0];
    y + bias.clone().reshape([1, o, 1, 1])
}

/// Which frames a causal convolution's call reads: `zeros` frames of padding, then the
/// history's, then the input's; output frame `t`'s tap `k` (`k < live`, the live taps
/// `first..` of the kernel's) is frame `t·stride_t + first + k`. The CUDA kernel that builds
/// the folded input takes the same ([`crate::cuda::vae::causal_taps_nhwc`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Taps {
    pub zeros: usize,
    pub first: usize,
    pub live: usize,
    pub stride_t: usize,
    pub t_out: usize,
}

impl<B: Backend> CausalConv3d<B> {
    /// Runs the convolution on `x`, preceded by `history` frames (the stream so far) or zeros.
    ///
    /// # Shapes
    /// - x: `[B, T, C, H, W]`, history: `[B, n ≤ front, C, H, W]` → `[B, T', O, H, W]`
    pub(super) fn run(&self, x: Tensor<B, 5>, history: Option<Tensor<B, 5>>) -> Tensor<B, 5> {
        let [b, t, c, h, w] = x.dims();
        let have = history.as_ref().map_or(0, |t| t.dims()[1]);
        let zeros = self.front.saturating_sub(have);
        let t_in = zeros + have + t;
        let kt = self.taps;
        let t_out = (t_in - kt) / self.stride_t + 1;
        // Taps before `first` only ever read the zero padding (a stream's first chunk: 2 of
        // the 3 taps) and add nothing.
        let first = (0..kt)
            .find(|&k| (t_out - 1) * self.stride_t + k >= zeros)
            .expect("the last tap reads the input");
        let live = kt - first;
        let weight = if live == kt {
            self.weight.clone()
        } else {
            self.weight.clone().narrow(1, first * c, live * c)
        };
        let [o, _, kh, kw] = weight.dims();
        let taps = Taps {
            zeros,
            first,
            live,
            stride_t: self.stride_t,
            t_out,
        };
        let input = self.folded_input(x, history, taps, o);
        let y = conv_bias(input, &weight, &self.bias, [1, 1], self.pad, || {
            format!("conv3d {live}×{kh}×{kw} {c}→{o} at {h}×{w}, {t_out} frames")
        });
        let [_, o, ho, wo] = y.dims();
        y.reshape([b, t_out, o, ho, wo])
    }

    /// The live taps' frame ranges side by side on the channel axis, against which the
    /// kernel's taps folded into its input channels make one 2-D convolution with live·C
    /// inputs. With the CUDA ops one kernel builds it channels-last for the convolution to
    /// `out_channels`; elsewhere (or where that does not apply) the frames are concatenated.
    ///
    /// # Shapes
    /// - x: `[B, T, C, H, W]`, history: `[B, n, C, H, W]` → `[B·t_out, live·C, H, W]`
    fn folded_input(
        &self,
        x: Tensor<B, 5>,
        history: Option<Tensor<B, 5>>,
        f: Taps,
        out_channels: usize,
    ) -> Tensor<B, 4> {
        let [b, _, c, h, w] = x.dims();
        let device = x.device();
        #[cfg(feature = "cuda")]
        let (history, x) = if crate::cuda::causal_taps_apply::<B>(c, f, out_channels) {
            let built = stage::<B, _>(
                &device,
                || "causal conv: taps (one kernel, NHWC)".into(),
                || crate::cuda::causal_taps(history, x, f, out_channels),
            );
            match built {
                Ok(input) => return input,
                Err(given_back) => given_back,
            }
        } else {
            (history, x)
        };
        #[cfg(not(feature = "cuda"))]
        let _ = out_channels;
        let mut parts = Vec::with_capacity(3);
        if f.zeros > 0 {
            parts.push(Tensor::zeros([b, f.zeros, c, h, w], (&device, x.dtype())));
        }
        parts.extend(history);
        parts.push(x);
        let xp = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            stage::<B, _>(
                &device,
                || "causal conv: history cat".into(),
                || Tensor::cat(parts, 1),
            )
        };
        let frames: Vec<Tensor<B, 5>> = (f.first..self.taps)
            .map(|k| {
                if f.stride_t == 1 {
                    xp.clone().narrow(1, k, f.t_out)
                } else {
                    let idx: Vec<i64> = (0..f.t_out).map(|t| (t * f.stride_t + k) as i64).collect();
                    let idx =
                        Tensor::<B, 1, Int>::from_data(TensorData::from(idx.as_slice()), &device);
                    xp.clone().select(1, idx)
                }
            })
            .collect();
        let frames = if f.live == 1 {
            frames.into_iter().next().expect("one tap")
        } else {
            stage::<B, _>(
                &device,
                || "causal conv: taps cat".into(),
                || Tensor::cat(frames, 2),
            )
        };
        frames.reshape([b * f.t_out, f.live * c, h, w])
    }

    /// The convolution with its cache slot: the slot's frames go first, then it keeps the
    /// last [`CACHE_T`] frames of (slot ++ x).
    ///
    /// # Shapes
    /// - x: `[B, T, C, H, W]` (frame-major) → `[B, T', O, H, W]` (`T' = T` at stride 1)
    pub(super) fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
        let Some(i) = self.slot else {
            return self.run(x, None);
        };
        let history = match std::mem::replace(&mut slots.0[i], Slot::Empty) {
            Slot::Frames(f) => Some(f),
            Slot::Empty | Slot::Rep => None,
        };
        let t = x.dims()[1];
        let keep = if t >= CACHE_T {
            x.clone().narrow(1, t - CACHE_T, CACHE_T)
        } else {
            match &history {
                Some(hist) => {
                    let n = hist.dims()[1];
                    let need = (CACHE_T - t).min(n);
                    Tensor::cat(vec![hist.clone().narrow(1, n - need, need), x.clone()], 1)
                }
                None => x.clone(),
            }
        };
        slots.0[i] = Slot::Frames(keep);
        self.run(x, history)
    }
}
