//! Per-topic message rate: one token bucket per topic (default 10,000 per
//! minute, burst 10,000) in the same kind of fixed window table as the
//! per-user limits, 16 bytes a slot.

use std::sync::atomic::AtomicU64;

use super::bucket::{self, Bucket};
use super::keys::TopicKey;
use super::refusal::BUSY_RETRY_AFTER_MS;
use super::window::{CellState, Found, Hold, Occupancy, Table, TableStats};
use super::{LimitsError, RateLimited, RateScope, SLOTS_MIN, slots_are_valid};

/// The `[limits.per_topic]` settings. A value of 0 turns the limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicLimits {
    /// Messages per minute and burst per topic (`messages_per_minute`,
    /// default 10,000).
    pub messages_per_minute: u32,
    /// Table size in slots, a power of two (`table_slots`, default 65,536).
    pub slots: usize,
}

impl Default for TopicLimits {
    fn default() -> Self {
        TopicLimits {
            messages_per_minute: 10_000,
            slots: 65_536,
        }
    }
}

impl TopicLimits {
    /// Checks what [`TopicTable::new`] asserts.
    pub fn validate(&self) -> Result<(), LimitsError> {
        match slots_are_valid(self.slots) {
            true => Ok(()),
            false => Err(LimitsError::TopicSlots { slots: self.slots }),
        }
    }
}

/// A topic's bucket. Zero (full) when fresh.
#[derive(Default)]
struct TopicState {
    tat_us: AtomicU64,
}

impl CellState for TopicState {
    fn is_fresh(&self, now_ms: u64) -> bool {
        bucket::is_full(&self.tat_us, now_ms)
    }

    fn reset(&self) {
        self.tat_us.store(0, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The per-topic table; share one between all shards. A topic holds a slot
/// only while its bucket is not full (6 ms per message at the default rate).
pub struct TopicTable {
    table: Table<TopicState>,
    bucket: Option<Bucket>,
}

impl std::fmt::Debug for TopicTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicTable")
            .field("slots", &self.table.cells())
            .field("memory_bytes", &self.memory_bytes())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl TopicTable {
    /// Allocates the whole table (one window when the limit is off).
    ///
    /// # Panics
    /// If [`TopicLimits::validate`] fails.
    pub fn new(limits: &TopicLimits) -> TopicTable {
        if let Err(error) = limits.validate() {
            panic!("invalid per-topic limits: {error}");
        }
        let bucket = Bucket::per_minute(limits.messages_per_minute);
        TopicTable {
            table: Table::new(if bucket.is_some() {
                limits.slots
            } else {
                SLOTS_MIN
            }),
            bucket,
        }
    }

    /// Takes a token from `topic`'s bucket at `now_ms`. Over the rate: answer
    /// `rate_limited` with `retry_after_ms` (scope `Topic`), don't forward.
    pub fn allow_topic(&self, topic: TopicKey, now_ms: u64) -> Result<(), RateLimited> {
        let Some(bucket) = self.bucket else {
            return Ok(());
        };
        let cell = match self.table.hold(topic.hash(), Hold::Operation, now_ms) {
            Found::Held(cell) => cell,
            Found::Full | Found::Busy => {
                return Err(RateLimited {
                    retry_after_ms: BUSY_RETRY_AFTER_MS,
                    scope: RateScope::Topic,
                });
            }
        };
        let verdict = bucket.take(&self.table.state(cell).tat_us, now_ms);
        self.table.release(cell, Hold::Operation);
        verdict.map_err(|retry_after_ms| RateLimited {
            retry_after_ms,
            scope: RateScope::Topic,
        })
    }

    /// The table's whole memory: fixed at [`TopicTable::new`].
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<TopicTable>() - std::mem::size_of::<Table<TopicState>>()
            + self.table.memory_bytes()
    }

    /// Event counts since start-up.
    pub fn stats(&self) -> TableStats {
        self.table.stats()
    }

    /// Slots holding state at `now_ms` (control plane only: O(slots)).
    pub fn occupancy(&self, now_ms: u64) -> Occupancy {
        self.table.occupancy(now_ms)
    }
}
