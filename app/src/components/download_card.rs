//! The Download card under a pipeline's missing files: how much the chosen settings still need,
//! a Download (or Resume) button, then the server's progress (bytes, %, file, speed, time
//! left) with Cancel, and the error when it fails. When the files are in, the pipeline list
//! is fetched again, so Start enables without a reload.

use crate::{
    downloads::{DownloadProgress, DownloadState, ModelStatus},
    format,
    studio::Studio,
};
use leptos::prelude::*;

/// `/api/v1/models/status` for the pipeline with the settings that choose files.
#[cfg(any(feature = "hydrate", test))]
pub fn status_url(
    pipeline_id: &str,
    load: &std::collections::BTreeMap<String, serde_json::Value>,
    te: &str,
) -> String {
    let mut url = format!("/api/v1/models/status?pipeline_id={pipeline_id}&text_encoder={te}");
    for key in ["vae_type", "encoder_vae_type"] {
        if let Some(v) = load.get(key).and_then(|v| v.as_str()) {
            url.push_str(&format!("&{key}={v}"));
        }
    }
    url
}

/// The progress line: `120 MB of 6.70 GB · 2% · WanVideo_comfy/… · 35 MB/s · 3:05 left`.
pub fn progress_line(p: &DownloadProgress) -> String {
    let mut parts = vec![
        format!(
            "{} of {}",
            format::bytes(p.bytes_done as f64),
            format::bytes(p.bytes_total as f64)
        ),
        format!("{:.0}%", p.percent()),
    ];
    if let Some(f) = &p.current_file {
        parts.push(f.clone());
    }
    if p.bytes_per_s > 0.0 {
        parts.push(format!("{}/s", format::bytes(p.bytes_per_s)));
    }
    if let Some(eta) = p.eta_s.filter(|_| p.running()) {
        parts.push(format!("{} left", format::duration(eta)));
    }
    parts.join(" · ")
}

