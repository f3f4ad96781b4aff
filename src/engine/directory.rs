//! The user directory: who the engine's users are, with their digest credentials. Shared by
//! every shard (read on each message to decide "unknown user") and, later, the SIP layer
//! (digest authentication). Changes go to the store first, then here.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::model::key::presentity_key;
use crate::store::Credential;
use crate::uri::Uri;

/// Users by key ([`presentity_key`]). Empty means "no directory": every user of an owned
/// domain is known.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    users: RwLock<HashMap<String, Credential>>,
    /// Whether `users` is empty, readable without the lock (the common case is no
    /// directory at all).
    empty: AtomicBool,
}

impl Directory {
    pub(crate) fn new(credentials: Vec<Credential>) -> Directory {
        let users: HashMap<String, Credential> = credentials
            .into_iter()
            .map(|c| (presentity_key(&c.user), c))
            .collect();
        Directory {
            empty: AtomicBool::new(users.is_empty()),
            users: RwLock::new(users),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.empty.load(Ordering::Acquire)
    }

    pub(crate) fn contains(&self, user: &Uri) -> bool {
        self.read(|users| users.contains_key(&presentity_key(user)))
    }

    pub(crate) fn get(&self, user: &Uri) -> Option<Credential> {
        self.read(|users| users.get(&presentity_key(user)).cloned())
    }

    pub(crate) fn all(&self) -> Vec<Credential> {
        let mut all: Vec<Credential> = self.read(|users| users.values().cloned().collect());
        all.sort_by_cached_key(|c| presentity_key(&c.user));
        all
    }

    pub(crate) fn set(&self, credential: Credential) {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        users.insert(presentity_key(&credential.user), credential);
        self.empty.store(false, Ordering::Release);
    }

    pub(crate) fn remove(&self, user: &Uri) -> bool {
        let mut users = self.users.write().unwrap_or_else(PoisonError::into_inner);
        let removed = users.remove(&presentity_key(user)).is_some();
        self.empty.store(users.is_empty(), Ordering::Release);
        removed
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<String, Credential>) -> T) -> T {
        f(&self.users.read().unwrap_or_else(PoisonError::into_inner))
    }
}
