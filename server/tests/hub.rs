//! The hub downloader against a local server in the Hugging Face URL layout (started here):
//! a full download through an LFS redirect, a cut download resumed with fewer bytes, a file
//! already present, a checksum mismatch, 401 and 404.

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, header},
    response::Response,
    routing::{any, get},
};
use server::hub::{Hub, HubError, HubFile, fetch};
use sha2::{Digest, Sha256};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

#[derive(Default)]
struct Served {
    /// Body bytes sent for LFS files.
    bytes: u64,
    gets: u32,
    /// Requests to the resolve route (HEAD or GET).
    resolves: u32,
}

#[derive(Clone)]
struct TestHub {
    big: Arc<Vec<u8>>,
    served: Arc<Mutex<Served>>,
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

async fn resolve(
    State(h): State<TestHub>,
    method: Method,
    Path((org, repo, revision, file)): Path<(String, String, String, String)>,
) -> Response {
    let _ = revision;
    h.served.lock().unwrap().resolves += 1;
    let reply = |status: StatusCode| {
        Response::builder()
            .status(status)
            .body(Body::empty())
            .unwrap()
    };
    if org == "gated" {
        return reply(StatusCode::UNAUTHORIZED);
    }
    match (repo.as_str(), file.as_str()) {
        ("models", "config.json") => {
            let body = br#"{"dim": 8}"#.to_vec();
            Response::builder()
                .header("x-repo-commit", COMMIT)
                .header(header::ETAG, "\"4b825dc642cb6eb9a060e54bf8d69288fbee4904\"")
                .header(header::CONTENT_LENGTH, body.len())
                .body(if method == Method::HEAD {
                    Body::empty()
                } else {
                    Body::from(body)
                })
                .unwrap()
        }
        ("models", "huge.bin") => Response::builder()
            .status(StatusCode::FOUND)
            .header("x-repo-commit", COMMIT)
            .header("x-linked-etag", format!("\"{}\"", sha(b"")))
            .header("x-linked-size", 1u64 << 60)
            .header(header::LOCATION, "/lfs/big.bin")
            .body(Body::empty())
            .unwrap(),
        ("models", "big.bin") | ("models", "corrupt.bin") => {
            // LFS: the facts on the redirect itself, the bytes elsewhere.
            let claimed = if file == "big.bin" {
                sha(&h.big)
            } else {
                sha(b"something else")
            };
            Response::builder()
                .status(StatusCode::FOUND)
                .header("x-repo-commit", COMMIT)
                .header("x-linked-etag", format!("\"{claimed}\""))
                .header("x-linked-size", h.big.len())
                .header(header::LOCATION, "/lfs/big.bin")
                .body(Body::empty())
                .unwrap()
        }
        _ => reply(StatusCode::NOT_FOUND),
    }
}

async fn lfs(State(h): State<TestHub>, headers: HeaderMap) -> Response {
    let start: usize = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.trim_end_matches('-').parse().ok())
        .unwrap_or(0);
    let body = h.big[start..].to_vec();
    {
        let mut s = h.served.lock().unwrap();
        s.bytes += body.len() as u64;
        s.gets += 1;
    }
    let status = if start > 0 {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .unwrap()
}

async fn start_hub() -> (String, TestHub) {
    let big: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let h = TestHub {
        big: Arc::new(big),
        served: Arc::default(),
    };
    let app = Router::new()
        .route("/{org}/{repo}/resolve/{revision}/{*file}", any(resolve))
        .route("/lfs/big.bin", get(lfs))
        .with_state(h.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), h)
}

fn file(repo: &str, path: &str) -> HubFile {
    HubFile {
        repo: repo.into(),
        revision: COMMIT.into(),
        path: path.into(),
    }
}

