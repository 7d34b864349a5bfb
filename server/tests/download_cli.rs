//! `hanzo-live download` through the binary against a local hub (HF_ENDPOINT): the list, a
//! pipeline downloaded with its summary, nothing left the second time, files taken from the
//! Hugging Face cache without a request, and the exit codes of a bad name and a refusal.

mod common;

use common::hub::{COMMIT, LocalHub};
use engine::pipeline::wan::{
    WanPipeline,
    files::{TextEncoderFile, VaeChoice, download_plan},
};
use std::{path::Path, sync::atomic::Ordering};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn hanzo(hub: &LocalHub, home: &Path, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hanzo-live"))
        .args(args)
        .env("HF_ENDPOINT", &hub.url)
        .env("HF_HOME", home.join("hf"))
        .env("HOME", home)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_CACHE")
        .env_remove("HANZO_LIVE_MODELS_DIR")
        .env_remove("HANZO_LIVE_DATA_DIR")
        .current_dir(home)
        .output()
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_download_command_fetches_lists_and_says_why_it_cannot() {
    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("models");
    let models_arg = models.to_str().unwrap();
    let hub = LocalHub::start().await;
    let sf = WanPipeline::SelfForcing;
    let empty = tempfile::tempdir().unwrap();
    for (i, a) in download_plan(empty.path(), sf, VaeChoice::wan(sf), TextEncoderFile::Fp8)
        .iter()
        .enumerate()
    {
        hub.put(a.repo, a.file, vec![i as u8; 30_000 + i]);
    }

    // What each pipeline needs; nothing fetched.
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "--list", "--models-dir", models_arg],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    for part in [
        "self-forcing:",
        "longlive:",
        "streamdiffusionv2:",
        "missing",
        "Kijai/WanVideo_comfy umt5-xxl-enc-fp8_e4m3fn.safetensors",
        "to download: 8 files, about 25.72 GB",
    ] {
        assert!(r.stdout.contains(part), "{part:?} not in:\n{}", r.stdout);
    }
    assert_eq!(hub.resolves.load(Ordering::Relaxed), 0);

    // Bad names: exit code 2, with what would do.
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "nope", "--models-dir", models_arg],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("unknown pipeline 'nope'"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("streamdiffusionv2, self-forcing, longlive"),
        "{}",
        r.stderr
    );
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "longlive", "--text-encoder", "fp4"],
    )
    .await;
    assert_eq!(r.code, 2, "{}", r.stderr);

    // A whole pipeline, with the summary.
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "self-forcing", "--models-dir", models_arg],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("downloaded 5 files for self-forcing"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("commit {COMMIT}")),
        "{}",
        r.stdout
    );
    assert_eq!(
        std::fs::read(models.join("Self-Forcing/checkpoints/self_forcing_dmd.pt")).unwrap(),
        vec![4u8; 30_004]
    );
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "self-forcing", "--models-dir", models_arg],
    )
    .await;
    assert_eq!(r.code, 0);
    assert!(r.stdout.starts_with("nothing to download"), "{}", r.stdout);

    // LongLive's own files are in the Hugging Face cache under HF_HOME (refs/main → a
    // snapshot): linked
    // into place, no request made (this hub does not even have them).
    let repo = home
        .path()
        .join("hf/hub/models--Efficient-Large-Model--LongLive-1.3B");
    let snapshot = repo.join("snapshots").join(COMMIT).join("models");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::write(snapshot.join("longlive_base.pt"), b"base").unwrap();
    std::fs::write(snapshot.join("lora.pt"), b"lora").unwrap();
    let asked = hub.resolves.load(Ordering::Relaxed);
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "longlive", "--models-dir", models_arg],
    )
    .await;
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("downloaded 2 files for longlive"),
        "{}",
        r.stdout
    );
    assert_eq!(hub.resolves.load(Ordering::Relaxed), asked);
    assert_eq!(
        std::fs::read(models.join("LongLive-1.3B/models/lora.pt")).unwrap(),
        b"lora"
    );

    // A gated repository: exit code 1 and the token message.
    hub.gate("jerryfeng/StreamDiffusionV2");
    let r = hanzo(
        &hub,
        home.path(),
        &["download", "all", "--models-dir", models_arg],
    )
    .await;
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("jerryfeng/StreamDiffusionV2 needs a Hugging Face token: set HF_TOKEN"),
        "{}",
        r.stderr
    );
}
