//! Shared test harnesses, included by a test file with `mod common;`.
//!
//! Each test file is its own crate and uses only part of what is here, so unused items are
//! expected and not a sign of dead code.
#![allow(dead_code)]

pub mod baresip;
pub mod certs;
pub mod clock;
pub mod curl;
pub mod dnsmasq;
pub mod fixtures;
pub mod imppd;
pub mod kamailio;
pub mod rls;
pub mod sip;
pub mod sipp;
pub mod tls;
