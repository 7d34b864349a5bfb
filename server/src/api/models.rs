//! `/api/v1/models/...`: which model files a pipeline still needs, and downloading them (one
//! download at a time, on the server's [`crate::downloads::Downloads`]).
//!
//! Reading the status is open to everyone; starting or cancelling a download follows the
//! rule of loading a pipeline: anyone, unless the server runs with `--require-login`.

use super::{ApiQuery, MaybeUser};
use crate::{
    downloads::{DownloadError, Planned},
    error::{ApiError, ApiJson},
    state::AppState,
};
use app::{
    downloads::{DownloadRequest, DownloadStarted, ModelStatus},
    service::ServiceError,
};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use engine::pipeline::wan::files::TextEncoderFile;
use serde::Deserialize;
use serde_json::{Map, Value};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/models/status", get(status))
        .route("/api/v1/models/download", post(download))
        .route("/api/v1/models/download/cancel", post(cancel))
}

/// `?pipeline_id=&vae_type=&encoder_vae_type=&text_encoder=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusQuery {
    pipeline_id: String,
    vae_type: Option<String>,
    encoder_vae_type: Option<String>,
    text_encoder: Option<String>,
}

/// `POST /api/v1/models/download/cancel` body: `{}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelRequest {}

fn text_encoder(id: Option<&str>) -> Result<TextEncoderFile, ApiError> {
    match id {
        None => Ok(TextEncoderFile::default()),
        Some(id) => TextEncoderFile::parse(id).ok_or_else(|| {
            ApiError::Unprocessable(format!("text_encoder: {id:?} is not fp8 or bf16"))
        }),
    }
}

/// The missing files of `pipeline_id` with these load settings, and the bytes of them already
/// on disk (off the async workers: it looks at the disk).
async fn plan(
    state: &AppState,
    pipeline_id: String,
    load_params: Value,
    te: TextEncoderFile,
) -> Result<(Vec<Planned>, u64), ApiError> {
    let pipelines = state.pipelines.clone();
    let downloads = state.downloads.clone();
    let found = tokio::task::spawn_blocking(move || {
        let needs = pipelines.needs(&pipeline_id, &load_params, te)?;
        let missing: Vec<Planned> = needs
            .iter()
            .filter(|n| n.present.is_none())
            .map(|n| Planned::from(n.artefact))
            .collect();
        let resumable = crate::downloads::resumable_bytes(downloads.models_dir(), &missing);
        Ok::<_, crate::pipelines::LoadError>((missing, resumable))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("cannot look for the model files: {e}")))??;
    Ok(found)
}

/// `GET /api/v1/models/status`: what the settings still need, and the server's download.
async fn status(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<StatusQuery>,
) -> Result<Json<ModelStatus>, ApiError> {
    let te = text_encoder(q.text_encoder.as_deref())?;
    let mut load = Map::new();
    for (key, value) in [
        ("vae_type", q.vae_type),
        ("encoder_vae_type", q.encoder_vae_type),
    ] {
        if let Some(v) = value {
            load.insert(key.into(), Value::String(v));
        }
    }
    let (missing, resumable_bytes) =
        plan(&state, q.pipeline_id.clone(), Value::Object(load), te).await?;
    Ok(Json(ModelStatus {
        pipeline_id: q.pipeline_id,
        downloaded: missing.is_empty(),
        missing: missing.iter().map(Planned::wire).collect(),
        resumable_bytes,
        progress: state.downloads.progress(),
    }))
}

fn may_download(state: &AppState, user: &MaybeUser) -> Result<(), ApiError> {
    if user.0.is_none() && state.settings.require_login {
        return Err(ServiceError::Unauthorized("sign in to download models".into()).into());
    }
    Ok(())
}

impl From<DownloadError> for ApiError {
    fn from(e: DownloadError) -> Self {
        ApiError::Conflict(e.to_string())
    }
}

/// `POST /api/v1/models/download`: 202 and the files it fetches; 200 with none when nothing
/// is missing; 409 while another download runs.
async fn download(
    State(state): State<AppState>,
    user: MaybeUser,
    ApiJson(req): ApiJson<DownloadRequest>,
) -> Result<(StatusCode, Json<DownloadStarted>), ApiError> {
    may_download(&state, &user)?;
    let te = text_encoder(req.text_encoder.as_deref())?;
    let load = if req.load_params.is_null() {
        Value::Object(Map::new())
    } else {
        req.load_params
    };
    let (files, _) = plan(&state, req.pipeline_id.clone(), load, te).await?;
    let started = DownloadStarted {
        pipeline_id: req.pipeline_id.clone(),
        files: files.iter().map(Planned::wire).collect(),
    };
    if files.is_empty() {
        return Ok((StatusCode::OK, Json(started)));
    }
    state.downloads.start(&req.pipeline_id, files)?;
    Ok((StatusCode::ACCEPTED, Json(started)))
}

/// `POST /api/v1/models/download/cancel` with a JSON body (`{}`): stops the running download
/// (409 when none runs). The JSON body makes a cross-site form or fetch need a CORS preflight,
/// which this server never grants, so another site cannot cancel a download.
async fn cancel(
    State(state): State<AppState>,
    user: MaybeUser,
    ApiJson(_): ApiJson<CancelRequest>,
) -> Result<Json<Value>, ApiError> {
    may_download(&state, &user)?;
    state.downloads.cancel()?;
    Ok(Json(
        serde_json::json!({ "message": "cancelling the download" }),
    ))
}
