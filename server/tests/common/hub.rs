//! A Hugging Face Hub on loopback for the download tests, serving files the test puts in it
//! in the hub's URL layout: `HEAD`/`GET /{org}/{name}/resolve/{revision}/{path}` answer a
//! redirect (as for LFS files) carrying `X-Repo-Commit`, `X-Linked-Etag` (the sha256),
//! `X-Linked-Size` and `ETag`; `/lfs/...` sends the bytes and honours `Range: bytes=N-`. A
//! plain (non-LFS) file is answered directly, its `ETag` a git object id as the hub's.

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::Response,
    routing::{any, get},
};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

pub const COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// What the hub serves and what it was asked.
#[derive(Clone, Default)]
pub struct LocalHub {
    pub url: String,
    /// `org/name/path` → bytes.
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    /// Files stored in git, not LFS.
    plain: Arc<Mutex<HashSet<String>>>,
    /// Repositories that answer 401.
    gated: Arc<Mutex<HashSet<String>>>,
    /// Files whose published sha256 is wrong.
    corrupt: Arc<Mutex<HashSet<String>>>,
    /// Files whose published size is this instead.
    claimed_size: Arc<Mutex<HashMap<String, u64>>>,
    /// Pause between 16 KiB chunks of a body (slow downloads, to cancel one).
    chunk_delay_ms: Arc<AtomicU64>,
    /// Requests to the resolve route, `GET`s of LFS bytes, and LFS body bytes sent.
    pub resolves: Arc<AtomicU64>,
    pub lfs_gets: Arc<AtomicU64>,
    pub bytes_sent: Arc<AtomicU64>,
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

impl LocalHub {
    /// Starts it on a free port of the current runtime.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hub = LocalHub {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ..Default::default()
        };
        let app = Router::new()
            .route("/{org}/{name}/resolve/{revision}/{*path}", any(resolve))
            .route("/lfs/{*key}", get(lfs))
            .with_state(hub.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        hub
    }

    pub fn put(&self, repo: &str, path: &str, bytes: Vec<u8>) {
        self.files
            .lock()
            .unwrap()
            .insert(format!("{repo}/{path}"), bytes);
    }

    /// A file kept in git (as `config.json` is): no LFS facts, no redirect.
    pub fn put_plain(&self, repo: &str, path: &str, bytes: Vec<u8>) {
        self.plain.lock().unwrap().insert(format!("{repo}/{path}"));
        self.put(repo, path, bytes);
    }

    pub fn gate(&self, repo: &str) {
        self.gated.lock().unwrap().insert(repo.into());
    }

    pub fn corrupt(&self, repo: &str, path: &str) {
        self.corrupt
            .lock()
            .unwrap()
            .insert(format!("{repo}/{path}"));
    }

    pub fn claim_size(&self, repo: &str, path: &str, size: u64) {
        self.claimed_size
            .lock()
            .unwrap()
            .insert(format!("{repo}/{path}"), size);
    }

    pub fn slow(&self, delay: Duration) {
        self.chunk_delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }
}

async fn resolve(
    State(h): State<LocalHub>,
    method: Method,
    Path((org, name, _revision, path)): Path<(String, String, String, String)>,
) -> Response {
    h.resolves.fetch_add(1, Ordering::Relaxed);
    let repo = format!("{org}/{name}");
    let status = |s: StatusCode| Response::builder().status(s).body(Body::empty()).unwrap();
    if h.gated.lock().unwrap().contains(&repo) {
        return status(StatusCode::UNAUTHORIZED);
    }
    let key = format!("{repo}/{path}");
    let Some(bytes) = h.files.lock().unwrap().get(&key).cloned() else {
        return status(StatusCode::NOT_FOUND);
    };
    let digest = if h.corrupt.lock().unwrap().contains(&key) {
        sha(b"not these bytes")
    } else {
        sha(&bytes)
    };
    let size = h
        .claimed_size
        .lock()
        .unwrap()
        .get(&key)
        .copied()
        .unwrap_or(bytes.len() as u64);
    if h.plain.lock().unwrap().contains(&key) {
        return Response::builder()
            .header("x-repo-commit", COMMIT)
            .header(header::ETAG, "\"4b825dc642cb6eb9a060e54bf8d69288fbee4904\"")
            .header(header::CONTENT_LENGTH, size)
            .body(if method == Method::HEAD {
                Body::empty()
            } else {
                Body::from(bytes)
            })
            .unwrap();
    }
    // HEAD and GET answer alike: the redirect carries the facts.
    Response::builder()
        .status(StatusCode::FOUND)
        .header("x-repo-commit", COMMIT)
        .header("x-linked-etag", format!("\"{digest}\""))
        .header("x-linked-size", size)
        .header(header::ETAG, format!("\"{digest}\""))
        .header(header::LOCATION, format!("/lfs/{key}"))
        .body(Body::empty())
        .unwrap()
}

async fn lfs(State(h): State<LocalHub>, Path(key): Path<String>, headers: HeaderMap) -> Response {
    let Some(bytes) = h.files.lock().unwrap().get(&key).cloned() else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap();
    };
    let start = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.trim_end_matches('-').parse::<usize>().ok())
        .unwrap_or(0)
        .min(bytes.len());
    h.lfs_gets.fetch_add(1, Ordering::Relaxed);
    let delay = Duration::from_millis(h.chunk_delay_ms.load(Ordering::Relaxed));
    let sent = h.bytes_sent.clone();
    let chunks: Vec<Vec<u8>> = bytes[start..]
        .chunks(16 * 1024)
        .map(<[u8]>::to_vec)
        .collect();
    let body = futures_util::stream::iter(chunks).then(move |c| {
        let sent = sent.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            sent.fetch_add(c.len() as u64, Ordering::Relaxed);
            Ok::<_, std::io::Error>(c)
        }
    });
    Response::builder()
        .status(if start > 0 {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_LENGTH, bytes.len() - start)
        .body(Body::from_stream(body))
        .unwrap()
}
