//! Model downloads on the wire: `/api/v1/models/status`, `/api/v1/models/download` and
//! `/api/v1/models/download/cancel` (the server downloads one pipeline's files at a time).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `GET /api/v1/models/status?pipeline_id=…` (with the load settings that choose files:
/// `vae_type`, `encoder_vae_type`, and `text_encoder` = `fp8` | `bf16`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStatus {
    pub pipeline_id: String,
    /// Every file these settings need is present.
    pub downloaded: bool,
    /// What a download would fetch.
    pub missing: Vec<DownloadFile>,
    /// Bytes of those files already on disk from an unfinished download (`.part` files),
    /// which the next download continues from.
    pub resumable_bytes: u64,
    /// The server's download, running or last finished (whichever pipeline it was for).
    pub progress: Option<DownloadProgress>,
}

impl ModelStatus {
    /// About how many bytes the missing files are.
    pub fn missing_bytes(&self) -> u64 {
        self.missing.iter().map(|f| f.size).sum()
    }
}

/// One file a download fetches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DownloadFile {
    /// Hugging Face repository, the file's path in it, and the revision.
    pub repo: String,
    pub file: String,
    pub revision: String,
    /// Where it goes, under the models directory.
    pub local: String,
    /// About how many bytes (the manifest's figure; the hub's own is used once it downloads).
    pub size: u64,
}

/// Where a download stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Asking the hub for sizes, then fetching.
    #[default]
    Running,
    Done,
    Failed,
    /// Stopped by request; the bytes fetched stay for a later resume.
    Cancelled,
}

/// A download's progress, as the server and the CLI report it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DownloadProgress {
    /// What it downloads for (a pipeline id, or `all`).
    pub pipeline_id: String,
    pub state: DownloadState,
    /// Bytes of the whole download on disk (including what an earlier try left), of all.
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub files_done: usize,
    pub files_total: usize,
    /// The file being fetched (its path under the models directory).
    pub current_file: Option<String>,
    /// The current file's bytes on disk, of its size.
    pub file_bytes_done: u64,
    pub file_bytes_total: u64,
    /// Transfer speed of this run (bytes per second) and the time left at that speed.
    pub bytes_per_s: f64,
    pub eta_s: Option<f64>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DownloadProgress {
    pub fn running(&self) -> bool {
        self.state == DownloadState::Running
    }

    /// Percent done (0–100).
    pub fn percent(&self) -> f64 {
        if self.bytes_total == 0 {
            return if self.state == DownloadState::Done {
                100.0
            } else {
                0.0
            };
        }
        100.0 * self.bytes_done as f64 / self.bytes_total as f64
    }
}

/// `POST /api/v1/models/download` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DownloadRequest {
    pub pipeline_id: String,
    /// The load settings that choose files (`vae_type`, `encoder_vae_type`); others are
    /// checked and otherwise ignored.
    #[serde(default)]
    pub load_params: Value,
    /// `fp8` (the default: about half the bytes) or `bf16`.
    #[serde(default)]
    pub text_encoder: Option<String>,
}

/// `POST /api/v1/models/download` answer: 202 when it started, 200 when nothing was missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DownloadStarted {
    pub pipeline_id: String,
    pub files: Vec<DownloadFile>,
}
