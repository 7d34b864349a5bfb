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
//! | [`wan`] | the Wan2.1 models on burn: the DiT (config, weights, forward, caches), the VAE (streaming encode/decode), the UMT5 text encoder |
//! | [`text`] | prompt cleaning, the UMT5 tokenizer, the per-prompt cache |
//! | [`backend`] | the compiled burn backends and how one is chosen |
//! | [`profile`] | opt-in per-stage GPU timings (`HANZO_LIVE_PROFILE=1`) |

pub mod backend;
pub mod cli;
#[cfg(feature = "cuda")]
#[allow(unsafe_code)] // device pointers and streams for the CUDA libraries (cuda/mod.rs)
pub mod cuda;
pub mod frame;
pub mod pipeline;
pub mod profile;
pub mod scheduler;
pub mod tensor_file;
pub mod text;
pub mod wan;

/// The message a caught panic carried (`panic!("…")` or a formatted one), if any.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
}
