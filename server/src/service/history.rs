//! Stream history (`sessions`): written by the media loop, read by the History page.

use super::{db_error, json_text, now, page_of, parse_json};
use app::{
    models::{Page, ParamMap, PromptLogEntry, SessionDetail, SessionSummary},
    service::{PageQuery, ServiceError},
};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};

/// Most entries kept in one stream's prompt log (later changes are not logged).
pub const MAX_LOG_ENTRIES: i64 = 1000;
/// What an unclosed row says after a restart.
pub const INTERRUPTED: &str = "the server stopped before the stream ended";

const SUMMARY: &str =
    "id, pipeline_id, started_at, ended_at, frames_out, mean_fps, mean_latency_ms, error";

/// A stream's running figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    pub frames_out: i64,
    pub mean_fps: Option<f64>,
    pub mean_latency_ms: Option<f64>,
}

/// Opens a row for a stream that starts now, logging its initial parameters.
pub async fn open(
    db: &SqlitePool,
    id: &str,
    user_id: i64,
    pipeline_id: &str,
    load_params: &ParamMap,
    initial: &ParamMap,
) -> Result<(), ServiceError> {
    let at = now();
    let log = vec![PromptLogEntry {
        at: at.clone(),
        params: initial.clone(),
    }];
    sqlx::query(
        "INSERT INTO sessions (id, user_id, pipeline_id, load_params, prompt_log, started_at)
         VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(id)
    .bind(user_id)
    .bind(pipeline_id)
    .bind(json_text(load_params))
    .bind(json_text(&log))
    .bind(at)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Appends a parameter change (prompts included) to the log, up to [`MAX_LOG_ENTRIES`].
pub async fn log_change(db: &SqlitePool, id: &str, params: &ParamMap) -> Result<(), ServiceError> {
    let entry = PromptLogEntry {
        at: now(),
        params: params.clone(),
    };
    sqlx::query(
        "UPDATE sessions SET prompt_log = json_insert(prompt_log, '$[#]', json(?))
         WHERE id = ? AND ended_at IS NULL AND json_array_length(prompt_log) < ?",
    )
    .bind(json_text(&entry))
    .bind(id)
    .bind(MAX_LOG_ENTRIES)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Stores the latest figures of a running stream (what a restart closes it with).
pub async fn update_figures(db: &SqlitePool, id: &str, f: Figures) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE sessions SET frames_out = ?, mean_fps = ?, mean_latency_ms = ?
         WHERE id = ? AND ended_at IS NULL",
    )
    .bind(f.frames_out)
    .bind(f.mean_fps)
    .bind(f.mean_latency_ms)
    .bind(id)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Closes a row with its final figures and error, if any.
pub async fn close(
    db: &SqlitePool,
    id: &str,
    f: Figures,
    error: Option<&str>,
) -> Result<(), ServiceError> {
    sqlx::query(
        "UPDATE sessions SET ended_at = ?, frames_out = ?, mean_fps = ?, mean_latency_ms = ?,
             error = ?
         WHERE id = ? AND ended_at IS NULL",
    )
    .bind(now())
    .bind(f.frames_out)
    .bind(f.mean_fps)
    .bind(f.mean_latency_ms)
    .bind(error)
    .bind(id)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// Closes rows left open by a crash or a kill, at their last update and with their last
/// known figures. Run at start-up; returns how many.
pub async fn close_unfinished(db: &SqlitePool) -> Result<u64, ServiceError> {
    let done = sqlx::query(
        "UPDATE sessions SET ended_at = updated_at, error = COALESCE(error, ?)
         WHERE ended_at IS NULL",
    )
    .bind(INTERRUPTED)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}

fn summary(row: &SqliteRow) -> Result<SessionSummary, sqlx::Error> {
    Ok(SessionSummary {
        id: row.try_get("id")?,
        pipeline_id: row.try_get("pipeline_id")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        frames_out: row.try_get("frames_out")?,
        mean_fps: row.try_get("mean_fps")?,
        mean_latency_ms: row.try_get("mean_latency_ms")?,
        error: row.try_get("error")?,
    })
}

/// One page of the user's streams, newest first.
pub async fn list(
    db: &SqlitePool,
    user_id: i64,
    q: PageQuery,
) -> Result<Page<SessionSummary>, ServiceError> {
    let order = "started_at DESC, rowid DESC";
    page_of(db, "sessions", SUMMARY, order, user_id, q, |r| {
        summary(r).map_err(db_error)
    })
    .await
}

/// One of the user's streams with its load parameters and prompt log.
pub async fn get(db: &SqlitePool, user_id: i64, id: &str) -> Result<SessionDetail, ServiceError> {
    let row = sqlx::query(&format!(
        "SELECT {SUMMARY}, load_params, prompt_log FROM sessions WHERE id = ? AND user_id = ?"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    .ok_or_else(|| ServiceError::NotFound(format!("no session {id}")))?;
    let load: String = row.try_get("load_params").map_err(db_error)?;
    let log: String = row.try_get("prompt_log").map_err(db_error)?;
    Ok(SessionDetail {
        summary: summary(&row).map_err(db_error)?,
        load_params: parse_json(&load, "sessions.load_params")?,
        prompt_log: parse_json(&log, "sessions.prompt_log")?,
    })
}
