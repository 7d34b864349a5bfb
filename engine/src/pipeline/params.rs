//! Pipeline parameters: typed declarations ([`ParamSpec`]), their JSON-schema form (the
//! settings panel is rendered from it), and validation of incoming JSON (load requests and
//! data-channel messages) into typed [`ParamValue`]s.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use thiserror::Error;

/// Longest prompt accepted, in characters.
pub const MAX_PROMPT_CHARS: usize = 2000;
/// Most prompts blended at once.
pub const MAX_PROMPTS: usize = 8;
/// Largest prompt weight.
pub const MAX_PROMPT_WEIGHT: f64 = 100.0;
/// Most chunks a prompt transition may take.
pub const MAX_TRANSITION_STEPS: i64 = 64;

/// What values a parameter takes.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    /// An integer in `min..=max`, optionally a multiple of `multiple_of`.
    Int {
        min: i64,
        max: i64,
        multiple_of: Option<i64>,
    },
    /// A number in `min..=max`; `step` is the UI's granularity.
    Float { min: f64, max: f64, step: f64 },
    /// On/off.
    Bool,
    /// A one-shot action: only `true` means anything (e.g. `reset_cache`).
    Trigger,
    /// A strictly descending list of integer timesteps.
    StepList {
        min_items: usize,
        max_items: usize,
        min: i64,
        max: i64,
    },
    /// Prompts: strings, or `{text, weight}` objects.
    Prompts,
    /// One of a few strings.
    Choice { options: &'static [&'static str] },
    /// A prompt transition: `{target_prompts, num_steps, temporal_interpolation_method}`.
    Transition,
}

/// One parameter a pipeline accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// JSON key.
    pub key: &'static str,
    /// Label in the settings panel.
    pub title: &'static str,
    /// Tooltip text.
    pub description: &'static str,
    pub kind: ParamKind,
    /// Value before anything is sent.
    pub default: Value,
    /// Whether it may change while a stream runs.
    pub live: bool,
}

/// A prompt with its blend weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WeightedPrompt {
    pub text: String,
    pub weight: f64,
}

/// A transition to other prompts over `num_steps` chunks (0 = at once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransitionValue {
    pub target_prompts: Vec<WeightedPrompt>,
    pub num_steps: i64,
    /// `linear` or `slerp`.
    pub temporal_interpolation_method: String,
}

/// A validated value.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Steps(Vec<i64>),
    Prompts(Vec<WeightedPrompt>),
    Choice(String),
    Transition(TransitionValue),
}

impl ParamValue {
    /// Back to JSON (prompts always in `{text, weight}` form).
    pub fn to_json(&self) -> Value {
        match self {
            ParamValue::Int(v) => json!(v),
            ParamValue::Float(v) => json!(v),
            ParamValue::Bool(v) => json!(v),
            ParamValue::Steps(v) => json!(v),
            ParamValue::Prompts(v) => json!(v),
            ParamValue::Choice(v) => json!(v),
            ParamValue::Transition(v) => json!(v),
        }
    }
}

/// Validated parameters by key.
pub type Params = BTreeMap<String, ParamValue>;

