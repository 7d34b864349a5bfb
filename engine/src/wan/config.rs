//! `WanConfig`: the DiT's hyper-parameters, read from the original `config.json` or from a
//! diffusers `transformer/config.json`.

use serde::Deserialize;
use std::path::Path;

/// Which cross-attention the model has. Only text-to-video is implemented (the streaming
/// methods all start from Wan2.1-T2V).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    T2v,
}

/// The Wan2.1 diffusion transformer's configuration, in the original checkpoint's terms.
///
/// Upstream: `WanModel.__init__` in `Wan-Video/Wan2.1@9737cba wan/modules/model.py` (the
/// constructor defaults are what `config.json` omits: `text_dim`, `patch_size`, `qk_norm`,
/// `cross_attn_norm`, `window_size`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WanConfig {
    /// Hidden size (1536 for 1.3B).
    pub dim: usize,
    /// FFN inner size (8960 for 1.3B).
    pub ffn_dim: usize,
    /// Attention heads (12 for 1.3B); `dim / num_heads` is the head size.
    pub num_heads: usize,
    /// Transformer blocks (30 for 1.3B).
    pub num_layers: usize,
    /// Latent channels in (16).
    pub in_dim: usize,
    /// Latent channels out (16).
    pub out_dim: usize,
    /// Sinusoidal timestep width (256).
    pub freq_dim: usize,
    /// Context rows the model sees; shorter context is zero-padded (512).
    pub text_len: usize,
    /// Epsilon of every norm (1e-6).
    pub eps: f64,
    pub model_type: ModelType,
    /// Width of the text encoder's output (4096, UMT5-XXL).
    #[serde(default = "defaults::text_dim")]
    pub text_dim: usize,
    /// (t, h, w) patch size ((1, 2, 2)).
    #[serde(default = "defaults::patch_size")]
    pub patch_size: [usize; 3],
    /// RMSNorm over q and k (across heads).
    #[serde(default = "defaults::yes")]
    pub qk_norm: bool,
    /// Affine LayerNorm before the cross-attention.
    #[serde(default = "defaults::yes")]
    pub cross_attn_norm: bool,
    /// Local attention window; (-1, -1) is global (the only one implemented).
    #[serde(default = "defaults::window_size")]
    pub window_size: [i64; 2],
}

mod defaults {
    pub fn text_dim() -> usize {
        4096
    }
    pub fn patch_size() -> [usize; 3] {
        [1, 2, 2]
    }
    pub fn yes() -> bool {
        true
    }
    pub fn window_size() -> [i64; 2] {
        [-1, -1]
    }
}

/// Positions per RoPE axis (`rope_params(1024, …)` upstream).
pub const ROPE_MAX_POSITIONS: usize = 1024;
/// RoPE base.
pub const ROPE_THETA: f64 = 10_000.0;

/// A diffusers `WanTransformer3DModel` `config.json`.
#[derive(Debug, Deserialize)]
struct DiffusersConfig {
    num_attention_heads: usize,
    attention_head_dim: usize,
    in_channels: usize,
    out_channels: usize,
    text_dim: usize,
    freq_dim: usize,
    ffn_dim: usize,
    num_layers: usize,
    #[serde(default = "defaults::yes")]
    cross_attn_norm: bool,
    #[serde(default)]
    qk_norm: Option<String>,
    #[serde(default = "default_eps")]
    eps: f64,
    #[serde(default = "defaults::patch_size")]
    patch_size: [usize; 3],
    #[serde(default)]
    image_dim: Option<usize>,
    #[serde(default)]
    added_kv_proj_dim: Option<usize>,
    #[serde(default = "default_rope_max")]
    rope_max_seq_len: usize,
}

fn default_eps() -> f64 {
    1e-6
}

fn default_rope_max() -> usize {
    ROPE_MAX_POSITIONS
}

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a Wan DiT config.json: {message}")]
    Parse { path: String, message: String },
    #[error("unsupported configuration: {0}")]
    Unsupported(String),
}

