//! A viewer that goes away releases its stream promptly: a clean close within 2 s (with or
//! without a data channel), a peer that vanishes (its sockets gone, nothing sent) within 10 s,
//! threads back to where they were.

mod common;

use axum::http::StatusCode;
use common::{api::Api, peer::Client};
use engine::frame::Frame;
use serde_json::json;
use server::db::MIGRATOR;
use sqlx::SqlitePool;
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

const T: Duration = Duration::from_secs(20);

/// The tests count this process's threads: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Threads of this process that belong to streams (the processor, output and decode
/// threads: `proc-…`, `out-…`, `decode`).
fn stream_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|n| {
                    let n = n.trim();
                    n.starts_with("proc-") || n.starts_with("out-") || n == "decode"
                })
                .count()
        })
        .unwrap_or(0)
}

async fn setup(pool: SqlitePool) -> (tempfile::TempDir, Api, Arc<server::stream::Streams>) {
    let dir = tempfile::tempdir().unwrap();
    let state = common::state(pool, dir.path());
    let streams = state.streams.clone();
    let api = Api::new(server::app(state));
    let r = api
        .post(
            "/api/v1/pipeline/load",
            None,
            json!({"pipeline_id": "passthrough", "load_params": {"height": 64, "width": 64}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let deadline = Instant::now() + T;
    while api.get("/api/v1/pipeline/status", None).await.body["status"] != "loaded" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (dir, api, streams)
}

async fn connect(api: &Api) -> Client {
    connect_on(api, 0).await
}

async fn connect_on(api: &Api, reactor_threads: usize) -> Client {
    answered(api, Client::offer_on(true, reactor_threads).await).await
}

/// The client connected with the offer route's answer to its offer.
async fn answered(api: &Api, (mut client, sdp): (Client, String)) -> Client {
    let r = api
        .post(
            "/api/v1/webrtc/offer",
            None,
            json!({"sdp": sdp, "type": "offer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    client.complete(&r.body, T).await;
    client
}

/// Waits until the registry is empty; returns how long that took.
async fn emptied(streams: &server::stream::Streams, limit: Duration) -> Duration {
    let start = Instant::now();
    while !streams.is_empty() {
        assert!(
            start.elapsed() < limit,
            "{} streams still registered after {limit:?}",
            streams.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn peers_that_close_release_their_streams_within_two_seconds(pool: SqlitePool) {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_dir, api, streams) = setup(pool).await;
    let frame = Frame::new(64, 64, vec![60; 64 * 64 * 3]).unwrap();
    let mut clients = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..20 {
        let mut c = connect(&api).await;
        senders.push(c.stream(vec![frame.clone()], 15.0));
        c.next_frame(T).await;
        clients.push(c);
    }
    assert_eq!(streams.len(), 20);
    assert_eq!(
        stream_threads(),
        60,
        "processor, output and decoder of each"
    );
    for s in &senders {
        s.abort();
    }
    // All 20 close at once, as the browser does: data channel, then the connection.
    let start = Instant::now();
    for c in &clients {
        let _ = c.channel.close().await;
    }
    for c in &clients {
        let _ = c.pc.close().await;
    }
    emptied(
        &streams,
        Duration::from_secs(2).saturating_sub(start.elapsed()),
    )
    .await;
    eprintln!("20 clean closes released in {:?}", start.elapsed());
    // A stream leaves the registry after its threads are joined: none is left.
    assert_eq!(stream_threads(), 0);
    drop(clients);
}

/// A viewer that closes before its data channel opened sends no channel close; its DTLS
/// `close_notify` alone ends the stream (the connection state stays `connected`: without the
/// server looking, ICE's timeouts would hold it about 7 s).
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_viewer_without_a_data_channel_that_closes_is_released_within_two_seconds(
    pool: SqlitePool,
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_dir, api, streams) = setup(pool).await;
    let mut c = answered(&api, Client::offer_with_unannounced_channel(true).await).await;
    let sender = c.stream(
        vec![Frame::new(64, 64, vec![60; 64 * 64 * 3]).unwrap()],
        15.0,
    );
    c.next_frame(T).await;
    assert_eq!(streams.len(), 1);
    sender.abort();
    let _ = c.pc.close().await;
    let took = emptied(&streams, Duration::from_secs(2)).await;
    eprintln!("a viewer with no data channel released in {took:?}");
    assert_eq!(stream_threads(), 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_peer_that_vanishes_is_released_within_ten_seconds(pool: SqlitePool) {
    let _one = ONE_AT_A_TIME.lock().await;
    let (_dir, api, streams) = setup(pool).await;
    let mut c = connect_on(&api, 1).await;
    let sender = c.stream(
        vec![Frame::new(64, 64, vec![60; 64 * 64 * 3]).unwrap()],
        15.0,
    );
    c.next_frame(T).await;
    // Gone without a word: no DTLS close_notify, no SCTP abort; its sockets close with it.
    sender.abort();
    c.vanish();
    let took = emptied(&streams, Duration::from_secs(10)).await;
    eprintln!("a vanished peer released in {took:?}");
    assert_eq!(stream_threads(), 0);
}
