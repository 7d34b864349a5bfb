//! The Wan pipelines on tiny checkpoints (written in the real layouts by `make-tiny`),
//! checked against independent, straightforward implementations written here:
//! - Self-Forcing / LongLive: every chunk recomputed from scratch with one full forward over
//!   all frames so far and the block-causal (window + sink) mask — no cache;
//! - LongLive's prompt switch: a per-frame K/V store that follows its re-cache literally;
//! - StreamDiffusionV2: every step of every chunk recomputed with a mask over
//!   `[first chunk at its last step, earlier chunks at this step, this chunk]`;
//! - the stream batch against the sequential schedule, and a stream past the RoPE table.

mod common;

use burn::tensor::{Bool, DType, Tensor, TensorData};
use common::{rel_err, values};
use engine::{
    backend::{BackendKind, TextEncoderDevice},
    pipeline::{
        LoadedPipeline,
        params::{self, Params},
        wan::{
            LoadedWan, WanPipeline, WanStream,
            load::{LoadContext, WanLoadError, Weights},
            noise::{ChunkRng, Noise},
            sdv2::{Sdv2Stream, first_step},
            t2v::{self, T2vStream},
            tiny,
        },
    },
    scheduler::FlowMatchSchedule,
    wan::{
        Timesteps, WanModel,
        cache::{Attend, CrossCache, KvCache},
        sampling::{add_noise, x0_from_v},
    },
};
use serde_json::{Value, json};
use std::{collections::BTreeMap, path::Path};

type B = burn::backend::Flex;

fn models_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model_set(dir.path(), &WanPipeline::ALL, 1, BackendKind::Flex).unwrap();
    dir
}

fn load(dir: &Path, p: WanPipeline, params: Value) -> LoadedWan<B> {
    let ctx = LoadContext {
        weights: Weights::Files(dir.to_owned()),
        backend: BackendKind::Flex,
        dtype: Some(DType::F32),
        vae_dtype: None,
        text_encoder_device: TextEncoderDevice::Auto,
        progress: None,
        warm_up: false,
    };
    LoadedWan::<B>::load(p, &ctx, &params, &Default::default()).unwrap()
}

fn runtime(p: WanPipeline, over: Value) -> Params {
    let spec = p.spec();
    let mut r = params::defaults(&spec.runtime_params);
    r.extend(params::validate_object(&spec.runtime_params, &over, false).unwrap());
    r
}

fn context(loaded: &LoadedWan<B>, text: &str) -> Tensor<B, 3> {
    let c = loaded.models.encode(text).unwrap();
    let rows = c.values.len() / c.dim;
    Tensor::from_data(
        TensorData::new(c.values.to_vec(), [1, rows, c.dim]),
        (&Default::default(), DType::F32),
    )
}

fn noise(seed: u64, frame: u64, draws: usize, shape: [usize; 5]) -> Vec<Tensor<B, 5>> {
    let mut rng = ChunkRng::new(seed, frame);
    let mut n = Noise::seeded();
    (0..draws)
        .map(|_| {
            Tensor::from_data(
                TensorData::new(n.draw(&mut rng, &shape).unwrap(), shape),
                (&Default::default(), DType::F32),
            )
        })
        .collect()
}

/// `true` = hidden: frame `qf` sees frame `kf` iff `visible(qf, kf)`.
fn frame_mask(
    frames: usize,
    tokens: usize,
    visible: impl Fn(usize, usize) -> bool,
) -> Tensor<B, 4, Bool> {
    let l = frames * tokens;
    let hidden: Vec<bool> = (0..l)
        .flat_map(|q| (0..l).map(move |k| (q, k)))
        .map(|(q, k)| !visible(q / tokens, k / tokens))
        .collect();
    Tensor::from_data(TensorData::new(hidden, [1, 1, l, l]), &Default::default())
}

const H: usize = 32;
const W: usize = 48;
/// Tokens per latent frame at 32×48 (latent 4×6, patches 2×2).
const FS: usize = 6;

/// The Self-Forcing chunk loop without a cache: chunk c's step is one full forward over
/// `[clean chunks 0..c, noisy chunk c]` with per-frame timesteps and the window mask.
fn t2v_reference(
    m: &WanModel<B>,
    ctx: &Tensor<B, 3>,
    steps: &[f64],
    chunks: usize,
    window: usize,
    sink: usize,
    seed: u64,
) -> Vec<Tensor<B, 5>> {
    let schedule = FlowMatchSchedule::new(t2v::SHIFT).unwrap();
    let f = t2v::CHUNK_FRAMES;
    let mut clean: Vec<Tensor<B, 5>> = Vec::new();
    for c in 0..chunks {
        let eps = noise(seed, (c * f) as u64, steps.len(), [1, 16, f, H / 8, W / 8]);
        let mut x = eps[0].clone();
        let mut x0 = x.clone();
        for (k, &t) in steps.iter().enumerate() {
            let mut all = clean.clone();
            all.push(x.clone());
            let frames = (c + 1) * f;
            let mut per_frame = vec![0.0; c * f];
            per_frame.extend(vec![t; f]);
            let mask = frame_mask(frames, FS, |qf, kf| {
                let end = (qf / f + 1) * f;
                kf < end && (kf < sink || kf + (window - sink) >= end)
            });
            let out = m.forward(
                Tensor::cat(all, 2),
                &Timesteps {
                    per_frame: vec![per_frame],
                },
                ctx.clone(),
                Some(mask),
            );
            let v = out.narrow(2, c * f, f);
            x0 = x0_from_v(&schedule, x.clone(), v, t);
            if let Some(&next) = steps.get(k + 1) {
                x = add_noise(&schedule, x0.clone(), eps[k + 1].clone(), next);
            }
        }
        clean.push(x0);
    }
    clean
}

