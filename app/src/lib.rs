//! Hanzo Live's user interface, shared by the server (SSR, feature `ssr`) and the browser
//! (hydration, feature `hydrate`).
//!
//! The crate never names the `server` or `engine` crates: server functions reach what the
//! server owns through values the server puts into the Leptos context (see [`models`]).

pub mod account;
pub mod api;
#[cfg(feature = "hydrate")]
pub mod client;
pub mod components;
pub mod downloads;
pub mod error;
pub mod format;
pub mod models;
pub mod routes;
pub mod schema;
#[cfg(feature = "ssr")]
pub mod service;
pub mod studio;
pub mod wire;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="dark" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

/// The root component: meta tags, the stylesheet and the routes.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // One fetch of the server's identity per page, shared by the header, settings and status bar.
    provide_context(models::ServerInfoResource::new());
    provide_context(account::Account::new());

    view! {
        <Stylesheet id="leptos" href="/pkg/hanzo-live.css" />
        <Title text="Hanzo Live" />
        <Router>
            <Routes fallback=routes::NotFound>
                <Route path=StaticSegment("") view=routes::StreamPage />
                <Route path=StaticSegment("history") view=routes::HistoryPage />
                <Route path=StaticSegment("library") view=routes::LibraryPage />
            </Routes>
        </Router>
    }
}