#[tokio::test]
async fn downloads_verify_resume_and_say_what_went_wrong() {
    let (endpoint, h) = start_hub().await;
    let hub = Hub::new(&endpoint, None, None);
    let dir = tempfile::tempdir().unwrap();
    let no = AtomicBool::new(false);

    // A small plain file: its size checked (its ETag is a git hash, not a sha256).
    let dest = dir.path().join("Wan/config.json");
    let got = fetch(
        &hub,
        &file("org/models", "config.json"),
        &dest,
        &no,
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), br#"{"dim": 8}"#);
    assert_eq!(
        (got.size, got.sha256, got.commit.as_deref()),
        (10, None, Some(COMMIT))
    );

    // An LFS file, cut after its first bytes: the part file stays, the file does not exist.
    let dest = dir.path().join("Wan/big.bin");
    let cancel = AtomicBool::new(false);
    let e = fetch(
        &hub,
        &file("org/models", "big.bin"),
        &dest,
        &cancel,
        |have, _| {
            if have > 0 {
                cancel.store(true, Ordering::Relaxed);
            }
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(e, HubError::Cancelled), "{e}");
    assert!(!dest.exists());
    let part = dir.path().join("Wan/big.bin.part");
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < h.big.len() as u64, "{kept}");

    // Resumed: only the rest is fetched, and the whole file checks out.
    let before = h.served.lock().unwrap().bytes;
    let mut last = (0, 0);
    let got = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |a, b| {
        last = (a, b)
    })
    .await
    .unwrap();
    let fetched = h.served.lock().unwrap().bytes - before;
    assert_eq!(
        fetched,
        h.big.len() as u64 - kept,
        "only the missing bytes were served"
    );
    assert_eq!(got.transferred, fetched);
    assert_eq!(std::fs::read(&dest).unwrap(), *h.big);
    assert_eq!(got.sha256.as_deref(), Some(sha(&h.big).as_str()));
    assert_eq!(last, (h.big.len() as u64, h.big.len() as u64));
    assert!(!part.exists());

    // Present and complete: no GET at all.
    let gets = h.served.lock().unwrap().gets;
    let got = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |_, _| {})
        .await
        .unwrap();
    assert_eq!(got.transferred, 0);
    assert_eq!(h.served.lock().unwrap().gets, gets);

    // A checksum that does not match: an error, and nothing left behind.
    let bad = dir.path().join("Wan/corrupt.bin");
    let e = fetch(
        &hub,
        &file("org/models", "corrupt.bin"),
        &bad,
        &no,
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("sha256 mismatch"), "{e}");
    assert!(!bad.exists() && !dir.path().join("Wan/corrupt.bin.part").exists());

    // A file larger than the free space is refused before a byte is written.
    let huge = dir.path().join("Wan/huge.bin");
    let e = fetch(&hub, &file("org/models", "huge.bin"), &huge, &no, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("not enough disk space") && e.to_string().contains("bytes free"),
        "{e}"
    );
    assert!(!huge.exists() && !dir.path().join("Wan/huge.bin.part").exists());

    // 401 and 404 say what to do and what is missing.
    let e = fetch(&hub, &file("gated/models", "big.bin"), &bad, &no, |_, _| {})
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "gated/models needs a Hugging Face token: set HF_TOKEN"
    );
    let e = fetch(&hub, &file("org/models", "nope.pt"), &bad, &no, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("org/models has no file nope.pt"),
        "{e}"
    );
}

/// A file the hub cache already holds at that commit (as Python's huggingface_hub leaves it)
/// is linked into place without a request.
#[tokio::test]
async fn a_file_in_the_hub_cache_is_used_without_a_request() {
    let (endpoint, h) = start_hub().await;
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cache
        .path()
        .join("models--org--models/snapshots")
        .join(COMMIT);
    std::fs::create_dir_all(snapshot.join("sub")).unwrap();
    std::fs::write(snapshot.join("sub/weights.pt"), b"cached bytes").unwrap();
    let hub = Hub::new(&endpoint, None, Some(cache.path().to_owned()));
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("Wan/weights.pt");
    let got = fetch(
        &hub,
        &file("org/models", "sub/weights.pt"),
        &dest,
        &AtomicBool::new(false),
        |_, _| {},
    )
    .await
    .unwrap();
    assert_eq!((got.size, got.transferred), (12, 0));
    assert_eq!(std::fs::read(&dest).unwrap(), b"cached bytes");
    assert_eq!(
        h.served.lock().unwrap().resolves,
        0,
        "no request reached the hub"
    );

    // At a branch name the cache answers only through its refs/<branch>: without one the hub
    // is asked; with one naming the snapshot, nothing is.
    let mut branch = file("org/models", "config.json");
    branch.revision = "main".into();
    fetch(
        &hub,
        &branch,
        &dir.path().join("c.json"),
        &AtomicBool::new(false),
        |_, _| {},
    )
    .await
    .unwrap();
    let asked = h.served.lock().unwrap().resolves;
    assert!(asked > 0);
    std::fs::create_dir_all(cache.path().join("models--org--models/refs")).unwrap();
    std::fs::write(cache.path().join("models--org--models/refs/main"), COMMIT).unwrap();
    let mut on_main = file("org/models", "sub/weights.pt");
    on_main.revision = "main".into();
    let dest = dir.path().join("main/weights.pt");
    fetch(&hub, &on_main, &dest, &AtomicBool::new(false), |_, _| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"cached bytes");
    assert_eq!(h.served.lock().unwrap().resolves, asked);
}
