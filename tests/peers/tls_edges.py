#!/usr/bin/env python3
"""imppd's SIP over TLS at its edges, seen from Python's ssl module (OpenSSL): what a client
must refuse, what imppd must refuse, and that none of it disturbs a normal REGISTER after.
Run by tests/tls_peers.rs, which makes the certificates (a CA and what it signs) and starts
imppd; standard library only.

    tls_edges.py --certs DIR --tls PORT --tcp PORT --expired PORT --peer-port PORT
                 [--domain D] [--peer-domain D] [--user U --password P] [--stall-timeout S]

DIR holds ca.crt (the CA imppd trusts and its certificate chains to), stranger.crt/.key (a
client certificate from a CA imppd does not trust), and the certificates of the peer domain's
server played here: peer-right.crt/.key (names --peer-domain) and peer-wrong.crt/.key (names
another domain). --tls and --tcp are imppd's ports; --expired is the TLS port of an imppd
whose certificate has expired; imppd routes --peer-domain to tls:127.0.0.1:--peer-port.

Each check prints "PASS name" or "FAIL name: why"; the run ends with "checks: N ok, M failed"
and exits 1 on any failure. A stalled handshake (TCP connect, nothing sent) is held open during
the other checks; its closure by imppd is awaited only with --stall-timeout (imppd's handshake
timeout, 10 s and not configurable yet).
"""

import argparse
import os
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sipwire import Conn, answer, tls_client  # noqa: E402

results = []


def check(name):
    def run(fn):
        try:
            fn()
        except AssertionError as e:
            results.append((name, str(e) or "assertion failed"))
        except Exception as e:  # noqa: BLE001 - any surprise is a failure of the check
            results.append((name, f"{type(e).__name__}: {e}"))
        else:
            results.append((name, None))
        why = results[-1][1]
        print(f"PASS {name}" if why is None else f"FAIL {name}: {why}", flush=True)
        return fn

    return run


