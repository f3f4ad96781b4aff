"""The engine through Python, on a manual clock: nothing here sleeps to wait for an expiry."""

import pytest

import impp

from conftest import ALICE, BOB, drain

CAROL = "sip:carol@example.test"


def kinds(events):
    return [(e.kind, e.state) for e in events]


def online(entity="pres:alice@example.test", note=None):
    doc = impp.Presence(entity)
    doc.add_tuple("phone", "open", contact="sip:alice@198.51.100.7")
    if note:
        doc.add_note(note)
    return doc


def test_subscribe_authorize_publish_expire(engine):
    sub = engine.subscribe(BOB, ALICE)
    assert isinstance(sub, impp.Subscription) and int(sub) > 0 and sub.state == "pending"
    events = drain(engine)
    assert ("watcher-pending", None) in kinds(events)
    assert all(e.subscription_id == sub and e.watcher == BOB for e in events)
    assert all(e.xml is None for e in events)  # pending: no document
    assert engine.subscription_state(sub).state == "pending"
    assert engine.stats()["subscriptions_pending"] == 1

    engine.authorize(sub, "allow")
    events = drain(engine)
    assert ("subscription-state", "active") in kinds(events)
    assert engine.subscription_state(sub) == impp.SubscriptionInfo(
        impp.SubscriptionState.ACTIVE,
        engine.subscription_state(sub).expires_in,
        impp.AuthAction.ALLOW,
    )

    with online(note="hello") as doc:
        etag = engine.publish(ALICE, doc, expires=60)
    assert etag
    [note] = [e for e in drain(engine) if e.kind == "notify"]
    assert (note.state, note.package, note.presentity) == ("active", "presence", ALICE)
    with note.presence() as seen:
        assert [t.basic for t in seen.tuples] == ["open"]
        assert seen.notes == [impp.Note("hello", None)]

    engine.advance_clock(61_000)
    events = drain(engine)
    expired = [e for e in events if e.kind == "publication-expired"]
    assert [(e.etag, e.presentity, e.subscription_id) for e in expired] == [(etag, ALICE, None)]
    with pytest.raises(impp.UnknownEntityTag):
        engine.refresh_publication(etag, 60)
    assert engine.stats()["publications"] == 0


def test_subscription_times_out(engine):
    engine.set_rule(ALICE, "example.test", "allow")
    sub = engine.subscribe(BOB, ALICE, expires=120)
    assert engine.subscription_state(sub).state == "active"
    drain(engine)
    engine.advance_clock(121_000)
    last = drain(engine)[-1]
    assert (last.state, last.reason) == ("terminated", "timeout")
    with pytest.raises(impp.NotFound):
        engine.subscription_state(sub)


def test_publication_refresh_modify_remove(engine):
    with online() as doc:
        etag = engine.publish(ALICE, doc.to_xml(), expires=60)
    engine.advance_clock(50_000)
    etag2 = engine.refresh_publication(etag, 60)
    assert etag2 != etag
    with pytest.raises(impp.UnknownEntityTag):
        engine.refresh_publication(etag, 60)
    engine.advance_clock(50_000)  # alive only because of the refresh
    assert engine.stats()["publications"] == 1
    with online(note="busy now") as doc:
        etag3 = engine.modify_publication(etag2, doc)
    engine.remove_publication(etag3)
    assert engine.stats()["publications"] == 0
    with pytest.raises(impp.UnknownEntityTag) as info:
        engine.remove_publication(etag3)
    assert info.value.status == -9 and info.value.message


