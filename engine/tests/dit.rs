//! The Wan DiT against diffusers goldens (made by `engine/scripts/gen_dit_goldens.py`), the
//! loader on every file kind and its error cases, and the causal form with its KV cache
//! against the bidirectional form with a block-causal mask.
//!
//! Relative error here is `max|a − b| / max|b|`.

mod common;
use burn::tensor::{DType, Tensor, TensorData};
use common::{goldens, rel_err, tensor, values};
use engine::{
    tensor_file::{self, F32Tensor},
    wan::{
        CacheConfig, Checkpoint, LoadError, Timesteps, Variant, WanConfig, WanModel,
        cache::{Attend, KvCache},
        dit::block_causal_mask,
        lora::{Lora, LoraPair},
    },
};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

type B = burn::backend::Flex;

fn config() -> WanConfig {
    WanConfig::from_file(&goldens().join("dit_tiny_config_original.json")).unwrap()
}

fn model(weights: &str, dtype: DType) -> WanModel<B> {
    let ck = Checkpoint::read(&goldens().join(weights), Variant::Generator).unwrap();
    WanModel::load(config(), ck, &Default::default(), dtype).unwrap()
}

struct Case {
    x: Tensor<B, 5>,
    t: Timesteps,
    context: Tensor<B, 3>,
    out: Vec<f32>,
}

fn case(name: &str) -> Case {
    let f = tensor_file::read(&goldens().join(format!("dit_case_{name}.safetensors"))).unwrap();
    let x = &f["x"];
    let frames = x.shape[2];
    let t = &f["t"];
    let t = if t.shape.len() == 1 {
        let rows: Vec<f64> = t.data.iter().map(|v| f64::from(*v)).collect();
        Timesteps::per_row(&rows, frames)
    } else {
        Timesteps {
            per_frame: t
                .data
                .chunks(t.shape[1])
                .map(|r| r.iter().map(|v| f64::from(*v)).collect())
                .collect(),
        }
    };
    Case {
        x: tensor(x),
        t,
        context: tensor(&f["context"]),
        out: f["out"].data.clone(),
    }
}

#[test]
fn the_forward_matches_diffusers_at_t1000_t0_and_per_frame() {
    let m = model("dit_tiny_original_f32.safetensors", DType::F32);
    for name in ["t1000", "t0", "per_frame"] {
        let c = case(name);
        let out = values(m.forward(c.x, &c.t, c.context, None));
        let err = rel_err(&out, &c.out);
        eprintln!("{name}: relative error vs diffusers {err:e}");
        assert!(err <= 1e-4, "{name}: relative error {err:e}");
    }
}

#[test]
fn the_naive_attention_kernel_gives_the_same_result() {
    let mut m = model("dit_tiny_original_f32.safetensors", DType::F32);
    m.kernel = engine::wan::nn::AttentionKernel::Naive;
    let c = case("t1000");
    let err = rel_err(&values(m.forward(c.x, &c.t, c.context, None)), &c.out);
    assert!(err <= 1e-4, "relative error {err:e}");
}

#[test]
fn bf16_weights_and_compute_stay_close() {
    let m = model("dit_tiny_original_bf16.safetensors", DType::BF16);
    let c = case("t1000");
    let err = rel_err(&values(m.forward(c.x, &c.t, c.context, None)), &c.out);
    eprintln!("bf16: relative error vs diffusers f32 {err:e}");
    assert!(err <= 5e-2, "bf16 relative error {err:e}");
}

#[test]
fn fp8_block_linears_cost_about_a_percent_against_diffusers() {
    // The emulated fp8 path (this backend has no fp8 GEMM): the same rounding of weights and
    // inputs as the GPU's, multiplied in f32.
    let mut m = model("dit_tiny_original_f32.safetensors", DType::F32);
    assert_eq!(m.quantize_fp8(), 0, "no fp8 GEMM on the CPU");
    for name in ["t1000", "t0", "per_frame"] {
        let c = case(name);
        let err = rel_err(&values(m.forward(c.x, &c.t, c.context, None)), &c.out);
        eprintln!("fp8 {name}: relative error vs diffusers f32 {err:e}");
        // Quantized (far from f32's 1e-6) but close: e4m3fn keeps 3 mantissa bits.
        assert!(
            (1e-4..=3e-2).contains(&err),
            "{name}: fp8 relative error {err:e}"
        );
    }
    // Quantizing again is a no-op.
    let c = case("t1000");
    let before = values(m.forward(c.x.clone(), &c.t, c.context.clone(), None));
    m.quantize_fp8();
    assert_eq!(values(m.forward(c.x, &c.t, c.context, None)), before);
}

