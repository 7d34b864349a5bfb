//! `/api/v1/sessions`: the stream history.

use super::{ApiQuery, CurrentUser, PageParams};
use crate::{error::ApiError, service::history, state::AppState};
use app::models::{Page, SessionDetail, SessionSummary};
use axum::{
    Json, Router,
    extract::{Path, State},
    routing::get,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/sessions", get(list))
        .route("/api/v1/sessions/{id}", get(one))
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<Page<SessionSummary>>, ApiError> {
    Ok(Json(history::list(&state.db, user.id, q.query()).await?))
}

async fn one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<SessionDetail>, ApiError> {
    Ok(Json(history::get(&state.db, user.id, &id).await?))
}
