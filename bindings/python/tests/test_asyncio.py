"""asyncio integration through the engine's event descriptor."""

import asyncio
import select

import pytest

import impp

from conftest import ALICE, BOB


def test_fileno_is_readable_exactly_while_events_wait(engine):
    fd = engine.fileno()
    assert fd >= 0
    assert select.select([fd], [], [], 0)[0] == []
    engine.set_rule(ALICE, BOB, "allow")
    engine.subscribe(BOB, ALICE)
    assert select.select([fd], [], [], 5)[0] == [fd]
    list(engine.events(timeout=0))
    assert select.select([fd], [], [], 0)[0] == []


def test_wait_event(engine):
    async def main():
        assert await engine.wait_event(timeout=0.05) is None
        engine.set_rule(ALICE, BOB, "allow")

        async def later():
            await asyncio.sleep(0.01)
            engine.subscribe(BOB, ALICE)

        task = asyncio.ensure_future(later())
        event = await engine.wait_event(timeout=10)
        await task
        return event

    event = asyncio.run(main())
    assert event.watcher == BOB


def test_async_for(engine):
    async def main():
        engine.set_rule(ALICE, BOB, "allow")
        engine.subscribe(BOB, ALICE)
        doc = impp.Presence("pres:alice@example.test")
        doc.add_tuple("t", "open")
        engine.publish(ALICE, doc)
        engine.sync()
        return [ev async for ev in engine.aevents(timeout=0.1)]

    events = asyncio.run(main())
    assert events and any(e.xml and "open" in e.xml for e in events)


def test_wait_event_can_be_cancelled(engine):
    async def main():
        waiter = asyncio.ensure_future(engine.wait_event())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The reader is gone and a new wait works.
        engine.set_rule(ALICE, BOB, "allow")
        engine.subscribe(BOB, ALICE)
        return await engine.wait_event(timeout=10)

    assert asyncio.run(main()) is not None


CAROL = "sip:carol@example.test"


@pytest.fixture
def no_polling(monkeypatch):
    """Fails a test whose code under test waits with a short asyncio.sleep (polling), and
    counts how often a waiting coroutine looks for an event: only wake-ups make it look."""
    real_sleep = asyncio.sleep

    async def sleep(delay, *args, **kwargs):
        if 0 < delay < 0.5:
            raise AssertionError(f"asyncio.sleep({delay}) while waiting: that is polling")
        return await real_sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    looks = []
    real_poke = impp.engine._AsyncWaiter.poke

    def poke(self):
        looks.append(self)
        real_poke(self)

    monkeypatch.setattr(impp.engine._AsyncWaiter, "poke", poke)
    return looks


def callback_engine(mine):
    """An engine whose subscription of BOB has its own callback: the dispatcher thread owns
    the C callback, and the other events wait for polling in the Python queue."""
    engine = impp.Engine(domains=["example.test"], default_policy="allow", workers=1)
    engine.subscribe(BOB, ALICE, on_event=mine.append)
    engine.sync()
    return engine


def test_wait_event_with_subscription_callbacks_is_woken_not_polling(no_polling):
    mine = []
    with callback_engine(mine) as engine:

        async def main():
            loop = asyncio.get_running_loop()
            # Nothing comes: the waiter looks once, then sleeps until its timeout.
            assert await engine.wait_event(timeout=0.3) is None
            assert len(no_polling) == 1
            # An event for polling wakes it from the dispatcher thread.
            loop.call_later(0.05, engine.subscribe, CAROL, ALICE)
            return await engine.wait_event(timeout=10)

        event = asyncio.run(main())
    assert event is not None and event.watcher == CAROL
    assert mine and all(e.watcher == BOB for e in mine)
    assert len(no_polling) <= 4  # the first look, the wake-up, maybe one for a second event


def test_aevents_with_subscription_callbacks(no_polling):
    mine = []
    with callback_engine(mine) as engine:

        async def main():
            engine.subscribe(CAROL, ALICE)
            engine.publish(ALICE, impp.Presence(ALICE, tuples=[impp.Tuple(id="t", basic="open")]))
            engine.sync()
            return [e async for e in engine.aevents(timeout=0.3)]

        events = asyncio.run(main())
    assert events and all(e.watcher == CAROL for e in events)
    assert any(e.kind is impp.EventKind.NOTIFY and e.xml and "open" in e.xml for e in events)


def test_a_waiter_follows_a_switch_to_callbacks(no_polling):
    mine = []
    with impp.Engine(domains=["example.test"], default_policy="allow", workers=1) as engine:

        async def main():
            loop = asyncio.get_running_loop()

            def switch_then_subscribe():
                engine.subscribe(BOB, ALICE, on_event=mine.append)  # the descriptor goes quiet
                engine.subscribe(CAROL, ALICE)

            loop.call_later(0.05, switch_then_subscribe)
            return await engine.wait_event(timeout=10)

        event = asyncio.run(main())
    assert event is not None and event.watcher == CAROL


def test_a_waiter_follows_a_switch_back_to_polling(no_polling):
    with impp.Engine(domains=["example.test"], default_policy="allow", workers=1) as engine:
        engine.on_event(lambda event: None)
        engine.on_event(None)

        async def main():
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, engine.subscribe, CAROL, ALICE)
            return await engine.wait_event(timeout=10)

        event = asyncio.run(main())
    assert event is not None and event.watcher == CAROL


def test_closing_the_engine_ends_the_wait(no_polling):
    mine = []
    engine = callback_engine(mine)

    async def main():
        asyncio.get_running_loop().call_later(0.05, engine.close)
        with pytest.raises(impp.Shutdown):
            await engine.wait_event()
        return [e async for e in engine.aevents()]  # ends at once on a closed engine

    assert asyncio.run(main()) == []


def test_one_waiter_at_a_time(engine):
    async def main():
        first = asyncio.ensure_future(engine.wait_event(timeout=10))
        await asyncio.sleep(0)  # let it start waiting
        with pytest.raises(impp.InvalidState, match="already waiting"):
            await engine.wait_event(timeout=1)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())


def test_wait_event_while_the_engine_callback_takes_everything(engine):
    engine.on_event(lambda event: None)

    async def main():
        with pytest.raises(impp.InvalidState, match="callback"):
            await engine.wait_event(timeout=1)

    asyncio.run(main())
