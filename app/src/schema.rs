//! The pipelines as `GET /api/v1/pipelines` describes them, and the form fields the settings
//! panel renders from their JSON schemas.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One entry of `GET /api/v1/pipelines`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelineInfo {
    pub id: String,
    pub name: String,
    pub about: String,
    /// `"video"` or `"none"`.
    pub input: String,
    /// Input modes the pipeline accepts: `video`, `camera`, `text`.
    pub modes: Vec<String>,
    pub output_fps: Option<f64>,
    /// GPU memory a stream needs at the default size, estimated in GB (model pipelines).
    #[serde(default)]
    pub vram_gb: Option<f64>,
    pub load_schema: Value,
    pub runtime_schema: Value,
    /// Whether its model files are present under the server's models directory.
    #[serde(default)]
    pub files: PipelineFiles,
}

/// A pipeline's model files on the server.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineFiles {
    /// Every file it needs with its default settings is there (always true for the model-free
    /// pipelines).
    pub ready: bool,
    /// Where the server looks (`--models-dir`).
    pub models_dir: String,
    pub missing: Vec<MissingFile>,
}

/// A file a pipeline needs that the server did not find.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MissingFile {
    /// What it is for: `dit_config`, `vae`, `tokenizer`, `text_encoder`, `dit`, `lora`.
    pub role: String,
    /// The paths looked at, in order of preference.
    pub looked_for: Vec<String>,
    /// Where it comes from: Hugging Face repository and the file's path in it.
    pub repo: String,
    pub file: String,
    /// An autoencoder's file: which `vae_type` needs it (absent: the pipeline always does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vae_type: Option<String>,
}

impl MissingFile {
    /// What the file is, for people.
    pub fn label(&self) -> &str {
        match self.role.as_str() {
            "dit_config" => "DiT config",
            "vae" => "VAE",
            "lightvae" => "LightVAE",
            "tae" => "TAE",
            "lighttae" => "LightTAE",
            "tokenizer" => "Tokenizer",
            "text_encoder" => "Text encoder",
            "dit" => "DiT checkpoint",
            "lora" => "LoRA",
            other => other,
        }
    }

    /// The preferred path, relative to the models directory `dir`.
    pub fn relative_path(&self, dir: &str) -> String {
        let first = self.looked_for.first().map(String::as_str).unwrap_or("");
        first
            .strip_prefix(dir)
            .map(|p| p.trim_start_matches(['/', '\\']))
            .unwrap_or(first)
            .to_owned()
    }
}

/// `GET /api/v1/pipelines` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineList {
    pub pipelines: Vec<PipelineInfo>,
}

/// Where the server's one pipeline load stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadStatus {
    #[default]
    NotLoaded,
    Loading,
    Loaded,
    Error,
}

/// The stage a load is in, in the order a load goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadingStage {
    TextEncoder,
    Dit,
    Vae,
    WarmUp,
}

impl LoadingStage {
    /// What the progress bar says.
    pub fn label(self) -> &'static str {
        match self {
            LoadingStage::TextEncoder => "Loading the text encoder",
            LoadingStage::Dit => "Loading the diffusion model",
            LoadingStage::Vae => "Loading the VAE",
            LoadingStage::WarmUp => "Warming up",
        }
    }
}

/// `GET /api/v1/pipeline/status` body.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineStatus {
    pub status: LoadStatus,
    pub pipeline_id: Option<String>,
    pub load_params: Option<Value>,
    /// Why the last load failed (with `status: error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// 0..1 over the whole load, while loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// The stage a model pipeline's load is in, while loading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loading_stage: Option<LoadingStage>,
}

impl PipelineInfo {
    /// The files missing for these load settings: the pipeline's own, and the file of each
    /// autoencoder the settings choose (`vae_type`, default `wan`; `encoder_vae_type` unless
    /// `same`).
    pub fn missing_for(&self, load: &BTreeMap<String, Value>) -> Vec<&MissingFile> {
        let chosen = |key: &str| load.get(key).and_then(Value::as_str);
        let decoder = chosen("vae_type").unwrap_or("wan");
        let encoder = chosen("encoder_vae_type").filter(|e| *e != "same");
        self.files
            .missing
            .iter()
            .filter(|m| match m.vae_type.as_deref() {
                None => true,
                Some(t) => t == decoder || Some(t) == encoder,
            })
            .collect()
    }