#[component]
pub fn DownloadCard(pipeline_id: String) -> impl IntoView {
    let s = expect_context::<Studio>();
    let status: RwSignal<Option<ModelStatus>> = RwSignal::new(None);
    let request_error: RwSignal<Option<String>> = RwSignal::new(None);
    let text_encoder = RwSignal::new("fp8".to_owned());
    let id = StoredValue::new(pipeline_id);
    // Bumped after a download starts, to poll at once.
    let poll = RwSignal::new(0u64);
    // Each run of the poll (new settings, a started download) has its own number; a loop that
    // sees a newer one stops, so there is never more than one.
    let generation = StoredValue::new(0u64);
    #[cfg(not(feature = "hydrate"))]
    let _ = (s, poll, generation); // the browser polls and posts; the server only renders

    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let url = s
            .load_values
            .with(|v| status_url(&id.get_value(), v, &text_encoder.get()));
        poll.track();
        let mine = generation.get_value() + 1;
        generation.set_value(mine);
        leptos::task::spawn_local(async move {
            let mut was_running = false;
            loop {
                if generation.try_get_value() != Some(mine) {
                    return; // a newer poll, or the card is gone
                }
                // Quickly while a download runs; slowly otherwise, to see one started
                // elsewhere (another tab, the CLI); again after an error.
                let delay_ms = match crate::client::fetch_json("GET", &url, None).await {
                    Ok(v) => match serde_json::from_value::<ModelStatus>(v) {
                        Ok(st) => {
                            if generation.try_get_value() != Some(mine) {
                                return;
                            }
                            let running =
                                st.progress.as_ref().is_some_and(DownloadProgress::running);
                            let done = st.downloaded;
                            if status.try_set(Some(st)).is_some() {
                                return; // disposed
                            }
                            if done {
                                s.refresh_pipelines(); // the card goes with the missing files
                                return;
                            }
                            if was_running && !running {
                                s.refresh_pipelines();
                            }
                            was_running = running;
                            if running { 400 } else { 3000 }
                        }
                        Err(_) => 3000,
                    },
                    Err(e) => {
                        let _ = request_error.try_set(Some(e.to_string()));
                        2000
                    }
                };
                crate::client::sleep(std::time::Duration::from_millis(delay_ms)).await;
            }
        });
    });

    let start = move |_| {
        request_error.set(None);
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let body = serde_json::json!({
                "pipeline_id": id.get_value(),
                "load_params": s.load_values.with_untracked(|v| {
                    ["vae_type", "encoder_vae_type"]
                        .iter()
                        .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
                        .collect::<serde_json::Map<_, _>>()
                }),
                "text_encoder": text_encoder.get_untracked(),
            });
            match crate::client::fetch_json("POST", "/api/v1/models/download", Some(&body)).await {
                Ok(_) => poll.update(|n| *n += 1),
                Err(e) => request_error.set(Some(e.to_string())),
            }
        });
    };
    let cancel = move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let empty = serde_json::json!({});
            if let Err(e) =
                crate::client::fetch_json("POST", "/api/v1/models/download/cancel", Some(&empty))
                    .await
            {
                request_error.set(Some(e.to_string()));
            }
        });
    };

    let progress = move || status.with(|st| st.as_ref().and_then(|st| st.progress.clone()));
    let running = move || progress().is_some_and(|p| p.running());
    view! {
        <div class="download-card" data-testid="download-card">
            {move || status.with(|st| st.as_ref().map(|st| {
                let needs_te = st.missing.iter().any(|f| f.local.contains("umt5-xxl-enc"));
                view! {
                    <p data-testid="download-size">
                        {format!(
                            "Download {} file{}, about {}",
                            st.missing.len(),
                            if st.missing.len() == 1 { "" } else { "s" },
                            format::bytes(st.missing_bytes() as f64)
                        )}
                    </p>
                    {(st.resumable_bytes > 0).then(|| view! {
                        <p class="muted" data-testid="download-resumable">
                            {format!(
                                "{} already on disk from an unfinished download",
                                format::bytes(st.resumable_bytes as f64)
                            )}
                        </p>
                    })}
                    {needs_te.then(|| view! {
                        <label class="field">
                            <span class="field-label">"Text encoder"</span>
                            <select
                                class="select"
                                data-testid="download-text-encoder"
                                prop:value=move || text_encoder.get()
                                disabled=running
                                on:change=move |ev| text_encoder.set(event_target_value(&ev))
                            >
                                <option value="fp8">"fp8 (about half the size)"</option>
                                <option value="bf16">"bf16"</option>
                            </select>
                        </label>
                    })}
                }
            }))}
            {move || progress().map(|p| {
                let mine = id.with_value(|i| *i == p.pipeline_id);
                match p.state {
                    DownloadState::Running => view! {
                        <div class="download-progress">
                            {(!mine).then(|| view! {
                                <p class="muted">{format!("Downloading files for {}", p.pipeline_id)}</p>
                            })}
                            <progress
                                data-testid="download-progress"
                                max="100"
                                value=format!("{:.1}", p.percent())
                            ></progress>
                            <p class="muted" data-testid="download-figures">{progress_line(&p)}</p>
                        </div>
                    }
                    .into_any(),
                    DownloadState::Failed if mine => view! {
                        <p class="error" data-testid="download-error">
                            {format!("Download failed: {}", p.error.unwrap_or_default())}
                        </p>
                    }
                    .into_any(),
                    DownloadState::Cancelled if mine => view! {
                        <p class="muted" data-testid="download-cancelled">
                            "Download cancelled; what arrived is kept for a resume."
                        </p>
                    }
                    .into_any(),
                    _ => ().into_any(),
                }
            })}
            {move || request_error.get().map(|e| view! { <p class="error" data-testid="download-error">{e}</p> })}
            <div class="download-actions">
                {move || if running() {
                    view! {
                        <button type="button" class="secondary small" data-testid="download-cancel" on:click=cancel>"Cancel"</button>
                    }
                    .into_any()
                } else {
                    let resume = status.with(|st| st.as_ref().is_some_and(|st| st.resumable_bytes > 0));
                    view! {
                        <button
                            type="button"
                            class="primary small"
                            data-testid="download-button"
                            disabled=move || status.with(|st| st.is_none())
                            on:click=start
                        >
                            {if resume { "Resume download" } else { "Download" }}
                        </button>
                    }
                    .into_any()
                }}
            </div>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_status_url_carries_the_file_choosing_settings() {
        let mut load = std::collections::BTreeMap::new();
        load.insert("vae_type".to_owned(), json!("tae"));
        load.insert("height".to_owned(), json!(480));
        assert_eq!(
            status_url("longlive", &load, "bf16"),
            "/api/v1/models/status?pipeline_id=longlive&text_encoder=bf16&vae_type=tae"
        );
    }

    #[test]
    fn the_progress_line_says_bytes_percent_file_speed_and_time_left() {
        let p = DownloadProgress {
            pipeline_id: "longlive".into(),
            bytes_done: 120_000_000,
            bytes_total: 6_000_000_000,
            current_file: Some("WanVideo_comfy/umt5.safetensors".into()),
            bytes_per_s: 35_000_000.0,
            eta_s: Some(168.0),
            ..Default::default()
        };
        assert_eq!(
            progress_line(&p),
            "120.0 MB of 6.00 GB · 2% · WanVideo_comfy/umt5.safetensors · 35.0 MB/s · 2:48 left"
        );
        let done = DownloadProgress {
            state: DownloadState::Done,
            ..p
        };
        assert!(!progress_line(&done).contains("left"));
    }
}
