//! The UMT5-XXL text encoder Wan2.1 conditions on (transformers' `UMT5EncoderModel`; Wan2.1's `wan/modules/t5.py`): T5 RMSNorm, a
//! per-layer bidirectional relative-position bias, attention without `1/√d` scaling, and a
//! gated tanh-GELU FFN.
//!
//! Tensors are loaded under the **original Wan keys** (`models_t5_umt5-xxl-enc-bf16.pth`);
//! transformers `UMT5EncoderModel` keys are renamed on read:
//!
//! | transformers | original |
//! |---|---|
//! | `shared.weight` / `encoder.embed_tokens.weight` (tied) | `token_embedding.weight` |
//! | `encoder.block.N.layer.0.layer_norm.weight` | `blocks.N.norm1.weight` |
//! | `encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight` | `blocks.N.attn.{q,k,v,o}.weight` |
//! | `encoder.block.N.layer.0.SelfAttention.relative_attention_bias.weight` | `blocks.N.pos_embedding.embedding.weight` |
//! | `encoder.block.N.layer.1.layer_norm.weight` | `blocks.N.norm2.weight` |
//! | `encoder.block.N.layer.1.DenseReluDense.wi_0.weight` (gated, GELU) | `blocks.N.ffn.gate.0.weight` |
//! | `encoder.block.N.layer.1.DenseReluDense.wi_1.weight` | `blocks.N.ffn.fc1.weight` |
//! | `encoder.block.N.layer.1.DenseReluDense.wo.weight` | `blocks.N.ffn.fc2.weight` |
//! | `encoder.final_layer_norm.weight` | `norm.weight` |

use super::nn::{Linear, rms_norm, tensor};
use super::weights::{Checkpoint, Layout, LoadError, Variant};
use burn::tensor::{DType, Int, Tensor, TensorData, activation::softmax, backend::Backend};
use serde::Deserialize;
use std::path::Path;

/// The encoder's configuration, named like transformers' `UMT5Config`.
///
/// Upstream: `umt5_xxl` in `Wan-Video/Wan2.1@9737cba wan/modules/t5.py` (vocab 256 384,
/// dim 4096, 64 heads × 64, FFN 10 240, 24 layers, 32 buckets, max distance 128).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Umt5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Size of one attention head.
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    #[serde(default = "defaults::buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "defaults::max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "defaults::eps")]
    pub layer_norm_epsilon: f64,
    /// Only `gated-gelu` (transformers maps it to the tanh GELU, as Wan uses).
    #[serde(default = "defaults::ffn")]
    pub feed_forward_proj: String,
}

mod defaults {
    pub fn buckets() -> usize {
        32
    }
    pub fn max_distance() -> usize {
        128
    }
    pub fn eps() -> f64 {
        1e-6
    }
    pub fn ffn() -> String {
        "gated-gelu".into()
    }
}

impl Default for Umt5Config {
    fn default() -> Self {
        Self::umt5_xxl()
    }
}

impl Umt5Config {
    /// UMT5-XXL's encoder as Wan2.1 ships it.
    pub fn umt5_xxl() -> Self {
        Self {
            vocab_size: 256_384,
            d_model: 4096,
            d_kv: 64,
            d_ff: 10_240,
            num_layers: 24,
            num_heads: 64,
            relative_attention_num_buckets: 32,
            relative_attention_max_distance: 128,
            layer_norm_epsilon: 1e-6,
            feed_forward_proj: defaults::ffn(),
        }
    }

