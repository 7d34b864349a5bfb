//! The StreamPage: the studio's single screen.
//!
//! ```text
//! ┌──────────────────────── Header ────────────────────────┐
//! │ Input & Controls │   video area         │   Settings    │
//! │                  │   prompt dock        │               │
//! └────────────────────── StatusBar ───────────────────────┘
//! ```
//! Below 900 px the side panels stack under the video (see `style/main.css`).
//!
//! Everything that touches the browser (camera, WebRTC, fetch) lives in [`Studio`]'s
//! hydrate-only methods; the server renders the same frame with the idle state.

use crate::{
    components::{Header, StatusBar},
    models::{InputMode, ParamMap, Preset, PresetInput, PromptItem, ServerInfoResource},
    schema::{FieldKind, LoadingStage, PipelineInfo, int_error},
};
use leptos::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Placeholder text of the prompt field, as in the original.
pub const PROMPT_PLACEHOLDER: &str = "blooming flowers";
/// The bundled input clip (made by `tools/make-clips.sh`).
pub const TEST_CLIP: &str = "/clips/test.mp4";
/// Largest video file accepted as input.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub const MAX_UPLOAD_BYTES: f64 = 50.0 * 1024.0 * 1024.0;

/// Where the stream is.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Loading,
    Connecting,
    Streaming,
}

/// The figures of the status bar.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// The last metrics message: the machine's figures and this stream's.
    pub system: Option<crate::wire::SystemFigures>,
    pub stream: Option<crate::wire::StreamFigures>,
    /// Frames per second the browser decodes.
    pub client_fps: Option<f64>,
    pub bitrate_bps: Option<f64>,
    pub rtt_ms: Option<f64>,
}

/// A message in the corner.
#[derive(Clone, Debug, PartialEq)]
pub struct Toast {
    pub id: u64,
    pub title: String,
    pub message: String,
}

/// The page's state: plain signals (shared by the views) plus the browser-only handles.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Clone, Copy)]
pub struct Studio {
    pub pipelines: RwSignal<Vec<PipelineInfo>>,
    pub pipelines_error: RwSignal<Option<String>>,
    pub pipeline_id: RwSignal<String>,
    pub mode: RwSignal<InputMode>,
    pub load_values: RwSignal<BTreeMap<String, i64>>,
    /// Runtime parameters other than `paused` and prompts, as the controls show them.
    pub runtime_values: RwSignal<BTreeMap<String, Value>>,
    pub phase: RwSignal<Phase>,
    /// While a pipeline loads: its stage (model pipelines) and overall progress 0..1.
    pub load_progress: RwSignal<Option<(Option<LoadingStage>, f64)>>,
    pub paused: RwSignal<bool>,
    pub pause_flash: RwSignal<u32>,
    pub stream_error: RwSignal<Option<String>>,
    pub input_status: RwSignal<String>,
    pub clip_url: RwSignal<String>,
    pub upload_error: RwSignal<Option<String>>,
    pub figures: RwSignal<Figures>,
    pub toasts: RwSignal<Vec<Toast>>,
    pub next_prompt: RwSignal<Option<String>>,
    /// What the prompt field holds (presets fill it in).
    pub prompt_draft: RwSignal<String>,
    /// The main prompt's blend weight.
    pub first_weight: RwSignal<f64>,
    /// Prompts blended with the main one (at most 7 more).
    pub extra_prompts: RwSignal<Vec<PromptRow>>,
    /// `prompt_interpolation_method`: `linear` or `slerp`.
    pub interpolation: RwSignal<String>,
    /// Chunks a prompt change takes (0: at once).
    pub transition_steps: RwSignal<i64>,
    /// Bumped by every prompt edit, so only the last of a quick series is sent.
    pub prompt_edits: RwSignal<u64>,
    /// The prompts the server last confirmed for the running stream.
    pub live_prompts: RwSignal<Option<Vec<PromptItem>>>,
    /// The running recording, if any.
    pub recording: RwSignal<Option<RecordingFigures>>,
    /// Whether the running stream was started by a signed-in user (so it has a history row).
    pub stream_signed_in: RwSignal<bool>,
    pub account: crate::account::Account,
    pub preview: NodeRef<leptos::html::Video>,
    pub output: NodeRef<leptos::html::Video>,
    #[cfg(feature = "hydrate")]
    live: StoredValue<Option<crate::client::Live>, LocalStorage>,
    #[cfg(feature = "hydrate")]
    camera: StoredValue<Option<web_sys::MediaStream>, LocalStorage>,
    #[cfg(feature = "hydrate")]
    recorder: StoredValue<Option<crate::client::Recorder>, LocalStorage>,
}

/// A prompt blended with the main one: its text and weight, each its own signal (so typing
/// re-renders nothing else).
#[derive(Clone, Copy, Debug)]
pub struct PromptRow {
    pub id: u64,
    pub text: RwSignal<String>,
    pub weight: RwSignal<f64>,
}

/// Most prompts a stream blends (the server's limit).
pub const MAX_PROMPTS: usize = 8;

/// Elapsed time and size of the running recording.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RecordingFigures {
    pub elapsed_ms: f64,
    pub bytes: f64,
}

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
impl Studio {
    fn new() -> Self {
        Self {
            pipelines: RwSignal::new(Vec::new()),
            pipelines_error: RwSignal::new(None),
            pipeline_id: RwSignal::new(String::new()),
            mode: RwSignal::new(InputMode::Camera),
            load_values: RwSignal::new(BTreeMap::new()),
            runtime_values: RwSignal::new(BTreeMap::new()),
            phase: RwSignal::new(Phase::Idle),
            load_progress: RwSignal::new(None),
            paused: RwSignal::new(false),
            pause_flash: RwSignal::new(0),
            stream_error: RwSignal::new(None),
            input_status: RwSignal::new(String::new()),
            clip_url: RwSignal::new(TEST_CLIP.to_owned()),
            upload_error: RwSignal::new(None),
            figures: RwSignal::new(Figures::default()),
            toasts: RwSignal::new(Vec::new()),
            next_prompt: RwSignal::new(None),
            prompt_draft: RwSignal::new(String::new()),
            first_weight: RwSignal::new(1.0),
            extra_prompts: RwSignal::new(Vec::new()),
            interpolation: RwSignal::new("linear".into()),
            transition_steps: RwSignal::new(0),
            prompt_edits: RwSignal::new(0),
            live_prompts: RwSignal::new(None),
            recording: RwSignal::new(None),
            stream_signed_in: RwSignal::new(false),
            account: expect_context(),
            preview: NodeRef::new(),
            output: NodeRef::new(),
            #[cfg(feature = "hydrate")]
            live: StoredValue::new_local(None),
            #[cfg(feature = "hydrate")]
            camera: StoredValue::new_local(None),
            #[cfg(feature = "hydrate")]
            recorder: StoredValue::new_local(None),
        }
    }

