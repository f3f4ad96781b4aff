//! SIP SIMPLE (DESIGN §5): the message codec (RFC 3261 §7, §20, §25) for the non-INVITE
//! requests presence and instant messaging use, transports, transactions, digest
//! authentication, subscription dialogs, and the server role over the engine.
//!
//! | module | concept |
//! | --- | --- |
//! | [`agent`] | the server as a user agent of other domains: federation, accounts |
//! | [`message`] | a parsed message: start line, header index, body; typed values on demand |
//! | [`header`] | typed header values (name-addr, Via, CSeq, Event, Subscription-State, ...) |
//! | [`name`] | header names: case-insensitive matching and the compact forms |
//! | [`builder`] | building requests and responses, and the `400 Bad Request` for a bad request |
//! | [`framing`] | cutting a TCP byte stream into messages and keep-alives (RFC 5626) |
//! | [`transport`] | UDP and TCP on a mio I/O thread |
//! | [`transaction`] | non-INVITE client and server transactions, without I/O |
//! | [`digest`] | server-side digest authentication (RFC 7616, 8760) |
//! | [`digest_client`] | answering a digest challenge as a client (RFC 7616, 8760, 2617) |
//! | [`dialog`] | the notifier's subscription dialog, kept as the engine's subscription target |
//! | [`route`] | next hops for the domains this engine does not own |
//! | [`server`] | the server role: REGISTER, PUBLISH, SUBSCRIBE/NOTIFY, MESSAGE, OPTIONS over the engine |
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
pub mod framing;
pub mod header;
mod lex;
pub mod message;
pub mod name;
pub mod node;
pub(crate) mod page;
pub(crate) mod proxy;
pub mod route;
pub mod server;
pub(crate) mod stack;
pub mod transaction;
pub mod transport;

pub use builder::{bad_request, MessageBuilder};
pub use framing::{Frame, Framer};
pub use header::{
    AuthValue, CSeq, Contacts, ContentType, Event, NameAddr, Param, Params, SubscriptionState, Via,
};
pub use message::SipMessage;
pub use node::{SipServer, SipServerConfig};

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
