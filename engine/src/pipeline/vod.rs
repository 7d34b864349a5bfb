//! `vod`: plays a clip in a loop, one frame per call at the clip's frame rate. Needs no
//! input. The clip is decoded by the caller (the server owns the codecs) and shared by every
//! stream; each stream keeps its own position.

use super::{
    InputKind, LoadedPipeline, Pipeline, PipelineError, PipelineSpec, Requirements,
    params::{ParamKind, ParamSpec, Params},
};
use crate::frame::Frame;
use serde_json::json;
use std::sync::Arc;

/// Playback rate of the bundled clip.
pub const VOD_FPS: f64 = 30.0;

/// `paused`: every pipeline accepts it (the loop idles, the viewer keeps the last frame).
pub fn paused_param() -> ParamSpec {
    ParamSpec {
        key: "paused",
        title: "Paused",
        description: "Hold the last frame; processing stops until resumed.",
        kind: ParamKind::Bool,
        default: json!(false),
        live: true,
    }
}

/// The pipeline's description and parameters.
pub fn spec() -> PipelineSpec {
    PipelineSpec {
        id: "vod",
        name: "Video on demand",
        about: "Loops a bundled clip, decoded on the server. Tests the output path of the \
                media loop without any input or model.",
        input: InputKind::None,
        load_params: vec![],
        runtime_params: vec![paused_param()],
        output_fps: Some(VOD_FPS),
        vram_gb: None,
    }
}

/// A loaded clip.
pub struct Vod {
    spec: PipelineSpec,
    load_params: Params,
    frames: Arc<[Frame]>,
}

impl Vod {
    /// Wraps decoded frames; fails on an empty clip.
    pub fn new(frames: Vec<Frame>) -> Result<Self, PipelineError> {
        if frames.is_empty() {
            return Err(PipelineError::Fatal("the clip has no frames".into()));
        }
        Ok(Self {
            spec: spec(),
            load_params: Params::new(),
            frames: frames.into(),
        })
    }
}

impl LoadedPipeline for Vod {
    fn spec(&self) -> &PipelineSpec {
        &self.spec
    }

    fn load_params(&self) -> &Params {
        &self.load_params
    }

    fn new_stream(&self) -> Box<dyn Pipeline> {
        Box::new(VodStream {
            frames: self.frames.clone(),
            next: 0,
        })
    }
}

struct VodStream {
    frames: Arc<[Frame]>,
    next: usize,
}

impl Pipeline for VodStream {
    fn prepare(&mut self, _params: &Params, reset: bool) -> Result<Requirements, PipelineError> {
        if reset {
            self.next = 0;
        }
        Ok(Requirements { input_frames: 0 })
    }

    fn process(
        &mut self,
        _input: Vec<Frame>,
        _params: &Params,
    ) -> Result<Vec<Frame>, PipelineError> {
        let frame = self.frames[self.next].clone();
        self.next = (self.next + 1) % self.frames.len();
        Ok(vec![frame])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_and_each_stream_has_its_own_position() {
        let frames: Vec<Frame> = (0..3u8).map(|i| Frame::filled(4, 4, [i, 0, 0])).collect();
        let vod = Vod::new(frames).unwrap();
        let mut a = vod.new_stream();
        let mut b = vod.new_stream();
        let red = |s: &mut Box<dyn Pipeline>| {
            s.process(vec![], &Params::new()).unwrap()[0].pixel(0, 0)[0]
        };
        assert_eq!(
            [red(&mut a), red(&mut a), red(&mut a), red(&mut a)],
            [0, 1, 2, 0]
        );
        assert_eq!(red(&mut b), 0);
        a.prepare(&Params::new(), true).unwrap();
        assert_eq!(red(&mut a), 0);
        assert!(Vod::new(vec![]).is_err());
    }
}
