"""Seeds burn-cuda's convolution autotune cache for the Wan2.1 VAE, so the first VAE call on a
fresh GPU machine compiles one kernel per convolution shape instead of benchmarking eight.

burn-cuda 0.21 (cubecl 0.10) autotunes every convolution on first use of each shape key:
it compiles all eight candidate kernels with NVRTC and times them. The Wan VAE issues ~60
distinct keys across decode and encode, which without seeds never finished within a 9-minute
device call (docs/perf.md). cubecl keeps its choices in
`target/autotune/<cubecl version>/device-<i>-<j>-cuda/burn_cubecl-kernel-conv-forward-tune.json.log`
(one JSON object per line) and reads that file at start. This script walks the diffusers
`AutoencoderKLWan` (Wan2.1 config) on PyTorch's `meta` device — shapes only, no compute —
records each convolution the engine issues (a causal 3-D conv is one per-frame 2-D conv over
`out_T` frames with its live time taps folded into the channels, see engine/src/wan/vae/mod.rs), builds cubecl's key for it (the `minimal`
autotune level's anchoring, which the device scripts use) and appends an entry choosing:

- 1×1 kernels: `conv_im2col_1x1` (a matmul; fastest in every measured 1×1 key),
- other kernels with ≥ 16 channels in and out: `simple_sync_mma` (implicit GEMM; within
  ~1.5× of the fastest candidate on every measured 3×3 key and never invalid),
- anything else (the 3-channel image convolutions): `conv_direct`.

Keys already in the file (measured by a real autotune) are kept. A key the engine produces
that is not seeded here is autotuned as before, so a wrong guess costs time, not results.

Usage: python3 seed_cubecl_conv_tune.py [--height 480 --width 832] [--config vae/config.json]
       [--cache-dir target/autotune]
"""

import argparse
import json
import math
import os

import torch
from diffusers import AutoencoderKLWan

# cubecl's TunableSet checksum for burn-cubecl 0.21's conv_autotune (the candidate names).
CHECKSUM = "3a814558ba48fe0f5ed2bfae5af2cfca"
DIRECT, IM2COL_1X1, SYNC_MMA = (0, "conv_direct"), (1, "conv_im2col_1x1"), (3, "simple_sync_mma")
LOG = "burn_cubecl-kernel-conv-forward-tune.json.log"


def anchor(x: int, base: float = 2.5) -> int:
    """cubecl's `anchor(x, None, None, None)` at autotune level `minimal` (base 2 · 1.25)."""
    exp = math.ceil(math.log(x) / math.log(base))
    return math.ceil(base**exp)


def conv_calls(height: int, width: int, config: str | None) -> set:
    """(kernel, stride, padding, c_in, c_out, h, w, n) of every 2-D conv the engine issues
    for a stream's decode (3 latent frames) and encode (9 pixel frames)."""
    with torch.device("meta"):
        if config:
            with open(config) as f:
                vae = AutoencoderKLWan.from_config(json.load(f))
        else:
            vae = AutoencoderKLWan()
    calls = set()

    def hook(mod, inputs, out):
        x = inputs[0]
        if x.dim() == 5:
            # WanCausalConv3d: one per-frame conv2d over out_T frames whose live time taps
            # (1 to kt: the others read only zero padding) sit side by side on the channels.
            kt, kh, kw = mod.kernel_size
            pad = (kh // 2, kw // 2)
            for live in range(1, kt + 1):
                calls.add(((kh, kw), (1, 1), pad, live * x.shape[1], out.shape[1], x.shape[3], x.shape[4],
                           out.shape[2]))
            # The engine runs the 1×1×1 quant convs per chunk, diffusers once per clip.
            if (kt, kh, kw) == (1, 1, 1):
                for n in (1, 4):
                    calls.add(((1, 1), (1, 1), (0, 0), x.shape[1], out.shape[1], x.shape[3], x.shape[4], n))
        else:
            calls.add((tuple(mod.kernel_size), tuple(mod.stride), tuple(mod.padding),
                       x.shape[1], out.shape[1], x.shape[2], x.shape[3], x.shape[0]))

    for m in vae.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d)):
            m.register_forward_hook(hook)
    s = vae.config.scale_factor_spatial if hasattr(vae.config, "scale_factor_spatial") else 8
    with torch.no_grad():
        vae.decode(torch.zeros(1, 16, 3, height // s, width // s, device="meta"))
        vae.encode(torch.zeros(1, 3, 9, height, width, device="meta"))
    return calls


def entry(call, dtype: str):
    (kh, kw), stride, pad, cin, cout, h, w, n = call
    if (kh, kw) == (1, 1) and cin >= 16 and cout >= 16:
        index, name = IM2COL_1X1
    elif cin >= 16 and cout >= 16:
        index, name = SYNC_MMA
    else:
        index, name = DIRECT
    one_by_one = (kh, kw) == (1, 1)
    key = {
        "kernel_size": [kh, kw], "stride": list(stride), "padding": list(pad), "dilation": [1, 1],
        "groups": 1, "in_channels": anchor(cin), "out_channels": anchor(cout),
        "shape": [anchor(h), anchor(w)], "batch_size": anchor(n), "has_bias": False, "dtype": dtype,
        # NCHW tensors seen as NHWC: the input's channel stride is never 1; a 1×1 kernel's is.
        "lhs_shape_align": 0, "lhs_stride_align": 0,
        "rhs_shape_align": 2 if one_by_one else 0, "rhs_stride_align": 2 if one_by_one else 0,
    }
    zero = {"secs": 0, "nanos": 0}
    result = {"outcome": {"Ok": {"name": name, "index": index, "computation": {
        "mean": zero, "median": zero, "variance": zero, "min": zero, "max": zero}}}}
    return {"key": {"key": {"Conv": key}, "checksum": CHECKSUM},
            "value": {"fastest_index": index, "results": [result]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--config", help="a diffusers AutoencoderKLWan config.json [default: Wan2.1's]")
    ap.add_argument("--cache-dir", default="target/autotune")
    ap.add_argument("--device-dir", default="0.10.0/device-0-0-cuda")
    ap.add_argument("--dtype", default="F32", choices=["F32", "BF16", "F16"],
                    help="the VAE's compute dtype (the pipelines run it in bf16 on a GPU)")
    args = ap.parse_args()
    path = os.path.join(args.cache_dir, args.device_dir, LOG)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    have = set()
    if os.path.exists(path):
        for line in open(path):
            if line.strip():
                have.add(json.dumps(json.loads(line)["key"], sort_keys=True))
    added = 0
    with open(path, "a") as f:
        for call in sorted(conv_calls(args.height, args.width, args.config)):
            e = entry(call, args.dtype)
            k = json.dumps(e["key"], sort_keys=True)
            if k not in have:
                have.add(k)
                f.write(json.dumps(e) + "\n")
                added += 1
    print(f"seeded {added} conv keys into {path} ({len(have)} in all)")


if __name__ == "__main__":
    main()
