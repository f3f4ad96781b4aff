"""Resource lists through Python: set, read back, expand, remove; the rules between lists
refused with a clear error and nothing changed; lists kept in a store across engines."""

import pytest

import impp

from conftest import ALICE, BOB

SALES = "sip:sales-blf@example.test"
SUPPORT = "sip:support-blf@example.test"
CAROL = "sip:carol@example.test"


def test_set_read_expand_remove(engine):
    assert engine.lists() == []
    engine.set_list(
        SALES,
        [impp.Resource(ALICE, "Alice"), impp.ListRef(SUPPORT), BOB],
        packages=["dialog", "presence"],
        display_name="Sales",
    )
    got = engine.resource_list("pres:sales-blf@example.test")
    assert got == impp.ResourceList(
        SALES,
        (impp.Resource(ALICE, "Alice"), impp.ListRef(SUPPORT), impp.Resource(BOB)),
        ("presence", "dialog"),
        "Sales",
    )
    assert engine.resource_list(SUPPORT) is None

    # The reference expands to nothing until the list exists.
    assert engine.expand_list(SALES) == [impp.Resource(ALICE, "Alice"), impp.Resource(BOB)]
    engine.set_list(impp.ResourceList(SUPPORT, (impp.Resource(CAROL), impp.Resource(ALICE, "A"))))
    assert [r.uri for r in engine.expand_list(SALES)] == [ALICE, CAROL, BOB]
    assert engine.expand_list(SALES)[0].display_name == "Alice"  # the first met
    assert engine.resource_list(SUPPORT).packages == ("presence",)  # the default
    assert [l.uri for l in engine.lists()] == [SALES, SUPPORT]

    # Replaced, then removed.
    engine.set_list(SUPPORT, [BOB])
    assert [r.uri for r in engine.expand_list(SALES)] == [ALICE, BOB]
    assert engine.remove_list(SUPPORT) is True
    assert engine.remove_list(SUPPORT) is False
    assert [l.uri for l in engine.lists()] == [SALES]
    with pytest.raises(impp.NotFound):
        engine.expand_list(SUPPORT)


def test_bad_lists_are_refused_and_change_nothing(engine):
    engine.set_list(SALES, [ALICE, impp.ListRef(SUPPORT)])
    engine.set_list(SUPPORT, [BOB])
    before = engine.lists()
    with pytest.raises(impp.InvalidArgument, match="is a cycle"):
        engine.set_list(SUPPORT, [BOB, impp.ListRef(SALES)])
    with pytest.raises(impp.InvalidArgument, match="already has the resource"):
        engine.set_list(SUPPORT, [BOB, "pres:bob@example.test"])
    with pytest.raises(impp.InvalidArgument, match="at most 500"):
        engine.set_list(SUPPORT, [f"sip:u{i}@example.test" for i in range(501)])
    with pytest.raises(impp.InvalidArgument):
        engine.set_list(SUPPORT, [impp.ListRef(SUPPORT)])
    with pytest.raises(impp.InvalidUri):
        engine.set_list(SUPPORT, ["not a uri"])
    with pytest.raises(impp.InvalidUri):
        engine.set_list("not a uri", [BOB])
    with pytest.raises(impp.UnknownPackage):
        engine.set_list(SUPPORT, [BOB], packages=["weather"])
    with pytest.raises(impp.InvalidArgument, match="presence or dialog"):
        engine.set_list(SUPPORT, [BOB], packages=["message-summary"])
    with pytest.raises(impp.InvalidArgument):
        engine.set_list(SUPPORT, [impp.Resource(BOB, "")])
    with pytest.raises(impp.Forbidden):
        engine.set_list("sip:team@other.test", [BOB])
    with pytest.raises(TypeError):
        engine.set_list(SUPPORT, [42])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        engine.set_list(SUPPORT, [BOB], packages="presence")
    with pytest.raises(TypeError):
        engine.set_list(impp.ResourceList(SUPPORT), [BOB])
    with pytest.raises(impp.InvalidArgument, match="NUL"):
        engine.set_list(SUPPORT, ["sip:a\0b@example.test"])
    assert engine.lists() == before


def test_nesting_is_bounded(engine):
    for i in range(8, 0, -1):
        refs = [impp.ListRef(f"sip:l{i + 1}@example.test")] if i < 8 else []
        engine.set_list(f"sip:l{i}@example.test", [f"sip:r{i}@example.test", *refs])
    assert len(engine.expand_list("sip:l1@example.test")) == 8
    with pytest.raises(impp.InvalidArgument, match="more than 8 levels"):
        engine.set_list("sip:l0@example.test", [impp.ListRef("sip:l1@example.test")])


def test_lists_are_kept_in_the_store(tmp_path):
    path = str(tmp_path / "lists.db")
    with impp.Engine(store=path, domains=["example.test"], workers=2) as engine:
        engine.set_list(SALES, [impp.Resource(ALICE, "Alice"), impp.ListRef(SUPPORT)],
                        packages=["dialog"])
        engine.set_list(SUPPORT, [BOB])
    with impp.Engine(store=path, domains=["example.test"], workers=2) as engine:
        assert engine.resource_list(SALES) == impp.ResourceList(
            SALES, (impp.Resource(ALICE, "Alice"), impp.ListRef(SUPPORT)), ("dialog",)
        )
        assert [r.uri for r in engine.expand_list(SALES)] == [ALICE, BOB]


def test_a_closed_engine_refuses(engine):
    engine.close()
    with pytest.raises(impp.Shutdown):
        engine.lists()
    with pytest.raises(impp.Shutdown):
        engine.set_list(SALES, [ALICE])
