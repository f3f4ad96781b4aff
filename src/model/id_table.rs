//! A table of values by subscription id, dense in memory: the engine's subscriptions of a
//! shard, a SIP server's dialog state. Both hold hundreds of thousands of entries, where the
//! standard map's slack (a key beside each value, up to half its buckets empty after
//! growing, a doubling vector) costs more than the small values themselves.
#![forbid(unsafe_code)]

use super::id::SubscriptionId;

/// A value that knows its own id (so the table need not store it beside the value).
pub(crate) trait Keyed {
    fn id(&self) -> SubscriptionId;
}

/// Values by subscription id: a slab of values and an open-addressing index of slab slots
/// (4 bytes a bucket, linear probing, the id compared in the slab). Costs about one value
/// plus 5–11 bytes per entry, where a `HashMap` costs twice that (a bucket holds the key
/// beside the value, and the table is up to seven eighths full, often half).
///
/// The slab is made of fixed-size chunks rather than one vector: a vector grows by
/// doubling, so after growing it holds up to twice the room it needs (on average a third
/// of the slab would be spare); chunks waste at most one.
pub(crate) struct IdTable<V: Keyed> {
    chunks: Vec<Box<[Option<V>]>>,
    /// Slots ever used (the next new slot); the slots below it that are free are in `free`.
    used: u32,
    free: Vec<u32>,
    /// Slab slots; `EMPTY` marks a free bucket. Its length is 0 or a power of two, at most
    /// three quarters full (linear probing stays short: about 2.5 probes to find an id, 8.5
    /// to miss one).
    index: Vec<u32>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;

/// Values in one slab chunk (18 KiB of subscriptions): small enough for a handful.
const CHUNK: usize = 256;

impl<V: Keyed> IdTable<V> {
    fn slot(&self, slot: u32) -> &Option<V> {
        let slot = slot as usize;
        &self.chunks[slot / CHUNK][slot % CHUNK]
    }

    fn slot_mut(&mut self, slot: u32) -> &mut Option<V> {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    fn home(&self, id: SubscriptionId) -> usize {
        let bits = self.index.len().trailing_zeros();
        // Fibonacci hashing: the ids of a shard are nearly consecutive multiples of the
        // worker count; the multiplication spreads them over the table.
        (id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn id_at(&self, slot: u32) -> SubscriptionId {
        self.slot(slot)
            .as_ref()
            .expect("indexed slot holds a value")
            .id()
    }

    /// The bucket and slab slot of `id`.
    fn find(&self, id: SubscriptionId) -> Option<(usize, u32)> {
        if self.len == 0 {
            return None;
        }
        let mask = self.index.len() - 1;
        let mut i = self.home(id);
        loop {
            let slot = self.index[i];
            if slot == EMPTY {
                return None;
            }
            if self.id_at(slot) == id {
                return Some((i, slot));
            }
            i = (i + 1) & mask;
        }
    }

    fn place(&mut self, slot: u32) {
        let mask = self.index.len() - 1;
        let mut i = self.home(self.id_at(slot));
        while self.index[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.index[i] = slot;
    }

    fn grow_index(&mut self) {
        let size = (self.index.len() * 2).max(16);
        let old = std::mem::replace(&mut self.index, vec![EMPTY; size]);
        for slot in old.into_iter().filter(|s| *s != EMPTY) {
            self.place(slot);
        }
    }

    pub(crate) fn contains_key(&self, id: &SubscriptionId) -> bool {
        self.find(*id).is_some()
    }

    pub(crate) fn get(&self, id: &SubscriptionId) -> Option<&V> {
        let (_, slot) = self.find(*id)?;
        self.slot(slot).as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: &SubscriptionId) -> Option<&mut V> {
        let (_, slot) = self.find(*id)?;
        self.slot_mut(slot).as_mut()
    }

    /// Adds `value` under `id` (its own id), replacing one with the same id.
    pub(crate) fn insert(&mut self, id: SubscriptionId, value: V) {
        debug_assert_eq!(id, value.id());
        if let Some((_, slot)) = self.find(id) {
            *self.slot_mut(slot) = Some(value);
            return;
        }
        if (self.len + 1) * 4 > self.index.len() * 3 {
            self.grow_index();
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = self.used;
                assert!(slot != EMPTY, "fewer than 2^32 - 1 values");
                if slot as usize == self.chunks.len() * CHUNK {
                    self.chunks.push((0..CHUNK).map(|_| None).collect());
                }
                self.used += 1;
                slot
            }
        };
        *self.slot_mut(slot) = Some(value);
        self.place(slot);
        self.len += 1;
    }

    pub(crate) fn remove(&mut self, id: &SubscriptionId) -> Option<V> {
        let (mut hole, slot) = self.find(*id)?;
        let mask = self.index.len() - 1;
        self.index[hole] = EMPTY;
        // Backward-shift deletion: pull later entries of the probe run into the hole when
        // their home bucket allows it, so no tombstones are needed.
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let s = self.index[j];
            if s == EMPTY {
                break;
            }
            let home = self.home(self.id_at(s));
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.index[hole] = s;
                self.index[j] = EMPTY;
                hole = j;
            }
        }
        let value = self.slot_mut(slot).take();
        if slot + 1 == self.used {
            self.used -= 1;
        } else {
            self.free.push(slot);
        }
        self.len -= 1;
        if self.len == 0 {
            self.chunks.clear();
            self.used = 0;
            self.free.clear();
        }
        value
    }

    /// Every value, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.chunks.iter().flat_map(|c| c.iter().flatten())
    }

    /// How many values there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<V: Keyed> std::ops::Index<&SubscriptionId> for IdTable<V> {
    type Output = V;

    fn index(&self, id: &SubscriptionId) -> &V {
        self.get(id).expect("no such id")
    }
}

impl<V: Keyed> Default for IdTable<V> {
    fn default() -> Self {
        IdTable {
            chunks: Vec::new(),
            used: 0,
            free: Vec::new(),
            index: Vec::new(),
            len: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Entry(SubscriptionId);

    impl Keyed for Entry {
        fn id(&self) -> SubscriptionId {
            self.0
        }
    }

    #[test]
    fn slab_and_index_agree_with_a_map() {
        let mut subs: IdTable<Entry> = IdTable::default();
        let mut model = std::collections::BTreeSet::new();
        let mut x: u64 = 0x1234_5678;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = (x % 3000) * 3 + 1;
            if x % 5 < 3 {
                if model.insert(id) {
                    subs.insert(SubscriptionId(id), Entry(SubscriptionId(id)));
                }
            } else {
                assert_eq!(
                    subs.remove(&SubscriptionId(id)).map(|s| s.0 .0),
                    model.take(&id)
                );
            }
            if step % 997 == 0 {
                for probe in 0..9100 {
                    assert_eq!(
                        subs.get(&SubscriptionId(probe)).map(|s| s.0 .0),
                        model.get(&probe).copied()
                    );
                }
            }
            assert_eq!(subs.len(), model.len());
        }
        for id in model.clone() {
            assert!(subs.remove(&SubscriptionId(id)).is_some());
        }
        assert_eq!(subs.len(), 0);
        assert!(subs.get(&SubscriptionId(1)).is_none());
    }
}
