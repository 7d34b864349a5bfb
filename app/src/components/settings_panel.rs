//! The right panel: the pipeline, its info card (with any missing model files), its load and
//! runtime parameters rendered from their schemas, the presets and the server's identity.

use crate::{
    components::DownloadCard,
    models::ServerInfoResource,
    schema::{FieldKind, MissingFile, int_error},
    studio::{Phase, Studio},
};
use leptos::prelude::*;
use serde_json::{Value, json};

/// Right panel: the pipeline and its parameters (rendered from its schema).
#[component]
pub fn SettingsPanel() -> impl IntoView {
    let s = expect_context::<Studio>();
    let info = expect_context::<ServerInfoResource>().0;
    view! {
        <aside class="panel panel-right" data-testid="settings-panel" aria-labelledby="settings-panel-title">
            <h2 class="panel-title" id="settings-panel-title">"Settings"</h2>
            <label class="field">
                <span class="field-label">"Pipeline ID"</span>
                <select
                    class="select"
                    data-testid="pipeline-select"
                    prop:value=move || s.pipeline_id.get()
                    disabled=move || s.busy()
                    on:change=move |ev| {
                        s.select(&event_target_value(&ev));
                        s.on_mode_change();
                    }
                >
                    {move || {
                        s.pipelines
                            .get()
                            .into_iter()
                            .map(|p| {
                                let id = p.id.clone();
                                view! {
                                    <option value=p.id.clone() selected=move || s.pipeline_id.get() == id>
                                        {p.id.clone()}
                                    </option>
                                }
                            })
                            .collect_view()
                    }}
                </select>
            </label>
            {move || s.pipelines_error.get().map(|e| view! { <p class="error">{format!("Cannot list pipelines: {e}")}</p> })}
            {move || s.current().map(|p| view! {
                <div class="pipeline-card" data-testid="pipeline-info">
                    <p class="pipeline-name">{p.name.clone()}</p>
                    <p class="muted">{p.about.clone()}</p>
                    <p class="muted pipeline-facts" data-testid="pipeline-facts">{p.facts()}</p>
                    {move || {
                        // What the chosen settings need (e.g. the TAE's file once VAE is tae).
                        let missing: Vec<MissingFile> = s
                            .load_values
                            .with(|v| p.missing_for(v).into_iter().cloned().collect());
                        (!missing.is_empty()).then(|| view! {
                        <div class="missing-files" data-testid="missing-files">
                            <p class="error">"Model files missing"</p>
                            <p class="muted">{format!("Looked under {}:", p.files.models_dir)}</p>
                            <ul>
                                {missing.iter().map(|m| view! {
                                    <li title=format!("from {} ({})", m.repo, m.file)>
                                        {m.label()}
                                        <br />
                                        <code>{m.relative_path(&p.files.models_dir)}</code>
                                    </li>
                                }).collect_view()}
                            </ul>
                            <DownloadCard pipeline_id=p.id.clone() />
                        </div>
                        })
                    }}
                </div>
            })}
            <div class="fields" data-testid="load-params">
                {move || {
                    s.current()
                        .map(|p| {
                            p.load_fields()
                                .into_iter()
                                .map(|f| match f.kind {
                                    FieldKind::Int { .. } => view! { <IntField field=f /> }.into_any(),
                                    FieldKind::Bool
                                    | FieldKind::Number { .. }
                                    | FieldKind::Choice { .. } => {
                                        view! { <LoadOption field=f /> }.into_any()
                                    }
                                    _ => ().into_any(),
                                })
                                .collect_view()
                        })
                }}
            </div>
            <div class="fields" data-testid="runtime-params">
                {move || {
                    s.current()
                        .map(|p| {
                            p.runtime_fields()
                                .into_iter()
                                .filter(|f| {
                                    f.key != "paused"
                                        && !matches!(
                                            f.kind,
                                            FieldKind::Prompts | FieldKind::Choice { .. }
                                        )
                                })
                                .map(|f| view! { <RuntimeField field=f /> })
                                .collect_view()
                        })
                }}
            </div>
            <super::presets::PresetsSection />
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

/// An integer load parameter: − / + buttons and a number field, with the original's inline
/// messages. Disabled while streaming (load parameters need a restart).
#[component]
fn IntField(field: crate::schema::Field) -> impl IntoView {
    let s = expect_context::<Studio>();
    let key = field.key.clone();
    let step = match field.kind {
        FieldKind::Int {
            multiple_of: Some(m),
            ..
        } => m,
        _ => 1,
    };
    let (get, put) = load_value(s, key.clone());
    let value = move || get().as_i64().unwrap_or(0);
    let set = move |v: i64| put(json!(v));
    let kind = field.kind.clone();
    let error = {
        let value = value.clone();
        move || int_error(&kind, value())
    };
    let testid = format!("param-{key}");
    let (dec, inc, input) = (set.clone(), set.clone(), set);
    let (v1, v2, v3) = (value.clone(), value.clone(), value);
    view! {
        <div class="field" data-testid=testid>
            <span class="field-label" title=field.description.clone()>{field.title.clone()}</span>
            <div class="stepper">
                <button type="button" class="step" aria-label="Decrease" disabled=move || s.busy() on:click=move |_| dec(v1() - step)>"−"</button>
                <input
                    type="number"
                    class="number"
                    prop:value=move || v2().to_string()
                    disabled=move || s.busy()
                    on:change=move |ev| {
                        if let Ok(n) = event_target_value(&ev).trim().parse::<i64>() {
                            input(n);
                        }
                    }
                />
                <button type="button" class="step" aria-label="Increase" disabled=move || s.busy() on:click=move |_| inc(v3() + step)>"+"</button>
            </div>
            {move || error().map(|e| view! { <p class="error field-error">{e}</p> })}
        </div>
    }
}

/// A runtime parameter: toggle, slider, action button or step-list editor. Live ones are
/// sent as soon as they change (sliders when released); the others lock while streaming.
#[component]
fn RuntimeField(field: crate::schema::Field) -> impl IntoView {
    let s = expect_context::<Studio>();
    let key = field.key.clone();
    let live = field.live;
    let locked = move || s.busy() && !live;
    let value = {
        let key = key.clone();
        move || {
            s.runtime_values
                .with(|v| v.get(&key).cloned().unwrap_or(Value::Null))
        }
    };
    let commit = {
        let key = key.clone();
        move |v: Value, send: bool| {
            s.runtime_values.update(|m| {
                m.insert(key.clone(), v.clone());
            });
            if send && s.phase.get_untracked() == Phase::Streaming {
                s.send_live(&key, v);
            }
        }
    };
    let testid = format!("param-{key}");
    let title = field.title.clone();
    let control = match field.kind.clone() {
        FieldKind::Bool => {
            let (value, v2) = (value.clone(), value.clone());
            view! {
                <label class="toggle">
                    <input
                        type="checkbox"
                        prop:checked=move || v2().as_bool().unwrap_or(false)
                        disabled=locked
                        on:change=move |ev| commit(json!(event_target_checked(&ev)), true)
                    />
                    <span>{move || if value().as_bool().unwrap_or(false) { "ON" } else { "OFF" }}</span>
                </label>
            }
            .into_any()
        }
        FieldKind::Number { min, max, step } => {
            let (v1, v2) = (value.clone(), value.clone());
            let c2 = commit.clone();
            view! {
                <div class="slider">
                    <input
                        type="range"
                        min=min
                        max=max
                        step=step
                        prop:value=move || v1().as_f64().unwrap_or(min).to_string()
                        disabled=locked
                        on:input=move |ev| {
                            if let Ok(x) = event_target_value(&ev).parse::<f64>() {
                                c2(json!(x), false);
                            }
                        }
                        on:change=move |ev| {
                            if let Ok(x) = event_target_value(&ev).parse::<f64>() {
                                commit(json!(x), true);
                            }
                        }
                    />
                    <span class="slider-value">{move || format!("{:.2}", v2().as_f64().unwrap_or(min))}</span>
                </div>
            }
            .into_any()
        }
        FieldKind::Trigger => {
            let key = key.clone();
            view! {
                <button
                    type="button"
                    class="secondary"
                    disabled=move || s.phase.get() != Phase::Streaming
                    on:click=move |_| s.send_live(&key, json!(true))
                >
                    {title.clone()}
                </button>
            }
            .into_any()
        }
        FieldKind::Steps { .. } => {
            let kind = field.kind.clone();
            let default = field.default.clone();
            let steps = {
                let value = value.clone();
                move || -> Vec<i64> {
                    value()
                        .as_array()
                        .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default()
                }
            };
            let set = {
                let kind = kind.clone();
                move |new: Vec<i64>| {
                    let valid = crate::schema::steps_error(&kind, &new).is_none();
                    commit(json!(new), valid);
                }
            };
            let error = {
                let (kind, steps) = (kind.clone(), steps.clone());
                move || crate::schema::steps_error(&kind, &steps())
            };
            let (st_rows, st_add, st_del) = (steps.clone(), steps.clone(), steps.clone());
            let (set_rows, set_add, set_del, set_reset) =
                (set.clone(), set.clone(), set.clone(), set);
            let kind_add = kind.clone();
            view! {
                <div class="steps">
                    {move || {
                        let current = st_rows();
                        current
                            .iter()
                            .enumerate()
                            .map(|(i, v)| {
                                let set = set_rows.clone();
                                let all = current.clone();
                                view! {
                                    <label class="step-row">
                                        <span>{format!("Step {}:", i + 1)}</span>
                                        <input
                                            type="number"
                                            class="number"
                                            prop:value=v.to_string()
                                            disabled=locked
                                            on:change=move |ev| {
                                                if let Ok(n) = event_target_value(&ev).trim().parse::<i64>() {
                                                    let mut next = all.clone();
                                                    next[i] = n;
                                                    set(next);
                                                }
                                            }
                                        />
                                    </label>
                                }
                            })
                            .collect_view()
                    }}
                    <div class="step-buttons">
                        <button type="button" class="step" aria-label="Add a step" disabled=locked
                            on:click=move |_| {
                                let mut cur = st_add();
                                if let Some(n) = crate::schema::next_step(&kind_add, &cur) {
                                    cur.push(n);
                                    set_add(cur);
                                }
                            }>"+"</button>
                        <button type="button" class="step" aria-label="Remove the last step" disabled=locked
                            on:click=move |_| {
                                let mut cur = st_del();
                                if cur.len() > 1 {
                                    cur.pop();
                                    set_del(cur);
                                }
                            }>"−"</button>
                        <button type="button" class="secondary" disabled=locked
                            on:click=move |_| {
                                let d = default.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default();
                                set_reset(d);
                            }>"Reset"</button>
                    </div>
                    {move || error().map(|e| view! { <p class="error field-error">{e}</p> })}
                </div>
            }
            .into_any()
        }
        FieldKind::Int { .. } | FieldKind::Prompts | FieldKind::Choice { .. } => ().into_any(),
    };
    view! {
        <div class="field" data-testid=testid>
            <span class="field-label" title=field.description.clone()>{field.title.clone()}</span>
            {control}
        </div>
    }
}

/// Load parameter `key`'s value as the controls hold it, and its setter.
fn load_value(
    s: Studio,
    key: String,
) -> (
    impl Fn() -> Value + Clone + 'static,
    impl Fn(Value) + Clone + 'static,
) {
    let get = {
        let key = key.clone();
        move || {
            s.load_values
                .with(|v| v.get(&key).cloned().unwrap_or(Value::Null))
        }
    };
    let set = move |v: Value| {
        s.load_values.update(|m| {
            m.insert(key.clone(), v);
        })
    };
    (get, set)
}

/// A load parameter that is a switch, a number or a choice (StreamDiffusionV2's
/// `stream_batch`, `adapt_sink_threshold`, every Wan pipeline's `vae_type`, …). Disabled while
/// streaming (load parameters need a restart).
#[component]
fn LoadOption(field: crate::schema::Field) -> impl IntoView {
    let s = expect_context::<Studio>();
    let key = field.key.clone();
    let (value, set) = load_value(s, key.clone());
    let testid = format!("param-{key}");
    let control = match field.kind.clone() {
        FieldKind::Choice { options } => {
            let value = value.clone();
            view! {
                <select
                    class="select"
                    disabled=move || s.busy()
                    prop:value=move || value().as_str().unwrap_or_default().to_owned()
                    on:change=move |ev| set(json!(event_target_value(&ev)))
                >
                    {options
                        .into_iter()
                        .map(|o| {
                            // `selected` too: the select's value is set before its options
                            // exist when the field is rebuilt.
                            let chosen = {
                                let (value, o) = (value.clone(), o.clone());
                                move || value().as_str() == Some(o.as_str())
                            };
                            view! { <option value=o.clone() selected=chosen>{o.clone()}</option> }
                        })
                        .collect_view()}
                </select>
            }
            .into_any()
        }
        FieldKind::Number { min, max, step } => {
            let value = value.clone();
            view! {
                <input
                    class="select"
                    type="number"
                    min=min
                    max=max
                    step=step
                    disabled=move || s.busy()
                    prop:value=move || value().as_f64().map(|v| v.to_string()).unwrap_or_default()
                    on:change=move |ev| {
                        if let Ok(v) = event_target_value(&ev).parse::<f64>() {
                            set(json!(v.clamp(min, max)));
                        }
                    }
                />
            }
            .into_any()
        }
        _ => view! {
            <input
                type="checkbox"
                disabled=move || s.busy()
                prop:checked=move || value().as_bool().unwrap_or(false)
                on:change=move |ev| set(json!(event_target_checked(&ev)))
            />
        }
        .into_any(),
    };
    // A choice says what its options cost (e.g. each autoencoder's speed) under it.
    let note = matches!(field.kind, FieldKind::Choice { .. })
        .then(|| view! { <small class="muted field-note">{field.description.clone()}</small> });
    view! {
        <label class="field" data-testid=testid>
            <span class="field-label" title=field.description.clone()>{field.title.clone()}</span>
            {control}
            {note}
        </label>
    }
}
