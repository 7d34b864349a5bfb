//! The Leptos server functions (what the UI calls) through the app factory, and pages that
//! server-render a signed-in user's data.

mod common;

use axum::http::{StatusCode, header};
use common::api::{Api, cookie_of};
use serde_json::{Value, json};
use server::db::MIGRATOR;
use sqlx::SqlitePool;

fn api(pool: SqlitePool, dir: &std::path::Path) -> Api {
    Api::new(server::app(common::state(pool, dir)))
}

/// Calls `/api/<endpoint>` with a JSON body.
async fn call(api: &Api, endpoint: &str, cookie: Option<&str>, body: Value) -> common::api::Reply {
    api.post(&format!("/api/{endpoint}"), cookie, body).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn server_functions_sign_in_and_scope_presets_to_their_user(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool, dir.path());
    let me = call(&api, "me", None, json!({})).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body, Value::Null, "a guest is null");

    let r = call(
        &api,
        "register",
        None,
        json!({"username": "olga", "password": "long enough"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.body["username"], "olga");
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax"),
        "{set}"
    );
    let olga = cookie_of(&r.headers);
    let me = call(&api, "me", Some(&olga), json!({})).await;
    assert_eq!(me.body["username"], "olga");

    let taken = call(
        &api,
        "register",
        None,
        json!({"username": "OLGA", "password": "long enough"}),
    )
    .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    // Server function errors are typed JSON: their kind and message.
    assert_eq!(
        taken.body,
        json!({"kind": "conflict", "message": "the username \"OLGA\" is taken"})
    );

    let preset = json!({"preset": {"name": "Mist", "pipeline_id": "passthrough", "params": {"height": 256}}});
    let created = call(&api, "presets_create", Some(&olga), preset.clone()).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let id = created.body["id"].as_i64().unwrap();
    let list = call(&api, "presets_list", Some(&olga), json!({})).await;
    assert_eq!(list.body[0]["name"], "Mist");

    // A guest: 401 with the message; another user: 404 and an empty list.
    let guest = call(&api, "presets_list", None, json!({})).await;
    assert_eq!(guest.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        guest.body,
        json!({"kind": "unauthorized", "message": "sign in first"})
    );
    let r = call(
        &api,
        "register",
        None,
        json!({"username": "pete", "password": "long enough"}),
    )
    .await;
    let pete = cookie_of(&r.headers);
    assert_eq!(
        call(&api, "presets_list", Some(&pete), json!({}))
            .await
            .body,
        json!([])
    );
    for (endpoint, body) in [
        (
            "presets_update",
            json!({"id": id, "patch": {"name": "Mine"}}),
        ),
        ("presets_duplicate", json!({"id": id})),
        ("presets_delete", json!({"id": id})),
    ] {
        let r = call(&api, endpoint, Some(&pete), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{endpoint}");
    }
    let r = call(&api, "sessions_get", Some(&pete), json!({"id": "nope"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(
        &api,
        "recordings_list",
        Some(&pete),
        json!({"page": 1, "per_page": 10}),
    )
    .await;
    assert_eq!(r.body["total"], 0);

    // Sign-out revokes the session.
    let out = call(&api, "logout", Some(&olga), json!({})).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        call(&api, "me", Some(&olga), json!({})).await.body,
        Value::Null
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn history_and_library_pages_render_the_users_rows_on_the_server(pool: SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let api = api(pool.clone(), dir.path());
    let me = api.sign_up("quinn").await;
    let uid: i64 = sqlx::query_scalar("SELECT id FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    server::service::history::open(
        &pool,
        "rendered-session",
        uid,
        "passthrough",
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    let page = api.get("/history", Some(&me)).await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.body.as_str().unwrap().to_owned();
    assert!(
        html.contains("data-session=\"rendered-session\""),
        "not rendered"
    );
    assert!(html.contains("data-testid=\"user-name\""));
    // A guest gets the sign-in prompt, not the rows.
    let guest = api.get("/history", None).await;
    let html = guest.body.as_str().unwrap();
    assert!(html.contains("data-testid=\"sign-in-prompt\""));
    assert!(!html.contains("rendered-session"));
    let lib = api.get("/library", Some(&me)).await;
    assert!(
        lib.body
            .as_str()
            .unwrap()
            .contains("data-testid=\"library-empty\"")
    );
}
