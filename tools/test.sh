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

log "Metal backend type-check (aarch64-apple-darwin)"
cargo check --locked --target aarch64-apple-darwin -p engine --features metal

log "Rust tests"
cargo test --locked -p app -p engine -p server

log "browser bundle"
tools/build-site.sh
cargo build --locked -p server --bin hanzo-live

log "Playwright (headless Chromium against the real server)"
(cd end2end && CI=1 npx playwright test)

log "all checks passed in $((SECONDS - start)) s"