impl WanConfig {
    /// Wan2.1-T2V-1.3B.
    ///
    /// Upstream: `Wan-Video/Wan2.1@9737cba wan/configs/wan_t2v_1_3B.py` (dim 1536, ffn 8960,
    /// 12 heads, 30 layers) with the `WanModel.__init__` defaults.
    pub fn t2v_1_3b() -> Self {
        Self::t2v(1536, 8960, 12, 30)
    }

    /// Wan2.1-T2V-14B.
    ///
    /// Upstream: `Wan-Video/Wan2.1@9737cba wan/configs/wan_t2v_14B.py` (dim 5120, ffn 13824,
    /// 40 heads, 40 layers).
    /// The tiny test model (the golden tests' and `make-tiny`'s): dim 24, 2 heads of 12,
    /// FFN 32, 2 layers, text width 32.
    pub fn tiny() -> Self {
        Self {
            dim: 24,
            ffn_dim: 32,
            num_heads: 2,
            num_layers: 2,
            text_dim: 32,
            ..Self::t2v_1_3b()
        }
    }

    pub fn t2v_14b() -> Self {
        Self::t2v(5120, 13824, 40, 40)
    }

    fn t2v(dim: usize, ffn_dim: usize, num_heads: usize, num_layers: usize) -> Self {
        Self {
            dim,
            ffn_dim,
            num_heads,
            num_layers,
            in_dim: 16,
            out_dim: 16,
            freq_dim: 256,
            text_len: 512,
            eps: 1e-6,
            model_type: ModelType::T2v,
            text_dim: defaults::text_dim(),
            patch_size: defaults::patch_size(),
            qk_norm: true,
            cross_attn_norm: true,
            window_size: defaults::window_size(),
        }
    }

    /// Head size (`dim / num_heads`).
    pub fn head_dim(&self) -> usize {
        self.dim / self.num_heads
    }

