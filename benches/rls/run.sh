#!/usr/bin/env bash
# The resource-list figures of issue 16: busy-lamp phones watching their keys through one
# RFC 4662 list subscription each ("list") against one subscription per key ("single"),
# under the same storm of dialog-state changes. See benches/rls/README.md. Not part of
# `cargo test`.
#
#   benches/rls/run.sh                     # 1,000 phones x 50 keys of 1,000 users, 200
#                                          # changes/s for 20 s, both modes, 3 repetitions
#   QUICK=1 benches/rls/run.sh             # 200 phones x 20 keys of 200 users, 50/s, 8 s, once
#   PHONES=500 KEYS=50 USERS=1000 RATE=200 STORM_S=30 REPS=5 KEEP=1 benches/rls/run.sh
#   MODES=list benches/rls/run.sh          # one mode only
#   MODES="single list" benches/rls/run.sh # without the storm alone (mode none: no phones)
#                                          # nor the connections alone (mode conn: no storm)
#   IMPPD=/path/to/imppd benches/rls/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$1"; else echo "$2"; fi; }
REPS=${REPS:-$(q 1 3)}
PHONES=${PHONES:-$(q 200 1000)}
KEYS=${KEYS:-$(q 20 50)}
USERS=${USERS:-$(q 200 1000)}
RATE=${RATE:-$(q 50 200)}
STORM_S=${STORM_S:-$(q 8 20)}
SEED=${SEED:-1}
BATCH_MS=${BATCH_MS:-1000}
SETTLE_S=${SETTLE_S:-3}
MODES=${MODES:-"none single list conn"}
PERF=${PERF:-0}   # 1: perf record imppd over each storm (WORK/perf-MODE-REP.data; implies KEEP=1)
KEEP=${KEEP:-0}
[ "$PERF" = 1 ] && KEEP=1

RLSB="python3 $HERE/rlsbench.py"
SIPB="python3 $ROOT/benches/sip/sipbench.py"
NETB="python3 $ROOT/benches/network/netbench.py"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }

