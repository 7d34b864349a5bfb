//! The UMT5 encoder against transformers `UMT5EncoderModel` goldens (made by
//! `engine/scripts/gen_vae_t5_goldens.py`), both key layouts, the fp8 e4m3fn file against a
//! reference conversion, the relative-position buckets, the trimmed context path, and the
//! loader's error cases. Relative error is `max|a − b| / max|b|`; tolerance 1e-4.

mod common;
use burn::tensor::{DType, Int, Tensor, TensorData};
use common::{goldens, rel_err, values};
use engine::{
    tensor_file::{self, F32Tensor},
    wan::{
        LoadError, Variant,
        umt5::{Umt5Config, Umt5Encoder, relative_position_bucket},
        weights::read_tensors,
    },
};
use std::collections::BTreeMap;

type B = burn::backend::Flex;

fn config() -> Umt5Config {
    Umt5Config::from_file(&goldens().join("umt5_tiny_config.json")).unwrap()
}

fn encoder(weights: &str, dtype: DType) -> Umt5Encoder<B> {
    Umt5Encoder::from_file(
        config(),
        &goldens().join(weights),
        &Default::default(),
        dtype,
    )
    .unwrap()
}

fn case() -> BTreeMap<String, F32Tensor> {
    tensor_file::read(&goldens().join("umt5_case.safetensors")).unwrap()
}

fn ids(t: &F32Tensor) -> Tensor<B, 2, Int> {
    let v: Vec<i64> = t.data.iter().map(|x| *x as i64).collect();
    Tensor::from_data(TensorData::new(v, t.shape.clone()), &Default::default())
}

fn float(t: &F32Tensor) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(t.data.clone(), t.shape.clone()),
        &Default::default(),
    )
}

fn check_hidden(weights: &str) {
    let case = case();
    let model = encoder(weights, DType::F32);
    let hidden = model.forward(ids(&case["input_ids"]), float(&case["attention_mask"]));
    assert_eq!(hidden.dims(), [2, 16, 32]);
    let e = rel_err(&values(hidden), &case["hidden"].data);
    assert!(e <= 1e-4, "{weights}: hidden rel err {e:e}");
}

#[test]
fn transformers_layout_matches_transformers() {
    check_hidden("umt5_tiny_transformers_f32.safetensors");
}

#[test]
fn wan_layout_bf16_pickle_matches_transformers() {
    // The golden weights are bf16-representable: the bf16 file holds the same values.
    check_hidden("umt5_tiny_original_bf16.pth");
}

#[test]
fn wan_layout_f32_safetensors_matches_transformers() {
    check_hidden("umt5_tiny_original_f32.safetensors");
}

#[test]
fn trimmed_context_equals_the_reference_rows_and_zeroes_the_rest() {
    let case = case();
    let model = encoder("umt5_tiny_transformers_f32.safetensors", DType::F32);
    // Row 0 has 16 tokens, row 1 has 9: the encoder runs on 16 positions, pads to 512.
    let ctx = values(model.context(ids(&case["input_ids"]), &[16, 9], 512));
    assert_eq!(ctx.len(), 2 * 512 * 32);
    let want = &case["context"].data;
    for row in 0..2 {
        let got = &ctx[row * 512 * 32..row * 512 * 32 + 16 * 32];
        let e = rel_err(got, &want[row * 16 * 32..(row + 1) * 16 * 32]);
        assert!(e <= 1e-4, "row {row}: rel err {e:e}");
        assert!(
            ctx[row * 512 * 32 + 16 * 32..(row + 1) * 512 * 32]
                .iter()
                .all(|v| *v == 0.0)
        );
    }
    // Row 1 alone, trimmed to its 9 tokens: the same rows (padding keys never mattered).
    let one = ids(&case["input_ids"]).narrow(0, 1, 1).narrow(1, 0, 9);
    let alone = values(model.context(one, &[9], 512));
    let e = rel_err(&alone[..9 * 32], &want[16 * 32..16 * 32 + 9 * 32]);
    assert!(e <= 1e-4, "trimmed row 1: rel err {e:e}");
}

#[test]
fn a_length_step_pads_the_run_and_keeps_the_rows() {
    let case = case();
    let mut model = encoder("umt5_tiny_transformers_f32.safetensors", DType::F32);
    let want = &case["context"].data;
    // Row 1's 9 tokens run over 64 positions (55 of them padding, ids given for 9 only), and
    // a step past `rows` stops at `rows`.
    for (step, rows) in [(64, 512), (128, 100)] {
        model.length_step = step;
        let one = ids(&case["input_ids"]).narrow(0, 1, 1).narrow(1, 0, 9);
        let ctx = values(model.context(one, &[9], rows));
        assert_eq!(ctx.len(), rows * 32);
        let e = rel_err(&ctx[..9 * 32], &want[16 * 32..16 * 32 + 9 * 32]);
        assert!(e <= 1e-4, "step {step}: rel err {e:e}");
        assert!(ctx[9 * 32..].iter().all(|v| *v == 0.0), "step {step}");
    }
}

