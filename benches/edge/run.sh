#!/usr/bin/env bash
# The presence-at-the-edge figures of issue 19 ("Measure"): N presentities with W watchers
# each, half of them online on devices (imppd processes with many serving accounts) that
# serve their own watchers, under RATE presence changes a second; the server with
# migration off, proxy and redirect, in the same run; then a device killed with SIGKILL and
# the time until its last watcher is served by the server again. See
# benches/edge/README.md. Not part of `cargo test`.
#
#   benches/edge/run.sh                      # 1,000 x 50, 200 changes/s for 20 s, 3 reps
#   QUICK=1 benches/edge/run.sh              # 100 x 10, 20 changes/s for 8 s, once
#   N=400 W=50 RATE=80 STORM_S=20 REPS=1 DEVICES=4 benches/edge/run.sh
#   MODES="off proxy" benches/edge/run.sh    # some modes only
#   PERF=1 MODES="off proxy" REPS=1 KILL=0 benches/edge/run.sh   # perf record of the server
#   IMPPD=/path/to/imppd KEEP=1 WORK=/tmp/edge benches/edge/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$1"; else echo "$2"; fi; }
REPS=${REPS:-$(q 1 3)}
N=${N:-$(q 100 1000)}
W=${W:-$(q 10 50)}
RATE=${RATE:-$(q 20 200)}
STORM_S=${STORM_S:-$(q 8 20)}
DEVICES=${DEVICES:-$(q 2 4)}
SUB_RATE=${SUB_RATE:-2000}
SETTLE=${SETTLE:-3}
KILL=${KILL:-1}
MODES=${MODES:-"off proxy redirect"}
KEEP=${KEEP:-0}
PERF=${PERF:-}    # 1: perf record of the server over each storm (WORK/perf-MODE-REP.data; implies KEEP=1)
[ -n "$PERF" ] && KEEP=1

EB="python3 $HERE/edgebench.py"
SIPB="python3 $ROOT/benches/sip/sipbench.py"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

