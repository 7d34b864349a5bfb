#!/usr/bin/env python3
"""Golden files for the Wan2.1 VAE and UMT5 text-encoder tests, from diffusers / transformers.

References (CPU, float32, eval, no_grad; fixed seed):
  * VAE: diffusers 0.42.1 `AutoencoderKLWan` with the Wan topology (dim_mult [1,2,4,4], num_res_blocks 2,
    attn_scales [], temperal_downsample [F,T,T], z_dim 16, Wan latents_mean/std), so the key set is the same
    194 tensors as `Wan2.1_VAE.pth`. base_dim is 4 instead of 96 to keep the files small (channels 4, 8,
    16; the shortcut convs exist where the real ones do). Not smaller: with 2 channels the channel-L2
    RMS norm is ill-conditioned (f32 vs f64 decode differs by 1.7e-4; with base_dim 4 by 1.1e-5).
  * Text encoder: transformers 5.24 `UMT5EncoderModel` (vocab 1024, d_model 32, d_kv 8, d_ff 48, 2 layers,
    4 heads, 32 buckets, max distance 128). `feed_forward_proj="gated-gelu"` makes transformers use
    `dense_act_fn="gelu_new"` = NewGELUActivation, the tanh approximation
    0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) — the same GELU as Wan's t5.py.

Every parameter is random (conv/linear weights N(0, 1/fan_in), RMS gammas and T5 norms 1 + 0.1·N,
biases 0.05·N, UMT5 relative-attention bias N(0, 0.5²), embeddings N(0, 1); the VAE attention `proj`
that upstream zero-initialises is random too) and then rounded to bf16-representable values, so the
f32 and bf16 weight files hold identical numbers.

Writes to engine/tests/goldens/:
  vae_tiny_config.json                  diffusers config (save_config)
  vae_tiny_diffusers_f32.safetensors    diffusers keys
  vae_tiny_original_f32.pth             plain state dict, original Wan keys (as Wan2.1_VAE.pth)
  vae_tiny_original_bf16.safetensors    original keys, bf16
  vae_case.safetensors                  video, mu (raw), latents (normalised), latents_in, decoded,
                                        decoded_from_mu (decode clamps to [-1, 1])
  umt5_tiny_config.json                 transformers config.json
  umt5_tiny_transformers_f32.safetensors  save_pretrained's model.safetensors (only `shared.weight`
                                        is stored for the tied embedding)
  umt5_tiny_original_bf16.pth           plain state dict, Wan T5 keys (as models_t5_umt5-xxl-enc-bf16.pth)
  umt5_tiny_original_f32.safetensors    the same, f32
  umt5_case.safetensors                 input_ids, attention_mask, hidden (all rows), context (pad rows 0)
  umt5_buckets.safetensors              relative_position −1100..1100 → bucket (transformers' own code)
  umt5_tiny_fp8_e4m3fn.safetensors      Wan T5 keys; embedding and 2-D block weights float8_e4m3fn;
                                        block 0 "scaled fp8" (ComfyUI): `<module>.scale_weight` f32 shape []
                                        with weight = (w / scale).to(fp8), scale = absmax / 448, plus an
                                        empty float8 marker tensor `scaled_fp8` (shape [0]); block 1 and the
                                        embedding are plain casts; norms and pos_embedding stay f32
  umt5_fp8_dequant.safetensors          reference dequantisation (f32): w_fp8.float() * scale, per weight

Also checks (stdout): the original↔diffusers VAE key map is a bijection that keeps shapes and whose
original side matches the architecture of Wan2.1's `wan/modules/vae.py`; streaming encode/decode through the
diffusers internals (persistent feature cache) equals the full encode/decode.
With --wan-repo PATH (a checkout of Wan-Video/Wan2.1; needs `pip install einops`) it also loads the
original-layout weights strictly into Wan's own `WanVAE_` and `T5Encoder` and compares outputs.

Run (CPU is enough):  python3 -m venv /tmp/venv && /tmp/venv/bin/pip install torch diffusers==0.42.1
  transformers==5.24.0 safetensors && /tmp/venv/bin/python engine/scripts/gen_vae_t5_goldens.py
"""

