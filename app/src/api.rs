//! Server functions. Each is a thin call into something the server provides through the
//! Leptos context; on the client they compile to HTTP calls (`POST /api/<endpoint>`, JSON in
//! and out). Every one is listed in `docs/api.md`; errors are [`FnError`]s with the same
//! messages and HTTP statuses as the REST API.

pub use crate::error::FnError;
use crate::models::{
    Page, Preset, PresetInput, PresetPatch, Recording, ServerInfo, SessionDetail, SessionSummary,
    User,
};
use leptos::prelude::*;
use leptos::server_fn::codec::Json;

/// Returns the server's version, commit and login policy.
///
/// Endpoint: `POST /api/server_info` (documented in `docs/api.md`).
#[server(endpoint = "server_info")]
pub async fn get_server_info() -> Result<ServerInfo, FnError> {
    use_context::<ServerInfo>()
        .ok_or_else(|| FnError::internal("server info is not provided by this server"))
}

#[cfg(feature = "ssr")]
mod ctx {
    use super::FnError;
    use crate::{
        models::User,
        service::{ServiceError, SharedServices},
    };
    use http::{HeaderValue, header::SET_COOKIE, request::Parts};
    use leptos::prelude::*;
    use leptos_axum::ResponseOptions;

    /// The server's services and the request.
    pub fn services() -> Result<(SharedServices, Parts), FnError> {
        let services = use_context::<SharedServices>()
            .ok_or_else(|| FnError::internal("accounts are not provided by this server"))?;
        let parts = use_context::<Parts>()
            .ok_or_else(|| FnError::internal("no request in this context"))?;
        Ok((services, parts))
    }

    /// The services and the signed-in user, or a 401.
    pub async fn signed_in() -> Result<(SharedServices, User), FnError> {
        let (services, parts) = services()?;
        match services.current_user(&parts).await.map_err(fail)? {
            Some(user) => Ok((services, user)),
            None => Err(fail(ServiceError::sign_in())),
        }
    }

    /// Answers with the error's status and kind.
    pub fn fail(e: ServiceError) -> FnError {
        if let Some(res) = use_context::<ResponseOptions>() {
            res.set_status(e.status());
        }
        e.into()
    }

    pub fn set_cookie(value: HeaderValue) {
        if let Some(res) = use_context::<ResponseOptions>() {
            res.append_header(SET_COOKIE, value);
        }
    }
}

/// The signed-in user, or `None` for a guest. Endpoint: `POST /api/me`.
#[server(endpoint = "me", input = Json)]
pub async fn current_user() -> Result<Option<User>, FnError> {
    let (services, parts) = ctx::services()?;
    services.current_user(&parts).await.map_err(ctx::fail)
}

/// Creates an account and signs in. Endpoint: `POST /api/register`.
#[server(endpoint = "register", input = Json)]
pub async fn register(username: String, password: String) -> Result<User, FnError> {
    let (services, parts) = ctx::services()?;
    let (user, cookie) = services
        .register(&parts, &username, &password)
        .await
        .map_err(ctx::fail)?;
    ctx::set_cookie(cookie);
    Ok(user)
}

/// Signs in. Endpoint: `POST /api/login`.
#[server(endpoint = "login", input = Json)]
pub async fn login(username: String, password: String) -> Result<User, FnError> {
    let (services, parts) = ctx::services()?;
    let (user, cookie) = services
        .login(&parts, &username, &password)
        .await
        .map_err(ctx::fail)?;
    ctx::set_cookie(cookie);
    Ok(user)
}

/// Signs out (revokes this session). Endpoint: `POST /api/logout`.
#[server(endpoint = "logout", input = Json)]
pub async fn logout() -> Result<(), FnError> {
    let (services, parts) = ctx::services()?;
    let cookie = services.logout(&parts).await.map_err(ctx::fail)?;
    ctx::set_cookie(cookie);
    Ok(())
}

/// The user's presets, by name. Endpoint: `POST /api/presets_list`.
#[server(endpoint = "presets_list", input = Json)]
pub async fn list_presets() -> Result<Vec<Preset>, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services.list_presets(&user).await.map_err(ctx::fail)
}

/// Saves a new preset. Endpoint: `POST /api/presets_create`.
#[server(endpoint = "presets_create", input = Json)]
pub async fn create_preset(preset: PresetInput) -> Result<Preset, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .create_preset(&user, preset)
        .await
        .map_err(ctx::fail)
}

/// Changes a preset (rename, or overwrite its settings). Endpoint: `POST /api/presets_update`.
#[server(endpoint = "presets_update", input = Json)]
pub async fn update_preset(id: i64, patch: PresetPatch) -> Result<Preset, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .update_preset(&user, id, patch)
        .await
        .map_err(ctx::fail)
}

/// Copies a preset under a free name. Endpoint: `POST /api/presets_duplicate`.
#[server(endpoint = "presets_duplicate", input = Json)]
pub async fn duplicate_preset(id: i64) -> Result<Preset, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .duplicate_preset(&user, id)
        .await
        .map_err(ctx::fail)
}

/// Endpoint: `POST /api/presets_delete`.
#[server(endpoint = "presets_delete", input = Json)]
pub async fn delete_preset(id: i64) -> Result<(), FnError> {
    let (services, user) = ctx::signed_in().await?;
    services.delete_preset(&user, id).await.map_err(ctx::fail)
}

/// Imports an exported presets file. Endpoint: `POST /api/presets_import`.
#[server(endpoint = "presets_import", input = Json)]
pub async fn import_presets(presets: Vec<PresetInput>) -> Result<Vec<Preset>, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .import_presets(&user, presets)
        .await
        .map_err(ctx::fail)
}

/// One page of the user's stream history. Endpoint: `POST /api/sessions_list`.
#[server(endpoint = "sessions_list", input = Json)]
pub async fn list_sessions(page: u32, per_page: u32) -> Result<Page<SessionSummary>, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .list_sessions(&user, crate::service::PageQuery { page, per_page })
        .await
        .map_err(ctx::fail)
}

/// One stream with its prompt log. Endpoint: `POST /api/sessions_get`.
#[server(endpoint = "sessions_get", input = Json)]
pub async fn get_session(id: String) -> Result<SessionDetail, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services.get_session(&user, &id).await.map_err(ctx::fail)
}

/// One page of the user's recordings. Endpoint: `POST /api/recordings_list`.
#[server(endpoint = "recordings_list", input = Json)]
pub async fn list_recordings(page: u32, per_page: u32) -> Result<Page<Recording>, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .list_recordings(&user, crate::service::PageQuery { page, per_page })
        .await
        .map_err(ctx::fail)
}

/// Endpoint: `POST /api/recordings_rename`.
#[server(endpoint = "recordings_rename", input = Json)]
pub async fn rename_recording(id: i64, title: String) -> Result<Recording, FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .rename_recording(&user, id, &title)
        .await
        .map_err(ctx::fail)
}

/// Deletes the row and its file. Endpoint: `POST /api/recordings_delete`.
#[server(endpoint = "recordings_delete", input = Json)]
pub async fn delete_recording(id: i64) -> Result<(), FnError> {
    let (services, user) = ctx::signed_in().await?;
    services
        .delete_recording(&user, id)
        .await
        .map_err(ctx::fail)
}
