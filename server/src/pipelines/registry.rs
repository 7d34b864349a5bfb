//! The pipelines a server can load: one [`PipelineFactory`] each, listed once in
//! [`Registry::standard`]. Adding a pipeline is a factory and a line there.

use engine::{
    backend::{BackendKind, TextEncoderDevice},
    pipeline::{
        LoadedPipeline, PipelineError, PipelineSpec,
        params::{self, Params},
        passthrough::{self, Passthrough},
        vod::{self, Vod},
        wan::{
            self, WanPipeline,
            files::{self, Need, Role, TextEncoderFile, VaeChoice},
            load::{LoadContext as WanLoadContext, ProgressFn},
        },
    },
    wan::video_vae::VaeType,
};
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

/// Everything a load needs from the server: built once from its settings at start-up.
#[derive(Clone)]
pub struct LoadContext {
    /// Where model files are looked for (`--models-dir`).
    pub models_dir: PathBuf,
    /// The engine backend chosen at start-up, or why none could be.
    pub backend: Result<BackendKind, String>,
    /// Where the text encoder runs (`--text-encoder-device`).
    pub text_encoder_device: TextEncoderDevice,
    /// Reports the load's progress (set per load by the manager).
    pub progress: Option<ProgressFn>,
}

impl LoadContext {
    /// Chooses the backend as the settings ask (`--backend`, `--cpu`); a failed choice is
    /// kept as the reason model pipelines cannot load.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        let backend = settings
            .backend
            .as_deref()
            .map(BackendKind::parse)
            .transpose()
            .map_err(|e| e.to_string())
            .and_then(|requested| {
                engine::backend::select(requested, settings.cpu).map_err(|e| e.to_string())
            });
        Self {
            models_dir: settings.models_dir.clone(),
            backend,
            text_encoder_device: settings.text_encoder_device,
            progress: None,
        }
    }

    /// The engine's context for a Wan pipeline: files under the models directory on the
    /// chosen backend, warmed up on a GPU.
    fn wan(&self) -> Result<WanLoadContext, String> {
        let backend = self
            .backend
            .clone()
            .map_err(|e| format!("no engine backend: {e}"))?;
        let mut ctx = WanLoadContext::files(&self.models_dir, backend);
        ctx.text_encoder_device = self.text_encoder_device;
        ctx.progress = self.progress.clone();
        Ok(ctx)
    }
}

/// A file a pipeline needs that is not under the models directory.
#[derive(Clone, Debug, PartialEq)]
pub struct MissingFile {
    /// What the file is for (`dit`, `vae`, `text_encoder`, …).
    pub role: &'static str,
    /// Every path looked at (the first found would have been used).
    pub looked_for: Vec<PathBuf>,
    /// Where it comes from: Hugging Face repository and path in it.
    pub repo: &'static str,
    pub file: &'static str,
    /// For an autoencoder's file, which one (`vae_type`): needed only when chosen.
    pub vae_type: Option<&'static str>,
}

/// How one pipeline is described and loaded.
pub trait PipelineFactory: Send + Sync {
    fn spec(&self) -> PipelineSpec;
    /// The files it needs that are not under `models_dir` (empty: it can load).
    fn missing_files(&self, _models_dir: &Path) -> Vec<MissingFile> {
        Vec::new()
    }
    /// Every model file it needs with these (validated) load parameters, present or not, a
    /// missing text encoder being the kind `te` names (empty: it needs none).
    fn needs(
        &self,
        _models_dir: &Path,
        _params: &Params,
        _te: TextEncoderFile,
    ) -> Result<Vec<Need>, String> {
        Ok(Vec::new())
    }
    /// Loads it on the calling thread (a blocking thread of the manager's) with validated
    /// parameters. May take minutes; reports progress through `ctx.progress`.
    fn load(&self, ctx: &LoadContext, params: Params) -> Result<Arc<dyn LoadedPipeline>, String>;
}

struct PassthroughFactory;

impl PipelineFactory for PassthroughFactory {
    fn spec(&self) -> PipelineSpec {
        passthrough::spec()
    }
    fn load(&self, _: &LoadContext, params: Params) -> Result<Arc<dyn LoadedPipeline>, String> {
        Ok(Arc::new(Passthrough::load(params)))
    }
}

struct VodFactory;

