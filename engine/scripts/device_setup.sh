# Sourced by the device_bench*.sh scripts: arguments, output folder, GPU description, the
# diffusers wheel and `engine info`. Sets BIN, WHEELS, OUT and G.
BIN=${1:?engine binary}
WHEELS=${2:?wheels dir}
OUT=${OUT:-device-out}
mkdir -p "$OUT"
G=engine/tests/goldens
chmod +x "$BIN"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"

# diffusers alone: the machine's environment has torch, transformers, huggingface_hub and the
# rest (a newer huggingface_hub shadowing theirs breaks transformers).
python3 -m pip install -q --no-index --no-deps --target /tmp/site "$WHEELS"/diffusers-*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site
# The engine keeps its kernels and autotune results where these scripts save and restore them
# (./target/{cuda,autotune}, cubecl's own default) rather than in ~/.hanzo-live/kernels.
export HANZO_LIVE_KERNEL_CACHE=${HANZO_LIVE_KERNEL_CACHE:-$PWD/target}

"$BIN" info 2>&1 | tee "$OUT/info.txt"
