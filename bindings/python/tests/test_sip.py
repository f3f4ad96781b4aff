"""The SIP stack from Python: started over an engine on loopback, it answers on the wire,
challenges unauthenticated users, and leaves the application its own events."""

import socket

import pytest

import impp


def exchange(address: str, request: str) -> str:
    """Sends ``request`` over UDP to ``address`` ("udp:127.0.0.1:PORT") and returns the first
    final answer (or "" after 5 s)."""
    host, port = address.split(":", 1)[1].rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(5)
        here = s.getsockname()[1]
        s.sendto(request.replace("HERE", f"127.0.0.1:{here}").encode(), (host, int(port)))
        while True:
            try:
                answer = s.recv(65536).decode()
            except socket.timeout:
                return ""
            if not answer.startswith("SIP/2.0 1"):
                return answer


def request(method: str, uri: str, sender: str, to: str, call: str, extra: str = "",
            body: str = "") -> str:
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP HERE;branch=z9hG4bK-py-{call};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <{sender}>;tag=py{call}\r\n"
        f"To: <{to}>\r\n"
        f"Call-ID: py-{call}\r\n"
        f"CSeq: 1 {method}\r\n"
        f"{extra}"
        f"Content-Length: {len(body.encode())}\r\n\r\n{body}"
    )


def test_the_stack_answers_challenges_and_leaves_the_application_its_events():
    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        engine.set_user_password("sip:alice@example.test", "alice-secret")
        engine.set_user_password("sip:bob@example.test", "bob-secret")
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
                           routes=["other.test=udp:127.0.0.1:9"]) as sip:
            udp = sip.local_address("udp")
            assert udp.startswith("udp:127.0.0.1:") and not udp.endswith(":0")
            assert sip.local_address("tcp").startswith("tcp:127.0.0.1:")

            answer = exchange(udp, request("OPTIONS", "sip:example.test", "sip:p@example.test",
                                           "sip:example.test", "1"))
            assert answer.startswith("SIP/2.0 200")
            assert "Allow-Events:" in answer

            answer = exchange(udp, request("REGISTER", "sip:example.test",
                                           "sip:alice@example.test", "sip:alice@example.test",
                                           "2", "Contact: <sip:alice@HERE>\r\nExpires: 60\r\n"))
            assert answer.startswith("SIP/2.0 401")
            assert "WWW-Authenticate: Digest" in answer
        # Closed: the engine goes on without it.
        with pytest.raises(impp.Shutdown):
            sip.local_address("udp")

        # Unauthenticated (a test rig): a MESSAGE over SIP reaches the application's own
        # endpoint as an ordinary event.
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], authenticate=False) as sip:
            engine.login("sip:bob@example.test", "app")
            answer = exchange(sip.local_address("udp"), request(
                "MESSAGE", "sip:bob@example.test", "sip:carol@example.test",
                "sip:bob@example.test", "3", "Content-Type: text/plain\r\n", "hello bob"))
            assert answer.startswith("SIP/2.0 200"), answer
            messages = [e for e in engine.events(timeout=0.5) if e.kind == "message"]
            assert [(m.sender, m.body) for m in messages] == [
                ("sip:carol@example.test", b"hello bob")]


def test_bad_settings_are_refused_with_a_clear_error():
    with impp.Engine(domains=["example.test"]) as engine:
        for kwargs in (
            {"listen": ["sctp:127.0.0.1:0"]},
            {"listen": ["udp:localhost:5060"]},
            {"listen": ["udp:127.0.0.1:0"], "routes": ["b.test"]},
            {"listen": ["udp:127.0.0.1:0"], "t1_ms": 0},
            {"listen": ["udp:127.0.0.1:0"], "list_batch_interval_ms": 60_001},
            {"listen": ["udp:127.0.0.1:0"], "list_batch_interval_ms": -1},
        ):
            with pytest.raises(impp.InvalidArgument) as e:
                impp.SipStack(engine, **kwargs)
            assert str(e.value)
        with pytest.raises(ValueError):
            impp.SipStack(engine, listen=[])


def test_closing_the_engine_closes_its_stack():
    engine = impp.Engine(domains=["example.test"])
    sip = impp.SipStack(engine, listen=["udp:127.0.0.1:0"])
    engine.close()
    with pytest.raises(impp.Shutdown):
        sip.local_address("udp")


