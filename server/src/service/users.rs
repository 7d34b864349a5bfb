//! Accounts and login sessions (`users`, `auth_sessions`).

use super::{db_error, now};
use app::{models::User, service::ServiceError};
use sqlx::{Row, SqlitePool, sqlite::SqliteRow};

/// Shortest and longest usernames.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Shortest and longest passwords, in characters.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=128;

/// Checks a username: 3–32 of `A–Z a–z 0–9 _ . -`, starting with a letter or digit.
pub fn check_username(name: &str) -> Result<(), ServiceError> {
    let invalid = |m: &str| Err(ServiceError::Invalid(m.to_owned()));
    let len = name.chars().count();
    if !USERNAME_LEN.contains(&len) {
        return invalid("username must be 3 to 32 characters long");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return invalid("username may only contain letters, digits, '_', '.' and '-'");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return invalid("username must start with a letter or a digit");
    }
    Ok(())
}

/// Checks a password's length (8–128 characters).
pub fn check_password(password: &str) -> Result<(), ServiceError> {
    let len = password.chars().count();
    if len < *PASSWORD_LEN.start() {
        return Err(ServiceError::Invalid(
            "password must be at least 8 characters long".into(),
        ));
    }
    if len > *PASSWORD_LEN.end() {
        return Err(ServiceError::Invalid(
            "password must be at most 128 characters long".into(),
        ));
    }
    Ok(())
}

fn user(row: &SqliteRow) -> Result<User, sqlx::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Inserts an account; a taken name (any case) is a 409.
pub async fn create(db: &SqlitePool, username: &str, hash: &str) -> Result<User, ServiceError> {
    let row = sqlx::query(
        "INSERT INTO users (username, password_hash) VALUES (?, ?)
         RETURNING id, username, created_at",
    )
    .bind(username)
    .bind(hash)
    .fetch_one(db)
    .await;
    match row {
        Ok(r) => user(&r).map_err(db_error),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(ServiceError::Conflict(
            format!("the username {username:?} is taken"),
        )),
        Err(e) => Err(db_error(e)),
    }
}

/// The account and its password hash, by name (any case).
pub async fn find_for_login(
    db: &SqlitePool,
    username: &str,
) -> Result<Option<(User, String)>, ServiceError> {
    let row =
        sqlx::query("SELECT id, username, created_at, password_hash FROM users WHERE username = ?")
            .bind(username)
            .fetch_optional(db)
            .await
            .map_err(db_error)?;
    row.map(|r| Ok((user(&r)?, r.try_get("password_hash")?)))
        .transpose()
        .map_err(db_error)
}

/// Stores a login session for `token_hash`, valid for [`crate::auth::SESSION_TTL_DAYS`].
pub async fn create_session(
    db: &SqlitePool,
    user_id: i64,
    token_hash: &str,
    user_agent: Option<&str>,
    ip: Option<&str>,
) -> Result<(), ServiceError> {
    sqlx::query(
        "INSERT INTO auth_sessions (token_hash, user_id, expires_at, user_agent, ip)
         VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?), ?, ?)",
    )
    .bind(token_hash)
    .bind(user_id)
    .bind(format!("+{} days", crate::auth::SESSION_TTL_DAYS))
    .bind(user_agent.map(|s| s.chars().take(300).collect::<String>()))
    .bind(ip)
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(())
}

/// The user of an unexpired session. A session used more than five minutes after its last
/// use is extended (so an active user stays signed in; one write per five minutes at most).
pub async fn user_for_session(
    db: &SqlitePool,
    token_hash: &str,
) -> Result<Option<User>, ServiceError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.created_at,
                s.last_seen_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-5 minutes') AS stale
         FROM auth_sessions s JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ? AND s.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    )
    .bind(token_hash)
    .fetch_optional(db)
    .await
    .map_err(db_error)?;
    let Some(row) = row else { return Ok(None) };
    let stale: bool = row.try_get("stale").map_err(db_error)?;
    if stale {
        sqlx::query(
            "UPDATE auth_sessions SET last_seen_at = ?,
                 expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)
             WHERE token_hash = ?",
        )
        .bind(now())
        .bind(format!("+{} days", crate::auth::SESSION_TTL_DAYS))
        .bind(token_hash)
        .execute(db)
        .await
        .map_err(db_error)?;
    }
    user(&row).map(Some).map_err(db_error)
}

/// Revokes one session.
pub async fn delete_session(db: &SqlitePool, token_hash: &str) -> Result<(), ServiceError> {
    sqlx::query("DELETE FROM auth_sessions WHERE token_hash = ?")
        .bind(token_hash)
        .execute(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Removes expired sessions; returns how many.
pub async fn purge_expired_sessions(db: &SqlitePool) -> Result<u64, ServiceError> {
    let done = sqlx::query(
        "DELETE FROM auth_sessions WHERE expires_at <= strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    )
    .execute(db)
    .await
    .map_err(db_error)?;
    Ok(done.rows_affected())
}