#[test]
fn a_lora_merged_into_the_loaded_model_equals_one_merged_into_the_checkpoint() {
    // The self-attention's q, k and v are one layer in the model: a LoRA on any of them
    // must land in its third, and pairs on other layers where they belong.
    let cfg = config();
    let (d, ffn, r, scale) = (cfg.dim, cfg.ffn_dim, 2, 0.7f32);
    let path = goldens().join("dit_tiny_original_f32.safetensors");
    let mut tensors = Checkpoint::read(&path, Variant::Generator)
        .unwrap()
        .into_tensors()
        .unwrap();
    let targets = [
        ("blocks.0.self_attn.k", d, d),
        ("blocks.1.self_attn.q", d, d),
        ("blocks.1.self_attn.v", d, d),
        ("blocks.0.cross_attn.v", d, d),
        ("blocks.1.ffn.0", d, ffn),
    ];
    let mut pairs = BTreeMap::new();
    for (n, &(module, d_in, d_out)) in targets.iter().enumerate() {
        let made = |len: usize, salt: usize| -> Vec<f32> {
            (0..len)
                .map(|i| (0.37 * (i + 13 * salt + 101 * n) as f32).sin() * 0.2)
                .collect()
        };
        let (a, b) = (made(r * d_in, 1), made(d_out * r, 2));
        // W[o][i] += scale · Σ_j B[o][j]·A[j][i], by hand.
        let key = format!("{module}.weight");
        let mut w: Vec<f32> = tensors[&key]
            .clone()
            .convert_dtype(DType::F32)
            .to_vec()
            .unwrap();
        for o in 0..d_out {
            for i in 0..d_in {
                let ba: f32 = (0..r).map(|j| b[o * r + j] * a[j * d_in + i]).sum();
                w[o * d_in + i] += scale * ba;
            }
        }
        tensors.insert(key, TensorData::new(w, [d_out, d_in]));
        pairs.insert(
            module.to_owned(),
            LoraPair {
                a: TensorData::new(a, [r, d_in]),
                b: TensorData::new(b, [d_out, r]),
            },
        );
    }
    let lora = Lora { pairs, rank: r };
    let mut merged = model("dit_tiny_original_f32.safetensors", DType::F32);
    assert_eq!(
        merged.merge_lora(&lora, f64::from(scale)).unwrap(),
        targets.len()
    );
    let by_hand = WanModel::<B>::load(
        cfg,
        Checkpoint::from_tensors(tensors, path),
        &Default::default(),
        DType::F32,
    )
    .unwrap();
    let c = case("t1000");
    let got = values(merged.forward(c.x.clone(), &c.t, c.context.clone(), None));
    let want = values(by_hand.forward(c.x, &c.t, c.context, None));
    let err = rel_err(&got, &want);
    assert!(err <= 1e-5, "merged vs merged by hand: {err:e}");
    assert!(rel_err(&got, &c.out) > 1e-3, "the LoRA changes the output");
}

/// The tensors of a checkpoint as f32 values.
fn flat(path: &str, variant: Variant) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    Checkpoint::read(&goldens().join(path), variant)
        .unwrap()
        .into_tensors()
        .unwrap()
        .into_iter()
        .map(|(k, v)| {
            let shape = v.shape.to_vec();
            (
                k,
                (shape, v.convert_dtype(DType::F32).to_vec::<f32>().unwrap()),
            )
        })
        .collect()
}

fn round_bf16(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|x| half::bf16::from_f32(*x).to_f32())
        .collect()
}

