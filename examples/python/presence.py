"""Build a presence document with the Python package, serialize it to PIDF, parse it back
and read it; then see how bad input is refused.

Run it from the repository root after `cargo build`, with the package on the path:
    PYTHONPATH=bindings/python python3 examples/python/presence.py
(or `pip install ./bindings/python` and plain `python3 examples/python/presence.py`).
"""

import impp

print(f"impp {impp.__version__}, libimpp {impp.library_version()} (ABI {impp.abi_version()})")

# Alice's phone is open and her desk client is closed; she is on the phone.
doc = impp.Presence(
    entity="pres:alice@example.test",
    tuples=[
        impp.Tuple(
            id="phone",
            basic="open",
            contact="sip:alice@198.51.100.7",
            priority=0.9,
            notes=["call me"],
        ),
        impp.Tuple(id="desk", basic="closed"),
    ],
    notes=["back at 3"],
)
doc.add_activity("on-the-phone")
xml = doc.to_xml()  # PIDF text, what a SIP PUBLISH or NOTIFY carries
doc.close()  # or let the garbage collector free it

print(f"\nSerialized ({len(xml)} bytes):\n{xml}\n")

# Parse it back: every field survives the round trip.
with impp.Presence.from_xml(xml) as parsed:
    print(f"Parsed back: {parsed.entity} has {len(parsed.tuples)} tuples")
    for t in parsed.tuples:
        notes = [n.text for n in t.notes]
        print(f"  tuple {t.id:<6} {t.basic:<6} contact={t.contact} priority={t.priority} notes={notes}")
    print("  notes:", ", ".join(n.text for n in parsed.notes))
    print("  activities:", ", ".join(a.name for a in parsed.activities))

# Bad input raises impp.ParseError (the subclass says which kind), with the library's
# message; nothing is half-built.
for bad in (
    "<presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
    "<!DOCTYPE x><presence xmlns='urn:ietf:params:xml:ns:pidf' entity='pres:a@b.test'/>",
):
    try:
        impp.Presence.from_xml(bad)
    except impp.ParseError as e:
        print(f"\nRefused: {type(e).__name__}: {e}")
