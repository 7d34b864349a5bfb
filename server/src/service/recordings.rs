//! Recordings (`recordings` + files under `<data-dir>/recordings/`).
//!
//! An upload is staged in `recordings/.incoming/`. [`store`] inserts the row in a
//! transaction, renames the staged files into place and only then commits, so a committed
//! row always has its file; a crash at any point leaves at worst a staged or unreferenced
//! file, which [`recover`] removes at the next start.

use super::{db_error, json_text, now, page_of, parse_json, presets};
use app::{
    models::{Page, Recording, RecordingMeta},
    service::{PageQuery, ServiceError},
};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};
use std::path::{Path, PathBuf};

/// Where uploads are staged, inside the recordings directory.
pub const INCOMING: &str = ".incoming";
/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Largest thumbnail.
pub const MAX_THUMBNAIL_BYTES: u64 = 2 * 1024 * 1024;

const COLUMNS: &str = "id, title, session_id, file_name, content_type, size_bytes, duration_ms, \
                       width, height, pipeline_id, prompts, params, thumbnail_file, created_at, \
                       updated_at";

/// The video containers accepted, by content type: (content type, extension, magic check).
pub fn container_for(content_type: &str) -> Option<(&'static str, &'static str)> {
    let base = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "video/webm" => Some(("video/webm", "webm")),
        "video/mp4" => Some(("video/mp4", "mp4")),
        _ => None,
    }
}

/// Whether the first bytes of a file are those of its container (EBML for WebM, an `ftyp`
/// box for MP4).
pub fn magic_matches(ext: &str, head: &[u8]) -> bool {
    match ext {
        "webm" => head.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]),
        "mp4" => head.len() >= 8 && &head[4..8] == b"ftyp",
        _ => false,
    }
}

/// A staged upload, ready to be stored.
#[derive(Debug)]
pub struct Staged {
    /// The staged video file (in [`INCOMING`]).
    pub file: PathBuf,
    pub size: u64,
    pub content_type: &'static str,
    pub ext: &'static str,
    /// A staged JPEG thumbnail, if one came with the upload.
    pub thumbnail: Option<PathBuf>,
}

fn invalid<T>(m: impl Into<String>) -> Result<T, ServiceError> {
    Err(ServiceError::Invalid(m.into()))
}

/// A trimmed title of 1–[`MAX_TITLE`] characters without control characters.
pub fn check_title(title: &str) -> Result<String, ServiceError> {
    super::check_label("title", title, MAX_TITLE)
}

/// Checks the metadata; returns the title to store.
pub fn check_meta(meta: &RecordingMeta) -> Result<String, ServiceError> {
    let title = match &meta.title {
        Some(t) => check_title(t)?,
        None => format!("Recording {}", &now()[..19].replace('T', " ")),
    };
    if let Some(d) = meta.duration_ms
        && !(0..=24 * 3600 * 1000).contains(&d)
    {
        return invalid("duration_ms must be between 0 and 86400000");
    }
    for (name, v) in [("width", meta.width), ("height", meta.height)] {
        if let Some(v) = v
            && !(1..=16384).contains(&v)
        {
            return invalid(format!("{name} must be between 1 and 16384"));
        }
    }
    if let Some(p) = &meta.pipeline_id {
        presets::check_pipeline_id(p)?;
    }
    presets::check_prompts(&meta.prompts)?;
    presets::check_params(&meta.params)?;
    Ok(title)
}

fn recording(row: &SqliteRow) -> Result<Recording, ServiceError> {
    let text = |c: &str| row.try_get::<String, _>(c).map_err(db_error);
    let opt_i = |c: &str| row.try_get::<Option<i64>, _>(c).map_err(db_error);
    Ok(Recording {
        id: row.try_get("id").map_err(db_error)?,
        title: text("title")?,
        session_id: row.try_get("session_id").map_err(db_error)?,
        content_type: text("content_type")?,
        size_bytes: row.try_get("size_bytes").map_err(db_error)?,
        duration_ms: opt_i("duration_ms")?,
        width: opt_i("width")?,
        height: opt_i("height")?,
        pipeline_id: row.try_get("pipeline_id").map_err(db_error)?,
        prompts: parse_json(&text("prompts")?, "recordings.prompts")?,
        params: parse_json(&text("params")?, "recordings.params")?,
        has_thumbnail: row
            .try_get::<Option<String>, _>("thumbnail_file")
            .map_err(db_error)?
            .is_some(),
        created_at: text("created_at")?,
        updated_at: text("updated_at")?,
    })
}

/// The stored files of one row.
#[derive(Debug, Clone)]
pub struct Files {
    pub video: PathBuf,
    pub thumbnail: Option<PathBuf>,
    pub title: String,
}

