#!/usr/bin/env python3
"""Golden files for the light VAE tests: TAEHV (taew2_1, lighttaew2_1) and LightVAE (lightvaew2_1).

References (CPU, float32, no_grad):
  * TAEHV: madebyollin/taehv `taehv.py` at 1f14a56 (MIT), the copy in ../shared/reference/taehv/
    (--taehv PATH for another).
  * LightVAE: the Wan2.1 causal VAE with 75 % of every stage's channels pruned (LightX2V's
    `pruning_rate = 0.75`: every width int(d · 0.25), encoder [24, 24, 48, 96, 96], decoder
    [96, 96, 96, 48, 24]), i.e. the original Wan2.1 VAE definition at dim 24. The definition used is
    DiffSynth-Studio's copy of the original Wan code (`diffsynth/models/wan_video_vae.py`,
    `VideoVAE_`; pip package diffsynth 2.1.12, loaded by file path), not diffusers.

The models are too large to commit as weights (TAEHV 11.3 M parameters, LightVAE 8 M), so every
parameter is made by a formula that the Rust tests repeat bit for bit (`formula` in
`engine/tests/common`): for a tensor named `key` with n elements,

    seed  = FNV-1a 64 of the key's UTF-8 bytes
    h(i)  = splitmix64-style mix of (seed XOR i·0x9E3779B97F4A7C15), i = 0..n-1 (u64, wrapping)
    u(i)  = (h(i) >> 11) / 2^53                            in [0, 1), exact in f64
    value = f32(1 + 0.1 · (2u − 1))   for RMS-norm gammas (keys ending in `gamma`)
            f32(0.05 · (2u − 1))      for other 1-D tensors (biases)
            f32(sqrt(3 / fan_in) · (2u − 1))  otherwise (fan_in = shape[1:] product: variance 1/fan_in)
    (computed in f64, rounded once)

so only inputs and outputs are stored, plus each reference model's key list and shapes: the engine's
loaders must ask for exactly those.

Writes to engine/tests/goldens/:
  tae_keys.json          {"keys": [[name, shape], …]} of TAEHV(checkpoint_path=None) (Wan2.1: patch 1, 16 latents)
  tae_case.safetensors   video   [1, 8, 3, 32, 48]  in [0, 1] (NTCHW, as the reference takes it)
                         latents [1, 3, 16, 4, 6]   N(0, 1), normalised Wan latents
                         encoded        = encode_video(video)                 [1, 2, 16, 4, 6]
                         decoded        = decode_video(latents)               [1, 9, 3, 32, 48] (4·3 − 3 frames)
                         decoded_preview = decode_video(latents) of TAEHV(decoder_time_upscale=(False, False))
                                          with the same weights through patch_tgrow_layers
                                          [1, 3, 3, 32, 48] (3 latents → 3 frames, frames_to_trim = 0)
                         light_encoded  = (encode_video(video) − mean) / std  (lighttaew2_1 as scope uses it)
                         light_decoded  = decode_video(latents · std + mean)
                         video2 [2, 8, 3, 16, 24], latents2 [2, 3, 16, 2, 3]: two different clips
                         encoded2, decoded2 = encode_video(video2), decode_video(latents2)
  lightvae_keys.json     the keys and shapes of VideoVAE_(dim=24) (original Wan2.1 VAE keys)
  lightvae_case.safetensors
                         video    [1, 3, 9, 32, 48] in [-1, 1] (NCTHW, the Wan VAE's layout)
                         latents  = encode(video), normalised (μ − mean)/std   [1, 16, 3, 4, 6]
                         latents_in N(0, 1)                                      [1, 16, 3, 4, 6]
                         decoded  = decode(latents_in), clamped to [-1, 1]       [1, 3, 9, 32, 48]
Also checks (stdout): the reference's parallel and sequential paths agree, and StreamingTAEHV gives the
same frames as decode_video.

Run: python3 -m venv /tmp/tv && /tmp/tv/bin/pip install torch safetensors numpy tqdm einops &&
     /tmp/tv/bin/pip install --no-deps diffsynth==2.1.12 &&
     /tmp/tv/bin/python engine/scripts/gen_light_vae_goldens.py
"""

import argparse
import importlib.util
import json
import os
import sys
import types

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "goldens")
MASK = (1 << 64) - 1

# Wan2.1's 16 latent channel means and stds (Wan2.1's `wan/modules/vae.py`, diffusers' `latents_mean` / `latents_std`).
MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
        0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
       3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & MASK
    return h


