//! The engine's resource lists (RFC 4826 lists for an RFC 4662 list server): one table shared
//! by the whole engine, like the user directory, not split among shards: a list names
//! resources of any shard, and expanding it reads one table. Readers (the list server,
//! `Core::list`, `Core::expand_list`) take a read lock; changes are serialized by a writer
//! lock held from the check to the insert, so two changes made at once cannot together
//! close a cycle that each alone would not.
//!
//! A change is written to the store first and takes effect once durable: when the store
//! refuses, nothing changes, and a change that was acknowledged survives a crash (as
//! authorization rules do).
#![forbid(unsafe_code)]

use std::sync::{Mutex, PoisonError, RwLock};

use crate::error::Result;
use crate::log;
use crate::model::list::{ListTable, Resource, ResourceList};
use crate::store::{Store, Write};
use crate::uri::Uri;

const LOG_TARGET: &str = "impp::engine::lists";

/// The lists, by key ([`crate::model::list`] keeps the rules between them).
#[derive(Debug, Default)]
pub(crate) struct Lists {
    table: RwLock<ListTable>,
    /// Held by a change from its check to its insert (and across its store write).
    writer: Mutex<()>,
}

impl Lists {
    /// The lists a store gave back, as stored.
    pub(crate) fn new(lists: Vec<ResourceList>) -> Lists {
        Lists {
            table: RwLock::new(ListTable::new(lists)),
            writer: Mutex::new(()),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&ListTable) -> T) -> T {
        f(&self.table.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut ListTable) -> T) -> T {
        f(&mut self.table.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Checks `list` against the others, stores it, then sets it; returns the list it
    /// replaced, if any.
    pub(crate) fn set(
        &self,
        store: &dyn Store,
        list: ResourceList,
    ) -> Result<Option<ResourceList>> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let list = self.read(|t| t.check(list))?;
        store.write(Write::SaveList(list.clone()))?;
        log::debug!(target: LOG_TARGET, "list set: {list}");
        Ok(self.write(|t| t.put(list)))
    }

    /// Deletes the list named `uri` from the store, then from the table; returns whether
    /// there was one.
    pub(crate) fn remove(&self, store: &dyn Store, uri: &Uri) -> Result<bool> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if self.read(|t| t.get(uri).is_none()) {
            return Ok(false);
        }
        store.write(Write::DeleteList(uri.clone()))?;
        log::debug!(target: LOG_TARGET, "list removed: {uri}");
        Ok(self.write(|t| t.remove(uri)).is_some())
    }

    /// Makes the lists exactly `lists`, checked together; stores what differs (lists set,
    /// lists deleted), then swaps the table. Refused: nothing changes. A store failure part
    /// way leaves the lists stored so far set, each durable (the table then holds what the
    /// store holds).
    pub(crate) fn replace(&self, store: &dyn Store, lists: Vec<ResourceList>) -> Result<()> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let wanted = ListTable::checked(lists)?;
        let current = self.read(Clone::clone);
        let mut applied = current.clone();
        let outcome = (|| {
            for list in current.lists() {
                if wanted.get(&list.uri).is_none() {
                    store.write(Write::DeleteList(list.uri.clone()))?;
                    applied.remove(&list.uri);
                }
            }
            for list in wanted.lists() {
                if current.get(&list.uri) != Some(list) {
                    store.write(Write::SaveList(list.clone()))?;
                    applied.put(list.clone());
                }
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => self.write(|t| *t = wanted),
            Err(_) => self.write(|t| *t = applied),
        }
        outcome
    }

    /// The list named `uri`.
    pub(crate) fn get(&self, uri: &Uri) -> Option<ResourceList> {
        self.read(|t| t.get(uri).cloned())
    }

    /// Every list, by key.
    pub(crate) fn all(&self) -> Vec<ResourceList> {
        self.read(|t| t.lists().cloned().collect())
    }

    /// The resources of the list named `uri`, or `None` when there is no such list.
    pub(crate) fn expand(&self, uri: &Uri) -> Option<Vec<Resource>> {
        self.read(|t| t.expand(uri))
    }
}
