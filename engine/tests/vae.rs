//! The Wan VAE against diffusers `AutoencoderKLWan` goldens (made by
//! `engine/scripts/gen_vae_t5_goldens.py`: base_dim 8, a 9-frame 32×48 clip), in both key
//! layouts and every file kind; streaming (chunk by chunk, across calls) against the full
//! pass; the loader's and the API's error cases.
//!
//! Relative error here is `max|a − b| / max|b|`. Tolerances: ≤ 1e-4 against diffusers,
//! ≤ 1e-5 streaming against full.

mod common;
use burn::tensor::{DType, Tensor, backend::Backend};
use common::{formula_weights, goldens, rel_err, tensor, values};
use engine::{
    tensor_file::{self, F32Tensor},
    wan::{
        LoadError,
        vae::{AutoencoderKLWanConfig, LatentSpace, VaeError, WanVae},
        weights::pickle::{self, Node},
    },
};
use std::{collections::BTreeMap, path::Path};

type B = burn::backend::Flex;

fn config() -> AutoencoderKLWanConfig {
    AutoencoderKLWanConfig::from_file(&goldens().join("vae_tiny_config.json")).unwrap()
}

fn vae<Bk: Backend>(weights: &str) -> WanVae<Bk> {
    WanVae::from_file(
        config(),
        &goldens().join(weights),
        &Default::default(),
        DType::F32,
    )
    .unwrap()
}

fn case() -> BTreeMap<String, F32Tensor> {
    tensor_file::read(&goldens().join("vae_case.safetensors")).unwrap()
}

fn check_against_diffusers<Bk: Backend>(weights: &str) {
    let case = case();
    let vae = vae::<Bk>(weights);
    let video = tensor::<Bk, 5>(&case["video"]);

    let mu = vae.encode(video.clone(), LatentSpace::Raw).unwrap();
    assert_eq!(mu.dims(), [1, 16, 3, 4, 6]);
    let e = rel_err(&values(mu), &case["mu"].data);
    assert!(e <= 1e-4, "{weights}: encode μ rel err {e:e}");
    let latents = vae.encode(video, LatentSpace::Normalized).unwrap();
    let e = rel_err(&values(latents), &case["latents"].data);
    assert!(e <= 1e-4, "{weights}: normalised latents rel err {e:e}");

    let decoded = vae
        .decode(tensor(&case["latents_in"]), LatentSpace::Normalized)
        .unwrap();
    assert_eq!(decoded.dims(), [1, 3, 9, 32, 48]);
    let e = rel_err(&values(decoded), &case["decoded"].data);
    assert!(e <= 1e-4, "{weights}: decode rel err {e:e}");
    let decoded = vae.decode(tensor(&case["mu"]), LatentSpace::Raw).unwrap();
    let e = rel_err(&values(decoded), &case["decoded_from_mu"].data);
    assert!(e <= 1e-4, "{weights}: decode of raw μ rel err {e:e}");
}

#[test]
fn diffusers_layout_matches_diffusers() {
    check_against_diffusers::<B>("vae_tiny_diffusers_f32.safetensors");
}

#[test]
fn original_layout_pickle_matches_diffusers() {
    check_against_diffusers::<B>("vae_tiny_original_f32.pth");
}

#[test]
fn original_layout_bf16_file_matches_diffusers() {
    // The golden weights are bf16-representable, so the bf16 file holds the same values.
    check_against_diffusers::<B>("vae_tiny_original_bf16.safetensors");
}

#[test]
#[allow(deprecated)] // burn-candle is deprecated upstream; it stays a supported CPU backend here.
fn candle_backend_matches_diffusers() {
    check_against_diffusers::<burn::backend::Candle>("vae_tiny_diffusers_f32.safetensors");
}

