//! The StreamPage: the studio's single screen.
//!
//! ```text
//! ┌──────────────────────── Header ────────────────────────┐
//! │ Input & Controls │   video area         │   Settings    │
//! │                  │   prompt dock        │               │
//! └────────────────────── StatusBar ───────────────────────┘
//! ```
//! Below 900 px the side panels stack under the video (see `style/main.css`).

use crate::{
    components::{Header, StatusBar},
    models::{InputMode, ServerInfoResource},
};
use leptos::{ev::SubmitEvent, prelude::*};

/// Placeholder text of the prompt field, as in the original.
const PROMPT_PLACEHOLDER: &str = "blooming flowers";

/// The studio page: three panels between the header and the status bar.
#[component]
pub fn StreamPage() -> impl IntoView {
    // Effects run only in the browser, so this flips once the wasm has hydrated the page.
    // Tests wait for `data-hydrated="true"` before they interact.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));

    let mode = RwSignal::new(InputMode::Video);
    let next_prompt = RwSignal::new(None::<String>);

    view! {
        <div class="app-shell" data-testid="app-shell" data-hydrated=move || hydrated.get().to_string()>
            <Header />
            <div class="app-main">
                <InputPanel mode />
                <section class="center-column" aria-label="Output">
                    <VideoArea mode />
                    <PromptDock next_prompt />
                </section>
                <SettingsPanel />
            </div>
            <StatusBar />
        </div>
    }
}

/// Left panel: where the input comes from.
#[component]
fn InputPanel(mode: RwSignal<InputMode>) -> impl IntoView {
    view! {
        <aside class="panel panel-left" data-testid="input-panel" aria-labelledby="input-panel-title">
            <h2 class="panel-title" id="input-panel-title">"Input & Controls"</h2>
            <label class="field">
                <span class="field-label">"Mode"</span>
                <select
                    class="select"
                    data-testid="input-mode"
                    prop:value=move || mode.get().as_str()
                    on:change=move |ev| {
                        if let Some(m) = InputMode::parse(&event_target_value(&ev)) {
                            mode.set(m);
                        }
                    }
                >
                    {InputMode::ALL
                        .into_iter()
                        .map(|m| view! { <option value=m.as_str()>{m.label()}</option> })
                        .collect_view()}
                </select>
            </label>
            <div class="field">
                <span class="field-label">"Input"</span>
                <div class="input-preview" data-testid="input-preview">
                    {move || match mode.get() {
                        InputMode::Video => "Video Preview",
                        InputMode::Camera => "Camera Preview",
                        InputMode::Text => "Text only: no video input",
                    }}
                </div>
            </div>
        </aside>
    }
}

/// Centre: the output video surface.
#[component]
fn VideoArea(mode: RwSignal<InputMode>) -> impl IntoView {
    view! {
        <div class="video-area" data-testid="video-area">
            <div class="video-idle">
                <p class="video-idle-title">"No stream yet"</p>
                <p class="video-idle-hint">
                    {move || format!("Input: {}", mode.get().label())}
                </p>
            </div>
        </div>
    }
}

/// Under the video: the prompt field. Before a stream starts, the submitted prompt becomes
/// the prompt the next stream starts with.
#[component]
fn PromptDock(next_prompt: RwSignal<Option<String>>) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let text = draft.get().trim().to_owned();
        if !text.is_empty() {
            next_prompt.set(Some(text));
        }
    };
    view! {
        <form class="prompt-dock" data-testid="prompt-dock" on:submit=on_submit>
            <input
                class="prompt-input"
                data-testid="prompt-input"
                type="text"
                placeholder=PROMPT_PLACEHOLDER
                aria-label="Prompt"
                maxlength="2000"
                prop:value=move || draft.get()
                on:input=move |ev| draft.set(event_target_value(&ev))
            />
            <button
                class="prompt-submit"
                data-testid="prompt-submit"
                type="submit"
                aria-label="Set prompt"
                disabled=move || draft.get().trim().is_empty()
            >
                "↑"
            </button>
        </form>
        <p class="prompt-next" data-testid="prompt-next">
            {move || match next_prompt.get() {
                Some(p) => format!("Next stream starts with: “{p}”"),
                None => "Type a prompt and press Enter.".to_owned(),
            }}
        </p>
    }
}

/// Right panel: settings, and what the server says about itself.
#[component]
fn SettingsPanel() -> impl IntoView {
    let info = expect_context::<ServerInfoResource>().0;
    view! {
        <aside class="panel panel-right" data-testid="settings-panel" aria-labelledby="settings-panel-title">
            <h2 class="panel-title" id="settings-panel-title">"Settings"</h2>
            <section class="settings-section">
                <h3 class="section-title">"Server"</h3>
                <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match info.await {
                            Ok(i) => {
                                view! {
                                    <dl class="kv" data-testid="server-info">
                                        <dt>"Version"</dt>
                                        <dd>{i.version}</dd>
                                        <dt>"Commit"</dt>
                                        <dd>{i.git_commit}</dd>
                                        <dt>"Accounts"</dt>
                                        <dd>
                                            {if i.require_login {
                                                "Sign-in required"
                                            } else {
                                                "Optional (guests can stream)"
                                            }}
                                        </dd>
                                    </dl>
                                }
                                    .into_any()
                            }
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        }
                    })}
                </Suspense>
            </section>
        </aside>
    }
}