    /// The selected pipeline.
    pub fn current(&self) -> Option<PipelineInfo> {
        let id = self.pipeline_id.get();
        self.pipelines
            .with(|ps| ps.iter().find(|p| p.id == id).cloned())
    }

    pub fn busy(&self) -> bool {
        self.phase.get() != Phase::Idle
    }

    /// Selects a pipeline: defaults for its load parameters, a mode it accepts.
    pub fn select(&self, id: &str) {
        let Some(p) = self
            .pipelines
            .with_untracked(|ps| ps.iter().find(|p| p.id == id).cloned())
        else {
            return;
        };
        self.pipeline_id.set(p.id.clone());
        let values = p
            .load_fields()
            .into_iter()
            .filter_map(|f| f.default.as_i64().map(|v| (f.key, v)))
            .collect();
        self.load_values.set(values);
        let runtime = p
            .runtime_fields()
            .into_iter()
            .filter(|f| {
                f.key != "paused" && !matches!(f.kind, FieldKind::Prompts | FieldKind::Trigger)
            })
            .map(|f| (f.key, f.default))
            .collect();
        self.runtime_values.set(runtime);
        let mode = self.mode.get_untracked();
        if !p.modes.iter().any(|m| m == mode.as_str()) {
            let first = p
                .modes
                .first()
                .and_then(|m| InputMode::parse(m))
                .unwrap_or(InputMode::Text);
            self.mode.set(first);
        }
    }

    /// The first error among the load parameters.
    /// Why Start is disabled: the pipeline's files are missing, or a load setting is invalid.
    pub fn start_blocked(&self) -> Option<String> {
        let p = self.current()?;
        if !p.files.ready {
            let what: Vec<String> = p.files.missing.iter().map(|m| m.role.clone()).collect();
            return Some(format!(
                "Model files missing under {}: {}",
                p.files.models_dir,
                what.join(", ")
            ));
        }
        self.load_error()
    }

    pub fn load_error(&self) -> Option<String> {
        let p = self.current()?;
        let values = self.load_values.get();
        p.load_fields().iter().find_map(|f| {
            values
                .get(&f.key)
                .and_then(|v| int_error(&f.kind, *v))
                .map(|e| format!("{}: {e}", f.title))
        })
    }

    /// The current pipeline, prompt and parameters as a preset named `name`.
    pub fn preset_input(&self, name: &str) -> PresetInput {
        let mut params: ParamMap = self
            .load_values
            .get_untracked()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        params.extend(self.runtime_values.get_untracked());
        let prompts = self.prompt_list();
        if prompts.len() > 1 {
            params.insert(
                "prompt_interpolation_method".into(),
                json!(self.interpolation.get_untracked()),
            );
        }
        PresetInput {
            name: name.to_owned(),
            pipeline_id: self.pipeline_id.get_untracked(),
            prompts,
            params,
        }
    }

    /// Whether the selected pipeline takes prompts.
    pub fn takes_prompts(&self) -> bool {
        self.current().is_some_and(|p| {
            p.runtime_fields()
                .iter()
                .any(|f| f.kind == FieldKind::Prompts)
        })
    }

    /// The prompts as the stream gets them: the main one (the field, else the last one set)
    /// with its weight, then the blended ones that have text. Empty: the pipeline's default.
    pub fn prompt_list(&self) -> Vec<PromptItem> {
        let draft = self.prompt_draft.get_untracked();
        let first = match draft.trim() {
            "" => self.next_prompt.get_untracked(),
            t => Some(t.to_owned()),
        };
        let mut list: Vec<PromptItem> = first
            .into_iter()
            .map(|text| PromptItem {
                text,
                weight: self.first_weight.get_untracked(),
            })
            .collect();
        for row in self.extra_prompts.get_untracked() {
            let text = row.text.get_untracked().trim().to_owned();
            if !text.is_empty() {
                list.push(PromptItem {
                    text,
                    weight: row.weight.get_untracked(),
                });
            }
        }
        list.truncate(MAX_PROMPTS);
        list
    }

    /// Fills the prompt list (the main prompt and the blended ones).
    pub fn set_prompt_list(&self, prompts: &[PromptItem]) {
        let Some(first) = prompts.first() else {
            return;
        };
        self.prompt_draft.set(first.text.clone());
        self.next_prompt.set(Some(first.text.clone()));
        self.first_weight.set(first.weight);
        let rows = prompts[1..]
            .iter()
            .take(MAX_PROMPTS - 1)
            .map(|p| self.new_prompt_row(&p.text, p.weight))
            .collect();
        self.extra_prompts.set(rows);
    }

    /// A blended prompt row with a fresh id.
    pub fn new_prompt_row(&self, text: &str, weight: f64) -> PromptRow {
        let id = self
            .extra_prompts
            .with_untracked(|r| r.iter().map(|r| r.id).max().unwrap_or(0))
            .max(self.prompt_edits.get_untracked())
            + 1;
        self.prompt_edits.set(id);
        PromptRow {
            id,
            text: RwSignal::new(text.to_owned()),
            weight: RwSignal::new(weight),
        }
    }

    /// Sets the prompt list as the next stream's and, while streaming, sends it (as a
    /// transition when Transition Chunks > 0).
    pub fn apply_prompts(self) {
        let list = self.prompt_list();
        let Some(first) = list.first() else {
            return;
        };
        self.next_prompt.set(Some(first.text.clone()));
        if self.phase.get_untracked() == Phase::Streaming && self.takes_prompts() {
            let method = self.interpolation.get_untracked();
            let steps = self.transition_steps.get_untracked();
            let _msg = if steps > 0 {
                json!({
                    "prompt_interpolation_method": method,
                    "transition": {
                        "target_prompts": list,
                        "num_steps": steps,
                        "temporal_interpolation_method": method,
                    },
                })
            } else {
                json!({ "prompts": list, "prompt_interpolation_method": method })
            };
            #[cfg(feature = "hydrate")]
            self.send(_msg);
        }
    }

    /// Applies the prompts a moment after the last of a quick series of edits (a weight
    /// slider being dragged sends one message, not fifty).
    pub fn schedule_prompts(self) {
        let edit = self.prompt_edits.get_untracked() + 1;
        self.prompt_edits.set(edit);
        #[cfg(feature = "hydrate")]
        set_timeout(
            move || {
                if self.prompt_edits.get_untracked() == edit {
                    self.apply_prompts();
                }
            },
            std::time::Duration::from_millis(250),
        );
    }

