"""A presence bot: a help-desk account that publishes its status, lets watchers in as they
ask, answers the engine's events, changes its status and signs off at the end.

Two people subscribe to the bot; a third, from a blocked domain, is refused by a rule. The
engine runs on a manual clock, so "an hour later" is a function call and the program ends by
itself. Run it from the repository root after `cargo build`:
    PYTHONPATH=bindings/python python3 examples/python/presence_bot.py
"""

import impp

BOT = "sip:helpdesk@example.test"
PEOPLE = ["sip:bob@example.test", "sip:carol@example.test", "sip:mallory@spam.test"]


def status(basic: str, note: str) -> impp.Presence:
    return impp.Presence(
        entity=BOT,
        tuples=[impp.Tuple(id="bot", basic=basic, contact=BOT, notes=[note])],
    )


def handle(engine: impp.Engine, event: impp.Event) -> None:
    """What the bot does with each engine event (kinds, states and actions are enums; a
    member also equals its token, so `event.kind == "notify"` works too)."""
    Kind = impp.EventKind
    if event.kind is Kind.WATCHER_PENDING and event.subscription_id is not None:
        # Nobody has a rule: the bot decides, and lets everyone else in.
        print(f"  {event.watcher} asks to watch: allowed")
        engine.authorize(event.subscription_id, impp.AuthAction.ALLOW)
    elif event.kind is Kind.SUBSCRIPTION_STATE:
        print(f"  subscription {event.subscription_id} of {event.watcher}: {event.state}"
              + (f" ({event.reason})" if event.reason else ""))
    elif event.kind is Kind.NOTIFY and isinstance(event.document, impp.Presence):
        seen = event.document.tuples
        what = ", ".join(f"{t.basic} {[n.text for n in t.notes]}" for t in seen) or "nothing"
        print(f"  {event.watcher} is told: {what}")
    elif event.kind is Kind.PUBLICATION_EXPIRED:
        print(f"  the bot's publication expired ({event.etag})")


def run(engine: impp.Engine, step: str) -> None:
    """Handles every event the step caused (deciding a watcher causes more)."""
    print(step)
    engine.sync()
    while True:
        events = list(engine.events(timeout=0))  # timeout=0: what is waiting, never block
        if not events:
            return
        for event in events:
            handle(engine, event)
        engine.sync()


with impp.Engine(
    domains=["example.test"], default_policy="confirm", manual_clock=True
) as engine:
    engine.set_rule(BOT, "spam.test", "block")  # a domain: no scheme

    publication = engine.publish(BOT, status("open", "ready to help"), expires=3600)
    print(f"The bot is online (entity tag {publication})")

    subs = [engine.subscribe(person, BOT) for person in PEOPLE]
    run(engine, "People subscribe:")
    for sub in subs:
        print(f"  {sub.watcher}: {sub.state}")

    publication.modify(status("closed", "busy with a ticket"))
    run(engine, "The bot gets busy:")

    engine.advance_clock(3000 * 1000)
    publication.refresh(3600)  # before the hour runs out: a new entity tag
    run(engine, "50 minutes later the bot refreshes its publication:")

    subs[0].unsubscribe()
    run(engine, "Bob leaves:")

    publication.remove()
    run(engine, "The bot signs off:")
    stats = engine.stats()
    print(f"active subscriptions: {stats['subscriptions_active']}, "
          f"publications: {stats['publications']}")
