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
    engine.set_rule(ALICE, "allow", watcher=BOB)
    engine.subscribe(BOB, ALICE)
    assert select.select([fd], [], [], 5)[0] == [fd]
    list(engine.events(timeout=0))
    assert select.select([fd], [], [], 0)[0] == []


def test_wait_event(engine):
    async def main():
        assert await engine.wait_event(timeout=0.05) is None
        engine.set_rule(ALICE, "allow", watcher=BOB)

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
        engine.set_rule(ALICE, "allow", watcher=BOB)
        engine.subscribe(BOB, ALICE)
        doc = impp.Presence("pres:alice@example.test")
        doc.add_tuple("t", "open")
        engine.publish(ALICE, doc)
        engine.sync()
        return [ev async for ev in engine.aevents(timeout=0.1)]

    events = asyncio.run(main())
    assert events and any(e.body and "open" in e.body for e in events)


def test_wait_event_can_be_cancelled(engine):
    async def main():
        waiter = asyncio.ensure_future(engine.wait_event())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The reader is gone and a new wait works.
        engine.set_rule(ALICE, "allow", watcher=BOB)
        engine.subscribe(BOB, ALICE)
        return await engine.wait_event(timeout=10)

    assert asyncio.run(main()) is not None