def test_an_account_sends_and_receives_through_its_server():
    """The user-agent role from Python: a client engine with the account alice@example.test
    at a second engine's stack (digest on) sends as alice and receives for her."""
    with impp.Engine(domains=["example.test"], default_policy="allow") as server, \
            impp.Engine(domains=["client.test"]) as client:
        server.set_user_password("sip:alice@example.test", "alice-secret")
        server.set_user_password("sip:bob@example.test", "bob-secret")
        with impp.SipStack(server, listen=["udp:127.0.0.1:0"]) as server_sip:
            account = impp.Account("sip:alice@example.test", "alice-secret",
                                   server_sip.local_address("udp"), expires=600)
            assert "alice-secret" not in repr(account)
            with impp.SipStack(client, listen=["udp:127.0.0.1:0"], accounts=[account]):
                server.login("sip:bob@example.test", "app")
                sent = client.send_message("sip:alice@example.test", "sip:bob@example.test",
                                           "hello bob")
                outcome = next(e for e in client.events(timeout=10)
                               if e.kind == "delivery" and e.message_id == sent)
                assert outcome.outcome == "delivered"
                got = next(e for e in server.events(timeout=10) if e.kind == "message")
                assert (got.sender, got.body) == ("sip:alice@example.test", b"hello bob")

                server.send_message("sip:bob@example.test", "sip:alice@example.test", "hi alice")
                got = next(e for e in client.events(timeout=10) if e.kind == "message")
                assert (got.sender, got.recipient, got.body) == (
                    "sip:bob@example.test", "sip:alice@example.test", b"hi alice")


def test_bad_accounts_are_refused():
    with impp.Engine(domains=["client.test"]) as engine:
        for account in (
            impp.Account("not a uri", "pw", "udp:127.0.0.1:5060"),
            impp.Account("sip:alice@b.test", "pw", "udp:somewhere:5060"),
            impp.Account("sip:b.test", "pw", "udp:127.0.0.1:5060"),
        ):
            with pytest.raises(impp.Error):
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], accounts=[account])
        with pytest.raises(TypeError):
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"], accounts=["sip:alice@b.test"])


def test_an_address_in_use_is_a_network_error():
    with impp.Engine(domains=["example.test"]) as engine:
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"]) as first:
            with pytest.raises(impp.Network) as e:
                impp.SipStack(engine, listen=[first.local_address("udp")])
            assert e.value.status == -16 and str(e.value)


def test_closing_a_stack_inside_a_callback_is_refused():
    import threading

    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"]) as sip:
            seen = []
            done = threading.Event()

            def close_it(event):
                if not done.is_set():
                    try:
                        sip.close()
                        seen.append(None)
                    except impp.Error as e:
                        seen.append(e)
                    done.set()

            engine.on_event(close_it)
            engine.subscribe("sip:carol@example.test", "sip:dave@example.test")
            assert done.wait(10)
            engine.on_event(None)
            assert isinstance(seen[0], impp.InCallback), seen
            # Still running, and closes normally from here.
            assert sip.local_address("udp").startswith("udp:127.0.0.1:")
        with pytest.raises(impp.Shutdown):
            sip.local_address("udp")


# --- TLS, limits and counters -------------------------------------------------------------

import os
import re
import ssl
import time

from conftest import REPO_ROOT


@pytest.fixture
def tls_files():
    """(cert, key, ca) paths of a certificate for example.test and 127.0.0.1 and its CA, made
    by tests/python.rs (the standard library cannot make certificates). Without them these
    tests are skipped, unless IMPP_REQUIRE_TLS_FILES=1 (cargo test sets it)."""
    paths = [os.environ.get(f"IMPP_TEST_TLS_{n}") for n in ("CERT", "KEY", "CA")]
    if None in paths:
        if os.environ.get("IMPP_REQUIRE_TLS_FILES") == "1":
            pytest.fail("IMPP_TEST_TLS_CERT, _KEY and _CA must name PEM files")
        pytest.skip("no TLS files: run through cargo test --test python")
    return paths