/// Why a parameter message was refused. The message names the key and the rule.
#[derive(Debug, Error, PartialEq)]
pub enum ParamError {
    #[error("parameters must be a JSON object")]
    NotAnObject,
    #[error("unknown parameter '{key}' (accepted: {accepted})")]
    Unknown { key: String, accepted: String },
    #[error("parameter '{key}' cannot change while streaming")]
    NotLive { key: String },
    #[error("parameter '{key}': {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ParamError {
    ParamError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl ParamSpec {
    /// The schema of the value alone (no title, description, default).
    fn json_schema_kind(&self) -> Value {
        let mut s = self.json_schema();
        if let Some(o) = s.as_object_mut() {
            for k in ["title", "description", "default", "x-live"] {
                o.remove(k);
            }
        }
        s
    }

    /// This parameter as a JSON-schema property (with `x-live` marking live parameters).
    pub fn json_schema(&self) -> Value {
        let mut s = match &self.kind {
            ParamKind::Int {
                min,
                max,
                multiple_of,
            } => {
                let mut s = json!({ "type": "integer", "minimum": min, "maximum": max });
                if let Some(m) = multiple_of {
                    s["multipleOf"] = json!(m);
                }
                s
            }
            ParamKind::Float { min, max, step } => {
                json!({ "type": "number", "minimum": min, "maximum": max, "x-step": step })
            }
            ParamKind::Bool => json!({ "type": "boolean" }),
            ParamKind::Trigger => json!({ "type": "boolean", "x-trigger": true }),
            ParamKind::StepList {
                min_items,
                max_items,
                min,
                max,
            } => json!({
                "type": "array",
                "items": { "type": "integer", "minimum": min, "maximum": max },
                "minItems": min_items,
                "maxItems": max_items,
                "x-strictly-descending": true,
            }),
            ParamKind::Prompts => json!({
                "type": "array",
                "maxItems": MAX_PROMPTS,
                "items": { "anyOf": [
                    { "type": "string", "maxLength": MAX_PROMPT_CHARS },
                    { "type": "object", "required": ["text"], "properties": {
                        "text": { "type": "string", "maxLength": MAX_PROMPT_CHARS },
                        "weight": { "type": "number", "minimum": 0, "maximum": MAX_PROMPT_WEIGHT, "default": 1.0 }
                    }}
                ]},
            }),
            ParamKind::Choice { options } => json!({ "type": "string", "enum": options }),
            ParamKind::Transition => json!({
                "type": "object",
                "required": ["target_prompts"],
                "additionalProperties": false,
                "properties": {
                    "target_prompts": ParamSpec { kind: ParamKind::Prompts, ..self.clone() }
                        .json_schema_kind(),
                    "num_steps": { "type": "integer", "minimum": 0,
                                   "maximum": MAX_TRANSITION_STEPS, "default": 4 },
                    "temporal_interpolation_method": { "type": "string",
                        "enum": ["linear", "slerp"], "default": "linear" }
                }
            }),
        };
        s["title"] = json!(self.title);
        s["description"] = json!(self.description);
        s["default"] = self.default.clone();
        s["x-live"] = json!(self.live);
        s
    }

    /// Checks one JSON value against this parameter.
    pub fn validate(&self, v: &Value) -> Result<ParamValue, ParamError> {
        let key = self.key;
        match &self.kind {
            ParamKind::Int {
                min,
                max,
                multiple_of,
            } => {
                let n = as_integer(v).ok_or_else(|| invalid(key, "must be an integer"))?;
                if n < *min || n > *max {
                    return Err(invalid(
                        key,
                        format!("must be between {min} and {max}, got {n}"),
                    ));
                }
                if let Some(m) = multiple_of.filter(|m| n % m != 0) {
                    return Err(invalid(key, format!("must be a multiple of {m}, got {n}")));
                }
                Ok(ParamValue::Int(n))
            }
            ParamKind::Float { min, max, .. } => {
                let x = v
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| invalid(key, "must be a number"))?;
                if x < *min || x > *max {
                    return Err(invalid(
                        key,
                        format!("must be between {min} and {max}, got {x}"),
                    ));
                }
                Ok(ParamValue::Float(x))
            }
            ParamKind::Bool | ParamKind::Trigger => v
                .as_bool()
                .map(ParamValue::Bool)
                .ok_or_else(|| invalid(key, "must be true or false")),
            ParamKind::StepList {
                min_items,
                max_items,
                min,
                max,
            } => {
                let items = v
                    .as_array()
                    .ok_or_else(|| invalid(key, "must be a list of integers"))?;
                if items.len() < *min_items || items.len() > *max_items {
                    return Err(invalid(
                        key,
                        format!(
                            "must have {min_items} to {max_items} steps, got {}",
                            items.len()
                        ),
                    ));
                }
                let mut steps = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let n = as_integer(item).ok_or_else(|| {
                        invalid(key, format!("step {} must be an integer", i + 1))
                    })?;
                    if n < *min || n > *max {
                        return Err(invalid(
                            key,
                            format!("step {} must be between {min} and {max}, got {n}", i + 1),
                        ));
                    }
                    if let Some(&prev) = steps.last()
                        && n >= prev
                    {
                        return Err(invalid(
                            key,
                            format!(
                                "step {} ({n}) must be lower than step {} ({prev})",
                                i + 1,
                                i
                            ),
                        ));
                    }
                    steps.push(n);
                }
                Ok(ParamValue::Steps(steps))
            }
            ParamKind::Prompts => validate_prompts(key, v).map(ParamValue::Prompts),
            ParamKind::Choice { options } => v
                .as_str()
                .filter(|c| options.contains(c))
                .map(|c| ParamValue::Choice(c.to_owned()))
                .ok_or_else(|| invalid(key, format!("must be one of {}", options.join(", ")))),
            ParamKind::Transition => validate_transition(key, v).map(ParamValue::Transition),
        }
    }
}

