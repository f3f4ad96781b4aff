"""The one module that touches libimpp: finds and loads it, declares every function's
signature, turns status codes into exceptions, and owns the callback trampoline.

Search order (the first library that loads and has the right ABI version wins):

1. ``IMPP_LIBRARY``: a path to the library. When set, nothing else is tried, so a wrong path
   is an error rather than a silent fallback to another copy.
2. The package folder: ``impp/libimpp.so`` (bundled by ``pip install`` when present).
3. The build tree: walking up from the package to the Cargo workspace root, then
   ``$CARGO_TARGET_DIR`` (if set) and ``target/`` there, in ``debug`` and ``release``,
   newest file first.

``ctypes.CDLL`` releases the GIL during every call, which is what lets ``impp_engine_free``
join the dispatcher thread while that thread waits for the GIL to run a Python callback.

The library's log lines go to Python's ``logging``: a line from the library module
``impp::engine::shard`` is a record of the logger ``impp.engine.shard``. Which lines the
library sends is set at import from the effective level of the ``impp`` logger, and later by
:func:`set_log_level`.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import os
import sys
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    c_bool,
    c_char_p,
    c_double,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .enums import LogLevel
from .errors import Internal, InvalidArgument, error_for_status

#: The ABI version this package speaks; the library's ``impp_abi_version()`` must match.
ABI_VERSION = 3

log = logging.getLogger("impp")

if sys.platform == "darwin":
    LIBRARY_NAME = "libimpp.dylib"
elif sys.platform == "win32":
    LIBRARY_NAME = "impp.dll"
else:
    LIBRARY_NAME = "libimpp.so"


# --- Opaque handles: distinct pointer types, so ctypes refuses one handle for another. ---


class impp_config(ctypes.Structure):
    pass


class impp_engine(ctypes.Structure):
    pass


class impp_event(ctypes.Structure):
    pass


class impp_presence(ctypes.Structure):
    pass


class impp_winfo(ctypes.Structure):
    pass


class impp_dialog_info(ctypes.Structure):
    pass


class impp_message_summary(ctypes.Structure):
    pass


class impp_filter_set(ctypes.Structure):
    pass


class impp_iscomposing(ctypes.Structure):
    pass


class impp_sip_config(ctypes.Structure):
    pass


class impp_sip(ctypes.Structure):
    pass


class impp_subscribe_options(ctypes.Structure):
    pass


class impp_message_options(ctypes.Structure):
    pass


class impp_account(ctypes.Structure):
    pass


class impp_rule_list(ctypes.Structure):
    pass


class impp_subscription_list(ctypes.Structure):
    pass


class impp_resource_list(ctypes.Structure):
    pass


class impp_resource_lists(ctypes.Structure):
    pass


ConfigP = POINTER(impp_config)
EngineP = POINTER(impp_engine)
EventP = POINTER(impp_event)
PresenceP = POINTER(impp_presence)
WinfoP = POINTER(impp_winfo)
DialogInfoP = POINTER(impp_dialog_info)
MessageSummaryP = POINTER(impp_message_summary)
FilterSetP = POINTER(impp_filter_set)
IsComposingP = POINTER(impp_iscomposing)
SipConfigP = POINTER(impp_sip_config)
SipP = POINTER(impp_sip)
SubscribeOptionsP = POINTER(impp_subscribe_options)
MessageOptionsP = POINTER(impp_message_options)
AccountP = POINTER(impp_account)
RuleListP = POINTER(impp_rule_list)
SubscriptionListP = POINTER(impp_subscription_list)
ResourceListP = POINTER(impp_resource_list)
ResourceListsP = POINTER(impp_resource_lists)

#: impp_list_entry_kind values.
LIST_ENTRY_RESOURCE = 0
LIST_ENTRY_REFERENCE = 1

# Borrowed strings coming out are c_char_p (ctypes copies them into bytes at once). Owned
# strings coming out are c_void_p, so this package keeps the pointer to hand back to
# impp_string_free (a c_char_p result would copy the text and leak the original).
_status = c_int
_enum = c_int
_borrowed_out = POINTER(c_char_p)
_owned_out = POINTER(c_void_p)

EVENT_CALLBACK = CFUNCTYPE(None, EventP, c_void_p)
FREE_CALLBACK = CFUNCTYPE(None, c_void_p)
# (level, target, message, user_data); the strings arrive as bytes, copied by ctypes.
LOG_CALLBACK = CFUNCTYPE(None, c_int, c_char_p, c_char_p, c_void_p)

#: name -> (restype, argtypes) for every function this package calls. A test checks this
#: table against include/impp.h (names, parameter counts and kinds).
PROTOTYPES: Dict[str, Tuple[Any, List[Any]]] = {
    # Library
    "impp_status_name": (c_char_p, [c_int32]),
    "impp_last_error": (c_char_p, []),
    "impp_version": (c_char_p, []),
    "impp_abi_version": (c_uint32, []),
    "impp_string_free": (None, [c_void_p]),
    "impp_log_set_callback": (_status, [LOG_CALLBACK, c_void_p, FREE_CALLBACK, _enum]),
    "impp_log_set_level": (_status, [_enum]),
    # Configuration
    "impp_config_new": (_status, [POINTER(ConfigP)]),
    "impp_config_free": (None, [ConfigP]),
    "impp_config_set_workers": (_status, [ConfigP, c_uint32]),
    "impp_config_add_domain": (_status, [ConfigP, c_char_p]),
    "impp_config_set_store_path": (_status, [ConfigP, c_char_p]),
    "impp_config_set_publication_expiry": (_status, [ConfigP, c_uint32, c_uint32, c_uint32]),
    "impp_config_set_subscription_expiry": (_status, [ConfigP, c_uint32, c_uint32, c_uint32]),
    "impp_config_set_queue_capacity": (_status, [ConfigP, c_size_t]),
    "impp_config_set_default_policy": (_status, [ConfigP, c_int]),
    "impp_config_set_same_domain_policy": (_status, [ConfigP, c_int]),
    "impp_config_clear_same_domain_policy": (_status, [ConfigP]),
    "impp_config_set_min_notify_interval_ms": (_status, [ConfigP, c_uint64]),
    "impp_config_add_winfo_admin": (_status, [ConfigP, c_char_p]),
    "impp_config_set_document_limits": (_status, [ConfigP, c_size_t, c_uint32]),
    "impp_config_use_manual_clock": (_status, [ConfigP]),
    "impp_config_set_endpoint_expiry": (_status, [ConfigP, c_uint32, c_uint32, c_uint32]),
    "impp_config_set_max_message_size": (_status, [ConfigP, c_size_t]),
    "impp_config_set_message_expiry": (_status, [ConfigP, c_uint64]),
    "impp_config_set_endpoint_presence": (_status, [ConfigP, c_bool]),
    "impp_config_set_max_offline_messages_per_user": (_status, [ConfigP, c_uint32]),
    "impp_config_set_max_offline_messages_per_sender": (_status, [ConfigP, c_uint32]),
    "impp_config_set_max_subscriptions_per_watcher": (_status, [ConfigP, c_uint32]),
    "impp_config_set_max_subscriptions_per_presentity": (_status, [ConfigP, c_uint32]),
    "impp_config_set_max_endpoints_per_user": (_status, [ConfigP, c_uint32]),
    "impp_config_default_workers": (c_uint32, []),
    # Engine
    "impp_engine_new": (_status, [ConfigP, POINTER(EngineP)]),
    "impp_engine_free": (_status, [EngineP]),
    "impp_engine_publish": (
        _status,
        [EngineP, c_char_p, c_char_p, c_char_p, c_size_t, c_uint32, _owned_out],
    ),
    "impp_engine_publish_presence": (
        _status,
        [EngineP, c_char_p, PresenceP, c_uint32, _owned_out],
    ),
    "impp_engine_refresh_publication": (_status, [EngineP, c_char_p, c_uint32, _owned_out]),
    "impp_engine_modify_publication": (
        _status,
        [EngineP, c_char_p, c_char_p, c_char_p, c_size_t, _owned_out],
    ),
    "impp_engine_remove_publication": (_status, [EngineP, c_char_p]),
    "impp_engine_subscribe": (
        _status,
        [EngineP, c_char_p, c_char_p, c_char_p, SubscribeOptionsP, POINTER(c_uint64)],
    ),
    "impp_subscribe_options_new": (_status, [POINTER(SubscribeOptionsP)]),
    "impp_subscribe_options_free": (None, [SubscribeOptionsP]),
    "impp_subscribe_options_set_expires": (_status, [SubscribeOptionsP, c_uint32]),
    "impp_subscribe_options_set_fetch": (_status, [SubscribeOptionsP, c_bool]),
    "impp_subscribe_options_set_filter": (_status, [SubscribeOptionsP, c_char_p, c_size_t]),
    "impp_subscribe_options_set_min_interval_ms": (_status, [SubscribeOptionsP, c_uint32]),
    "impp_engine_refresh_subscription": (_status, [EngineP, c_uint64, c_uint32]),
    "impp_engine_unsubscribe": (_status, [EngineP, c_uint64]),
    "impp_engine_terminate_subscription": (_status, [EngineP, c_uint64, c_int]),
    "impp_engine_subscription_state": (
        _status,
        [EngineP, c_uint64, POINTER(_enum), POINTER(c_uint32), POINTER(_enum)],
    ),
    "impp_engine_authorize": (_status, [EngineP, c_uint64, c_int]),
    "impp_engine_redirect": (_status, [EngineP, c_uint64, c_char_p]),
    "impp_engine_set_redirect_rule": (
        _status,
        [EngineP, c_char_p, c_char_p, c_char_p, c_char_p],
    ),
    "impp_engine_set_rule": (_status, [EngineP, c_char_p, c_char_p, c_char_p, c_int]),
    "impp_engine_remove_rule": (
        _status,
        [EngineP, c_char_p, c_char_p, c_char_p, POINTER(c_bool)],
    ),
    "impp_engine_rules": (_status, [EngineP, c_char_p, POINTER(RuleListP)]),
    "impp_rule_list_free": (None, [RuleListP]),
    "impp_rule_list_count": (c_size_t, [RuleListP]),
    "impp_rule_list_watcher": (_status, [RuleListP, c_size_t, _borrowed_out]),
    "impp_rule_list_domain": (_status, [RuleListP, c_size_t, _borrowed_out]),
    "impp_rule_list_action": (_status, [RuleListP, c_size_t, POINTER(_enum)]),
    "impp_rule_list_target": (_status, [RuleListP, c_size_t, POINTER(c_char_p)]),
    "impp_engine_subscriptions": (_status, [EngineP, c_char_p, POINTER(SubscriptionListP)]),
    "impp_subscription_list_free": (None, [SubscriptionListP]),
    "impp_subscription_list_count": (c_size_t, [SubscriptionListP]),
    "impp_subscription_list_id": (_status, [SubscriptionListP, c_size_t, POINTER(c_uint64)]),
    "impp_subscription_list_watcher": (_status, [SubscriptionListP, c_size_t, _borrowed_out]),
    "impp_subscription_list_presentity": (
        _status,
        [SubscriptionListP, c_size_t, _borrowed_out],
    ),
    "impp_subscription_list_package": (_status, [SubscriptionListP, c_size_t, _borrowed_out]),
    "impp_subscription_list_state": (_status, [SubscriptionListP, c_size_t, POINTER(_enum)]),
    "impp_subscription_list_authorization": (
        _status,
        [SubscriptionListP, c_size_t, POINTER(_enum)],
    ),
    "impp_subscription_list_expires_in": (
        _status,
        [SubscriptionListP, c_size_t, POINTER(c_uint32)],
    ),
    # Resource lists
    "impp_resource_list_new": (_status, [c_char_p, POINTER(ResourceListP)]),
    "impp_resource_list_copy": (_status, [ResourceListP, POINTER(ResourceListP)]),
    "impp_resource_list_free": (None, [ResourceListP]),
    "impp_resource_list_set_display_name": (_status, [ResourceListP, c_char_p]),
    "impp_resource_list_add_entry": (_status, [ResourceListP, c_char_p, c_char_p]),
    "impp_resource_list_add_reference": (_status, [ResourceListP, c_char_p]),
    "impp_resource_list_add_package": (_status, [ResourceListP, c_char_p]),
    "impp_resource_list_uri": (c_char_p, [ResourceListP]),
    "impp_resource_list_display_name": (c_char_p, [ResourceListP]),
    "impp_resource_list_package_count": (c_size_t, [ResourceListP]),
    "impp_resource_list_package": (_status, [ResourceListP, c_size_t, _borrowed_out]),
    "impp_resource_list_entry_count": (c_size_t, [ResourceListP]),
    "impp_resource_list_entry_kind": (_status, [ResourceListP, c_size_t, POINTER(_enum)]),
    "impp_resource_list_entry_uri": (_status, [ResourceListP, c_size_t, _borrowed_out]),
    "impp_resource_list_entry_display_name": (
        _status,
        [ResourceListP, c_size_t, _borrowed_out],
    ),
    "impp_engine_set_list": (_status, [EngineP, ResourceListP]),
    "impp_engine_remove_list": (_status, [EngineP, c_char_p, POINTER(c_bool)]),
    "impp_engine_resource_list": (_status, [EngineP, c_char_p, POINTER(ResourceListP)]),
    "impp_engine_expand_list": (_status, [EngineP, c_char_p, POINTER(ResourceListP)]),
    "impp_engine_resource_lists": (_status, [EngineP, POINTER(ResourceListsP)]),
    "impp_resource_lists_free": (None, [ResourceListsP]),
    "impp_resource_lists_count": (c_size_t, [ResourceListsP]),
    "impp_resource_lists_item": (_status, [ResourceListsP, c_size_t, POINTER(ResourceListP)]),
    "impp_engine_next_event": (_status, [EngineP, c_int32, POINTER(EventP)]),
    "impp_engine_event_fd": (c_int, [EngineP]),
    "impp_engine_set_event_callback": (
        _status,
        [EngineP, EVENT_CALLBACK, c_void_p, FREE_CALLBACK],
    ),
    "impp_engine_stat": (c_uint64, [EngineP, c_int]),
    "impp_engine_advance_clock": (_status, [EngineP, c_uint64]),
    "impp_engine_sync": (_status, [EngineP]),
    # The SIP stack
    "impp_sip_config_new": (_status, [POINTER(SipConfigP)]),
    "impp_sip_config_free": (None, [SipConfigP]),
    "impp_sip_config_add_listen": (_status, [SipConfigP, c_char_p]),
    "impp_sip_config_add_route": (_status, [SipConfigP, c_char_p]),
    "impp_sip_config_set_authenticate": (_status, [SipConfigP, c_bool]),
    "impp_sip_config_set_federate": (_status, [SipConfigP, c_bool]),
    "impp_sip_config_set_offer_sha256": (_status, [SipConfigP, c_bool]),
    "impp_sip_config_set_t1_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_add_account": (_status, [SipConfigP, AccountP]),
    "impp_account_new": (_status, [c_char_p, c_char_p, c_char_p, POINTER(AccountP)]),
    "impp_account_free": (None, [AccountP]),
    "impp_account_set_username": (_status, [AccountP, c_char_p]),
    "impp_account_set_outbound_proxy": (_status, [AccountP, c_char_p]),
    "impp_account_set_expires": (_status, [AccountP, c_uint32]),
    "impp_account_add_list": (_status, [AccountP, c_char_p, c_char_p]),
    "impp_account_set_serve": (_status, [AccountP, c_bool]),
    "impp_account_set_keepalive": (_status, [AccountP, c_uint32]),
    "impp_account_set_xcap": (_status, [AccountP, c_char_p]),
    "impp_sip_subscribe_list": (_status, [SipP, c_size_t, c_char_p, c_char_p]),
    "impp_sip_unsubscribe_list": (_status, [SipP, c_size_t, c_char_p, c_char_p, POINTER(c_bool)]),
    "impp_sip_config_set_workers": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_list_batch_interval_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_start": (_status, [EngineP, SipConfigP, POINTER(SipP)]),
    "impp_sip_reconfigure": (_status, [SipP, SipConfigP, _owned_out, _owned_out]),
    "impp_sip_local_address": (_status, [SipP, c_char_p, _owned_out]),
    "impp_sip_free": (_status, [SipP]),
    "impp_sip_config_set_tls_files": (_status, [SipConfigP, c_char_p, c_char_p, c_char_p]),
    "impp_sip_config_set_tls_pem": (_status, [SipConfigP, c_char_p, c_char_p, c_char_p]),
    "impp_sip_config_set_max_connections": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_max_connections_per_address": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_idle_timeout_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_tls_handshake_timeout_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_unvouched_timeout_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_rate_limit": (_status, [SipConfigP, c_uint32, c_uint32]),
    "impp_sip_config_set_nonce_lifetime_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_nc_window": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_max_auth_failures": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_auth_failure_window_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_set_auth_block_ms": (_status, [SipConfigP, c_uint32]),
    "impp_sip_config_add_auth_proxy": (_status, [SipConfigP, c_char_p]),
    "impp_sip_config_add_peer": (_status, [SipConfigP, c_char_p]),
    "impp_sip_config_add_ws_origin": (_status, [SipConfigP, c_char_p]),
    "impp_sip_config_set_federation": (_status, [SipConfigP, c_int]),
    "impp_sip_config_set_migration": (_status, [SipConfigP, c_int]),
    "impp_sip_config_set_flow_timeout_ms": (_status, [SipConfigP, c_uint64]),
    "impp_sip_config_add_publisher": (_status, [SipConfigP, c_char_p]),
    "impp_sip_stat": (c_uint64, [SipP, c_int]),
    # Endpoints and instant messages
    "impp_engine_login": (_status, [EngineP, c_char_p, c_char_p, c_uint32, POINTER(c_uint32)]),
    "impp_engine_login_at": (
        _status,
        [EngineP, c_char_p, c_char_p, c_char_p, c_uint32, POINTER(c_uint32)],
    ),
    "impp_engine_logout": (_status, [EngineP, c_char_p, c_char_p, POINTER(c_bool)]),
    "impp_engine_set_user_password": (_status, [EngineP, c_char_p, c_char_p]),
    "impp_engine_remove_user": (_status, [EngineP, c_char_p, POINTER(c_bool)]),
    "impp_engine_has_user": (_status, [EngineP, c_char_p, POINTER(c_bool)]),
    # The body is passed as a pointer plus a length (it may hold NUL bytes).
    "impp_engine_send_message": (
        _status,
        [
            EngineP,
            c_char_p,
            c_char_p,
            c_char_p,
            c_char_p,
            c_size_t,
            MessageOptionsP,
            POINTER(c_uint64),
        ],
    ),
    "impp_message_options_new": (_status, [POINTER(MessageOptionsP)]),
    "impp_message_options_free": (None, [MessageOptionsP]),
    "impp_message_options_set_endpoint": (_status, [MessageOptionsP, c_char_p]),
    "impp_message_options_set_in_reply_to": (_status, [MessageOptionsP, c_char_p]),
    # Events
    "impp_event_free": (None, [EventP]),
    "impp_event_kind": (_enum, [EventP]),
    "impp_event_subscription": (c_uint64, [EventP]),
    "impp_event_watcher": (c_char_p, [EventP]),
    "impp_event_presentity": (c_char_p, [EventP]),
    "impp_event_package": (c_char_p, [EventP]),
    "impp_event_state": (_enum, [EventP, POINTER(_enum)]),
    "impp_event_etag": (c_char_p, [EventP]),
    "impp_event_has_document": (c_bool, [EventP]),
    # The body is read as a pointer plus a length, not as a NUL-terminated c_char_p.
    "impp_event_body": (_status, [EventP, POINTER(c_void_p), POINTER(c_size_t)]),
    "impp_event_message_id": (c_uint64, [EventP]),
    "impp_event_sender": (c_char_p, [EventP]),
    "impp_event_recipient": (c_char_p, [EventP]),
    "impp_event_endpoint": (c_char_p, [EventP]),
    "impp_event_content_type": (c_char_p, [EventP]),
    "impp_event_message_body": (_status, [EventP, POINTER(c_void_p), POINTER(c_size_t)]),
    "impp_event_in_reply_to": (c_char_p, [EventP]),
    "impp_event_sent_at": (c_uint64, [EventP]),
    "impp_event_delivery_outcome": (_enum, [EventP]),
    "impp_event_failure_reason": (_enum, [EventP]),
    "impp_delivery_outcome_name": (c_char_p, [c_int]),
    "impp_failure_reason_name": (c_char_p, [c_int]),
    # Presence documents
    "impp_presence_new": (_status, [c_char_p, POINTER(PresenceP)]),
    "impp_presence_parse": (_status, [c_char_p, c_size_t, POINTER(PresenceP)]),
    "impp_presence_parse_limited": (
        _status,
        [c_char_p, c_size_t, c_size_t, c_uint32, POINTER(PresenceP)],
    ),
    "impp_presence_free": (None, [PresenceP]),
    "impp_presence_clone": (_status, [PresenceP, POINTER(PresenceP)]),
    "impp_presence_to_xml": (_status, [PresenceP, _owned_out, POINTER(c_size_t)]),
    "impp_presence_entity": (_status, [PresenceP, _borrowed_out]),
    "impp_presence_tuple_count": (c_size_t, [PresenceP]),
    "impp_presence_add_tuple": (_status, [PresenceP, c_char_p, c_int, POINTER(c_size_t)]),
    "impp_presence_remove_tuple": (_status, [PresenceP, c_size_t]),
    "impp_presence_tuple_id": (_status, [PresenceP, c_size_t, _borrowed_out]),
    "impp_presence_tuple_basic": (_status, [PresenceP, c_size_t, POINTER(_enum)]),
    "impp_presence_tuple_set_basic": (_status, [PresenceP, c_size_t, c_int]),
    "impp_presence_tuple_set_contact": (_status, [PresenceP, c_size_t, c_char_p, c_double]),
    "impp_presence_tuple_contact": (
        _status,
        [PresenceP, c_size_t, _borrowed_out, POINTER(c_double)],
    ),
    "impp_presence_tuple_set_timestamp": (_status, [PresenceP, c_size_t, c_char_p]),
    "impp_presence_tuple_timestamp": (_status, [PresenceP, c_size_t, _borrowed_out]),
    "impp_presence_tuple_add_note": (_status, [PresenceP, c_size_t, c_char_p, c_char_p]),
    "impp_presence_tuple_note_count": (c_size_t, [PresenceP, c_size_t]),
    "impp_presence_tuple_note": (
        _status,
        [PresenceP, c_size_t, c_size_t, _borrowed_out, _borrowed_out],
    ),
    "impp_presence_add_note": (_status, [PresenceP, c_char_p, c_char_p]),
    "impp_presence_note_count": (c_size_t, [PresenceP]),
    "impp_presence_note": (_status, [PresenceP, c_size_t, _borrowed_out, _borrowed_out]),
    "impp_presence_tuple_set_capability": (_status, [PresenceP, c_size_t, c_int, c_int]),
    "impp_presence_tuple_capability": (
        _status,
        [PresenceP, c_size_t, c_int, POINTER(c_int)],
    ),
    "impp_presence_tuple_add_media_type": (_status, [PresenceP, c_size_t, c_char_p]),
    "impp_presence_tuple_media_type_count": (c_size_t, [PresenceP, c_size_t]),
    "impp_presence_tuple_media_type": (
        _status,
        [PresenceP, c_size_t, c_size_t, _borrowed_out],
    ),
    "impp_presence_tuple_add_duplex": (_status, [PresenceP, c_size_t, c_char_p, c_bool]),
    "impp_presence_tuple_duplex": (
        _status,
        [PresenceP, c_size_t, c_char_p, POINTER(c_int)],
    ),
    "impp_presence_add_activity": (_status, [PresenceP, c_char_p]),
    "impp_presence_add_other_activity": (_status, [PresenceP, c_char_p]),
    "impp_presence_clear_activities": (_status, [PresenceP]),
    "impp_presence_activity_count": (c_size_t, [PresenceP]),
    "impp_presence_activity": (_status, [PresenceP, c_size_t, _borrowed_out, _borrowed_out]),
    "impp_presence_add_mood": (_status, [PresenceP, c_char_p]),
    "impp_presence_mood_count": (c_size_t, [PresenceP]),
    "impp_presence_mood": (_status, [PresenceP, c_size_t, _borrowed_out]),
    "impp_presence_set_user_input": (_status, [PresenceP, c_int, c_char_p]),
    "impp_presence_user_input": (_status, [PresenceP, POINTER(_enum), _borrowed_out]),
    "impp_presence_add_person_note": (_status, [PresenceP, c_char_p, c_char_p]),
    "impp_presence_person_note_count": (c_size_t, [PresenceP]),
    "impp_presence_person_note": (
        _status,
        [PresenceP, c_size_t, _borrowed_out, _borrowed_out],
    ),
    # An Event keeps a copy of its body and parses that (see events.py); these are declared
    # so that this table covers the whole document API of the header.
    "impp_event_presence": (_status, [EventP, POINTER(PresenceP)]),
    "impp_event_winfo": (_status, [EventP, POINTER(WinfoP)]),
    "impp_event_dialog_info": (_status, [EventP, POINTER(DialogInfoP)]),
    "impp_event_message_summary": (_status, [EventP, POINTER(MessageSummaryP)]),
    # Watcher information (read-only)
    "impp_winfo_parse": (_status, [c_char_p, c_size_t, POINTER(WinfoP)]),
    "impp_winfo_free": (None, [WinfoP]),
    "impp_winfo_to_xml": (_status, [WinfoP, _owned_out, POINTER(c_size_t)]),
    "impp_winfo_version": (_status, [WinfoP, POINTER(c_uint32)]),
    "impp_winfo_state": (_status, [WinfoP, POINTER(_enum)]),
    "impp_winfo_list_count": (c_size_t, [WinfoP]),
    "impp_winfo_list_resource": (_status, [WinfoP, c_size_t, _borrowed_out]),
    "impp_winfo_list_package": (_status, [WinfoP, c_size_t, _borrowed_out]),
    "impp_winfo_watcher_count": (c_size_t, [WinfoP, c_size_t]),
    "impp_winfo_watcher_id": (_status, [WinfoP, c_size_t, c_size_t, _borrowed_out]),
    "impp_winfo_watcher_uri": (_status, [WinfoP, c_size_t, c_size_t, _borrowed_out]),
    "impp_winfo_watcher_status": (_status, [WinfoP, c_size_t, c_size_t, POINTER(_enum)]),
    "impp_winfo_watcher_event": (_status, [WinfoP, c_size_t, c_size_t, POINTER(_enum)]),
    "impp_winfo_watcher_display_name": (
        _status,
        [WinfoP, c_size_t, c_size_t, _borrowed_out],
    ),
    "impp_winfo_watcher_duration_subscribed": (
        _status,
        [WinfoP, c_size_t, c_size_t, POINTER(c_int64)],
    ),
    "impp_winfo_watcher_expiration": (
        _status,
        [WinfoP, c_size_t, c_size_t, POINTER(c_int64)],
    ),
    # Dialog information
    "impp_dialog_info_new": (_status, [c_char_p, POINTER(DialogInfoP)]),
    "impp_dialog_info_parse": (_status, [c_char_p, c_size_t, POINTER(DialogInfoP)]),
    "impp_dialog_info_free": (None, [DialogInfoP]),
    "impp_dialog_info_to_xml": (_status, [DialogInfoP, _owned_out, POINTER(c_size_t)]),
    "impp_dialog_info_version": (_status, [DialogInfoP, POINTER(c_uint32)]),
    "impp_dialog_info_state": (_status, [DialogInfoP, POINTER(_enum)]),
    "impp_dialog_info_entity": (_status, [DialogInfoP, _borrowed_out]),
    "impp_dialog_info_dialog_count": (c_size_t, [DialogInfoP]),
    "impp_dialog_info_dialog_id": (_status, [DialogInfoP, c_size_t, _borrowed_out]),
    "impp_dialog_info_dialog_call_id": (_status, [DialogInfoP, c_size_t, _borrowed_out]),
    "impp_dialog_info_dialog_local_tag": (_status, [DialogInfoP, c_size_t, _borrowed_out]),
    "impp_dialog_info_dialog_remote_tag": (_status, [DialogInfoP, c_size_t, _borrowed_out]),
    "impp_dialog_info_dialog_direction": (_status, [DialogInfoP, c_size_t, POINTER(_enum)]),
    "impp_dialog_info_dialog_state": (
        _status,
        [DialogInfoP, c_size_t, POINTER(_enum), POINTER(_enum), POINTER(c_int)],
    ),
    "impp_dialog_info_dialog_local_identity": (
        _status,
        [DialogInfoP, c_size_t, _borrowed_out, _borrowed_out],
    ),
    "impp_dialog_info_dialog_remote_identity": (
        _status,
        [DialogInfoP, c_size_t, _borrowed_out, _borrowed_out],
    ),
    "impp_dialog_info_add_dialog": (
        _status,
        [DialogInfoP, c_char_p, c_int, POINTER(c_size_t)],
    ),
    "impp_dialog_info_remove_dialog": (_status, [DialogInfoP, c_size_t]),
    "impp_dialog_info_dialog_set_state": (_status, [DialogInfoP, c_size_t, c_int, c_int, c_int]),
    "impp_dialog_info_dialog_set_call_id": (_status, [DialogInfoP, c_size_t, c_char_p]),
    "impp_dialog_info_dialog_set_local_tag": (_status, [DialogInfoP, c_size_t, c_char_p]),
    "impp_dialog_info_dialog_set_remote_tag": (_status, [DialogInfoP, c_size_t, c_char_p]),
    "impp_dialog_info_dialog_set_direction": (_status, [DialogInfoP, c_size_t, c_int]),
    "impp_dialog_info_dialog_set_remote_identity": (
        _status,
        [DialogInfoP, c_size_t, c_char_p, c_char_p],
    ),
    # Message summaries
    "impp_message_summary_new": (_status, [c_bool, POINTER(MessageSummaryP)]),
    "impp_message_summary_parse": (_status, [c_char_p, c_size_t, POINTER(MessageSummaryP)]),
    "impp_message_summary_free": (None, [MessageSummaryP]),
    "impp_message_summary_to_text": (
        _status,
        [MessageSummaryP, _owned_out, POINTER(c_size_t)],
    ),
    "impp_message_summary_messages_waiting": (_status, [MessageSummaryP, POINTER(c_bool)]),
    "impp_message_summary_set_messages_waiting": (_status, [MessageSummaryP, c_bool]),
    "impp_message_summary_account": (_status, [MessageSummaryP, _borrowed_out]),
    "impp_message_summary_set_account": (_status, [MessageSummaryP, c_char_p]),
    "impp_message_summary_class_count": (c_size_t, [MessageSummaryP]),
    "impp_message_summary_class_name": (_status, [MessageSummaryP, c_size_t, _borrowed_out]),
    "impp_message_summary_class_counts": (
        _status,
        [
            MessageSummaryP,
            c_size_t,
            POINTER(c_uint32),
            POINTER(c_uint32),
            POINTER(c_int64),
            POINTER(c_int64),
        ],
    ),
    "impp_message_summary_set_count": (
        _status,
        [MessageSummaryP, c_char_p, c_uint32, c_uint32, POINTER(c_size_t)],
    ),
    "impp_message_summary_set_urgent": (_status, [MessageSummaryP, c_char_p, c_int64, c_int64]),
    # Filter sets
    "impp_filter_set_parse": (_status, [c_char_p, c_size_t, POINTER(FilterSetP)]),
    "impp_filter_set_free": (None, [FilterSetP]),
    "impp_filter_set_to_xml": (_status, [FilterSetP, _owned_out, POINTER(c_size_t)]),
    "impp_filter_set_filter_count": (c_size_t, [FilterSetP]),
    "impp_filter_set_filter_id": (_status, [FilterSetP, c_size_t, _borrowed_out]),
    "impp_filter_set_filter_uri": (_status, [FilterSetP, c_size_t, _borrowed_out]),
    "impp_filter_set_filter_domain": (_status, [FilterSetP, c_size_t, _borrowed_out]),
    "impp_filter_set_apply": (
        _status,
        [FilterSetP, c_char_p, PresenceP, POINTER(PresenceP)],
    ),
    # Is-composing indications
    "impp_iscomposing_new": (_status, [c_int, POINTER(IsComposingP)]),
    "impp_iscomposing_parse": (_status, [c_char_p, c_size_t, POINTER(IsComposingP)]),
    "impp_iscomposing_free": (None, [IsComposingP]),
    "impp_iscomposing_to_xml": (_status, [IsComposingP, _owned_out, POINTER(c_size_t)]),
    "impp_iscomposing_state": (_status, [IsComposingP, POINTER(_enum)]),
    "impp_iscomposing_set_state": (_status, [IsComposingP, c_int]),
    "impp_iscomposing_last_active": (_status, [IsComposingP, _borrowed_out]),
    "impp_iscomposing_set_last_active": (_status, [IsComposingP, c_char_p]),
    "impp_iscomposing_content_type": (_status, [IsComposingP, _borrowed_out]),
    "impp_iscomposing_set_content_type": (_status, [IsComposingP, c_char_p]),
    "impp_iscomposing_refresh": (_status, [IsComposingP, POINTER(c_int64)]),
    "impp_iscomposing_set_refresh": (_status, [IsComposingP, c_int64]),
    "impp_iscomposing_active_expires_after": (_status, [IsComposingP, POINTER(c_int64)]),
}


# --- Finding and loading the library ---


def _build_tree_candidates(start: Path) -> List[Path]:
    """Library paths under the Cargo target directories of the workspace above ``start``
    (existing or not), the existing ones first, newest first."""
    root = None
    for folder in [start, *start.parents]:
        if (folder / "Cargo.toml").is_file():
            root = folder  # keep going: the outermost Cargo.toml is the workspace root
    if root is None:
        return []
    target_dirs = []
    env_target = os.environ.get("CARGO_TARGET_DIR")
    if env_target:
        target_dirs.append(root / env_target)  # an absolute value replaces root
    target_dirs.append(root / "target")
    paths: List[Path] = []
    for target in target_dirs:
        for profile in ("debug", "release"):
            lib = target / profile / LIBRARY_NAME
            if lib not in paths:
                paths.append(lib)
    existing = sorted((p for p in paths if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    return existing + [p for p in paths if p not in existing]


def candidates() -> List[Path]:
    """Where the library is looked for, in order (see the module notes)."""
    explicit = os.environ.get("IMPP_LIBRARY")
    if explicit:
        return [Path(explicit)]
    here = Path(__file__).resolve().parent
    return [here / LIBRARY_NAME, *_build_tree_candidates(here)]


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


def _load() -> Tuple[ctypes.CDLL, Path]:
    tried = []
    paths = candidates()
    explicit = bool(os.environ.get("IMPP_LIBRARY"))
    for path in paths:
        # IMPP_LIBRARY goes to the loader as given (it may also be a name it resolves).
        if not explicit and not path.is_file():
            tried.append(f"{path}: not found")
            continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            tried.append(f"{path}: {e}")
            continue
        try:
            lib.impp_abi_version.restype = c_uint32
            lib.impp_abi_version.argtypes = []
            abi = lib.impp_abi_version()
        except AttributeError:
            tried.append(f"{path}: not libimpp (no impp_abi_version)")
            continue
        if abi != ABI_VERSION:
            tried.append(f"{path}: ABI version {abi}, this package needs {ABI_VERSION}")
            continue
        try:
            _declare(lib)
        except AttributeError as e:
            tried.append(f"{path}: missing a function ({e})")
            continue
        return lib, path
    if len(paths) == 1 and not explicit:
        tried.append("(no Cargo build tree above the package)")
    raise ImportError(
        "impp: cannot load libimpp (set IMPP_LIBRARY to its path, or run `cargo build`). "
        "Tried:\n  " + "\n  ".join(tried)
    )


lib, library_path = _load()


# --- Calling conventions ---


def check(status: int) -> None:
    """Raises the exception for a failed call. Call it right after the call, on the same
    thread: the message is the thread's last-error text, which the next call clears."""
    if status != 0:
        message = lib.impp_last_error()
        raise error_for_status(status, message.decode("utf-8", "replace") if message else None)


