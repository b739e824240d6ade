//! The dedup table: which publishes the router took in the last window
//! (300 s by default), in memory fixed at start-up.
//!
//! A key is a 128-bit keyed hash of (topic, user, client_msg_id), or of
//! (topic, client_msg_id) for an anonymous sender ([`DedupKeys`]). Entries
//! live in a ring in the order they were inserted, which is time order, so
//! expiry pops from the front; an open-addressing index (linear probing,
//! load at most one half, backward-shift deletion) finds a key in O(1).
//!
//! At capacity the oldest entry is pushed out, even before its window ends,
//! and [`DedupTable::evicted_before_expiry`] counts it: the window is a
//! guarantee only while fewer than `capacity` publishes are taken per window.
//! Nothing here allocates after [`DedupTable::new`].
//!
//! Why a hash and not the strings: the strings are unbounded (a topic may be
//! 64 KiB); a hash makes every entry 40 bytes. Two different keys collide
//! with probability about n²/2¹²⁹ (n = entries held), and the hash is keyed
//! with per-process random keys (SipHash), so peers cannot aim for a
//! collision to make a new publish look like a duplicate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::msgid::MessageId;

/// A publish's dedup key: 128 bits of keyed hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DedupKey(pub u128);

/// Hashes publishes to [`DedupKey`]s with keys drawn at start-up.
#[derive(Clone, Debug)]
pub struct DedupKeys {
    high: RandomState,
    low: RandomState,
}

impl Default for DedupKeys {
    fn default() -> DedupKeys {
        DedupKeys {
            high: RandomState::new(),
            low: RandomState::new(),
        }
    }
}

impl DedupKeys {
    /// The key of a publish; `user` is `None` for an anonymous sender. Every
    /// part is length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    pub fn key(&self, topic: &str, user: Option<&str>, client_msg_id: &str) -> DedupKey {
        let hash = |state: &RandomState| {
            let mut hasher = state.build_hasher();
            hasher.write_u8(u8::from(user.is_some()));
            for part in [topic, user.unwrap_or(""), client_msg_id] {
                hasher.write_usize(part.len());
                hasher.write(part.as_bytes());
            }
            hasher.finish()
        };
        DedupKey(u128::from(hash(&self.high)) << 64 | u128::from(hash(&self.low)))
    }
}

/// One remembered publish: 40 bytes.
#[derive(Clone, Copy, Default)]
struct Slot {
    key_high: u64,
    key_low: u64,
    id_high: u64,
    id_low: u64,
    at_ms: u64,
}

impl Slot {
    fn key(&self) -> DedupKey {
        DedupKey(u128::from(self.key_high) << 64 | u128::from(self.key_low))
    }
}

const EMPTY: u32 = u32::MAX;

/// Keys of publishes taken in the last window and their message ids, in a
/// fixed amount of memory.
pub struct DedupTable {
    window_ms: u64,
    /// A ring in insertion (= time) order: `len` entries from `head`.
    slots: Box<[Slot]>,
    head: usize,
    len: usize,
    /// Positions in `slots`, or [`EMPTY`]; a power of two at least twice
    /// the capacity.
    index: Box<[u32]>,
    mask: usize,
    last_at_ms: u64,
    evicted_before_expiry: u64,
    expired: u64,
}

impl std::fmt::Debug for DedupTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DedupTable")
            .field("capacity", &self.slots.len())
            .field("len", &self.len)
            .field("window_ms", &self.window_ms)
            .finish()
    }
}

