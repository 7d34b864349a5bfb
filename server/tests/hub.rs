//! The hub downloader against a local server in the Hugging Face URL layout (started here):
//! a full download through an LFS redirect, a cut download resumed with fewer bytes, a part
//! of another version started again, a part another process holds refused, a file already
//! present, a checksum mismatch, 401 and 404.

mod common;

use common::hub::{COMMIT, LocalHub};
use server::hub::{Hub, HubError, HubFile, fetch};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// A hub with `org/models`: a plain `config.json`, a 4 MB LFS `big.bin`, `corrupt.bin` (its
/// published sha256 wrong) and `huge.bin` (claiming 2⁶⁰ bytes); `gated/models` answers 401.
async fn start_hub() -> (LocalHub, Vec<u8>) {
    let big: Vec<u8> = (0..4_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let h = LocalHub::start().await;
    h.put_plain("org/models", "config.json", br#"{"dim": 8}"#.to_vec());
    h.put("org/models", "big.bin", big.clone());
    h.put("org/models", "corrupt.bin", big.clone());
    h.corrupt("org/models", "corrupt.bin");
    h.put("org/models", "huge.bin", Vec::new());
    h.claim_size("org/models", "huge.bin", 1 << 60);
    h.put("gated/models", "big.bin", big.clone());
    h.gate("gated/models");
    (h, big)
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
    let (h, big) = start_hub().await;
    let hub = Hub::new(&h.url, None, None);
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
    assert!(kept > 0 && kept < big.len() as u64, "{kept}");
    let version = dir.path().join("Wan/big.bin.part.version");
    assert_eq!(std::fs::read_to_string(&version).unwrap(), sha(&big));

    // Resumed: only the rest is fetched, and the whole file checks out.
    let before = h.bytes_sent.load(Ordering::Relaxed);
    let mut last = (0, 0);
    let got = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |a, b| {
        last = (a, b)
    })
    .await
    .unwrap();
    let fetched = h.bytes_sent.load(Ordering::Relaxed) - before;
    assert_eq!(
        fetched,
        big.len() as u64 - kept,
        "only the missing bytes were served"
    );
    assert_eq!(got.transferred, fetched);
    assert_eq!(std::fs::read(&dest).unwrap(), big);
    assert_eq!(got.sha256.as_deref(), Some(sha(&big).as_str()));
    assert_eq!(last, (big.len() as u64, big.len() as u64));
    assert!(!part.exists() && !version.exists());

    // Present and complete: no GET at all.
    let gets = h.lfs_gets.load(Ordering::Relaxed);
    let got = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |_, _| {})
        .await
        .unwrap();
    assert_eq!(got.transferred, 0);
    assert_eq!(h.lfs_gets.load(Ordering::Relaxed), gets);

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
    let (h, _) = start_hub().await;
    let cache = tempfile::tempdir().unwrap();
    let snapshot = cache
        .path()
        .join("models--org--models/snapshots")
        .join(COMMIT);
    std::fs::create_dir_all(snapshot.join("sub")).unwrap();
    std::fs::write(snapshot.join("sub/weights.pt"), b"cached bytes").unwrap();
    let hub = Hub::new(&h.url, None, Some(cache.path().to_owned()));
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
        h.resolves.load(Ordering::Relaxed),
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
    let asked = h.resolves.load(Ordering::Relaxed);
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
    assert_eq!(h.resolves.load(Ordering::Relaxed), asked);
}

#[tokio::test]
async fn a_part_of_another_version_starts_again_and_a_locked_part_is_refused() {
    let (h, big) = start_hub().await;
    let hub = Hub::new(&h.url, None, None);
    let dir = tempfile::tempdir().unwrap();
    let no = AtomicBool::new(false);
    let dest = dir.path().join("Wan/big.bin");
    let part = dir.path().join("Wan/big.bin.part");
    let version = dir.path().join("Wan/big.bin.part.version");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();

    // Bytes begun from an older upload of the file (another sha256): not continued.
    std::fs::write(&part, vec![7u8; 1000]).unwrap();
    std::fs::write(&version, "0".repeat(64)).unwrap();
    let got = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |_, _| {})
        .await
        .unwrap();
    assert_eq!(got.transferred, big.len() as u64, "fetched from byte 0");
    assert_eq!(std::fs::read(&dest).unwrap(), big);
    assert!(!part.exists() && !version.exists());

    // A part file another process is writing (its lock held here): refused, left as it is.
    std::fs::remove_file(&dest).unwrap();
    std::fs::write(&part, &big[..1000]).unwrap();
    let held = std::fs::OpenOptions::new().write(true).open(&part).unwrap();
    held.try_lock().unwrap();
    let e = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, HubError::Busy { .. }), "{e}");
    assert!(e.to_string().contains("another download"), "{e}");
    assert_eq!(std::fs::read(&part).unwrap(), &big[..1000]);
    assert!(!dest.exists());

    // Released: the same part (no version record, so trusted) is continued.
    drop(held);
    let got = fetch(&hub, &file("org/models", "big.bin"), &dest, &no, |_, _| {})
        .await
        .unwrap();
    assert_eq!(got.transferred, big.len() as u64 - 1000);
    assert_eq!(std::fs::read(&dest).unwrap(), big);
}
