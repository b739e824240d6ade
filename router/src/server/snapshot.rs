//! What a running router shows of itself: its counters and a few gauges,
//! copied about every 100 ms from the event loop into a shared slot that a
//! metrics exporter reads (`crate::metrics`).
//!
//! The loop only ever `try_lock`s the slot: while a reader holds it, that
//! copy is skipped and the next tick publishes. The loop never waits on a
//! reader. A copy is one `RouterStats` clone (about 30 integers).

use std::sync::Mutex;

use super::stats::RouterStats;

/// How often the loop publishes a snapshot.
pub(super) const PUBLISH_EVERY_MS: u64 = 100;

/// The router's state at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterSnapshot {
    /// The router's node id.
    pub id: u32,
    pub stats: RouterStats,
    /// Open connections, any phase (before HELLO too).
    pub peers: u64,
    /// Open sessions by role (HELLO accepted).
    pub gateways: u64,
    pub backends: u64,
    /// Topics with at least one subscribed gateway node.
    pub topics: u64,
    /// Publishes waiting for a backend's verdict.
    pub pending_publishes: u64,
    /// Milliseconds since the router started.
    pub uptime_ms: u64,
}

/// The slot a router publishes its snapshots into; share it with an `Arc`
/// (see [`Router::with_snapshots`](super::Router::with_snapshots)).
#[derive(Debug, Default)]
pub struct Snapshots {
    slot: Mutex<Option<RouterSnapshot>>,
}

impl Snapshots {
    pub fn new() -> Snapshots {
        Snapshots::default()
    }

    /// Replaces the snapshot unless a reader holds the slot right now;
    /// `make` runs only when the slot is free.
    pub fn publish(&self, make: impl FnOnce() -> RouterSnapshot) {
        if let Ok(mut slot) = self.slot.try_lock() {
            *slot = Some(make());
        }
    }

    /// The latest snapshot (`None`: the router has not published yet).
    pub fn latest(&self) -> Option<RouterSnapshot> {
        match self.slot.lock() {
            Ok(slot) => slot.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_slot_skips_the_publish_without_blocking() {
        let snapshots = Snapshots::new();
        let held = snapshots.slot.lock().unwrap();
        let mut made = false;
        snapshots.publish(|| {
            made = true;
            RouterSnapshot::default()
        });
        assert!(!made);
        drop(held);
        snapshots.publish(|| RouterSnapshot {
            peers: 3,
            ..RouterSnapshot::default()
        });
        assert_eq!(snapshots.latest().map(|snapshot| snapshot.peers), Some(3));
    }
}