    /// Fills the settings and the prompt from a preset. Load parameters wait while a stream
    /// runs; the prompt and live parameters go to the running stream at once.
    pub fn apply_preset(&self, preset: &Preset) {
        let known = self
            .pipelines
            .with_untracked(|ps| ps.iter().any(|p| p.id == preset.pipeline_id));
        if !known {
            self.toast(
                "Preset not applied",
                &format!(
                    "the pipeline {:?} is not available on this server",
                    preset.pipeline_id
                ),
            );
            return;
        }
        let streaming = self.phase.get_untracked() == Phase::Streaming;
        let busy = self.phase.get_untracked() != Phase::Idle;
        if busy && preset.pipeline_id != self.pipeline_id.get_untracked() {
            self.toast(
                "Preset not applied",
                "stop the stream to switch to another pipeline",
            );
            return;
        }
        if !busy {
            self.select(&preset.pipeline_id);
            self.load_values.update(|values| {
                for (k, v) in values.iter_mut() {
                    if let Some(n) = preset.params.get(k).and_then(Value::as_i64) {
                        *v = n;
                    }
                }
            });
        }
        let live_keys: Vec<String> = self.current().map_or_else(Vec::new, |p| {
            p.runtime_fields()
                .into_iter()
                .filter(|f| f.live)
                .map(|f| f.key)
                .collect()
        });
        let mut changed = Vec::new();
        self.runtime_values.update(|values| {
            for (k, v) in values.iter_mut() {
                if let Some(new) = preset.params.get(k)
                    && new != v
                {
                    *v = new.clone();
                    changed.push((k.clone(), new.clone()));
                }
            }
        });
        self.set_prompt_list(&preset.prompts);
        if let Some(m) = preset
            .params
            .get("prompt_interpolation_method")
            .and_then(Value::as_str)
        {
            self.interpolation.set(m.to_owned());
        }
        if streaming {
            for (k, v) in changed.into_iter().filter(|(k, _)| live_keys.contains(k)) {
                self.send_live(&k, v);
            }
            if !preset.prompts.is_empty() {
                self.apply_prompts();
            }
        }
        self.toast("Preset applied", &preset.name);
    }

    pub fn toast(&self, title: &str, message: &str) {
        let id = self
            .toasts
            .with_untracked(|t| t.iter().map(|t| t.id).max().unwrap_or(0) + 1);
        self.toasts.update(|t| {
            t.push(Toast {
                id,
                title: title.into(),
                message: message.into(),
            })
        });
        #[cfg(feature = "hydrate")]
        {
            let toasts = self.toasts;
            set_timeout(
                move || toasts.update(|t| t.retain(|x| x.id != id)),
                std::time::Duration::from_secs(5),
            );
        }
    }
}

#[cfg(feature = "hydrate")]
impl Studio {
    /// Fetches the pipeline list and selects the first one.
    fn load_pipelines(self) {
        leptos::task::spawn_local(async move {
            match crate::client::fetch_json("GET", "/api/v1/pipelines", None).await {
                Ok(v) => {
                    let list = serde_json::from_value::<crate::schema::PipelineList>(v)
                        .map(|l| l.pipelines)
                        .unwrap_or_default();
                    let first = list.first().map(|p| p.id.clone());
                    self.pipelines.set(list);
                    if let Some(id) = first {
                        self.select(&id);
                    }
                }
                Err(e) => self.pipelines_error.set(Some(e)),
            }
        });
    }

    /// Shows the chosen input in the preview (camera or clip).
    fn show_input(self) {
        let mode = self.mode.get_untracked();
        let Some(video) = self.preview.get_untracked() else {
            return;
        };
        if mode != InputMode::Camera {
            self.camera.update_value(|c| {
                if let Some(s) = c.take() {
                    crate::client::stop_tracks(&s);
                }
            });
            video.set_src_object(None);
        }
        match mode {
            InputMode::Camera => {
                self.input_status.set("Requesting camera access...".into());
                leptos::task::spawn_local(async move {
                    match crate::client::camera().await {
                        Ok(stream) => {
                            video.set_src_object(Some(&stream));
                            let _ = video.play();
                            self.replace_if_streaming(&stream);
                            self.camera.set_value(Some(stream));
                            self.input_status.set("Camera Preview".into());
                        }
                        Err(e) => self.input_status.set(format!("Camera access failed: {e}")),
                    }
                });
            }
            InputMode::Video => {
                video.set_src(&self.clip_url.get_untracked());
                video.set_loop(true);
                video.set_muted(true);
                self.input_status.set("Initializing video...".into());
                let playing = video.play();
                leptos::task::spawn_local(async move {
                    // A captured element has a video track only once it plays.
                    let played = match playing {
                        Ok(p) => wasm_bindgen_futures::JsFuture::from(p).await.map(|_| ()),
                        Err(e) => Err(e),
                    };
                    match played {
                        Ok(()) => {
                            self.input_status.set("Video Preview".into());
                            if self.phase.get_untracked() == Phase::Streaming
                                && let Ok(stream) = crate::client::capture(&video)
                            {
                                self.replace_if_streaming(&stream);
                            }
                        }
                        Err(e) => self.input_status.set(format!("Video error: {e:?}")),
                    }
                });
            }
            InputMode::Text => self.input_status.set(String::new()),
        }
    }

    /// Switching the source while streaming swaps the sent track; no renegotiation.
    fn replace_if_streaming(self, stream: &web_sys::MediaStream) {
        if self.phase.get_untracked() != Phase::Streaming {
            return;
        }
        let promise = self
            .live
            .with_value(|l| l.as_ref().and_then(|l| l.replace_input(stream)));
        if let Some(p) = promise {
            leptos::task::spawn_local(async move {
                if let Err(e) = wasm_bindgen_futures::JsFuture::from(p).await {
                    self.toast("Input switch failed", &format!("{e:?}"));
                }
            });
        }
    }

    fn start(self) {
        let Some(p) = self.current() else { return };
        if let Some(e) = self.load_error() {
            self.toast("Invalid settings", &e);
            return;
        }
        self.stream_error.set(None);
        self.paused.set(false);
        self.phase.set(Phase::Loading);
        leptos::task::spawn_local(async move {
            if let Err(e) = self.run(p).await {
                self.phase.set(Phase::Idle);
                if e == "sign in to stream" {
                    // The server runs with --require-login.
                    self.account
                        .dialog
                        .set(Some(crate::account::AuthMode::SignIn));
                }
                self.stream_error.set(Some(e.clone()));
                self.toast("Stream Error", &e);
            }
        });
    }