def options_over_tls(address: str, ca: str) -> str:
    """Sends an OPTIONS over TLS to ``address`` ("tls:127.0.0.1:PORT"), checking the
    server's certificate against ``ca`` and the name example.test; returns the answer."""
    host, port = address.split(":", 1)[1].rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="example.test") as s:
            here = f"127.0.0.1:{s.getsockname()[1]}"
            s.sendall(request("OPTIONS", "sip:example.test", "sip:p@example.test",
                              "sip:example.test", "tls-1").replace(
                "SIP/2.0/UDP HERE", f"SIP/2.0/TLS {here}").encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = s.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return answer.decode()


def test_a_tls_listener_answers_with_the_certificate_from_files_or_memory(tls_files):
    cert, key, ca = tls_files
    with impp.Engine(domains=["example.test"]) as engine:
        with impp.SipStack(engine, listen=["tls:127.0.0.1:0"],
                           tls=impp.TlsFiles(cert, key, ca=ca)) as sip:
            address = sip.local_address("tls")
            assert address.startswith("tls:127.0.0.1:") and not address.endswith(":0")
            assert options_over_tls(address, ca).startswith("SIP/2.0 200")
            with pytest.raises(impp.NotFound):
                sip.local_address("udp")
        pem = impp.TlsPem(open(cert, "rb").read(), open(key).read(), open(ca).read())
        assert "PRIVATE KEY" not in repr(pem)
        with impp.SipStack(engine, listen=["tls:127.0.0.1:0"], tls=pem) as sip:
            assert options_over_tls(sip.local_address("tls"), ca).startswith("SIP/2.0 200")


def test_bad_tls_settings_are_refused_with_a_clear_error(tls_files):
    cert, key, ca = tls_files
    with impp.Engine(domains=["example.test"]) as engine:
        with pytest.raises(impp.InvalidArgument, match="/nonexistent/impp.crt"):
            impp.SipStack(engine, listen=["tls:127.0.0.1:0"],
                          tls=impp.TlsFiles("/nonexistent/impp.crt", key))
        with pytest.raises(impp.InvalidArgument, match="/nonexistent/ca.pem"):
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"],
                          tls=impp.TlsFiles(cert, key, ca="/nonexistent/ca.pem"))
        with pytest.raises(impp.InvalidArgument):  # a certificate is not a key
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"], tls=impp.TlsFiles(cert, cert))
        with pytest.raises(impp.InvalidArgument):
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"],
                          tls=impp.TlsPem("not PEM", "not PEM"))
        with pytest.raises(impp.InvalidArgument, match="TLS"):  # no certificate at all
            impp.SipStack(engine, listen=["tls:127.0.0.1:0"])
        with pytest.raises(TypeError):
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"], tls=(cert, key))
        # Nothing was left running: a stack starts as usual.
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"]) as sip:
            assert sip.local_address("udp").startswith("udp:127.0.0.1:")


