//! The UMT5 tokenizer as Wan calls it: Wan's prompt cleaning ([`super::clean`]), then the
//! checkpoint's `tokenizer.json` (SentencePiece unigram, through the `tokenizers` crate)
//! with `</s>` appended, truncated to `max_length` (512) ids, padded with 0.

use std::path::{Path, PathBuf};

/// Context rows Wan's text encoder produces and the DiT reads (`text_len`).
pub const MAX_LENGTH: usize = 512;

/// Why a tokenizer cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot load the tokenizer {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error("cannot tokenize: {0}")]
    Encode(String),
}

/// A prompt's token ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    /// The prompt's ids with the final `</s>`, at most `max_length` long; no padding.
    pub ids: Vec<u32>,
}

impl Tokens {
    /// `ids` padded with 0 to `len`, and the attention mask.
    pub fn padded(&self, len: usize) -> (Vec<i64>, Vec<i64>) {
        let mut ids: Vec<i64> = self.ids.iter().map(|i| i64::from(*i)).collect();
        let mut mask = vec![1i64; ids.len()];
        ids.resize(len.max(ids.len()), 0);
        mask.resize(ids.len(), 0);
        (ids, mask)
    }
}

/// UMT5's tokenizer.
pub struct Umt5Tokenizer {
    inner: tokenizers::Tokenizer,
    max_length: usize,
    path: PathBuf,
}

impl std::fmt::Debug for Umt5Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umt5Tokenizer")
            .field("path", &self.path)
            .field("max_length", &self.max_length)
            .finish()
    }
}

impl Umt5Tokenizer {
    /// Loads `tokenizer.json`, or the one inside a directory (Wan's `google/umt5-xxl/`).
    pub fn from_path(path: &Path) -> Result<Self, TokenizerError> {
        let file = if path.is_dir() {
            path.join("tokenizer.json")
        } else {
            path.to_owned()
        };
        let load_err = |message: String| TokenizerError::Load {
            path: file.clone(),
            message,
        };
        if !file.is_file() {
            return Err(load_err(
                "no such file (expected tokenizer.json or a directory holding it)".into(),
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(&file).map_err(|e| load_err(e.to_string()))?;
        Self::from_inner(inner, file)
    }

    /// A tokenizer from `tokenizer.json` text.
    pub fn from_json(json: &str) -> Result<Self, TokenizerError> {
        let path = PathBuf::from("<tokenizer.json>");
        let inner: tokenizers::Tokenizer =
            json.parse()
                .map_err(|e: tokenizers::Error| TokenizerError::Load {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
        Self::from_inner(inner, path)
    }

    fn from_inner(mut inner: tokenizers::Tokenizer, path: PathBuf) -> Result<Self, TokenizerError> {
        inner.with_padding(None);
        Self {
            inner,
            max_length: 0,
            path,
        }
        .with_max_length(MAX_LENGTH)
    }

    /// Truncation length (ids including `</s>`): the text is cut so that the ids the
    /// post-processor appends still fit, as transformers' `truncation=True` does.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self, TokenizerError> {
        let params = tokenizers::TruncationParams {
            max_length: max_length.max(2),
            ..Default::default()
        };
        self.inner
            .with_truncation(Some(params))
            .map_err(|e| TokenizerError::Load {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        self.max_length = max_length.max(2);
        Ok(self)
    }

    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The vocabulary size (added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Tokenizes an already cleaned text: special tokens added, truncated to `max_length`.
    pub fn encode_clean(&self, text: &str) -> Result<Tokens, TokenizerError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(Tokens {
            ids: enc.get_ids().to_vec(),
        })
    }

    /// Cleans `prompt` the way Wan does, then tokenizes it.
    pub fn encode(&self, prompt: &str) -> Result<Tokens, TokenizerError> {
        self.encode_clean(&super::clean::clean_prompt(prompt))
    }
}