    async fn run(self, p: PipelineInfo) -> Result<(), String> {
        use crate::client::{Callbacks, Live, fetch_json, sleep};
        use crate::schema::{LoadStatus, PipelineStatus};
        use std::time::Duration;
        let load_params: serde_json::Map<String, Value> = self
            .load_values
            .get_untracked()
            .into_iter()
            .map(|(k, v)| (k, json!(v)))
            .collect();
        fetch_json(
            "POST",
            "/api/v1/pipeline/load",
            Some(&json!({ "pipeline_id": p.id, "load_params": load_params })),
        )
        .await?;
        // A model pipeline's first load on a GPU compiles its kernels: minutes, with progress.
        let mut waited = Duration::ZERO;
        loop {
            let s: PipelineStatus =
                serde_json::from_value(fetch_json("GET", "/api/v1/pipeline/status", None).await?)
                    .map_err(|e| format!("unexpected pipeline status: {e}"))?;
            match s.status {
                LoadStatus::Loaded if s.pipeline_id.as_deref() == Some(p.id.as_str()) => break,
                LoadStatus::Error => {
                    self.load_progress.set(None);
                    return Err(s
                        .error
                        .unwrap_or_else(|| "the pipeline failed to load".into()));
                }
                LoadStatus::Loading => self
                    .load_progress
                    .set(Some((s.loading_stage, s.progress.unwrap_or(0.0)))),
                _ => {}
            }
            if waited > Duration::from_secs(30 * 60) {
                self.load_progress.set(None);
                return Err("the pipeline took too long to load".into());
            }
            if self.phase.get_untracked() == Phase::Idle {
                break; // stopped while loading
            }
            sleep(Duration::from_millis(250)).await;
            waited += Duration::from_millis(250);
        }
        self.load_progress.set(None);
        if self.phase.get_untracked() == Phase::Idle {
            return Ok(()); // stopped while loading
        }
        self.phase.set(Phase::Connecting);
        let input = if p.takes_video() {
            match self.mode.get_untracked() {
                InputMode::Camera => self
                    .camera
                    .get_value()
                    .ok_or_else(|| "no camera stream: allow camera access first".to_owned())?,
                _ => {
                    let video = self.preview.get_untracked().ok_or("no input video")?;
                    crate::client::capture(&video)?
                }
            }
            .into()
        } else {
            None
        };
        let output = self.output;
        let callbacks = Callbacks {
            on_track: Box::new(move |stream| {
                if let Some(v) = output.get_untracked() {
                    v.set_src_object(Some(&stream));
                    let _ = v.play();
                }
            }),
            on_message: Box::new(move |msg| self.on_message(msg)),
            on_state: Box::new(move |state| {
                if state == "failed" {
                    // As for stream_stopped: not from inside the handler being dropped.
                    leptos::task::spawn_local(async move { self.fail("the connection failed") });
                }
            }),
        };
        let mut initial = json!(self.runtime_values.get_untracked());
        let prompts = self.prompt_list();
        if !prompts.is_empty() && self.takes_prompts() {
            initial["prompts"] = json!(prompts);
            initial["prompt_interpolation_method"] = json!(self.interpolation.get_untracked());
        }
        self.live_prompts.set(None);
        let live = Live::connect(input.as_ref(), initial, callbacks).await?;
        if self.phase.get_untracked() == Phase::Idle {
            live.close();
            return Ok(());
        }
        self.live.set_value(Some(live));
        self.stream_signed_in
            .set(self.account.current_untracked().is_some());
        self.phase.set(Phase::Streaming);
        self.poll_stats();
        Ok(())
    }

    fn on_message(self, msg: Value) {
        use crate::wire::ServerMessage;
        let Ok(msg) = serde_json::from_value::<ServerMessage>(msg) else {
            return; // a message this page does not know
        };
        match msg {
            ServerMessage::Metrics { system, stream } => self.figures.update(|f| {
                f.system = Some(system);
                f.stream = Some(stream);
            }),
            // Stopping drops the connection's closures, this handler's among them: do it once
            // the handler has returned.
            ServerMessage::StreamStopped { error_message } => {
                leptos::task::spawn_local(async move {
                    match error_message {
                        Some(e) => self.fail(&e),
                        None => self.stop(),
                    }
                })
            }
            ServerMessage::Error { message } => self.toast("Parameter rejected", &message),
            ServerMessage::ParametersUpdated { parameters } => {
                if let Some(p) = parameters.get("prompts") {
                    self.live_prompts.set(Some(crate::models::prompt_items(p)));
                } else if let Some(t) = parameters.get("transition") {
                    self.live_prompts
                        .set(Some(crate::models::prompt_items(&t["target_prompts"])));
                }
            }
        }
    }

    fn fail(self, message: &str) {
        self.stop();
        self.stream_error.set(Some(message.to_owned()));
        self.toast("Stream Error", message);
    }

