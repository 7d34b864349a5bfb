//! The Wan2.1 diffusion transformer (`WanModel` upstream), bidirectional and causal.
//!
//! Upstream: `Wan-Video/Wan2.1@9737cba wan/modules/model.py` (`WanModel`,
//! `WanAttentionBlock`, `Head`, `sinusoidal_embedding_1d`, `rope_params`, `rope_apply`) and, for
//! the causal form, `guandeh17/Self-Forcing@33593df wan/modules/causal_model.py`.
//! This file follows them line by line.

use super::{
    cache::{CrossCache, KvCache, WanCache},
    config::WanConfig,
    nn::{
        AttentionKernel, Linear, attention, gelu_tanh, layer_norm, layer_norm_f32, rms_norm, tensor,
    },
    rope::{Rope, RopeMemo},
    weights::{Checkpoint, LoadError},
};
use crate::profile::stage;
use burn::tensor::{Bool, DType, Tensor, TensorData, activation::silu, backend::Backend};

/// Timesteps of a call: one per batch row (bidirectional) or one per latent frame (causal).
#[derive(Clone, Debug, PartialEq)]
pub struct Timesteps {
    /// `[B][F]`.
    pub per_frame: Vec<Vec<f64>>,
}

impl Timesteps {
    /// The same `t` for every frame of each row.
    pub fn per_row(t: &[f64], frames: usize) -> Self {
        Self {
            per_frame: t.iter().map(|t| vec![*t; frames]).collect(),
        }
    }
}

/// The sinusoidal timestep embedding in f64: `[cos(t·ω_j)…, sin(t·ω_j)…]`,
/// `ω_j = 10000^(−j/half)` (`sinusoidal_embedding_1d`).
pub fn timestep_sinusoid(freq_dim: usize, t: f64) -> Vec<f64> {
    let half = freq_dim / 2;
    let omega = |j: usize| 10_000f64.powf(-(j as f64) / half as f64);
    (0..half)
        .map(|j| (t * omega(j)).cos())
        .chain((0..half).map(|j| (t * omega(j)).sin()))
        .collect()
}

/// Self- or cross-attention weights (`WanSelfAttention` / `WanCrossAttention`).
#[derive(Clone, Debug)]
struct AttentionWeights<B: Backend> {
    q: Linear<B>,
    k: Linear<B>,
    v: Linear<B>,
    o: Linear<B>,
    /// RMSNorm weights over the full width, f32.
    norm_q: Tensor<B, 1>,
    norm_k: Tensor<B, 1>,
}

impl<B: Backend> AttentionWeights<B> {
    fn load(
        ck: &mut Checkpoint,
        prefix: &str,
        dim: usize,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let lin = |ck: &mut Checkpoint, n: &str| {
            Linear::load(ck, &format!("{prefix}.{n}"), dim, dim, true, device, dtype)
        };
        let norm = |ck: &mut Checkpoint, n: &str| -> Result<Tensor<B, 1>, LoadError> {
            Ok(tensor(
                ck.take(&format!("{prefix}.{n}.weight"), &[dim])?,
                device,
                DType::F32,
            ))
        };
        Ok(Self {
            q: lin(ck, "q")?,
            k: lin(ck, "k")?,
            v: lin(ck, "v")?,
            o: lin(ck, "o")?,
            norm_q: norm(ck, "norm_q")?,
            norm_k: norm(ck, "norm_k")?,
        })
    }
}

/// The self-attention's weights (`WanSelfAttention`): q, k and v read the same tokens, so
/// they are one layer, `[D, 3·D]` (one GEMM).
#[derive(Clone, Debug)]
struct SelfAttentionWeights<B: Backend> {
    qkv: Linear<B>,
    o: Linear<B>,
    /// RMSNorm weights over the full width, f32.
    norm_q: Tensor<B, 1>,
    norm_k: Tensor<B, 1>,
}

impl<B: Backend> From<AttentionWeights<B>> for SelfAttentionWeights<B> {
    fn from(a: AttentionWeights<B>) -> Self {
        Self {
            qkv: Linear::concat(vec![a.q, a.k, a.v]),
            o: a.o,
            norm_q: a.norm_q,
            norm_k: a.norm_k,
        }
    }
}

