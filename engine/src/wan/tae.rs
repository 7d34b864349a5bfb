//! TAEHV for Wan2.1 (`taew2_1`) and LightTAE (`lighttaew2_1`): the tiny video autoencoder
//! (madebyollin/taehv `taehv.py`, MIT; LightX2V's `lighttae`), a drop-in for the Wan VAE at a fraction of its cost.
//!
//! Every layer is per frame (3×3 and 1×1 convolutions, ReLU, nearest ×2 upsampling); time
//! mixes only in three places: a `MemBlock` concatenates its input with the same block's
//! input one frame earlier, `TPool` stacks `s` consecutive frames on the channel axis, `TGrow`
//! splits channels into `s` frames. The encoder turns 4 frames into 1 latent (8× smaller), the
//! decoder 1 latent into 4 frames; a stream's first 3 decoded frames are dropped, so N latents
//! give 1 + 4(N − 1) frames, as the causal Wan VAE gives.
//!
//! Streaming is exact and chunk-parallel: a call runs all frames of its chunk through each
//! layer at once (`[N·T, C, H, W]` batches), and each `MemBlock` carries its last input frame
//! to the next call, so any split of a stream gives the same output as one call.
//!
//! `taew2_1` reads and writes the *normalised* latents the DiT uses; `lighttaew2_1` is the same
//! network on raw Wan latents, so `z · std + mean` goes before its decoder and
//! `(z − mean) / std` after its encoder. Pixels are [0, 1] inside, [-1, 1] at this API.

use super::nn::conv2d;
use super::nn::tensor;
use super::vae::{LatentSpace, VaeError};
use super::weights::{Checkpoint, Layout, LoadError, Variant};
use burn::tensor::{DType, Int, Tensor, TensorData, activation::relu, backend::Backend};
use std::path::Path;

/// Latent channels of the Wan2.1 TAEs.
pub const LATENT_CHANNELS: usize = 16;
/// Pixel frames per latent frame.
pub const TIME_FACTOR: usize = 4;
/// Pixels per latent pixel, each way.
pub const SPACE_FACTOR: usize = 8;

/// Which checkpoint, i.e. which latent space the network works in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaeKind {
    /// `taew2_1`: normalised Wan latents.
    Tae,
    /// `lighttaew2_1`: raw Wan latents.
    LightTae,
}

/// Options of the decoder, named like the reference's constructor arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaeConfig {
    pub kind: TaeKind,
    /// Whether the second and third decoder stages double time (`decoder_time_upscale`
    /// without its always-off first entry). Off gives a cheap preview: fewer frames per latent
    /// (the checkpoint's `TGrow` weights are cut to their last frame's channels, as
    /// `patch_tgrow_layers` does).
    pub decoder_time_upscale: [bool; 2],
}

impl TaeConfig {
    pub fn new(kind: TaeKind) -> Self {
        Self {
            kind,
            decoder_time_upscale: [true, true],
        }
    }

    /// Frames one latent decodes to (4 with both time upscales on).
    pub fn frames_per_latent(&self) -> usize {
        self.decoder_time_upscale
            .iter()
            .map(|on| if *on { 2 } else { 1 })
            .product()
    }
}

/// One layer of the reference's `nn.Sequential`, by index.
#[derive(Clone, Copy, Debug)]
enum Spec {
    /// `Conv2d(i, o, k, stride, padding = k / 2)`.
    Conv {
        i: usize,
        o: usize,
        k: usize,
        stride: usize,
        bias: bool,
    },
    Relu,
    Clamp,
    Upsample,
    Mem(usize),
    /// `TPool(n, s)`.
    Pool(usize, usize),
    /// `TGrow(n, s)`.
    Grow(usize, usize),
}

fn conv(i: usize, o: usize) -> Spec {
    Spec::Conv {
        i,
        o,
        k: 3,
        stride: 1,
        bias: true,
    }
}

fn down(n: usize) -> Spec {
    Spec::Conv {
        i: n,
        o: n,
        k: 3,
        stride: 2,
        bias: false,
    }
}