impl DedupTable {
    /// A table for `capacity` entries (1 to 2^30 - 1) remembered for
    /// `window_ms`. All of its memory is allocated here.
    pub fn new(capacity: usize, window_ms: u64) -> DedupTable {
        assert!(
            capacity > 0 && capacity < (u32::MAX / 4) as usize,
            "dedup capacity {capacity} out of range"
        );
        let index_len = (capacity * 2).next_power_of_two();
        DedupTable {
            window_ms,
            slots: vec![Slot::default(); capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            index: vec![EMPTY; index_len].into_boxed_slice(),
            mask: index_len - 1,
            last_at_ms: 0,
            evicted_before_expiry: 0,
            expired: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Entries held (some may be past their window until the next call
    /// that takes the time).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the table's two arrays: fixed at construction.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.slots) + std::mem::size_of_val(&*self.index)
    }

    /// Entries pushed out by a newer one before their window ended.
    pub fn evicted_before_expiry(&self) -> u64 {
        self.evicted_before_expiry
    }

    /// Entries dropped at the end of their window.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// The message id taken for `key` within the window, if any.
    pub fn get(&mut self, key: DedupKey, now_ms: u64) -> Option<MessageId> {
        self.expire(now_ms);
        let position = self.find(key)?;
        let slot = &self.slots[position];
        Some(MessageId::from_u128(
            u128::from(slot.id_high) << 64 | u128::from(slot.id_low),
        ))
    }

    /// Remembers that `key` was taken as `id` at `now_ms`. At capacity the
    /// oldest entry makes room. The caller checks [`get`](Self::get) first:
    /// inserting a key twice keeps both, and lookups find either.
    pub fn insert(&mut self, key: DedupKey, id: MessageId, now_ms: u64) {
        self.expire(now_ms);
        if self.len == self.slots.len() {
            self.remove_oldest();
            self.evicted_before_expiry += 1;
        }
        // Entries stay in time order even if the caller's clock stepped back.
        self.last_at_ms = self.last_at_ms.max(now_ms);
        let position = (self.head + self.len) % self.slots.len();
        let id = id.to_u128();
        self.slots[position] = Slot {
            key_high: (key.0 >> 64) as u64,
            key_low: key.0 as u64,
            id_high: (id >> 64) as u64,
            id_low: id as u64,
            at_ms: self.last_at_ms,
        };
        self.len += 1;
        let mut probe = self.home(key);
        while self.index[probe] != EMPTY {
            probe = (probe + 1) & self.mask;
        }
        self.index[probe] = position as u32;
    }

    /// Drops the entries whose window ended by `now_ms`.
    pub fn expire(&mut self, now_ms: u64) {
        while self.len > 0 && self.slots[self.head].at_ms.saturating_add(self.window_ms) <= now_ms {
            self.remove_oldest();
            self.expired += 1;
        }
    }

    fn home(&self, key: DedupKey) -> usize {
        // The key is a uniform hash: its low bits are a fine bucket.
        key.0 as usize & self.mask
    }

    fn find(&self, key: DedupKey) -> Option<usize> {
        let mut probe = self.home(key);
        loop {
            let position = self.index[probe];
            if position == EMPTY {
                return None;
            }
            if self.slots[position as usize].key() == key {
                return Some(position as usize);
            }
            probe = (probe + 1) & self.mask;
        }
    }

    fn remove_oldest(&mut self) {
        let position = self.head;
        self.unindex(position);
        self.head = (self.head + 1) % self.slots.len();
        self.len -= 1;
    }

    /// Removes the index entry pointing at `position`, shifting later
    /// entries of the probe run back so every lookup still finds its key.
    fn unindex(&mut self, position: usize) {
        let mut hole = self.home(self.slots[position].key());
        while self.index[hole] != position as u32 {
            hole = (hole + 1) & self.mask;
        }
        loop {
            self.index[hole] = EMPTY;
            let mut next = hole;
            loop {
                next = (next + 1) & self.mask;
                let moved = self.index[next];
                if moved == EMPTY {
                    return;
                }
                let home = self.home(self.slots[moved as usize].key());
                // The entry at `next` may fill the hole unless its home lies
                // cyclically in (hole, next].
                let stays = if hole <= next {
                    hole < home && home <= next
                } else {
                    hole < home || home <= next
                };
                if !stays {
                    self.index[hole] = moved;
                    hole = next;
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> MessageId {
        MessageId::from_u128(u128::from(n) << 64 | 7)
    }

    #[test]
    fn remembers_within_the_window_and_forgets_after() {
        let keys = DedupKeys::default();
        let mut table = DedupTable::new(8, 1_000);
        let key = keys.key("room", Some("alice"), "c1");
        table.insert(key, id(1), 100);
        assert_eq!(table.get(key, 1_099), Some(id(1)));
        assert_eq!(table.get(key, 1_100), None);
        assert_eq!((table.expired(), table.evicted_before_expiry()), (1, 0));
    }

    #[test]
    fn keys_separate_users_anonymity_and_field_boundaries() {
        let keys = DedupKeys::default();
        let base = keys.key("ab", Some("u"), "c");
        assert_ne!(base, keys.key("a", Some("bu"), "c"));
        assert_ne!(base, keys.key("ab", Some("v"), "c"));
        assert_ne!(keys.key("ab", None, "c"), keys.key("ab", Some(""), "c"));
        assert_eq!(base, keys.key("ab", Some("u"), "c"));
    }

    #[test]
    fn full_table_evicts_oldest_and_index_stays_consistent() {
        let keys = DedupKeys::default();
        let mut table = DedupTable::new(64, u64::MAX);
        let key = |n: u64| keys.key("t", None, &n.to_string());
        for n in 0..10_000 {
            table.insert(key(n), id(n), n);
            if n % 97 == 0 {
                for back in 0..64.min(n + 1) {
                    assert_eq!(table.get(key(n - back), n), Some(id(n - back)));
                }
            }
        }
        assert_eq!(table.len(), 64);
        assert_eq!(table.get(key(10_000 - 65), 10_000), None);
        assert_eq!(table.evicted_before_expiry(), 10_000 - 64);
    }
}
