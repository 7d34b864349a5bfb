use crate::account::UserMenu;
use leptos::prelude::*;

/// Upstream project page, the source the fork's links point at.
const GITHUB_URL: &str = "https://github.com/hanzoai/live";

/// The top bar: logo, title, links and the account menu.
#[component]
pub fn Header() -> impl IntoView {
    view! {
        <header class="app-header" data-testid="header">
            <a class="brand" href="/" aria-label="Hanzo Live home">
                <img class="brand-logo" src="/logo.svg" alt="" width="32" height="32" />
                <h1 class="brand-title">"Hanzo Live"</h1>
            </a>
            <nav class="header-links" aria-label="Links">
                <a href="/" class="header-link" data-testid="nav-stream">"Stream"</a>
                <a href="/history" class="header-link" data-testid="nav-history">"History"</a>
                <a href="/library" class="header-link" data-testid="nav-library">"Library"</a>
                <a href=GITHUB_URL class="header-link" target="_blank" rel="noopener noreferrer">
                    "GitHub"
                </a>
                <a href="/health" class="header-link" rel="external">"Health"</a>
            </nav>
            <UserMenu />
        </header>
    }
}
