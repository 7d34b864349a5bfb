//! Browser-only plumbing (feature `hydrate`): JSON over `fetch`, the camera, and the
//! WebRTC peer connection through `web-sys`.

pub use crate::error::RequestError;
use serde_json::{Value, json};
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue, closure::Closure};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    HtmlVideoElement, MediaStream, MediaStreamConstraints, MessageEvent, RequestInit, Response,
    RtcConfiguration, RtcDataChannel, RtcDataChannelInit, RtcIceGatheringState, RtcPeerConnection,
    RtcRtpTransceiverDirection, RtcRtpTransceiverInit, RtcSessionDescriptionInit, RtcTrackEvent,
};

fn js_err(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            js_sys::Reflect::get(&e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

fn window() -> web_sys::Window {
    web_sys::window().expect("a browser window")
}

/// `fetch` with an optional JSON body; the response body parsed as JSON. A non-2xx answer
/// becomes its `error` message with its status.
pub async fn fetch_json(
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, RequestError> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(b) = body {
        let headers = web_sys::Headers::new().map_err(js_err)?;
        headers
            .set("content-type", "application/json")
            .map_err(js_err)?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&b.to_string()));
    }
    send(url, &init).await
}

/// Sends a request; the answer parsed as JSON (`null` when empty), or its `error` message and
/// status.
async fn send(url: &str, init: &RequestInit) -> Result<Value, RequestError> {
    let resp: Response = JsFuture::from(window().fetch_with_str_and_init(url, init))
        .await
        .map_err(|e| format!("network error: {}", js_err(e)))?
        .dyn_into()
        .map_err(js_err)?;
    let text = JsFuture::from(resp.text().map_err(js_err)?)
        .await
        .map_err(js_err)?;
    let text = text.as_string().unwrap_or_default();
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    };
    if resp.ok() {
        Ok(value)
    } else {
        let message = value["error"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("HTTP {}", resp.status()));
        Err(RequestError::answered(resp.status(), message))
    }
}

/// Waits `d` (browser timer).
pub async fn sleep(d: Duration) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window()
            .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, d.as_millis() as i32);
    });
    let _ = JsFuture::from(promise).await;
}

/// The camera (video only), at most 512×512 as the original asks.
pub async fn camera() -> Result<MediaStream, String> {
    let devices = window().navigator().media_devices().map_err(js_err)?;
    let constraints = MediaStreamConstraints::new();
    let video = js_sys::JSON::parse(
        r#"{"width":{"ideal":512,"max":1280},"height":{"ideal":512,"max":720},"frameRate":{"ideal":30,"max":30}}"#,
    )
    .map_err(js_err)?;
    constraints.set_video(&video);
    constraints.set_audio(&JsValue::FALSE);
    let stream = JsFuture::from(
        devices
            .get_user_media_with_constraints(&constraints)
            .map_err(js_err)?,
    )
    .await
    .map_err(js_err)?;
    stream.dyn_into().map_err(js_err)
}

/// A live stream of what a `<video>` element plays (`HTMLMediaElement.captureStream()`).
pub fn capture(video: &HtmlVideoElement) -> Result<MediaStream, String> {
    let f = js_sys::Reflect::get(video, &"captureStream".into()).map_err(js_err)?;
    let f: js_sys::Function = f
        .dyn_into()
        .map_err(|_| "this browser cannot capture a video element".to_owned())?;
    f.call0(video).map_err(js_err)?.dyn_into().map_err(js_err)
}

/// Starts playback; `Ok(false)` when a new source replaced the one it was starting.
///
/// `play()`'s promise rejects with `AbortError` when the element gets a new source first (the
/// viewer switched input or pipeline): not a failure, and left unhandled it would surface as an
/// uncaught rejection.
pub async fn play(video: &HtmlVideoElement) -> Result<bool, String> {
    let promise = video.play().map_err(js_err)?;
    match JsFuture::from(promise).await {
        Ok(_) => Ok(true),
        Err(e)
            if js_sys::Reflect::get(&e, &"name".into())
                .ok()
                .and_then(|n| n.as_string())
                == Some("AbortError".into()) =>
        {
            Ok(false)
        }
        Err(e) => Err(js_err(e)),
    }
}

/// [`play`] without waiting: a failure other than an interruption goes to the console.
pub fn play_in_background(video: HtmlVideoElement) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = play(&video).await {
            web_sys::console::warn_1(&format!("video playback: {e}").into());
        }
    });
}

