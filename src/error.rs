//! The one error type of the library.
//!
//! Every variant maps onto exactly one C status code (`impp_status` in `include/impp.h`) and,
//! later, one Python exception class. The message says what was wrong and with which value.
#![forbid(unsafe_code)]

/// What went wrong, with a message naming the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An argument was missing, not valid UTF-8, or out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A URI did not parse.
    #[error("invalid URI: {0}")]
    InvalidUri(String),
    /// A document is not well-formed or does not follow its schema.
    #[error("malformed document: {0}")]
    Malformed(String),
    /// A document is over the configured size or nesting depth.
    #[error("too large: {0}")]
    TooLarge(String),
    /// A document uses a DOCTYPE, an entity declaration or an unknown entity reference.
    #[error("unsafe XML refused: {0}")]
    UnsafeXml(String),
    /// A request is valid but outside what this library implements (e.g. an XPath form).
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// An index, key or item does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A bug: a panic was caught at the C boundary.
    #[error("internal error: {0}")]
    Internal(String),
    /// A publication's entity tag is unknown or expired (SIP maps it to 412).
    #[error("unknown entity tag: {0}")]
    UnknownEntityTag(String),
    /// A requested expiry is shorter than the configured minimum (SIP maps it to 423).
    #[error("interval too brief: {0}")]
    IntervalTooBrief(String),
    /// An event package the engine does not serve (SIP maps it to 489).
    #[error("unknown event package: {0}")]
    UnknownPackage(String),
    /// The engine is shut down or shutting down.
    #[error("engine shut down: {0}")]
    Shutdown(String),
    /// The call would deadlock: it was made from inside an event callback.
    #[error("not allowed from inside a callback: {0}")]
    InCallback(String),
    /// The requester may not do this (e.g. watch another presentity's watchers).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Durable storage failed: the store cannot be opened, read or written (I/O, disk full,
    /// locked). Nothing the call would have changed was kept.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The network failed: a listen address cannot be bound (in use, or not an address of
    /// this host), or a socket cannot be set up.
    #[error("network failure: {0}")]
    Network(String),
    /// A configured bound on the engine's state is reached (subscriptions per watcher or
    /// per presentity, endpoints per user): the request is refused and nothing changed.
    /// Room comes back when some of that state ends.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// The subscription is not served here: the presentity's rules (or its decision on this
    /// watcher) send the watcher to another presence agent. The message is that agent's URI
    /// and nothing else (SIP answers `302 Moved Temporarily` with it as `Contact`).
    #[error("{0}")]
    Moved(String),
}

impl Error {
    /// The stable numeric code of this error, as the C API returns it. Never renumbered.
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) => -1,
            Error::InvalidUri(_) => -2,
            Error::Malformed(_) => -3,
            Error::TooLarge(_) => -4,
            Error::UnsafeXml(_) => -5,
            Error::Unsupported(_) => -6,
            Error::NotFound(_) => -7,
            Error::Internal(_) => -8,
            Error::UnknownEntityTag(_) => -9,
            Error::IntervalTooBrief(_) => -10,
            Error::UnknownPackage(_) => -11,
            Error::Shutdown(_) => -12,
            Error::InCallback(_) => -13,
            Error::Forbidden(_) => -14,
            Error::Storage(_) => -15,
            Error::Network(_) => -16,
            Error::LimitReached(_) => -17,
            Error::Moved(_) => -18,
        }
    }

    pub(crate) fn malformed(doc: &str, what: impl std::fmt::Display) -> Error {
        Error::Malformed(format!("{doc}: {what}"))
    }
}

/// Result with the library's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
