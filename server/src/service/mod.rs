//! The service layer: accounts, presets, history and recordings over SQLite.
//!
//! Each submodule is a set of plain async functions over the pool (each query has a
//! `#[sqlx::test]`); [`Service`] bundles them with the settings they need and implements
//! [`app::service::Services`], which the Leptos server functions call. The REST routes in
//! [`crate::api`] call the same functions, so both answer alike.

pub mod history;
pub mod presets;
pub mod recordings;
pub mod users;

use crate::auth::{self, LoginLimiter};
use app::{
    models::{
        DEFAULT_PER_PAGE, MAX_PER_PAGE, Page, Preset, PresetInput, PresetPatch, Recording,
        SessionDetail, SessionSummary, User,
    },
    service::{PageQuery, ServiceError, Services},
};
use http::{HeaderValue, header, request::Parts};
use serde::{Serialize, de::DeserializeOwned};
use sqlx::SqlitePool;
use std::path::PathBuf;

/// Logs a database failure and hides it from the client.
pub fn db_error(e: sqlx::Error) -> ServiceError {
    tracing::error!(error = %e, "database error");
    ServiceError::Internal(e.to_string())
}

/// Now, RFC 3339 UTC with milliseconds (the format of every timestamp column).
pub fn now() -> String {
    crate::now_rfc3339()
}

/// Serialises a value for a JSON column.
pub fn json_text<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Parses a JSON column (a malformed one is a server-side error).
pub fn parse_json<T: DeserializeOwned>(text: &str, column: &str) -> Result<T, ServiceError> {
    serde_json::from_str(text)
        .map_err(|e| ServiceError::Internal(format!("malformed JSON in {column}: {e}")))
}

/// A trimmed label (preset name, recording title): non-empty, at most `max` characters, no
/// control characters. `what` names it in the messages.
pub fn check_label(what: &str, value: &str, max: usize) -> Result<String, ServiceError> {
    let v = value.trim();
    let invalid = |m: String| Err(ServiceError::Invalid(m));
    if v.is_empty() {
        return invalid(format!("{what} must not be empty"));
    }
    if v.chars().count() > max {
        return invalid(format!("{what} must be at most {max} characters long"));
    }
    if v.chars().any(char::is_control) {
        return invalid(format!("{what} must not contain control characters"));
    }
    Ok(v.to_owned())
}

/// One page of a user's rows: `SELECT {columns} FROM {table} WHERE user_id = ? ORDER BY
/// {order}`, each row mapped by `map`, with the total count.
pub async fn page_of<T>(
    db: &SqlitePool,
    table: &str,
    columns: &str,
    order: &str,
    user_id: i64,
    q: PageQuery,
    map: impl Fn(&sqlx::sqlite::SqliteRow) -> Result<T, ServiceError>,
) -> Result<Page<T>, ServiceError> {
    let (page, per_page, offset) = page_bounds(q);
    let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table} WHERE user_id = ?"))
        .bind(user_id)
        .fetch_one(db)
        .await
        .map_err(db_error)?;
    let rows = sqlx::query(&format!(
        "SELECT {columns} FROM {table} WHERE user_id = ? ORDER BY {order} LIMIT ? OFFSET ?"
    ))
    .bind(user_id)
    .bind(i64::from(per_page))
    .bind(offset)
    .fetch_all(db)
    .await
    .map_err(db_error)?;
    Ok(Page {
        items: rows.iter().map(map).collect::<Result<_, _>>()?,
        total,
        page,
        per_page,
    })
}

/// Page number (≥ 1), page size (1–[`MAX_PER_PAGE`], 0 → default) and row offset.
pub fn page_bounds(q: PageQuery) -> (u32, u32, i64) {
    let page = q.page.max(1);
    let per_page = match q.per_page {
        0 => DEFAULT_PER_PAGE,
        n => n.min(MAX_PER_PAGE),
    };
    (page, per_page, i64::from(page - 1) * i64::from(per_page))
}

/// Accounts, presets, history and recordings, with what they need.
pub struct Service {
    pub db: SqlitePool,
    pub limiter: LoginLimiter,
    /// `<data-dir>/recordings`.
    pub recordings_dir: PathBuf,
    /// Largest recording upload.
    pub max_recording_bytes: u64,
}

impl Service {
    pub fn new(db: SqlitePool, recordings_dir: PathBuf, max_recording_bytes: u64) -> Self {
        Self {
            db,
            limiter: LoginLimiter::default(),
            recordings_dir,
            max_recording_bytes,
        }
    }

    /// Start-up housekeeping: close history rows a crash left open, drop expired sessions,
    /// reconcile the recordings directory with its table.
    pub async fn recover(&self) -> Result<(), ServiceError> {
        let closed = history::close_unfinished(&self.db).await?;
        if closed > 0 {
            tracing::warn!(
                streams = closed,
                "closed history rows left open by the last run"
            );
        }
        users::purge_expired_sessions(&self.db).await?;
        let r = recordings::recover(&self.db, &self.recordings_dir).await?;
        if r != recordings::Recovery::default() {
            tracing::warn!(
                staged = r.staged_removed,
                orphans = r.orphans_removed,
                rows = r.rows_removed,
                "cleaned up recordings after an interrupted run"
            );
        }
        Ok(())
    }

