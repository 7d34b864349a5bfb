#!/usr/bin/env python3
"""PyTorch side of the light-VAE benchmarks: the references on the shapes `engine bench-vae --vae …`
times, with made-up weights.

  * tae (and lighttae, the same network): madebyollin/taehv `taehv.py` (../shared/reference/taehv/ or
    --taehv PATH), chunk-parallel (`parallel=True`, all frames of a call through each layer at once):
      first  = decode_video of one latent (→ 1 frame after the 3-frame trim)
      next   = the decoder over one later latent (→ 4 frames)
      chunk  = the decoder over three later latents in one call (→ 12 frames)
      encode = encode_video of 4 frames (→ 1 latent)
    (A later call differs from a first one only in the block memory it reads; the work is the same.)
  * lightvae: the original Wan2.1 VAE definition at width 24 (DiffSynth's `VideoVAE_`, as the goldens
    use), with its per-convolution feature cache: first / next latent decoded one at a time as the
    Wan VAE streams, chunk = three later latents, encode = the 4 frames after a stream's first.

Prints a markdown table (median of --iters timed runs after one warm-up run) like the engine's.

Run: python engine/scripts/bench_light_vae_torch.py --vae tae --device cpu --iters 3 [--height 480 --width 832]
"""

import argparse
import copy
import importlib.util
import os
import statistics
import sys
import time
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def load_by_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def no_tqdm():
    if importlib.util.find_spec("tqdm") is None:
        tqdm, auto = types.ModuleType("tqdm"), types.ModuleType("tqdm.auto")
        auto.tqdm = lambda it=None, **_: it if it is not None else range(0)
        tqdm.auto = auto
        sys.modules["tqdm"], sys.modules["tqdm.auto"] = tqdm, auto


def timer(device, iters, fn):
    def sync():
        if device.type == "cuda":
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


def tae_rows(args, device, dtype):
    no_tqdm()
    ref = load_by_path("taehv", args.taehv)
    model = ref.TAEHV(checkpoint_path=None).to(device, dtype).eval()
    h, w = args.height // 8, args.width // 8
    z1 = torch.randn(1, 1, 16, h, w, device=device, dtype=dtype)
    z3 = torch.randn(1, 3, 16, h, w, device=device, dtype=dtype)
    x4 = torch.rand(1, 4, 3, args.height, args.width, device=device, dtype=dtype)
    par = ref.apply_model_with_memblocks_parallel
    return {
        "first": lambda: model.decode_video(z1, parallel=True, show_progress_bar=False),
        "next": lambda: par(model.decoder, z1, False),
        "chunk": lambda: par(model.decoder, z3, False),
        "encode": lambda: model.encode_video(x4, parallel=True, show_progress_bar=False),
    }


def lightvae_rows(args, device, dtype):
    path = args.wan_vae or os.path.join(
        importlib.util.find_spec("diffsynth").submodule_search_locations[0], "models", "wan_video_vae.py")
    wan = load_by_path("wan_video_vae", path)
    model = wan.VideoVAE_(dim=24, z_dim=16).to(device, dtype).eval()
    h, w = args.height // 8, args.width // 8
    z = model.conv2(torch.randn(1, 16, 4, h, w, device=device, dtype=dtype))
    video = torch.rand(1, 3, 5, args.height, args.width, device=device, dtype=dtype) * 2 - 1

    def decode_from(cache, lo, hi):
        cache = copy.copy(cache)
        for i in range(lo, hi):
            _, cache, _ = model.decoder(z[:, :, i:i + 1], feat_cache=cache, feat_idx=[0])
        return cache

    def encode_from(cache, frames):
        return model.encoder(frames, feat_cache=copy.copy(cache), feat_idx=[0])

    model.clear_cache()
    fresh_dec = [None] * model._conv_num
    fresh_enc = [None] * model._enc_conv_num
    after_first = decode_from(fresh_dec, 0, 1)
    _, enc_after_first, _ = encode_from(fresh_enc, video[:, :, :1])
    return {
        "first": lambda: decode_from(fresh_dec, 0, 1),
        "next": lambda: decode_from(after_first, 1, 2),
        "chunk": lambda: decode_from(after_first, 1, 4),
        "encode": lambda: encode_from(enc_after_first, video[:, :, 1:5]),
    }


LABELS = {
    "first": "decode first latent frame → 1 frame {}",
    "next": "decode next latent frame → 4 frames {}",
    "chunk": "decode next 3 latent frames → 12 frames {}",
    "encode": "encode next 4 frames → 1 latent frame {}",
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vae", choices=["tae", "lighttae", "lightvae"], default="tae")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=["f32", "bf16", "f16"], default="f32")
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rows", default="first,next,chunk,encode")
    ap.add_argument("--taehv", default=os.path.join(HERE, "..", "..", "..", "shared", "reference", "taehv", "taehv.py"))
    ap.add_argument("--wan-vae", help="DiffSynth's wan_video_vae.py (default: the installed diffsynth's)")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[args.dtype]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(0)
    with torch.no_grad():
        rows = (lightvae_rows if args.vae == "lightvae" else tae_rows)(args, device, dtype)
        size = f"{args.height}×{args.width}"
        print(f"PyTorch {torch.__version__} {args.vae} on {device} "
              f"({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
              f"{args.dtype}")
        print("| op | ms |\n|---|---|")
        for r in args.rows.split(","):
            ms = timer(device, args.iters, rows[r])
            print(f"| {LABELS[r].format(size)} | {ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
