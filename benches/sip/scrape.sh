#!/usr/bin/env bash
# What Prometheus scraping imppd's /metrics costs during the compare.sh storm: the same imppd
# build under the same sipp load (benches/sip/run.sh, nominal and saturation PUBLISH storms),
# run ROUNDS times each way, alternating: A with the HTTP listener never scraped, B scraped
# every SCRAPE_S seconds through both storms. Prints each run's server CPU per 10k NOTIFY
# transactions, the medians of A and B and B against A in %, and the CPU of one scrape
# (SCRAPE_PROBE back-to-back scrapes after the storms, all subscriptions held, less the
# idle CPU of the same time; see scrape.py).
#
#   benches/sip/scrape.sh                 # builds imppd (release)
#   IMPPD=path/to/imppd benches/sip/scrape.sh
#
# Environment: ROUNDS [3], SCRAPE_S [1], SCRAPE_PROBE [500], SCRAPE_KEEP=1 keeps every run's
# directory; everything else is passed to run.sh, with these defaults for a run of about a
# minute: SUBS [10000], SETTLE_S [3], UPDATES [5]. Runs never overlap.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [ -z "${IMPPD:-}" ]; then
  (cd "$ROOT" && cargo build --release --quiet --bin imppd)
  IMPPD=${CARGO_TARGET_DIR:-$ROOT/target}/release/imppd
fi
IMPPD=$(realpath "$IMPPD")
ROUNDS=${ROUNDS:-3}
export SUBS=${SUBS:-10000} SETTLE_S=${SETTLE_S:-3} UPDATES=${UPDATES:-5} KEEP=1 IMPPD
export SCRAPE_S=${SCRAPE_S:-1} SCRAPE_PROBE=${SCRAPE_PROBE:-500}
RUNS=$(mktemp -d /tmp/sip-scrape.XXXXXX)
if [ "${SCRAPE_KEEP:-0}" = 1 ]; then echo "runs kept in $RUNS" >&2; else trap 'rm -rf "$RUNS"' EXIT; fi
for ((r = 1; r <= ROUNDS; r++)); do
  for side in A B; do
    metrics=idle; [ "$side" = B ] && metrics=scrape
    echo "[$(date +%T)] round $r: $side (METRICS=$metrics)" >&2
    METRICS=$metrics WORK=$RUNS/$side$r "$HERE/run.sh" >"$RUNS/$side$r.out" 2>&1 \
      || { echo "run $side$r failed:" >&2; tail -20 "$RUNS/$side$r.out" >&2; exit 1; }
  done
done
echo "imppd = $IMPPD"
python3 "$HERE/scrape.py" report "$RUNS"