#[test]
fn every_file_kind_and_layout_loads_the_same_tensors() {
    let reference = flat("dit_tiny_original_f32.safetensors", Variant::Generator);
    assert_eq!(
        reference.len(),
        69,
        "tensor count of the tiny model (15 global + 27 per block)"
    );
    for (file, bf16) in [
        ("dit_tiny_original_f32.pth", false),
        ("dit_tiny_diffusers_f32.safetensors", false),
        ("dit_tiny_diffusers_f32.pth", false),
        ("dit_tiny_sharded", false),
        (
            "dit_tiny_sharded/diffusion_pytorch_model.safetensors.index.json",
            false,
        ),
        ("dit_tiny_original_bf16.safetensors", true),
        ("dit_tiny_original_bf16.pth", true),
        ("dit_tiny_diffusers_bf16.safetensors", true),
        ("dit_tiny_diffusers_bf16.pth", true),
    ] {
        let got = flat(file, Variant::Ema);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            reference.keys().collect::<Vec<_>>(),
            "{file}"
        );
        for (k, (shape, v)) in &reference {
            let want = if bf16 { round_bf16(v) } else { v.clone() };
            assert_eq!(&got[k].0, shape, "{file}: {k}");
            assert_eq!(got[k].1, want, "{file}: {k}");
        }
    }
}

#[test]
fn the_diffusers_layout_and_config_give_the_same_model() {
    let cfg = WanConfig::from_file(&goldens().join("dit_tiny_config_diffusers.json")).unwrap();
    assert_eq!(cfg, config());
    let ck = Checkpoint::read(&goldens().join("dit_tiny_sharded"), Variant::Generator).unwrap();
    assert_eq!(ck.layout, engine::wan::Layout::Diffusers);
    let m = WanModel::<B>::load(cfg, ck, &Default::default(), DType::F32).unwrap();
    let c = case("t0");
    let err = rel_err(&values(m.forward(c.x, &c.t, c.context, None)), &c.out);
    assert!(err <= 1e-4, "relative error {err:e}");
}

/// Writes `tensors` (f32) to a fresh safetensors file.
fn write_weights(dir: &Path, name: &str, tensors: &BTreeMap<String, F32Tensor>) -> PathBuf {
    let path = dir.join(name);
    tensor_file::write(&path, tensors).unwrap();
    path
}

fn load_err(path: &Path) -> LoadError {
    match Checkpoint::read(path, Variant::Generator) {
        Err(e) => e,
        Ok(ck) => WanModel::<B>::load(config(), ck, &Default::default(), DType::F32)
            .expect_err("loaded a malformed checkpoint"),
    }
}