def test_bad_limits_are_refused():
    with impp.Engine(domains=["example.test"]) as engine:
        for kwargs in (
            {"connection_limits": impp.ConnectionLimits(max_total=0)},
            {"connection_limits": impp.ConnectionLimits(max_per_address=0)},
            {"connection_limits": impp.ConnectionLimits(idle_timeout_ms=0)},
            {"connection_limits": impp.ConnectionLimits(tls_handshake_timeout_ms=600_001)},
            {"connection_limits": impp.ConnectionLimits(unvouched_timeout_ms=-1)},
            {"connection_limits": impp.ConnectionLimits(max_total=2**32)},
            {"rate_limit": impp.RateLimit(10, burst=9)},
            {"auth_limits": impp.AuthLimits(nonce_lifetime_ms=999)},
            {"auth_limits": impp.AuthLimits(nc_window=65)},
            {"auth_limits": impp.AuthLimits(failure_window_ms=0)},
            {"auth_limits": impp.AuthLimits(block_ms=86_400_001)},
            {"auth_limits": impp.AuthLimits(proxies=("proxy.example",))},
        ):
            with pytest.raises(impp.InvalidArgument) as e:
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], **kwargs)
            assert str(e.value), kwargs
        for kwargs in (
            {"connection_limits": impp.ConnectionLimits(max_total="10")},
            {"rate_limit": impp.RateLimit(True)},
            {"rate_limit": (10, 20)},
            {"auth_limits": {"max_failures": 3}},
        ):
            with pytest.raises(TypeError):
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], **kwargs)
        # Good values at their bounds, and the limit off.
        with impp.SipStack(
            engine, listen=["udp:127.0.0.1:0"],
            connection_limits=impp.ConnectionLimits(
                max_total=0xFFFFFFFF, max_per_address=1, idle_timeout_ms=86_400_000,
                tls_handshake_timeout_ms=100, unvouched_timeout_ms=100),
            rate_limit=impp.RateLimit(0),
            auth_limits=impp.AuthLimits(nonce_lifetime_ms=1000, nc_window=0, max_failures=0,
                                        failure_window_ms=1000, block_ms=86_400_000,
                                        proxies=("192.0.2.1", "2001:db8::1")),
        ) as sip:
            assert sip.stats()["rate_refused"] == 0
        # The list server's batching interval at its bounds (0: none).
        for interval in (0, 60_000):
            with impp.SipStack(engine, listen=["udp:127.0.0.1:0"],
                               list_batch_interval_ms=interval) as sip:
                assert sip.local_address("udp").startswith("udp:127.0.0.1:")
        with pytest.raises(TypeError):
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"], list_batch_interval_ms=1.5)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_counters_of_a_running_stack():
    # A clock that stands still: the rate limiter's bucket never refills, however slowly
    # the requests are read.
    with impp.Engine(domains=["example.test"], manual_clock=True) as engine:
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
                           rate_limit=impp.RateLimit(1, burst=1),
                           connection_limits=impp.ConnectionLimits(max_per_address=1)) as sip:
            stats = sip.stats()
            assert list(stats) == list(impp.SIP_STATS)
            assert all(v == 0 for v in stats.values()), stats

            # Three requests at 1 a second, bursts of 1: one answered, one 503, one dropped.
            host, port = sip.local_address("udp").split(":", 1)[1].rsplit(":", 1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", 0))
                s.settimeout(20)
                here = f"127.0.0.1:{s.getsockname()[1]}"
                for i in range(3):
                    s.sendto(request("OPTIONS", "sip:example.test", "sip:p@example.test",
                                     "sip:example.test", f"rate-{i}")
                             .replace("HERE", here).encode(), (host, int(port)))
                answers = sorted(s.recv(65536).decode().split("\r\n", 1)[0] for _ in range(2))
            assert answers[0] == "SIP/2.0 200 OK", answers
            assert answers[1].startswith("SIP/2.0 503 "), answers
            assert sip.stats()["rate_refused"] == 1
            assert wait_for(lambda: sip.stats()["rate_dropped"] == 1), sip.stats()

            # One TCP connection per address: the second is refused.
            tcp = sip.local_address("tcp").split(":", 1)[1].rsplit(":", 1)
            with socket.create_connection((tcp[0], int(tcp[1])), timeout=5):
                assert wait_for(lambda: sip.stats()["open_connections"] == 1)
                with socket.create_connection((tcp[0], int(tcp[1])), timeout=5):
                    assert wait_for(lambda: sip.stats()["connections_refused"] == 1)
            assert sip.stats()["auth_failures"] == 0
        with pytest.raises(impp.Shutdown):
            sip.stats()


def test_sip_stats_follow_the_header():
    text = (REPO_ROOT / "include" / "impp.h").read_text()
    body = re.search(r"typedef enum impp_sip_counter \{(.*?)\} impp_sip_counter;", text, re.S)
    assert body, "impp_sip_counter is not in include/impp.h"
    constants = re.findall(r"(IMPP_SIP_STAT_\w+) = (\d+)", re.sub(r"/\*.*?\*/", "", body.group(1),
                                                                     flags=re.S))
    assert [int(v) for _, v in constants] == list(range(len(constants)))
    assert [f"IMPP_SIP_STAT_{n.upper()}" for n in impp.SIP_STATS] == [k for k, _ in constants]


# --- Trust between domains ------------------------------------------------------------------

def message_from_other_test(sip: impp.SipStack, call: str) -> str:
    """A MESSAGE "from" sip:x@other.test to alice@example.test over UDP from 127.0.0.1, and
    the first line of its final answer."""
    answer = exchange(sip.local_address("udp"), request(
        "MESSAGE", "sip:alice@example.test", "sip:x@other.test", "sip:alice@example.test",
        call, "Content-Type: text/plain\r\n", "hello alice"))
    return answer.split("\r\n", 1)[0]


def test_another_domain_is_believed_only_from_its_peer_or_in_open_federation():
    with impp.Engine(domains=["example.test"]) as engine:
        # No peer: refused, counted, nothing stored for alice.
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"]) as sip:
            line = message_from_other_test(sip, "trust-1")
            assert line == "SIP/2.0 403 Forbidden (other.test is not a trusted peer)", line
            assert sip.stats()["untrusted"] == 1
        assert engine.stats()["messages_waiting"] == 0
        # A peer of another address, or of another domain, does not vouch for 127.0.0.1.
        for peers in (["other.test=192.0.2.0/24"], ["third.test=127.0.0.1"]):
            with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], peers=peers) as sip:
                assert message_from_other_test(sip, "trust-2").startswith("SIP/2.0 403")
                assert sip.stats()["untrusted"] == 1
        # Listed (by address or block): believed; alice is offline, so it is stored (202).
        for n, peers in enumerate((["other.test=127.0.0.1"],
                                   ["other.test=2001:db8::/64", "other.test=127.0.0.0/8"])):
            with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], peers=peers,
                               federation=impp.Federation.TRUSTED) as sip:
                line = message_from_other_test(sip, f"trust-3-{n}")
                assert line.startswith("SIP/2.0 202"), line
                assert sip.stats()["untrusted"] == 0
        # Open federation: believed from anyone (the member or its token).
        for n, federation in enumerate((impp.Federation.OPEN, "open")):
            with impp.SipStack(engine, listen=["udp:127.0.0.1:0"],
                               federation=federation) as sip:
                line = message_from_other_test(sip, f"trust-4-{n}")
                assert line.startswith("SIP/2.0 202"), line
                assert sip.stats()["untrusted"] == 0
        assert engine.stats()["messages_waiting"] == 4


