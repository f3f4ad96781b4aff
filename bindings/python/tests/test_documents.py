"""Watcherinfo, DialogInfo, MessageSummary and FilterSet: parsing, reading, building,
round trips, publishing through an engine, and bad input."""

import gc

import pytest

import impp

from conftest import ALICE, BOB, drain

CAROL = "sip:carol@example.test"

WINFO = """<?xml version="1.0" encoding="UTF-8"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo" version="4" state="partial">
  <watcher-list resource="sip:alice@example.test" package="presence">
    <watcher id="w1" status="active" event="approved" display-name="Bob B."
             duration-subscribed="60" expiration="3540">sip:bob@example.test</watcher>
    <watcher id="w2" status="pending" event="subscribe">sip:carol@example.test</watcher>
  </watcher-list>
  <watcher-list resource="sip:alice@example.test" package="dialog">
    <watcher id="w3" status="terminated" event="timeout">sip:dan@example.test</watcher>
  </watcher-list>
</watcherinfo>
"""

DIALOGS = """<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="2" state="full"
             entity="sip:300@pbx.example.test">
  <dialog id="call-1" call-id="c1@host.example.test" local-tag="lt" remote-tag="rt"
          direction="initiator">
    <state event="remote-bye" code="200">terminated</state>
    <local><identity display="Desk 300">sip:300@pbx.example.test</identity></local>
    <remote><identity display="Carol">sip:carol@example.test</identity></remote>
  </dialog>
  <dialog id="call-2"><state>early</state></dialog>
</dialog-info>
"""

SUMMARY = (
    "Messages-Waiting: yes\r\n"
    "Message-Account: sip:alice@vmail.example.test\r\n"
    "Voice-Message: 3/5 (1/0)\r\n"
    "Fax-Message: 0/2\r\n"
)

FILTERS = """<?xml version="1.0" encoding="UTF-8"?>
<filter-set xmlns="urn:ietf:params:xml:ns:simple-filter" package="presence">
  <ns-bindings><ns-binding prefix="pidf" urn="urn:ietf:params:xml:ns:pidf"/></ns-bindings>
  <filter id="mobile-only" uri="sip:alice@example.test">
    <what><include type="xpath">/pidf:presence/pidf:tuple[@id='mobile']</include></what>
  </filter>
  <filter id="notes" domain="example.net">
    <what><include>/pidf:presence/pidf:note</include></what>
  </filter>
</filter-set>
"""

PIDF = """<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:alice@example.test">
  <tuple id="mobile"><status><basic>open</basic></status></tuple>
  <tuple id="office"><status><basic>closed</basic></status></tuple>
  <note>in a meeting</note>
</presence>
"""

DOCTYPE = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]>'


def _without_declaration(doc):
    return doc.split("?>", 1)[1]


# --- Watcherinfo ---


def check_winfo(w):
    assert w.version == 4
    assert w.state == "partial"
    lists = w.lists
    assert [(l.resource, l.package) for l in lists] == [
        (ALICE, "presence"),
        (ALICE, "dialog"),
    ]
    bob, carol = lists[0].watchers
    assert bob == impp.Watcher("w1", BOB, "active", "approved", "Bob B.", 60, 3540)
    assert carol.uri == CAROL and carol.status == "pending" and carol.event == "subscribe"
    assert carol.display_name is None and carol.duration is None and carol.expiration is None
    assert [x.id for x in w.watchers] == ["w1", "w2", "w3"]
    assert w.watchers[2].status == "terminated" and w.watchers[2].event == "timeout"


def test_winfo_parse_read_and_round_trip():
    with impp.Watcherinfo.parse(WINFO) as w:
        check_winfo(w)
        xml = w.to_xml()
        assert "w1" in repr(xml) and "version=4" in repr(w)
    with impp.Watcherinfo.parse(xml.encode("utf-8")) as again:
        check_winfo(again)
    assert w.closed and "closed" in repr(w)
    with pytest.raises(ValueError, match="closed"):
        w.version
    w.close()  # twice is harmless


