//! The studio's stream session: the state every panel of the StreamPage shares ([`Studio`]:
//! plain signals) and what can be asked of it. Everything that touches the browser (camera,
//! WebRTC, fetch) is in [`browser`], compiled into the wasm build only; the server renders the
//! same state idle.
//!
//! | module | what it holds |
//! |---|---|
//! | here | the state, selection, load settings, the prompt list, presets in and out |
//! | `browser` | loading, connecting, streaming, recording, the data channel (hydrate only) |
//!
//! The panels are components: `components::{InputAndControlsPanel, VideoOutput, PromptDock,
//! SettingsPanel, StudioStatus, Toasts, PresetsSection}`; the page is `routes::StreamPage`.

#[cfg(feature = "hydrate")]
mod browser;

use crate::{
    models::{InputMode, ParamMap, Preset, PresetInput, PromptItem},
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
    /// Load parameters as the controls show them: integers, switches and numbers (e.g.
    /// StreamDiffusionV2's `stream_batch` and `adapt_sink_threshold`).
    pub load_values: RwSignal<BTreeMap<String, Value>>,
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
    /// The last blended row's id.
    pub next_row_id: StoredValue<u64>,
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
/// re-renders nothing else). Reference-counted signals: a row made in an event handler must
/// outlive the view that handled the event (an arena signal would die with it).
#[derive(Clone, Debug)]
pub struct PromptRow {
    pub id: u64,
    pub text: ArcRwSignal<String>,
    pub weight: ArcRwSignal<f64>,
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
    pub fn new() -> Self {
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
            next_row_id: StoredValue::new(0),
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
            .filter(|f| {
                matches!(
                    f.kind,
                    FieldKind::Int { .. }
                        | FieldKind::Bool
                        | FieldKind::Number { .. }
                        | FieldKind::Choice { .. }
                )
            })
            .map(|f| (f.key, f.default))
            .collect();
        self.load_values.set(values);
        let runtime = p
            .runtime_fields()
            .into_iter()
            .filter(|f| {
                // Choices at run time (how prompts blend) belong to the prompt dock.
                f.key != "paused"
                    && !matches!(
                        f.kind,
                        FieldKind::Prompts | FieldKind::Trigger | FieldKind::Choice { .. }
                    )
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
        let missing = self.load_values.with(|v| {
            p.missing_for(v)
                .iter()
                .map(|m| m.label().to_owned())
                .collect::<Vec<_>>()
        });
        if !missing.is_empty() {
            return Some(format!(
                "Cannot start: model files missing ({}; see Settings)",
                missing.join(", ")
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
                .and_then(Value::as_i64)
                .and_then(|v| int_error(&f.kind, v))
                .map(|e| format!("{}: {e}", f.title))
        })
    }

    /// The load parameters as the controls hold them (integers, switches and numbers).
    pub fn load_params(&self) -> ParamMap {
        self.load_values.get_untracked().into_iter().collect()
    }

    /// The current pipeline, prompt and parameters as a preset named `name`.
    pub fn preset_input(&self, name: &str) -> PresetInput {
        let mut params = self.load_params();
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
        let id = self.next_row_id.get_value() + 1;
        self.next_row_id.set_value(id);
        PromptRow {
            id,
            text: ArcRwSignal::new(text.to_owned()),
            weight: ArcRwSignal::new(weight),
        }
    }

    /// Removes blended row `id`; the main prompt's weight goes back to 1 with the last one
    /// (its slider hides then, and a hidden zero weight would refuse every send).
    pub fn remove_prompt_row(&self, id: u64) {
        self.extra_prompts.update(|r| r.retain(|x| x.id != id));
        if self.extra_prompts.with_untracked(Vec::is_empty) {
            self.first_weight.set(1.0);
        }
    }

    /// Sets the prompt list as the next stream's and, while streaming, sends it (as a
    /// transition when Transition Chunks > 0).
    pub fn apply_prompts(self) {
        let list = self.prompt_list();
        if list.is_empty() {
            return;
        }
        // Only the main field names the main prompt (a blended row never becomes it).
        let draft = self.prompt_draft.get_untracked();
        if !draft.trim().is_empty() {
            self.next_prompt.set(Some(draft.trim().to_owned()));
        }
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
            // A preset's value replaces a setting of the same kind only (an integer an
            // integer, a switch a switch, a number a number, a choice one of its options).
            let options: BTreeMap<String, Vec<String>> =
                self.current().map_or_else(BTreeMap::new, |p| {
                    p.load_fields()
                        .into_iter()
                        .filter_map(|f| match f.kind {
                            FieldKind::Choice { options } => Some((f.key, options)),
                            _ => None,
                        })
                        .collect()
                });
            let allowed = |k: &str, new: &Value| match (options.get(k), new.as_str()) {
                (Some(opts), Some(s)) => opts.iter().any(|o| o == s),
                _ => true,
            };
            self.load_values.update(|values| {
                for (k, v) in values.iter_mut() {
                    if let Some(new) = preset.params.get(k)
                        && same_kind(v, new)
                        && allowed(k, new)
                    {
                        *v = new.clone();
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

/// Whether `new` may replace the load setting `old`: both integers, both switches, both
/// choices, or `old` a fractional number and `new` any number.
fn same_kind(old: &Value, new: &Value) -> bool {
    (old.is_i64() && new.is_i64())
        || (old.is_boolean() && new.is_boolean())
        || (old.is_string() && new.is_string())
        || (old.is_f64() && new.is_number())
}

impl Default for Studio {
    fn default() -> Self {
        Self::new()
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
