"""Presence documents: building, serializing, parsing back, and bad input."""

import gc

import pytest

import impp

ENTITY = "pres:alice@example.test"

PIDF = """<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:bob@example.test">
  <tuple id="t1"><status><basic>closed</basic></status>
    <contact priority="0.5">sip:bob@192.0.2.1</contact>
    <note xml:lang="fr">parti</note>
    <timestamp>2026-11-24T14:45:00Z</timestamp>
  </tuple>
</presence>"""


def build():
    doc = impp.Presence(ENTITY)
    phone = doc.add_tuple("phone", "open", contact="sip:alice@198.51.100.7", priority=0.9)
    doc.add_tuple("pc", "closed")
    doc.add_note("at lunch", "en")
    doc.add_note("phone note", tuple="phone")
    doc.set_timestamp(phone, "2026-11-24T14:45:00Z")
    doc.add_activity("on-the-phone")
    doc.add_other_activity("gardening")
    doc.add_mood("happy")
    doc.set_user_input("idle", "2026-11-24T14:00:00Z")
    doc.add_person_note("in a call")
    doc.set_capability("phone", "audio", True)
    doc.set_capability("phone", "video", False)
    doc.add_media_type("phone", "text/plain")
    doc.add_duplex("phone", "full")
    return doc


def test_round_trip_keeps_everything():
    with build() as doc:
        xml = doc.to_xml()
        assert xml.startswith("<?xml")
        with impp.Presence.parse(xml) as back:
            assert back.entity == ENTITY
            assert back.to_xml() == xml
            assert len(back) == 2
            phone, pc = back.tuples
            assert phone == impp.Tuple(
                id="phone",
                basic="open",
                contact="sip:alice@198.51.100.7",
                priority=0.9,
                timestamp="2026-11-24T14:45:00Z",
                notes=[impp.Note("phone note", None)],
                capabilities={"audio": True, "video": False},
                media_types=["text/plain"],
            )
            assert (pc.id, pc.basic, pc.contact, pc.priority) == ("pc", "closed", None, None)
            assert back.notes == [impp.Note("at lunch", "en")]
            assert back.activities == [
                impp.Activity("on-the-phone", None),
                impp.Activity("other", "gardening"),
            ]
            assert back.moods == ["happy"]
            assert back.user_input == impp.UserInput("idle", "2026-11-24T14:00:00Z")
            assert back.person_notes == [impp.Note("in a call", None)]
            assert back.capability(0, "audio") is True
            assert back.capability(0, "video") is False
            assert back.capability(0, "text") is None
            assert back.duplex("phone", "full") is True
            assert back.duplex("phone", "half") is None


def test_parse_accepts_bytes_and_str():
    for data in (PIDF, PIDF.encode()):
        with impp.Presence.parse(data) as doc:
            t = doc.tuple("t1")
            assert (t.basic, t.contact, t.priority) == ("closed", "sip:bob@192.0.2.1", 0.5)
            assert t.notes == [impp.Note("parti", "fr")]
            assert t.timestamp == "2026-11-24T14:45:00Z"


def test_strings_are_copied_out_of_the_handle():
    doc = impp.Presence.parse(PIDF)
    entity, tuples, xml = doc.entity, doc.tuples, doc.to_xml()
    doc.close()
    gc.collect()
    assert entity == "pres:bob@example.test"
    assert tuples[0].id == "t1" and "t1" in xml


def test_edits():
    with build() as doc:
        doc.set_basic("pc", "open")
        doc.set_contact("pc", "sip:alice@203.0.113.5")
        doc.set_contact("phone", None)
        doc.clear_activities()
        doc.remove_tuple(0)
        assert [(t.id, t.basic, t.contact) for t in doc.tuples] == [
            ("pc", "open", "sip:alice@203.0.113.5")
        ]
        assert doc.activities == []
        doc.set_user_input(None)
        assert doc.user_input == impp.UserInput(None, None)
        clone = doc.clone()
        doc.add_tuple("more")
        assert len(clone) == 1 and len(doc) == 2
        clone.close()


