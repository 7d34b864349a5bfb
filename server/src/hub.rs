//! Downloading one model file from a Hugging Face Hub (or a server with its URL layout):
//! resumable, verified, never half-written.
//!
//! Written on the server's reqwest rather than the `hf-hub` crate: hf-hub 1.0 restarts an
//! interrupted file from byte 0, does not check the sha256 or the size, has no cancellation,
//! always routes Xet-backed files through its Xet client, and would add a second reqwest (0.13)
//! with the Xet stack beside this one.
//!
//! The protocol (`/{repo}/resolve/{revision}/{path}`):
//! - `HEAD`, redirects not followed: `X-Repo-Commit`, `X-Linked-Etag` (the sha256 of an LFS
//!   file, quoted) or `ETag`, `X-Linked-Size` or `Content-Length`, and for LFS files a redirect
//!   to where the bytes are;
//! - `GET` of the same URL (redirects followed) with `Range: bytes=N-` when `N` bytes of the file
//!   are already on disk; a `206` continues the file, a `200` starts it again.
//!
//! Bytes go to `<dest>.part`, locked while written (one writer per file, across processes), with
//! `<dest>.part.version` naming the version they belong to (the sha256, else the commit): a part
//! of another version starts again instead of being continued. The file is renamed to `dest` only
//! after its size and, when the hub gives one, its sha256 match. A mismatch deletes the part
//! file. The free space is checked before the first byte.
//!
//! A file already in the standard hub cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`: `models--{org}--{name}/snapshots/{commit}/{path}`, a branch
//! resolved through `refs/{branch}`, as Python's `huggingface_hub` writes it) is linked into
//! place without a request.

use sha2::{Digest, Sha256};
use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// How long a request may go without an answer or a byte before it fails.
const STALL: Duration = Duration::from_secs(60);

/// Where the hub is and who is asking.
#[derive(Clone)]
pub struct Hub {
    /// `https://huggingface.co` unless `HF_ENDPOINT` says otherwise.
    pub endpoint: String,
    /// `HF_TOKEN`, sent as a bearer token.
    pub token: Option<String>,
    /// The hub cache to take files from (see the module docs); `None`: never.
    pub cache: Option<PathBuf>,
    /// Made once: `head` does not follow redirects (the facts are on the redirect), `get` does.
    head: reqwest::Client,
    get: reqwest::Client,
}

/// The token stays out of logs and error messages.
impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<HF_TOKEN>"))
            .field("cache", &self.cache)
            .finish()
    }
}

impl Hub {
    pub fn new(endpoint: &str, token: Option<String>, cache: Option<PathBuf>) -> Self {
        let client = |redirects| {
            reqwest::Client::builder()
                .redirect(redirects)
                .connect_timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default()
        };
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
            cache,
            head: client(reqwest::redirect::Policy::none()),
            // reqwest drops the Authorization header on a redirect to another host (the CDN).
            get: client(reqwest::redirect::Policy::default()),
        }
    }

    /// From `HF_ENDPOINT`, `HF_TOKEN` and the cache variables (`HF_HUB_CACHE`, `HF_HOME`,
    /// `XDG_CACHE_HOME`, `HOME`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let cache = var("HF_HUB_CACHE")
            .map(PathBuf::from)
            .or_else(|| var("HF_HOME").map(|h| Path::new(&h).join("hub")))
            .or_else(|| {
                let base = var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| var("HOME").map(|h| Path::new(&h).join(".cache")))?;
                Some(base.join("huggingface").join("hub"))
            });
        Self::new(
            &var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()),
            var("HF_TOKEN"),
            cache,
        )
    }

    /// The cache's copy of `file` and its commit, if it has one: at the file's commit, or for a
    /// branch (`main`) at the commit the cache's `refs/<branch>` names, as Python's
    /// `huggingface_hub` leaves it.
    pub fn cached(&self, file: &HubFile) -> Option<(PathBuf, String)> {
        let repo = self
            .cache
            .as_ref()?
            .join(format!("models--{}", file.repo.replace('/', "--")));
        let is_commit = |c: &str| c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit());
        let commit = if is_commit(&file.revision) {
            file.revision.clone()
        } else {
            let named = std::fs::read_to_string(repo.join("refs").join(&file.revision)).ok()?;
            Some(named.trim().to_owned()).filter(|c| is_commit(c))?
        };
        let path = repo.join("snapshots").join(&commit).join(&file.path);
        path.is_file().then_some((path, commit))
    }

    fn url(&self, file: &HubFile) -> String {
        format!(
            "{}/{}/resolve/{}/{}",
            self.endpoint, file.repo, file.revision, file.path
        )
    }

    fn authorised(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }
}

