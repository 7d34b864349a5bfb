#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md, "Light VAEs"): TAEHV and LightVAE, PyTorch's
# reference first (bench_light_vae_torch.py, bf16 as the published figures are measured), then
# `engine bench-vae --vae …` on the same GPU and shapes (480×832 and 512×512). Results go to
# $OUT (default ./device-out).
# Usage: engine/scripts/device_bench_light_vae.sh <engine binary built with --features cuda> <wheels dir>
#
# VAES (default "tae lightvae"), SIZES (default "480x832 512x512"), DTYPES for the engine
# (default "f32 bf16"), ITERS (default 10), T_ENGINE (seconds per engine run, default 150),
# SKIP_TORCH=1 (engine runs only), CUBECL_CACHE_IN (a cubecl-cache.tgz an earlier run left).
# LightVAE's reference needs the diffsynth and einops wheels in the wheels dir
# (`pip download --no-deps diffsynth==2.1.12 einops -d DIR`).
set -uo pipefail
source "$(dirname "$0")/device_setup.sh" "$@"
for whl in "$WHEELS"/diffsynth-*.whl "$WHEELS"/einops-*.whl; do
  [ -f "$whl" ] && python3 -m pip install -q --no-index --no-deps --target /tmp/site "$whl" 2>&1 | tail -1
done

if [ -n "${CUBECL_CACHE_IN:-}" ] && [ -f "$CUBECL_CACHE_IN" ]; then
  tar -xzf "$CUBECL_CACHE_IN" && echo "restored burn-cuda caches from $CUBECL_CACHE_IN"
fi
trap 'tar -czf "$OUT/cubecl-cache.tgz" $(ls -d target/autotune target/cuda 2>/dev/null) 2>/dev/null' EXIT

for vae in ${VAES:-tae lightvae}; do
  for size in ${SIZES:-480x832 512x512}; do
    h=${size%x*} w=${size#*x}
    echo "== $vae $size"
    [ -n "${SKIP_TORCH:-}" ] || timeout 120 python3 engine/scripts/bench_light_vae_torch.py --vae "$vae" --device cuda \
      --dtype bf16 --iters "${ITERS:-10}" --height "$h" --width "$w" 2>&1 | tee "$OUT/torch_${vae}_$size.md"
    for dt in ${DTYPES:-f32 bf16}; do
      CUBECL_AUTOTUNE_LEVEL=${AUTOTUNE:-minimal} timeout "${T_ENGINE:-150}" "$BIN" --backend cuda \
        bench-vae --vae "$vae" --dtype "$dt" --height "$h" --width "$w" --iters "${ITERS:-10}" \
        --rows first,next,chunk,encode 2>&1 | grep -v "^load" | tail -8 | tee "$OUT/burn_${vae}_${size}_$dt.md"
    done
  done
done
