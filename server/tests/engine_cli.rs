//! `hanzo-live engine …` through the real binary: info, the DiT forward on the diffusers
//! goldens (both layouts, both CPU backends, safetensors and pickles), and its errors.

use engine::tensor_file;
use std::{
    collections::BTreeMap,
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_hanzo-live");

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/goldens")
}

fn engine<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .arg("engine")
        .args(args)
        .env_remove("HANZO_LIVE_BACKEND")
        .output()
        .expect("run hanzo-live")
}

/// `hanzo-live engine <cmd> --config C --weights W [--inputs I] --out O [extra…]`: the
/// arguments every model command takes.
fn model(
    cmd: &str,
    config: &Path,
    weights: &Path,
    inputs: Option<&Path>,
    out: &Path,
    extra: &[&str],
) -> Output {
    let os = OsStr::new;
    let mut args = vec![os(cmd), os("--config"), config.as_os_str()];
    args.extend([os("--weights"), weights.as_os_str()]);
    if let Some(inputs) = inputs {
        args.extend([os("--inputs"), inputs.as_os_str()]);
    }
    args.extend([os("--out"), out.as_os_str()]);
    args.extend(extra.iter().map(OsStr::new));
    engine(&args)
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn info_lists_every_backend_and_selects_a_cpu_one_here() {
    let o = engine(&["info"]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    for line in [
        "cuda ",
        "metal ",
        "flex     yes       usable",
        "candle   yes       usable",
    ] {
        assert!(t.contains(line), "{line:?} missing in:\n{t}");
    }
    assert!(t.contains("selected: flex (device"), "{t}");
    assert!(t.contains("memory: "), "{t}");
    let o = engine(&["--backend", "candle", "info"]);
    assert!(text(&o).contains("selected: candle"));
    let o = engine(&["--backend", "tpu", "info"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown backend \"tpu\""));
    let o = engine(&["--backend", "cuda", "info"]);
    if !cfg!(feature = "cuda") {
        assert!(
            text(&o).contains("selected: none (backend cuda is not compiled"),
            "{}",
            text(&o)
        );
    }
}

fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    f64::from(diff / b.iter().map(|v| v.abs()).fold(0f32, f32::max))
}

#[test]
fn forward_matches_the_diffusers_goldens_for_every_layout_and_backend() {
    let dir = tempfile::tempdir().unwrap();
    let g = goldens();
    let runs = [
        (
            "flex",
            "dit_tiny_config_original.json",
            "dit_tiny_original_f32.safetensors",
            "t1000",
        ),
        (
            "flex",
            "dit_tiny_config_diffusers.json",
            "dit_tiny_sharded",
            "t0",
        ),
        (
            "candle",
            "dit_tiny_config_original.json",
            "dit_tiny_original_f32.pth",
            "per_frame",
        ),
        (
            "candle",
            "dit_tiny_config_diffusers.json",
            "dit_tiny_diffusers_f32.pth",
            "t1000",
        ),
    ];
    for (i, (backend, config, weights, case)) in runs.iter().enumerate() {
        let inputs = g.join(format!("dit_case_{case}.safetensors"));
        let out = dir.path().join(format!("out{i}.safetensors"));
        let o = model(
            "forward",
            &g.join(config),
            &g.join(weights),
            Some(&inputs),
            &out,
            &["--backend", backend],
        );
        assert!(o.status.success(), "{backend} {weights}: {}", text(&o));
        let got = tensor_file::read(&out).unwrap();
        let want = tensor_file::read(&inputs).unwrap();
        assert_eq!(got["out"].shape, want["out"].shape);
        let err = max_rel(&got["out"].data, &want["out"].data);
        assert!(
            err <= 1e-4,
            "{backend} {weights} {case}: relative error {err:e}"
        );
    }
}

#[test]
fn forward_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let g = goldens();
    let cfg = g.join("dit_tiny_config_original.json");
    let weights = g.join("dit_tiny_original_f32.safetensors");
    let case = g.join("dit_case_t0.safetensors");
    let out = dir.path().join("o.safetensors");
    let run = |extra: &[&str], cfg: &Path, weights: &Path, inputs: &Path| {
        model("forward", cfg, weights, Some(inputs), &out, extra)
    };
    let o = run(&[], &cfg, &dir.path().join("missing.safetensors"), &case);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("cannot read"), "{}", text(&o));

    // Inputs of the wrong shape.
    let mut bad = tensor_file::read(&case).unwrap();
    bad.get_mut("t").unwrap().shape = vec![1, 2];
    let bad_path = dir.path().join("bad.safetensors");
    tensor_file::write(&bad_path, &bad).unwrap();
    let o = run(&[], &cfg, &weights, &bad_path);
    assert!(
        text(&o).contains("t must be [2] or [2, 3], got [1, 2]"),
        "{}",
        text(&o)
    );
    let mut no_ctx: BTreeMap<_, _> = tensor_file::read(&case).unwrap();
    no_ctx.remove("context");
    tensor_file::write(&bad_path, &no_ctx).unwrap();
    let o = run(&[], &cfg, &weights, &bad_path);
    assert!(text(&o).contains("no tensor `context`"), "{}", text(&o));

    // The key layout is detected from the keys, whatever the config's layout.
    let o = run(
        &[],
        &cfg,
        &g.join("dit_tiny_diffusers_f32.safetensors"),
        &case,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["--backend", "candle"], &cfg, &weights, &case);
    assert!(o.status.success());
    let o = run(
        &["--backend", "candle", "--dtype", "bf16"],
        &cfg,
        &weights,
        &case,
    );
    assert!(text(&o).contains("candle cannot run bf16"), "{}", text(&o));
}

