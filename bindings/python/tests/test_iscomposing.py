"""IsComposing (RFC 3994 typing indicators): parsing, reading, building, round trips and
bad input."""

import pytest

import impp

RFC_IDLE = """<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="urn:ietf:params:xml:ns:im-composing iscomposing.xsd">
  <state>idle</state>
  <lastactive>2003-01-27T10:43:00Z</lastactive>
  <contenttype>audio</contenttype>
</isComposing>
"""

ACTIVE = (
    "<ic:isComposing xmlns:ic='urn:ietf:params:xml:ns:im-iscomposing'>"
    "<ic:state> active </ic:state><ic:contenttype>text/plain</ic:contenttype>"
    "<ic:refresh>90</ic:refresh>"
    "<x:hint xmlns:x='urn:example:ext'>kept</x:hint></ic:isComposing>"
)


def wrap(body):
    return f"<isComposing xmlns='urn:ietf:params:xml:ns:im-iscomposing'>{body}</isComposing>"


def test_exported():
    assert "IsComposing" in impp.__all__
    assert impp.IsComposing.CONTENT_TYPE == "application/im-iscomposing+xml"
    assert impp.IsComposing.DEFAULT_IDLE_TIMEOUT == 15
    assert impp.IsComposing.DEFAULT_REFRESH == 120


def test_parse_rfc_idle_example_and_round_trip():
    with impp.IsComposing.parse(RFC_IDLE) as c:
        assert c.state == "idle" and not c.active
        assert c.last_active == "2003-01-27T10:43:00Z"
        assert c.content_type == "audio"
        assert c.refresh is None
        assert c.active_expires_after is None
        xml = c.to_xml()
        assert "schemaLocation" in xml
    with impp.IsComposing.parse(xml.encode()) as again:
        assert again.state == "idle"
        assert again.last_active == "2003-01-27T10:43:00Z"
        assert again.to_xml() == xml


def test_parse_active_with_prefix_and_extension():
    with impp.IsComposing.parse(ACTIVE) as c:
        assert c.state == "active" and c.active
        assert c.content_type == "text/plain"
        assert c.refresh == 90
        assert c.active_expires_after == 90
        xml = c.to_xml()
        assert "urn:example:ext" in xml and "kept" in xml
        assert bytes(c) == xml.encode()
        assert repr(c) == "<impp.IsComposing state='active' refresh=90 content_type='text/plain'>"


def test_build_and_change():
    with impp.IsComposing("active") as c:
        assert c.state == "active"
        assert c.refresh is None and c.content_type is None and c.last_active is None
        assert c.active_expires_after == 120
        c.refresh = 60
        c.content_type = "text/plain"
        xml = c.to_xml()
        assert "<state>active</state>" in xml and "<refresh>60</refresh>" in xml
        c.state = "idle"
        c.refresh = None
        c.last_active = "2026-11-24T14:45:00Z"
        assert c.active_expires_after is None
        with impp.IsComposing.parse(c.to_xml()) as back:
            assert back.state == "idle"
            assert back.refresh is None
            assert back.last_active == "2026-11-24T14:45:00Z"
            assert back.content_type == "text/plain"
        c.content_type = None
        c.last_active = None
        assert "contenttype" not in c.to_xml() and "lastactive" not in c.to_xml()
    built = impp.IsComposing(
        "active", refresh=90, content_type="audio", last_active="2026-11-24T14:45:00+01:00"
    )
    assert (built.refresh, built.content_type, built.last_active) == (
        90,
        "audio",
        "2026-11-24T14:45:00+01:00",
    )
    assert impp.IsComposing().state == "idle"
    built.close()
    assert repr(built) == "<impp.IsComposing closed>"
    with pytest.raises(ValueError):
        built.to_xml()


@pytest.mark.parametrize(
    "doc",
    [
        wrap("<contenttype>text/plain</contenttype>"),  # no state
        wrap("<state>typing</state>"),
        wrap("<state>active</state><refresh>0</refresh>"),
        wrap("<state>active</state><refresh>-5</refresh>"),
        wrap("<state>idle</state><lastactive>yesterday</lastactive>"),
        wrap("<state>idle</state><state>idle</state>"),
        "<isComposing xmlns='urn:ietf:params:xml:ns:im-composing'><state>idle</state></isComposing>",
        "",
        b"<isComposing>\xff</isComposing>",
    ],
)
def test_malformed(doc):
    with pytest.raises(impp.Malformed):
        impp.IsComposing.parse(doc)


def test_unsafe_and_oversize():
    bomb = "<!DOCTYPE isComposing [<!ENTITY e 'x'>]>" + wrap("<state>&e;</state>")
    with pytest.raises(impp.UnsafeXml):
        impp.IsComposing.parse(bomb)
    with pytest.raises(impp.TooLarge):
        impp.IsComposing.parse(wrap("<state>idle</state>" + " " * 70000))


def test_bad_values_change_nothing():
    with impp.IsComposing("active", refresh=30) as c:
        with pytest.raises(ValueError):
            c.state = "typing"
        with pytest.raises(ValueError):
            impp.IsComposing("busy")
        with pytest.raises(impp.InvalidArgument):
            c.refresh = 0
        with pytest.raises(impp.InvalidArgument):
            c.refresh = 2**32
        with pytest.raises(impp.InvalidArgument):
            c.refresh = -1
        with pytest.raises(TypeError):
            c.refresh = "60"
        with pytest.raises(impp.InvalidArgument):
            c.last_active = "yesterday"
        with pytest.raises(impp.InvalidArgument):
            c.content_type = " text/plain "
        assert (c.state, c.refresh, c.last_active, c.content_type) == ("active", 30, None, None)
