//! The Wan pipelines' descriptions and parameters. Each parameter's description says which
//! source its default follows: the method's own repository ("original") or the upstream app
//! (`daydreamlive/scope`, the fork this studio descends from).

use super::WanPipeline;
use crate::pipeline::{
    InputKind, PipelineSpec,
    params::{ParamKind, ParamSpec},
    vod::paused_param,
};
use serde_json::{Value, json};

fn size(key: &'static str, title: &'static str, default: i64, source: &'static str) -> ParamSpec {
    ParamSpec {
        key,
        title,
        description: source,
        kind: ParamKind::Int {
            min: 16,
            max: 2048,
            multiple_of: Some(16),
        },
        default: json!(default),
        live: false,
    }
}

fn int(
    key: &'static str,
    title: &'static str,
    description: &'static str,
    (min, max): (i64, i64),
    default: i64,
) -> ParamSpec {
    ParamSpec {
        key,
        title,
        description,
        kind: ParamKind::Int {
            min,
            max,
            multiple_of: None,
        },
        default: json!(default),
        live: false,
    }
}

fn flag(
    key: &'static str,
    title: &'static str,
    description: &'static str,
    default: bool,
    live: bool,
) -> ParamSpec {
    ParamSpec {
        key,
        title,
        description,
        kind: ParamKind::Bool,
        default: json!(default),
        live,
    }
}

fn seed() -> ParamSpec {
    int(
        "seed",
        "Seed",
        "Base random seed: the chunk starting at latent frame f draws its noise from seed + f \
         (default 42, as the original and the upstream app).",
        (0, 2_147_483_647),
        42,
    )
}

/// The autoencoder that decodes (and, for video → video, encodes) the stream.
fn vae_type() -> ParamSpec {
    ParamSpec {
        key: "vae_type",
        title: "VAE",
        description: "The autoencoder: wan (the Wan2.1 VAE, 127 M parameters, full quality; \
                      the default, as the original and the upstream app), lightvae \
                      (LightX2V's Wan VAE with 75 % of its channels pruned, 8 M), tae \
                      (TAEHV taew2_1: per-frame 2-D convolutions, 11 M, the fastest; a little \
                      softer) or lighttae (LightX2V's TAE on the same network). Decoding a \
                      later latent (4 frames) at 480×832 in f32: on an H100 wan 509 ms, tae \
                      25 ms; on two CPU cores wan 445 s, lightvae 44 s, tae 11 s \
                      (docs/perf.md).",
        kind: ParamKind::Choice {
            options: &["wan", "lightvae", "tae", "lighttae"],
        },
        default: json!("wan"),
        live: false,
    }
}

/// fp8 weights for the DiT's block linears (the upstream app's `quantization`).
fn quantization() -> ParamSpec {
    ParamSpec {
        key: "quantization",
        title: "Quantization",
        description: "none (the default, as the original and the upstream app) or fp8_e4m3fn: \
                      the DiT's 300 block linears in float8 e4m3fn with per-tensor scales for \
                      weights and inputs (the upstream app's torchao option). On a GPU with \
                      fp8 tensor cores (compute capability 8.9+: Ada, Hopper) and the CUDA ops \
                      on, the weights take one byte each and the products run on cuBLASLt's \
                      fp8 GEMM; elsewhere the same rounding is emulated (no saving). Costs \
                      about 0.5 % of the DiT's output on the tiny goldens; not yet faster \
                      than bf16 on an H200 (docs/perf.md).",
        kind: ParamKind::Choice {
            options: &["none", "fp8_e4m3fn"],
        },
        default: json!("none"),
        live: false,
    }
}

/// StreamDiffusionV2's input encoder when it differs from the decoder.
fn encoder_vae_type() -> ParamSpec {
    ParamSpec {
        key: "encoder_vae_type",
        title: "Encoder VAE",
        description: "The autoencoder that encodes the input: same (as VAE, the default) or \
                      another; StreamDiffusionV2's own repository pairs the wan encoder with \
                      the tae decoder.",
        kind: ParamKind::Choice {
            options: &["same", "wan", "lightvae", "tae", "lighttae"],
        },
        default: json!("same"),
        live: false,
    }
}

fn prompts(default: &str) -> ParamSpec {
    ParamSpec {
        key: "prompts",
        title: "Prompts",
        description: "One to eight prompts with weights, blended in the text encoder's \
                      embedding space.",
        kind: ParamKind::Prompts,
        default: json!([{ "text": default, "weight": 1.0 }]),
        live: true,
    }
}

fn steps(default: Value, max_items: usize, description: &'static str) -> ParamSpec {
    ParamSpec {
        key: "denoising_step_list",
        title: "Denoising Step List",
        description,
        kind: ParamKind::StepList {
            min_items: 1,
            max_items,
            min: 1,
            max: 1000,
        },
        default,
        live: true,
    }
}

