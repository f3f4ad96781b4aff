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
