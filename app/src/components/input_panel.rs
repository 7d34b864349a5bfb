//! The left panel: where the input comes from (camera, a clip or an upload, or none for text
//! → video) and Start/Stop.

use crate::{
    models::InputMode,
    studio::{Phase, Studio},
};
use leptos::prelude::*;

/// Left panel: where the input comes from, and Start/Stop.
#[component]
pub fn InputAndControlsPanel() -> impl IntoView {
    let s = expect_context::<Studio>();
    let modes = move || {
        s.current()
            .map(|p| p.modes)
            .unwrap_or_else(|| vec!["camera".into(), "video".into()])
    };
    let takes_video = move || s.current().is_none_or(|p| p.takes_video());
    view! {
        <aside class="panel panel-left" data-testid="input-panel" aria-labelledby="input-panel-title">
            <h2 class="panel-title" id="input-panel-title">"Input & Controls"</h2>
            <label class="field">
                <span class="field-label">"Mode"</span>
                <select
                    class="select"
                    data-testid="input-mode"
                    prop:value=move || s.mode.get().as_str()
                    disabled=move || match s.phase.get() {
                        Phase::Idle => false,
                        // A video pipeline may switch between camera and file while live.
                        Phase::Streaming => !takes_video(),
                        Phase::Loading | Phase::Connecting => true,
                    }
                    on:change=move |ev| {
                        if let Some(m) = InputMode::parse(&event_target_value(&ev)) {
                            s.mode.set(m);
                            s.on_mode_change();
                        }
                    }
                >
                    {move || {
                        modes()
                            .into_iter()
                            .filter_map(|m| InputMode::parse(&m))
                            .map(|m| view! { <option value=m.as_str() selected=move || s.mode.get() == m>{m.label()}</option> })
                            .collect_view()
                    }}
                </select>
            </label>
            <div class="field" class:hidden=move || !takes_video()>
                <span class="field-label">"Input"</span>
                <div class="input-preview" data-testid="input-preview">
                    <video
                        class="preview-video"
                        node_ref=s.preview
                        autoplay
                        muted
                        playsinline
                        loop
                        crossorigin="anonymous"
                    ></video>
                    <span class="preview-status" data-testid="input-status">
                        {move || {
                            let st = s.input_status.get();
                            if st.is_empty() {
                                match s.mode.get() {
                                    InputMode::Video => "Video Preview".to_owned(),
                                    InputMode::Camera => "Camera Preview".to_owned(),
                                    InputMode::Text => String::new(),
                                }
                            } else {
                                st
                            }
                        }}
                    </span>
                </div>
                <Show when=move || s.mode.get() == InputMode::Video>
                    <label class="upload">
                        <input
                            type="file"
                            accept="video/*"
                            data-testid="upload-input"
                            disabled=move || s.busy()
                            on:change=move |ev| s.on_upload(ev)
                        />
                        <span>"Upload a video (≤ 50 MB)"</span>
                    </label>
                    {move || s.upload_error.get().map(|e| view! { <p class="error" data-testid="upload-error">{e}</p> })}
                </Show>
            </div>
            <Show when=move || !takes_video()>
                <p class="muted" data-testid="text-mode-note">"This pipeline generates video without an input."</p>
            </Show>
            <button
                class="primary start-button"
                data-testid="start-button"
                disabled=move || s.phase.get() == Phase::Idle && (s.current().is_none() || s.start_blocked().is_some())
                title=move || s.start_blocked().unwrap_or_default()
                on:click=move |_| s.on_start_stop()
            >
                {move || match s.phase.get() {
                    Phase::Idle => "Start".to_owned(),
                    Phase::Loading => "Loading… (Stop)".to_owned(),
                    Phase::Connecting => "Connecting… (Stop)".to_owned(),
                    Phase::Streaming => "Stop".to_owned(),
                }}
            </button>
            {move || (s.phase.get() == Phase::Idle).then(|| s.start_blocked()).flatten().map(|why| view! {
                <p class="muted start-blocked" data-testid="start-blocked">{why}</p>
            })}
        </aside>
    }
}
