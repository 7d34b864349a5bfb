//! Where the Wan pipelines' files live under `--models-dir`: the original app's layout
//! (`hanzoai/live` `download_models.py`), one table for
//! every pipeline. The model-download manifests reuse it: each entry names the Hugging Face
//! repository and file it comes from.
//!
//! ```text
//! <models-dir>/
//!   Wan2.1-T2V-1.3B/config.json                      DiT config (all)
//!   Wan2.1-T2V-1.3B/Wan2.1_VAE.pth                   VAE (all)
//!   Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json   tokenizer (all)
//!   Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth  text encoder, bf16 (or ↓)
//!   WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors  text encoder, fp8 (or ↑)
//!   Self-Forcing/checkpoints/self_forcing_dmd.pt     self-forcing
//!   LongLive-1.3B/models/longlive_base.pt            longlive
//!   LongLive-1.3B/models/lora.pt                     longlive
//!   StreamDiffusionV2/wan_causal_dmd_v2v/model.pt    streamdiffusionv2 (or StreamDiffusionV2/model.pt)
//!   Autoencoders/lightvaew2_1.pth                    vae_type lightvae (or .safetensors)
//!   Autoencoders/taew2_1.pth                         vae_type tae (or .safetensors)
//!   Autoencoders/lighttaew2_1.pth                    vae_type lighttae (or .safetensors)
//! ```
//!
//! The Wan VAE is needed only when the pipeline's `vae_type` (or StreamDiffusionV2's
//! `encoder_vae_type`) is `wan`, the default.

use super::WanPipeline;
use crate::wan::video_vae::VaeType;
use std::path::{Path, PathBuf};

/// What a file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The DiT's `config.json` (original Wan layout).
    DitConfig,
    /// `Wan2.1_VAE.pth`.
    Vae,
    /// `lightvaew2_1.pth` (LightX2V).
    LightVae,
    /// `taew2_1.pth`.
    Tae,
    /// `lighttaew2_1.pth` (LightX2V).
    LightTae,
    /// UMT5's `tokenizer.json`.
    Tokenizer,
    /// The UMT5-XXL encoder weights.
    TextEncoder,
    /// The method's DiT checkpoint.
    Dit,
    /// LongLive's LoRA.
    Lora,
}

impl Role {
    /// The autoencoder whose file this is, if it is one.
    pub fn vae_type(self) -> Option<VaeType> {
        VaeType::ALL.into_iter().find(|t| Role::of_vae(*t) == self)
    }

    /// The file role of an autoencoder.
    pub fn of_vae(vae: VaeType) -> Role {
        match vae {
            VaeType::Wan => Role::Vae,
            VaeType::LightVae => Role::LightVae,
            VaeType::Tae => Role::Tae,
            VaeType::LightTae => Role::LightTae,
        }
    }
}

/// The autoencoders a load uses: the decoder's, and for video → video the encoder's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaeChoice {
    pub decoder: VaeType,
    pub encoder: Option<VaeType>,
}

impl VaeChoice {
    /// The Wan VAE for everything (every pipeline's default).
    pub fn wan(p: WanPipeline) -> Self {
        Self {
            decoder: VaeType::Wan,
            encoder: (p == WanPipeline::StreamDiffusionV2).then_some(VaeType::Wan),
        }
    }

    /// From load parameters: `vae_type` (default `wan`) and, for StreamDiffusionV2,
    /// `encoder_vae_type` (`same`, the default, or a type of its own).
    pub fn from_params(
        p: WanPipeline,
        params: &crate::pipeline::params::Params,
    ) -> Result<Self, String> {
        let parse = |key: &str, default: &str| {
            let id = super::choice(params, key).unwrap_or(default);
            VaeType::parse(id).ok_or_else(|| format!("{key}: unknown autoencoder {id:?}"))
        };
        let decoder = parse("vae_type", "wan")?;
        let encoder = if p == WanPipeline::StreamDiffusionV2 {
            Some(match super::choice(params, "encoder_vae_type") {
                None | Some("same") => decoder,
                Some(_) => parse("encoder_vae_type", "same")?,
            })
        } else {
            None
        };
        Ok(Self { decoder, encoder })
    }

