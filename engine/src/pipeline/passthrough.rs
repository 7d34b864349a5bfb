//! `passthrough`: returns its input resized to the loaded H×W. Tests the whole media loop
//! without a model.

use super::{
    InputKind, LoadedPipeline, Pipeline, PipelineError, PipelineSpec, Requirements,
    params::{self, ParamKind, ParamSpec, ParamValue, Params},
};
use crate::frame::Frame;
use serde_json::json;

/// Default output height and width.
pub const DEFAULT_SIZE: i64 = 512;

/// The pipeline's description and parameters.
pub fn spec() -> PipelineSpec {
    let size = |key, title, description| ParamSpec {
        key,
        title,
        description,
        kind: ParamKind::Int {
            min: 16,
            max: 2048,
            multiple_of: Some(16),
        },
        default: json!(DEFAULT_SIZE),
        live: false,
    };
    PipelineSpec {
        id: "passthrough",
        name: "Passthrough",
        about: "Returns the input video resized to the chosen resolution. Useful to test the \
                camera, the connection and the latency without a model.",
        input: InputKind::Video,
        load_params: vec![
            size(
                "height",
                "Height",
                "Output height in pixels (a multiple of 16).",
            ),
            size(
                "width",
                "Width",
                "Output width in pixels (a multiple of 16).",
            ),
        ],
        runtime_params: vec![super::vod::paused_param()],
        output_fps: None,
        vram_gb: None,
    }
}

/// Loaded passthrough: only its output size.
pub struct Passthrough {
    spec: PipelineSpec,
    load_params: Params,
    width: u32,
    height: u32,
}

impl Passthrough {
    /// Loads with validated parameters (missing ones take their defaults).
    pub fn load(load_params: Params) -> Self {
        let spec = spec();
        let mut all = params::defaults(&spec.load_params);
        all.extend(load_params);
        let get = |k: &str| match all.get(k) {
            Some(ParamValue::Int(v)) => *v as u32,
            _ => DEFAULT_SIZE as u32,
        };
        let (width, height) = (get("width"), get("height"));
        Self {
            spec,
            load_params: all,
            width,
            height,
        }
    }
}

impl LoadedPipeline for Passthrough {
    fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    fn load_params(&self) -> &Params {
        &self.load_params
    }

    fn new_stream(&self) -> Box<dyn Pipeline> {
        Box::new(PassthroughStream {
            width: self.width,
            height: self.height,
        })
    }
}

struct PassthroughStream {
    width: u32,
    height: u32,
}

impl Pipeline for PassthroughStream {
    fn prepare(&mut self, _params: &Params, _reset: bool) -> Result<Requirements, PipelineError> {
        Ok(Requirements { input_frames: 1 })
    }

    fn process(
        &mut self,
        input: Vec<Frame>,
        _params: &Params,
    ) -> Result<Vec<Frame>, PipelineError> {
        Ok(input
            .iter()
            .map(|f| f.resized(self.width, self.height))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizes_to_the_loaded_size() {
        let p = params::validate_object(
            &spec().load_params,
            &json!({"height": 64, "width": 96}),
            false,
        )
        .unwrap();
        let loaded = Passthrough::load(p);
        let mut s = loaded.new_stream();
        assert_eq!(s.prepare(&Params::new(), false).unwrap().input_frames, 1);
        let out = s
            .process(vec![Frame::filled(320, 240, [1, 2, 3])], &Params::new())
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].width(), out[0].height()), (96, 64));
        assert_eq!(out[0].pixel(50, 30), [1, 2, 3]);
    }

    #[test]
    fn defaults_to_512() {
        let loaded = Passthrough::load(Params::new());
        assert_eq!(loaded.load_params()["height"], ParamValue::Int(512));
        let json = spec().to_json();
        assert_eq!(json["modes"], json!(["video", "camera"]));
        assert_eq!(json["load_schema"]["properties"]["width"]["default"], 512);
    }
}