WORK=${WORK:-$(mktemp -d /tmp/rls-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
record() { echo "$*" >>"$RESULTS"; }

SRV_PID= GEN_PID= PERF_PID=
stop_pid() { # pid: SIGTERM, wait at most 10 s, then SIGKILL
  local p=$1 _
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  stop_pid "$PERF_PID"; PERF_PID=
  stop_pid "$GEN_PID"; GEN_PID=
  stop_pid "$SRV_PID"; SRV_PID=
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building the generators (release): examples tls_swarm, sip_publisher"
timeout 1800 cargo build --release --quiet --example tls_swarm --example sip_publisher
SWARM=$TARGET_DIR/release/examples/tls_swarm
PUBLISHER=$TARGET_DIR/release/examples/sip_publisher
if [ -n "${IMPPD:-}" ]; then
  log "imppd binary given: $IMPPD"
else
  log "building imppd (release)"
  timeout 1800 cargo build --release --quiet --bin imppd
  IMPPD=$TARGET_DIR/release/imppd
fi
[ -x "$IMPPD" ] || { echo "imppd binary not found at $IMPPD" >&2; exit 1; }
HELP=$("$IMPPD" --help 2>&1 || true)
grep -q -- '--list-batch-interval' <<<"$HELP" \
  || { echo "$IMPPD has no --list-batch-interval (no list server)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# The phones' lists, made once and imported into a database every run copies.
BLF=(--tcp --conns "$PHONES" --dialogs "$KEYS" --users "$USERS" --seed "$SEED")
"$SWARM" blf-lists "${BLF[@]}" >"$WORK/lists.xml"
timeout 300 "$IMPPD" list import "$WORK/lists.xml" --domain example.test --db "$WORK/lists.db" >/dev/null
log "$PHONES lists of $KEYS keys of $USERS users imported ($(du -k "$WORK/lists.db" | cut -f1) kB database)"

CLK=$(getconf CLK_TCK)
TREE=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || TREE=$TREE-dirty
record "info clk_tck=$CLK ncpu=$(nproc) reps=$REPS tree=$TREE imppd=$IMPPD phones=$PHONES \
keys=$KEYS users=$USERS rate=$RATE storm_s=$STORM_S batch_ms=$BATCH_MS seed=$SEED"

# start_imppd NAME: imppd on a fresh UDP+TCP port ($PORT) with a copy of the lists'
# database, open, allow all; sets SRV_PID and SRV_LOG.
start_imppd() {
  local name=$1 _
  PORT=$($SIPB freeport)
  SRV_LOG=$WORK/imppd-$name.log
  cp "$WORK/lists.db" "$WORK/run.db"
  rm -f "$WORK/run.db-wal" "$WORK/run.db-shm"
  "$IMPPD" --domain example.test --db "$WORK/run.db" --open --policy allow \
    --listen "udp:127.0.0.1:$PORT" --listen "tcp:127.0.0.1:$PORT" --log-level warn \
    --max-connections 20000 --max-connections-per-address 20000 --idle-timeout 3600 \
    --rate-limit 0 --list-batch-interval "$BATCH_MS" 2>"$SRV_LOG" &
  SRV_PID=$!
  for _ in $(seq 300); do
    grep -q '^imppd ready' "$SRV_LOG" && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "imppd did not get ready:" >&2; cat "$SRV_LOG" >&2; exit 1
}
ticks() { $SIPB ticks "$@"; }
# The value of KEY in a line of key=value words.
val() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }
col() { tail -1 "$1" 2>/dev/null | awk -v c="$2" '{ print $c }'; }
# Waits until N dialogs have their first NOTIFY in $STATS (at most 5 minutes), or the
# generator $GEN_PID is gone.
first_notifies() { # n
  for _ in $(seq 1200); do
    sleep 0.25
    n=$(col "$STATS" 3)
    [ -n "$n" ] && (( n >= $1 )) && break
    kill -0 "$GEN_PID" 2>/dev/null || break
  done
}

for rep in $(seq "$REPS"); do
  # Alternate which mode goes first.
  order=$MODES; (( rep % 2 == 0 )) && order=$(tr ' ' '\n' <<<"$MODES" | tac | tr '\n' ' ')
  for mode in $order; do
    start_imppd "$mode-$rep"
    sleep 1
    before=$($NETB probe "$SRV_PID" "$SRV_LOG")
    if [ "$mode" = conn ]; then
      # The phones' TCP connections alone, each after one OPTIONS answered: what a phone
      # costs before any subscription (so a list subscription's bytes are told apart).
      rm -f "$WORK/until" "$WORK/ready"
      "$SWARM" hold --server "127.0.0.1:$PORT" --tcp --conns "$PHONES" --rate 5000 --method OPTIONS \
        --ready-file "$WORK/ready" --until-file "$WORK/until" --max-s 900 >"$WORK/hold-$rep.out" 2>&1 &
      GEN_PID=$!
      for _ in $(seq 1200); do
        sleep 0.25
        [ -s "$WORK/ready" ] && break
        kill -0 "$GEN_PID" 2>/dev/null || break
      done
      ready=$(cat "$WORK/ready" 2>/dev/null || true)
      [ "$(val held "$ready")" = "$PHONES" ] || { echo "not every connection held: $ready" >&2; cat "$WORK/hold-$rep.out" >&2; exit 1; }
      sleep "$SETTLE_S"
      held=$($NETB probe "$SRV_PID" "$SRV_LOG")
      log "conn #$rep: $PHONES connections held"
      record "conns rep=$rep phones=$PHONES heap0=$(val heap "$before") rss0=$(val rss_kb "$before") \
heap1=$(val heap "$held") rss1=$(val rss_kb "$held")"
      touch "$WORK/until"
      for _ in $(seq 100); do kill -0 "$GEN_PID" 2>/dev/null || break; sleep 0.1; done
      stop_pid "$GEN_PID"; GEN_PID=
      stop_pid "$SRV_PID"; SRV_PID=
      continue
    fi
    case "$mode" in
      list) dialogs=$PHONES ;;
      single) dialogs=$((PHONES * KEYS)) ;;
      none) dialogs=0 ;;   # the storm alone: what a change costs with no one watching
      *) echo "unknown mode $mode (single, list, none, conn)" >&2; exit 2 ;;
    esac
    STATS=$WORK/watch-$mode-$rep.txt
    rm -f "$WORK/until" "$WORK/resume"
    # The first half of the phones subscribe, the heap is probed, then the second half: what
    # the second half adds is what one more phone costs once every user is watched by
    # someone (the users' own state, paid once per user however many watch it, is then
    # already there).
    half=$((PHONES / 2)) half_dialogs=$((dialogs / 2))
    ts=$(now)
    if [ "$mode" = none ]; then
      sleep 1 &   # a stand-in generator: its stats file is all zeros
      echo "$(now) 0 0 0 0 0 0 0 0" >"$STATS"
    else
    "$SWARM" watch --server "127.0.0.1:$PORT" --blf "$mode" "${BLF[@]}" --rate 5000 \
      --pause-at "$half" --resume-file "$WORK/resume" \
      --stats-file "$STATS" --until-file "$WORK/until" --max-s 900 >"$WORK/watch-$mode-$rep.out" 2>&1 &
    fi
    GEN_PID=$!
    first_notifies "$half_dialogs"
    t_half=$(now)
    (( $(col "$STATS" 3) >= half_dialogs )) || { echo "not every dialog of the first half got its first NOTIFY" >&2; cat "$WORK/watch-$mode-$rep.out" >&2; exit 1; }
    sleep "$SETTLE_S"
    mid=$($NETB probe "$SRV_PID" "$SRV_LOG")
    t_resume=$(now)
    touch "$WORK/resume"
    first_notifies "$dialogs"
    subscribe_s=$(awk -v a="$ts" -v h="$t_half" -v r="$t_resume" -v b="$(now)" 'BEGIN { printf "%.1f", (h - a) + (b - r) }')
    log "$mode #$rep: $(col "$STATS" 2) subscribed, $(col "$STATS" 3) first NOTIFYs of $dialogs dialogs in $subscribe_s s"
    (( $(col "$STATS" 3) >= dialogs )) || { echo "not every dialog got its first NOTIFY" >&2; cat "$WORK/watch-$mode-$rep.out" >&2; exit 1; }
    sleep "$SETTLE_S"
    held=$($NETB probe "$SRV_PID" "$SRV_LOG")
    # the storm
    if [ "$PERF" = 1 ]; then
      perf record -q -F 499 --call-graph dwarf,16384 -p "$SRV_PID" -o "$WORK/perf-$mode-$rep.data" \
        >/dev/null 2>&1 &
      PERF_PID=$!
      sleep 1
    fi
    t0=$(now); c0=$(ticks "$SRV_PID")
    timeout $((STORM_S + 120)) "$PUBLISHER" --server "127.0.0.1:$PORT" --event dialog --pres "$USERS" \
      --rate "$RATE" --duration-s "$STORM_S" --final-file "$WORK/final.txt" >"$WORK/pub.out" 2>&1 || true
    # drained: no new NOTIFY for the batching interval and a second more
    quiet=$(( (BATCH_MS + 999) / 1000 + 1 ))
    p=-1 same=0
    for _ in $(seq 240); do
      c=$(col "$STATS" 4)
      if [ "$c" = "$p" ]; then same=$((same + 1)); (( same >= quiet * 4 )) && break; else same=0; fi
      p=$c; sleep 0.25
    done
    c1=$(ticks "$SRV_PID"); t1=$(now)
    if [ -n "$PERF_PID" ]; then kill -TERM "$PERF_PID" 2>/dev/null || true; wait "$PERF_PID" 2>/dev/null || true; PERF_PID=; fi
    st=$($RLSB stats "$STATS" "$t0")
    pub=$(grep 'summary' "$WORK/pub.out" || true)
    [ -n "$pub" ] || { echo "the publisher printed no summary:" >&2; cat "$WORK/pub.out" >&2; exit 1; }
    exp=$($RLSB expected "$WORK/lists.xml" "$WORK/final.txt")
    log "$mode #$rep: $st; ${pub#sip_publisher: summary }; $exp"
    record "storm rep=$rep mode=$mode $st $exp published=$(val ok "$pub") pub_failed=$(val failed "$pub") \
pub_seconds=$(val seconds "$pub") cpu_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') \
imppd_ticks=$((c1 - c0)) phones=$PHONES dialogs=$dialogs subscribe_s=$subscribe_s \
heap0=$(val heap "$before") rss0=$(val rss_kb "$before") heap1=$(val heap "$held") rss1=$(val rss_kb "$held") \
heapm=$(val heap "$mid") rssm=$(val rss_kb "$mid") half=$half"
    touch "$WORK/until"
    for _ in $(seq 100); do kill -0 "$GEN_PID" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$GEN_PID"; GEN_PID=
    [ "$mode" = none ] || log "$mode #$rep: $(grep '^tls_swarm: watch done' "$WORK/watch-$mode-$rep.out" | sed 's/^tls_swarm: //')"
    stop_pid "$SRV_PID"; SRV_PID=
  done
done

$RLSB report "$RESULTS"
