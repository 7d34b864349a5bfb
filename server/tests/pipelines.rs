//! `/api/v1/pipelines`, `/api/v1/pipeline/load`, `/api/v1/pipeline/status`.

mod common;

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode},
};
use serde_json::{Value, json};
use server::db::MIGRATOR;
use sqlx::SqlitePool;
use std::time::{Duration, Instant};
use tower::ServiceExt;

fn post_json(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    (status, common::json(resp).await)
}

async fn wait_for_status(app: &Router, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, s) = call(app, common::get("/api/v1/pipeline/status")).await;
        if s["status"] == want || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn lists_every_pipeline_with_its_schema(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let (status, body) = call(&app, common::get("/api/v1/pipelines")).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = body["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "passthrough",
            "vod",
            "streamdiffusionv2",
            "self-forcing",
            "longlive"
        ]
    );
    let sdv2 = &body["pipelines"][2];
    assert_eq!(sdv2["input"], "video");
    assert_eq!(sdv2["load_schema"]["properties"]["height"]["default"], 512);
    assert_eq!(sdv2["files"]["ready"], false);
    assert_eq!(body["pipelines"][4]["modes"], json!(["text"]));
    let pt = &body["pipelines"][0];
    assert_eq!(pt["input"], "video");
    assert_eq!(pt["modes"], json!(["video", "camera"]));
    assert_eq!(pt["load_schema"]["properties"]["height"]["default"], 512);
    assert_eq!(pt["load_schema"]["properties"]["height"]["multipleOf"], 16);
    assert_eq!(pt["runtime_schema"]["properties"]["paused"]["x-live"], true);
    assert_eq!(body["pipelines"][1]["modes"], json!(["text"]));
    assert_eq!(body["pipelines"][1]["output_fps"], 30.0);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn load_returns_at_once_and_status_follows(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let (_, s) = call(&app, common::get("/api/v1/pipeline/status")).await;
    assert_eq!(
        s,
        json!({"status": "not_loaded", "pipeline_id": null, "load_params": null})
    );

    let (status, body) = call(
        &app,
        post_json("/api/v1/pipeline/load", r#"{"pipeline_id":"vod"}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let s = wait_for_status(&app, "loaded").await;
    assert_eq!(s["pipeline_id"], "vod");

    let (status, _) = call(
        &app,
        post_json(
            "/api/v1/pipeline/load",
            r#"{"pipeline_id":"passthrough","load_params":{"width":320}}"#,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let s = wait_for_status(&app, "loaded").await;
    assert_eq!(s["pipeline_id"], "passthrough");
    assert_eq!(s["load_params"], json!({"height": 512, "width": 320}));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_load_requests_get_clear_errors(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let cases = [
        (
            r#"{"pipeline_id":"warp-drive"}"#,
            StatusCode::NOT_FOUND,
            "unknown pipeline 'warp-drive'",
        ),
        (
            r#"{"pipeline_id":"passthrough","load_params":{"height":4000}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "parameter 'height': must be between 16 and 2048, got 4000",
        ),
        (
            r#"{"pipeline_id":"passthrough","load_params":{"seed":1}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown parameter 'seed' (accepted: height, width)",
        ),
        (
            r#"{"pipeline_id":"#,
            StatusCode::BAD_REQUEST,
            "Failed to parse the request body as JSON",
        ),
        (
            r#"{"pipeline":"vod"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `pipeline`",
        ),
    ];
    for (body, want_status, want_msg) in cases {
        let (status, resp) = call(&app, post_json("/api/v1/pipeline/load", body)).await;
        assert_eq!(status, want_status, "{body}: {resp}");
        let msg = resp["error"].as_str().unwrap();
        assert!(msg.contains(want_msg), "{body}: {msg}");
    }
    let (_, s) = call(&app, common::get("/api/v1/pipeline/status")).await;
    assert_eq!(s["status"], "not_loaded");
}
