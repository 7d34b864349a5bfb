//! `/api/v1/recordings`: upload (multipart), list, rename, delete, and the files themselves
//! (with HTTP Range, so the player can seek).

use super::{ApiQuery, CurrentUser, PageParams, row_id};
use crate::{
    error::{ApiError, ApiJson},
    service::recordings::{self, INCOMING, MAX_THUMBNAIL_BYTES, Staged},
    state::AppState,
};
use app::{
    models::{Page, Recording, RecordingMeta},
    service::ServiceError,
};
use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, Multipart, Path, Request, State, multipart::MultipartRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use std::path::{Path as FsPath, PathBuf};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// Largest `metadata` part.
const MAX_META_BYTES: usize = 64 * 1024;
/// Room for the other parts and the multipart framing above the video's own limit.
const OVERHEAD_BYTES: u64 = MAX_THUMBNAIL_BYTES + MAX_META_BYTES as u64 + 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/recordings",
            get(list)
                .post(upload)
                // The upload enforces its own (much larger) limit while it streams to disk.
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/recordings/{id}",
            get(one)
                .patch(rename)
                .delete(remove)
                .layer(DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/api/v1/recordings/{id}/file", get(file))
        .route("/api/v1/recordings/{id}/thumbnail", get(thumbnail))
}

async fn list(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    ApiQuery(q): ApiQuery<PageParams>,
) -> Result<Json<Page<Recording>>, ApiError> {
    Ok(Json(recordings::list(&state.db, user.id, q.query()).await?))
}

async fn one(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Recording>, ApiError> {
    let id = row_id(&id, "recording")?;
    Ok(Json(recordings::get(&state.db, user.id, id).await?))
}

/// `PATCH` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    title: String,
}

async fn rename(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<RenameBody>,
) -> Result<Json<Recording>, ApiError> {
    let id = row_id(&id, "recording")?;
    Ok(Json(
        recordings::rename(&state.db, user.id, id, &body.title).await?,
    ))
}

