//! The DiT's building blocks as plain functions over burn tensors: linear layers, the three
//! norms, attention, GELU(tanh). Weights are loaded, never trained, so these hold tensors
//! directly instead of burn `Module`s.

use super::{
    quant::Fp8Weight,
    weights::{Checkpoint, LoadError},
};
use burn::tensor::{
    DType, Tensor, TensorData, activation::softmax, backend::Backend,
    module::attention as fused_attention, ops::AttentionModuleOptions,
};

/// Builds a tensor from checkpoint data in `dtype` on `device`.
pub fn tensor<B: Backend, const D: usize>(
    data: TensorData,
    device: &B::Device,
    dtype: DType,
) -> Tensor<B, D> {
    Tensor::from_data(data.convert_dtype(dtype), (device, dtype))
}

/// `y = x·Wᵀ + b` (PyTorch `nn.Linear`), weight stored transposed.
#[derive(Clone, Debug)]
pub struct Linear<B: Backend> {
    pub weight: Weight<B>,
    /// `[out]`.
    pub bias: Option<Tensor<B, 1>>,
}

/// A [`Linear`]'s weight.
#[derive(Clone, Debug)]
pub enum Weight<B: Backend> {
    /// `[in, out]` in the compute dtype.
    Dense(Tensor<B, 2>),
    /// fp8 e4m3fn codes with a per-tensor scale, multiplied by the GPU's fp8 GEMM.
    Fp8(Fp8Weight<B>),
    /// fp8 where no fp8 GEMM runs: the dequantized weight `[in, out]` in the compute dtype,
    /// the input rounded through e4m3fn on each call (the same numbers, emulated).
    Fp8Emulated(Tensor<B, 2>),
}

impl<B: Backend> Linear<B> {
    /// A dense layer from `weight_t` `[in, out]` and `bias` `[out]`.
    pub fn new(weight_t: Tensor<B, 2>, bias: Option<Tensor<B, 1>>) -> Self {
        Self {
            weight: Weight::Dense(weight_t),
            bias,
        }
    }

    /// Loads `{prefix}.weight` `[out, in]` and, if `bias`, `{prefix}.bias` `[out]`.
    pub fn load(
        ck: &mut Checkpoint,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let w: Tensor<B, 2> = tensor(
            ck.take(&format!("{prefix}.weight"), &[d_out, d_in])?,
            device,
            dtype,
        );
        let bias = if bias {
            Some(tensor(
                ck.take(&format!("{prefix}.bias"), &[d_out])?,
                device,
                dtype,
            ))
        } else {
            None
        };
        Ok(Self::new(w.transpose(), bias))
    }

    /// The layers side by side as one, `[in, Σ out]` with the biases concatenated: layer
    /// `i`'s output is a column range of the result (one GEMM instead of several over the
    /// same input). The weights keep their `[out, in]` storage.
    ///
    /// # Panics
    /// On a quantized layer (quantize after concatenating), layers of different input
    /// widths, or some with a bias and some without.
    pub fn concat(layers: Vec<Linear<B>>) -> Self {
        let weights = layers
            .iter()
            .map(|l| match &l.weight {
                Weight::Dense(w) => w.clone().transpose(),
                _ => panic!("Linear::concat: concatenate before quantizing"),
            })
            .collect();
        let biases: Vec<Tensor<B, 1>> = layers.iter().filter_map(|l| l.bias.clone()).collect();
        let bias = match biases.len() {
            0 => None,
            n if n == layers.len() => Some(Tensor::cat(biases, 0)),
            _ => panic!("Linear::concat: some layers have a bias and some do not"),
        };
        Self::new(Tensor::cat(weights, 0).transpose(), bias)
    }

    /// Merges a LoRA into the weight: `W += scale·B·A` (PEFT's `merge`), computed in f32 and
    /// stored back in the weight's dtype.
    ///
    /// # Shapes
    /// - a: `[r, in]` (`lora_A`), b: `[out, r]` (`lora_B`)
    ///
    /// # Panics
    /// On a quantized layer (LoRAs are merged first).
    pub fn merge_lora(&mut self, a: Tensor<B, 2>, b: Tensor<B, 2>, scale: f64) {
        let out = self.dims()[1];
        self.merge_lora_into(a, b, scale, 0..out);
    }

