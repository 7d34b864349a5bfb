//! Helpers shared by the server's integration tests.
#![allow(dead_code)]

use app::models::ServerInfo;
use axum::{body::Body, http::Request, response::Response};
use http_body_util::BodyExt;
use server::{
    config::{Cli, Environment, Settings},
    state::AppState,
};
use sqlx::SqlitePool;
use std::{path::Path, sync::Arc};

/// Settings for a server whose data lives in `dir`.
pub fn settings(dir: &Path) -> Settings {
    let cli = Cli {
        data_dir: Some(dir.to_owned()),
        site_root: Some(dir.join("site")),
        ..Cli::default()
    };
    Settings::resolve(&cli, None, &Environment::default()).unwrap()
}

/// Shared state around a pool that `#[sqlx::test]` created and migrated.
pub fn state(pool: SqlitePool, dir: &Path) -> AppState {
    let settings = settings(dir);
    AppState {
        leptos_options: server::leptos_options(&settings).unwrap(),
        service: Arc::new(server::service::Service::new(
            pool.clone(),
            settings.recordings_dir(),
            settings.max_recording_bytes,
        )),
        db: pool,
        info: ServerInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: server::config::GIT_COMMIT.into(),
            require_login: false,
        },
        pipelines: Arc::new(server::pipelines::PipelineManager::from_settings(&settings)),
        // No hub: a test that downloads puts its own local one here.
        downloads: Arc::new(server::downloads::Downloads::new(
            server::hub::Hub::new("http://127.0.0.1:9", None, None),
            settings.models_dir.clone(),
        )),
        settings: Arc::new(settings),
        streams: Default::default(),
        ice: Arc::new(server::ice::IceServers::new(server::ice::Provider::Stun)),
        metrics: server::metrics::SystemMetrics::fixed(Default::default()),
        started_at: server::now_rfc3339().into(),
    }
}

/// A GET request.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// The body of a response as JSON.
pub async fn json(resp: Response) -> serde_json::Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// The body of a response as text.
pub async fn text(resp: Response) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}
pub mod api;
pub mod hub;
pub mod peer;
