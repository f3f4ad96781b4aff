#!/usr/bin/env bash
# SIP load benchmark for imppd (libimpp's SIP presence server), driven by sipp.
#
#   benches/sip/run.sh            # default load (about 2 minutes)
#   QUICK=1 benches/sip/run.sh    # small load, under a minute
#   SERVER=kamailio benches/sip/run.sh   # the same load on Kamailio's presence server
#                                        # (deploy/kamailio/presence.cfg); compare.sh runs both
#
# What it does: builds imppd (release), starts it on a free loopback port with
# a fresh SQLite store in a temp dir, then
#   1. SUBS long-lived sipp watchers SUBSCRIBE at SUB_RATE/s (watcher K watches
#      sip:user<K%PRES>@example.test) and answer every NOTIFY;
#   2. samples imppd's live heap and VmRSS before and after, giving bytes per subscription;
#   3. nominal PUBLISH storm: each presentity publishes, then sends UPDATES
#      modify PUBLISHes (SIP-If-Match) every INTERVAL_MS, then removes its
#      state: PRES*1000/INTERVAL_MS PUBLISH/s offered, each one fanning out to
#      SUBS/PRES watchers (defaults: 100 PUBLISH/s -> ~10k NOTIFY/s);
#   4. saturation storm: the same at SAT_PUB_RATE PUBLISH/s (default 400);
#   5. live heap and VmRSS after the storms (drained, all still subscribed), and POST_S
#      seconds later (the NOTIFY transactions' timer K has run out);
#   6. the watchers go idle and un-SUBSCRIBE; imppd is stopped (SIGTERM).
# It prints one table with the figures, next to fixed Kamailio reference
# figures.  Everything runs on 127.0.0.1, each sipp run is bounded by
# `timeout` and `sipp -timeout`, and processes are stopped by PID.
#
# Environment (defaults in brackets; QUICK=1 changes the ones marked *):
#   SUBS         watchers / subscriptions                      [10000, *1000]
#   PRES         presentities                                              [100]
#   SUB_RATE     SUBSCRIBE/s offered                            [5000, *2000]
#   UPDATES      modify PUBLISHes per presentity, nominal storm (>= 1) [15, *5]
#   INTERVAL_MS  pause between a presentity's PUBLISHes, nominal storm  [1000]
#   SAT_PUB_RATE PUBLISH/s offered in the saturation storm (0: skip)     [400]
#   SAT_UPDATES  modify PUBLISHes per presentity, saturation storm [2*UPDATES]
#   TRANSPORT    sipp transport: u1 (UDP, one socket) | t1 (TCP, one conn) [u1]
#   SETTLE_S     pause before the memory sample (s): 35 lets the SUBSCRIBE
#                transactions end (Timer J, 64*T1 = 32 s over UDP)   [35, *3]
#   EXPIRES      Expires of the SUBSCRIBEs and PUBLISHes (s)               [600]
#   SERVER       the server measured: imppd | kamailio                    [imppd]
#   WATCHERS     the watchers: sipp (watcher.xml, one sipp process) | swarm
#                (examples/sip_swarm.rs: recvmmsg/sendmmsg, UDP only)      [sipp]
#   KAM_SHM_MB   Kamailio's shared memory pool (-m), MB: finished transactions
#                stay ~5 s, about 11 kB each                              [2048]
#   IMPPD_DB     imppd's --db: none (memory only, like the memory-only Kamailio) | file
#                (a new SQLite file in the work directory)                [none]
#   IMPPD        an imppd binary to measure instead of building one (A/B runs of two
#                builds; benches/sip/ab.sh)                               [build]
#   POST_S       pause between the two memory samples after the storms (s)      [6]
#   TRIM_PROBE=1 after those samples, call malloc_trim(0) in imppd through gdb and sample
#                VmRSS again: what glibc held free (a diagnostic)                    [0]
#   METRICS      imppd's /metrics listener: off | idle (--http, never scraped) | scrape
#                (scraped every SCRAPE_S s through both storms, then SCRAPE_PROBE scrapes
#                back to back, their CPU timed; benches/sip/scrape.sh compares)   [off]
#   KEEP=1       keep the work directory (sipp CSVs, server log) afterwards
#   WORK         work directory                   [mktemp -d /tmp/sip-bench.X]
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  SUBS=${SUBS:-1000}; SUB_RATE=${SUB_RATE:-2000}; UPDATES=${UPDATES:-5}; SETTLE_S=${SETTLE_S:-3}
fi
SUBS=${SUBS:-10000}
PRES=${PRES:-100}
SUB_RATE=${SUB_RATE:-5000}
UPDATES=${UPDATES:-15}
INTERVAL_MS=${INTERVAL_MS:-1000}
SAT_PUB_RATE=${SAT_PUB_RATE:-400}
SAT_UPDATES=${SAT_UPDATES:-$((2 * UPDATES))}
TRANSPORT=${TRANSPORT:-u1}
SETTLE_S=${SETTLE_S:-35}
IMPPD_DB=${IMPPD_DB:-none}
EXPIRES=${EXPIRES:-600}
POST_S=${POST_S:-6}
KEEP=${KEEP:-0}

