#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md): the engine's CUDA backend against the tiny
# goldens, then `engine bench` and the PyTorch bench (bench_dit_torch.py) on the same GPU, one
# after the other. Results go to $OUT (default ./device-out).
# Usage: engine/scripts/device_bench.sh <engine binary built with --features cuda> <wheels dir>
set -uo pipefail
source "$(dirname "$0")/device_setup.sh" "$@"

# CUDA vs the diffusers goldens (f32 and bf16); SKIP_GOLDENS=1 skips.
for dt in $([ -n "${SKIP_GOLDENS:-}" ] || echo f32 bf16); do
  "$BIN" --backend cuda forward --dtype $dt --config $G/dit_tiny_config_original.json \
    --weights $G/dit_tiny_original_f32.safetensors --inputs $G/dit_case_t1000.safetensors \
    --out "$OUT/cuda_$dt.safetensors" 2>&1 | tail -1
  python3 - "$OUT/cuda_$dt.safetensors" $G/dit_case_t1000.safetensors $dt <<'PY' | tee -a "$OUT/golden.txt"
import sys
from safetensors.torch import load_file
got, want = load_file(sys.argv[1])["out"], load_file(sys.argv[2])["out"]
err = (got - want).abs().max() / want.abs().max()
print(f"cuda {sys.argv[3]}: relative error vs diffusers {err:.3e}")
PY
done

python3 engine/scripts/bench_dit_torch.py --frames 3 --iters 10 --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.md"
timeout "${BURN_TIMEOUT:-480}" "$BIN" --backend cuda bench --model 1.3b --dtype bf16 --frames 3 \
  --iters "${ITERS:-5}" --json "$OUT/burn.json" 2>&1 | tee "$OUT/burn.md"
