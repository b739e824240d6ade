//! A token bucket kept as one atomic word: the generic cell rate
//! algorithm's theoretical arrival time (TAT), in microseconds.
//!
//! The bucket is full when the TAT is not in the future (so an all-zero word
//! is a full bucket); each token pushes the TAT one interval further; a take
//! is allowed while the TAT stays within `burst × interval` of now. Refill is
//! continuous: one token every interval.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    interval_us: u64,
    span_us: u64,
}

impl Bucket {
    /// `tokens` per `period_ms`, burst `tokens`; `None` when `tokens` is 0
    /// (the limit is off).
    pub(super) fn new(tokens: u32, period_ms: u64) -> Option<Bucket> {
        if tokens == 0 {
            return None;
        }
        // Rounded up: a rate that doesn't divide the period is enforced a
        // hair stricter, never looser.
        let interval_us = (period_ms * 1000).div_ceil(u64::from(tokens));
        Some(Bucket {
            interval_us,
            span_us: interval_us * u64::from(tokens),
        })
    }

    pub(super) fn per_minute(tokens: u32) -> Option<Bucket> {
        Bucket::new(tokens, 60_000)
    }

    pub(super) fn per_hour(tokens: u32) -> Option<Bucket> {
        Bucket::new(tokens, 3_600_000)
    }

    /// Takes one token at `now_ms`, or says how many milliseconds (at least
    /// 1) until one is back. A refused take changes nothing.
    pub(super) fn take(&self, tat_us: &AtomicU64, now_ms: u64) -> Result<(), u64> {
        let now_us = micros(now_ms);
        let mut current = tat_us.load(Ordering::Acquire);
        loop {
            let next = current.max(now_us).saturating_add(self.interval_us);
            let ahead = next - now_us;
            if ahead > self.span_us {
                return Err((ahead - self.span_us).div_ceil(1000).max(1));
            }
            match tat_us.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Puts back a token this thread just took (when a later check refused
    /// the same message). The TAT is at least one interval ahead of the
    /// take's time, so this never makes the bucket fuller than full.
    pub(super) fn give_back(&self, tat_us: &AtomicU64) {
        tat_us.fetch_sub(self.interval_us, Ordering::AcqRel);
    }
}

/// True when a TAT word reads as a full bucket at `now_ms`.
pub(super) fn is_full(tat_us: &AtomicU64, now_ms: u64) -> bool {
    tat_us.load(Ordering::Acquire) <= micros(now_ms)
}

fn micros(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}
