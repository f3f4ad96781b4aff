#!/usr/bin/env bash
# Slow watchers under a PUBLISH storm: imppd's memory while its watchers answer NOTIFYs late,
# one NOTIFY in flight per dialog, and every watcher ending on the last published state.
#
#   benches/sip/slow_watchers.sh            # 10k watchers, 400 PUBLISH/s for 30 s (~2 min)
#   QUICK=1 benches/sip/slow_watchers.sh    # the same with a 10 s storm (~1.5 min)
#   KEEP=1 benches/sip/slow_watchers.sh     # keep the work directory
#
# What it does: builds imppd and the examples sip_swarm and sip_publisher (release), starts
# imppd (--db none --open --policy allow) on a free loopback port, then
#   1. SUBS watchers (examples/sip_swarm.rs, one UDP socket) SUBSCRIBE at SUB_RATE/s, watcher K
#      to sip:user<K%PRES>@example.test, and answer every NOTIFY only DELAY_MS after it came;
#   2. once all have their first NOTIFY, SETTLE_S seconds later (the SUBSCRIBE transactions
#      end: timer J, 32 s over UDP), imppd's live heap (SIGUSR1) and VmRSS are sampled;
#   3. the storm: examples/sip_publisher.rs publishes PUB_RATE PUBLISH/s over the PRES
#      presentities for STORM_S seconds, each body numbered (impp-seq:N in the PIDF note);
#      the live heap and VmRSS are sampled every SAMPLE_S seconds, and VmHWM (peak VmRSS)
#      is reset at the start;
#   4. after the last PUBLISH, the NOTIFYs drain (no new one for 2 s); heap and VmRSS again
#      (the storm's figures are counted up to here);
#   5. the swarm, once no NOTIFY came for IDLE_MS, checks that every watcher's newest NOTIFY
#      carries its presentity's last published number, and un-SUBSCRIBEs; heap and VmRSS at
#      the end; imppd gets SIGTERM.
# It prints one table (sipbench.py slowreport) and PASS/FAIL for the targets: live-heap growth
# during the storm under 20 MB, at most one NOTIFY unanswered per dialog at any time, every
# watcher on the final state.
#
# Environment (defaults in brackets; QUICK=1 changes the ones marked *):
#   SUBS [10000]  PRES [100]  SUB_RATE [5000]  PUB_RATE [400]  STORM_S [30, *10]
#   DELAY_MS [1000]  SETTLE_S [35]  IDLE_MS [8000]  SAMPLE_S [0.5]  EXPIRES [600]
#   IMPPD (a binary to measure instead of building one), KEEP=1, WORK [mktemp -d]
# Everything runs on 127.0.0.1; each process is bounded by `timeout` and stopped by PID.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
[ "$QUICK" = 1 ] && STORM_S=${STORM_S:-10}
SUBS=${SUBS:-10000}
PRES=${PRES:-100}
SUB_RATE=${SUB_RATE:-5000}
PUB_RATE=${PUB_RATE:-400}
STORM_S=${STORM_S:-30}
DELAY_MS=${DELAY_MS:-1000}
SETTLE_S=${SETTLE_S:-35}
IDLE_MS=${IDLE_MS:-8000}
SAMPLE_S=${SAMPLE_S:-0.5}
EXPIRES=${EXPIRES:-600}
KEEP=${KEEP:-0}
(( SUBS >= PRES && PRES >= 1 )) || { echo "need SUBS >= PRES >= 1" >&2; exit 2; }

HELPER="python3 $HERE/sipbench.py"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }

WORK=${WORK:-$(mktemp -d /tmp/sip-slow.XXXXXX)}
mkdir -p "$WORK/watch"
MARKS=$WORK/marks.env
: >"$MARKS"
mark() { echo "$1=$2" >>"$MARKS"; }

