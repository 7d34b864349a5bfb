//! The studio in the browser: pipeline list and load (with its progress), the WebRTC
//! connection and its data channel, the camera and clip input, pause, recording, the stats
//! poll. Compiled into the wasm build only.

use super::*;

impl Studio {
    /// Fetches the pipeline list and selects the first one.
    pub(super) fn load_pipelines(self) {
        leptos::task::spawn_local(async move {
            match crate::client::fetch_json("GET", "/api/v1/pipelines", None).await {
                Ok(v) => {
                    let list = serde_json::from_value::<crate::schema::PipelineList>(v)
                        .map(|l| l.pipelines)
                        .unwrap_or_default();
                    let first = list.first().map(|p| p.id.clone());
                    self.pipelines.set(list);
                    if let Some(id) = first {
                        self.select(&id);
                    }
                }
                Err(e) => self.pipelines_error.set(Some(e.to_string())),
            }
        });
    }

    /// Fetches the pipeline list again (after a download), keeping the selection and settings.
    pub(crate) fn refresh_pipelines(self) {
        leptos::task::spawn_local(async move {
            if let Ok(v) = crate::client::fetch_json("GET", "/api/v1/pipelines", None).await
                && let Ok(list) = serde_json::from_value::<crate::schema::PipelineList>(v)
            {
                self.pipelines.set(list.pipelines);
            }
        });
    }

    /// Shows the chosen input in the preview (camera or clip).
    pub(super) fn show_input(self) {
        let mode = self.mode.get_untracked();
        let Some(video) = self.preview.get_untracked() else {
            return;
        };
        if mode != InputMode::Camera {
            self.camera.update_value(|c| {
                if let Some(s) = c.take() {
                    crate::client::stop_tracks(&s);
                }
            });
            video.set_src_object(None);
        }
        match mode {
            InputMode::Camera => {
                self.input_status.set("Requesting camera access...".into());
                leptos::task::spawn_local(async move {
                    match crate::client::camera().await {
                        Ok(stream) => {
                            video.set_src_object(Some(&stream));
                            crate::client::play_in_background(video.clone());
                            self.replace_if_streaming(&stream);
                            self.camera.set_value(Some(stream));
                            self.input_status.set("Camera Preview".into());
                        }
                        Err(e) => self.input_status.set(format!("Camera access failed: {e}")),
                    }
                });
            }
            InputMode::Video => {
                video.set_src(&self.clip_url.get_untracked());
                video.set_loop(true);
                video.set_muted(true);
                self.input_status.set("Initializing video...".into());
                leptos::task::spawn_local(async move {
                    // A captured element has a video track only once it plays.
                    match crate::client::play(&video).await {
                        // Another source took over before this one played.
                        Ok(false) => {}
                        Ok(true) => {
                            self.input_status.set("Video Preview".into());
                            if self.phase.get_untracked() == Phase::Streaming
                                && let Ok(stream) = crate::client::capture(&video)
                            {
                                self.replace_if_streaming(&stream);
                            }
                        }
                        Err(e) => self.input_status.set(format!("Video error: {e}")),
                    }
                });
            }
            InputMode::Text => self.input_status.set(String::new()),
        }
    }

    /// Switching the source while streaming swaps the sent track; no renegotiation.
    pub(super) fn replace_if_streaming(self, stream: &web_sys::MediaStream) {
        if self.phase.get_untracked() != Phase::Streaming {
            return;
        }
        let promise = self
            .live
            .with_value(|l| l.as_ref().and_then(|l| l.replace_input(stream)));
        if let Some(p) = promise {
            leptos::task::spawn_local(async move {
                if let Err(e) = wasm_bindgen_futures::JsFuture::from(p).await {
                    self.toast("Input switch failed", &format!("{e:?}"));
                }
            });
        }
    }

    pub(super) fn start(self) {
        let Some(p) = self.current() else { return };
        if let Some(e) = self.load_error() {
            self.toast("Invalid settings", &e);
            return;
        }
        self.stream_error.set(None);
        self.paused.set(false);
        self.phase.set(Phase::Loading);
        leptos::task::spawn_local(async move {
            if let Err(e) = self.run(p).await {
                self.phase.set(Phase::Idle);
                if e.needs_sign_in() {
                    // The server runs with --require-login.
                    self.account
                        .dialog
                        .set(Some(crate::account::AuthMode::SignIn));
                }
                let e = e.to_string();
                self.stream_error.set(Some(e.clone()));
                self.toast("Stream Error", &e);
            }
        });
    }

