//! The `parameters` data channel of a stream: every message from the viewer validated against
//! the pipeline's runtime schema, valid updates forwarded to the processor and written to the
//! history, every message answered ([`ServerMessage`]).

use app::wire::ServerMessage;
use engine::pipeline::params::{self, ParamSpec, ParamValue, Params};
use serde_json::Value;
use std::sync::{
    Arc, Mutex,
    mpsc::{SyncSender, TrySendError},
};
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};

/// The `parameters` data channel: validates each message against the pipeline's runtime
/// schema, forwards valid updates to the processor and answers every message.
pub(super) async fn parameter_channel(
    dc: Arc<dyn DataChannel>,
    specs: Vec<ParamSpec>,
    updates: SyncSender<Params>,
    current: Arc<Mutex<Params>>,
    history: Option<super::history::HistorySender>,
    closed: mpsc::UnboundedSender<()>,
) {
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnMessage(msg) => {
                let reply = handle_parameter_message(&msg.data, &specs, &updates, &current);
                if let (Some(h), ServerMessage::ParametersUpdated { parameters }) =
                    (&history, &reply)
                    && let Some(applied) = parameters.as_object()
                {
                    h.send(super::history::Event::Changed(applied.clone()));
                }
                let _ = dc.send_text(&reply.to_text()).await;
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    let _ = closed.send(());
}

/// One data-channel message → the reply (`parameters_updated` or `error`).
pub fn handle_parameter_message(
    data: &[u8],
    specs: &[ParamSpec],
    updates: &SyncSender<Params>,
    current: &Mutex<Params>,
) -> ServerMessage {
    let error = |message: String| ServerMessage::Error { message };
    let value: Value = match serde_json::from_slice(data) {
        Ok(v) => v,
        Err(e) => return error(format!("invalid JSON: {e}")),
    };
    let update = match params::validate_object(specs, &value, true) {
        Ok(p) if p.is_empty() => return error("no parameters in the message".into()),
        Ok(p) => p,
        Err(e) => return error(e.to_string()),
    };
    match updates.try_send(update.clone()) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return error("too many updates at once; this one was not applied".into());
        }
        Err(TrySendError::Disconnected(_)) => return error("the stream has ended".into()),
    }
    let mut cur = current.lock().unwrap_or_else(|p| p.into_inner());
    for (k, v) in &update {
        // A reset is an action, not a setting: it is not kept as current state.
        let is_reset = k == "reset_cache" && *v == ParamValue::Bool(true);
        if !is_reset {
            cur.insert(k.clone(), v.clone());
        }
    }
    ServerMessage::ParametersUpdated {
        parameters: params::to_json(&update),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::pipeline::{passthrough, vod};
    use std::sync::mpsc::sync_channel;

    #[test]
    fn parameter_messages_are_validated_before_anything_changes() {
        let specs = passthrough::spec().runtime_params;
        let (tx, rx) = sync_channel(1);
        let current = Mutex::new(Params::new());
        let msg = |data: &[u8]| {
            serde_json::to_value(handle_parameter_message(data, &specs, &tx, &current)).unwrap()
        };
        let reply = msg(b"{not json");
        assert_eq!(reply["type"], "error");
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .starts_with("invalid JSON")
        );
        let reply = msg(br#"{"noise_scale": 0.5}"#);
        assert_eq!(
            reply["message"],
            "unknown parameter 'noise_scale' (accepted: paused)"
        );
        let reply = msg(br#"{"paused": "yes"}"#);
        assert_eq!(
            reply["message"],
            "parameter 'paused': must be true or false"
        );
        assert!(
            rx.try_recv().is_err(),
            "an invalid message reached the processor"
        );

        let reply = msg(br#"{"paused": true}"#);
        assert_eq!(
            reply,
            serde_json::json!({"type": "parameters_updated", "parameters": {"paused": true}})
        );
        assert_eq!(rx.try_recv().unwrap()["paused"], ParamValue::Bool(true));
        assert_eq!(current.lock().unwrap()["paused"], ParamValue::Bool(true));

        // A full queue refuses instead of blocking the network task.
        let _ = msg(br#"{"paused": false}"#);
        let reply = msg(br#"{"paused": true}"#);
        assert!(
            reply["message"]
                .as_str()
                .unwrap()
                .contains("too many updates")
        );
        let _ = vod::spec();
    }
}