fn no_bias(i: usize, o: usize) -> Spec {
    Spec::Conv {
        i,
        o,
        k: 3,
        stride: 1,
        bias: false,
    }
}

/// The encoder (`encoder.{i}`): three stages of time pooling (×2, ×2, ×1), a stride-2
/// convolution and three MemBlocks, 64 channels throughout.
fn encoder_specs() -> Vec<Spec> {
    let mut s = vec![conv(3, 64), Spec::Relu];
    for pool in [2, 2, 1] {
        s.extend([Spec::Pool(64, pool), down(64)]);
        s.extend([Spec::Mem(64); 3]);
    }
    s.push(conv(64, LATENT_CHANNELS));
    s
}

/// The decoder (`decoder.{i}`, base variant): widths 256 → 128 → 64, each stage three
/// MemBlocks, ×2 nearest upsampling, a `TGrow` (×1, then ×2, ×2 unless turned off).
fn decoder_specs(time_upscale: [bool; 2]) -> Vec<Spec> {
    let n = [256, 128, 64, 64];
    let grow = [
        1,
        time_upscale[0] as usize + 1,
        time_upscale[1] as usize + 1,
    ];
    let mut s = vec![Spec::Clamp, conv(LATENT_CHANNELS, n[0]), Spec::Relu];
    for stage in 0..3 {
        s.extend([Spec::Mem(n[stage]); 3]);
        s.extend([
            Spec::Upsample,
            Spec::Grow(n[stage], grow[stage]),
            no_bias(n[stage], n[stage + 1]),
        ]);
    }
    s.extend([Spec::Relu, conv(n[3], 3)]);
    s
}

#[derive(Clone, Debug)]
struct Conv<B: Backend> {
    /// `[o, i, k, k]`.
    weight: Tensor<B, 4>,
    bias: Option<Tensor<B, 1>>,
    stride: usize,
}

impl<B: Backend> Conv<B> {
    /// # Shapes
    /// - x: `[R, i, H, W]` → `[R, o, H / stride, W / stride]`
    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let pad = self.weight.dims()[2] / 2;
        conv2d(
            x,
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [pad, pad],
        )
    }
}

#[derive(Clone, Debug)]
enum Layer<B: Backend> {
    Conv(Conv<B>),
    Relu,
    Clamp,
    Upsample,
    /// `relu(c3(relu(c2(relu(c1([x, past]))))) + x)`; `slot` indexes the stream's memory.
    Mem {
        convs: [Conv<B>; 3],
        slot: usize,
    },
    Pool(Conv<B>, usize),
    Grow(Conv<B>, usize),
}

/// The encoder or decoder: its layers and how many MemBlocks (memory slots) they hold.
#[derive(Clone, Debug)]
struct Coder<B: Backend> {
    layers: Vec<Layer<B>>,
    slots: usize,
}

