//! `/library`: the signed-in user's recordings: thumbnails, in-page player, download,
//! rename, delete.

use super::history::{SignInPrompt, page_param};
use crate::{
    account::Account,
    api,
    components::{Header, Pager, RenameForm},
    format,
    models::{DEFAULT_PER_PAGE, Recording},
};
use leptos::prelude::*;

#[component]
pub fn LibraryPage() -> impl IntoView {
    let account = expect_context::<Account>();
    let page = page_param();
    // Bumped after a rename or delete.
    let reload = RwSignal::new(0u32);
    let recordings = Resource::new(
        move || (page(), account.version.get(), reload.get()),
        |(p, _, _)| api::list_recordings(p, DEFAULT_PER_PAGE),
    );
    // Flips once the wasm has hydrated the page (tests wait for it before clicking).
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    view! {
        <div class="app-shell page-shell" data-testid="library-page" data-hydrated=move || hydrated.get().to_string()>
            <Header />
            <main class="page">
                <h2 class="page-title">"Library"</h2>
                <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match recordings.await {
                            Err(e) if e.needs_sign_in() => {
                                view! { <SignInPrompt what="your recordings" /> }.into_any()
                            }
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                            Ok(p) if p.items.is_empty() => view! {
                                <div class="empty-state" data-testid="library-empty">
                                    <p>"No recordings yet. Press ● Record while a stream runs."</p>
                                    <a class="primary button-link" href="/">"Go to the studio"</a>
                                </div>
                            }.into_any(),
                            Ok(p) => {
                                let pages = p.pages();
                                view! {
                                    <p class="muted">{format!("{} recordings", p.total)}</p>
                                    <div class="library-grid" data-testid="library-grid">
                                        {p.items.into_iter().map(|r| view! { <RecordingCard r reload /> }).collect_view()}
                                    </div>
                                    <Pager base="/library" page=p.page pages />
                                }.into_any()
                            }
                        }
                    })}
                </Transition>
            </main>
        </div>
    }
}

#[component]
fn RecordingCard(r: Recording, reload: RwSignal<u32>) -> impl IntoView {
    let playing = RwSignal::new(false);
    let editing = RwSignal::new(false);
    let title = RwSignal::new(r.title.clone());
    let draft = RwSignal::new(r.title.clone());
    let error = RwSignal::new(None::<String>);
    let id = r.id;
    let save = Callback::new(move |()| {
        let t = draft.get_untracked();
        leptos::task::spawn_local(async move {
            match api::rename_recording(id, t).await {
                Ok(updated) => {
                    title.set(updated.title);
                    editing.set(false);
                    error.set(None);
                }
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    });
    let remove = move |_| {
        #[cfg(feature = "hydrate")]
        if !crate::client::confirm(&format!(
            "Delete “{}”? This cannot be undone.",
            title.get_untracked()
        )) {
            return;
        }
        leptos::task::spawn_local(async move {
            match api::delete_recording(id).await {
                Ok(()) => reload.update(|n| *n += 1),
                Err(e) => error.set(Some(e.to_string())),
            }
        });
    };
    let file_url = r.file_url();
    let download_url = format!("{file_url}?download=1");
    let thumb = r.has_thumbnail.then(|| r.thumbnail_url());
    let details = [
        Some(format::timestamp(&r.created_at)),
        r.duration_ms.map(|d| format::duration(d as f64 / 1000.0)),
        Some(format::bytes(r.size_bytes as f64)),
        r.width.zip(r.height).map(|(w, h)| format!("{w}×{h}")),
        r.pipeline_id.clone(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ");
    let prompts = r
        .prompts
        .iter()
        .map(|p| format!("“{}”", p.text))
        .collect::<Vec<_>>()
        .join(" + ");
    view! {
        <article class="recording-card" data-testid="recording-card" data-recording=r.id.to_string()>
            <div class="recording-media">
                {move || if playing.get() {
                    view! {
                        <video class="recording-player" data-testid="library-player" src=file_url.clone() controls autoplay muted playsinline></video>
                    }.into_any()
                } else {
                    view! {
                        <button type="button" class="recording-thumb" data-testid="recording-play" aria-label="Play" on:click=move |_| playing.set(true)>
                            {thumb.clone().map(|t| view! { <img src=t alt="" loading="lazy" /> })}
                            <span class="play-icon" aria-hidden="true">"▶"</span>
                        </button>
                    }.into_any()
                }}
            </div>
            <div class="recording-info">
                {move || if editing.get() {
                    view! { <RenameForm draft editing max=200 testid="recording-title-input" on_save=save /> }.into_any()
                } else {
                    view! { <h3 class="recording-title" data-testid="recording-title">{move || title.get()}</h3> }.into_any()
                }}
                <p class="muted small">{details}</p>
                {(!prompts.is_empty()).then(|| view! { <p class="small recording-prompts">{prompts}</p> })}
                {move || error.get().map(|e| view! { <p class="error small">{e}</p> })}
                <div class="recording-actions">
                    <a class="secondary small button-link" href=download_url rel="external" download data-testid="recording-download">"Download"</a>
                    <button type="button" class="secondary small" data-testid="recording-rename" on:click=move |_| { draft.set(title.get_untracked()); editing.set(true); }>"Rename"</button>
                    <button type="button" class="danger small" data-testid="recording-delete" on:click=remove>"Delete"</button>
                </div>
            </div>
        </article>
    }
}
