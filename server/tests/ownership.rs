//! Streams belong to their viewer: two users and a guest in one process, over the real
//! HTTP routes and WebRTC peers. Nobody but the owner sees, trickles to or ends a stream;
//! the shared pipeline cannot be swapped from under a running stream.

mod common;

use axum::http::{Method, StatusCode};
use common::{
    api::{Api, cookie_of},
    peer::Client,
};
use engine::frame::Frame;
use serde_json::{Value, json};
use server::db::MIGRATOR;
use sqlx::SqlitePool;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

async fn load(api: &Api, cookie: Option<&str>, pipeline: &str) -> common::api::Reply {
    api.post(
        "/api/v1/pipeline/load",
        cookie,
        json!({"pipeline_id": pipeline, "load_params": if pipeline == "passthrough" {
            json!({"height": 64, "width": 64})
        } else {
            Value::Null
        }}),
    )
    .await
}

async fn wait_loaded(api: &Api, pipeline: &str) {
    let deadline = Instant::now() + T;
    loop {
        let s = api.get("/api/v1/pipeline/status", None).await.body;
        if s["status"] == "loaded" && s["pipeline_id"] == pipeline {
            return;
        }
        assert!(Instant::now() < deadline, "never loaded: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a streaming client as the holder of `cookie`; returns it, the session id and the
/// cookie that owns the stream (a guest's comes from the answer).
async fn start(api: &Api, cookie: Option<&str>) -> (Client, String, String) {
    let (mut client, sdp) = Client::offer(true).await;
    let r = api
        .post(
            "/api/v1/webrtc/offer",
            cookie,
            json!({"sdp": sdp, "type": "offer", "initialParameters": {"paused": false}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let owner = match cookie {
        Some(c) => {
            assert!(
                r.headers.get("set-cookie").is_none(),
                "a user gets no guest cookie"
            );
            c.to_owned()
        }
        None => {
            let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
            assert!(
                set.contains("HttpOnly") && set.contains("SameSite=Lax"),
                "{set}"
            );
            cookie_of(&r.headers)
        }
    };
    client.complete(&r.body, T).await;
    (
        client,
        r.body["sessionId"].as_str().unwrap().to_owned(),
        owner,
    )
}

async fn trickle(api: &Api, id: &str, cookie: Option<&str>) -> StatusCode {
    let body = json!({"candidates": [{"candidate": "candidate:1 1 UDP 1 127.0.0.1 9 typ host",
                                      "sdpMid": "0", "sdpMLineIndex": 0}]});
    api.call(
        Method::PATCH,
        &format!("/api/v1/webrtc/offer/{id}"),
        cookie,
        Some(body),
    )
    .await
    .status
}

async fn hang_up(api: &Api, id: &str, cookie: Option<&str>) -> StatusCode {
    api.call(
        Method::DELETE,
        &format!("/api/v1/webrtc/offer/{id}"),
        cookie,
        None,
    )
    .await
    .status
}

/// The metrics as `cookie` sees them.
async fn metrics(api: &Api, cookie: Option<&str>) -> Value {
    let r = api.get("/api/v1/metrics", cookie).await;
    assert_eq!(r.status, StatusCode::OK);
    r.body
}

/// Frames keep arriving for `client` (a few in a row).
async fn still_streaming(client: &mut Client) {
    for _ in 0..3 {
        client.next_frame(T).await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn nobody_but_the_owner_sees_or_controls_a_stream(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(server::app(common::state(pool, dir.path())));
    let ann = api.sign_up("ann").await;
    let bob = api.sign_up("bob").await;
    assert_eq!(
        load(&api, Some(&ann), "passthrough").await.status,
        StatusCode::OK
    );
    wait_loaded(&api, "passthrough").await;

    let (mut a, a_id, _) = start(&api, Some(&ann)).await;
    let frame = Frame::new(64, 64, vec![90; 64 * 64 * 3]).unwrap();
    let a_sender = a.stream(vec![frame.clone()], 30.0);
    still_streaming(&mut a).await;
    // A guest streams too.
    let (mut g, g_id, guest) = start(&api, None).await;
    let g_sender = g.stream(vec![frame], 30.0);
    still_streaming(&mut g).await;

    // Bob, a guest without a cookie and the other guest get 404 for Ann's stream.
    let other_guest =
        "hanzo_guest=1111111111111111111111111111111111111111111111111111111111111111";
    for cookie in [
        Some(bob.as_str()),
        None,
        Some(other_guest),
        Some(guest.as_str()),
    ] {
        assert_eq!(trickle(&api, &a_id, cookie).await, StatusCode::NOT_FOUND);
        assert_eq!(hang_up(&api, &a_id, cookie).await, StatusCode::NOT_FOUND);
    }
    // ...and for the guest's; a stream that does not exist reads the same.
    for cookie in [
        Some(ann.as_str()),
        Some(bob.as_str()),
        None,
        Some(other_guest),
    ] {
        assert_eq!(hang_up(&api, &g_id, cookie).await, StatusCode::NOT_FOUND);
    }
    let missing = api
        .call(
            Method::DELETE,
            "/api/v1/webrtc/offer/nope",
            Some(&bob),
            None,
        )
        .await;
    let refused = api
        .call(
            Method::DELETE,
            &format!("/api/v1/webrtc/offer/{a_id}"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(
        missing.error().replace("nope", "X"),
        refused.error().replace(&a_id, "X")
    );
    still_streaming(&mut a).await;
    still_streaming(&mut g).await;

    // The metrics: system figures for everyone, each caller's own streams only.
    let leaks = |m: &Value, id: &str| m.to_string().contains(id);
    let m_ann = metrics(&api, Some(&ann)).await;
    assert_eq!(m_ann["streams"].as_array().unwrap().len(), 1);
    assert_eq!(m_ann["streams"][0]["session_id"], a_id.as_str());
    assert_eq!(m_ann["streams"][0]["parameters"], json!({"paused": false}));
    for (who, m) in [
        ("bob", metrics(&api, Some(&bob)).await),
        ("a cookieless guest", metrics(&api, None).await),
        ("another guest", metrics(&api, Some(other_guest)).await),
    ] {
        assert_eq!(m["streams"], json!([]), "{who} sees streams: {m}");
        assert!(!leaks(&m, &a_id) && !leaks(&m, &g_id), "{who}: {m}");
        assert!(
            m.get("cpu_percent").is_some(),
            "{who} gets no system figures: {m}"
        );
    }
    let m_guest = metrics(&api, Some(&guest)).await;
    assert_eq!(m_guest["streams"].as_array().unwrap().len(), 1);
    assert_eq!(m_guest["streams"][0]["session_id"], g_id.as_str());

    // Another pipeline cannot be loaded while streams run; the same one can.
    let r = load(&api, Some(&bob), "vod").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "2 streams are running on passthrough; stop them first"
    );
    assert_eq!(load(&api, None, "passthrough").await.status, StatusCode::OK);
    still_streaming(&mut a).await;

    // The owners end their own streams.
    assert_eq!(
        trickle(&api, &a_id, Some(&ann)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hang_up(&api, &g_id, Some(&guest)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        hang_up(&api, &a_id, Some(&ann)).await,
        StatusCode::NO_CONTENT
    );
    a_sender.abort();
    g_sender.abort();
    a.close().await;
    g.close().await;
    // With nothing streaming, another pipeline loads.
    assert_eq!(load(&api, None, "vod").await.status, StatusCode::OK);
    wait_loaded(&api, "vod").await;
}
