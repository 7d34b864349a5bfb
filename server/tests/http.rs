//! The router through the app factory, without a socket.

mod common;

use axum::http::StatusCode;
use server::db::MIGRATOR;
use sqlx::SqlitePool;
use tower::ServiceExt;

#[sqlx::test(migrator = "MIGRATOR")]
async fn health_reports_healthy_with_version_and_time(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let resp = app.oneshot(common::get("/health")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = common::json(resp).await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["git_commit"], server::config::GIT_COMMIT);
    let ts = body["timestamp"].as_str().unwrap();
    assert!(
        ts.starts_with("20") && ts.ends_with('Z') && ts.contains('T'),
        "{ts}"
    );
    assert!(body["server_start_time"].as_str().unwrap() <= ts);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_api_routes_are_json_404s(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let resp = app.oneshot(common::get("/api/v1/nope")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body = common::json(resp).await;
    assert_eq!(body["error"], "no API route /api/v1/nope");
    assert_eq!(body["kind"], "not_found");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_stream_page_is_server_rendered(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let resp = app.oneshot(common::get("/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = common::text(resp).await;
    for id in [
        "header",
        "input-panel",
        "video-area",
        "prompt-dock",
        "settings-panel",
        "status-bar",
    ] {
        assert!(
            html.contains(&format!("data-testid=\"{id}\"")),
            "{id} not rendered"
        );
    }
    assert!(html.contains("Hanzo Live"));
    assert!(
        html.contains("/pkg/hanzo-live.js"),
        "hydration script missing"
    );
    // The server info resource resolved during SSR.
    assert!(html.contains(server::config::GIT_COMMIT));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_pages_are_404(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let resp = app.oneshot(common::get("/no-such-page")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(common::text(resp).await.contains("Page not found"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_server_info_function_answers(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let app = server::app(common::state(pool, dir.path()));
    let req = axum::http::Request::post("/api/server_info")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = common::json(resp).await;
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["require_login"], false);
}