import argparse
import importlib
import json
import math
import os
import shutil
import sys
import tempfile
import types

import torch
from diffusers import AutoencoderKLWan
from safetensors.torch import load_file, save_file
from transformers import UMT5Config, UMT5EncoderModel

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "goldens")
SEED = 20261127

VAE_CONFIG = dict(
    base_dim=4,
    z_dim=16,
    dim_mult=[1, 2, 4, 4],
    num_res_blocks=2,
    attn_scales=[],
    temperal_downsample=[False, True, True],
)
UMT5_CONFIG = dict(
    vocab_size=1024,
    d_model=32,
    d_kv=8,
    d_ff=48,
    num_layers=2,
    num_heads=4,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    feed_forward_proj="gated-gelu",
    dropout_rate=0.0,
    layer_norm_epsilon=1e-6,
    pad_token_id=0,
    eos_token_id=1,
)
FP8_MAX = 448.0


def bf16_round_(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.bfloat16().float())


def plain(d):
    return {k: v.detach().clone().contiguous() for k, v in d.items()}


def bf16(d):
    return {k: v.to(torch.bfloat16) for k, v in d.items()}


def maxdiff(a, b):
    return (a.float() - b.float()).abs().max().item()


# ----------------------------------------------------------------------------------------------
# VAE: original Wan layout (Wan2.1's wan/modules/vae.py), and the original → diffusers key map
# ----------------------------------------------------------------------------------------------


