//! SIP SIMPLE (DESIGN §5), in layers a reader can hold one at a time; each knows only the
//! ones below it.
//!
//! | layer | modules |
//! | --- | --- |
//! | codec (no I/O) | [`message`] (a parsed message), [`header`] (typed values), [`name`] (header names), [`builder`] (building messages), [`framing`] (a TCP stream cut into messages), [`multipart`] (`multipart/related` bodies) and [`list_body`] (the RLMI body of a list NOTIFY, RFC 4662), [`recipient_list`] (a resource list sent in a SUBSCRIBE, RFC 5367), `proxy` (a request as a proxy forwards it), [`dialog`] (a subscription dialog as bytes), [`digest`] and [`digest_client`] (digest authentication), [`route`] (next hops), `page` (MESSAGE ↔ engine message) |
//! | stack | `stack` (knows no role: the transport, transactions, the engine's clock and the timer thread's `alarm`, tokens, outcomes to whoever waits), [`transport`] (UDP, TCP, TLS and WebSocket on a mio I/O thread; `transport::websocket` the RFC 7118 handshake and framing, `transport::web_root` the static files of `--web-root`), [`transaction`] (non-INVITE client and server transactions, without I/O), [`traffic`] (answers by method and class, requests sent and their outcomes, counted), [`dns`] (next hops by name, RFC 3263: NAPTR, SRV, A/AAAA, cached, on a resolver thread of its own) |
//! | server roles | [`server`]: registrar, publisher, notifier, list server, pager, forwarder |
//! | agent roles | [`agent`]: back-end subscriptions (federation), accounts |
//! | node | [`node`]: [`SipServer`], which builds the stack and the roles and gives each request and engine event to its role |
//!
//! Parsing does the least work a server needs on every message: one pass over the bytes that
//! checks the start line and the line structure and records where each header name and value
//! lies; the bytes are stored once. Typed values are parsed only when an accessor asks for
//! them, and URIs only when [`header::NameAddr::uri`] or [`message::SipMessage::request_uri`]
//! is called.
//!
//! Everything is bounded by [`SipLimits`]; input over a limit is [`Error::TooLarge`], any other
//! bad input is [`Error::Malformed`] with a message naming what is wrong.
//!
//! [`Error::TooLarge`]: crate::Error::TooLarge
//! [`Error::Malformed`]: crate::Error::Malformed
#![forbid(unsafe_code)]

pub mod agent;
mod alarm;
pub mod builder;
pub mod dialog;
pub mod digest;
pub mod digest_client;
pub mod dns;
pub mod framing;
pub mod guard;
pub mod header;
mod lex;
pub mod list_body;
pub(crate) mod live;
pub mod message;
pub mod multipart;
pub mod name;
pub mod node;
pub(crate) mod page;
pub(crate) mod proxy;
pub mod rate;
pub mod recipient_list;
pub mod route;
pub mod server;
pub(crate) mod stack;
pub mod tls;
pub mod traffic;
pub mod transaction;
pub mod transport;

pub use builder::{bad_request, MessageBuilder};
pub use framing::{Frame, Framer};
pub use guard::GuardStats;
pub use header::{
    AuthValue, CSeq, Contacts, ContentType, Event, NameAddr, Param, Params, SubscriptionState, Via,
};
pub use message::SipMessage;
pub use node::{ConnectionLimits, LoadStats, Reconfigured, SipServer, SipServerConfig};
pub use server::handover::{HandoverStats, Migration};
pub use server::throttle::AuthLimits;
pub use server::trust::{
    Federation, Network, PeerSource, PublisherId, TrustedPeer, TrustedPublisher,
};
pub use traffic::TrafficStats;

/// Bounds on what the parser and the stream framer accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipLimits {
    /// Largest message (start line, headers and body), in bytes.
    pub max_message_size: usize,
    /// Most header fields (lines, counting each repeated header once per line).
    pub max_headers: usize,
    /// Longest line (the start line, or one header field with its folded continuations).
    pub max_line_length: usize,
}

impl SipLimits {
    /// 64 KiB messages, 128 header fields, 8 KiB lines.
    pub const DEFAULT: SipLimits = SipLimits {
        max_message_size: 64 * 1024,
        max_headers: 128,
        max_line_length: 8 * 1024,
    };
}

impl Default for SipLimits {
    fn default() -> Self {
        SipLimits::DEFAULT
    }
}

/// The kind of transport a message arrived on; it decides how a missing Content-Length is read
/// (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: the message is one datagram. Without Content-Length the body is the rest of the
    /// datagram; bytes beyond Content-Length are discarded.
    Datagram,
    /// TCP or TLS: Content-Length is mandatory, and the input must end where the body ends.
    Stream,
}
