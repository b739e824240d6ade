//! Metrics: what shards count, how the counts leave the shard threads, and
//! the admin HTTP listener that serves them (docs/operations/METRICS.md).
//!
//! Shards count into plain integers they own (`hot::stats`), with no atomics
//! and no locks per message. About every 100 ms each shard copies its counts
//! into its slot of the [`Board`] (a `try_lock`; if a scrape holds the lock
//! the copy waits for the next turn), so the shard never blocks on a reader.
//! A scrape sums the shards' latest copies, so values are at most ~100 ms
//! old. Nothing here runs per message.

pub mod admin;
pub mod export;
pub mod histogram;

use std::net::SocketAddr;
use std::sync::Mutex;

use crate::hot::stats::ShardStats;

/// What one shard last published.
#[derive(Clone, Debug)]
pub struct ShardView {
    pub stats: ShardStats,
    /// Open connections (handshaking and upgraded).
    pub connections: u64,
    /// Microseconds the loop spent working since start.
    pub busy_us_total: u64,
    /// Working fraction of the last full second.
    pub busy_ratio: f64,
    /// Most submission entries submitted, and completions reaped, in one
    /// loop turn during the last full second.
    pub sq_depth: usize,
    pub cq_depth: usize,
    pub routers: Vec<RouterView>,
    /// Relay mode: the epoch of the shard's shard map (0 in echo mode).
    pub shardmap_epoch: u64,
    /// Relay mode: a router link that was up is down, or its held
    /// publishes are not all sent yet (clients were told `degraded`).
    pub degraded: bool,
    pub draining: bool,
}

/// One shard's link to one router.
#[derive(Clone, Debug)]
pub struct RouterView {
    pub id: u32,
    pub address: SocketAddr,
    pub state: &'static str,
    pub up: bool,
    /// Publishes sent and not yet acknowledged.
    pub in_flight: u32,
    /// Publishes held while the router is down (not sent yet).
    pub held: u32,
    /// Bytes queued on the link, not yet sent.
    pub queued_bytes: usize,
}

/// The shards' published views, one slot each.
#[derive(Debug)]
pub struct Board {
    slots: Vec<Mutex<Option<ShardView>>>,
}

impl Board {
    pub fn new(shards: usize) -> Board {
        Board {
            slots: (0..shards).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Replaces shard `index`'s view, unless a reader holds it right now.
    /// `make` runs only when the slot is free.
    pub fn publish(&self, index: usize, make: impl FnOnce() -> ShardView) {
        if let Ok(mut slot) = self.slots[index].try_lock() {
            *slot = Some(make());
        }
    }

    /// The shard's last view as it stops: waits for a reader if needed,
    /// so the final counts are never skipped.
    pub fn publish_final(&self, index: usize, view: ShardView) {
        let mut slot = self.slots[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = Some(view);
    }

    /// Every shard's latest view (`None`: the shard has not published yet).
    pub fn views(&self) -> Vec<Option<ShardView>> {
        self.slots
            .iter()
            .map(|slot| match slot.lock() {
                Ok(view) => view.clone(),
                Err(poisoned) => poisoned.into_inner().clone(),
            })
            .collect()
    }
}

/// `/readyz`: ready when every shard has published and is serving, the
/// gateway is not draining and every shard's link to every router is up
/// (a router down makes the gateway degraded: publishes to its topics are
/// held, subscriptions to them refused; the issue asks readiness to say so).
pub fn readiness(views: &[Option<ShardView>], draining: bool) -> Result<(), String> {
    if draining {
        return Err("draining".into());
    }
    let mut down = Vec::new();
    for (index, view) in views.iter().enumerate() {
        let Some(view) = view else {
            return Err(format!("starting: shard {index} has not reported yet"));
        };
        for router in view.routers.iter().filter(|router| !router.up) {
            if !down.contains(&router.id) {
                down.push(router.id);
            }
        }
    }
    if down.is_empty() {
        Ok(())
    } else {
        let ids: Vec<String> = down.iter().map(u32::to_string).collect();
        Err(format!("degraded: router {} down", ids.join(", ")))
    }
}

/// Per-loop saturation gauges, kept by the shard thread.
#[derive(Debug, Default)]
pub struct LoopGauges {
    pub busy_us_total: u64,
    pub busy_ratio: f64,
    pub sq_depth: usize,
    pub cq_depth: usize,
    window_start_us: u64,
    window_busy_us: u64,
    window_sq: usize,
    window_cq: usize,
    next_publish_us: u64,
}

/// How often shards publish their view.
const PUBLISH_EVERY_US: u64 = 100_000;
/// The window of the busy ratio and the queue-depth maxima.
const WINDOW_US: u64 = 1_000_000;

impl LoopGauges {
    /// One loop turn: woke at `woke_us`, done at `done_us`, having submitted
    /// `submitted` entries before the wait and reaped `reaped` after it.
    pub fn turn(&mut self, woke_us: u64, done_us: u64, submitted: usize, reaped: usize) {
        let busy = done_us.saturating_sub(woke_us);
        self.busy_us_total += busy;
        self.window_busy_us += busy;
        self.window_sq = self.window_sq.max(submitted);
        self.window_cq = self.window_cq.max(reaped);
        let window = done_us.saturating_sub(self.window_start_us);
        if window >= WINDOW_US {
            self.busy_ratio = (self.window_busy_us as f64 / window as f64).min(1.0);
            self.sq_depth = std::mem::take(&mut self.window_sq);
            self.cq_depth = std::mem::take(&mut self.window_cq);
            self.window_busy_us = 0;
            self.window_start_us = done_us;
        }
    }

    /// True about every 100 ms: time to publish a view.
    pub fn due(&mut self, now_us: u64) -> bool {
        if now_us < self.next_publish_us {
            return false;
        }
        self.next_publish_us = now_us + PUBLISH_EVERY_US;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ratio_covers_the_last_full_window() {
        let mut gauges = LoopGauges::default();
        // 250 ms of work in each of four 250 ms slices of which we were
        // busy 100 ms: 40%.
        for slice in 0..4u64 {
            let start = slice * 250_000;
            gauges.turn(start + 150_000, start + 250_000, 3, 7 + slice as usize);
        }
        assert!(
            (gauges.busy_ratio - 0.4).abs() < 1e-9,
            "{}",
            gauges.busy_ratio
        );
        assert_eq!(gauges.sq_depth, 3);
        assert_eq!(gauges.cq_depth, 10);
        assert_eq!(gauges.busy_us_total, 400_000);
    }

    #[test]
    fn publishing_is_paced() {
        let mut gauges = LoopGauges::default();
        assert!(gauges.due(0));
        assert!(!gauges.due(50_000));
        assert!(gauges.due(100_000));
    }

    #[test]
    fn a_held_slot_skips_the_publish_without_blocking() {
        let board = Board::new(1);
        let held = board.slots[0].lock().unwrap();
        let mut made = false;
        board.publish(0, || {
            made = true;
            unreachable_view()
        });
        assert!(!made);
        drop(held);
        board.publish(0, unreachable_view);
        assert!(board.views()[0].is_some());
    }

    fn unreachable_view() -> ShardView {
        ShardView {
            stats: ShardStats::default(),
            connections: 0,
            busy_us_total: 0,
            busy_ratio: 0.0,
            sq_depth: 0,
            cq_depth: 0,
            routers: Vec::new(),
            shardmap_epoch: 0,
            degraded: false,
            draining: false,
        }
    }
}
