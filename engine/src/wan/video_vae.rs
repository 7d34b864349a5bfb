//! The video autoencoders a Wan pipeline can use, behind one type: the Wan2.1 VAE, LightVAE
//! (the Wan VAE at a quarter of its width), TAEHV (`taew2_1`) and LightTAE (`lighttaew2_1`).
//!
//! All four read and write the same latent space and count frames the same way: a stream's
//! first chunk of `1 + 4k` pixel frames gives `1 + k` latent frames, each later `4k` give `k`;
//! a stream's first latent decodes to 1 frame, each later one to 4. The TAEs work on whole
//! groups of 4 frames, so a stream's first frame is encoded as the last of a group whose
//! first three are copies of it, mirroring their decoder, which drops a stream's first three
//! frames.

use super::{
    Checkpoint, LoadError,
    tae::{Tae, TaeConfig, TaeDecodeStream, TaeEncodeStream, TaeKind},
    vae::{
        AutoencoderKLWanConfig, LatentSpace, VaeDecodeStream, VaeEncodeStream, VaeError, WanVae,
    },
};
use burn::tensor::{DType, Tensor, backend::Backend};
use std::path::Path;

/// Which autoencoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VaeType {
    /// The Wan2.1 VAE (`Wan2.1_VAE.pth`, 127 M parameters).
    Wan,
    /// LightVAE (`lightvaew2_1.pth`, LightX2V): 75 % of every stage's channels pruned, 8 M.
    LightVae,
    /// TAEHV (`taew2_1.pth`): per-frame 2-D convolutions, 11 M.
    Tae,
    /// LightTAE (`lighttaew2_1.pth`, LightX2V): TAEHV's network on raw Wan latents.
    LightTae,
}

impl VaeType {
    pub const ALL: [VaeType; 4] = [
        VaeType::Wan,
        VaeType::LightVae,
        VaeType::Tae,
        VaeType::LightTae,
    ];

    /// The name in load parameters and on the command line (the upstream app's `vae_type`).
    pub fn id(self) -> &'static str {
        match self {
            VaeType::Wan => "wan",
            VaeType::LightVae => "lightvae",
            VaeType::Tae => "tae",
            VaeType::LightTae => "lighttae",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.id() == id)
    }

    fn tae_kind(self) -> Option<TaeKind> {
        match self {
            VaeType::Tae => Some(TaeKind::Tae),
            VaeType::LightTae => Some(TaeKind::LightTae),
            _ => None,
        }
    }
}

impl std::fmt::Display for VaeType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// A loaded autoencoder of any [`VaeType`].
#[derive(Clone, Debug)]
pub enum VideoVae<B: Backend> {
    Wan(Box<WanVae<B>>),
    Tae(Tae<B>),
}

/// A stream being encoded.
#[derive(Clone, Debug)]
pub enum EncodeStream<B: Backend> {
    Wan(VaeEncodeStream<B>),
    Tae(TaeEncodeStream<B>),
}

/// A stream being decoded.
#[derive(Clone, Debug)]
pub enum DecodeStream<B: Backend> {
    Wan(VaeDecodeStream<B>),
    Tae(TaeDecodeStream<B>),
}

impl<B: Backend> VideoVae<B> {
    /// Opens `path` and loads it as a `vae` in `dtype`. The Wan VAE's and LightVAE's width
    /// comes from the checkpoint.
    pub fn from_file(
        vae: VaeType,
        path: &Path,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        match vae.tae_kind() {
            Some(kind) => Tae::from_file(TaeConfig::new(kind), path, device, dtype).map(Self::Tae),
            None => {
                let ck = WanVae::<B>::open(path, 2)?;
                let config = AutoencoderKLWanConfig::infer(&ck);
                // The two published widths must match the choice (other widths: test models).
                let (full, light) = (
                    AutoencoderKLWanConfig::wan2_1().base_dim,
                    AutoencoderKLWanConfig::light_vae().base_dim,
                );
                let wrong = match (vae, config.base_dim) {
                    (VaeType::Wan, w) if w == light => Some("LightVAE (width 24): choose lightvae"),
                    (VaeType::LightVae, w) if w == full => {
                        Some("the full Wan VAE (width 96): choose wan")
                    }
                    _ => None,
                };
                if let Some(what) = wrong {
                    return Err(LoadError::Format {
                        path: path.to_owned(),
                        message: format!("this checkpoint is {what}, not {vae}"),
                    });
                }
                WanVae::load(config, ck, device, dtype).map(|v| Self::Wan(Box::new(v)))
            }
        }
    }