impl<B: Backend> Coder<B> {
    fn load(
        ck: &mut Checkpoint,
        prefix: &str,
        specs: &[Spec],
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let mut slots = 0;
        let mut layers = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let p = format!("{prefix}.{i}");
            layers.push(match *spec {
                Spec::Conv {
                    i: n_in,
                    o,
                    k,
                    stride,
                    bias,
                } => Layer::Conv(load_conv(
                    ck,
                    &p,
                    [o, n_in, k, k],
                    stride,
                    bias,
                    device,
                    dtype,
                )?),
                Spec::Relu => Layer::Relu,
                Spec::Clamp => Layer::Clamp,
                Spec::Upsample => Layer::Upsample,
                Spec::Mem(n) => {
                    let c = |j: usize, n_in: usize, ck: &mut Checkpoint| {
                        load_conv(
                            ck,
                            &format!("{p}.conv.{j}"),
                            [n, n_in, 3, 3],
                            1,
                            true,
                            device,
                            dtype,
                        )
                    };
                    let convs = [c(0, 2 * n, ck)?, c(2, n, ck)?, c(4, n, ck)?];
                    slots += 1;
                    Layer::Mem {
                        convs,
                        slot: slots - 1,
                    }
                }
                Spec::Pool(n, s) => Layer::Pool(
                    load_conv(
                        ck,
                        &format!("{p}.conv"),
                        [n, n * s, 1, 1],
                        1,
                        false,
                        device,
                        dtype,
                    )?,
                    s,
                ),
                Spec::Grow(n, s) => Layer::Grow(
                    Conv {
                        weight: load_grow(ck, &format!("{p}.conv.weight"), n, s, device, dtype)?,
                        bias: None,
                        stride: 1,
                    },
                    s,
                ),
            });
        }
        Ok(Self { layers, slots })
    }

    /// Runs `x` (`n` streams' frames, time-major within each stream) through every layer,
    /// reading and updating the MemBlocks' memory.
    ///
    /// # Shapes
    /// - x: `[n·T, C, H, W]` → `[n·T', C', H', W']`; memory slots: `[n, 1, C, H, W]`
    fn forward(
        &self,
        mut x: Tensor<B, 4>,
        n: usize,
        memory: &mut [Option<Tensor<B, 5>>],
    ) -> Tensor<B, 4> {
        for layer in &self.layers {
            x = match layer {
                Layer::Conv(c) => c.forward(x),
                Layer::Relu => relu(x),
                Layer::Clamp => (x / 3.0).tanh() * 3.0,
                Layer::Upsample => upsample2(x),
                Layer::Mem { convs, slot } => {
                    let past = shift_in_time(&x, n, &mut memory[*slot]);
                    let h = relu(convs[0].forward(Tensor::cat(vec![x.clone(), past], 1)));
                    let h = convs[2].forward(relu(convs[1].forward(h)));
                    relu(h + x)
                }
                Layer::Pool(c, s) => {
                    let [r, ch, h, w] = x.dims();
                    c.forward(x.reshape([r / s, s * ch, h, w]))
                }
                Layer::Grow(c, s) => {
                    let [r, ch, h, w] = x.dims();
                    c.forward(x).reshape([r * s, ch, h, w])
                }
            };
        }
        x
    }
}

fn load_conv<B: Backend>(
    ck: &mut Checkpoint,
    prefix: &str,
    shape: [usize; 4],
    stride: usize,
    bias: bool,
    device: &B::Device,
    dtype: DType,
) -> Result<Conv<B>, LoadError> {
    let weight = tensor(ck.take(&format!("{prefix}.weight"), &shape)?, device, dtype);
    let bias = if bias {
        Some(tensor(
            ck.take(&format!("{prefix}.bias"), &[shape[0]])?,
            device,
            dtype,
        ))
    } else {
        None
    };
    Ok(Conv {
        weight,
        bias,
        stride,
    })
}

/// A `TGrow` weight `[n·s, n, 1, 1]`. A checkpoint made for more frames per latent has more
/// output channels; its last `n·s` (the last frames') are kept (`patch_tgrow_layers`).
fn load_grow<B: Backend>(
    ck: &mut Checkpoint,
    key: &str,
    n: usize,
    s: usize,
    device: &B::Device,
    dtype: DType,
) -> Result<Tensor<B, 4>, LoadError> {
    let want = [n * s, n, 1, 1];
    let found = ck.shape(key);
    let rows = match found.as_deref() {
        Some([rows, rest @ ..]) if *rows > n * s && rows % n == 0 && rest == &want[1..] => *rows,
        _ => want[0],
    };
    let w: Tensor<B, 4> = tensor(ck.take(key, &[rows, n, 1, 1])?, device, dtype);
    Ok(w.narrow(0, rows - n * s, n * s))
}

