//! TAEHV (`taew2_1`) and LightTAE against the reference `taehv.py` (goldens made by
//! `engine/scripts/gen_light_vae_goldens.py`): the full Wan2.1 architecture with weights made by a
//! formula both sides compute bit for bit, written here in both file kinds (`.pth`,
//! `.safetensors`) under the reference's state-dict keys; streaming against one call; frame
//! counts against the Wan VAE; the preview's `patch_tgrow_layers` rule; loader errors.
//!
//! Relative error is `max|a − b| / max|b|`. Tolerances: ≤ 1e-4 against the reference,
//! ≤ 1e-5 streaming against one call.

mod common;
use burn::tensor::{DType, Tensor, TensorData};
use common::{formula_weights, goldens, rel_err, tensor, values};
use engine::{
    tensor_file::{self, F32Tensor},
    wan::{
        Checkpoint, LoadError,
        tae::{Tae, TaeConfig, TaeKind, expected_tensors},
        vae::{AutoencoderKLWanConfig, LatentSpace, VaeError, WanVae},
        weights::pickle::{self, Node},
    },
};
use std::{collections::BTreeMap, path::Path, sync::OnceLock};

type B = burn::backend::Flex;

/// The reference model's keys and shapes (`tae_keys.json`).
fn reference_keys() -> Vec<(String, Vec<usize>)> {
    weights()
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect()
}

/// The formula weights of every reference tensor.
fn weights() -> &'static BTreeMap<String, F32Tensor> {
    static W: OnceLock<BTreeMap<String, F32Tensor>> = OnceLock::new();
    W.get_or_init(|| formula_weights("tae_keys.json"))
}

fn checkpoint(w: &BTreeMap<String, F32Tensor>) -> Checkpoint {
    let t = w
        .iter()
        .map(|(k, t)| (k.clone(), TensorData::new(t.data.clone(), t.shape.clone())))
        .collect();
    Checkpoint::from_tensors(t, "formula".into())
}

fn tae(kind: TaeKind) -> Tae<B> {
    Tae::load(
        TaeConfig::new(kind),
        checkpoint(weights()),
        &Default::default(),
        DType::F32,
    )
    .unwrap()
}

fn case() -> BTreeMap<String, F32Tensor> {
    tensor_file::read(&goldens().join("tae_case.safetensors")).unwrap()
}

/// The golden clip as the engine takes it: NTCHW [0, 1] → `[B, 3, T, H, W]` in [-1, 1].
fn engine_video(case: &BTreeMap<String, F32Tensor>) -> Tensor<B, 5> {
    tensor::<B, 5>(&case["video"]).swap_dims(1, 2) * 2.0 - 1.0
}

/// Golden latents NTCHW → `[B, 16, T, h, w]`.
fn engine_latents(t: &F32Tensor) -> Tensor<B, 5> {
    tensor::<B, 5>(t).swap_dims(1, 2)
}

/// Engine frames `[B, 3, T, H, W]` in [-1, 1] → NTCHW [0, 1] values.
fn reference_frames(x: Tensor<B, 5>) -> Vec<f32> {
    values((x.swap_dims(1, 2) + 1.0) / 2.0)
}

fn check(model: &Tae<B>, case: &BTreeMap<String, F32Tensor>, enc: &str, dec: &str, what: &str) {
    let z = model
        .encode(engine_video(case), LatentSpace::Normalized)
        .unwrap();
    assert_eq!(z.dims(), [1, 16, 2, 4, 6]);
    let e = rel_err(&values(z.swap_dims(1, 2)), &case[enc].data);
    assert!(e <= 1e-4, "{what}: encode rel err {e:e}");
    let x = model
        .decode(engine_latents(&case["latents"]), LatentSpace::Normalized)
        .unwrap();
    assert_eq!(x.dims(), [1, 3, 9, 32, 48]);
    let e = rel_err(&reference_frames(x), &case[dec].data);
    assert!(e <= 1e-4, "{what}: decode rel err {e:e}");
}

#[test]
fn the_loader_asks_for_the_reference_keys() {
    let mut mine = expected_tensors(&TaeConfig::new(TaeKind::Tae));
    mine.sort();
    assert_eq!(mine, reference_keys());
}

#[test]
fn tae_matches_the_reference() {
    check(&tae(TaeKind::Tae), &case(), "encoded", "decoded", "taew2_1");
}