def encode(value: Union[str, bytes], what: str) -> bytes:
    """A str argument as NUL-terminated UTF-8. None (where the header allows NULL) is
    handled by the callers with ``encode_optional``."""
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    else:
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if b"\0" in data:
        # C would silently see a shorter string; refuse instead.
        raise InvalidArgument(f"{what} contains a NUL character: {value!r}", -1)
    return data


def encode_optional(value: Optional[Union[str, bytes]], what: str) -> Optional[bytes]:
    """As :func:`encode`, with None passed on (NULL, where the header allows it)."""
    return None if value is None else encode(value, what)


def body_bytes(value: Union[str, bytes], what: str) -> bytes:
    """A document passed with an explicit length (may contain anything, even NUL)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes, not {type(value).__name__}")


def decode(value: Optional[bytes]) -> Optional[str]:
    """A borrowed C string (copied by ctypes into bytes, or None for NULL) as a str."""
    return None if value is None else value.decode("utf-8")


def decode_required(value: Optional[bytes], what: str) -> str:
    """A borrowed C string the header promises is never NULL on success, as a str."""
    if value is None:
        raise Internal(f"the library returned no {what}")
    return value.decode("utf-8")


def take_owned(ptr: c_void_p) -> Optional[str]:
    """Copies an owned C string into a Python str and frees it with impp_string_free."""
    if not ptr.value:
        return None
    try:
        return ctypes.string_at(ptr.value).decode("utf-8")
    finally:
        lib.impp_string_free(ptr)


def owned_text(fn: Callable[[Any, Any, Any], int], handle: Any) -> str:
    """Calls a ``*_to_xml``/``*_to_text`` function (handle, owned text out, length out) and
    copies and frees the text."""
    out = c_void_p()
    length = c_size_t()
    check(fn(handle, ctypes.byref(out), ctypes.byref(length)))
    try:
        return ctypes.string_at(out.value or 0, length.value).decode("utf-8")
    finally:
        lib.impp_string_free(out)


def version() -> str:
    """The loaded library's version string."""
    return str(lib.impp_version().decode("ascii"))