    pub(super) async fn run(self, p: PipelineInfo) -> Result<(), crate::client::RequestError> {
        use crate::client::{Callbacks, Live, fetch_json, sleep};
        use crate::schema::{LoadStatus, PipelineStatus};
        use std::time::Duration;
        let load_params = self.load_params();
        fetch_json(
            "POST",
            "/api/v1/pipeline/load",
            Some(&json!({ "pipeline_id": p.id, "load_params": load_params })),
        )
        .await?;
        // A model pipeline's first load on a GPU compiles its kernels: minutes, with progress.
        let mut waited = Duration::ZERO;
        loop {
            let s: PipelineStatus =
                serde_json::from_value(fetch_json("GET", "/api/v1/pipeline/status", None).await?)
                    .map_err(|e| format!("unexpected pipeline status: {e}"))?;
            if s.pipeline_id.as_deref() != Some(p.id.as_str()) {
                self.load_progress.set(None);
                return Err(format!(
                    "another viewer loaded {} meanwhile; press Start again",
                    s.pipeline_id.unwrap_or_default()
                )
                .into());
            }
            match s.status {
                LoadStatus::Loaded => break,
                LoadStatus::Error => {
                    self.load_progress.set(None);
                    return Err(s
                        .error
                        .unwrap_or_else(|| "the pipeline failed to load".into())
                        .into());
                }
                LoadStatus::Loading => self
                    .load_progress
                    .set(Some((s.loading_stage, s.progress.unwrap_or(0.0)))),
                _ => {}
            }
            if waited > Duration::from_secs(30 * 60) {
                self.load_progress.set(None);
                return Err("the pipeline took too long to load".into());
            }
            if self.phase.get_untracked() == Phase::Idle {
                break; // stopped while loading
            }
            sleep(Duration::from_millis(250)).await;
            waited += Duration::from_millis(250);
        }
        self.load_progress.set(None);
        if self.phase.get_untracked() == Phase::Idle {
            return Ok(()); // stopped while loading
        }
        self.phase.set(Phase::Connecting);
        let input = if p.takes_video() {
            match self.mode.get_untracked() {
                InputMode::Camera => self
                    .camera
                    .get_value()
                    .ok_or_else(|| "no camera stream: allow camera access first".to_owned())?,
                _ => {
                    let video = self.preview.get_untracked().ok_or("no input video")?;
                    crate::client::capture(&video)?
                }
            }
            .into()
        } else {
            None
        };
        let output = self.output;
        let callbacks = Callbacks {
            on_track: Box::new(move |stream| {
                if let Some(v) = output.get_untracked() {
                    v.set_src_object(Some(&stream));
                    crate::client::play_in_background(v);
                }
            }),
            on_message: Box::new(move |msg| self.on_message(msg)),
            on_state: Box::new(move |state| {
                if state == "failed" {
                    // As for stream_stopped: not from inside the handler being dropped.
                    leptos::task::spawn_local(async move { self.fail("the connection failed") });
                }
            }),
        };
        let mut initial = json!(self.runtime_values.get_untracked());
        let prompts = self.prompt_list();
        if !prompts.is_empty() && self.takes_prompts() {
            initial["prompts"] = json!(prompts);
            initial["prompt_interpolation_method"] = json!(self.interpolation.get_untracked());
        }
        self.live_prompts.set(None);
        let live = Live::connect(input.as_ref(), initial, callbacks).await?;
        if self.phase.get_untracked() == Phase::Idle {
            live.close();
            return Ok(());
        }
        self.live.set_value(Some(live));
        self.stream_signed_in
            .set(self.account.current_untracked().is_some());
        self.phase.set(Phase::Streaming);
        self.poll_stats();
        Ok(())
    }

    pub(super) fn on_message(self, msg: Value) {
        use crate::wire::ServerMessage;
        let Ok(msg) = serde_json::from_value::<ServerMessage>(msg) else {
            return; // a message this page does not know
        };
        match msg {
            ServerMessage::Metrics { system, stream } => self.figures.update(|f| {
                f.system = Some(system);
                f.stream = Some(stream);
            }),
            // Stopping drops the connection's closures, this handler's among them: do it once
            // the handler has returned.
            ServerMessage::StreamStopped { error_message } => {
                leptos::task::spawn_local(async move {
                    match error_message {
                        Some(e) => self.fail(&e),
                        None => self.stop(),
                    }
                })
            }
            ServerMessage::Error { message } => self.toast("Parameter rejected", &message),
            ServerMessage::ParametersUpdated { parameters } => {
                if let Some(p) = parameters.get("prompts") {
                    self.live_prompts.set(Some(crate::models::prompt_items(p)));
                } else if let Some(t) = parameters.get("transition") {
                    self.live_prompts
                        .set(Some(crate::models::prompt_items(&t["target_prompts"])));
                }
            }
        }
    }

    pub(super) fn fail(self, message: &str) {
        self.stop();
        self.stream_error.set(Some(message.to_owned()));
        self.toast("Stream Error", message);
    }