ON_THE_PHONE = """<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:alice@example.test">
 <dialog id="call-7" direction="initiator"><state>confirmed</state></dialog>
</dialog-info>
"""


def test_a_listed_pbx_publishes_for_the_users_of_its_domain():
    publish = request("PUBLISH", "sip:alice@example.test", "sip:pbx@pbx.test",
                      "sip:alice@example.test", "pbx",
                      "Event: dialog\r\nExpires: 600\r\n"
                      "Content-Type: application/dialog-info+xml\r\n", ON_THE_PHONE)
    with impp.Engine(domains=["example.test"]) as engine:
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"]) as sip:
            line = exchange(sip.local_address("udp"), publish).split("\r\n", 1)[0]
            assert line.startswith("SIP/2.0 403"), line
        assert engine.stats()["publications"] == 0
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"],
                           publishers=["127.0.0.1=example.test",
                                       "sip:voicemail@example.test=example.test"]) as sip:
            answer = exchange(sip.local_address("udp"), publish)
            assert answer.startswith("SIP/2.0 200"), answer
            assert "SIP-ETag:" in answer
        assert engine.stats()["publications"] == 1


def test_bad_trust_settings_are_refused():
    with impp.Engine(domains=["example.test"]) as engine:
        for kwargs, message in (
            ({"peers": ["other.test"]}, "DOMAIN=ADDR"),
            ({"peers": ["other.test=peer_other.test"]}, "peer_other.test"),
            ({"peers": ["other.test=192.0.2.0/33"]}, "33"),
            ({"federation": "closed"}, "closed"),
            ({"publishers": ["192.0.2.20"]}, "192.0.2.20"),
            ({"publishers": ["sip:example.test=example.test"]}, "sip:example.test"),
            # Checked against the engine's domains when the stack starts.
            ({"peers": ["example.test=127.0.0.1"]}, "example.test is a domain of this server"),
            ({"publishers": ["127.0.0.1=other.test"]}, "other.test is not a domain of this server"),
            ({"publishers": ["sip:vm@other.test=example.test"]}, "not a user of this server"),
        ):
            with pytest.raises(impp.InvalidArgument, match=re.escape(message)):
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], **kwargs)
        for kwargs in (
            {"peers": "other.test=127.0.0.1"},
            {"publishers": "127.0.0.1=example.test"},
            {"federation": 2},
            {"peers": [7]},
        ):
            with pytest.raises(TypeError):
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], **kwargs)
        # Nothing was left running: a stack with good settings starts.
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], peers=["other.test=127.0.0.1"],
                           federation="trusted",
                           publishers=["127.0.0.1=example.test"]) as sip:
            assert sip.stats()["untrusted"] == 0