    /// [`Linear::merge_lora`] into the output columns `cols` (one layer of a [`Linear::concat`]).
    ///
    /// # Shapes
    /// - a: `[r, in]` (`lora_A`), b: `[cols.len(), r]` (`lora_B`)
    ///
    /// # Panics
    /// On a quantized layer, or columns outside the layer.
    pub fn merge_lora_into(
        &mut self,
        a: Tensor<B, 2>,
        b: Tensor<B, 2>,
        scale: f64,
        cols: std::ops::Range<usize>,
    ) {
        let Weight::Dense(w) = &mut self.weight else {
            panic!("merge_lora: merge LoRAs before quantizing");
        };
        let dtype = w.dtype();
        let d_in = w.dims()[0];
        // In W's `[out, in]` storage: W[cols] += scale·B·A.
        let stored = w.clone().transpose();
        let delta = b.cast(DType::F32).matmul(a.cast(DType::F32)) * scale;
        let part = stored
            .clone()
            .slice([cols.clone(), 0..d_in])
            .cast(DType::F32)
            + delta;
        *w = stored
            .slice_assign([cols, 0..d_in], part.cast(dtype))
            .transpose();
    }

    /// Quantizes the weight to fp8 e4m3fn (per-tensor scale; [`super::quant`]): codes for the
    /// GPU's fp8 GEMM where it runs for this layer's shape, the emulation otherwise. A
    /// quantized layer stays as it is.
    pub fn quantize_fp8(&mut self) {
        let Weight::Dense(w) = &self.weight else {
            return;
        };
        let [d_in, d_out] = w.dims();
        self.weight = if fp8_gemm_runs::<B>(w.dtype(), d_in, d_out) {
            Weight::Fp8(Fp8Weight::from_weight_t(w))
        } else {
            Weight::Fp8Emulated(super::quant::fake_quantize_weight(w))
        };
    }

    /// `[in, out]`.
    pub fn dims(&self) -> [usize; 2] {
        match &self.weight {
            Weight::Dense(w) | Weight::Fp8Emulated(w) => w.dims(),
            Weight::Fp8(f) => {
                let [d_out, d_in] = f.dims();
                [d_in, d_out]
            }
        }
    }

