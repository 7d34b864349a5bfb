#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md): the engine's CUDA VAE and text encoder against
# the tiny goldens, then bench_vae_t5_torch.py and `engine bench-vae` / `bench-text` on the
# same GPU, one after the other. Results go to $OUT (default ./device-out).
# Usage: engine/scripts/device_bench_vae_t5.sh <engine binary built with --features cuda> <wheels dir>
# The engine's side runs with the CUDA ops (cuDNN convolutions in the VAE, cuBLASLt and
# the fused kernels in the text encoder) unless HANZO_LIVE_CUDA_OPS=0 is passed through.
set -uo pipefail
source "$(dirname "$0")/device_setup.sh" "$@"

# burn-cuda keeps its autotune results and compiled PTX under ./target (the project's target
# directory): restore them from an earlier call ($CUBECL_CACHE_IN, a tarball) and save them at
# the end, so a later call skips the first-use cost.
if [ -n "${CUBECL_CACHE_IN:-}" ] && [ -f "$CUBECL_CACHE_IN" ]; then
  tar -xzf "$CUBECL_CACHE_IN" && echo "restored burn-cuda caches from $CUBECL_CACHE_IN"
fi
save_cache() {
  # Only cubecl's two caches: elsewhere ./target also holds whole cargo builds.
  tar -czf "$OUT/cubecl-cache.tgz" $(ls -d target/autotune target/cuda 2>/dev/null) 2>/dev/null
  ls -la target > "$OUT/target_ls.txt"
}
trap save_cache EXIT

# PyTorch first (its figures are the baseline), then burn-cuda. burn-cuda compiles and
# autotunes a kernel per new shape on first use (all 8 conv candidates compiled and timed);
# the VAE has ~60 conv shapes, so its runs use CUBECL_AUTOTUNE_LEVEL=minimal (override with
# VAE_AUTOTUNE) and seed_cubecl_conv_tune.py pre-selects a kernel for each of them
# (SKIP_SEED=1 autotunes them all instead). ./cubecl.toml keeps compiled PTX under ./target.
[ -n "${SKIP_SEED:-}" ] || python3 engine/scripts/seed_cubecl_conv_tune.py 2>&1 | tail -1
[ -n "${SKIP_TORCH:-}" ] || timeout 100 python3 engine/scripts/bench_vae_t5_torch.py --device cuda --iters "${ITERS:-5}" ${TORCH_ARGS:-} \
  --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.md"

[ -n "${SKIP_TEXT:-}" ] || timeout "${TEXT_TIMEOUT:-180}" "$BIN" --backend cuda bench-text --padded --iters "${ITERS:-5}" \
  --json "$OUT/burn_text.json" 2>&1 | tee "$OUT/burn_text.md"
[ -n "${SKIP_VAE:-}" ] || CUBECL_AUTOTUNE_LEVEL=${VAE_AUTOTUNE:-minimal} timeout "${VAE_TIMEOUT:-240}" "$BIN" --backend cuda bench-vae --iters "${ITERS:-5}" ${VAE_ARGS:-} \
  --json "$OUT/burn_vae.json" 2>&1 | tee "$OUT/burn_vae.md"

# CUDA vs the goldens (f32); SKIP_GOLDENS=1 skips. The tiny VAE's conv shapes are seeded too
# (one kernel compile per shape instead of eight).
[ -n "${SKIP_GOLDENS:-}" ] && exit 0
[ -n "${SKIP_SEED:-}" ] || python3 engine/scripts/seed_cubecl_conv_tune.py --config $G/vae_tiny_config.json \
  --height 32 --width 48 2>&1 | tail -1
# VAE_GOLDEN_DTYPE (f32 by default, as Wan runs its VAE; bf16 as upstream's pipelines do) is
# the VAE goldens' compute dtype; SKIP_TEXT also skips the text encoder's golden.
VD=${VAE_GOLDEN_DTYPE:-f32}
CUBECL_AUTOTUNE_LEVEL=minimal timeout "${GOLDEN_TIMEOUT:-150}" "$BIN" --backend cuda vae-encode --dtype $VD --config $G/vae_tiny_config.json \
  --weights $G/vae_tiny_diffusers_f32.safetensors --inputs $G/vae_case.safetensors \
  --out "$OUT/enc.safetensors" 2>&1 | tail -1
CUBECL_AUTOTUNE_LEVEL=minimal timeout "${GOLDEN_TIMEOUT:-150}" "$BIN" --backend cuda vae-decode --dtype $VD --config $G/vae_tiny_config.json \
  --weights $G/vae_tiny_diffusers_f32.safetensors --inputs $G/vae_case.safetensors --raw \
  --out "$OUT/dec.safetensors" 2>&1 | tail -1
[ -n "${SKIP_TEXT:-}" ] || CUBECL_AUTOTUNE_LEVEL=minimal timeout "${GOLDEN_TIMEOUT:-150}" "$BIN" --backend cuda encode-text --config $G/umt5_tiny_config.json \
  --weights $G/umt5_tiny_transformers_f32.safetensors --inputs $G/umt5_case.safetensors \
  --out "$OUT/t5.safetensors" 2>&1 | tail -1
python3 - "$OUT" $G $VD <<'PY' | tee "$OUT/golden.txt"
import sys
from safetensors.torch import load_file
out, g, vd = sys.argv[1], sys.argv[2], sys.argv[3]
case, t5 = load_file(f"{g}/vae_case.safetensors"), load_file(f"{g}/umt5_case.safetensors")
def err(a, b): return ((a - b).abs().max() / b.abs().max()).item()
for name, f, key, want, dt in [("vae encode mu", "enc", "mu", case["mu"], vd),
                               ("vae decode (raw mu)", "dec", "video", case["decoded_from_mu"], vd),
                               ("umt5 hidden", "t5", "hidden", t5["hidden"], "f32")]:
    try:
        got = load_file(f'{out}/{f}.safetensors')[key].float()
        print(f"cuda {dt} {name}: relative error {err(got, want):.3e}")
    except Exception as e:
        print(f"cuda {dt} {name}: no result ({e})")
PY