def test_migration_redirect_sends_an_allowed_watcher_to_the_serving_device():
    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        for bad, error in (("sideways", impp.InvalidArgument), (2, TypeError)):
            with pytest.raises(error):
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], migration=bad)
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], authenticate=False,
                           migration=impp.Migration.REDIRECT) as sip:
            udp = sip.local_address("udp")
            # A device of alice's that offers to serve her watchers (RFC 3840 events tag).
            contact = "sip:alice@127.0.0.1:5999;transport=tcp"
            answer = exchange(udp, request(
                "REGISTER", "sip:example.test", "sip:alice@example.test",
                "sip:alice@example.test", "mig-reg",
                f'Contact: <{contact}>;events="presence"\r\nExpires: 600\r\n'))
            assert answer.startswith("SIP/2.0 200"), answer
            watch = "Contact: <sip:bob@HERE>\r\nEvent: presence\r\nExpires: 600\r\n"
            answer = exchange(udp, request("SUBSCRIBE", "sip:alice@example.test",
                                           "sip:bob@example.test", "sip:alice@example.test",
                                           "mig-sub", watch))
            assert answer.startswith("SIP/2.0 302"), answer
            assert f"Contact: <{contact}>" in answer, answer
            # A watcher the rules do not allow stays on the server, where alice decides.
            engine.set_rule("sip:alice@example.test", "sip:carol@example.test", "confirm")
            answer = exchange(udp, request("SUBSCRIBE", "sip:alice@example.test",
                                           "sip:carol@example.test", "sip:alice@example.test",
                                           "mig-carol", watch))
            assert answer.startswith("SIP/2.0 200"), answer
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], authenticate=False,
                           migration="off") as sip:
            answer = exchange(sip.local_address("udp"), request(
                "SUBSCRIBE", "sip:alice@example.test", "sip:bob@example.test",
                "sip:alice@example.test", "mig-off", watch))
            assert answer.startswith("SIP/2.0 200"), answer


def _pidf(entity: str, note: str) -> str:
    return ('<?xml version="1.0" encoding="UTF-8"?>'
            f'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="{entity}">'
            '<tuple id="t1"><status><basic>open</basic></status>'
            f'<note>{note}</note></tuple></presence>')


def _shows(engine: impp.Engine, sub: int, text: str, shown: bool = True) -> bool:
    """Whether a notification of ``sub`` comes within 20 s whose document shows ``text``
    (``shown``), or does not (the state gone); other events are dropped."""
    for event in engine.events(timeout=20):
        if event.kind == "notify" and event.subscription_id == sub:
            if (text in (event.xml or "")) == shown:
                return True
    return False