    fn poll_stats(self) {
        use std::time::Duration;
        leptos::task::spawn_local(async move {
            let mut last: Option<(f64, f64)> = None;
            while self.phase.get_untracked() == Phase::Streaming {
                let peer = self.live.with_value(|l| l.as_ref().map(|l| l.peer()));
                let Some(peer) = peer else { break };
                if let Some((bytes, frames, rtt)) = crate::client::stats(&peer).await {
                    if let Some((b0, f0)) = last {
                        self.figures.update(|f| {
                            f.bitrate_bps = Some((bytes - b0) * 8.0);
                            f.client_fps = Some(frames - f0);
                            f.rtt_ms = rtt.map(|r| r * 1000.0);
                        });
                    }
                    last = Some((bytes, frames));
                }
                crate::client::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    fn stop(self) {
        if self.recording.get_untracked().is_some() {
            self.stop_recording();
        }
        self.live.update_value(|l| {
            if let Some(l) = l.take() {
                l.close();
            }
        });
        if let Some(v) = self.output.get_untracked() {
            v.set_src_object(None);
        }
        self.phase.set(Phase::Idle);
        self.paused.set(false);
        self.figures.set(Figures::default());
    }

    fn start_recording(self) {
        use wasm_bindgen::JsCast;
        let stream = self
            .output
            .get_untracked()
            .and_then(|v| v.src_object())
            .and_then(|s| s.dyn_into::<web_sys::MediaStream>().ok());
        let Some(stream) = stream else {
            self.toast("Cannot record", "no output video yet");
            return;
        };
        match crate::client::Recorder::start(&stream) {
            Ok(r) => self.recorder.set_value(Some(r)),
            Err(e) => {
                self.toast("Cannot record", &e);
                return;
            }
        }
        let started = js_sys::Date::now();
        self.recording.set(Some(RecordingFigures::default()));
        leptos::task::spawn_local(async move {
            while self.recording.get_untracked().is_some() {
                let bytes = self.recorder.with_value(|r| r.as_ref().map(|r| r.size()));
                let Some(bytes) = bytes else { break };
                self.recording.set(Some(RecordingFigures {
                    elapsed_ms: js_sys::Date::now() - started,
                    bytes,
                }));
                crate::client::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
    }

    /// Stops the recorder; a signed-in user's recording is uploaded to the Library, a
    /// guest's is downloaded.
    fn stop_recording(self) {
        let mut taken = None;
        self.recorder.update_value(|r| taken = r.take());
        let Some(rec) = taken else { return };
        let figures = self.recording.get_untracked().unwrap_or_default();
        self.recording.set(None);
        let video = self.output.get_untracked();
        let thumbnail = video.as_ref().and_then(crate::client::snapshot_data_url);
        let (w, h) = video
            .as_ref()
            .map_or((0, 0), |v| (v.video_width(), v.video_height()));
        let preset = self.preset_input("");
        let session_id = self
            .stream_signed_in
            .get_untracked()
            .then(|| {
                self.live
                    .with_value(|l| l.as_ref().map(|l| l.session_id.clone()))
            })
            .flatten();
        let mut meta = json!({
            "duration_ms": figures.elapsed_ms.round() as i64,
            "pipeline_id": preset.pipeline_id,
            "prompts": preset.prompts,
            "params": preset.params,
            "session_id": session_id,
        });
        if w > 0 && h > 0 {
            meta["width"] = json!(w);
            meta["height"] = json!(h);
        }
        let signed_in = self.account.current_untracked().is_some();
        leptos::task::spawn_local(async move {
            let blob = match rec.stop().await {
                Ok(b) => b,
                Err(e) => return self.toast("Recording failed", &e),
            };
            if !signed_in {
                let name = format!("hanzo-live-{}.webm", js_sys::Date::now() as u64);
                match crate::client::download_blob(&blob, &name) {
                    Ok(()) => self.toast(
                        "Recording downloaded",
                        "Sign in to keep recordings in your Library.",
                    ),
                    Err(e) => self.toast("Recording failed", &e),
                }
                return;
            }
            let result: Result<Value, String> = async {
                let form = web_sys::FormData::new().map_err(|e| format!("{e:?}"))?;
                form.append_with_str("metadata", &meta.to_string())
                    .map_err(|e| format!("{e:?}"))?;
                form.append_with_blob_and_filename("file", &blob, "recording.webm")
                    .map_err(|e| format!("{e:?}"))?;
                if let Some(url) = thumbnail
                    && let Some(t) = crate::client::data_url_blob(&url).await
                {
                    form.append_with_blob_and_filename("thumbnail", &t, "thumbnail.jpg")
                        .map_err(|e| format!("{e:?}"))?;
                }
                crate::client::post_form("/api/v1/recordings", &form).await
            }
            .await;
            match result {
                Ok(r) => self.toast(
                    "Recording saved",
                    &format!(
                        "“{}” is in your Library.",
                        r["title"].as_str().unwrap_or("")
                    ),
                ),
                Err(e) => self.toast("Upload failed", &e),
            }
        });
    }

    /// Sends runtime parameters to the running stream.
    fn send(self, msg: Value) {
        self.live.with_value(|l| {
            if let Some(l) = l {
                l.send(&msg);
            }
        });
    }
}

/// Browser actions, callable from views on both builds (they only run in the browser).
impl Studio {
    pub fn on_start_stop(self) {
        #[cfg(feature = "hydrate")]
        {
            if self.busy() {
                self.stop()
            } else {
                self.start()
            }
        }
    }

    pub fn toggle_recording(self) {
        #[cfg(feature = "hydrate")]
        {
            if self.recording.get_untracked().is_some() {
                self.stop_recording()
            } else if self.phase.get_untracked() == Phase::Streaming {
                self.start_recording()
            }
        }
    }

    pub fn toggle_pause(self) {
        if self.phase.get_untracked() != Phase::Streaming {
            return;
        }
        let p = !self.paused.get_untracked();
        self.paused.set(p);
        self.pause_flash.update(|n| *n += 1);
        #[cfg(feature = "hydrate")]
        self.send(json!({ "paused": p }));
    }

    pub fn on_mode_change(self) {
        #[cfg(feature = "hydrate")]
        self.show_input();
    }

    pub fn on_upload(self, _ev: leptos::ev::Event) {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let input: Option<web_sys::HtmlInputElement> =
                _ev.target().and_then(|t| t.dyn_into().ok());
            let Some(file) = input.and_then(|i| i.files()).and_then(|f| f.get(0)) else {
                return;
            };
            if !file.type_().starts_with("video/") {
                self.upload_error
                    .set(Some("Please select a video file".into()));
                return;
            }
            if file.size() > MAX_UPLOAD_BYTES {
                self.upload_error
                    .set(Some("File size must be less than 50MB".into()));
                return;
            }
            if let Ok(url) = web_sys::Url::create_object_url_with_blob(&file) {
                self.upload_error.set(None);
                self.clip_url.set(url);
                self.show_input();
            }
        }
    }

    pub fn on_setup(self) {
        #[cfg(feature = "hydrate")]
        {
            self.load_pipelines();
            self.show_input();
        }
    }

    pub fn send_live(self, _key: &str, _value: Value) {
        #[cfg(feature = "hydrate")]
        self.send(json!({ _key: _value }));
    }
}

/// The studio page: three panels between the header and the status bar.
#[component]
pub fn StreamPage() -> impl IntoView {
    let studio = Studio::new();
    provide_context(studio);
    // Effects run only in the browser, so this flips once the wasm has hydrated the page.
    // Tests wait for `data-hydrated="true"` before they interact.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| {
        studio.on_setup();
        set_hydrated.set(true);
    });
    // Space pauses and resumes unless focus is in a field.
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            use wasm_bindgen::JsCast;
            if ev.code() != "Space" {
                return;
            }
            let in_field = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|e| {
                    matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                        || e.has_attribute("contenteditable")
                });
            if !in_field {
                ev.prevent_default();
                studio.toggle_pause();
            }
        });
        on_cleanup(move || handle.remove());
    }

    view! {
        <div class="app-shell" data-testid="app-shell" data-hydrated=move || hydrated.get().to_string()>
            <Header />
            <div class="app-main">
                <InputPanel />
                <section class="center-column" aria-label="Output">
                    <VideoArea />
                    <crate::components::PromptDock />
                </section>
                <SettingsPanel />
            </div>
            <StudioStatus />
            <Toasts />
        </div>
    }
}

