//! Passthrough round trip over real WebRTC on loopback: a webrtc-rs client sends H.264
//! frames at 30 fps to the server, which decodes, runs `passthrough`, re-encodes and sends
//! them back; the client decodes and matches each returned frame to the one it sent.
//!
//! Run: `cargo bench -p server --bench passthrough_rtt` (figures go to docs/perf.md).
//! Prints, per size: frames back per second, round trip (send → decoded back) median and
//! p90, and the server's own frame-received → frame-sent latency.

#[path = "../tests/common/peer.rs"]
#[allow(dead_code)]
mod peer;

use axum::{body::Body, http::Request};
use engine::frame::Frame;
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tower::ServiceExt;
use webrtc::peer_connection::RTCPeerConnectionState;

const SLOTS: usize = 16;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(8);

/// The bench plays one guest: its stream is owned by this cookie.
const GUEST: &str = "hanzo_guest=00000000000000000000000000000000000000000000000000000000000000bb";

async fn call(app: &axum::Router, mut req: Request<Body>) -> Value {
    req.headers_mut()
        .insert("cookie", axum::http::HeaderValue::from_static(GUEST));
    let resp = app.clone().oneshot(req).await.unwrap();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn post(uri: &str, body: Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Frame `i` of a size: a gradient with a 64×64 block whose grey level encodes `i % 16`.
fn marked_frame(size: u32, i: usize) -> Frame {
    let level = (i % SLOTS) as u8 * 16 + 8;
    let mut data = Vec::with_capacity((size * size * 3) as usize);
    for y in 0..size {
        for x in 0..size {
            if x < 64 && y < 64 {
                data.extend_from_slice(&[level, level, level]);
            } else {
                data.extend_from_slice(&[(x * 255 / size) as u8, (y * 255 / size) as u8, 96]);
            }
        }
    }
    Frame::new(size, size, data).unwrap()
}

fn slot_of(f: &Frame) -> usize {
    let mut sum = 0u32;
    for y in 16..48 {
        for x in 16..48 {
            sum += f.pixel(x, y)[1] as u32;
        }
    }
    let mean = sum as f64 / 1024.0;
    (((mean - 8.0) / 16.0).round().clamp(0.0, (SLOTS - 1) as f64)) as usize
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(app: &axum::Router, size: u32) -> (f64, f64, f64, Option<f64>) {
    call(
        app,
        post(
            "/api/v1/pipeline/load",
            json!({"pipeline_id": "passthrough", "load_params": {"height": size, "width": size}}),
        ),
    )
    .await;
    loop {
        let s = call(
            app,
            Request::get("/api/v1/pipeline/status")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        if s["status"] == "loaded" && s["load_params"]["height"] == size {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut client, sdp) = peer::Client::offer(true).await;
    let answer = call(
        app,
        post("/api/v1/webrtc/offer", json!({"sdp": sdp, "type": "offer"})),
    )
    .await;
    client
        .accept(answer["sdp"].as_str().unwrap().to_owned())
        .await;
    client
        .wait_state(RTCPeerConnectionState::Connected, Duration::from_secs(20))
        .await;

    let sent: Arc<Mutex<[Option<Instant>; SLOTS]>> = Arc::new(Mutex::new([None; SLOTS]));
    let frames: Vec<Frame> = (0..SLOTS).map(|i| marked_frame(size, i)).collect();
    let s2 = Arc::clone(&sent);
    let sender = client.stream_timed(frames, 30.0, Default::default(), move |i, at| {
        s2.lock().unwrap()[i % SLOTS] = Some(at)
    });

    let start = Instant::now();
    let mut rtts = Vec::new();
    let mut received = 0usize;
    while start.elapsed() < WARMUP + MEASURE {
        let Ok(frame) = tokio::time::timeout(Duration::from_secs(5), client.frames.recv()).await
        else {
            break;
        };
        let Some(frame) = frame else { break };
        let now = Instant::now();
        if start.elapsed() < WARMUP {
            continue;
        }
        received += 1;
        if let Some(at) = sent.lock().unwrap()[slot_of(&frame)] {
            rtts.push(now.duration_since(at).as_secs_f64() * 1000.0);
        }
    }
    let metrics = call(
        app,
        Request::get("/api/v1/metrics").body(Body::empty()).unwrap(),
    )
    .await;
    let server_latency = metrics["streams"][0]["latency_ms"].as_f64();
    let id = answer["sessionId"].as_str().unwrap();
    call(
        app,
        Request::delete(format!("/api/v1/webrtc/offer/{id}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    sender.abort();
    client.close().await;
    rtts.sort_by(f64::total_cmp);
    let fps = received as f64 / MEASURE.as_secs_f64();
    if rtts.is_empty() {
        return (fps, f64::NAN, f64::NAN, server_latency);
    }
    (
        fps,
        percentile(&rtts, 0.5),
        percentile(&rtts, 0.9),
        server_latency,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let cli = server::config::Cli {
        data_dir: Some(dir.path().to_owned()),
        ..Default::default()
    };
    let settings = server::config::Settings::resolve(&cli, None, &Default::default()).unwrap();
    let state = server::build_state(settings).await.unwrap();
    let app = server::app(state);
    println!(
        "| size | frames back/s (sent 30) | round trip median | round trip p90 | server latency (recv → sent) |"
    );
    println!("|---|---|---|---|---|");
    for size in [256u32, 512] {
        let (fps, p50, p90, server) = run(&app, size).await;
        println!(
            "| {size}×{size} | {fps:.1} | {p50:.1} ms | {p90:.1} ms | {} |",
            server
                .map(|l| format!("{l:.1} ms"))
                .unwrap_or_else(|| "n/a".into())
        );
    }
}
