#!/usr/bin/env bash
# The test command: sets up everything it needs (idempotent), then runs every check:
#   format, clippy, Rust unit + integration tests, the browser bundle, and the Playwright
#   suite against the real server in Debian's headless Chromium.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
start=$SECONDS

log "setup"
ensure_apt chromium pkg-config nasm
ensure_rust
ensure_wasm_bindgen
ensure_npm end2end

log "cargo fmt --check"
cargo fmt --all --check

log "cargo clippy (workspace, all targets, warnings are errors)"
cargo clippy --locked --workspace --all-targets -- -D warnings

log "CUDA backend and its custom ops (clippy, feature cuda; the GPU tests run on a GPU machine)"
cargo clippy --locked -p engine --features cuda --all-targets -- -D warnings

log "CUDA kernels (NVRTC + ptxas for sm_80 and sm_90a; no GPU needed)"
ensure_cuda_compilers
python3 engine/scripts/check_kernels.py "$CUDA_TOOLS"

log "Metal backend type-check (aarch64-apple-darwin)"
# Type-check only: the C parts of a few dependencies (zstd, bzip2 and xz inside the `zip` crate
# that burn-store's pickle reader uses) need the macOS SDK to compile, which Linux lacks. Their
# build scripts get no-op compilers here; `cargo check` never links, so no C object is needed.
CC_aarch64_apple_darwin=true CXX_aarch64_apple_darwin=true AR_aarch64_apple_darwin=true \
  cargo check --locked --target aarch64-apple-darwin -p engine --features metal

log "Rust tests"
cargo test --locked -p app -p engine -p server

log "browser bundle"
tools/build-site.sh
# The server as the README builds it: from the root, no package named (default-members).
cargo build --locked --bin hanzo-live
log "server-rendered pages of that build"
tools/check-pages.sh target/debug/hanzo-live

log "Playwright (headless Chromium against the real server)"
(cd end2end && CI=1 npx playwright test)

log "all checks passed in $((SECONDS - start)) s"