SERVER=${SERVER:-imppd}
KAM_SHM_MB=${KAM_SHM_MB:-2048}

case "$TRANSPORT" in u1|t1) ;; *) echo "TRANSPORT must be u1 or t1" >&2; exit 2;; esac
case "$SERVER" in imppd|kamailio) ;; *) echo "SERVER must be imppd or kamailio" >&2; exit 2;; esac
METRICS=${METRICS:-off}
case "$METRICS" in off|idle|scrape) ;; *) echo "METRICS must be off, idle or scrape" >&2; exit 2;; esac
[ "$METRICS" = off ] || [ "$SERVER" = imppd ] || { echo "METRICS is for SERVER=imppd" >&2; exit 2; }
WATCHERS=${WATCHERS:-sipp}
case "$WATCHERS" in sipp) ;; swarm) [ "$TRANSPORT" = u1 ] || { echo "WATCHERS=swarm is UDP only" >&2; exit 2; };;
  *) echo "WATCHERS must be sipp or swarm" >&2; exit 2;; esac
(( UPDATES >= 1 && SAT_UPDATES >= 1 && PRES >= 1 && SUBS >= PRES )) \
  || { echo "need UPDATES >= 1, SAT_UPDATES >= 1 and SUBS >= PRES >= 1" >&2; exit 2; }
command -v sipp >/dev/null || { echo "sipp not found (Debian/Ubuntu: apt-get install sip-tester)" >&2; exit 2; }

HELPER="python3 $HERE/sipbench.py"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }

WORK=${WORK:-$(mktemp -d /tmp/sip-bench.XXXXXX)}
[ "$IMPPD_DB" = file ] && IMPPD_DB=$WORK/imppd.db
mkdir -p "$WORK"
MARKS=$WORK/marks.env
mark() { echo "$1=$2" >>"$MARKS"; }
: >"$MARKS"

