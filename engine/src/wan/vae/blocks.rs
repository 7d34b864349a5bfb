//! The Wan VAE's blocks: RMS norm + SiLU, the residual and attention blocks, the resampling
//! layers (2-D and causal 3-D, with their own cache rules) and the encoder / decoder stacks.

use super::CACHE_T;
use super::conv::{CausalConv3d, Conv2d, Slot, Slots};
use crate::profile::stage;
use crate::wan::nn::{AttentionKernel, attention};
use burn::tensor::{DType, Tensor, activation::silu, backend::Backend, ops::PadMode};

/// SiLU after [`rms_norm_channels`] (a stage of its own when profiling).
///
/// # Shapes
/// - x: `[B, T, C, H, W]`, gamma: `[C]`
fn norm_silu<B: Backend>(x: Tensor<B, 5>, gamma: &Tensor<B, 1>) -> Tensor<B, 5> {
    let device = x.device();
    #[cfg(feature = "cuda")]
    let x = if crate::cuda::is_cuda::<B>() && crate::cuda::vae_kernels_enabled() {
        let fused = stage::<B, _>(
            &device,
            || "RMS norm + SiLU (one kernel)".into(),
            || crate::cuda::vae_rms_norm_silu(x, gamma),
        );
        match fused {
            Ok(y) => return y,
            Err(x) => x,
        }
    } else {
        x
    };
    stage::<B, _>(
        &device,
        || "RMS norm + SiLU".into(),
        || silu(rms_norm_channels(x, gamma)),
    )
}

/// `F.normalize(x, dim=C) · √C · γ` over the channel axis (dim 2), in f32.
///
/// # Shapes
/// - x: `[B, T, C, H, W]`, gamma: `[C]`
fn rms_norm_channels<B: Backend>(x: Tensor<B, 5>, gamma: &Tensor<B, 1>) -> Tensor<B, 5> {
    let dtype = x.dtype();
    let c = x.dims()[2];
    let x = x.cast(DType::F32);
    let norm = (x.clone() * x.clone()).sum_dim(2).sqrt().clamp_min(1e-12);
    let g = gamma
        .clone()
        .reshape([1, 1, c, 1, 1])
        .mul_scalar((c as f64).sqrt());
    (x / norm * g).cast(dtype)
}

#[derive(Clone, Debug)]
pub(super) struct ResidualBlock<B: Backend> {
    pub(super) norm1: Tensor<B, 1>,
    pub(super) conv1: CausalConv3d<B>,
    pub(super) norm2: Tensor<B, 1>,
    pub(super) conv2: CausalConv3d<B>,
    pub(super) shortcut: Option<CausalConv3d<B>>,
}

impl<B: Backend> ResidualBlock<B> {
    /// `[RMS, SiLU, conv3, RMS, SiLU, (dropout), conv3] + shortcut(x)`.
    ///
    /// # Shapes
    /// - x: `[B, T, C, H, W]` → `[B, T, O, H, W]`
    fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
        let h = match &self.shortcut {
            Some(s) => s.forward(x.clone(), slots),
            None => x.clone(),
        };
        let device = x.device();
        let y = self.conv1.forward(norm_silu(x, &self.norm1), slots);
        let y = self.conv2.forward(norm_silu(y, &self.norm2), slots);
        #[cfg(feature = "cuda")]
        let (y, h) = if crate::cuda::is_cuda::<B>() {
            match stage::<B, _>(
                &device,
                || "residual add (one kernel)".into(),
                || crate::cuda::vae_residual_add(y, h),
            ) {
                Ok(out) => return out,
                Err(yh) => yh,
            }
        } else {
            (y, h)
        };
        stage::<B, _>(&device, || "residual add".into(), || y + h)
    }
}

#[derive(Clone, Debug)]
pub(super) struct AttentionBlock<B: Backend> {
    pub(super) norm: Tensor<B, 1>,
    pub(super) to_qkv: Conv2d<B>,
    pub(super) proj: Conv2d<B>,
}

