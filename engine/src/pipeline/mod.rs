//! The pipeline abstraction the media loop drives, and the pipelines that need no model.
//!
//! A [`PipelineSpec`] describes a pipeline to the UI (JSON schema of its load and runtime
//! parameters, what input it needs). Loading one gives a [`LoadedPipeline`], shared by every
//! stream (weights, decoded clips); each stream then gets its own [`Pipeline`] instance from
//! it, so two viewers never share caches or seeds.
//!
//! The media loop calls, per chunk: [`Pipeline::prepare`] (with `reset` after
//! `reset_cache` or when a parameter change requires it) which says how many input frames
//! the next call needs, then [`Pipeline::process`] with exactly that many frames.

pub mod params;
pub mod passthrough;
pub mod vod;
pub mod wan;

use crate::frame::Frame;
use params::{ParamSpec, Params};
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;

/// What a pipeline consumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// Frames from the browser (camera or video file).
    Video,
    /// Nothing but parameters (generators: text-to-video, clip playback).
    None,
}

/// A pipeline as the UI and the API see it.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    /// Stable identifier (`passthrough`, `vod`, ...).
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// One-paragraph description.
    pub about: &'static str,
    pub input: InputKind,
    /// Parameters fixed when the pipeline loads.
    pub load_params: Vec<ParamSpec>,
    /// Parameters of a stream (some of them live).
    pub runtime_params: Vec<ParamSpec>,
    /// Frame rate of a pipeline that paces itself (clip playback), else measured.
    pub output_fps: Option<f64>,
    /// GPU memory a stream needs at the default size, estimated in GB: the weights plus the
    /// largest caches and attention scores ([`wan::spec`] says how); `None` without a model.
    pub vram_gb: Option<f64>,
}

impl PipelineSpec {
    /// The entry of `GET /api/v1/pipelines`.
    pub fn to_json(&self) -> Value {
        let modes: &[&str] = match self.input {
            InputKind::Video => &["video", "camera"],
            InputKind::None => &["text"],
        };
        json!({
            "id": self.id,
            "name": self.name,
            "about": self.about,
            "input": self.input,
            "modes": modes,
            "output_fps": self.output_fps,
            "vram_gb": self.vram_gb,
            "load_schema": params::object_schema(&self.load_params),
            "runtime_schema": params::object_schema(&self.runtime_params),
        })
    }
}

/// What the next [`Pipeline::process`] call needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirements {
    /// Input frames per chunk; 0 for pipelines without video input.
    pub input_frames: usize,
}

/// A pipeline failure. `Fatal` ends the stream (with its message sent to the viewer);
/// `Retry` drops the chunk and goes on.
#[derive(Debug, Error)]
pub enum PipelineError {
    #[error("{0}")]
    Fatal(String),
    #[error("{0}")]
    Retry(String),
}

/// A loaded pipeline: shared state that makes per-stream instances.
pub trait LoadedPipeline: Send + Sync {
    fn spec(&self) -> &PipelineSpec;
    /// The validated load parameters it was loaded with.
    fn load_params(&self) -> &Params;
    /// A fresh per-stream instance.
    fn new_stream(&self) -> Box<dyn Pipeline>;
}

/// One stream's pipeline instance: owns all per-stream state. Runs on the stream's own
/// frame-processor thread.
pub trait Pipeline: Send {
    /// Called before every chunk with the current runtime parameters.
    fn prepare(&mut self, params: &Params, reset: bool) -> Result<Requirements, PipelineError>;
    /// Turns `Requirements::input_frames` frames into output frames.
    fn process(&mut self, input: Vec<Frame>, params: &Params) -> Result<Vec<Frame>, PipelineError>;
    /// [`Pipeline::process`] handing the frames to `emit` as they are made, in order (a
    /// pipeline that decodes a chunk piece by piece emits each piece before decoding the
    /// next); returns how many.
    fn process_into(
        &mut self,
        input: Vec<Frame>,
        params: &Params,
        emit: &mut dyn FnMut(Frame),
    ) -> Result<usize, PipelineError> {
        let frames = self.process(input, params)?;
        let n = frames.len();
        frames.into_iter().for_each(emit);
        Ok(n)
    }
}

/// The indices of `take` frames spread uniformly over a buffer of `len` frames (first and
/// last included). With `take == 1` the newest frame is taken, so a pipeline that keeps up
/// sees every frame and one that falls behind sees the latest. `None` while the buffer is
/// too short.
pub fn uniform_sample(len: usize, take: usize) -> Option<Vec<usize>> {
    if take == 0 || len < take {
        return None;
    }
    if take == 1 {
        return Some(vec![len - 1]);
    }
    Some(
        (0..take)
            .map(|i| ((i * (len - 1)) as f64 / (take - 1) as f64).round() as usize)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_sample_spreads_over_the_buffer() {
        assert_eq!(uniform_sample(3, 4), None);
        assert_eq!(uniform_sample(4, 4), Some(vec![0, 1, 2, 3]));
        assert_eq!(uniform_sample(30, 4), Some(vec![0, 10, 19, 29]));
        assert_eq!(uniform_sample(9, 5), Some(vec![0, 2, 4, 6, 8]));
        assert_eq!(uniform_sample(7, 1), Some(vec![6]));
        assert_eq!(uniform_sample(0, 1), None);
        assert_eq!(uniform_sample(5, 0), None);
    }
}
