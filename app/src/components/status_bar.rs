use crate::models::ServerInfoResource;
use leptos::prelude::*;

/// The bottom bar: stream state and figures on the left, server identity on the right.
/// The page passes its figures as children.
#[component]
pub fn StatusBar(
    /// "Idle", "Live", ...
    #[prop(into)]
    state: Signal<String>,
    /// Whether a stream runs (green dot).
    #[prop(into)]
    live: Signal<bool>,
    children: Children,
) -> impl IntoView {
    let info = expect_context::<ServerInfoResource>().0;
    view! {
        <footer class="status-bar" data-testid="status-bar">
            <span class="status-item" data-testid="stream-state">
                <span class="status-dot" class:live=move || live.get() aria-hidden="true"></span>
                {move || state.get()}
            </span>
            {children()}
            <span class="status-spacer"></span>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match info.await {
                        Ok(i) => {
                            view! {
                                <span class="status-item status-version" data-testid="server-version">
                                    {format!("v{} ({})", i.version, i.git_commit)}
                                </span>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! {
                                <span class="status-item status-error">
                                    {format!("server info unavailable: {e}")}
                                </span>
                            }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </footer>
    }
}
