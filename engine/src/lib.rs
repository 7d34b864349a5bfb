//! Hanzo Live's generative engine.
//!
//! Everything the server needs to turn frames and prompts into frames, with no web
//! dependency: the server drives it from its own threads and bridges it to async code with
//! bounded channels.
//!
//! | module | what it holds |
//! |---|---|
//! | [`frame`] | RGB24 frames and resizing |
//! | [`pipeline`] | the pipeline traits, parameter schemas and validation, `passthrough`, `vod` |
//! | [`scheduler`] | the flow-matching noise schedule shared by the Wan streaming methods |

pub mod frame;
pub mod pipeline;
pub mod scheduler;
