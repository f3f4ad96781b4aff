"""Watching presence from asyncio: a watcher coroutine follows two buddies with
``async for event in engine.aevents(...)`` while another coroutine plays the buddies,
publishing status changes. The loop is never blocked: the engine's events wake it through
a file descriptor.

It stops by itself once the buddies have been quiet for half a second. Run it from the
repository root after `cargo build`:
    PYTHONPATH=bindings/python python3 examples/python/asyncio_watcher.py
"""

import asyncio
from typing import Dict, Optional

import impp

ME = "sip:bob@example.test"
BUDDIES = ["sip:alice@example.test", "sip:carol@example.test"]


def describe(doc: impp.Presence) -> str:
    if not doc.tuples:
        return "offline"
    t = doc.tuples[0]
    notes = ", ".join(n.text for n in doc.notes)
    return f"{t.basic}" + (f" ({notes})" if notes else "")


async def watch(engine: impp.Engine) -> None:
    """Prints each change of each buddy's status."""
    last: Dict[Optional[str], str] = {}
    subs = [engine.subscribe(ME, buddy) for buddy in BUDDIES]
    print(f"watching {', '.join(s.presentity for s in subs)}")
    async for event in engine.aevents(timeout=0.5):  # ends after 0.5 s without an event
        doc = event.document  # parsed for the package: a Presence for "presence"
        if event.kind is not impp.EventKind.NOTIFY or not isinstance(doc, impp.Presence):
            continue
        now = describe(doc)
        if last.get(event.presentity) != now:
            last[event.presentity] = now
            print(f"{event.presentity}: {now}")
    print("quiet for half a second: done")


async def buddies(engine: impp.Engine) -> None:
    """Alice and Carol come online, change their status, and Carol leaves."""
    steps = [
        (BUDDIES[0], "open", "at my desk"),
        (BUDDIES[1], "open", "working from home"),
        (BUDDIES[0], "closed", "lunch"),
    ]
    pubs: Dict[str, impp.Publication] = {}
    for who, basic, note in steps:
        await asyncio.sleep(0.05)
        doc = impp.Presence(entity=who, tuples=[impp.Tuple(id="pc", basic=basic)], notes=[note])
        if who in pubs:
            pubs[who].modify(doc)
        else:
            pubs[who] = engine.publish(who, doc, expires=600)
    await asyncio.sleep(0.05)
    pubs[BUDDIES[1]].remove()


async def main() -> None:
    with impp.Engine(domains=["example.test"], default_policy="allow") as engine:
        await asyncio.gather(watch(engine), buddies(engine))


asyncio.run(main())
