//! Recordings through the REST API: multipart upload staged then committed, listing,
//! Range requests, rename, delete (file included), limits and type checks, the other
//! user's side of every route, and the start-up reconciliation of files and rows.

mod common;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use common::api::Api;
use serde_json::{Value, json};
use server::{db::MIGRATOR, service::recordings};
use sqlx::SqlitePool;
use std::{path::Path, sync::Arc};

/// Bytes that start like a WebM file.
fn webm(len: usize) -> Vec<u8> {
    let mut v = vec![0x1A, 0x45, 0xDF, 0xA3];
    v.extend((0..len.saturating_sub(4)).map(|i| (i % 251) as u8));
    v
}

/// A JPEG header and some bytes.
fn jpeg() -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8, 0xFF, 0xE0];
    v.extend([7u8; 100]);
    v
}

/// One part: name, content type (None: a plain field), bytes.
type Part<'a> = (&'a str, Option<&'a str>, Vec<u8>);

fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "----hanzo-test-boundary".to_owned();
    let mut body = Vec::new();
    for (name, ct, bytes) in parts {
        body.extend(format!("--{boundary}\r\n").bytes());
        match ct {
            Some(ct) => body.extend(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{name}.bin\"\r\nContent-Type: {ct}\r\n\r\n"
                )
                .bytes(),
            ),
            None => body.extend(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").bytes(),
            ),
        }
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (boundary, body)
}