SRV_PID= WATCH_PID= PUB_PID= MEM_PID=
cleanup() {
  local p
  for p in $MEM_PID $PUB_PID $WATCH_PID $SRV_PID; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
  done
  for p in $MEM_PID $PUB_PID $WATCH_PID $SRV_PID; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building sip_swarm and sip_publisher (release)"
cargo build --release --quiet --example sip_swarm --example sip_publisher
SWARM=$TARGET_DIR/release/examples/sip_swarm
PUBLISHER=$TARGET_DIR/release/examples/sip_publisher
if [ -n "${IMPPD:-}" ]; then
  log "imppd binary given: $IMPPD"
else
  log "building imppd (release)"
  cargo build --release --quiet --bin imppd
  IMPPD=$TARGET_DIR/release/imppd
fi
[ -x "$IMPPD" ] || { echo "imppd binary not found at $IMPPD" >&2; exit 1; }

PORT=$($HELPER freeport)
WPORT=$($HELPER freeport)
PPORT=$($HELPER freeport)
while [ "$WPORT" = "$PORT" ]; do WPORT=$($HELPER freeport); done
while [ "$PPORT" = "$PORT" ] || [ "$PPORT" = "$WPORT" ]; do PPORT=$($HELPER freeport); done
TARGET=127.0.0.1:$PORT

# One sipp address offers the whole load: no per-address rate limit.
"$IMPPD" --domain example.test --listen "udp:$TARGET" --db none --open --policy allow \
  --rate-limit 0 --log-level warn 2>"$WORK/server.log" &
SRV_PID=$!
for _ in $(seq 100); do
  grep -q '^imppd ready' "$WORK/server.log" && break
  kill -0 "$SRV_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done
grep -q '^imppd ready' "$WORK/server.log" || { echo "imppd did not get ready" >&2; cat "$WORK/server.log" >&2; exit 1; }
log "imppd pid $SRV_PID on udp:$TARGET; work dir $WORK"

{ echo "CLK_TCK=$(getconf CLK_TCK)"; echo "NCPU=$(nproc)"; echo "SUBS=$SUBS"; echo "PRES=$PRES"
  echo "PUB_RATE=$PUB_RATE"; echo "STORM_S=$STORM_S"; echo "DELAY_MS=$DELAY_MS"; } >>"$MARKS"
heap() { $HELPER heap "$SRV_PID" "$WORK/server.log"; }
rss() { $HELPER rss "$SRV_PID"; }
ticks() { $HELPER ticks "$SRV_PID"; }
counts() { $HELPER count "$WORK/watch/*_counts.csv" "$1" "$2"; }

mark HEAP0 "$(heap)"
mark RSS0 "$(rss)"
SUB_S=$(( (SUBS + SUB_RATE - 1) / SUB_RATE ))
LIMIT=$(( SUB_S * 4 + 30 + SETTLE_S + STORM_S * 3 + 60 + IDLE_MS / 1000 + 60 ))
log "subscribe: $SUBS watchers at $SUB_RATE/s over $PRES presentities, answering NOTIFYs after $DELAY_MS ms"
(cd "$WORK/watch" && exec timeout $((LIMIT + 10)) "$SWARM" --server "$TARGET" --subs "$SUBS" \
    --pres "$PRES" --rate "$SUB_RATE" --expires "$EXPIRES" --idle-ms "$IDLE_MS" --max-s "$LIMIT" \
    --port "$WPORT" --csv-dir . --answer-delay-ms "$DELAY_MS" --expect-file "$WORK/final.txt" \
    >swarm.out 2>&1) &
WATCH_PID=$!
prev=-1 still=0 t0=$SECONDS
while (( SECONDS - t0 < SUB_S * 4 + 30 )); do
  sleep 0.25
  c=$(counts _NOTIFY_Recv 1)
  (( c >= SUBS )) && break
  if (( c == prev )); then still=$((still + 1)); (( still >= 12 && c > 0 )) && break; else still=0; fi
  prev=$c
  kill -0 "$WATCH_PID" 2>/dev/null || { cat "$WORK/watch/swarm.out" >&2; exit 1; }
done
sleep 0.3
mark T_SUB_DONE "$(now)"
log "subscribe: $(counts _NOTIFY_Recv 1) subscribed; settling ${SETTLE_S}s (the SUBSCRIBE transactions end)"
sleep "$SETTLE_S"
mark HEAP1 "$(heap)"
mark RSS1 "$(rss)"

log "storm: $PUB_RATE PUBLISH/s over $PRES presentities for ${STORM_S}s"
[ "$($HELPER resethwm "$SRV_PID")" = 1 ] || log "cannot reset VmHWM: the peak VmRSS is imppd's whole life's"
mark IDROPS0 "$($HELPER udpdrops "$PORT")"
mark SDROPS0 "$($HELPER udpdrops "$WPORT" "$PPORT")"
mark STORM_TICKS0 "$(ticks)"
mark T_STORM_START "$(now)"
$HELPER memwatch "$SRV_PID" "$WORK/server.log" "$SAMPLE_S" "$WORK/memwatch.txt" &
MEM_PID=$!
timeout $((STORM_S * 3 + 60)) "$PUBLISHER" --server "$TARGET" --pres "$PRES" --rate "$PUB_RATE" \
  --duration-s "$STORM_S" --expires "$EXPIRES" --port "$PPORT" --final-file "$WORK/final.txt" \
  >"$WORK/publisher.out" 2>&1 &
PUB_PID=$!
wait "$PUB_PID" || log "the publisher exited with status $? (see $WORK/publisher.out)"
PUB_PID=
mark T_PUB_END "$(now)"
grep 'PUBLISH sent' "$WORK/publisher.out" | sed 's/^/    /' >&2 || true
# drain: the NOTIFY count has not moved for 2 s (wall clock: a sample costs a python start,
# slow on a busy machine); IDLE_MS must leave room for this before the watchers un-SUBSCRIBE
p=-1 since=$(date +%s%N) t_end=$(( SECONDS + 120 ))
while (( SECONDS < t_end )); do
  c=$(counts _NOTIFY_Recv 2) t=$(date +%s%N)
  if (( c != p )); then p=$c since=$t; elif (( t - since >= 2000000000 )); then break; fi
  sleep 0.2
done
mark T_DRAINED "$(now)"
mark STORM_TICKS1 "$(ticks)"
mark IDROPS1 "$($HELPER udpdrops "$PORT")"
mark SDROPS1 "$($HELPER udpdrops "$WPORT" "$PPORT")"
mark HWM "$($HELPER hwm "$SRV_PID")"
kill "$MEM_PID" 2>/dev/null || true; wait "$MEM_PID" 2>/dev/null || true; MEM_PID=
sleep 0.2
mark HEAP2 "$(heap)"
mark RSS2 "$(rss)"
log "drained; the watchers check their final state after ${IDLE_MS} ms idle, then un-SUBSCRIBE"
wait "$WATCH_PID" || log "the swarm exited with status $? (see $WORK/watch/swarm.out)"
WATCH_PID=
grep '^sip_swarm' "$WORK/watch/swarm.out" | sed 's/^/    /' >&2 || true
mark HEAP3 "$(heap)"
mark RSS3 "$(rss)"
kill "$SRV_PID"; wait "$SRV_PID" || true; SRV_PID=
grep -ciE 'error|panic' "$WORK/server.log" >/dev/null && log "imppd log has errors: $(grep -ciE 'error|panic' "$WORK/server.log") lines"

$HELPER slowreport "$WORK"
