//! The media loop end to end with a real webrtc-rs peer in the same process: signaling over
//! the router, H.264 over UDP on loopback, parameters over the data channel.

mod common;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use common::peer::Client;
use engine::frame::Frame;
use serde_json::{Value, json};
use server::db::MIGRATOR;
use sqlx::SqlitePool;
use std::time::{Duration, Instant};
use tower::ServiceExt;
use webrtc::peer_connection::RTCPeerConnectionState;

const T: Duration = Duration::from_secs(20);

/// The guest cookie every request of these tests carries: they play one guest.
pub const GUEST: &str =
    "hanzo_guest=00000000000000000000000000000000000000000000000000000000000000aa";

async fn call(app: &Router, mut req: Request<Body>) -> (StatusCode, Value) {
    if !req.headers().contains_key("cookie") {
        req.headers_mut()
            .insert("cookie", axum::http::HeaderValue::from_static(GUEST));
    }
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

/// A router over a fresh state; the temp dir must outlive the test.
fn setup(
    pool: SqlitePool,
) -> (
    tempfile::TempDir,
    Router,
    std::sync::Arc<server::stream::Streams>,
) {
    let dir = tempfile::tempdir().unwrap();
    let state = common::state(pool, dir.path());
    let streams = state.streams.clone();
    (dir, server::app(state), streams)
}

/// DELETE a session and expect it gone.
async fn hang_up(app: &Router, id: &str) {
    let (status, body) = call(app, delete(&format!("/api/v1/webrtc/offer/{id}"))).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

async fn load(app: &Router, pipeline: &str, params: Value) {
    let (status, body) = call(
        app,
        post(
            "/api/v1/pipeline/load",
            json!({"pipeline_id": pipeline, "load_params": params}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let deadline = Instant::now() + T;
    loop {
        let (_, s) = call(app, common::get("/api/v1/pipeline/status")).await;
        if s["status"] == "loaded" && s["pipeline_id"] == pipeline {
            return;
        }
        assert!(Instant::now() < deadline, "pipeline never loaded: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects a client: returns it with its session id.
async fn connect(app: &Router, send_video: bool, initial: Value) -> (Client, String) {
    let (mut client, sdp) = Client::offer(send_video).await;
    let (status, answer) = call(
        app,
        post(
            "/api/v1/webrtc/offer",
            json!({"sdp": sdp, "type": "offer", "initialParameters": initial}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["type"], "answer");
    client.complete(&answer, T).await;
    (client, answer["sessionId"].as_str().unwrap().to_owned())
}

/// Left half red, right half blue.
fn split_frame(w: u32, h: u32) -> Frame {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for _ in 0..h {
        for x in 0..w {
            data.extend_from_slice(if x < w / 2 {
                &[220, 30, 30]
            } else {
                &[30, 30, 220]
            });
        }
    }
    Frame::new(w, h, data).unwrap()
}

fn close_to(p: [u8; 3], want: [u8; 3]) -> bool {
    p.iter()
        .zip(want)
        .all(|(a, b)| (*a as i32 - b as i32).abs() < 40)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn passthrough_returns_the_viewers_frames_resized(pool: SqlitePool) {
    let (_dir, app, streams) = setup(pool);
    load(&app, "passthrough", json!({"height": 96, "width": 128})).await;

    let (mut client, id) = connect(&app, true, json!({})).await;
    let sender = client.stream(vec![split_frame(320, 240)], 30.0);

    // Frames come back at the loaded size with the same picture.
    let mut checked = 0;
    let deadline = Instant::now() + T;
    while checked < 5 {
        assert!(Instant::now() < deadline, "only {checked} good frames");
        let f = client.next_frame(T).await;
        assert_eq!((f.width(), f.height()), (128, 96));
        if close_to(f.pixel(20, 48), [220, 30, 30]) && close_to(f.pixel(108, 48), [30, 30, 220]) {
            checked += 1;
        }
    }

    // The metrics route lists the stream with its figures.
    let (status, m) = call(&app, common::get("/api/v1/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["streams"][0]["session_id"], id.as_str());
    assert_eq!(m["streams"][0]["pipeline_id"], "passthrough");
    assert!(m["streams"][0]["frames_in"].as_u64().unwrap() > 0, "{m}");
    assert!(
        m["streams"][0]["latency_ms"].as_f64().unwrap() >= 0.0,
        "{m}"
    );

    // Metrics arrive on the data channel.
    let m = client.next_message("metrics", T).await;
    assert!(m["frames_out"].as_u64().unwrap() > 0, "{m}");
    assert!(m["ram_total_mb"].is_number() || m["ram_total_mb"].is_null());

    // A valid update is acknowledged; an invalid one is refused and changes nothing.
    client.send(r#"{"paused": true}"#).await;
    let ack = client.next_message("parameters_updated", T).await;
    assert_eq!(ack["parameters"], json!({"paused": true}));
    client.send(r#"{"paused": 3}"#).await;
    let err = client.next_message("error", T).await;
    assert_eq!(err["message"], "parameter 'paused': must be true or false");
    client.send("not json").await;
    assert!(
        client.next_message("error", T).await["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );

    // Paused: no new frames once the queue has drained.
    tokio::time::sleep(Duration::from_millis(400)).await;
    while client.frames.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        client.frames.try_recv().is_err(),
        "frames kept coming while paused"
    );
    client.send(r#"{"paused": false}"#).await;
    client.next_message("parameters_updated", T).await;
    client.next_frame(T).await;

    // DELETE ends the session and releases it.
    hang_up(&app, &id).await;
    assert!(streams.is_empty());
    let (status, _) = call(&app, delete(&format!("/api/v1/webrtc/offer/{id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sender.abort();
    client.close().await;
}

/// Fine RGB noise (a diffusion model's output at high noise: the hardest picture to code).
fn noise_frame(w: u32, h: u32, seed: u64) -> Frame {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let data = (0..w * h * 3)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    Frame::new(w, h, data).unwrap()
}

/// Mean absolute difference between horizontally neighbouring samples: ~0 for a flat frame,
/// tens for noise.
fn roughness(f: &Frame) -> f64 {
    let d = f.data();
    let sum: u64 = d
        .windows(4)
        .step_by(3)
        .map(|w| (w[0] as i64 - w[3] as i64).unsigned_abs())
        .sum();
    sum as f64 / (d.len() / 3) as f64
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn noise_after_flat_frames_keeps_coming_back(pool: SqlitePool) {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let (_dir, app, _streams) = setup(pool);
    // 128² and 512² are sizes at which OpenH264 once failed every frame after noise.
    for size in [128, 256, 512] {
        load(&app, "passthrough", json!({"height": size, "width": size})).await;
        let (mut client, id) = connect(&app, true, json!({})).await;
        let mut frames: Vec<Frame> = (0..10)
            .map(|_| Frame::filled(size, size, [90, 90, 90]))
            .collect();
        frames.extend((0..20).map(|i| noise_frame(size, size, i)));
        // The viewer's side codes every frame (a browser has the bandwidth on loopback).
        let camera = server::media::h264::EncoderSettings {
            bitrate_bps: 40_000_000,
            ..Default::default()
        };
        let sent = Arc::new(AtomicUsize::new(0));
        let sender = {
            let sent = Arc::clone(&sent);
            client.stream_timed(frames, 20.0, camera, move |_, _| {
                sent.fetch_add(1, Ordering::Relaxed);
            })
        };
        // Three flat → noise switches (3.5 s at 20 FPS; longer when the machine is loaded
        // and the viewer's encoder slows down); noisy frames come back after every one.
        let (mut received, mut noisy, mut switches, mut last_noisy) = (0, 0, 0, false);
        let until = Instant::now() + Duration::from_secs(15);
        while switches < 3 && Instant::now() < until {
            let f = client.next_frame(T).await;
            assert_eq!((f.width(), f.height()), (size, size));
            received += 1;
            let is_noisy = roughness(&f) > 1.0;
            noisy += is_noisy as usize;
            switches += (is_noisy && !last_noisy) as usize;
            last_noisy = is_noisy;
        }
        sender.abort();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        while client.frames.try_recv().is_ok() {
            received += 1;
        }
        let (_, m) = call(&app, common::get("/api/v1/metrics")).await;
        let s = &m["streams"][0];
        let sent = sent.load(Ordering::Relaxed) as u64;
        eprintln!("{size}: sent {sent} received {received} noisy {noisy} switches {switches} {s}");
        assert_eq!(s["encode_errors"], 0, "{size}: {s}");
        assert!(
            switches >= 3,
            "{size}: {switches} switches, {noisy} noisy frames"
        );
        // Every frame the viewer sent arrived and decoded; each came back unless the
        // server, falling behind on a loaded machine, dropped it for a newer one (and
        // counted it).
        let count = |k: &str| s[k].as_u64().unwrap();
        assert_eq!(count("frames_in"), sent, "{size}: {s}");
        let dropped = count("dropped_in") + count("dropped_out");
        assert_eq!(count("frames_out") + dropped, sent, "{size}: {s}");
        assert!(dropped * 4 < sent, "{size}: {s}");
        assert_eq!(received as u64, count("frames_out"), "{size}: {s}");
        hang_up(&app, &id).await;
        client.close().await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn vod_plays_the_bundled_clip_without_input(pool: SqlitePool) {
    let (_dir, app, _) = setup(pool);
    load(&app, "vod", Value::Null).await;
    let clip = server::media::clip::decode_vod_clip().unwrap();
    let (mut client, id) = connect(&app, false, json!({})).await;
    for _ in 0..3 {
        let f = client.next_frame(T).await;
        assert_eq!((f.width(), f.height()), (512, 512));
        // It is one of the clip's frames (after a lossy round trip).
        let best = clip
            .iter()
            .map(|c| c.mean_abs_diff(&f))
            .fold(f64::INFINITY, f64::min);
        assert!(
            best < 8.0,
            "received frame is not from the clip (mean abs diff {best})"
        );
    }
    hang_up(&app, &id).await;
    client.close().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_offers_get_clear_errors_and_other_sessions_keep_running(pool: SqlitePool) {
    let (_dir, app, streams) = setup(pool);

    let (_, sdp) = Client::offer(false).await;
    let (status, body) = call(
        &app,
        post("/api/v1/webrtc/offer", json!({"sdp": sdp, "type": "offer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(
        body["error"],
        "Pipeline not loaded. Please load pipeline first."
    );

    load(&app, "vod", Value::Null).await;
    let (mut good, good_id) = connect(&app, false, json!({})).await;

    let cases = [
        (
            json!({"sdp": "v=0\r\nthis is not sdp", "type": "offer"}),
            StatusCode::BAD_REQUEST,
            "invalid SDP",
        ),
        (
            json!({"sdp": sdp, "type": "answer"}),
            StatusCode::BAD_REQUEST,
            "type must be \"offer\"",
        ),
        (
            json!({"type": "offer"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing field `sdp`",
        ),
        (
            json!({"sdp": sdp, "type": "offer", "initialParameters": {"paused": "no"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "initialParameters: parameter 'paused': must be true or false",
        ),
        (
            json!({"sdp": sdp, "type": "offer", "initialParameters": {"noise_scale": 0.3}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown parameter 'noise_scale'",
        ),
    ];
    for (body, want, msg) in cases {
        let (status, resp) = call(&app, post("/api/v1/webrtc/offer", body)).await;
        assert_eq!(status, want, "{resp}");
        assert!(resp["error"].as_str().unwrap().contains(msg), "{resp}");
    }
    let req = Request::post("/api/v1/webrtc/offer")
        .header("content-type", "application/json")
        .body(Body::from("{"))
        .unwrap();
    assert_eq!(call(&app, req).await.0, StatusCode::BAD_REQUEST);
    let (status, _) = call(
        &app,
        Request::patch("/api/v1/webrtc/offer/nope")
            .header("content-type", "application/json")
            .body(Body::from(r#"{"candidates":[]}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Trickled candidates reach a running session; junk is refused.
    let candidate = sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=candidate:"))
        .map(|c| format!("candidate:{c}"))
        .expect("the offer has a candidate");
    let patch = |body: Value| {
        Request::patch(format!("/api/v1/webrtc/offer/{good_id}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let (status, _) = call(
        &app,
        patch(json!({"candidates": [{"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0}]})),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        &app,
        patch(json!({"candidates": [{"candidate": "candidate:nonsense", "sdpMid": "0"}]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid ICE candidate"),
        "{body}"
    );

    // The good session never noticed.
    assert_eq!(streams.len(), 1);
    good.next_frame(T).await;
    hang_up(&app, &good_id).await;
    good.close().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn shutdown_closes_every_stream_at_once(pool: SqlitePool) {
    let (_dir, app, streams) = setup(pool);
    load(&app, "vod", Value::Null).await;
    let (mut a, _) = connect(&app, false, json!({})).await;
    let (mut b, _) = connect(&app, false, json!({})).await;
    assert_eq!(streams.len(), 2);
    // Both data channels are open once metrics flow.
    a.next_message("metrics", T).await;
    b.next_message("metrics", T).await;
    let started = Instant::now();
    tokio::time::timeout(T, streams.close_all()).await.unwrap();
    assert!(streams.is_empty());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closing took {:?}",
        started.elapsed()
    );
    // Both viewers were told.
    a.next_message("stream_stopped", T).await;
    b.next_message("stream_stopped", T).await;
    a.close().await;
    b.close().await;
}

fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Threads:")
                .map(|n| n.trim().parse().unwrap())
        })
        .unwrap()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_hundred_sessions_come_and_go_without_leaks(pool: SqlitePool) {
    let (_dir, app, streams) = setup(pool);
    load(&app, "vod", Value::Null).await;
    // Warm up once so lazily created runtime threads exist before the baseline.
    let (c, id) = connect(&app, false, json!({})).await;
    call(&app, delete(&format!("/api/v1/webrtc/offer/{id}"))).await;
    c.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = thread_count();

    for i in 0..100 {
        let (mut client, sdp) = Client::offer(false).await;
        let (status, answer) = call(
            &app,
            post("/api/v1/webrtc/offer", json!({"sdp": sdp, "type": "offer"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "cycle {i}: {answer}");
        let id = answer["sessionId"].as_str().unwrap();
        if i % 10 == 0 {
            // Every tenth cycle connects fully before hanging up.
            client.complete(&answer, T).await;
        }
        hang_up(&app, id).await;
        client.close().await;
    }
    assert_eq!(streams.len(), 0);
    // Threads of finished sessions are joined; the blocking pool's idle threads expire (10 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = thread_count();
        if now <= baseline + 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "threads: {baseline} before, {now} after"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A pipeline that produces a few frames, then fails for good.
/// A pipeline that fails after 20 chunks: with an error, or (`.2`) by panicking.
struct Failing(
    engine::pipeline::PipelineSpec,
    engine::pipeline::params::Params,
    bool,
);

struct FailingStream(u32, bool);

impl engine::pipeline::LoadedPipeline for Failing {
    fn spec(&self) -> &engine::pipeline::PipelineSpec {
        &self.0
    }
    fn load_params(&self) -> &engine::pipeline::params::Params {
        &self.1
    }
    fn new_stream(&self) -> Box<dyn engine::pipeline::Pipeline> {
        Box::new(FailingStream(0, self.2))
    }
}

impl engine::pipeline::Pipeline for FailingStream {
    fn prepare(
        &mut self,
        _: &engine::pipeline::params::Params,
        _: bool,
    ) -> Result<engine::pipeline::Requirements, engine::pipeline::PipelineError> {
        Ok(engine::pipeline::Requirements { input_frames: 0 })
    }
    fn process(
        &mut self,
        _: Vec<Frame>,
        _: &engine::pipeline::params::Params,
    ) -> Result<Vec<Frame>, engine::pipeline::PipelineError> {
        self.0 += 1;
        std::thread::sleep(Duration::from_millis(30));
        if self.0 > 20 && self.1 {
            panic!("index out of bounds (simulated)");
        }
        if self.0 > 20 {
            return Err(engine::pipeline::PipelineError::Fatal(
                "CUDA out of memory (simulated)".into(),
            ));
        }
        Ok(vec![Frame::filled(64, 64, [200, 100, 0])])
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pipeline_ends_only_its_own_session() {
    failing_pipeline_ends_only_its_own_session(false, "CUDA out of memory (simulated)").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_pipeline_ends_only_its_own_session() {
    failing_pipeline_ends_only_its_own_session(
        true,
        "the pipeline panicked: index out of bounds (simulated)",
    )
    .await;
}

async fn failing_pipeline_ends_only_its_own_session(panics: bool, message: &str) {
    use server::stream::session::{self, StartContext};
    use std::sync::Arc;

    async fn start(
        loaded: Arc<dyn engine::pipeline::LoadedPipeline>,
    ) -> (Client, Arc<server::stream::session::SessionHandle>) {
        let (mut client, sdp) = Client::offer(false).await;
        let ctx = StartContext {
            id: uuid::Uuid::new_v4().to_string(),
            owner: server::stream::owner::Owner::Guest("test".into()),
            loaded,
            initial: Default::default(),
            ice_servers: vec![],
            udp_addrs: vec!["127.0.0.1:0".into()],
            on_finished: Box::new(|_| {}),
            system_metrics: Arc::new(Default::default),
            history: None,
        };
        let offer = webrtc::peer_connection::RTCSessionDescription::offer(sdp).unwrap();
        let (handle, answer) = session::start(ctx, offer).await.unwrap();
        client.accept(answer).await;
        client
            .wait_state(RTCPeerConnectionState::Connected, T)
            .await;
        (client, handle)
    }

    let mut spec = engine::pipeline::vod::spec();
    spec.output_fps = None;
    let failing: Arc<dyn engine::pipeline::LoadedPipeline> =
        Arc::new(Failing(spec, Default::default(), panics));
    let clip = server::media::clip::decode_vod_clip().unwrap();
    let healthy: Arc<dyn engine::pipeline::LoadedPipeline> =
        Arc::new(engine::pipeline::vod::Vod::new(clip).unwrap());

    let (mut good, good_handle) = start(healthy).await;
    let (mut bad, bad_handle) = start(failing).await;
    bad.next_frame(T).await;
    let stopped = bad.next_message("stream_stopped", T).await;
    assert_eq!(stopped["error_message"], message);
    tokio::time::timeout(T, bad_handle.wait_finished())
        .await
        .unwrap();

    // The other stream keeps going.
    while good.frames.try_recv().is_ok() {}
    good.next_frame(T).await;
    good.next_frame(T).await;
    good_handle.request_stop();
    tokio::time::timeout(T, good_handle.wait_finished())
        .await
        .unwrap();
    good.close().await;
    bad.close().await;
}
