//! The StreamPage: the studio's single screen.
//!
//! ```text
//! ┌──────────────────────── Header ────────────────────────┐
//! │ Input & Controls │   video output       │   Settings    │
//! │                  │   prompt dock        │               │
//! └────────────────────── StatusBar ───────────────────────┘
//! ```
//! Below 900 px the side panels stack under the video (see `style/main.css`). The state the
//! panels share is [`crate::studio::Studio`]; each panel is a component of its own.

use crate::{
    components::{
        Header, InputAndControlsPanel, PromptDock, SettingsPanel, StudioStatus, Toasts, VideoOutput,
    },
    studio::Studio,
};
use leptos::prelude::*;

/// The studio page: three panels between the header and the status bar.
#[component]
pub fn StreamPage() -> impl IntoView {
    let studio = Studio::new();
    provide_context(studio);
    // Effects run only in the browser, so this flips once the wasm has hydrated the page.
    // Tests wait for `data-hydrated="true"` before they interact.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| {
        studio.on_setup();
        set_hydrated.set(true);
    });
    // Space pauses and resumes unless focus is in a field.
    #[cfg(feature = "hydrate")]
    {
        let handle = window_event_listener(leptos::ev::keydown, move |ev| {
            use wasm_bindgen::JsCast;
            if ev.code() != "Space" {
                return;
            }
            let in_field = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .is_some_and(|e| {
                    matches!(e.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                        || e.has_attribute("contenteditable")
                });
            if !in_field {
                ev.prevent_default();
                studio.toggle_pause();
            }
        });
        on_cleanup(move || handle.remove());
    }

    view! {
        <div class="app-shell" data-testid="app-shell" data-hydrated=move || hydrated.get().to_string()>
            <Header />
            <div class="app-main">
                <InputAndControlsPanel />
                <section class="center-column" aria-label="Output">
                    <VideoOutput />
                    <PromptDock />
                </section>
                <SettingsPanel />
            </div>
            <StudioStatus />
            <Toasts />
        </div>
    }
}