/// One `WanAttentionBlock`.
#[derive(Clone, Debug)]
struct Block<B: Backend> {
    /// `[1, 6, D]` f32: shift/scale/gate of the self-attention, then of the FFN.
    modulation: Tensor<B, 3>,
    self_attn: SelfAttentionWeights<B>,
    /// The affine LayerNorm before the cross-attention (`norm3` upstream), f32.
    norm3: (Tensor<B, 1>, Tensor<B, 1>),
    cross_attn: AttentionWeights<B>,
    ffn_in: Linear<B>,
    ffn_out: Linear<B>,
}

impl<B: Backend> Block<B> {
    /// The layer that holds the linear of an original name ([`super::lora::BLOCK_LINEARS`])
    /// and that linear's output columns in it (the self-attention's q, k and v are thirds
    /// of one layer).
    fn linear_named(&mut self, name: &str) -> Option<(&mut Linear<B>, std::ops::Range<usize>)> {
        fn whole<B: Backend>(l: &mut Linear<B>) -> (&mut Linear<B>, std::ops::Range<usize>) {
            let out = l.dims()[1];
            (l, 0..out)
        }
        let third = self.self_attn.qkv.dims()[1] / 3;
        Some(match name {
            "self_attn.q" => (&mut self.self_attn.qkv, 0..third),
            "self_attn.k" => (&mut self.self_attn.qkv, third..2 * third),
            "self_attn.v" => (&mut self.self_attn.qkv, 2 * third..3 * third),
            "self_attn.o" => whole(&mut self.self_attn.o),
            "cross_attn.q" => whole(&mut self.cross_attn.q),
            "cross_attn.k" => whole(&mut self.cross_attn.k),
            "cross_attn.v" => whole(&mut self.cross_attn.v),
            "cross_attn.o" => whole(&mut self.cross_attn.o),
            "ffn.0" => whole(&mut self.ffn_in),
            "ffn.2" => whole(&mut self.ffn_out),
            _ => return None,
        })
    }

    /// Every layer once.
    fn linears_mut(&mut self) -> [&mut Linear<B>; 8] {
        [
            &mut self.self_attn.qkv,
            &mut self.self_attn.o,
            &mut self.cross_attn.q,
            &mut self.cross_attn.k,
            &mut self.cross_attn.v,
            &mut self.cross_attn.o,
            &mut self.ffn_in,
            &mut self.ffn_out,
        ]
    }
}

/// How the blocks' self-attention sees keys.
enum SelfAttention<'a, B: Backend> {
    /// Over the call's own tokens, optionally masked (`true` = hidden), `[1, 1, L, L]`.
    Full(Option<Tensor<B, 4, Bool>>),
    /// Through a KV cache; row `i`'s tokens start at absolute token `starts[i]`.
    Cached {
        cache: &'a mut dyn KvCache<B>,
        starts: &'a [usize],
    },
}

/// Part `i` of a block's modulation.
///
/// # Shapes
/// - m: `[B, F, 6, D]` → `[B, F, D]`
fn part<B: Backend>(m: &Tensor<B, 4>, i: usize) -> Tensor<B, 3> {
    let [b, f, _, d] = m.dims();
    m.clone().narrow(2, i, 1).reshape([b, f, d])
}

/// The Wan2.1 DiT with its weights, in one compute dtype (norms, modulation and the time
/// embedding stay f32, as upstream keeps them).
#[derive(Clone, Debug)]
pub struct WanModel<B: Backend> {
    pub config: WanConfig,
    pub dtype: DType,
    pub kernel: AttentionKernel,
    device: B::Device,
    /// Conv3d patch embedding as a matmul: `[C·pt·ph·pw, D]` and `[D]`.
    patch_weight_t: Tensor<B, 2>,
    patch_bias: Tensor<B, 1>,
    text_0: Linear<B>,
    text_2: Linear<B>,
    /// f32.
    time_0: Linear<B>,
    time_2: Linear<B>,
    time_projection: Linear<B>,
    blocks: Vec<Block<B>>,
    /// `[1, 2, D]` f32.
    head_modulation: Tensor<B, 3>,
    head: Linear<B>,
    /// The RoPE tables of the last call's positions.
    rope: RopeMemo<B>,
}