    /// Parses a transformers `UMT5Config` `config.json`.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if cfg.feed_forward_proj != "gated-gelu" {
            return Err(format!(
                "feed_forward_proj {:?} (only gated-gelu, UMT5's, is supported)",
                cfg.feed_forward_proj
            ));
        }
        if cfg.num_heads == 0 || cfg.d_kv == 0 || cfg.num_layers == 0 || cfg.vocab_size == 0 {
            return Err("num_heads, d_kv, num_layers and vocab_size must be positive".into());
        }
        if cfg.relative_attention_num_buckets < 4 || cfg.relative_attention_max_distance < 2 {
            return Err("relative_attention_num_buckets ≥ 4 and max_distance ≥ 2".into());
        }
        Ok(cfg)
    }

    /// Reads and parses `path`.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The configuration a checkpoint's tensor shapes imply (Wan ships its encoder without a
    /// `config.json`): vocabulary and width from the embedding, layers from the block keys,
    /// heads from the position bias, head size and FFN width from the projections; the rest
    /// are UMT5's. `None` when a tensor it reads is absent.
    pub fn infer(ck: &Checkpoint) -> Option<Self> {
        let emb = ck.shape("token_embedding.weight")?;
        let layers = ck
            .keys()
            .filter_map(|k| {
                k.strip_prefix("blocks.")?
                    .split_once('.')?
                    .0
                    .parse::<usize>()
                    .ok()
            })
            .max()?
            + 1;
        let heads = ck.shape("blocks.0.pos_embedding.embedding.weight")?;
        let q = ck.shape("blocks.0.attn.q.weight")?;
        let ff = ck.shape("blocks.0.ffn.fc1.weight")?;
        let num_heads = *heads.get(1)?;
        Some(Self {
            vocab_size: emb[0],
            d_model: emb[1],
            d_kv: q[0] / num_heads.max(1),
            d_ff: ff[0],
            num_layers: layers,
            num_heads,
            relative_attention_num_buckets: heads[0],
            ..Self::umt5_xxl()
        })
    }

    /// Parameters.
    pub fn parameters(&self) -> usize {
        let inner = self.num_heads * self.d_kv;
        let layer = 2 * self.d_model
            + 4 * self.d_model * inner
            + self.relative_attention_num_buckets * self.num_heads
            + 3 * self.d_model * self.d_ff;
        self.vocab_size * self.d_model + self.num_layers * layer + self.d_model
    }
}

/// The bidirectional relative-position bucket of `key − query` (T5's
/// `_relative_position_bucket`): half the buckets per sign, exact below `buckets/4`,
/// log-spaced up to `max_distance`. The log step is f32 arithmetic, as in the reference.
pub fn relative_position_bucket(relative: i64, num_buckets: usize, max_distance: usize) -> i64 {
    let half = (num_buckets / 2) as i64;
    let base = if relative > 0 { half } else { 0 };
    let n = relative.unsigned_abs() as i64;
    let max_exact = half / 2;
    if n < max_exact {
        return base + n;
    }
    let ratio = (n as f32 / max_exact as f32).ln()
        / ((max_distance as f64 / max_exact as f64).ln() as f32)
        * (half - max_exact) as f32;
    base + (max_exact + ratio as i64).min(half - 1)
}

/// The original Wan key of a transformers `UMT5EncoderModel` key; unknown keys pass through.
pub fn transformers_to_original(key: &str) -> String {
    match key {
        "shared.weight" | "encoder.embed_tokens.weight" => return "token_embedding.weight".into(),
        "encoder.final_layer_norm.weight" => return "norm.weight".into(),
        _ => {}
    }
    const BLOCK: &[(&str, &str)] = &[
        ("layer.0.layer_norm.", "norm1."),
        (
            "layer.0.SelfAttention.relative_attention_bias.",
            "pos_embedding.embedding.",
        ),
        ("layer.0.SelfAttention.q.", "attn.q."),
        ("layer.0.SelfAttention.k.", "attn.k."),
        ("layer.0.SelfAttention.v.", "attn.v."),
        ("layer.0.SelfAttention.o.", "attn.o."),
        ("layer.1.layer_norm.", "norm2."),
        ("layer.1.DenseReluDense.wi_0.", "ffn.gate.0."),
        ("layer.1.DenseReluDense.wi_1.", "ffn.fc1."),
        ("layer.1.DenseReluDense.wo.", "ffn.fc2."),
    ];
    if let Some(rest) = key.strip_prefix("encoder.block.")
        && let Some((n, tail)) = rest.split_once('.')
    {
        for (from, to) in BLOCK {
            if let Some(t) = tail.strip_prefix(from) {
                return format!("blocks.{n}.{to}{t}");
            }
        }
    }
    key.to_owned()
}

