"""The enums against include/impp.h, how they read and how arguments take them; the mapping
of status codes to exceptions; the version read from the library."""

import enum
import json
import logging
import re

import pytest

import impp
from impp import _ffi

from conftest import ALICE, BOB, PACKAGE_ROOT, REPO_ROOT, drain

HEADER = REPO_ROOT / "include" / "impp.h"

# Python enum -> (C enum type, constant prefix, Python member name -> C name where they
# differ). The C value 0 of the enums that have one (NONE, UNSET...) is None in Python.
C_ENUMS = {
    impp.EventKind: (
        "impp_event_type",
        "IMPP_EVENT_",
        {"NOTIFY": "NOTIFICATION", "WATCHER_PENDING": "AUTHORIZATION_REQUESTED"},
    ),
    impp.AuthAction: ("impp_auth_action", "IMPP_AUTH_", {}),
    impp.SubscriptionState: ("impp_subscription_state", "IMPP_SUBSCRIPTION_", {}),
    impp.TerminationReason: ("impp_reason", "IMPP_REASON_", {}),
    impp.DeliveryOutcome: ("impp_delivery_outcome", "IMPP_DELIVERY_", {}),
    impp.FailureReason: ("impp_failure_reason", "IMPP_FAILURE_", {}),
    impp.Basic: ("impp_basic", "IMPP_BASIC_", {}),
    impp.UserInputState: ("impp_user_input", "IMPP_USER_INPUT_", {}),
    impp.Capability: ("impp_capability", "IMPP_CAP_", {}),
    impp.ComposingState: ("impp_composing_state", "IMPP_COMPOSING_STATE_", {}),
    impp.DocState: ("impp_doc_state", "IMPP_DOC_STATE_", {}),
    impp.WatcherStatus: ("impp_watcher_status", "IMPP_WATCHER_STATUS_", {}),
    impp.WatcherEvent: ("impp_watcher_event", "IMPP_WATCHER_EVENT_", {}),
    impp.DialogState: ("impp_dialog_state", "IMPP_DIALOG_STATE_", {}),
    impp.DialogEvent: ("impp_dialog_event", "IMPP_DIALOG_EVENT_", {}),
    impp.DialogDirection: ("impp_dialog_direction", "IMPP_DIALOG_DIRECTION_", {}),
    impp.Federation: ("impp_federation", "IMPP_FEDERATION_", {}),
    impp.Migration: ("impp_migration", "IMPP_MIGRATION_", {}),
}


def header_enums():
    """C enum type -> {constant: value} for every enum of the header."""
    found = {}
    pattern = re.compile(r"typedef enum (\w+) \{(.*?)\} \1;", re.S)
    for name, body in pattern.findall(HEADER.read_text()):
        body = re.sub(r"/\*.*?\*/", " ", body, flags=re.S)
        found[name] = {k: int(v) for k, v in re.findall(r"(IMPP_\w+) = (-?\d+)", body)}
    return found


def test_every_enum_matches_its_c_enum():
    enums = header_enums()
    for cls, (ctype, prefix, renames) in C_ENUMS.items():
        constants = enums[ctype]
        mine = {prefix + renames.get(m.name, m.name): m._c for m in cls}
        # Every member is a constant of the header with the same number...
        assert {k: constants.get(k) for k in mine} == mine, cls
        # ...and every constant but the "nothing" value (None in Python) is a member.
        rest = {k: v for k, v in constants.items() if k not in mine}
        assert all(v == 0 for v in rest.values()) and len(rest) <= 1, (cls, rest)


def test_log_levels_cover_the_c_levels():
    assert [m.name for m in impp.LogLevel] == ["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"]
    assert len(header_enums()["impp_log_level"]) == len(impp.LogLevel)
    assert impp.TRACE is impp.LogLevel.TRACE and impp.LogLevel.DEBUG == logging.DEBUG


def test_every_public_enum_is_exported_and_documented():
    exported = {getattr(impp, n) for n in impp.__all__}
    for cls in [*C_ENUMS, impp.Status, impp.LogLevel]:
        assert cls in exported and issubclass(cls, enum.Enum)
        assert cls.__doc__ and cls.__doc__.strip()


def test_string_enums_read_as_their_tokens():
    polite = impp.AuthAction.POLITE_BLOCK
    assert isinstance(polite, str) and polite == "polite-block" and polite.value == "polite-block"
    assert str(polite) == "polite-block" and f"{polite:>13}" == " polite-block"
    assert json.dumps({"action": polite}) == '{"action": "polite-block"}'
    assert {impp.Capability.AUDIO: True}["audio"] is True  # hashes as its token
    assert impp.EventKind("watcher-pending") is impp.EventKind.WATCHER_PENDING
    assert repr(impp.Basic.OPEN) == "<Basic.OPEN: 'open'>"