#[test]
fn buckets_equal_the_reference() {
    let t = tensor_file::read(&goldens().join("umt5_buckets.safetensors")).unwrap();
    let (rel, want) = (&t["relative_position"].data, &t["bucket"].data);
    assert_eq!(rel.len(), 2201);
    for (r, w) in rel.iter().zip(want) {
        assert_eq!(
            relative_position_bucket(*r as i64, 32, 128),
            *w as i64,
            "relative position {r}"
        );
    }
}

#[test]
fn fp8_e4m3fn_dequantises_like_the_reference() {
    let path = goldens().join("umt5_tiny_fp8_e4m3fn.safetensors");
    let want = tensor_file::read(&goldens().join("umt5_fp8_dequant.safetensors")).unwrap();
    let got = read_tensors(&path, Variant::Generator, DType::F32).unwrap();
    // Scales and the `scaled_fp8` marker are consumed.
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (key, w) in &want {
        let g: Vec<f32> = got[key].clone().convert_dtype(DType::F32).to_vec().unwrap();
        assert_eq!(got[key].shape.to_vec(), w.shape, "{key}");
        assert!(
            g.iter()
                .zip(&w.data)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{key}: f32 dequantisation differs from the reference"
        );
    }
    // Into bf16 (how the 5.7B encoder is loaded): unscaled weights are exact, scaled ones
    // are the f32 product rounded to bf16.
    let bf = read_tensors(&path, Variant::Generator, DType::BF16).unwrap();
    for (key, w) in &want {
        let data = &bf[key];
        let g: Vec<f32> = data.clone().convert_dtype(DType::F32).to_vec().unwrap();
        let rounded: Vec<f32> = w
            .data
            .iter()
            .map(|v| {
                if data.dtype == DType::BF16 {
                    half::bf16::from_f32(*v).to_f32()
                } else {
                    *v
                }
            })
            .collect();
        assert_eq!(g, rounded, "{key}");
        if key.starts_with("blocks.1.attn") || key == "token_embedding.weight" {
            assert_eq!(g, w.data, "{key}: unscaled fp8 → bf16 must be exact");
        }
    }
    // And the encoder runs on it.
    let model =
        Umt5Encoder::<B>::from_file(config(), &path, &Default::default(), DType::F32).unwrap();
    let case = case();
    let h = values(model.forward(ids(&case["input_ids"]), float(&case["attention_mask"])));
    assert!(h.iter().all(|v| v.is_finite()));
}

fn load_err(tensors: BTreeMap<String, F32Tensor>) -> LoadError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t5.safetensors");
    tensor_file::write(&path, &tensors).unwrap();
    Umt5Encoder::<B>::from_file(config(), &path, &Default::default(), DType::F32).unwrap_err()
}

#[test]
fn loader_errors_name_the_tensor() {
    let good =
        tensor_file::read(&goldens().join("umt5_tiny_transformers_f32.safetensors")).unwrap();

    let mut missing = good.clone();
    missing.remove("encoder.block.1.layer.1.DenseReluDense.wi_0.weight");
    let e = load_err(missing).to_string();
    assert!(
        e.contains("missing tensor blocks.1.ffn.gate.0.weight"),
        "{e}"
    );

    let mut wrong = good.clone();
    wrong.insert(
        "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight".into(),
        F32Tensor::new(vec![32, 3], vec![0.0; 96]),
    );
    let e = load_err(wrong).to_string();
    assert!(
        e.contains("blocks.0.pos_embedding.embedding.weight") && e.contains("[32, 3]"),
        "{e}"
    );

    // The tied copy of the embedding is accepted alongside `shared.weight`.
    let mut tied = good.clone();
    tied.insert(
        "encoder.embed_tokens.weight".into(),
        good["shared.weight"].clone(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tied.safetensors");
    tensor_file::write(&path, &tied).unwrap();
    Umt5Encoder::<B>::from_file(config(), &path, &Default::default(), DType::F32).unwrap();

    let mut unknown = BTreeMap::new();
    unknown.insert("lm_head.weight".into(), F32Tensor::new(vec![1], vec![0.0]));
    assert!(matches!(load_err(unknown), LoadError::UnknownLayout { .. }));

    // UMT5-XXL's config against the tiny file.
    let e = Umt5Encoder::<B>::from_file(
        Umt5Config::umt5_xxl(),
        &goldens().join("umt5_tiny_original_f32.safetensors"),
        &Default::default(),
        DType::F32,
    )
    .unwrap_err();
    assert!(matches!(e, LoadError::Shape { .. }), "{e}");

    for bad in [
        r#"{"vocab_size": 8, "d_model": 4, "d_kv": 2, "d_ff": 4, "num_layers": 1, "num_heads": 2, "feed_forward_proj": "relu"}"#,
        r#"{"vocab_size": 8, "d_model": 4, "d_kv": 2, "d_ff": 4, "num_layers": 0, "num_heads": 2}"#,
        r#"{"d_model": 4}"#,
    ] {
        assert!(Umt5Config::from_json(bad).is_err(), "{bad}");
    }
}
