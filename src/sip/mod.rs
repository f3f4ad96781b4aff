//! SIP SIMPLE: the protocol side of the engine.
pub mod transport;
