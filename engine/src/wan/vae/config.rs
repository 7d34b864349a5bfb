//! `AutoencoderKLWanConfig`: the Wan2.1 VAE's hyper-parameters, as diffusers writes them in
//! `vae/config.json`; the default is Wan2.1's own architecture.

use serde::Deserialize;
use std::path::Path;

/// The Wan2.1 VAE's configuration, named like diffusers `AutoencoderKLWan`'s `config.json`.
///
/// Upstream: `_video_vae(z_dim=16, dim=96, dim_mult=[1,2,4,4], num_res_blocks=2,
/// attn_scales=[], temperal_downsample=[False,True,True])` in
/// `Wan-Video/Wan2.1@9737cba wan/modules/vae.py`; diffusers calls `dim` `base_dim`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct AutoencoderKLWanConfig {
    /// Width of the first and last stage (96).
    #[serde(default = "defaults::base_dim")]
    pub base_dim: usize,
    /// Latent channels (16).
    #[serde(default = "defaults::z_dim")]
    pub z_dim: usize,
    /// Width multipliers per stage ([1, 2, 4, 4]).
    #[serde(default = "defaults::dim_mult")]
    pub dim_mult: Vec<usize>,
    /// Residual blocks per encoder stage (the decoder has one more) (2).
    #[serde(default = "defaults::num_res_blocks")]
    pub num_res_blocks: usize,
    /// Scales with attention blocks inside the stages (none in Wan2.1).
    #[serde(default)]
    pub attn_scales: Vec<f64>,
    /// Which encoder downsamples also halve time ([false, true, true]); the decoder mirrors it.
    #[serde(default = "defaults::temperal_downsample")]
    pub temperal_downsample: Vec<bool>,
    /// Per-channel latent mean.
    #[serde(default = "defaults::latents_mean")]
    pub latents_mean: Vec<f64>,
    /// Per-channel latent std.
    #[serde(default = "defaults::latents_std")]
    pub latents_std: Vec<f64>,
    /// Wan2.2's residual VAE variant (not supported).
    #[serde(default)]
    pub is_residual: bool,
}

mod defaults {
    pub fn base_dim() -> usize {
        96
    }
    pub fn z_dim() -> usize {
        16
    }
    pub fn dim_mult() -> Vec<usize> {
        vec![1, 2, 4, 4]
    }
    pub fn num_res_blocks() -> usize {
        2
    }
    pub fn temperal_downsample() -> Vec<bool> {
        vec![false, true, true]
    }
    pub fn latents_mean() -> Vec<f64> {
        vec![
            -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
            0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
        ]
    }
    pub fn latents_std() -> Vec<f64> {
        vec![
            2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652,
            1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
        ]
    }
}

impl Default for AutoencoderKLWanConfig {
    fn default() -> Self {
        Self::wan2_1()
    }
}

impl AutoencoderKLWanConfig {
    /// Wan2.1's topology at the width and latent size a checkpoint's tensors show (the
    /// original `.pth` has no `config.json`): `base_dim` from `encoder.conv1`, `z_dim` from
    /// `conv2`.
    pub fn infer(ck: &crate::wan::Checkpoint) -> Self {
        let mut c = Self::wan2_1();
        if let Some(s) = ck.shape("encoder.conv1.weight") {
            c.base_dim = s[0];
        }
        if let Some(s) = ck.shape("conv2.weight") {
            c.z_dim = s[0];
        }
        c
    }

    /// Wan2.1's VAE (`Wan2.1_VAE.pth`).
    pub fn wan2_1() -> Self {
        Self {
            base_dim: defaults::base_dim(),
            z_dim: defaults::z_dim(),
            dim_mult: defaults::dim_mult(),
            num_res_blocks: defaults::num_res_blocks(),
            attn_scales: Vec::new(),
            temperal_downsample: defaults::temperal_downsample(),
            latents_mean: defaults::latents_mean(),
            latents_std: defaults::latents_std(),
            is_residual: false,
        }
    }

    /// LightVAE (`lightvaew2_1`, LightX2V): the same network with 75 % of every stage's
    /// channels pruned, i.e. width 24 (encoder `[24, 24, 48, 96, 96]`, decoder
    /// `[96, 96, 96, 48, 24]`); same caches, latent space and normalisation.
    pub fn light_vae() -> Self {
        Self {
            base_dim: 24,
            ..Self::wan2_1()
        }
    }