    pub fn takes_video(&self) -> bool {
        self.input == "video"
    }

    /// The info card's line: input, default size and the VRAM estimate.
    pub fn facts(&self) -> String {
        let input = if self.takes_video() {
            "camera or video"
        } else {
            "text only"
        };
        let mut parts = vec![format!("Input: {input}")];
        let size = |k: &str| self.load_schema["properties"][k]["default"].as_i64();
        if let (Some(w), Some(h)) = (size("width"), size("height")) {
            parts.push(format!("default {w}×{h}"));
        }
        if let Some(gb) = self.vram_gb {
            parts.push(format!("VRAM ≈ {gb:.0} GB"));
        }
        parts.join(" · ")
    }

    pub fn load_fields(&self) -> Vec<Field> {
        fields(&self.load_schema)
    }

    pub fn runtime_fields(&self) -> Vec<Field> {
        fields(&self.runtime_schema)
    }
}

/// What kind of control a parameter gets.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldKind {
    Int {
        min: i64,
        max: i64,
        multiple_of: Option<i64>,
    },
    Number {
        min: f64,
        max: f64,
        step: f64,
    },
    Bool,
    Trigger,
    Steps {
        min_items: usize,
        max_items: usize,
        min: i64,
        max: i64,
    },
    Prompts,
    /// One of a few named options (`{"type": "string", "enum": […]}`).
    Choice {
        options: Vec<String>,
    },
}

/// One control.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub key: String,
    pub title: String,
    pub description: String,
    pub kind: FieldKind,
    pub default: Value,
    pub live: bool,
}