    /// The user behind a request's session cookie.
    pub async fn user_from_headers(
        &self,
        headers: &http::HeaderMap,
    ) -> Result<Option<User>, ServiceError> {
        match auth::token_from_headers(headers) {
            Some(token) => users::user_for_session(&self.db, &auth::token_hash(&token)).await,
            None => Ok(None),
        }
    }

    async fn start_session(&self, req: &Parts, user: &User) -> Result<HeaderValue, ServiceError> {
        let (token, hash) = auth::new_token().map_err(ServiceError::Internal)?;
        let agent = req
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let ip = auth::client_ip(req).map(|ip| ip.to_string());
        users::create_session(&self.db, user.id, &hash, agent, ip.as_deref()).await?;
        Ok(auth::session_cookie(&token, auth::is_https(&req.headers)))
    }

    /// Hashes off the async threads (argon2id takes tens of milliseconds by design).
    async fn blocking<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| ServiceError::Internal(format!("hashing task failed: {e}")))
    }
}

#[async_trait::async_trait]
impl Services for Service {
    async fn current_user(&self, req: &Parts) -> Result<Option<User>, ServiceError> {
        self.user_from_headers(&req.headers).await
    }

    async fn register(
        &self,
        req: &Parts,
        username: &str,
        password: &str,
    ) -> Result<(User, HeaderValue), ServiceError> {
        users::check_username(username)?;
        users::check_password(password)?;
        let pw = password.to_owned();
        let hash = Self::blocking(move || auth::hash_password(&pw))
            .await?
            .map_err(ServiceError::Internal)?;
        let user = users::create(&self.db, username, &hash).await?;
        tracing::info!(user = user.id, username = %user.username, "account created");
        let cookie = self.start_session(req, &user).await?;
        Ok((user, cookie))
    }

    async fn login(
        &self,
        req: &Parts,
        username: &str,
        password: &str,
    ) -> Result<(User, HeaderValue), ServiceError> {
        let ip = auth::client_ip(req);
        if let Err(retry_after_s) = self.limiter.check(username, ip) {
            return Err(ServiceError::TooManyRequests {
                message: format!(
                    "too many failed sign-in attempts; try again in {} min",
                    retry_after_s.div_ceil(60)
                ),
                retry_after_s,
            });
        }
        let found = users::find_for_login(&self.db, username).await?;
        let pw = password.to_owned();
        let (user, ok) = match found {
            Some((user, hash)) => {
                let ok = Self::blocking(move || auth::verify_password(&pw, &hash)).await?;
                (Some(user), ok)
            }
            None => {
                // Same work as a wrong password, so timing does not reveal the name.
                Self::blocking(move || auth::verify_password(&pw, auth::dummy_hash())).await?;
                (None, false)
            }
        };
        match user {
            Some(user) if ok => {
                self.limiter.record_success(username);
                let cookie = self.start_session(req, &user).await?;
                Ok((user, cookie))
            }
            _ => {
                self.limiter.record_failure(username, ip);
                Err(ServiceError::Unauthorized(
                    "wrong username or password".into(),
                ))
            }
        }
    }

    async fn logout(&self, req: &Parts) -> Result<HeaderValue, ServiceError> {
        if let Some(token) = auth::token_from_headers(&req.headers) {
            users::delete_session(&self.db, &auth::token_hash(&token)).await?;
        }
        Ok(auth::clear_cookie(auth::is_https(&req.headers)))
    }

    async fn list_presets(&self, user: &User) -> Result<Vec<Preset>, ServiceError> {
        presets::list(&self.db, user.id).await
    }

    async fn create_preset(&self, user: &User, input: PresetInput) -> Result<Preset, ServiceError> {
        presets::create(&self.db, user.id, &input).await
    }

    async fn update_preset(
        &self,
        user: &User,
        id: i64,
        patch: PresetPatch,
    ) -> Result<Preset, ServiceError> {
        presets::update(&self.db, user.id, id, &patch).await
    }

    async fn duplicate_preset(&self, user: &User, id: i64) -> Result<Preset, ServiceError> {
        presets::duplicate(&self.db, user.id, id).await
    }

    async fn delete_preset(&self, user: &User, id: i64) -> Result<(), ServiceError> {
        presets::delete(&self.db, user.id, id).await
    }

    async fn import_presets(
        &self,
        user: &User,
        input: Vec<PresetInput>,
    ) -> Result<Vec<Preset>, ServiceError> {
        presets::import(&self.db, user.id, &input).await
    }

    async fn list_sessions(
        &self,
        user: &User,
        page: PageQuery,
    ) -> Result<Page<SessionSummary>, ServiceError> {
        history::list(&self.db, user.id, page).await
    }

    async fn get_session(&self, user: &User, id: &str) -> Result<SessionDetail, ServiceError> {
        history::get(&self.db, user.id, id).await
    }

    async fn list_recordings(
        &self,
        user: &User,
        page: PageQuery,
    ) -> Result<Page<Recording>, ServiceError> {
        recordings::list(&self.db, user.id, page).await
    }

    async fn rename_recording(
        &self,
        user: &User,
        id: i64,
        title: &str,
    ) -> Result<Recording, ServiceError> {
        recordings::rename(&self.db, user.id, id, title).await
    }

    async fn delete_recording(&self, user: &User, id: i64) -> Result<(), ServiceError> {
        recordings::delete(&self.db, &self.recordings_dir, user.id, id).await
    }
}