    /// Parses a diffusers `AutoencoderKLWan` `config.json` and checks it is a Wan2.1 VAE.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let cfg: Self = serde_json::from_str(text).map_err(|e| e.to_string())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and parses `path`.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Refuses what this implementation does not cover.
    pub fn validate(&self) -> Result<(), String> {
        if self.is_residual {
            return Err("is_residual (the Wan2.2 VAE) is not supported".into());
        }
        if !self.attn_scales.is_empty() {
            return Err("attn_scales must be empty (Wan2.1 has no stage attention)".into());
        }
        if self.dim_mult.len() < 2 || self.temperal_downsample.len() != self.dim_mult.len() - 1 {
            return Err(format!(
                "temperal_downsample needs one entry per downsample ({} for dim_mult {:?})",
                self.dim_mult.len().saturating_sub(1),
                self.dim_mult
            ));
        }
        if self.base_dim == 0 || self.z_dim == 0 || self.num_res_blocks == 0 {
            return Err("base_dim, z_dim and num_res_blocks must be positive".into());
        }
        if self.latents_mean.len() != self.z_dim || self.latents_std.len() != self.z_dim {
            return Err(format!(
                "latents_mean / latents_std need {} entries",
                self.z_dim
            ));
        }
        if self.latents_std.iter().any(|s| *s <= 0.0) {
            return Err("latents_std must be positive".into());
        }
        Ok(())
    }

    /// Spatial compression (8 for Wan2.1).
    pub fn spatial_factor(&self) -> usize {
        1 << (self.dim_mult.len() - 1)
    }

    /// Temporal compression (4 for Wan2.1).
    pub fn temporal_factor(&self) -> usize {
        1 << self.temperal_downsample.iter().filter(|t| **t).count()
    }

    /// Channel widths of the encoder stages: `base_dim · [1] ++ dim_mult`.
    pub fn encoder_dims(&self) -> Vec<usize> {
        std::iter::once(1)
            .chain(self.dim_mult.iter().copied())
            .map(|m| m * self.base_dim)
            .collect()
    }

    /// Channel widths of the decoder stages: `base_dim · [last] ++ reversed(dim_mult)`.
    pub fn decoder_dims(&self) -> Vec<usize> {
        let last = *self.dim_mult.last().unwrap_or(&1);
        std::iter::once(last)
            .chain(self.dim_mult.iter().rev().copied())
            .map(|m| m * self.base_dim)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wan2_1_factors_and_widths() {
        let c = AutoencoderKLWanConfig::wan2_1();
        assert_eq!(c.spatial_factor(), 8);
        assert_eq!(c.temporal_factor(), 4);
        assert_eq!(c.encoder_dims(), [96, 96, 192, 384, 384]);
        assert_eq!(c.decoder_dims(), [384, 384, 384, 192, 96]);
        let light = AutoencoderKLWanConfig::light_vae();
        assert_eq!(light.encoder_dims(), [24, 24, 48, 96, 96]);
        assert_eq!(light.decoder_dims(), [96, 96, 96, 48, 24]);
    }

    #[test]
    fn diffusers_json_parses_and_bad_ones_are_refused() {
        let c = AutoencoderKLWanConfig::from_json(
            r#"{"_class_name": "AutoencoderKLWan", "base_dim": 8, "z_dim": 16,
                "dim_mult": [1,2,4,4], "num_res_blocks": 2, "attn_scales": [],
                "temperal_downsample": [false,true,true], "dropout": 0.0}"#,
        )
        .unwrap();
        assert_eq!(c.base_dim, 8);
        assert_eq!(c.latents_std.len(), 16);
        for bad in [
            r#"{"is_residual": true}"#,
            r#"{"attn_scales": [0.5]}"#,
            r#"{"temperal_downsample": [true]}"#,
            r#"{"z_dim": 8}"#,
            r#"{"base_dim": "wide"}"#,
        ] {
            assert!(AutoencoderKLWanConfig::from_json(bad).is_err(), "{bad}");
        }
    }
}
