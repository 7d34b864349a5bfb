//! The schema: every table exists, is STRICT, cascades from users; the database file is
//! created with WAL and foreign keys on.

use server::db::{self, MIGRATOR, TABLES};
use sqlx::{Row, SqlitePool};

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_table_exists_and_is_strict(pool: SqlitePool) {
    let rows = sqlx::query("SELECT name, strict FROM pragma_table_list WHERE schema = 'main'")
        .fetch_all(&pool)
        .await
        .unwrap();
    for table in TABLES {
        let row = rows
            .iter()
            .find(|r| r.get::<String, _>("name") == table)
            .unwrap_or_else(|| panic!("table {table} missing"));
        assert_eq!(row.get::<i64, _>("strict"), 1, "{table} is not STRICT");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn user_rows_cascade_and_timestamps_default(pool: SqlitePool) {
    // Every table except users points at users with ON DELETE CASCADE.
    for table in TABLES.iter().filter(|t| **t != "users") {
        let fks = sqlx::query(&format!(
            "SELECT \"table\", on_delete FROM pragma_foreign_key_list('{table}')"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            fks.iter().any(|r| r.get::<String, _>("table") == "users"
                && r.get::<String, _>("on_delete") == "CASCADE"),
            "{table} has no cascading foreign key to users"
        );
        let cols = sqlx::query(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(&pool)
            .await
            .unwrap();
        for col in ["created_at", "updated_at"] {
            assert!(
                cols.iter().any(|r| r.get::<String, _>("name") == col),
                "{table}.{col}"
            );
        }
    }

    let user_id: i64 = sqlx::query_scalar(
        "INSERT INTO users (username, password_hash) VALUES ('ada', 'x') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO presets (user_id, name, pipeline_id) VALUES (?, 'p', 'passthrough')")
        .bind(user_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO sessions (id, user_id, pipeline_id) VALUES ('s1', ?, 'passthrough')")
        .bind(user_id)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO recordings (user_id, session_id, title, file_name, content_type, size_bytes)
         VALUES (?, 's1', 't', 'f.webm', 'video/webm', 10)",
    )
    .bind(user_id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO auth_sessions (token_hash, user_id, expires_at) VALUES ('h', ?, '2099-01-01')",
    )
    .bind(user_id)
    .execute(&pool)
    .await
    .unwrap();

    let created: String = sqlx::query_scalar("SELECT created_at FROM users WHERE id = ?")
        .bind(user_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(created.len(), "2026-11-26T19:30:00.123Z".len(), "{created}");
    assert!(created.ends_with('Z'));

    // STRICT rejects a value of the wrong type.
    let bad = sqlx::query("INSERT INTO recordings (user_id, title, file_name, content_type, size_bytes) VALUES (?, 't', 'g', 'video/webm', 'big')")
        .bind(user_id)
        .execute(&pool)
        .await;
    assert!(
        bad.is_err(),
        "STRICT table accepted text in an INTEGER column"
    );

    sqlx::query("DELETE FROM users WHERE id = ?")
        .bind(user_id)
        .execute(&pool)
        .await
        .unwrap();
    for table in TABLES {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table} kept rows of a deleted user");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn updated_at_moves_on_update(pool: SqlitePool) {
    sqlx::query(
        "INSERT INTO users (username, password_hash, created_at, updated_at)
         VALUES ('bob', 'x', '2000-01-01T00:00:00.000Z', '2000-01-01T00:00:00.000Z')",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("UPDATE users SET password_hash = 'y' WHERE username = 'bob'")
        .execute(&pool)
        .await
        .unwrap();
    let (created, updated): (String, String) =
        sqlx::query_as("SELECT created_at, updated_at FROM users WHERE username = 'BOB'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(created, "2000-01-01T00:00:00.000Z");
    assert!(updated > created, "updated_at stayed {updated}");
}

#[tokio::test]
async fn open_creates_the_file_in_wal_mode_with_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(db::DB_FILE_NAME);
    assert!(!path.exists());
    let pool = db::open(&path).await.unwrap();
    assert!(path.is_file());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied as usize, db::MIGRATOR.iter().count());
    pool.close().await;

    // Opening again applies nothing new and keeps the rows.
    let pool = db::open(&path).await.unwrap();
    sqlx::query("INSERT INTO users (username, password_hash) VALUES ('c', 'x')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let pool = db::open(&path).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn an_unwritable_location_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = db::open(&file.join("hanzo-live.db")).await.unwrap_err();
    assert!(err.to_string().contains("cannot open database"), "{err}");
}
