//! ICE servers for both peers: TURN credentials from a provider when one is configured,
//! else public STUN. The browser gets the same list from `/api/v1/webrtc/ice-servers`.
//!
//! | environment | provider |
//! |---|---|
//! | `HF_TOKEN` | Cloudflare TURN through Hugging Face's relay (`turn.fastrtc.org`) |
//! | `CLOUDFLARE_TURN_KEY_ID` + `CLOUDFLARE_TURN_KEY_API_TOKEN` | Cloudflare Realtime TURN directly |
//! | `TWILIO_ACCOUNT_SID` + `TWILIO_AUTH_TOKEN` | Twilio Network Traversal |
//! | none | `stun:stun.l.google.com:19302` |
//!
//! Credentials are cached for half their lifetime. A fetch that fails or takes longer than
//! [`FETCH_TIMEOUT`] logs a warning and falls back to STUN for [`RETRY_AFTER`], so a stream
//! start waits on a broken provider at most once in that time.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    sync::Mutex,
    time::{Duration, Instant},
};
use webrtc::peer_connection::RTCIceServer;

/// Longest wait for a credentials service.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Lifetime asked for (seconds).
pub const CREDENTIAL_TTL_SECS: u64 = 600;
/// How long a failed fetch is remembered before the provider is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// The public STUN server used without a provider.
pub const PUBLIC_STUN: &str = "stun:stun.l.google.com:19302";

/// Production endpoints (tests point them at local stubs).
pub const HF_TURN_URL: &str = "https://turn.fastrtc.org/credentials";
pub const CLOUDFLARE_API: &str = "https://rtc.live.cloudflare.com/v1/turn/keys";
pub const TWILIO_API: &str = "https://api.twilio.com/2010-04-01/Accounts";

/// Where TURN credentials come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Provider {
    /// `GET {url}?ttl=N`, `Authorization: Bearer <HF token>` → `{"iceServers": [...]}`.
    HuggingFace { url: String, token: String },
    /// `POST {api}/{key_id}/credentials/generate-ice-servers`, bearer API token, body
    /// `{"ttl": N}` → `{"iceServers": [...]}`.
    Cloudflare {
        api: String,
        key_id: String,
        api_token: String,
    },
    /// `POST {api}/{sid}/Tokens.json`, basic auth `sid:token` →
    /// `{"ice_servers": [{"urls", "username", "credential"}], ...}`.
    Twilio {
        api: String,
        account_sid: String,
        auth_token: String,
    },
    /// Public STUN only.
    Stun,
}

impl Provider {
    /// Picks the provider from the environment (first match in the table above).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if let Some(token) = var("HF_TOKEN") {
            return Provider::HuggingFace {
                url: HF_TURN_URL.into(),
                token,
            };
        }
        if let (Some(key_id), Some(api_token)) = (
            var("CLOUDFLARE_TURN_KEY_ID"),
            var("CLOUDFLARE_TURN_KEY_API_TOKEN"),
        ) {
            return Provider::Cloudflare {
                api: CLOUDFLARE_API.into(),
                key_id,
                api_token,
            };
        }
        if let (Some(account_sid), Some(auth_token)) =
            (var("TWILIO_ACCOUNT_SID"), var("TWILIO_AUTH_TOKEN"))
        {
            return Provider::Twilio {
                api: TWILIO_API.into(),
                account_sid,
                auth_token,
            };
        }
        Provider::Stun
    }

    pub fn name(&self) -> &'static str {
        match self {
            Provider::HuggingFace { .. } => "huggingface",
            Provider::Cloudflare { .. } => "cloudflare",
            Provider::Twilio { .. } => "twilio",
            Provider::Stun => "stun",
        }
    }
}

/// One ICE server, in the browser's `RTCIceServer` shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    pub fn to_rtc(&self) -> RTCIceServer {
        RTCIceServer {
            urls: self.urls.clone(),
            username: self.username.clone().unwrap_or_default(),
            credential: self.credential.clone().unwrap_or_default(),
        }
    }
}

