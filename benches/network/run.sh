#!/usr/bin/env bash
# imppd's network figures: TLS handshakes per second, memory per idle TLS (and TCP)
# connection, NOTIFY transactions over TLS against TCP, and another address's requests under
# a UDP flood. See benches/network/README.md. Not part of `cargo test`.
#
#   benches/network/run.sh                  # all four, 3 repetitions each (a few minutes)
#   QUICK=1 benches/network/run.sh          # all four, once each, shorter (about a minute)
#   benches/network/run.sh memory notify    # only these sections
#   IMPPD=/path/to/imppd KEEP=1 REPS=5 benches/network/run.sh
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"

QUICK=${QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$1"; else echo "$2"; fi; }
REPS=${REPS:-$(q 1 3)}
# 1. handshakes
HS_SECONDS=${HS_SECONDS:-$(q 4 10)}
HS_THREADS=${HS_THREADS:-4}
HS_GROUPS=${HS_GROUPS:-$(q "x25519" "x25519 p384")}
HS_VERIFY=${HS_VERIFY:-1}
# 2. memory
CONNS=${CONNS:-10000}
MEM_METHOD=${MEM_METHOD:-REGISTER}
SETTLE_S=${SETTLE_S:-3}
# 3. NOTIFY
MEM_TRANSPORTS=${MEM_TRANSPORTS:-TLS TCP WSS WS}
NOTIFY_TRANSPORTS=${NOTIFY_TRANSPORTS:-UDP TCP TLS WS WSS}
W_CONNS=${W_CONNS:-1000}
W_DIALOGS=${W_DIALOGS:-10}
PRES=${PRES:-100}
PUB_RATES=${PUB_RATES:-$(q "1000" "400 1000")}
STORM_S=${STORM_S:-$(q 5 10)}
# 4. flood
FLOOD_RATE=${FLOOD_RATE:-100000}
FLOOD_S=${FLOOD_S:-$(q 5 10)}
PROBE_RATE=${PROBE_RATE:-100}
PROBE_METHOD=${PROBE_METHOD:-REGISTER}
KEEP=${KEEP:-0}

SECTIONS=("$@")
[ ${#SECTIONS[@]} -eq 0 ] && SECTIONS=(handshake memory notify flood)
for s in "${SECTIONS[@]}"; do
  case "$s" in handshake|memory|notify|flood) ;; *) echo "unknown section $s (handshake, memory, notify, flood)" >&2; exit 2;; esac
done
want() { local s; for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

SIPB="python3 $ROOT/benches/sip/sipbench.py"
NETB="python3 $HERE/netbench.py"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
now() { date +%s.%N; }

WORK=${WORK:-$(mktemp -d /tmp/net-bench.XXXXXX)}
mkdir -p "$WORK"
RESULTS=$WORK/results.txt
: >"$RESULTS"
record() { echo "$*" >>"$RESULTS"; }

SRV_PID= GEN_PID=
stop_pid() { # pid: SIGTERM, wait
  local p=$1
  [ -n "$p" ] || return 0
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  stop_pid "$GEN_PID"; GEN_PID=
  stop_pid "$SRV_PID"; SRV_PID=
  if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
log "building the generators (release): examples tls_swarm, sip_swarm, udp_flood, sip_publisher"
cargo build --release --quiet --example tls_swarm --example sip_swarm --example udp_flood \
  --example sip_publisher
SWARM=$TARGET_DIR/release/examples/tls_swarm
UDPSWARM=$TARGET_DIR/release/examples/sip_swarm
FLOOD=$TARGET_DIR/release/examples/udp_flood
PUBLISHER=$TARGET_DIR/release/examples/sip_publisher
if [ -n "${IMPPD:-}" ]; then
  log "imppd binary given: $IMPPD"
else
  log "building imppd (release)"
  cargo build --release --quiet --bin imppd
  IMPPD=$TARGET_DIR/release/imppd
fi
[ -x "$IMPPD" ] || { echo "imppd binary not found at $IMPPD" >&2; exit 1; }
HELP=$("$IMPPD" --help 2>&1 || true)
grep -q -- '--max-connections-per-address' <<<"$HELP" \
  || { echo "$IMPPD has no --max-connections-per-address (too old)" >&2; exit 1; }

# Descriptors: imppd and the generator each hold one per connection (and a few more).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FDS=$(ulimit -n)
if [ "$FDS" != unlimited ] && (( FDS < CONNS + 200 )); then
  log "only $FDS file descriptors allowed (ulimit -Hn): holding $((FDS - 200)) connections, not $CONNS"
  CONNS=$((FDS - 200))
fi

"$SWARM" certs "$WORK/certs" >/dev/null
CLK=$(getconf CLK_TCK)
TREE=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$ROOT" diff --quiet HEAD 2>/dev/null || TREE=$TREE-dirty
record "info clk_tck=$CLK ncpu=$(nproc) reps=$REPS tree=$TREE imppd=$IMPPD"

# start_imppd NAME ARGS...: imppd on a fresh UDP+TCP port ($PORT), TLS port ($TLS_PORT) and
# WebSocket ports ($WS_PORT, $WSS_PORT), memory only, open, allow all; sets SRV_PID and
# SRV_LOG.
start_imppd() {
  local name=$1; shift
  PORT=$($SIPB freeport); TLS_PORT=$($SIPB freeport); WS_PORT=$($SIPB freeport); WSS_PORT=$($SIPB freeport)
  while [ "$TLS_PORT" = "$PORT" ]; do TLS_PORT=$($SIPB freeport); done
  while [ "$WS_PORT" = "$PORT" ] || [ "$WS_PORT" = "$TLS_PORT" ]; do WS_PORT=$($SIPB freeport); done
  while [ "$WSS_PORT" = "$PORT" ] || [ "$WSS_PORT" = "$TLS_PORT" ] || [ "$WSS_PORT" = "$WS_PORT" ]; do
    WSS_PORT=$($SIPB freeport)
  done
  SRV_LOG=$WORK/imppd-$name.log
  "$IMPPD" --domain example.test --db none --open --policy allow \
    --listen "udp:127.0.0.1:$PORT" --listen "tcp:127.0.0.1:$PORT" --listen "tls:127.0.0.1:$TLS_PORT" \
    --listen "ws:127.0.0.1:$WS_PORT" --listen "wss:127.0.0.1:$WSS_PORT" \
    --tls-cert "$WORK/certs/server.crt" --tls-key "$WORK/certs/server.key" --tls-ca "$WORK/certs/ca.crt" \
    --log-level warn "$@" 2>"$SRV_LOG" &
  SRV_PID=$!
  local _
  for _ in $(seq 100); do
    grep -q '^imppd ready' "$SRV_LOG" && return 0
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "imppd did not get ready:" >&2; cat "$SRV_LOG" >&2; exit 1
}
stop_imppd() { stop_pid "$SRV_PID"; SRV_PID=; }
ticks() { $SIPB ticks "$@"; }
# The value of KEY in a line of key=value words.
val() { tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k { print $2; exit }'; }

# swarm_to TRANSPORT: the generator's arguments to reach imppd over TCP, TLS, WS or WSS.
swarm_to() {
  case $1 in
    TCP) X=(--server "127.0.0.1:$PORT" --tcp) ;;
    TLS) X=(--server "127.0.0.1:$TLS_PORT" --ca "$WORK/certs/ca.crt") ;;
    WS) X=(--server "127.0.0.1:$WS_PORT" --tcp --ws) ;;
    WSS) X=(--server "127.0.0.1:$WSS_PORT" --ca "$WORK/certs/ca.crt" --ws) ;;
  esac
}

