#!/usr/bin/env bash
# Side-by-side relay benchmark: Sightline's bundled TURN server vs coturn
# (Debian), same client (turnutils_uclient), same machine, loopback only.
# UDP, TCP (-t) and TLS (-t -S, both servers with the same self-signed
# certificate) with a 170-byte and a 1000-byte load; the two servers take
# turns, and the order flips every run.
#
# Usage: turn/bench/compare-coturn.sh [runs]      (default 2)
#   EXTRAS=1  also memory per allocation and 100,000 spoofed Allocates (UDP)
#   FDCAP=1   also: both servers under `ulimit -n 1024`, how many TCP and TLS
#             allocations each holds and what it answers past that
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-2}
SECRET=bench-secret
REALM=bench.local
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/target-turn}
for t in turnserver turnutils_uclient python3 openssl bc ss; do
  command -v $t >/dev/null || { echo "missing $t (apt-get install -y coturn python3 openssl bc iproute2)"; exit 1; }
done
cargo build --release -p sightline-turn --bin sightline-turn-bench >&2
OURS="$CARGO_TARGET_DIR/release/sightline-turn-bench"
TMP=$(mktemp -d); PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$TMP/key.pem" -out "$TMP/cert.pem" >/dev/null 2>&1
free_port() { python3 -c 'import socket
for _ in range(50):
    u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.bind(("127.0.0.1",0)); p=u.getsockname()[1]
    t=socket.socket()
    try:
        t.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass
    finally: t.close(); u.close()'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/{print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
wait_port() { # proto port
  for _ in $(seq 1 100); do ss -ln"$1" | grep -q "127.0.0.1:$2 " && return 0; sleep 0.05; done
  echo "server on $2 did not start"; exit 1; }
TCK=$(getconf CLK_TCK)

# start_coturn PORT TLS_PORT LOG  /  start_ours PORT TLS_PORT LOG (pid in $!)
start_coturn() {
  turnserver -n --use-auth-secret --static-auth-secret=$SECRET --realm=$REALM \
    --listening-port="$1" --tls-listening-port="$2" --listening-ip=127.0.0.1 --relay-ip=127.0.0.1 \
    --cert="$TMP/cert.pem" --pkey="$TMP/key.pem" \
    --allow-loopback-peers --no-cli --no-dtls --user-quota=0 --total-quota=0 \
    --min-port=20000 --max-port=29999 --no-stdout-log --log-file="$3" --simple-log \
    --no-software-attribute >/dev/null 2>&1 &
}
start_ours() {
  RUST_LOG=warn,sightline_turn::cli=info "$OURS" --listen 127.0.0.1:"$1" --tls-listen 127.0.0.1:"$2" \
    --tls-cert "$TMP/cert.pem" --tls-key "$TMP/key.pem" --relay-ip 127.0.0.1 \
    --relay-ports 30000-39999 --secret $SECRET --realm $REALM --user-quota 0 \
    --legacy-channel-numbers --max-stream-connections-per-ip 0 >"$3" 2>&1 &
}

P_COTURN=$(free_port); T_COTURN=$(free_port)
start_coturn "$P_COTURN" "$T_COTURN" "$TMP/coturn.log"; PIDS+=($!); PID_COTURN=$!
P_OURS=$(free_port); T_OURS=$(free_port)
start_ours "$P_OURS" "$T_OURS" "$TMP/ours.log"; PIDS+=($!); PID_OURS=$!
wait_port u "$P_COTURN"; wait_port t "$T_COTURN"; wait_port u "$P_OURS"; wait_port t "$T_OURS"
echo "coturn $(turnserver --version 2>/dev/null | head -1) pid $PID_COTURN ports $P_COTURN/$T_COTURN (TLS);" \
  "sightline pid $PID_OURS ports $P_OURS/$T_OURS (TLS)"
echo "idle RSS: coturn $(rss_kb $PID_COTURN) kB, sightline $(rss_kb $PID_OURS) kB"

declare -A CPU
run_case() { # name pid port proto run args...
  local name=$1 pid=$2 port=$3 proto=$4 run=$5; shift 5
  local pargs=()
  case $proto in tcp) pargs=(-t) ;; tls) pargs=(-t -S) ;; esac
  local c0 c1 out lost rtt sent cpu
  c0=$(cpu_ticks "$pid")
  out=$(timeout 300 turnutils_uclient "${pargs[@]}" -p "$port" -u agent -W $SECRET -X -y -c "$@" 127.0.0.1 2>&1 || true)
  c1=$(cpu_ticks "$pid")
  lost=$(echo "$out" | grep -o 'Total lost packets [0-9]* ([0-9.]*%)' | tail -1 | sed 's/Total lost packets //')
  rtt=$(echo "$out" | grep -o 'Average round trip delay [0-9.]* ms' | tail -1 | awk '{print $5}')
  sent=$(echo "$out" | grep -o 'tot_send_msgs=[0-9]*' | tail -1 | cut -d= -f2)
  cpu=$(echo "($c1-$c0)/$TCK" | bc -l)
  CPU["$name|$proto|$*|$run"]=$cpu
  printf '| %-9s | %-3s | %-26s | %3s | %6s | %-16s | %7.2f | %5.2f | %7d | %7d | %4s |\n' \
    "$name" "$proto" "$*" "$run" "${sent:-0}" "${lost:-?}" "${rtt:-0}" "$cpu" "$(rss_kb "$pid")" \
    "$(hwm_kb "$pid")" "$(cut -d' ' -f1 /proc/loadavg)"
}
LOADS=("-m 100 -n 2000 -l 170 -z 5" "-m 50 -n 2000 -l 1000 -z 5")
echo
echo "| server    | via | uclient load               | run | sent   | lost (%)         | RTT ms  | CPU s | RSS kB  | maxRSS  | load |"
echo "|-----------|-----|----------------------------|-----|--------|------------------|---------|-------|---------|---------|------|"
for run in $(seq 1 "$RUNS"); do
  for proto in udp tcp tls; do
    for load in "${LOADS[@]}"; do
      pc=$P_COTURN; po=$P_OURS
      [ "$proto" = tls ] && { pc=$T_COTURN; po=$T_OURS; }
      # shellcheck disable=SC2086
      if (( run % 2 )); then
        run_case coturn $PID_COTURN $pc $proto $run $load
        run_case sightline $PID_OURS $po $proto $run $load
      else
        run_case sightline $PID_OURS $po $proto $run $load
        run_case coturn $PID_COTURN $pc $proto $run $load
      fi
    done
  done