WORK=${WORK:-$(mktemp -d /tmp/edge-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"

SRV_PID= DEV_PIDS=()
stop_pid() { # pid: SIGTERM, wait at most 10 s, then SIGKILL
  local p=$1 _
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
stop_all() {
  local p
  for p in "${DEV_PIDS[@]}"; do stop_pid "$p"; done
  DEV_PIDS=()
  stop_pid "$SRV_PID"; SRV_PID=
}
cleanup() {
  stop_all
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [ -n "${IMPPD:-}" ]; then
  log "imppd binary given: $IMPPD"
else
  log "building imppd (release)"
  timeout 1800 cargo build --release --quiet --bin imppd
  IMPPD=$TARGET_DIR/release/imppd
fi
[ -x "$IMPPD" ] || { echo "imppd binary not found at $IMPPD" >&2; exit 1; }
HELP=$("$IMPPD" --help 2>&1 || true)
grep -q -- '--migrate' <<<"$HELP" || { echo "$IMPPD has no --migrate" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

TREE=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || TREE=$TREE-dirty
echo "info ncpu=$(nproc) reps=$REPS tree=$TREE n=$N w=$W rate=$RATE storm_s=$STORM_S devices=$DEVICES" >>"$RESULTS"

# wait_for FILE PATTERN COUNT SECONDS PID: until FILE has COUNT lines matching PATTERN
wait_for() {
  local f=$1 pat=$2 count=$3 secs=$4 pid=$5 _
  for _ in $(seq $((secs * 10))); do
    (( $(grep -c -- "$pat" "$f" 2>/dev/null || true) >= count )) && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "waited in vain for $count x '$pat' in $f:" >&2; tail -20 "$f" >&2; return 1
}
common=(--rate-limit 0 --max-connections 20000 --max-connections-per-address 20000
  --idle-timeout 3600 --max-subscriptions-per-watcher 100000)

# start_server MODE NAME: the server imppd (example.test, open, XCAP on --http), its users
# and rules; sets SRV_PID, SPORT, HPORT, SRV_DB.
start_server() {
  local mode=$1 name=$2
  SPORT=$($SIPB freeport); HPORT=$($SIPB freeport)
  SRV_DB=$WORK/server-$name.db; SRV_LOG=$WORK/server-$name.log
  rm -f "$SRV_DB"*
  "$IMPPD" --domain example.test --db "$SRV_DB" --open --migrate "$mode" \
    --listen "udp:127.0.0.1:$SPORT" --listen "tcp:127.0.0.1:$SPORT" --http "127.0.0.1:$HPORT" \
    --log-level warn "${common[@]}" 2>"$SRV_LOG" &
  SRV_PID=$!
  wait_for "$SRV_LOG" '^imppd ready' 1 30 "$SRV_PID"
  $EB setup "$SRV_DB.ctl" "$N"
}

# start_devices NAME: DEVICES device imppds, the online presentities spread over them, each
# account serving, with keep-alives every 2 s and its rules read from the server's XCAP.
start_devices() {
  local name=$1 d port conf dlog
  DEV_PIDS=() DEV_PORTS=() DEV_SOCKS=()
  for d in $(seq 0 $((DEVICES - 1))); do
    port=$($SIPB freeport)
    conf=$WORK/device$d-$name.conf; dlog=$WORK/device$d-$name.log
    $EB accounts "$N" "$DEVICES" "$d" "$SPORT" "$HPORT" >"$conf"
    # --unauthenticated-timeout: a device challenges no watcher, so without it the TCP
    # connections of watchers redirected to it would close after 32 s.
    "$IMPPD" --domain "d$d.device.test" --db none --ctl-socket "$WORK/device$d.ctl" \
      --listen "udp:127.0.0.1:$port" --listen "tcp:127.0.0.1:$port" --config "$conf" \
      --federation open --log-level info --unauthenticated-timeout 3600 "${common[@]}" 2>"$dlog" &
    DEV_PIDS+=($!) DEV_PORTS+=("$port") DEV_SOCKS+=("$WORK/device$d.ctl")
    disown $!   # the driver kills one with SIGKILL: no job report from bash
    # One device at a time: every account registered and its rules read (one line each)
    # before the next starts (all at once, the server's HTTP listener answers some of the
    # XCAP fetches 503 and the accounts retry 2 s, 4 s, ... later).
    wait_for "$dlog" '^imppd ready' 1 60 "${DEV_PIDS[$d]}"
    wait_for "$dlog" 'rules loaded from the server' "$(grep -c '^account' "$conf")" 180 "${DEV_PIDS[$d]}"
  done
}

join() { local IFS=,; echo "$*"; }

for rep in $(seq "$REPS"); do
  order=$MODES; (( rep % 2 == 0 )) && order=$(tr ' ' '\n' <<<"$MODES" | tac | tr '\n' ' ')
  for mode in $order; do
    name=$mode-$rep
    log "$name: starting the server and $DEVICES devices"
    start_server "$mode" "$name"
    start_devices "$name"
    log "$name: $((N / 2)) online presentities registered with their rules; the watchers subscribe"
    $EB drive MODE="$mode" REP="$rep" N="$N" W="$W" RATE="$RATE" STORM_S="$STORM_S" \
      DEVICES="$DEVICES" SERVER="127.0.0.1:$SPORT" METRICS="http://127.0.0.1:$HPORT/metrics" \
      SERVER_PID="$SRV_PID" DEV_PIDS="$(join "${DEV_PIDS[@]}")" DEV_PORTS="$(join "${DEV_PORTS[@]}")" \
      DEV_SOCKS="$(join "${DEV_SOCKS[@]}")" SUB_RATE="$SUB_RATE" SETTLE="$SETTLE" KILL="$KILL" \
      ${PERF:+PERF="$WORK/perf-$name.data"} \
      | tee -a "$RESULTS"
    stop_all
  done
done

$EB report "$RESULTS"
