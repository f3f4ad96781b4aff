"""imppd's /metrics read by the Prometheus client library's own text-format parser
(prometheus_client.parser), before and after some SIP traffic over TCP: the exposition must
parse, carry the families and types README lists, and its counters must move.

Usage: metrics_check.py HTTP-PORT SIP-PORT DOMAIN USER PASSWORD (run by tests/http.rs)."""

import os
import socket
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sipwire import Conn, answer  # noqa: E402

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

http_port, sip_port, domain, user, password = sys.argv[1:6]

# Family name (as the parser gives it: counters without `_total`) and type.
EXPECTED = {
    "imppd_up": "gauge",
    "imppd_presentities": "gauge",
    "imppd_publications": "gauge",
    "imppd_subscriptions": "gauge",
    "imppd_endpoints": "gauge",
    "imppd_events_queued": "gauge",
    "imppd_notifications": "counter",
    "imppd_messages_waiting": "gauge",
    "imppd_messages": "counter",
    "imppd_state_limit_refusals": "counter",
    "imppd_connections_open": "gauge",
    "imppd_connections_refused": "counter",
    "imppd_connections_timed_out": "counter",
    "imppd_guard": "counter",
    "imppd_messages_held": "counter",
    "imppd_federation_backends": "gauge",
    "imppd_federation_requests": "counter",
    "imppd_heap_live_bytes": "gauge",
    "imppd_http_requests": "counter",
    "imppd_sip_answers": "counter",
    "imppd_sip_requests_sent": "counter",
    "imppd_sip_request_outcomes": "counter",
    "imppd_subscriptions_by_package": "gauge",
    "imppd_transactions": "gauge",
    "imppd_queue_depth": "gauge",
    "imppd_connections": "gauge",
    "imppd_event_loop_lag_seconds": "summary",
    "imppd_event_loop_lag_last_seconds": "gauge",
    "imppd_event_loop_lag_max_seconds": "gauge",
    "imppd_dns_lookups": "counter",
    "imppd_dns_waiting": "gauge",
}


def scrape():
    """{(sample name, sorted labels): value} and {family: type} of one scrape."""
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.status == 200, r.status
        kind = r.headers["Content-Type"]
        assert kind.startswith("text/plain; version=0.0.4"), kind
        text = r.read().decode("utf-8")
    samples, types = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, types


def value(samples, name, **labels):
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {key}"
    return samples[key]


before, types = scrape()
for family, kind in EXPECTED.items():
    assert types.get(family) == kind, f"{family}: type {types.get(family)}, expected {kind}"
assert value(before, "imppd_up") == 1

aor = f"sip:{user}@{domain}"
conn = Conn(socket.create_connection(("127.0.0.1", int(sip_port)), timeout=5))
contact = f"Contact: <sip:{user}@{conn.local()};transport=tcp>\r\nExpires: 300\r\n"
got = conn.transact("REGISTER", f"sip:{domain}", aor, aor, user, password, contact)
assert got.status == 200, f"REGISTER: {got}"
got = conn.transact("REGISTER", f"sip:{domain}", aor, aor, user, password + "-wrong", contact)
assert got.status in (401, 403), f"REGISTER with a wrong password: {got}"
# Alice watches herself (her own domain may): imppd answers 200 and sends a NOTIFY, which is
# answered 200 here.
events = "Event: presence\r\nAccept: application/pidf+xml\r\n"
got = conn.transact("SUBSCRIBE", aor, aor, aor, user, password, contact + events)
assert 200 <= got.status < 300, f"SUBSCRIBE: {got}"
notify = None
deadline = time.monotonic() + 5
while notify is None and time.monotonic() < deadline:
    m = conn.read(max(0.01, deadline - time.monotonic()))
    if m.is_request:
        answer(conn, m, 200)
        notify = m if m.method == "NOTIFY" else None
assert notify is not None, "no NOTIFY"

after = None
def answered_notify(samples):
    return value(samples, "imppd_sip_request_outcomes_total", outcome="2xx") >= 1


# The NOTIFY's 200 is counted when imppd reads it: scrape until it is (at most 5 s).
deadline = time.monotonic() + 5
while True:
    after, _ = scrape()
    if answered_notify(after) or time.monotonic() > deadline:
        break
    time.sleep(0.05)
checks = [
    ("imppd_sip_answers_total", {"method": "REGISTER", "class": "2xx"}, 1),
    ("imppd_sip_answers_total", {"method": "REGISTER", "class": "4xx"}, 2),
    ("imppd_sip_answers_total", {"method": "SUBSCRIBE", "class": "2xx"}, 1),
    ("imppd_sip_requests_sent_total", {"method": "NOTIFY"}, 1),
    ("imppd_sip_request_outcomes_total", {"outcome": "2xx"}, 1),
    ("imppd_notifications_total", {"outcome": "sent"}, 1),
    ("imppd_subscriptions", {"state": "active"}, 1),
    ("imppd_endpoints", {}, 1),
    ("imppd_guard_total", {"reason": "auth_failure"}, 1),
    ("imppd_http_requests_total", {}, 1),
]
for name, labels, at_least in checks:
    moved = value(after, name, **labels) - value(before, name, **labels)
    assert moved >= at_least, f"{name}{labels} moved by {moved}, expected >= {at_least}"
assert value(after, "imppd_connections_open") >= 1, "the SIP connection is not counted"
assert value(after, "imppd_connections", transport="TCP") >= 1, "not counted as TCP"
assert value(after, "imppd_subscriptions_by_package", package="presence", state="active") >= 1
for kind in ("server", "client"):
    assert value(after, "imppd_transactions", kind=kind) >= 0
for queue in ("inbound", "notify"):
    assert value(after, "imppd_queue_depth", queue=queue) >= 0
# The I/O thread's timer turns come about once a second: within 3 s one is measured, and a
# turn on an idle server is late by far less than a second.
deadline = time.monotonic() + 3
while value(after, "imppd_event_loop_lag_seconds_count") < 1 and time.monotonic() < deadline:
    time.sleep(0.1)
    after, _ = scrape()
turns = value(after, "imppd_event_loop_lag_seconds_count")
assert turns >= 1, f"{turns} timer turns measured"
assert value(after, "imppd_event_loop_lag_max_seconds") < 1.0
conn.sock.close()
print(f"metrics ok: {len(after)} samples in {len(types)} families")
