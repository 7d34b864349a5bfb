#!/usr/bin/env bash
# Builds the browser bundle into target/site without cargo-leptos (same output layout, same
# artifacts: .cargo/config.toml gives every build the same flags):
#   target/site/pkg/hanzo-live.{js,wasm,css} + everything in public/.
# Usage: tools/build-site.sh [--release]
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=hanzo-live
PROFILE=dev
OUT_PROFILE=debug
if [[ "${1:-}" == "--release" ]]; then
  PROFILE=wasm-release
  OUT_PROFILE=wasm-release
fi

cargo build -p frontend --lib --target wasm32-unknown-unknown --target-dir target/front \
  --no-default-features --profile "$PROFILE"

SITE=target/site
rm -rf "$SITE"
mkdir -p "$SITE/pkg"
cp -r public/. "$SITE/"
wasm-bindgen --target web --no-typescript --out-dir "$SITE/pkg" --out-name "$NAME" \
  "target/front/wasm32-unknown-unknown/$OUT_PROFILE/frontend.wasm"
# The hydration script asks for NAME.wasm (LEPTOS_OUTPUT_NAME is set at compile time).
mv "$SITE/pkg/${NAME}_bg.wasm" "$SITE/pkg/$NAME.wasm"
if [[ "$PROFILE" == "wasm-release" ]]; then
  source tools/lib.sh
  ensure_npm tools
  # npm's binaryen (never Debian's wasm-opt 108, which breaks hydration).
  tools/node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
    "$SITE/pkg/$NAME.wasm" -o "$SITE/pkg/$NAME.wasm"
fi
cp style/main.css "$SITE/pkg/$NAME.css"
echo "site built in $SITE ($(du -h "$SITE/pkg/$NAME.wasm" | cut -f1) wasm)"
