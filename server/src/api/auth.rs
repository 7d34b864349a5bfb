//! `/api/v1/auth/*` and `/api/v1/me`.

use super::CurrentUser;
use crate::{
    error::{ApiError, ApiJson},
    state::AppState,
};
use app::{models::User, service::Services};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::{StatusCode, header::SET_COOKIE, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;

/// Largest body of the auth routes.
const MAX_BODY: usize = 16 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// Body of register and login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

fn with_user(status: StatusCode, user: User, cookie: http::HeaderValue) -> Response {
    let mut res = (status, Json(json!({ "user": user }))).into_response();
    res.headers_mut().append(SET_COOKIE, cookie);
    res
}

async fn register(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(c): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let (user, cookie) = state
        .service
        .register(&parts, &c.username, &c.password)
        .await?;
    Ok(with_user(StatusCode::CREATED, user, cookie))
}

async fn login(
    State(state): State<AppState>,
    parts: Parts,
    ApiJson(c): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let (user, cookie) = state
        .service
        .login(&parts, &c.username, &c.password)
        .await?;
    Ok(with_user(StatusCode::OK, user, cookie))
}

async fn logout(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    let cookie = state.service.logout(&parts).await?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().append(SET_COOKIE, cookie);
    Ok(res)
}

async fn me(CurrentUser(user): CurrentUser) -> Json<serde_json::Value> {
    Json(json!({ "user": user }))
}
