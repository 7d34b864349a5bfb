//! Which pipelines exist, which one is loaded, and loading in the background.
//!
//! One pipeline is loaded at a time (its weights are shared by every stream); each stream
//! gets its own instance from it. `POST /api/v1/pipeline/load` returns at once; the load
//! runs on its own thread and `GET /api/v1/pipeline/status` reports its stage and progress.
//! The pipelines themselves are factories in a [`Registry`].

pub mod registry;

use app::schema::{
    LoadStatus, LoadingStage, MissingFile as WireMissingFile, PipelineFiles, PipelineInfo,
    PipelineStatus,
};
use engine::pipeline::{
    LoadedPipeline,
    params::{self, ParamError, Params},
    wan::{
        files::{Need, TextEncoderFile},
        load::{LoadProgress, LoadStage},
    },
};
pub use registry::{LoadContext, PipelineFactory, Registry};
use serde_json::Value;
use std::{
    panic::AssertUnwindSafe,
    sync::{Arc, Mutex, Weak},
};

/// Why a load request was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("unknown pipeline '{0}'")]
    UnknownPipeline(String),
    #[error(transparent)]
    Params(#[from] ParamError),
    /// Streams run on the loaded pipeline; another load would pull it from under them.
    #[error("{}", busy_message(*.running, .pipeline))]
    Busy { running: usize, pipeline: String },
    /// Another load is under way; starting a second would hold two models in memory.
    #[error("{0} is loading; wait for it to finish")]
    Loading(String),
    #[error("cannot start loading: {0}")]
    Thread(String),
    /// The settings name no file set (e.g. an unknown autoencoder).
    #[error("{0}")]
    Files(String),
}

fn busy_message(running: usize, pipeline: &str) -> String {
    if running == 1 {
        format!("1 stream is running on {pipeline}; stop it first")
    } else {
        format!("{running} streams are running on {pipeline}; stop them first")
    }
}

fn stage(s: LoadStage) -> LoadingStage {
    match s {
        LoadStage::TextEncoder => LoadingStage::TextEncoder,
        LoadStage::Dit => LoadingStage::Dit,
        LoadStage::Vae => LoadingStage::Vae,
        LoadStage::WarmUp => LoadingStage::WarmUp,
    }
}

struct State {
    status: LoadStatus,
    pipeline_id: Option<String>,
    load_params: Option<Value>,
    error: Option<String>,
    stage: Option<LoadingStage>,
    progress: f64,
    loaded: Option<Arc<dyn LoadedPipeline>>,
    /// Offers that hold the loaded pipeline but are not streams yet ([`Reservation`]).
    offers: usize,
    /// Bumped by every accepted load; a finishing load that is no longer current is dropped.
    generation: u64,
}

/// An offer's hold on the loaded pipeline from the moment it takes it until its stream is
/// registered (then the stream counts): no load can pull the pipeline away in between.
pub struct Reservation {
    manager: Arc<PipelineManager>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut s = self.manager.lock();
        s.offers = s.offers.saturating_sub(1);
    }
}

/// The server's one loaded pipeline, and the registry it loads from.
pub struct PipelineManager {
    registry: Arc<Registry>,
    context: LoadContext,
    state: Mutex<State>,
}

impl PipelineManager {
    pub fn new(registry: Registry, context: LoadContext) -> Self {
        Self {
            registry: Arc::new(registry),
            context,
            state: Mutex::new(State {
                status: LoadStatus::NotLoaded,
                pipeline_id: None,
                load_params: None,
                error: None,
                stage: None,
                progress: 0.0,
                loaded: None,
                offers: 0,
                generation: 0,
            }),
        }
    }