impl<B: Backend> WanModel<B> {
    /// Builds the model from a checkpoint (original keys; [`Checkpoint::read`] renames the
    /// diffusers layout). Every tensor must be present with its shape and none may be left.
    pub fn load(
        config: WanConfig,
        mut ck: Checkpoint,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let c = &config;
        let (d, ck) = (c.dim, &mut ck);
        let [pt, ph, pw] = c.patch_size;
        let patch_in = c.in_dim * pt * ph * pw;
        let patch: Tensor<B, 5> = tensor(
            ck.take("patch_embedding.weight", &[d, c.in_dim, pt, ph, pw])?,
            device,
            dtype,
        );
        let patch_bias = tensor(ck.take("patch_embedding.bias", &[d])?, device, dtype);
        let text_0 = Linear::load(ck, "text_embedding.0", c.text_dim, d, true, device, dtype)?;
        let text_2 = Linear::load(ck, "text_embedding.2", d, d, true, device, dtype)?;
        let f32 = DType::F32;
        let time_0 = Linear::load(ck, "time_embedding.0", c.freq_dim, d, true, device, f32)?;
        let time_2 = Linear::load(ck, "time_embedding.2", d, d, true, device, f32)?;
        let time_projection = Linear::load(ck, "time_projection.1", d, 6 * d, true, device, f32)?;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("blocks.{i}");
            blocks.push(Block {
                modulation: tensor(
                    ck.take(&format!("{p}.modulation"), &[1, 6, d])?,
                    device,
                    f32,
                ),
                self_attn: AttentionWeights::load(ck, &format!("{p}.self_attn"), d, device, dtype)?
                    .into(),
                norm3: (
                    tensor(ck.take(&format!("{p}.norm3.weight"), &[d])?, device, f32),
                    tensor(ck.take(&format!("{p}.norm3.bias"), &[d])?, device, f32),
                ),
                cross_attn: AttentionWeights::load(
                    ck,
                    &format!("{p}.cross_attn"),
                    d,
                    device,
                    dtype,
                )?,
                ffn_in: Linear::load(ck, &format!("{p}.ffn.0"), d, c.ffn_dim, true, device, dtype)?,
                ffn_out: Linear::load(
                    ck,
                    &format!("{p}.ffn.2"),
                    c.ffn_dim,
                    d,
                    true,
                    device,
                    dtype,
                )?,
            });
        }
        let head_modulation = tensor(ck.take("head.modulation", &[1, 2, d])?, device, f32);
        let head_out = c.out_dim * pt * ph * pw;
        let head = Linear::load(ck, "head.head", d, head_out, true, device, dtype)?;
        ck.finish_ref()?;
        Ok(Self {
            config,
            dtype,
            kernel: AttentionKernel::default(),
            device: device.clone(),
            patch_weight_t: patch.reshape([d, patch_in]).transpose(),
            patch_bias,
            text_0,
            text_2,
            time_0,
            time_2,
            time_projection,
            blocks,
            head_modulation,
            head,
            rope: RopeMemo::default(),
        })
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Folds a LoRA into the blocks' linears: `W += scale·B·A` for each module the LoRA
    /// names (`blocks.N.self_attn.q`, …, `blocks.N.ffn.2`). Returns how many linears were
    /// merged; a LoRA module that is not one of them, or whose shapes do not fit, is an error.
    pub fn merge_lora(&mut self, lora: &super::lora::Lora, scale: f64) -> Result<usize, LoadError> {
        let mut left: std::collections::BTreeSet<&String> = lora.pairs.keys().collect();
        let mut merged = 0;
        let device = self.device.clone();
        for (i, blk) in self.blocks.iter_mut().enumerate() {
            for name in super::lora::BLOCK_LINEARS {
                let module = format!("blocks.{i}.{name}");
                let Some(pair) = lora.pairs.get(&module) else {
                    continue;
                };
                left.remove(&module);
                let (lin, cols) = blk
                    .linear_named(name)
                    .expect("every BLOCK_LINEARS name is a block's linear");
                let (d_in, d_out) = (lin.dims()[0], cols.len());
                let r = pair.a.shape[0];
                for (key, found, want) in [
                    ("lora_A", pair.a.shape.to_vec(), vec![r, d_in]),
                    ("lora_B", pair.b.shape.to_vec(), vec![d_out, r]),
                ] {
                    if found != want {
                        return Err(LoadError::Shape {
                            key: format!("{module}.{key}.weight"),
                            expected: want,
                            found,
                        });
                    }
                }
                let a = tensor(pair.a.clone(), &device, DType::F32);
                let b = tensor(pair.b.clone(), &device, DType::F32);
                lin.merge_lora_into(a, b, scale, cols);
                merged += 1;
            }
        }
        if !left.is_empty() {
            return Err(LoadError::Unexpected {
                count: left.len(),
                first: left.into_iter().take(5).cloned().collect(),
            });
        }
        Ok(merged)
    }

