#!/usr/bin/env bash
# Starts a built hanzo-live binary on a free port with a fresh data directory and fetches the
# server-rendered pages as a signed-in user: each must answer 200 with the page title in its
# HTML (a guest gets the same pages with a sign-in prompt, /history and /library as 401).
# Usage: tools/check-pages.sh [binary] (default target/debug/hanzo-live)
set -euo pipefail
BIN=${1:-target/debug/hanzo-live}
dir=$(mktemp -d)
log="$dir/server.log"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" --port "$port" --data-dir "$dir/data" >"$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs -c "$dir/jar" -H 'content-type: application/json' \
  -d '{"username": "pages", "password": "page-check-password"}' \
  "http://127.0.0.1:$port/api/v1/auth/register" >/dev/null
fail=0
for page in / /history /library; do
  code=$(curl -s -b "$dir/jar" -o "$dir/page.html" -w '%{http_code}' "http://127.0.0.1:$port$page" || true)
  if [ "$code" = 200 ] && grep -q '<title>Hanzo Live</title>' "$dir/page.html"; then
    echo "pages: $page 200 with its title"
  else
    echo "pages: $page answered ${code:-nothing} without the page title" >&2
    fail=1
  fi
done
if [ $fail = 1 ]; then
  echo "--- server log" >&2
  tail -20 "$log" >&2
  exit 1
fi
