#!/usr/bin/env bash
# Side-by-side relay benchmark: Sightline's bundled TURN server vs coturn
# (Debian), same client (turnutils_uclient), same machine, one run.
# Loopback only. Usage: turn/bench/compare-coturn.sh [runs-per-case]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-1}
SECRET=bench-secret
REALM=bench.local
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-turn}
for t in turnserver turnutils_uclient python3; do
  command -v $t >/dev/null || { echo "missing $t (apt-get install -y coturn python3)"; exit 1; }
done
cargo build --release -p sightline-turn --bin sightline-turn-bench >&2
OURS="$CARGO_TARGET_DIR/release/sightline-turn-bench"
TMP=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket
for _ in range(50):
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
    t=socket.socket(); 
    try:
        t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass
    finally: t.close(); u.close()'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 1 100); do ss -lun | grep -q "127.0.0.1:$1 " && return 0; sleep 0.05; done; echo "server on $1 did not start"; exit 1; }
TCK=$(getconf CLK_TCK)
declare -A MEM

P_COTURN=$(free_port)
turnserver -n --use-auth-secret --static-auth-secret=$SECRET --realm=$REALM \
  --listening-port=$P_COTURN --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
  --allow-loopback-peers --no-cli --no-tls --no-dtls --user-quota=0 --total-quota=0 \
  --min-port=20000 --max-port=29999 --no-stdout-log --log-file="$TMP/coturn.log" --simple-log \
  --no-software-attribute >/dev/null 2>&1 &
PIDS+=($!); PID_COTURN=$!
P_OURS=$(free_port)
RUST_LOG=warn "$OURS" --listen 127.0.0.1:$P_OURS --relay-ip 127.0.0.1 --relay-ports 30000-39999 \
  --secret $SECRET --realm $REALM --user-quota 0 >"$TMP/ours.log" 2>&1 &
PIDS+=($!); PID_OURS=$!
wait_port $P_COTURN; wait_port $P_OURS
echo "coturn $(turnserver --version 2>/dev/null | head -1) pid $PID_COTURN port $P_COTURN; sightline pid $PID_OURS port $P_OURS"
echo "idle RSS: coturn $(rss_kb $PID_COTURN) kB, sightline $(rss_kb $PID_OURS) kB"

declare -A CPU LOSS
run_case() { # name pid port args...
  local name=$1 pid=$2 port=$3; shift 3
  local c0 c1 out
  c0=$(cpu_ticks $pid)
  out=$(timeout 300 turnutils_uclient -p $port -u agent -W $SECRET -X -y -c "$@" 127.0.0.1 2>&1 || true)
  c1=$(cpu_ticks $pid)
  local lost rtt sent cpu
  lost=$(echo "$out" | grep -o 'Total lost packets [0-9]* ([0-9.]*%)' | tail -1 | sed 's/Total lost packets //')
  rtt=$(echo "$out" | grep -o 'Average round trip delay [0-9.]* ms' | tail -1 | awk '{print $5}')
  sent=$(echo "$out" | grep -o 'tot_send_msgs=[0-9]*' | tail -1 | cut -d= -f2)
  cpu=$(echo "($c1-$c0)/$TCK" | bc -l)
  CPU["$name $*"]=$cpu
  printf '| %-9s | %-28s | %7s | %-18s | %8.3f | %6.2f | %7d | %4s |\n' \
    "$name" "$*" "$sent" "$lost" "${rtt:-0}" "$cpu" "$(hwm_kb $pid)" "$(cut -d' ' -f1 /proc/loadavg)"
}
echo
echo "| server    | uclient args                 | sent    | lost (%)           | RTT ms   | CPU s  | maxRSS kB | load |"
echo "|-----------|------------------------------|---------|--------------------|----------|--------|-----------|------|"
# Memory per allocation: 500 allocations (250 client pairs), light traffic, peak RSS growth.
for srv in coturn:$PID_COTURN:$P_COTURN sightline:$PID_OURS:$P_OURS; do
  IFS=: read -r name pid port <<<"$srv"
  h0=$(hwm_kb $pid)
  run_case "$name" "$pid" "$port" -m 250 -n 50 -l 170 -z 20
  h1=$(hwm_kb $pid)
  MEM[$name]=$(( (h1 - h0) * 1024 / 500 ))
done
for run in $(seq 1 "$RUNS"); do
  for args in "-m 100 -n 2000 -l 170 -z 5" "-m 50 -n 2000 -l 1000 -z 5"; do
    # shellcheck disable=SC2086
    run_case coturn $PID_COTURN $P_COTURN $args
    # shellcheck disable=SC2086
    run_case sightline $PID_OURS $P_OURS $args
  done
done
echo
for args in "-m 100 -n 2000 -l 170 -z 5" "-m 50 -n 2000 -l 1000 -z 5"; do
  printf 'CPU ratio sightline/coturn for %s (last run): %.2f\n' "$args" \
    "$(echo "${CPU["sightline $args"]}/${CPU["coturn $args"]}" | bc -l)"
done
echo "peak RSS growth per allocation (500 allocations): coturn ${MEM[coturn]} B, sightline ${MEM[sightline]} B"

echo "--- 100,000 spoofed unauthenticated Allocates (RSS before -> after)"
for srv in coturn:$PID_COTURN:$P_COTURN sightline:$PID_OURS:$P_OURS; do
  IFS=: read -r name pid port <<<"$srv"
  r0=$(rss_kb $pid); c0=$(cpu_ticks $pid)
  python3 turn/bench/spoof_allocates.py "$port" 100000 >/dev/null
  sleep 1
  r1=$(rss_kb $pid); c1=$(cpu_ticks $pid)
  printf '%-9s RSS %6d kB -> %6d kB  (CPU %.2f s)\n' "$name" "$r0" "$r1" "$(echo "($c1-$c0)/$TCK" | bc -l)"
done
