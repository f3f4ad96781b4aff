"""The package's public contract, name by name: what scripts, examples and the docs rely on."""

import asyncio
import threading

import pytest

import impp

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


def drain(engine):
    engine.sync()
    return list(engine.events(timeout=0))


def test_version_and_abi():
    assert isinstance(impp.__version__, str) and impp.__version__
    assert impp.abi_version() == impp.ABI_VERSION


def test_presence_from_keywords_and_back():
    doc = impp.Presence(
        entity="pres:alice@example.test",
        tuples=[
            impp.Tuple(id="phone", basic="open", contact="sip:a@198.51.100.7", priority=0.5,
                       notes=["call me", impp.Note("appelle-moi", "fr")]),
            impp.Tuple(id="desk", basic="closed"),
        ],
        notes=["back at 3"],
    )
    for parsed in (impp.Presence.from_xml(doc.to_xml()), impp.Presence.from_xml(bytes(doc))):
        assert parsed.entity == "pres:alice@example.test"
        phone, desk = parsed.tuples
        assert (phone.id, phone.basic, phone.contact, phone.priority) == (
            "phone", "open", "sip:a@198.51.100.7", 0.5)
        assert phone.notes == [impp.Note("call me"), impp.Note("appelle-moi", "fr")]
        assert (desk.id, desk.basic, desk.contact, desk.priority, desk.notes) == (
            "desk", "closed", None, None, [])
        assert parsed.notes == [impp.Note("back at 3")]
        assert parsed.activities == []
    assert isinstance(doc.to_xml(), str)


def test_presence_refuses_bad_tuples():
    with pytest.raises(ValueError):
        impp.Presence(entity=ALICE, tuples=[impp.Tuple(id="x", basic="maybe")])
    with pytest.raises(TypeError):
        impp.Presence(entity=ALICE, tuples=["x"])


def test_parse_error_family():
    assert issubclass(impp.ParseError, impp.Error)
    for cls in (impp.Malformed, impp.UnsafeXml, impp.TooLarge):
        assert issubclass(cls, impp.ParseError) and cls.status is not None
    with pytest.raises(impp.ParseError):
        impp.Presence.from_xml("<presence")
    with pytest.raises(impp.ParseError):
        impp.Presence.from_xml(b"<!DOCTYPE x><x/>")
    with pytest.raises(impp.TooLarge):
        impp.Presence.from_xml(impp.Presence(entity=ALICE).to_xml(), max_bytes=10)


def test_engine_store(tmp_path):
    with impp.Engine(domains=["example.test"], store=None, workers=None) as engine:
        assert not engine.closed
    db = tmp_path / "presence.db"
    with impp.Engine(domains=["example.test"], store=str(db)) as engine:
        engine.set_rule(ALICE, "sip:bob@example.test", "allow")
    assert db.exists()
    # A new engine on the same file finds the rule.
    with impp.Engine(store=db) as engine:
        assert len(engine.rules(ALICE)) == 1
    # A file that is not a store is refused with a clear error.
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(impp.Error):
        impp.Engine(store=str(bad))


@pytest.fixture
def engine():
    with impp.Engine(domains=["example.test"], default_policy="confirm",
                     manual_clock=True) as e:
        yield e


def test_publication_object(engine):
    engine.set_rule(ALICE, BOB, "allow")
    sub = engine.subscribe(BOB, ALICE)
    drain(engine)
    doc = impp.Presence(entity=ALICE, tuples=[impp.Tuple(id="t", basic="open")])
    pub = engine.publish(ALICE, doc)
    assert isinstance(pub, impp.Publication)
    assert str(pub) == pub.etag and pub == pub.etag and pub.etag
    [note] = [e for e in drain(engine) if e.kind == "notify"]
    assert note.document.tuples[0].basic == "open"
    assert note.body is None and "urn:ietf:params:xml:ns:pidf" in (note.xml or "")

    old = pub.etag
    assert pub.refresh(120) == pub.etag != old
    pub.modify(impp.Presence(entity=ALICE, tuples=[impp.Tuple(id="t", basic="closed")]))
    [note] = [e for e in drain(engine) if e.kind == "notify"]
    assert note.document.tuples[0].basic == "closed"
    pub.etag = engine.refresh_publication(pub, 60)  # the object works where a tag does
    assert pub.etag
    pub.remove()
    assert engine.stats()["publications"] == 0
    assert sub.state == "active"