async fn remove(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = row_id(&id, "recording")?;
    recordings::delete(&state.db, &state.service.recordings_dir, user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Files being staged for one upload; removed on drop unless [`Staging::keep`] ran.
struct Staging {
    paths: Vec<PathBuf>,
}

impl Staging {
    fn keep(mut self) {
        self.paths.clear();
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn too_large(limit: u64) -> ApiError {
    ServiceError::TooLarge(format!(
        "the recording is larger than the limit of {}",
        human_bytes(limit)
    ))
    .into()
}

fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= 1024 * MIB {
        format!("{:.1} GiB", n as f64 / (1024 * MIB) as f64)
    } else {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    }
}

/// Streams one part into a new staged file, stopping at `limit` bytes. Returns the size and
/// the first bytes (for the container check).
async fn stage_part(
    field: &mut axum::extract::multipart::Field<'_>,
    path: &FsPath,
    limit: u64,
    on_limit: impl Fn() -> ApiError,
) -> Result<(u64, Vec<u8>), ApiError> {
    let internal = |e: std::io::Error| ApiError::Internal(format!("cannot stage an upload: {e}"));
    let mut out = tokio::fs::File::create(path).await.map_err(internal)?;
    let mut size = 0u64;
    let mut head = Vec::with_capacity(16);
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::BadRequest(format!("the upload was interrupted: {e}")))?
    {
        size += chunk.len() as u64;
        if size > limit {
            return Err(on_limit());
        }
        if head.len() < 16 {
            head.extend(chunk.iter().take(16 - head.len()));
        }
        out.write_all(&chunk).await.map_err(internal)?;
    }
    out.sync_all().await.map_err(internal)?;
    Ok((size, head))
}

/// `POST /api/v1/recordings`: multipart with `file` (video/webm or video/mp4), optional
/// `metadata` (JSON, [`RecordingMeta`]) and optional `thumbnail` (image/jpeg).
async fn upload(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Recording>), ApiError> {
    let limit = state.service.max_recording_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(OVERHEAD_BYTES)) {
        return Err(too_large(limit));
    }
    let mut multipart = multipart.map_err(|e| {
        ApiError::from(ServiceError::UnsupportedMediaType(format!(
            "expected a multipart/form-data body: {}",
            e.body_text()
        )))
    })?;
    let incoming = state.service.recordings_dir.join(INCOMING);
    tokio::fs::create_dir_all(&incoming)
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {e}", incoming.display())))?;
    let stem = uuid::Uuid::new_v4().to_string();
    let mut staging = Staging { paths: vec![] };
    let mut meta = RecordingMeta::default();
    let mut video: Option<(PathBuf, u64, &'static str, &'static str)> = None;
    let mut thumb: Option<PathBuf> = None;
    let bad_part = |e: axum::extract::multipart::MultipartError| {
        ApiError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad_part)? {
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "metadata" => {
                let bytes = field.bytes().await.map_err(bad_part)?;
                if bytes.len() > MAX_META_BYTES {
                    return Err(ServiceError::TooLarge(format!(
                        "metadata must be at most {MAX_META_BYTES} bytes"
                    ))
                    .into());
                }
                meta = serde_json::from_slice(&bytes).map_err(|e| {
                    if e.is_syntax() || e.is_eof() {
                        ApiError::BadRequest(format!("metadata is not JSON: {e}"))
                    } else {
                        ApiError::Unprocessable(format!("metadata: {e}"))
                    }
                })?;
            }
            "file" if video.is_none() => {
                let ct = field.content_type().unwrap_or_default().to_owned();
                let (content_type, ext) = recordings::container_for(&ct).ok_or_else(|| {
                    ServiceError::UnsupportedMediaType(format!(
                        "the file must be video/webm or video/mp4, not {:?}",
                        if ct.is_empty() { "(none)" } else { &ct }
                    ))
                })?;
                let path = incoming.join(format!("{stem}.{ext}.part"));
                staging.paths.push(path.clone());
                let (size, head) =
                    stage_part(&mut field, &path, limit, || too_large(limit)).await?;
                if size == 0 {
                    return Err(ServiceError::Invalid("the file is empty".into()).into());
                }
                if !recordings::magic_matches(ext, &head) {
                    return Err(ServiceError::UnsupportedMediaType(format!(
                        "the file is not a {content_type} file"
                    ))
                    .into());
                }
                video = Some((path, size, content_type, ext));
            }
            "thumbnail" if thumb.is_none() => {
                let ct = field
                    .content_type()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                if ct != "image/jpeg" {
                    return Err(ServiceError::UnsupportedMediaType(
                        "the thumbnail must be image/jpeg".into(),
                    )
                    .into());
                }
                let path = incoming.join(format!("{stem}.jpg.part"));
                staging.paths.push(path.clone());
                let (_, head) = stage_part(&mut field, &path, MAX_THUMBNAIL_BYTES, || {
                    ServiceError::TooLarge("the thumbnail must be at most 2 MiB".into()).into()
                })
                .await?;
                if !head.starts_with(&[0xFF, 0xD8, 0xFF]) {
                    return Err(ServiceError::UnsupportedMediaType(
                        "the thumbnail is not a JPEG image".into(),
                    )
                    .into());
                }
                thumb = Some(path);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected part {other:?} (expected file, metadata, thumbnail, once each)"
                )));
            }
        }
    }
    let (file, size, content_type, ext) =
        video.ok_or_else(|| ApiError::BadRequest("no `file` part in the upload".into()))?;
    let staged = Staged {
        file,
        size,
        content_type,
        ext,
        thumbnail: thumb,
    };
    // From here `store` owns the staged files (it removes them itself on failure).
    staging.keep();
    let created = recordings::store(
        &state.db,
        &state.service.recordings_dir,
        user.id,
        staged,
        &meta,
    )
    .await?;
    tracing::info!(
        user = user.id,
        recording = created.id,
        size,
        "recording stored"
    );
    Ok((StatusCode::CREATED, Json(created)))
}

/// `?download=1` asks for an attachment instead of inline playback.
#[derive(Debug, Default, Deserialize)]
struct FileParams {
    #[serde(default)]
    download: Option<String>,
}

/// A file name safe for `Content-Disposition`.
fn download_name(title: &str, ext: &str) -> String {
    let stem: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ' ' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let stem = stem.trim();
    format!("{}.{ext}", if stem.is_empty() { "recording" } else { stem })
}

async fn serve(path: &FsPath, req: Request, disposition: Option<String>) -> Response {
    let mut res = match ServeFile::new(path).oneshot(req).await {
        Ok(r) => r.map(Body::new).into_response(),
        Err(never) => match never {},
    };
    let h = res.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    if let Some(d) = disposition.and_then(|d| HeaderValue::from_str(&d).ok()) {
        h.insert(header::CONTENT_DISPOSITION, d);
    }
    res
}

/// `GET /api/v1/recordings/{id}/file`: the video, with Range support.
async fn file(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FileParams>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = row_id(&id, "recording")?;
    let f = recordings::files(&state.db, &state.service.recordings_dir, user.id, id).await?;
    let ext = f
        .video
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("webm")
        .to_owned();
    let kind = if q.download.is_some_and(|d| d != "0") {
        "attachment"
    } else {
        "inline"
    };
    let name = download_name(&f.title, &ext);
    Ok(serve(&f.video, req, Some(format!("{kind}; filename=\"{name}\""))).await)
}

/// `GET /api/v1/recordings/{id}/thumbnail`: the JPEG, or 404 when there is none.
async fn thumbnail(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let id = row_id(&id, "recording")?;
    let f = recordings::files(&state.db, &state.service.recordings_dir, user.id, id).await?;
    let t = f
        .thumbnail
        .ok_or_else(|| ApiError::NotFound(format!("recording {id} has no thumbnail")))?;
    Ok(serve(&t, req, None).await)
}