def test_zero_never_ends_anything_and_none_is_the_default(engine):
    engine.set_rule(ALICE, "example.test", "allow")
    with online() as doc:
        etag = engine.publish(ALICE, doc, expires=60)
    sub = engine.subscribe(BOB, ALICE, expires=120)
    drain(engine)
    # 0 used to remove a publication or end a subscription: now refused, pointing to the
    # function that does it.
    with pytest.raises(ValueError, match="remove_publication"):
        engine.refresh_publication(etag, 0)
    with pytest.raises(ValueError, match="unsubscribe"):
        engine.refresh_subscription(sub, 0)
    with pytest.raises(ValueError):
        engine.refresh_subscription(sub, -1)
    assert engine.subscription_state(sub).expires_in == 120
    assert engine.stats()["publications"] == 1
    # None: the configured default (3600 s).
    engine.refresh_subscription(sub, None)
    assert engine.subscription_state(sub).expires_in == 3600
    etag = engine.refresh_publication(etag, None)
    engine.advance_clock(3599_000)
    assert engine.stats()["publications"] == 1
    engine.refresh_subscription(sub, 60)
    assert engine.subscription_state(sub).expires_in == 60
    drain(engine)


def test_subscribe_options(engine):
    engine.set_rule(ALICE, "example.test", "allow")
    with online() as doc:
        engine.publish(ALICE, doc)
    drain(engine)
    # expires=0 fetches the state once: one document, then the subscription ends.
    fetch = engine.subscribe(BOB, ALICE, expires=0)
    events = [e for e in drain(engine) if e.kind == "notify"]
    assert [e.state for e in events] == ["active", "terminated"]
    assert "open" in (events[0].xml or "")
    with pytest.raises(impp.NotFound):
        engine.subscription_state(fetch)
    # None is the configured default; a filter and a minimum interval reach the engine.
    sub = engine.subscribe(BOB, ALICE, expires=None, filter=None, min_interval=None)
    assert engine.subscription_state(sub).expires_in == 3600
    with pytest.raises(impp.Malformed):
        engine.subscribe(CAROL, ALICE, filter="<filter-set")
    with pytest.raises(ValueError):
        engine.subscribe(CAROL, ALICE, min_interval=-1)
    slow = engine.subscribe(CAROL, ALICE, min_interval=5.0)
    drain(engine)
    throttled = engine.stats()["notifications_throttled"]
    with online(note="busy") as doc:
        engine.publish(ALICE, doc)
    drain(engine)
    assert engine.stats()["notifications_throttled"] > throttled
    engine.unsubscribe(slow)
    engine.unsubscribe(sub)


def test_watcher_sees_the_documents(engine):
    engine.set_rule(ALICE, BOB, "allow")
    sub = engine.subscribe(BOB, ALICE)
    with online(note="first") as doc:
        etag = engine.publish(ALICE, doc)
    with online(note="second") as doc:
        engine.modify_publication(etag, doc)
    bodies = [e.xml for e in drain(engine) if e.kind == "notify" and e.xml]
    assert "second" in bodies[-1]
    engine.unsubscribe(sub)
    last = drain(engine)[-1]
    assert (last.kind, last.state) == ("notify", "terminated")


def test_rules(engine):
    engine.set_rule(ALICE, CAROL, "block")
    engine.set_rule(ALICE, "example.org", "polite-block")
    engine.set_rule(ALICE, BOB, "allow")
    rules = engine.rules(ALICE)
    assert set(rules) == {
        impp.Rule(CAROL, None, "block"),
        impp.Rule(None, "example.org", "polite-block"),
        impp.Rule(BOB, None, "allow"),
    }
    assert engine.remove_rule(ALICE, watcher=CAROL) is True
    assert engine.remove_rule(ALICE, watcher=CAROL) is False
    assert len(engine.rules(ALICE)) == 2
    sub = engine.subscribe(BOB, ALICE)
    assert engine.subscription_state(sub).state == "active"
    engine.authorize(sub, "block")
    last = drain(engine)[-1]
    assert (last.state, last.reason) == ("terminated", "rejected")


