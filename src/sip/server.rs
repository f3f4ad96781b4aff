//! The server roles (DESIGN §5): what the server does with the requests for the domains
//! it owns, each role a type of its own over the stack (`crate::sip::stack::Stack`) and
//! the engine's API. Roles never reach into each other: the node
//! ([`crate::sip::node::SipServer`]) gives each request to its role and each engine event
//! to the role that delivers it.
//!
//! | role | requests | what they become |
//! | --- | --- | --- |
//! | `registrar::Registrar` | REGISTER | [`Core::login_at`] per contact |
//! | `publisher::Publisher` | PUBLISH | publish / refresh / modify / remove |
//! | `notifier::Notifier` | SUBSCRIBE (and the NOTIFYs it sends) | a subscription whose target is the dialog; NOTIFYs from its notifications, one in flight per dialog |
//! | `list_server::ListServer` | SUBSCRIBE to a resource list, or carrying its own (RFC 5367), or inside a list dialog (RFC 4662) | resources of owned domains through members of each resource's shared engine subscription, others through a back subscription each (no SIP to itself); batched `multipart/related` RLMI NOTIFYs, one in flight per list dialog; dialogs kept in the store's own table |
//! | `pager::Pager` | MESSAGE | [`Core::send_message`]; relayed to registered contacts, answered `200` only once a device took it |
//! | `forwarder::Forwarder` | a non-INVITE request for another domain with a route | forwarded to its next hop, as a proxy |
//! | `handover::Handover` | (none: it learns from what the forwarder relays) | the dialogs handed to devices serving their own watchers, taken back when a device goes |
//!
//! Shared below the roles: `auth` (digest authentication and identity checks), with
//! `throttle` (the brake on password guessing it applies), [`trust`] (who may speak for
//! another domain's users, and for the owned domains' users besides themselves) and
//! `dialog_table` (the notifier's table, in a file of its own).
//!
//! [`Core::login_at`]: crate::engine::Core::login_at
//! [`Core::send_message`]: crate::engine::Core::send_message
#![forbid(unsafe_code)]

pub(crate) mod auth;
pub(crate) mod dialog_table;
pub(crate) mod forwarder;
pub(crate) mod handover;
pub(crate) mod list_server;
pub(crate) mod notifier;
pub(crate) mod pager;
pub(crate) mod publisher;
pub(crate) mod registrar;
pub(crate) mod throttle;
pub mod trust;

use crate::sip::stack::{Reply, Request, Stack};

/// Methods the server answers.
pub const ALLOW: &str = "REGISTER, SUBSCRIBE, NOTIFY, PUBLISH, MESSAGE, OPTIONS";
/// Event packages the server serves.
pub const ALLOW_EVENTS: &str = "presence, presence.winfo, dialog, message-summary";

/// The option tags a request of `method` may require of this server (RFC 3261 §20.32):
/// RFC 4662's `eventlist` (a list SUBSCRIBE, and the NOTIFYs of the list client's dialogs)
/// and RFC 5367's `recipient-list-subscribe` (a SUBSCRIBE carrying its own list); no other
/// extension is implemented, for any method.
pub(crate) fn supported_requirements(method: &str) -> &'static [&'static str] {
    match method {
        "SUBSCRIBE" => &[
            "eventlist",
            crate::sip::recipient_list::RECIPIENT_LIST_SUBSCRIBE,
        ],
        "NOTIFY" => &["eventlist"],
        _ => &[],
    }
}

/// `420 Bad Extension` with `Unsupported` naming each option tag of the request's Require
/// headers that this server does not implement for its method (RFC 3261 §8.2.2.3: a UAS
/// must not serve a request whose requirements it does not know); `None` when there is
/// none. ACK and CANCEL are never refused so (§8.2.2.3). Requests the server relays as a
/// proxy are not its to judge (a proxy ignores Require, §16.3) and never come here.
pub(crate) fn bad_extension(stack: &Stack, request: &Request) -> Option<Reply> {
    let method = request.key.method.as_str();
    if matches!(method, "ACK" | "CANCEL") {
        return None;
    }
    let known = supported_requirements(method);
    let mut unknown: Vec<&str> = Vec::new();
    for tag in request
        .message
        .headers("Require")
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        if !known.iter().any(|k| k.eq_ignore_ascii_case(tag))
            && !unknown.iter().any(|u| u.eq_ignore_ascii_case(tag))
        {
            unknown.push(tag);
        }
    }
    if unknown.is_empty() {
        return None;
    }
    crate::log::debug!("SIP: 420 for {method} requiring {unknown:?}");
    let mut answer = stack.reply(request, 420, "Bad Extension");
    if answer.header("Unsupported", &unknown.join(", ")).is_err() {
        // A tag that cannot be written back as it came (a control character, say).
        return Some(stack.reply(
            request,
            400,
            "Bad Request (Require is not a list of option tags)",
        ));
    }
    Some(answer)
}

/// `489 Bad Event` for a request naming `what`, with the packages served.
pub(crate) fn bad_event(stack: &Stack, request: &Request, what: &str) -> Reply {
    crate::log::debug!("SIP: 489 for event '{what}'");
    let mut answer = stack.reply(request, 489, "Bad Event");
    let _ = answer.header("Allow-Events", ALLOW_EVENTS);
    answer
}