done
echo
echo "CPU ratio sightline/coturn (per run, and over all runs):"
for proto in udp tcp tls; do
  for load in "${LOADS[@]}"; do
    so=0; sc=0; per=""
    for run in $(seq 1 "$RUNS"); do
      o=${CPU["sightline|$proto|$load|$run"]}; c=${CPU["coturn|$proto|$load|$run"]}
      per="$per $(printf '%.2f' "$(echo "$o/$c" | bc -l)")"
      so=$(echo "$so+$o" | bc -l); sc=$(echo "$sc+$c" | bc -l)
    done
    printf '  %-3s %-26s runs:%s  all: %.2f (%.2f s vs %.2f s)\n' "$proto" "$load" "$per" \
      "$(echo "$so/$sc" | bc -l)" "$so" "$sc"
  done
done

# Sightline's own counters (dropped = not sent: full output buffer, refused peer...).
kill -TERM "$PID_OURS" 2>/dev/null || true
for _ in $(seq 1 50); do kill -0 "$PID_OURS" 2>/dev/null || break; sleep 0.1; done
echo "sightline counters: $(grep -o 'TurnStats {.*}' "$TMP/ours.log" | tail -1)"

if [ "${EXTRAS:-0}" = 1 ]; then
  start_ours "$P_OURS" "$T_OURS" "$TMP/ours2.log"; PIDS+=($!); PID_OURS=$!
  wait_port u "$P_OURS"
  echo
  echo "--- memory per allocation (500 allocations over UDP, peak RSS growth)"
  for srv in coturn:$PID_COTURN:$P_COTURN sightline:$PID_OURS:$P_OURS; do
    IFS=: read -r name pid port <<<"$srv"
    h0=$(hwm_kb "$pid")
    timeout 300 turnutils_uclient -p "$port" -u agent -W $SECRET -X -y -c -m 250 -n 50 -l 170 -z 20 127.0.0.1 >/dev/null 2>&1 || true
    h1=$(hwm_kb "$pid")
    echo "$name: $(( (h1 - h0) * 1024 / 500 )) B per allocation"
  done
  echo "--- 100,000 spoofed unauthenticated Allocates (RSS before -> after)"
  for srv in coturn:$PID_COTURN:$P_COTURN sightline:$PID_OURS:$P_OURS; do
    IFS=: read -r name pid port <<<"$srv"
    r0=$(rss_kb "$pid"); c0=$(cpu_ticks "$pid")
    python3 turn/bench/spoof_allocates.py "$port" 100000 >/dev/null
    sleep 1
    r1=$(rss_kb "$pid"); c1=$(cpu_ticks "$pid")
    printf '%-9s RSS %6d kB -> %6d kB  (CPU %.2f s)\n' "$name" "$r0" "$r1" "$(echo "($c1-$c0)/$TCK" | bc -l)"
  done
fi

if [ "${FDCAP:-0}" = 1 ]; then
  echo
  echo "--- open-file limit 1024: allocations held over TCP and TLS (one connection each, up to 700)"
  for name in sightline coturn; do
    p=$(free_port); tp=$(free_port)
    if [ $name = coturn ]; then
      (ulimit -n 1024; start_coturn "$p" "$tp" "$TMP/fd-coturn.log"; wait) & PIDS+=($!)
    else
      (ulimit -n 1024; start_ours "$p" "$tp" "$TMP/fd-ours.log"; wait) & PIDS+=($!)
    fi
    wait_port u "$p"; wait_port t "$tp"
    spid=$(ss -lntp | grep "127.0.0.1:$p " | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    PIDS+=("$spid")
    echo "$name (pid $spid, $(grep 'open files' /proc/"$spid"/limits | awk '{print "nofile", $4}'))"
    for proto in tcp tls; do
      port=$p; [ $proto = tls ] && port=$tp
      c0=$(cpu_ticks "$spid")
      echo "  $(timeout 200 python3 turn/bench/hold_allocations.py "$port" $SECRET $REALM 700 $proto "$p")" \
        "RSS $(rss_kb "$spid") kB, CPU $(echo "($(cpu_ticks "$spid")-$c0)/$TCK" | bc -l | xargs printf '%.2f') s"
      sleep 2
      kill -0 "$spid" 2>/dev/null && echo "  still running after the $proto test" || echo "  SERVER EXITED"
    done
    kill "$spid" 2>/dev/null || true
  done
  echo "  warnings logged by sightline: $(grep -c WARN "$TMP/fd-ours.log" || true)"
  grep WARN "$TMP/fd-ours.log" | sed 's/\x1b\[[0-9;]*m//g' | head -4
fi