def test_redirects_send_watchers_to_another_presence_agent(engine):
    edge = "sip:alice@192.0.2.7:5070;transport=tcp"
    engine.set_redirect_rule(ALICE, BOB, edge)
    assert engine.rules(ALICE) == [impp.Rule(BOB, None, "redirect", edge)]
    with pytest.raises(impp.Moved) as moved:
        engine.subscribe(BOB, ALICE)
    assert moved.value.status == impp.Status.MOVED
    assert moved.value.message == edge
    # The application's decision on one pending subscription: it ends deactivated, and the
    # watcher's next subscription is sent on once.
    sub = engine.subscribe(CAROL, ALICE)
    drain(engine)
    engine.redirect(sub, edge)
    last = drain(engine)[-1]
    assert (last.state, last.reason) == ("terminated", "deactivated")
    with pytest.raises(impp.Moved):
        engine.subscribe(CAROL, ALICE)
    again = engine.subscribe(CAROL, ALICE)
    assert engine.subscription_state(again).state == "pending"
    # authorize has no target to give, and a bad target changes nothing.
    with pytest.raises(impp.InvalidArgument):
        engine.authorize(again, "redirect")
    with pytest.raises(impp.InvalidUri):
        engine.set_redirect_rule(ALICE, CAROL, "not a uri")
    assert len(engine.rules(ALICE)) == 1


def test_subscriptions_are_listed_and_pending_ones_decided(engine):
    bob = engine.subscribe(BOB, ALICE)
    carol = engine.subscribe(CAROL, ALICE, package="dialog")
    other = engine.subscribe(ALICE, BOB)
    listed = engine.subscriptions(ALICE)
    assert [s.id for s in listed] == sorted([int(bob), int(carol)])
    first = listed[0]
    assert isinstance(first, impp.SubscriptionEntry)
    assert (first.watcher, first.presentity, first.package) == (BOB, ALICE, "presence")
    assert (first.state, first.authorization) == ("pending", "confirm")
    assert first.expires_in > 0
    assert listed[1].package == "dialog"
    # The pending watcher decided by the id the listing gave; a new snapshot shows it.
    engine.authorize(first.id, "allow")
    again = {s.id: s for s in engine.subscriptions(ALICE)}
    assert again[int(bob)].state == impp.SubscriptionState.ACTIVE
    assert again[int(bob)].authorization == impp.AuthAction.ALLOW
    assert {s.id for s in engine.subscriptions()} == {int(bob), int(carol), int(other)}
    assert engine.subscriptions("sip:nobody@example.test") == []
    with pytest.raises(impp.InvalidUri):
        engine.subscriptions("not a uri")
    with pytest.raises(impp.InvalidArgument):
        engine.subscriptions("sip:bad\0@example.test")


def test_terminate_with_a_reason(engine):
    engine.set_rule(ALICE, BOB, "allow")
    sub = engine.subscribe(BOB, ALICE)
    drain(engine)
    engine.terminate_subscription(sub, "probation")
    last = drain(engine)[-1]
    assert (last.state, last.reason) == ("terminated", "probation")
    with pytest.raises(impp.InvalidArgument):
        engine.terminate_subscription(sub, "bored")


def test_errors_leave_the_engine_unchanged(engine):
    before = engine.stats()
    with pytest.raises(impp.IntervalTooBrief):
        engine.publish(ALICE, online().to_xml(), expires=5)
    with pytest.raises(impp.IntervalTooBrief):
        engine.subscribe(BOB, ALICE, expires=5)
    with pytest.raises(impp.UnknownPackage):
        engine.subscribe(BOB, ALICE, package="weather")
    with pytest.raises(impp.InvalidUri):
        engine.subscribe("not a uri", ALICE)
    with pytest.raises(impp.Malformed):
        engine.publish(ALICE, "<presence")
    with pytest.raises(impp.UnsafeXml):
        engine.publish(ALICE, '<!DOCTYPE x><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.test"/>')
    with pytest.raises(impp.NotFound):
        engine.unsubscribe(12345)
    with pytest.raises(impp.InvalidArgument):
        engine.set_rule(ALICE, "", "allow")  # neither a watcher nor a domain
    with pytest.raises(impp.InvalidUri):
        engine.set_rule(ALICE, "sip:", "allow")
    with pytest.raises(TypeError):
        engine.subscribe(None, ALICE)
    with pytest.raises(impp.InvalidArgument):
        engine.authorize(1, "maybe")
    assert engine.stats() == before
    assert drain(engine) == []