fn validate_transition(key: &str, v: &Value) -> Result<TransitionValue, ParamError> {
    let o = v
        .as_object()
        .ok_or_else(|| invalid(key, "must be {target_prompts, num_steps}"))?;
    if let Some(extra) = o.keys().find(|k| {
        !matches!(
            k.as_str(),
            "target_prompts" | "num_steps" | "temporal_interpolation_method"
        )
    }) {
        return Err(invalid(key, format!("unknown field '{extra}'")));
    }
    let prompts = o
        .get("target_prompts")
        .ok_or_else(|| invalid(key, "needs target_prompts"))?;
    let target_prompts = validate_prompts(&format!("{key}.target_prompts"), prompts)?;
    let num_steps = match o.get("num_steps") {
        None => 4,
        Some(n) => as_integer(n)
            .filter(|n| (0..=MAX_TRANSITION_STEPS).contains(n))
            .ok_or_else(|| {
                invalid(
                    key,
                    format!("num_steps must be an integer from 0 to {MAX_TRANSITION_STEPS}"),
                )
            })?,
    };
    let method = match o.get("temporal_interpolation_method") {
        None => "linear",
        Some(m) => m
            .as_str()
            .filter(|m| matches!(*m, "linear" | "slerp"))
            .ok_or_else(|| invalid(key, "temporal_interpolation_method must be linear or slerp"))?,
    };
    Ok(TransitionValue {
        target_prompts,
        num_steps,
        temporal_interpolation_method: method.to_owned(),
    })
}

fn as_integer(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|x| x.fract() == 0.0 && x.abs() < 9e15)
            .map(|x| x as i64)
    })
}

