//! Server functions. Each is a thin call into something the server provides through the
//! Leptos context; on the client they compile to HTTP calls (`POST /api/<endpoint>`).

use crate::models::ServerInfo;
use leptos::prelude::*;

/// Returns the server's version, commit and login policy.
///
/// Endpoint: `POST /api/server_info` (documented in `docs/api.md`).
#[server(endpoint = "server_info")]
pub async fn get_server_info() -> Result<ServerInfo, ServerFnError> {
    use_context::<ServerInfo>()
        .ok_or_else(|| ServerFnError::new("server info is not provided by this server"))
}
