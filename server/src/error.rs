//! Errors of the JSON API and of start-up.
//!
//! [`ApiError`] is what handlers return; each variant documents its HTTP status, and the body
//! is always `{"error": "<message>", "kind": "<kind>"}`, one kind per status, named as the
//! server functions' [`app::error::FnError`] kinds (see `docs/api.md`). Internal causes are
//! logged, never sent to the client.

use app::service::ServiceError;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// An error answered by a JSON API route.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 Bad Request: the body is not JSON, or not the JSON the route takes.
    #[error("{0}")]
    BadRequest(String),
    /// 404 Not Found: no such route or no such row (another user's rows are also "not found").
    #[error("{0}")]
    NotFound(String),
    /// 409 Conflict: the request is valid but the server is not in a state to do it (for
    /// example an offer before any pipeline is loaded).
    #[error("{0}")]
    Conflict(String),
    /// 422 Unprocessable Entity: well-formed JSON with a value out of range or unknown.
    #[error("{0}")]
    Unprocessable(String),
    /// 500 Internal Server Error: something failed on the server. The cause is logged.
    #[error("internal error")]
    Internal(String),
    /// 500 Internal Server Error: a database failure. The cause is logged, not returned.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// From the service layer: 401, 404, 409, 413, 415, 422, 429 (with `Retry-After`) or 500.
    #[error("{0}")]
    Service(#[from] app::service::ServiceError),
}

impl ApiError {
    /// The status code this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Internal(_) | ApiError::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Service(e) => e.status(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            ApiError::Database(e) => tracing::error!(error = %e, "database error"),
            ApiError::Internal(e) => tracing::error!(error = %e, "internal error"),
            ApiError::Service(ServiceError::Internal(e)) => {
                tracing::error!(error = %e, "internal error")
            }
            _ => {}
        }
        let body = json!({ "error": self.to_string(), "kind": kind(status) });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::Service(ServiceError::TooManyRequests { retry_after_s, .. }) = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        response
    }
}

/// The body's `kind` for a status: the server functions' kind for the same refusal
/// (`app::error::FnError`), `bad_request` for a 400.
pub fn kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "invalid",
        429 => "too_many_requests",
        _ => "internal",
    }
}

/// `Json<T>` whose rejection becomes an [`ApiError`] (400 for bytes that are not JSON or a
/// missing JSON content type, 422 for JSON of the wrong shape), so malformed input gets the
/// API's error shape.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        // Valid JSON of the wrong shape is 422 (as axum answers it); anything else 400.
        if r.status() == StatusCode::UNPROCESSABLE_ENTITY {
            ApiError::Unprocessable(r.body_text())
        } else if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Service(ServiceError::TooLarge(
                "the request body is too large".into(),
            ))
        } else {
            ApiError::BadRequest(r.body_text())
        }
    }
}

impl From<crate::pipelines::LoadError> for ApiError {
    fn from(e: crate::pipelines::LoadError) -> Self {
        match e {
            crate::pipelines::LoadError::UnknownPipeline(_) => ApiError::NotFound(e.to_string()),
            crate::pipelines::LoadError::Params(_) | crate::pipelines::LoadError::Files(_) => {
                ApiError::Unprocessable(e.to_string())
            }
            crate::pipelines::LoadError::Busy { .. } | crate::pipelines::LoadError::Loading(_) => {
                ApiError::Conflict(e.to_string())
            }
            crate::pipelines::LoadError::Thread(_) => ApiError::Internal(e.to_string()),
        }
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
    #[error("engine: {0}")]
    Engine(String),
    #[error("cannot check the data directory at start-up: {0:?}")]
    Recover(app::service::ServiceError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::error::FnError;

    #[test]
    fn the_rest_kinds_are_the_server_functions_kinds() {
        let message = String::new;
        for (status, e) in [
            (401, FnError::Unauthorized { message: message() }),
            (404, FnError::NotFound { message: message() }),
            (409, FnError::Conflict { message: message() }),
            (413, FnError::TooLarge { message: message() }),
            (415, FnError::UnsupportedMediaType { message: message() }),
            (422, FnError::Invalid { message: message() }),
            (
                429,
                FnError::TooManyRequests {
                    message: message(),
                    retry_after_s: 1,
                },
            ),
            (500, FnError::Internal { message: message() }),
        ] {
            let wire = serde_json::to_value(&e).unwrap();
            assert_eq!(
                wire["kind"],
                kind(StatusCode::from_u16(status).unwrap()),
                "{status}"
            );
        }
        assert_eq!(kind(StatusCode::BAD_REQUEST), "bad_request");
    }
}