#[test]
fn streaming_encode_equals_the_full_pass() {
    let case = case();
    let vae = vae::<B>("vae_tiny_diffusers_f32.safetensors");
    let video = tensor::<B, 5>(&case["video"]);
    let full = values(vae.encode(video.clone(), LatentSpace::Raw).unwrap());
    // 1, 4, 4 frames (one latent per call), and 1+4, 4 (what StreamDiffusionV2 feeds).
    for split in [&[1usize, 4, 4][..], &[5, 4], &[1, 8]] {
        let mut stream = vae.encode_stream();
        let mut outs = Vec::new();
        let mut at = 0;
        for n in split {
            outs.push(
                vae.encode_chunk(
                    &mut stream,
                    video.clone().narrow(2, at, *n),
                    LatentSpace::Raw,
                )
                .unwrap(),
            );
            at += n;
        }
        assert_eq!(stream.frames(), 9);
        let e = rel_err(&values(Tensor::cat(outs, 2)), &full);
        assert!(e <= 1e-5, "split {split:?}: rel err {e:e}");
    }
}

#[test]
fn streaming_decode_equals_the_full_pass() {
    let case = case();
    let vae = vae::<B>("vae_tiny_diffusers_f32.safetensors");
    let z = tensor::<B, 5>(&case["latents_in"]);
    let full = values(vae.decode(z.clone(), LatentSpace::Normalized).unwrap());
    let mut stream = vae.decode_stream();
    let mut frames = Vec::new();
    let mut outs = Vec::new();
    for i in 0..3 {
        let out = vae
            .decode_chunk(
                &mut stream,
                z.clone().narrow(2, i, 1),
                LatentSpace::Normalized,
            )
            .unwrap();
        frames.push(out.dims()[2]);
        outs.push(out);
    }
    // The first latent frame gives 1 pixel frame, every later one 4.
    assert_eq!(frames, [1, 4, 4]);
    assert_eq!(stream.latents(), 3);
    let e = rel_err(&values(Tensor::cat(outs, 2)), &full);
    assert!(e <= 1e-5, "rel err {e:e}");
}

#[test]
fn encode_then_decode_keeps_the_shape_and_range() {
    let case = case();
    let vae = vae::<B>("vae_tiny_diffusers_f32.safetensors");
    let z = vae
        .encode(tensor(&case["video"]), LatentSpace::Normalized)
        .unwrap();
    let out = values(vae.decode(z, LatentSpace::Normalized).unwrap());
    assert_eq!(out.len(), 3 * 9 * 32 * 48);
    assert!(
        out.iter()
            .all(|v| v.is_finite() && (-1.0..=1.0).contains(v))
    );
}

#[test]
fn bad_shapes_and_chunk_sizes_are_refused() {
    let vae = vae::<B>("vae_tiny_diffusers_f32.safetensors");
    let dev = Default::default();
    let video = |t: usize, h: usize, w: usize| Tensor::<B, 5>::zeros([1, 3, t, h, w], &dev);
    let shape_err = |r: Result<Tensor<B, 5>, VaeError>| match r {
        Err(VaeError::Shape(m)) => m,
        Ok(t) => panic!("accepted {:?}", t.dims()),
    };
    // 4 frames cannot start a stream; 12 is not 1 + 4k; H not a multiple of 8.
    for (t, h, w) in [(4, 16, 16), (12, 16, 16), (5, 20, 16), (0, 16, 16)] {
        let m = shape_err(vae.encode(video(t, h, w), LatentSpace::Raw));
        assert!(m.contains("frames") || m.contains("multiples"), "{m}");
    }
    let m = shape_err(vae.encode(
        Tensor::<B, 5>::zeros([1, 4, 5, 16, 16], &dev),
        LatentSpace::Raw,
    ));
    assert!(m.contains("[B, 3, T, H, W]"), "{m}");
    // After the first chunk, a chunk must be a multiple of 4 frames.
    let mut stream = vae.encode_stream();
    vae.encode_chunk(&mut stream, video(1, 16, 16), LatentSpace::Raw)
        .unwrap();
    let m = shape_err(vae.encode_chunk(&mut stream, video(1, 16, 16), LatentSpace::Raw));
    assert!(m.contains("later chunks"), "{m}");
    let m = shape_err(vae.decode(
        Tensor::<B, 5>::zeros([1, 8, 1, 2, 2], &dev),
        LatentSpace::Raw,
    ));
    assert!(m.contains("[B, 16, T, h, w]"), "{m}");
}

fn load_err(tensors: BTreeMap<String, F32Tensor>) -> LoadError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vae.safetensors");
    tensor_file::write(&path, &tensors).unwrap();
    WanVae::<B>::from_file(config(), &path, &Default::default(), DType::F32).unwrap_err()
}