fn run_t2v(stream: &mut dyn WanStream<B>, chunks: usize) -> Vec<Tensor<B, 5>> {
    (0..chunks)
        .map(|_| stream.next_chunk(None).unwrap().latents.unwrap())
        .collect()
}

fn worst(a: &[Tensor<B, 5>], b: &[Tensor<B, 5>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| rel_err(&values(x.clone()), &values(y.clone())))
        .fold(0.0, f64::max)
}

#[test]
fn self_forcing_equals_the_uncached_block_causal_recomputation() {
    let dir = models_dir();
    // A 6-frame cache with a 3-frame sink (chunks 2 and 3 roll it), and a sink longer than a
    // chunk (4 of 8 frames: chunk 1's passes write into the sink).
    for (window, sink) in [(6, 3), (8, 4)] {
        let params = json!({"height": H, "width": W, "local_attn_size": window,
                            "sink_size": sink, "seed": 9});
        let loaded = load(dir.path(), WanPipeline::SelfForcing, params);
        let mut s = loaded.stream();
        s.apply(
            &runtime(WanPipeline::SelfForcing, json!({"prompts": ["a red fox"]})),
            true,
        )
        .unwrap();
        let got = run_t2v(s.as_mut(), 4);
        let steps = FlowMatchSchedule::new(5.0)
            .unwrap()
            .warp_steps(&[1000, 750, 500, 250])
            .unwrap();
        let ctx = context(&loaded, "a red fox");
        let want = t2v_reference(&loaded.models.dit, &ctx, &steps, 4, window, sink, 9);
        let err = worst(&got, &want);
        eprintln!("self-forcing (window {window}, sink {sink}) vs uncached reference: {err:e}");
        assert!(err <= 1e-4, "{err:e}");
        // The video is the streaming decode of those latents.
        let video = values(s.next_chunk(None).unwrap().video.unwrap());
        assert_eq!(video.len(), 3 * 12 * H * W);
    }
}

/// `chunks` chunks of a LongLive stream on "a panda" with steps [1000, 500].
fn longlive_panda(loaded: &LoadedWan<B>, chunks: usize) -> Vec<Tensor<B, 5>> {
    let mut s = loaded.stream();
    s.apply(
        &runtime(
            WanPipeline::LongLive,
            json!({"prompts": ["a panda"], "denoising_step_list": [1000, 500]}),
        ),
        true,
    )
    .unwrap();
    run_t2v(s.as_mut(), chunks)
}

#[test]
fn the_fp8_load_option_quantizes_the_dit_after_the_lora_is_merged() {
    let dir = models_dir();
    let run = |loaded: &LoadedWan<B>| longlive_panda(loaded, 2);
    let base = json!({"height": H, "width": W, "local_attn_size": 6, "sink_size": 3});
    let plain = load(dir.path(), WanPipeline::LongLive, base.clone());
    let mut fp8 = base.clone();
    fp8["quantization"] = json!("fp8_e4m3fn");
    let quantized = load(dir.path(), WanPipeline::LongLive, fp8);
    // The same as quantizing the loaded (LoRA-merged) DiT by hand.
    let mut by_hand = load(dir.path(), WanPipeline::LongLive, base.clone());
    std::sync::Arc::get_mut(&mut by_hand.models)
        .expect("no stream holds the models yet")
        .dit
        .quantize_fp8();
    let (got, want, unquantized) = (run(&quantized), run(&by_hand), run(&plain));
    assert_eq!(worst(&got, &want), 0.0);
    let err = worst(&got, &unquantized);
    eprintln!("longlive fp8 vs unquantized (f32): {err:e}");
    assert!(err > 1e-5 && err < 0.1, "{err:e}");
    // An unknown value is a parameter error naming it.
    let mut bad = base;
    bad["quantization"] = json!("int4");
    let ctx = LoadContext::files(dir.path(), BackendKind::Flex);
    let e = LoadedWan::<B>::load(WanPipeline::LongLive, &ctx, &bad, &Default::default())
        .err()
        .expect("int4 is refused");
    assert!(e.to_string().contains("quantization"), "{e}");
}

#[test]
fn longlive_with_its_lora_equals_the_uncached_recomputation() {
    let dir = models_dir();
    let params = json!({"height": H, "width": W, "local_attn_size": 6, "sink_size": 3});
    let loaded = load(dir.path(), WanPipeline::LongLive, params);
    let got = longlive_panda(&loaded, 3);
    let steps = FlowMatchSchedule::new(5.0)
        .unwrap()
        .warp_steps(&[1000, 500])
        .unwrap();
    let want = t2v_reference(
        &loaded.models.dit,
        &context(&loaded, "a panda"),
        &steps,
        3,
        6,
        3,
        42,
    );
    let err = worst(&got, &want);
    eprintln!("longlive vs uncached reference: {err:e}");
    assert!(err <= 1e-4, "{err:e}");
    // The LoRA is in the weights: the base checkpoint alone computes something else.
    let base = WanModel::<B>::load(
        loaded.models.dit.config.clone(),
        engine::wan::Checkpoint::read(
            &dir.path().join("LongLive-1.3B/models/longlive_base.pt"),
            engine::wan::Variant::Generator,
        )
        .unwrap(),
        &Default::default(),
        DType::F32,
    )
    .unwrap();
    let x = noise(1, 0, 1, [1, 16, 1, H / 8, W / 8]).remove(0);
    let t = Timesteps::per_row(&[500.0], 1);
    let ctx = context(&loaded, "a panda");
    let merged = values(loaded.models.dit.forward(x.clone(), &t, ctx.clone(), None));
    let plain = values(base.forward(x, &t, ctx, None));
    assert!(rel_err(&merged, &plain) > 1e-3);
}

