//! A setting the operator may replace while the server runs (`imppd ctl reload`, SIGHUP):
//! the roles that read it hold one [`Live`] each, all sharing one cell that the node
//! replaces. A reader takes the value current at that moment (an `Arc`, so a request
//! sees one consistent table from start to end even if a reload lands in the middle);
//! what the old value started (a transaction, a dialog) is not touched.
#![forbid(unsafe_code)]

use std::sync::{Arc, RwLock};

pub(crate) struct Live<T>(Arc<RwLock<Arc<T>>>);

impl<T> Clone for Live<T> {
    fn clone(&self) -> Self {
        Live(self.0.clone())
    }
}

impl<T> Live<T> {
    pub(crate) fn new(value: T) -> Live<T> {
        Live(Arc::new(RwLock::new(Arc::new(value))))
    }

    /// The value now (a poisoned lock still holds a whole value: `set` only swaps an `Arc`).
    pub(crate) fn get(&self) -> Arc<T> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the value for every holder.
    pub(crate) fn set(&self, value: T) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(value);
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Live<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}
