//! Errors of the JSON API and of start-up.
//!
//! [`ApiError`] is what handlers return; each variant documents its HTTP status, and the body
//! is always `{"error": "<message>"}` (see `docs/api.md`). Internal causes are logged, never
//! sent to the client.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered by a JSON API route.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404 Not Found: no such route or no such row (another user's rows are also "not found").
    #[error("{0}")]
    NotFound(String),
    /// 500 Internal Server Error: a database failure. The cause is logged, not returned.
    #[error("database error")]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Database(e) = &self {
            tracing::error!(error = %e, "database error");
        }
        (status, Json(json!({ "error": self.to_string() }))).into_response()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] crate::db::DbError),
    #[error("invalid Leptos configuration: {0}")]
    Leptos(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Serve(std::io::Error),
}
