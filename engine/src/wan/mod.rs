//! The Wan2.1 models on burn. So far the diffusion transformer: [`config`], [`weights`]
//! (both key layouts), [`dit`] (bidirectional and causal forward), [`cache`] (self- and
//! cross-attention caches), [`rope`], [`nn`] and [`sampling`].

pub mod cache;
pub mod config;
pub mod dit;
pub mod nn;
pub mod rope;
pub mod sampling;
pub mod text_encoder;
pub mod umt5;
pub mod vae;
pub mod weights;

pub use cache::{CacheConfig, WanCache};
pub use config::WanConfig;
pub use dit::{Timesteps, WanModel};
pub use weights::{Checkpoint, Layout, LoadError, Variant};
