//! The Wan2.1 models on burn: the diffusion transformer ([`config`], [`weights`] (both key
//! layouts, fp8 dequantisation), [`dit`] (bidirectional and causal forward), [`cache`] (self-
//! and cross-attention caches), [`rope`], [`nn`], [`sampling`]), the VAE ([`vae`], streaming
//! encode/decode) and the UMT5 text encoder ([`umt5`], [`text_encoder`]: prompt → context).

pub mod cache;
pub mod config;
pub mod dit;
pub mod lora;
pub mod nn;
pub mod quant;
pub mod rope;
pub mod sampling;
pub mod tae;
pub mod text_encoder;
pub mod umt5;
pub mod vae;
pub mod video_vae;
pub mod weights;

pub use cache::{CacheConfig, WanCache};
pub use config::WanConfig;
pub use dit::{Timesteps, WanModel};
pub use weights::{Checkpoint, Layout, LoadError, Variant};