/// Stops every track of a stream (releases the camera).
pub fn stop_tracks(stream: &MediaStream) {
    for t in stream.get_tracks().iter() {
        if let Ok(t) = t.dyn_into::<web_sys::MediaStreamTrack>() {
            t.stop();
        }
    }
}

/// Bytes received and frames decoded so far on the video, and the round-trip time (s).
pub async fn stats(pc: &RtcPeerConnection) -> Option<(f64, f64, Option<f64>)> {
    let report = JsFuture::from(pc.get_stats()).await.ok()?;
    let values: js_sys::Function = js_sys::Reflect::get(&report, &"values".into())
        .ok()?
        .dyn_into()
        .ok()?;
    let iter = values.call0(&report).ok()?;
    let (mut bytes, mut frames, mut rtt) = (0.0, 0.0, None);
    for entry in js_sys::try_iter(&iter).ok()??.flatten() {
        let get = |k: &str| js_sys::Reflect::get(&entry, &k.into()).ok();
        let kind = get("type").and_then(|v| v.as_string()).unwrap_or_default();
        if kind == "inbound-rtp"
            && get("kind").and_then(|v| v.as_string()).as_deref() == Some("video")
        {
            bytes += get("bytesReceived").and_then(|v| v.as_f64()).unwrap_or(0.0);
            frames += get("framesDecoded").and_then(|v| v.as_f64()).unwrap_or(0.0);
        }
        if kind == "candidate-pair" && get("nominated").and_then(|v| v.as_bool()) == Some(true) {
            rtt = get("currentRoundTripTime").and_then(|v| v.as_f64()).or(rtt);
        }
    }
    Some((bytes, frames, rtt))
}

/// What the page needs to hear from a running stream.
pub struct Callbacks {
    pub on_track: Box<dyn Fn(MediaStream)>,
    pub on_message: Box<dyn Fn(Value)>,
    pub on_state: Box<dyn Fn(String)>,
}

/// A running stream on the browser side.
pub struct Live {
    pub session_id: String,
    pc: RtcPeerConnection,
    dc: RtcDataChannel,
    /// The sender of the input video, for switching sources without renegotiating.
    sender: Option<web_sys::RtcRtpSender>,
    _closures: Vec<Box<dyn std::any::Any>>,
}

impl Live {
    /// Connects: offer with every ICE candidate (non-trickle), answer from the server.
    /// `input` is sent to the pipeline; without it the video is receive-only.
    pub async fn connect(
        input: Option<&MediaStream>,
        initial: Value,
        callbacks: Callbacks,
    ) -> Result<Live, RequestError> {
        let ice = fetch_json("GET", "/api/v1/webrtc/ice-servers", None).await?;
        let config: RtcConfiguration =
            js_sys::JSON::parse(&json!({ "iceServers": ice["iceServers"] }).to_string())
                .map_err(js_err)?
                .unchecked_into();
        let pc = RtcPeerConnection::new_with_configuration(&config).map_err(js_err)?;
        let init = RtcDataChannelInit::new();
        init.set_ordered(true);
        let dc = pc.create_data_channel_with_data_channel_dict("parameters", &init);

        let Callbacks {
            on_track,
            on_message,
            on_state,
        } = callbacks;
        let ontrack = Closure::<dyn Fn(RtcTrackEvent)>::new(move |ev: RtcTrackEvent| {
            let stream = ev
                .streams()
                .get(0)
                .dyn_into::<MediaStream>()
                .ok()
                .or_else(|| {
                    let s = MediaStream::new().ok()?;
                    s.add_track(&ev.track());
                    Some(s)
                });
            if let Some(s) = stream {
                on_track(s);
            }
        });
        pc.set_ontrack(Some(ontrack.as_ref().unchecked_ref()));
        let onmessage = Closure::<dyn Fn(MessageEvent)>::new(move |ev: MessageEvent| {
            if let Some(text) = ev.data().as_string()
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                on_message(v);
            }
        });
        dc.set_onmessage(Some(onmessage.as_ref().unchecked_ref()));
        let pc_state = pc.clone();
        let onstate = Closure::<dyn Fn()>::new(move || {
            on_state(format!("{:?}", pc_state.connection_state()).to_lowercase());
        });
        pc.set_onconnectionstatechange(Some(onstate.as_ref().unchecked_ref()));