    pub(super) fn poll_stats(self) {
        use std::time::Duration;
        leptos::task::spawn_local(async move {
            let mut last: Option<(f64, f64)> = None;
            while self.phase.get_untracked() == Phase::Streaming {
                let peer = self.live.with_value(|l| l.as_ref().map(|l| l.peer()));
                let Some(peer) = peer else { break };
                if let Some((bytes, frames, rtt)) = crate::client::stats(&peer).await {
                    if let Some((b0, f0)) = last {
                        self.figures.update(|f| {
                            f.bitrate_bps = Some((bytes - b0) * 8.0);
                            f.client_fps = Some(frames - f0);
                            f.rtt_ms = rtt.map(|r| r * 1000.0);
                        });
                    }
                    last = Some((bytes, frames));
                }
                crate::client::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    pub(super) fn stop(self) {
        if self.recording.get_untracked().is_some() {
            self.stop_recording();
        }
        self.live.update_value(|l| {
            if let Some(l) = l.take() {
                l.close();
            }
        });
        if let Some(v) = self.output.get_untracked() {
            v.set_src_object(None);
        }
        self.phase.set(Phase::Idle);
        self.paused.set(false);
        self.figures.set(Figures::default());
    }

    pub(super) fn start_recording(self) {
        use wasm_bindgen::JsCast;
        let stream = self
            .output
            .get_untracked()
            .and_then(|v| v.src_object())
            .and_then(|s| s.dyn_into::<web_sys::MediaStream>().ok());
        let Some(stream) = stream else {
            self.toast("Cannot record", "no output video yet");
            return;
        };
        match crate::client::Recorder::start(&stream) {
            Ok(r) => self.recorder.set_value(Some(r)),
            Err(e) => {
                self.toast("Cannot record", &e);
                return;
            }
        }
        let started = js_sys::Date::now();
        self.recording.set(Some(RecordingFigures::default()));
        leptos::task::spawn_local(async move {
            while self.recording.get_untracked().is_some() {
                let bytes = self.recorder.with_value(|r| r.as_ref().map(|r| r.size()));
                let Some(bytes) = bytes else { break };
                self.recording.set(Some(RecordingFigures {
                    elapsed_ms: js_sys::Date::now() - started,
                    bytes,
                }));
                crate::client::sleep(std::time::Duration::from_millis(250)).await;
            }
        });
    }

    /// Stops the recorder; a signed-in user's recording is uploaded to the Library, a
    /// guest's is downloaded.
    pub(super) fn stop_recording(self) {
        let mut taken = None;
        self.recorder.update_value(|r| taken = r.take());
        let Some(rec) = taken else { return };
        let figures = self.recording.get_untracked().unwrap_or_default();
        self.recording.set(None);
        let video = self.output.get_untracked();
        let thumbnail = video.as_ref().and_then(crate::client::snapshot_data_url);
        let (w, h) = video
            .as_ref()
            .map_or((0, 0), |v| (v.video_width(), v.video_height()));
        let preset = self.preset_input("");
        let session_id = self
            .stream_signed_in
            .get_untracked()
            .then(|| {
                self.live
                    .with_value(|l| l.as_ref().map(|l| l.session_id.clone()))
            })
            .flatten();
        let mut meta = json!({
            "duration_ms": figures.elapsed_ms.round() as i64,
            "pipeline_id": preset.pipeline_id,
            "prompts": preset.prompts,
            "params": preset.params,
            "session_id": session_id,
        });
        if w > 0 && h > 0 {
            meta["width"] = json!(w);
            meta["height"] = json!(h);
        }
        let signed_in = self.account.current_untracked().is_some();
        leptos::task::spawn_local(async move {
            let blob = match rec.stop().await {
                Ok(b) => b,
                Err(e) => return self.toast("Recording failed", &e),
            };
            if !signed_in {
                let name = format!("hanzo-live-{}.webm", js_sys::Date::now() as u64);
                match crate::client::download_blob(&blob, &name) {
                    Ok(()) => self.toast(
                        "Recording downloaded",
                        "Sign in to keep recordings in your Library.",
                    ),
                    Err(e) => self.toast("Recording failed", &e),
                }
                return;
            }
            let result: Result<Value, String> = async {
                let form = web_sys::FormData::new().map_err(|e| format!("{e:?}"))?;
                form.append_with_str("metadata", &meta.to_string())
                    .map_err(|e| format!("{e:?}"))?;
                form.append_with_blob_and_filename("file", &blob, "recording.webm")
                    .map_err(|e| format!("{e:?}"))?;
                if let Some(url) = thumbnail
                    && let Some(t) = crate::client::data_url_blob(&url).await
                {
                    form.append_with_blob_and_filename("thumbnail", &t, "thumbnail.jpg")
                        .map_err(|e| format!("{e:?}"))?;
                }
                crate::client::post_form("/api/v1/recordings", &form)
                    .await
                    .map_err(String::from)
            }
            .await;
            match result {
                Ok(r) => self.toast(
                    "Recording saved",
                    &format!(
                        "“{}” is in your Library.",
                        r["title"].as_str().unwrap_or("")
                    ),
                ),
                Err(e) => self.toast("Upload failed", &e),
            }
        });
    }

    /// Sends runtime parameters to the running stream.
    pub(super) fn send(self, msg: Value) {
        self.live.with_value(|l| {
            if let Some(l) = l {
                l.send(&msg);
            }
        });
    }
}
