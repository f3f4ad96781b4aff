"""Endpoints and instant messages: login/logout, send_message, message and delivery events,
failure reasons, bodies kept exactly, callback and asyncio delivery, and a restart on an
SQLite store."""

import asyncio

import pytest

import impp

from conftest import ALICE, BOB, Collector, drain

CAROL = "sip:carol@example.test"


@pytest.fixture
def im():
    """An engine on a manual clock where every watcher is allowed, messages up to 16 bytes."""
    with impp.Engine(
        manual_clock=True,
        workers=2,
        domains=["example.test"],
        default_policy="allow",
        max_message_size=16,
        message_expiry=3600,
    ) as e:
        yield e


def of_kind(events, kind):
    return [e for e in events if e.kind == kind]


def test_online_message_reaches_every_endpoint_and_is_delivered(im):
    assert im.login(BOB, "phone") == 3600
    assert im.login(BOB, "laptop", expires=600, contact="sip:bob@192.0.2.1") == 600
    assert im.login(BOB, "laptop", expires=None) == 3600  # the configured default
    assert im.stats()["endpoints"] == 2
    mid = im.send_message(ALICE, BOB, b"hi\x00\xff", content_type="application/octet-stream",
                          in_reply_to="call-42")
    assert isinstance(mid, str) and mid.isdigit() and int(mid) > 0
    events = drain(im)
    messages = of_kind(events, "message")
    assert sorted(m.endpoint for m in messages) == ["laptop", "phone"]
    for m in messages:
        assert m.message_id == mid
        assert (m.sender, m.recipient) == (ALICE, BOB)
        assert m.content_type == "application/octet-stream"
        assert m.body == b"hi\x00\xff" and isinstance(m.body, bytes)
        assert m.in_reply_to == "call-42"
        assert isinstance(m.sent_at, int) and m.sent_at > 0
        assert m.subscription_id is None and m.outcome is None and m.reason is None
    [delivery] = of_kind(events, "delivery")
    assert (delivery.message_id, delivery.outcome, delivery.reason) == (mid, "delivered", None)
    assert (delivery.sender, delivery.recipient) == (ALICE, BOB)
    assert delivery.body is None
    assert im.stats()["messages_delivered"] == 1


def test_a_named_endpoint_alone_gets_it(im):
    im.login(BOB, "phone")
    im.login(BOB, "laptop")
    im.send_message(ALICE, BOB, "hi", endpoint="laptop")
    [m] = of_kind(drain(im), "message")
    assert m.endpoint == "laptop" and m.in_reply_to is None


def test_str_body_is_utf8_and_bytes_are_kept_exactly(im):
    im.login(BOB, "phone")
    im.send_message(ALICE, BOB, "héllo ✓")
    raw = bytes(range(16))
    im.send_message(ALICE, BOB, raw, content_type="application/octet-stream")
    im.send_message(ALICE, BOB, b"")
    bodies = [m.body for m in of_kind(drain(im), "message")]
    assert bodies == ["héllo ✓".encode("utf-8"), raw, b""]


def test_offline_messages_are_stored_then_delivered_in_order(im):
    ids = [im.send_message(ALICE, BOB, f"m{i}") for i in range(1, 4)]
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    events = drain(im)
    assert of_kind(events, "message") == []
    assert [(d.message_id, d.outcome) for d in of_kind(events, "delivery")] == [
        (i, "stored") for i in ids
    ]
    assert im.stats()["messages_waiting"] == 3
    im.login(BOB, "phone")
    events = drain(im)
    assert [(m.message_id, m.body, m.endpoint) for m in of_kind(events, "message")] == [
        (i, f"m{n}".encode(), "phone") for n, i in enumerate(ids, 1)
    ]
    assert [(d.message_id, d.outcome) for d in of_kind(events, "delivery")] == [
        (i, "delivered") for i in ids
    ]
    assert im.stats()["messages_waiting"] == 0
    # Exactly once.
    im.login(BOB, "laptop")
    assert of_kind(drain(im), "message") == []