BIG=(--max-connections 20000 --max-connections-per-address 20000 --idle-timeout 3600 --rate-limit 0)

# ---- 1. TLS handshakes per second ----
if want handshake; then
  for rep in $(seq "$REPS"); do
    for group in $HS_GROUPS; do
      start_imppd "hs-$group-$rep" "${BIG[@]}"
      sleep 0.5
      VERIFY=(--ca "$WORK/certs/ca.crt"); [ "$HS_VERIFY" = 1 ] || VERIFY=(--no-verify)
      t0=$(ticks "$SRV_PID")
      "$SWARM" handshake --server "127.0.0.1:$TLS_PORT" "${VERIFY[@]}" --group "$group" \
        --seconds "$HS_SECONDS" --threads "$HS_THREADS" >"$WORK/hs.out" 2>"$WORK/hs.err" &
      GEN_PID=$!
      g=0
      while kill -0 "$GEN_PID" 2>/dev/null; do x=$(ticks "$GEN_PID"); (( x > g )) && g=$x; sleep 0.2; done
      wait "$GEN_PID" || true; GEN_PID=
      t1=$(ticks "$SRV_PID")
      line=$(grep '^tls_swarm: handshakes=' "$WORK/hs.out" || true)
      [ -n "$line" ] || { cat "$WORK/hs.err" >&2; exit 1; }
      log "handshake $group #$rep: ${line#tls_swarm: }"
      record "handshake rep=$rep group=$group $(sed 's/^tls_swarm: //' <<<"$line") imppd_ticks=$((t1 - t0)) gen_ticks=$g"
      stop_imppd
    done
  done
