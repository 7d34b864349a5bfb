//! `hanzo-live engine make-tiny` and `engine generate` through the real binary: a tiny model
//! set in the real layout, each pipeline's output, noise replay, seeds and prompts, `.mp4`
//! in and out, and the errors.

use engine::tensor_file::{self, F32Tensor};
use std::{
    ffi::OsStr,
    path::Path,
    process::{Command, Output},
    sync::OnceLock,
};

const BIN: &str = env!("CARGO_BIN_EXE_hanzo-live");

fn engine<S: AsRef<OsStr>>(args: &[S]) -> Output {
    Command::new(BIN)
        .arg("engine")
        .args(args)
        .env_remove("HANZO_LIVE_BACKEND")
        .env_remove("HANZO_LIVE_MODELS_DIR")
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

/// One tiny model set for every test, made by `make-tiny all`.
fn models() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let o = engine(&[
            OsStr::new("make-tiny"),
            OsStr::new("all"),
            OsStr::new("--out"),
            dir.path().as_os_str(),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        dir
    })
    .path()
}

/// `engine generate --models-dir <tiny> --height 32 --width 32 --out OUT <args…>`.
fn generate(out: &Path, args: &[&str]) -> Output {
    let mut a: Vec<&OsStr> = vec![
        OsStr::new("generate"),
        OsStr::new("--models-dir"),
        models().as_os_str(),
        OsStr::new("--height"),
        OsStr::new("32"),
        OsStr::new("--width"),
        OsStr::new("32"),
        OsStr::new("--out"),
        out.as_os_str(),
    ];
    a.extend(args.iter().map(OsStr::new));
    engine(&a)
}

fn video(path: &Path) -> F32Tensor {
    tensor_file::read(path).unwrap().remove("video").unwrap()
}

