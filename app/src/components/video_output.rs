//! The centre: the output video and its states (idle, loading with progress, connecting,
//! error), pause on click, and the record bar.

use crate::studio::{Phase, Studio};
use leptos::prelude::*;

/// Centre: the output video and its states.
#[component]
pub fn VideoOutput() -> impl IntoView {
    let s = expect_context::<Studio>();
    view! {
        <div
            class="video-area"
            data-testid="video-area"
            data-phase=move || format!("{:?}", s.phase.get()).to_lowercase()
            data-paused=move || s.paused.get().to_string()
            on:click=move |_| s.toggle_pause()
        >
            <video
                class="output-video"
                class:hidden=move || s.phase.get() != Phase::Streaming
                data-testid="output-video"
                node_ref=s.output
                autoplay
                muted
                playsinline
            ></video>
            {move || match (s.phase.get(), s.stream_error.get()) {
                (Phase::Streaming, _) => None,
                (Phase::Loading, _) => Some(view! {
                    <div class="video-state" data-testid="load-progress">
                        <span class="spinner"></span>
                        <p>{move || match s.load_progress.get() {
                            Some((Some(stage), f)) => format!("{}… {:.0}%", stage.label(), f * 100.0),
                            Some((None, f)) if f > 0.0 => format!("Loading pipeline… {:.0}%", f * 100.0),
                            _ => "Loading pipeline...".to_owned(),
                        }}</p>
                        <progress max="1" value=move || s.load_progress.get().map_or(0.0, |(_, f)| f)></progress>
                    </div>
                }.into_any()),
                (Phase::Connecting, _) => Some(view! { <div class="video-state"><span class="spinner"></span><p>"Connecting..."</p></div> }.into_any()),
                (Phase::Idle, Some(e)) => Some(view! {
                    <div class="video-state error" data-testid="video-error">
                        <p class="video-idle-title">"Pipeline Error"</p>
                        <p>{e}</p>
                    </div>
                }.into_any()),
                (Phase::Idle, None) => Some(view! {
                    <div class="video-idle">
                        <p class="video-idle-title">"Click \"Start\" when you are ready"</p>
                        <p class="video-idle-hint">{move || format!("Input: {}", s.mode.get().label())}</p>
                    </div>
                }.into_any()),
            }}
            <Show when=move || s.phase.get() == Phase::Streaming || s.recording.get().is_some()>
                <div class="record-bar" on:click=move |ev| ev.stop_propagation()>
                    <button
                        type="button"
                        class="record-button"
                        class:recording=move || s.recording.get().is_some()
                        data-testid="record-button"
                        on:click=move |_| s.toggle_recording()
                    >
                        {move || if s.recording.get().is_some() { "■ Stop recording" } else { "● Record" }}
                    </button>
                    {move || s.recording.get().map(|f| view! {
                        <span class="record-status" data-testid="record-status">
                            {format!(
                                "{} · {}",
                                crate::format::duration(f.elapsed_ms / 1000.0),
                                crate::format::bytes(f.bytes),
                            )}
                        </span>
                    })}
                </div>
            </Show>
            {move || (s.pause_flash.get() > 0).then(|| view! {
                <div class="pause-overlay" data-testid="pause-overlay" aria-hidden="true">
                    {if s.paused.get() { "❚❚" } else { "▶" }}
                </div>
            })}
        </div>
    }
}
