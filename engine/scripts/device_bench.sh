#!/usr/bin/env bash
# Runs on the GPU machine (see docs/perf.md): the engine's CUDA backend against the tiny
# goldens, then `engine bench` and the PyTorch bench (bench_dit_torch.py) on the same GPU, one
# after the other. Results go to $OUT (default ./device-out).
# Usage: engine/scripts/device_bench.sh <engine binary built with --features cuda> <wheels dir>
#
# TESTS (a folder of GPU test binaries, e.g. .device/tests from tools/build-device-tests.sh)
# runs them first (the CUDA ops checked against burn's f32 path);
# CUDA_OPS=0 leaves the ops out of the bench, CUDA_OPS=both (the default) benches without and
# with them; QUANT=none leaves the fp8 rows out of the bench with the ops.
# NCU=1 then profiles one full forward of each side (NCU=ours: ours only) with Nsight Compute (every kernel's GPU
# time, summed and grouped by ncu_summary.py into ncu.md; NCU_TIMEOUT a side, default 200 s).
set -uo pipefail
source "$(dirname "$0")/device_setup.sh" "$@"

# KERNELS_IN (a kernels.tgz an earlier run left in $OUT) restores the compiled kernels and
# autotune results, so a second call skips the minutes of first-use compilation.
export HANZO_LIVE_KERNEL_CACHE=/tmp/kernels
[ -f "${KERNELS_IN:-}" ] && mkdir -p /tmp/kernels && tar xzf "$KERNELS_IN" -C /tmp

# CUDA vs the diffusers goldens (f32 and bf16; GOLDENS picks, empty skips).
# bf16+ops: the same with the CUDA ops (HANZO_LIVE_CUDA_OPS=1); bf16+ops+fp8: and the block
# linears in fp8 (the fp8 GEMM on 8.9+).
for dt in ${GOLDENS-f32 bf16 bf16+ops bf16+ops+fp8}; do
  HANZO_LIVE_CUDA_OPS=$(case $dt in *+ops*) echo 1 ;; *) echo 0 ;; esac) \
  "$BIN" --backend cuda forward --dtype ${dt%%+*} --config $G/dit_tiny_config_original.json \
    --quantization $(case $dt in *+fp8) echo fp8_e4m3fn ;; *) echo none ;; esac) \
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

# The CUDA ops' GPU tests (libcublasLt and libcudnn from PyTorch's nvidia-cublas / nvidia-cudnn
# wheels where the system has none).
for lib in cublas:libcublasLt.so cudnn:libcudnn.so; do
  if ! ldconfig -p | grep -q "${lib#*:}"; then
    export LD_LIBRARY_PATH=$(python3 -c "import nvidia.${lib%%:*},os;print(os.path.join(list(nvidia.${lib%%:*}.__path__)[0],'lib'))" 2>/dev/null):${LD_LIBRARY_PATH:-}
  fi
