//! The Wan2.1 VAE (`algorithms.md` §2): causal 3-D convolutions, 4× in time and 8× in space,
//! with the per-convolution feature cache that makes encode and decode streamable.
//!
//! Activations are kept **frame-major**, `[B, T, C, H, W]`, inside the model: a causal
//! `(3, k, k)` convolution is then one per-frame 2-D convolution over the three shifted
//! frame ranges laid side by side on the channel axis, against the kernel with its time taps
//! folded into the input channels (`out[t] = conv2d([x[t], x[t+1], x[t+2]], W')`), which
//! every burn backend computes (burn-candle has no `conv3d`); taps that would only read the
//! zero padding are left out. The spatial layers see `[B·T, C, H, W]` without a copy. The public API takes and returns `[B, C, T, H, W]` like the reference.
//!
//! Streaming (§2.3): an encoder state takes pixel frames 1, then 4 at a time; a decoder
//! state takes latent frames one at a time (the first gives 1 pixel frame, later ones 4).
//! The states keep, per causal convolution, the last two input frames (`CACHE_T = 2`), so
//! chunk-by-chunk output equals the full pass. A full encode/decode is the same loop on a
//! fresh state, as upstream does it.

pub mod config;
pub mod keys;

pub use config::AutoencoderKLWanConfig;

use super::nn::{AttentionKernel, attention, conv2d, tensor};
use super::weights::{Checkpoint, LoadError, Variant};
use crate::profile::stage;
use burn::tensor::{
    DType, Int, Tensor, TensorData, activation::silu, backend::Backend, ops::PadMode,
};
use std::path::Path;

/// Frames of history each causal convolution keeps (`CACHE_T` upstream).
pub const CACHE_T: usize = 2;

/// Which latent space a call reads or writes (§2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatentSpace {
    /// `(μ − mean) / std`: what the Wan pipelines feed the DiT.
    #[default]
    Normalized,
    /// The encoder's raw mean μ (what diffusers' `encode` returns; StreamDiffusionV2's V2V
    /// path feeds this to the DiT, §8).
    Raw,
}

/// Why a VAE call cannot run.
#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    #[error("{0}")]
    Shape(String),
}

/// One causal convolution's streaming memory.
#[derive(Clone, Debug)]
enum Slot<B: Backend> {
    /// Nothing seen yet.
    Empty,
    /// `upsample3d` after its first chunk: the next chunk runs `time_conv` from zeros.
    Rep,
    /// The last (up to [`CACHE_T`]) input frames, `[B, n, C, H, W]`.
    Frames(Tensor<B, 5>),
}

/// The feature caches of one stream.
#[derive(Clone, Debug)]
struct Slots<B: Backend>(Vec<Slot<B>>);

impl<B: Backend> Slots<B> {
    fn new(n: usize) -> Self {
        Self(vec![Slot::Empty; n])
    }
}

/// A 3-D convolution that is causal in time: `front` zero frames (or cached frames) go
/// before the input, none after; symmetric spatial padding.
#[derive(Clone, Debug)]
struct CausalConv3d<B: Backend> {
    /// The kernel with its time taps folded into the input channels, `[out, kt·in, kh, kw]`
    /// (channel `k·in + c` is tap `k`, input channel `c`): the live taps are its last channels.
    weight: Tensor<B, 4>,
    /// Time taps (`kt`).
    taps: usize,
    bias: Tensor<B, 1>,
    /// Spatial padding (h, w).
    pad: [usize; 2],
    /// Zero frames before the input (2·p_t).
    front: usize,
    stride_t: usize,
    /// Cache slot (k_t > 1 only).
    slot: Option<usize>,
}

/// Loader state: the checkpoint, device, dtype and the running slot counter.
struct Loader<'a, B: Backend> {
    ck: &'a mut Checkpoint,
    device: &'a B::Device,
    dtype: DType,
    slots: usize,
}

