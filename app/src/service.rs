//! What the server functions need from the server (feature `ssr` only).
//!
//! The `server` crate implements [`Services`] over its SQLite store and provides it through
//! the Leptos context as `Arc<dyn Services>`; [`crate::api`] calls it. The same operations
//! back the REST API, so both answer alike.

use crate::models::{
    Page, Preset, PresetInput, PresetPatch, Recording, SessionDetail, SessionSummary, User,
};
use http::{HeaderValue, request::Parts};
use std::sync::Arc;

/// Why an operation was refused. Each variant maps to one HTTP status (see `docs/api.md`).
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceError {
    /// 401: not signed in, or the credentials are wrong.
    Unauthorized(String),
    /// 404: no such row for this user (another user's rows are "not found" too).
    NotFound(String),
    /// 409: the name is taken.
    Conflict(String),
    /// 413: too large.
    TooLarge(String),
    /// 415: not a file type the route takes.
    UnsupportedMediaType(String),
    /// 422: a value is out of range or malformed.
    Invalid(String),
    /// 429: too many attempts; retry after this many seconds.
    TooManyRequests { message: String, retry_after_s: u64 },
    /// 500: something failed on the server; the cause is logged there, not sent.
    Internal(String),
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Unauthorized(m)
            | ServiceError::NotFound(m)
            | ServiceError::Conflict(m)
            | ServiceError::TooLarge(m)
            | ServiceError::UnsupportedMediaType(m)
            | ServiceError::Invalid(m)
            | ServiceError::TooManyRequests { message: m, .. } => f.write_str(m),
            ServiceError::Internal(_) => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for ServiceError {}

/// What the browser is told: the same kind and message, an internal failure's cause left in
/// the log.
impl From<ServiceError> for crate::error::FnError {
    fn from(e: ServiceError) -> Self {
        use crate::error::FnError as A;
        match e {
            ServiceError::Unauthorized(message) => A::Unauthorized { message },
            ServiceError::NotFound(message) => A::NotFound { message },
            ServiceError::Conflict(message) => A::Conflict { message },
            ServiceError::TooLarge(message) => A::TooLarge { message },
            ServiceError::UnsupportedMediaType(message) => A::UnsupportedMediaType { message },
            ServiceError::Invalid(message) => A::Invalid { message },
            ServiceError::TooManyRequests {
                message,
                retry_after_s,
            } => A::TooManyRequests {
                message,
                retry_after_s,
            },
            e @ ServiceError::Internal(_) => A::internal(e.to_string()),
        }
    }
}

impl ServiceError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            ServiceError::Unauthorized(_) => S::UNAUTHORIZED,
            ServiceError::NotFound(_) => S::NOT_FOUND,
            ServiceError::Conflict(_) => S::CONFLICT,
            ServiceError::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
            ServiceError::UnsupportedMediaType(_) => S::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::Invalid(_) => S::UNPROCESSABLE_ENTITY,
            ServiceError::TooManyRequests { .. } => S::TOO_MANY_REQUESTS,
            ServiceError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message for a request that needs a signed-in user.
    pub fn sign_in() -> Self {
        ServiceError::Unauthorized("sign in first".into())
    }
}

/// A page request: 1-based page number and page size (clamped by the server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageQuery {
    pub page: u32,
    pub per_page: u32,
}

/// The server's operations on accounts, presets, history and recordings.
///
/// `req` is the incoming request (cookies, client address); the returned header values are
/// `Set-Cookie` headers the caller must send back.
#[async_trait::async_trait]
pub trait Services: Send + Sync + 'static {
    /// The user behind the request's session cookie, if any.
    async fn current_user(&self, req: &Parts) -> Result<Option<User>, ServiceError>;
    async fn register(
        &self,
        req: &Parts,
        username: &str,
        password: &str,
    ) -> Result<(User, HeaderValue), ServiceError>;
    async fn login(
        &self,
        req: &Parts,
        username: &str,
        password: &str,
    ) -> Result<(User, HeaderValue), ServiceError>;
    /// Revokes the request's session; the header clears the cookie.
    async fn logout(&self, req: &Parts) -> Result<HeaderValue, ServiceError>;

    async fn list_presets(&self, user: &User) -> Result<Vec<Preset>, ServiceError>;
    async fn create_preset(&self, user: &User, input: PresetInput) -> Result<Preset, ServiceError>;
    async fn update_preset(
        &self,
        user: &User,
        id: i64,
        patch: PresetPatch,
    ) -> Result<Preset, ServiceError>;
    async fn duplicate_preset(&self, user: &User, id: i64) -> Result<Preset, ServiceError>;
    async fn delete_preset(&self, user: &User, id: i64) -> Result<(), ServiceError>;
    /// Creates every preset; a name already taken gets a " (2)", " (3)"… suffix.
    async fn import_presets(
        &self,
        user: &User,
        presets: Vec<PresetInput>,
    ) -> Result<Vec<Preset>, ServiceError>;

    async fn list_sessions(
        &self,
        user: &User,
        page: PageQuery,
    ) -> Result<Page<SessionSummary>, ServiceError>;
    async fn get_session(&self, user: &User, id: &str) -> Result<SessionDetail, ServiceError>;

    async fn list_recordings(
        &self,
        user: &User,
        page: PageQuery,
    ) -> Result<Page<Recording>, ServiceError>;
    async fn rename_recording(
        &self,
        user: &User,
        id: i64,
        title: &str,
    ) -> Result<Recording, ServiceError>;
    async fn delete_recording(&self, user: &User, id: i64) -> Result<(), ServiceError>;
}

/// What the server provides in the Leptos context.
pub type SharedServices = Arc<dyn Services>;
