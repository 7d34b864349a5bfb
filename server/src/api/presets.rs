//! `/api/v1/presets`.

use super::{CurrentUser, row_id};
use crate::{
    error::{ApiError, ApiJson},
    service::presets,
    state::AppState,
};
use app::models::{Preset, PresetInput, PresetPatch};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, Path, State},
    http::StatusCode,
    routing::{get, post},
};
use serde_json::{Value, json};

/// Largest body of one preset.
const MAX_BODY: usize = 256 * 1024;
/// Largest import file.
const MAX_IMPORT_BODY: usize = 8 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/presets", get(list).post(create))
        .route("/api/v1/presets/{id}", get(one).put(update).delete(remove))
        .route("/api/v1/presets/{id}/duplicate", post(duplicate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .merge(
            Router::new()
                .route("/api/v1/presets/import", post(import))
                .layer(DefaultBodyLimit::max(MAX_IMPORT_BODY)),
        )
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Value>, ApiError> {
    let presets = presets::list(&state.db, user.id).await?;
    Ok(Json(json!({ "presets": presets })))
}

async fn create(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(input): ApiJson<PresetInput>,
) -> Result<(StatusCode, Json<Preset>), ApiError> {
    let p = presets::create(&state.db, user.id, &input).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

async fn one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Preset>, ApiError> {
    let id = row_id(&id, "preset")?;
    Ok(Json(presets::get(&state.db, user.id, id).await?))
}

async fn update(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<PresetPatch>,
) -> Result<Json<Preset>, ApiError> {
    let id = row_id(&id, "preset")?;
    Ok(Json(presets::update(&state.db, user.id, id, &patch).await?))
}

async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = row_id(&id, "preset")?;
    presets::delete(&state.db, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn duplicate(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Preset>), ApiError> {
    let id = row_id(&id, "preset")?;
    let p = presets::duplicate(&state.db, user.id, id).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// Body: `{"presets": [PresetInput, ...]}` (what an export holds).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    presets: Vec<PresetInput>,
}

async fn import(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiJson(body): ApiJson<ImportBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = presets::import(&state.db, user.id, &body.presets).await?;
    Ok((StatusCode::CREATED, Json(json!({ "presets": created }))))
}
