//! Who a stream belongs to, and who is asking.
//!
//! A stream is owned by the signed-in user who started it, or, for a guest, by the guest's
//! cookie: a random 256-bit token (`hanzo_guest`, HttpOnly, SameSite=Lax) the offer's answer
//! sets when the request has none; only its SHA-256 is kept. The session id handed out in the
//! answer is the stream's own secret (a v4 UUID from the OS's random source, sent only to its
//! owner), so controlling a guest's stream takes both the cookie and the id. Anyone else asking
//! about a stream — `PATCH`, `DELETE`, the metrics — is told it does not exist.

use crate::{api::MaybeUser, auth, error::ApiError, state::AppState};
use axum::{
    extract::FromRequestParts,
    http::{HeaderValue, request::Parts},
};

/// A stream's owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Owner {
    User(i64),
    /// The SHA-256 (hex) of the guest's token.
    Guest(String),
}

/// The identity of a request: its signed-in user and/or its guest token.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub user: Option<i64>,
    /// SHA-256 (hex) of the guest cookie's token.
    pub guest: Option<String>,
    /// Whether the request came over HTTPS (for the `Secure` cookie flag).
    pub https: bool,
}

impl Caller {
    /// Whether this caller may see and control a stream of `owner`.
    pub fn owns(&self, owner: &Owner) -> bool {
        match owner {
            Owner::User(id) => self.user == Some(*id),
            Owner::Guest(hash) => self.guest.as_deref() == Some(hash.as_str()),
        }
    }

    /// The owner of a stream this caller starts, and the guest cookie to set when the caller
    /// is a guest without one.
    pub fn new_owner(&self) -> Result<(Owner, Option<HeaderValue>), ApiError> {
        if let Some(id) = self.user {
            return Ok((Owner::User(id), None));
        }
        if let Some(hash) = &self.guest {
            return Ok((Owner::Guest(hash.clone()), None));
        }
        let (token, hash) = auth::new_token().map_err(ApiError::Internal)?;
        Ok((
            Owner::Guest(hash),
            Some(auth::guest_cookie(&token, self.https)),
        ))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let MaybeUser(user) = MaybeUser::from_request_parts(parts, state).await?;
        Ok(Caller {
            user: user.map(|u| u.id),
            guest: auth::guest_token_from_headers(&parts.headers).map(|t| auth::token_hash(&t)),
            https: auth::is_https(&parts.headers),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_owns_its_user_streams_and_its_guest_streams_only() {
        let guest = Caller {
            guest: Some("aa".into()),
            ..Caller::default()
        };
        let user = Caller {
            user: Some(7),
            guest: Some("bb".into()),
            ..Caller::default()
        };
        assert!(guest.owns(&Owner::Guest("aa".into())));
        assert!(!guest.owns(&Owner::Guest("bb".into())));
        assert!(!guest.owns(&Owner::User(7)));
        assert!(user.owns(&Owner::User(7)));
        assert!(user.owns(&Owner::Guest("bb".into())));
        assert!(!user.owns(&Owner::User(8)));
        assert!(!Caller::default().owns(&Owner::Guest(String::new())));
        // A signed-in caller's new stream is the user's; a new guest gets a cookie.
        assert_eq!(user.new_owner().unwrap(), (Owner::User(7), None));
        let (owner, cookie) = Caller::default().new_owner().unwrap();
        assert!(matches!(owner, Owner::Guest(h) if h.len() == 64));
        assert!(
            cookie
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("hanzo_guest=")
        );
    }
}