#[test]
fn loader_errors_name_the_tensor() {
    let good = tensor_file::read(&goldens().join("vae_tiny_diffusers_f32.safetensors")).unwrap();

    let mut missing = good.clone();
    missing.remove("decoder.up_blocks.1.resnets.0.conv_shortcut.weight");
    let e = load_err(missing).to_string();
    assert!(
        e.contains("missing tensor decoder.upsamples.4.shortcut.weight"),
        "{e}"
    );

    let mut wrong = good.clone();
    wrong.insert(
        "encoder.conv_in.bias".into(),
        F32Tensor::new(vec![7], vec![0.0; 7]),
    );
    let e = load_err(wrong).to_string();
    assert!(e.contains("encoder.conv1.bias") && e.contains("[7]"), "{e}");

    let mut extra = good.clone();
    extra.insert(
        "encoder.extra.weight".into(),
        F32Tensor::new(vec![1], vec![0.0]),
    );
    let e = load_err(extra).to_string();
    assert!(
        e.contains("unexpected") && e.contains("encoder.extra.weight"),
        "{e}"
    );

    let mut unknown = BTreeMap::new();
    unknown.insert(
        "something.weight".into(),
        F32Tensor::new(vec![1], vec![0.0]),
    );
    assert!(matches!(load_err(unknown), LoadError::UnknownLayout { .. }));

    let e = WanVae::<B>::from_file(
        config(),
        Path::new("/nonexistent/Wan2.1_VAE.pth"),
        &Default::default(),
        DType::F32,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/nonexistent/Wan2.1_VAE.pth"), "{e}");

    // The Wan2.1 default config does not fit the tiny weights: a shape error, not a panic.
    let e = WanVae::<B>::from_file(
        AutoencoderKLWanConfig::wan2_1(),
        &goldens().join("vae_tiny_diffusers_f32.safetensors"),
        &Default::default(),
        DType::F32,
    )
    .unwrap_err();
    assert!(matches!(e, LoadError::Shape { .. }), "{e}");
}

/// LightVAE (`lightvaew2_1`): the Wan VAE at a quarter of its width, against the original Wan
/// definition at dim 24 (DiffSynth's `VideoVAE_`; goldens from
/// `engine/scripts/gen_light_vae_goldens.py`, formula weights), read from a `.pth` under the
/// original keys with the width told by the checkpoint itself.
#[test]
fn light_vae_matches_the_pruned_reference() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lightvaew2_1.pth");
    let w = formula_weights("lightvae_keys.json");
    pickle::write(
        &path,
        &Node::tensors(
            w.into_iter()
                .map(|(k, t)| (k, burn::tensor::TensorData::new(t.data, t.shape))),
        ),
    )
    .unwrap();
    let ck = WanVae::<B>::open(&path, 2).unwrap();
    let config = AutoencoderKLWanConfig::infer(&ck);
    assert_eq!(config, AutoencoderKLWanConfig::light_vae());
    // Chosen as the full Wan VAE, the file is refused with what it is.
    let e = engine::wan::video_vae::VideoVae::<B>::from_file(
        engine::wan::video_vae::VaeType::Wan,
        &path,
        &Default::default(),
        DType::F32,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("LightVAE (width 24): choose lightvae"), "{e}");
    let vae = WanVae::<B>::load(config, ck, &Default::default(), DType::F32).unwrap();
    let case = tensor_file::read(&goldens().join("lightvae_case.safetensors")).unwrap();
    let latents = vae
        .encode(tensor(&case["video"]), LatentSpace::Normalized)
        .unwrap();
    let e = rel_err(&values(latents), &case["latents"].data);
    assert!(e <= 1e-4, "lightvae encode rel err {e:e}");
    let decoded = vae
        .decode(tensor(&case["latents_in"]), LatentSpace::Normalized)
        .unwrap();
    assert_eq!(decoded.dims(), [1, 3, 9, 32, 48]);
    let e = rel_err(&values(decoded), &case["decoded"].data);
    assert!(e <= 1e-4, "lightvae decode rel err {e:e}");
}
