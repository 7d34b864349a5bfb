//! The UMT5 tokenizer front-end against transformers (`engine/scripts/gen_tokenizer_goldens.py`:
//! a SentencePiece unigram model trained and converted to `tokenizer.json` the way
//! `google/umt5-xxl` is), Wan's prompt cleaning, and the text encoder's prompt cache.

use burn::tensor::{DType, Int, Tensor, TensorData};
use engine::{
    text::{
        clean::clean_prompt,
        tokenizer::{MAX_LENGTH, TokenizerError, Umt5Tokenizer},
    },
    wan::{
        text_encoder::TextEncoder,
        umt5::{Umt5Config, Umt5Encoder},
    },
};
use std::path::{Path, PathBuf};

type B = burn::backend::Flex;

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens")
}

#[derive(serde::Deserialize)]
struct Case {
    prompt: String,
    cleaned: String,
    ids: Vec<u32>,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(goldens().join("tokenizer/cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn ids_equal_the_reference_tokenizer_on_every_case() {
    let tok = Umt5Tokenizer::from_path(&goldens().join("tokenizer/tokenizer.json")).unwrap();
    let cases = cases();
    assert!(cases.len() >= 20);
    // Unicode, HTML entities, extra whitespace and prompts past 512 tokens are all there.
    assert!(cases.iter().any(|c| c.prompt.contains("&amp;")));
    assert!(
        cases
            .iter()
            .any(|c| c.prompt.contains("  ") || c.prompt.contains('\t'))
    );
    assert!(cases.iter().any(|c| !c.prompt.is_ascii()));
    assert!(cases.iter().filter(|c| c.ids.len() == MAX_LENGTH).count() >= 2);
    for c in &cases {
        assert_eq!(
            clean_prompt(&c.prompt),
            c.cleaned,
            "cleaning {:?}",
            c.prompt
        );
        let got = tok.encode(&c.prompt).unwrap();
        assert_eq!(got.ids, c.ids, "ids of {:?}", c.cleaned);
        assert_eq!(got.ids.last(), Some(&1), "</s> last");
    }
}

#[test]
fn a_directory_loads_and_padding_fills_with_zeros() {
    let tok = Umt5Tokenizer::from_path(&goldens().join("tokenizer")).unwrap();
    assert_eq!(tok.vocab_size(), 1000);
    let t = tok.encode("a red fox").unwrap();
    let (ids, mask) = t.padded(MAX_LENGTH);
    assert_eq!((ids.len(), mask.len()), (MAX_LENGTH, MAX_LENGTH));
    let n = t.ids.len();
    assert!(mask[..n].iter().all(|m| *m == 1) && mask[n..].iter().all(|m| *m == 0));
    assert!(ids[n..].iter().all(|i| *i == 0));
}

#[test]
fn missing_or_broken_tokenizers_are_clear_errors() {
    let e = Umt5Tokenizer::from_path(Path::new("/nonexistent/umt5")).unwrap_err();
    assert!(matches!(e, TokenizerError::Load { .. }) && e.to_string().contains("/nonexistent"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("tokenizer.json");
    std::fs::write(&bad, "{\"model\": 3}").unwrap();
    let e = Umt5Tokenizer::from_path(dir.path()).unwrap_err();
    assert!(e.to_string().contains("tokenizer.json"), "{e}");
}

fn text_encoder() -> TextEncoder<B> {
    let tok = Umt5Tokenizer::from_path(&goldens().join("tokenizer")).unwrap();
    let cfg = Umt5Config::from_file(&goldens().join("umt5_tiny_config.json")).unwrap();
    let model = Umt5Encoder::from_file(
        cfg,
        &goldens().join("umt5_tiny_transformers_f32.safetensors"),
        &Default::default(),
        DType::F32,
    )
    .unwrap();
    TextEncoder::new(tok, model, 4)
}

#[test]
fn prompt_contexts_are_cached_per_cleaned_prompt() {
    let mut enc = text_encoder();
    let a = enc.encode("A red fox in the snow").unwrap();
    // The same prompt after cleaning (extra whitespace, an entity): a cache hit.
    let b = enc.encode("  A red fox   in the\tsnow ").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let c = enc.encode("A red fox in the&#32;snow").unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &c));
    assert_eq!(enc.cache_stats(), (2, 1));
    enc.encode("a blue whale").unwrap();
    assert_eq!(enc.cache_stats(), (2, 2));

    // The context: [1, 512, d], the prompt's rows from the encoder, the rest zero.
    let d = enc.model().config.d_model;
    assert_eq!(a.context.shape.to_vec(), vec![1, MAX_LENGTH, d]);
    let ctx: Vec<f32> = a.context.clone().to_vec().unwrap();
    let n = a.tokens;
    assert!(ctx[n * d..].iter().all(|v| *v == 0.0));
    let ids: Vec<i64> = Umt5Tokenizer::from_path(&goldens().join("tokenizer"))
        .unwrap()
        .encode("A red fox in the snow")
        .unwrap()
        .ids
        .iter()
        .map(|i| i64::from(*i))
        .collect();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &Default::default());
    let mask = Tensor::<B, 2>::ones([1, n], &Default::default());
    let hidden: Vec<f32> = enc.model().forward(ids, mask).into_data().to_vec().unwrap();
    let diff = hidden
        .iter()
        .zip(&ctx[..n * d])
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-6, "{diff}");
}