def test_publication_default_expiry_is_an_hour(engine):
    engine.publish(ALICE, impp.Presence(entity=ALICE))
    engine.advance_clock(3599 * 1000)
    assert engine.stats()["publications"] == 1
    engine.advance_clock(2 * 1000)
    expired = [e for e in drain(engine) if e.kind == "publication-expired"]
    assert [e.presentity for e in expired] == [ALICE]


def test_subscription_object_and_authorize(engine):
    sub = engine.subscribe(BOB, ALICE, package="presence", expires=3600, filter=None)
    assert isinstance(sub, impp.Subscription)
    assert int(sub) == sub.id == sub and sub.id > 0
    assert sub.state == "pending"
    events = drain(engine)
    assert {e.kind for e in events} >= {"watcher-pending", "subscription-state", "notify"}
    assert all(e.subscription_id == sub.id for e in events)
    pending = [e for e in events if e.kind == "watcher-pending"]
    assert [(e.watcher, e.presentity, e.package) for e in pending] == [
        (BOB, ALICE, "presence")]
    engine.authorize(sub, "allow")
    assert sub.state == "active"
    engine.authorize(sub.id, "confirm")
    assert sub.state == "pending"
    engine.authorize(pending[0].subscription_id, "allow")
    sub.refresh(600)
    assert 0 < sub.info().expires_in <= 600
    sub.unsubscribe()
    drain(engine)
    assert sub.state == "terminated"


def test_set_rule_uri_or_domain(engine):
    engine.set_rule(ALICE, BOB, "allow")
    engine.set_rule(ALICE, "spam.test", "polite-block")
    engine.set_rule(ALICE, "sip:carol@example.test", "block")
    engine.set_rule(ALICE, "example.test", "confirm")
    assert sorted(engine.rules(ALICE), key=str) == sorted([
        impp.Rule(BOB, None, "allow"),
        impp.Rule(None, "spam.test", impp.AuthAction.POLITE_BLOCK),
        impp.Rule("sip:carol@example.test", None, "block"),
        impp.Rule(None, "example.test", "confirm"),
    ], key=str)
    engine.set_rule(ALICE, "other.test", impp.AuthAction.ALLOW)
    assert impp.Rule(None, "other.test", "allow") in engine.rules(ALICE)
    assert all(isinstance(r.action, impp.AuthAction) for r in engine.rules(ALICE))
    assert engine.subscribe(BOB, ALICE).state == "active"
    with pytest.raises(impp.InvalidArgument, match="polite-block"):
        engine.set_rule(ALICE, BOB, "maybe")


def test_event_kinds_and_states(engine):
    sub = engine.subscribe(BOB, ALICE)
    engine.authorize(sub, "block")
    events = drain(engine)
    kinds = {e.kind for e in events}
    assert kinds <= {"notify", "watcher-pending", "subscription-state", "publication-expired"}
    assert {e.state for e in events} <= {None, "pending", "active", "terminated"}
    assert any(e.state == "terminated" and e.reason for e in events)
    assert all(e.document is None for e in events)


def test_per_subscription_callback():
    got, other, done = [], [], threading.Event()

    def mine(event):
        got.append(event)
        if event.kind == "notify" and event.document is not None and event.document.tuples:
            done.set()

    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        sub = engine.subscribe(BOB, ALICE, on_event=mine)
        sub2 = engine.subscribe("sip:carol@example.test", ALICE)
        engine.publish(ALICE, impp.Presence(entity=ALICE, tuples=[impp.Tuple(id="t", basic="open")]))
        assert done.wait(5)
        engine.sync()
        other = list(engine.events(timeout=0.2))  # the rest still reach polling
    assert got and all(e.subscription_id == sub.id for e in got)
    assert other and all(e.subscription_id == sub2.id for e in other)


def test_per_subscription_and_engine_callbacks():
    mine, rest, seen = [], [], threading.Event()
    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        engine.on_event(lambda e: (rest.append(e), seen.set()))
        sub = engine.subscribe(BOB, ALICE, on_event=mine.append)
        sub2 = engine.subscribe("sip:carol@example.test", ALICE)
        engine.sync()
        assert seen.wait(5)
    assert mine and all(e.subscription_id == sub.id for e in mine)
    assert rest and all(e.subscription_id == sub2.id for e in rest)


def test_aevents_contract():
    async def main():
        with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
            sub = engine.subscribe(BOB, ALICE)
            kinds = [e.kind async for e in engine.aevents(timeout=0.3)]
            return sub, kinds

    sub, kinds = asyncio.run(main())
    assert "notify" in kinds and "subscription-state" in kinds
