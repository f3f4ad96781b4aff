//! Routing by DNS (RFC 3263 "Locating SIP Servers"; DESIGN §5: "next hops may be host
//! names"). A request's next hop may be named rather than numbered: a route target such as
//! `far.test`, a Route entry or a Contact with a host name. This module turns such a name
//! into the ordered list of transport addresses to try, the first first and the others for
//! fail-over (RFC 3263 §4.3).
//!
//! | module | holds |
//! | --- | --- |
//! | [`destination`] | what is looked up: a host, maybe a port, a transport, `sips` |
//! | [`procedure`] | RFC 3263 §4.1/§4.2: NAPTR → SRV → A/AAAA, and which steps are skipped |
//! | [`srv_order`] | RFC 2782's order of SRV records: priority, then weighted random |
//! | [`cache`] | answers by destination until their TTL ends (negative ones too, bounded) |
//! | [`wire`] | one DNS query over UDP (TCP when truncated) to the configured server |
//! | [`resolver`] | the resolver thread, its bounded queue, and the synchronous cached path |
//!
//! The SIP I/O thread never waits for DNS: a cached name is answered in place (well under a
//! microsecond), any other is queued for the resolver thread, which calls back when the
//! answer is in. Time is the engine's clock, randomness (SRV weights, query ids) the
//! engine's generator.
#![forbid(unsafe_code)]

pub mod cache;
pub mod destination;
pub mod procedure;
pub mod resolver;
pub mod srv_order;
pub mod wire;

pub use destination::Destination;
pub use procedure::{Answer, ResolveError};
pub use resolver::{Resolution, Resolver, ResolverConfig, ResolverStats};