#[test]
fn light_tae_works_on_raw_latents() {
    let case = case();
    check(
        &tae(TaeKind::LightTae),
        &case,
        "light_encoded",
        "light_decoded",
        "lighttaew2_1",
    );
    // Raw in and out: the affine is the Wan VAE's own.
    let light = tae(TaeKind::LightTae);
    let wan = AutoencoderKLWanConfig::wan2_1();
    let z = engine_latents(&case["latents"]);
    let raw = light.encode(engine_video(&case), LatentSpace::Raw).unwrap();
    let channels = |v: &[f64]| {
        let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
        Tensor::<B, 1>::from_floats(v.as_slice(), &Default::default()).reshape([1, 16, 1, 1, 1])
    };
    let (mean, std) = (channels(&wan.latents_mean), channels(&wan.latents_std));
    let normalised = (raw.clone() - mean.clone()) / std.clone();
    let e = rel_err(
        &values(normalised.swap_dims(1, 2)),
        &case["light_encoded"].data,
    );
    assert!(e <= 1e-4, "raw encode rel err {e:e}");
    let x = light.decode(z * std + mean, LatentSpace::Raw).unwrap();
    let e = rel_err(&reference_frames(x), &case["light_decoded"].data);
    assert!(e <= 1e-4, "raw decode rel err {e:e}");
}

#[test]
fn both_file_kinds_load() {
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("taew2_1.pth");
    let st = dir.path().join("safetensors/taew2_1.safetensors");
    std::fs::create_dir_all(st.parent().unwrap()).unwrap();
    pickle::write(
        &pth,
        &Node::tensors(
            weights()
                .iter()
                .map(|(k, t)| (k.clone(), TensorData::new(t.data.clone(), t.shape.clone()))),
        ),
    )
    .unwrap();
    tensor_file::write(&st, weights()).unwrap();
    let case = case();
    for path in [&pth, &st] {
        let model: Tae<B> = Tae::from_file(
            TaeConfig::new(TaeKind::Tae),
            path,
            &Default::default(),
            DType::F32,
        )
        .unwrap();
        check(
            &model,
            &case,
            "encoded",
            "decoded",
            &path.display().to_string(),
        );
    }
}

#[test]
fn the_preview_keeps_the_last_frames_channels() {
    let preview = TaeConfig {
        decoder_time_upscale: [false, false],
        ..TaeConfig::new(TaeKind::Tae)
    };
    let model: Tae<B> = Tae::load(
        preview,
        checkpoint(weights()),
        &Default::default(),
        DType::F32,
    )
    .unwrap();
    let case = case();
    let x = model
        .decode(engine_latents(&case["latents"]), LatentSpace::Normalized)
        .unwrap();
    assert_eq!(
        x.dims(),
        [1, 3, 3, 32, 48],
        "one frame per latent, none trimmed"
    );
    let e = rel_err(&reference_frames(x), &case["decoded_preview"].data);
    assert!(e <= 1e-4, "preview decode rel err {e:e}");
}

#[test]
fn streaming_equals_one_call() {
    let model = tae(TaeKind::Tae);
    let case = case();
    let video = engine_video(&case);
    let whole = values(
        model
            .encode(video.clone(), LatentSpace::Normalized)
            .unwrap(),
    );
    let mut stream = model.encode_stream();
    let parts: Vec<Tensor<B, 5>> = (0..2)
        .map(|i| {
            model
                .encode_chunk(
                    &mut stream,
                    video.clone().narrow(2, 4 * i, 4),
                    LatentSpace::Normalized,
                )
                .unwrap()
        })
        .collect();
    assert_eq!(stream.frames(), 8);
    let e = rel_err(&values(Tensor::cat(parts, 2)), &whole);
    assert!(e <= 1e-5, "chunked encode rel err {e:e}");

    let z = engine_latents(&case["latents"]);
    let whole = values(model.decode(z.clone(), LatentSpace::Normalized).unwrap());
    for split in [[1, 2], [2, 1]] {
        let mut stream = model.decode_stream();
        let first = model
            .decode_chunk(
                &mut stream,
                z.clone().narrow(2, 0, split[0]),
                LatentSpace::Normalized,
            )
            .unwrap();
        let rest = model
            .decode_chunk(
                &mut stream,
                z.clone().narrow(2, split[0], split[1]),
                LatentSpace::Normalized,
            )
            .unwrap();
        assert_eq!(first.dims()[2], 1 + 4 * (split[0] - 1));
        assert_eq!(rest.dims()[2], 4 * split[1]);
        assert_eq!(stream.latents(), 3);
        let e = rel_err(&values(Tensor::cat(vec![first, rest], 2)), &whole);
        assert!(e <= 1e-5, "chunked decode {split:?} rel err {e:e}");
    }
}

#[test]
fn frame_counts_equal_the_wan_vae() {
    let model = tae(TaeKind::Tae);
    let wan: WanVae<B> = WanVae::from_file(
        AutoencoderKLWanConfig::from_file(&goldens().join("vae_tiny_config.json")).unwrap(),
        &goldens().join("vae_tiny_diffusers_f32.safetensors"),
        &Default::default(),
        DType::F32,
    )
    .unwrap();
    let z = engine_latents(&case()["latents"]);
    let (mut a, mut b) = (model.decode_stream(), wan.decode_stream());
    for i in 0..3 {
        let zi = z.clone().narrow(2, i, 1);
        let t = model
            .decode_chunk(&mut a, zi.clone(), LatentSpace::Normalized)
            .unwrap()
            .dims();
        let w = wan
            .decode_chunk(&mut b, zi, LatentSpace::Normalized)
            .unwrap()
            .dims();
        assert_eq!(t, w, "latent {i}");
    }
}

