//! SIP SIMPLE (RFC 3261 and the presence and messaging extensions), DESIGN §5: digest
//! authentication, transactions, subscription dialogs and the transports.
//!
//! | module | concept |
//! | --- | --- |
//! | [`digest`] | server-side digest authentication (RFC 7616, 8760) |
//! | [`transaction`] | non-INVITE client and server transactions, without I/O |
//! | [`dialog`] | the notifier's subscription dialog, kept as the engine's subscription target |
//! | [`transport`] | UDP and TCP on a mio I/O thread |

pub mod dialog;
pub mod digest;
pub mod transaction;
pub mod transport;