impl<B: Backend> Loader<'_, B> {
    /// `{prefix}.weight` `[o, i, kt, kh, kw]` and `{prefix}.bias`; `pad` = (p_t, p_h, p_w).
    fn conv3d(
        &mut self,
        prefix: &str,
        shape: [usize; 5],
        pad: [usize; 3],
        stride_t: usize,
        cached: bool,
    ) -> Result<CausalConv3d<B>, LoadError> {
        let [o, i, kt, kh, kw] = shape;
        let weight: Tensor<B, 5> = tensor(
            self.ck.take(&format!("{prefix}.weight"), &shape)?,
            self.device,
            self.dtype,
        );
        // Folded once here, not on every call.
        let weight = weight.swap_dims(1, 2).reshape([o, kt * i, kh, kw]);
        let bias = tensor(
            self.ck.take(&format!("{prefix}.bias"), &[o])?,
            self.device,
            self.dtype,
        );
        let slot = cached.then(|| {
            self.slots += 1;
            self.slots - 1
        });
        Ok(CausalConv3d {
            weight,
            taps: kt,
            bias,
            pad: [pad[1], pad[2]],
            front: 2 * pad[0],
            stride_t,
            slot,
        })
    }

    /// A 2-D convolution `{prefix}.weight` `[o, i, k, k]` + bias.
    fn conv2d(
        &mut self,
        prefix: &str,
        o: usize,
        i: usize,
        k: usize,
    ) -> Result<Conv2d<B>, LoadError> {
        Ok(Conv2d {
            weight: tensor(
                self.ck.take(&format!("{prefix}.weight"), &[o, i, k, k])?,
                self.device,
                self.dtype,
            ),
            bias: tensor(
                self.ck.take(&format!("{prefix}.bias"), &[o])?,
                self.device,
                self.dtype,
            ),
        })
    }

    /// An RMS_norm gamma of `c` channels stored as `[c, 1, 1(, 1)]`, kept in f32 as `[c]`.
    fn gamma(&mut self, key: &str, c: usize, images: bool) -> Result<Tensor<B, 1>, LoadError> {
        let shape: &[usize] = if images { &[c, 1, 1] } else { &[c, 1, 1, 1] };
        let values: Vec<f32> = self
            .ck
            .take(key, shape)?
            .convert_dtype(DType::F32)
            .to_vec()
            .map_err(|e| LoadError::Shape {
                key: format!("{key} ({e:?})"),
                expected: shape.to_vec(),
                found: vec![],
            })?;
        Ok(tensor(
            TensorData::new(values, [c]),
            self.device,
            DType::F32,
        ))
    }

    fn residual(
        &mut self,
        prefix: &str,
        i: usize,
        o: usize,
    ) -> Result<ResidualBlock<B>, LoadError> {
        Ok(ResidualBlock {
            norm1: self.gamma(&format!("{prefix}.residual.0.gamma"), i, false)?,
            conv1: self.conv3d(
                &format!("{prefix}.residual.2"),
                [o, i, 3, 3, 3],
                [1, 1, 1],
                1,
                true,
            )?,
            norm2: self.gamma(&format!("{prefix}.residual.3.gamma"), o, false)?,
            conv2: self.conv3d(
                &format!("{prefix}.residual.6"),
                [o, o, 3, 3, 3],
                [1, 1, 1],
                1,
                true,
            )?,
            shortcut: if i != o {
                Some(self.conv3d(
                    &format!("{prefix}.shortcut"),
                    [o, i, 1, 1, 1],
                    [0, 0, 0],
                    1,
                    false,
                )?)
            } else {
                None
            },
        })
    }

    fn attention(&mut self, prefix: &str, c: usize) -> Result<AttentionBlock<B>, LoadError> {
        Ok(AttentionBlock {
            norm: self.gamma(&format!("{prefix}.norm.gamma"), c, true)?,
            to_qkv: self.conv2d(&format!("{prefix}.to_qkv"), 3 * c, c, 1)?,
            proj: self.conv2d(&format!("{prefix}.proj"), c, c, 1)?,
        })
    }

    fn resample(
        &mut self,
        prefix: &str,
        c: usize,
        mode: ResampleMode,
    ) -> Result<Resample<B>, LoadError> {
        let (conv, time_conv) = match mode {
            ResampleMode::Upsample2d => (
                self.conv2d(&format!("{prefix}.resample.1"), c / 2, c, 3)?,
                None,
            ),
            ResampleMode::Upsample3d => {
                let t = self.conv3d(
                    &format!("{prefix}.time_conv"),
                    [2 * c, c, 3, 1, 1],
                    [1, 0, 0],
                    1,
                    false,
                )?;
                (
                    self.conv2d(&format!("{prefix}.resample.1"), c / 2, c, 3)?,
                    Some(t),
                )
            }
            ResampleMode::Downsample2d => {
                (self.conv2d(&format!("{prefix}.resample.1"), c, c, 3)?, None)
            }
            ResampleMode::Downsample3d => {
                let conv = self.conv2d(&format!("{prefix}.resample.1"), c, c, 3)?;
                let t = self.conv3d(
                    &format!("{prefix}.time_conv"),
                    [c, c, 3, 1, 1],
                    [0, 0, 0],
                    2,
                    false,
                )?;
                (conv, Some(t))
            }
        };
        // time_conv's slot follows its own rules (see `Resample::forward`).
        let slot = time_conv.as_ref().map(|_| {
            self.slots += 1;
            self.slots - 1
        });
        Ok(Resample {
            mode,
            conv,
            time_conv,
            slot,
        })
    }
}

