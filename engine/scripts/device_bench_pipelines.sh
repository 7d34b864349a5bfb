#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md): each Wan pipeline through `engine generate` with
# made-up weights at the real shapes (Wan2.1-1.3B DiT, UMT5-XXL, Wan VAE) in bf16: FPS, time
# to first frame and the text / DiT / VAE share of a chunk. Results go to $OUT. Frames cross to
# and from the host as the studio's do (`--studio-io`: input bytes uploaded per chunk, each decoded
# piece read back as bytes, inside the timed loop; STUDIO_IO=0 keeps them on the device).
# Usage: engine/scripts/device_bench_pipelines.sh <engine binary built with --features cuda> <wheels dir>
#
# RUNS (default "sf ll sd512 sd480"; also sftae, lltae, sd480tae, sd512tae: the TAE decoder;
# llbf16: LongLive with the Wan VAE in bf16; lltaebf16, sd512taebf16: TAEHV in bf16) picks the runs; CHUNKS the chunks per run; T_<RUN> (e.g.
# T_SF) a run's time limit in seconds.
#
# burn-cuda compiles (NVRTC) and autotunes each new kernel shape on first use, minutes per
# pipeline. Each run therefore keeps its kernel caches in a folder of its own (/tmp/w/<run>,
# cubecl's `target` cache beside a Cargo.toml there), restored from $CACHE_IN/cache-<run>.tgz
# and saved to $OUT/cache-<run>.tgz every minute and at the end, so a call cut off by the
# device's time limit still leaves its kernels for the next call. PARALLEL=1 runs the runs at
# once (their compiles then share the CPU cores: a way to warm the caches, not to time them;
# three runs at 480×832 need more than an 80 GB H100's memory: on one, the 480×832 video →
# video run ran out of it). Only 8 files come back from a device call: a run's log and JSON
# come before the caches when OUT is listed, so keep RUNS short or drop the caches.
set -uo pipefail
source "$(dirname "$0")/device_setup.sh" "$@"
BIN=$(readlink -f "$BIN")
OUT=$(readlink -f "$OUT")
SCRIPTS=$(readlink -f "$(dirname "$0")")
CACHE_IN=${CACHE_IN:-}
export CUBECL_AUTOTUNE_LEVEL=${AUTOTUNE:-minimal}
CHUNKS=${CHUNKS:-8}
studio=(--studio-io)
[ "${STUDIO_IO:-1}" = 0 ] && studio=()
RUNS=${RUNS:-sf ll sd512 sd480}

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

# The run's folder: a Cargo.toml (where cubecl roots its `target` caches), the repository's
# cubecl.toml, the restored caches and, unless SKIP_SEED, the VAE's convolutions at the run's
# size pre-selected for the f32 VAE (one compile per shape instead of eight).
workdir() { # run, height, width
  local d=/tmp/w/$1
  mkdir -p "$d"
  touch "$d/Cargo.toml"
  cp cubecl.toml "$d/"
  [ -n "$CACHE_IN" ] && [ -f "$CACHE_IN/cache-$1.tgz" ] &&
    tar -xzf "$CACHE_IN/cache-$1.tgz" -C "$d" && echo "$1: restored its kernel caches"
  [ -z "${SKIP_SEED:-}" ] &&
    python3 "$SCRIPTS/seed_cubecl_conv_tune.py" --height "$2" --width "$3" --dtype F32 \
      --cache-dir "$d/target/autotune" 2>&1 | tail -1
  echo "$d"
}

save_cache() { # run
  tar -czf "$OUT/.cache-$1.tgz" -C "/tmp/w/$1" target 2>/dev/null &&
    mv "$OUT/.cache-$1.tgz" "$OUT/cache-$1.tgz"
}

generate() { # run, height, width, timeout, args…
  local r=$1 h=$2 w=$3 t=$4 d
  shift 4
  d=$(workdir "$r" "$h" "$w" | tail -1)
  # Its output goes nowhere: a sleep left behind must not hold a caller's pipe open.
  ( while sleep "${CACHE_EVERY:-60}"; do save_cache "$r"; done ) >/dev/null 2>&1 &
  local saver=$!
  echo "== $r ($h×$w)"
  (cd "$d" && HANZO_LIVE_KERNEL_CACHE="$d/target" timeout "$t" "$BIN" --backend cuda generate --random-weights 1.3b --warm-up "${studio[@]}" \
    --chunks "$CHUNKS" --height "$h" --width "$w" --out "/tmp/$r.safetensors" \
    --json "$OUT/$r.json" "$@") >"$OUT/$r.log" 2>&1
  echo "$r: exit $?" >>"$OUT/$r.log"
  pkill -P $saver 2>/dev/null; kill $saver 2>/dev/null
  save_cache "$r"
  grep -v "^load:" "$OUT/$r.log" | tail -n 25
}

