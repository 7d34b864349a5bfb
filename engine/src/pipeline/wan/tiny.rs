//! Tiny model sets in the real file layouts (`hanzo-live engine make-tiny`): random weights,
//! small widths, the same file names, containers and key names the loaders read from a real
//! `--models-dir` — so the pipelines run end to end on a CPU in seconds (the video is
//! meaningless).
//!
//! | file | as published |
//! |---|---|
//! | `Wan2.1-T2V-1.3B/config.json` | the original `WanModel` config (dim 24, 2 heads, 2 layers, text_dim 32) |
//! | `Wan2.1-T2V-1.3B/Wan2.1_VAE.pth` | plain state dict, original VAE keys, f32 (base_dim 4) |
//! | `Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json` | a SentencePiece-style unigram tokenizer (`</s>` appended), [`tokenizer_json`] |
//! | `Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth` | Wan T5 keys, bf16 (d_model 32, 2 layers) |
//! | `Self-Forcing/checkpoints/self_forcing_dmd.pt` | `generator` + `generator_ema` (the pipeline loads the EMA weights, as the original's `--use_ema`), `model.` + Wan keys |
//! | `LongLive-1.3B/models/longlive_base.pt`, `models/lora.pt` | the same; the LoRA as PEFT keys under `generator_lora` (rank 4) |
//! | `StreamDiffusionV2/wan_causal_dmd_v2v/model.pt` | `generator`, `model.` + Wan keys |
//! | `Autoencoders/lightvaew2_1.pth` | plain state dict, original VAE keys, f32 (base_dim 4, another seed) |
//! | `Autoencoders/taew2_1.pth`, `Autoencoders/lighttaew2_1.pth` | plain state dicts, `encoder.{i}…`/`decoder.{i}…`, bf16: the TAEs' full architecture (it has no width to shrink; 11 M parameters, 23 MB each) |

use super::{WanPipeline, files};
use crate::{
    backend::{BackendKind, WithBackend},
    text::tokenizer::{TokenizerError, Umt5Tokenizer},
    wan::{
        Checkpoint, WanConfig,
        lora::BLOCK_LINEARS,
        tae::{Tae, TaeConfig, TaeKind},
        umt5::{Umt5Config, Umt5Encoder},
        vae::{AutoencoderKLWanConfig, WanVae},
        weights::{
            RandomFill,
            pickle::{self, Node},
        },
    },
};
use burn::tensor::{DType, TensorData, backend::Backend};
use serde_json::json;
use std::path::{Path, PathBuf};

/// The tiny DiT ([`WanConfig::tiny`]).
pub fn dit_config() -> WanConfig {
    WanConfig::tiny()
}

/// The tiny text encoder (its width is the tiny DiT's `text_dim`).
pub fn text_config() -> Umt5Config {
    Umt5Config {
        vocab_size: 256,
        d_model: 32,
        d_kv: 8,
        d_ff: 48,
        num_layers: 2,
        num_heads: 4,
        ..Umt5Config::umt5_xxl()
    }
}

/// The tiny VAE: Wan2.1's topology at base_dim 4.
pub fn vae_config() -> AutoencoderKLWanConfig {
    AutoencoderKLWanConfig {
        base_dim: 4,
        ..AutoencoderKLWanConfig::wan2_1()
    }
}

/// LoRA rank of the tiny LongLive set.
pub const LORA_RANK: usize = 4;

const WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "in",
    "on",
    "of",
    "and",
    "with",
    "at",
    "to",
    "red",
    "blue",
    "green",
    "white",
    "black",
    "fox",
    "dog",
    "cat",
    "panda",
    "bear",
    "bird",
    "snow",
    "grass",
    "park",
    "forest",
    "city",
    "street",
    "night",
    "day",
    "spring",
    "rain",
    "sun",
    "water",
    "sea",
    "sky",
    "walks",
    "runs",
    "flies",
    "looking",
    "around",
    "camera",
    "towards",
    "path",
    "scene",
    "cinematic",
    "photorealistic",
    "animated",
    "3D",
    "trotting",
    "fresh",
    "birch",
    "light",
];