/// The fields of an object schema, in declaration order (`x-order`; keys it does not name
/// follow in the object's order).
pub fn fields(schema: &Value) -> Vec<Field> {
    let Some(props) = schema["properties"].as_object() else {
        return Vec::new();
    };
    let order: Vec<&str> = schema["x-order"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let rank = |k: &str| order.iter().position(|o| *o == k).unwrap_or(order.len());
    let mut keys: Vec<(&String, &Value)> = props.iter().collect();
    keys.sort_by_key(|(k, _)| rank(k));
    keys.into_iter()
        .filter_map(|(key, p)| {
            let kind = match p["type"].as_str()? {
                "integer" => FieldKind::Int {
                    min: p["minimum"].as_i64().unwrap_or(i64::MIN),
                    max: p["maximum"].as_i64().unwrap_or(i64::MAX),
                    multiple_of: p["multipleOf"].as_i64(),
                },
                "number" => FieldKind::Number {
                    min: p["minimum"].as_f64().unwrap_or(0.0),
                    max: p["maximum"].as_f64().unwrap_or(1.0),
                    step: p["x-step"].as_f64().unwrap_or(0.01),
                },
                "boolean" if p["x-trigger"] == true => FieldKind::Trigger,
                "boolean" => FieldKind::Bool,
                "array" if p["x-strictly-descending"] == true => FieldKind::Steps {
                    min_items: p["minItems"].as_u64().unwrap_or(1) as usize,
                    max_items: p["maxItems"].as_u64().unwrap_or(10) as usize,
                    min: p["items"]["minimum"].as_i64().unwrap_or(0),
                    max: p["items"]["maximum"].as_i64().unwrap_or(1000),
                },
                "array" => FieldKind::Prompts,
                "string" => FieldKind::Choice {
                    options: p["enum"]
                        .as_array()?
                        .iter()
                        .filter_map(|o| o.as_str().map(str::to_owned))
                        .collect(),
                },
                _ => return None,
            };
            Some(Field {
                key: key.clone(),
                title: p["title"].as_str().unwrap_or(key).to_owned(),
                description: p["description"].as_str().unwrap_or_default().to_owned(),
                kind,
                default: p["default"].clone(),
                live: p["x-live"] == true,
            })
        })
        .collect()
}

/// The inline message for an integer field's value, `None` when it is valid.
pub fn int_error(kind: &FieldKind, value: i64) -> Option<String> {
    let FieldKind::Int {
        min,
        max,
        multiple_of,
    } = kind
    else {
        return None;
    };
    if value < *min {
        Some(format!("Must be at least {min}"))
    } else if value > *max {
        Some(format!("Must be at most {max}"))
    } else {
        multiple_of
            .filter(|m| value % m != 0)
            .map(|m| format!("Must be a multiple of {m}"))
    }
}

/// The inline message for a denoising step list, `None` when it is valid: every step in
/// range and each lower than the one before (the original's wording).
pub fn steps_error(kind: &FieldKind, steps: &[i64]) -> Option<String> {
    let FieldKind::Steps {
        min_items,
        max_items,
        min,
        max,
    } = kind
    else {
        return None;
    };
    if steps.len() < *min_items || steps.len() > *max_items {
        return Some(format!("Use {min_items} to {max_items} steps"));
    }
    for (i, s) in steps.iter().enumerate() {
        if s < min || s > max {
            return Some(format!("Step {} must be between {min} and {max}", i + 1));
        }
        if i > 0 && *s >= steps[i - 1] {
            return Some(format!("Step {} must be lower than Step {}", i + 1, i));
        }
    }
    None
}

/// The step appended by "+": 100 below the last one (not below the minimum).
pub fn next_step(kind: &FieldKind, steps: &[i64]) -> Option<i64> {
    let FieldKind::Steps {
        max_items,
        min,
        max,
        ..
    } = kind
    else {
        return None;
    };
    if steps.len() >= *max_items {
        return None;
    }
    let next = steps.last().map_or(*max, |l| l - 100).max(*min);
    (steps.last().is_none_or(|l| next < *l)).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "height": {"type": "integer", "minimum": 16, "maximum": 2048, "multipleOf": 16,
                       "default": 512, "title": "Height", "description": "d", "x-live": false},
            "paused": {"type": "boolean", "default": false, "title": "Paused", "x-live": true},
            "reset_cache": {"type": "boolean", "x-trigger": true, "title": "Reset Cache", "x-live": true},
            "noise_scale": {"type": "number", "minimum": 0, "maximum": 1, "x-step": 0.01, "title": "Noise"},
            "denoising_step_list": {"type": "array", "x-strictly-descending": true, "minItems": 1,
                       "maxItems": 10, "items": {"type": "integer", "minimum": 0, "maximum": 1000}},
            "vae_type": {"type": "string", "enum": ["wan", "tae"], "default": "wan", "title": "VAE"},
        }})
    }

    #[test]
    fn fields_follow_the_declared_order() {
        let mut s = schema();
        s["x-order"] = json!(["width", "height", "paused"]);
        s["properties"]["width"] = s["properties"]["height"].clone();
        let keys: Vec<String> = fields(&s).into_iter().map(|f| f.key).collect();
        assert_eq!(&keys[..3], ["width", "height", "paused"]);
        assert_eq!(keys.len(), 7);
    }

    #[test]
    fn schema_properties_become_fields() {
        let f = fields(&schema());
        let kinds: Vec<_> = f.iter().map(|f| (f.key.as_str(), f.kind.clone())).collect();
        assert!(kinds.contains(&(
            "height",
            FieldKind::Int {
                min: 16,
                max: 2048,
                multiple_of: Some(16)
            }
        )));
        assert!(kinds.contains(&("paused", FieldKind::Bool)));
        assert!(kinds.contains(&("reset_cache", FieldKind::Trigger)));
        assert!(kinds.contains(&(
            "noise_scale",
            FieldKind::Number {
                min: 0.0,
                max: 1.0,
                step: 0.01
            }
        )));
        assert!(kinds.contains(&(
            "denoising_step_list",
            FieldKind::Steps {
                min_items: 1,
                max_items: 10,
                min: 0,
                max: 1000
            }
        )));
        assert!(kinds.contains(&(
            "vae_type",
            FieldKind::Choice {
                options: vec!["wan".into(), "tae".into()]
            }
        )));
        let h = f.iter().find(|f| f.key == "height").unwrap();
        assert_eq!(h.default, json!(512));
        assert!(!h.live);
    }

    #[test]
    fn step_lists_must_descend_strictly() {
        let k = FieldKind::Steps {
            min_items: 1,
            max_items: 3,
            min: 0,
            max: 1000,
        };
        assert_eq!(steps_error(&k, &[700, 500]), None);
        assert_eq!(
            steps_error(&k, &[500, 700]).as_deref(),
            Some("Step 2 must be lower than Step 1")
        );
        assert_eq!(
            steps_error(&k, &[700, 700]).as_deref(),
            Some("Step 2 must be lower than Step 1")
        );
        assert_eq!(
            steps_error(&k, &[1200]).as_deref(),
            Some("Step 1 must be between 0 and 1000")
        );
        assert_eq!(steps_error(&k, &[]).as_deref(), Some("Use 1 to 3 steps"));
        assert_eq!(next_step(&k, &[700, 500]), Some(400));
        assert_eq!(next_step(&k, &[700, 500, 300]), None);
        assert_eq!(next_step(&k, &[50]), Some(0));
        assert_eq!(next_step(&k, &[0]), None);
        assert_eq!(next_step(&k, &[]), Some(1000));
    }

    #[test]
    fn the_missing_files_follow_the_chosen_autoencoders() {
        let file = |role: &str, vae: Option<&str>| MissingFile {
            role: role.into(),
            looked_for: vec![format!("/m/{role}")],
            repo: String::new(),
            file: String::new(),
            vae_type: vae.map(Into::into),
        };
        let info: PipelineInfo = serde_json::from_value(json!({
            "id": "streamdiffusionv2", "name": "S", "about": "", "input": "video",
            "modes": ["camera"], "output_fps": null, "load_schema": {}, "runtime_schema": {},
        }))
        .unwrap();
        let info = PipelineInfo {
            files: PipelineFiles {
                ready: false,
                models_dir: "/m".into(),
                missing: vec![
                    file("dit", None),
                    file("vae", Some("wan")),
                    file("tae", Some("tae")),
                    file("lightvae", Some("lightvae")),
                ],
            },
            ..info
        };
        let roles = |load: serde_json::Value| -> Vec<String> {
            let load: BTreeMap<String, Value> = serde_json::from_value(load).unwrap();
            info.missing_for(&load)
                .iter()
                .map(|m| m.role.clone())
                .collect()
        };
        assert_eq!(roles(json!({})), ["dit", "vae"]);
        assert_eq!(
            roles(json!({"vae_type": "tae", "encoder_vae_type": "same"})),
            ["dit", "tae"]
        );
        assert_eq!(
            roles(json!({"vae_type": "tae", "encoder_vae_type": "wan"})),
            ["dit", "vae", "tae"]
        );
        assert_eq!(roles(json!({"vae_type": "lighttae"})), ["dit"]);
    }

    #[test]
    fn missing_files_read_relative_to_the_models_dir() {
        let m = MissingFile {
            vae_type: None,
            role: "dit".into(),
            looked_for: vec!["/m/Self-Forcing/checkpoints/self_forcing_dmd.pt".into()],
            repo: "gdhe17/Self-Forcing".into(),
            file: "checkpoints/self_forcing_dmd.pt".into(),
        };
        assert_eq!(m.label(), "DiT checkpoint");
        assert_eq!(
            m.relative_path("/m"),
            "Self-Forcing/checkpoints/self_forcing_dmd.pt"
        );
        assert_eq!(
            m.relative_path("/elsewhere"),
            "/m/Self-Forcing/checkpoints/self_forcing_dmd.pt"
        );
    }

    #[test]
    fn integer_messages_match_the_original() {
        let k = FieldKind::Int {
            min: 16,
            max: 2048,
            multiple_of: Some(16),
        };
        assert_eq!(int_error(&k, 8).as_deref(), Some("Must be at least 16"));
        assert_eq!(int_error(&k, 4096).as_deref(), Some("Must be at most 2048"));
        assert_eq!(
            int_error(&k, 100).as_deref(),
            Some("Must be a multiple of 16")
        );
        assert_eq!(int_error(&k, 512), None);
    }
}
