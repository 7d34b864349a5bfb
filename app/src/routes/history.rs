//! `/history`: every stream the signed-in user ran, newest first, with its prompt log.

use crate::{
    account::{Account, AuthMode},
    api,
    components::{Header, Pager},
    format,
    models::{DEFAULT_PER_PAGE, SessionDetail, SessionSummary},
};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

/// The page number in `?page=`, 1 when absent or malformed.
pub fn page_param() -> impl Fn() -> u32 + Copy {
    let query = use_query_map();
    move || {
        query.with(|q| {
            q.get("page")
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|p| *p > 0)
                .unwrap_or(1)
        })
    }
}

/// What a list page shows to a guest.
#[component]
pub fn SignInPrompt(what: &'static str) -> impl IntoView {
    let account = expect_context::<Account>();
    view! {
        <div class="empty-state" data-testid="sign-in-prompt">
            <p>{format!("Sign in to see {what}.")}</p>
            <button type="button" class="primary" on:click=move |_| account.dialog.set(Some(AuthMode::SignIn))>"Sign in"</button>
        </div>
    }
}

#[component]
pub fn HistoryPage() -> impl IntoView {
    let account = expect_context::<Account>();
    let page = page_param();
    let sessions = Resource::new(
        move || (page(), account.version.get()),
        |(p, _)| api::list_sessions(p, DEFAULT_PER_PAGE),
    );
    // Flips once the wasm has hydrated the page (tests wait for it before clicking).
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <div class="app-shell page-shell" data-testid="history-page" data-hydrated=move || hydrated.get().to_string()>
            <Header />
            <main class="page">
                <h2 class="page-title">"History"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match sessions.await {
                            Err(e) if e.needs_sign_in() => {
                                view! { <SignInPrompt what="the streams you ran" /> }.into_any()
                            }
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                            Ok(p) if p.items.is_empty() => view! {
                                <div class="empty-state" data-testid="history-empty">
                                    <p>"No streams yet."</p>
                                    <a class="primary button-link" href="/">"Start one"</a>
                                </div>
                            }.into_any(),
                            Ok(p) => {
                                let pages = p.pages();
                                view! {
                                    <p class="muted">{format!("{} streams", p.total)}</p>
                                    <ul class="history-list" data-testid="history-list">
                                        {p.items.into_iter().map(|s| view! { <HistoryRow s /> }).collect_view()}
                                    </ul>
                                    <Pager base="/history" page=p.page pages />
                                }.into_any()
                            }
                        }
                    })}
                </Transition>
            </main>
        </div>
    }
}

/// One stream: a summary line and, on demand, its parameters and prompt log.
#[component]
fn HistoryRow(s: SessionSummary) -> impl IntoView {
    let detail = RwSignal::new(None::<Result<SessionDetail, String>>);
    let open = RwSignal::new(false);
    let id = s.id.clone();
    let toggle = move |_| {
        open.update(|o| *o = !*o);
        if open.get_untracked() && detail.get_untracked().is_none() {
            let id = id.clone();
            leptos::task::spawn_local(async move {
                let r = api::get_session(id).await.map_err(|e| e.to_string());
                detail.set(Some(r));
            });
        }
    };
    let length = s.ended_at.as_deref().and_then(|end| {
        Some(format::duration(
            format::epoch_seconds(end)? - format::epoch_seconds(&s.started_at)?,
        ))
    });
    let status = match (&s.ended_at, &s.error) {
        (None, _) => ("running", "Running".to_owned()),
        (Some(_), Some(e)) => ("failed", format!("Error: {e}")),
        (Some(_), None) => ("ended", "Ended".to_owned()),
    };
    view! {
        <li class="history-row" data-testid="history-row" data-session=s.id.clone()>
            <button type="button" class="history-summary" aria-expanded=move || open.get().to_string() on:click=toggle>
                <span class="history-when">{format::timestamp(&s.started_at)}</span>
                <span class="badge">{s.pipeline_id.clone()}</span>
                <span>{length.unwrap_or_else(|| "—".into())}</span>
                <span>{format!("{} frames", s.frames_out)}</span>
                <span>{s.mean_fps.map(|f| format!("{f:.1} FPS")).unwrap_or_default()}</span>
                <span>{s.mean_latency_ms.map(|l| format!("{l:.0} ms")).unwrap_or_default()}</span>
                <span class=format!("status status-{}", status.0) data-testid="history-status">{status.1}</span>
            </button>
            <Show when=move || open.get()>
                <div class="history-detail" data-testid="history-detail">
                    {move || match detail.get() {
                        None => view! { <p class="muted">"Loading…"</p> }.into_any(),
                        Some(Err(e)) => view! { <p class="error">{e}</p> }.into_any(),
                        Some(Ok(d)) => view! {
                            <dl class="kv">
                                <dt>"Session"</dt><dd><code>{d.summary.id.clone()}</code></dd>
                                <dt>"Load parameters"</dt><dd><code>{serde_json::to_string(&d.load_params).unwrap_or_default()}</code></dd>
                            </dl>
                            <h4 class="section-title">"Prompts and parameters over time"</h4>
                            <ol class="prompt-log" data-testid="prompt-log">
                                {d.prompt_log.into_iter().map(|e| view! {
                                    <li>
                                        <span class="muted">{e.at.get(11..19).unwrap_or(&e.at).to_owned()}</span>
                                        " "
                                        {match e.params.get("prompts").and_then(|p| p.as_array()) {
                                            Some(prompts) => prompts.iter().filter_map(|p| p["text"].as_str()).map(|t| format!("“{t}”")).collect::<Vec<_>>().join(" + "),
                                            None => serde_json::to_string(&e.params).unwrap_or_default(),
                                        }}
                                    </li>
                                }).collect_view()}
                            </ol>
                        }.into_any(),
                    }}
                </div>
            </Show>
        </li>
    }
}