    /// Parses either layout of `config.json` (original `WanModel` or diffusers
    /// `WanTransformer3DModel`, told apart by `num_attention_heads`).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let cfg = if value.get("num_attention_heads").is_some() {
            let d: DiffusersConfig = serde_json::from_value(value).map_err(|e| e.to_string())?;
            if d.image_dim.is_some() || d.added_kv_proj_dim.is_some() {
                return Err(
                    "image-to-video models (image_dim / added_kv_proj_dim) are not supported"
                        .into(),
                );
            }
            if d.rope_max_seq_len != ROPE_MAX_POSITIONS {
                return Err(format!(
                    "rope_max_seq_len {} (only {ROPE_MAX_POSITIONS} is supported)",
                    d.rope_max_seq_len
                ));
            }
            let qk_norm = match d.qk_norm.as_deref() {
                None => false,
                Some("rms_norm_across_heads") => true,
                Some(other) => return Err(format!("qk_norm {other:?} is not supported")),
            };
            Self {
                dim: d.num_attention_heads * d.attention_head_dim,
                ffn_dim: d.ffn_dim,
                num_heads: d.num_attention_heads,
                num_layers: d.num_layers,
                in_dim: d.in_channels,
                out_dim: d.out_channels,
                freq_dim: d.freq_dim,
                text_len: 512,
                eps: d.eps,
                model_type: ModelType::T2v,
                text_dim: d.text_dim,
                patch_size: d.patch_size,
                qk_norm,
                cross_attn_norm: d.cross_attn_norm,
                window_size: defaults::window_size(),
            }
        } else {
            serde_json::from_value(value).map_err(|e| e.to_string())?
        };
        cfg.validate().map_err(|e| e.to_string())?;
        Ok(cfg)
    }

    /// Reads a `config.json` file (either layout).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Checks what this engine implements.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Unsupported(m));
        if self.num_heads == 0 || !self.dim.is_multiple_of(self.num_heads) {
            return bad(format!(
                "dim {} is not a multiple of num_heads {}",
                self.dim, self.num_heads
            ));
        }
        let d = self.head_dim();
        if !d.is_multiple_of(2) || d < 6 {
            return bad(format!(
                "head size {d} must be even and at least 6 (3-D RoPE)"
            ));
        }
        if !self.freq_dim.is_multiple_of(2) {
            return bad(format!("freq_dim {} must be even", self.freq_dim));
        }
        if self.patch_size[0] != 1 {
            return bad(format!(
                "temporal patch size {} (only 1 is supported)",
                self.patch_size[0]
            ));
        }
        if self.window_size != [-1, -1] {
            return bad(format!(
                "window_size {:?} (only global attention is supported)",
                self.window_size
            ));
        }
        if !self.qk_norm || !self.cross_attn_norm {
            return bad(
                "qk_norm and cross_attn_norm must be on (as in every Wan2.1 release)".into(),
            );
        }
        Ok(())
    }

    /// Tokens per latent frame for a latent of `h × w`.
    pub fn frame_tokens(&self, h: usize, w: usize) -> usize {
        (h / self.patch_size[1]) * (w / self.patch_size[2])
    }

    /// Real dimensions of the (t, h, w) RoPE parts: `d − 4·(d/6)`, `2·(d/6)`, `2·(d/6)`.
    pub fn rope_split(&self) -> [usize; 3] {
        let d = self.head_dim();
        [d - 4 * (d / 6), 2 * (d / 6), 2 * (d / 6)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_config_json_falls_back_to_wans_defaults() {
        // The 1.3B checkpoint's config.json lists only these fields.
        let text = r#"{"_class_name": "WanModel", "_diffusers_version": "0.30.0", "dim": 1536,
            "eps": 1e-06, "ffn_dim": 8960, "freq_dim": 256, "in_dim": 16, "model_type": "t2v",
            "num_heads": 12, "num_layers": 30, "out_dim": 16, "text_len": 512}"#;
        assert_eq!(WanConfig::from_json(text).unwrap(), WanConfig::t2v_1_3b());
    }

    #[test]
    fn the_diffusers_config_maps_to_the_same_model() {
        let text = r#"{"_class_name": "WanTransformer3DModel", "patch_size": [1, 2, 2],
            "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
            "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960,
            "num_layers": 30, "cross_attn_norm": true, "qk_norm": "rms_norm_across_heads",
            "eps": 1e-06, "image_dim": null, "added_kv_proj_dim": null, "rope_max_seq_len": 1024}"#;
        assert_eq!(WanConfig::from_json(text).unwrap(), WanConfig::t2v_1_3b());
    }

    #[test]
    fn presets_and_rope_split() {
        let c = WanConfig::t2v_1_3b();
        assert_eq!(c.head_dim(), 128);
        assert_eq!(c.rope_split(), [44, 42, 42]);
        assert_eq!(c.frame_tokens(60, 104), 1560);
        assert_eq!(WanConfig::t2v_14b().head_dim(), 128);
        let mut tiny = c.clone();
        tiny.dim = 24;
        tiny.num_heads = 2;
        assert_eq!(tiny.rope_split(), [4, 4, 4]);
    }

    #[test]
    fn unsupported_configs_are_refused() {
        let i2v = r#"{"num_attention_heads": 2, "attention_head_dim": 12, "in_channels": 36,
            "out_channels": 16, "text_dim": 32, "freq_dim": 256, "ffn_dim": 32, "num_layers": 1,
            "qk_norm": "rms_norm_across_heads", "image_dim": 1280}"#;
        assert!(
            WanConfig::from_json(i2v)
                .unwrap_err()
                .contains("image-to-video")
        );
        let odd = r#"{"dim": 10, "ffn_dim": 8, "num_heads": 2, "num_layers": 1, "in_dim": 16,
            "out_dim": 16, "freq_dim": 256, "text_len": 512, "eps": 1e-6, "model_type": "t2v"}"#;
        assert!(
            WanConfig::from_json(odd)
                .unwrap_err()
                .contains("head size 5")
        );
        assert!(WanConfig::from_json("{}").is_err());
    }
}
