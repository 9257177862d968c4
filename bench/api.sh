#!/usr/bin/env bash
# Throughput and latency of POST /api/v1/sessions vs GET /healthz in the same run,
# release build, SQLite on disk, 50 connections, load generator on the same machine:
# flat out (each connection sends its next request as soon as the answer arrives), then
# paced at ~1,000 sessions/s (each connection waits ~42 ms between requests) and at
# ~4,000 sessions/s (4–13 ms, as many as the server then answers). Ends with what the server's metrics say about its writes.
# Usage: bench/api.sh [seconds]   (needs wrk: apt-get install -y wrk)
# SIGHTLINE_BIN=path runs another build of the server (to compare two builds).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null; }
bin=${SIGHTLINE_BIN:-target/release/sightline}
[ -n "${SIGHTLINE_BIN:-}" ] || cargo build --release --quiet --bin sightline
dir=$(mktemp -d)
out=$dir/out.log; err=$dir/err.log
SIGHTLINE_LOG_LEVEL=warn "$bin" serve --listen 127.0.0.1:0 --turn-listen 127.0.0.1:0 --data-dir "$dir/data" >"$out" 2>"$err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 100); do grep -q "serving on" "$out" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^Sightline is serving on \([^ ]*\).*/\1/p' "$out")
# The first key is in data/bootstrap-api-key (stdout is not a terminal); builds before
# that change printed it on stderr.
if [ -f "$dir/data/bootstrap-api-key" ]; then
  export SIGHTLINE_API_KEY=$(cat "$dir/data/bootstrap-api-key")
else
  export SIGHTLINE_API_KEY=$(grep -o 'sl_[A-Za-z0-9_-]*' "$err" | head -1)
fi
echo "== GET /healthz (reference)"
wrk -t2 -c50 -d"${secs}s" --latency "$url/healthz" | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
echo "== POST /api/v1/sessions"
wrk -t2 -c50 -d"${secs}s" --latency -s bench/create_session.lua "$url" | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
echo "== POST /api/v1/sessions paced (~1,000/s offered)"
SIGHTLINE_BENCH_PACE_MS=42 wrk -t2 -c50 -d"${secs}s" --latency -s bench/create_session.lua "$url" | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
echo "== POST /api/v1/sessions paced (4–13 ms between requests, ~4,000/s)"
SIGHTLINE_BENCH_PACE_MS=9 wrk -t2 -c50 -d"${secs}s" --latency -s bench/create_session.lua "$url" | grep -E "Requests/sec|50%|99%|requests in|Non-2xx"
metrics=$(curl -s "$url/metrics")
echo "write batches: $(echo "$metrics" | grep -E '^sightline_session_write_batch_(size|seconds)_(sum|count)' | awk '{printf "%s=%s ", $1, $2}')"
echo "sessions stored: $(echo "$metrics" | grep '^sightline_sessions{status="created"}')"
