"""The presence engine from Python: Bob asks to watch Alice, Alice lets him, Alice
publishes that her phone is open, and later her publication expires. After each step the
program polls the engine's events and prints them.

The engine runs on a manual clock, so "later" is a function call, not a sleep. Run it from
the repository root after `cargo build`:
    PYTHONPATH=bindings/python python3 examples/engine.py
"""

import impp

ALICE = "sip:alice@example.test"
BOB = "sip:bob@example.test"


def print_events(engine, step):
    """Waits until the engine has handled every earlier call, then prints what it queued."""
    print(step)
    engine.sync()
    for ev in engine.events(timeout=0):  # timeout=0: take what is waiting, never block
        if ev.kind == "authorization_requested":
            print(f"  authorization requested  sub={ev.subscription} by {ev.watcher}")
        elif ev.kind == "subscription_state":
            print(f"  subscription state       sub={ev.subscription} state={ev.state}")
        elif ev.kind == "publication_expired":
            print(f"  publication expired      {ev.presentity} (entity tag {ev.etag})")
        else:
            line = f"  notification             sub={ev.subscription} state={ev.state}"
            # The document is there only when the watcher may see it (not while pending).
            if ev.body is not None:
                with ev.presence() as seen:
                    tuples = [f"{t.id}={t.basic}" for t in seen.tuples]
                line += f" | {ev.watcher} sees {' '.join(tuples) or 'nothing published'}"
            print(line)


# Watchers need Alice's consent ("confirm"); time moves only with advance_clock.
with impp.Engine(
    workers=2, domains=["example.test"], default_policy="confirm", manual_clock=True
) as engine:
    # 1. Bob subscribes to Alice's presence: pending until Alice decides.
    sub = engine.subscribe(BOB, ALICE)
    print_events(engine, "Bob subscribes to Alice:")

    # 2. Alice allows Bob: he becomes active (she has published nothing yet).
    engine.authorize(sub, "allow")
    print_events(engine, "Alice authorizes Bob:")

    # 3. Alice publishes a document for 60 seconds: Bob is notified.
    with impp.Presence(ALICE) as doc:
        doc.add_tuple("phone", "open")
        etag = engine.publish(ALICE, doc, expires=60)
    print(f"(publication entity tag: {etag})")
    print_events(engine, "Alice publishes her phone as open:")

    # 4. A minute passes without a refresh: the publication expires, Bob is told.
    engine.advance_clock(61 * 1000)
    print_events(engine, "61 seconds later:")

    stats = engine.stats()
    print(
        f"active subscriptions: {stats['subscriptions_active']}, "
        f"publications: {stats['publications']}"
    )
# Leaving the `with` block shuts the engine down and joins its threads.