done
if [ -n "${TESTS:-}" ]; then
  # One run per test module, each with its own TEST_TIMEOUT (a slow module cannot starve the
  # rest); the whole output in tests.txt, the verdicts on stdout.
  for t in "$TESTS"/*; do
    chmod +x "$t"
    mods=$("$t" --list --ignored 2>&1 | sed -n 's/::.*: test$//p' | sort -u)
    [ -n "$mods" ] || echo "== $(basename "$t"): no test modules listed"
    for m in $mods; do
      # TEST_MODULES (e.g. "norms vae") runs only those modules.
      [ -z "${TEST_MODULES:-}" ] || [[ " $TEST_MODULES " == *" $m "* ]] || continue
      echo "== $(basename "$t") $m"
      HANZO_LIVE_CUDA_OPS=1 timeout "${TEST_TIMEOUT:-300}" "$t" --ignored --nocapture --test-threads=1 "$m::" 2>&1
      rc=$?  # before the echo's own command substitution resets $?
      echo "== $(basename "$t") $m: exit $rc$([ $rc = 124 ] && echo " (TEST_TIMEOUT ran out)")"
    done
  done > "$OUT/tests.txt"
  grep -E "^== |^test |test result|panicked|FAILED" "$OUT/tests.txt"
fi

[ -n "${SKIP_TORCH:-}" ] || python3 engine/scripts/bench_dit_torch.py --frames 3 --iters 10 --json "$OUT/torch.json" 2>&1 | tee "$OUT/torch.md"
# The engine keeps kernels and autotune results where --kernel-cache says (here a folder of
# its own, so cubecl's ./target default cannot pass for it); a second bench reuses them.
# FLASH_KERNELS (e.g. "wide cudnn") benches the CUDA ops once per attention kernel
# (HANZO_LIVE_FLASH_KERNEL); files of a kernel other than the default (cudnn) are suffixed.
# QUEUED (default 1, the engine's default; e.g. "0 1") benches the ops once per way of handing
# them to burn-cuda's device thread (HANZO_LIVE_QUEUED_OPS; the queued run's files end in _q);
# ROWS picks `bench --rows`.
for ops in $(case "${CUDA_OPS:-both}" in 0) echo 0 ;; 1) echo 1 ;; *) echo 0 1 ;; esac); do
  for fk in $([ "$ops" = 1 ] && echo "${FLASH_KERNELS:-cudnn}" || echo cudnn); do
    for q in $([ "$ops" = 1 ] && echo "${QUEUED:-1}" || echo 0); do
      sfx=$([ "$fk" = cudnn ] || echo "_$fk")$([ "$q" = 1 ] && echo _q)
      HANZO_LIVE_QUEUED_OPS=$q HANZO_LIVE_FLASH_KERNEL=$fk HANZO_LIVE_CUDA_OPS=$ops timeout "${BURN_TIMEOUT:-480}" "$BIN" --backend cuda bench --model 1.3b \
        --quantization $([ "$ops" = 1 ] && echo "${QUANT:-fp8_e4m3fn}" || echo none) --dtype bf16 --frames 3 --iters "${ITERS:-5}" \
        --rows "${ROWS:-peak,ops,model}" --json "$OUT/burn_ops$ops$sfx.json" 2>&1 | tee "$OUT/burn_ops$ops$sfx.md"
    done
  done
done
echo "kernel cache: $(find /tmp/kernels/autotune -type f 2>/dev/null | wc -l) autotune files, $(find /tmp/kernels/cuda -type f 2>/dev/null | wc -l) compiled-kernel files" |
  tee "$OUT/kernel_cache.txt"
tar czf "$OUT/kernels.tgz" -C /tmp kernels 2>/dev/null

if [ -n "${NCU:-}" ]; then
  nc="$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu | head -n 1) --profile-from-start off --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv --print-units base"
  timeout "${NCU_TIMEOUT:-200}" $nc "$BIN" --backend cuda bench --model 1.3b --dtype bf16 --frames 3 --iters 1 \
    --rows model --ncu-range > "$OUT/ncu_ours.csv" 2> "$OUT/ncu_ours.err"
  echo "ncu ours: exit $?"
  # NCU=ours leaves PyTorch's side out.
  if [ "$NCU" != ours ]; then
    timeout "${NCU_TIMEOUT:-200}" $nc python3 engine/scripts/bench_dit_torch.py --frames 3 --iters 1 --ncu-range \
      > "$OUT/ncu_torch.csv" 2> "$OUT/ncu_torch.err"
    echo "ncu torch: exit $?"
  fi
  { python3 engine/scripts/ncu_summary.py "$OUT/ncu_ours.csv" "ours (engine bench, full forward)"
    [ -f "$OUT/ncu_torch.csv" ] &&
      python3 engine/scripts/ncu_summary.py "$OUT/ncu_torch.csv" "PyTorch eager (bench_dit_torch.py, full forward)"; } | tee "$OUT/ncu.md"
fi
