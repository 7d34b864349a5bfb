//! Text front-end of the text encoder.
pub mod cache;
pub mod clean;
pub mod tokenizer;
