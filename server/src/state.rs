//! The state every handler shares.

use crate::config::Settings;
use app::models::ServerInfo;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sqlx::SqlitePool;
use std::sync::Arc;

/// One value cloned into every handler: cheap handles only.
///
/// `LeptosOptions` is reachable through [`FromRef`] because leptos_axum's routes and file
/// handler extract it from the router state.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub db: SqlitePool,
    /// Accounts, presets, history and recordings (also the server functions' services).
    pub service: Arc<crate::service::Service>,
    pub settings: Arc<Settings>,
    pub info: ServerInfo,
    /// The loaded pipeline (one per server; each stream gets its own instance of it).
    pub pipelines: Arc<crate::pipelines::PipelineManager>,
    /// Model downloads (one at a time).
    pub downloads: Arc<crate::downloads::Downloads>,
    /// Running streams.
    pub streams: Arc<crate::stream::Streams>,
    /// STUN/TURN servers (credentials cached).
    pub ice: Arc<crate::ice::IceServers>,
    /// CPU/RAM/GPU figures.
    pub metrics: Arc<crate::metrics::SystemMetrics>,
    /// When this process started serving (RFC 3339), reported by `/health`.
    pub started_at: Arc<str>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// ICE servers for both peers (the browser gets them from `/api/v1/webrtc/ice-servers`).
    pub async fn ice_servers(&self) -> Vec<crate::ice::IceServer> {
        self.ice.get().await
    }
}