def test_failure_reasons(im):
    im.set_rule(CAROL, ALICE, "block")
    too_large = im.send_message(ALICE, BOB, "x" * 17)
    foreign = im.send_message(ALICE, "sip:bob@elsewhere.test", "hi")
    blocked = im.send_message(ALICE, CAROL, "hi")
    typing = im.send_message(ALICE, BOB, "<isComposing/>",
                             content_type="application/im-iscomposing+xml")
    got = {d.message_id: (d.outcome, d.reason) for d in of_kind(drain(im), "delivery")}
    assert got == {
        too_large: ("failed", "too-large"),
        foreign: ("failed", "unknown-user"),
        blocked: ("failed", "rejected"),
        typing: ("failed", "offline"),
    }
    assert im.stats()["messages_failed"] == 4


def test_stored_messages_expire(im):
    mid = im.send_message(ALICE, BOB, "late")
    assert [d.outcome for d in of_kind(drain(im), "delivery")] == ["stored"]
    im.advance_clock(3600 * 1000)
    [d] = of_kind(drain(im), "delivery")
    assert (d.message_id, d.outcome, d.reason) == (mid, "failed", "expired")


def test_logout_and_endpoint_expiry(im):
    im.login(BOB, "phone", expires=120)
    im.login(BOB, "laptop", expires=300)
    assert im.logout(BOB, "laptop") is True
    assert im.logout(BOB, "laptop") is False
    im.advance_clock(119 * 1000)
    assert drain(im) == []
    im.advance_clock(1000)
    [expired] = drain(im)
    assert expired.kind == "endpoint-expired"
    assert (expired.user, expired.endpoint) == (BOB, "phone")
    assert expired.message_id is None and expired.sender is None
    assert im.stats()["endpoints"] == 0
    # 0 is not an expiry (it used to log out): refused, naming logout(); nothing logs in.
    with pytest.raises(ValueError, match="logout"):
        im.login(BOB, "phone", expires=0)
    assert im.stats()["endpoints"] == 0


def test_bad_arguments_raise_and_send_nothing(im):
    before = im.stats()
    with pytest.raises(impp.InvalidArgument):
        im.send_message(ALICE, BOB, "x", content_type="text")
    with pytest.raises(impp.InvalidArgument):
        im.send_message(ALICE, BOB, "x", endpoint="")
    with pytest.raises(impp.InvalidUri):
        im.send_message("alice", BOB, "x")
    with pytest.raises(TypeError):
        im.send_message(ALICE, BOB, 42)
    with pytest.raises(impp.InvalidArgument):
        im.login(BOB, "")
    with pytest.raises(impp.IntervalTooBrief):
        im.login(BOB, "phone", expires=10)
    with pytest.raises(impp.Forbidden):
        im.login("sip:bob@elsewhere.test", "phone")
    with pytest.raises(ValueError):
        im.login(BOB, "phone", expires=-5)
    assert drain(im) == []
    assert im.stats() == before


def test_config_options():
    config = impp.Config(max_message_size=4, message_expiry=60, endpoint_presence=True,
                         endpoint_expiry=(10, 20, 30), manual_clock=True)
    with impp.Engine(config) as e:
        assert e.login(BOB, "phone", expires=1000) == 30
        assert e.login(BOB, "laptop", expires=None) == 20
        e.send_message(ALICE, BOB, "12345")
        [d] = of_kind(drain(e), "delivery")
        assert (d.outcome, d.reason) == ("failed", "too-large")
    with pytest.raises(impp.InvalidArgument):
        impp.Config(message_expiry=0)
    with pytest.raises(impp.InvalidArgument):
        impp.Config(endpoint_expiry=(30, 20, 10))


