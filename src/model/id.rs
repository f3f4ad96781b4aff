//! Ids that cross layers: the engine hands them out, the SIP layer keys its dialogs by them,
//! the C API passes them as integers.
#![forbid(unsafe_code)]

/// Identifies a subscription for its whole life. Unique within an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionId(pub u64);

impl std::fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