fi

# ---- 2. Memory per idle connection ----
if want memory; then
  EXTRA=(); [ "$MEM_METHOD" = OPTIONS ] && EXTRA=(--unauthenticated-timeout 3600)
  for rep in $(seq "$REPS"); do
    for transport in $MEM_TRANSPORTS; do
      start_imppd "mem-$transport-$rep" "${BIG[@]}" "${EXTRA[@]}"
      sleep 1
      before=$($NETB probe "$SRV_PID" "$SRV_LOG")
      rm -f "$WORK/ready" "$WORK/until"
      swarm_to "$transport"
      "$SWARM" hold "${X[@]}" --conns "$CONNS" --method "$MEM_METHOD" --ready-file "$WORK/ready" \
        --until-file "$WORK/until" --max-s 600 >"$WORK/hold.out" 2>&1 &
      GEN_PID=$!
      for _ in $(seq 1200); do
        [ -f "$WORK/ready" ] && break
        kill -0 "$GEN_PID" 2>/dev/null || break
        sleep 0.25
      done
      [ -f "$WORK/ready" ] || { echo "the hold generator did not get ready:" >&2; cat "$WORK/hold.out" >&2; exit 1; }
      ready=$(cat "$WORK/ready")
      sleep "$SETTLE_S"
      held=$($NETB probe "$SRV_PID" "$SRV_LOG")
      touch "$WORK/until"
      wait "$GEN_PID" || true; GEN_PID=
      done_line=$(grep '^tls_swarm: done' "$WORK/hold.out" || true)
      log "memory $transport #$rep: $ready; imppd before: $before; held: $held; ${done_line#tls_swarm: }"
      record "memory rep=$rep transport=$transport method=$MEM_METHOD $(val held "$ready" | sed 's/^/held=/') \
failed=$(val failed "$ready") heap0=$(val heap "$before") rss0=$(val rss_kb "$before") \
heap1=$(val heap "$held") rss1=$(val rss_kb "$held") server_open=$(val connections_open "$held")"
      stop_imppd
    done
  done
fi

# ---- 3. NOTIFY over TLS against TCP ----
if want notify; then
  SUBS=$((W_CONNS * W_DIALOGS))
  for rep in $(seq "$REPS"); do
    # Alternate the order of the transports.
    order=$NOTIFY_TRANSPORTS; (( rep % 2 == 0 )) && order=$(tr ' ' '\n' <<<"$order" | tac | tr '\n' ' ')
    for transport in $order; do
      start_imppd "notify-$transport-$rep" "${BIG[@]}"
      STATS=$WORK/watch-$transport-$rep.txt
      rm -f "$WORK/until"
      if [ "$transport" = UDP ]; then
        # UDP watchers: examples/sip_swarm.rs on one socket, the same dialogs; stopped by PID.
        "$UDPSWARM" --server "127.0.0.1:$PORT" --subs "$SUBS" --pres "$PRES" --rate 5000 \
          --idle-ms 3600000 --max-s 900 --stats-file "$STATS" >"$WORK/watch.out" 2>&1 &
      else
        swarm_to "$transport"
        "$SWARM" watch "${X[@]}" --conns "$W_CONNS" --dialogs "$W_DIALOGS" --pres "$PRES" --rate 5000 \
          --stats-file "$STATS" --until-file "$WORK/until" --max-s 900 >"$WORK/watch.out" 2>&1 &
      fi
      GEN_PID=$!
      # every watcher has its first NOTIFY
      for _ in $(seq 240); do
        sleep 0.25
        n=$(tail -1 "$STATS" 2>/dev/null | awk '{ print $3 }')
        [ -n "$n" ] && (( n >= SUBS )) && break
        kill -0 "$GEN_PID" 2>/dev/null || break
      done
      log "notify $transport #$rep: $(tail -1 "$STATS" | awk '{ print $2 " subscribed, " $3 " first NOTIFYs" }')"
      sleep 1
      for rate in $PUB_RATES; do
        t0=$(now); c0=$(ticks "$SRV_PID"); g0=$(ticks "$GEN_PID")
        "$PUBLISHER" --server "127.0.0.1:$PORT" --pres "$PRES" --rate "$rate" --duration-s "$STORM_S" \
          >"$WORK/pub.out" 2>&1 || true
        # drained: no new NOTIFY for 1 s
        p=-1
        for _ in $(seq 60); do
          c=$(tail -1 "$STATS" | awk '{ print $4 }'); (( c == p )) && break; p=$c; sleep 1
        done
        c1=$(ticks "$SRV_PID"); g1=$(ticks "$GEN_PID")
        st=$($NETB stats "$STATS" "$t0")
        pub=$(grep 'summary' "$WORK/pub.out" || true)
        log "notify $transport #$rep at $rate PUBLISH/s: $st; ${pub#sip_publisher: }"
        record "notify rep=$rep transport=$transport pub_rate=$rate $st published=$(val ok "$pub") pub_seconds=$(val seconds "$pub") \
per_presentity=$((SUBS / PRES)) imppd_ticks=$((c1 - c0)) gen_ticks=$((g1 - g0))"
        sleep 1
      done
      touch "$WORK/until"
      [ "$transport" = UDP ] && kill "$GEN_PID" 2>/dev/null
      wait "$GEN_PID" || true; GEN_PID=
      log "notify $transport #$rep: $(grep '^tls_swarm: watch done' "$WORK/watch.out" | sed 's/^tls_swarm: //')"
      stop_imppd
    done
  done