fn detect_layout(raw: &std::collections::BTreeSet<String>) -> Option<Layout> {
    if raw.contains("token_embedding.weight") || raw.contains("blocks.0.attn.q.weight") {
        Some(Layout::Original)
    } else if raw.contains("shared.weight") || raw.iter().any(|k| k.starts_with("encoder.block.")) {
        Some(Layout::Diffusers)
    } else {
        None
    }
}

#[derive(Clone, Debug)]
struct Block<B: Backend> {
    norm1: Tensor<B, 1>,
    q: Linear<B>,
    k: Linear<B>,
    v: Linear<B>,
    o: Linear<B>,
    /// `[buckets, heads]`.
    pos_embedding: Tensor<B, 2>,
    norm2: Tensor<B, 1>,
    gate: Linear<B>,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// UMT5's encoder on backend `B`.
#[derive(Clone, Debug)]
pub struct Umt5Encoder<B: Backend> {
    pub config: Umt5Config,
    /// `[vocab, d_model]`.
    embedding: Tensor<B, 2>,
    blocks: Vec<Block<B>>,
    norm: Tensor<B, 1>,
    pub dtype: DType,
    device: B::Device,
    /// [`Self::context`] runs the encoder over the prompt's length rounded up to a multiple
    /// of this (1: the prompt's own length). On a GPU backend that compiles and tunes kernels
    /// per shape, a step of 128 makes every prompt up to 128 tokens one shape, met during the
    /// load's warm-up instead of mid-stream. The padded positions are masked keys, so the
    /// prompt's rows are the same either way (the reference pipelines pad to 512).
    pub length_step: usize,
}

impl<B: Backend> Umt5Encoder<B> {
    /// Reads an encoder checkpoint (Wan's `models_t5_umt5-xxl-enc-bf16.pth`, transformers'
    /// `UMT5EncoderModel`, or an fp8 e4m3fn safetensors file, which is dequantised into
    /// `dtype`) and loads it in `dtype`.
    pub fn from_file(
        config: Umt5Config,
        path: &Path,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        Self::load(config, Self::open(path, dtype)?, device, dtype)
    }

    /// Opens an encoder checkpoint under original keys (fp8 dequantised into `fp8_to`).
    pub fn open(path: &Path, fp8_to: DType) -> Result<Checkpoint, LoadError> {
        Checkpoint::read_with(
            path,
            Variant::Generator,
            fp8_to,
            detect_layout,
            transformers_to_original,
        )
    }

