//! The SQLite store: one file, `<data-dir>/hanzo-live.db`, WAL mode, foreign keys on, the
//! root `migrations/` applied at start-up.

use sqlx::{
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};
use std::{path::Path, time::Duration};

/// The SQL migrations in the workspace's `migrations/`, embedded at compile time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// File name of the database inside the data directory.
pub const DB_FILE_NAME: &str = "hanzo-live.db";

/// Every table the first migration creates.
pub const TABLES: [&str; 5] = [
    "users",
    "auth_sessions",
    "presets",
    "sessions",
    "recordings",
];

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: String,
        source: sqlx::migrate::MigrateError,
    },
}

/// Connection options shared by the server and the tests.
pub fn connect_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
}

/// Opens (creating if needed) the database file and applies pending migrations.
pub async fn open(path: &Path) -> Result<SqlitePool, DbError> {
    let display = path.display().to_string();
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(connect_options(path))
        .await
        .map_err(|source| DbError::Open {
            path: display.clone(),
            source,
        })?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|source| DbError::Migrate {
            path: display,
            source,
        })?;
    Ok(pool)
}
