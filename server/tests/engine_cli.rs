//! `hanzo-live engine …` through the real binary: info, the DiT forward on the diffusers
//! goldens (both layouts, both CPU backends, safetensors and pickles), and its errors.

use engine::tensor_file;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Output},
};

const BIN: &str = env!("CARGO_BIN_EXE_hanzo-live");

fn goldens() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/goldens")
}

fn engine(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("engine")
        .args(args)
        .env_remove("HANZO_LIVE_BACKEND")
        .output()
        .expect("run hanzo-live")
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
        let o = engine(&[
            "--backend",
            backend,
            "forward",
            "--config",
            g.join(config).to_str().unwrap(),
            "--weights",
            g.join(weights).to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
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
        let mut args = extra.to_vec();
        args.extend([
            "forward",
            "--config",
            cfg.to_str().unwrap(),
            "--weights",
            weights.to_str().unwrap(),
            "--inputs",
            inputs.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        engine(&args)
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
    let o = engine(&[
        "--backend",
        "candle",
        "forward",
        "--dtype",
        "bf16",
        "--config",
        cfg.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
        "--inputs",
        case.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(text(&o).contains("candle cannot run bf16"), "{}", text(&o));
}