    /// Builds the encoder from a checkpoint under original keys; every tensor must be used.
    pub fn load(
        config: Umt5Config,
        mut ck: Checkpoint,
        device: &B::Device,
        dtype: DType,
    ) -> Result<Self, LoadError> {
        let c = &config;
        let (d, inner) = (c.d_model, c.num_heads * c.d_kv);
        let norm = |ck: &mut Checkpoint, key: &str| -> Result<Tensor<B, 1>, LoadError> {
            Ok(tensor(ck.take(key, &[d])?, device, DType::F32))
        };
        let embedding = tensor(
            ck.take("token_embedding.weight", &[c.vocab_size, d])?,
            device,
            dtype,
        );
        let mut blocks = Vec::with_capacity(c.num_layers);
        for i in 0..c.num_layers {
            let p = format!("blocks.{i}");
            let lin = |ck: &mut Checkpoint, name: &str, i: usize, o: usize| {
                Linear::load(ck, &format!("{p}.{name}"), i, o, false, device, dtype)
            };
            blocks.push(Block {
                norm1: norm(&mut ck, &format!("{p}.norm1.weight"))?,
                q: lin(&mut ck, "attn.q", d, inner)?,
                k: lin(&mut ck, "attn.k", d, inner)?,
                v: lin(&mut ck, "attn.v", d, inner)?,
                o: lin(&mut ck, "attn.o", inner, d)?,
                pos_embedding: tensor(
                    ck.take(
                        &format!("{p}.pos_embedding.embedding.weight"),
                        &[c.relative_attention_num_buckets, c.num_heads],
                    )?,
                    device,
                    DType::F32,
                ),
                norm2: norm(&mut ck, &format!("{p}.norm2.weight"))?,
                gate: lin(&mut ck, "ffn.gate.0", d, c.d_ff)?,
                fc1: lin(&mut ck, "ffn.fc1", d, c.d_ff)?,
                fc2: lin(&mut ck, "ffn.fc2", c.d_ff, d)?,
            });
        }
        let norm = norm(&mut ck, "norm.weight")?;
        ck.finish_ref()?;
        Ok(Self {
            config,
            embedding,
            blocks,
            norm,
            dtype,
            device: device.clone(),
            length_step: 1,
        })
    }

    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// Bucket indices of `key − query` for a length-`l` sequence, `[l·l]`.
    fn bucket_index(&self, l: usize) -> Tensor<B, 1, Int> {
        let c = &self.config;
        let idx: Vec<i64> = (0..l)
            .flat_map(|q| {
                (0..l).map(move |k| {
                    relative_position_bucket(
                        k as i64 - q as i64,
                        c.relative_attention_num_buckets,
                        c.relative_attention_max_distance,
                    )
                })
            })
            .collect();
        Tensor::from_data(TensorData::from(idx.as_slice()), &self.device)
    }

    /// The encoder's last hidden state. Keys where `mask` is 0 are hidden (by adding
    /// f32::MIN to their logits, as the reference does); every row is computed.
    ///
    /// # Shapes
    /// - ids: `[B, L]`, mask: `[B, L]` (1 = token, 0 = padding) → `[B, L, d_model]` (f32)
    pub fn forward(&self, ids: Tensor<B, 2, Int>, mask: Tensor<B, 2>) -> Tensor<B, 3> {
        let c = &self.config;
        let [b, l] = ids.dims();
        let (h, dk) = (c.num_heads, c.d_kv);
        let mut x = self
            .embedding
            .clone()
            .select(0, ids.reshape([b * l]))
            .reshape([b, l, c.d_model]);
        let additive = (mask.cast(DType::F32).neg() + 1.0)
            .mul_scalar(f32::MIN)
            .reshape([b, 1, 1, l]);
        let buckets = self.bucket_index(l);
        let heads = |t: Tensor<B, 3>| t.reshape([b, l, h, dk]).swap_dims(1, 2);
        for blk in &self.blocks {
            let y = rms_norm(x.clone(), &blk.norm1, c.layer_norm_epsilon);
            let (q, k, v) = (
                heads(blk.q.forward(y.clone())),
                heads(blk.k.forward(y.clone())),
                heads(blk.v.forward(y)),
            );
            let bias = blk
                .pos_embedding
                .clone()
                .select(0, buckets.clone())
                .reshape([l, l, h])
                .permute([2, 0, 1])
                .unsqueeze_dim::<4>(0);
            let scores = q.matmul(k.swap_dims(2, 3)).cast(DType::F32) + bias + additive.clone();
            let attn = softmax(scores, 3).cast(self.dtype).matmul(v);
            let attn = attn.swap_dims(1, 2).reshape([b, l, h * dk]);
            x = x + blk.o.forward(attn);
            let y = rms_norm(x.clone(), &blk.norm2, c.layer_norm_epsilon);
            let ff = blk.gate.forward_gelu(y.clone()) * blk.fc1.forward(y);
            x = x + blk.fc2.forward(ff);
        }
        rms_norm(x, &self.norm, c.layer_norm_epsilon).cast(DType::F32)
    }