#[derive(Clone, Debug)]
struct Conv2d<B: Backend> {
    weight: Tensor<B, 4>,
    bias: Tensor<B, 1>,
}

impl<B: Backend> Conv2d<B> {
    /// # Shapes
    /// - x: `[N, C, H, W]` → `[N, O, H', W']`
    fn forward(&self, x: Tensor<B, 4>, stride: usize, pad: usize) -> Tensor<B, 4> {
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
    fn run(&self, x: Tensor<B, 5>, history: Option<Tensor<B, 5>>) -> Tensor<B, 5> {
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
    fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
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
struct ResidualBlock<B: Backend> {
    norm1: Tensor<B, 1>,
    conv1: CausalConv3d<B>,
    norm2: Tensor<B, 1>,
    conv2: CausalConv3d<B>,
    shortcut: Option<CausalConv3d<B>>,
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
        stage::<B, _>(&device, || "residual add".into(), || y + h)
    }
}

#[derive(Clone, Debug)]
struct AttentionBlock<B: Backend> {
    norm: Tensor<B, 1>,
    to_qkv: Conv2d<B>,
    proj: Conv2d<B>,
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
enum ResampleMode {
    Upsample2d,
    Upsample3d,
    Downsample2d,
    Downsample3d,
}

#[derive(Clone, Debug)]
struct Resample<B: Backend> {
    mode: ResampleMode,
    /// `resample.1`.
    conv: Conv2d<B>,
    time_conv: Option<CausalConv3d<B>>,
    slot: Option<usize>,
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
enum Layer<B: Backend> {
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
struct Coder<B: Backend> {
    conv1: CausalConv3d<B>,
    layers: Vec<Layer<B>>,
    head_norm: Tensor<B, 1>,
    head_conv: CausalConv3d<B>,
    /// Cache slots used.
    slots: usize,
}

impl<B: Backend> Coder<B> {
    /// # Shapes
    /// - x: `[B, T, C, H, W]` frame-major → `[B, T', C', H', W']`: the encoder takes a chunk
    ///   of pixel frames (C = 3) to one frame of moments (2·z_dim channels, ⅛ the height and
    ///   width); the decoder one latent frame to 4 pixel frames (the stream's first to 1), 3
    ///   channels, 8× the height and width
    fn forward(&self, x: Tensor<B, 5>, slots: &mut Slots<B>) -> Tensor<B, 5> {
        let mut x = self.conv1.forward(x, slots);
        for layer in &self.layers {
            x = layer.forward(x, slots);
        }
        self.head_conv.forward(norm_silu(x, &self.head_norm), slots)
    }
}

/// The middle `[res, attn, res]` at width `c`.
fn middle<B: Backend>(
    l: &mut Loader<'_, B>,
    prefix: &str,
    c: usize,
) -> Result<Vec<Layer<B>>, LoadError> {
    Ok(vec![
        Layer::Residual(l.residual(&format!("{prefix}.middle.0"), c, c)?),
        Layer::Attention(l.attention(&format!("{prefix}.middle.1"), c)?),
        Layer::Residual(l.residual(&format!("{prefix}.middle.2"), c, c)?),
    ])
}

fn load_encoder<B: Backend>(
    l: &mut Loader<'_, B>,
    cfg: &AutoencoderKLWanConfig,
) -> Result<Coder<B>, LoadError> {
    l.slots = 0;
    let dims = cfg.encoder_dims();
    let conv1 = l.conv3d("encoder.conv1", [dims[0], 3, 3, 3, 3], [1, 1, 1], 1, true)?;
    let mut stages = Vec::new();
    let levels = cfg.dim_mult.len();
    for i in 0..levels {
        let (mut c_in, c_out) = (dims[i], dims[i + 1]);
        for _ in 0..cfg.num_res_blocks {
            let p = format!("encoder.downsamples.{}", stages.len());
            stages.push(Layer::Residual(l.residual(&p, c_in, c_out)?));
            c_in = c_out;
        }
        if i + 1 < levels {
            let mode = if cfg.temperal_downsample[i] {
                ResampleMode::Downsample3d
            } else {
                ResampleMode::Downsample2d
            };
            let p = format!("encoder.downsamples.{}", stages.len());
            stages.push(Layer::Resample(l.resample(&p, c_out, mode)?));
        }
    }
    let c = *dims.last().expect("dims");
    let middle = middle(l, "encoder", c)?;
    let head_norm = l.gamma("encoder.head.0.gamma", c, false)?;
    let head_conv = l.conv3d(
        "encoder.head.2",
        [2 * cfg.z_dim, c, 3, 3, 3],
        [1, 1, 1],
        1,
        true,
    )?;
    Ok(Coder {
        conv1,
        layers: stages.into_iter().chain(middle).collect(),
        head_norm,
        head_conv,
        slots: l.slots,
    })
}

fn load_decoder<B: Backend>(
    l: &mut Loader<'_, B>,
    cfg: &AutoencoderKLWanConfig,
) -> Result<Coder<B>, LoadError> {
    l.slots = 0;
    let dims = cfg.decoder_dims();
    let conv1 = l.conv3d(
        "decoder.conv1",
        [dims[0], cfg.z_dim, 3, 3, 3],
        [1, 1, 1],
        1,
        true,
    )?;
    let middle = middle(l, "decoder", dims[0])?;
    let mut stages = Vec::new();
    let levels = cfg.dim_mult.len();
    let temperal_upsample: Vec<bool> = cfg.temperal_downsample.iter().rev().copied().collect();
    for i in 0..levels {
        let (mut c_in, c_out) = (dims[i], dims[i + 1]);
        // Upstream halves the input width of every stage after an upsample (the resample
        // conv outputs C/2).
        if i > 0 {
            c_in /= 2;
        }
        for _ in 0..=cfg.num_res_blocks {
            let p = format!("decoder.upsamples.{}", stages.len());
            stages.push(Layer::Residual(l.residual(&p, c_in, c_out)?));
            c_in = c_out;
        }
        if i + 1 < levels {
            let mode = if temperal_upsample[i] {
                ResampleMode::Upsample3d
            } else {
                ResampleMode::Upsample2d
            };
            let p = format!("decoder.upsamples.{}", stages.len());
            stages.push(Layer::Resample(l.resample(&p, c_out, mode)?));
        }
    }
    let c = *dims.last().expect("dims");
    let head_norm = l.gamma("decoder.head.0.gamma", c, false)?;
    let head_conv = l.conv3d("decoder.head.2", [3, c, 3, 3, 3], [1, 1, 1], 1, true)?;
    Ok(Coder {
        conv1,
        layers: middle.into_iter().chain(stages).collect(),
        head_norm,
        head_conv,
        slots: l.slots,
    })
}

/// A config's per-channel latent mean and std as `[1, z, 1, 1, 1]` f32 tensors (what
/// `(μ − mean) / std` and its inverse broadcast against).
pub fn latent_stats<B: Backend>(
    config: &AutoencoderKLWanConfig,
    device: &B::Device,
) -> (Tensor<B, 5>, Tensor<B, 5>) {
    let z = config.z_dim;
    let channel = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        Tensor::<B, 1>::from_data(TensorData::new(v, [z]), (device, DType::F32))
            .reshape([1, z, 1, 1, 1])
    };
    (channel(&config.latents_mean), channel(&config.latents_std))
}

/// The Wan2.1 VAE on backend `B`.
#[derive(Clone, Debug)]
pub struct WanVae<B: Backend> {
    pub config: AutoencoderKLWanConfig,
    encoder: Coder<B>,
    decoder: Coder<B>,
    /// `conv1`: 2z → 2z, 1×1×1 (μ, log σ²).
    quant: CausalConv3d<B>,
    /// `conv2`: z → z, 1×1×1.
    post_quant: CausalConv3d<B>,
    /// Per-channel mean and std, `[1, z, 1, 1, 1]`, f32.
    mean: Tensor<B, 5>,
    std: Tensor<B, 5>,
    pub dtype: DType,
    device: B::Device,
}

/// A stream being encoded: feed pixel frames 1, then 4 at a time (or 1 + 4k, then 4k).
#[derive(Clone, Debug)]
pub struct VaeEncodeStream<B: Backend> {
    slots: Slots<B>,
    frames: usize,
}

/// A stream being decoded: feed latent frames (each is decoded on its own).
#[derive(Clone, Debug)]
pub struct VaeDecodeStream<B: Backend> {
    slots: Slots<B>,
    latents: usize,
}

impl<B: Backend> VaeEncodeStream<B> {
    /// Pixel frames consumed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }
}

impl<B: Backend> VaeDecodeStream<B> {
    /// Latent frames consumed so far.
    pub fn latents(&self) -> usize {
        self.latents
    }
}

impl<B: Backend> WanVae<B> {
    /// Reads a VAE checkpoint (original `Wan2.1_VAE.pth` or diffusers `AutoencoderKLWan`,
    /// safetensors or pickle, f32/bf16/f16) and loads it in `dtype`.
    pub fn from_file(
        config: AutoencoderKLWanConfig,
        path: &Path,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let ck = Self::open(path, config.num_res_blocks)?;
        Self::load(config, ck, device, dtype)
    }

    /// Opens a VAE checkpoint under original keys.
    pub fn open(path: &Path, num_res_blocks: usize) -> Result<Checkpoint, LoadError> {
        Checkpoint::read_with(
            path,
            Variant::Generator,
            DType::F32,
            keys::detect_layout,
            |k| keys::diffusers_to_original(k, num_res_blocks),
        )
    }

    /// Builds the model from a checkpoint under original keys; every tensor must be used.
    pub fn load(
        config: AutoencoderKLWanConfig,
        mut ck: Checkpoint,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let z = config.z_dim;
        let (encoder, decoder, quant, post_quant) = {
            let mut l = Loader::<B> {
                ck: &mut ck,
                device,
                dtype,
                slots: 0,
            };
            let encoder = load_encoder(&mut l, &config)?;
            let decoder = load_decoder(&mut l, &config)?;
            let quant = l.conv3d("conv1", [2 * z, 2 * z, 1, 1, 1], [0, 0, 0], 1, false)?;
            let post_quant = l.conv3d("conv2", [z, z, 1, 1, 1], [0, 0, 0], 1, false)?;
            (encoder, decoder, quant, post_quant)
        };
        ck.finish_ref()?;
        let (mean, std) = latent_stats(&config, device);
        Ok(Self {
            mean,
            std,
            config,
            encoder,
            decoder,
            quant,
            post_quant,
            dtype,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// A fresh encode stream.
    pub fn encode_stream(&self) -> VaeEncodeStream<B> {
        VaeEncodeStream {
            slots: Slots::new(self.encoder.slots),
            frames: 0,
        }
    }

    /// A fresh decode stream.
    pub fn decode_stream(&self) -> VaeDecodeStream<B> {
        VaeDecodeStream {
            slots: Slots::new(self.decoder.slots),
            latents: 0,
        }
    }

    /// `(μ − mean) / std`.
    ///
    /// # Shapes
    /// - mu: `[B, z, T, h, w]`
    pub fn normalize(&self, mu: Tensor<B, 5>) -> Tensor<B, 5> {
        let dtype = mu.dtype();
        ((mu.cast(DType::F32) - self.mean.clone()) / self.std.clone()).cast(dtype)
    }

    /// `z · std + mean`.
    pub fn denormalize(&self, z: Tensor<B, 5>) -> Tensor<B, 5> {
        let dtype = z.dtype();
        (z.cast(DType::F32) * self.std.clone() + self.mean.clone()).cast(dtype)
    }

    /// Encodes the next pixel frames of a stream. The first call takes `1 + 4k` frames
    /// (k ≥ 0), later calls `4k` (k ≥ 1); each 4 frames give one latent frame, the first
    /// frame one more. Frames are pushed through the encoder 1, then 4 at a time, as
    /// upstream does, so any split of a clip gives the same latents as one call.
    ///
    /// # Shapes
    /// - video: `[B, 3, T, H, W]` in [-1, 1], H and W multiples of 8 → `[B, z, T', H/8, W/8]`
    pub fn encode_chunk(
        &self,
        stream: &mut VaeEncodeStream<B>,
        video: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        let [b, c, t, h, w] = video.dims();
        let s = self.config.spatial_factor();
        let q = self.config.temporal_factor();
        if c != 3 || b == 0 || h == 0 || w == 0 || h % s != 0 || w % s != 0 {
            return Err(VaeError::Shape(format!(
                "video must be [B, 3, T, H, W] with H and W multiples of {s}, got {:?}",
                video.dims()
            )));
        }
        let first = stream.frames == 0;
        let ok = if first {
            t % q == 1
        } else {
            t > 0 && t % q == 0
        };
        if !ok {
            return Err(VaeError::Shape(format!(
                "a stream's first chunk has 1 + {q}k frames, later chunks {q}k (k ≥ 1); got {t} \
                 frames after {} frames",
                stream.frames
            )));
        }
        let x = video.cast(self.dtype).swap_dims(1, 2);
        let mut outs = Vec::new();
        let mut start = 0;
        while start < t {
            let n = if stream.frames == 0 { 1 } else { q };
            let chunk = x.clone().narrow(1, start, n);
            outs.push(self.encoder.forward(chunk, &mut stream.slots));
            stream.frames += n;
            start += n;
        }
        let y = Tensor::cat(outs, 1);
        let mu = self
            .quant
            .run(y, None)
            .narrow(2, 0, self.config.z_dim)
            .swap_dims(1, 2)
            .cast(DType::F32);
        Ok(match space {
            LatentSpace::Raw => mu,
            LatentSpace::Normalized => self.normalize(mu),
        })
    }

    /// Encodes a whole clip of `1 + 4k` frames (a fresh stream).
    pub fn encode(
        &self,
        video: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        let mut stream = self.encode_stream();
        self.encode_chunk(&mut stream, video, space)
    }

    /// Decodes the next latent frames of a stream, one at a time: the stream's first latent
    /// frame gives 1 pixel frame, every later one 4. Output is clamped to [-1, 1], f32.
    ///
    /// # Shapes
    /// - z: `[B, z, T, h, w]` → `[B, 3, T', 8h, 8w]`
    pub fn decode_chunk(
        &self,
        stream: &mut VaeDecodeStream<B>,
        z: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        let [b, c, t, h, w] = z.dims();
        if c != self.config.z_dim || b == 0 || t == 0 || h == 0 || w == 0 {
            return Err(VaeError::Shape(format!(
                "latents must be [B, {}, T, h, w], got {:?}",
                self.config.z_dim,
                z.dims()
            )));
        }
        let z = match space {
            LatentSpace::Raw => z,
            LatentSpace::Normalized => self.denormalize(z),
        };
        let x = self
            .post_quant
            .run(z.cast(self.dtype).swap_dims(1, 2), None);
        let mut outs = Vec::with_capacity(t);
        for i in 0..t {
            outs.push(
                self.decoder
                    .forward(x.clone().narrow(1, i, 1), &mut stream.slots),
            );
            stream.latents += 1;
        }
        Ok(Tensor::cat(outs, 1)
            .swap_dims(1, 2)
            .cast(DType::F32)
            .clamp(-1.0, 1.0))
    }

    /// Decodes a whole latent clip (a fresh stream).
    pub fn decode(&self, z: Tensor<B, 5>, space: LatentSpace) -> Result<Tensor<B, 5>, VaeError> {
        let mut stream = self.decode_stream();
        self.decode_chunk(&mut stream, z, space)
    }
}