/// The frames one step earlier than `x`'s: the carried frame (zeros at a stream's start),
/// then all but `x`'s last frame, which becomes the new carried frame.
///
/// # Shapes
/// - x: `[n·T, C, H, W]` → `[n·T, C, H, W]`; memory: `[n, 1, C, H, W]`
fn shift_in_time<B: Backend>(
    x: &Tensor<B, 4>,
    n: usize,
    memory: &mut Option<Tensor<B, 5>>,
) -> Tensor<B, 4> {
    let [r, c, h, w] = x.dims();
    let t = r / n;
    let frames = x.clone().reshape([n, t, c, h, w]);
    let before = memory
        .take()
        .unwrap_or_else(|| Tensor::zeros([n, 1, c, h, w], (&x.device(), x.dtype())));
    // A copy of the last frame (`select` gathers into a buffer of its own): a `narrow` view
    // would keep the whole chunk's activations alive until the next call.
    let last = Tensor::<B, 1, Int>::from_data(TensorData::from([(t - 1) as i64]), &x.device());
    *memory = Some(frames.clone().select(1, last));
    let past = if t > 1 {
        Tensor::cat(vec![before, frames.narrow(1, 0, t - 1)], 1)
    } else {
        before
    };
    past.reshape([r, c, h, w])
}

/// Nearest-neighbour ×2 upsampling.
///
/// # Shapes
/// - x: `[R, C, H, W]` → `[R, C, 2H, 2W]`
fn upsample2<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [r, c, h, w] = x.dims();
    x.reshape([r, c, h, 1, w, 1])
        .expand([r, c, h, 2, w, 2])
        .reshape([r, c, 2 * h, 2 * w])
}

/// A stream being encoded: its MemBlocks' last frames.
#[derive(Clone, Debug)]
pub struct TaeEncodeStream<B: Backend> {
    memory: Vec<Option<Tensor<B, 5>>>,
    frames: usize,
}

/// A stream being decoded: its MemBlocks' last frames and the frames still to drop.
#[derive(Clone, Debug)]
pub struct TaeDecodeStream<B: Backend> {
    memory: Vec<Option<Tensor<B, 5>>>,
    latents: usize,
}

impl<B: Backend> TaeEncodeStream<B> {
    /// Pixel frames encoded so far (through [`super::video_vae::VideoVae`], a stream's first
    /// chunk counts the three copies of its first frame that lead it).
    pub fn frames(&self) -> usize {
        self.frames
    }
}

impl<B: Backend> TaeDecodeStream<B> {
    /// Latent frames consumed so far.
    pub fn latents(&self) -> usize {
        self.latents
    }
}

/// A loaded TAE (`taew2_1` or `lighttaew2_1`) on backend `B`.
#[derive(Clone, Debug)]
pub struct Tae<B: Backend> {
    pub config: TaeConfig,
    encoder: Coder<B>,
    decoder: Coder<B>,
    /// Wan2.1's per-channel latent mean and std, `[1, 16, 1, 1, 1]`, f32.
    mean: Tensor<B, 5>,
    std: Tensor<B, 5>,
    pub dtype: DType,
}

/// The state-dict keys and shapes a TAE checkpoint holds (encoder, then decoder, each in
/// layer order), for the given decoder options.
pub fn expected_tensors(config: &TaeConfig) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let specs = [
        ("encoder", encoder_specs()),
        ("decoder", decoder_specs(config.decoder_time_upscale)),
    ];
    for (prefix, specs) in specs {
        for (i, spec) in specs.iter().enumerate() {
            let p = format!("{prefix}.{i}");
            match *spec {
                Spec::Conv {
                    i: n_in,
                    o,
                    k,
                    bias,
                    ..
                } => {
                    out.push((format!("{p}.weight"), vec![o, n_in, k, k]));
                    if bias {
                        out.push((format!("{p}.bias"), vec![o]));
                    }
                }
                Spec::Mem(n) => {
                    for (j, n_in) in [(0, 2 * n), (2, n), (4, n)] {
                        out.push((format!("{p}.conv.{j}.weight"), vec![n, n_in, 3, 3]));
                        out.push((format!("{p}.conv.{j}.bias"), vec![n]));
                    }
                }
                Spec::Pool(n, s) => out.push((format!("{p}.conv.weight"), vec![n, n * s, 1, 1])),
                Spec::Grow(n, s) => out.push((format!("{p}.conv.weight"), vec![n * s, n, 1, 1])),
                Spec::Relu | Spec::Clamp | Spec::Upsample => {}
            }
        }
    }
    out
}

