#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md): in one call, what decides the CUDA switches (the
# ring kernels: on by default since its 2026-12-07 run; the padded conv: opt-in) and the Wan
# VAE's dtype on CUDA —
#   1. the GPU tests `ring::` and `conv::` with HANZO_LIVE_RING_KERNEL=1 and
#      HANZO_LIVE_CONV_PAD_OUT=1 (the adaptive sink's kernels, the padded convolution);
#   2. StreamDiffusionV2 at 512×512 with TAEHV, the ring kernels on, then off from the same
#      kernel caches (device_bench_pipelines.sh, CHUNKS=14);
#   3. the Wan VAE's steady decode (480×832, one latent → 4 frames): f32 against PyTorch, f32
#      with the padded 96 → 3 head convolution, then bf16 on both sides with --check-f32
#      (device_bench_vae_t5.sh).
# Usage (from the repository root): engine/scripts/device_bench_switches.sh <engine binary> <cuda_ops test binary> <wheels dir>
# (tools/build-device-tests.sh builds both binaries: gunzip .device/engine.gz and
# .device/tests/cuda_ops.gz first). BUDGET (seconds, default 540) bounds the whole: the runs'
# time limits are cut from what is left and the VAE steps are skipped when too little is. A
# 512×512 run without a kernel cache loads in ~155 s (its warm-up's compiles).
# $OUT gets summary.txt and results.tgz (every log): two of the eight files a device call returns.
# STEPS (default "tests ring vae") picks the steps: e.g. STEPS=vae for the VAE's alone.
set -uo pipefail
BIN=$(readlink -f "${1:?engine binary}")
TESTBIN=$(readlink -f "${2:?cuda_ops test binary}")
WHEELS=$(readlink -f "${3:?wheels dir}")
OUT=$(mkdir -p "${OUT:-device-out}" && readlink -f "${OUT:-device-out}")
S=$(dirname "$0")
chmod +x "$BIN" "$TESTBIN"
START=$(date +%s)
left() { echo $((${BUDGET:-540} - ($(date +%s) - START))); }
R=$(mktemp -d /tmp/switches.XXXX)
finish() {
  find "$R" -name "*cache*.tgz" -delete
  cat "$R"/*.txt >"$OUT/summary.txt" 2>/dev/null
  tar -czf "$OUT/results.tgz" -C "$R" .
}
trap finish EXIT
# Each step's lines that matter, into the summary as soon as the step ends.
chunks() { grep -hE "^chunk|frames in|exit|panicked|rror" "$@" 2>/dev/null | tail -20; }

STEPS=" ${STEPS:-tests ring vae} "
step() { [[ $STEPS == *" $1 "* ]]; }

# 1. The tests (their kernels compiled into a cache of their own).
if step tests; then
  HANZO_LIVE_KERNEL_CACHE=$R/testcache HANZO_LIVE_RING_KERNEL=1 HANZO_LIVE_CONV_PAD_OUT=1 \
    timeout "${T_TESTS:-90}" "$TESTBIN" --ignored --test-threads=1 ring:: conv:: 2>&1 |
    tail -40 >"$R/1-tests.txt"
  cat "$R/1-tests.txt"
fi

# 2. Video → video at 512×512, ring kernels on, then off (RESERVE: seconds kept for what follows).
export CHUNKS=${CHUNKS:-14}
step ring && for ring in 1 0; do
  t=$(($(left) - ${RESERVE:-130}))
  [ "$ring" = 0 ] && t=$((($(left) - 20) / 2))
  [ "$t" -gt 20 ] || break
  HANZO_LIVE_RING_KERNEL=$ring OUT=$R/ring$ring T_SD=$t RUNS=sd512tae \
    bash "$S/device_bench_pipelines.sh" "$BIN" "$WHEELS" >/dev/null 2>&1
  { echo "== sd512tae, HANZO_LIVE_RING_KERNEL=$ring"; chunks "$R/ring$ring/sd512tae.log"; } >"$R/2-ring$ring.txt"
  cat "$R/2-ring$ring.txt"
done

# 3. The Wan VAE (f32, padded head conv, bf16).
export SKIP_TEXT=1 ITERS=3 SKIP_GOLDENS=1 SKIP_SEED=1
vae() { # name, time share of what is left, env and args…
  local name=$1 share=$2
  shift 2
  [ "$(left)" -gt 60 ] || return
  local torch=() budget=$(($(left) - 10))
  # PyTorch's side (before ours) has a fixed 100 s limit: run it only when that fits.
  case " $* " in
    *" SKIP_TORCH=1 "*) ;;
    *) if [ "$budget" -gt 210 ]; then budget=$((budget - 100)); else torch=(SKIP_TORCH=1); fi ;;
  esac
  env "${torch[@]}" OUT="$R/$name" VAE_TIMEOUT=$((budget / share)) "$@" \
    bash "$S/device_bench_vae_t5.sh" "$BIN" "$WHEELS" >/dev/null 2>&1
  { echo "== VAE $name"; cat "$R/$name"/torch.md "$R/$name"/burn_vae.md 2>/dev/null | grep -v "^load:" | tail -25; } >"$R/3-$name.txt"
  cat "$R/3-$name.txt"
}
step vae || exit 0
vae f32 4 TORCH_ARGS=--skip-text VAE_ARGS="--rows next"
vae pad 3 HANZO_LIVE_CONV_PAD_OUT=1 SKIP_TORCH=1 VAE_ARGS="--rows next"
vae bf16 1 TORCH_ARGS="--skip-text --vae-dtype bf16 --check-f32" VAE_ARGS="--dtype bf16 --check-f32 --rows next"