    /// The distinct autoencoders, decoder first.
    pub fn types(&self) -> Vec<VaeType> {
        let mut v = vec![self.decoder];
        if let Some(e) = self.encoder
            && e != self.decoder
        {
            v.push(e);
        }
        v
    }
}

/// One file a pipeline may use.
#[derive(Clone, Copy, Debug)]
pub struct Artefact {
    pub role: Role,
    /// Path under the models directory.
    pub local: &'static str,
    /// Hugging Face repository and the file's path in it.
    pub repo: &'static str,
    pub file: &'static str,
    /// The repository revision downloads take: [`REVISION`].
    pub revision: &'static str,
    /// About how many bytes the file is (shown before a download; the hub's own figure is
    /// used once a download starts).
    pub approx_bytes: u64,
    /// Whether downloads fetch this entry. `false`: another accepted name for a file that
    /// downloads under an earlier entry (the original app's StreamDiffusionV2 location, the
    /// `.safetensors` conversions of the light VAEs).
    pub download: bool,
    /// Which pipelines use it.
    pub pipelines: &'static [WanPipeline],
}

/// The revision every file downloads from: each repository's `main` branch, not a pinned
/// commit. The commits could not be looked up where this table was written (no access to the
/// hub); each download reports the commit it got (`X-Repo-Commit`) instead, and a file is
/// always checked against the sha256 and size the hub publishes for it.
pub const REVISION: &str = "main";

/// Which UMT5-XXL encoder file a download fetches (either is used when present).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TextEncoderFile {
    /// `Kijai/WanVideo_comfy` `umt5-xxl-enc-fp8_e4m3fn.safetensors`: about half the bytes.
    #[default]
    Fp8,
    /// `Wan-AI/Wan2.1-T2V-1.3B` `models_t5_umt5-xxl-enc-bf16.pth`.
    Bf16,
}

impl TextEncoderFile {
    pub const ALL: [TextEncoderFile; 2] = [TextEncoderFile::Fp8, TextEncoderFile::Bf16];

    pub fn id(self) -> &'static str {
        match self {
            TextEncoderFile::Fp8 => "fp8",
            TextEncoderFile::Bf16 => "bf16",
        }
    }

    pub fn parse(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.id() == id)
    }

    /// Its path under the models directory.
    pub fn local(self) -> &'static str {
        match self {
            TextEncoderFile::Fp8 => "WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors",
            TextEncoderFile::Bf16 => "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth",
        }
    }
}

const ALL: &[WanPipeline] = &[
    WanPipeline::SelfForcing,
    WanPipeline::LongLive,
    WanPipeline::StreamDiffusionV2,
];