def test_a_list_at_another_stack_feeds_local_watchers_of_its_resources():
    """The list client from Python: b.test serves the list sip:buddies@b.test (alice and
    carol); the client engine's account bob@b.test declares it, so the client stack
    subscribes to it as it starts, and dave's ordinary watches of alice and carol on the
    client follow their presence as it changes at b.test. Ended and made again at run
    time."""
    with impp.Engine(domains=["b.test"], default_policy="allow") as server, \
            impp.Engine(domains=["client.test"], default_policy="allow") as client:
        for user in ("alice", "bob", "carol"):
            server.set_user_password(f"sip:{user}@b.test", f"{user}-pw")
        server.set_list("sip:buddies@b.test", ["sip:alice@b.test", "sip:carol@b.test"])
        alice = server.publish("sip:alice@b.test", _pidf("sip:alice@b.test", "at her desk"))
        with impp.SipStack(server, listen=["udp:127.0.0.1:0"],
                           list_batch_interval_ms=0) as server_sip:
            account = impp.Account("sip:bob@b.test", "bob-pw", server_sip.local_address("udp"),
                                   lists=["sip:buddies@b.test"])
            assert account.lists == (impp.AccountList("sip:buddies@b.test", "presence"),)
            watch_alice = client.subscribe("sip:dave@client.test", "sip:alice@b.test")
            watch_carol = client.subscribe("sip:dave@client.test", "sip:carol@b.test")
            with impp.SipStack(client, listen=["udp:127.0.0.1:0"],
                               accounts=[account]) as client_sip:
                assert _shows(client, int(watch_alice), "at her desk")

                # Changes at b.test reach dave's watches through the one list subscription.
                server.publish("sip:carol@b.test", _pidf("sip:carol@b.test", "out for lunch"))
                assert _shows(client, int(watch_carol), "out for lunch")
                alice.modify(_pidf("sip:alice@b.test", "in a meeting"))
                assert _shows(client, int(watch_alice), "in a meeting")

                # Ended at run time: the mirrored states go; made again: they come back.
                assert client_sip.unsubscribe_list(0, "sip:buddies@b.test")
                assert _shows(client, int(watch_alice), "in a meeting", shown=False)
                assert not client_sip.unsubscribe_list(0, "sip:buddies@b.test")
                client_sip.subscribe_list(0, "sip:buddies@b.test", "presence")
                assert _shows(client, int(watch_alice), "in a meeting")


def test_bad_list_subscriptions_are_refused():
    with impp.Engine(domains=["client.test"]) as engine:
        registrar = "udp:127.0.0.1:9"
        # Before the stack: bad declarations.
        for lists, error in (
            (["not a uri"], impp.InvalidUri),
            ([impp.AccountList("sip:buddies@b.test", "bogus")], impp.UnknownPackage),
            ([impp.AccountList("sip:buddies@b.test", "presence.winfo")], impp.InvalidArgument),
            (["sip:mine@client.test"], impp.InvalidArgument),  # the engine's own domain
        ):
            account = impp.Account("sip:bob@b.test", "pw", registrar, lists=lists)
            with pytest.raises(error):
                impp.SipStack(engine, listen=["udp:127.0.0.1:0"], accounts=[account])
        with pytest.raises(TypeError):
            impp.Account("sip:bob@b.test", "pw", registrar, lists="sip:buddies@b.test")
        with pytest.raises(TypeError):
            impp.Account("sip:bob@b.test", "pw", registrar, lists=[42])

        # At run time: nothing is subscribed or ended.
        account = impp.Account("sip:bob@b.test", "pw", registrar)
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0"], accounts=[account]) as sip:
            for args, error in (
                ((1, "sip:buddies@b.test"), impp.InvalidArgument),
                ((-1, "sip:buddies@b.test"), impp.InvalidArgument),
                ((0, "sip:mine@client.test"), impp.InvalidArgument),
                ((0, "not a uri"), impp.InvalidUri),
                ((0, "sip:buddies@b.test", "bogus"), impp.UnknownPackage),
                ((0, "sip:buddies@b.test", "presence.winfo"), impp.InvalidArgument),
            ):
                with pytest.raises(error):
                    sip.subscribe_list(*args)
                with pytest.raises(error):
                    sip.unsubscribe_list(*args)
            with pytest.raises(TypeError):
                sip.subscribe_list("0", "sip:buddies@b.test")
            assert not sip.unsubscribe_list(0, "sip:buddies@b.test")
        with pytest.raises(impp.Shutdown):
            sip.subscribe_list(0, "sip:buddies@b.test")