    /// `gelu_tanh(self.forward(x))`; on CUDA in bf16 the GELU is cuBLASLt's epilogue (applied
    /// to the f32 result before rounding).
    ///
    /// # Shapes
    /// - x: `[..., in]` (rank `D`) → `[..., out]`
    pub fn forward_gelu<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.project(x, true)
    }

    /// # Shapes
    /// - x: `[..., in]` (rank `D`) → `[..., out]`
    pub fn forward<const D: usize>(&self, x: Tensor<B, D>) -> Tensor<B, D> {
        self.project(x, false)
    }

    /// `residual + self.forward(x)`; on CUDA in bf16 (dense weights) one cuBLASLt GEMM with the
    /// residual as its C input, rounded once.
    ///
    /// # Shapes
    /// - x: `[..., in]` (rank `D`), residual: `[..., out]` → `[..., out]`
    pub fn forward_residual<const D: usize>(
        &self,
        x: Tensor<B, D>,
        residual: Tensor<B, D>,
    ) -> Tensor<B, D> {
        #[cfg(feature = "cuda")]
        let x = match &self.weight {
            Weight::Dense(w) => {
                let (x_dims, dims) = (x.dims(), residual.dims());
                let rows: usize = dims[..D - 1].iter().product();
                let r = residual.clone().reshape([rows, dims[D - 1]]);
                match crate::cuda::linear(
                    x.reshape([rows, x_dims[D - 1]]),
                    w,
                    self.bias.as_ref(),
                    Some(&r),
                    false,
                ) {
                    Ok(y) => return y.reshape(dims),
                    Err(x) => x.reshape(x_dims),
                }
            }
            _ => x,
        };
        residual + self.forward(x)
    }

    /// `x·Wᵀ + b`, then GELU when `gelu`, over the rows of `x`: one cuBLASLt GEMM with the
    /// bias (and GELU) in its epilogue where it applies (bf16 or fp8 on CUDA), burn's matmul
    /// otherwise.
    ///
    /// # Shapes
    /// - x: `[..., in]` (rank `D`) → `[..., out]`
    fn project<const D: usize>(&self, x: Tensor<B, D>, gelu: bool) -> Tensor<B, D> {
        let dims = x.dims();
        let d_in = dims[D - 1];
        let rows: usize = dims[..D - 1].iter().product();
        let [_, d_out] = self.dims();
        let mut out = dims;
        out[D - 1] = d_out;
        let x = x.reshape([rows, d_in]);
        let (x, weight_t) = match &self.weight {
            Weight::Dense(w) => (x, w.clone()),
            Weight::Fp8Emulated(w) => (
                super::quant::fake_quantize_input(x).cast(w.dtype()),
                w.clone(),
            ),
            Weight::Fp8(f) => {
                #[cfg(feature = "cuda")]
                let x = match crate::cuda::linear_fp8(
                    x,
                    &f.codes,
                    &f.scale,
                    self.bias.as_ref(),
                    gelu,
                ) {
                    Ok(y) => return y.reshape(out),
                    Err(x) => x,
                };
                // Only where the fp8 GEMM stopped applying after the load: decode the codes.
                let w = f.dequantized_t().cast(x.dtype());
                (
                    super::quant::fake_quantize_input(x.clone()).cast(x.dtype()),
                    w,
                )
            }
        };
        #[cfg(feature = "cuda")]
        let x = match crate::cuda::linear(x, &weight_t, self.bias.as_ref(), None, gelu) {
            Ok(y) => return y.reshape(out),
            Err(x) => x,
        };
        let y = x.matmul(weight_t);
        let y = match &self.bias {
            Some(b) => y + b.clone().unsqueeze_dim(0),
            None => y,
        };
        let y = if gelu { gelu_tanh(y) } else { y };
        y.reshape(out)
    }
}

/// Whether a `[d_in, d_out]` layer of `dtype` on backend `B` runs on the GPU's fp8 GEMM.
#[cfg_attr(not(feature = "cuda"), allow(clippy::extra_unused_type_parameters))]
fn fp8_gemm_runs<B: Backend>(dtype: DType, d_in: usize, d_out: usize) -> bool {
    #[cfg(feature = "cuda")]
    {
        crate::cuda::is_cuda::<B>()
            && dtype == DType::BF16
            && crate::cuda::fp8::fits(d_in, d_out)
            && crate::cuda::fp8::supported()
    }
    #[cfg(not(feature = "cuda"))]
    {
        let _ = (dtype, d_in, d_out);
        false
    }
}

/// LayerNorm over the last dimension, computed in f32 (`WanLayerNorm` / `FP32LayerNorm`),
/// with an optional affine `(weight, bias)` kept in f32. The result has `x`'s dtype.
///
/// # Shapes
/// - x: `[B, L, D]`
pub fn layer_norm<B: Backend>(
    x: Tensor<B, 3>,
    eps: f64,
    affine: Option<&(Tensor<B, 1>, Tensor<B, 1>)>,
) -> Tensor<B, 3> {
    // One fused kernel where it applies (bf16 with an affine on CUDA).
    #[cfg(feature = "cuda")]
    let x = match affine {
        Some((w, b)) => match crate::cuda::layer_norm_affine(x, w, b, eps) {
            Ok(y) => return y,
            Err(x) => x,
        },
        None => x,
    };
    let dtype = x.dtype();
    let y = layer_norm_f32(x.cast(DType::F32), eps);
    let y = match affine {
        Some((w, b)) => {
            y * w.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0)
                + b.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0)
        }
        None => y,
    };
    y.cast(dtype)
}

/// LayerNorm without affine, input and output f32.
pub fn layer_norm_f32<B: Backend>(x: Tensor<B, 3>, eps: f64) -> Tensor<B, 3> {
    let mean = x.clone().mean_dim(2);
    let centered = x - mean;
    let var = (centered.clone() * centered.clone()).mean_dim(2);
    centered / (var + eps).sqrt()
}

