//! Under the video: the prompts a stream runs on. The main prompt field, and for pipelines
//! that blend prompts, up to seven more with a weight each, how they blend (linear, or slerp
//! for two; more fall back to linear) and over how many chunks the next change moves the
//! video (0: at once). While streaming, Enter sends the list over the data channel; weight
//! and blend edits go after a short pause; the line below says what the server confirmed.

use crate::{
    models::PromptItem,
    studio::{MAX_PROMPTS, PROMPT_PLACEHOLDER, Phase, PromptRow, Studio},
};
use leptos::{ev::SubmitEvent, prelude::*};

/// `“a” 0.70 + “b” 0.30`, or `“a”` alone.
fn describe(prompts: &[PromptItem]) -> String {
    match prompts {
        [one] => format!("“{}”", one.text),
        many => many
            .iter()
            .map(|p| format!("“{}” {:.2}", p.text, p.weight))
            .collect::<Vec<_>>()
            .join(" + "),
    }
}

#[component]
pub fn PromptDock() -> impl IntoView {
    let s = expect_context::<Studio>();
    let draft = s.prompt_draft;
    let blending = move || !s.extra_prompts.with(Vec::is_empty);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if !draft.get_untracked().trim().is_empty() {
            s.apply_prompts();
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
            <Show when=blending>
                <Weight weight=s.first_weight testid="prompt-weight-0".to_owned() />
            </Show>
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
        <Show when=move || s.takes_prompts()>
            <div class="prompt-blend" data-testid="prompt-blend">
                <For
                    each=move || s.extra_prompts.get()
                    key=|row| row.id
                    children=move |row| view! { <BlendRow row=row /> }
                />
                <div class="prompt-options">
                    <button
                        type="button"
                        class="link-button"
                        data-testid="prompt-add"
                        disabled=move || s.extra_prompts.with(|r| r.len() + 1 >= MAX_PROMPTS)
                        on:click=move |_| {
                            let row = s.new_prompt_row("", 0.5);
                            s.extra_prompts.update(|r| r.push(row));
                        }
                    >
                        "+ Blend another prompt"
                    </button>
                    <Show when=blending>
                        <label class="inline-field">
                            "Blend"
                            <select
                                class="select compact"
                                data-testid="prompt-interpolation"
                                prop:value=move || s.interpolation.get()
                                on:change=move |ev| {
                                    s.interpolation.set(event_target_value(&ev));
                                    s.schedule_prompts();
                                }
                            >
                                <option value="linear">"linear"</option>
                                <option value="slerp">"slerp"</option>
                            </select>
                        </label>
                    </Show>
                    <label class="inline-field" title="Chunks a prompt change takes to reach the new prompts (0: at once)">
                        "Transition"
                        <input
                            class="compact"
                            type="number"
                            min="0"
                            max="64"
                            data-testid="prompt-transition"
                            prop:value=move || s.transition_steps.get().to_string()
                            on:change=move |ev| {
                                let n = event_target_value(&ev).parse::<i64>().unwrap_or(0).clamp(0, 64);
                                s.transition_steps.set(n);
                            }
                        />
                        "chunks"
                    </label>
                </div>
            </div>
        </Show>
        <p class="prompt-next" data-testid="prompt-next">
            {move || {
                let streaming = s.phase.get() == Phase::Streaming;
                match (s.next_prompt.get(), s.current().is_some() && !s.takes_prompts(), s.live_prompts.get()) {
                    (_, true, _) => "This pipeline takes no prompt.".to_owned(),
                    (_, false, Some(live)) if streaming && !live.is_empty() => {
                        format!("Live: {}", describe(&live))
                    }
                    (Some(p), false, _) => format!("Next stream starts with: “{p}”"),
                    (None, false, _) => "Type a prompt and press Enter.".to_owned(),
                }
            }}
        </p>
    }
}

/// A weight slider, 0–1.
#[component]
fn Weight(weight: RwSignal<f64>, #[prop(into)] testid: Signal<String>) -> impl IntoView {
    let s = expect_context::<Studio>();
    view! {
        <span class="prompt-weight">
            <input
                type="range"
                min="0"
                max="1"
                step="0.05"
                aria-label="Weight"
                data-testid=move || testid.get()
                prop:value=move || weight.get().to_string()
                on:input=move |ev| {
                    if let Ok(w) = event_target_value(&ev).parse::<f64>() {
                        weight.set(w);
                        s.schedule_prompts();
                    }
                }
            />
            <span class="prompt-weight-value">{move || format!("{:.2}", weight.get())}</span>
        </span>
    }
}

/// One blended prompt: its text (Enter applies the list), weight and a remove button.
#[component]
fn BlendRow(row: PromptRow) -> impl IntoView {
    let s = expect_context::<Studio>();
    let id = row.id;
    // Its place in the list (the main prompt is 0), kept right as rows above it go.
    let index = move || {
        s.extra_prompts
            .with(|r| r.iter().position(|x| x.id == id))
            .map_or(0, |p| p + 1)
    };
    let (text, weight) = (RwSignal::from(row.text), RwSignal::from(row.weight));
    view! {
        <div class="prompt-row" data-testid=move || format!("prompt-row-{}", index())>
            <input
                class="prompt-input compact"
                type="text"
                placeholder="another prompt to blend in"
                aria-label=move || format!("Prompt {}", index() + 1)
                maxlength="2000"
                data-testid=move || format!("prompt-text-{}", index())
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
                on:keydown=move |ev| {
                    if ev.key() == "Enter" {
                        ev.prevent_default();
                        s.apply_prompts();
                    }
                }
            />
            <Weight weight=weight testid=Signal::derive(move || format!("prompt-weight-{}", index())) />
            <button
                type="button"
                class="icon-button"
                aria-label="Remove prompt"
                data-testid=move || format!("prompt-remove-{}", index())
                on:click=move |_| {
                    s.remove_prompt_row(id);
                    s.schedule_prompts();
                }
            >
                "✕"
            </button>
        </div>
    }
}
