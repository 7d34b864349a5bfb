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
pub struct ServerInfoResource(pub OnceResource<Result<ServerInfo, ServerFnError>>);

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
}