/// LongLive's cache, frame by frame: each frame's K/V per layer; a pass over frames `[s, e)`
/// attends to the sink frames and the last `window − sink` frames up to `e`; the re-cache
/// (`recompute`, `s > 0`) leaves the sink frames and the frames already out of the window
/// alone.
/// One frame's keys and values.
type FrameKv = (Tensor<B, 4>, Tensor<B, 4>);

struct FrameCache {
    window: usize,
    sink: usize,
    layers: Vec<BTreeMap<usize, FrameKv>>,
    recompute: bool,
}

impl KvCache<B> for FrameCache {
    fn attend(
        &mut self,
        layer: usize,
        starts: &[usize],
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Attend<B> {
        let (s, n) = (starts[0] / FS, k.dims()[1] / FS);
        let e = s + n;
        let recompute = self.recompute && s > 0;
        let recent = e.saturating_sub(self.window - self.sink).max(self.sink);
        for f in s..e {
            if recompute && f < recent {
                continue;
            }
            let kf = k.clone().narrow(1, (f - s) * FS, FS);
            let vf = v.clone().narrow(1, (f - s) * FS, FS);
            self.layers[layer].insert(f, (kf, vf));
        }
        let seen: Vec<&FrameKv> = self.layers[layer]
            .iter()
            .filter(|(f, _)| **f < e && (**f < self.sink || **f >= recent))
            .map(|(_, kv)| kv)
            .collect();
        Attend {
            k: Tensor::cat(seen.iter().map(|kv| kv.0.clone()).collect(), 1),
            v: Tensor::cat(seen.iter().map(|kv| kv.1.clone()).collect(), 1),
            spans: None,
            mask: None,
        }
    }
}

#[test]
fn the_longlive_prompt_switch_equals_a_recache_computed_from_scratch() {
    let dir = models_dir();
    let (window, sink) = (6, 3);
    let params = json!({"height": H, "width": W, "local_attn_size": window, "sink_size": sink});
    let loaded = load(dir.path(), WanPipeline::LongLive, params);
    let rt = |p: &str| {
        runtime(
            WanPipeline::LongLive,
            json!({"prompts": [p], "denoising_step_list": [1000, 500]}),
        )
    };
    // The pipeline: 3 chunks of "a panda", then "a red fox" (re-cache at frame 9).
    let mut s = loaded.stream();
    s.apply(&rt("a panda"), true).unwrap();
    let mut got = run_t2v(s.as_mut(), 3);
    s.apply(&rt("a red fox"), false).unwrap();
    got.extend(run_t2v(s.as_mut(), 2));

    // From scratch: the chunk loop over the per-frame cache, the re-cache by hand.
    let m = &loaded.models.dit;
    let schedule = FlowMatchSchedule::new(5.0).unwrap();
    let steps = schedule.warp_steps(&[1000, 500]).unwrap();
    let mut cache = FrameCache {
        window,
        sink,
        layers: vec![BTreeMap::new(); m.config.num_layers],
        recompute: false,
    };
    let cross = |p: &str| -> CrossCache<B> { m.cross_cache(context(&loaded, p)) };
    let (panda, fox) = (cross("a panda"), cross("a red fox"));
    let f = t2v::CHUNK_FRAMES;
    let mut want: Vec<Tensor<B, 5>> = Vec::new();
    for c in 0..5 {
        let cross = if c < 3 { &panda } else { &fox };
        if c == 3 {
            // Re-cache: the last 6 clean frames (3..9) at t = 0 under the new prompt.
            let frames = Tensor::cat(want[1..3].to_vec(), 2);
            let t = Timesteps::per_row(&[0.0], 2 * f);
            cache.recompute = true;
            let _ = m.forward_causal(frames, &t, &[f], cross, &mut cache);
            cache.recompute = false;
        }
        let eps = noise(42, (c * f) as u64, 2, [1, 16, f, H / 8, W / 8]);
        let mut x = eps[0].clone();
        let mut x0 = x.clone();
        for (k, &t) in steps.iter().enumerate() {
            let v = m.forward_causal(
                x.clone(),
                &Timesteps::per_row(&[t], f),
                &[c * f],
                cross,
                &mut cache,
            );
            x0 = x0_from_v(&schedule, x.clone(), v, t);
            if let Some(&next) = steps.get(k + 1) {
                x = add_noise(&schedule, x0.clone(), eps[k + 1].clone(), next);
            }
        }
        let _ = m.forward_causal(
            x0.clone(),
            &Timesteps::per_row(&[0.0], f),
            &[c * f],
            cross,
            &mut cache,
        );
        want.push(x0);
    }
    let err = worst(&got, &want);
    eprintln!("longlive switch vs from-scratch re-cache: {err:e}");
    assert!(err <= 1e-4, "{err:e}");
    // The switch changed what follows (a cross-attention swap alone would differ too, but
    // not by the same amount: the re-cache is part of the reference above).
    assert!(rel_err(&values(got[3].clone()), &values(want[2].clone())) > 1e-3);
}

/// A moving test pattern, `[1, 3, T, H, W]` in [-1, 1].
fn clip(frames: usize) -> Tensor<B, 5> {
    let mut v = Vec::with_capacity(3 * frames * H * W);
    for c in 0..3 {
        for t in 0..frames {
            for y in 0..H {
                for x in 0..W {
                    let phase = (x as f32 * 0.3 + y as f32 * 0.2 + t as f32 * 0.5 + c as f32).sin();
                    v.push(phase * 0.8);
                }
            }
        }
    }
    Tensor::from_data(
        TensorData::new(v, [1, 3, frames, H, W]),
        (&Default::default(), DType::F32),
    )
}

/// StreamDiffusionV2 without a cache: chunk c (one frame) at step i sees the first chunk at
/// its last step and chunks 1..c at step i, through one masked forward.
fn sdv2_reference(
    loaded: &LoadedWan<B>,
    video: &Tensor<B, 5>,
    chunks: usize,
    steps: &[f64],
    s: f64,
    seed: u64,
) -> Vec<Tensor<B, 5>> {
    let m = &loaded.models.dit;
    let vae = loaded.models.encoder();
    let ctx = context(loaded, "a dog");
    let schedule = FlowMatchSchedule::new(8.0).unwrap();
    let n = steps.len();
    let mut enc = vae.encode_stream();
    let z0 = vae
        .encode_chunk(
            &mut enc,
            video.clone().narrow(2, 0, 5),
            engine::wan::vae::LatentSpace::Raw,
        )
        .unwrap();
    // The first chunk: its steps in sequence over its own 2 frames.
    let eps = noise(seed, 0, n, z0.dims());
    let mut x = eps[0].clone() * s + z0 * (1.0 - s);
    let mut inputs_at_last = x.clone();
    let mut x0 = x.clone();
    for (k, &t) in steps.iter().enumerate() {
        inputs_at_last = x.clone();
        let v = m.forward(x.clone(), &Timesteps::per_row(&[t], 2), ctx.clone(), None);
        x0 = x0_from_v(&schedule, x.clone(), v, t);
        if k + 1 < n {
            x = add_noise(&schedule, x0.clone(), eps[k + 1].clone(), steps[k + 1]);
        }
    }
    let mut out = vec![x0];
    // Each later chunk's input at each step: ins[c][i].
    let mut ins: Vec<Vec<Tensor<B, 5>>> = Vec::new();
    let t0 = first_step(s);
    for c in 1..=chunks {
        let z = vae
            .encode_chunk(
                &mut enc,
                video.clone().narrow(2, 1 + 4 * c, 4),
                engine::wan::vae::LatentSpace::Raw,
            )
            .unwrap();
        let eps = noise(seed, 1 + c as u64, n, z.dims());
        let mut x = eps[0].clone() * s + z * (1.0 - s);
        let mut mine = Vec::new();
        let mut x0 = x.clone();
        for i in 0..n {
            mine.push(x.clone());
            let t = if i == 0 { t0 } else { steps[i] };
            let mut all = vec![inputs_at_last.clone()];
            let mut per_frame = vec![steps[n - 1]; 2];
            for prev in &ins {
                all.push(prev[i].clone());
                per_frame.push(if i == 0 { t0 } else { steps[i] });
            }
            all.push(x.clone());
            per_frame.push(t);
            let frames = per_frame.len();
            // Frames 0–1 are one chunk; each later frame its own.
            let chunk_of = |f: usize| f.saturating_sub(1);
            let mask = frame_mask(frames, FS, |q, k| chunk_of(k) <= chunk_of(q));
            let v = m
                .forward(
                    Tensor::cat(all, 2),
                    &Timesteps {
                        per_frame: vec![per_frame],
                    },
                    ctx.clone(),
                    Some(mask),
                )
                .narrow(2, frames - 1, 1);
            x0 = x0_from_v(&schedule, x.clone(), v, t);
            if i + 1 < n {
                x = add_noise(&schedule, x0.clone(), eps[i + 1].clone(), steps[i + 1]);
            }
        }
        ins.push(mine);
        out.push(x0);
    }
    out
}

fn sdv2_run(
    loaded: &LoadedWan<B>,
    video: &Tensor<B, 5>,
    calls: usize,
    rt: &Params,
) -> Vec<Option<Tensor<B, 5>>> {
    let mut s = loaded.stream();
    s.apply(rt, true).unwrap();
    let mut used = 0;
    (0..calls)
        .map(|_| {
            let n = s.input_frames();
            let x = video.clone().narrow(2, used, n);
            used += n;
            s.next_chunk(Some(x)).unwrap().latents
        })
        .collect()
}

#[test]
fn streamdiffusionv2_stream_batch_equals_the_sequential_schedule_and_the_uncached_reference() {
    let dir = models_dir();
    let base = json!({"height": H, "width": W, "seed": 5, "adapt_sink_threshold": -1.0});
    let batched = load(dir.path(), WanPipeline::StreamDiffusionV2, base.clone());
    let mut seq_params = base;
    seq_params["stream_batch"] = json!(false);
    let sequential = load(dir.path(), WanPipeline::StreamDiffusionV2, seq_params);
    let steps = [700.0, 500.0, 300.0];
    let rt = runtime(
        WanPipeline::StreamDiffusionV2,
        json!({"prompts": ["a dog"], "denoising_step_list": [700, 500, 300],
               "noise_controller": false, "noise_scale": 0.8}),
    );
    let video = clip(5 + 4 * 6);
    let b = sdv2_run(&batched, &video, 7, &rt);
    let q = sdv2_run(&sequential, &video, 7, &rt);
    // The stream batch gives nothing for n − 1 = 2 calls after the first, then chunk c at
    // call c + 2.
    assert!(b[0].is_some() && b[1].is_none() && b[2].is_none() && b[3].is_some());
    assert!(q.iter().all(Option::is_some));
    let lag = steps.len() - 1;
    let shifted: Vec<Tensor<B, 5>> = b[lag + 1..].iter().flatten().cloned().collect();
    let seq: Vec<Tensor<B, 5>> = q[1..1 + shifted.len()].iter().flatten().cloned().collect();
    let err = worst(&shifted, &seq);
    eprintln!("stream batch vs sequential (shifted by {lag}): {err:e}");
    assert!(err <= 1e-5, "{err:e}");

    // Both equal the uncached reference (4 later chunks: 6 frames fill the 6-frame ring).
    let want = sdv2_reference(&sequential, &video, 4, &steps, 0.8, 5);
    let got: Vec<Tensor<B, 5>> = q[..5].iter().flatten().cloned().collect();
    let err = worst(&got, &want);
    eprintln!("streamdiffusionv2 vs uncached reference: {err:e}");
    assert!(err <= 1e-4, "{err:e}");
}

#[test]
fn streamdiffusionv2_adapts_its_sink_and_its_noise_to_the_input() {
    let dir = models_dir();
    let loaded = load(
        dir.path(),
        WanPipeline::StreamDiffusionV2,
        json!({"height": H, "width": W, "num_kv_cache": 4, "num_sink_tokens": 1, "adapt_sink_threshold": 1.0}),
    );
    let mut s = Sdv2Stream::new(
        loaded.models.clone(),
        engine::pipeline::wan::sdv2::Settings::from_params(loaded.load_params()).unwrap(),
    );
    s.apply(
        &runtime(
            WanPipeline::StreamDiffusionV2,
            json!({"prompts": ["a dog"]}),
        ),
        true,
    )
    .unwrap();
    let video = clip(5 + 4 * 6);
    let still = Tensor::cat(vec![video.clone().narrow(2, 4, 1); 4], 2);
    s.next_chunk(Some(video.clone().narrow(2, 0, 5))).unwrap();
    // A still input: no motion, the noise scale stays at the user's 0.8.
    s.next_chunk(Some(still)).unwrap();
    assert!(
        (s.last_noise_scale - 0.8).abs() < 1e-9,
        "{}",
        s.last_noise_scale
    );
    // A moving one lowers it.
    s.next_chunk(Some(video.clone().narrow(2, 5, 4))).unwrap();
    assert!(s.last_noise_scale < 0.79, "{}", s.last_noise_scale);
    for c in 0..4 {
        let out = s
            .next_chunk(Some(video.clone().narrow(2, 9 + 4 * c, 4)))
            .unwrap();
        if let Some(v) = out.video {
            assert!(values(v).iter().all(|x| x.is_finite()));
        }
    }
    // A threshold of 1 makes every eviction replace a sink (cos similarity < 1).
    assert!(s.sink_refreshes() > 0);
}

#[test]
fn a_rebased_stream_continues_exactly_where_unbounded_positions_would() {
    let dir = models_dir();
    let loaded = load(
        dir.path(),
        WanPipeline::SelfForcing,
        json!({"height": H, "width": W, "local_attn_size": 6, "sink_size": 3}),
    );
    let settings =
        t2v::Settings::from_params(WanPipeline::SelfForcing, loaded.load_params()).unwrap();
    let rt = runtime(WanPipeline::SelfForcing, json!({"prompts": ["a fox"]}));
    let mut plain = T2vStream::new(loaded.models.clone(), settings.clone());
    let mut rebased = T2vStream::new(
        loaded.models.clone(),
        t2v::Settings {
            rope_limit: 14,
            ..settings
        },
    );
    plain.apply(&rt, true).unwrap();
    rebased.apply(&rt, true).unwrap();
    let a = run_t2v(&mut plain, 8);
    let b = run_t2v(&mut rebased, 8);
    assert!(rebased.rebases >= 2, "{}", rebased.rebases);
    let err = worst(&a, &b);
    eprintln!("rebased (limit 14) vs unbounded positions: {err:e}");
    assert!(err <= 1e-5, "{err:e}");
}

#[test]
fn a_stream_runs_past_the_1024_frame_rope_table_without_a_break() {
    let dir = models_dir();
    let loaded = load(
        dir.path(),
        WanPipeline::SelfForcing,
        json!({"height": 16, "width": 16}),
    );
    let settings =
        t2v::Settings::from_params(WanPipeline::SelfForcing, loaded.load_params()).unwrap();
    let mut s = T2vStream::new(loaded.models.clone(), settings);
    s.apply(
        &runtime(
            WanPipeline::SelfForcing,
            json!({"prompts": ["a fox"], "denoising_step_list": [1000, 500]}),
        ),
        true,
    )
    .unwrap();
    // 1024 / 3 = 341 chunks fit; run 360 and compare the step across chunk boundaries.
    let mut last: Option<Vec<f32>> = None;
    let mut steps = Vec::new();
    for _ in 0..360 {
        let v = values(s.next_chunk(None).unwrap().video.unwrap());
        let frames = v.len() / (3 * 16 * 16);
        assert!(v.iter().all(|x| x.is_finite()));
        // Per frame [3, 16, 16] planes: the boundary is the last frame of the previous
        // chunk against this chunk's first.
        let frame = |t: usize| -> Vec<f32> {
            (0..3)
                .flat_map(|c| v[(c * frames + t) * 256..(c * frames + t + 1) * 256].to_vec())
                .collect()
        };
        if let Some(prev) = &last {
            let first = frame(0);
            let d = prev
                .iter()
                .zip(&first)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / first.len() as f32;
            steps.push((s.position(), d));
        }
        last = Some(frame(frames - 1));
    }
    assert!(s.rebases >= 1, "never re-based");
    // A chunk made right after a re-base has a smaller position than the one before.
    let rebased: Vec<bool> = std::iter::once(false)
        .chain(steps.windows(2).map(|w| w[1].0 < w[0].0))
        .collect();
    let (at, ordinary): (Vec<_>, Vec<_>) = steps.iter().zip(&rebased).partition(|(_, r)| **r);
    let ordinary = ordinary.iter().map(|((_, d), _)| *d).fold(0f32, f32::max);
    let at: Vec<f32> = at.iter().map(|((_, d), _)| *d).collect();
    eprintln!("largest change between ordinary chunks {ordinary}, at the re-bases {at:?}");
    assert!(!at.is_empty());
    assert!(at.iter().all(|d| *d <= ordinary), "{at:?} vs {ordinary}");
}

#[test]
fn loading_names_the_missing_or_truncated_file() {
    let dir = models_dir();
    let ctx = LoadContext {
        weights: Weights::Files(dir.path().to_owned()),
        backend: BackendKind::Flex,
        dtype: Some(DType::F32),
        vae_dtype: None,
        text_encoder_device: TextEncoderDevice::Auto,
        progress: None,
        warm_up: false,
    };
    let lora = dir.path().join("LongLive-1.3B/models/lora.pt");
    std::fs::remove_file(&lora).unwrap();
    let e = LoadedWan::<B>::load(WanPipeline::LongLive, &ctx, &json!({}), &Default::default())
        .err()
        .unwrap();
    assert!(matches!(e, WanLoadError::MissingFiles(_)), "{e}");
    assert!(
        e.to_string().contains("LongLive-1.3B/models/lora.pt"),
        "{e}"
    );

    let dit = dir
        .path()
        .join("Self-Forcing/checkpoints/self_forcing_dmd.pt");
    let bytes = std::fs::read(&dit).unwrap();
    std::fs::write(&dit, &bytes[..bytes.len() / 2]).unwrap();
    let e = LoadedWan::<B>::load(
        WanPipeline::SelfForcing,
        &ctx,
        &json!({}),
        &Default::default(),
    )
    .err()
    .unwrap();
    assert!(
        e.to_string().contains("self_forcing_dmd.pt is truncated"),
        "{e}"
    );

    let e = LoadedWan::<B>::load(
        WanPipeline::StreamDiffusionV2,
        &ctx,
        &json!({"num_kv_cache": 3, "num_sink_tokens": 2}),
        &Default::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, WanLoadError::Params(_)), "{e}");
    // A config that does not fit the weights: the error names the file and the tensor.
    let config = dir.path().join("Wan2.1-T2V-1.3B/config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("\"ffn_dim\": 32", "\"ffn_dim\": 40")).unwrap();
    let e = LoadedWan::<B>::load(
        WanPipeline::StreamDiffusionV2,
        &ctx,
        &json!({}),
        &Default::default(),
    )
    .err()
    .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("wan_causal_dmd_v2v/model.pt: tensor blocks.0.ffn.0.weight has shape [32, 24], expected [40, 24]"),
        "{msg}"
    );
    std::fs::write(&config, text).unwrap();

    // bf16 where the backend cannot compute it.
    let candle = LoadContext {
        backend: BackendKind::Candle,
        dtype: Some(DType::BF16),
        ..ctx.clone()
    };
    #[allow(deprecated)]
    let e = LoadedWan::<burn::backend::Candle>::load(
        WanPipeline::StreamDiffusionV2,
        &candle,
        &json!({}),
        &Default::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, WanLoadError::Unsupported(_)), "{e}");
}