def status_name(status: int) -> str:
    """The C name of a status code (``"IMPP_ERR_MALFORMED"``), from the library."""
    return str(lib.impp_status_name(status).decode("ascii"))


# --- Callbacks ---
#
# One trampoline for every engine and every callback, created once and never freed, so
# the C side can never call into a collected ctypes thunk. user_data is an integer key into
# _registry; the free thunk (which the library runs exactly once, after the last call)
# removes the entry and with it the last reference this package holds to the callable.

_registry: Dict[int, Callable[[Any], None]] = {}
_registry_lock = threading.Lock()
_keys = itertools.count(1)  # 0 would be NULL
_local = threading.local()


def register(fn: Callable[[Any], None]) -> int:
    """Stores ``fn`` (called with the borrowed event pointer) and returns its key."""
    with _registry_lock:
        key = next(_keys)
        _registry[key] = fn
        return key


def registered() -> int:
    """How many callables are registered (for tests: entries must not leak)."""
    with _registry_lock:
        return len(_registry)


def in_callback() -> bool:
    """Whether the calling thread is running an event callback right now."""
    depth: int = getattr(_local, "depth", 0)
    return depth > 0


def _on_event(event: Any, user_data: Optional[int]) -> None:
    # Nothing may escape: an exception here would be printed by ctypes and lost, and must
    # never reach the library.
    try:
        with _registry_lock:
            fn = _registry.get(user_data or 0)
        if fn is None:
            return
        _local.depth = getattr(_local, "depth", 0) + 1
        try:
            fn(event)
        finally:
            _local.depth -= 1
    except BaseException:  # noqa: B902 - KeyboardInterrupt/SystemExit must not reach C either
        try:
            log.exception("impp: exception in an event callback (delivery continues)")
        except BaseException:
            pass


