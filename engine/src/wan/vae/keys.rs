//! The VAE's two key layouts. Tensors are loaded under their **original Wan keys**
//! (`Wan2.1_VAE.pth`); diffusers `AutoencoderKLWan` keys are renamed on read by this table
//! (`n` = `num_res_blocks`; the encoder's flat list keeps its indices):
//!
//! | diffusers | original |
//! |---|---|
//! | `{encoder,decoder}.conv_in.*` | `{…}.conv1.*` |
//! | `encoder.down_blocks.i.*` | `encoder.downsamples.i.*` |
//! | `decoder.up_blocks.b.resnets.r.*` | `decoder.upsamples.{b·(n+2)+r}.*` |
//! | `decoder.up_blocks.b.upsamplers.0.*` | `decoder.upsamples.{b·(n+2)+n+1}.*` |
//! | `{…}.mid_block.resnets.{0,1}.*` | `{…}.middle.{0,2}.*` |
//! | `{…}.mid_block.attentions.0.*` | `{…}.middle.1.*` |
//! | `{…}.norm_out.gamma` / `conv_out.*` | `{…}.head.0.gamma` / `head.2.*` |
//! | `quant_conv.*` / `post_quant_conv.*` | `conv1.*` / `conv2.*` |
//! | inside residual blocks: `norm1.gamma`, `conv1`, `norm2.gamma`, `conv2`, `conv_shortcut` | `residual.0.gamma`, `residual.2`, `residual.3.gamma`, `residual.6`, `shortcut` |
//!
//! `resample.1.*`, `time_conv.*`, and the attention's `norm.gamma`, `to_qkv`, `proj` keep
//! their names.

use crate::wan::weights::Layout;
use std::collections::BTreeSet;

/// Tells the layout from the first convolution's name.
pub fn detect_layout(raw: &BTreeSet<String>) -> Option<Layout> {
    if raw.contains("encoder.conv1.weight") || raw.contains("decoder.conv1.weight") {
        Some(Layout::Original)
    } else if raw.contains("encoder.conv_in.weight") || raw.contains("decoder.conv_in.weight") {
        Some(Layout::Diffusers)
    } else {
        None
    }
}

/// Renames the parts of a residual block (`tail` follows the block's index).
fn residual_tail(tail: &str) -> String {
    const MAP: &[(&str, &str)] = &[
        ("norm1.", "residual.0."),
        ("conv1.", "residual.2."),
        ("norm2.", "residual.3."),
        ("conv2.", "residual.6."),
        ("conv_shortcut.", "shortcut."),
    ];
    for (from, to) in MAP {
        if let Some(rest) = tail.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    tail.to_owned()
}

/// The original key of a diffusers `AutoencoderKLWan` key; unknown keys pass through.
pub fn diffusers_to_original(key: &str, num_res_blocks: usize) -> String {
    const TOP: &[(&str, &str)] = &[("quant_conv.", "conv1."), ("post_quant_conv.", "conv2.")];
    for (from, to) in TOP {
        if let Some(rest) = key.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    let Some((part, rest)) = key.split_once('.') else {
        return key.to_owned();
    };
    if part != "encoder" && part != "decoder" {
        return key.to_owned();
    }
    let mapped = if let Some(r) = rest.strip_prefix("conv_in.") {
        format!("conv1.{r}")
    } else if let Some(r) = rest.strip_prefix("norm_out.") {
        format!("head.0.{r}")
    } else if let Some(r) = rest.strip_prefix("conv_out.") {
        format!("head.2.{r}")
    } else if let Some(r) = rest.strip_prefix("mid_block.resnets.") {
        match r.split_once('.') {
            Some((i, tail)) => match i.parse::<usize>() {
                Ok(i) => format!("middle.{}.{}", 2 * i, residual_tail(tail)),
                Err(_) => rest.to_owned(),
            },
            None => rest.to_owned(),
        }
    } else if let Some(r) = rest.strip_prefix("mid_block.attentions.0.") {
        format!("middle.1.{r}")
    } else if let Some(r) = rest.strip_prefix("down_blocks.") {
        match r.split_once('.') {
            Some((i, tail)) => format!("downsamples.{i}.{}", residual_tail(tail)),
            None => rest.to_owned(),
        }
    } else if let Some(r) = rest.strip_prefix("up_blocks.") {
        let stride = num_res_blocks + 2;
        let parsed = r.split_once('.').and_then(|(b, tail)| {
            let b: usize = b.parse().ok()?;
            if let Some(t) = tail.strip_prefix("resnets.") {
                let (r, t) = t.split_once('.')?;
                let r: usize = r.parse().ok()?;
                Some(format!("upsamples.{}.{}", b * stride + r, residual_tail(t)))
            } else {
                let t = tail.strip_prefix("upsamplers.0.")?;
                Some(format!("upsamples.{}.{t}", b * stride + num_res_blocks + 1))
            }
        });
        match parsed {
            Some(p) => p,
            None => rest.to_owned(),
        }
    } else {
        rest.to_owned()
    };
    format!("{part}.{mapped}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffusers_keys_map_to_the_original_names() {
        for (d, o) in [
            ("encoder.conv_in.weight", "encoder.conv1.weight"),
            (
                "encoder.down_blocks.0.norm1.gamma",
                "encoder.downsamples.0.residual.0.gamma",
            ),
            (
                "encoder.down_blocks.3.conv_shortcut.bias",
                "encoder.downsamples.3.shortcut.bias",
            ),
            (
                "encoder.down_blocks.5.time_conv.weight",
                "encoder.downsamples.5.time_conv.weight",
            ),
            (
                "encoder.down_blocks.2.resample.1.weight",
                "encoder.downsamples.2.resample.1.weight",
            ),
            (
                "encoder.mid_block.resnets.1.conv2.weight",
                "encoder.middle.2.residual.6.weight",
            ),
            (
                "decoder.mid_block.attentions.0.to_qkv.weight",
                "decoder.middle.1.to_qkv.weight",
            ),
            ("encoder.norm_out.gamma", "encoder.head.0.gamma"),
            ("decoder.conv_out.bias", "decoder.head.2.bias"),
            ("quant_conv.weight", "conv1.weight"),
            ("post_quant_conv.bias", "conv2.bias"),
            (
                "decoder.up_blocks.1.resnets.0.conv_shortcut.weight",
                "decoder.upsamples.4.shortcut.weight",
            ),
            (
                "decoder.up_blocks.3.resnets.2.norm2.gamma",
                "decoder.upsamples.14.residual.3.gamma",
            ),
            (
                "decoder.up_blocks.2.upsamplers.0.resample.1.weight",
                "decoder.upsamples.11.resample.1.weight",
            ),
            (
                "decoder.up_blocks.0.upsamplers.0.time_conv.bias",
                "decoder.upsamples.3.time_conv.bias",
            ),
        ] {
            assert_eq!(diffusers_to_original(d, 2), o, "{d}");
        }
    }
}
