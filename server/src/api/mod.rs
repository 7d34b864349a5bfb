//! The REST API of accounts, presets, history, recordings and model downloads (`/api/v1/...`).
//!
//! Every route answers JSON (`{"error": "...", "kind": "..."}` on failure, see [`ApiError`]); rows belong to
//! the signed-in user and another user's row is a 404. The same operations are the Leptos
//! server functions of [`app::api`]; both call [`crate::service`].

mod auth;
mod models;
mod presets;
mod recordings;
mod sessions;

use crate::{error::ApiError, state::AppState};
use app::{
    models::User,
    service::{PageQuery, ServiceError},
};
use axum::{
    Router,
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use serde::Deserialize;

/// Every route of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(auth::router())
        .merge(models::router())
        .merge(presets::router())
        .merge(sessions::router())
        .merge(recordings::router())
}

/// The signed-in user; a request without a valid session cookie is a 401.
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        state
            .service
            .user_from_headers(&parts.headers)
            .await?
            .map(CurrentUser)
            .ok_or_else(|| ServiceError::sign_in().into())
    }
}

/// The signed-in user, or `None` for a guest.
pub struct MaybeUser(pub Option<User>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(MaybeUser(
            state.service.user_from_headers(&parts.headers).await?,
        ))
    }
}

/// `?page=&per_page=` of the list routes (1-based; `per_page` 1–100, default 20).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    #[serde(default)]
    pub page: Option<u32>,
    #[serde(default)]
    pub per_page: Option<u32>,
}

impl PageParams {
    pub fn query(&self) -> PageQuery {
        PageQuery {
            page: self.page.unwrap_or(1),
            per_page: self.per_page.unwrap_or(0),
        }
    }
}

/// `Query<T>` whose rejection is a JSON 400.
pub struct ApiQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::BadRequest(e.body_text()))
    }
}

/// A numeric row id from the path; anything else is a 404 like a missing row.
pub fn row_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::NotFound(format!("no {what} {raw}")))
}