    /// Loads a `vae` from a checkpoint already opened (made-up weights for benchmarks).
    pub fn load(
        vae: VaeType,
        ck: Checkpoint,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        match vae {
            VaeType::Wan => WanVae::load(AutoencoderKLWanConfig::wan2_1(), ck, device, dtype)
                .map(|v| Self::Wan(Box::new(v))),
            VaeType::LightVae => {
                WanVae::load(AutoencoderKLWanConfig::light_vae(), ck, device, dtype)
                    .map(|v| Self::Wan(Box::new(v)))
            }
            VaeType::Tae | VaeType::LightTae => {
                let kind = vae.tae_kind().unwrap_or(TaeKind::Tae);
                Tae::load(TaeConfig::new(kind), ck, device, dtype).map(Self::Tae)
            }
        }
    }

    /// `(μ − mean) / std` (raw encoder means to the DiT's latents).
    pub fn normalize(&self, mu: Tensor<B, 5>) -> Tensor<B, 5> {
        match self {
            VideoVae::Wan(v) => v.normalize(mu),
            VideoVae::Tae(v) => v.normalize(mu),
        }
    }

    /// Encodes a whole clip of `1 + 4k` frames (a fresh stream).
    pub fn encode(
        &self,
        video: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        self.encode_chunk(&mut self.encode_stream(), video, space)
    }

    /// Decodes a whole latent clip (a fresh stream).
    pub fn decode(&self, z: Tensor<B, 5>, space: LatentSpace) -> Result<Tensor<B, 5>, VaeError> {
        self.decode_chunk(&mut self.decode_stream(), z, space)
    }

    pub fn encode_stream(&self) -> EncodeStream<B> {
        match self {
            VideoVae::Wan(v) => EncodeStream::Wan(v.encode_stream()),
            VideoVae::Tae(v) => EncodeStream::Tae(v.encode_stream()),
        }
    }

    pub fn decode_stream(&self) -> DecodeStream<B> {
        match self {
            VideoVae::Wan(v) => DecodeStream::Wan(v.decode_stream()),
            VideoVae::Tae(v) => DecodeStream::Tae(v.decode_stream()),
        }
    }

    /// Encodes the next pixel frames of a stream: `1 + 4k` frames first, `4k` later.
    ///
    /// # Shapes
    /// - video: `[B, 3, T, H, W]` in [-1, 1] → `[B, 16, T', H/8, W/8]` f32
    pub fn encode_chunk(
        &self,
        stream: &mut EncodeStream<B>,
        video: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        match (self, stream) {
            (VideoVae::Wan(v), EncodeStream::Wan(s)) => v.encode_chunk(s, video, space),
            (VideoVae::Tae(v), EncodeStream::Tae(s)) => {
                let video = if s.frames() == 0 {
                    let t = video.dims()[2];
                    if t % 4 != 1 {
                        return Err(VaeError::Shape(format!(
                            "a stream's first chunk has 1 + 4k frames (k ≥ 0), later chunks 4k \
                             (k ≥ 1); got {t} frames after 0 frames"
                        )));
                    }
                    let first = video.clone().narrow(2, 0, 1);
                    Tensor::cat(vec![first.clone(), first.clone(), first, video], 2)
                } else {
                    video
                };
                v.encode_chunk(s, video, space)
            }
            _ => Err(mismatch()),
        }
    }

    /// Decodes the next latent frames of a stream: the stream's first gives 1 frame, each
    /// later one 4. Clamped to [-1, 1], f32.
    ///
    /// # Shapes
    /// - z: `[B, 16, T, h, w]` → `[B, 3, T', 8h, 8w]`
    pub fn decode_chunk(
        &self,
        stream: &mut DecodeStream<B>,
        z: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        match (self, stream) {
            (VideoVae::Wan(v), DecodeStream::Wan(s)) => v.decode_chunk(s, z, space),
            (VideoVae::Tae(v), DecodeStream::Tae(s)) => v.decode_chunk(s, z, space),
            _ => Err(mismatch()),
        }
    }

    /// [`VideoVae::decode_chunk`] handing the frames to `piece` as they are decoded, in
    /// order: the Wan VAE decodes one latent frame at a time (1 frame for a stream's first, 4
    /// for every later one), so a chunk's first frames are out while the rest decode; the
    /// tiny autoencoders decode a chunk's frames together, one piece. The pieces joined along
    /// time are `decode_chunk`'s result.
    ///
    /// # Shapes
    /// - z: `[B, 16, T, h, w]` → pieces `[B, 3, T_i, 8h, 8w]`, Σ T_i = T'
    pub fn decode_chunk_pieces(
        &self,
        stream: &mut DecodeStream<B>,
        z: Tensor<B, 5>,
        space: LatentSpace,
        piece: &mut dyn FnMut(Tensor<B, 5>),
    ) -> Result<(), VaeError> {
        match self {
            VideoVae::Wan(_) => {
                for i in 0..z.dims()[2] {
                    piece(self.decode_chunk(stream, z.clone().narrow(2, i, 1), space)?);
                }
            }
            VideoVae::Tae(_) => piece(self.decode_chunk(stream, z, space)?),
        }
        Ok(())
    }
}

fn mismatch() -> VaeError {
    VaeError::Shape("the stream belongs to another kind of autoencoder".into())
}
