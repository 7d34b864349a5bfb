#!/usr/bin/env python3
"""PyTorch side of `hanzo-live engine bench-vae` and `bench-text`: the same calls in diffusers
and transformers, random weights, inference mode.

VAE: diffusers `AutoencoderKLWan` (Wan2.1 config), f32 as Wan runs it. Rows as in the Rust
bench: decode of a stream's first latent frame (→ 1 pixel frame), decode of the next latent
frame with the first one's feature cache in place (→ 4 frames), and encode of the next 4
pixel frames after the first one, all at --height × --width. The streaming steps drive
diffusers' own cache (`clear_cache`, `_feat_map`, `_enc_feat_map`) exactly as its `_decode`
and `_encode` loops do.

Text: transformers `UMT5EncoderModel` with UMT5-XXL's config (24 layers, or --layers) in
bf16, built directly in bf16 (11.4 GB), on a --tokens-token prompt: trimmed to its tokens,
and padded to 512 positions with the mask (what Wan and diffusers run).

Timing: wall clock after a warm-up, CUDA synchronised, median of --iters.

Usage: python bench_vae_t5_torch.py [--device cuda|cpu] [--skip-vae] [--skip-text]
       [--height 480 --width 832] [--tokens 32] [--layers 24] [--iters 3] [--json out.json]
       [--vae-dtype f32|bf16 [--check-f32]] [--profile]
"""

import argparse
import json
import statistics
import time

import torch


class Rows(list):
    """Rows, each also printed as soon as it is measured (a run cut short keeps its figures)."""

    def append(self, row):
        print(f"  {row[0]}: {row[1]:.2f} ms", flush=True)
        super().append(row)


def timed(fn, iters, device):
    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    fn()
    sync()
    runs = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        runs.append((time.perf_counter() - t) * 1e3)
    return statistics.median(runs)


def bench_vae(args, rows):
    from diffusers import AutoencoderKLWan

    dev = args.device
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.vae_dtype]
    vae = AutoencoderKLWan().to(dev, dtype).eval()  # Wan2.1 defaults: base_dim 96, z 16
    h, w = args.height // 8, args.width // 8
    z = torch.randn(1, 16, 2, h, w, device=dev, dtype=dtype)
    video = (torch.rand(1, 3, 5, args.height, args.width, device=dev) * 2 - 1).to(dtype)

    def decode_first():
        vae.clear_cache()
        x = vae.post_quant_conv(z[:, :, :1])
        vae._conv_idx = [0]
        vae.decoder(x, feat_cache=vae._feat_map, feat_idx=vae._conv_idx, first_chunk=True)

    def decode_next():
        decode_first_state()
        x = vae.post_quant_conv(z[:, :, 1:2])
        vae._conv_idx = [0]
        vae.decoder(x, feat_cache=vae._feat_map, feat_idx=vae._conv_idx)

    snapshot = {}

    def decode_first_state():
        vae._feat_map = list(snapshot["dec"])

    def encode_next():
        vae._enc_feat_map = list(snapshot["enc"])
        vae._enc_conv_idx = [0]
        out = vae.encoder(video[:, :, 1:5], feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx)
        vae.quant_conv(out)

    with torch.inference_mode():
        rows.append((f"decode first latent frame → 1 frame {args.height}×{args.width}", timed(decode_first, args.iters, dev)))
        decode_first()
        snapshot["dec"] = list(vae._feat_map)
        rows.append((f"decode next latent frame → 4 frames {args.height}×{args.width}", timed(decode_next, args.iters, dev)))
        if args.profile:
            profile(decode_next, "decode next latent frame")
        vae.clear_cache()
        vae._enc_conv_idx = [0]
        vae.encoder(video[:, :, :1], feat_cache=vae._enc_feat_map, feat_idx=vae._enc_conv_idx)
        snapshot["enc"] = list(vae._enc_feat_map)
        rows.append((f"encode next 4 frames → 1 latent frame {args.height}×{args.width}", timed(encode_next, args.iters, dev)))
        if args.check_f32 and dtype != torch.float32:
            # The same weights and latent in f32: how far this dtype moves a first frame.
            # (The f32 model made again from the same seed: unrounded weights, as the
            # engine's --check-f32 compares.)
            vae.clear_cache()
            got = vae.decode(z[:, :, :1]).sample.float()
            torch.manual_seed(0)
            ref = AutoencoderKLWan().to(dev, torch.float32).eval()
            want = ref.decode(z[:, :, :1].float()).sample
            rel = ((got - want).abs().max() / want.abs().max()).item()
            clamped = 100.0 * (want.abs() >= 1.0).float().mean().item()
            print(f"check: decode of a first latent frame in {args.vae_dtype} vs f32: "
                  f"max |Δ| / max |f32| = {rel:.3e} ({clamped:.1f} % of the f32 values clamped)",
                  flush=True)
            del ref
    del vae
    if dev == "cuda":
        torch.cuda.empty_cache()


def profile(fn, what):
    """torch.profiler over one more run of `fn`: the CUDA time per op, largest first."""
    from torch.profiler import ProfilerActivity, profile as prof

    with prof(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as p:
        fn()
        torch.cuda.synchronize()
    print(f"profile of {what} (torch.profiler, one run):", flush=True)
    print(p.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=60), flush=True)


def bench_text(args, rows):
    from transformers import UMT5Config, UMT5EncoderModel

    dev = args.device
    cfg = UMT5Config(
        vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=args.layers, num_heads=64,
        relative_attention_num_buckets=32, relative_attention_max_distance=128,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, layer_norm_epsilon=1e-6,
    )
    t0 = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(dev):
        model = UMT5EncoderModel(cfg).eval()
    torch.set_default_dtype(torch.float32)
    print(f"  random weights in {time.perf_counter() - t0:.1f} s", flush=True)
    n = args.tokens
    ids = (3 + (torch.arange(n) * 7919) % 250000).unsqueeze(0).to(dev)
    padded = torch.zeros(1, 512, dtype=torch.long, device=dev)
    padded[0, :n] = ids[0]
    mask = torch.zeros(1, 512, dtype=torch.long, device=dev)
    mask[0, :n] = 1
    with torch.inference_mode():
        rows.append((f"encode {n}-token prompt (runs {n} positions), {args.layers} layers",
                     timed(lambda: model(input_ids=ids), args.iters, dev)))
        rows.append((f"encode {n}-token prompt padded to 512 positions, {args.layers} layers",
                     timed(lambda: model(input_ids=padded, attention_mask=mask), args.iters, dev)))
    del model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--tokens", type=int, default=32)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--skip-vae", action="store_true")
    p.add_argument("--vae-dtype", choices=["f32", "bf16"], default="f32")
    p.add_argument("--check-f32", action="store_true",
                   help="with --vae-dtype bf16: also decode a first latent frame in f32 (same weights) and print the difference")
    p.add_argument("--profile", action="store_true",
                   help="also print torch.profiler's CUDA time per op for the decode of a later latent")
    p.add_argument("--skip-text", action="store_true")
    p.add_argument("--json")
    args = p.parse_args()
    torch.manual_seed(0)
    rows = Rows()
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}", flush=True)
    if not args.skip_vae:
        bench_vae(args, rows)
    if not args.skip_text:
        bench_text(args, rows)
    print(f"| op | torch {args.device} ms |\n|---|---|")
    for r, ms in rows:
        print(f"| {r} | {ms:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "rows": [{"op": r, "ms": ms} for r, ms in rows]}, f)


if __name__ == "__main__":
    main()