/// A small real tokenizer in UMT5's `tokenizer.json` format: a unigram model over 3 special
/// tokens, single characters and a few words (`▁`-prefixed), Metaspace pre-tokenizer,
/// `</s>` appended by the post-processor. Fewer than 256 pieces, so it fits
/// [`text_config`]'s vocabulary.
pub fn tokenizer_json() -> String {
    let mut vocab: Vec<(String, f64)> = vec![
        ("<pad>".into(), 0.0),
        ("</s>".into(), 0.0),
        ("<unk>".into(), 0.0),
        ("▁".into(), -2.0),
    ];
    let chars = ('a'..='z')
        .chain('A'..='Z')
        .chain('0'..='9')
        .chain(".,!?'-:;()\"".chars());
    vocab.extend(chars.map(|c| (c.to_string(), -6.0)));
    vocab.extend(WORDS.iter().map(|w| (format!("▁{w}"), -3.0)));
    let special = |id: usize, content: &str| {
        json!({"id": id, "content": content, "single_word": false, "lstrip": false,
               "rstrip": false, "normalized": false, "special": true})
    };
    let metaspace = json!({"type": "Metaspace", "replacement": "▁",
                           "prepend_scheme": "always", "split": true});
    json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<pad>"), special(1, "</s>"), special(2, "<unk>")],
        "normalizer": {"type": "NFKC"},
        "pre_tokenizer": {"type": "Sequence",
                          "pretokenizers": [{"type": "WhitespaceSplit"}, metaspace]},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}
        },
        "decoder": metaspace,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": false}
    })
    .to_string()
}

/// [`tokenizer_json`] loaded.
pub fn tokenizer() -> Result<Umt5Tokenizer, TokenizerError> {
    Umt5Tokenizer::from_json(&tokenizer_json())
}

/// The tensors a loader asks for, made up by a recording fill (so the key set is exactly
/// what the engine reads).
struct Record {
    vae: AutoencoderKLWanConfig,
    text: Umt5Config,
    seed: u64,
}

type Tensors = Vec<(String, TensorData)>;

/// What [`Record`] makes: the Wan VAE, the text encoder, LightVAE, TAE, LightTAE.
struct Recorded {
    vae: Tensors,
    text: Tensors,
    light_vae: Tensors,
    tae: Tensors,
    light_tae: Tensors,
}

impl WithBackend for Record {
    type Output = Result<Recorded, String>;
    fn run<B: Backend>(self, _kind: BackendKind, device: B::Device) -> Self::Output {
        let err = |e: crate::wan::LoadError| e.to_string();
        let vae = |seed: u64| -> Result<Tensors, String> {
            let (fill, rec) = RandomFill::recording(seed, DType::F32);
            WanVae::<B>::load(
                self.vae.clone(),
                Checkpoint::with_fill(fill),
                &device,
                DType::F32,
            )
            .map_err(err)?;
            Ok(rec.take())
        };
        let tae = |kind: TaeKind, seed: u64| -> Result<Tensors, String> {
            let (fill, rec) = RandomFill::recording(seed, DType::BF16);
            Tae::<B>::load(
                TaeConfig::new(kind),
                Checkpoint::with_fill(fill),
                &device,
                DType::F32,
            )
            .map_err(err)?;
            Ok(rec.take())
        };
        let (fill, rec) = RandomFill::recording(self.seed + 1, DType::BF16);
        Umt5Encoder::<B>::load(
            self.text.clone(),
            Checkpoint::with_fill(fill),
            &device,
            DType::F32,
        )
        .map_err(err)?;
        Ok(Recorded {
            vae: vae(self.seed)?,
            text: rec.take(),
            light_vae: vae(self.seed + 2)?,
            tae: tae(TaeKind::Tae, self.seed + 3)?,
            light_tae: tae(TaeKind::LightTae, self.seed + 4)?,
        })
    }
}

fn dit_state(cfg: &WanConfig, seed: u64) -> Result<Node, String> {
    let tensors = Checkpoint::random(cfg, seed, DType::F32)
        .into_tensors()
        .map_err(|e| e.to_string())?;
    Ok(Node::tensors(
        tensors.into_iter().map(|(k, v)| (format!("model.{k}"), v)),
    ))
}