/// Every file, in the order a pipeline looks for them; where two entries share a role for
/// a pipeline, the first present is used.
pub const ARTEFACTS: &[Artefact] = &[
    Artefact {
        role: Role::DitConfig,
        local: "Wan2.1-T2V-1.3B/config.json",
        repo: "Wan-AI/Wan2.1-T2V-1.3B",
        file: "config.json",
        revision: REVISION,
        approx_bytes: 250,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::Vae,
        local: "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth",
        repo: "Wan-AI/Wan2.1-T2V-1.3B",
        file: "Wan2.1_VAE.pth",
        revision: REVISION,
        approx_bytes: 508_000_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::Tokenizer,
        local: "Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json",
        repo: "Wan-AI/Wan2.1-T2V-1.3B",
        file: "google/umt5-xxl/tokenizer.json",
        revision: REVISION,
        approx_bytes: 16_800_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::TextEncoder,
        local: "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth",
        repo: "Wan-AI/Wan2.1-T2V-1.3B",
        file: "models_t5_umt5-xxl-enc-bf16.pth",
        revision: REVISION,
        approx_bytes: 11_400_000_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::TextEncoder,
        local: "WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors",
        repo: "Kijai/WanVideo_comfy",
        file: "umt5-xxl-enc-fp8_e4m3fn.safetensors",
        revision: REVISION,
        approx_bytes: 6_700_000_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::Dit,
        local: "Self-Forcing/checkpoints/self_forcing_dmd.pt",
        repo: "gdhe17/Self-Forcing",
        file: "checkpoints/self_forcing_dmd.pt",
        revision: REVISION,
        approx_bytes: 5_700_000_000,
        download: true,
        pipelines: &[WanPipeline::SelfForcing],
    },
    Artefact {
        role: Role::Dit,
        local: "LongLive-1.3B/models/longlive_base.pt",
        repo: "Efficient-Large-Model/LongLive-1.3B",
        file: "models/longlive_base.pt",
        revision: REVISION,
        approx_bytes: 5_700_000_000,
        download: true,
        pipelines: &[WanPipeline::LongLive],
    },
    Artefact {
        role: Role::Lora,
        local: "LongLive-1.3B/models/lora.pt",
        repo: "Efficient-Large-Model/LongLive-1.3B",
        file: "models/lora.pt",
        revision: REVISION,
        approx_bytes: 1_400_000_000,
        download: true,
        pipelines: &[WanPipeline::LongLive],
    },
    Artefact {
        role: Role::Dit,
        local: "StreamDiffusionV2/wan_causal_dmd_v2v/model.pt",
        repo: "jerryfeng/StreamDiffusionV2",
        file: "wan_causal_dmd_v2v/model.pt",
        revision: REVISION,
        approx_bytes: 5_700_000_000,
        download: true,
        pipelines: &[WanPipeline::StreamDiffusionV2],
    },
    Artefact {
        // The original app's location (it downloaded the file from Google Drive).
        role: Role::Dit,
        local: "StreamDiffusionV2/model.pt",
        repo: "jerryfeng/StreamDiffusionV2",
        file: "wan_causal_dmd_v2v/model.pt",
        revision: REVISION,
        approx_bytes: 5_700_000_000,
        download: false,
        pipelines: &[WanPipeline::StreamDiffusionV2],
    },
    Artefact {
        role: Role::LightVae,
        local: "Autoencoders/lightvaew2_1.pth",
        repo: "lightx2v/Autoencoders",
        file: "lightvaew2_1.pth",
        revision: REVISION,
        approx_bytes: 32_000_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::LightVae,
        local: "Autoencoders/lightvaew2_1.safetensors",
        repo: "lightx2v/Autoencoders",
        file: "lightvaew2_1.safetensors",
        revision: REVISION,
        approx_bytes: 32_000_000,
        download: false,
        pipelines: ALL,
    },
    Artefact {
        role: Role::Tae,
        local: "Autoencoders/taew2_1.pth",
        repo: "lightx2v/Autoencoders",
        file: "taew2_1.pth",
        revision: REVISION,
        approx_bytes: 22_700_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::Tae,
        local: "Autoencoders/taew2_1.safetensors",
        repo: "lightx2v/Autoencoders",
        file: "taew2_1.safetensors",
        revision: REVISION,
        approx_bytes: 22_700_000,
        download: false,
        pipelines: ALL,
    },
    Artefact {
        role: Role::LightTae,
        local: "Autoencoders/lighttaew2_1.pth",
        repo: "lightx2v/Autoencoders",
        file: "lighttaew2_1.pth",
        revision: REVISION,
        approx_bytes: 22_700_000,
        download: true,
        pipelines: ALL,
    },
    Artefact {
        role: Role::LightTae,
        local: "Autoencoders/lighttaew2_1.safetensors",
        repo: "lightx2v/Autoencoders",
        file: "lighttaew2_1.safetensors",
        revision: REVISION,
        approx_bytes: 22_700_000,
        download: false,
        pipelines: ALL,
    },
];

/// The roles a pipeline needs with these autoencoders.
pub fn roles(p: WanPipeline, vae: VaeChoice) -> Vec<Role> {
    let mut r = vec![Role::DitConfig];
    r.extend(vae.types().into_iter().map(Role::of_vae));
    r.extend([Role::Tokenizer, Role::TextEncoder, Role::Dit]);
    if p == WanPipeline::LongLive {
        r.push(Role::Lora);
    }
    r
}

/// The candidates for `role` of pipeline `p`, in order of preference.
pub fn candidates(p: WanPipeline, role: Role) -> impl Iterator<Item = &'static Artefact> {
    ARTEFACTS
        .iter()
        .filter(move |a| a.role == role && a.pipelines.contains(&p))
}

/// One file a pipeline needs for some settings: the entry found under the models directory,
/// or the one a download fetches.
#[derive(Clone, Debug)]
pub struct Need {
    pub artefact: &'static Artefact,
    /// Where it was found; `None`: missing.
    pub present: Option<PathBuf>,
}

