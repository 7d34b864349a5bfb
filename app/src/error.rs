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
/// status each (`docs/api.md`); [`FnError::Call`] is the call itself failing (no answer, an
/// unreadable one, arguments the server could not read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FnError {
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

impl FnError {
    pub fn message(&self) -> &str {
        match self {
            FnError::Unauthorized { message }
            | FnError::NotFound { message }
            | FnError::Conflict { message }
            | FnError::TooLarge { message }
            | FnError::UnsupportedMediaType { message }
            | FnError::Invalid { message }
            | FnError::TooManyRequests { message, .. }
            | FnError::Internal { message }
            | FnError::Call { message } => message,
        }
    }

    /// Whether signing in is the way past it (a guest asking for a user's data).
    pub fn needs_sign_in(&self) -> bool {
        matches!(self, FnError::Unauthorized { .. })
    }

    /// A failure on the server, with a message that is safe to show.
    pub fn internal(message: impl Into<String>) -> Self {
        FnError::Internal {
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for FnError {}

impl FromServerFnError for FnError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        FnError::Call {
            message: value.to_string(),
        }
    }
}

/// A failed request of the browser's to the REST API: the message (the server's `error`, or
/// why no answer came) and the HTTP status where the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    pub status: Option<u16>,
    pub message: String,
}

impl RequestError {
    /// The server's refusal with its status.
    pub fn answered(status: u16, message: impl Into<String>) -> Self {
        Self {
            status: Some(status),
            message: message.into(),
        }
    }

    /// Whether signing in is the way past it: the server said 401 (a guest where the server
    /// runs with `--require-login`).
    pub fn needs_sign_in(&self) -> bool {
        self.status == Some(401)
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// A failure on the browser's side (no server status).
impl From<String> for RequestError {
    fn from(message: String) -> Self {
        Self {
            status: None,
            message,
        }
    }
}

impl From<&str> for RequestError {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

impl From<RequestError> for String {
    fn from(e: RequestError) -> Self {
        e.message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_travel_as_kind_and_message() {
        let e = FnError::TooManyRequests {
            message: "slow down".into(),
            retry_after_s: 30,
        };
        let bytes = <FnError as FromServerFnError>::ser(&e);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap(),
            serde_json::json!({"kind": "too_many_requests", "message": "slow down", "retry_after_s": 30})
        );
        assert_eq!(<FnError as FromServerFnError>::de(bytes), e);
        // What the browser cannot read is a failed call, not a panic.
        let garbled = <FnError as FromServerFnError>::de("ServerError|old".into());
        assert!(matches!(garbled, FnError::Call { .. }), "{garbled:?}");
        assert!(!garbled.needs_sign_in());
        assert!(
            FnError::Unauthorized {
                message: "sign in first".into()
            }
            .needs_sign_in()
        );
    }

    #[test]
    fn a_request_refused_with_401_asks_for_a_sign_in_and_nothing_else_does() {
        let refused = RequestError::answered(401, "sign in to stream");
        assert!(refused.needs_sign_in());
        assert_eq!(refused.to_string(), "sign in to stream");
        assert!(!RequestError::answered(409, "no pipeline is loaded").needs_sign_in());
        // The same words from the browser's side are not the server's refusal.
        let local = RequestError::from("sign in to stream");
        assert!(!local.needs_sign_in());
        assert_eq!(String::from(local), "sign in to stream");
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_server_keeps_an_internal_errors_cause() {
        use crate::service::ServiceError;
        let e: FnError = ServiceError::Internal("disk /var/lib/x failed".into()).into();
        assert_eq!(e, FnError::internal("internal error"));
        let e: FnError = ServiceError::sign_in().into();
        assert_eq!(e.to_string(), "sign in first");
        assert!(e.needs_sign_in());
    }
}