        let mut sender = None;
        match input {
            Some(stream) => {
                for track in stream.get_video_tracks().iter() {
                    let track: web_sys::MediaStreamTrack = track.dyn_into().map_err(js_err)?;
                    sender = Some(pc.add_track_0(&track, stream));
                }
            }
            None => {
                let init = RtcRtpTransceiverInit::new();
                init.set_direction(RtcRtpTransceiverDirection::Recvonly);
                pc.add_transceiver_with_str_and_init("video", &init);
            }
        }

        let result: Result<String, RequestError> = async {
            let offer = JsFuture::from(pc.create_offer()).await.map_err(js_err)?;
            let offer: RtcSessionDescriptionInit = offer.unchecked_into();
            JsFuture::from(pc.set_local_description(&offer))
                .await
                .map_err(js_err)?;
            // Non-trickle: wait for every candidate (at most 5 s).
            for _ in 0..100 {
                if pc.ice_gathering_state() == RtcIceGatheringState::Complete {
                    break;
                }
                sleep(Duration::from_millis(50)).await;
            }
            let sdp = pc.local_description().ok_or("no local description")?.sdp();
            let answer = fetch_json(
                "POST",
                "/api/v1/webrtc/offer",
                Some(&json!({ "sdp": sdp, "type": "offer", "initialParameters": initial })),
            )
            .await?;
            let desc: RtcSessionDescriptionInit =
                js_sys::JSON::parse(&json!({ "type": "answer", "sdp": answer["sdp"] }).to_string())
                    .map_err(js_err)?
                    .unchecked_into();
            JsFuture::from(pc.set_remote_description(&desc))
                .await
                .map_err(js_err)?;
            Ok(answer["sessionId"].as_str().unwrap_or_default().to_owned())
        }
        .await;
        match result {
            Ok(session_id) => Ok(Live {
                session_id,
                pc,
                dc,
                sender,
                _closures: vec![Box::new(ontrack), Box::new(onmessage), Box::new(onstate)],
            }),
            Err(e) => {
                pc.close();
                Err(e)
            }
        }
    }

    /// Sends a parameters message (dropped silently until the channel is open).
    pub fn send(&self, msg: &Value) {
        let _ = self.dc.send_with_str(&msg.to_string());
    }

    /// Switches the input to `stream`'s video (`RTCRtpSender.replaceTrack`).
    pub fn replace_input(&self, stream: &MediaStream) -> Option<js_sys::Promise> {
        let track: web_sys::MediaStreamTrack = stream.get_video_tracks().get(0).dyn_into().ok()?;
        Some(self.sender.as_ref()?.replace_track(Some(&track)))
    }

    /// The peer connection (a cheap handle clone), for [`stats`].
    pub fn peer(&self) -> RtcPeerConnection {
        self.pc.clone()
    }

    /// Closes the connection and tells the server (which frees the session at once).
    pub fn close(self) {
        // The handlers go first: their closures are dropped with `self`, and a message or
        // state change still queued must not call into a dropped closure.
        self.dc.set_onmessage(None);
        self.pc.set_ontrack(None);
        self.pc.set_onconnectionstatechange(None);
        self.dc.close();
        self.pc.close();
        let url = format!("/api/v1/webrtc/offer/{}", self.session_id);
        wasm_bindgen_futures::spawn_local(async move {
            let _ = fetch_json("DELETE", &url, None).await;
        });
    }
}

/// Records a `MediaStream` to WebM in the browser (`MediaRecorder`, one chunk a second).
pub struct Recorder {
    rec: web_sys::MediaRecorder,
    chunks: std::rc::Rc<std::cell::RefCell<Vec<web_sys::Blob>>>,
    size: std::rc::Rc<std::cell::Cell<f64>>,
    mime: String,
    _ondata: Closure<dyn Fn(web_sys::BlobEvent)>,
}

impl Recorder {
    /// Starts recording `stream` (the first WebM codec the browser supports).
    pub fn start(stream: &MediaStream) -> Result<Recorder, String> {
        let mime = [
            "video/webm;codecs=vp9",
            "video/webm;codecs=vp8",
            "video/webm",
        ]
        .into_iter()
        .find(|m| web_sys::MediaRecorder::is_type_supported(m))
        .ok_or("this browser cannot record WebM")?
        .to_owned();
        let options = web_sys::MediaRecorderOptions::new();
        options.set_mime_type(&mime);
        let rec = web_sys::MediaRecorder::new_with_media_stream_and_media_recorder_options(
            stream, &options,
        )
        .map_err(js_err)?;
        let chunks = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let size = std::rc::Rc::new(std::cell::Cell::new(0.0));
        let (c, s) = (chunks.clone(), size.clone());
        let ondata = Closure::<dyn Fn(web_sys::BlobEvent)>::new(move |ev: web_sys::BlobEvent| {
            if let Some(b) = ev.data()
                && b.size() > 0.0
            {
                s.set(s.get() + b.size());
                c.borrow_mut().push(b);
            }
        });
        rec.set_ondataavailable(Some(ondata.as_ref().unchecked_ref()));
        rec.start_with_time_slice(1000).map_err(js_err)?;
        Ok(Recorder {
            rec,
            chunks,
            size,
            mime,
            _ondata: ondata,
        })
    }

