#!/usr/bin/env bash
# Builds what the GPU machine runs (it has no Rust toolchain): the `engine` example with the
# CUDA backend and the CUDA ops' GPU tests, gzipped into .device/ (git-ignored; the device
# tool carries at most 64 MiB):
#   .device/engine.gz            hanzo-live engine (perf profile, --features cuda)
#   .device/tests/cuda_ops.gz    the ignored GPU tests of engine/tests/cuda_ops
#   .device/wheels/              diffusers, for the PyTorch side of the benches
# Then, through the device tool (carry [".device"]), e.g.:
#   mkdir -p /tmp/d/tests && gunzip -c .device/engine.gz > /tmp/d/engine &&
#   gunzip -c .device/tests/cuda_ops.gz > /tmp/d/tests/cuda_ops &&
#   OUT=$OUT TESTS=/tmp/d/tests engine/scripts/device_bench.sh /tmp/d/engine .device/wheels
# or, for the CUDA switches (ring kernels, padded conv) and the VAE's dtype:
#   OUT=$OUT engine/scripts/device_bench_switches.sh /tmp/d/engine /tmp/d/tests/cuda_ops .device/wheels
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .device/tests .device/wheels
# The device has PyTorch and transformers but no registry: diffusers (the reference side of
# the benches) travels as a wheel.
ls .device/wheels/diffusers-*.whl >/dev/null 2>&1 ||
  python3 -m pip download -q --no-deps diffusers==0.42.1 -d .device/wheels
cargo build --profile perf -p engine --example engine --features cuda
gzip -c target/perf/examples/engine > .device/engine.gz
cargo test --profile perf -p engine --features cuda --no-run --message-format=json \
  --test cuda_ops |
  python3 -c '
import json, shutil, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], ".device/tests/" + m["target"]["name"])
        print(m["target"]["name"])
' | while read -r t; do gzip -f ".device/tests/$t"; done
ls -la .device .device/tests