/// RMSNorm over the last dimension in f32, times `weight` (f32): `x·rsqrt(mean(x²)+eps)·w`.
///
/// # Shapes
/// - x: `[B, L, D]`, weight `[D]`
pub fn rms_norm<B: Backend>(x: Tensor<B, 3>, weight: &Tensor<B, 1>, eps: f64) -> Tensor<B, 3> {
    // One fused kernel where it applies (bf16 on CUDA).
    #[cfg(feature = "cuda")]
    let x = match crate::cuda::rms_norm(x, weight, eps) {
        Ok(y) => return y,
        Err(x) => x,
    };
    let dtype = x.dtype();
    let x = x.cast(DType::F32);
    let ms = (x.clone() * x.clone()).mean_dim(2);
    let y = x / (ms + eps).sqrt();
    (y * weight.clone().unsqueeze_dim::<2>(0).unsqueeze_dim(0)).cast(dtype)
}

/// 2-D convolution, dilation 1, one group (`F.conv2d`), the bias added after; through cuDNN
/// on CUDA where it applies (unless `HANZO_LIVE_CUDA_OPS=0`).
///
/// # Shapes
/// - x: `[N, C, H, W]`, weight: `[O, C, kh, kw]`, bias: `[O]` → `[N, O, H', W']`
pub fn conv2d<B: Backend>(
    x: Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    stride: [usize; 2],
    pad: [usize; 2],
) -> Tensor<B, 4> {
    #[cfg(feature = "cuda")]
    let x = match crate::cuda::conv2d(x, weight, bias, stride, pad) {
        Ok(y) => return y,
        Err(x) => x,
    };
    burn::tensor::module::conv2d(
        x,
        weight.clone(),
        bias.cloned(),
        burn::tensor::ops::ConvOptions::new(stride, pad, [1, 1], 1),
    )
}

/// GELU with the tanh approximation (`nn.GELU(approximate='tanh')`).
pub fn gelu_tanh<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let cube = x.clone() * x.clone() * x.clone();
    let inner = (x.clone() + cube * 0.044715) * c;
    x.clone() * 0.5 * (inner.tanh() + 1.0)
}

/// How attention is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// The backend's fused attention (`burn::tensor::module::attention`): tiled online
    /// softmax on flex; on cubecl backends an autotuned kernel.
    #[default]
    Fused,
    /// `softmax(q·kᵀ/√d)·v` with matmuls (materialises the scores). On burn-cuda 0.21 this
    /// is faster than the autotuned fused kernel for Wan's shapes (docs/perf.md).
    Naive,
}

