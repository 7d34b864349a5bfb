//! `/api/v1/models/status`, `/api/v1/models/download` and `/download/cancel` against a local
//! hub started here: a whole pipeline downloaded, a second download refused (409), a
//! cancelled one resumed with fewer bytes, and the hub's refusals and a bad checksum reported.

mod common;

use axum::http::{Method, StatusCode};
use common::{
    api::{Api, Reply},
    hub::LocalHub,
};
use engine::pipeline::wan::{
    WanPipeline,
    files::{TextEncoderFile, VaeChoice, download_plan},
};
use serde_json::{Value, json};
use server::{db::MIGRATOR, downloads::Downloads, hub::Hub, state::AppState};
use sqlx::SqlitePool;
use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

/// Bytes that differ from file to file.
fn content(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// The hub holds every file Self-Forcing downloads, `len` bytes each.
fn serve_self_forcing(hub: &LocalHub, len: usize) -> Vec<(String, Vec<u8>)> {
    let empty = tempfile::tempdir().unwrap();
    let sf = WanPipeline::SelfForcing;
    download_plan(empty.path(), sf, VaeChoice::wan(sf), TextEncoderFile::Fp8)
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let bytes = content(i as u8, len);
            hub.put(a.repo, a.file, bytes.clone());
            (a.local.to_owned(), bytes)
        })
        .collect()
}

async fn api_with_hub(pool: SqlitePool, dir: &Path, hub: &LocalHub) -> (Api, AppState) {
    let mut state = common::state(pool, dir);
    state.downloads = Arc::new(Downloads::new(
        Hub::new(&hub.url, None, None),
        state.settings.models_dir.clone(),
    ));
    (Api::new(server::app(state.clone())), state)
}

