//! TURN credential clients against local stubs of each provider's API.

use axum::{
    Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    routing::{get, post},
};
use serde_json::{Value, json};
use server::ice::{IceServer, IceServers, PUBLIC_STUN, Provider};
use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

type Hits = Arc<AtomicUsize>;

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

fn turn(user: &str) -> Value {
    json!([
        {"urls": ["stun:stun.cloudflare.com:3478"]},
        {"urls": ["turn:turn.example:3478?transport=udp", "turns:turn.example:5349?transport=tcp"],
         "username": user, "credential": "secret"}
    ])
}

fn stun_only() -> Vec<IceServer> {
    vec![IceServer {
        urls: vec![PUBLIC_STUN.into()],
        username: None,
        credential: None,
    }]
}

#[tokio::test]
async fn hugging_face_relay_with_bearer_token_and_ttl_and_a_cache() {
    async fn creds(
        State(hits): State<Hits>,
        headers: HeaderMap,
        Query(q): Query<HashMap<String, String>>,
    ) -> Result<Json<Value>, StatusCode> {
        hits.fetch_add(1, Ordering::SeqCst);
        if headers["authorization"] != "Bearer hf_test"
            || q.get("ttl").map(String::as_str) != Some("600")
        {
            return Err(StatusCode::UNAUTHORIZED);
        }
        Ok(Json(json!({ "iceServers": turn("hf-user") })))
    }
    let hits = Hits::default();
    let base = serve(
        Router::new()
            .route("/credentials", get(creds))
            .with_state(hits.clone()),
    )
    .await;
    let ice = IceServers::new(Provider::HuggingFace {
        url: format!("{base}/credentials"),
        token: "hf_test".into(),
    });
    let list = ice.get().await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].username.as_deref(), Some("hf-user"));
    assert_eq!(list[1].urls.len(), 2);
    ice.get().await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "credentials were not cached"
    );

    let wrong = IceServers::new(Provider::HuggingFace {
        url: format!("{base}/credentials"),
        token: "bad".into(),
    });
    assert_eq!(wrong.get().await, stun_only());
}

#[tokio::test]
async fn cloudflare_generates_ice_servers_with_the_key() {
    async fn generate(
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Result<Json<Value>, StatusCode> {
        if headers["authorization"] != "Bearer cf-token" || body["ttl"] != 600 {
            return Err(StatusCode::FORBIDDEN);
        }
        Ok(Json(json!({ "iceServers": turn("cf-user") })))
    }
    let base = serve(Router::new().route(
        "/keys/key-1/credentials/generate-ice-servers",
        post(generate),
    ))
    .await;
    let ice = IceServers::new(Provider::Cloudflare {
        api: format!("{base}/keys"),
        key_id: "key-1".into(),
        api_token: "cf-token".into(),
    });
    let list = ice.get().await;
    assert_eq!(list[1].username.as_deref(), Some("cf-user"));
    assert_eq!(list[1].credential.as_deref(), Some("secret"));
}

#[tokio::test]
async fn twilio_tokens_with_basic_auth_and_legacy_url_fields() {
    async fn tokens(headers: HeaderMap) -> Result<Json<Value>, StatusCode> {
        // base64("AC123:tw-secret")
        if headers["authorization"] != "Basic QUMxMjM6dHctc2VjcmV0" {
            return Err(StatusCode::UNAUTHORIZED);
        }
        Ok(Json(json!({
            "account_sid": "AC123", "ttl": "600",
            "ice_servers": [
                {"url": "stun:global.stun.twilio.com:3478", "urls": "stun:global.stun.twilio.com:3478"},
                {"url": "turn:global.turn.twilio.com:3478?transport=udp", "username": "tw-user", "credential": "tw-pass"}
            ]
        })))
    }
    let base = serve(Router::new().route("/Accounts/AC123/Tokens.json", post(tokens))).await;
    let ice = IceServers::new(Provider::Twilio {
        api: format!("{base}/Accounts"),
        account_sid: "AC123".into(),
        auth_token: "tw-secret".into(),
    });
    let list = ice.get().await;
    assert_eq!(list.len(), 2);
    assert_eq!(
        list[1].urls,
        vec!["turn:global.turn.twilio.com:3478?transport=udp"]
    );
    assert_eq!(list[1].username.as_deref(), Some("tw-user"));
}

#[tokio::test]
async fn failures_and_slow_providers_fall_back_to_stun() {
    async fn broken() -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }
    async fn garbage() -> &'static str {
        "not json"
    }
    async fn slow() -> Json<Value> {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Json(json!({ "iceServers": turn("late") }))
    }
    let base = serve(
        Router::new()
            .route("/broken", get(broken))
            .route("/garbage", get(garbage))
            .route("/slow", get(slow)),
    )
    .await;
    for path in ["broken", "garbage"] {
        let ice = IceServers::new(Provider::HuggingFace {
            url: format!("{base}/{path}"),
            token: "t".into(),
        });
        assert_eq!(ice.get().await, stun_only(), "{path}");
    }
    let ice = IceServers::with_timeout(
        Provider::HuggingFace {
            url: format!("{base}/slow"),
            token: "t".into(),
        },
        Duration::from_millis(300),
    );
    let started = std::time::Instant::now();
    assert_eq!(ice.get().await, stun_only());
    assert!(started.elapsed() < Duration::from_secs(3));
    // The failure is remembered: the next stream does not wait again.
    let again = std::time::Instant::now();
    assert_eq!(ice.get().await, stun_only());
    assert!(again.elapsed() < Duration::from_millis(100));
    // Nothing listening at all.
    let ice = IceServers::new(Provider::Twilio {
        api: "http://127.0.0.1:9".into(),
        account_sid: "AC".into(),
        auth_token: "x".into(),
    });
    assert_eq!(ice.get().await, stun_only());
    assert_eq!(IceServers::new(Provider::Stun).get().await, stun_only());
}