/// One file of a repository at a revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubFile {
    pub repo: String,
    pub revision: String,
    pub path: String,
}

/// What a finished download was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub size: u64,
    /// Bytes transferred by this call (less than `size` after a resume, 0 when present).
    pub transferred: u64,
    /// The sha256 the hub published, when it is an LFS file.
    pub sha256: Option<String>,
    /// `X-Repo-Commit`.
    pub commit: Option<String>,
}

/// Why a download failed; each names what it was about.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("{repo} needs a Hugging Face token: set HF_TOKEN")]
    NeedsToken { repo: String },
    #[error("{repo} has no file {path} at {revision}")]
    NotFound {
        repo: String,
        path: String,
        revision: String,
    },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{path}: {message}")]
    Disk { path: PathBuf, message: String },
    #[error("{path}: {what} mismatch (expected {expected}, got {found}); the file was deleted")]
    Mismatch {
        path: PathBuf,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error("not enough disk space for {path}: needs {needed} bytes more, {free} bytes free")]
    DiskFull {
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("{path} is being written by another download (the server's or `hanzo-live download`)")]
    Busy { path: PathBuf },
    #[error("cancelled")]
    Cancelled,
}

/// Bytes free (to this user) on the file system holding `dir`; `None` when it cannot be told.
pub fn free_space(dir: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        // statvfs on the directory itself: right on every mount, tmpfs and network ones too.
        let st = rustix::fs::statvfs(dir).ok()?;
        Some(st.f_bavail.saturating_mul(st.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let dir = std::fs::canonicalize(dir).ok()?;
        let disks = sysinfo::Disks::new_with_refreshed_list();
        disks
            .list()
            .iter()
            .filter(|d| dir.starts_with(d.mount_point()))
            .max_by_key(|d| d.mount_point().as_os_str().len())
            .map(|d| d.available_space())
    }
}

/// Awaits `fut` unless `cancel` is set first (looked at four times a second) or nothing
/// arrives for [`STALL`]: a stalled connection neither hangs a download nor its Cancel.
async fn watched<F: std::future::Future>(
    fut: F,
    cancel: &AtomicBool,
    url: &str,
) -> Result<F::Output, HubError> {
    tokio::pin!(fut);
    let started = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_millis(250), &mut fut).await {
            Ok(v) => return Ok(v),
            Err(_) if cancel.load(Ordering::Relaxed) => return Err(HubError::Cancelled),
            Err(_) if started.elapsed() >= STALL => {
                return Err(HubError::Network {
                    url: url.to_owned(),
                    message: format!("no answer for {} s", STALL.as_secs()),
                });
            }
            Err(_) => {}
        }
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_owned()
        })
}