def formula(key, shape):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = np.uint64(fnv1a64(key)) ^ (i * np.uint64(0x9E3779B97F4A7C15))
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        h = h ^ (h >> np.uint64(31))
    u = (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    if key.endswith("gamma"):
        v = 1.0 + 0.1 * (2.0 * u - 1.0)
    elif len(shape) == 1:
        v = 0.05 * (2.0 * u - 1.0)
    else:
        v = float(np.sqrt(3.0 / float(np.prod(shape[1:])))) * (2.0 * u - 1.0)
    return torch.from_numpy(v.astype(np.float32).reshape(shape))


def load_reference(path):
    # taehv.py imports tqdm only for progress bars.
    if importlib.util.find_spec("tqdm") is None:
        tqdm = types.ModuleType("tqdm")
        auto = types.ModuleType("tqdm.auto")

        class _Bar:
            def __init__(self, it=None, **_):
                self.it = it

            def __iter__(self):
                return iter(self.it)

            def update(self, *_):
                pass

            def close(self):
                pass

        auto.tqdm = _Bar
        tqdm.auto = auto
        sys.modules["tqdm"], sys.modules["tqdm.auto"] = tqdm, auto
    return load_by_path("taehv", path)


def load_by_path(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def write_keys(name, keys):
    rows = ",\n".join("  " + json.dumps(k) for k in keys)
    with open(os.path.join(OUT, name), "w") as f:
        f.write('{"keys": [\n' + rows + "\n]}\n")


def light_vae(path):
    """LightVAE: the original Wan2.1 VAE definition at a quarter of its width."""
    wan = load_by_path("wan_video_vae", path)
    torch.manual_seed(1)
    model = wan.VideoVAE_(dim=24, z_dim=16).eval()
    sd = {k: formula(k, list(v.shape)) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    scale = [mean, 1.0 / std]
    video = torch.rand(1, 3, 9, 32, 48) * 2 - 1
    latents_in = torch.randn(1, 16, 3, 4, 6)
    with torch.no_grad():
        latents = model.encode(video, scale)
        decoded = model.decode(latents_in, scale).clamp(-1, 1)
    print(f"lightvae: {sum(int(np.prod(s)) for _, s in keys)} parameters; latents {tuple(latents.shape)} "
          f"std {latents.std():.4f}; decoded {tuple(decoded.shape)} std {decoded.std():.4f} "
          f"clamped {(decoded.abs() == 1).float().mean():.3f}")
    write_keys("lightvae_keys.json", keys)
    save_file({
        "video": video.contiguous(),
        "latents": latents.contiguous(),
        "latents_in": latents_in.contiguous(),
        "decoded": decoded.contiguous(),
    }, os.path.join(OUT, "lightvae_case.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--taehv", default=os.path.join(HERE, "..", "..", "..", "shared", "reference", "taehv", "taehv.py"))
    ap.add_argument("--wan-vae", help="DiffSynth's wan_video_vae.py (default: the installed diffsynth package's)")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    wan_vae = args.wan_vae or os.path.join(
        importlib.util.find_spec("diffsynth").submodule_search_locations[0], "models", "wan_video_vae.py")
    light_vae(wan_vae)

    ref = load_reference(args.taehv)
    torch.manual_seed(0)

    model = ref.TAEHV(checkpoint_path=None).eval()
    sd = {k: formula(k, list(v.shape)) for k, v in model.state_dict().items()}
    model.load_state_dict(sd)
    keys = [[k, list(v.shape)] for k, v in model.state_dict().items()]

    preview = ref.TAEHV(checkpoint_path=None, decoder_time_upscale=(False, False)).eval()
    preview.load_state_dict(preview.patch_tgrow_layers(dict(sd)))

    video = torch.rand(1, 8, 3, 32, 48)
    latents = torch.randn(1, 3, 16, 4, 6)
    # A batch of two different clips (smaller frames), so batch and time cannot be mixed up.
    video2 = torch.rand(2, 8, 3, 16, 24)
    latents2 = torch.randn(2, 3, 16, 2, 3)
    mean = torch.tensor(MEAN).view(1, 1, 16, 1, 1)
    std = torch.tensor(STD).view(1, 1, 16, 1, 1)
    with torch.no_grad():
        encoded = model.encode_video(video, parallel=True, show_progress_bar=False)
        decoded = model.decode_video(latents, parallel=True, show_progress_bar=False)
        decoded_preview = preview.decode_video(latents, parallel=True, show_progress_bar=False)
        light_encoded = (encoded - mean) / std
        light_decoded = model.decode_video(latents * std + mean, parallel=True, show_progress_bar=False)
        encoded2 = model.encode_video(video2, parallel=True, show_progress_bar=False)
        decoded2 = model.decode_video(latents2, parallel=True, show_progress_bar=False)

        # Self-checks of the reference's own paths.
        seq_e = model.encode_video(video, parallel=False, show_progress_bar=False)
        seq_d = model.decode_video(latents, parallel=False, show_progress_bar=False)
        streaming = ref.StreamingTAEHV(model)
        frames = []
        for t in range(latents.shape[1]):
            f = streaming.decode(latents[:, t:t + 1])
            while f is not None:
                frames.append(f)
                f = streaming.decode()
        stream_d = torch.cat(frames, 1)
    print(f"encoded {tuple(encoded.shape)} std {encoded.std():.4f}; decoded {tuple(decoded.shape)} "
          f"mean {decoded.mean():.4f} std {decoded.std():.4f} "
          f"clamped {((decoded == 0) | (decoded == 1)).float().mean():.3f}; "
          f"preview {tuple(decoded_preview.shape)} std {decoded_preview.std():.4f}")
    print(f"reference parallel vs sequential: encode {(encoded - seq_e).abs().max():.2e}, "
          f"decode {(decoded - seq_d).abs().max():.2e}; StreamingTAEHV vs decode_video "
          f"{(stream_d - decoded).abs().max():.2e}")

    write_keys("tae_keys.json", keys)
    save_file({
        "video": video.contiguous(),
        "latents": latents.contiguous(),
        "encoded": encoded.contiguous(),
        "decoded": decoded.contiguous(),
        "decoded_preview": decoded_preview.contiguous(),
        "light_encoded": light_encoded.contiguous(),
        "light_decoded": light_decoded.contiguous(),
        "video2": video2.contiguous(),
        "latents2": latents2.contiguous(),
        "encoded2": encoded2.contiguous(),
        "decoded2": decoded2.contiguous(),
    }, os.path.join(OUT, "tae_case.safetensors"))
    print(f"wrote tae_keys.json ({len(keys)} tensors, "
          f"{sum(int(np.prod(s)) for _, s in keys)} parameters) and tae_case.safetensors")


if __name__ == "__main__":
    main()