def test_winfo_is_read_only_and_refuses_bad_input():
    with pytest.raises(TypeError):
        impp.Watcherinfo()
    with pytest.raises(impp.Malformed):
        impp.Watcherinfo.parse(WINFO[: len(WINFO) // 2])
    with pytest.raises(impp.Malformed):
        impp.Watcherinfo.parse(WINFO.replace('status="pending"', 'status="napping"'))
    with pytest.raises(impp.Malformed):
        impp.Watcherinfo.parse(DIALOGS)  # another document type
    with pytest.raises(impp.UnsafeXml):
        impp.Watcherinfo.parse(DOCTYPE + _without_declaration(WINFO))
    with pytest.raises(impp.TooLarge):
        impp.Watcherinfo.parse(WINFO.replace("Bob B.", "B" * 70000))
    with pytest.raises(TypeError):
        impp.Watcherinfo.parse(None)


# --- DialogInfo ---


def check_dialogs(d):
    assert d.version == 2 and d.state == "full"
    assert d.entity == "sip:300@pbx.example.test"
    assert len(d) == 2
    first, second = d.dialogs
    assert first == impp.Dialog(
        id="call-1",
        state="terminated",
        event="remote-bye",
        code=200,
        direction="initiator",
        call_id="c1@host.example.test",
        local_tag="lt",
        remote_tag="rt",
        local_identity=impp.Identity("sip:300@pbx.example.test", "Desk 300"),
        remote_identity=impp.Identity(CAROL, "Carol"),
    )
    assert second == impp.Dialog("call-2", "early")
    assert d.dialog("call-2") == second


def test_dialog_info_parse_read_and_round_trip():
    with impp.DialogInfo.parse(DIALOGS) as d:
        check_dialogs(d)
        xml = d.to_xml()
        assert bytes(d) == xml.encode("utf-8")
    with impp.DialogInfo.parse(xml) as again:
        check_dialogs(again)


def test_dialog_info_build_and_change():
    with impp.DialogInfo("sip:201@pbx.example.test") as d:
        assert (d.version, d.state, len(d), d.dialogs) == (0, "full", 0, [])
        assert "dialogs=0" in repr(d)
        i = d.add_dialog("a1", "trying", direction="recipient", call_id="x@y", remote=BOB)
        assert i == 0
        assert d.add_dialog("a2") == 1
        d.set_state("a1", "confirmed")
        d.set_local_tag(0, "l1")
        d.set_remote_tag("a1", "r1")
        d.set_remote_identity("a1", BOB, "Bob")
        d.set_state("a2", "terminated", "rejected", 486)
        d.set_direction("a2", "initiator")
        with impp.DialogInfo.parse(d.to_xml()) as back:
            a1, a2 = back.dialogs
        assert a1 == impp.Dialog(
            "a1",
            "confirmed",
            direction="recipient",
            call_id="x@y",
            local_tag="l1",
            remote_tag="r1",
            remote_identity=impp.Identity(BOB, "Bob"),
        )
        assert (a2.state, a2.event, a2.code, a2.direction) == (
            "terminated",
            "rejected",
            486,
            "initiator",
        )
        # Removing values, then a dialog.
        d.set_call_id("a1", None)
        d.set_remote_identity("a1", None)
        d.set_direction("a1", None)
        assert d.dialog("a1")[4:] == (None, None, "l1", "r1", None, None)
        d.remove_dialog("a1")
        assert [x.id for x in d.dialogs] == ["a2"]


def test_dialog_info_bad_input():
    with pytest.raises(impp.InvalidArgument):
        impp.DialogInfo("not a uri")
    with pytest.raises(impp.Malformed):
        impp.DialogInfo.parse("<dialog-info")
    with pytest.raises(impp.Malformed):
        impp.DialogInfo.parse(DIALOGS.replace("<state>early</state>", ""))
    with pytest.raises(impp.UnsafeXml):
        impp.DialogInfo.parse(DOCTYPE + _without_declaration(DIALOGS))
    with impp.DialogInfo(ALICE) as d:
        d.add_dialog("a1")
        with pytest.raises(impp.InvalidArgument):
            d.add_dialog("a1")  # duplicate id
        with pytest.raises(impp.InvalidArgument):
            d.add_dialog(" padded ")
        with pytest.raises(ValueError, match="state"):
            d.add_dialog("a2", "ringing")
        # A refused optional field takes the new dialog back out.
        with pytest.raises(impp.InvalidArgument):
            d.add_dialog("a3", call_id="")
        with pytest.raises(impp.InvalidArgument):
            d.set_state("a1", "terminated", code=42)
        with pytest.raises(ValueError, match="event"):
            d.set_state("a1", "terminated", "hung-up")
        with pytest.raises(impp.InvalidArgument):
            d.set_local_tag("a1", "line\nbreak")
        with pytest.raises(impp.InvalidArgument):
            d.set_remote_identity("a1", "no uri")
        with pytest.raises(impp.NotFound):
            d.set_call_id(5, "c")
        with pytest.raises(impp.NotFound):
            d.remove_dialog("nope")
        with pytest.raises(LookupError):
            d.dialog(1)
        with pytest.raises(impp.InvalidArgument):
            d.set_call_id("a1", "nul\0inside")
        assert [x.id for x in d.dialogs] == ["a1"]
        assert d.dialog("a1") == impp.Dialog("a1", "trying")


# --- MessageSummary ---


def check_summary(m):
    assert m.messages_waiting is True
    assert m.account == "sip:alice@vmail.example.test"
    assert m.counts == {
        "voice-message": impp.MessageCounts(3, 5, 1, 0),
        "fax-message": impp.MessageCounts(0, 2),
    }


def test_message_summary_parse_read_and_round_trip():
    with impp.MessageSummary.parse(SUMMARY) as m:
        check_summary(m)
        text = m.to_text()
    with impp.MessageSummary.parse(text.encode()) as again:
        check_summary(again)


def test_message_summary_build():
    with impp.MessageSummary() as m:
        assert m.messages_waiting is False and m.account is None and m.counts == {}
        m.messages_waiting = True
        m.account = "sip:bob@vmail.example.test"
        assert m.set_count("Voice-Message", 2, 4) == 0
        assert m.set_count("text-message", 1) == 1
        m.set_urgent("VOICE-MESSAGE", 1, None)  # the other is written as 0
        assert m.counts["voice-message"] == impp.MessageCounts(2, 4, 1, None)
        assert m.to_text() == (
            "Messages-Waiting: yes\r\n"
            "Message-Account: sip:bob@vmail.example.test\r\n"
            "Voice-Message: 2/4 (1/0)\r\n"
            "Text-Message: 1/0\r\n"
        )
        # Setting a count again replaces the line, urgent counts included.
        assert m.set_count("voice-message", 0, 6) == 0
        assert m.counts["voice-message"] == impp.MessageCounts(0, 6)
        m.account = None
        m.messages_waiting = False
        assert m.to_text().startswith("Messages-Waiting: no\r\n")
        assert "Message-Account" not in m.to_text()
        assert "waiting=False" in repr(m)


def test_message_summary_bad_input():
    with pytest.raises(impp.Malformed):
        impp.MessageSummary.parse("Voice-Message: 1/2\r\n")  # no Messages-Waiting
    with pytest.raises(impp.Malformed):
        impp.MessageSummary.parse("Messages-Waiting: yes\r\nVoice-Message: one/2\r\n")
    with pytest.raises(impp.Malformed):
        impp.MessageSummary.parse(b"Messages-Waiting: yes\r\nMessage-Account: sip:\xff@x\r\n")
    with pytest.raises(impp.Malformed):
        impp.MessageSummary.parse("")
    with impp.MessageSummary(True) as m:
        m.set_count("voice-message", 1, 1)
        with pytest.raises(impp.InvalidArgument):
            m.set_count("Sms", 1, 1)
        with pytest.raises(impp.InvalidArgument):
            m.set_count("voice-message", -1, 0)  # never wrapped around by ctypes
        with pytest.raises(impp.InvalidArgument):
            m.set_count("voice-message", 2**32, 0)
        with pytest.raises(impp.InvalidArgument):
            m.set_urgent("voice-message", 2**32)
        with pytest.raises(TypeError):
            m.set_count("voice-message", "1", 0)
        with pytest.raises(impp.NotFound):
            m.set_urgent("fax-message", 1, 1)  # no count line for it
        with pytest.raises(impp.InvalidArgument):
            m.account = "vmail box"
        assert m.counts == {"voice-message": impp.MessageCounts(1, 1)}
        assert m.account is None


# --- FilterSet ---


def test_filter_set_parse_read_round_trip_and_apply():
    with impp.FilterSet.parse(FILTERS) as f:
        assert len(f) == 2
        assert f.filters == [
            impp.Filter("mobile-only", uri=ALICE),
            impp.Filter("notes", domain="example.net"),
        ]
        with impp.FilterSet.parse(f.to_xml()) as again:
            assert again.filters == f.filters
        with impp.Presence.parse(PIDF) as doc:
            with f.apply(ALICE, doc) as seen:
                assert [t.id for t in seen.tuples] == ["mobile"]
                assert seen.tuples[0].basic == "open"  # the status is always kept
                assert seen.notes == []
            with f.apply("sip:zoe@example.net", doc) as seen:
                assert len(seen) == 0 and [n.text for n in seen.notes] == ["in a meeting"]
            with f.apply("sip:zed@example.org", doc) as seen:  # no filter applies: a copy
                assert [t.id for t in seen.tuples] == ["mobile", "office"]
            assert len(doc) == 2  # only read
            with pytest.raises(impp.InvalidArgument):
                f.apply("sip:a\0b@example.test", doc)
        with pytest.raises(TypeError):
            f.apply(ALICE, PIDF)
        closed = impp.Presence(ALICE)
        closed.close()
        with pytest.raises(ValueError, match="closed"):
            f.apply(ALICE, closed)


def test_filter_set_bad_input():
    with pytest.raises(TypeError):
        impp.FilterSet()
    positional = FILTERS.replace("[@id='mobile']", "[1]")
    with pytest.raises(impp.Unsupported):
        impp.FilterSet.parse(positional)
    with pytest.raises(impp.Malformed):
        impp.FilterSet.parse(FILTERS.replace("/pidf:presence/pidf:note", "/zz:presence"))
    with pytest.raises(impp.Malformed):
        impp.FilterSet.parse(FILTERS[:60])
    with pytest.raises(impp.UnsafeXml):
        impp.FilterSet.parse(DOCTYPE + _without_declaration(FILTERS))


# --- Through an engine ---


def _document_event(engine, sub):
    found = [e for e in drain(engine) if e.subscription_id == sub and e.xml is not None]
    assert found, "no notification with a document"
    return found[-1]


def test_documents_through_an_engine():
    with impp.Engine(default_policy="allow", manual_clock=True, domains=["example.test"]) as e:
        # A busy lamp: Alice's phone is in a call with Carol; Bob watches the lamp.
        with impp.DialogInfo(ALICE) as lamp:
            lamp.add_dialog("d1", "confirmed", direction="initiator", remote=CAROL)
            etag = e.publish(ALICE, lamp)
        assert etag
        sub = e.subscribe(BOB, ALICE, "dialog")
        event = _document_event(e, sub)
        assert event.package == "dialog"
        assert event.presence() is None and event.winfo() is None
        assert event.message_summary() is None
        with event.dialog_info() as seen:
            assert seen.entity == ALICE
            (d1,) = seen.dialogs
            assert (d1.id, d1.state, d1.direction) == ("d1", "confirmed", "initiator")
            assert d1.remote_identity == impp.Identity(CAROL)

        # The call ends: the changed lamp reaches Bob.
        with impp.DialogInfo(ALICE) as idle:
            idle.add_dialog("d1", "terminated")
            idle.set_state("d1", "terminated", "local-bye")
            e.modify_publication(etag, idle)
        with _document_event(e, sub).dialog_info() as seen:
            assert seen.dialog("d1").state == "terminated"
            assert seen.dialog("d1").event == "local-bye"

        # A voicemail lamp for Alice, read back from her own subscription.
        with impp.MessageSummary(True) as mwi:
            mwi.account = "sip:alice@vmail.example.test"
            mwi.set_count("voice-message", 2, 1)
            mwi.set_urgent("voice-message", 1, 0)
            with pytest.raises(ValueError, match="message-summary"):
                e.publish(ALICE, mwi, package="dialog")
            e.publish(ALICE, mwi, expires=600)
        mine = e.subscribe(ALICE, ALICE, "message-summary")
        event = _document_event(e, mine)
        assert event.dialog_info() is None
        with event.message_summary() as seen:
            assert seen.messages_waiting
            assert seen.account == "sip:alice@vmail.example.test"
            assert seen.counts == {"voice-message": impp.MessageCounts(2, 1, 1, 0)}

        # Alice watches her watchers: Bob's subscription to her lamp is listed.
        winfo_sub = e.subscribe(ALICE, ALICE, "presence.winfo")
        event = _document_event(e, winfo_sub)
        with event.winfo() as w:
            assert w.state in ("full", "partial")
            bobs = [x for x in w.watchers if x.uri == BOB]
            assert bobs and bobs[0].status == "active"
            assert all(l.resource == ALICE for l in w.lists)


def test_handles_are_freed_when_collected():
    docs = [
        impp.Watcherinfo.parse(WINFO),
        impp.DialogInfo.parse(DIALOGS),
        impp.MessageSummary.parse(SUMMARY),
        impp.FilterSet.parse(FILTERS),
    ]
    for doc in docs:
        assert not doc.closed
    del docs
    gc.collect()  # __del__ frees them; nothing to observe but no crash
