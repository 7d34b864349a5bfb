//! The Wan2.1 VAE (`Wan-Video/Wan2.1 wan/modules/vae.py`; diffusers' `AutoencoderKLWan`): causal 3-D convolutions, 4× in time and 8× in space,
//! with the per-convolution feature cache that makes encode and decode streamable.
//!
//! Activations are kept **frame-major**, `[B, T, C, H, W]`, inside the model: a causal
//! `(3, k, k)` convolution is then one per-frame 2-D convolution over the three shifted
//! frame ranges laid side by side on the channel axis, against the kernel with its time taps
//! folded into the input channels (`out[t] = conv2d([x[t], x[t+1], x[t+2]], W')`), which
//! every burn backend computes (burn-candle has no `conv3d`); taps that would only read the
//! zero padding are left out. The spatial layers see `[B·T, C, H, W]` without a copy. The public API takes and returns `[B, C, T, H, W]` like the reference.
//!
//! Streaming: an encoder state takes pixel frames 1, then 4 at a time; a decoder
//! state takes latent frames one at a time (the first gives 1 pixel frame, later ones 4).
//! The states keep, per causal convolution, the last two input frames (`CACHE_T = 2`), so
//! chunk-by-chunk output equals the full pass. A full encode/decode is the same loop on a
//! fresh state, as upstream does it.

mod blocks;
pub mod config;
mod conv;
pub mod keys;
mod load;

pub use config::AutoencoderKLWanConfig;
pub use conv::Taps;

use super::weights::{Checkpoint, LoadError, Variant};
use blocks::Coder;
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};
use conv::{CausalConv3d, Slots};
use load::{Loader, load_decoder, load_encoder};
use std::path::Path;

/// Frames of history each causal convolution keeps (`CACHE_T` upstream).
pub const CACHE_T: usize = 2;

/// Which latent space a call reads or writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LatentSpace {
    /// `(μ − mean) / std`: what the Wan pipelines feed the DiT.
    #[default]
    Normalized,
    /// The encoder's raw mean μ (what diffusers' `encode` returns; StreamDiffusionV2's V2V
    /// path feeds this to the DiT).
    Raw,
}

/// Why a VAE call cannot run.
#[derive(Debug, thiserror::Error)]
pub enum VaeError {
    #[error("{0}")]
    Shape(String),
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