def read_to_eof(sock, timeout):
    """Everything the peer sends until it closes: (bytes, closed within `timeout`)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        except (ConnectionResetError, ssl.SSLError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


class PeerServer:
    """The server of the peer domain: accepts imppd's TLS connections with the certificate
    currently chosen, asks imppd for its client certificate (mutual TLS), answers every request
    200 and remembers what happened."""

    def __init__(self, port, ca):
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.2)
        self.ca = ca
        self.context = None
        self.events = []  # ("handshake failed", why) | ("peer", cert) | ("request", Message)
        self.lock = threading.Lock()
        self.running = True
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def present(self, cert, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.load_verify_locations(self.ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
        with self.lock:
            self.context = ctx
            self.events.clear()

    def note(self, *event):
        with self.lock:
            self.events.append(event)

    def seen(self, until=None, timeout=3.0):
        """What happened so far; with `until`, waits (bounded) for an event of that kind."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                events = list(self.events)
            if until is None or any(e[0] == until for e in events):
                return events
            if time.monotonic() >= deadline:
                return events
            time.sleep(0.02)

    def accept_loop(self):
        while self.running:
            try:
                raw, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(raw,), daemon=True).start()

    def serve(self, raw):
        with self.lock:
            ctx = self.context
        raw.settimeout(5)
        try:
            sock = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.note("handshake failed", str(e))
            raw.close()
            return
        self.note("peer", sock.getpeercert())
        conn = Conn(sock)
        try:
            while self.running:
                m = conn.read(timeout=10)
                if m.is_request:
                    self.note("request", m)
                    answer(conn, m, 200)
        except (TimeoutError, EOFError, OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def stop(self):
        self.running = False
        self.listener.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--certs", required=True)
    ap.add_argument("--tls", type=int, required=True)
    ap.add_argument("--tcp", type=int, required=True)
    ap.add_argument("--expired", type=int, required=True)
    ap.add_argument("--peer-port", type=int, required=True)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--peer-domain", default="b.test")
    ap.add_argument("--user", default="alice")
    ap.add_argument("--password", default="alice-pw")
    ap.add_argument("--stall-timeout", type=float)
    a = ap.parse_args()
    ca = os.path.join(a.certs, "ca.crt")
    cert = lambda name: tuple(os.path.join(a.certs, f"{name}.{x}") for x in ("crt", "key"))  # noqa: E731
    aor = f"sip:{a.user}@{a.domain}"

    # Opened first and left silent through everything below.
    stalled = socket.create_connection(("127.0.0.1", a.tls), timeout=5)
    stalled_at = time.monotonic()

    @check("a client checking the name refuses imppd's certificate for another name")
    def _():
        try:
            tls_client(a.tls, ca, "not-" + a.domain).close()
        except ssl.SSLCertVerificationError as e:
            assert "hostname" in e.verify_message.lower(), e.verify_message
        else:
            raise AssertionError("the handshake succeeded")

    @check("a client refuses imppd's expired certificate")
    def _():
        try:
            tls_client(a.expired, ca, a.domain).close()
        except ssl.SSLCertVerificationError as e:
            assert "expired" in e.verify_message.lower(), e.verify_message
        else:
            raise AssertionError("the handshake succeeded")

    @check("imppd refuses a client certificate from a CA it does not trust")
    def _():
        # With TLS 1.3 the client's side of the handshake ends before imppd has checked the
        # certificate: the refusal (an alert, a close) comes on the first read.
        try:
            sock = tls_client(a.tls, ca, a.domain, cert=cert("stranger"))
        except (ssl.SSLError, ConnectionResetError):
            return
        with sock:
            conn = Conn(sock)
            try:
                call_id = conn.request("OPTIONS", f"sip:{a.domain}", aor, f"sip:{a.domain}")
                got = conn.final(call_id)
            except (ssl.SSLError, EOFError, ConnectionResetError, BrokenPipeError):
                return
            raise AssertionError(f"imppd answered {got}")

    @check("plain text on the TLS port gets no SIP answer and the connection closes")
    def _():
        with socket.create_connection(("127.0.0.1", a.tls), timeout=5) as s:
            s.sendall(
                f"OPTIONS sip:{a.domain} SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bKp\r\n"
                f"From: <{aor}>;tag=p\r\nTo: <sip:{a.domain}>\r\nCall-ID: plain\r\n"
                "CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".encode()
            )
            data, closed = read_to_eof(s, 5)
        assert b"SIP/2.0" not in data, data
        # At most a TLS alert record (content type 21).
        assert not data or data[0] == 21, data
        assert closed, "still open after 5 s"

    @check("TLS on the plain TCP port fails")
    def _():
        try:
            tls_client(a.tcp, ca, a.domain).close()
        except socket.timeout:
            raise AssertionError("imppd left the handshake hanging for 5 s")
        except (ssl.SSLError, ConnectionResetError):
            return
        raise AssertionError("a TLS handshake succeeded on the TCP port")

    peer = PeerServer(a.peer_port, ca)
    message_to_peer = dict(
        method="MESSAGE",
        uri=f"sip:bob@{a.peer_domain}",
        sender=aor,
        to=f"sip:bob@{a.peer_domain}",
        user=a.user,
        password=a.password,
        extra="Content-Type: text/plain\r\n",
    )

    @check(f"imppd refuses a {a.peer_domain} server whose certificate names another domain")
    def _():
        peer.present(*cert("peer-wrong"))
        with tls_client(a.tls, ca, a.domain) as sock:
            got = Conn(sock).transact(body="to the wrong server", **message_to_peer)
        assert got.status >= 500, f"imppd answered {got}"
        seen = peer.seen(until="handshake failed")
        assert any(e[0] == "handshake failed" for e in seen), seen
        assert not any(e[0] == "request" for e in seen), seen

    @check(f"imppd reaches the {a.peer_domain} server over mutual TLS, presenting {a.domain}")
    def _():
        peer.present(*cert("peer-right"))
        with tls_client(a.tls, ca, a.domain) as sock:
            got = Conn(sock).transact(body="to the right server", **message_to_peer)
        assert got.status == 200, f"imppd answered {got}"
        seen = peer.seen(until="request")
        certs = [e[1] for e in seen if e[0] == "peer"]
        assert certs and certs[0], f"imppd presented no client certificate: {seen}"
        names = [v for k, v in certs[0].get("subjectAltName", ()) if k == "DNS"]
        assert a.domain in names, names
        requests = [e[1] for e in seen if e[0] == "request"]
        assert [r.body for r in requests] == [b"to the right server"], requests

    peer.stop()

    if a.stall_timeout is not None:

        @check("imppd closes a handshake that stalls within its handshake timeout")
        def _():
            left = a.stall_timeout + 3 - (time.monotonic() - stalled_at)
            data, closed = read_to_eof(stalled, max(0.0, left))
            assert closed, f"still open {a.stall_timeout + 3:.0f} s after the connect"
            assert b"SIP/2.0" not in data, data

    @check("after all of it, a phone registers over TLS")
    def _():
        with tls_client(a.tls, ca, a.domain) as sock:
            conn = Conn(sock)
            contact = f"<sip:{a.user}@{conn.local()};transport=tls>"
            got = conn.transact(
                "REGISTER", f"sip:{a.domain}", aor, aor, a.user, a.password,
                extra=f"Contact: {contact}\r\nExpires: 60\r\n",
            )
        assert got.status == 200, f"imppd answered {got}"
        assert any(contact.strip("<>") in c for c in got.all("contact")), got.all("contact")

    stalled.close()
    failed = sum(1 for _, why in results if why is not None)
    print(f"checks: {len(results) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
