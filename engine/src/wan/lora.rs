//! LoRA adapters for the DiT, as LongLive ships one (`LongLive-1.3B/models/lora.pt`): a PEFT
//! state dict, optionally under `generator_lora`, with keys like
//! `base_model.model.blocks.N.self_attn.q.lora_A.weight` (`[r, in]`) and
//! `….lora_B.weight` (`[out, r]`). [`super::WanModel::merge_lora`] folds them into the weights
//! at load: `W ← W + (α/r)·B·A` (LongLive: r = α = 256, so the scale is 1).
//!
//! Accepted around the module path: `generator_lora.`, `base_model.model.`, `model.`,
//! FSDP's `_fsdp_wrapped_module.`, and PEFT's adapter name (`lora_A.default.weight`).

use super::weights::{Checkpoint, LoadError, Variant, read};
use burn::tensor::{DType, TensorData};
use std::{collections::BTreeMap, path::Path};

/// LongLive's LoRA rank and alpha (`configs/longlive_inference.yaml`: `lora.rank`,
/// `lora.alpha`).
pub const LONGLIVE_RANK: usize = 256;
pub const LONGLIVE_ALPHA: f64 = 256.0;

/// The ten linears of a block a LoRA may target, by their original Wan names.
pub const BLOCK_LINEARS: [&str; 10] = [
    "self_attn.q",
    "self_attn.k",
    "self_attn.v",
    "self_attn.o",
    "cross_attn.q",
    "cross_attn.k",
    "cross_attn.v",
    "cross_attn.o",
    "ffn.0",
    "ffn.2",
];

/// One adapted linear: `lora_A` `[r, in]` and `lora_B` `[out, r]`.
#[derive(Clone, Debug)]
pub struct LoraPair {
    pub a: TensorData,
    pub b: TensorData,
}

/// A LoRA's pairs by module (`blocks.N.self_attn.q`, …).
#[derive(Clone, Debug)]
pub struct Lora {
    pub pairs: BTreeMap<String, LoraPair>,
    /// The rank (rows of every `lora_A`).
    pub rank: usize,
}

/// The module path of a LoRA key and whether it is `A` or `B`; `None` for other keys.
pub fn parse_key(key: &str) -> Option<(String, char)> {
    let mut k = key;
    for prefix in ["generator_lora.", "base_model.model.", "model."] {
        k = k.strip_prefix(prefix).unwrap_or(k);
    }
    let k = k.replace("_fsdp_wrapped_module.", "");
    for (tag, which) in [(".lora_A.", 'A'), (".lora_B.", 'B')] {
        if let Some((module, rest)) = k.split_once(tag)
            && (rest == "weight" || rest.ends_with(".weight"))
        {
            return Some((module.to_owned(), which));
        }
    }
    None
}

impl Lora {
    /// Reads a PEFT LoRA file (`.pt`/`.pth` or safetensors). Every key must be a
    /// `lora_A`/`lora_B` weight, each module must have both, and every pair must have the
    /// same rank.
    pub fn read(path: &Path) -> Result<Self, LoadError> {
        let entries = read::index(path, Variant::Generator)?;
        let keys: Vec<(String, Vec<usize>)> = entries
            .iter()
            .map(|(k, e)| (k.clone(), e.shape()))
            .collect();
        let mut ck = Checkpoint::from_index(entries, path.to_owned());
        let mut a: BTreeMap<String, TensorData> = BTreeMap::new();
        let mut b: BTreeMap<String, TensorData> = BTreeMap::new();
        for (key, shape) in keys {
            let Some((module, which)) = parse_key(&key) else {
                return Err(LoadError::Format {
                    path: path.to_owned(),
                    message: format!("{key} is not a LoRA weight (lora_A / lora_B)"),
                });
            };
            let data = ck.take(&key, &shape)?.convert_dtype(DType::F32);
            if shape.len() != 2 {
                return Err(LoadError::Shape {
                    key,
                    expected: vec![0, 0],
                    found: shape,
                });
            }
            match which {
                'A' => a.insert(module, data),
                _ => b.insert(module, data),
            };
        }
        let mut pairs = BTreeMap::new();
        let mut rank = None;
        for (module, a) in a {
            let b = b.remove(&module).ok_or_else(|| LoadError::Missing {
                key: format!("{module}.lora_B.weight"),
                expected: vec![],
            })?;
            let r = a.shape[0];
            if b.shape[1] != r || rank.is_some_and(|x| x != r) {
                return Err(LoadError::Shape {
                    key: format!("{module}.lora_B.weight"),
                    expected: vec![b.shape[0], rank.unwrap_or(r)],
                    found: b.shape.to_vec(),
                });
            }
            rank = Some(r);
            pairs.insert(module, LoraPair { a, b });
        }
        if let Some(module) = b.keys().next() {
            return Err(LoadError::Missing {
                key: format!("{module}.lora_A.weight"),
                expected: vec![],
            });
        }
        Ok(Self {
            pairs,
            rank: rank.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_keys_name_their_module() {
        for (key, module, which) in [
            (
                "base_model.model.blocks.3.self_attn.q.lora_A.weight",
                "blocks.3.self_attn.q",
                'A',
            ),
            (
                "generator_lora.base_model.model.blocks.0.ffn.2.lora_B.default.weight",
                "blocks.0.ffn.2",
                'B',
            ),
            (
                "model.blocks.29.cross_attn.o.lora_B.weight",
                "blocks.29.cross_attn.o",
                'B',
            ),
        ] {
            assert_eq!(parse_key(key), Some((module.to_owned(), which)), "{key}");
        }
        assert_eq!(parse_key("blocks.0.self_attn.q.weight"), None);
    }
}