/// Left panel: where the input comes from, and Start/Stop.
#[component]
fn InputPanel() -> impl IntoView {
    let s = expect_context::<Studio>();
    let modes = move || {
        s.current()
            .map(|p| p.modes)
            .unwrap_or_else(|| vec!["camera".into(), "video".into()])
    };
    let takes_video = move || s.current().is_none_or(|p| p.takes_video());
    view! {
        <aside class="panel panel-left" data-testid="input-panel" aria-labelledby="input-panel-title">
            <h2 class="panel-title" id="input-panel-title">"Input & Controls"</h2>
            <label class="field">
                <span class="field-label">"Mode"</span>
                <select
                    class="select"
                    data-testid="input-mode"
                    prop:value=move || s.mode.get().as_str()
                    disabled=move || match s.phase.get() {
                        Phase::Idle => false,
                        // A video pipeline may switch between camera and file while live.
                        Phase::Streaming => !takes_video(),
                        Phase::Loading | Phase::Connecting => true,
                    }
                    on:change=move |ev| {
                        if let Some(m) = InputMode::parse(&event_target_value(&ev)) {
                            s.mode.set(m);
                            s.on_mode_change();
                        }
                    }
                >
                    {move || {
                        modes()
                            .into_iter()
                            .filter_map(|m| InputMode::parse(&m))
                            .map(|m| view! { <option value=m.as_str() selected=move || s.mode.get() == m>{m.label()}</option> })
                            .collect_view()
                    }}
                </select>
            </label>
            <div class="field" class:hidden=move || !takes_video()>
                <span class="field-label">"Input"</span>
                <div class="input-preview" data-testid="input-preview">
                    <video
                        class="preview-video"
                        node_ref=s.preview
                        autoplay
                        muted
                        playsinline
                        loop
                        crossorigin="anonymous"
                    ></video>
                    <span class="preview-status" data-testid="input-status">
                        {move || {
                            let st = s.input_status.get();
                            if st.is_empty() {
                                match s.mode.get() {
                                    InputMode::Video => "Video Preview".to_owned(),
                                    InputMode::Camera => "Camera Preview".to_owned(),
                                    InputMode::Text => String::new(),
                                }
                            } else {
                                st
                            }
                        }}
                    </span>
                </div>
                <Show when=move || s.mode.get() == InputMode::Video>
                    <label class="upload">
                        <input
                            type="file"
                            accept="video/*"
                            data-testid="upload-input"
                            disabled=move || s.busy()
                            on:change=move |ev| s.on_upload(ev)
                        />
                        <span>"Upload a video (≤ 50 MB)"</span>
                    </label>
                    {move || s.upload_error.get().map(|e| view! { <p class="error" data-testid="upload-error">{e}</p> })}
                </Show>
            </div>
            <Show when=move || !takes_video()>
                <p class="muted" data-testid="text-mode-note">"This pipeline generates video without an input."</p>
            </Show>
            <button
                class="primary start-button"
                data-testid="start-button"
                disabled=move || s.phase.get() == Phase::Idle && (s.current().is_none() || s.start_blocked().is_some())
                title=move || s.start_blocked().unwrap_or_default()
                on:click=move |_| s.on_start_stop()
            >
                {move || match s.phase.get() {
                    Phase::Idle => "Start".to_owned(),
                    Phase::Loading => "Loading… (Stop)".to_owned(),
                    Phase::Connecting => "Connecting… (Stop)".to_owned(),
                    Phase::Streaming => "Stop".to_owned(),
                }}
            </button>
        </aside>
    }
}

/// Centre: the output video and its states.
#[component]
fn VideoArea() -> impl IntoView {
    let s = expect_context::<Studio>();
    view! {
        <div
            class="video-area"
            data-testid="video-area"
            data-phase=move || format!("{:?}", s.phase.get()).to_lowercase()
            data-paused=move || s.paused.get().to_string()
            on:click=move |_| s.toggle_pause()
        >
            <video
                class="output-video"
                class:hidden=move || s.phase.get() != Phase::Streaming
                data-testid="output-video"
                node_ref=s.output
                autoplay
                muted
                playsinline
            ></video>
            {move || match (s.phase.get(), s.stream_error.get()) {
                (Phase::Streaming, _) => None,
                (Phase::Loading, _) => Some(view! {
                    <div class="video-state" data-testid="load-progress">
                        <span class="spinner"></span>
                        <p>{move || match s.load_progress.get() {
                            Some((Some(stage), f)) => format!("{}… {:.0}%", stage.label(), f * 100.0),
                            Some((None, f)) if f > 0.0 => format!("Loading pipeline… {:.0}%", f * 100.0),
                            _ => "Loading pipeline...".to_owned(),
                        }}</p>
                        <progress max="1" value=move || s.load_progress.get().map_or(0.0, |(_, f)| f)></progress>
                    </div>
                }.into_any()),
                (Phase::Connecting, _) => Some(view! { <div class="video-state"><span class="spinner"></span><p>"Connecting..."</p></div> }.into_any()),
                (Phase::Idle, Some(e)) => Some(view! {
                    <div class="video-state error" data-testid="video-error">
                        <p class="video-idle-title">"Pipeline Error"</p>
                        <p>{e}</p>
                    </div>
                }.into_any()),
                (Phase::Idle, None) => Some(view! {
                    <div class="video-idle">
                        <p class="video-idle-title">"Click \"Start\" when you are ready"</p>
                        <p class="video-idle-hint">{move || format!("Input: {}", s.mode.get().label())}</p>
                    </div>
                }.into_any()),
            }}
            <Show when=move || s.phase.get() == Phase::Streaming || s.recording.get().is_some()>
                <div class="record-bar" on:click=move |ev| ev.stop_propagation()>
                    <button
                        type="button"
                        class="record-button"
                        class:recording=move || s.recording.get().is_some()
                        data-testid="record-button"
                        on:click=move |_| s.toggle_recording()
                    >
                        {move || if s.recording.get().is_some() { "■ Stop recording" } else { "● Record" }}
                    </button>
                    {move || s.recording.get().map(|f| view! {
                        <span class="record-status" data-testid="record-status">
                            {format!(
                                "{} · {}",
                                crate::format::duration(f.elapsed_ms / 1000.0),
                                crate::format::bytes(f.bytes),
                            )}
                        </span>
                    })}
                </div>
            </Show>
            {move || (s.pause_flash.get() > 0).then(|| view! {
                <div class="pause-overlay" data-testid="pause-overlay" aria-hidden="true">
                    {if s.paused.get() { "❚❚" } else { "▶" }}
                </div>
            })}
        </div>
    }
}

