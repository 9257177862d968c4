#!/usr/bin/env bash
# Bytes the customer's pre-join page loads (HTML + JS + CSS), per page language:
# uncompressed, gzip -9, and what the server itself sends to a browser that accepts gzip (it
# compresses the static assets, not the HTML, which carries the session's data). Measured
# against the real binary: starts `sightline serve` on a free loopback port with a temporary
# data directory, creates one session per language (the customer's locale picks the page
# language), fetches the customer's page, every asset it references (its own language file
# among them) and the pre-call check module that the pre-join page imports once the devices
# are ready. Fails unless every language's pre-join total is under BUDGET bytes (60 KiB).
# Usage: tests/browser/page_size.sh [path/to/sightline]   (default: $CARGO_TARGET_DIR/debug/sightline)
set -euo pipefail
bin=${1:-${CARGO_TARGET_DIR:-target}/debug/sightline}
budget=${BUDGET:-61440}
dir=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT
SIGHTLINE_LISTEN=127.0.0.1:0 SIGHTLINE_DATA_DIR="$dir" "$bin" serve --turn-listen 127.0.0.1:0 >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 300); do grep -q "serving on" "$dir/out" 2>/dev/null && break; sleep 0.1; done
base=$(grep -o 'http://127.0.0.1:[0-9]*' "$dir/out" | head -1)
[ -n "$base" ] || { echo "page_size: the server did not start" >&2; cat "$dir/err" >&2; exit 1; }
key=$(cat "$dir/bootstrap-api-key" 2>/dev/null || grep -o 'sl_[A-Za-z0-9_-]*' "$dir/err" | head -1 || true)
[ -n "$key" ] || key=$(awk '/shown only this once/{getline; getline; print $1}' "$dir/err")

fetch() { # URL → $dir/asset (plain) and $dir/asset.sent (as sent with gzip accepted)
  curl -sf "$1" -o "$dir/asset"
  curl -sf -H 'accept-encoding: gzip' "$1" -o "$dir/asset.sent"
}
total=0; gz=0; sent=0
row() { # plain, sent, label: adds to the totals and prints a line when verbose
  local b g s; b=$(wc -c <"$1"); g=$(gzip -9c "$1" | wc -c); s=$(wc -c <"$2")
  total=$((total + b)); gz=$((gz + g)); sent=$((sent + s))
  [ "$verbose" = 1 ] && printf '  %-26s %8d %8d %8d\n' "$3" "$b" "$g" "$s"
  return 0
}

failed=0
summary=()
for lang in en es de fr pt ar; do
  verbose=0
  case $lang in en|ar) verbose=1 ;; esac
  url=$(curl -sf -H "authorization: Bearer $key" -H 'content-type: application/json' \
    -d "{\"conversation\":{\"platform\":\"x\",\"id\":\"$lang\"},\"agent\":{\"id\":\"a\",\"name\":\"Ana\"},\"customer\":{\"name\":\"Sam\",\"locale\":\"$lang\"}}" \
    "$base/api/v1/sessions" | sed -n 's/.*"customer_url":"\([^"]*\)".*/\1/p')
  [ -n "$url" ] || { echo "page_size: could not create a session" >&2; exit 1; }
  curl -sf "$url" -o "$dir/page.html"
  curl -sf -H 'accept-encoding: gzip' "$url" -o "$dir/page.sent"
  grep -q "<html lang=\"$lang\"" "$dir/page.html" || { echo "page_size: the $lang page is not in $lang" >&2; exit 1; }
  total=0; gz=0; sent=0
  [ "$verbose" = 1 ] && printf '%s: %-24s %8s %8s %8s\n' "$lang" file bytes gzip sent
  row "$dir/page.html" "$dir/page.sent" "join page (HTML)"
  hash=$(grep -o '/static/[0-9a-f]*/' "$dir/page.html" | head -1)
  for a in $(grep -o '/static/[0-9a-f]*/[a-z0-9./]*' "$dir/page.html" | sort -u); do
    fetch "$base$a"
    row "$dir/asset" "$dir/asset.sent" "${a#"$hash"}"
  done
  # The pre-call check: imported by the pre-join page as soon as the devices are ready.
  fetch "$base${hash}precheck.js"
  row "$dir/asset" "$dir/asset.sent" "precheck.js (import)"
  [ "$verbose" = 1 ] && printf '  %-26s %8d %8d %8d\n' "pre-join total" "$total" "$gz" "$sent"
  summary+=("$(printf '%-4s %8d %8d %8d' "$lang" "$total" "$gz" "$sent")")
  if [ "$total" -ge "$budget" ]; then
    echo "page_size: FAIL: the $lang pre-join page loads $total bytes, budget $budget" >&2
    failed=1
  fi
done

echo "pre-join page per language (bytes, gzip -9, sent; budget $budget bytes uncompressed):"
printf '%s\n' "${summary[@]}"
# Modules the page imports when the call starts (routed.js: when it is routed; recording.js
# and .css: when the session is recorded), not part of
# the pre-join phase: listed
# apart so nothing loaded later hides in the totals above.
echo "loaded later (when the call starts):"
for a in incall.js incall.css routed.js recording.js recording.css; do
  fetch "$base$hash$a"
  b=$(wc -c <"$dir/asset"); g=$(gzip -9c "$dir/asset" | wc -c); s=$(wc -c <"$dir/asset.sent")
  printf '  %-26s %8d %8d %8d\n' "$a" "$b" "$g" "$s"
done
if [ "$failed" = 0 ]; then
  echo "page_size: ok: every pre-join page is under $budget bytes"
fi
exit "$failed"