    /// The standard pipelines with the context the settings give.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self::new(Registry::standard(), LoadContext::from_settings(settings))
    }

    /// The context loads run with (the backend chosen at start-up).
    pub fn context(&self) -> &LoadContext {
        &self.context
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written (every update
        // is a few field assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `GET /api/v1/pipelines`: every pipeline as its spec describes itself
    /// ([`engine::pipeline::PipelineSpec::to_json`]), with whether its files are present.
    pub fn list(&self) -> Vec<PipelineInfo> {
        let dir = &self.context.models_dir;
        (0..self.registry.len())
            .map(|i| {
                let (s, f) = (self.registry.spec_at(i), self.registry.at(i));
                let missing = f.missing_files(dir);
                // The spec's JSON has every field of the wire type but `files`.
                let described: PipelineInfo = serde_json::from_value(s.to_json())
                    .expect("PipelineSpec::to_json matches app::schema::PipelineInfo");
                // Ready with the default settings: nothing missing but other autoencoders.
                let ready = missing
                    .iter()
                    .all(|m| m.vae_type.is_some_and(|t| t != "wan"));
                PipelineInfo {
                    files: PipelineFiles {
                        ready,
                        models_dir: dir.display().to_string(),
                        missing: missing
                            .into_iter()
                            .map(|m| WireMissingFile {
                                role: m.role.into(),
                                looked_for: m
                                    .looked_for
                                    .iter()
                                    .map(|p| p.display().to_string())
                                    .collect(),
                                repo: m.repo.into(),
                                file: m.file.into(),
                                vae_type: m.vae_type.map(Into::into),
                            })
                            .collect(),
                    },
                    ..described
                }
            })
            .collect()
    }

    /// `load_params` checked against the pipeline's schema, over its defaults.
    fn validate(
        &self,
        pipeline_id: &str,
        load_params: &Value,
    ) -> Result<(usize, Params), LoadError> {
        let index = self
            .registry
            .position(pipeline_id)
            .ok_or_else(|| LoadError::UnknownPipeline(pipeline_id.into()))?;
        let spec = self.registry.spec_at(index);
        let mut validated = params::defaults(&spec.load_params);
        validated.extend(params::validate_object(
            &spec.load_params,
            load_params,
            false,
        )?);
        Ok((index, validated))
    }

    /// Every model file `pipeline_id` needs with these load settings, present or not (a
    /// missing text encoder of kind `te`). Touches the disk.
    pub fn needs(
        &self,
        pipeline_id: &str,
        load_params: &Value,
        te: TextEncoderFile,
    ) -> Result<Vec<Need>, LoadError> {
        let (index, validated) = self.validate(pipeline_id, load_params)?;
        self.registry
            .at(index)
            .needs(&self.context.models_dir, &validated, te)
            .map_err(LoadError::Files)
    }

    /// The pipelines' ids, in the order they are listed.
    pub fn ids(&self) -> Vec<String> {
        (0..self.registry.len())
            .map(|i| self.registry.spec_at(i).id.to_string())
            .collect()
    }

    /// Validates and starts loading `pipeline_id`. Returns at once. Loading what is already
    /// loaded (same id and parameters) does nothing; loading anything else while `running`
    /// streams use the loaded pipeline is refused (one pipeline serves every stream).
    pub fn load(
        self: &Arc<Self>,
        pipeline_id: &str,
        load_params: &Value,
        running: usize,
    ) -> Result<(), LoadError> {
        let (index, validated) = self.validate(pipeline_id, load_params)?;
        let params_json = params::to_json(&validated);

        let generation = {
            let mut s = self.lock();
            let same = s.pipeline_id.as_deref() == Some(pipeline_id)
                && s.load_params.as_ref() == Some(&params_json);
            if same && matches!(s.status, LoadStatus::Loaded | LoadStatus::Loading) {
                return Ok(());
            }
            let running = running + s.offers;
            if running > 0 {
                return Err(LoadError::Busy {
                    running,
                    pipeline: s.pipeline_id.clone().unwrap_or_default(),
                });
            }
            if s.status == LoadStatus::Loading {
                return Err(LoadError::Loading(
                    s.pipeline_id.clone().unwrap_or_default(),
                ));
            }
            s.generation += 1;
            s.status = LoadStatus::Loading;
            s.pipeline_id = Some(pipeline_id.to_owned());
            s.load_params = Some(params_json);
            s.error = None;
            s.stage = None;
            s.progress = 0.0;
            // The old pipeline's memory goes before the new one's is taken.
            s.loaded = None;
            s.generation
        };
        tracing::info!(pipeline = pipeline_id, "loading pipeline");
        let mut ctx = self.context.clone();
        let weak: Weak<Self> = Arc::downgrade(self);
        ctx.progress = Some(Arc::new(move |p: LoadProgress| {
            if let Some(m) = weak.upgrade() {
                m.report(generation, p);
            }
        }));
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name(format!("load-{pipeline_id}"))
            .spawn(move || {
                let factory = this.registry.at(index);
                // A panicking loader fails this load; the server and its streams go on.
                let result =
                    std::panic::catch_unwind(AssertUnwindSafe(|| factory.load(&ctx, validated)))
                        .unwrap_or_else(|payload| {
                            Err(format!(
                                "the loader panicked: {}",
                                engine::panic_message(payload.as_ref()).unwrap_or_default()
                            ))
                        });
                this.finish(generation, result);
            });
        if let Err(e) = spawned {
            // Nothing is loading: say so, and let the same load be asked for again.
            self.finish(generation, Err(format!("cannot start loading: {e}")));
            return Err(LoadError::Thread(e.to_string()));
        }
        Ok(())
    }

    fn report(&self, generation: u64, p: LoadProgress) {
        let mut s = self.lock();
        if s.generation == generation && s.status == LoadStatus::Loading {
            s.stage = Some(stage(p.stage));
            s.progress = p.overall.clamp(0.0, 1.0);
        }
    }

    fn finish(&self, generation: u64, result: Result<Arc<dyn LoadedPipeline>, String>) {
        let mut s = self.lock();
        if s.generation != generation {
            return; // superseded by a newer load
        }
        s.stage = None;
        match result {
            Ok(p) => {
                tracing::info!(pipeline = p.spec().id, "pipeline loaded");
                s.status = LoadStatus::Loaded;
                s.progress = 1.0;
                s.loaded = Some(p);
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline failed to load");
                s.status = LoadStatus::Error;
                s.error = Some(e);
            }
        }
    }

    pub fn status(&self) -> PipelineStatus {
        let s = self.lock();
        let loading = s.status == LoadStatus::Loading;
        PipelineStatus {
            status: s.status,
            pipeline_id: s.pipeline_id.clone(),
            load_params: s.load_params.clone(),
            error: s.error.clone(),
            progress: loading.then_some(s.progress),
            loading_stage: if loading { s.stage } else { None },
        }
    }

    /// The loaded pipeline, if loading has finished.
    pub fn current(&self) -> Option<Arc<dyn LoadedPipeline>> {
        self.lock().loaded.clone()
    }

    /// The loaded pipeline for an offer, held against loads until the [`Reservation`] drops
    /// (the offer keeps it until its stream is registered).
    pub fn reserve(self: &Arc<Self>) -> Option<(Arc<dyn LoadedPipeline>, Reservation)> {
        let mut s = self.lock();
        let loaded = s.loaded.clone()?;
        s.offers += 1;
        drop(s);
        Some((
            loaded,
            Reservation {
                manager: Arc::clone(self),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::pipeline::PipelineSpec;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn manager() -> Arc<PipelineManager> {
        let dir = std::env::temp_dir().join("hanzo-live-no-models");
        Arc::new(PipelineManager::new(
            Registry::standard(),
            LoadContext {
                models_dir: dir,
                backend: Err("not in these tests".into()),
                text_encoder_device: engine::backend::TextEncoderDevice::Auto,
                progress: None,
            },
        ))
    }

    fn wait_loaded(m: &PipelineManager) -> PipelineStatus {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = m.status();
            if s.status != LoadStatus::Loading || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn loads_in_the_background_and_reports_status() {
        let m = manager();
        assert_eq!(m.status().status, LoadStatus::NotLoaded);
        m.load("passthrough", &json!({"height": 256}), 0).unwrap();
        let s = wait_loaded(&m);
        assert_eq!(s.status, LoadStatus::Loaded);
        assert_eq!(s.pipeline_id.as_deref(), Some("passthrough"));
        assert_eq!(s.load_params, Some(json!({"height": 256, "width": 512})));
        assert_eq!(m.current().unwrap().spec().id, "passthrough");

        m.load("vod", &Value::Null, 0).unwrap();
        assert_eq!(wait_loaded(&m).status, LoadStatus::Loaded);
        assert_eq!(m.current().unwrap().spec().id, "vod");

        // With streams on it, the same load is fine and another is refused.
        m.load("vod", &Value::Null, 2).unwrap();
        let e = m.load("passthrough", &Value::Null, 2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 streams are running on vod; stop them first"
        );
        let e = m.load("passthrough", &Value::Null, 1).unwrap_err();
        assert_eq!(e.to_string(), "1 stream is running on vod; stop it first");
        assert_eq!(m.current().unwrap().spec().id, "vod");
    }

    #[test]
    fn an_offer_holding_the_pipeline_blocks_other_loads_until_it_lets_go() {
        let m = manager();
        m.load("passthrough", &Value::Null, 0).unwrap();
        wait_loaded(&m);
        let (loaded, held) = m.reserve().unwrap();
        assert_eq!(loaded.spec().id, "passthrough");
        let e = m.load("vod", &Value::Null, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "1 stream is running on passthrough; stop it first"
        );
        drop(held);
        m.load("vod", &Value::Null, 0).unwrap();
        assert_eq!(wait_loaded(&m).pipeline_id.as_deref(), Some("vod"));
    }

    #[test]
    fn bad_requests_are_refused_and_change_nothing() {
        let m = manager();
        assert!(matches!(
            m.load("nope", &json!({}), 0),
            Err(LoadError::UnknownPipeline(_))
        ));
        let err = m
            .load("passthrough", &json!({"height": 100}), 0)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "parameter 'height': must be a multiple of 16, got 100"
        );
        assert_eq!(m.status().status, LoadStatus::NotLoaded);
    }

    /// A pipeline whose load reports a stage, then waits to be told how to end.
    struct Gated {
        spec: PipelineSpec,
        gate: Mutex<std::sync::mpsc::Receiver<Option<&'static str>>>,
    }

    impl PipelineFactory for Gated {
        fn spec(&self) -> PipelineSpec {
            self.spec.clone()
        }
        fn load(
            &self,
            ctx: &LoadContext,
            params: params::Params,
        ) -> Result<Arc<dyn LoadedPipeline>, String> {
            let report = ctx.progress.as_ref().expect("a progress callback");
            report(LoadProgress {
                stage: LoadStage::Dit,
                stage_fraction: 0.5,
                overall: 0.7,
            });
            let end = self.gate.lock().unwrap().recv().unwrap();
            match end {
                Some("panic") => panic!("weights on fire"),
                Some(e) => Err(e.to_owned()),
                None => Ok(Arc::new(engine::pipeline::passthrough::Passthrough::load(
                    params,
                ))),
            }
        }
    }

    #[test]
    fn a_load_reports_its_stage_and_a_failure_or_panic_becomes_an_error() {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut spec = engine::pipeline::passthrough::spec();
        spec.id = "gated";
        let m = Arc::new(PipelineManager::new(
            Registry::new(vec![Box::new(Gated {
                spec,
                gate: Mutex::new(rx),
            })]),
            manager().context().clone(),
        ));
        let wait_for = |want: LoadStatus| {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let s = m.status();
                if s.status == want && (want != LoadStatus::Loading || s.loading_stage.is_some()) {
                    return s;
                }
                assert!(Instant::now() < deadline, "stuck at {s:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        for (end, want) in [
            (Some("file x.pt is truncated"), "file x.pt is truncated"),
            (Some("panic"), "the loader panicked: weights on fire"),
        ] {
            m.load("gated", &json!({"height": 32}), 0).unwrap();
            let s = wait_for(LoadStatus::Loading);
            assert_eq!(s.loading_stage, Some(LoadingStage::Dit));
            assert_eq!(s.progress, Some(0.7));
            tx.send(end).unwrap();
            let s = wait_for(LoadStatus::Error);
            assert_eq!(s.error.as_deref(), Some(want));
            assert_eq!((s.progress, s.loading_stage), (None, None));
            assert!(m.current().is_none());
        }
        m.load("gated", &json!({"height": 32}), 0).unwrap();
        wait_for(LoadStatus::Loading);
        // A second load while one runs is refused (two models would load at once); the same
        // one again is a no-op.
        let e = m.load("gated", &json!({"height": 48}), 0).unwrap_err();
        assert_eq!(e.to_string(), "gated is loading; wait for it to finish");
        m.load("gated", &json!({"height": 32}), 0).unwrap();
        tx.send(None).unwrap();
        let s = wait_for(LoadStatus::Loaded);
        assert_eq!(s.error, None);
        assert_eq!(m.current().unwrap().spec().id, "passthrough");
    }

    #[test]
    fn model_pipelines_name_their_missing_files() {
        let m = manager();
        let list = m.list();
        let ids: Vec<&str> = list.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "passthrough",
                "vod",
                "streamdiffusionv2",
                "self-forcing",
                "longlive"
            ]
        );
        assert!(list[0].files.ready && list[1].files.ready);
        let ll = &list[4];
        assert!(!ll.files.ready);
        let roles: Vec<(&str, Option<&str>)> = ll
            .files
            .missing
            .iter()
            .map(|f| (f.role.as_str(), f.vae_type.as_deref()))
            .collect();
        assert_eq!(
            roles,
            [
                ("dit_config", None),
                ("vae", Some("wan")),
                ("tokenizer", None),
                ("text_encoder", None),
                ("dit", None),
                ("lora", None),
                ("lightvae", Some("lightvae")),
                ("tae", Some("tae")),
                ("lighttae", Some("lighttae")),
            ]
        );
        let lora = &ll.files.missing[5];
        assert_eq!(lora.repo, "Efficient-Large-Model/LongLive-1.3B");
        assert!(lora.looked_for[0].ends_with("LongLive-1.3B/models/lora.pt"));

        // Without a backend, a model pipeline fails to load with the reason.
        m.load("self-forcing", &Value::Null, 0).unwrap();
        let s = wait_loaded(&m);
        assert_eq!(s.status, LoadStatus::Error);
        assert_eq!(
            s.error.as_deref(),
            Some("no engine backend: not in these tests")
        );
    }
}