#[test]
fn vae_encode_and_decode_match_the_goldens_streamed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let g = goldens();
    let case = tensor_file::read(&g.join("vae_case.safetensors")).unwrap();
    let cfg = g.join("vae_tiny_config.json");
    let inputs = g.join("vae_case.safetensors");
    for (weights, stream) in [
        ("vae_tiny_diffusers_f32.safetensors", false),
        ("vae_tiny_original_f32.pth", true),
    ] {
        let w = g.join(weights);
        let enc = dir.path().join(format!("enc-{stream}.safetensors"));
        let stream_flag: &[&str] = if stream { &["--stream"] } else { &[] };
        let o = model("vae-encode", &cfg, &w, Some(&inputs), &enc, stream_flag);
        assert!(o.status.success(), "{}", text(&o));
        let out = tensor_file::read(&enc).unwrap();
        for (got, want) in [("mu", "mu"), ("latents", "latents")] {
            let e = max_rel(&out[got].data, &case[want].data);
            assert!(e <= 1e-4, "{weights} {got}: {e:e}");
        }
        // Decode what was just encoded: normalised `latents`, and with --raw the raw `mu`.
        for raw in [false, true] {
            let dec = dir.path().join(format!("dec-{stream}-{raw}.safetensors"));
            let mut extra = stream_flag.to_vec();
            if raw {
                extra.push("--raw");
            }
            let o = model("vae-decode", &cfg, &w, Some(&enc), &dec, &extra);
            assert!(o.status.success(), "{}", text(&o));
            let video = &tensor_file::read(&dec).unwrap()["video"];
            assert_eq!(video.shape, [1, 3, 9, 32, 48]);
            let e = max_rel(&video.data, &case["decoded_from_mu"].data);
            assert!(e <= 1e-4, "{weights} raw={raw}: {e:e}");
        }
    }
    // 8 frames cannot be encoded (1 + 4k), and the error says so.
    let bad = dir.path().join("bad.safetensors");
    let mut t = BTreeMap::new();
    t.insert(
        "video".to_owned(),
        tensor_file::F32Tensor::new(vec![1, 3, 8, 32, 48], vec![0.0; 3 * 8 * 32 * 48]),
    );
    tensor_file::write(&bad, &t).unwrap();
    let w = g.join("vae_tiny_diffusers_f32.safetensors");
    let o = model(
        "vae-encode",
        &cfg,
        &w,
        Some(&bad),
        &dir.path().join("x.safetensors"),
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("1 + 4k frames"), "{}", text(&o));
}