SRV_PID= WATCH_PID= SCRAPE_PID=
cleanup() {
  local p
  for p in $SCRAPE_PID $WATCH_PID $SRV_PID; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
  done
  for p in $SCRAPE_PID $WATCH_PID $SRV_PID; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

if [ "$WATCHERS" = swarm ]; then
  log "building the sip_swarm load generator (release)"
  cargo build --release --quiet --example sip_swarm
  SWARM=${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/sip_swarm
fi
if [ "$SERVER" = imppd ] && [ -n "${IMPPD:-}" ]; then
  log "imppd binary given: $IMPPD"
  [ -x "$IMPPD" ] || { echo "imppd binary not found at $IMPPD" >&2; exit 1; }
elif [ "$SERVER" = imppd ]; then
  log "building imppd (release)"
  cargo build --release --quiet --bin imppd
  IMPPD=${CARGO_TARGET_DIR:-$ROOT/target}/release/imppd
  [ -x "$IMPPD" ] || { echo "imppd binary not found at $IMPPD" >&2; exit 1; }
else
  command -v kamailio >/dev/null && command -v kamcmd >/dev/null || {
    echo "kamailio not found (Debian: apt-get install kamailio kamailio-presence-modules; compare.sh does)" >&2
    exit 2; }
fi

PORT=$($HELPER freeport)
WPORT=$($HELPER freeport)
PPORT=$($HELPER freeport)
while [ "$WPORT" = "$PORT" ]; do WPORT=$($HELPER freeport); done
while [ "$PPORT" = "$PORT" ] || [ "$PPORT" = "$WPORT" ]; do PPORT=$($HELPER freeport); done
TARGET=127.0.0.1:$PORT
SIPP=(-i 127.0.0.1 -t "$TRANSPORT" -nostdin -default_behaviors -bye -buff_size 4194304)

CTL=unix:$WORK/kamailio.ctl
kam() { kamcmd -s "$CTL" "$@"; }
# Kamailio's shared memory in use (bytes): its subscriptions, documents and transactions.
shm() { kam core.shmmem | awk '$1 == "real_used:" { print $2 }'; }
if [ "$SERVER" = imppd ]; then
  # One sipp address offers the whole load: no per-address rate limit (builds from before
  # it existed do not know the flag). The usage is read whole first: `--help` exits 2, which
  # under pipefail failed a `| grep` and left the limit on.
  UNLIMITED=
  USAGE_TEXT=$("$IMPPD" --help 2>&1 || true)
  case "$USAGE_TEXT" in *--rate-limit*) UNLIMITED="--rate-limit 0";; esac
  HTTP=
  if [ "$METRICS" != off ]; then
    HPORT=$($HELPER freeport)
    HTTP="--http 127.0.0.1:$HPORT"
  fi
  "$IMPPD" --domain example.test --listen "udp:$TARGET" --listen "tcp:$TARGET" --db "$IMPPD_DB" \
    --open --policy allow $UNLIMITED $HTTP --log-level warn 2>"$WORK/server.log" &
  SRV_PID=$!
  for _ in $(seq 100); do
    grep -q '^imppd ready' "$WORK/server.log" && break
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  grep -q '^imppd ready' "$WORK/server.log" || { echo "imppd did not get ready" >&2; cat "$WORK/server.log" >&2; exit 1; }
  log "imppd pid $SRV_PID on $TARGET (udp+tcp), db $IMPPD_DB; work dir $WORK"
else
  # Memory-only presence (deploy/kamailio/presence.cfg), in the foreground of this background
  # job (-DD) so that $! is its main process; -E logs to stderr.
  kamailio -f "$ROOT/deploy/kamailio/presence.cfg" -DD -E -m "$KAM_SHM_MB" -M 16 -Y "$WORK" \
    -P "$WORK/kamailio.pid" -A SIP_PORT="$PORT" -A "SERVER_URI=\"sip:$TARGET\"" \
    -A "CTL_SOCK=\"$CTL\"" >"$WORK/server.log" 2>&1 &
  SRV_PID=$!
  for _ in $(seq 100); do
    kam core.uptime >/dev/null 2>&1 && break
    kill -0 "$SRV_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
  done
  kam core.uptime >/dev/null 2>&1 || { echo "kamailio did not get ready" >&2; cat "$WORK/server.log" >&2; exit 1; }
  log "kamailio $(kamailio -v | awk 'NR == 1 { print $3 }') pid $SRV_PID on $TARGET (udp+tcp), memory only, -m $KAM_SHM_MB; work dir $WORK"
fi

# inject files
{ echo SEQUENTIAL; for ((k = 0; k < SUBS; k++)); do echo "$k;$((k % PRES));$EXPIRES"; done; } >"$WORK/watchers.inf"
pub_inf() { # file updates interval_ms
  { echo SEQUENTIAL; for ((n = 0; n < PRES; n++)); do echo "$n;$2;$3;$EXPIRES"; done; } >"$1"
}

# CPU of the server: imppd is one process (its threads are counted in its /proc stat);
# Kamailio is a main process and its forked workers.
server_ticks() { $HELPER ticks "$SRV_PID" $(pgrep -P "$SRV_PID" || true); }
# Memory of the server: imppd's VmRSS; Kamailio's shared memory in use (kB), once the
# finished transactions have left it (tm keeps each one ~5 s), so that what remains is the
# subscriptions (with `drain`; the other samples do not wait).
server_mem() {
  if [ "$SERVER" = imppd ]; then $HELPER rss "$SRV_PID"; return; fi
  local _
  if [ "${1:-}" = drain ]; then
    for _ in $(seq 60); do
      [ "$(kam tm.stats | awk '$1 == "current:" { print $2 }')" = 0 ] && break
      sleep 0.5
    done
  fi
  echo $(( $(shm) / 1024 ))
}
child_of() { pgrep -P "$1" "${2:-sipp}" | head -1 || true; }   # sipp (or $2) under `timeout`
CLK=$(getconf CLK_TCK)
{ echo "SERVER=$SERVER"; echo "WATCHERS=$WATCHERS"; echo "CLK_TCK=$CLK"; echo "SUBS=$SUBS"; echo "PRES=$PRES"; echo "SUB_RATE=$SUB_RATE"
  echo "TRANSPORT=$TRANSPORT"; echo "NCPU=$(nproc)"; } >>"$MARKS"

# Watchers un-SUBSCRIBE after IDLE_MS without a NOTIFY.  It covers the
# subscribe phase, the memory sample and the pause between the two storms.
SUB_S=$(( (SUBS + SUB_RATE - 1) / SUB_RATE ))
IDLE_MS=$(( SUB_S * 1000 + SETTLE_S * 1000 + 6000 ))
# Kamailio's memory sample waits for its transactions to drain (up to 30 s).
[ "$SERVER" = kamailio ] && IDLE_MS=$(( IDLE_MS + 30000 ))
(( IDLE_MS < 3 * INTERVAL_MS )) && IDLE_MS=$(( 3 * INTERVAL_MS ))
SAT_INTERVAL_MS=$(( SAT_PUB_RATE > 0 ? PRES * 1000 / SAT_PUB_RATE : 0 ))
NOM_S=$(( (UPDATES + 1) * INTERVAL_MS / 1000 + 1 ))
SAT_S=$(( SAT_PUB_RATE > 0 ? (SAT_UPDATES + 1) * SAT_INTERVAL_MS / 1000 + 1 : 0 ))
# storms may run slower than offered when imppd saturates: allow 4x + margin
NOM_LIMIT=$(( NOM_S * 4 + 30 )); SAT_LIMIT=$(( SAT_S * 4 + 30 ))
WATCH_LIMIT=$(( SUB_S * 4 + 30 + SETTLE_S + NOM_LIMIT + SAT_LIMIT + IDLE_MS / 1000 + 30 ))

mark RSS0 "$(server_mem)"
mark SUB_TICKS0 "$(server_ticks)"
if [ "$SERVER" = imppd ]; then mark HEAP0 "$($HELPER heap "$SRV_PID" "$WORK/server.log")"; fi
mark SUB_IDROPS0 "$($HELPER udpdrops "$PORT")"
mkdir -p "$WORK/watch"
mark T_SUB_START "$(now)"
log "subscribe: $SUBS watchers at $SUB_RATE/s over $PRES presentities ($TRANSPORT, idle un-SUBSCRIBE after $IDLE_MS ms)"
if [ "$WATCHERS" = swarm ]; then
  # The same watchers, answering NOTIFYs in batches; it writes counters in the layout of
  # sipp's -trace_counts/-trace_stat files, so the rest of this script reads them alike.
  (cd "$WORK/watch" && exec timeout $((WATCH_LIMIT + 10)) "$SWARM" --server "$TARGET" --subs "$SUBS" \
      --pres "$PRES" --rate "$SUB_RATE" --expires "$EXPIRES" --idle-ms "$IDLE_MS" --max-s "$WATCH_LIMIT" \
      --port "$WPORT" --csv-dir . >swarm.out 2>&1) &
  WATCH_PID=$!
  sleep 0.2
  WSIPP=$(child_of "$WATCH_PID" sip_swarm)
else
  (cd "$WORK/watch" && exec timeout $((WATCH_LIMIT + 10)) sipp -sf "$HERE/watcher.xml" -inf ../watchers.inf "${SIPP[@]}" \
      -p "$WPORT" -m "$SUBS" -l "$SUBS" -r "$SUB_RATE" -recv_timeout "$IDLE_MS" -timeout "${WATCH_LIMIT}s" \
      -trace_counts -trace_stat -fd 100ms -trace_err -trace_screen "$TARGET" >sipp.out 2>&1) &
  WATCH_PID=$!
  sleep 0.2
  WSIPP=$(child_of "$WATCH_PID")
fi
mark SUB_STICKS0 "$($HELPER ticks $WSIPP)"
counts() { $HELPER count "$WORK/watch/*_counts.csv" "$1" "$2"; }
prev=-1 still=0 t0=$SECONDS
while (( SECONDS - t0 < SUB_S * 4 + 30 )); do
  sleep 0.25
  c=$(counts _NOTIFY_Recv 1)
  (( c >= SUBS )) && break
  if (( c == prev )); then still=$((still + 1)); (( still >= 12 && c > 0 )) && break; else still=0; fi
  prev=$c
  kill -0 "$WATCH_PID" 2>/dev/null || break
done
sleep 0.3   # one more stats period
mark T_SUB_DONE "$(now)"
mark SUB_TICKS1 "$(server_ticks)"
mark SUB_IDROPS1 "$($HELPER udpdrops "$PORT")"
mark SUB_STICKS1 "$($HELPER ticks $WSIPP)"
log "subscribe: $(counts _NOTIFY_Recv 1) subscribed (initial NOTIFY answered); settling ${SETTLE_S}s"
sleep "$SETTLE_S"
mark RSS1 "$(server_mem drain)"
if [ "$SERVER" = imppd ]; then mark HEAP1 "$($HELPER heap "$SRV_PID" "$WORK/server.log")"; fi

storm() { # tag updates interval_ms limit_s
  local tag=$1 upd=$2 ival=$3 limit=$4 d=$WORK/pub_${1,,}
  mkdir -p "$d"; pub_inf "$d/pub.inf" "$upd" "$ival"
  mark "${tag}_UPDATES" "$upd"
  mark "${tag}_PUB_RATE" "$(( PRES * 1000 / ival ))"
  log "storm $tag: $PRES presentities x $upd updates every $ival ms ($(( PRES * 1000 / ival )) PUBLISH/s offered)"
  mark "${tag}_DROPS0" "$($HELPER udpdrops)"
  mark "${tag}_IDROPS0" "$($HELPER udpdrops "$PORT")"
  mark "${tag}_SDROPS0" "$($HELPER udpdrops "$WPORT" "$PPORT")"
  mark "${tag}_TICKS0" "$(server_ticks)"
  mark "${tag}_WTICKS0" "$($HELPER ticks $WSIPP)"
  mark "T_${tag}_START" "$(now)"
  (cd "$d" && exec timeout $((limit + 10)) sipp -sf "$HERE/publisher.xml" -inf pub.inf "${SIPP[@]}" \
      -p "$PPORT" -m "$PRES" -l "$PRES" -r "$PRES" -rp "$ival" -timeout "${limit}s" \
      -trace_stat -fd 1 -trace_err -trace_screen "$TARGET" >sipp.out 2>&1) &
  local ppid=$! psipp=
  sleep 0.1; psipp=$(child_of "$ppid")
  local pt=0 x
  while kill -0 "$ppid" 2>/dev/null; do
    x=$($HELPER ticks $psipp); (( x > pt )) && pt=$x
    sleep 0.2
  done
  wait "$ppid" || log "storm $tag: publisher sipp exited with status $? (see $d)"
  mark "${tag}_PTICKS" "$pt"
  # drain: wait until the watchers' NOTIFY count stops moving for 1 s
  local p=-1 c
  for _ in $(seq 60); do
    c=$(counts _NOTIFY_Recv 2); (( c == p )) && break; p=$c; sleep 1
  done
  mark "T_${tag}_END" "$(now)"
  mark "${tag}_TICKS1" "$(server_ticks)"
  mark "${tag}_WTICKS1" "$($HELPER ticks $WSIPP)"
  mark "${tag}_DROPS1" "$($HELPER udpdrops)"
  mark "${tag}_IDROPS1" "$($HELPER udpdrops "$PORT")"
  mark "${tag}_SDROPS1" "$($HELPER udpdrops "$WPORT" "$PPORT")"
}
if [ "$METRICS" = scrape ]; then
  python3 "$HERE/scrape.py" loop "$HPORT" "${SCRAPE_S:-1}" "$WORK/scrapes.log" &
  SCRAPE_PID=$!
fi
storm NOM "$UPDATES" "$INTERVAL_MS" "$NOM_LIMIT"
(( SAT_PUB_RATE > 0 )) && storm SAT "$SAT_UPDATES" "$SAT_INTERVAL_MS" "$SAT_LIMIT"
if [ -n "$SCRAPE_PID" ]; then
  kill "$SCRAPE_PID"; wait "$SCRAPE_PID" || true; SCRAPE_PID=
  mark SCRAPES "$(wc -l <"$WORK/scrapes.log")"
  # The cost of one scrape with every subscription held: CPU over back-to-back scrapes,
  # less the CPU of the same time idle.
  mark SCRAPE_PROBE "$(python3 "$HERE/scrape.py" probe "$SRV_PID" "$HPORT" "${SCRAPE_PROBE:-500}")"
fi
# Memory after the storms (drained, the watchers still subscribed): VmRSS (Kamailio: shm)
# and imppd's live heap; then again POST_S seconds later, once the NOTIFY transactions'
# timer K (5 s) has run out.
mark RSS_STORMS "$(server_mem)"
if [ "$SERVER" = imppd ]; then mark HEAP_STORMS "$($HELPER heap "$SRV_PID" "$WORK/server.log")"; fi
if (( POST_S * 1000 + 2000 < IDLE_MS )); then
  sleep "$POST_S"
  mark POST_S "$POST_S"
  mark RSS_POST "$(server_mem)"
  if [ "$SERVER" = imppd ]; then mark HEAP_POST "$($HELPER heap "$SRV_PID" "$WORK/server.log")"; fi
fi
# TRIM_PROBE=1: how much of VmRSS is memory glibc holds free: malloc_trim(0) called in imppd
# through gdb (a diagnostic; imppd itself never calls it), then VmRSS again.
if [ "$SERVER" = imppd ] && [ "${TRIM_PROBE:-0}" = 1 ]; then
  if command -v gdb >/dev/null; then
    timeout 60 gdb -p "$SRV_PID" -batch -nx -ex 'call (int) malloc_trim(0)' >"$WORK/trim.log" 2>&1 \
      || log "gdb malloc_trim failed (see $WORK/trim.log)"
    mark RSS_TRIM "$(server_mem)"
  else
    log "TRIM_PROBE: gdb not found"
  fi
fi

log "storms done; watchers un-SUBSCRIBE after ${IDLE_MS} ms idle"
wait "$WATCH_PID" || log "watcher sipp exited with status $? (see $WORK/watch)"
WATCH_PID=
mark RSS2 "$(server_mem)"
if [ "$SERVER" = imppd ]; then mark HEAP2 "$($HELPER heap "$SRV_PID" "$WORK/server.log")"; fi
kill "$SRV_PID"; wait "$SRV_PID" || true; SRV_PID=
grep -ciE 'error|panic' "$WORK/server.log" >/dev/null && log "$SERVER log has errors: $(grep -ciE 'error|panic' "$WORK/server.log") lines"

$HELPER report "$WORK"
