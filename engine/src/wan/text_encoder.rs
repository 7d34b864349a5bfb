//! Prompt → DiT context: Wan's cleaning, the UMT5 tokenizer, the UMT5 encoder, rows past the
//! prompt zeroed and padded to 512, with an LRU cache per (cleaned) prompt. The context is
//! returned as host data, so the encoder can run on another backend than the DiT
//! (`--text-encoder-device cpu`).

use super::umt5::Umt5Encoder;
use crate::text::{
    cache::PromptCache,
    clean::clean_prompt,
    tokenizer::{MAX_LENGTH, TokenizerError, Umt5Tokenizer},
};
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use std::sync::Arc;

/// What the DiT's cross-attention reads for one prompt.
#[derive(Clone, Debug)]
pub struct PromptContext {
    /// f32 `[1, 512, d_model]`; rows ≥ `tokens` are zero.
    pub context: TensorData,
    /// Tokens of the prompt, `</s>` included.
    pub tokens: usize,
}

/// Prompts cached by default.
pub const DEFAULT_CACHE_PROMPTS: usize = 32;

/// Tokenizer + encoder + per-prompt cache.
#[derive(Debug)]
pub struct TextEncoder<B: Backend> {
    tokenizer: Umt5Tokenizer,
    model: Umt5Encoder<B>,
    cache: PromptCache<Arc<PromptContext>>,
}

impl<B: Backend> TextEncoder<B> {
    pub fn new(tokenizer: Umt5Tokenizer, model: Umt5Encoder<B>, cache_prompts: usize) -> Self {
        Self {
            tokenizer,
            model,
            cache: PromptCache::new(cache_prompts),
        }
    }

    pub fn model(&self) -> &Umt5Encoder<B> {
        &self.model
    }

    /// The context for `prompt`, from the cache when the cleaned prompt was seen recently.
    pub fn encode(&mut self, prompt: &str) -> Result<Arc<PromptContext>, TokenizerError> {
        let cleaned = clean_prompt(prompt);
        let (tokenizer, model) = (&self.tokenizer, &self.model);
        self.cache.get_or_try_insert(&cleaned, || {
            let tokens = tokenizer.encode_clean(&cleaned)?;
            let vocab = model.config.vocab_size;
            if let Some(bad) = tokens.ids.iter().find(|i| **i as usize >= vocab) {
                return Err(TokenizerError::Encode(format!(
                    "token id {bad} is outside the encoder's vocabulary ({vocab}): the tokenizer \
                     does not belong to these weights"
                )));
            }
            let n = tokens.ids.len();
            let ids: Vec<i64> = tokens.ids.iter().map(|i| i64::from(*i)).collect();
            let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), model.device());
            let context = model.context(ids, &[n], MAX_LENGTH).into_data();
            Ok(Arc::new(PromptContext { context, tokens: n }))
        })
    }

    /// (hits, misses) of the prompt cache.
    pub fn cache_stats(&self) -> (u64, u64) {
        self.cache.stats()
    }
}