fn validate_prompts(key: &str, v: &Value) -> Result<Vec<WeightedPrompt>, ParamError> {
    let items = v
        .as_array()
        .ok_or_else(|| invalid(key, "must be a list of prompts"))?;
    if items.is_empty() || items.len() > MAX_PROMPTS {
        return Err(invalid(
            key,
            format!("must hold 1 to {MAX_PROMPTS} prompts, got {}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (text, weight) = match item {
            Value::String(s) => (s.clone(), 1.0),
            Value::Object(o) => {
                let text = o
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(key, format!("prompt {} needs a text", i + 1)))?;
                let weight = match o.get("weight") {
                    None => 1.0,
                    Some(w) => w
                        .as_f64()
                        .filter(|w| w.is_finite() && (0.0..=MAX_PROMPT_WEIGHT).contains(w))
                        .ok_or_else(|| {
                            invalid(
                                key,
                                format!(
                                    "prompt {} weight must be between 0 and {MAX_PROMPT_WEIGHT}",
                                    i + 1
                                ),
                            )
                        })?,
                };
                if let Some(extra) = o.keys().find(|k| *k != "text" && *k != "weight") {
                    return Err(invalid(
                        key,
                        format!("prompt {} has unknown field '{extra}'", i + 1),
                    ));
                }
                (text.to_owned(), weight)
            }
            _ => {
                return Err(invalid(
                    key,
                    format!("prompt {} must be a string or {{text, weight}}", i + 1),
                ));
            }
        };
        let text = text.trim().to_owned();
        if text.is_empty() {
            return Err(invalid(key, format!("prompt {} is empty", i + 1)));
        }
        if text.chars().count() > MAX_PROMPT_CHARS {
            return Err(invalid(
                key,
                format!(
                    "prompt {} is longer than {MAX_PROMPT_CHARS} characters",
                    i + 1
                ),
            ));
        }
        out.push(WeightedPrompt { text, weight });
    }
    if out.iter().all(|p| p.weight == 0.0) {
        return Err(invalid(key, "at least one prompt needs a weight above 0"));
    }
    Ok(out)
}

/// The JSON schema of an object with these parameters.
/// JSON objects do not keep their keys' order, so `x-order` lists the parameters in the order
/// the pipeline declares them (the order a form shows them in).
pub fn object_schema(specs: &[ParamSpec]) -> Value {
    let properties: Map<String, Value> = specs
        .iter()
        .map(|s| (s.key.to_owned(), s.json_schema()))
        .collect();
    let order: Vec<&str> = specs.iter().map(|s| s.key).collect();
    json!({
        "type": "object",
        "properties": properties,
        "additionalProperties": false,
        "x-order": order,
    })
}

/// Every parameter at its default.
pub fn defaults(specs: &[ParamSpec]) -> Params {
    specs
        .iter()
        .filter(|s| !matches!(s.kind, ParamKind::Trigger))
        .filter_map(|s| s.validate(&s.default).ok().map(|v| (s.key.to_owned(), v)))
        .collect()
}

/// Validates a JSON object against `specs`. With `streaming`, parameters that are not live
/// are refused. `null` and a missing object both mean "nothing".
pub fn validate_object(
    specs: &[ParamSpec],
    v: &Value,
    streaming: bool,
) -> Result<Params, ParamError> {
    let obj = match v {
        Value::Null => return Ok(Params::new()),
        Value::Object(o) => o,
        _ => return Err(ParamError::NotAnObject),
    };
    let mut out = Params::new();
    for (key, value) in obj {
        let spec = specs
            .iter()
            .find(|s| s.key == key)
            .ok_or_else(|| ParamError::Unknown {
                key: key.clone(),
                accepted: specs.iter().map(|s| s.key).collect::<Vec<_>>().join(", "),
            })?;
        if streaming && !spec.live {
            return Err(ParamError::NotLive { key: key.clone() });
        }
        out.insert(key.clone(), spec.validate(value)?);
    }
    Ok(out)
}

/// JSON object of these values.
pub fn to_json(params: &Params) -> Value {
    Value::Object(
        params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_json()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs() -> Vec<ParamSpec> {
        vec![
            ParamSpec {
                key: "height",
                title: "Height",
                description: "",
                kind: ParamKind::Int {
                    min: 16,
                    max: 2048,
                    multiple_of: Some(16),
                },
                default: json!(512),
                live: false,
            },
            ParamSpec {
                key: "noise_scale",
                title: "Noise Scale",
                description: "",
                kind: ParamKind::Float {
                    min: 0.0,
                    max: 1.0,
                    step: 0.01,
                },
                default: json!(0.7),
                live: true,
            },
            ParamSpec {
                key: "denoising_step_list",
                title: "Denoising Step List",
                description: "",
                kind: ParamKind::StepList {
                    min_items: 1,
                    max_items: 10,
                    min: 0,
                    max: 1000,
                },
                default: json!([700, 500]),
                live: true,
            },
            ParamSpec {
                key: "prompts",
                title: "Prompts",
                description: "",
                kind: ParamKind::Prompts,
                default: json!(["a dog"]),
                live: true,
            },
            ParamSpec {
                key: "reset_cache",
                title: "Reset Cache",
                description: "",
                kind: ParamKind::Trigger,
                default: json!(false),
                live: true,
            },
        ]
    }

    #[test]
    fn valid_values_pass_and_keep_their_types() {
        let p = validate_object(
            &specs(),
            &json!({"height": 256, "noise_scale": 0.5, "denoising_step_list": [900, 10],
                    "prompts": ["a cat", {"text": " a fox ", "weight": 0.5}]}),
            false,
        )
        .unwrap();
        assert_eq!(p["height"], ParamValue::Int(256));
        assert_eq!(p["noise_scale"], ParamValue::Float(0.5));
        assert_eq!(p["denoising_step_list"], ParamValue::Steps(vec![900, 10]));
        assert_eq!(
            p["prompts"],
            ParamValue::Prompts(vec![
                WeightedPrompt {
                    text: "a cat".into(),
                    weight: 1.0
                },
                WeightedPrompt {
                    text: "a fox".into(),
                    weight: 0.5
                },
            ])
        );
    }

    #[test]
    fn bad_values_name_the_key_and_the_rule() {
        let s = specs();
        let err = |v: Value| validate_object(&s, &v, false).unwrap_err().to_string();
        assert_eq!(
            err(json!({"height": 100})),
            "parameter 'height': must be a multiple of 16, got 100"
        );
        assert_eq!(
            err(json!({"height": 4096})),
            "parameter 'height': must be between 16 and 2048, got 4096"
        );
        assert_eq!(
            err(json!({"height": "tall"})),
            "parameter 'height': must be an integer"
        );
        assert_eq!(
            err(json!({"noise_scale": 1.5})),
            "parameter 'noise_scale': must be between 0 and 1, got 1.5"
        );
        assert_eq!(
            err(json!({"denoising_step_list": [500, 700]})),
            "parameter 'denoising_step_list': step 2 (700) must be lower than step 1 (500)"
        );
        assert_eq!(
            err(json!({"denoising_step_list": []})),
            "parameter 'denoising_step_list': must have 1 to 10 steps, got 0"
        );
        assert_eq!(
            err(json!({"prompts": ["  "]})),
            "parameter 'prompts': prompt 1 is empty"
        );
        assert_eq!(
            err(json!({"prompts": [{"text": "a", "weight": -1}]})),
            "parameter 'prompts': prompt 1 weight must be between 0 and 100"
        );
        assert!(
            err(json!({"colour": 1})).starts_with("unknown parameter 'colour' (accepted: height,")
        );
        assert_eq!(err(json!([1])), "parameters must be a JSON object");
        let long = "x".repeat(MAX_PROMPT_CHARS + 1);
        assert!(err(json!({"prompts": [long]})).contains("longer than 2000"));
    }

    #[test]
    fn choices_and_transitions_validate() {
        let specs = vec![
            ParamSpec {
                key: "prompt_interpolation_method",
                title: "",
                description: "",
                kind: ParamKind::Choice {
                    options: &["linear", "slerp"],
                },
                default: json!("linear"),
                live: true,
            },
            ParamSpec {
                key: "transition",
                title: "",
                description: "",
                kind: ParamKind::Transition,
                default: Value::Null,
                live: true,
            },
        ];
        let p = validate_object(
            &specs,
            &json!({"prompt_interpolation_method": "slerp",
                    "transition": {"target_prompts": ["a fox"], "num_steps": 3}}),
            true,
        )
        .unwrap();
        assert_eq!(
            p["prompt_interpolation_method"],
            ParamValue::Choice("slerp".into())
        );
        let ParamValue::Transition(t) = &p["transition"] else {
            panic!("{p:?}")
        };
        assert_eq!(
            (t.num_steps, t.temporal_interpolation_method.as_str()),
            (3, "linear")
        );
        let err = |v: Value| validate_object(&specs, &v, true).unwrap_err().to_string();
        assert_eq!(
            err(json!({"prompt_interpolation_method": "cubic"})),
            "parameter 'prompt_interpolation_method': must be one of linear, slerp"
        );
        assert_eq!(
            err(json!({"transition": {"target_prompts": ["a"], "num_steps": 65}})),
            "parameter 'transition': num_steps must be an integer from 0 to 64"
        );
        assert_eq!(
            err(json!({"transition": {"target_prompts": []}})),
            "parameter 'transition.target_prompts': must hold 1 to 8 prompts, got 0"
        );
        assert_eq!(
            err(json!({"transition": {"target_prompts": ["a"], "speed": 1}})),
            "parameter 'transition': unknown field 'speed'"
        );
        let schema = object_schema(&specs);
        assert_eq!(
            schema["properties"]["prompt_interpolation_method"]["enum"],
            json!(["linear", "slerp"])
        );
        assert_eq!(
            schema["properties"]["transition"]["properties"]["num_steps"]["maximum"],
            64
        );
    }

    #[test]
    fn load_only_parameters_are_refused_while_streaming() {
        let err = validate_object(&specs(), &json!({"height": 256}), true).unwrap_err();
        assert_eq!(
            err,
            ParamError::NotLive {
                key: "height".into()
            }
        );
        assert!(validate_object(&specs(), &json!({"noise_scale": 0.1}), true).is_ok());
    }

    #[test]
    fn defaults_validate_and_schema_lists_every_key() {
        let d = defaults(&specs());
        assert_eq!(d["height"], ParamValue::Int(512));
        assert!(!d.contains_key("reset_cache"));
        let schema = object_schema(&specs());
        assert_eq!(schema["properties"]["height"]["multipleOf"], 16);
        assert_eq!(schema["properties"]["noise_scale"]["x-live"], true);
        assert_eq!(
            schema["properties"]["denoising_step_list"]["default"],
            json!([700, 500])
        );
        assert_eq!(schema["additionalProperties"], false);
    }
}