/// Runtime parameters every Wan pipeline has.
fn common_runtime(prompt: &str, step_list: ParamSpec, extra: Vec<ParamSpec>) -> Vec<ParamSpec> {
    let mut v = vec![
        prompts(prompt),
        ParamSpec {
            key: "prompt_interpolation_method",
            title: "Prompt Blending",
            description: "How weighted prompts are blended: linear (norm-preserving weighted \
                          mean) or slerp (spherical, two prompts). Default linear, as the \
                          upstream app.",
            kind: ParamKind::Choice {
                options: &["linear", "slerp"],
            },
            default: json!("linear"),
            live: true,
        },
        ParamSpec {
            key: "transition",
            title: "Transition",
            description: "Move to other prompts over num_steps chunks (0 = at once).",
            kind: ParamKind::Transition,
            default: Value::Null,
            live: true,
        },
        step_list,
    ];
    v.extend(extra);
    v.extend([
        ParamSpec {
            key: "reset_cache",
            title: "Reset Cache",
            description: "Start the stream afresh (caches and noise), keeping the prompts.",
            kind: ParamKind::Trigger,
            default: json!(false),
            live: true,
        },
        paused_param(),
    ]);
    v
}

/// GPU memory a stream needs at the default size, estimated in GB (rounded): the bf16 DiT
/// (1.42 B parameters), the bf16 UMT5-XXL encoder (5.7 B; 11.4 GB less with
/// `--text-encoder-device cpu`), the f32 VAE (127 M), the self-attention KV cache (`kv_tokens`
/// cached tokens × 30 layers × K and V × 1536 × 2 bytes) and one layer's attention scores
/// (12 heads × `q_tokens` × `kv_tokens`, in bf16 twice: scores and probabilities).
pub fn vram_gb(kv_tokens: usize, q_tokens: usize) -> f64 {
    let weights = 1.42e9 * 2.0 + 5.7e9 * 2.0 + 127e6 * 4.0;
    let kv = kv_tokens as f64 * 30.0 * 2.0 * 1536.0 * 2.0;
    let scores = 12.0 * q_tokens as f64 * kv_tokens as f64 * 4.0;
    ((weights + kv + scores) / 1e9).round()
}

