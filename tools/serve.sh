#!/usr/bin/env bash
# The run command: sets up everything it needs (idempotent), then serves Hanzo Live at
# http://127.0.0.1:3000 through `cargo leptos serve`. Extra arguments go to cargo-leptos
# (e.g. --release). The server's own settings come from Leptos.toml, the environment
# (PORT, HANZO_LIVE_DATA_DIR, ...) and its flags (see README).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

log "setup"
ensure_apt pkg-config nasm
ensure_rust
ensure_wasm_bindgen
ensure_cargo_leptos
if [[ " $* " == *" --release "* ]]; then
  # Release bundles go through wasm-opt: npm's binaryen, never Debian's (it breaks hydration).
  ensure_npm tools
  export PATH="$ROOT/tools/node_modules/.bin:$PATH"
fi

log "cargo leptos serve $*"
exec cargo leptos serve "$@"