/// Scaled dot-product attention, `1/√d` scale; `mask` is `true` where a key is hidden.
///
/// # Shapes
/// - q: `[B, H, Lq, d]`, k, v: `[B, H, Lk, d]`, mask: `[B|1, H|1, Lq, Lk]` → `[B, H, Lq, d]`
pub fn attention<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    mask: Option<Tensor<B, 4, burn::tensor::Bool>>,
    kernel: AttentionKernel,
) -> Tensor<B, 4> {
    // The fused CUDA kernel where it applies (bf16, head_dim 128, no mask).
    #[cfg(feature = "cuda")]
    let (q, k, v) = match mask {
        None => match crate::cuda::attention(q, k, v) {
            Ok(out) => return out,
            Err(qkv) => qkv,
        },
        Some(_) => (q, k, v),
    };
    match kernel {
        AttentionKernel::Fused => {
            let [b, h, lq, _] = q.dims();
            let lk = k.dims()[2];
            let mask = mask.map(|m| m.expand([b, h, lq, lk]));
            fused_attention(q, k, v, mask, None, AttentionModuleOptions::default())
        }
        AttentionKernel::Naive => {
            let d = q.dims()[3];
            let dtype = q.dtype();
            let scores = q.matmul(k.swap_dims(2, 3)).cast(DType::F32) / (d as f64).sqrt();
            let scores = match mask {
                Some(m) => {
                    let dims = scores.dims();
                    scores.mask_fill(m.expand(dims), f32::NEG_INFINITY)
                }
                None => scores,
            };
            softmax(scores, 3).cast(dtype).matmul(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Flex;

    fn t2(v: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    #[test]
    fn lora_merge_adds_scale_times_b_a() {
        // W = [[1, 2, 3], [4, 5, 6]] (out 2, in 3); A = [[1, 0, 2]] (r 1); B = [[1], [-1]].
        // B·A = [[1, 0, 2], [-1, 0, -2]]; with scale 0.5: W' = [[1.5, 2, 4], [3.5, 5, 5]].
        let w = t2(vec![1., 2., 3., 4., 5., 6.], [2, 3]);
        let mut lin = Linear::<B>::new(w.transpose(), None);
        lin.merge_lora(t2(vec![1., 0., 2.], [1, 3]), t2(vec![1., -1.], [2, 1]), 0.5);
        let x = t2(vec![1., 0., 0., 0., 1., 0., 0., 0., 1.], [3, 3]);
        // Rows of x·Wᵀ for the unit vectors are the columns of W'.
        let y: Vec<f32> = lin.forward(x).into_data().to_vec().unwrap();
        assert_eq!(y, vec![1.5, 3.5, 2., 5., 4., 5.]);
    }

    #[test]
    fn forward_residual_adds_the_residual_to_the_projection() {
        // W = [[1, 2, 3], [4, 5, 6]], b = [1, -1]; x = [1, 1, 0] → x·Wᵀ + b = [4, 8]; + [0.5, 2].
        let w = t2(vec![1., 2., 3., 4., 5., 6.], [2, 3]);
        let lin = Linear::<B>::new(
            w.transpose(),
            Some(Tensor::from_data([1f32, -1.], &Default::default())),
        );
        let y: Vec<f32> = lin
            .forward_residual(t2(vec![1., 1., 0.], [1, 3]), t2(vec![0.5, 2.], [1, 2]))
            .into_data()
            .to_vec()
            .unwrap();
        assert_eq!(y, vec![4.5, 10.]);
    }

    #[test]
    fn concatenated_layers_give_each_layers_output_and_take_a_lora_in_its_columns() {
        // Two layers of input 3: W1 = [[1, 2, 3]] + b1 [10], W2 = [[4, 5, 6], [7, 8, 9]] + b2 [20, 30].
        let l1 = Linear::<B>::new(
            t2(vec![1., 2., 3.], [1, 3]).transpose(),
            Some(Tensor::from_data([10f32], &Default::default())),
        );
        let l2 = Linear::<B>::new(
            t2(vec![4., 5., 6., 7., 8., 9.], [2, 3]).transpose(),
            Some(Tensor::from_data([20f32, 30.], &Default::default())),
        );
        let x = t2(vec![1., 0., -1., 2., 1., 0.], [2, 3]);
        let apart: Vec<f32> = Tensor::cat(vec![l1.forward(x.clone()), l2.forward(x.clone())], 1)
            .into_data()
            .to_vec()
            .unwrap();
        let mut both = Linear::concat(vec![l1, l2]);
        assert_eq!(both.dims(), [3, 3]);
        let y: Vec<f32> = both.forward(x.clone()).into_data().to_vec().unwrap();
        assert_eq!(y, apart);
        // A LoRA on the second layer only: B·A = [[1, 0, 2], [-1, 0, -2]], scale 0.5 →
        // W2' = [[4.5, 5, 7], [6.5, 8, 8]]; the first layer's column is untouched.
        both.merge_lora_into(
            t2(vec![1., 0., 2.], [1, 3]),
            t2(vec![1., -1.], [2, 1]),
            0.5,
            1..3,
        );
        let y: Vec<f32> = both.forward(x).into_data().to_vec().unwrap();
        // Row [1, 0, -1]: 1 − 3 + 10 = 8; 4.5 − 7 + 20 = 17.5; 6.5 − 8 + 30 = 28.5.
        // Row [2, 1, 0]: 2 + 2 + 10 = 14; 9 + 5 + 20 = 34; 13 + 8 + 30 = 51.
        assert_eq!(y, vec![8., 17.5, 28.5, 14., 34., 51.]);
    }
}