/// The spec of a Wan pipeline.
pub fn spec(p: WanPipeline) -> PipelineSpec {
    let t2v_steps = steps(
        json!([1000, 750, 500, 250]),
        10,
        "Timesteps of the few-step sampler, warped onto the shift-5 schedule \
         ([1000, 750, 500, 250] → 1000, 937.5, 833.3, 625; original and upstream app).",
    );
    match p {
        WanPipeline::SelfForcing => PipelineSpec {
            id: p.id(),
            name: "Self-Forcing",
            about: "Text to video with Self-Forcing (Huang et al., 2025): the Wan2.1-1.3B \
                    causal DiT distilled to 4 steps by autoregressive self-rollout. Chunks of 3 \
                    latent frames (12 video frames); a 21-frame KV cache that then rolls with \
                    a 3-frame sink, so the stream never ends.",
            input: InputKind::None,
            load_params: vec![
                size(
                    "height",
                    "Height",
                    480,
                    "Output height in pixels (480, as trained: original).",
                ),
                size(
                    "width",
                    "Width",
                    832,
                    "Output width in pixels (832, as trained: original).",
                ),
                seed(),
                int(
                    "local_attn_size",
                    "KV Cache Frames",
                    "Latent frames the self-attention cache holds (21: the original's global \
                     81-frame cache; afterwards it rolls).",
                    (3, 64),
                    21,
                ),
                int(
                    "sink_size",
                    "Sink Frames",
                    "Latent frames at the start that are never evicted once the cache rolls \
                     (3: one chunk, LongLive's frame sink; the original stops at 21 frames).",
                    (0, 32),
                    3,
                ),
                vae_type(),
                quantization(),
            ],
            runtime_params: common_runtime(
                "A red fox trotting through fresh snow in a birch forest, cinematic.",
                t2v_steps.clone(),
                vec![],
            ),
            output_fps: None,
            // A 21-frame cache plus the chunk, 1560 tokens a frame at 480×832.
            vram_gb: Some(vram_gb(32_760 + 4_680, 4_680)),
        },
        WanPipeline::LongLive => PipelineSpec {
            id: p.id(),
            name: "LongLive",
            about: "Interactive long text to video with LongLive (Yang et al., 2025): \
                    Self-Forcing plus a 12-frame attention window with a 3-frame sink and a \
                    LoRA; a new prompt re-caches the window so the video turns to it \
                    smoothly.",
            input: InputKind::None,
            load_params: vec![
                size(
                    "height",
                    "Height",
                    480,
                    "Output height in pixels (480, as trained: original; the upstream app uses 320).",
                ),
                size(
                    "width",
                    "Width",
                    832,
                    "Output width in pixels (832, as trained: original; the upstream app uses 576).",
                ),
                seed(),
                int(
                    "local_attn_size",
                    "Attention Window Frames",
                    "Latent frames of the attention window (12: original and upstream app).",
                    (3, 64),
                    12,
                ),
                int(
                    "sink_size",
                    "Sink Frames",
                    "Latent frames kept as the frame sink (3: original and upstream app).",
                    (0, 32),
                    3,
                ),
                vae_type(),
                quantization(),
            ],
            runtime_params: common_runtime(
                "A 3D animated scene. A panda walks along a path towards the camera in a park \
                 on a spring day.",
                t2v_steps.clone(),
                vec![],
            ),
            output_fps: None,
            vram_gb: Some(vram_gb((12 + 3) * 1560, 3 * 1560)),
        },
        WanPipeline::StreamDiffusionV2 => {
            let runtime = common_runtime(
                "A dog in the grass looking around, photorealistic",
                steps(
                    json!([700, 500]),
                    4,
                    "Timesteps, first to last (shift 8, not warped; [700, 500]: original and \
                     upstream app). After the first chunk the first step follows the noise \
                     scale: int(1000·s) − 100.",
                ),
                vec![
                    ParamSpec {
                        key: "noise_scale",
                        title: "Noise Scale",
                        description: "How much noise is mixed into the input latents (0.8: \
                                      original; the upstream app uses 0.7).",
                        kind: ParamKind::Float {
                            min: 0.0,
                            max: 1.0,
                            step: 0.01,
                        },
                        default: json!(0.8),
                        live: true,
                    },
                    flag(
                        "noise_controller",
                        "Noise Controller",
                        "Less noise when the input moves more (the original's motion-aware \
                         controller; on by default in both).",
                        true,
                        true,
                    ),
                    flag(
                        "manage_cache",
                        "Manage Cache",
                        "Re-prepare the stream (caches and the first chunk) when the prompt \
                         jumps to another, as the original does; off keeps the video's context \
                         and swaps only the prompt. A different number of steps always \
                         re-prepares.",
                        true,
                        true,
                    ),
                ],
            );
            PipelineSpec {
                id: p.id(),
                name: "StreamDiffusionV2",
                about: "Video to video with StreamDiffusionV2 (Feng et al., 2025): the camera or \
                        a clip is encoded 4 frames at a time, noised and denoised by the causal \
                        Wan2.1-1.3B in a stream batch (one DiT call per chunk for all steps), \
                        with a rolling KV cache whose sink adapts to the scene.",
                input: InputKind::Video,
                load_params: vec![
                    size(
                        "height",
                        "Height",
                        512,
                        "Output height in pixels (512: upstream app; the original uses 480).",
                    ),
                    size(
                        "width",
                        "Width",
                        512,
                        "Output width in pixels (512: upstream app; the original uses 832).",
                    ),
                    seed(),
                    int(
                        "num_kv_cache",
                        "KV Cache Frames",
                        "Latent frames the rolling cache holds (6: original).",
                        (3, 32),
                        6,
                    ),
                    int(
                        "num_sink_tokens",
                        "Sink Frames",
                        "Latent frames of the sink (3: original).",
                        (0, 16),
                        3,
                    ),
                    ParamSpec {
                        key: "adapt_sink_threshold",
                        title: "Adaptive Sink Threshold",
                        description: "A new frame whose mean key/value cosine similarity to a \
                                      sink frame falls below this replaces that sink (0.2: \
                                      original; −1 turns it off).",
                        kind: ParamKind::Float {
                            min: -1.0,
                            max: 1.0,
                            step: 0.05,
                        },
                        default: json!(0.2),
                        live: false,
                    },
                    flag(
                        "stream_batch",
                        "Stream Batch",
                        "Run every denoising step of the stream in one batched DiT call per \
                         chunk (output n−1 chunks late; original). Off: each chunk's steps run \
                         one after another on the same per-step cache copies (same result, no \
                         lag, n calls per chunk).",
                        true,
                        false,
                    ),
                    flag(
                        "normalize_input_latents",
                        "Normalize Input Latents",
                        "Feed the DiT normalised VAE latents ((μ − mean)/std, as the model was \
                         trained). Off by default, as the original does since February 2026: \
                         it feeds the raw encoder mean μ and de-normalises on decode.",
                        false,
                        false,
                    ),
                    vae_type(),
                    encoder_vae_type(),
                    quantization(),
                ],
                runtime_params: runtime,
                output_fps: None,
                // Two stream-batch rows, each with its 6 cached frames and its new one.
                vram_gb: Some(vram_gb(2 * 7 * 1024, 1024)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vram_estimates_add_weights_cache_and_scores() {
        // Weights alone: 2.84 + 11.4 + 0.51 GB.
        assert_eq!(vram_gb(0, 0), 15.0);
        // Self-Forcing at 480×832: a 6.9 GB cache and 8.4 GB of scores on top.
        assert_eq!(spec(WanPipeline::SelfForcing).vram_gb, Some(30.0));
        assert_eq!(spec(WanPipeline::LongLive).vram_gb, Some(24.0));
        assert_eq!(spec(WanPipeline::StreamDiffusionV2).vram_gb, Some(18.0));
    }
}