#[test]
fn make_tiny_writes_the_published_layout() {
    let dir = models();
    for f in [
        "Wan2.1-T2V-1.3B/config.json",
        "Wan2.1-T2V-1.3B/Wan2.1_VAE.pth",
        "Wan2.1-T2V-1.3B/google/umt5-xxl/tokenizer.json",
        "Wan2.1-T2V-1.3B/models_t5_umt5-xxl-enc-bf16.pth",
        "Self-Forcing/checkpoints/self_forcing_dmd.pt",
        "LongLive-1.3B/models/longlive_base.pt",
        "LongLive-1.3B/models/lora.pt",
        "StreamDiffusionV2/wan_causal_dmd_v2v/model.pt",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let o = engine(&["make-tiny", "wan2.2", "--out", "/tmp/x"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("unknown pipeline \"wan2.2\""),
        "{}",
        text(&o)
    );
}

#[test]
fn text_to_video_runs_replays_its_noise_and_follows_seed_and_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let noise = p("noise.safetensors");
    let o = generate(
        &p("a.safetensors"),
        &[
            "--pipeline",
            "self-forcing",
            "--prompt",
            "a red fox",
            "--chunks",
            "2",
            "--dump-noise",
            noise.to_str().unwrap(),
        ],
    );
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("chunk 0: 9 frames") && t.contains("chunk 1: 12 frames"),
        "{t}"
    );
    assert!(
        t.contains("21 frames in") && t.contains("FPS; first frame after"),
        "{t}"
    );
    let a = tensor_file::read(&p("a.safetensors")).unwrap();
    assert_eq!(a["video"].shape, [1, 3, 21, 32, 32]);
    assert_eq!(a["latents"].shape, [1, 16, 6, 4, 4]);
    assert!(a["video"].data.iter().all(|x| (-1.0..=1.0).contains(x)));
    // 2 chunks × 4 steps = 8 draws.
    let draws = tensor_file::read(&noise).unwrap();
    assert_eq!(draws.len(), 8);
    assert_eq!(draws["noise_7"].shape, [1, 16, 3, 4, 4]);

    // Replaying the noise under another seed gives the same frames, bit for bit.
    let o = generate(
        &p("b.safetensors"),
        &[
            "--pipeline",
            "self-forcing",
            "--prompt",
            "a red fox",
            "--chunks",
            "2",
            "--seed",
            "7",
            "--noise",
            noise.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(video(&p("b.safetensors")).data, a["video"].data);
    // The same seed again: the same frames; another seed or prompt: others.
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec!["--pipeline", "self-forcing", "--chunks", "2"];
        args.extend_from_slice(extra);
        let o = generate(&p(name), &args);
        assert!(o.status.success(), "{}", text(&o));
        video(&p(name)).data
    };
    assert_eq!(
        run("c.safetensors", &["--prompt", "a red fox"]),
        a["video"].data
    );
    assert_ne!(
        run("d.safetensors", &["--prompt", "a red fox", "--seed", "3"]),
        a["video"].data
    );
    assert_ne!(
        run("e.safetensors", &["--prompt", "a blue bird"]),
        a["video"].data
    );
    // A short noise file is an error naming what ran out.
    let o = generate(
        &p("f.safetensors"),
        &[
            "--pipeline",
            "self-forcing",
            "--chunks",
            "3",
            "--noise",
            noise.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o).contains("the noise file has no more draws (it holds 8"),
        "{}",
        text(&o)
    );
}

#[test]
fn longlive_switches_prompts_and_writes_an_mp4() {
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("ll.mp4");
    let o = generate(
        &mp4,
        &[
            "--pipeline",
            "longlive",
            "--prompt",
            "a panda",
            "--switch",
            "2:a red fox",
            "--chunks",
            "3",
            "--steps",
            "1000,500",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let bytes = std::fs::read(&mp4).unwrap();
    assert_eq!(&bytes[4..8], b"ftyp");
    // The mp4 feeds video → video, which lags the stream batch's 1 extra step.
    let v2v = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "--pipeline",
            "streamdiffusionv2",
            "--input",
            mp4.to_str().unwrap(),
            "--prompt",
            "a dog",
            "--chunks",
            "5",
        ];
        args.extend_from_slice(extra);
        generate(out, &args)
    };
    let out = dir.path().join("v2v.safetensors");
    let o = v2v(&out, &[]);
    let t = text(&o);
    assert!(o.status.success(), "{t}");
    assert!(
        t.contains("chunk 0: 5 frames")
            && t.contains("chunk 1: 0 frames")
            && t.contains("chunk 2: 4 frames"),
        "{t}"
    );
    assert_eq!(video(&out).shape, [1, 3, 17, 32, 32]);
    // The studio's way in and out (bytes uploaded per chunk, each piece read back as bytes)
    // changes nothing for a clip that already is bytes.
    let studio = dir.path().join("v2v-studio.safetensors");
    let o = v2v(&studio, &["--studio-io"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(video(&studio).data, video(&out).data);
}

#[test]
fn a_transition_moves_between_prompts_over_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    let run = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "--pipeline",
            "self-forcing",
            "--prompt",
            "a panda",
            "--chunks",
            "4",
            "--steps",
            "1000,500",
        ];
        args.extend_from_slice(extra);
        let o = generate(&p(name), &args);
        assert!(o.status.success(), "{}", text(&o));
        video(&p(name)).data
    };
    let plain = run("plain.safetensors", &[]);
    let smooth = run("smooth.safetensors", &["--transition", "1:3:a red fox"]);
    let jump = run("jump.safetensors", &["--switch", "1:a red fox"]);
    // Chunk 0 (the first 9 of 45 frames, in each of the 3 channel planes) is the same;
    // afterwards all three differ.
    let plane = 45 * 32 * 32;
    for c in 0..3 {
        let chunk0 = c * plane..c * plane + 9 * 32 * 32;
        assert_eq!(plain[chunk0.clone()], smooth[chunk0]);
    }
    assert_ne!(plain, smooth);
    assert_ne!(smooth, jump);
}

#[test]
fn generate_explains_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.safetensors");
    let cases: [(&[&str], &str); 5] = [
        (&["--pipeline", "sora"], "unknown pipeline \"sora\""),
        (
            &["--pipeline", "streamdiffusionv2"],
            "streamdiffusionv2 needs --input",
        ),
        (
            &["--pipeline", "self-forcing", "--set", "noise_scale=0.5"],
            "self-forcing has no parameter \"noise_scale\"",
        ),
        (
            &["--pipeline", "longlive", "--steps", "500,900"],
            "step 2 (900) must be lower than step 1 (500)",
        ),
        (
            &["--pipeline", "self-forcing", "--set", "local_attn_size=4"],
            "must hold the sink (3) and a chunk (3)",
        ),
    ];
    for (args, want) in cases {
        let o = generate(&out, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(text(&o).contains(want), "{args:?}: {}", text(&o));
    }
    let o = engine(&[
        "generate",
        "--pipeline",
        "longlive",
        "--models-dir",
        "/nonexistent",
        "--out",
        "/tmp/x.safetensors",
    ]);
    assert!(
        text(&o).contains("missing model files under /nonexistent"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("/nonexistent/LongLive-1.3B/models/lora.pt"),
        "{}",
        text(&o)
    );
}