/// Every file pipeline `p` needs with the autoencoders `vae`, present or not; a missing text
/// encoder is the one `te` names (either is used when present).
pub fn needs(dir: &Path, p: WanPipeline, vae: VaeChoice, te: TextEncoderFile) -> Vec<Need> {
    roles(p, vae)
        .into_iter()
        .filter_map(|role| {
            let found = candidates(p, role).find_map(|a| {
                let path = dir.join(a.local);
                path.is_file().then_some((a, path))
            });
            match found {
                Some((artefact, path)) => Some(Need {
                    artefact,
                    present: Some(path),
                }),
                None => candidates(p, role)
                    .filter(|a| a.download)
                    .find(|a| role != Role::TextEncoder || a.local == te.local())
                    .map(|artefact| Need {
                        artefact,
                        present: None,
                    }),
            }
        })
        .collect()
}

/// What to download so that pipeline `p` runs with the autoencoders `vae` from `dir`: the
/// missing files of [`needs`].
pub fn download_plan(
    dir: &Path,
    p: WanPipeline,
    vae: VaeChoice,
    te: TextEncoderFile,
) -> Vec<&'static Artefact> {
    needs(dir, p, vae, te)
        .into_iter()
        .filter(|n| n.present.is_none())
        .map(|n| n.artefact)
        .collect()
}

/// A pipeline's files, found.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFiles {
    pub dit_config: PathBuf,
    /// Each autoencoder's file.
    pub vaes: Vec<(VaeType, PathBuf)>,
    pub tokenizer: PathBuf,
    pub text_encoder: PathBuf,
    pub dit: PathBuf,
    pub lora: Option<PathBuf>,
}

/// Files a pipeline needs that are not there: each role with the paths looked at.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("missing model files under {}: {}", dir.display(), describe(missing))]
pub struct MissingFiles {
    pub dir: PathBuf,
    /// (role, the paths looked for).
    pub missing: Vec<(Role, Vec<PathBuf>)>,
}