#[test]
fn malformed_checkpoints_give_typed_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = tensor_file::read(&goldens().join("dit_tiny_original_f32.safetensors")).unwrap();

    let mut missing = good.clone();
    missing.remove("blocks.1.cross_attn.norm_k.weight");
    let e = load_err(&write_weights(dir.path(), "missing.safetensors", &missing));
    assert!(
        matches!(&e, LoadError::Missing { key, expected } if key == "blocks.1.cross_attn.norm_k.weight" && expected == &[24]),
        "{e}"
    );

    let mut extra = good.clone();
    extra.insert(
        "blocks.2.self_attn.q.weight".into(),
        F32Tensor::new(vec![1], vec![0.0]),
    );
    let e = load_err(&write_weights(dir.path(), "extra.safetensors", &extra));
    assert!(
        matches!(&e, LoadError::Unexpected { count: 1, first } if first[0] == "blocks.2.self_attn.q.weight"),
        "{e}"
    );

    let mut shaped = good.clone();
    shaped.insert(
        "head.head.weight".into(),
        F32Tensor::new(vec![64, 20], vec![0.0; 64 * 20]),
    );
    let e = load_err(&write_weights(dir.path(), "shape.safetensors", &shaped));
    assert_eq!(
        e.to_string(),
        "tensor head.head.weight has shape [64, 20], expected [64, 24]"
    );

    let mut unknown = BTreeMap::new();
    unknown.insert(
        "encoder.layer.0.weight".into(),
        F32Tensor::new(vec![1], vec![0.0]),
    );
    let e = load_err(&write_weights(dir.path(), "unknown.safetensors", &unknown));
    assert!(matches!(e, LoadError::UnknownLayout { .. }), "{e}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    assert!(matches!(load_err(&garbage), LoadError::Format { .. }));
    let pickle = dir.path().join("garbage.pth");
    std::fs::write(&pickle, b"PK\x03\x04 truncated").unwrap();
    assert!(matches!(load_err(&pickle), LoadError::Truncated { .. }));
    let pickle = dir.path().join("not_a_zip.pth");
    std::fs::write(&pickle, b"\x80\x02 not a pickle").unwrap();
    assert!(matches!(load_err(&pickle), LoadError::Format { .. }));
    // Cut short (an interrupted download): the error names the file and says so.
    let full = std::fs::read(goldens().join("dit_tiny_original_f32.safetensors")).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let e = load_err(&cut);
    assert!(matches!(e, LoadError::Truncated { .. }), "{e}");
    assert!(
        e.to_string().contains("cut.safetensors is truncated"),
        "{e}"
    );
    let full = std::fs::read(goldens().join("dit_tiny_original_f32.pth")).unwrap();
    let cut = dir.path().join("cut.pth");
    std::fs::write(&cut, &full[..full.len() * 2 / 3]).unwrap();
    let e = load_err(&cut);
    assert!(matches!(e, LoadError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("cut.pth is truncated"), "{e}");
    let e = load_err(&dir.path().join("absent.safetensors"));
    assert!(matches!(e, LoadError::Io { .. }), "{e}");
    let e = load_err(&dir.path().join("weights.onnx"));
    assert!(e.to_string().contains("expected .safetensors"), "{e}");

    // An integer tensor is refused by dtype.
    let ints: Vec<u8> = [1i64, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::I64, vec![2], &ints).unwrap();
    let path = dir.path().join("ints.safetensors");
    safetensors::serialize_to_file(vec![("head.modulation".to_owned(), view)], None, &path)
        .unwrap();
    let e = load_err(&path);
    assert!(
        matches!(&e, LoadError::Dtype { key, .. } if key == "head.modulation"),
        "{e}"
    );
}

/// Random latents `[1, 16, frames, 4, 6]` (2×3 patches per frame).
fn latents(frames: usize, seed: u64) -> Tensor<B, 5> {
    let n = 16 * frames * 4 * 6;
    let mut state = seed;
    let data: Vec<f32> = (0..n)
        .map(|_| {
            // xorshift: deterministic, no dependency
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 20_000) as f32 / 10_000.0 - 1.0
        })
        .collect();
    Tensor::from_data(
        TensorData::new(data, [1, 16, frames, 4, 6]),
        (&Default::default(), DType::F32),
    )
}

/// Runs chunks of `chunk` frames, each with `steps` noisy passes and a clean pass at t = 0,
/// through the KV cache, and checks every pass against the full forward over
/// `[clean chunks so far, this chunk's input]` with the matching block-causal (and window)
/// mask.
fn causal_equals_masked_full(chunks: usize, chunk: usize, cache_frames: usize, sink: usize) {
    let m = model("dit_tiny_original_f32.safetensors", DType::F32);
    let frame_tokens = 2 * 3;
    let context = case("t0").context.narrow(0, 0, 1);
    let windowed = cache_frames < chunks * chunk;
    let mut cache = m.new_cache(1, CacheConfig::frames(cache_frames, sink, frame_tokens));
    let cross = m.cross_cache(context.clone());
    let steps = [1000.0, 750.0];
    let mut clean: Vec<Tensor<B, 5>> = Vec::new();
    let mut worst = 0f64;
    for c in 0..chunks {
        let passes: Vec<(f64, Tensor<B, 5>)> = steps
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, latents(chunk, (c * 10 + i + 1) as u64)))
            .chain(std::iter::once((0.0, latents(chunk, (c * 10 + 9) as u64))))
            .collect();
        for (t, x) in &passes {
            let tc = Timesteps::per_row(&[*t], chunk);
            let cached = m.forward_causal(x.clone(), &tc, &[c * chunk], &cross, &mut cache);
            let mut inputs = clean.clone();
            inputs.push(x.clone());
            let full_x = Tensor::cat(inputs, 2);
            let frames = (c + 1) * chunk;
            let mut per_frame = vec![0.0; c * chunk];
            per_frame.extend(vec![*t; chunk]);
            let full_t = Timesteps {
                per_frame: vec![per_frame],
            };
            let window = windowed.then_some((cache_frames, sink));
            let mask =
                block_causal_mask::<B>(frames, chunk, frame_tokens, window, &Default::default());
            let full = m.forward(full_x, &full_t, context.clone(), Some(mask));
            let last = full.narrow(2, c * chunk, chunk);
            let err = rel_err(&values(cached), &values(last));
            worst = worst.max(err);
        }
        clean.push(passes.last().map(|(_, x)| x.clone()).unwrap());
    }
    eprintln!(
        "{chunks}×{chunk} frames, cache {cache_frames} (sink {sink}): worst relative error {worst:e}"
    );
    assert!(worst <= 1e-5, "worst relative error {worst:e}");
}

