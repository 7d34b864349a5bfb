//! Downloading a pipeline's model files: the runner the server and `hanzo-live download`
//! share, and the server's one download at a time ([`Downloads`]).
//!
//! A run first settles every file's size (the hub cache's copy, or a `HEAD`), so a missing
//! token or file fails before any byte and the free space is checked against the whole
//! download; then it fetches the files one after another through [`crate::hub::fetch`]
//! (resumable, verified, renamed into place only when complete).

pub mod cli;

use crate::hub::{self, Hub, HubError, HubFile};
use app::downloads::{DownloadFile, DownloadProgress, DownloadState};
use engine::pipeline::wan::files::Artefact;
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

/// How often a running download reports its bytes.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A file of a download: where it comes from and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub hub: HubFile,
    /// Its path under the models directory.
    pub local: String,
    /// The manifest's size, until the hub tells.
    pub approx_bytes: u64,
}

impl From<&Artefact> for Planned {
    fn from(a: &Artefact) -> Self {
        Self {
            hub: HubFile {
                repo: a.repo.into(),
                revision: a.revision.into(),
                path: a.file.into(),
            },
            local: a.local.into(),
            approx_bytes: a.approx_bytes,
        }
    }
}

impl Planned {
    pub fn wire(&self) -> DownloadFile {
        DownloadFile {
            repo: self.hub.repo.clone(),
            file: self.hub.path.clone(),
            revision: self.hub.revision.clone(),
            local: self.local.clone(),
            size: self.approx_bytes,
        }
    }
}

/// The files of several plans, each once (pipelines share the Wan files).
pub fn merge(plans: impl IntoIterator<Item = Vec<Planned>>) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    for f in plans.into_iter().flatten() {
        if !out.iter().any(|o| o.local == f.local) {
            out.push(f);
        }
    }
    out
}

/// Bytes of `files` left on disk by an unfinished download (their `.part` files).
pub fn resumable_bytes(models_dir: &Path, files: &[Planned]) -> u64 {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(hub::part_path(&models_dir.join(&f.local))).ok())
        .map(|m| m.len())
        .sum()
}

/// What a finished run fetched, file by file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub local: String,
    pub fetched: hub::Fetched,
}

/// Downloads `files` into `models_dir`, reporting through `report` (at each file's start and
/// end, and ten times a second in between).
/// Stops at the first failure, or when `cancel` is set (what was fetched stays on disk).
pub async fn run(
    hub: &Hub,
    models_dir: &Path,
    files: &[Planned],
    cancel: &AtomicBool,
    progress: &mut DownloadProgress,
    report: &mut (dyn FnMut(&DownloadProgress) + Send),
) -> Result<Vec<Fetched>, HubError> {
    progress.files_total = files.len();
    progress.bytes_total = files.iter().map(|f| f.approx_bytes).sum();
    report(progress);
    tokio::fs::create_dir_all(models_dir)
        .await
        .map_err(|e| HubError::Disk {
            path: models_dir.to_owned(),
            message: e.to_string(),
        })?;

    // Sizes first: every failure the hub can answer comes before the first byte. `parts` is
    // what each file already has on disk (a cached copy whole, else its part file).
    let mut sizes = Vec::with_capacity(files.len());
    let mut parts = Vec::with_capacity(files.len());
    for f in files {
        if cancel.load(Ordering::Relaxed) {
            return Err(HubError::Cancelled);
        }
        let dest = models_dir.join(&f.local);
        let (size, part) = match hub.cached(&f.hub) {
            Some((cached, _)) => {
                let size = std::fs::metadata(&cached).map_or(0, |m| m.len());
                (size, size)
            }
            None => {
                let size = hub::head(hub, &f.hub, cancel).await?.size;
                let part = std::fs::metadata(hub::part_path(&dest)).map_or(0, |m| m.len());
                (size, part.min(size))
            }
        };
        sizes.push(size);
        parts.push(part);
    }
    let on_disk: u64 = parts.iter().sum();
    progress.bytes_total = sizes.iter().sum();
    progress.bytes_done = on_disk;
    report(progress);
    let needed = progress.bytes_total - on_disk;
    if let Some(free) = hub::free_space(models_dir)
        && free < needed
    {
        return Err(HubError::DiskFull {
            path: models_dir.to_owned(),
            needed,
            free,
        });
    }

    let started = Instant::now();
    // Bytes of the files done, and bytes moved over the network by this run.
    let (mut finished, mut moved) = (0u64, 0u64);
    let mut out = Vec::with_capacity(files.len());
    for (i, (f, size)) in files.iter().zip(sizes).enumerate() {
        // A cancel that came while a file was being checked stops before the next one.
        if cancel.load(Ordering::Relaxed) {
            return Err(HubError::Cancelled);
        }
        // What the files not reached yet already have counts as done all along, so the
        // figure never goes back.
        let ahead: u64 = parts[i + 1..].iter().sum();
        let resumed_from = parts[i];
        progress.current_file = Some(f.local.clone());
        progress.file_bytes_done = resumed_from;
        progress.file_bytes_total = size;
        report(progress);
        let dest = models_dir.join(&f.local);
        let mut last = None::<Instant>;
        let fetched = hub::fetch(hub, &f.hub, &dest, cancel, |have, total| {
            progress.file_bytes_done = have;
            progress.file_bytes_total = total;
            progress.bytes_done = finished + have.max(resumed_from) + ahead;
            let elapsed = started.elapsed().as_secs_f64();
            let now_moved = moved + have.saturating_sub(resumed_from);
            if elapsed > 0.2 && now_moved > 0 {
                progress.bytes_per_s = now_moved as f64 / elapsed;
                let left = progress.bytes_total.saturating_sub(progress.bytes_done) as f64;
                progress.eta_s = Some(left / progress.bytes_per_s);
            }
            // Chunks come every few KiB: report ten times a second, and the file's last byte.
            if have == total || last.is_none_or(|t| t.elapsed() >= REPORT_EVERY) {
                last = Some(Instant::now());
                report(progress);
            }
        })
        .await?;
        finished += fetched.size;
        moved += fetched.transferred;
        progress.files_done += 1;
        progress.bytes_done = finished + ahead;
        report(progress);
        tracing::info!(
            file = %f.local,
            repo = %f.hub.repo,
            commit = fetched.commit.as_deref().unwrap_or("?"),
            bytes = fetched.size,
            transferred = fetched.transferred,
            "model file ready"
        );
        out.push(Fetched {
            local: f.local.clone(),
            fetched,
        });
    }
    progress.current_file = None;
    progress.bytes_total = finished;
    progress.eta_s = Some(0.0);
    Ok(out)
}