#[test]
fn bad_shapes_are_refused() {
    let model = tae(TaeKind::Tae);
    let video = |t: usize, h: usize| Tensor::<B, 5>::zeros([1, 3, t, h, 16], &Default::default());
    for (t, h) in [(5, 16), (0, 16), (4, 12)] {
        let e = model.encode(video(t, h), LatentSpace::Normalized);
        if t == 5 {
            // A whole clip is padded to a multiple of 4, as the reference pads it.
            assert_eq!(e.unwrap().dims(), [1, 16, 2, 2, 2]);
            let mut s = model.encode_stream();
            let VaeError::Shape(m) = model
                .encode_chunk(&mut s, video(5, 16), LatentSpace::Normalized)
                .unwrap_err();
            assert!(m.contains("[B, 3, 4k, H, W]"), "{m}");
        } else {
            assert!(e.is_err(), "t {t} h {h}");
        }
    }
    let z = Tensor::<B, 5>::zeros([1, 8, 1, 2, 2], &Default::default());
    let VaeError::Shape(m) = model.decode(z, LatentSpace::Normalized).unwrap_err();
    assert!(m.contains("[B, 16, T, h, w]"), "{m}");
}

fn load_err(w: BTreeMap<String, F32Tensor>) -> LoadError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("taew2_1.safetensors");
    tensor_file::write(&path, &w).unwrap();
    Tae::<B>::from_file(
        TaeConfig::new(TaeKind::Tae),
        &path,
        &Default::default(),
        DType::F32,
    )
    .unwrap_err()
}

#[test]
fn loader_errors_name_the_tensor() {
    let mut missing = weights().clone();
    missing.remove("decoder.9.conv.2.bias");
    let e = load_err(missing).to_string();
    assert!(e.contains("missing tensor decoder.9.conv.2.bias"), "{e}");

    let mut wrong = weights().clone();
    wrong.insert(
        "encoder.3.weight".into(),
        F32Tensor::new(vec![64, 64, 1, 1], vec![0.0; 64 * 64]),
    );
    let e = load_err(wrong).to_string();
    assert!(
        e.contains("encoder.3.weight") && e.contains("[64, 64, 1, 1]"),
        "{e}"
    );

    let mut extra = weights().clone();
    extra.insert(
        "decoder.99.weight".into(),
        F32Tensor::new(vec![1], vec![0.0]),
    );
    let e = load_err(extra).to_string();
    assert!(
        e.contains("unexpected") && e.contains("decoder.99.weight"),
        "{e}"
    );

    let mut other = BTreeMap::new();
    other.insert("conv1.weight".into(), F32Tensor::new(vec![1], vec![0.0]));
    assert!(matches!(load_err(other), LoadError::UnknownLayout { .. }));

    let e = Tae::<B>::from_file(
        TaeConfig::new(TaeKind::Tae),
        Path::new("/nonexistent/taew2_1.pth"),
        &Default::default(),
        DType::F32,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/taew2_1.pth"), "{e}");
}

/// Two different clips in one batch, in one call and streamed: batch and time stay apart.
#[test]
fn a_batch_of_two_streams_matches_the_reference() {
    let model = tae(TaeKind::Tae);
    let case = case();
    let video = tensor::<B, 5>(&case["video2"]).swap_dims(1, 2) * 2.0 - 1.0;
    let z = model.encode(video, LatentSpace::Normalized).unwrap();
    assert_eq!(z.dims(), [2, 16, 2, 2, 3]);
    let e = rel_err(&values(z.swap_dims(1, 2)), &case["encoded2"].data);
    assert!(e <= 1e-4, "batch encode rel err {e:e}");

    let latents = engine_latents(&case["latents2"]);
    let mut stream = model.decode_stream();
    let parts: Vec<Tensor<B, 5>> = [(0, 1), (1, 2)]
        .into_iter()
        .map(|(at, n)| {
            model
                .decode_chunk(
                    &mut stream,
                    latents.clone().narrow(2, at, n),
                    LatentSpace::Normalized,
                )
                .unwrap()
        })
        .collect();
    let x = Tensor::cat(parts, 2);
    assert_eq!(x.dims(), [2, 3, 9, 16, 24]);
    let e = rel_err(&reference_frames(x), &case["decoded2"].data);
    assert!(e <= 1e-4, "batch streamed decode rel err {e:e}");
}