def original_vae_layout(dim, z_dim, dim_mult, num_res_blocks, temperal_downsample):
    """{key: shape} of Wan's `WanVAE_` (wan/modules/vae.py), re-derived from its source."""
    out = {}

    def conv(p, cin, cout, k):
        out[p + ".weight"] = (cout, cin, *k)
        out[p + ".bias"] = (cout,)

    def res(p, cin, cout):  # residual = [RMS, SiLU, CConv3d, RMS, SiLU, Dropout, CConv3d]; shortcut
        out[p + ".residual.0.gamma"] = (cin, 1, 1, 1)
        conv(p + ".residual.2", cin, cout, (3, 3, 3))
        out[p + ".residual.3.gamma"] = (cout, 1, 1, 1)
        conv(p + ".residual.6", cout, cout, (3, 3, 3))
        if cin != cout:
            conv(p + ".shortcut", cin, cout, (1, 1, 1))

    def attn(p, c):
        out[p + ".norm.gamma"] = (c, 1, 1)
        conv(p + ".to_qkv", c, 3 * c, (1, 1))
        conv(p + ".proj", c, c, (1, 1))

    def resample(p, c, mode):
        if mode.startswith("downsample"):  # ZeroPad2d + Conv2d(c, c, 3, s=2)
            conv(p + ".resample.1", c, c, (3, 3))
            if mode == "downsample3d":
                conv(p + ".time_conv", c, c, (3, 1, 1))
        else:  # Upsample + Conv2d(c, c/2, 3)
            conv(p + ".resample.1", c, c // 2, (3, 3))
            if mode == "upsample3d":
                conv(p + ".time_conv", c, 2 * c, (3, 1, 1))

    # encoder
    dims = [dim * u for u in [1] + dim_mult]
    conv("encoder.conv1", 3, dims[0], (3, 3, 3))
    idx = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        for _ in range(num_res_blocks):
            res(f"encoder.downsamples.{idx}", cin, cout)
            cin, idx = cout, idx + 1
        if i != len(dim_mult) - 1:
            resample(f"encoder.downsamples.{idx}", cout, "downsample3d" if temperal_downsample[i] else "downsample2d")
            idx += 1
    c = dims[-1]
    res("encoder.middle.0", c, c)
    attn("encoder.middle.1", c)
    res("encoder.middle.2", c, c)
    out["encoder.head.0.gamma"] = (c, 1, 1, 1)
    conv("encoder.head.2", c, 2 * z_dim, (3, 3, 3))
    # quant / post-quant
    conv("conv1", 2 * z_dim, 2 * z_dim, (1, 1, 1))
    conv("conv2", z_dim, z_dim, (1, 1, 1))
    # decoder
    dims = [dim * u for u in [dim_mult[-1]] + dim_mult[::-1]]
    temperal_upsample = temperal_downsample[::-1]
    conv("decoder.conv1", z_dim, dims[0], (3, 3, 3))
    c = dims[0]
    res("decoder.middle.0", c, c)
    attn("decoder.middle.1", c)
    res("decoder.middle.2", c, c)
    idx = 0
    for i, (cin, cout) in enumerate(zip(dims[:-1], dims[1:])):
        if i in (1, 2, 3):
            cin //= 2  # the previous upsample halved the channels
        for _ in range(num_res_blocks + 1):
            res(f"decoder.upsamples.{idx}", cin, cout)
            cin, idx = cout, idx + 1
        if i != len(dim_mult) - 1:
            resample(f"decoder.upsamples.{idx}", cout, "upsample3d" if temperal_upsample[i] else "upsample2d")
            idx += 1
    out["decoder.head.0.gamma"] = (dims[-1], 1, 1, 1)
    conv("decoder.head.2", dims[-1], 3, (3, 3, 3))
    return out


RES_MAP = [
    ("residual.0.gamma", "norm1.gamma"),
    ("residual.2.", "conv1."),
    ("residual.3.gamma", "norm2.gamma"),
    ("residual.6.", "conv2."),
    ("shortcut.", "conv_shortcut."),
]


def _res(tail):
    for a, b in RES_MAP:
        if tail.startswith(a):
            return b + tail[len(a):]
    return tail  # resample.1.* / time_conv.* keep their names


def vae_orig_to_diffusers(key):
    """The original → diffusers VAE key map (num_res_blocks = 2)."""
    if key.startswith("conv1."):
        return "quant_conv." + key[len("conv1."):]
    if key.startswith("conv2."):
        return "post_quant_conv." + key[len("conv2."):]
    part, rest = key.split(".", 1)  # encoder / decoder
    assert part in ("encoder", "decoder"), key
    if rest.startswith("conv1."):
        return f"{part}.conv_in.{rest[len('conv1.'):]}"
    if rest.startswith("head.0.gamma"):
        return f"{part}.norm_out.gamma"
    if rest.startswith("head.2."):
        return f"{part}.conv_out.{rest[len('head.2.'):]}"
    if rest.startswith("middle."):
        _, i, tail = rest.split(".", 2)
        if i == "1":
            return f"{part}.mid_block.attentions.0.{tail}"
        return f"{part}.mid_block.resnets.{int(i) // 2}.{_res(tail)}"
    if rest.startswith("downsamples."):
        _, i, tail = rest.split(".", 2)
        return f"{part}.down_blocks.{i}.{_res(tail)}"
    if rest.startswith("upsamples."):
        _, i, tail = rest.split(".", 2)
        block, j = divmod(int(i), 4)
        if j == 3:
            return f"{part}.up_blocks.{block}.upsamplers.0.{tail}"
        return f"{part}.up_blocks.{block}.resnets.{j}.{_res(tail)}"
    raise KeyError(key)


def init_vae_(vae, gain):
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
            else:
                fan_in = math.prod(p.shape[1:])
                p.copy_(gain * torch.randn_like(p) / math.sqrt(fan_in))
    bf16_round_(vae)


def stream_encode(vae, video, chunks):
    """Encoder called once per pixel-frame chunk with a feature cache kept across calls."""
    cache = [None] * vae._cached_conv_counts["encoder"]
    outs = []
    for a, b in chunks:
        outs.append(vae.encoder(video[:, :, a:b], feat_cache=cache, feat_idx=[0]))
    return vae.quant_conv(torch.cat(outs, 2))[:, : vae.config.z_dim]


def stream_decode(vae, z, chunks):
    """Decoder called once per latent-frame chunk with a feature cache kept across calls (z: raw, un-normalised)."""
    cache = [None] * vae._cached_conv_counts["decoder"]
    outs = []
    for n, (a, b) in enumerate(chunks):
        x = vae.post_quant_conv(z[:, :, a:b])
        outs.append(vae.decoder(x, feat_cache=cache, feat_idx=[0], first_chunk=(n == 0)))
    return torch.cat(outs, 2).clamp(-1.0, 1.0)


def gen_vae(args):
    torch.manual_seed(SEED)
    vae = AutoencoderKLWan(**VAE_CONFIG).eval()
    init_vae_(vae, gain=1.0)
    sd = plain(vae.state_dict())

    # key map: original keys → diffusers keys must be a shape-keeping bijection
    layout = original_vae_layout(
        VAE_CONFIG["base_dim"], VAE_CONFIG["z_dim"], VAE_CONFIG["dim_mult"], VAE_CONFIG["num_res_blocks"],
        VAE_CONFIG["temperal_downsample"],
    )
    fwd = {k: vae_orig_to_diffusers(k) for k in layout}
    assert len(set(fwd.values())) == len(fwd), "original → diffusers map is not injective"
    assert set(fwd.values()) == set(sd), (set(fwd.values()) ^ set(sd))
    inv = {d: o for o, d in fwd.items()}
    for d, o in inv.items():
        assert tuple(sd[d].shape) == tuple(layout[o]), (o, d, tuple(sd[d].shape), layout[o])
    orig = {o: sd[fwd[o]] for o in layout}  # Wan's module order, as in Wan2.1_VAE.pth
    print(f"VAE key map ({len(orig)} tensors; original -> diffusers, shape):")
    for o in layout:
        print(f"  {o:42s} -> {fwd[o]:52s} {list(layout[o])}")

    with tempfile.TemporaryDirectory() as tmp:
        vae.save_config(tmp)
        shutil.copy(os.path.join(tmp, "config.json"), f"{OUT}/vae_tiny_config.json")
    save_file(sd, f"{OUT}/vae_tiny_diffusers_f32.safetensors")
    torch.save(orig, f"{OUT}/vae_tiny_original_f32.pth")
    save_file(bf16(orig), f"{OUT}/vae_tiny_original_bf16.safetensors")
    back = load_file(f"{OUT}/vae_tiny_original_bf16.safetensors")
    assert all(torch.equal(back[k].float(), orig[k]) for k in orig), "bf16 file differs from f32 weights"

    # case
    g = torch.Generator().manual_seed(SEED + 1)
    video = torch.rand(1, 3, 9, 32, 48, generator=g) * 2.0 - 1.0
    latents_in = torch.randn(1, 16, 3, 4, 6, generator=g)
    mean = torch.tensor(vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 16, 1, 1, 1)
    with torch.no_grad():
        mu = vae.encode(video).latent_dist.mean
        latents = (mu - mean) / std
        decoded = vae.decode(latents_in * std + mean).sample
        decoded_from_mu = vae.decode(mu).sample
        # streaming sanity checks (persistent cache across separate calls)
        s_enc = stream_encode(vae, video, [(0, 1), (1, 5), (5, 9)])
        s_enc2 = stream_encode(vae, video, [(0, 1), (1, 9)])
        z = latents_in * std + mean
        s_dec = stream_decode(vae, z, [(0, 1), (1, 2), (2, 3)])
        s_dec2 = stream_decode(vae, z, [(0, 1), (1, 3)])
    assert tuple(mu.shape) == (1, 16, 3, 4, 6) and tuple(decoded.shape) == (1, 3, 9, 32, 48)
    for name, t in [("mu", mu), ("decoded", decoded), ("decoded_from_mu", decoded_from_mu)]:
        assert torch.isfinite(t).all(), name
    clamped = (decoded.abs() == 1.0).float().mean().item()
    clamped_mu = (decoded_from_mu.abs() == 1.0).float().mean().item()
    print(
        f"VAE: |mu| max {mu.abs().max():.4f} std {mu.std():.4f}; decoded std {decoded.std():.4f}, "
        f"at ±1: {100 * clamped:.2f}% (decoded), {100 * clamped_mu:.2f}% (decoded_from_mu)"
    )
    assert clamped < 0.2 and clamped_mu < 0.2, "decoder output mostly clamped: lower the init gain"
    print(f"VAE streaming encode 1,4,4 pixel frames/call vs encode: max|d| {maxdiff(s_enc, mu):.3g}")
    print(f"VAE streaming encode 1,8 pixel frames/call vs encode:   max|d| {maxdiff(s_enc2, mu):.3g}")
    print(f"VAE streaming decode 1,1,1 latent frames/call vs decode: max|d| {maxdiff(s_dec, decoded):.3g}")
    print(f"VAE streaming decode 1,2 latent frames/call vs decode:   max|d| {maxdiff(s_dec2, decoded):.3g}")
    save_file(
        {
            "video": video,
            "mu": mu.contiguous(),
            "latents": latents.contiguous(),
            "latents_in": latents_in,
            "decoded": decoded.contiguous(),
            "decoded_from_mu": decoded_from_mu.contiguous(),
        },
        f"{OUT}/vae_case.safetensors",
    )
    if args.wan_repo:
        check_vae_against_wan(args.wan_repo, orig, video, latents, latents_in, decoded, mean, std)


# ----------------------------------------------------------------------------------------------
# UMT5
# ----------------------------------------------------------------------------------------------


def t5_to_original(key):
    """transformers UMT5EncoderModel key → Wan t5.py T5Encoder key (Wan2.1's wan/modules/t5.py); None = tied copy."""
    if key == "shared.weight":
        return "token_embedding.weight"
    if key == "encoder.embed_tokens.weight":
        return None
    if key == "encoder.final_layer_norm.weight":
        return "norm.weight"
    _, _, n, _, layer, tail = key.split(".", 5)  # encoder.block.N.layer.L.tail
    table = {
        ("0", "layer_norm.weight"): "norm1.weight",
        ("0", "SelfAttention.q.weight"): "attn.q.weight",
        ("0", "SelfAttention.k.weight"): "attn.k.weight",
        ("0", "SelfAttention.v.weight"): "attn.v.weight",
        ("0", "SelfAttention.o.weight"): "attn.o.weight",
        ("0", "SelfAttention.relative_attention_bias.weight"): "pos_embedding.embedding.weight",
        ("1", "layer_norm.weight"): "norm2.weight",
        ("1", "DenseReluDense.wi_0.weight"): "ffn.gate.0.weight",
        ("1", "DenseReluDense.wi_1.weight"): "ffn.fc1.weight",
        ("1", "DenseReluDense.wo.weight"): "ffn.fc2.weight",
    }
    return f"blocks.{n}.{table[(layer, tail)]}"


def wan_t5_order(n_layers):
    keys = ["token_embedding.weight"]
    for n in range(n_layers):
        keys += [
            f"blocks.{n}.{k}"
            for k in [
                "norm1.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
                "norm2.weight", "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight",
                "pos_embedding.embedding.weight",
            ]
        ]
    return keys + ["norm.weight"]


def init_t5_(model):
    with torch.no_grad():
        for name, p in model.named_parameters():  # the tied embedding appears once
            if name.endswith("shared.weight") or name.endswith("embed_tokens.weight"):
                p.copy_(torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(0.5 * torch.randn_like(p))
            elif "layer_norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    bf16_round_(model)


def fp8_info(t):
    b = t.view(torch.uint8)
    sub = ((b & 0x78) == 0) & ((b & 0x07) != 0)
    big = t.float().abs() >= 384.0
    return b, int(sub.sum()), int(big.sum())


def gen_umt5(args):
    torch.manual_seed(SEED + 2)
    config = UMT5Config(**UMT5_CONFIG)
    assert config.dense_act_fn == "gelu_new" and config.is_gated_act
    model = UMT5EncoderModel(config).eval()
    act = model.encoder.block[0].layer[1].DenseReluDense.act
    assert type(act).__name__ == "NewGELUActivation", type(act)
    init_t5_(model)

    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        print("UMT5 save_pretrained wrote:", sorted(os.listdir(tmp)))
        shutil.copy(os.path.join(tmp, "model.safetensors"), f"{OUT}/umt5_tiny_transformers_f32.safetensors")
        shutil.copy(os.path.join(tmp, "config.json"), f"{OUT}/umt5_tiny_config.json")
    saved = load_file(f"{OUT}/umt5_tiny_transformers_f32.safetensors")
    print(f"UMT5 transformers keys as saved ({len(saved)}):")
    for k in sorted(saved):
        print(f"  {k:64s} {str(saved[k].dtype):14s} {list(saved[k].shape)}")

    sd = plain(model.state_dict())
    orig = {}
    for k, v in sd.items():
        o = t5_to_original(k)
        if o is None:
            assert torch.equal(v, sd["shared.weight"])
            continue
        orig[o] = v
    order = wan_t5_order(UMT5_CONFIG["num_layers"])
    assert set(order) == set(orig), set(order) ^ set(orig)
    orig = {k: orig[k] for k in order}
    assert orig["blocks.0.pos_embedding.embedding.weight"].shape == (32, UMT5_CONFIG["num_heads"])
    torch.save(bf16(orig), f"{OUT}/umt5_tiny_original_bf16.pth")
    save_file(orig, f"{OUT}/umt5_tiny_original_f32.safetensors")

    # case: row 0 has 16 valid tokens, row 1 has 9 then pad (0); each row's last valid id is </s> = 1
    g = torch.Generator().manual_seed(SEED + 3)
    lens = [16, 9]
    ids = torch.zeros(2, 16, dtype=torch.int64)
    mask = torch.zeros(2, 16, dtype=torch.int64)
    for r, n in enumerate(lens):
        ids[r, : n - 1] = torch.randint(3, 1000, (n - 1,), generator=g)
        ids[r, n - 1] = 1
        mask[r, :n] = 1
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    context = hidden.clone()
    for r, n in enumerate(lens):
        context[r, n:] = 0.0
    assert torch.isfinite(hidden).all()
    print(f"UMT5: hidden {list(hidden.shape)} std {hidden.std():.4f} max|h| {hidden.abs().max():.4f}")
    save_file(
        {"input_ids": ids, "attention_mask": mask, "hidden": hidden.contiguous(), "context": context},
        f"{OUT}/umt5_case.safetensors",
    )

    attn0 = model.encoder.block[0].layer[0].SelfAttention
    assert not attn0.is_decoder  # bidirectional buckets
    rel = torch.arange(-1100, 1101, dtype=torch.int64)
    bucket = attn0._relative_position_bucket(rel).to(torch.int64)
    save_file({"relative_position": rel, "bucket": bucket}, f"{OUT}/umt5_buckets.safetensors")
    print(f"UMT5 buckets: {len(rel)} positions, {bucket.unique().numel()} distinct buckets, "
          f"range {bucket.min().item()}..{bucket.max().item()}")

    # fp8 (ComfyUI scaled-fp8 convention for block 0; plain casts elsewhere)
    fp8, deq = {}, {}
    matrix = ("attn.q.weight", "attn.k.weight", "attn.v.weight", "attn.o.weight",
              "ffn.gate.0.weight", "ffn.fc1.weight", "ffn.fc2.weight")
    for k, w in orig.items():
        if k.startswith("blocks.0.") and k.endswith(matrix):
            scale = (w.abs().max() / FP8_MAX).to(torch.float32).reshape(())
            q = (w / scale).to(torch.float8_e4m3fn)
            fp8[k] = q
            fp8[k[: -len("weight")] + "scale_weight"] = scale
            deq[k] = q.to(torch.float32) * scale
        elif k == "token_embedding.weight" or k.endswith(matrix):
            q = w.to(torch.float8_e4m3fn)
            fp8[k] = q
            deq[k] = q.to(torch.float32)
        else:  # norms, pos_embedding
            fp8[k] = w
            deq[k] = w
    fp8["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    all_bytes, n_sub, n_big = [], 0, 0
    for k, t in fp8.items():
        if t.dtype == torch.float8_e4m3fn and t.numel():
            assert not torch.isnan(t.float()).any(), k
            b, s, bg = fp8_info(t)
            all_bytes.append(b.flatten())
            n_sub, n_big = n_sub + s, n_big + bg
            print(f"  fp8 {k:34s} {list(t.shape)} subnormal {s:5d}  |v|>=384 {bg:3d}"
                  + (f"  scale {fp8[k[:-6] + 'scale_weight'].item():.6g}" if k[:-6] + "scale_weight" in fp8 else ""))
    distinct = torch.cat(all_bytes).unique().numel()
    print(f"UMT5 fp8: {distinct} distinct fp8 byte values, {n_sub} subnormals, {n_big} values with |v|>=384")
    assert n_sub > 0 and n_big > 0
    save_file(fp8, f"{OUT}/umt5_tiny_fp8_e4m3fn.safetensors")
    save_file(deq, f"{OUT}/umt5_fp8_dequant.safetensors")
    err = max(maxdiff(deq[k], orig[k]) / orig[k].abs().max().item() for k in deq)
    print(f"UMT5 fp8 dequant vs bf16 weights: max relative-to-absmax error {err:.3g}")

    if args.wan_repo:
        check_t5_against_wan(args.wan_repo, orig, ids, mask, hidden, rel, bucket)


# ----------------------------------------------------------------------------------------------
# optional cross-check against the original Wan code
# ----------------------------------------------------------------------------------------------


def import_wan(repo, name):
    pkg = "_wan_modules"
    if pkg not in sys.modules:
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(repo, "wan", "modules")]
        sys.modules[pkg] = m
        tok = types.ModuleType(pkg + ".tokenizers")  # t5.py imports it; it needs ftfy etc.
        tok.HuggingfaceTokenizer = object
        sys.modules[pkg + ".tokenizers"] = tok
    current_device = torch.cuda.current_device  # t5.py calls it in a default argument
    torch.cuda.current_device = lambda: "cpu"
    try:
        return importlib.import_module(f"{pkg}.{name}")
    finally:
        torch.cuda.current_device = current_device


def check_vae_against_wan(repo, orig, video, latents, latents_in, decoded, mean, std):
    vae_mod = import_wan(repo, "vae")
    c = VAE_CONFIG
    ref = vae_mod.WanVAE_(dim=c["base_dim"], z_dim=c["z_dim"], dim_mult=c["dim_mult"],
                          num_res_blocks=c["num_res_blocks"], attn_scales=c["attn_scales"],
                          temperal_downsample=c["temperal_downsample"]).eval()
    ref_sd = ref.state_dict()
    ref.load_state_dict(torch.load(f"{OUT}/vae_tiny_original_f32.pth"), strict=True)
    assert all(ref_sd[k].shape == v.shape for k, v in orig.items())
    scale = [mean.flatten(), 1.0 / std.flatten()]
    with torch.no_grad():
        z = ref.encode(video, scale)
        x = ref.decode(latents_in, scale).clamp(-1, 1)
    print(f"Wan WanVAE_ (strict load of original keys, same order: {list(ref_sd) == list(orig)}): "
          f"encode vs latents max|d| {maxdiff(z, latents):.3g}, decode vs decoded max|d| {maxdiff(x, decoded):.3g}")


def check_t5_against_wan(repo, orig, ids, mask, hidden, rel, bucket):
    t5 = import_wan(repo, "t5")
    c = UMT5_CONFIG
    ref = t5.T5Encoder(vocab=c["vocab_size"], dim=c["d_model"], dim_attn=c["num_heads"] * c["d_kv"],
                       dim_ffn=c["d_ff"], num_heads=c["num_heads"], num_layers=c["num_layers"],
                       num_buckets=c["relative_attention_num_buckets"], shared_pos=False, dropout=0.0).eval()
    same_order = list(ref.state_dict()) == list(orig)
    ref.load_state_dict(torch.load(f"{OUT}/umt5_tiny_original_bf16.pth"), strict=True)
    ref.float()
    with torch.no_grad():
        h = ref(ids, mask)
    wb = ref.blocks[0].pos_embedding._relative_position_bucket(rel)
    print(f"Wan T5Encoder (strict load of original keys, same order: {same_order}): hidden max|d| "
          f"{maxdiff(h, hidden):.3g}; buckets equal: {torch.equal(wb, bucket)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wan-repo", help="checkout of Wan-Video/Wan2.1 for an extra cross-check (optional)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    gen_vae(args)
    gen_umt5(args)


if __name__ == "__main__":
    main()