    /// What the DiT sees for prompts of `lengths[i]` tokens: the encoder run on the longest
    /// prompt's length only, rounded up to a multiple of [`Self::length_step`] (padding keys
    /// are masked, so the prompt rows do not depend on it), rows past each prompt's length
    /// zeroed, zero-padded to `rows`.
    ///
    /// # Shapes
    /// - ids: `[B, L]` (L ≥ max length; padded with id 0 where the step asks for more) →
    ///   `[B, rows, d_model]` (f32)
    pub fn context(&self, ids: Tensor<B, 2, Int>, lengths: &[usize], rows: usize) -> Tensor<B, 3> {
        let [b, l] = ids.dims();
        let longest = lengths
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .clamp(1, l.min(rows));
        let n = longest.next_multiple_of(self.length_step.max(1)).min(rows);
        let ids = if n > l {
            let pad = Tensor::<B, 2, Int>::zeros([b, n - l], (&self.device, ids.dtype()));
            Tensor::cat(vec![ids, pad], 1)
        } else {
            ids
        };
        let mask_rows: Vec<f32> = lengths
            .iter()
            .flat_map(|len| (0..n).map(move |j| if j < *len { 1.0 } else { 0.0 }))
            .collect();
        let mask = Tensor::<B, 2>::from_data(TensorData::new(mask_rows, [b, n]), &self.device);
        let hidden = self.forward(ids.narrow(1, 0, n), mask.clone());
        let hidden = hidden * mask.unsqueeze_dim::<3>(2);
        if n == rows {
            return hidden;
        }
        let pad = Tensor::zeros([b, rows - n, self.config.d_model], &self.device);
        Tensor::cat(vec![hidden, pad], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_t5() {
        let b = |r| relative_position_bucket(r, 32, 128);
        // Exact below 8, sign split at 16, log-spaced up to 128, then saturating.
        assert_eq!([b(0), b(1), b(7), b(-1), b(-7)], [0, 17, 23, 1, 7]);
        assert_eq!(b(8), 24);
        assert_eq!(b(-8), 8);
        assert_eq!(b(1000), 31);
        assert_eq!(b(-1000), 15);
    }

    #[test]
    fn transformers_keys_map_to_wan_names() {
        for (t, o) in [
            ("shared.weight", "token_embedding.weight"),
            ("encoder.embed_tokens.weight", "token_embedding.weight"),
            ("encoder.final_layer_norm.weight", "norm.weight"),
            (
                "encoder.block.3.layer.0.SelfAttention.relative_attention_bias.weight",
                "blocks.3.pos_embedding.embedding.weight",
            ),
            (
                "encoder.block.0.layer.0.SelfAttention.o.weight",
                "blocks.0.attn.o.weight",
            ),
            (
                "encoder.block.1.layer.1.DenseReluDense.wi_0.weight",
                "blocks.1.ffn.gate.0.weight",
            ),
            (
                "encoder.block.1.layer.1.DenseReluDense.wi_1.weight",
                "blocks.1.ffn.fc1.weight",
            ),
            (
                "encoder.block.1.layer.1.DenseReluDense.wo.weight",
                "blocks.1.ffn.fc2.weight",
            ),
            (
                "encoder.block.1.layer.1.layer_norm.weight",
                "blocks.1.norm2.weight",
            ),
        ] {
            assert_eq!(transformers_to_original(t), o, "{t}");
        }
    }

    #[test]
    fn xxl_has_5_7b_parameters() {
        let p = Umt5Config::umt5_xxl().parameters();
        assert!((5_650_000_000..5_700_000_000).contains(&p), "{p}");
    }
}
