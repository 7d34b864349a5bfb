//! JSON routes outside Leptos: `/health` and the `/api/v1` REST API.

use crate::{error::ApiError, state::AppState};
use axum::{Json, Router, extract::State, http::Uri, routing::get};
use serde::Serialize;

/// `GET /health` body.
#[derive(Debug, Serialize)]
pub struct Health {
    /// Always `"healthy"` while the server answers.
    pub status: &'static str,
    /// Now, RFC 3339 UTC.
    pub timestamp: String,
    pub version: &'static str,
    pub git_commit: &'static str,
    /// When the server started, RFC 3339 UTC.
    pub server_start_time: String,
}

/// `/health` plus the REST API (`/api/v1/...`); unknown API paths answer a JSON 404.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1", axum::routing::any(api_not_found))
        .route("/api/v1/{*rest}", axum::routing::any(api_not_found))
}

async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "healthy",
        timestamp: crate::now_rfc3339(),
        version: env!("CARGO_PKG_VERSION"),
        git_commit: crate::config::GIT_COMMIT,
        server_start_time: state.started_at.to_string(),
    })
}

async fn api_not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no API route {}", uri.path()))
}