impl<B: Backend> Tae<B> {
    /// Reads `taew2_1.pth` / `taew2_1.safetensors` (or the `lighttaew2_1` files) and loads
    /// them in `dtype`.
    pub fn from_file(
        config: TaeConfig,
        path: &Path,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let ck = Self::open(path)?;
        Self::load(config, ck, device, dtype)
    }

    /// Opens a TAE checkpoint (a plain state dict: `encoder.{i}…`, `decoder.{i}…`).
    pub fn open(path: &Path) -> Result<Checkpoint, LoadError> {
        Checkpoint::read_with(
            path,
            Variant::Generator,
            DType::F32,
            |keys| {
                (keys.contains("encoder.0.weight") && keys.contains("decoder.1.weight"))
                    .then_some(Layout::Original)
            },
            str::to_owned,
        )
    }

    /// Builds the model from a checkpoint; every tensor must be used.
    pub fn load(
        config: TaeConfig,
        mut ck: Checkpoint,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let encoder = Coder::load(&mut ck, "encoder", &encoder_specs(), device, dtype)?;
        let decoder = Coder::load(
            &mut ck,
            "decoder",
            &decoder_specs(config.decoder_time_upscale),
            device,
            dtype,
        )?;
        ck.finish_ref()?;
        let (mean, std) =
            super::vae::latent_stats(&super::vae::AutoencoderKLWanConfig::wan2_1(), device);
        Ok(Self {
            mean,
            std,
            config,
            encoder,
            decoder,
            dtype,
        })
    }

    /// A fresh encode stream.
    pub fn encode_stream(&self) -> TaeEncodeStream<B> {
        TaeEncodeStream {
            memory: vec![None; self.encoder.slots],
            frames: 0,
        }
    }

    /// A fresh decode stream.
    pub fn decode_stream(&self) -> TaeDecodeStream<B> {
        TaeDecodeStream {
            memory: vec![None; self.decoder.slots],
            latents: 0,
        }
    }

    /// The space this checkpoint's network works in.
    fn native(&self) -> LatentSpace {
        match self.config.kind {
            TaeKind::Tae => LatentSpace::Normalized,
            TaeKind::LightTae => LatentSpace::Raw,
        }
    }

    /// `(μ − mean) / std` with Wan2.1's constants.
    ///
    /// # Shapes
    /// - mu: `[B, 16, T, h, w]`
    pub fn normalize(&self, mu: Tensor<B, 5>) -> Tensor<B, 5> {
        self.convert(
            mu.cast(DType::F32),
            LatentSpace::Raw,
            LatentSpace::Normalized,
        )
    }

    /// Moves latents `z` (f32) from space `from` to space `to`.
    fn convert(&self, z: Tensor<B, 5>, from: LatentSpace, to: LatentSpace) -> Tensor<B, 5> {
        match (from, to) {
            (LatentSpace::Raw, LatentSpace::Normalized) => {
                (z - self.mean.clone()) / self.std.clone()
            }
            (LatentSpace::Normalized, LatentSpace::Raw) => z * self.std.clone() + self.mean.clone(),
            _ => z,
        }
    }

    /// Encodes the next `4k` (k ≥ 1) pixel frames of a stream into `k` latent frames, all of
    /// them in one pass per layer.
    ///
    /// # Shapes
    /// - video: `[B, 3, T, H, W]` in [-1, 1], H and W multiples of 8 → `[B, 16, T/4, H/8, W/8]` f32
    pub fn encode_chunk(
        &self,
        stream: &mut TaeEncodeStream<B>,
        video: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        let [b, c, t, h, w] = video.dims();
        let s = SPACE_FACTOR;
        if c != 3
            || b == 0
            || t == 0
            || t % TIME_FACTOR != 0
            || h % s != 0
            || w % s != 0
            || h == 0
            || w == 0
        {
            return Err(VaeError::Shape(format!(
                "video must be [B, 3, 4k, H, W] with k ≥ 1 and H, W multiples of {s}, got {:?}",
                video.dims()
            )));
        }
        let x = ((video.cast(self.dtype) + 1.0) / 2.0)
            .swap_dims(1, 2)
            .reshape([b * t, c, h, w]);
        let y = self.encoder.forward(x, b, &mut stream.memory);
        stream.frames += t;
        let z = y
            .reshape([b, t / TIME_FACTOR, LATENT_CHANNELS, h / s, w / s])
            .swap_dims(1, 2)
            .cast(DType::F32);
        Ok(self.convert(z, self.native(), space))
    }

