//! The Presets section of the studio's Settings panel: save the current prompt and
//! settings, apply, rename, duplicate, delete, export and import.

use crate::studio::Studio;
use crate::{
    account::{Account, AuthMode},
    api,
    components::RenameForm,
    models::{Preset, PresetInput},
};
use leptos::prelude::*;

/// The export file: `{"presets": [PresetInput, ...]}` (what the import reads back).
#[derive(serde::Serialize, serde::Deserialize)]
struct ExportFile {
    presets: Vec<PresetInput>,
}

#[component]
pub fn PresetsSection() -> impl IntoView {
    let s = expect_context::<Studio>();
    let account = expect_context::<Account>();
    let reload = RwSignal::new(0u32);
    let presets = Resource::new(
        move || (account.version.get(), reload.get()),
        |_| async move {
            // A guest has no presets: skip the call (it would only answer 401).
            match api::current_user().await {
                Ok(Some(_)) => api::list_presets().await.map(Some),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            }
        },
    );
    let name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let done = move |r: Result<(), api::FnError>| match r {
        Ok(()) => {
            error.set(None);
            reload.update(|n| *n += 1);
        }
        Err(e) => error.set(Some(e.to_string())),
    };
    let save = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let input = s.preset_input(name.get_untracked().trim());
        leptos::task::spawn_local(async move {
            let r = api::create_preset(input).await.map(|_| ());
            if r.is_ok() {
                name.set(String::new());
            }
            done(r);
        });
    };
    let export = move |_| {
        let list = presets
            .get_untracked()
            .and_then(|r| r.ok())
            .flatten()
            .unwrap_or_default();
        let file = ExportFile {
            presets: list.iter().map(PresetInput::from).collect(),
        };
        let _text = serde_json::to_string_pretty(&file).unwrap_or_default();
        #[cfg(feature = "hydrate")]
        if let Err(e) = crate::client::text_blob(&_text, "application/json")
            .and_then(|b| crate::client::download_blob(&b, "hanzo-live-presets.json"))
        {
            error.set(Some(e));
        }
    };
    let import = move |_ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use wasm_bindgen::JsCast;
            let input: Option<web_sys::HtmlInputElement> =
                _ev.target().and_then(|t| t.dyn_into().ok());
            let Some(input) = input else { return };
            let Some(file) = input.files().and_then(|f| f.get(0)) else {
                return;
            };
            input.set_value("");
            leptos::task::spawn_local(async move {
                let text = match crate::client::read_text(&file).await {
                    Ok(t) => t,
                    Err(e) => return error.set(Some(e)),
                };
                let parsed: Result<ExportFile, _> = serde_json::from_str(&text);
                match parsed {
                    Ok(f) => {
                        let n = f.presets.len();
                        let r = api::import_presets(f.presets).await.map(|_| ());
                        if r.is_ok() {
                            s.toast("Presets imported", &format!("{n} presets"));
                        }
                        done(r);
                    }
                    Err(e) => error.set(Some(format!("not a presets file: {e}"))),
                }
            });
        }
    };
    view! {
        <section class="settings-section" data-testid="presets">
            <h3 class="section-title">"Presets"</h3>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match presets.await {
                        Ok(None) => view! {
                            <p class="muted small" data-testid="presets-guest">
                                <button type="button" class="link-button" on:click=move |_| account.dialog.set(Some(AuthMode::SignIn))>"Sign in"</button>
                                " to save prompts and settings as presets."
                            </p>
                        }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        Ok(Some(list)) => view! {
                            {list.is_empty().then(|| view! { <p class="muted small" data-testid="presets-empty">"No presets yet."</p> })}
                            <ul class="preset-list" data-testid="preset-list">
                                {list.into_iter().map(|p| view! { <PresetRow p reload error /> }).collect_view()}
                            </ul>
                            <form class="inline-form" on:submit=save>
                                <input
                                    class="text-input"
                                    data-testid="preset-name"
                                    placeholder="Preset name"
                                    aria-label="Preset name"
                                    maxlength="100"
                                    prop:value=move || name.get()
                                    on:input=move |ev| name.set(event_target_value(&ev))
                                />
                                <button type="submit" class="primary small" data-testid="preset-save" disabled=move || name.get().trim().is_empty()>"Save current"</button>
                            </form>
                            <div class="preset-tools">
                                <button type="button" class="secondary small" data-testid="presets-export" on:click=export>"Export"</button>
                                <label class="secondary small button-link upload-button">
                                    "Import"
                                    <input type="file" accept="application/json,.json" class="visually-hidden" data-testid="presets-import" on:change=import />
                                </label>
                            </div>
                        }.into_any(),
                    }
                })}
            </Transition>
            {move || error.get().map(|e| view! { <p class="error small" role="alert" data-testid="preset-error">{e}</p> })}
        </section>
    }
}

#[component]
fn PresetRow(p: Preset, reload: RwSignal<u32>, error: RwSignal<Option<String>>) -> impl IntoView {
    let s = expect_context::<Studio>();
    let editing = RwSignal::new(false);
    let draft = RwSignal::new(p.name.clone());
    let id = p.id;
    let after = move |r: Result<(), api::FnError>| match r {
        Ok(()) => {
            error.set(None);
            reload.update(|n| *n += 1);
        }
        Err(e) => error.set(Some(e.to_string())),
    };
    let rename = Callback::new(move |()| {
        let patch = crate::models::PresetPatch {
            name: Some(draft.get_untracked()),
            ..Default::default()
        };
        leptos::task::spawn_local(async move {
            let r = api::update_preset(id, patch).await.map(|_| ());
            if r.is_ok() {
                editing.set(false);
            }
            after(r);
        });
    });
    let duplicate = move |_| {
        leptos::task::spawn_local(
            async move { after(api::duplicate_preset(id).await.map(|_| ())) },
        );
    };
    let remove = move |_| {
        leptos::task::spawn_local(async move { after(api::delete_preset(id).await) });
    };
    let summary = p
        .prompts
        .first()
        .map(|x| format!("{} · “{}”", p.pipeline_id, x.text))
        .unwrap_or_else(|| p.pipeline_id.clone());
    let name = p.name.clone();
    let data_name = p.name.clone();
    let preset = StoredValue::new(p);
    view! {
        <li class="preset-item" data-testid="preset-item" data-name=data_name>
            {move || if editing.get() {
                view! { <RenameForm draft editing max=100 testid="preset-rename-input" on_save=rename /> }.into_any()
            } else {
                let name = name.clone();
                view! {
                    <button type="button" class="preset-apply" data-testid="preset-apply" title=summary.clone() on:click=move |_| preset.with_value(|p| s.apply_preset(p))>
                        {name}
                    </button>
                    <span class="preset-actions">
                        <button type="button" class="icon-button" title="Rename" aria-label="Rename" data-testid="preset-rename" on:click=move |_| editing.set(true)>"✎"</button>
                        <button type="button" class="icon-button" title="Duplicate" aria-label="Duplicate" data-testid="preset-duplicate" on:click=duplicate>"⧉"</button>
                        <button type="button" class="icon-button" title="Delete" aria-label="Delete" data-testid="preset-delete" on:click=remove>"✕"</button>
                    </span>
                }.into_any()
            }}
        </li>
    }
}