#[test]
fn chunked_causal_inference_equals_the_block_causal_full_pass() {
    // 3 chunks of 2 frames, a global cache.
    causal_equals_masked_full(3, 2, 6, 0);
}

#[test]
fn a_windowed_cache_with_sinks_equals_the_windowed_full_pass() {
    // 1-frame chunks, a 2-frame window whose first frame is a sink: chunk 2 evicts frame 1.
    causal_equals_masked_full(3, 1, 2, 1);
    // 2-frame chunks, a 4-frame window with a 1-frame sink.
    causal_equals_masked_full(4, 2, 4, 1);
}

/// A cache that lets each call see only its own tokens.
struct OwnTokens;

impl KvCache<B> for OwnTokens {
    fn attend(&mut self, _: usize, _: &[usize], k: Tensor<B, 4>, v: Tensor<B, 4>) -> Attend<B> {
        Attend {
            k,
            v,
            spans: None,
            mask: None,
        }
    }
}

#[test]
fn rows_at_their_own_positions_equal_separate_calls() {
    let m = model("dit_tiny_original_f32.safetensors", DType::F32);
    let c = case("t0");
    let cross = m.cross_cache(c.context.narrow(0, 0, 1));
    let (x0, x1) = (latents(2, 3), latents(2, 4));
    let t = Timesteps {
        per_frame: vec![vec![900.0, 900.0], vec![400.0, 400.0]],
    };
    let both = m.forward_causal(
        Tensor::cat(vec![x0.clone(), x1.clone()], 0),
        &t,
        &[0, 5],
        &cross,
        &mut OwnTokens,
    );
    let one = |x, t: f64, frame| {
        let t = Timesteps::per_row(&[t], 2);
        values(m.forward_causal(x, &t, &[frame], &cross, &mut OwnTokens))
    };
    let (a, b) = (one(x0, 900.0, 0), one(x1, 400.0, 5));
    let both = values(both);
    assert!(rel_err(&both[..a.len()], &a) < 1e-6);
    assert!(rel_err(&both[a.len()..], &b) < 1e-6);
}

#[test]
fn a_rebased_cache_attends_exactly_as_the_unbased_one() {
    let m = model("dit_tiny_original_f32.safetensors", DType::F32);
    let frame_tokens = 6;
    let cross = m.cross_cache(case("t0").context.narrow(0, 0, 1));
    let cfg = CacheConfig::frames(4, 1, frame_tokens);
    let (mut plain, mut rebased) = (m.new_cache(1, cfg), m.new_cache(1, cfg));
    let t = Timesteps::per_row(&[600.0], 2);
    let mut worst = 0f64;
    let mut offset = 0;
    for c in 0..6 {
        if c == 3 {
            // Move every position back by 5 frames (sinks go negative).
            let shift =
                engine::wan::rope::Rope::<B>::temporal_shift(&m.config, -5, &Default::default());
            rebased.rebase(&shift, 5 * frame_tokens);
            offset = 5;
        }
        let x = latents(2, 20 + c as u64);
        let a = values(m.forward_causal(x.clone(), &t, &[2 * c], &cross, &mut plain));
        let b = values(m.forward_causal(x, &t, &[2 * c - offset], &cross, &mut rebased));
        worst = worst.max(rel_err(&b, &a));
    }
    eprintln!("rebased vs plain: worst relative error {worst:e}");
    assert!(worst < 1e-5, "{worst:e}");
}
