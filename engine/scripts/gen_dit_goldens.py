#!/usr/bin/env python3
"""Golden files for the Wan DiT tests (engine/tests/dit.rs), from diffusers.

Reference: diffusers 0.42.1 `WanTransformer3DModel` on a tiny config (2 layers, dim 24: tests/goldens/dit_tiny_config_*.json),
random weights (every parameter, including the head that upstream zero-initialises). One
change to diffusers: its timestep sinusoid is computed in float64, as the original Wan code
does (`sinusoidal_embedding_1d`); stock diffusers uses float32, which moves outputs by ~1e-4 at
t≈1000.

Writes to engine/tests/goldens/:
  dit_tiny_config_original.json, dit_tiny_config_diffusers.json
  dit_tiny_{original,diffusers}_{f32,bf16}.safetensors   the weights in both key layouts
  dit_tiny_original_{f32,bf16}.pth    {"generator": {"model." + key: tensor}} (a training checkpoint)
  dit_tiny_diffusers_f32.pth          a plain state dict
  dit_tiny_diffusers_bf16.pth         {"state_dict": …}
  dit_tiny_sharded/                   diffusers layout in two shards + index json
  dit_case_<name>.safetensors         inputs x, t, context and the reference output `out`

Run (CPU is enough):  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch
  diffusers==0.42.1 safetensors && /tmp/venv/bin/python engine/scripts/gen_dit_goldens.py
"""

import json
import math
import os
import sys

import torch
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "goldens")
SEED = 20261126

CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=2,
    attention_head_dim=12,
    in_channels=16,
    out_channels=16,
    text_dim=32,
    freq_dim=256,
    ffn_dim=32,
    num_layers=2,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)
ORIGINAL_CONFIG = dict(
    _class_name="WanModel",
    model_type="t2v",
    dim=24,
    ffn_dim=32,
    num_heads=2,
    num_layers=2,
    freq_dim=256,
    text_dim=32,
    in_dim=16,
    out_dim=16,
    text_len=512,
    eps=1e-6,
)

# diffusers -> original, applied to the part after "blocks.N." (first match wins).
BLOCK_MAP = [
    ("scale_shift_table", "modulation"),
    ("attn1.to_out.0.", "self_attn.o."),
    ("attn1.to_", "self_attn."),
    ("attn1.norm_", "self_attn.norm_"),
    ("attn2.to_out.0.", "cross_attn.o."),
    ("attn2.to_", "cross_attn."),
    ("attn2.norm_", "cross_attn.norm_"),
    ("norm2.", "norm3."),
    ("ffn.net.0.proj.", "ffn.0."),
    ("ffn.net.2.", "ffn.2."),
]
GLOBAL_MAP = [
    ("condition_embedder.time_embedder.linear_1.", "time_embedding.0."),
    ("condition_embedder.time_embedder.linear_2.", "time_embedding.2."),
    ("condition_embedder.time_proj.", "time_projection.1."),
    ("condition_embedder.text_embedder.linear_1.", "text_embedding.0."),
    ("condition_embedder.text_embedder.linear_2.", "text_embedding.2."),
    ("proj_out.", "head.head."),
]


def to_original(key: str) -> str:
    if key == "scale_shift_table":
        return "head.modulation"
    if key.startswith("blocks."):
        _, n, tail = key.split(".", 2)
        for a, b in BLOCK_MAP:
            if tail.startswith(a):
                return f"blocks.{n}.{b}{tail[len(a):]}"
        return key
    for a, b in GLOBAL_MAP:
        if key.startswith(a):
            return b + key[len(a):]
    return key


def f64_timesteps(self, timesteps):
    """Timesteps(256, flip_sin_to_cos=True, shift=0) in float64: [cos(t·ω), sin(t·ω)]."""
    half = self.num_channels // 2
    omega = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    args = timesteps.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1).to(torch.float32)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    model = WanTransformer3DModel(**CONFIG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "scale_shift_table" in name:
                p.copy_(0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(max(p.shape[-1], 1)))
    type(model.condition_embedder.timesteps_proj).forward = f64_timesteps

    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    orig = {to_original(k): v for k, v in sd.items()}
    assert len(orig) == len(sd)
    bf16 = lambda d: {k: v.to(torch.bfloat16) for k, v in d.items()}

    save_file(orig, f"{OUT}/dit_tiny_original_f32.safetensors")
    save_file(bf16(orig), f"{OUT}/dit_tiny_original_bf16.safetensors")
    save_file(sd, f"{OUT}/dit_tiny_diffusers_f32.safetensors")
    save_file(bf16(sd), f"{OUT}/dit_tiny_diffusers_bf16.safetensors")
    torch.save({"generator": {"model." + k: v for k, v in orig.items()}}, f"{OUT}/dit_tiny_original_f32.pth")
    torch.save(
        {"generator_ema": {"model." + k: v for k, v in bf16(orig).items()}},
        f"{OUT}/dit_tiny_original_bf16.pth",
    )
    torch.save(sd, f"{OUT}/dit_tiny_diffusers_f32.pth")
    torch.save({"state_dict": bf16(sd)}, f"{OUT}/dit_tiny_diffusers_bf16.pth")
    shard_dir = f"{OUT}/dit_tiny_sharded"
    os.makedirs(shard_dir, exist_ok=True)
    keys = sorted(sd)
    half = len(keys) // 2
    weight_map = {}
    for i, part in enumerate([keys[:half], keys[half:]]):
        name = f"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors"
        save_file({k: sd[k] for k in part}, f"{shard_dir}/{name}")
        weight_map.update({k: name for k in part})
    with open(f"{shard_dir}/diffusion_pytorch_model.safetensors.index.json", "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f, indent=1)
    with open(f"{OUT}/dit_tiny_config_original.json", "w") as f:
        json.dump(ORIGINAL_CONFIG, f, indent=1)
    with open(f"{OUT}/dit_tiny_config_diffusers.json", "w") as f:
        json.dump({"_class_name": "WanTransformer3DModel", **CONFIG}, f, indent=1)

    # Inputs: batch 2, 3 latent frames (odd), 6×10 latents (3×5 patches: odd, non-square),
    # a context of 7 rows (< 512; zero-padded to 512 as upstream).
    g = torch.Generator().manual_seed(SEED + 1)
    x = torch.randn(2, 16, 3, 6, 10, generator=g)
    ctx = torch.randn(2, 7, 32, generator=g)
    padded = torch.cat([ctx, torch.zeros(2, 512 - 7, 32)], dim=1)
    tokens_per_frame = 3 * 5
    cases = {
        "t1000": torch.tensor([1000.0, 937.5]),
        "t0": torch.tensor([0.0, 0.0]),
        "per_frame": torch.tensor([[937.5, 937.5, 0.0], [1000.0, 625.0, 0.0]]),
    }
    for name, t in cases.items():
        ts = t if t.ndim == 1 else t.repeat_interleave(tokens_per_frame, dim=1)
        with torch.no_grad():
            out = model(hidden_states=x, timestep=ts, encoder_hidden_states=padded, return_dict=False)[0]
        save_file(
            {"x": x.contiguous(), "t": t.contiguous(), "context": ctx.contiguous(), "out": out.contiguous()},
            f"{OUT}/dit_case_{name}.safetensors",
        )
        print(f"{name}: out {tuple(out.shape)} max|out| {out.abs().max():.4f}", file=sys.stderr)


if __name__ == "__main__":
    main()
