//! Stream history: each query of the service, the rows a real stream writes (webrtc-rs peer
//! on loopback), crash recovery of unclosed rows, and the REST routes from both users' sides.

mod common;

use axum::http::StatusCode;
use common::{api::Api, peer::Client};
use engine::frame::Frame;
use serde_json::{Map, Value, json};
use server::{
    db::MIGRATOR,
    service::history::{self, Figures},
};
use sqlx::SqlitePool;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(20);

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

async fn user(pool: &SqlitePool, name: &str) -> i64 {
    server::service::users::create(pool, name, "$argon2id$unused")
        .await
        .unwrap()
        .id
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_row_is_opened_logged_updated_and_closed(pool: SqlitePool) {
    let uid = user(&pool, "ann").await;
    history::open(
        &pool,
        "s1",
        uid,
        "passthrough",
        &map(json!({"height": 256})),
        &map(json!({"paused": false})),
    )
    .await
    .unwrap();
    history::log_change(
        &pool,
        "s1",
        &map(json!({"prompts": [{"text": "fog", "weight": 1.0}]})),
    )
    .await
    .unwrap();
    let f = Figures {
        frames_out: 120,
        mean_fps: Some(29.5),
        mean_latency_ms: Some(12.0),
    };
    history::update_figures(&pool, "s1", f).await.unwrap();
    let open = history::get(&pool, uid, "s1").await.unwrap();
    assert_eq!(open.summary.ended_at, None);
    assert_eq!(open.summary.frames_out, 120);
    assert_eq!(open.load_params["height"], 256);
    assert_eq!(open.prompt_log.len(), 2);
    assert_eq!(open.prompt_log[0].params["paused"], false);
    assert_eq!(open.prompt_log[1].params["prompts"][0]["text"], "fog");
    assert!(open.prompt_log[0].at <= open.prompt_log[1].at);

    let last = Figures {
        frames_out: 300,
        ..f
    };
    history::close(&pool, "s1", last, Some("the pipeline failed"))
        .await
        .unwrap();
    let closed = history::get(&pool, uid, "s1").await.unwrap().summary;
    assert!(closed.ended_at.unwrap() >= closed.started_at);
    assert_eq!(closed.frames_out, 300);
    assert_eq!(closed.error.as_deref(), Some("the pipeline failed"));
    // A closed row takes no more changes.
    history::log_change(&pool, "s1", &map(json!({"paused": true})))
        .await
        .unwrap();
    history::update_figures(&pool, "s1", Figures::default())
        .await
        .unwrap();
    let after = history::get(&pool, uid, "s1").await.unwrap();
    assert_eq!(after.prompt_log.len(), 2);
    assert_eq!(after.summary.frames_out, 300);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unclosed_rows_are_closed_with_their_last_figures(pool: SqlitePool) {
    let uid = user(&pool, "bea").await;
    for id in ["open", "done"] {
        history::open(&pool, id, uid, "passthrough", &Map::new(), &Map::new())
            .await
            .unwrap();
    }
    let f = Figures {
        frames_out: 42,
        mean_fps: Some(20.0),
        mean_latency_ms: None,
    };
    history::update_figures(&pool, "open", f).await.unwrap();
    history::close(&pool, "done", Figures::default(), None)
        .await
        .unwrap();
    assert_eq!(history::close_unfinished(&pool).await.unwrap(), 1);
    let open = history::get(&pool, uid, "open").await.unwrap().summary;
    assert!(open.ended_at.is_some());
    assert_eq!(open.frames_out, 42);
    assert_eq!(open.mean_fps, Some(20.0));
    assert_eq!(open.error.as_deref(), Some(history::INTERRUPTED));
    let done = history::get(&pool, uid, "done").await.unwrap().summary;
    assert_eq!(done.error, None);
    assert_eq!(history::close_unfinished(&pool).await.unwrap(), 0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_log_is_capped(pool: SqlitePool) {
    let uid = user(&pool, "cy").await;
    history::open(&pool, "s", uid, "passthrough", &Map::new(), &Map::new())
        .await
        .unwrap();
    sqlx::query(
        "UPDATE sessions SET prompt_log = (SELECT json_group_array(json('{\"at\":\"x\",\"params\":{}}'))
         FROM (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) SELECT i FROM n))",
    )
    .bind(history::MAX_LOG_ENTRIES)
    .execute(&pool)
    .await
    .unwrap();
    history::log_change(&pool, "s", &map(json!({"paused": true})))
        .await
        .unwrap();
    let d = history::get(&pool, uid, "s").await.unwrap();
    assert_eq!(d.prompt_log.len() as i64, history::MAX_LOG_ENTRIES);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn pages_are_newest_first_and_scoped_to_their_owner(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(server::app(common::state(pool.clone(), dir.path())));
    let me = api.sign_up("dora").await;
    let other = api.sign_up("eve").await;
    let my_id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE username = 'dora'")
        .fetch_one(&pool)
        .await
        .unwrap();
    for i in 0..25 {
        history::open(
            &pool,
            &format!("s{i:02}"),
            my_id,
            "passthrough",
            &Map::new(),
            &Map::new(),
        )
        .await
        .unwrap();
        // Distinct start times.
        sqlx::query("UPDATE sessions SET started_at = ? WHERE id = ?")
            .bind(format!("2026-11-26T10:00:{i:02}.000Z"))
            .bind(format!("s{i:02}"))
            .execute(&pool)
            .await
            .unwrap();
    }
    let p1 = api.get("/api/v1/sessions", Some(&me)).await;
    assert_eq!(p1.status, StatusCode::OK);
    assert_eq!(p1.body["total"], 25);
    assert_eq!(p1.body["per_page"], 20);
    assert_eq!(p1.body["items"].as_array().unwrap().len(), 20);
    assert_eq!(p1.body["items"][0]["id"], "s24");
    let p2 = api
        .get("/api/v1/sessions?page=2&per_page=20", Some(&me))
        .await;
    let ids: Vec<&str> = p2.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["s04", "s03", "s02", "s01", "s00"]);
    let bad = api.get("/api/v1/sessions?page=x", Some(&me)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.error().contains("page"), "{}", bad.error());
    let capped = api.get("/api/v1/sessions?per_page=1000", Some(&me)).await;
    assert_eq!(capped.body["per_page"], 100);

    let one = api.get("/api/v1/sessions/s07", Some(&me)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["pipeline_id"], "passthrough");
    assert!(one.body["prompt_log"].is_array());

    // The other user sees none of it.
    let theirs = api.get("/api/v1/sessions", Some(&other)).await;
    assert_eq!(theirs.body["total"], 0);
    let r = api.get("/api/v1/sessions/s07", Some(&other)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "no session s07");
    // Guests are refused.
    for uri in ["/api/v1/sessions", "/api/v1/sessions/s07"] {
        assert_eq!(api.get(uri, None).await.status, StatusCode::UNAUTHORIZED);
    }
}

/// Ends a stream through the API, as its owner (the holder of `cookie`).
async fn hang_up(api: &Api, id: &str, cookie: &str) {
    let uri = format!("/api/v1/webrtc/offer/{id}");
    let r = api
        .call(axum::http::Method::DELETE, &uri, Some(cookie), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// Loads passthrough and connects a peer as the holder of `cookie`; returns the client, the
/// session id and the cookie that owns the stream (the user's, or the guest cookie the
/// answer set).
async fn stream(
    api: &Api,
    cookie: Option<&str>,
) -> Result<(Client, String, String), common::api::Reply> {
    let r = api
        .post(
            "/api/v1/pipeline/load",
            cookie,
            json!({"pipeline_id": "passthrough", "load_params": {"height": 64, "width": 64}}),
        )
        .await;
    if r.status != StatusCode::OK {
        return Err(r);
    }
    let deadline = Instant::now() + T;
    while api.get("/api/v1/pipeline/status", None).await.body["status"] != "loaded" {
        assert!(Instant::now() < deadline, "never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut client, sdp) = Client::offer(true).await;
    let r = api
        .post(
            "/api/v1/webrtc/offer",
            cookie,
            json!({"sdp": sdp, "type": "offer", "initialParameters": {"paused": false}}),
        )
        .await;
    if r.status != StatusCode::OK {
        return Err(r);
    }
    client.complete(&r.body, T).await;
    let owner = match cookie {
        Some(c) => c.to_owned(),
        None => common::api::cookie_of(&r.headers),
    };
    Ok((
        client,
        r.body["sessionId"].as_str().unwrap().to_owned(),
        owner,
    ))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_signed_in_users_stream_is_written_to_the_history(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(server::app(common::state(pool.clone(), dir.path())));
    let me = api.sign_up("fay").await;
    let (mut client, id, owner) = stream(&api, Some(&me)).await.unwrap();
    let frame = Frame::new(64, 64, vec![128; 64 * 64 * 3]).unwrap();
    let sender = client.stream(vec![frame], 30.0);
    for _ in 0..10 {
        client.next_frame(T).await;
    }
    // The row is open while the stream runs.
    let running = api.get(&format!("/api/v1/sessions/{id}"), Some(&me)).await;
    assert_eq!(running.status, StatusCode::OK, "{:?}", running.body);
    assert_eq!(running.body["ended_at"], Value::Null);
    assert_eq!(
        running.body["load_params"],
        json!({"height": 64, "width": 64})
    );
    assert_eq!(
        running.body["prompt_log"][0]["params"],
        json!({"paused": false})
    );

    client.send(r#"{"paused": true}"#).await;
    client.next_message("parameters_updated", T).await;
    client.send(r#"{"paused": "no"}"#).await; // refused: not logged
    client.next_message("error", T).await;
    client.send(r#"{"paused": false}"#).await;
    client.next_message("parameters_updated", T).await;
    client.next_frame(T).await;

    hang_up(&api, &id, &owner).await;
    sender.abort();
    client.close().await;

    let done = api.get(&format!("/api/v1/sessions/{id}"), Some(&me)).await;
    assert!(done.body["ended_at"].is_string(), "{:?}", done.body);
    assert_eq!(done.body["error"], Value::Null);
    assert!(
        done.body["frames_out"].as_i64().unwrap() >= 10,
        "{:?}",
        done.body
    );
    assert!(done.body["mean_fps"].as_f64().unwrap() > 0.0);
    let log: Vec<Value> = done.body["prompt_log"].as_array().unwrap().clone();
    let changes: Vec<&Value> = log.iter().skip(1).map(|e| &e["params"]).collect();
    assert_eq!(
        changes,
        [&json!({"paused": true}), &json!({"paused": false})]
    );
    let list = api.get("/api/v1/sessions", Some(&me)).await;
    assert_eq!(list.body["items"][0]["id"], id.as_str());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn guests_stream_without_history_unless_login_is_required(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = Api::new(server::app(common::state(pool.clone(), dir.path())));
    let (client, id, guest) = stream(&api, None).await.unwrap();
    assert!(guest.starts_with("hanzo_guest="), "{guest}");
    hang_up(&api, &id, &guest).await;
    client.close().await;
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);

    // With --require-login, guests cannot load or stream; users can.
    let mut state = common::state(pool, dir.path());
    let mut settings = (*state.settings).clone();
    settings.require_login = true;
    state.settings = std::sync::Arc::new(settings);
    let api = Api::new(server::app(state));
    let Err(refused) = stream(&api, None).await else {
        panic!("a guest could stream with --require-login");
    };
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error(), "sign in to stream");
    let (client, sdp) = Client::offer(false).await;
    let r = api
        .post(
            "/api/v1/webrtc/offer",
            None,
            json!({"sdp": sdp, "type": "offer"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    client.close().await;
    let me = api.sign_up("gus").await;
    let (client, id, owner) = stream(&api, Some(&me)).await.unwrap();
    hang_up(&api, &id, &owner).await;
    client.close().await;
}
