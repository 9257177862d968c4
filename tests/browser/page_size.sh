#!/usr/bin/env bash
# Bytes the join page loads before Join works (HTML + JS + CSS): uncompressed, gzip -9, and what the server
# itself sends to a browser that accepts gzip (it compresses the static assets, not the
# HTML, which carries the session's data), measured against the real binary: starts `sightline serve` on a free loopback port with a temporary data
# directory, creates a session, fetches the customer's page and every asset it references.
# Usage: tests/browser/page_size.sh [path/to/sightline]   (default: $CARGO_TARGET_DIR/debug/sightline)
set -euo pipefail
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/sightline}
dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
SIGHTLINE_LISTEN=127.0.0.1:0 SIGHTLINE_DATA_DIR="$dir" "$bin" serve --turn-listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 100); do grep -q "serving on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://127.0.0.1:[0-9]*' "$dir/out" | head -1)
key=$(cat "$dir/bootstrap-api-key" 2>/dev/null || grep -o 'sl_[A-Za-z0-9_-]*' "$dir/err" | head -1 || true)
[ -n "$key" ] || key=$(awk '/shown only this once/{getline; getline; print $1}' "$dir/err")
url=$(curl -sf -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d '{"conversation":{"platform":"x","id":"1"},"agent":{"id":"a","name":"Ana"}}' \
  "$base/api/v1/sessions" | sed -n 's/.*"customer_url":"\([^"]*\)".*/\1/p')
curl -sf "$url" -o "$dir/page.html"
curl -sf -H 'accept-encoding: gzip' "$url" -o "$dir/page.sent"
total=0; gz=0; sent=0
printf '%-28s %8s %8s %8s\n' file bytes gzip sent
row() { local b g s; b=$(wc -c <"$1"); g=$(gzip -9c "$1" | wc -c); s=$(wc -c <"$2"); total=$((total + b)); gz=$((gz + g)); sent=$((sent + s)); printf '%-28s %8d %8d %8d\n' "$3" "$b" "$g" "$s"; }
row "$dir/page.html" "$dir/page.sent" "join page (HTML)"
for a in $(grep -o '/static/[0-9a-f]*/[a-z0-9.]*' "$dir/page.html" | sort -u); do
  curl -sf "$base$a" -o "$dir/asset"
  curl -sf -H 'accept-encoding: gzip' "$base$a" -o "$dir/asset.sent"
  row "$dir/asset" "$dir/asset.sent" "${a##*/}"
done
printf '%-28s %8d %8d %8d\n' total "$total" "$gz" "$sent"
# Modules the page imports later, not referenced by the HTML: the pre-call check (fetched
# on the pre-join page once the devices are ready, customers run it) and the in-call
# features (fetched when the call starts). Listed apart so the total above stays what the
# pre-join page needs before Join works, and nothing loaded later hides in it.
hash=$(grep -o '/static/[0-9a-f]*/' "$dir/page.html" | head -1)
echo "loaded later:"
for a in precheck.js incall.js incall.css; do
  curl -sf "$base$hash$a" -o "$dir/asset"
  curl -sf -H 'accept-encoding: gzip' "$base$hash$a" -o "$dir/asset.sent"
  b=$(wc -c <"$dir/asset"); g=$(gzip -9c "$dir/asset" | wc -c); s=$(wc -c <"$dir/asset.sent")
  printf '%-28s %8d %8d %8d\n' "$a" "$b" "$g" "$s"
done