def _on_free(user_data: Optional[int]) -> None:
    try:
        with _registry_lock:
            _registry.pop(user_data or 0, None)
    except BaseException:
        pass


TRAMPOLINE = EVENT_CALLBACK(_on_event)
FREE_THUNK = FREE_CALLBACK(_on_free)
# NULL function pointers, for impp_engine_set_event_callback(engine, NULL, NULL, NULL).
NO_EVENT_CALLBACK = EVENT_CALLBACK()
NO_FREE_CALLBACK = FREE_CALLBACK()


# --- Log lines ---
#
# One trampoline, created once and never freed (the library may call it on any of its
# threads until the callback is removed at exit). It takes no user data: every line goes to
# the logging module. Python's logging is thread-safe; the trampoline holds the GIL while it
# runs (ctypes takes it), and never lets an exception reach the library.

#: The level of the library's per-notification lines, below ``logging.DEBUG``.
TRACE = LogLevel.TRACE
#: Python level of each library level (impp_log_level).
_PY_LEVEL = {
    1: LogLevel.ERROR,
    2: LogLevel.WARNING,
    3: LogLevel.INFO,
    4: LogLevel.DEBUG,
    5: LogLevel.TRACE,
}
_LEVEL_NAMES: Dict[str, int] = {
    **{level.name.lower(): int(level) for level in LogLevel},
    "warn": logging.WARNING,
    "critical": logging.CRITICAL,
}
_loggers: Dict[bytes, logging.Logger] = {}
_log_level = logging.WARNING  # the Python level the library was last set to


