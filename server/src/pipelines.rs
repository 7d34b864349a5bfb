//! Which pipelines exist, which one is loaded, and loading in the background.
//!
//! One pipeline is loaded at a time (its weights are shared by every stream); each stream
//! gets its own instance from it. `POST /api/v1/pipeline/load` returns at once; the load
//! runs on a blocking thread and `GET /api/v1/pipeline/status` reports it.

use engine::pipeline::{
    LoadedPipeline, PipelineError, PipelineSpec,
    params::{self, ParamError},
    passthrough::{self, Passthrough},
    vod::{self, Vod},
};
use serde::Serialize;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Every pipeline this server can load, in the order the UI lists them.
pub fn specs() -> Vec<PipelineSpec> {
    vec![passthrough::spec(), vod::spec()]
}

/// The spec of `id`.
pub fn spec(id: &str) -> Option<PipelineSpec> {
    specs().into_iter().find(|s| s.id == id)
}

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
    #[error("cannot start loading: {0}")]
    Thread(String),
}

fn busy_message(running: usize, pipeline: &str) -> String {
    if running == 1 {
        format!("1 stream is running on {pipeline}; stop it first")
    } else {
        format!("{running} streams are running on {pipeline}; stop them first")
    }
}

/// Where loading stands.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum LoadStatus {
    NotLoaded,
    Loading,
    Loaded,
    Error,
}

/// `GET /api/v1/pipeline/status` body.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub status: LoadStatus,
    pub pipeline_id: Option<String>,
    pub load_params: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// 0..1 while loading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
}

struct State {
    status: LoadStatus,
    pipeline_id: Option<String>,
    load_params: Option<Value>,
    error: Option<String>,
    loaded: Option<Arc<dyn LoadedPipeline>>,
    /// Bumped by every accepted load; a finishing load that is no longer current is dropped.
    generation: u64,
}

/// The server's one loaded pipeline.
pub struct PipelineManager {
    state: Mutex<State>,
}

impl Default for PipelineManager {
    fn default() -> Self {
        Self::new()
    }
}

impl PipelineManager {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                status: LoadStatus::NotLoaded,
                pipeline_id: None,
                load_params: None,
                error: None,
                loaded: None,
                generation: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written (every update
        // is a few field assignments), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
        let spec =
            spec(pipeline_id).ok_or_else(|| LoadError::UnknownPipeline(pipeline_id.into()))?;
        let mut validated = params::defaults(&spec.load_params);
        validated.extend(params::validate_object(
            &spec.load_params,
            load_params,
            false,
        )?);
        let params_json = params::to_json(&validated);

        let generation = {
            let mut s = self.lock();
            let same = s.pipeline_id.as_deref() == Some(pipeline_id)
                && s.load_params.as_ref() == Some(&params_json);
            if same && matches!(s.status, LoadStatus::Loaded | LoadStatus::Loading) {
                return Ok(());
            }
            if running > 0 {
                return Err(LoadError::Busy {
                    running,
                    pipeline: s.pipeline_id.clone().unwrap_or_default(),
                });
            }
            s.generation += 1;
            s.status = LoadStatus::Loading;
            s.pipeline_id = Some(pipeline_id.to_owned());
            s.load_params = Some(params_json);
            s.error = None;
            s.loaded = None;
            s.generation
        };
        tracing::info!(pipeline = pipeline_id, "loading pipeline");
        let this = Arc::clone(self);
        let id = pipeline_id.to_owned();
        std::thread::Builder::new()
            .name(format!("load-{id}"))
            .spawn(move || {
                let result = match id.as_str() {
                    "passthrough" => {
                        Ok(Arc::new(Passthrough::load(validated)) as Arc<dyn LoadedPipeline>)
                    }
                    "vod" => crate::media::clip::decode_vod_clip()
                        .map_err(|e| PipelineError::Fatal(format!("cannot decode the clip: {e}")))
                        .and_then(Vod::new)
                        .map(|v| Arc::new(v) as Arc<dyn LoadedPipeline>),
                    other => Err(PipelineError::Fatal(format!("no loader for '{other}'"))),
                };
                this.finish(generation, result);
            })
            .map_err(|e| LoadError::Thread(e.to_string()))?;
        Ok(())
    }

    fn finish(&self, generation: u64, result: Result<Arc<dyn LoadedPipeline>, PipelineError>) {
        let mut s = self.lock();
        if s.generation != generation {
            return; // superseded by a newer load
        }
        match result {
            Ok(p) => {
                tracing::info!(pipeline = p.spec().id, "pipeline loaded");
                s.status = LoadStatus::Loaded;
                s.loaded = Some(p);
            }
            Err(e) => {
                tracing::error!(error = %e, "pipeline failed to load");
                s.status = LoadStatus::Error;
                s.error = Some(e.to_string());
            }
        }
    }

    pub fn status(&self) -> StatusReport {
        let s = self.lock();
        StatusReport {
            status: s.status.clone(),
            pipeline_id: s.pipeline_id.clone(),
            load_params: s.load_params.clone(),
            error: s.error.clone(),
            progress: (s.status == LoadStatus::Loading).then_some(0.0),
        }
    }

    /// The loaded pipeline, if loading has finished.
    pub fn current(&self) -> Option<Arc<dyn LoadedPipeline>> {
        self.lock().loaded.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn wait_loaded(m: &PipelineManager) -> StatusReport {
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
        let m = Arc::new(PipelineManager::new());
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
    fn bad_requests_are_refused_and_change_nothing() {
        let m = Arc::new(PipelineManager::new());
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
}
