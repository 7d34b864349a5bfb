use leptos::prelude::*;

/// Shown for any path no route matches; the server answers it with 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
            resp.set_status(http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <main class="not-found" data-testid="not-found">
            <h1>"Page not found"</h1>
            <p>
                <a href="/">"Back to the studio"</a>
            </p>
        </main>
    }
}
