//! JSON routes outside Leptos: `/health` and the `/api/v1` REST API.

use crate::{
    error::{ApiError, ApiJson},
    state::AppState,
};
use axum::{
    Json, Router,
    extract::State,
    http::Uri,
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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
        .route("/api/v1/pipelines", get(list_pipelines))
        .route("/api/v1/pipeline/load", post(load_pipeline))
        .route("/api/v1/pipeline/status", get(pipeline_status))
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

/// `GET /api/v1/pipelines`: every pipeline with the JSON schema of its parameters and
/// whether its model files are present.
async fn list_pipelines(
    State(state): State<AppState>,
) -> Result<Json<app::schema::PipelineList>, ApiError> {
    let pipelines = state.pipelines.clone();
    // Looking for files touches the disk: off the async workers.
    let list = tokio::task::spawn_blocking(move || pipelines.list())
        .await
        .map_err(|e| ApiError::Internal(format!("cannot list the pipelines: {e}")))?;
    Ok(Json(app::schema::PipelineList { pipelines: list }))
}

/// `POST /api/v1/pipeline/load` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    pub pipeline_id: String,
    #[serde(default)]
    pub load_params: Value,
}

/// Starts loading; returns at once.
async fn load_pipeline(
    State(state): State<AppState>,
    crate::api::MaybeUser(user): crate::api::MaybeUser,
    ApiJson(req): ApiJson<LoadRequest>,
) -> Result<Json<Value>, ApiError> {
    if user.is_none() && state.settings.require_login {
        return Err(app::service::ServiceError::Unauthorized("sign in to stream".into()).into());
    }
    let running = state.streams.len();
    state
        .pipelines
        .load(&req.pipeline_id, &req.load_params, running)?;
    Ok(Json(
        json!({ "message": "Pipeline loading initiated successfully" }),
    ))
}

async fn pipeline_status(State(state): State<AppState>) -> Json<app::schema::PipelineStatus> {
    Json(state.pipelines.status())
}