#[test]
fn a_load_reports_its_stages_in_order() {
    let dir = models_dir();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let ctx = LoadContext {
        weights: Weights::Files(dir.path().to_owned()),
        backend: BackendKind::Flex,
        dtype: Some(DType::F32),
        vae_dtype: None,
        text_encoder_device: TextEncoderDevice::Auto,
        progress: Some(std::sync::Arc::new(move |p| log.lock().unwrap().push(p))),
        warm_up: true,
    };
    LoadedWan::<B>::load(
        WanPipeline::SelfForcing,
        &ctx,
        &json!({"height": 32, "width": 32}),
        &Default::default(),
    )
    .unwrap();
    let seen = seen.lock().unwrap();
    use engine::pipeline::wan::load::LoadStage::*;
    let mut stages: Vec<_> = seen.iter().map(|p| p.stage).collect();
    stages.dedup();
    assert_eq!(stages, [TextEncoder, Dit, Vae, WarmUp]);
    assert!(
        seen.windows(2).all(|w| w[1].overall >= w[0].overall),
        "{seen:?}"
    );
    assert_eq!(seen.last().map(|p| p.overall), Some(1.0));
    // Tensor by tensor inside the stages, not only at their ends.
    assert!(seen.len() > 12, "{}", seen.len());
}