    /// Encodes a whole clip (a fresh stream); like the reference, a clip whose length is not
    /// a multiple of 4 is padded at the end with copies of its last frame.
    pub fn encode(
        &self,
        video: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        let t = video.dims()[2];
        let pad = (TIME_FACTOR - t % TIME_FACTOR) % TIME_FACTOR;
        let video = if pad > 0 && t > 0 {
            let last = video.clone().narrow(2, t - 1, 1);
            let mut parts = vec![video];
            parts.extend(std::iter::repeat_n(last, pad));
            Tensor::cat(parts, 2)
        } else {
            video
        };
        let mut stream = self.encode_stream();
        self.encode_chunk(&mut stream, video, space)
    }

    /// Decodes the next latent frames of a stream in one pass per layer: each latent gives 4
    /// frames (fewer in a preview configuration), and a stream's first three are dropped, so
    /// the first latent gives 1 frame, as the Wan VAE's does. Output clamped to [-1, 1], f32.
    ///
    /// # Shapes
    /// - z: `[B, 16, T, h, w]` → `[B, 3, T', 8h, 8w]`
    pub fn decode_chunk(
        &self,
        stream: &mut TaeDecodeStream<B>,
        z: Tensor<B, 5>,
        space: LatentSpace,
    ) -> Result<Tensor<B, 5>, VaeError> {
        let [b, c, t, h, w] = z.dims();
        if c != LATENT_CHANNELS || b == 0 || t == 0 || h == 0 || w == 0 {
            return Err(VaeError::Shape(format!(
                "latents must be [B, {LATENT_CHANNELS}, T, h, w], got {:?}",
                z.dims()
            )));
        }
        let z = self.convert(z.cast(DType::F32), space, self.native());
        let x = z.cast(self.dtype).swap_dims(1, 2).reshape([b * t, c, h, w]);
        let y = self.decoder.forward(x, b, &mut stream.memory);
        let per = self.config.frames_per_latent();
        let (s, frames) = (SPACE_FACTOR, t * per);
        let y = y.reshape([b, frames, 3, h * s, w * s]);
        let trim = if stream.latents == 0 { per - 1 } else { 0 };
        stream.latents += t;
        Ok(y.narrow(1, trim, frames - trim)
            .swap_dims(1, 2)
            .cast(DType::F32)
            .clamp(0.0, 1.0)
            * 2.0
            - 1.0)
    }

    /// Decodes a whole latent clip (a fresh stream).
    pub fn decode(&self, z: Tensor<B, 5>, space: LatentSpace) -> Result<Tensor<B, 5>, VaeError> {
        let mut stream = self.decode_stream();
        self.decode_chunk(&mut stream, z, space)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layer_lists_follow_the_reference_indices() {
        let e = encoder_specs();
        assert_eq!(e.len(), 18);
        assert!(matches!(e[2], Spec::Pool(64, 2)));
        assert!(matches!(e[12], Spec::Pool(64, 1)));
        assert!(matches!(e[17], Spec::Conv { o: 16, .. }));
        let d = decoder_specs([true, true]);
        assert_eq!(d.len(), 23);
        assert!(matches!(d[0], Spec::Clamp));
        assert!(matches!(d[7], Spec::Grow(256, 1)));
        assert!(matches!(d[13], Spec::Grow(128, 2)));
        assert!(matches!(d[19], Spec::Grow(64, 2)));
        assert!(matches!(d[22], Spec::Conv { i: 64, o: 3, .. }));
        assert_eq!(TaeConfig::new(TaeKind::Tae).frames_per_latent(), 4);
        let preview = TaeConfig {
            decoder_time_upscale: [false, false],
            ..TaeConfig::new(TaeKind::Tae)
        };
        assert_eq!(preview.frames_per_latent(), 1);
    }
}
