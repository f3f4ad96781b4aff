#!/usr/bin/env bash
# Builds imppd and runs it: a presence and instant-messaging SIP server for one domain, with
# its state in ./imppd.db. Two users are created the first time (alice and bob) so two
# softphones can be pointed at it at once. Ctrl-C (SIGINT) or SIGTERM stops it cleanly.
#
# Settings (environment):
#   IMPPD_DOMAIN   the SIP domain (default example.test)
#   IMPPD_LISTEN   where to listen, space-separated (default "udp:127.0.0.1:5060 tcp:127.0.0.1:5060")
#   IMPPD_DB       the state file (default ./imppd.db)
#   IMPPD_USERS    users created when the file is new, as name:password pairs
#                  (default "alice:alice-secret bob:bob-secret")
#   IMPPD_BIN      an imppd binary to run instead of building one (cargo build --release)
# Any arguments are passed on to imppd (e.g. --log-level debug, --sha256, --open).
set -euo pipefail
cd "$(dirname "$0")/.."

domain=${IMPPD_DOMAIN:-example.test}
listen=${IMPPD_LISTEN:-udp:127.0.0.1:5060 tcp:127.0.0.1:5060}
db=${IMPPD_DB:-./imppd.db}
users=${IMPPD_USERS:-alice:alice-secret bob:bob-secret}

if [[ -n "${IMPPD_BIN:-}" ]]; then
    imppd=$IMPPD_BIN
else
    cargo build --release --quiet --bin imppd
    imppd=target/release/imppd
fi

if [[ ! -e "$db" ]]; then
    for pair in $users; do
        name=${pair%%:*}
        password=${pair#*:}
        "$imppd" user add "sip:$name@$domain" --password "$password" --db "$db"
    done
    echo "users: $users (name:password; change them with '$imppd user add|del --db $db')" >&2
fi

args=(--domain "$domain" --db "$db")
for l in $listen; do
    args+=(--listen "$l")
done
echo "point SIP phones at $domain (server: ${listen}); stop with Ctrl-C" >&2
exec "$imppd" "${args[@]}" "$@"