/// A file-system error about `path`.
fn disk(path: &Path, e: impl std::fmt::Display) -> HubError {
    HubError::Disk {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Where the bytes of `dest` go until they are verified (`<dest>.part`).
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Beside the part file: what it was begun from (the sha256, else the commit).
fn version_path(part: &Path) -> PathBuf {
    let mut name = part.file_name().unwrap_or_default().to_os_string();
    name.push(".version");
    part.with_file_name(name)
}

/// Opens the part file for writing and locks it, so that a second writer (the server and
/// `hanzo-live download` at once) is refused instead of interleaving bytes. Answers the open
/// file and how many of its bytes continue: none when they were begun from another version of
/// the file (`id`, recorded in `version`; a part without a record is trusted) or are more than
/// `size`.
///
/// Blocking: call from `spawn_blocking`.
fn open_part(
    part: &Path,
    size: u64,
    version: &Path,
    id: Option<&str>,
) -> Result<(std::fs::File, u64), HubError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(part)
        .map_err(|e| disk(part, e))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(HubError::Busy {
                path: part.to_owned(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(disk(part, e)),
    }
    let mut have = f.metadata().map_err(|e| disk(part, e))?.len();
    let recorded = std::fs::read_to_string(version).ok();
    let other = id.is_some_and(|id| recorded.as_deref().is_some_and(|r| r.trim() != id));
    let restart = have > size || other;
    if restart {
        // Truncated now, so that a failure before the first new byte cannot leave old bytes
        // under the new record.
        f.set_len(0).map_err(|e| disk(part, e))?;
        have = 0;
    }
    if let Some(id) = id
        && (restart || recorded.is_none())
    {
        std::fs::write(version, id).map_err(|e| disk(version, e))?;
    }
    Ok((f, have))
}

/// What the hub says about a file before its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub size: u64,
    /// The sha256 (LFS files only; a plain file's ETag is a git hash).
    pub sha256: Option<String>,
    /// `X-Repo-Commit`: the commit the revision resolved to.
    pub commit: Option<String>,
}

/// Asks the hub about `file` (a `HEAD`). The facts are on the hub's own answer, so a redirect
/// that carries them (an LFS file's, to its storage) is not followed; one that does not (a
/// renamed repository) is, up to three times.
pub async fn head(hub: &Hub, file: &HubFile, cancel: &AtomicBool) -> Result<Remote, HubError> {
    let mut url = hub.url(file);
    for _ in 0..4 {
        let net = |e: reqwest::Error| HubError::Network {
            url: url.clone(),
            message: e.to_string(),
        };
        let resp = watched(hub.authorised(hub.head.head(&url)).send(), cancel, &url)
            .await?
            .map_err(net)?;
        status_error(resp.status(), file, &url)?;
        let linked_size = header(&resp, "x-linked-size");
        if resp.status().is_redirection() && linked_size.is_none() {
            // Relative locations resolve against the URL asked.
            let next = header(&resp, "location")
                .and_then(|l| resp.url().join(&l).ok())
                .ok_or_else(|| HubError::Network {
                    url: url.clone(),
                    message: format!("HTTP {} without a Location", resp.status()),
                })?;
            url = next.to_string();
            continue;
        }
        // A plain file's size is the body's; a redirect's own body says nothing.
        let size = linked_size
            .or_else(|| {
                resp.status()
                    .is_success()
                    .then(|| header(&resp, "content-length"))
                    .flatten()
            })
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| HubError::Network {
                url: url.clone(),
                message: "the hub gave no size (X-Linked-Size or Content-Length)".into(),
            })?;
        let linked = header(&resp, "x-linked-etag");
        return Ok(Remote {
            size,
            sha256: linked.filter(|e| e.len() == 64 && e.bytes().all(|b| b.is_ascii_hexdigit())),
            commit: header(&resp, "x-repo-commit"),
        });
    }
    Err(HubError::Network {
        url,
        message: "too many redirects".into(),
    })
}

fn status_error(status: reqwest::StatusCode, file: &HubFile, url: &str) -> Result<(), HubError> {
    match status.as_u16() {
        401 | 403 => Err(HubError::NeedsToken {
            repo: file.repo.clone(),
        }),
        404 => Err(HubError::NotFound {
            repo: file.repo.clone(),
            path: file.path.clone(),
            revision: file.revision.clone(),
        }),
        _ if status.is_success() || status.is_redirection() => Ok(()),
        s => Err(HubError::Network {
            url: url.to_owned(),
            message: format!("HTTP {s}"),
        }),
    }
}

/// Downloads `file` to `dest` unless a verified copy is there: continues a `.part` left by an
/// earlier try, reports `(bytes on disk, total)` through `progress`, stops when `cancel` is set
/// (the part file stays for a later resume).
pub async fn fetch(
    hub: &Hub,
    file: &HubFile,
    dest: &Path,
    cancel: &AtomicBool,
    mut progress: impl FnMut(u64, u64),
) -> Result<Fetched, HubError> {
    if let Some((cached, commit)) = hub.cached(file) {
        let target = tokio::fs::canonicalize(&cached)
            .await
            .map_err(|e| disk(&cached, e))?;
        let size = tokio::fs::metadata(&target)
            .await
            .map_err(|e| disk(&target, e))?
            .len();
        if !dest.exists() {
            if let Some(dir) = dest.parent() {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| disk(dir, e))?;
            }
            // A link left pointing at a blob the cache has since dropped goes first.
            if tokio::fs::symlink_metadata(dest).await.is_ok() {
                tokio::fs::remove_file(dest)
                    .await
                    .map_err(|e| disk(dest, e))?;
            }
            let (from, to) = (target.clone(), dest.to_owned());
            tokio::task::spawn_blocking(move || link(&from, &to))
                .await
                .map_err(|e| disk(dest, e))?
                .map_err(|e| disk(dest, e))?;
        }
        progress(size, size);
        return Ok(Fetched {
            size,
            transferred: 0,
            sha256: None,
            commit: Some(commit),
        });
    }
    let Remote {
        size,
        sha256,
        commit,
    } = head(hub, file, cancel).await?;
    if let Ok(meta) = tokio::fs::metadata(dest).await
        && meta.len() == size
    {
        progress(size, size);
        return Ok(Fetched {
            size,
            transferred: 0,
            sha256,
            commit,
        });
    }
    if let Some(dir) = dest.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| disk(dir, e))?;
    }
    let part = part_path(dest);
    let version = version_path(&part);
    // What the part file was begun from: its bytes continue only the same version of the file.
    let id = sha256.clone().or_else(|| commit.clone());
    let on_disk = tokio::fs::metadata(&part)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    // Checked before the first byte: a full disk must not be found half-way through.
    let needed = size - on_disk.min(size);
    if let Some(free) = dest.parent().and_then(free_space)
        && free < needed
    {
        return Err(HubError::DiskFull {
            path: dest.to_owned(),
            needed,
            free,
        });
    }
    let (locked, mut have) = {
        let (part, version, id) = (part.clone(), version.clone(), id.clone());
        tokio::task::spawn_blocking(move || open_part(&part, size, &version, id.as_deref()))
            .await
            .map_err(|e| disk(dest, e))??
    };
    let url = hub.url(file);
    let net = |e: reqwest::Error| HubError::Network {
        url: url.clone(),
        message: e.to_string(),
    };
    let mut transferred = 0;
    // The lock lasts until the verified file has its name.
    let mut out = tokio::fs::File::from_std(locked);
    if have < size {
        let mut req = hub.authorised(hub.get.get(&url));
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let answer = match watched(req.send(), cancel, &url).await {
            Ok(sent) => sent
                .map_err(net)
                .and_then(|r| status_error(r.status(), file, &url).map(|()| r)),
            Err(e) => Err(e),
        };
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(e) => {
                // An empty part file and its record are not left behind.
                if have == 0 {
                    let _ = tokio::fs::remove_file(&part).await;
                    let _ = tokio::fs::remove_file(&version).await;
                }
                return Err(e);
            }
        };
        // A server that ignores the range sends the whole file: start again.
        let append = have > 0 && resp.status() == reqwest::StatusCode::PARTIAL_CONTENT;
        if !append {
            have = 0;
        }
        out.set_len(have).await.map_err(|e| disk(&part, e))?;
        out.seek(std::io::SeekFrom::Start(have))
            .await
            .map_err(|e| disk(&part, e))?;
        progress(have, size);
        loop {
            let next = match watched(resp.chunk(), cancel, &url).await {
                Ok(chunk) => chunk.map_err(net),
                Err(e) => Err(e),
            };
            let next = match next {
                Ok(Some(_)) if cancel.load(Ordering::Relaxed) => Err(HubError::Cancelled),
                other => other,
            };
            let chunk = match next {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    // What arrived stays in the part file for a later resume.
                    out.flush().await.map_err(|e| disk(&part, e))?;
                    return Err(e);
                }
            };
            out.write_all(&chunk).await.map_err(|e| disk(&part, e))?;
            have += chunk.len() as u64;
            transferred += chunk.len() as u64;
            progress(have, size);
        }
        out.flush().await.map_err(|e| disk(&part, e))?;
    }
    let verified = verify(&part, size, sha256.as_deref()).await;
    if verified.is_err() {
        let _ = tokio::fs::remove_file(&version).await;
    }
    verified?;
    tokio::fs::rename(&part, dest)
        .await
        .map_err(|e| disk(dest, e))?;
    drop(out);
    let _ = tokio::fs::remove_file(&version).await;
    Ok(Fetched {
        size,
        transferred,
        sha256,
        commit,
    })
}