def test_stats_names(engine):
    stats = engine.stats()
    assert list(stats) == list(impp.STATS)
    assert all(isinstance(v, int) for v in stats.values())


def test_config_object_and_options():
    config = impp.Config(workers=1, default_policy="allow")
    config.set_subscription_expiry(10, 100, 1000).use_manual_clock()
    with impp.Engine(config, domains=["example.test"]) as engine:
        sub = engine.subscribe(BOB, ALICE, expires=20)
        assert engine.subscription_state(sub).state == "active"
    with pytest.raises(impp.InvalidArgument, match="given to an engine"):
        impp.Engine(config)
    with pytest.raises(TypeError, match="unknown engine option"):
        impp.Config(colour="blue")
    with pytest.raises(impp.InvalidArgument):
        impp.Config(workers=0)
    with pytest.raises(impp.InvalidArgument):
        impp.Config(publication_expiry=(100, 10, 1000))
    assert impp.Config.default_workers() >= 1


def test_same_domain_policy():
    # Closed: watchers of the presentity's own domain are let in, others wait for a
    # decision; rules win over both.
    with impp.Engine(manual_clock=True, workers=1, domains=["example.test"],
                     default_policy="confirm",
                     same_domain_policy=impp.AuthAction.ALLOW) as engine:
        bob = engine.subscribe(BOB, ALICE)
        carol = engine.subscribe("sip:carol@other.test", ALICE)
        assert engine.subscription_state(bob).authorization == impp.AuthAction.ALLOW
        assert engine.subscription_state(bob).state == "active"
        assert engine.subscription_state(carol).state == "pending"
        engine.set_rule(ALICE, "example.test", "polite-block")
        engine.set_rule(ALICE, "other.test", "allow")
        assert engine.subscription_state(bob).authorization == "polite-block"
        assert engine.subscription_state(carol).state == "active"
        assert engine.remove_rule(ALICE, domain="example.test") is True
        assert engine.subscription_state(bob).authorization == "allow"
    # None unsets it: the default policy for everyone.
    config = impp.Config(workers=1, same_domain_policy="allow")
    config.set_same_domain_policy(None)
    with impp.Engine(config) as engine:
        assert engine.subscription_state(engine.subscribe(BOB, ALICE)).state == "pending"
    with pytest.raises(impp.InvalidArgument):
        impp.Config(same_domain_policy="sometimes")


def test_advance_clock_needs_a_manual_clock():
    with impp.Engine(workers=1) as engine:
        with pytest.raises(impp.InvalidArgument):
            engine.advance_clock(1000)


def test_closed_engine():
    engine = impp.Engine(workers=1)
    with engine:
        pass
    assert engine.closed
    engine.close()  # idempotent
    with pytest.raises(impp.Shutdown):
        engine.subscribe(BOB, ALICE)
    with pytest.raises(impp.Shutdown):
        engine.next_event(0)
    assert list(engine.events(timeout=0)) == []


def test_next_event_timeout(engine):
    assert engine.next_event(timeout=0) is None
    assert engine.next_event(timeout=0.05) is None


def test_events_iterates_until_quiet(engine):
    engine.set_rule(ALICE, BOB, "allow")
    engine.subscribe(BOB, ALICE)
    engine.sync()
    seen = list(engine.events(timeout=0.1))
    assert seen and seen[-1].kind == "notify"


def test_del_frees_engines():
    import gc

    for _ in range(5):
        engine = impp.Engine(workers=1)
        engine.subscribe(BOB, ALICE)
        del engine
    gc.collect()
