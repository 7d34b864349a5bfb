//! The JSON between the browser and the server's media loop, as types both sides share: the
//! server serialises them, the page deserialises them (no `value["key"]` reads).
//!
//! * `GET /api/v1/metrics` → [`MetricsReport`];
//! * data channel `parameters`, server → browser → [`ServerMessage`]; browser → server: a
//!   [`crate::models::ParamMap`] of runtime parameters.
//!
//! The pipeline list and load status are in [`crate::schema`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The machine's figures (GPU fields `None` without an NVIDIA GPU and driver).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemFigures {
    pub cpu_percent: f64,
    pub ram_used_mb: u64,
    pub ram_total_mb: u64,
    pub gpu_name: Option<String>,
    pub gpu_percent: Option<f64>,
    pub vram_used_mb: Option<u64>,
    pub vram_total_mb: Option<u64>,
}

/// One stream's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    /// Frames sent to the viewer during the last second.
    pub fps: f64,
    /// The rate output is paced at.
    pub pipeline_fps: f64,
    /// Frame received (or, for a generator, chunk started) → frame sent, mean of 2 s.
    pub latency_ms: Option<f64>,
    pub frames_in: u64,
    pub frames_out: u64,
    /// Input frames the pipeline never saw because it fell behind.
    pub dropped_in: u64,
    /// Output frames dropped because the output queue was full.
    pub dropped_out: u64,
    pub encode_errors: u64,
}

/// One of the caller's streams in `GET /api/v1/metrics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamMetrics {
    pub session_id: String,
    pub pipeline_id: String,
    pub uptime_s: f64,
    #[serde(flatten)]
    pub figures: StreamFigures,
    /// The stream's current runtime parameters.
    pub parameters: Value,
}

/// `GET /api/v1/metrics` body: the system figures, then the caller's streams.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsReport {
    #[serde(flatten)]
    pub system: SystemFigures,
    pub streams: Vec<StreamMetrics>,
}

/// A message the server sends on the data channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Every second: the system's and this stream's figures.
    Metrics {
        #[serde(flatten)]
        system: SystemFigures,
        #[serde(flatten)]
        stream: StreamFigures,
    },
    /// A parameter message was applied: the parameters it set, as validated.
    ParametersUpdated { parameters: Value },
    /// A parameter message was refused; nothing changed.
    Error { message: String },
    /// The stream ended (with the reason when it failed).
    StreamStopped {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_message: Option<String>,
    },
}

impl ServerMessage {
    /// The JSON text sent on the channel.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_keep_the_documented_shapes() {
        let m = ServerMessage::Metrics {
            system: SystemFigures {
                cpu_percent: 12.5,
                ram_used_mb: 100,
                ram_total_mb: 200,
                ..Default::default()
            },
            stream: StreamFigures {
                fps: 20.0,
                frames_out: 7,
                ..Default::default()
            },
        };
        let v: Value = serde_json::from_str(&m.to_text()).unwrap();
        assert_eq!(v["type"], "metrics");
        assert_eq!(v["cpu_percent"], 12.5);
        assert_eq!(v["frames_out"], 7);
        assert_eq!(v["vram_total_mb"], Value::Null);
        assert_eq!(serde_json::from_value::<ServerMessage>(v).unwrap(), m);

        let stopped = ServerMessage::StreamStopped {
            error_message: None,
        };
        assert_eq!(stopped.to_text(), r#"{"type":"stream_stopped"}"#);
        let err: ServerMessage =
            serde_json::from_value(json!({"type": "error", "message": "no"})).unwrap();
        assert_eq!(
            err,
            ServerMessage::Error {
                message: "no".into()
            }
        );
        let report = MetricsReport {
            system: SystemFigures::default(),
            streams: vec![],
        };
        let v = serde_json::to_value(&report).unwrap();
        assert_eq!(v["streams"], json!([]));
        assert_eq!(v["cpu_percent"], 0.0);
    }
}