    /// Bytes recorded so far.
    pub fn size(&self) -> f64 {
        self.size.get()
    }

    /// Stops and returns the whole recording as one `video/webm` blob.
    pub async fn stop(self) -> Result<web_sys::Blob, String> {
        let rec = self.rec.clone();
        let stopped = js_sys::Promise::new(&mut |resolve, _| {
            rec.set_onstop(Some(&resolve));
        });
        if self.rec.state() != web_sys::RecordingState::Inactive {
            self.rec.stop().map_err(js_err)?;
            JsFuture::from(stopped).await.map_err(js_err)?;
        }
        let parts = js_sys::Array::new();
        for b in self.chunks.borrow().iter() {
            parts.push(b);
        }
        let bag = web_sys::BlobPropertyBag::new();
        bag.set_type(self.mime.split(';').next().unwrap_or("video/webm"));
        web_sys::Blob::new_with_blob_sequence_and_options(&parts, &bag).map_err(js_err)
    }
}

/// The frame a `<video>` shows now, as a JPEG data URL at most 320 px wide (a recording's
/// thumbnail). Synchronous, so it can run before the video is torn down.
pub fn snapshot_data_url(video: &HtmlVideoElement) -> Option<String> {
    let (w, h) = (video.video_width(), video.video_height());
    if w == 0 || h == 0 {
        return None;
    }
    let scale = (320.0 / w as f64).min(1.0);
    let (tw, th) = ((w as f64 * scale) as u32, (h as f64 * scale) as u32);
    let canvas: web_sys::HtmlCanvasElement = window()
        .document()?
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()?;
    canvas.set_width(tw);
    canvas.set_height(th);
    let ctx: web_sys::CanvasRenderingContext2d = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    ctx.draw_image_with_html_video_element_and_dw_and_dh(video, 0.0, 0.0, tw as f64, th as f64)
        .ok()?;
    canvas
        .to_data_url_with_type_and_encoder_options("image/jpeg", &JsValue::from_f64(0.8))
        .ok()
}

/// A data URL's bytes as a blob.
pub async fn data_url_blob(url: &str) -> Option<web_sys::Blob> {
    let resp: Response = JsFuture::from(window().fetch_with_str(url))
        .await
        .ok()?
        .dyn_into()
        .ok()?;
    JsFuture::from(resp.blob().ok()?)
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// `POST` a multipart form; the JSON answer, or its `error` message.
pub async fn post_form(url: &str, form: &web_sys::FormData) -> Result<Value, RequestError> {
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(form);
    send(url, &init).await
}

/// Saves a blob as a file download.
pub fn download_blob(blob: &web_sys::Blob, file_name: &str) -> Result<(), String> {
    let url = web_sys::Url::create_object_url_with_blob(blob).map_err(js_err)?;
    let a: web_sys::HtmlAnchorElement = window()
        .document()
        .ok_or("no document")?
        .create_element("a")
        .map_err(js_err)?
        .dyn_into()
        .map_err(|_| "not an anchor".to_owned())?;
    a.set_href(&url);
    a.set_download(file_name);
    a.click();
    let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(
        &Closure::once_into_js(move || {
            let _ = web_sys::Url::revoke_object_url(&url);
        })
        .unchecked_into(),
        10_000,
    );
    Ok(())
}

/// A text blob (for exports).
pub fn text_blob(text: &str, mime: &str) -> Result<web_sys::Blob, String> {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type(mime);
    web_sys::Blob::new_with_str_sequence_and_options(&parts, &bag).map_err(js_err)
}

/// The text of a file the user picked.
pub async fn read_text(file: &web_sys::File) -> Result<String, String> {
    JsFuture::from(file.text())
        .await
        .map_err(js_err)
        .map(|v| v.as_string().unwrap_or_default())
}

/// Asks the user to confirm (the browser's dialog).
pub fn confirm(message: &str) -> bool {
    window().confirm_with_message(message).unwrap_or(false)
}