def test_none_where_a_string_is_needed():
    with pytest.raises(TypeError):
        impp.Presence(None)
    with impp.Presence(ENTITY) as doc:
        with pytest.raises(TypeError):
            doc.add_tuple(None)
        with pytest.raises(TypeError):
            doc.add_activity(None)
        with pytest.raises(TypeError):
            impp.Presence.parse(None)
        assert len(doc) == 0 and doc.activities == []


def test_bad_arguments_raise_invalid_argument_and_change_nothing():
    with build() as doc:
        before = doc.to_xml()
        cases = [
            lambda: doc.add_tuple("phone"),  # duplicate id
            lambda: doc.add_tuple(""),
            lambda: doc.add_tuple("x", contact="not a uri"),
            lambda: doc.add_activity("no-such-activity"),
            lambda: doc.add_mood("no-such-mood"),
            lambda: doc.set_contact("phone", "sip:a@b.test", priority=1.5),
            lambda: doc.set_timestamp("phone", "yesterday"),
            lambda: doc.add_note("x", lang="not a tag!"),
            lambda: doc.add_media_type("phone", "plain"),
            lambda: doc.add_tuple("nul\0id"),
        ]
        for case in cases:
            with pytest.raises(impp.InvalidArgument) as info:
                case()
            assert info.value.status == -1
            assert info.value.message
            assert doc.to_xml() == before
        with pytest.raises(ValueError):  # InvalidArgument is a ValueError too
            doc.add_tuple("phone")
        assert doc.to_xml() == before


def test_not_found():
    with build() as doc:
        with pytest.raises(impp.NotFound) as info:
            doc.remove_tuple(7)
        assert info.value.status == -7
        with pytest.raises(impp.NotFound):
            doc.tuple("nope")
        with pytest.raises(LookupError):
            doc.set_basic(99, "open")


def test_invalid_entity():
    with pytest.raises(impp.InvalidArgument, match="."):
        impp.Presence("not a uri at all")


def test_malformed_xml():
    for bad in ("<presence", "not xml", "<x/>", PIDF.replace("closed", "ajar")):
        with pytest.raises(impp.Malformed) as info:
            impp.Presence.parse(bad)
        assert info.value.status == -3 and str(info.value)
    with pytest.raises(impp.Malformed):
        impp.Presence.parse(b"\xff\xfe<presence/>")


def test_doctype_is_unsafe():
    doc = (
        '<?xml version="1.0"?><!DOCTYPE presence [<!ENTITY x "boom">]>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:a@b.test"><note>&x;</note></presence>'
    )
    with pytest.raises(impp.UnsafeXml) as info:
        impp.Presence.parse(doc)
    assert info.value.status == -5


def test_limits():
    with pytest.raises(impp.TooLarge):
        impp.Presence.parse(PIDF, max_bytes=64)
    with pytest.raises(impp.TooLarge):
        impp.Presence.parse(PIDF, max_depth=2)
    impp.Presence.parse(PIDF, max_bytes=4096, max_depth=8).close()


def test_error_message_comes_from_the_library():
    with pytest.raises(impp.Error) as info:
        impp.Presence.parse("<presence")
    assert isinstance(info.value, impp.Malformed)
    assert "IMPP" not in info.value.message or len(info.value.message) > 20


def test_context_manager_and_close():
    with impp.Presence(ENTITY) as doc:
        doc.add_tuple("a")
    assert doc.closed
    doc.close()  # twice is harmless
    with pytest.raises(ValueError, match="closed"):
        doc.to_xml()
    assert "closed" in repr(doc)


def test_del_is_safe():
    for _ in range(100):
        doc = impp.Presence(ENTITY)
        doc.add_tuple("a")
        del doc
    half = impp.Presence.__new__(impp.Presence)  # never initialized
    del half
    gc.collect()