# A run's folder starts as a copy of another run's (its kernel caches), unless it exists.
caches_from() { # from, to
  [ -d "/tmp/w/$1" ] && [ ! -d "/tmp/w/$2" ] && cp -r "/tmp/w/$1" "/tmp/w/$2"
}

run() {
  case $1 in
    sf) generate sf 480 832 "${T_SF:-300}" --pipeline self-forcing --prompt "a red fox in the snow" ;;
    ll) generate ll 480 832 "${T_LL:-300}" --pipeline longlive --prompt "a panda walks in a park" \
          ${LL_SWITCH:---switch 4:fox} ;;
    sd512) clip 512 512 "$CHUNKS"; generate sd512 512 512 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --input /tmp/clip_512x512.safetensors --prompt "a dog in the grass" ;;
    sd480) clip 480 832 "$CHUNKS"; generate sd480 480 832 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --input /tmp/clip_480x832.safetensors --prompt "a dog in the grass" ;;
    # LongLive with the Wan VAE in bf16 (as upstream runs it), starting from ll's kernel caches.
    llbf16) caches_from ll llbf16
          generate llbf16 480 832 "${T_LL:-300}" --pipeline longlive --prompt "a panda walks in a park" \
          ${LL_SWITCH:---switch 4:fox} --vae-dtype bf16 ;;
    # The same with TAEHV decoding (and, for video → video, the Wan encoder): vae_type tae.
    sftae) generate sftae 480 832 "${T_SF:-300}" --pipeline self-forcing --prompt "a red fox in the snow" \
          --set vae_type=tae ;;
    lltae) generate lltae 480 832 "${T_LL:-300}" --pipeline longlive --prompt "a panda walks in a park" \
          --set vae_type=tae ${LL_SWITCH:---switch 4:fox} ;;
    sd512tae) clip 512 512 "$CHUNKS"; generate sd512tae 512 512 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --input /tmp/clip_512x512.safetensors --prompt "a dog in the grass" --set vae_type=tae ;;
    # TAEHV in bf16 (as upstream runs it), starting from the f32 run's kernel caches.
    lltaebf16) caches_from lltae lltaebf16
          generate lltaebf16 480 832 "${T_LL:-300}" --pipeline longlive --prompt "a panda walks in a park" \
          --set vae_type=tae ${LL_SWITCH:---switch 4:fox} --vae-dtype bf16 ;;
    sd512taebf16) clip 512 512 "$CHUNKS"
          caches_from sd512tae sd512taebf16
          generate sd512taebf16 512 512 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --input /tmp/clip_512x512.safetensors --prompt "a dog in the grass" --set vae_type=tae --vae-dtype bf16 ;;
    sd480tae) clip 480 832 "$CHUNKS"; generate sd480tae 480 832 "${T_SD:-300}" --pipeline streamdiffusionv2 \
          --input /tmp/clip_480x832.safetensors --prompt "a dog in the grass" \
          --set vae_type=tae --set encoder_vae_type=wan ;;
    # Tiny made-up weights with the VAE in bf16: does burn-cuda's fusion get through it?
    vaebf16) echo "== vae_bf16_tiny"
          timeout "${T_BF16:-60}" "$BIN" --backend cuda generate --random-weights tiny --pipeline self-forcing \
            --height 64 --width 64 --chunks 2 --vae-dtype bf16 --out /tmp/bf16.safetensors 2>&1 \
            | grep -v "^load:" | grep -m 3 -E "chunk|panicked|frames in" | tee "$OUT/vae_bf16_tiny.log"
          echo "exit ${PIPESTATUS[0]}" | tee -a "$OUT/vae_bf16_tiny.log" ;;
  esac
}

if [ -n "${PARALLEL:-}" ]; then
  for r in $RUNS; do run "$r" >"$OUT/$r.summary" 2>&1 & done
  wait
  for r in $RUNS; do cat "$OUT/$r.summary"; done
else
  for r in $RUNS; do run "$r"; done
fi