fn describe(missing: &[(Role, Vec<PathBuf>)]) -> String {
    missing
        .iter()
        .map(|(role, paths)| {
            let paths: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            format!("{role:?} (looked for {})", paths.join(" or "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl ModelFiles {
    /// Finds pipeline `p`'s files under `dir` for the autoencoders `vae`.
    pub fn locate(dir: &Path, p: WanPipeline, vae: VaeChoice) -> Result<Self, MissingFiles> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for role in roles(p, vae) {
            let paths: Vec<PathBuf> = candidates(p, role).map(|a| dir.join(a.local)).collect();
            match paths.iter().find(|p| p.is_file()) {
                Some(path) => found.push((role, path.clone())),
                None => missing.push((role, paths)),
            }
        }
        if !missing.is_empty() {
            return Err(MissingFiles {
                dir: dir.to_owned(),
                missing,
            });
        }
        let get = |role| {
            found
                .iter()
                .find(|(r, _)| *r == role)
                .map(|(_, p)| p.clone())
        };
        let need = |role| get(role).unwrap_or_default();
        Ok(Self {
            dit_config: need(Role::DitConfig),
            vaes: vae
                .types()
                .into_iter()
                .map(|t| (t, need(Role::of_vae(t))))
                .collect(),
            tokenizer: need(Role::Tokenizer),
            text_encoder: need(Role::TextEncoder),
            dit: need(Role::Dit),
            lora: get(Role::Lora),
        })
    }

    /// The file of autoencoder `vae` (located with it).
    pub fn vae(&self, vae: VaeType) -> Option<&Path> {
        self.vaes
            .iter()
            .find(|(t, _)| *t == vae)
            .map(|(_, p)| p.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_name_every_path_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let e = ModelFiles::locate(
            dir.path(),
            WanPipeline::LongLive,
            VaeChoice::wan(WanPipeline::LongLive),
        )
        .unwrap_err();
        assert_eq!(e.missing.len(), 6);
        let text = e.to_string();
        for part in [
            "Wan2.1-T2V-1.3B/config.json",
            "models_t5_umt5-xxl-enc-bf16.pth or",
            "WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors",
            "LongLive-1.3B/models/lora.pt",
        ] {
            assert!(text.contains(part), "{text}");
        }
        // The fork's StreamDiffusionV2 location is accepted.
        for a in ARTEFACTS
            .iter()
            .filter(|a| a.pipelines.contains(&WanPipeline::StreamDiffusionV2))
            .filter(|a| a.local != "StreamDiffusionV2/wan_causal_dmd_v2v/model.pt")
            .filter(|a| !matches!(a.role, Role::LightVae | Role::Tae | Role::LightTae))
        {
            let path = dir.path().join(a.local);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"x").unwrap();
        }
        let sd = WanPipeline::StreamDiffusionV2;
        let f = ModelFiles::locate(dir.path(), sd, VaeChoice::wan(sd)).unwrap();
        assert_eq!(f.dit, dir.path().join("StreamDiffusionV2/model.pt"));
        assert_eq!(
            f.text_encoder,
            dir.path()
                .join("Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth")
        );
        assert_eq!(f.lora, None);
        assert_eq!(
            f.vae(VaeType::Wan),
            Some(dir.path().join("Wan2.1-T2V-1.3B/Wan2.1_VAE.pth").as_path())
        );

        // A TAE decoder beside the Wan encoder: only taew2_1 is missing, in either file kind.
        let choice = VaeChoice {
            decoder: VaeType::Tae,
            encoder: Some(VaeType::Wan),
        };
        let e = ModelFiles::locate(dir.path(), sd, choice).unwrap_err();
        assert_eq!(e.missing.len(), 1);
        assert_eq!(e.missing[0].0, Role::Tae);
        assert!(e.to_string().contains("Autoencoders/taew2_1.pth or"), "{e}");
        let st = dir.path().join("Autoencoders/taew2_1.safetensors");
        std::fs::create_dir_all(st.parent().unwrap()).unwrap();
        std::fs::write(&st, b"x").unwrap();
        let f = ModelFiles::locate(dir.path(), sd, choice).unwrap();
        assert_eq!(f.vae(VaeType::Tae), Some(st.as_path()));
        assert_eq!(f.vaes.len(), 2);
    }

    #[test]
    fn a_download_plan_fetches_what_is_missing_once() {
        let dir = tempfile::tempdir().unwrap();
        let ll = WanPipeline::LongLive;
        let plan = download_plan(dir.path(), ll, VaeChoice::wan(ll), TextEncoderFile::Fp8);
        let files: Vec<&str> = plan.iter().map(|a| a.local).collect();
        assert_eq!(
            files,
            [
                "Wan2.1-T2V-1.3B/config.json",
                "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth",
                "Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json",
                "WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors",
                "LongLive-1.3B/models/longlive_base.pt",
                "LongLive-1.3B/models/lora.pt",
            ]
        );
        assert!(
            plan.iter()
                .all(|a| a.revision == REVISION && a.approx_bytes > 0)
        );
        // The bf16 encoder already there is used, whichever kind was asked for; the TAE
        // downloads its .pth, never the alternative name.
        let bf16 = dir.path().join(TextEncoderFile::Bf16.local());
        std::fs::create_dir_all(bf16.parent().unwrap()).unwrap();
        std::fs::write(&bf16, b"x").unwrap();
        let choice = VaeChoice {
            decoder: VaeType::Tae,
            encoder: None,
        };
        let plan = download_plan(dir.path(), ll, choice, TextEncoderFile::Fp8);
        assert!(plan.iter().all(|a| a.role != Role::TextEncoder));
        let tae: Vec<_> = plan.iter().filter(|a| a.role == Role::Tae).collect();
        assert_eq!(tae.len(), 1);
        assert_eq!(tae[0].local, "Autoencoders/taew2_1.pth");
        assert!(!plan.iter().any(|a| a.role == Role::Vae));
        // StreamDiffusionV2 downloads to its Hugging Face layout, not the original app's name.
        let sd = WanPipeline::StreamDiffusionV2;
        let plan = download_plan(dir.path(), sd, VaeChoice::wan(sd), TextEncoderFile::Bf16);
        let dit: Vec<_> = plan.iter().filter(|a| a.role == Role::Dit).collect();
        assert_eq!(
            dit[0].local,
            "StreamDiffusionV2/wan_causal_dmd_v2v/model.pt"
        );
        assert_eq!(dit.len(), 1);
    }
}
