# Set-up steps shared by tools/serve.sh and tools/test.sh. Source it; every step is
# idempotent and installs only what is missing.
#
# Rust tools build from crates.io, browser tooling comes from npm, Chromium from Debian; the
# only prebuilt binaries are NVIDIA's NVRTC and ptxas from their PyPI wheels (the test command
# compiles the engine's CUDA kernels with them; no GPU or CUDA toolkit needed).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
# The Rust toolchain this repository builds with (rust-toolchain.toml says the same).
RUST_TOOLCHAIN=1.95.0

log() { if [ -t 1 ]; then printf '\n\033[1m==> %s\033[0m\n' "$*"; else printf '\n==> %s\n' "$*"; fi; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "error: root is needed for: $*" >&2; return 1
  fi
}

# ensure_apt PKG...: installs the Debian packages that are not installed yet.
ensure_apt() {
  if ! command -v apt-get >/dev/null; then
    echo "note: not a Debian/Ubuntu system; make sure these are installed: $*" >&2
    return 0
  fi
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

# ensure_rust: the pinned toolchain with rustfmt, clippy, the wasm target and the
# aarch64-apple-darwin target (the Metal backend is type-checked for macOS). A complete
# toolchain is left alone (reinstalling one under a running build breaks that build).
ensure_rust() {
  if ! command -v rustup >/dev/null; then
    echo "error: rustup is required (https://rustup.rs)" >&2
    return 1
  fi
  local tc="$RUST_TOOLCHAIN" ok=1
  rustup run "$tc" rustc --version >/dev/null 2>&1 || ok=0
  if [ $ok = 1 ]; then
    rustup run "$tc" cargo clippy --version >/dev/null 2>&1 || ok=0
    rustup run "$tc" rustfmt --version >/dev/null 2>&1 || ok=0
    local targets
    targets=$(rustup target list --installed --toolchain "$tc" 2>/dev/null)
    grep -qx wasm32-unknown-unknown <<<"$targets" || ok=0
    grep -qx aarch64-apple-darwin <<<"$targets" || ok=0
  fi
  if [ $ok = 0 ]; then
    log "installing Rust $tc with rustfmt, clippy and the wasm32 and aarch64-apple-darwin targets"
    rustup toolchain install "$tc" --profile minimal --component rustfmt,clippy \
      --target wasm32-unknown-unknown --target aarch64-apple-darwin
  fi
}

# ensure_wasm_bindgen: the wasm-bindgen CLI at exactly Cargo.lock's wasm-bindgen version
# (a mismatch aborts the bundle build with a schema error).
ensure_wasm_bindgen() {
  local want have
  want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/[^0-9.]/,""); print; exit}' "$ROOT/Cargo.lock")
  have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "$want" ]; then
    log "installing wasm-bindgen-cli $want (found: ${have:-none}; about 3-5 minutes)"
    # Not --locked: its lock pins a crate version the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$want" --force
  fi
}

# ensure_cargo_leptos: cargo-leptos 0.3.11 built from tools/cargo-leptos (15-30 minutes the
# first time; `cargo install cargo-leptos --locked` does not build on rustc 1.95).
ensure_cargo_leptos() {
  local have
  have=$(cargo leptos --version 2>/dev/null | awk '{print $2}' || true)
  if [ "$have" != "0.3.11" ]; then
    log "installing cargo-leptos 0.3.11 from tools/cargo-leptos (found: ${have:-none}; 15-30 minutes, once)"
    cargo install --path "$ROOT/tools/cargo-leptos" --locked --force
  fi
}

# ensure_npm DIR: DIR/node_modules matches DIR/package-lock.json.
ensure_npm() {
  local dir="$ROOT/$1"
  if ! command -v npm >/dev/null; then
    ensure_apt nodejs npm
  fi
  if [ ! -f "$dir/node_modules/.package-lock.json" ] \
    || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing npm packages in $1"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}

# ensure_cuda_compilers: NVRTC and ptxas (CUDA 12.9, NVIDIA's PyPI wheels) unpacked under
# target/cuda-tools, for engine/scripts/check_kernels.py.
CUDA_TOOLS="$ROOT/target/cuda-tools"
ensure_cuda_compilers() {
  if [ -x "$CUDA_TOOLS/nvidia/cuda_nvcc/bin/ptxas" ] &&
    [ -f "$CUDA_TOOLS/nvidia/cuda_nvrtc/lib/libnvrtc.so.12" ]; then
    return 0
  fi
  python3 -m pip --version >/dev/null 2>&1 || ensure_apt python3-pip
  log "fetching NVRTC and ptxas (PyPI wheels)"
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$CUDA_TOOLS/wheels" \
    nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86
  python3 - "$CUDA_TOOLS" <<'PY'
import glob, os, sys, zipfile
root = sys.argv[1]
for whl in glob.glob(os.path.join(root, "wheels", "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            if name.startswith("nvidia/cuda_nvrtc/lib/") or name == "nvidia/cuda_nvcc/bin/ptxas":
                z.extract(name, root)
PY
  chmod +x "$CUDA_TOOLS/nvidia/cuda_nvcc/bin/ptxas"
  rm -rf "$CUDA_TOOLS/wheels"
}