#[test]
fn the_text_to_video_warm_ups_fill_and_roll_the_window_switch_prompts_and_rebase() {
    let dir = models_dir();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let ctx = LoadContext {
        progress: Some(std::sync::Arc::new(move |p| log.lock().unwrap().push(p))),
        warm_up: true,
        dtype: Some(DType::F32),
        ..LoadContext::files(dir.path(), BackendKind::Flex)
    };
    let params = json!({"height": H, "width": W, "local_attn_size": 6, "sink_size": 3});
    let loaded =
        LoadedWan::<B>::load(WanPipeline::LongLive, &ctx, &params, &Default::default()).unwrap();
    // Two chunks fill the 6-frame window, a third rolls it, the fourth runs after the switch
    // (a re-cache that keeps the sink, as in a running stream).
    assert_eq!(loaded.warm_up_plan(), (3, true));
    use engine::pipeline::wan::load::LoadStage::WarmUp;
    let warm: Vec<f64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|p| p.stage == WarmUp)
        .map(|p| p.stage_fraction)
        .collect();
    assert_eq!(warm, [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
    // The switch chunk also re-bases the positions (the warm-up's stream re-bases early).
    let s = loaded.warm_up(&Default::default(), &mut |_| {}).unwrap();
    assert_eq!(s.rebases(), 1);
    // LongLive's default window (12 frames) takes five; Self-Forcing fills its 21 frames in
    // seven, rolls them, then re-bases: nine, no switch.
    let default = load(
        dir.path(),
        WanPipeline::LongLive,
        json!({"height": H, "width": W}),
    );
    assert_eq!(default.warm_up_plan(), (5, true));
    let sf = load(
        dir.path(),
        WanPipeline::SelfForcing,
        json!({"height": H, "width": W}),
    );
    assert_eq!(sf.warm_up_plan(), (9, false));
    let mut fractions = Vec::new();
    let s = sf
        .warm_up(&Default::default(), &mut |f| fractions.push(f))
        .unwrap();
    assert_eq!(s.rebases(), 1);
    assert_eq!(fractions.len(), 9);
    // A stream proper re-bases only near the 1024-frame table's end.
    let mut plain = sf.stream();
    plain
        .apply(&runtime(WanPipeline::SelfForcing, json!({})), true)
        .unwrap();
    for _ in 0..9 {
        plain.next_chunk(None).unwrap();
    }
    assert_eq!(plain.rebases(), 0);
}

#[test]
fn streamdiffusionv2s_warm_up_fills_the_stream_batch_and_the_ring_and_refreshes_rope() {
    let dir = models_dir();
    let loaded = load(
        dir.path(),
        WanPipeline::StreamDiffusionV2,
        json!({"height": H, "width": W}),
    );
    // The default ring (6 frames) and steps (2): 6 + 2 + 1 chunks, no prompt switch.
    assert_eq!(loaded.warm_up_plan(), (9, false));
    let (chunks, _) = loaded.warm_up_plan();
    let mut s = loaded.warm_up_stream();
    s.apply(&runtime(WanPipeline::StreamDiffusionV2, json!({})), true)
        .unwrap();
    let mut outputs = Vec::new();
    for _ in 0..chunks {
        let input = Tensor::zeros([1, 3, s.input_frames(), H, W], &Default::default());
        outputs.push(s.next_chunk(Some(input)).unwrap().video.is_some());
    }
    // The stream batch's lag (one chunk without output), then output from every chunk, and
    // at least one RoPE refresh with chunks after it: every shape of a long stream.
    assert_eq!(outputs[..3], [true, false, true]);
    assert!(outputs[2..].iter().all(|o| *o), "{outputs:?}");
    assert!(s.rebases() >= 1, "the warm-up never reached a RoPE refresh");
    // A stream proper refreshes at frame 50, far beyond the warm-up's chunks.
    let mut plain = loaded.stream();
    plain
        .apply(&runtime(WanPipeline::StreamDiffusionV2, json!({})), true)
        .unwrap();
    for _ in 0..chunks {
        let input = Tensor::zeros([1, 3, plain.input_frames(), H, W], &Default::default());
        plain.next_chunk(Some(input)).unwrap();
    }
    assert_eq!(plain.rebases(), 0);
}

/// A chunk's video leaves the Wan VAE one latent frame at a time (1 frame for the stream's
/// first, 4 for each later one), so the first frames are out while the rest decode; a tiny
/// autoencoder decodes a chunk's frames together. Through the media loop's [`Pipeline`], the
/// frames emitted piece by piece are the frames `process` returns.
#[test]
fn the_wan_vae_hands_a_chunk_over_one_latent_frame_at_a_time() {
    use engine::pipeline::LoadedPipeline;
    let dir = models_dir();
    let rt = runtime(WanPipeline::SelfForcing, json!({"prompts": ["a red fox"]}));
    for (vae, pieces) in [
        ("wan", [vec![1, 4, 4], vec![4, 4, 4]]),
        ("tae", [vec![9], vec![12]]),
    ] {
        let params = json!({"height": H, "width": W, "seed": 3, "vae_type": vae});
        let loaded = load(dir.path(), WanPipeline::SelfForcing, params);
        let mut s = loaded.stream();
        s.apply(&rt, true).unwrap();
        for want in pieces {
            let mut sizes = Vec::new();
            let out = s
                .next_chunk_pieces(None, &mut |v| sizes.push(v.dims()[2]))
                .unwrap();
            assert!(out.video.is_none() && out.latents.is_some());
            assert_eq!(sizes, want, "{vae}");
        }

        let (mut whole, mut pieced) = (loaded.new_stream(), loaded.new_stream());
        for p in [&mut whole, &mut pieced] {
            p.prepare(&rt, true).unwrap();
        }
        for chunk in 0..2 {
            let want = whole.process(Vec::new(), &rt).unwrap();
            let mut got = Vec::new();
            let n = pieced
                .process_into(Vec::new(), &rt, &mut |f| got.push(f))
                .unwrap();
            assert_eq!(n, got.len());
            assert_eq!(got.len(), [9, 12][chunk], "{vae}");
            assert!(
                got == want,
                "{vae} chunk {chunk}: the emitted frames differ"
            );
        }
    }
}

/// Every autoencoder on the same run: the DiT's latents do not depend on it, each gives the
/// Wan VAE's frame counts (9 frames for a stream's first chunk, 12 after), and the pipeline's
/// video is that autoencoder's streaming decode of the latents. StreamDiffusionV2 runs with
/// the Wan encoder beside a TAE decoder (its own repository's pairing) and with TAE both ways.
#[test]
fn every_autoencoder_decodes_the_stream_with_the_wan_vaes_frame_counts() {
    use engine::wan::{
        vae::LatentSpace,
        video_vae::{VaeType, VideoVae},
    };
    let dir = models_dir();
    let rt = runtime(WanPipeline::SelfForcing, json!({"prompts": ["a red fox"]}));
    let mut first_latents: Option<Vec<f32>> = None;
    let mut videos = Vec::new();
    for vae in VaeType::ALL {
        let params = json!({"height": H, "width": W, "seed": 3, "vae_type": vae.id()});
        let loaded = load(dir.path(), WanPipeline::SelfForcing, params);
        let mut s = loaded.stream();
        s.apply(&rt, true).unwrap();
        let a = s.next_chunk(None).unwrap();
        let b = s.next_chunk(None).unwrap();
        let (va, vb) = (a.video.unwrap(), b.video.unwrap());
        assert_eq!(va.dims(), [1, 3, 9, H, W], "{vae}");
        assert_eq!(vb.dims(), [1, 3, 12, H, W], "{vae}");
        let (la, lb) = (a.latents.unwrap(), b.latents.unwrap());
        let l = values(la.clone());
        match &first_latents {
            None => first_latents = Some(l),
            Some(want) => assert!(
                rel_err(&l, want) <= 1e-6,
                "{vae}: the DiT's latents changed"
            ),
        }
        // The same decode outside the pipeline, from the file make-tiny wrote.
        let file = engine::pipeline::wan::files::candidates(
            WanPipeline::SelfForcing,
            engine::pipeline::wan::files::Role::of_vae(vae),
        )
        .next()
        .unwrap();
        let own = VideoVae::<B>::from_file(
            vae,
            &dir.path().join(file.local),
            &Default::default(),
            DType::F32,
        )
        .unwrap();
        let mut st = own.decode_stream();
        let want = Tensor::cat(
            vec![
                own.decode_chunk(&mut st, la, LatentSpace::Normalized)
                    .unwrap(),
                own.decode_chunk(&mut st, lb, LatentSpace::Normalized)
                    .unwrap(),
            ],
            2,
        );
        let got = Tensor::cat(vec![va, vb], 2);
        assert!(
            rel_err(&values(got.clone()), &values(want)) <= 1e-5,
            "{vae}"
        );
        videos.push(values(got));
    }
    // Four different decoders, four different videos.
    for i in 0..videos.len() {
        for j in i + 1..videos.len() {
            assert!(rel_err(&videos[i], &videos[j]) > 1e-3, "{i} vs {j}");
        }
    }

    let sd = WanPipeline::StreamDiffusionV2;
    let rt = runtime(sd, json!({"prompts": ["a dog"]}));
    let video = clip(5 + 4 * 3);
    let mut outs = Vec::new();
    for (decoder, encoder) in [("wan", "same"), ("tae", "wan"), ("tae", "same")] {
        let params = json!({"height": H, "width": W, "vae_type": decoder,
                            "encoder_vae_type": encoder, "stream_batch": false});
        let loaded = load(dir.path(), sd, params);
        let mut s = loaded.stream();
        s.apply(&rt, true).unwrap();
        let mut used = 0;
        let mut frames = Vec::new();
        for _ in 0..4 {
            let n = s.input_frames();
            let out = s
                .next_chunk(Some(video.clone().narrow(2, used, n)))
                .unwrap();
            used += n;
            let v = out.video.unwrap();
            frames.push(v.dims()[2]);
            outs.push((decoder, encoder, values(out.latents.unwrap())));
        }
        assert_eq!(frames, [5, 4, 4, 4], "{decoder}/{encoder}");
    }
    // The Wan encoder gives the same latents whichever decoder follows; the TAE's differ.
    let lat = |d: &str, e: &str| -> Vec<f32> {
        outs.iter()
            .filter(|(a, b, _)| *a == d && *b == e)
            .flat_map(|(_, _, l)| l.clone())
            .collect()
    };
    assert!(rel_err(&lat("tae", "wan"), &lat("wan", "same")) <= 1e-6);
    assert!(rel_err(&lat("tae", "same"), &lat("wan", "same")) > 1e-3);
}
