"""Build a presence document with the Python package, serialize it to PIDF, parse it back
and read it; then see how bad input is refused.

Run it from the repository root after `cargo build`, with the package on the path:
    PYTHONPATH=bindings/python python3 examples/presence.py
(or `pip install ./bindings/python` and plain `python3 examples/presence.py`).
"""

import impp

print(f"libimpp {impp.library_version()} from {impp.library_path}")

# Alice's phone is open and her desk client is closed; she is on the phone.
with impp.Presence("pres:alice@example.test") as doc:
    phone = doc.add_tuple("phone", "open", contact="sip:alice@198.51.100.7", priority=0.9)
    doc.set_capability(phone, "audio", True)
    doc.add_tuple("desk", "closed")
    doc.add_activity("on-the-phone")
    xml = doc.to_xml()  # PIDF text, what a SIP PUBLISH or NOTIFY carries

print(f"\nSerialized ({len(xml)} bytes):\n{xml}\n")

# Parse it back: every field survives the round trip.
with impp.Presence.parse(xml) as parsed:
    print(f"Parsed back: {parsed.entity} has {len(parsed)} tuples")
    for t in parsed.tuples:
        print(f"  tuple {t.id:<6} {t.basic:<6} contact={t.contact} capabilities={t.capabilities}")
    print("  activities:", ", ".join(a.name for a in parsed.activities))

# Bad input raises an exception carrying the library's message; nothing is half-built.
try:
    impp.Presence.parse("<presence xmlns='urn:ietf:params:xml:ns:pidf'/>")
except impp.Malformed as e:
    print(f"\nParsing a document without entity: {type(e).__name__}: {e}")
