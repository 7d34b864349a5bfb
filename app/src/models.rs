//! Data shared by the server and the browser (serde DTOs; no server-only types).

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// What the server says about itself: shown in the Settings panel and the status bar.
///
/// The server builds one at start-up and provides it through the Leptos context;
/// [`crate::api::get_server_info`] returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    /// The `hanzo-live` package version.
    pub version: String,
    /// Short git commit the server was built from (`unknown` outside a git checkout).
    pub git_commit: String,
    /// Whether streaming needs an account (`--require-login`).
    pub require_login: bool,
}

/// The page-wide resource holding [`ServerInfo`], created once in [`crate::App`].
#[derive(Clone, Copy)]
pub struct ServerInfoResource(pub OnceResource<Result<ServerInfo, crate::error::FnError>>);

impl ServerInfoResource {
    /// Starts the fetch (on the server it runs during SSR and is serialised into the page).
    pub fn new() -> Self {
        Self(OnceResource::new(crate::api::get_server_info()))
    }
}

impl Default for ServerInfoResource {
    fn default() -> Self {
        Self::new()
    }
}

/// Where the stream's input comes from. Which modes a pipeline allows depends on whether it
/// consumes video (Video, Camera) or only text (Text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputMode {
    /// A video file (uploaded, or the bundled test clip), looped.
    Video,
    /// The browser's camera.
    Camera,
    /// No video input: the pipeline generates from the prompt alone.
    Text,
}

impl InputMode {
    /// Every mode, in the order the selector lists them.
    pub const ALL: [InputMode; 3] = [InputMode::Video, InputMode::Camera, InputMode::Text];

    /// Stable identifier used in forms and URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            InputMode::Video => "video",
            InputMode::Camera => "camera",
            InputMode::Text => "text",
        }
    }

    /// Human label.
    pub fn label(self) -> &'static str {
        match self {
            InputMode::Video => "Video",
            InputMode::Camera => "Camera",
            InputMode::Text => "Text",
        }
    }

    /// Parses [`InputMode::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A signed-in account, as the UI and the API show it (never the password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// One prompt with its blend weight (the original's `{"text", "weight"}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptItem {
    pub text: String,
    #[serde(default = "default_weight")]
    pub weight: f64,
}

fn default_weight() -> f64 {
    1.0
}

/// Prompts as the API writes them: strings or `{text, weight}` objects (anything else is
/// skipped).
pub fn prompt_items(v: &serde_json::Value) -> Vec<PromptItem> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| match p {
            serde_json::Value::String(text) => Some(PromptItem {
                text: text.clone(),
                weight: 1.0,
            }),
            other => serde_json::from_value(other.clone()).ok(),
        })
        .collect()
}

/// A JSON object of parameter values (load and runtime), keyed by parameter name.
pub type ParamMap = serde_json::Map<String, serde_json::Value>;

/// A saved prompt + settings preset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub id: i64,
    pub name: String,
    pub pipeline_id: String,
    pub prompts: Vec<PromptItem>,
    pub params: ParamMap,
    pub created_at: String,
    pub updated_at: String,
}

/// What a preset is made of: the body of `POST /api/v1/presets`, and one element of an
/// exported presets file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetInput {
    pub name: String,
    pub pipeline_id: String,
    #[serde(default)]
    pub prompts: Vec<PromptItem>,
    #[serde(default)]
    pub params: ParamMap,
}

impl From<&Preset> for PresetInput {
    fn from(p: &Preset) -> Self {
        Self {
            name: p.name.clone(),
            pipeline_id: p.pipeline_id.clone(),
            prompts: p.prompts.clone(),
            params: p.params.clone(),
        }
    }
}

/// A partial update of a preset (`PUT /api/v1/presets/{id}`): absent fields keep their value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresetPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub pipeline_id: Option<String>,
    #[serde(default)]
    pub prompts: Option<Vec<PromptItem>>,
    #[serde(default)]
    pub params: Option<ParamMap>,
}

/// One page of a list, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Rows in the whole list.
    pub total: i64,
    /// 1-based.
    pub page: u32,
    pub per_page: u32,
}

impl<T> Page<T> {
    /// How many pages the list has (at least one).
    pub fn pages(&self) -> u32 {
        let per = i64::from(self.per_page.max(1));
        u32::try_from(((self.total + per - 1) / per).max(1)).unwrap_or(u32::MAX)
    }
}

/// Default and largest page sizes of the list routes.
pub const DEFAULT_PER_PAGE: u32 = 20;
pub const MAX_PER_PAGE: u32 = 100;

/// A stream in the history list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The stream's session id.
    pub id: String,
    pub pipeline_id: String,
    pub started_at: String,
    /// `None` while the stream runs.
    pub ended_at: Option<String>,
    pub frames_out: i64,
    pub mean_fps: Option<f64>,
    pub mean_latency_ms: Option<f64>,
    /// Why the stream ended, if it failed.
    pub error: Option<String>,
}

/// What changed at one moment of a stream: the initial parameters first, then each update
/// the viewer sent (prompts are the `prompts` parameter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptLogEntry {
    pub at: String,
    pub params: ParamMap,
}

/// A stream with everything the history keeps about it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub load_params: ParamMap,
    pub prompt_log: Vec<PromptLogEntry>,
}

/// A recording of the output stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub id: i64,
    pub title: String,
    /// The stream it was recorded from, while that stream is in the history.
    pub session_id: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub duration_ms: Option<i64>,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub pipeline_id: Option<String>,
    pub prompts: Vec<PromptItem>,
    pub params: ParamMap,
    /// Whether `GET /api/v1/recordings/{id}/thumbnail` has an image.
    pub has_thumbnail: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Recording {
    /// Where the player and the download link fetch the file.
    pub fn file_url(&self) -> String {
        format!("/api/v1/recordings/{}/file", self.id)
    }

    pub fn thumbnail_url(&self) -> String {
        format!("/api/v1/recordings/{}/thumbnail", self.id)
    }
}

/// The `metadata` part of `POST /api/v1/recordings`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingMeta {
    /// Defaults to "Recording <date>".
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub session_id: Option<String>,
    #[serde(default)]
    pub duration_ms: Option<i64>,
    #[serde(default)]
    pub width: Option<i64>,
    #[serde(default)]
    pub height: Option<i64>,
    #[serde(default)]
    pub pipeline_id: Option<String>,
    #[serde(default)]
    pub prompts: Vec<PromptItem>,
    #[serde(default)]
    pub params: ParamMap,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_mode_round_trips_through_its_identifier() {
        for mode in InputMode::ALL {
            assert_eq!(InputMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(InputMode::parse("image"), None);
    }

    #[test]
    fn page_counts_round_up_and_never_reach_zero() {
        let page = |total, per_page| Page::<()> {
            items: vec![],
            total,
            page: 1,
            per_page,
        };
        assert_eq!(page(0, 20).pages(), 1);
        assert_eq!(page(20, 20).pages(), 1);
        assert_eq!(page(21, 20).pages(), 2);
        assert_eq!(page(5, 0).pages(), 5);
    }

    #[test]
    fn prompt_weight_defaults_to_one_and_unknown_fields_are_refused() {
        let p: PromptItem = serde_json::from_str(r#"{"text":"a"}"#).unwrap();
        assert_eq!(p.weight, 1.0);
        assert!(serde_json::from_str::<PromptItem>(r#"{"text":"a","w":2}"#).is_err());
    }
}
