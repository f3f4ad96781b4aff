"""Callback mode: delivery on the dispatcher thread, exceptions logged, closing rules."""

import gc
import logging
import threading

import pytest

import impp
from impp import _ffi

from conftest import ALICE, BOB, Collector


def test_events_reach_the_callback_in_order(engine):
    got = Collector()
    engine.on_event(got)
    engine.set_rule(ALICE, BOB, "allow")
    sub = engine.subscribe(BOB, ALICE)
    events = got.wait_for(lambda evs: any(e.kind == "notify" for e in evs))
    assert all(isinstance(e, impp.Event) and e.subscription_id == sub for e in events)
    with pytest.raises(impp.InvalidState, match="callback"):
        engine.next_event(0)


def test_events_outlive_the_call(engine):
    kept = Collector()
    engine.on_event(kept)
    engine.set_rule(ALICE, BOB, "allow")
    engine.subscribe(BOB, ALICE)
    doc = impp.Presence("pres:alice@example.test")
    doc.add_tuple("t", "open")
    engine.publish(ALICE, doc)
    events = kept.wait_for(lambda evs: any(e.xml and "open" in e.xml for e in evs))
    gc.collect()
    body = [e for e in events if e.xml and "open" in e.xml][0]
    with body.presence() as seen:  # copied during the call, usable long after
        assert seen.tuples[0].basic == "open"


def test_an_exception_in_the_callback_is_logged_and_delivery_continues(engine, caplog):
    got = Collector()
    calls = []

    def flaky(event):
        calls.append(event)
        if len(calls) == 1:
            raise RuntimeError("boom in the callback")
        got(event)

    with caplog.at_level(logging.ERROR, logger="impp"):
        engine.on_event(flaky)
        engine.set_rule(ALICE, BOB, "allow")
        engine.subscribe(BOB, ALICE)
        engine.subscribe("sip:carol@example.test", ALICE)
        got.wait_for(lambda evs: len(evs) >= 2)
    records = [r for r in caplog.records if r.name == "impp"]
    assert records and "boom in the callback" in records[0].exc_text
    assert engine.stats()["callback_panics"] == 0  # nothing reached the Rust glue


def test_the_callback_may_call_the_engine(engine):
    decided = Collector()

    def authorize(event):
        if event.kind == "watcher-pending":
            engine.authorize(event.subscription_id, "allow")
        decided(event)

    engine.on_event(authorize)
    sub = engine.subscribe(BOB, ALICE)
    decided.wait_for(lambda evs: any(e.state == "active" for e in evs))
    assert engine.subscription_state(sub).state == "active"


def test_closing_from_inside_the_callback_raises_in_callback():
    outcome = Collector()
    engine = impp.Engine(workers=1, default_policy="allow")

    def close_me(event):
        try:
            engine.close()
        except impp.InCallback as e:
            outcome((e.status, e.message))
        else:
            outcome("closed")

    engine.on_event(close_me)
    engine.subscribe(BOB, ALICE)
    [first] = outcome.wait_for(lambda got: len(got) >= 1)[:1]
    assert first[0] == -13 and first[1]
    assert not engine.closed
    engine.set_rule(ALICE, BOB, "allow")  # still working
    engine.close()
    assert engine.closed


def test_replacing_and_releasing_callbacks_frees_the_registry():
    base = _ffi.registered()
    with impp.Engine(workers=1, default_policy="allow") as engine:
        first, second = Collector(), Collector()
        engine.on_event(first)
        engine.on_event(second)  # the first one's entry goes when the library is done with it
        engine.subscribe(BOB, ALICE)
        second.wait_for(lambda evs: len(evs) >= 1)
        engine.on_event(None)
        engine.sync()
        engine.subscribe("sip:carol@example.test", ALICE)
        engine.sync()
        assert engine.next_event(timeout=5) is not None  # polling works again
        assert first.events == []  # replaced before any event came
        engine.on_event(first)
        assert _ffi.registered() == base + 1
    assert _ffi.registered() == base  # the engine's free released the last one


def test_close_from_another_thread_while_the_callback_runs():
    entered = threading.Event()
    release = threading.Event()

    def slow(event):
        entered.set()
        release.wait(10)

    engine = impp.Engine(workers=1, default_policy="allow")
    engine.on_event(slow)
    engine.subscribe(BOB, ALICE)
    assert entered.wait(10)
    closer = threading.Thread(target=engine.close)
    closer.start()  # joins the dispatcher, which waits in the callback
    release.set()
    closer.join(10)
    assert not closer.is_alive() and engine.closed


def test_the_trampoline_is_module_level_and_kept():
    assert isinstance(_ffi.TRAMPOLINE, _ffi.EVENT_CALLBACK)
    assert isinstance(_ffi.FREE_THUNK, _ffi.FREE_CALLBACK)