impl<B: Backend> AttentionBlock<B> {
    /// Single-head spatial self-attention per frame, plus the input.
    ///
    /// # Shapes
    /// - x: `[B, T, C, H, W]`
    fn forward(&self, x: Tensor<B, 5>) -> Tensor<B, 5> {
        let [b, t, c, h, w] = x.dims();
        let n = b * t;
        let device = x.device();
        let y = stage::<B, _>(
            &device,
            || "RMS norm".into(),
            || rms_norm_channels(x.clone(), &self.norm).reshape([n, c, h, w]),
        );
        let qkv = self
            .to_qkv
            .forward(y, 1, 0)
            .reshape([n, 3 * c, h * w])
            .swap_dims(1, 2);
        let part = |i: usize| qkv.clone().narrow(2, i * c, c).unsqueeze_dim::<4>(1);
        // One head of 384 channels: burn-cuda's fused kernels target small head sizes (its
        // autotune picks a ~300 ms kernel here, after a compile of minutes), so this uses
        // the matmul form on every backend.
        let o = stage::<B, _>(
            &device,
            || format!("attention, one head of {c}, {} tokens, {n} frames", h * w),
            || attention(part(0), part(1), part(2), None, AttentionKernel::Naive),
        );
        let o = o.squeeze_dim::<3>(1).swap_dims(1, 2).reshape([n, c, h, w]);
        let o = self.proj.forward(o, 1, 0);
        o.reshape([b, t, c, h, w]) + x
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ResampleMode {
    Upsample2d,
    Upsample3d,
    Downsample2d,
    Downsample3d,
}

#[derive(Clone, Debug)]
pub(super) struct Resample<B: Backend> {
    pub(super) mode: ResampleMode,
    /// `resample.1`.
    pub(super) conv: Conv2d<B>,
    pub(super) time_conv: Option<CausalConv3d<B>>,
    pub(super) slot: Option<usize>,
}

/// Nearest-neighbour ×2 in H and W.
///
/// # Shapes
/// - x: `[N, C, H, W]` → `[N, C, 2H, 2W]`
fn upsample_nearest2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [n, c, h, w] = x.dims();
    x.reshape([n, c, h, 1, w, 1])
        .expand([n, c, h, 2, w, 2])
        .reshape([n, c, 2 * h, 2 * w])
}

impl<B: Backend> Resample<B> {
    /// # Shapes
    /// - x: `[B, T, C, H, W]` → upsampling `[B, T' ∈ {T, 2T}, C/2, 2H, 2W]` (3-D: the time
    ///   doubling after a stream's first chunk), downsampling `[B, T'', C, H/2, W/2]` (3-D:
    ///   time halved through the cached frame)
    fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
        let mut x = x;
        if let (ResampleMode::Upsample3d, Some(tc), Some(i)) =
            (self.mode, &self.time_conv, self.slot)
        {
            // First chunk: no time_conv ('Rep'); then a causal conv from zeros that doubles
            // the frames (channels [0, C) → frame 2t, [C, 2C) → frame 2t+1).
            let history = match std::mem::replace(&mut slots.0[i], Slot::Rep) {
                Slot::Empty => None,
                Slot::Rep => Some(None),
                Slot::Frames(f) => Some(Some(f)),
            };
            if let Some(history) = history {
                let t = x.dims()[1];
                let keep = match (&history, t) {
                    (_, t) if t >= CACHE_T => x.clone().narrow(1, t - CACHE_T, CACHE_T),
                    (Some(h), _) => {
                        let n = h.dims()[1];
                        let need = (CACHE_T - t).min(n);
                        Tensor::cat(vec![h.clone().narrow(1, n - need, need), x.clone()], 1)
                    }
                    (None, _) => x.clone(),
                };
                slots.0[i] = Slot::Frames(keep);
                let y = tc.run(x, history);
                let [b, t, c2, h, w] = y.dims();
                x = y
                    .reshape([b, t, 2, c2 / 2, h, w])
                    .reshape([b, 2 * t, c2 / 2, h, w]);
            }
        }
        let [b, t, c, h, w] = x.dims();
        let frames = x.reshape([b * t, c, h, w]);
        let y = match self.mode {
            ResampleMode::Upsample2d | ResampleMode::Upsample3d => {
                let device = frames.device();
                let up = stage::<B, _>(
                    &device,
                    || "upsample nearest ×2".into(),
                    || upsample_nearest2(frames),
                );
                self.conv.forward(up, 1, 1)
            }
            ResampleMode::Downsample2d | ResampleMode::Downsample3d => {
                self.conv
                    .forward(frames.pad((0, 1, 0, 1), PadMode::Constant(0.0)), 2, 0)
            }
        };
        let [_, o, ho, wo] = y.dims();
        let mut x = y.reshape([b, t, o, ho, wo]);
        if let (ResampleMode::Downsample3d, Some(tc), Some(i)) =
            (self.mode, &self.time_conv, self.slot)
        {
            // First chunk: keep the last frame, no time_conv; later chunks: a stride-2 conv
            // over [previous last frame, x].
            let t = x.dims()[1];
            let last = x.clone().narrow(1, t - 1, 1);
            match std::mem::replace(&mut slots.0[i], Slot::Frames(last)) {
                Slot::Frames(prev) => {
                    let n = prev.dims()[1];
                    x = tc.run(x, Some(prev.narrow(1, n - 1, 1)));
                }
                Slot::Empty | Slot::Rep => {}
            }
        }
        x
    }
}

#[derive(Clone, Debug)]
pub(super) enum Layer<B: Backend> {
    Residual(ResidualBlock<B>),
    Attention(AttentionBlock<B>),
    Resample(Resample<B>),
}

impl<B: Backend> Layer<B> {
    /// # Shapes
    /// - x: `[B, T, C, H, W]` → `[B, T', C', H', W']` (the layer's own)
    fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
        match self {
            Layer::Residual(r) => r.forward(x, slots),
            Layer::Attention(a) => a.forward(x),
            Layer::Resample(r) => r.forward(x, slots),
        }
    }
}

/// `Encoder3d` or `Decoder3d`: conv1, layers in forward order (encoder: downsamples then
/// middle; decoder: middle then upsamples), head.
#[derive(Clone, Debug)]
pub(super) struct Coder<B: Backend> {
    pub(super) conv1: CausalConv3d<B>,
    pub(super) layers: Vec<Layer<B>>,
    pub(super) head_norm: Tensor<B, 1>,
    pub(super) head_conv: CausalConv3d<B>,
    /// Cache slots used.
    pub(super) slots: usize,
}

impl<B: Backend> Coder<B> {
    /// # Shapes
    /// - x: `[B, T, C, H, W]` frame-major → `[B, T', C', H', W']`: the encoder takes a chunk
    ///   of pixel frames (C = 3) to one frame of moments (2·z_dim channels, ⅛ the height and
    ///   width); the decoder one latent frame to 4 pixel frames (the stream's first to 1), 3
    ///   channels, 8× the height and width
    pub(super) fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
        let mut x = self.conv1.forward(x, slots);
        for layer in &self.layers {
            x = layer.forward(x, slots);
        }
        self.head_conv.forward(norm_silu(x, &self.head_norm), slots)
    }
}
