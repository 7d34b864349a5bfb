//! Text front-end of the text encoder (UMT5): Wan2.1's prompt cleaning, the tokenizer and the
//! prompt cache.
//!
//! | module | what it holds |
//! |---|---|
//! | [`clean`] | Wan's prompt cleaning: ftfy's `fix_text`, `html.unescape` twice, whitespace |
//! | [`html`] | Python's `html.unescape`, exactly |
//! | [`tokenizer`] | the UMT5 tokenizer as Wan calls it |
//! | [`cache`] | the least-recently-used cache of per-prompt results |

pub mod cache;
pub mod clean;
pub mod html;
mod html_entities;
pub mod tokenizer;
