#!/usr/bin/env bash
# A/B comparison of two imppd builds under the same sipp load (benches/sip/run.sh),
# alternating A and B, ROUNDS times each; prints every run's server CPU per 10k NOTIFY
# transactions and NOTIFY rate, nominal (10k NOTIFY/s offered) and saturation, and the
# medians.
#
#   benches/sip/ab.sh OLD_IMPPD NEW_IMPPD
#   git worktree add /tmp/old <rev> && (cd /tmp/old && cargo build --release --bin imppd)
#   benches/sip/ab.sh /tmp/old/target/release/imppd target/release/imppd
#
# Environment: ROUNDS [3]; AB_KEEP=1 keeps every run's directory and report; everything else is passed to run.sh, with these defaults for a
# run of about a minute: SUBS [10000], SETTLE_S [3], UPDATES [5]. Runs never overlap.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# = 2 ] || { echo "usage: $0 OLD_IMPPD NEW_IMPPD" >&2; exit 2; }
A=$(realpath "$1") B=$(realpath "$2")
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
ROUNDS=${ROUNDS:-3}
export SUBS=${SUBS:-10000} SETTLE_S=${SETTLE_S:-3} UPDATES=${UPDATES:-5} KEEP=1
ROOTDIR=$(mktemp -d /tmp/sip-ab.XXXXXX)
if [ "${AB_KEEP:-0}" = 1 ]; then echo "runs kept in $ROOTDIR" >&2; else trap 'rm -rf "$ROOTDIR"' EXIT; fi
for ((r = 1; r <= ROUNDS; r++)); do
  for side in A B; do
    bin=$A; [ "$side" = B ] && bin=$B
    echo "[$(date +%T)] round $r: $side ($bin)" >&2
    IMPPD=$bin WORK=$ROOTDIR/$side$r "$HERE/run.sh" >"$ROOTDIR/$side$r.out" 2>&1 \
      || { echo "run $side$r failed:" >&2; tail -20 "$ROOTDIR/$side$r.out" >&2; exit 1; }
  done
done
echo "A = $A"
echo "B = $B"
python3 "$HERE/sipbench.py" ab "$ROOTDIR"
