//! The error every server function answers with, typed on both sides of the wire: the server
//! makes it from a [`crate::service::ServiceError`] (whose HTTP status the response carries),
//! the browser matches its variants rather than its text. On the wire it is JSON:
//! `{"kind": "unauthorized", "message": "sign in first"}`.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// Why a server function failed. The first eight kinds are the server's refusals, one HTTP
/// status each (`docs/api.md`); [`ApiError::Call`] is the call itself failing (no answer, an
/// unreadable one, arguments the server could not read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiError {
    /// 401: not signed in, or the credentials are wrong.
    Unauthorized { message: String },
    /// 404: no such row for this user.
    NotFound { message: String },
    /// 409: the name is taken.
    Conflict { message: String },
    /// 413: too large.
    TooLarge { message: String },
    /// 415: not a file type the call takes.
    UnsupportedMediaType { message: String },
    /// 422: a value is out of range or malformed.
    Invalid { message: String },
    /// 429: too many attempts; retry after this many seconds.
    TooManyRequests { message: String, retry_after_s: u64 },
    /// 500: something failed on the server (the cause is in its log, not here).
    Internal { message: String },
    /// The call failed before or after the server's answer.
    Call { message: String },
}

impl ApiError {
    pub fn message(&self) -> &str {
        match self {
            ApiError::Unauthorized { message }
            | ApiError::NotFound { message }
            | ApiError::Conflict { message }
            | ApiError::TooLarge { message }
            | ApiError::UnsupportedMediaType { message }
            | ApiError::Invalid { message }
            | ApiError::TooManyRequests { message, .. }
            | ApiError::Internal { message }
            | ApiError::Call { message } => message,
        }
    }

    /// Whether signing in is the way past it (a guest asking for a user's data).
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, ApiError::Unauthorized { .. })
    }

    /// A failure on the server, with a message that is safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::Internal {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ApiError {}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        ApiError::Call {
            message: value.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_travel_as_kind_and_message() {
        let e = ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_s: 30,
        };
        let bytes = <ApiError as FromServerFnError>::ser(&e);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            serde_json::json!({"kind": "too_many_requests", "message": "slow down", "retry_after_s": 30})
        );
        assert_eq!(<ApiError as FromServerFnError>::de(bytes), e);
        // What the browser cannot read is a failed call, not a panic.
        let garbled = <ApiError as FromServerFnError>::de("ServerError|old".into());
        assert!(matches!(garbled, ApiError::Call { .. }), "{garbled:?}");
        assert!(!garbled.needs_sign_in());
        assert!(
            ApiError::Unauthorized {
                message: "sign in first".into()
            }
            .needs_sign_in()
        );
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_server_keeps_an_internal_errors_cause() {
        use crate::service::ServiceError;
        let e: ApiError = ServiceError::Internal("disk /var/lib/x failed".into()).into();
        assert_eq!(e, ApiError::internal("internal error"));
        let e: ApiError = ServiceError::sign_in().into();
        assert_eq!(e.to_string(), "sign in first");
        assert!(e.needs_sign_in());
    }
}