async fn status(api: &Api, query: &str) -> Value {
    let r = api
        .get(&format!("/api/v1/models/status?{query}"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// Polls the status until the download is no longer running.
async fn finished(api: &Api) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status(api, "pipeline_id=self-forcing").await;
        if s["progress"]["state"] != "running" {
            return s;
        }
        assert!(Instant::now() < deadline, "still running: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn start(api: &Api, body: Value) -> Reply {
    api.post("/api/v1/models/download", None, body).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_pipeline_downloads_whole_and_is_then_ready(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::start().await;
    let files = serve_self_forcing(&hub, 40_000);
    let (api, state) = api_with_hub(pool, dir.path(), &hub).await;
    let models = state.settings.models_dir.clone();

    let s = status(&api, "pipeline_id=self-forcing").await;
    assert_eq!(s["downloaded"], false);
    assert_eq!(s["missing"].as_array().unwrap().len(), 5, "{s}");
    assert_eq!(s["progress"], Value::Null);
    let te = &s["missing"][3];
    assert_eq!(te["repo"], "Kijai/WanVideo_comfy");
    assert_eq!(
        te["local"],
        "WanVideo_comfy/umt5-xxl-enc-fp8_e4m3fn.safetensors"
    );
    assert_eq!(te["revision"], "main");
    assert!(te["size"].as_u64().unwrap() > 1_000_000_000);
    // The bf16 encoder instead, and the TAE's file once the decoder is the TAE.
    let s = status(
        &api,
        "pipeline_id=self-forcing&text_encoder=bf16&vae_type=tae",
    )
    .await;
    let locals: Vec<&str> = s["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["local"].as_str().unwrap())
        .collect();
    assert!(locals.contains(&"Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth"));
    assert!(locals.contains(&"Autoencoders/taew2_1.pth"));
    assert!(!locals.contains(&"Wan2.1-T2V-1.3B/Wan2.1_VAE.pth"));

    let r = start(&api, json!({ "pipeline_id": "self-forcing" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.body["files"].as_array().unwrap().len(), 5);
    let s = finished(&api).await;
    let p = &s["progress"];
    assert_eq!(p["state"], "done", "{s}");
    assert_eq!(p["pipeline_id"], "self-forcing");
    assert_eq!(p["files_done"], 5);
    assert_eq!(p["bytes_total"], 5 * 40_000);
    assert_eq!(p["bytes_done"], 5 * 40_000);
    assert_eq!(s["downloaded"], true);
    assert_eq!(s["missing"], json!([]));
    for (local, bytes) in &files {
        assert_eq!(
            &std::fs::read(models.join(local)).unwrap(),
            bytes,
            "{local}"
        );
    }
    // The pipeline list agrees: nothing missing with the default settings.
    let sf = api.pipeline("self-forcing").await;
    assert_eq!(sf["files"]["ready"], true, "{sf}");

    // Nothing left to fetch: 200, no files, no new download.
    let sent = hub.bytes_sent.load(Ordering::Relaxed);
    let r = start(&api, json!({ "pipeline_id": "self-forcing" })).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["files"], json!([]));
    assert_eq!(hub.bytes_sent.load(Ordering::Relaxed), sent);
    // A model-free pipeline needs nothing.
    let s = status(&api, "pipeline_id=passthrough").await;
    assert_eq!(
        (s["downloaded"].clone(), s["missing"].clone()),
        (json!(true), json!([]))
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_requests_say_what_is_wrong(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::start().await;
    let (api, _) = api_with_hub(pool, dir.path(), &hub).await;
    let r = api
        .get("/api/v1/models/status?pipeline_id=nope", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.error().contains("nope"), "{}", r.error());
    let r = api
        .get(
            "/api/v1/models/status?pipeline_id=longlive&text_encoder=fp4",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("fp8 or bf16"), "{}", r.error());
    let r = api
        .get(
            "/api/v1/models/status?pipeline_id=longlive&vae_type=gan",
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", r.body);
    let r = api.get("/api/v1/models/status", None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = start(&api, json!({ "pipeline_id": "longlive", "extra": 1 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api
        .raw(Method::POST, "/api/v1/models/download", None, "{not json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .post("/api/v1/models/download/cancel", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error(), "no download is running");
    // Without its JSON body (as a cross-site form would send it): refused.
    let r = api
        .call(Method::POST, "/api/v1/models/download/cancel", None, None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(hub.resolves.load(Ordering::Relaxed), 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn one_download_at_a_time_and_a_cancelled_one_resumes(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::start().await;
    let files = serve_self_forcing(&hub, 200_000);
    let total = files.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
    hub.slow(Duration::from_millis(15));
    let (api, state) = api_with_hub(pool.clone(), dir.path(), &hub).await;

    let r = start(&api, json!({ "pipeline_id": "self-forcing" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = start(&api, json!({ "pipeline_id": "longlive" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(r.error().contains("self-forcing"), "{}", r.error());
    // Let some bytes arrive, then stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while hub.bytes_sent.load(Ordering::Relaxed) < 250_000 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = api
        .post("/api/v1/models/download/cancel", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let s = finished(&api).await;
    assert_eq!(s["progress"]["state"], "cancelled", "{s}");
    assert_eq!(s["downloaded"], false);
    let on_disk = s["resumable_bytes"].as_u64().unwrap();
    assert!(on_disk > 0, "{s}");
    // Nothing half-written looks complete: what is missing is still missing.
    let models = state.settings.models_dir.clone();
    for f in s["missing"].as_array().unwrap() {
        assert!(!models.join(f["local"].as_str().unwrap()).exists(), "{f}");
    }
    // A restarted server (a new state on the same directory) sees the same resumable bytes.
    let (restarted, _) = api_with_hub(pool, dir.path(), &hub).await;
    let s = status(&restarted, "pipeline_id=self-forcing").await;
    assert_eq!(s["resumable_bytes"].as_u64(), Some(on_disk));
    assert_eq!(s["progress"], Value::Null);

    // Again: it continues from the part file and skips the finished files, so exactly the
    // bytes not yet on disk cross the wire.
    let complete: u64 = files
        .iter()
        .filter_map(|(local, _)| std::fs::metadata(models.join(local)).ok())
        .map(|m| m.len())
        .sum();
    hub.slow(Duration::ZERO);
    let before = hub.bytes_sent.load(Ordering::Relaxed);
    let r = start(&api, json!({ "pipeline_id": "self-forcing" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let s = finished(&api).await;
    assert_eq!(s["progress"]["state"], "done", "{s}");
    let second = hub.bytes_sent.load(Ordering::Relaxed) - before;
    assert_eq!(
        second,
        total - complete - on_disk,
        "{on_disk} bytes were resumable"
    );
    for (local, bytes) in &files {
        assert_eq!(
            &std::fs::read(models.join(local)).unwrap(),
            bytes,
            "{local}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_hubs_refusals_and_a_bad_checksum_are_reported(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::start().await;
    serve_self_forcing(&hub, 10_000);
    let (api, state) = api_with_hub(pool, dir.path(), &hub).await;
    let models = state.settings.models_dir.clone();
    let run = |body: Value| {
        let api = api.clone();
        async move {
            let r = start(&api, body).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
            let s = finished(&api).await;
            assert_eq!(s["progress"]["state"], "failed", "{s}");
            s["progress"]["error"].as_str().unwrap().to_owned()
        }
    };

    // 401: the token message, before any byte.
    hub.gate("Efficient-Large-Model/LongLive-1.3B");
    let e = run(json!({ "pipeline_id": "longlive" })).await;
    assert_eq!(
        e,
        "Efficient-Large-Model/LongLive-1.3B needs a Hugging Face token: set HF_TOKEN"
    );
    assert_eq!(hub.bytes_sent.load(Ordering::Relaxed), 0);

    // 404: the repository and file named (the TAE is not on this hub).
    let e =
        run(json!({ "pipeline_id": "self-forcing", "load_params": { "vae_type": "tae" } })).await;
    assert_eq!(e, "lightx2v/Autoencoders has no file taew2_1.pth at main");

    // A file bigger than the disk: refused before any byte, with both figures.
    let sf = WanPipeline::SelfForcing;
    let empty = tempfile::tempdir().unwrap();
    let plan = download_plan(empty.path(), sf, VaeChoice::wan(sf), TextEncoderFile::Bf16);
    let te = plan.iter().find(|a| a.local.ends_with("bf16.pth")).unwrap();
    hub.put(te.repo, te.file, content(9, 1000));
    hub.claim_size(te.repo, te.file, 1 << 60);
    let e = run(json!({ "pipeline_id": "self-forcing", "text_encoder": "bf16" })).await;
    assert!(
        e.starts_with("not enough disk space for <models-dir>") && e.contains("bytes free"),
        "{e}"
    );
    // Where the server keeps its files is not in what the viewers of the progress see.
    let root = dir.path().display().to_string();
    assert!(!e.contains(&root), "{e}");

    // A checksum that does not match: the error says so and the bad file is gone.
    let config = &plan[0];
    hub.corrupt(config.repo, config.file);
    let e = run(json!({ "pipeline_id": "self-forcing" })).await;
    assert!(e.contains("sha256 mismatch"), "{e}");
    assert!(e.starts_with("<models-dir>/"), "{e}");
    assert!(!e.contains(&root), "{e}");
    let dest = models.join(config.local);
    assert!(!dest.exists());
    assert!(!server::hub::part_path(&dest).exists());
    assert_eq!(hub.bytes_sent.load(Ordering::Relaxed), 10_000);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn with_require_login_a_guest_may_look_but_not_download(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::start().await;
    let mut state = common::state(pool, dir.path());
    let mut settings = (*state.settings).clone();
    settings.require_login = true;
    state.settings = Arc::new(settings);
    state.downloads = Arc::new(Downloads::new(
        Hub::new(&hub.url, None, None),
        state.settings.models_dir.clone(),
    ));
    let api = Api::new(server::app(state));
    assert_eq!(
        api.get("/api/v1/models/status?pipeline_id=longlive", None)
            .await
            .status,
        StatusCode::OK
    );
    let r = start(&api, json!({ "pipeline_id": "longlive" })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = api
        .post("/api/v1/models/download/cancel", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let cookie = api.sign_up("downloader").await;
    let r = api
        .post(
            "/api/v1/models/download",
            Some(&cookie),
            json!({ "pipeline_id": "longlive" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unreachable_hub_is_a_network_error_naming_the_url(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    // The tests' default state: a hub address nothing listens on.
    let api = Api::new(server::app(common::state(pool, dir.path())));
    let r = start(&api, json!({ "pipeline_id": "self-forcing" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let s = finished(&api).await;
    assert_eq!(s["progress"]["state"], "failed", "{s}");
    let e = s["progress"]["error"].as_str().unwrap();
    assert!(
        e.starts_with("http://127.0.0.1:9/Wan-AI/Wan2.1-T2V-1.3B/resolve/main/config.json: "),
        "{e}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_stalled_transfer_still_cancels_at_once(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let hub = LocalHub::start().await;
    serve_self_forcing(&hub, 100_000);
    // One chunk a minute: the connection is open, nothing arrives.
    hub.slow(Duration::from_secs(60));
    let (api, _) = api_with_hub(pool, dir.path(), &hub).await;
    let r = start(&api, json!({ "pipeline_id": "self-forcing" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    // Wait until it is fetching (the sizes are known, the first body is under way).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = status(&api, "pipeline_id=self-forcing").await;
        if s["progress"]["current_file"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let asked = Instant::now();
    let r = api
        .post("/api/v1/models/download/cancel", None, json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let s = finished(&api).await;
    assert_eq!(s["progress"]["state"], "cancelled", "{s}");
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
}