/// Right panel: the pipeline and its parameters (rendered from its schema).
#[component]
fn SettingsPanel() -> impl IntoView {
    let s = expect_context::<Studio>();
    let info = expect_context::<ServerInfoResource>().0;
    view! {
        <aside class="panel panel-right" data-testid="settings-panel" aria-labelledby="settings-panel-title">
            <h2 class="panel-title" id="settings-panel-title">"Settings"</h2>
            <label class="field">
                <span class="field-label">"Pipeline ID"</span>
                <select
                    class="select"
                    data-testid="pipeline-select"
                    prop:value=move || s.pipeline_id.get()
                    disabled=move || s.busy()
                    on:change=move |ev| {
                        s.select(&event_target_value(&ev));
                        s.on_mode_change();
                    }
                >
                    {move || {
                        s.pipelines
                            .get()
                            .into_iter()
                            .map(|p| {
                                let id = p.id.clone();
                                view! {
                                    <option value=p.id.clone() selected=move || s.pipeline_id.get() == id>
                                        {p.id.clone()}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            {move || s.pipelines_error.get().map(|e| view! { <p class="error">{format!("Cannot list pipelines: {e}")}</p> })}
            {move || s.current().map(|p| view! {
                <div class="pipeline-card" data-testid="pipeline-info">
                    <p class="pipeline-name">{p.name.clone()}</p>
                    <p class="muted">{p.about.clone()}</p>
                    {(!p.files.ready).then(|| view! {
                        <div class="missing-files" data-testid="missing-files">
                            <p class="error">"Model files missing"</p>
                            <p class="muted">{format!("Looked under {}:", p.files.models_dir)}</p>
                            <ul>
                                {p.files.missing.iter().map(|m| view! {
                                    <li title=format!("from {} ({})", m.repo, m.file)>
                                        {m.label()}
                                        <br />
                                        <code>{m.relative_path(&p.files.models_dir)}</code>
                                    </li>
                                }).collect_view()}
                            </ul>
                        </div>
                    })}
                </div>
            })}
            <div class="fields" data-testid="load-params">
                {move || {
                    s.current()
                        .map(|p| {
                            p.load_fields()
                                .into_iter()
                                .filter(|f| matches!(f.kind, FieldKind::Int { .. }))
                                .map(|f| view! { <IntField field=f /> })
                                .collect_view()
                        })
                }}
            </div>
            <div class="fields" data-testid="runtime-params">
                {move || {
                    s.current()
                        .map(|p| {
                            p.runtime_fields()
                                .into_iter()
                                .filter(|f| f.key != "paused" && f.kind != FieldKind::Prompts)
                                .map(|f| view! { <RuntimeField field=f /> })
                                .collect_view()
                        })
                }}
            </div>
            <super::presets::PresetsSection />
            <section class="settings-section">
                <h3 class="section-title">"Server"</h3>
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match info.await {
                            Ok(i) => {
                                view! {
                                    <dl class="kv" data-testid="server-info">
                                        <dt>"Version"</dt>
                                        <dd>{i.version}</dd>
                                        <dt>"Commit"</dt>
                                        <dd>{i.git_commit}</dd>
                                        <dt>"Accounts"</dt>
                                        <dd>
                                            {if i.require_login {
                                                "Sign-in required"
                                            } else {
                                                "Optional (guests can stream)"
                                            }}
                                        </dd>
                                    </dl>
                                }
                                    .into_any()
                            }
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
        </aside>
    }
}

/// An integer load parameter: − / + buttons and a number field, with the original's inline
/// messages. Disabled while streaming (load parameters need a restart).
#[component]
fn IntField(field: crate::schema::Field) -> impl IntoView {
    let s = expect_context::<Studio>();
    let key = field.key.clone();
    let step = match field.kind {
        FieldKind::Int {
            multiple_of: Some(m),
            ..
        } => m,
        _ => 1,
    };
    let value = {
        let key = key.clone();
        move || s.load_values.with(|v| v.get(&key).copied().unwrap_or(0))
    };
    let set = {
        let key = key.clone();
        move |v: i64| {
            s.load_values.update(|m| {
                m.insert(key.clone(), v);
            })
        }
    };
    let kind = field.kind.clone();
    let error = {
        let value = value.clone();
        move || int_error(&kind, value())
    };
    let testid = format!("param-{key}");
    let (dec, inc, input) = (set.clone(), set.clone(), set);
    let (v1, v2, v3) = (value.clone(), value.clone(), value);
    view! {
        <div class="field" data-testid=testid>
            <span class="field-label" title=field.description.clone()>{field.title.clone()}</span>
            <div class="stepper">
                <button type="button" class="step" aria-label="Decrease" disabled=move || s.busy() on:click=move |_| dec(v1() - step)>"−"</button>
                <input
                    type="number"
                    class="number"
                    prop:value=move || v2().to_string()
                    disabled=move || s.busy()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).trim().parse::<i64>() {
                            input(n);
                        }
                    }
                />
                <button type="button" class="step" aria-label="Increase" disabled=move || s.busy() on:click=move |_| inc(v3() + step)>"+"</button>
            </div>
            {move || error().map(|e| view! { <p class="error field-error">{e}</p> })}
        </div>
    }
}

/// A runtime parameter: toggle, slider, action button or step-list editor. Live ones are
/// sent as soon as they change (sliders when released); the others lock while streaming.
#[component]
fn RuntimeField(field: crate::schema::Field) -> impl IntoView {
    let s = expect_context::<Studio>();
    let key = field.key.clone();
    let live = field.live;
    let locked = move || s.busy() && !live;
    let value = {
        let key = key.clone();
        move || {
            s.runtime_values
                .with(|v| v.get(&key).cloned().unwrap_or(Value::Null))
        }
    };
    let commit = {
        let key = key.clone();
        move |v: Value, send: bool| {
            s.runtime_values.update(|m| {
                m.insert(key.clone(), v.clone());
            });
            if send && s.phase.get_untracked() == Phase::Streaming {
                s.send_live(&key, v);
            }
        }
    };
    let testid = format!("param-{key}");
    let title = field.title.clone();
    let control = match field.kind.clone() {
        FieldKind::Bool => {
            let (value, v2) = (value.clone(), value.clone());
            view! {
                <label class="toggle">
                    <input
                        type="checkbox"
                        prop:checked=move || v2().as_bool().unwrap_or(false)
                        disabled=locked
                        on:change=move |ev| commit(json!(event_target_checked(&ev)), true)
                    />
                    <span>{move || if value().as_bool().unwrap_or(false) { "ON" } else { "OFF" }}</span>
                </label>
            }
            .into_any()
        }
        FieldKind::Number { min, max, step } => {
            let (v1, v2) = (value.clone(), value.clone());
            let c2 = commit.clone();
            view! {
                <div class="slider">
                    <input
                        type="range"
                        min=min
                        max=max
                        step=step
                        prop:value=move || v1().as_f64().unwrap_or(min).to_string()
                        disabled=locked
                        on:input=move |ev| {
                            if let Ok(x) = event_target_value(&ev).parse::<f64>() {
                                c2(json!(x), false);
                            }
                        }
                        on:change=move |ev| {
                            if let Ok(x) = event_target_value(&ev).parse::<f64>() {
                                commit(json!(x), true);
                            }
                        }
                    />
                    <span class="slider-value">{move || format!("{:.2}", v2().as_f64().unwrap_or(min))}</span>
                </div>
            }
            .into_any()
        }
        FieldKind::Trigger => {
            let key = key.clone();
            view! {
                <button
                    type="button"
                    class="secondary"
                    disabled=move || s.phase.get() != Phase::Streaming
                    on:click=move |_| s.send_live(&key, json!(true))
                >
                    {title.clone()}
                </button>
            }
            .into_any()
        }
        FieldKind::Steps { .. } => {
            let kind = field.kind.clone();
            let default = field.default.clone();
            let steps = {
                let value = value.clone();
                move || -> Vec<i64> {
                    value()
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default()
                }
            };
            let set = {
                let kind = kind.clone();
                move |new: Vec<i64>| {
                    let valid = crate::schema::steps_error(&kind, &new).is_none();
                    commit(json!(new), valid);
                }
            };
            let error = {
                let (kind, steps) = (kind.clone(), steps.clone());
                move || crate::schema::steps_error(&kind, &steps())
            };
            let (st_rows, st_add, st_del) = (steps.clone(), steps.clone(), steps.clone());
            let (set_rows, set_add, set_del, set_reset) =
                (set.clone(), set.clone(), set.clone(), set);
            let kind_add = kind.clone();
            view! {
                <div class="steps">
                    {move || {
                        let current = st_rows();
                        current
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                let set = set_rows.clone();
                                let all = current.clone();
                                view! {
                                    <label class="step-row">
                                        <span>{format!("Step {}:", i + 1)}</span>
                                        <input
                                            type="number"
                                            class="number"
                                            prop:value=v.to_string()
                                            disabled=locked
                                            on:change=move |ev| {
                                                if let Ok(n) = event_target_value(&ev).trim().parse::<i64>() {
                                                    let mut next = all.clone();
                                                    next[i] = n;
                                                    set(next);
                                                }
                                            }
                                        />
                                    </label>
                                }
                            })
                            .collect_view()
                    }}
                    <div class="step-buttons">
                        <button type="button" class="step" aria-label="Add a step" disabled=locked
                            on:click=move |_| {
                                let mut cur = st_add();
                                if let Some(n) = crate::schema::next_step(&kind_add, &cur) {
                                    cur.push(n);
                                    set_add(cur);
                                }
                            }>"+"</button>
                        <button type="button" class="step" aria-label="Remove the last step" disabled=locked
                            on:click=move |_| {
                                let mut cur = st_del();
                                if cur.len() > 1 {
                                    cur.pop();
                                    set_del(cur);
                                }
                            }>"−"</button>
                        <button type="button" class="secondary" disabled=locked
                            on:click=move |_| {
                                let d = default.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
                                set_reset(d);
                            }>"Reset"</button>
                    </div>
                    {move || error().map(|e| view! { <p class="error field-error">{e}</p> })}
                </div>
            }
            .into_any()
        }
        FieldKind::Int { .. } | FieldKind::Prompts => ().into_any(),
    };
    view! {
        <div class="field" data-testid=testid>
            <span class="field-label" title=field.description.clone()>{field.title.clone()}</span>
            {control}
        </div>
    }
}

/// `used/total GB` from megabytes.
fn gigabytes(used_mb: u64, total_mb: u64) -> String {
    format!(
        "{:.1}/{:.1} GB",
        used_mb as f64 / 1024.0,
        total_mb as f64 / 1024.0
    )
}

/// The status bar with this page's stream figures.
#[component]
fn StudioStatus() -> impl IntoView {
    let s = expect_context::<Studio>();
    let fig = move |f: fn(&Figures) -> Option<String>| {
        move || s.figures.with(f).unwrap_or_else(|| "n/a".into())
    };
    view! {
        <StatusBar
            state=Signal::derive(move || match s.phase.get() {
                Phase::Idle => "Idle".to_owned(),
                Phase::Loading => "Loading".to_owned(),
                Phase::Connecting => "Connecting".to_owned(),
                Phase::Streaming if s.paused.get() => "Paused".to_owned(),
                Phase::Streaming => "Live".to_owned(),
            })
            live=Signal::derive(move || s.phase.get() == Phase::Streaming)
        >
            <span class="status-item" data-testid="metric-cpu">"CPU: " {fig(|f| f.system.as_ref().map(|m| format!("{:.0}%", m.cpu_percent)))}</span>
            <span class="status-item" data-testid="metric-ram">"RAM: " {fig(|f| f.system.as_ref().map(|m| gigabytes(m.ram_used_mb, m.ram_total_mb)))}</span>
            <span class="status-item" data-testid="metric-gpu">"GPU: " {fig(|f| f.system.as_ref()?.gpu_percent.map(|v| format!("{v:.0}%")))}</span>
            <span class="status-item" data-testid="metric-vram">"VRAM: " {fig(|f| {
                let m = f.system.as_ref()?;
                Some(gigabytes(m.vram_used_mb?, m.vram_total_mb?))
            })}</span>
            <span class="status-item" data-testid="metric-fps">"FPS: " {fig(|f| f.stream.as_ref().map(|m| format!("{:.1}", m.fps)))}</span>
            <span class="status-item" data-testid="metric-latency">"Latency: " {fig(|f| match (f.stream.as_ref().and_then(|m| m.latency_ms), f.rtt_ms) {
                (Some(l), Some(r)) => Some(format!("{l:.0} ms + RTT {r:.0} ms")),
                (Some(l), None) => Some(format!("{l:.0} ms")),
                _ => None,
            })}</span>
            <span class="status-item" data-testid="metric-bitrate">"Bitrate: " {fig(|f| f.bitrate_bps.map(|b| if b >= 1e6 { format!("{:.1} Mbps", b / 1e6) } else { format!("{:.0} kbps", b / 1e3) }))}</span>
        </StatusBar>
    }
}

/// Messages in the corner (errors from the stream).
#[component]
fn Toasts() -> impl IntoView {
    let s = expect_context::<Studio>();
    view! {
        <div class="toasts" aria-live="polite" data-testid="toasts">
            <For each=move || s.toasts.get() key=|t| t.id let:t>
                <div class="toast" role="status">
                    <p class="toast-title">{t.title.clone()}</p>
                    <p>{t.message.clone()}</p>
                </div>
            </For>
        </div>
    }
}