    /// Quantizes the blocks' linears to fp8 e4m3fn with per-tensor scales
    /// ([`super::quant`]; the self-attention's q, k and v, one layer, share a scale); the
    /// embeddings, the time MLP and the head keep the compute dtype. Merge LoRAs first.
    /// Returns how many layers run on the GPU's fp8 GEMM (the rest are emulated).
    pub fn quantize_fp8(&mut self) -> usize {
        let mut on_gpu = 0;
        for blk in &mut self.blocks {
            for lin in blk.linears_mut() {
                lin.quantize_fp8();
                on_gpu += usize::from(matches!(lin.weight, super::nn::Weight::Fp8(_)));
            }
        }
        on_gpu
    }

    /// Embeds the context once (`text_embedding`), zero-padding it to `text_len` rows.
    ///
    /// # Shapes
    /// - context: `[B, L ≤ text_len, text_dim]` → `[B, text_len, D]`
    pub fn embed_context(&self, context: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, l, td] = context.dims();
        let context = context.cast(self.dtype);
        let context = if l < self.config.text_len {
            let pad = Tensor::zeros(
                [b, self.config.text_len - l, td],
                (&self.device, self.dtype),
            );
            Tensor::cat(vec![context, pad], 1)
        } else {
            context
        };
        self.text_2.forward(gelu_tanh(self.text_0.forward(context)))
    }

    /// `e` `[B, F, D]` and `e0` `[B, F, 6, D]` (f32) for per-frame timesteps.
    fn time_embeddings(&self, t: &Timesteps) -> (Tensor<B, 3>, Tensor<B, 4>) {
        let b = t.per_frame.len();
        let f = t.per_frame.first().map_or(0, Vec::len);
        let fd = self.config.freq_dim;
        let values: Vec<f32> = t
            .per_frame
            .iter()
            .flatten()
            .flat_map(|t| timestep_sinusoid(fd, *t))
            .map(|x| x as f32)
            .collect();
        let s: Tensor<B, 3> = Tensor::from_data(
            TensorData::new(values, [b, f, fd]),
            (&self.device, DType::F32),
        );
        let e = self.time_2.forward(silu(self.time_0.forward(s)));
        let e0 = self.time_projection.forward(silu(e.clone()));
        let d = self.config.dim;
        (e, e0.reshape([b, f, 6, d]))
    }

    /// Latents to tokens (`patch_embedding`, a Conv3d with kernel = stride = patch).
    ///
    /// # Shapes
    /// - x: `[B, C, F, H, W]` → `[B, F·(H/ph)·(W/pw), D]`
    fn patchify(&self, x: Tensor<B, 5>) -> Tensor<B, 3> {
        let [b, c, f, hh, ww] = x.dims();
        let [_, ph, pw] = self.config.patch_size;
        let (h, w) = (hh / ph, ww / pw);
        let x: Tensor<B, 7> = x.cast(self.dtype).reshape([b, c, f, h, ph, w, pw]);
        let x = x
            .permute([0, 2, 3, 5, 1, 4, 6])
            .reshape([b, f * h * w, c * ph * pw]);
        let [_, d] = self.patch_weight_t.dims();
        let y = x
            .reshape([b * f * h * w, c * ph * pw])
            .matmul(self.patch_weight_t.clone())
            + self.patch_bias.clone().unsqueeze_dim(0);
        y.reshape([b, f * h * w, d])
    }

    /// Tokens to latents (`Head` + `unpatchify` upstream: channel `((q·pw)+r)·C + c` of patch (h, w) is pixel
    /// (2h+q, 2w+r)).
    ///
    /// # Shapes
    /// - x: `[B, F·h·w, C·ph·pw]` → `[B, C, F, h·ph, w·pw]`
    fn unpatchify(&self, x: Tensor<B, 3>, f: usize, h: usize, w: usize) -> Tensor<B, 5> {
        let b = x.dims()[0];
        let [_, ph, pw] = self.config.patch_size;
        let c = self.config.out_dim;
        let x: Tensor<B, 7> = x.reshape([b, f, h, w, ph, pw, c]);
        x.permute([0, 6, 1, 2, 4, 3, 5])
            .reshape([b, c, f, h * ph, w * pw])
    }

    /// The cross-attention K/V of a context for every layer (`WanCrossAttention`'s k and v
    /// over `text_embedding(context)`), reused by every call until the prompt changes.
    ///
    /// # Shapes
    /// - context: `[B, L ≤ text_len, text_dim]` → per layer `[B, H, text_len, d]` twice
    pub fn cross_cache(&self, context: Tensor<B, 3>) -> CrossCache<B> {
        let eps = self.config.eps;
        let ctx = self.embed_context(context);
        let layers = self
            .blocks
            .iter()
            .map(|blk| {
                let a = &blk.cross_attn;
                let k = self.heads(rms_norm(a.k.forward(ctx.clone()), &a.norm_k, eps));
                let v = self.heads(a.v.forward(ctx.clone()));
                (k.swap_dims(1, 2), v.swap_dims(1, 2))
            })
            .collect();
        CrossCache { layers }
    }

    /// The bidirectional forward (`WanModel.forward`), optionally with an attention mask
    /// over tokens (for the block-causal reference of the causal form).
    ///
    /// # Shapes
    /// - x: `[B, C_in, F, H, W]`, context: `[B, L ≤ text_len, text_dim]`,
    ///   t: `[B][F]`, mask: `[1, 1, L, L]` → `[B, C_out, F, H, W]` (f32)
    pub fn forward(
        &self,
        x: Tensor<B, 5>,
        t: &Timesteps,
        context: Tensor<B, 3>,
        mask: Option<Tensor<B, 4, Bool>>,
    ) -> Tensor<B, 5> {
        let cross = stage::<B, _>(
            &self.device,
            || "cross-attention K/V of the context".into(),
            || self.cross_cache(context),
        );
        let [_, _, f, hh, ww] = x.dims();
        let [_, ph, pw] = self.config.patch_size;
        let rope = stage::<B, _>(
            &self.device,
            || "RoPE tables".into(),
            || {
                self.rope
                    .rows(&self.config, &[0], f, hh / ph, ww / pw, &self.device)
            },
        );
        self.run(x, t, &cross, &rope, SelfAttention::Full(mask))
    }

    /// The causal forward over one chunk (`CausalWanModel._forward_inference`): row `i`'s
    /// first latent frame is frame `frames[i]` of its stream (its RoPE position; its tokens
    /// start at `frames[i] · frame_tokens` in the cache). K/V go through `cache`; the
    /// context's K/V come from `cross` ([`Self::cross_cache`]).
    ///
    /// # Shapes
    /// - x: `[B, C_in, F_chunk, H, W]`, t: `[B][F_chunk]`, frames: `[B]`
    ///   → `[B, C_out, F_chunk, H, W]` (f32)
    pub fn forward_causal(
        &self,
        x: Tensor<B, 5>,
        t: &Timesteps,
        frames: &[usize],
        cross: &CrossCache<B>,
        cache: &mut dyn KvCache<B>,
    ) -> Tensor<B, 5> {
        let [b, _, f, hh, ww] = x.dims();
        assert_eq!(frames.len(), b, "one first frame per row");
        let [_, ph, pw] = self.config.patch_size;
        let frame_tokens = (hh / ph) * (ww / pw);
        let rope = stage::<B, _>(
            &self.device,
            || "RoPE tables".into(),
            || {
                self.rope
                    .rows(&self.config, frames, f, hh / ph, ww / pw, &self.device)
            },
        );
        let starts: Vec<usize> = frames.iter().map(|f| f * frame_tokens).collect();
        let attn = SelfAttention::Cached {
            cache,
            starts: &starts,
        };
        self.run(x, t, cross, &rope, attn)
    }

    /// Patchify, the blocks (each with its self-attention mode), the head, unpatchify.
    ///
    /// # Shapes
    /// - x: `[B, C_in, F, H, W]` → `[B, C_out, F, H, W]` (f32)
    fn run(
        &self,
        x: Tensor<B, 5>,
        t: &Timesteps,
        cross: &CrossCache<B>,
        rope: &Rope<B>,
        mut attn: SelfAttention<'_, B>,
    ) -> Tensor<B, 5> {
        let [_, _, f, hh, ww] = x.dims();
        let [_, ph, pw] = self.config.patch_size;
        let (h, w) = (hh / ph, ww / pw);
        let dev = &self.device;
        let (e, e0) = stage::<B, _>(dev, || "time embedding".into(), || self.time_embeddings(t));
        let mut tokens = stage::<B, _>(dev, || "patchify".into(), || self.patchify(x));
        for (i, block) in self.blocks.iter().enumerate() {
            tokens = self.block(block, i, tokens, &e0, f, &cross.layers[i], rope, &mut attn);
        }
        stage::<B, _>(
            dev,
            || "head + unpatchify".into(),
            || {
                let out = self.head_forward(tokens, &e, f);
                self.unpatchify(out, f, h, w).cast(DType::F32)
            },
        )
    }

    /// `x · (1 + scale) + shift` per frame, in f32, back to the compute dtype.
    ///
    /// # Shapes
    /// - x: `[B, L, D]` (f32), shift/scale: `[B, F, D]` → `[B, L, D]`
    fn modulate(
        &self,
        x: Tensor<B, 3>,
        shift: Tensor<B, 3>,
        scale: Tensor<B, 3>,
        f: usize,
    ) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let x: Tensor<B, 4> = x.reshape([b, f, l / f, d]);
        let y = x * (scale.unsqueeze_dim::<4>(2) + 1.0) + shift.unsqueeze_dim(2);
        y.reshape([b, l, d]).cast(self.dtype)
    }

    /// `LN(x)·(1 + scale) + shift` per frame (shift and scale the parts `i_shift`, `i_scale`
    /// of `m`), in f32, back to the compute dtype; one fused kernel on CUDA in bf16.
    ///
    /// # Shapes
    /// - x: `[B, L, D]`, m: `[B, F, 6, D]` → `[B, L, D]`
    fn norm_modulate(
        &self,
        x: Tensor<B, 3>,
        m: &Tensor<B, 4>,
        i_shift: usize,
        i_scale: usize,
        f: usize,
    ) -> Tensor<B, 3> {
        let eps = self.config.eps;
        #[cfg(feature = "cuda")]
        let x = match crate::cuda::layer_norm_modulate(x, m, i_shift, i_scale, eps) {
            Ok(y) => return y,
            Err(x) => x,
        };
        let normed = layer_norm_f32(x.cast(DType::F32), eps);
        self.modulate(normed, part(m, i_shift), part(m, i_scale), f)
    }

    /// `x + y·gate` per frame (gate the part `i_gate` of `m`), computed in f32
    /// (`(x.float() + y·gate).type_as(x)`); one fused kernel on CUDA in bf16.
    ///
    /// # Shapes
    /// - x, y: `[B, L, D]`, m: `[B, F, 6, D]` → `[B, L, D]`
    fn gated_add(
        &self,
        x: Tensor<B, 3>,
        y: Tensor<B, 3>,
        m: &Tensor<B, 4>,
        i_gate: usize,
        f: usize,
    ) -> Tensor<B, 3> {
        #[cfg(feature = "cuda")]
        let (x, y) = match crate::cuda::gated_add(x, y, m, i_gate) {
            Ok(out) => return out.cast(self.dtype),
            Err(xy) => xy,
        };
        let gate = part(m, i_gate);
        let [b, l, d] = x.dims();
        let y: Tensor<B, 4> = y.cast(DType::F32).reshape([b, f, l / f, d]);
        let y = (y * gate.unsqueeze_dim(2)).reshape([b, l, d]);
        (x.cast(DType::F32) + y).cast(self.dtype)
    }

    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        blk: &Block<B>,
        layer: usize,
        x: Tensor<B, 3>,
        e0: &Tensor<B, 4>,
        f: usize,
        cross: &(Tensor<B, 4>, Tensor<B, 4>),
        rope: &Rope<B>,
        attn: &mut SelfAttention<'_, B>,
    ) -> Tensor<B, 3> {
        let eps = self.config.eps;
        let dev = &self.device;
        // m = modulation + e0: [B, F, 6, D], six [B, F, D] parts (shift, scale, gate twice).
        let m = stage::<B, _>(
            dev,
            || "block: modulation + e0".into(),
            || blk.modulation.clone().unsqueeze_dim::<4>(0) + e0.clone(),
        );
        let norm_modulate = |x: Tensor<B, 3>, i_shift, i_scale| {
            stage::<B, _>(
                dev,
                || "block: LayerNorm + modulation".into(),
                || self.norm_modulate(x, &m, i_shift, i_scale, f),
            )
        };
        let gated_add = |x, y, i_gate| {
            stage::<B, _>(
                dev,
                || "block: gated residual add".into(),
                || self.gated_add(x, y, &m, i_gate, f),
            )
        };

        // Self-attention on LN(x)·(1+scale1)+shift1, gated by gate1.
        let y = self.self_attention(
            &blk.self_attn,
            norm_modulate(x.clone(), 0, 1),
            rope,
            layer,
            attn,
        );
        let x = gated_add(x, y, 2);

        // Cross-attention on LN_affine(x), no modulation.
        let normed = stage::<B, _>(
            dev,
            || "cross-attention: LayerNorm (affine)".into(),
            || layer_norm(x.clone(), eps, Some(&blk.norm3)),
        );
        let x = self.cross_attention(&blk.cross_attn, normed, cross, x);

        // FFN on LN(x)·(1+scale2)+shift2, gated by gate2.
        let h = norm_modulate(x.clone(), 3, 4);
        let [_, l, _] = h.dims();
        let y = stage::<B, _>(
            dev,
            || format!("FFN: linear + GELU, linear ({l} tokens)"),
            || blk.ffn_out.forward(blk.ffn_in.forward_gelu(h)),
        );
        gated_add(x, y, 5)
    }

    /// `[B, L, D]` → `[B, L, H, d]`.
    fn heads(&self, x: Tensor<B, 3>) -> Tensor<B, 4> {
        let [b, l, _] = x.dims();
        x.reshape([b, l, self.config.num_heads, self.config.head_dim()])
    }

    /// q or k: RMSNorm across the heads, then the rotary embedding (one kernel on CUDA where
    /// it applies).
    ///
    /// # Shapes
    /// - x: `[B, L, D]` → `[B, L, H, d]`
    fn norm_rope(&self, x: Tensor<B, 3>, w: &Tensor<B, 1>, rope: &Rope<B>) -> Tensor<B, 4> {
        let eps = self.config.eps;
        #[cfg(feature = "cuda")]
        let x = match crate::cuda::rms_norm_rope(x, w, &rope.cos, &rope.sin, eps) {
            Ok(y) => return self.heads(y),
            Err(x) => x,
        };
        rope.apply(self.heads(rms_norm(x, w, eps)))
    }

    /// # Shapes
    /// - x: `[B, L, D]` → `[B, L, D]`
    fn self_attention(
        &self,
        a: &SelfAttentionWeights<B>,
        x: Tensor<B, 3>,
        rope: &Rope<B>,
        layer: usize,
        attn: &mut SelfAttention<'_, B>,
    ) -> Tensor<B, 3> {
        let [b, l, d] = x.dims();
        let dev = &self.device;
        let (q, k, v) = stage::<B, _>(
            dev,
            || format!("self-attention: q, k, v linear ({l} tokens)"),
            || {
                let qkv = a.qkv.forward(x);
                // v's heads as a view of the last third: splitting the whole row into heads
                // first keeps it one (burn copies a reshape of the narrowed [1, L, D] instead).
                let (h, hd) = (self.config.num_heads, self.config.head_dim());
                let v = qkv.clone().reshape([b, l, 3 * h, hd]).narrow(2, 2 * h, h);
                (qkv.clone().narrow(2, 0, d), qkv.narrow(2, d, d), v)
            },
        );
        let (q, k) = stage::<B, _>(
            dev,
            || "self-attention: RMSNorm + RoPE of q, k".into(),
            || {
                (
                    self.norm_rope(q, &a.norm_q, rope),
                    self.norm_rope(k, &a.norm_k, rope),
                )
            },
        );
        let o = |out: Tensor<B, 4>| {
            stage::<B, _>(
                dev,
                || format!("self-attention: o linear ({l} tokens)"),
                || a.o.forward(out.swap_dims(1, 2).reshape([b, l, d])),
            )
        };
        let (q, k, v, mask) = match attn {
            SelfAttention::Full(mask) => (q, k, v, mask.clone()),
            SelfAttention::Cached { cache, starts } => {
                let seen = stage::<B, _>(
                    dev,
                    || "self-attention: KV cache write".into(),
                    || cache.attend(layer, starts, k, v),
                );
                // The fused CUDA kernel reads the cache's spans where they are.
                #[cfg(feature = "cuda")]
                let q = match (&seen.spans, &seen.mask) {
                    (Some(spans), None) => {
                        let keys: usize = spans.iter().map(|r| r.len()).sum();
                        match stage::<B, _>(
                            dev,
                            || format!("self-attention: kernel (q {l}, kv {keys})"),
                            || {
                                crate::cuda::attention_spans(
                                    q.swap_dims(1, 2),
                                    &seen.k.clone().swap_dims(1, 2),
                                    &seen.v.clone().swap_dims(1, 2),
                                    spans,
                                )
                            },
                        ) {
                            Ok(out) => return o(out),
                            Err(q) => q.swap_dims(1, 2),
                        }
                    }
                    _ => q,
                };
                let (k, v, mask) = seen.gathered();
                (q, k, v, mask)
            }
        };
        let keys = k.dims()[1];
        let out = stage::<B, _>(
            dev,
            || format!("self-attention: kernel (q {l}, kv {keys})"),
            || {
                attention(
                    q.swap_dims(1, 2),
                    k.swap_dims(1, 2),
                    v.swap_dims(1, 2),
                    mask,
                    self.kernel,
                )
            },
        );
        o(out)
    }

    /// `residual` plus the cross-attention: queries from `x`, keys and values from the
    /// context's cross cache (batch 1 is shared by every row); the residual add is the o
    /// GEMM's epilogue on CUDA.
    ///
    /// # Shapes
    /// - x, residual: `[B, L, D]`, cross: `[B|1, H, text_len, d]` twice → `[B, L, D]`
    fn cross_attention(
        &self,
        a: &AttentionWeights<B>,
        x: Tensor<B, 3>,
        cross: &(Tensor<B, 4>, Tensor<B, 4>),
        residual: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let eps = self.config.eps;
        let [b, l, d] = x.dims();
        let (mut k, mut v) = cross.clone();
        let [kb, h, lk, hd] = k.dims();
        if kb != b {
            k = k.expand([b, h, lk, hd]);
            v = v.expand([b, h, lk, hd]);
        }
        stage::<B, _>(
            &self.device,
            || format!("cross-attention: q, RMSNorm, kernel, o + residual ({l} × {lk} tokens)"),
            || {
                let q = self
                    .heads(rms_norm(a.q.forward(x), &a.norm_q, eps))
                    .swap_dims(1, 2);
                let out = attention(q, k, v, None, self.kernel);
                a.o.forward_residual(out.swap_dims(1, 2).reshape([b, l, d]), residual)
            },
        )
    }

    /// The head: `Linear(LN(x)·(1+scale)+shift)` with `(shift, scale) = head.modulation + e`.
    ///
    /// # Shapes
    /// - x: `[B, L, D]`, e: `[B, F, D]` → `[B, L, C_out·ph·pw]`
    fn head_forward(&self, x: Tensor<B, 3>, e: &Tensor<B, 3>, f: usize) -> Tensor<B, 3> {
        let m = self.head_modulation.clone().unsqueeze_dim::<4>(0) + e.clone().unsqueeze_dim(2);
        let [b, fr, _, d] = m.dims();
        let shift = m.clone().narrow(2, 0, 1).reshape([b, fr, d]);
        let scale = m.narrow(2, 1, 1).reshape([b, fr, d]);
        let normed = layer_norm_f32(x.cast(DType::F32), self.config.eps);
        self.head.forward(self.modulate(normed, shift, scale, f))
    }

    /// An empty cache for this model.
    pub fn new_cache(&self, batch: usize, config: super::cache::CacheConfig) -> WanCache<B> {
        WanCache::new(
            config,
            batch,
            self.config.num_layers,
            self.config.num_heads,
            self.config.head_dim(),
            &self.device,
            self.dtype,
        )
    }
}

/// The block-causal mask of `frames` latent frames in chunks of `chunk` frames, each frame
/// `frame_tokens` tokens: a token sees every token of its own and earlier chunks; with a
/// window of `window` frames (and `sink` frames always visible), only those. `true` = hidden.
///
/// # Shapes
/// → `[1, 1, L, L]`
pub fn block_causal_mask<B: Backend>(
    frames: usize,
    chunk: usize,
    frame_tokens: usize,
    window: Option<(usize, usize)>,
    device: &B::Device,
) -> Tensor<B, 4, Bool> {
    let l = frames * frame_tokens;
    let mut hidden = Vec::with_capacity(l * l);
    for qi in 0..l {
        let qf = qi / frame_tokens;
        let visible_end = (qf / chunk + 1) * chunk; // frames < this are visible
        for ki in 0..l {
            let kf = ki / frame_tokens;
            let mut visible = kf < visible_end;
            if let Some((window, sink)) = window {
                visible &= kf < sink || kf + (window - sink) >= visible_end;
            }
            hidden.push(!visible);
        }
    }
    Tensor::from_data(TensorData::new(hidden, [1, 1, l, l]), device)
}