/// A symbolic link at `dest` to the cached file (a copy where links are not available).
fn link(target: &Path, dest: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(target, dest)
    }
    #[cfg(not(unix))]
    {
        std::fs::copy(target, dest).map(|_| ())
    }
}

/// Checks the part file's size and sha256; deletes it when either is wrong.
async fn verify(part: &Path, size: u64, sha256: Option<&str>) -> Result<(), HubError> {
    let path = part.to_owned();
    let found = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, String)> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = f.read(&mut buf)?;
            if k == 0 {
                break;
            }
            hasher.update(&buf[..k]);
            n += k as u64;
        }
        Ok((n, crate::auth::hex(&hasher.finalize())))
    })
    .await
    .map_err(|e| disk(part, e))?
    .map_err(|e| disk(part, e))?;
    let mismatch = if found.0 != size {
        Some(("size", size.to_string(), found.0.to_string()))
    } else {
        sha256
            .filter(|want| !want.eq_ignore_ascii_case(&found.1))
            .map(|want| ("sha256", want.to_owned(), found.1.clone()))
    };
    if let Some((what, expected, found)) = mismatch {
        let _ = tokio::fs::remove_file(part).await;
        return Err(HubError::Mismatch {
            path: part.to_owned(),
            what,
            expected,
            found,
        });
    }
    Ok(())
}
