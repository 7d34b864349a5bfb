//! Accounts and presets through the REST API (app factory, real SQLite): sign-up rules,
//! cookies, login limits, revocation, and every preset route from the owner's side, the
//! other user's side (404) and a guest's (401).

mod common;

use axum::http::{Method, StatusCode, header};
use common::api::{Api, cookie_of};
use serde_json::{Value, json};
use server::db::MIGRATOR;
use sqlx::SqlitePool;

fn api(pool: SqlitePool, dir: &std::path::Path) -> Api {
    Api::new(server::app(common::state(pool, dir)))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sign_up_sets_an_http_only_cookie_and_me_answers_with_the_user(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool.clone(), dir.path());
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "Alice", "password": "long enough" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["user"]["username"], "Alice");
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("hanzo_session="), "{set}");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP must not set Secure: {set}"
    );
    let cookie = cookie_of(&r.headers);

    let me = api.get("/api/v1/me", Some(&cookie)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["user"]["username"], "Alice");
    assert_eq!(
        api.get("/api/v1/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let forged = format!("hanzo_session={}", "0".repeat(64));
    assert_eq!(
        api.get("/api/v1/me", Some(&forged)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The password is stored as argon2id, the token only as its hash.
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let token = cookie.split_once('=').unwrap().1;
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM auth_sessions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_ne!(stored, token);
    assert_eq!(stored, server::auth::token_hash(token));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_cookie_is_secure_behind_an_https_proxy(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool, dir.path());
    let req = axum::http::Request::post("/api/v1/auth/register")
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-forwarded-proto", "https")
        .body(axum::body::Body::from(
            json!({ "username": "bob", "password": "long enough" }).to_string(),
        ))
        .unwrap();
    let r = api.send(req).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(
        r.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sign_up_rules_have_clear_messages(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool, dir.path());
    let cases = [
        (
            "ab",
            "long enough",
            422,
            "username must be 3 to 32 characters long",
        ),
        ("a b c", "long enough", 422, "username may only contain"),
        (
            "_alice",
            "long enough",
            422,
            "must start with a letter or a digit",
        ),
        (
            "alice",
            "short",
            422,
            "password must be at least 8 characters long",
        ),
    ];
    for (username, password, status, message) in cases {
        let r = api
            .post(
                "/api/v1/auth/register",
                None,
                json!({ "username": username, "password": password }),
            )
            .await;
        assert_eq!(r.status.as_u16(), status, "{username}: {:?}", r.body);
        assert!(r.error().contains(message), "{username}: {}", r.error());
    }
    let long = "p".repeat(129);
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "alice", "password": long }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("at most 128"));
    api.sign_up("alice").await;
    let r = api
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "ALICE", "password": "long enough" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.error().contains("is taken"), "{}", r.error());
    // Malformed bodies.
    let r = api
        .raw(Method::POST, "/api/v1/auth/register", None, "{not json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .post("/api/v1/auth/register", None, json!({ "username": "x" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let huge = json!({ "username": "bob", "password": "p".repeat(20_000) });
    let r = api.post("/api/v1/auth/register", None, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{:?}", r.body);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn login_logout_and_revocation(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool.clone(), dir.path());
    let first = api.sign_up("carol").await;
    let wrong = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "carol", "password": "wrong password" }),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), "wrong username or password");
    let nobody = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "nobody", "password": "whatever1" }),
        )
        .await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);
    assert_eq!(nobody.error(), wrong.error(), "no hint that a name exists");

    let ok = api
        .post(
            "/api/v1/auth/login",
            None,
            json!({ "username": "CAROL", "password": "password-of-carol" }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let second = cookie_of(&ok.headers);
    assert_ne!(first, second);

    // Logging out revokes that session only.
    let out = api
        .call(Method::POST, "/api/v1/auth/logout", Some(&second), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(
        out.headers[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(
        api.get("/api/v1/me", Some(&second)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.get("/api/v1/me", Some(&first)).await.status,
        StatusCode::OK
    );

    // An expired session is refused even though its row exists.
    sqlx::query("UPDATE auth_sessions SET expires_at = '2000-01-01T00:00:00.000Z'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        api.get("/api/v1/me", Some(&first)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn failed_logins_are_limited_per_username_and_per_ip(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let mut api = api(pool, dir.path());
    api.sign_up("dave").await;
    let attempt = |api: &Api, user: &'static str, pw: &'static str| {
        let api = api.clone();
        async move {
            api.post(
                "/api/v1/auth/login",
                None,
                json!({ "username": user, "password": pw }),
            )
            .await
        }
    };
    for _ in 0..server::auth::MAX_FAILURES_PER_USER {
        assert_eq!(
            attempt(&api, "dave", "bad password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Now even the right password waits, from any address.
    api.from = "10.1.1.1:5000".parse().unwrap();
    let r = attempt(&api, "dave", "password-of-dave").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", r.body);
    assert!(r.error().contains("too many failed sign-in attempts"));
    let retry: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60);

    // One address guessing many names is stopped too.
    api.from = "10.2.2.2:5000".parse().unwrap();
    let names = [
        "u01", "u02", "u03", "u04", "u05", "u06", "u07", "u08", "u09", "u10",
    ];
    let mut statuses = vec![];
    for round in 0..3 {
        for n in names {
            let _ = round;
            statuses.push(attempt(&api, n, "bad password").await.status);
        }
    }
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(limited, 30 - server::auth::MAX_FAILURES_PER_IP);
}

/// A preset body.
fn preset(name: &str) -> Value {
    json!({
        "name": name,
        "pipeline_id": "passthrough",
        "prompts": [{ "text": "a sunset over the sea", "weight": 1.0 }],
        "params": { "height": 256, "width": 384 }
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn presets_round_trip_for_their_owner(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool, dir.path());
    let me = api.sign_up("erin").await;
    let c = Some(me.as_str());
    let created = api.post("/api/v1/presets", c, preset("Sunset")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["params"]["width"], 384);
    assert_eq!(created.body["prompts"][0]["text"], "a sunset over the sea");

    let dup = api.post("/api/v1/presets", c, preset("Sunset")).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert!(dup.error().contains("already exists"));

    let copy = api
        .call(
            Method::POST,
            &format!("/api/v1/presets/{id}/duplicate"),
            c,
            None,
        )
        .await;
    assert_eq!(copy.status, StatusCode::CREATED);
    assert_eq!(copy.body["name"], "Sunset (copy)");

    let renamed = api
        .call(
            Method::PUT,
            &format!("/api/v1/presets/{id}"),
            c,
            Some(json!({ "name": "Dusk" })),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{:?}", renamed.body);
    assert_eq!(renamed.body["name"], "Dusk");
    assert_eq!(renamed.body["params"]["height"], 256, "other fields kept");

    let list = api.get("/api/v1/presets", c).await;
    let names: Vec<&str> = list.body["presets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Dusk", "Sunset (copy)"]);

    let imported = api
        .post(
            "/api/v1/presets/import",
            c,
            json!({ "presets": [preset("Dusk"), preset("Night")] }),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{:?}", imported.body);
    assert_eq!(imported.body["presets"][0]["name"], "Dusk (2)");
    assert_eq!(imported.body["presets"][1]["name"], "Night");

    let one = api.get(&format!("/api/v1/presets/{id}"), c).await;
    assert_eq!(one.body["name"], "Dusk");
    let del = api
        .call(Method::DELETE, &format!("/api/v1/presets/{id}"), c, None)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let gone = api.get(&format!("/api/v1/presets/{id}"), c).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.get("/api/v1/presets/abc", c).await.status,
        StatusCode::NOT_FOUND
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn preset_input_errors(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool, dir.path());
    let me = api.sign_up("frank").await;
    let c = Some(me.as_str());
    let r = api
        .raw(Method::POST, "/api/v1/presets", c, "{\"name\": ")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let mut unknown = preset("x");
    unknown["colour"] = json!("red");
    let r = api.post("/api/v1/presets", c, unknown).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("colour"), "{}", r.error());
    let r = api
        .post("/api/v1/presets", c, preset(&"n".repeat(101)))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error(), "name must be at most 100 characters long");
    let mut long_prompt = preset("p");
    long_prompt["prompts"][0]["text"] = json!("t".repeat(2001));
    let r = api.post("/api/v1/presets", c, long_prompt).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("prompts[0].text"));
    let mut big = preset("big");
    big["params"]["blob"] = json!("x".repeat(40 * 1024));
    let r = api.post("/api/v1/presets", c, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let mut huge = preset("huge");
    huge["params"]["blob"] = json!("x".repeat(300 * 1024));
    let r = api.post("/api/v1/presets", c, huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.error(), "the request body is too large");
    let r = api
        .post("/api/v1/presets/import", c, json!({ "presets": [] }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = api
        .post(
            "/api/v1/presets/import",
            c,
            json!({ "presets": [preset("ok"), preset("")] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.error(), "preset 2: name must not be empty");
    assert_eq!(
        api.get("/api/v1/presets", c).await.body["presets"],
        json!([]),
        "a failed import creates nothing"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn presets_of_another_user_are_not_found_and_guests_are_unauthorized(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool, dir.path());
    let owner = api.sign_up("grace").await;
    let other = api.sign_up("heidi").await;
    let id = api
        .post("/api/v1/presets", Some(&owner), preset("Mine"))
        .await
        .body["id"]
        .as_i64()
        .unwrap();
    let one = format!("/api/v1/presets/{id}");
    let dup = format!("/api/v1/presets/{id}/duplicate");
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, &one, None),
        (Method::PUT, &one, Some(json!({ "name": "Stolen" }))),
        (Method::DELETE, &one, None),
        (Method::POST, &dup, None),
    ];
    for (method, uri, body) in &routes {
        let r = api
            .call(method.clone(), uri, Some(&other), body.clone())
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {:?}",
            r.body
        );
        assert_eq!(r.error(), format!("no preset {id}"));
        let r = api.call(method.clone(), uri, None, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    assert_eq!(
        api.get("/api/v1/presets", Some(&other)).await.body["presets"],
        json!([])
    );
    for (method, uri) in [
        (Method::GET, "/api/v1/presets"),
        (Method::POST, "/api/v1/presets"),
        (Method::POST, "/api/v1/presets/import"),
    ] {
        let r = api.call(method, uri, None, Some(preset("x"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.error(), "sign in first");
    }
    // The owner's preset is untouched.
    let mine = api.get(&one, Some(&owner)).await;
    assert_eq!(mine.body["name"], "Mine");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sessions_are_extended_when_used_and_purged_when_expired(pool: SqlitePool) {
    use server::service::users;
    let u = users::create(&pool, "ivy", "$argon2id$x").await.unwrap();
    users::create_session(&pool, u.id, "live", Some("agent"), Some("127.0.0.1"))
        .await
        .unwrap();
    users::create_session(&pool, u.id, "old", None, None)
        .await
        .unwrap();
    // "live" was last seen an hour ago and expires tomorrow: using it extends it.
    sqlx::query(
        "UPDATE auth_sessions SET last_seen_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour'),
             expires_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 day') WHERE token_hash = 'live'",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE auth_sessions SET expires_at = '2001-01-01T00:00:00.000Z' WHERE token_hash = 'old'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        users::user_for_session(&pool, "live").await.unwrap(),
        Some(u.clone())
    );
    let expires: String =
        sqlx::query_scalar("SELECT expires_at FROM auth_sessions WHERE token_hash = 'live'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let in_29_days: String =
        sqlx::query_scalar("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+29 days')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(expires > in_29_days, "{expires} not extended");
    assert_eq!(users::user_for_session(&pool, "old").await.unwrap(), None);
    assert_eq!(users::purge_expired_sessions(&pool).await.unwrap(), 1);
    let (_, found) = users::find_for_login(&pool, "IVY").await.unwrap().unwrap();
    assert_eq!(found, "$argon2id$x");
    assert!(
        users::find_for_login(&pool, "nobody")
            .await
            .unwrap()
            .is_none()
    );
    users::delete_session(&pool, "live").await.unwrap();
    assert_eq!(users::user_for_session(&pool, "live").await.unwrap(), None);
}