def test_state_limits():
    """The bounds on stored messages, subscriptions and endpoints: set through Config (and
    as Engine keywords), refused past them with nothing kept, each refusal counted."""
    config = impp.Config(manual_clock=True, default_policy="allow")
    assert config.set_max_offline_messages_per_user(3) is config
    config.set_max_endpoints_per_user(1).set_max_subscriptions_per_presentity(100)
    with impp.Engine(config, max_offline_messages_per_sender=1,
                     max_subscriptions_per_watcher=1) as e:
        first = e.send_message(ALICE, BOB, "one")
        second = e.send_message(ALICE, BOB, "two")
        got = {d.message_id: (d.outcome, d.reason) for d in of_kind(drain(e), "delivery")}
        assert got == {first: ("stored", None), second: ("failed", "mailbox-full")}
        assert impp.FailureReason.MAILBOX_FULL == "mailbox-full"
        e.login(BOB, "phone")
        with pytest.raises(impp.LimitReached, match="endpoints"):
            e.login(BOB, "laptop")
        sub = e.subscribe(BOB, ALICE)
        with pytest.raises(impp.LimitReached) as refused:
            e.subscribe(BOB, CAROL)
        assert refused.value.status == impp.Status.LIMIT_REACHED
        drain(e)
        stats = e.stats()
        assert (stats["messages_refused"], stats["endpoints_refused"],
                stats["subscriptions_refused"]) == (1, 1, 1)
        assert (stats["messages_waiting"], stats["endpoints"]) == (0, 1)
        sub.unsubscribe()
        e.subscribe(BOB, CAROL)
    for bad in (0, -1, 2**32):
        with pytest.raises(impp.InvalidArgument):
            impp.Config(max_endpoints_per_user=bad)
    with pytest.raises(TypeError):
        impp.Config(max_subscriptions_per_watcher="10")


def test_a_message_reaches_the_callback(im):
    got = Collector()
    im.on_event(got)
    im.login(BOB, "phone")
    mid = im.send_message(ALICE, BOB, b"ping")
    events = got.wait_for(lambda evs: any(e.kind == "delivery" for e in evs)
                          and any(e.kind == "message" for e in evs))
    [m] = of_kind(events, "message")
    assert (m.message_id, m.body, m.endpoint) == (mid, b"ping", "phone")


def test_a_message_by_asyncio(im):
    async def main():
        im.login(BOB, "phone")
        mid = im.send_message(ALICE, BOB, "async hello")
        seen = []
        async for event in im.aevents(timeout=0.5):
            seen.append(event)
            if event.kind == "delivery":
                break
        return mid, seen

    mid, seen = asyncio.run(main())
    [m] = of_kind(seen, "message")
    assert (m.message_id, m.body) == (mid, b"async hello")
    assert of_kind(seen, "delivery")[0].outcome == "delivered"


def test_a_restarted_engine_delivers_what_was_stored(tmp_path):
    path = str(tmp_path / "im.db")
    engine = impp.Engine(domains=["example.test"], store=path)
    mid = engine.send_message(ALICE, BOB, "while you were out")
    assert [(d.message_id, d.outcome) for d in of_kind(drain(engine), "delivery")] == [
        (mid, "stored")
    ]
    engine.close()
    del engine

    with impp.Engine(domains=["example.test"], store=path) as again:
        again.login(BOB, "phone")
        events = drain(again)
        assert [(m.message_id, m.body) for m in of_kind(events, "message")] == [
            (mid, b"while you were out")
        ]
        assert [(d.message_id, d.outcome) for d in of_kind(events, "delivery")] == [
            (mid, "delivered")
        ]


def test_the_user_directory_decides_who_exists_and_survives_a_restart(tmp_path):
    path = str(tmp_path / "users.db")
    with impp.Engine(domains=["example.test"], store=path) as engine:
        engine.set_user_password(BOB, "s3cret")
        assert engine.has_user(BOB) and not engine.has_user(ALICE)
        with pytest.raises(impp.InvalidUri):
            engine.has_user("not a uri")
        known = engine.send_message(ALICE, BOB, "hi")
        unknown = engine.send_message(BOB, "sip:nobody@example.test", "hi")
        outcomes = {d.message_id: (d.outcome, d.reason) for d in of_kind(drain(engine), "delivery")}
        assert outcomes == {known: ("stored", None), unknown: ("failed", "unknown-user")}
        with pytest.raises(impp.InvalidArgument):
            engine.set_user_password("sip:example.test", "pw")
    with impp.Engine(domains=["example.test"], store=path) as again:
        assert again.has_user(BOB)
        assert again.remove_user(BOB) is True
        assert again.remove_user(BOB) is False
        assert not again.has_user(BOB)
