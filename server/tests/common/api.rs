//! A client for the REST API through the app factory (no socket): JSON in and out, the
//! session cookie carried by hand.

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

/// The app and the address requests appear to come from.
#[derive(Clone)]
pub struct Api {
    pub app: Router,
    pub from: SocketAddr,
}

/// A response: status, headers, body (JSON when it parses, else `Value::String`).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Reply {
    /// The `error` message of a failed call.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

impl Api {
    pub fn new(app: Router) -> Self {
        Self {
            app,
            from: "127.0.0.1:40000".parse().unwrap(),
        }
    }

    /// Sends a prepared request (connect info added).
    pub async fn send(&self, mut req: Request<Body>) -> Reply {
        req.extensions_mut().insert(ConnectInfo(self.from));
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
            bytes,
        }
    }

    /// `method uri` with an optional JSON body and session cookie.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        let req = match body {
            Some(v) => b
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    /// Raw bytes as a JSON body (for malformed-input tests).
    pub async fn raw(&self, method: Method, uri: &str, cookie: Option<&str>, body: &str) -> Reply {
        let mut b = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        self.send(b.body(Body::from(body.to_owned())).unwrap())
            .await
    }

    pub async fn get(&self, uri: &str, cookie: Option<&str>) -> Reply {
        self.call(Method::GET, uri, cookie, None).await
    }

    pub async fn post(&self, uri: &str, cookie: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, uri, cookie, Some(body)).await
    }

    /// One pipeline's entry in `GET /api/v1/pipelines`.
    pub async fn pipeline(&self, id: &str) -> Value {
        let list = self.get("/api/v1/pipelines", None).await.body;
        list["pipelines"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == id))
            .unwrap_or_else(|| panic!("no pipeline {id} in {list}"))
            .clone()
    }

    /// Registers `name` (password `password-of-<name>`) and returns its cookie header value.
    pub async fn sign_up(&self, name: &str) -> String {
        let r = self
            .post(
                "/api/v1/auth/register",
                None,
                serde_json::json!({ "username": name, "password": format!("password-of-{name}") }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        cookie_of(&r.headers)
    }
}

/// The `name=value` of the session cookie a response sets.
pub fn cookie_of(headers: &HeaderMap) -> String {
    let set = headers
        .get(header::SET_COOKIE)
        .expect("no Set-Cookie")
        .to_str()
        .unwrap();
    set.split(';').next().unwrap().to_owned()
}
