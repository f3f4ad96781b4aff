//! SIP (RFC 3261) support: digest authentication of requests.

pub mod dialog;
pub mod digest;
pub mod transaction;