def test_events_carry_enum_members(engine):
    sub = engine.subscribe(BOB, ALICE)
    engine.authorize(sub, impp.AuthAction.BLOCK)
    events = drain(engine)
    assert {type(e.kind) for e in events} == {impp.EventKind}
    assert {e.kind for e in events} >= {impp.EventKind.WATCHER_PENDING, impp.EventKind.NOTIFY}
    states = {e.state for e in events} - {None}
    assert states and all(type(s) is impp.SubscriptionState for s in states)
    [last] = [e for e in events if e.kind is impp.EventKind.NOTIFY][-1:]
    assert last.state is impp.SubscriptionState.TERMINATED
    assert last.reason is impp.TerminationReason.REJECTED
    assert sub.state is impp.SubscriptionState.TERMINATED


def test_subscription_info_and_rules_are_enums(engine):
    engine.set_rule(ALICE, BOB, "polite-block")
    [rule] = engine.rules(ALICE)
    assert rule == impp.Rule(BOB, None, impp.AuthAction.POLITE_BLOCK)
    assert type(rule.action) is impp.AuthAction
    info = engine.subscribe(BOB, ALICE).info()
    assert isinstance(info, impp.SubscriptionInfo)
    assert info.state is impp.SubscriptionState.ACTIVE
    assert info.authorization is impp.AuthAction.POLITE_BLOCK


def test_delivery_outcomes_and_failure_reasons_are_enums():
    with impp.Engine(domains=["example.test"], manual_clock=True, workers=1) as im:
        im.set_user_password(BOB, "secret")
        im.send_message(ALICE, "sip:nobody@example.test", "hello?")
        [failed] = [e for e in drain(im) if e.kind is impp.EventKind.DELIVERY]
        assert failed.outcome is impp.DeliveryOutcome.FAILED
        assert failed.reason is impp.FailureReason.UNKNOWN_USER


def test_arguments_take_members_or_tokens(engine):
    engine.set_rule(ALICE, BOB, impp.AuthAction.ALLOW)
    engine.set_rule(ALICE, "example.org", "polite-block")
    assert {r.action for r in engine.rules(ALICE)} == {"allow", "polite-block"}
    sub = engine.subscribe(BOB, ALICE)
    engine.terminate_subscription(sub, impp.TerminationReason.PROBATION)
    assert drain(engine)[-1].reason is impp.TerminationReason.PROBATION

    t = impp.Tuple(id="t", basic="open", capabilities={"audio": True, impp.Capability.VIDEO: False})
    assert t.basic is impp.Basic.OPEN
    assert t.capabilities == {impp.Capability.AUDIO: True, impp.Capability.VIDEO: False}
    with impp.Presence(ALICE, tuples=[t]) as doc:
        [read] = doc.tuples
        assert read == t and type(read.basic) is impp.Basic
        assert all(type(c) is impp.Capability for c in read.capabilities)
        doc.set_basic("t", impp.Basic.CLOSED)
        assert doc.tuple("t").basic is impp.Basic.CLOSED
        doc.set_user_input("idle")
        assert doc.user_input.state is impp.UserInputState.IDLE

    with impp.IsComposing(impp.ComposingState.ACTIVE) as c:
        assert c.state is impp.ComposingState.ACTIVE and c.active
        c.state = "idle"
        assert c.state is impp.ComposingState.IDLE

    with impp.DialogInfo(ALICE) as info:
        info.add_dialog("d1", "confirmed", direction=impp.DialogDirection.INITIATOR)
        info.set_state("d1", impp.DialogState.TERMINATED, "remote-bye", 200)
        d = info.dialog("d1")
        assert (d.state, d.event, d.direction) == (
            impp.DialogState.TERMINATED,
            impp.DialogEvent.REMOTE_BYE,
            impp.DialogDirection.INITIATOR,
        )
        assert info.state is impp.DocState.FULL