async fn upload(api: &Api, cookie: Option<&str>, parts: &[Part<'_>]) -> common::api::Reply {
    let (boundary, body) = multipart(parts);
    let mut b = Request::post("/api/v1/recordings").header(
        header::CONTENT_TYPE,
        format!("multipart/form-data; boundary={boundary}"),
    );
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    api.send(b.body(Body::from(body)).unwrap()).await
}

fn meta(v: Value) -> Part<'static> {
    ("metadata", None, v.to_string().into_bytes())
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().unwrap().is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn setup(pool: SqlitePool, dir: &Path, limit: Option<u64>) -> Api {
    let mut state = common::state(pool.clone(), dir);
    if let Some(limit) = limit {
        state.service = Arc::new(server::service::Service::new(
            pool,
            state.settings.recordings_dir(),
            limit,
        ));
    }
    Api::new(server::app(state))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_upload_is_listed_served_with_ranges_renamed_and_deleted(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = setup(pool.clone(), dir.path(), None);
    let me = api.sign_up("ivan").await;
    let c = Some(me.as_str());
    let video = webm(5000);
    let r = upload(
        &api,
        c,
        &[
            meta(json!({
                "title": "First take",
                "duration_ms": 3000,
                "width": 512,
                "height": 512,
                "pipeline_id": "passthrough",
                "prompts": [{"text": "neon city", "weight": 1.0}],
                "params": {"height": 512, "width": 512}
            })),
            ("file", Some("video/webm;codecs=vp8"), video.clone()),
            ("thumbnail", Some("image/jpeg"), jpeg()),
        ],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let id = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["title"], "First take");
    assert_eq!(r.body["size_bytes"], 5000);
    assert_eq!(r.body["content_type"], "video/webm");
    assert_eq!(r.body["duration_ms"], 3000);
    assert_eq!(r.body["has_thumbnail"], true);
    assert_eq!(r.body["prompts"][0]["text"], "neon city");
    let rec_dir = dir.path().join("recordings");
    let stored = files_in(&rec_dir);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(files_in(&rec_dir.join(recordings::INCOMING)).is_empty());

    let list = api.get("/api/v1/recordings", c).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], id);

    // The whole file, then a range of it.
    let file = api.get(&format!("/api/v1/recordings/{id}/file"), c).await;
    assert_eq!(file.status, StatusCode::OK);
    assert_eq!(file.bytes, video);
    assert_eq!(file.headers[header::CONTENT_TYPE], "video/webm");
    assert_eq!(file.headers[header::ACCEPT_RANGES], "bytes");
    assert!(
        file.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("inline; filename=\"First take.webm\"")
    );
    let ranged = api
        .send(
            Request::get(format!("/api/v1/recordings/{id}/file"))
                .header(header::COOKIE, &me)
                .header(header::RANGE, "bytes=100-199")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(ranged.headers[header::CONTENT_RANGE], "bytes 100-199/5000");
    assert_eq!(ranged.bytes, video[100..200]);
    let dl = api
        .get(&format!("/api/v1/recordings/{id}/file?download=1"), c)
        .await;
    assert!(
        dl.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .starts_with("attachment;")
    );
    let thumb = api
        .get(&format!("/api/v1/recordings/{id}/thumbnail"), c)
        .await;
    assert_eq!(thumb.status, StatusCode::OK);
    assert_eq!(thumb.bytes, jpeg());

    let renamed = api
        .call(
            Method::PATCH,
            &format!("/api/v1/recordings/{id}"),
            c,
            Some(json!({"title": "  Best take "})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.body["title"], "Best take");
    let bad = api
        .call(
            Method::PATCH,
            &format!("/api/v1/recordings/{id}"),
            c,
            Some(json!({"title": "t".repeat(201)})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.error(), "title must be at most 200 characters long");

    let del = api
        .call(Method::DELETE, &format!("/api/v1/recordings/{id}"), c, None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(files_in(&rec_dir).is_empty(), "files stay after delete");
    assert_eq!(
        api.get(&format!("/api/v1/recordings/{id}"), c).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_uploads_are_refused_and_leave_nothing(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = setup(pool.clone(), dir.path(), Some(4096));
    let me = api.sign_up("judy").await;
    let c = Some(me.as_str());
    let cases: Vec<(Vec<Part>, StatusCode, &str)> = vec![
        (
            vec![("file", Some("video/webm"), webm(5000))],
            StatusCode::PAYLOAD_TOO_LARGE,
            "the recording is larger than the limit of 0.0 MiB",
        ),
        (
            vec![("file", Some("image/png"), webm(100))],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the file must be video/webm or video/mp4, not \"image/png\"",
        ),
        (
            vec![(
                "file",
                Some("video/webm"),
                b"<html>not a video</html>".to_vec(),
            )],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the file is not a video/webm file",
        ),
        (
            vec![("file", Some("video/webm"), vec![])],
            StatusCode::UNPROCESSABLE_ENTITY,
            "the file is empty",
        ),
        (
            vec![meta(json!({"title": "x"}))],
            StatusCode::BAD_REQUEST,
            "no `file` part in the upload",
        ),
        (
            vec![
                ("metadata", None, b"{oops".to_vec()),
                ("file", Some("video/webm"), webm(100)),
            ],
            StatusCode::BAD_REQUEST,
            "metadata is not JSON",
        ),
        (
            vec![
                meta(json!({"width": -5})),
                ("file", Some("video/webm"), webm(100)),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "width must be between 1 and 16384",
        ),
        (
            vec![
                meta(json!({"title": "x", "colour": 1})),
                ("file", Some("video/webm"), webm(100)),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown field `colour`",
        ),
        (
            vec![
                meta(json!({"session_id": "not-mine"})),
                ("file", Some("video/webm"), webm(100)),
            ],
            StatusCode::UNPROCESSABLE_ENTITY,
            "session_id: no session not-mine",
        ),
        (
            vec![
                ("file", Some("video/webm"), webm(100)),
                ("thumbnail", Some("image/png"), jpeg()),
            ],
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the thumbnail must be image/jpeg",
        ),
        (
            vec![("extra", None, b"1".to_vec())],
            StatusCode::BAD_REQUEST,
            "unexpected part \"extra\"",
        ),
    ];
    for (parts, status, message) in cases {
        let r = upload(&api, c, &parts).await;
        assert_eq!(r.status, status, "{message}: {:?}", r.body);
        assert!(
            r.error().contains(message),
            "want {message:?}, got {:?}",
            r.error()
        );
    }
    // Not multipart at all.
    let r = api
        .post("/api/v1/recordings", c, json!({"file": "x"}))
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A declared length over the limit is refused before the body is read.
    let (boundary, body) = multipart(&[("file", Some("video/webm"), webm(10))]);
    let r = api
        .send(
            Request::post("/api/v1/recordings")
                .header(header::COOKIE, &me)
                .header(
                    header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .header(header::CONTENT_LENGTH, (10u64 << 30).to_string())
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let rec_dir = dir.path().join("recordings");
    assert!(files_in(&rec_dir).is_empty(), "{:?}", files_in(&rec_dir));
    assert!(files_in(&rec_dir.join(recordings::INCOMING)).is_empty());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recordings")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    // Guests cannot upload.
    let r = upload(&api, None, &[("file", Some("video/webm"), webm(100))]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_users_recording_is_not_found_on_every_route(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = setup(pool, dir.path(), None);
    let owner = api.sign_up("kate").await;
    let other = api.sign_up("leo").await;
    let r = upload(
        &api,
        Some(&owner),
        &[
            ("file", Some("video/webm"), webm(300)),
            ("thumbnail", Some("image/jpeg"), jpeg()),
        ],
    )
    .await;
    let id = r.body["id"].as_i64().unwrap();
    let base = format!("/api/v1/recordings/{id}");
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, base.clone(), None),
        (
            Method::PATCH,
            base.clone(),
            Some(json!({"title": "mine now"})),
        ),
        (Method::DELETE, base.clone(), None),
        (Method::GET, format!("{base}/file"), None),
        (Method::GET, format!("{base}/thumbnail"), None),
    ];
    for (method, uri, body) in &routes {
        let r = api
            .call(method.clone(), uri, Some(&other), body.clone())
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {uri}");
        assert_eq!(r.error(), format!("no recording {id}"));
        let r = api.call(method.clone(), uri, None, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    assert_eq!(
        api.get("/api/v1/recordings", Some(&other)).await.body["total"],
        0
    );
    assert_eq!(
        api.get("/api/v1/recordings", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Still there for the owner.
    let mine = api.get(&format!("{base}/file"), Some(&owner)).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.bytes.len(), 300);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn start_up_recovery_removes_staged_orphaned_and_fileless_entries(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let rec_dir = dir.path().join("recordings");
    let api = setup(pool.clone(), dir.path(), None);
    let me = api.sign_up("mia").await;
    let keep = upload(&api, Some(&me), &[("file", Some("video/webm"), webm(64))]).await;
    let lost = upload(
        &api,
        Some(&me),
        &[("file", Some("video/mp4"), {
            let mut v = b"\0\0\0\x18ftypisom".to_vec();
            v.extend([0u8; 50]);
            v
        })],
    )
    .await;
    assert_eq!(lost.status, StatusCode::CREATED, "{:?}", lost.body);
    // A crash mid-upload, a file without a row, a row without a file.
    std::fs::write(
        rec_dir.join(recordings::INCOMING).join("x.webm.part"),
        b"half",
    )
    .unwrap();
    std::fs::write(rec_dir.join("stray.webm"), b"no row").unwrap();
    let lost_file: String = sqlx::query_scalar("SELECT file_name FROM recordings WHERE id = ?")
        .bind(lost.body["id"].as_i64().unwrap())
        .fetch_one(&pool)
        .await
        .unwrap();
    std::fs::remove_file(rec_dir.join(lost_file)).unwrap();

    let report = recordings::recover(&pool, &rec_dir).await.unwrap();
    assert_eq!(
        report,
        recordings::Recovery {
            staged_removed: 1,
            orphans_removed: 1,
            rows_removed: 1
        }
    );
    let list = api.get("/api/v1/recordings", Some(&me)).await;
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["items"][0]["id"], keep.body["id"]);
    assert_eq!(files_in(&rec_dir).len(), 1);
}