impl PipelineFactory for VodFactory {
    fn spec(&self) -> PipelineSpec {
        vod::spec()
    }
    fn load(&self, _: &LoadContext, _: Params) -> Result<Arc<dyn LoadedPipeline>, String> {
        let frames = crate::media::clip::decode_vod_clip()
            .map_err(|e| format!("cannot decode the clip: {e}"))?;
        Vod::new(frames)
            .map(|v| Arc::new(v) as Arc<dyn LoadedPipeline>)
            .map_err(|e: PipelineError| e.to_string())
    }
}

/// Self-Forcing, LongLive and StreamDiffusionV2 on the engine.
struct WanFactory(WanPipeline);

fn role_name(role: Role) -> &'static str {
    match role {
        Role::DitConfig => "dit_config",
        Role::Vae => "vae",
        Role::LightVae => "lightvae",
        Role::Tae => "tae",
        Role::LightTae => "lighttae",
        Role::Tokenizer => "tokenizer",
        Role::TextEncoder => "text_encoder",
        Role::Dit => "dit",
        Role::Lora => "lora",
    }
}

impl PipelineFactory for WanFactory {
    fn spec(&self) -> PipelineSpec {
        self.0.spec()
    }

    /// Every file missing for some choice of autoencoder: the pipeline's own files once, and
    /// each autoencoder's file tagged with its `vae_type` (the page tells which it needs from
    /// the chosen settings). Each path is looked at once.
    fn missing_files(&self, models_dir: &Path) -> Vec<MissingFile> {
        let wan = VaeChoice {
            decoder: VaeType::Wan,
            encoder: None,
        };
        let mut roles = files::roles(self.0, wan);
        roles.extend(
            VaeType::ALL
                .into_iter()
                .filter(|t| *t != VaeType::Wan)
                .map(Role::of_vae),
        );
        roles
            .into_iter()
            .filter_map(|role| {
                let looked_for: Vec<PathBuf> = files::candidates(self.0, role)
                    .map(|a| models_dir.join(a.local))
                    .collect();
                if looked_for.iter().any(|p| p.is_file()) {
                    return None;
                }
                let first = files::candidates(self.0, role).next();
                Some(MissingFile {
                    role: role_name(role),
                    looked_for,
                    repo: first.map_or("", |a| a.repo),
                    file: first.map_or("", |a| a.file),
                    vae_type: role.vae_type().map(VaeType::id),
                })
            })
            .collect()
    }

    fn needs(
        &self,
        models_dir: &Path,
        params: &Params,
        te: TextEncoderFile,
    ) -> Result<Vec<Need>, String> {
        let vae = VaeChoice::from_params(self.0, params)?;
        Ok(files::needs(models_dir, self.0, vae, te))
    }

    fn load(&self, ctx: &LoadContext, params: Params) -> Result<Arc<dyn LoadedPipeline>, String> {
        let wan_ctx = ctx.wan()?;
        wan::load_pipeline(self.0, &wan_ctx, &params::to_json(&params))
            .map(Arc::from)
            .map_err(|e| e.to_string())
    }
}

/// Every pipeline a server offers, in the order the UI lists them (specs made once).
pub struct Registry {
    entries: Vec<(PipelineSpec, Box<dyn PipelineFactory>)>,
}

impl Registry {
    /// The model-free pipelines and the Wan pipelines.
    pub fn standard() -> Self {
        let mut factories: Vec<Box<dyn PipelineFactory>> =
            vec![Box::new(PassthroughFactory), Box::new(VodFactory)];
        factories.extend(
            WanPipeline::ALL
                .into_iter()
                .map(|p| Box::new(WanFactory(p)) as Box<dyn PipelineFactory>),
        );
        Self::new(factories)
    }

    /// A registry of the given factories (tests register pipelines of their own).
    pub fn new(factories: Vec<Box<dyn PipelineFactory>>) -> Self {
        Self {
            entries: factories.into_iter().map(|f| (f.spec(), f)).collect(),
        }
    }

    /// Where `id` is in the list.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.entries.iter().position(|(s, _)| s.id == id)
    }

    /// The spec of the pipeline at `index` (from [`Registry::position`]).
    pub fn spec_at(&self, index: usize) -> &PipelineSpec {
        &self.entries[index].0
    }

    /// The factory at `index` (from [`Registry::position`]).
    pub fn at(&self, index: usize) -> &dyn PipelineFactory {
        self.entries[index].1.as_ref()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
