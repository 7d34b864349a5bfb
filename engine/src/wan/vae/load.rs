//! Building the Wan VAE from a checkpoint under original keys: every layer's tensors taken by
//! name and shape, the causal convolutions' kernels folded and their cache slots numbered.

use super::AutoencoderKLWanConfig;
use super::blocks::{AttentionBlock, Coder, Layer, Resample, ResampleMode, ResidualBlock};
use super::conv::{CausalConv3d, Conv2d};
use crate::wan::nn::tensor;
use crate::wan::weights::{Checkpoint, LoadError};
use burn::tensor::{DType, Tensor, TensorData, backend::Backend};

/// Loader state: the checkpoint, device, dtype and the running slot counter.
pub(super) struct Loader<'a, B: Backend> {
    pub(super) ck: &'a mut Checkpoint,
    pub(super) device: &'a B::Device,
    pub(super) dtype: DType,
    pub(super) slots: usize,
}

impl<B: Backend> Loader<'_, B> {
    /// `{prefix}.weight` `[o, i, kt, kh, kw]` and `{prefix}.bias`; `pad` = (p_t, p_h, p_w).
    pub(super) fn conv3d(
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

pub(super) fn load_encoder<B: Backend>(
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

pub(super) fn load_decoder<B: Backend>(
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