def _websocket_handshake(address: str, origin: str) -> str:
    """The status line a ws: listener answers a SIP WebSocket handshake from ``origin``."""
    host, port = address.split(":", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall((
            "GET / HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            f"Sec-WebSocket-Protocol: sip\r\nOrigin: {origin}\r\n\r\n"
        ).encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.decode().split("\r\n", 1)[0]


def test_a_websocket_listener_takes_pages_of_its_allowed_origins():
    with impp.Engine(domains=["example.test"]) as engine:
        with impp.SipStack(engine, listen=["udp:127.0.0.1:0", "ws:127.0.0.1:0"],
                           ws_origins=["https://app.example.test"]) as sip:
            ws = sip.local_address("ws")
            assert ws.startswith("ws:127.0.0.1:")
            assert _websocket_handshake(ws, "https://app.example.test").startswith(
                "HTTP/1.1 101")
            assert _websocket_handshake(ws, "https://evil.test").startswith("HTTP/1.1 403")
        for origins, message in (
            (["app.example.test"], "app.example.test"),
            (["https://app.example.test/page"], "/page"),
        ):
            with pytest.raises(impp.InvalidArgument, match=re.escape(message)):
                impp.SipStack(engine, listen=["ws:127.0.0.1:0"], ws_origins=origins)
        with pytest.raises(TypeError):
            impp.SipStack(engine, listen=["ws:127.0.0.1:0"], ws_origins="*")
        with pytest.raises(impp.InvalidArgument, match="WebSocket"):
            impp.SipStack(engine, listen=["udp:127.0.0.1:0"], routes=["*=ws:127.0.0.1:9"])


def test_a_serving_account_registers_with_the_feature_tag():
    """Presence at the edge: ``Account(serve=True, keepalive=..., xcap=...)`` registers over
    TCP with the RFC 3840 feature tag ``events="presence"``, RFC 5626's ``+sip.instance`` and
    ``reg-id``, and ``Supported: outbound``, read here by a registrar on a loopback socket;
    a bad XCAP root is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as registrar:
        registrar.bind(("127.0.0.1", 0))
        registrar.listen(1)
        registrar.settimeout(10)
        port = registrar.getsockname()[1]
        account = impp.Account("sip:alice@b.test", "alice-pw", f"tcp:127.0.0.1:{port}",
                               serve=True, keepalive=2,
                               xcap="http://127.0.0.1:1/xcap-root")
        assert "serve=True" in repr(account) and "alice-pw" not in repr(account)
        with impp.Engine(domains=["device.test"]) as engine:
            with pytest.raises(impp.InvalidArgument):
                impp.SipStack(engine, listen=["tcp:127.0.0.1:0"],
                              accounts=[impp.Account("sip:alice@b.test", "pw",
                                                     f"tcp:127.0.0.1:{port}", serve=True,
                                                     xcap="ftp://nowhere/")])
            with impp.SipStack(engine, listen=["tcp:127.0.0.1:0"], accounts=[account]):
                conn, _ = registrar.accept()
                with conn:
                    conn.settimeout(10)
                    text = b""
                    while b"\r\n\r\n" not in text:
                        chunk = conn.recv(65536)
                        assert chunk, f"the connection closed: {text!r}"
                        text += chunk
        head = text.decode().split("\r\n\r\n", 1)[0]
        assert head.startswith("REGISTER sip:b.test SIP/2.0\r\n")
        contact = next(line for line in head.split("\r\n") if line.startswith("Contact:"))
        assert 'events="presence"' in contact
        assert '+sip.instance="<urn:uuid:' in contact
        assert "reg-id=1" in contact
        assert "\r\nSupported: outbound" in head


def test_a_running_stack_is_reconfigured_without_a_restart():
    with impp.Engine(domains=["example.test"]) as engine:
        listen = ["udp:127.0.0.1:0"]
        sip = impp.SipStack(engine, listen=listen, routes=["b.test=udp:127.0.0.1:5999"])
        try:
            assert sip.reconfigure(listen, routes=["b.test=udp:127.0.0.1:5999"]) == ([], [])
            changed, restart = sip.reconfigure(
                listen, routes=["b.test=udp:127.0.0.1:5998"], migration="proxy",
                peers=["other.test=127.0.0.1"], federate=False, flow_timeout_ms=6000)
            assert sorted(changed) == ["flow timeout", "migration", "peers", "routes"]
            assert restart == ["federate"]
            # Refused whole: a peer of the stack's own domain changes nothing.
            with pytest.raises(impp.InvalidArgument, match="example.test"):
                sip.reconfigure(listen, peers=["example.test=127.0.0.1"])
            with pytest.raises(impp.InvalidArgument):
                sip.reconfigure(listen, migration="sideways")
            # The peer set above still vouches for 127.0.0.1.
            line = message_from_other_test(sip, "reconf-1")
            assert line.startswith("SIP/2.0 202"), line
        finally:
            sip.close()
        with pytest.raises(impp.Shutdown):
            sip.reconfigure(listen)