/// `message` with the models folder's path written as `<models-dir>`: where the server
/// keeps its files is not for every viewer of a download's progress.
fn without_models_dir(message: &str, models_dir: &Path) -> String {
    let dir = models_dir.display().to_string();
    if dir.is_empty() {
        message.to_owned()
    } else {
        message.replace(&dir, "<models-dir>")
    }
}

/// Why a download request was refused.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("a download is already running ({0}); wait for it or cancel it")]
    Busy(String),
    #[error("no download is running")]
    NotRunning,
}

/// The server's download: one at a time, on a task of its own, the progress kept for
/// `GET /api/v1/models/status`.
pub struct Downloads {
    hub: Hub,
    models_dir: PathBuf,
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    progress: Option<DownloadProgress>,
    /// Set while one runs.
    cancel: Option<Arc<AtomicBool>>,
}

impl Downloads {
    pub fn new(hub: Hub, models_dir: PathBuf) -> Self {
        Self {
            hub,
            models_dir,
            slot: Mutex::default(),
        }
    }

    pub fn models_dir(&self) -> &Path {
        &self.models_dir
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slot> {
        // Every update is a whole-value assignment: a poisoned lock holds a usable value.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The running download, or the last one.
    pub fn progress(&self) -> Option<DownloadProgress> {
        self.lock().progress.clone()
    }

    /// Starts downloading `files` for `label` (a pipeline id) on a task of its own.
    pub fn start(self: &Arc<Self>, label: &str, files: Vec<Planned>) -> Result<(), DownloadError> {
        let cancel = Arc::new(AtomicBool::new(false));
        {
            let mut slot = self.lock();
            if slot.cancel.is_some() {
                let running = slot.progress.as_ref().map(|p| p.pipeline_id.clone());
                return Err(DownloadError::Busy(running.unwrap_or_default()));
            }
            slot.cancel = Some(cancel.clone());
            slot.progress = Some(DownloadProgress {
                pipeline_id: label.to_owned(),
                files_total: files.len(),
                bytes_total: files.iter().map(|f| f.approx_bytes).sum(),
                ..Default::default()
            });
        }
        tracing::info!(pipeline = label, files = files.len(), "download started");
        let this = Arc::clone(self);
        let label = label.to_owned();
        let work = {
            let this = Arc::clone(self);
            let label = label.clone();
            async move {
                let mut progress = DownloadProgress {
                    pipeline_id: label,
                    ..Default::default()
                };
                let mut report = |p: &DownloadProgress| this.lock().progress = Some(p.clone());
                let result = run(
                    &this.hub,
                    &this.models_dir,
                    &files,
                    &cancel,
                    &mut progress,
                    &mut report,
                )
                .await;
                (progress, result.map(|_| ()))
            }
        };
        // Awaited from a second task so that even a panic in the first ends as `failed`.
        let task = tokio::spawn(work);
        tokio::spawn(async move {
            let (mut progress, state, error) = match task.await {
                Ok((p, Ok(()))) => (p, DownloadState::Done, None),
                Ok((p, Err(HubError::Cancelled))) => (p, DownloadState::Cancelled, None),
                Ok((p, Err(e))) => (p, DownloadState::Failed, Some(e.to_string())),
                Err(e) => (
                    this.progress().unwrap_or_default(),
                    DownloadState::Failed,
                    Some(format!("the download stopped: {e}")),
                ),
            };
            progress.state = state;
            match &error {
                Some(e) => tracing::warn!(pipeline = %label, error = %e, "download failed"),
                None => tracing::info!(pipeline = %label, ?state, "download ended"),
            }
            // The log has the whole path; whoever reads the progress sees it from the
            // models folder on.
            progress.error = error.map(|e| without_models_dir(&e, &this.models_dir));
            let mut slot = this.lock();
            slot.progress = Some(progress);
            slot.cancel = None;
        });
        Ok(())
    }

    /// Asks the running download to stop (at its next chunk); its bytes stay for a resume.
    pub fn cancel(&self) -> Result<(), DownloadError> {
        match &self.lock().cancel {
            Some(flag) => {
                flag.store(true, Ordering::Relaxed);
                Ok(())
            }
            None => Err(DownloadError::NotRunning),
        }
    }
}