/// Stores a staged upload for the user. The session, if named, must be one of theirs.
pub async fn store(
    db: &SqlitePool,
    dir: &Path,
    user_id: i64,
    staged: Staged,
    meta: &RecordingMeta,
) -> Result<Recording, ServiceError> {
    let result = store_inner(db, dir, user_id, &staged, meta).await;
    if result.is_err() {
        // Nothing was committed: the staged files go.
        let _ = tokio::fs::remove_file(&staged.file).await;
        if let Some(t) = &staged.thumbnail {
            let _ = tokio::fs::remove_file(t).await;
        }
    }
    result
}

async fn store_inner(
    db: &SqlitePool,
    dir: &Path,
    user_id: i64,
    staged: &Staged,
    meta: &RecordingMeta,
) -> Result<Recording, ServiceError> {
    let title = check_meta(meta)?;
    let mut tx = db.begin().await.map_err(db_error)?;
    if let Some(sid) = &meta.session_id {
        let mine: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM sessions WHERE id = ? AND user_id = ?")
                .bind(sid)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
        if mine.is_none() {
            return invalid(format!("session_id: no session {sid}"));
        }
    }
    let stem = uuid::Uuid::new_v4().to_string();
    let file_name = format!("{stem}.{}", staged.ext);
    let thumb_name = staged.thumbnail.as_ref().map(|_| format!("{stem}.jpg"));
    let row = sqlx::query(&format!(
        "INSERT INTO recordings (user_id, session_id, title, file_name, content_type, size_bytes,
             duration_ms, width, height, pipeline_id, prompts, params, thumbnail_file)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(&meta.session_id)
    .bind(&title)
    .bind(&file_name)
    .bind(staged.content_type)
    .bind(i64::try_from(staged.size).unwrap_or(i64::MAX))
    .bind(meta.duration_ms)
    .bind(meta.width)
    .bind(meta.height)
    .bind(&meta.pipeline_id)
    .bind(json_text(&meta.prompts))
    .bind(json_text(&meta.params))
    .bind(&thumb_name)
    .fetch_one(&mut *tx)
    .await
    .map_err(db_error)?;
    let created = recording(&row)?;
    let io = |e: std::io::Error| ServiceError::Internal(format!("cannot store the upload: {e}"));
    let video = dir.join(&file_name);
    tokio::fs::rename(&staged.file, &video).await.map_err(io)?;
    let mut placed = vec![video];
    if let (Some(from), Some(name)) = (&staged.thumbnail, &thumb_name) {
        let to = dir.join(name);
        if let Err(e) = tokio::fs::rename(from, &to).await {
            remove_all(&placed).await;
            return Err(io(e));
        }
        placed.push(to);
    }
    if let Err(e) = tx.commit().await {
        remove_all(&placed).await;
        return Err(db_error(e));
    }
    Ok(created)
}

async fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = tokio::fs::remove_file(p).await;
    }
}

/// One page of the user's recordings, newest first.
pub async fn list(
    db: &SqlitePool,
    user_id: i64,
    q: PageQuery,
) -> Result<Page<Recording>, ServiceError> {
    let order = "created_at DESC, id DESC";
    page_of(db, "recordings", COLUMNS, order, user_id, q, recording).await
}

fn not_found(id: i64) -> ServiceError {
    ServiceError::NotFound(format!("no recording {id}"))
}

/// One of the user's recordings.
pub async fn get(db: &SqlitePool, user_id: i64, id: i64) -> Result<Recording, ServiceError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM recordings WHERE id = ? AND user_id = ?"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    .ok_or_else(|| not_found(id))?;
    recording(&row)
}

