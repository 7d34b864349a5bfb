//! Live streams: WebRTC signaling routes, the session registry, and the per-stream media loop.
//!
//! ```text
//! browser ─RTP(H.264)→ reader task ─AU→ decode thread ─RGB→ InputBuffer(30)
//!                                                            │ uniform chunk
//!                                              processor thread (pipeline)
//!                                                            │ bounded queue
//!                      writer task ←AU─ output thread (pace, encode H.264)
//! browser ←RTP(H.264)──┘          data channel "parameters" ⇄ control task
//! ```

pub mod assembler;
pub mod buffer;
pub mod history;
mod media_io;
pub mod owner;
pub mod params_channel;
pub mod processor;
pub mod rtc;
pub mod session;

use crate::{
    error::{ApiError, ApiJson},
    state::AppState,
};
use app::service::ServiceError;
use app::wire::{MetricsReport, StreamMetrics};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use engine::pipeline::params;
use history::HistoryLog;
use owner::Caller;
use serde::Deserialize;
use serde_json::{Value, json};
use session::{SessionHandle, StartContext, StartError};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};
use webrtc::peer_connection::{RTCIceCandidateInit, RTCSessionDescription};

/// Every running session by id.
#[derive(Default)]
pub struct Streams {
    sessions: Mutex<HashMap<String, Arc<SessionHandle>>>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<SessionHandle>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<SessionHandle>> {
        self.lock().get(id).cloned()
    }

    /// The session `id` if `caller` owns it; anyone else gets the same 404 as for a session
    /// that does not exist.
    pub fn get_owned(&self, id: &str, caller: &Caller) -> Result<Arc<SessionHandle>, ApiError> {
        self.get(id)
            .filter(|s| caller.owns(&s.owner))
            .ok_or_else(|| no_session(id))
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<SessionHandle>> {
        self.lock().values().cloned().collect()
    }

    fn insert(&self, s: Arc<SessionHandle>) {
        self.lock().insert(s.id.clone(), s);
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Ends every session, all at once, and waits until each has released everything.
    pub async fn close_all(&self) {
        let all = self.all();
        for s in &all {
            s.request_stop();
        }
        // Each session tears itself down on its own task; this only waits for them.
        for s in &all {
            s.wait_finished().await;
        }
    }
}

/// Routes under `/api/v1/webrtc`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webrtc/ice-servers", get(ice_servers))
        .route("/api/v1/metrics", get(metrics))
        .route("/api/v1/webrtc/offer", post(offer))
        .route(
            "/api/v1/webrtc/offer/{session_id}",
            axum::routing::patch(trickle).delete(hang_up),
        )
}

async fn ice_servers(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "iceServers": state.ice_servers().await }))
}

/// `POST /api/v1/webrtc/offer` body.
#[derive(Debug, Deserialize)]
pub struct OfferRequest {
    pub sdp: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, rename = "initialParameters")]
    pub initial_parameters: Value,
}

async fn offer(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<OfferRequest>,
) -> Result<Response, ApiError> {
    let user = caller.user;
    if user.is_none() && state.settings.require_login {
        return Err(ServiceError::Unauthorized("sign in to stream".into()).into());
    }
    if req.kind != "offer" {
        return Err(ApiError::BadRequest(format!(
            "type must be \"offer\", got {:?}",
            req.kind
        )));
    }
    let offer = RTCSessionDescription::offer(req.sdp)
        .map_err(|e| ApiError::BadRequest(format!("invalid SDP: {e}")))?;
    // Held against loads until the stream is registered below.
    let (loaded, _reservation) = state.pipelines.reserve().ok_or_else(|| {
        ApiError::Conflict("Pipeline not loaded. Please load pipeline first.".into())
    })?;
    let spec = loaded.spec();
    let mut initial = params::defaults(&spec.runtime_params);
    initial.extend(
        params::validate_object(&spec.runtime_params, &req.initial_parameters, false)
            .map_err(|e| ApiError::Unprocessable(format!("initialParameters: {e}")))?,
    );
    let id = uuid::Uuid::new_v4().to_string();
    let (owner, guest_cookie) = caller.new_owner()?;
    let history = match user {
        Some(user_id) => {
            let as_map = |v: Value| v.as_object().cloned().unwrap_or_default();
            Some(
                HistoryLog::open(
                    state.db.clone(),
                    &id,
                    user_id,
                    spec.id,
                    &as_map(params::to_json(loaded.load_params())),
                    &as_map(params::to_json(&initial)),
                )
                .await?,
            )
        }
        None => None,
    };
    let streams = Arc::clone(&state.streams);
    let metrics = Arc::clone(&state.metrics);
    let ctx = StartContext {
        id: id.clone(),
        owner,
        loaded,
        initial,
        ice_servers: state
            .ice_servers()
            .await
            .iter()
            .map(|s| s.to_rtc())
            .collect(),
        udp_addrs: state.settings.rtc_udp_addrs.clone(),
        on_finished: Box::new(move |id| streams.remove(id)),
        system_metrics: Arc::new(move || metrics.snapshot()),
        history,
    };
    let started = session::start(ctx, offer).await;
    let (handle, answer) = match started {
        Ok(x) => x,
        Err(e) => {
            if user.is_some() {
                let figures = crate::service::history::Figures::default();
                let msg = e.to_string();
                let _ = crate::service::history::close(&state.db, &id, figures, Some(&msg)).await;
            }
            return Err(match e {
                StartError::BadOffer(m) => ApiError::BadRequest(m),
                StartError::Internal(m) => ApiError::Internal(m),
            });
        }
    };
    tracing::info!(session = %id, pipeline = %handle.pipeline_id, "stream started");
    state.streams.insert(handle);
    let body = Json(json!({ "sdp": answer, "type": "answer", "sessionId": id }));
    Ok(match guest_cookie {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], body).into_response(),
        None => body.into_response(),
    })
}

/// `PATCH /api/v1/webrtc/offer/{id}` body.
#[derive(Debug, Deserialize)]
pub struct TrickleRequest {
    pub candidates: Vec<RTCIceCandidateInit>,
}

async fn trickle(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TrickleRequest>,
) -> Result<StatusCode, ApiError> {
    let session = state.streams.get_owned(&id, &caller)?;
    for c in req.candidates {
        session
            .add_ice_candidate(c)
            .await
            .map_err(|e| ApiError::BadRequest(format!("invalid ICE candidate: {e}")))?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn hang_up(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = state.streams.get_owned(&id, &caller)?;
    session.request_stop();
    session.wait_finished().await;
    Ok(StatusCode::NO_CONTENT)
}

fn no_session(id: &str) -> ApiError {
    ApiError::NotFound(format!("no stream session {id}"))
}

/// `GET /api/v1/metrics`: the status bar's figures: system, then one entry per stream of the
/// caller's (another viewer's streams, ids and prompts never leave the server).
async fn metrics(State(state): State<AppState>, caller: Caller) -> Json<MetricsReport> {
    let now = std::time::Instant::now();
    let streams = state
        .streams
        .all()
        .iter()
        .filter(|s| caller.owns(&s.owner))
        .map(|s| StreamMetrics {
            session_id: s.id.clone(),
            pipeline_id: s.pipeline_id.clone(),
            uptime_s: now.duration_since(s.started_at).as_secs_f64().round(),
            figures: s.stats.figures(now),
            parameters: params::to_json(&s.params.lock().unwrap_or_else(|p| p.into_inner())),
        })
        .collect();
    Json(MetricsReport {
        system: state.metrics.snapshot(),
        streams,
    })
}
