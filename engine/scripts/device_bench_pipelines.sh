#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md): each Wan pipeline through `engine generate` with
# made-up weights at the real shapes (Wan2.1-1.3B DiT, UMT5-XXL, Wan VAE) in bf16: FPS, time
# to first frame and the text / DiT / VAE share of a chunk. Results go to $OUT.
# Usage: engine/scripts/device_bench_pipelines.sh <engine binary built with --features cuda> <wheels dir>
# RUNS (default "sf ll sd512 sd480") picks the runs; CHUNKS the chunks per run.
set -uo pipefail
source "$(dirname "$0")/device_setup.sh" "$@"
if [ -n "${CUBECL_CACHE_IN:-}" ] && [ -f "$CUBECL_CACHE_IN" ]; then
  tar -xzf "$CUBECL_CACHE_IN" && echo "restored burn-cuda caches from $CUBECL_CACHE_IN"
fi
save_cache() { tar -czf "$OUT/cubecl-cache.tgz" $(ls -d target/autotune target/cuda 2>/dev/null) 2>/dev/null; }
trap save_cache EXIT
export CUBECL_AUTOTUNE_LEVEL=${AUTOTUNE:-minimal}
CHUNKS=${CHUNKS:-8}

# The VAE's convolutions at both sizes, pre-selected (one compile per shape, not eight).
if [ -z "${SKIP_SEED:-}" ]; then
  for size in "480 832" "512 512"; do
    set -- $size
    python3 engine/scripts/seed_cubecl_conv_tune.py --height $1 --width $2 --dtype BF16 2>&1 | tail -1
  done
fi

# A moving test pattern for video → video: `video` [1, 3, T, H, W] in [-1, 1].
clip() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys, torch
from safetensors.torch import save_file
h, w, t = int(sys.argv[1]), int(sys.argv[2]), 5 + 4 * int(sys.argv[3])
y = torch.linspace(0, 6.28, h).view(1, 1, 1, h, 1)
x = torch.linspace(0, 6.28, w).view(1, 1, 1, 1, w)
k = torch.arange(t).float().view(1, 1, t, 1, 1)
c = torch.arange(3).float().view(1, 3, 1, 1, 1)
v = (0.8 * torch.sin(x * 3 + y * 2 + k * 0.3 + c)).contiguous()
save_file({"video": v}, f"/tmp/clip_{h}x{w}.safetensors")
PY
}

run() { # name, timeout, args…
  local name=$1 t=$2; shift 2
  echo "== $name"
  timeout "$t" "$BIN" --backend cuda generate --random-weights 1.3b --warm-up --chunks "$CHUNKS" \
    --out /tmp/$name.safetensors --json "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.log" | grep -v "^load:"
}

for r in ${RUNS:-sf ll sd512 sd480 vaebf16}; do
  case $r in
    sf) run self_forcing_480x832 "${T_SF:-300}" --pipeline self-forcing --prompt "a red fox in the snow" ;;
    ll) run longlive_480x832 "${T_LL:-300}" --pipeline longlive --prompt "a panda walks in a park" \
          ${LL_SWITCH:---switch 4:fox} ;;
    sd512) clip 512 512 "$CHUNKS"; run sdv2_512x512 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --height 512 --width 512 --input /tmp/clip_512x512.safetensors --prompt "a dog in the grass" ;;
    sd480) clip 480 832 "$CHUNKS"; run sdv2_480x832 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --height 480 --width 832 --input /tmp/clip_480x832.safetensors --prompt "a dog in the grass" ;;
    # Tiny made-up weights with the VAE in bf16: does burn-cuda's fusion get through it?
    vaebf16) echo "== vae_bf16_tiny"
          timeout "${T_BF16:-60}" "$BIN" --backend cuda generate --random-weights tiny --pipeline self-forcing \
            --height 64 --width 64 --chunks 2 --vae-dtype bf16 --out /tmp/bf16.safetensors 2>&1 \
            | grep -v "^load:" | grep -m 3 -E "chunk|panicked|frames in" | tee "$OUT/vae_bf16_tiny.log"
          echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/vae_bf16_tiny.log" ;;
  esac
done
