#!/usr/bin/env bash
# Side-by-side SIP presence benchmark: Kamailio's presence server against imppd, on this
# machine, with the same sipp scenarios and the same load, one after the other.
#
#   benches/sip/compare.sh            # default load (about 12 minutes)
#   QUICK=1 benches/sip/compare.sh    # small load (about 5 minutes)
#   SWARM=0 benches/sip/compare.sh    # sipp watchers only (half the time)
#
# From a fresh clone it needs a Rust toolchain, python3 and, if missing, installs with apt-get
# (as root, or through sudo): kamailio, kamailio-presence-modules (Kamailio's presence server)
# and sip-tester (sipp). Then it runs benches/sip/run.sh twice on the same free loopback port
# (one server at a time):
#   1. SERVER=kamailio: deploy/kamailio/presence.cfg, memory only (subs_db_mode 0, publ_cache 2),
#      2 UDP + 2 TCP workers, maxbuffer 4 MB, -m KAM_SHM_MB shared memory;
#   2. SERVER=imppd: the release build, --open (no authentication, as Kamailio here), a fresh
#      SQLite store;
# Both servers are driven twice: by sipp watchers (benches/sip/watcher.xml, one sipp process)
# and by examples/sip_swarm.rs, a watcher generator answering NOTIFYs with recvmmsg/sendmmsg,
# because one sipp process saturates before imppd does. The publishers are sipp each time.
# Then it prints one table, with a column per run and the ratio imppd / Kamailio for each kind
# of watcher. Every other setting of run.sh (SUBS, PRES, SUB_RATE, UPDATES, INTERVAL_MS,
# SAT_PUB_RATE, SAT_UPDATES, TRANSPORT, SETTLE_S, EXPIRES) applies to every run.
#
# How each figure is measured (details in benches/sip/README.md):
#   SUBSCRIBEs established /s   200s to the watchers' SUBSCRIBEs / time from start to last 200
#   NOTIFY transactions /s      NOTIFYs the watchers answered during a PUBLISH storm, between
#                               the 5 % and 95 % points: nominal (the default 100 PUBLISH/s x
#                               100 watchers each = 10k NOTIFY/s offered) and saturation
#                               (SAT_PUB_RATE, 400 PUBLISH/s = 40k NOTIFY/s offered)
#   server CPU per 10k NOTIFY   utime+stime of the server's processes (Kamailio: the main
#                               process and its workers; imppd: its one process) over a storm,
#                               per 10,000 NOTIFYs answered
#   bytes per subscription      Kamailio: growth of `kamcmd core.shmmem` real_used once its
#                               transactions have drained (`tm.stats` current = 0), divided by
#                               the subscriptions; imppd: growth of its live heap (SIGUSR1)
#                               after SETTLE_S seconds, divided by the subscriptions. Kamailio's
#                               figure leaves out its private (pkg) memory.
#   memory with all subscribed, after the storms
#                               imppd: live heap and VmRSS (MB) after SETTLE_S, and once the
#                               saturation storm has drained (watchers still subscribed), and
#                               their ratio; Kamailio: shm real_used (MB)
#
#   KEEP=1   keep both work directories (sipp CSVs, server logs, each run's full report)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

kamailio_ready() {
  command -v kamailio >/dev/null && command -v kamcmd >/dev/null && command -v sipp >/dev/null \
    && [ -n "$(find /usr/lib /usr/lib64 -path '*kamailio/modules/presence_xml.so' 2>/dev/null | head -1)" ]
}
if ! kamailio_ready; then
  log "installing kamailio, kamailio-presence-modules and sip-tester (apt-get)"
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    kamailio kamailio-presence-modules sip-tester
  kamailio_ready || { echo "kamailio's presence modules are still missing" >&2; exit 1; }
fi

OUT=$(mktemp -d /tmp/sip-compare.XXXXXX)
KEEP=${KEEP:-0}
cleanup() { if [ "$KEEP" = 1 ]; then log "kept: $OUT"; else rm -rf "$OUT"; fi; }
trap cleanup EXIT

GENS=sipp
if [ "${SWARM:-1}" = 1 ]; then
  if [ "${TRANSPORT:-u1}" = u1 ]; then GENS="sipp swarm"; else log "sip_swarm is UDP only: sipp watchers alone"; fi
fi
runs=()
for gen in $GENS; do
  for server in kamailio imppd; do
    run=$server-$gen
    log "$run: running benches/sip/run.sh (full report in $OUT/$run.txt)"
    if ! SERVER=$server WATCHERS=$gen KEEP=1 WORK="$OUT/$run" "$HERE/run.sh" >"$OUT/$run.txt" 2>&1; then
      cat "$OUT/$run.txt" >&2
      echo "the $run run failed" >&2
      exit 1
    fi
    grep -E '^\[' "$OUT/$run.txt" | sed 's/^/    /' >&2 || true
    runs+=("$OUT/$run")
  done
done

python3 "$HERE/sipbench.py" compare "${runs[@]}"