/// Where one of the user's recordings lives on disk.
pub async fn files(
    db: &SqlitePool,
    dir: &Path,
    user_id: i64,
    id: i64,
) -> Result<Files, ServiceError> {
    let row = sqlx::query(
        "SELECT file_name, thumbnail_file, title FROM recordings
         WHERE id = ? AND user_id = ?",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    .ok_or_else(|| not_found(id))?;
    let file: String = row.try_get("file_name").map_err(db_error)?;
    let thumb: Option<String> = row.try_get("thumbnail_file").map_err(db_error)?;
    Ok(Files {
        video: dir.join(file),
        thumbnail: thumb.map(|t| dir.join(t)),
        title: row.try_get("title").map_err(db_error)?,
    })
}

/// Renames one of the user's recordings.
pub async fn rename(
    db: &SqlitePool,
    user_id: i64,
    id: i64,
    title: &str,
) -> Result<Recording, ServiceError> {
    let title = check_title(title)?;
    let row = sqlx::query(&format!(
        "UPDATE recordings SET title = ? WHERE id = ? AND user_id = ? RETURNING {COLUMNS}"
    ))
    .bind(&title)
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    .ok_or_else(|| not_found(id))?;
    recording(&row)
}

/// Deletes the row, then its files.
pub async fn delete(
    db: &SqlitePool,
    dir: &Path,
    user_id: i64,
    id: i64,
) -> Result<(), ServiceError> {
    // One statement: the row goes and tells which files were its own.
    let row = sqlx::query(
        "DELETE FROM recordings WHERE id = ? AND user_id = ? RETURNING file_name, thumbnail_file",
    )
    .bind(id)
    .bind(user_id)
    .fetch_optional(db)
    .await
    .map_err(db_error)?
    .ok_or_else(|| not_found(id))?;
    let file: String = row.try_get("file_name").map_err(db_error)?;
    let thumb: Option<String> = row.try_get("thumbnail_file").map_err(db_error)?;
    for p in std::iter::once(dir.join(file)).chain(thumb.map(|t| dir.join(t))) {
        if let Err(e) = tokio::fs::remove_file(&p).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %p.display(), error = %e, "cannot delete a recording file");
        }
    }
    Ok(())
}

/// What [`recover`] cleaned up.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Staged uploads that never committed.
    pub staged_removed: usize,
    /// Files no row refers to.
    pub orphans_removed: usize,
    /// Rows whose file is gone (removed so the library never lists a broken entry).
    pub rows_removed: usize,
}

/// Makes the directory and the table agree after a crash. Run at start-up.
pub async fn recover(db: &SqlitePool, dir: &Path) -> Result<Recovery, ServiceError> {
    let io = |e: std::io::Error| ServiceError::Internal(format!("{}: {e}", dir.display()));
    let incoming = dir.join(INCOMING);
    tokio::fs::create_dir_all(&incoming).await.map_err(io)?;
    let mut report = Recovery::default();
    let mut staged = tokio::fs::read_dir(&incoming).await.map_err(io)?;
    while let Some(e) = staged.next_entry().await.map_err(io)? {
        if tokio::fs::remove_file(e.path()).await.is_ok() {
            report.staged_removed += 1;
        }
    }
    let rows = sqlx::query("SELECT id, file_name, thumbnail_file FROM recordings")
        .fetch_all(db)
        .await
        .map_err(db_error)?;
    let mut known = std::collections::HashSet::new();
    for row in &rows {
        let id: i64 = row.try_get("id").map_err(db_error)?;
        let file: String = row.try_get("file_name").map_err(db_error)?;
        let thumb: Option<String> = row.try_get("thumbnail_file").map_err(db_error)?;
        if tokio::fs::try_exists(dir.join(&file))
            .await
            .unwrap_or(false)
        {
            known.insert(file);
            known.extend(thumb);
        } else {
            tracing::warn!(id, file, "recording file missing: removing its row");
            sqlx::query("DELETE FROM recordings WHERE id = ?")
                .bind(id)
                .execute(db)
                .await
                .map_err(db_error)?;
            report.rows_removed += 1;
        }
    }
    let mut entries = tokio::fs::read_dir(dir).await.map_err(io)?;
    while let Some(e) = entries.next_entry().await.map_err(io)? {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type().await.map(|t| t.is_file()).unwrap_or(false);
        if is_file && !known.contains(&name) && tokio::fs::remove_file(e.path()).await.is_ok() {
            report.orphans_removed += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_known_by_type_and_by_their_first_bytes() {
        assert_eq!(
            container_for("video/webm;codecs=vp8"),
            Some(("video/webm", "webm"))
        );
        assert_eq!(container_for("VIDEO/MP4"), Some(("video/mp4", "mp4")));
        assert_eq!(container_for("image/png"), None);
        assert!(magic_matches("webm", &[0x1A, 0x45, 0xDF, 0xA3, 1]));
        assert!(!magic_matches("webm", b"<html>"));
        assert!(magic_matches("mp4", b"\0\0\0\x18ftypisom"));
        assert!(!magic_matches("mp4", b"\0\0"));
    }

    #[test]
    fn metadata_is_checked() {
        assert!(
            check_meta(&RecordingMeta::default())
                .unwrap()
                .starts_with("Recording 20")
        );
        let bad = |m: RecordingMeta| check_meta(&m).unwrap_err();
        assert!(matches!(
            bad(RecordingMeta {
                title: Some(" ".into()),
                ..Default::default()
            }),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(RecordingMeta {
                width: Some(0),
                ..Default::default()
            }),
            ServiceError::Invalid(_)
        ));
        assert!(matches!(
            bad(RecordingMeta {
                duration_ms: Some(-1),
                ..Default::default()
            }),
            ServiceError::Invalid(_)
        ));
    }
}
