//! Passwords, session tokens, the session cookie and the login rate limiter.
//!
//! - Passwords are hashed with argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2,
//!   p = 1) into PHC strings.
//! - A session is a random 256-bit token in an HttpOnly, SameSite=Lax cookie (Secure when
//!   the request came over HTTPS); only its SHA-256 is stored (`auth_sessions.token_hash`).
//! - Failed logins are counted per username and per client IP over a sliding window.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use http::{HeaderMap, HeaderValue, header, request::Parts};
use sha2::{Digest, Sha256};
use std::{
    collections::{HashMap, VecDeque},
    net::{IpAddr, SocketAddr},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "hanzo_session";
/// The guest cookie's name: a random token that makes a guest's streams theirs.
pub const GUEST_COOKIE_NAME: &str = "hanzo_guest";
/// How long a session lives without being used (each use extends it).
pub const SESSION_TTL_DAYS: i64 = 30;

/// Hashes a password (argon2id, random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let salt = SaltString::encode_b64(&bytes).map_err(|e| format!("bad salt: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches the stored PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a password nobody knows, verified against when the username does not exist so
/// that a wrong username takes as long as a wrong password.
pub fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

/// A new session token (64 hex digits) and the hash stored for it.
pub fn new_token() -> Result<(String, String), String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    let token = hex(&bytes);
    let hash = token_hash(&token);
    Ok((token, hash))
}

/// What is stored for a token.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session token in the request's cookies, if any.
pub fn token_from_headers(headers: &HeaderMap) -> Option<String> {
    cookie_token(headers, COOKIE_NAME)
}

/// The guest token in the request's cookies, if any.
pub fn guest_token_from_headers(headers: &HeaderMap) -> Option<String> {
    cookie_token(headers, GUEST_COOKIE_NAME)
}

/// Cookie `name`'s value if it is a token (64 hex digits).
fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for a guest's token (for the browser session: no `Max-Age`).
pub fn guest_cookie(token: &str, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{GUEST_COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether the request reached us over HTTPS (through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').next().is_some_and(|p| p.trim() == "https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    let max_age = SESSION_TTL_DAYS * 24 * 3600;
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The client's address: the TCP peer (the server runs with connect info). Proxy headers are
/// not trusted for this.
pub fn client_ip(req: &Parts) -> Option<IpAddr> {
    req.extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Failed logins allowed per username within [`WINDOW`].
pub const MAX_FAILURES_PER_USER: usize = 5;
/// Failed logins allowed per client IP within [`WINDOW`].
pub const MAX_FAILURES_PER_IP: usize = 20;
/// The sliding window of the login limiter.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// Counts failed logins per (lower-cased) username and per IP.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn keys(username: &str, ip: Option<IpAddr>) -> [Option<(String, usize)>; 2] {
        [
            Some((
                format!("user:{}", username.to_lowercase()),
                MAX_FAILURES_PER_USER,
            )),
            ip.map(|ip| (format!("ip:{ip}"), MAX_FAILURES_PER_IP)),
        ]
    }

    /// `Err(seconds)` when either the username or the IP is over its limit.
    pub fn check(&self, username: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, max) in Self::keys(username, ip).into_iter().flatten() {
            if let Some(times) = map.get_mut(&key) {
                while times
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > WINDOW)
                {
                    times.pop_front();
                }
                if times.len() >= max {
                    let oldest = times.front().copied().unwrap_or(now);
                    let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                    return Err(wait.as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, username: &str, ip: Option<IpAddr>) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Forget idle entries so the map cannot grow without bound.
        if map.len() > 10_000 {
            map.retain(|_, t| t.back().is_some_and(|t| now.duration_since(*t) <= WINDOW));
        }
        for (key, _) in Self::keys(username, ip).into_iter().flatten() {
            map.entry(key).or_default().push_back(now);
        }
    }

    /// A successful login clears its username's count (not the IP's).
    pub fn record_success(&self, username: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("user:{}", username.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horsE", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(a, ha);
        assert_eq!(token_hash(&a), ha);
    }

    #[test]
    fn the_cookie_is_found_among_others_and_malformed_ones_are_ignored() {
        let (token, _) = new_token().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; {COOKIE_NAME}={token}; b=2")).unwrap(),
        );
        assert_eq!(token_from_headers(&h), Some(token));
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("{COOKIE_NAME}=../etc")).unwrap(),
        );
        assert_eq!(token_from_headers(&h), None);
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_https() {
        let c = session_cookie("ab", false);
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && !c.contains("Secure"));
        assert!(
            session_cookie("ab", true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        let mut h = HeaderMap::new();
        assert!(!is_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(is_https(&h));
        assert!(clear_cookie(false).to_str().unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn the_limiter_counts_usernames_case_insensitively_and_ips_separately() {
        let l = LoginLimiter::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_USER {
            assert!(l.check("Alice", Some(ip)).is_ok());
            l.record_failure("alice", Some(ip));
        }
        let wait = l.check("ALICE", None).unwrap_err();
        assert!(wait > 0 && wait <= WINDOW.as_secs());
        // Another username from the same IP is still allowed (the IP limit is higher)...
        assert!(l.check("bob", Some(ip)).is_ok());
        // ...until the IP reaches its own limit.
        for _ in 0..(MAX_FAILURES_PER_IP - MAX_FAILURES_PER_USER) {
            l.record_failure("bob2", Some(ip));
        }
        assert!(l.check("carol", Some(ip)).is_err());
        assert!(l.check("carol", Some("10.0.0.2".parse().unwrap())).is_ok());
        l.record_success("alice");
        assert!(l.check("alice", None).is_ok());
    }
}