@pytest.mark.parametrize(
    "call",
    [
        lambda e: e.authorize(1, "maybe"),
        lambda e: e.set_rule(ALICE, BOB, "polite_block"),  # the token has a dash
        lambda e: e.terminate_subscription(1, "bored"),
        lambda e: impp.Config(default_policy="sometimes"),
        lambda e: impp.Tuple(id="t", basic="ajar"),
        lambda e: impp.Tuple(id="t", capabilities={"telepathy": True}),
        lambda e: impp.IsComposing("typing"),
        lambda e: impp.set_log_level("loud"),
    ],
)
def test_an_unknown_token_is_invalid_argument(engine, call):
    with pytest.raises(impp.InvalidArgument) as info:
        call(engine)
    assert info.value.status is impp.Status.INVALID_ARGUMENT and info.value.message


def test_a_value_of_another_type_is_a_type_error(engine):
    with pytest.raises(TypeError, match="AuthAction"):
        engine.authorize(1, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        engine.set_rule(ALICE, None, "allow")  # type: ignore[arg-type]


def test_legacy_names_are_gone():
    for name in ("ACTIONS", "CAPABILITIES", "SubscriptionStateInfo"):
        assert not hasattr(impp, name)
    from impp import documents, events

    for module, name in [
        (events, "OLD_KINDS"),
        (events, "KINDS"),
        (events, "STATES"),
        (documents, "DIALOG_STATES"),
        (documents, "COMPOSING_STATES"),
    ]:
        assert not hasattr(module, name), name
    assert not hasattr(impp.Event, "is_kind") and not hasattr(impp.Event, "subscription")
    assert not hasattr(impp.MessageSummary, "waiting")


# --- errors ---


def test_every_status_maps_to_its_own_class():
    seen = set()
    for status in impp.Status:
        if status is impp.Status.OK:
            continue
        error = impp.errors.error_for_status(int(status), "the detail")
        cls = type(error)
        assert cls is not impp.Error and cls not in seen
        seen.add(cls)
        assert error.status is status and cls.status is status
        assert cls.status_name == _ffi.status_name(int(status))
        assert str(error) == error.message == "the detail"
        assert isinstance(error, impp.Error)
    # A code this package does not know still raises an impp.Error, with its number.
    unknown = impp.errors.error_for_status(-99)
    assert type(unknown) is impp.Error and unknown.status == -99 and "-99" in str(unknown)


def test_families_and_builtin_bases():
    assert issubclass(impp.InvalidArgument, ValueError)
    assert issubclass(impp.NotFound, LookupError)
    assert issubclass(impp.Unsupported, NotImplementedError)
    assert issubclass(impp.InvalidState, RuntimeError) and issubclass(impp.InvalidState, impp.Error)
    for cls in (impp.Malformed, impp.TooLarge, impp.UnsafeXml):
        assert issubclass(cls, impp.ParseError)


def test_library_failures_raise_the_library_text(engine):
    with pytest.raises(impp.InvalidUri) as info:
        engine.subscribe("not a uri", ALICE)
    assert info.value.status is impp.Status.INVALID_URI and "not a uri" in info.value.message


def test_package_refusals_are_impp_errors(engine):
    doc = impp.Presence(ALICE)
    doc.close()
    with pytest.raises(impp.InvalidArgument, match="closed"):
        doc.to_xml()
    with pytest.raises(impp.InvalidArgument):
        engine.publish(ALICE, impp.Presence(ALICE), package="dialog")
    with pytest.raises(impp.InvalidArgument):
        impp.Config(min_notify_interval=-1)
    with pytest.raises(impp.InvalidArgument):
        impp.Config(max_message_size=-1)
    engine.on_event(lambda event: None)
    with pytest.raises(impp.InvalidState, match="callback"):
        engine.next_event(0)
    with pytest.raises(impp.InvalidArgument):
        impp.SipStack(engine, listen=[])


# --- the version ---


def test_version_is_the_library_version():
    assert impp.__version__ == impp.library_version() == _ffi.lib.impp_version().decode()
    assert re.fullmatch(r"\d+\.\d+\.\d+", impp.__version__)
    # The package's metadata (pip) is released with the library it wraps.
    pyproject = (PACKAGE_ROOT / "pyproject.toml").read_text()
    cargo = (REPO_ROOT / "Cargo.toml").read_text()
    [package_version] = re.findall(r'(?m)^version = "([^"]+)"', pyproject)
    cargo_version = re.search(r'(?m)^version = "([^"]+)"', cargo).group(1)
    assert package_version == cargo_version == impp.__version__


def test_version_is_not_hard_coded():
    source = (PACKAGE_ROOT / "impp" / "__init__.py").read_text()
    assert re.search(r"__version__: str = library_version\(\)", source)
    assert not re.search(r"__version__\s*=\s*[\"']", source)