#[test]
fn encode_text_matches_the_goldens_from_ids_and_from_prompts() {
    let dir = tempfile::tempdir().unwrap();
    let g = goldens();
    let cfg = g.join("umt5_tiny_config.json");
    let case = tensor_file::read(&g.join("umt5_case.safetensors")).unwrap();
    for weights in [
        "umt5_tiny_transformers_f32.safetensors",
        "umt5_tiny_original_bf16.pth",
        "umt5_tiny_fp8_e4m3fn.safetensors",
    ] {
        let out = dir.path().join(format!("{weights}.out.safetensors"));
        let o = model(
            "encode-text",
            &cfg,
            &g.join(weights),
            Some(&g.join("umt5_case.safetensors")),
            &out,
            &[],
        );
        assert!(o.status.success(), "{}", text(&o));
        let got = tensor_file::read(&out).unwrap();
        assert_eq!(got["context"].shape, [2, 512, 32]);
        if weights.contains("fp8") {
            // fp8 weights are a different (quantised) model: finite, same shapes.
            assert!(got["hidden"].data.iter().all(|v| v.is_finite()));
            continue;
        }
        let e = max_rel(&got["hidden"].data, &case["hidden"].data);
        assert!(e <= 1e-4, "{weights}: {e:e}");
        // The context: the golden rows, then zeros to 512.
        for row in 0..2 {
            let c = &got["context"].data[row * 512 * 32..(row + 1) * 512 * 32];
            let want = &case["context"].data[row * 16 * 32..(row + 1) * 16 * 32];
            assert!(max_rel(&c[..16 * 32], want) <= 1e-4);
            assert!(c[16 * 32..].iter().all(|v| *v == 0.0));
        }
    }
    // From prompts, with the tokenizer directory: two prompts, padded to the longer.
    let out = dir.path().join("prompt.safetensors");
    let f32_weights = g.join("umt5_tiny_transformers_f32.safetensors");
    let tokenizer = g.join("tokenizer");
    let o = model(
        "encode-text",
        &cfg,
        &f32_weights,
        None,
        &out,
        &[
            "--tokenizer",
            tokenizer.to_str().unwrap(),
            "--prompt",
            "A red fox &amp; a   hare in the snow",
            "--prompt",
            "rain",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let got = tensor_file::read(&out).unwrap();
    let [b, l] = got["mask"].shape[..] else {
        panic!("mask shape {:?}", got["mask"].shape)
    };
    assert_eq!(b, 2);
    let len1 = got["mask"].data[l..].iter().filter(|m| **m == 1.0).count();
    assert!(len1 < l, "the shorter prompt is padded");
    let ctx = &got["context"].data[512 * 32..];
    assert!(ctx[len1 * 32..].iter().all(|v| *v == 0.0));
    assert!(ctx[..len1 * 32].iter().any(|v| *v != 0.0));

    // Errors: no tokenizer, ids outside the vocabulary, both sources at once.
    let o = model(
        "encode-text",
        &cfg,
        &f32_weights,
        None,
        &out,
        &["--prompt", "x"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("--tokenizer"), "{}", text(&o));
    let ids = dir.path().join("ids.safetensors");
    let mut t = BTreeMap::new();
    t.insert(
        "input_ids".to_owned(),
        tensor_file::F32Tensor::new(vec![1, 2], vec![5.0, 5000.0]),
    );
    tensor_file::write(&ids, &t).unwrap();
    let o = model("encode-text", &cfg, &f32_weights, Some(&ids), &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("outside the vocabulary"), "{}", text(&o));
    let o = model(
        "encode-text",
        &cfg,
        &f32_weights,
        Some(&ids),
        &out,
        &["--prompt", "x", "--tokenizer", tokenizer.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("not both"), "{}", text(&o));
}

#[test]
fn info_says_where_the_text_encoder_runs() {
    let o = engine(&["info"]);
    assert!(
        text(&o).contains("text encoder: UMT5-XXL on flex in BF16"),
        "{}",
        text(&o)
    );
    let o = engine(&["--text-encoder-device", "cpu", "info"]);
    assert!(
        text(&o).contains("--text-encoder-device cpu"),
        "{}",
        text(&o)
    );
    let o = engine(&["--text-encoder-device", "tpu", "info"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown text encoder device"));
}

/// The relative error `bench-vae --check-cpu` prints.
fn check_error(out: &str) -> f64 {
    out.lines()
        .find_map(|l| l.split("max |Δ| / max |flex| = ").nth(1))
        .unwrap_or_else(|| panic!("no check line in {out}"))
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn bench_gives_each_rows_rate_against_a_measured_peak() {
    // The tiny DiT on one 32×32 latent frame (256 tokens): a GEMM sets the peak, the attention, linear and
    // model rows give their TFLOP/s and share of it, the others none; the JSON has the same.
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = engine(&[
        OsStr::new("--backend"),
        OsStr::new("flex"),
        OsStr::new("bench"),
        OsStr::new("--model"),
        OsStr::new("tiny"),
        OsStr::new("--frames"),
        OsStr::new("1"),
        OsStr::new("--height"),
        OsStr::new("256"),
        OsStr::new("--width"),
        OsStr::new("256"),
        OsStr::new("--iters"),
        OsStr::new("1"),
        OsStr::new("--json"),
        json.as_os_str(),
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("| op | flex F32 ms | TFLOP/s | of peak |"),
        "{out}"
    );
    let row = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("| {prefix}")))
            .unwrap_or_else(|| panic!("no row {prefix} in {out}"))
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect::<Vec<_>>()
    };
    // | op | ms | TFLOP/s | of peak | → ["", op, ms, rate, share, ""]
    let peak = row("peak: GEMM 1024×1024×1024");
    assert_eq!(peak[4], "100 %", "{peak:?}");
    for rated in [
        "linear [256,24]→32 burn matmul",
        "attention Naive",
        "full forward (2 layers)",
    ] {
        let r = row(rated);
        let rate: f64 = r[3].parse().unwrap_or_else(|_| panic!("{r:?}"));
        assert!(rate > 0.0 && r[4].ends_with(" %"), "{r:?}");
    }
    let norm = row("RMSNorm [1,256,24]");
    assert!(norm[3].is_empty() && norm[4].is_empty(), "{norm:?}");

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v["peak_tflops"].as_f64().unwrap() > 0.0, "{v}");
    assert_eq!(v["tokens"], 256);
    let rows = v["rows"].as_array().unwrap();
    let linear = rows
        .iter()
        .find(|r| r["op"] == "linear [256,24]→32 burn matmul")
        .unwrap();
    assert!(linear["tflops"].as_f64().unwrap() > 0.0 && linear["of_peak"].as_f64().is_some());
}

#[test]
fn bench_vae_times_the_chosen_rows_and_checks_against_flex() {
    // Wan2.1's full VAE (made-up weights) on a 16×16 frame: candle timed, then the same
    // first-latent decode on flex for the check.
    let o = engine(&[
        "--backend",
        "candle",
        "bench-vae",
        "--height",
        "16",
        "--width",
        "16",
        "--iters",
        "1",
        "--rows",
        "first",
        "--check-cpu",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("| decode first latent frame → 1 frame 16×16 |"),
        "{out}"
    );
    assert!(!out.contains("encode next"), "{out}");
    let err = check_error(&out);
    assert!(err < 1e-4, "candle vs flex: {err}");

    let o = engine(&["bench-vae", "--rows", "first,sideways"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[test]
fn vae_commands_take_every_autoencoder() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let o = engine(&[
        OsStr::new("make-tiny"),
        OsStr::new("self-forcing"),
        OsStr::new("--out"),
        models.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let inputs = goldens().join("vae_case.safetensors");
    let run = |cmd: &str, vae: &str, file: &str, stream: bool, out: &Path| {
        let w = models.join(file);
        let os = OsStr::new;
        let mut args = vec![
            os(cmd),
            os("--vae"),
            os(vae),
            os("--weights"),
            w.as_os_str(),
        ];
        args.extend([
            os("--inputs"),
            inputs.as_os_str(),
            os("--out"),
            out.as_os_str(),
        ]);
        if stream {
            args.push(os("--stream"));
        }
        let o = engine(&args);
        assert!(o.status.success(), "{cmd} {vae}: {}", text(&o));
        tensor_file::read(out).unwrap()
    };
    for (vae, file) in [
        ("lightvae", "Autoencoders/lightvaew2_1.pth"),
        ("tae", "Autoencoders/taew2_1.pth"),
        ("lighttae", "Autoencoders/lighttaew2_1.pth"),
    ] {
        // Streamed chunk by chunk (1 frame, then 4; one latent at a time) or in one call:
        // the same result, with the Wan VAE's frame counts.
        let mut encoded = Vec::new();
        let mut decoded = Vec::new();
        for stream in [false, true] {
            let e = dir.path().join(format!("e-{vae}-{stream}.safetensors"));
            let out = run("vae-encode", vae, file, stream, &e);
            assert_eq!(out["latents"].shape, [1, 16, 3, 4, 6], "{vae}");
            encoded.push(out["latents"].data.clone());
            let d = dir.path().join(format!("d-{vae}-{stream}.safetensors"));
            let out = run("vae-decode", vae, file, stream, &d);
            assert_eq!(out["video"].shape, [1, 3, 9, 32, 48], "{vae}");
            decoded.push(out["video"].data.clone());
        }
        assert!(max_rel(&encoded[1], &encoded[0]) <= 1e-5, "{vae} encode");
        assert!(max_rel(&decoded[1], &decoded[0]) <= 1e-5, "{vae} decode");
    }

    let o = engine(&[
        "vae-decode",
        "--vae",
        "tiny",
        "--weights",
        "x",
        "--inputs",
        "y",
        "--out",
        "z",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("wan, lightvae, tae, lighttae"),
        "{}",
        text(&o)
    );
    let cfg = goldens().join("vae_tiny_config.json");
    let o = model(
        "vae-decode",
        &cfg,
        &models.join("Autoencoders/taew2_1.pth"),
        Some(&inputs),
        &dir.path().join("x.safetensors"),
        &["--vae", "tae"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("--config is for the wan and lightvae"),
        "{}",
        text(&o)
    );

    // bench-vae on TAEHV: one call decodes a 3-latent chunk; candle agrees with flex.
    let o = engine(&[
        "--backend",
        "candle",
        "bench-vae",
        "--vae",
        "tae",
        "--height",
        "16",
        "--width",
        "16",
        "--iters",
        "1",
        "--rows",
        "first,chunk,encode",
        "--check-cpu",
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("bench-vae tae"), "{out}");
    assert!(
        out.contains("| decode next 3 latent frames → 12 frames 16×16 |"),
        "{out}"
    );
    let err = check_error(&out);
    assert!(err < 1e-4, "candle vs flex: {err}");
}
