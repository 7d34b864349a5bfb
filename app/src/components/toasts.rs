//! Messages in the corner (stream errors, confirmations).

use crate::studio::Studio;
use leptos::prelude::*;

/// Messages in the corner (errors from the stream).
#[component]
pub fn Toasts() -> impl IntoView {
    let s = expect_context::<Studio>();
    view! {
        <div class="toasts" aria-live="polite" data-testid="toasts">
            <For each=move || s.toasts.get() key=|t| t.id let:t>
                <div class="toast" role="status">
                    <p class="toast-title">{t.title.clone()}</p>
                    <p>{t.message.clone()}</p>
                </div>
            </For>
        </div>
    }
}