def _library_level(py_level: int) -> int:
    """The impp_log_level sending every line a logger at ``py_level`` lets through."""
    if py_level <= TRACE:
        return 5
    if py_level <= logging.DEBUG:
        return 4
    if py_level <= logging.INFO:
        return 3
    if py_level <= logging.WARNING:
        return 2
    return 1


def _logger_for(target: Optional[bytes]) -> logging.Logger:
    found = _loggers.get(target or b"")
    if found is None:
        name = (target or b"").decode("utf-8", "replace").replace("::", ".")
        if name != "impp" and not name.startswith("impp."):
            name = "impp." + name if name else "impp"
        found = logging.getLogger(name)
        _loggers[target or b""] = found
    return found


def _on_log(
    level: int, target: Optional[bytes], message: Optional[bytes], user_data: Optional[int]
) -> None:
    # Runs on library threads too; nothing may escape into C.
    try:
        logger = _logger_for(target)
        py_level = _PY_LEVEL.get(level, logging.ERROR)
        if logger.isEnabledFor(py_level):
            text = (message or b"").decode("utf-8", "replace")
            logger.log(py_level, "%s", text)
    except BaseException:  # noqa: B902 - not even KeyboardInterrupt may reach C
        pass


def set_log_level(level: Union[LogLevel, int, str, None] = None) -> int:
    """Sets which library lines reach ``logging``: a :class:`impp.LogLevel` or any logging
    level (``logging.DEBUG``, or :data:`TRACE` = 5 for per-notification lines) or its name
    (``"debug"``, ``"trace"``...; another name raises :class:`impp.InvalidArgument`);
    None (the default) follows the current effective level of the ``impp`` logger, as at
    import. Lines below it are dropped inside the library at the cost of an atomic load, so
    call this again after lowering the ``impp`` logger's level. Returns the previous level."""
    global _log_level
    if level is None:
        py_level = logging.getLogger("impp").getEffectiveLevel()
    elif isinstance(level, str):
        py_level = _LEVEL_NAMES.get(level.lower(), -1)
        if py_level < 0:
            raise InvalidArgument(
                f"unknown log level {level!r} (one of {', '.join(_LEVEL_NAMES)})"
            )
    elif isinstance(level, int) and not isinstance(level, bool):
        py_level = level
    else:
        raise TypeError(f"level must be a logging level, a name or None, not {level!r}")
    check(lib.impp_log_set_level(_library_level(py_level)))
    previous, _log_level = _log_level, py_level
    return previous


def _install_log_callback() -> None:
    global _log_level
    _log_level = logging.getLogger("impp").getEffectiveLevel()
    check(
        lib.impp_log_set_callback(
            LOG_TRAMPOLINE, None, NO_FREE_CALLBACK, _library_level(_log_level)
        )
    )


@atexit.register
def _remove_log_callback() -> None:
    # Registered before the engine module's exit handler, so it runs after engines closed:
    # from here on, lines go to standard error instead of into a finalizing interpreter.
    try:
        lib.impp_log_set_callback(NO_LOG_CALLBACK, None, NO_FREE_CALLBACK, 2)
    except BaseException:
        pass


LOG_TRAMPOLINE = LOG_CALLBACK(_on_log)
NO_LOG_CALLBACK = LOG_CALLBACK()
_install_log_callback()