/// LongLive's LoRA as PEFT writes it: every block linear, `lora_A` `[r, in]` and small
/// `lora_B` `[out, r]`, under `generator_lora`.
fn lora_state(cfg: &WanConfig, seed: u64) -> Node {
    let mut fill = RandomFill::new(seed, DType::F32);
    let mut tensors = Vec::new();
    for i in 0..cfg.num_layers {
        for name in BLOCK_LINEARS {
            let (d_in, d_out) = match name {
                "ffn.0" => (cfg.dim, cfg.ffn_dim),
                "ffn.2" => (cfg.ffn_dim, cfg.dim),
                _ => (cfg.dim, cfg.dim),
            };
            let key = format!("base_model.model.blocks.{i}.{name}");
            let a = fill.make(&format!("{key}.lora_A.weight"), &[LORA_RANK, d_in]);
            let b = fill.make(&format!("{key}.lora_B.weight"), &[d_out, LORA_RANK]);
            let b: Vec<f32> = b.to_vec().unwrap_or_default();
            let b = TensorData::new(b.iter().map(|x| x * 0.1).collect(), [d_out, LORA_RANK]);
            tensors.push((format!("{key}.lora_A.weight"), a));
            tensors.push((format!("{key}.lora_B.weight"), b));
        }
    }
    Node::dict([("generator_lora".to_owned(), Node::tensors(tensors))])
}

/// Writes the tiny model set of `pipelines` under `dir` (shared files once) on the CPU
/// backend `cpu`. Returns the files written.
pub fn write_model_set(
    dir: &Path,
    pipelines: &[WanPipeline],
    seed: u64,
    cpu: BackendKind,
) -> Result<Vec<PathBuf>, String> {
    let local = |role: files::Role, p: WanPipeline| {
        files::candidates(p, role)
            .next()
            .map(|a| dir.join(a.local))
            .unwrap_or_default()
    };
    let any = pipelines
        .first()
        .copied()
        .unwrap_or(WanPipeline::SelfForcing);
    let mut written = Vec::new();
    let mut put = |path: PathBuf, bytes: &[u8]| -> Result<(), String> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        written.push(path);
        Ok(())
    };
    let c = dit_config();
    let config = json!({
        "_class_name": "WanModel", "_diffusers_version": "0.30.0", "model_type": "t2v",
        "dim": c.dim, "ffn_dim": c.ffn_dim, "num_heads": c.num_heads,
        "num_layers": c.num_layers, "in_dim": c.in_dim, "out_dim": c.out_dim,
        "freq_dim": c.freq_dim, "text_len": c.text_len, "eps": c.eps, "text_dim": c.text_dim,
    });
    put(
        local(files::Role::DitConfig, any),
        serde_json::to_string_pretty(&config)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    put(
        local(files::Role::Tokenizer, any),
        tokenizer_json().as_bytes(),
    )?;
    let recorded = crate::backend::dispatch(
        cpu,
        Record {
            vae: vae_config(),
            text: text_config(),
            seed,
        },
    )
    .map_err(|e| e.to_string())??;
    for (role, tensors) in [
        (files::Role::Vae, recorded.vae),
        (files::Role::TextEncoder, recorded.text),
        (files::Role::LightVae, recorded.light_vae),
        (files::Role::Tae, recorded.tae),
        (files::Role::LightTae, recorded.light_tae),
    ] {
        let path = local(role, any);
        pickle::write(&path, &Node::tensors(tensors))?;
        written.push(path);
    }
    for (i, &p) in pipelines.iter().enumerate() {
        let state = dit_state(&c, seed + 10 + i as u64)?;
        let root = match p {
            WanPipeline::StreamDiffusionV2 => Node::dict([("generator".to_owned(), state)]),
            _ => Node::dict([
                ("generator".to_owned(), state),
                (
                    "generator_ema".to_owned(),
                    dit_state(&c, seed + 30 + i as u64)?,
                ),
            ]),
        };
        let path = local(files::Role::Dit, p);
        pickle::write(&path, &root)?;
        written.push(path);
        if p == WanPipeline::LongLive {
            let path = local(files::Role::Lora, p);
            pickle::write(&path, &lora_state(&c, seed + 20))?;
            written.push(path);
        }
    }
    Ok(written)
}