fi

# ---- 4. A UDP flood from one address; another address's requests meanwhile ----
if want flood; then
  for rep in $(seq "$REPS"); do
    start_imppd "flood-$rep"   # the default limits: rate limit 200/s, bursts of 1000
    sleep 0.5
    # alone
    out=$("$FLOOD" probe --server "127.0.0.1:$PORT" --from 127.0.0.1 --rate "$PROBE_RATE" \
      --seconds "$FLOOD_S" --method "$PROBE_METHOD" 2>/dev/null)
    log "flood #$rep, probe alone: ${out#udp_flood: probe }"
    record "flood rep=$rep kind=alone ${out#udp_flood: probe }"
    # with the flood (it starts 1 s before the probe and ends 1 s after)
    g0=$($NETB probe "$SRV_PID" "$SRV_LOG"); c0=$(ticks "$SRV_PID"); d0=$($SIPB udpdrops "$PORT")
    "$FLOOD" flood --server "127.0.0.1:$PORT" --from 127.0.0.2 --rate "$FLOOD_RATE" \
      --seconds "$((FLOOD_S + 2))" >"$WORK/flood.out" 2>&1 &
    GEN_PID=$!
    sleep 1
    out=$("$FLOOD" probe --server "127.0.0.1:$PORT" --from 127.0.0.1 --rate "$PROBE_RATE" \
      --seconds "$FLOOD_S" --method "$PROBE_METHOD" 2>/dev/null)
    wait "$GEN_PID" || true; GEN_PID=
    c1=$(ticks "$SRV_PID"); d1=$($SIPB udpdrops "$PORT"); g1=$($NETB probe "$SRV_PID" "$SRV_LOG")
    fl=$(grep '^udp_flood: offered=' "$WORK/flood.out" || true)
    [ -n "$fl" ] || { cat "$WORK/flood.out" >&2; exit 1; }
    offered=$(val offered "$fl")
    d() { echo $(( $(val "$1" "$g1") - $(val "$1" "$g0") )); }
    log "flood #$rep, probe in the flood: ${out#udp_flood: probe }"
    log "flood #$rep: ${fl#udp_flood: }; imppd: refused $(d rate_refused), dropped $(d rate_dropped), queue dropped $(d queue_dropped); kernel drops $((d1 - d0))"
    record "flood rep=$rep kind=flood ${out#udp_flood: probe } offered=$offered \
offered_rate=$(val rate "$fl") answered_503=$(val answered_503 "$fl") answered_200=$(val answered_200 "$fl") \
rate_refused=$(d rate_refused) rate_dropped=$(d rate_dropped) queue_dropped=$(d queue_dropped) \
udp_drops=$((d1 - d0)) cpu_us_per_datagram=$(awk -v t=$((c1 - c0)) -v k="$CLK" -v n="$offered" 'BEGIN { printf "%.3f", t / k / n * 1e6 }')"
    stop_imppd
  done
fi

$NETB report "$RESULTS"
