//! The `hanzo-live` server: configuration, the SQLite store, the JSON API and the Leptos app.
//!
//! [`app`] builds the whole router from an [`AppState`] (tests drive it with `oneshot`);
//! [`run`] is what the binary does: resolve settings, open the database, bind, serve until
//! Ctrl-C or SIGTERM.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod downloads;
pub mod error;
pub mod hub;
pub mod ice;
pub mod media;
pub mod metrics;
pub mod pipelines;
pub mod routes;
pub mod service;
pub mod state;
pub mod stream;
pub mod telemetry;

use crate::{
    config::{Cli, Environment, Settings},
    error::StartupError,
    state::AppState,
};
use app::{App, models::ServerInfo, shell};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use std::{path::Path, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::watch};
use tower_http::trace::TraceLayer;

/// How long in-flight requests get to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Builds the router: `/health`, `/api/v1/...`, server functions (`/api/...`), the pages,
/// and the site's static files.
pub fn app(state: AppState) -> Router {
    // The route list depends on `App` alone, so it is made once per process. Making it means a
    // dry render of `App`; one running on another thread while a page renders left that page's
    // `<Suspense>` waiting forever (tests that build their own app beside a page render hung
    // in ~1 of 22 runs of the http tests; 0 of 200 with the list made once).
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> =
        std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| generate_route_list(App)).clone();
    let context = {
        let info = state.info.clone();
        let services: app::service::SharedServices = state.service.clone();
        move || {
            provide_context(info.clone());
            provide_context(services.clone());
        }
    };
    let leptos_options = state.leptos_options.clone();
    routes::router()
        .merge(api::router())
        .merge(stream::router())
        .leptos_routes_with_context(&state, routes, context, move || {
            shell(leptos_options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Leptos options for this server: the compiled-in output name, the configured site
/// directory and address.
pub fn leptos_options(settings: &Settings) -> Result<LeptosOptions, StartupError> {
    let mut options = get_configuration(None)
        .map_err(|e| StartupError::Leptos(e.to_string()))?
        .leptos_options;
    options.site_root = settings.site_root.to_string_lossy().into();
    Ok(options)
}

/// Where the hydration bundle must be for the page to become interactive.
pub fn bundle_path(options: &LeptosOptions) -> std::path::PathBuf {
    Path::new(options.site_root.as_ref())
        .join(options.site_pkg_dir.as_ref())
        .join(format!("{}.wasm", options.output_name))
}

/// Builds the shared state from resolved settings: creates the data directory and opens
/// (and migrates) the database.
pub async fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    for dir in [&settings.data_dir, &settings.models_dir] {
        std::fs::create_dir_all(dir).map_err(|source| StartupError::DataDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    // Before the backend is chosen (its probe is the first GPU operation).
    if engine::backend::keep_kernels_in(&settings.kernels_dir()) {
        tracing::info!(dir = %settings.kernels_dir().display(), "GPU kernels and autotune results are kept");
    }
    let db = db::open(&settings.database_path()).await?;
    let service = service::Service::new(
        db.clone(),
        settings.recordings_dir(),
        settings.max_recording_bytes,
    );
    service.recover().await.map_err(StartupError::Recover)?;
    let leptos_options = leptos_options(&settings)?;
    let info = ServerInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        git_commit: config::GIT_COMMIT.to_owned(),
        require_login: settings.require_login,
    };
    Ok(AppState {
        leptos_options,
        db,
        service: Arc::new(service),
        pipelines: Arc::new(pipelines::PipelineManager::from_settings(&settings)),
        downloads: Arc::new(downloads::Downloads::new(
            hub::Hub::from_env(),
            settings.models_dir.clone(),
        )),
        settings: Arc::new(settings),
        info,
        streams: Default::default(),
        ice: Arc::new(ice::IceServers::new(ice::Provider::from_env())),
        metrics: metrics::SystemMetrics::start(),
        started_at: now_rfc3339().into(),
    })
}

/// The binary's main: serve until Ctrl-C or SIGTERM, then shut down gracefully.
pub async fn run(cli: Cli) -> Result<(), StartupError> {
    let settings = Settings::load(&cli, &Environment::from_process())?;
    // A misspelt backend is an error; one that does not run here only disables the models.
    if let Some(b) = settings.backend.as_deref() {
        engine::backend::BackendKind::parse(b).map_err(|e| StartupError::Engine(e.to_string()))?;
    }
    match &settings.config_file {
        Some(p) => tracing::info!(file = %p.display(), "configuration loaded"),
        None => tracing::info!("no Leptos.toml here: using flags, environment and defaults"),
    }
    let target = settings.bind_target();
    let listener = TcpListener::bind(&target)
        .await
        .map_err(|source| StartupError::Bind {
            addr: target.clone(),
            source,
        })?;
    let addr = listener.local_addr().map_err(StartupError::Serve)?;

    let mut state = build_state(settings).await?;
    state.leptos_options.site_addr = addr;
    let s = &state.settings;
    tracing::info!(
        data_dir = %s.data_dir.display(),
        models_dir = %s.models_dir.display(),
        database = %s.database_path().display(),
        require_login = s.require_login,
        cpu = s.cpu,
        ice = state.ice.provider().name(),
        "hanzo-live {}", config::VERSION
    );
    match &state.pipelines.context().backend {
        Ok(kind) => tracing::info!(backend = %kind, "engine backend"),
        // The model-free pipelines still work; a Wan pipeline fails to load with this reason.
        Err(e) => tracing::warn!(error = %e, "no engine backend"),
    }
    let bundle = bundle_path(&state.leptos_options);
    if bundle.is_file() {
        tracing::info!(site_root = %s.site_root.display(), "serving the site bundle");
    } else {
        tracing::warn!(
            missing = %bundle.display(),
            "site bundle not found: serving the API and server-rendered pages without \
             hydration (build it with `bash tools/build-site.sh` or `cargo leptos build`)"
        );
    }
    let db = state.db.clone();
    let streams = Arc::clone(&state.streams);

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing in-flight requests");
        let _ = stop_tx.send(true);
    });
    tracing::info!("listening on http://{addr}");
    // Connect info gives the login limiter the client's address.
    let make = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let serve = axum::serve(listener, make).with_graceful_shutdown(stopped(stop_rx.clone()));
    tokio::select! {
        result = serve => result.map_err(StartupError::Serve)?,
        _ = async { stopped(stop_rx).await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}: closing anyway");
        }
    }
    let open = streams.len();
    if open > 0 {
        tracing::info!(streams = open, "closing streams");
    }
    streams.close_all().await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Now as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    now.format(&fmt)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}