/// The ICE list with its cache.
pub struct IceServers {
    provider: Provider,
    client: reqwest::Client,
    /// The last list and until when it is good.
    cache: Mutex<Option<(Instant, Vec<IceServer>)>>,
    timeout: Duration,
}

impl IceServers {
    pub fn new(provider: Provider) -> Self {
        Self::with_timeout(provider, FETCH_TIMEOUT)
    }

    pub fn with_timeout(provider: Provider, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self {
            provider,
            client,
            cache: Mutex::new(None),
            timeout,
        }
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    fn stun() -> Vec<IceServer> {
        vec![IceServer {
            urls: vec![PUBLIC_STUN.into()],
            username: None,
            credential: None,
        }]
    }

    /// The current list: cached credentials, freshly fetched ones, or STUN on failure.
    /// A failure is remembered for [`RETRY_AFTER`], so a provider that is down slows down
    /// one stream start, not every one.
    pub async fn get(&self) -> Vec<IceServer> {
        if self.provider == Provider::Stun {
            return Self::stun();
        }
        if let Some((until, list)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            && Instant::now() < *until
        {
            return list.clone();
        }
        let fetched = match tokio::time::timeout(self.timeout, self.fetch()).await {
            Ok(Ok(list)) if !list.is_empty() => Ok(list),
            Ok(Ok(_)) => Err("the provider returned no servers".to_owned()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        let (list, keep) = match fetched {
            Ok(list) => (list, Duration::from_secs(CREDENTIAL_TTL_SECS / 2)),
            Err(e) => {
                tracing::warn!(provider = self.provider.name(), error = %e, "TURN credentials unavailable; using STUN");
                (Self::stun(), RETRY_AFTER)
            }
        };
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now() + keep, list.clone()));
        list
    }

    async fn fetch(&self) -> Result<Vec<IceServer>, String> {
        let request = match &self.provider {
            Provider::HuggingFace { url, token } => self
                .client
                .get(url)
                .query(&[("ttl", CREDENTIAL_TTL_SECS)])
                .bearer_auth(token),
            Provider::Cloudflare {
                api,
                key_id,
                api_token,
            } => self
                .client
                .post(format!("{api}/{key_id}/credentials/generate-ice-servers"))
                .bearer_auth(api_token)
                .json(&json!({ "ttl": CREDENTIAL_TTL_SECS })),
            Provider::Twilio {
                api,
                account_sid,
                auth_token,
            } => self
                .client
                .post(format!("{api}/{account_sid}/Tokens.json"))
                .basic_auth(account_sid, Some(auth_token))
                .form(&[("Ttl", CREDENTIAL_TTL_SECS.to_string())]),
            Provider::Stun => return Ok(Self::stun()),
        };
        let resp = request.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("HTTP {status}"));
        }
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("invalid JSON: {e}"))?;
        let list = match self.provider {
            Provider::Twilio { .. } => &body["ice_servers"],
            _ => &body["iceServers"],
        };
        parse_servers(list)
    }
}

/// Accepts `urls` as a string or a list (and Twilio's legacy `url`).
fn parse_servers(list: &Value) -> Result<Vec<IceServer>, String> {
    let items = list
        .as_array()
        .ok_or("no ICE server list in the response")?;
    Ok(items
        .iter()
        .filter_map(|s| {
            let urls = match (&s["urls"], &s["url"]) {
                (Value::String(u), _) => vec![u.clone()],
                (Value::Array(a), _) => a
                    .iter()
                    .filter_map(|u| u.as_str().map(str::to_owned))
                    .collect(),
                (_, Value::String(u)) => vec![u.clone()],
                _ => return None,
            };
            (!urls.is_empty()).then(|| IceServer {
                urls,
                username: s["username"].as_str().map(str::to_owned),
                credential: s["credential"].as_str().map(str::to_owned),
            })
        })
        .collect())
}
