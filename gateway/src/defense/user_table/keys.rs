//! Keys into the tables: user ids, anonymous connections and topics hashed
//! with SipHash under one random key per process, so nobody outside the
//! process can choose names that pile into one window.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::OnceLock;

/// The fingerprint's top bit (the hash's bit 63) says which kind of user a
/// key names, so a named user and an anonymous connection can never share a
/// slot, whatever their hashes.
const ANONYMOUS_BIT: u64 = 1 << 63;

/// The per-process SipHash key, drawn once.
pub(crate) fn process_seed() -> &'static RandomState {
    static SEED: OnceLock<RandomState> = OnceLock::new();
    SEED.get_or_init(RandomState::new)
}

/// Whose per-user limits apply: an authenticated user id, or (auth off) one
/// anonymous connection. Cheap to copy; compute it once per connection.
/// Valid in every table of this process (a reload's new table too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UserKey(u64);

impl UserKey {
    /// An authenticated user (the token's `sub`): every connection of the
    /// user, on any shard, shares one set of limits.
    pub fn named(user_id: &str) -> UserKey {
        UserKey(process_seed().hash_one(("user", user_id)) & !ANONYMOUS_BIT)
    }

    /// An anonymous connection (auth off: each connection is its own user),
    /// named as on the router protocol: the gateway node and the
    /// connection's id there. Never equal to a named user's key.
    pub fn anonymous(node: u32, connection: u64) -> UserKey {
        UserKey(process_seed().hash_one(("anonymous", node, connection)) | ANONYMOUS_BIT)
    }

    pub fn is_anonymous(self) -> bool {
        self.0 & ANONYMOUS_BIT != 0
    }

    pub(super) fn hash(self) -> u64 {
        self.0
    }
}

/// A topic's key for the per-topic rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TopicKey(u64);

impl TopicKey {
    pub fn new(topic: &str) -> TopicKey {
        TopicKey(process_seed().hash_one(("topic", topic)))
    }

    pub(super) fn hash(self) -> u64 {
        self.0
    }
}
