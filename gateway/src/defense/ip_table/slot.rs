//! One key's state in four atomic words, and the token bucket kept in one of
//! them. See the parent module for the protocol that makes these words safe
//! to share between shards.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Regular slots per probe window; each window also has one overflow slot.
pub(super) const WINDOW_SLOTS: usize = 4;

/// Low bits of the owner word: pins (open connections plus admissions in
/// flight). 2^24 is far above any process's file limit.
const COUNT_BITS: u32 = 24;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// High bits of the owner word: the owner's fingerprint.
pub(super) const FINGERPRINT_BITS: u32 = 64 - COUNT_BITS;

/// Fingerprint of a slot nobody has claimed yet (all words zero), and the
/// only fingerprint of an overflow slot.
pub(super) const NOBODY: u64 = 0;
/// Fingerprint held while the window's claimer checks and resets a slot;
/// it matches no key, so nobody can pin the slot meanwhile.
const RESERVED: u64 = 1;
/// Key fingerprints are at least this, so they never equal the two above.
pub(super) const FIRST_KEY_FINGERPRINT: u64 = 2;

/// The state of one key (or, for an overflow slot, of every key of the
/// window that has no slot of its own).
///
/// All words read zero when fresh: no owner, no pins, full buckets (a
/// theoretical arrival time in the past), no ban. So a fresh slot behaves
/// exactly as a reset one, and claiming it forgets nothing.
#[derive(Default)]
pub(super) struct Slot {
    /// Fingerprint (high 40 bits) and pin count (low 24 bits), in one word so
    /// "still owned by my key" and "pin it" are one compare-and-swap.
    owner: AtomicU64,
    /// Connection attempts bucket: theoretical arrival time, microseconds.
    pub(super) attempts_tat_us: AtomicU64,
    /// Failed authentications bucket: theoretical arrival time, microseconds.
    pub(super) failures_tat_us: AtomicU64,
    /// Banned while `now_ms < ban_until_ms`.
    pub(super) ban_until_ms: AtomicU64,
}

/// A probe window: where a key may live, plus the place it goes when it
/// can't have a slot of its own. Aligned so that two windows never share a
/// cache line.
#[repr(align(64))]
#[derive(Default)]
pub(super) struct Window {
    pub(super) slots: [Slot; WINDOW_SLOTS],
    pub(super) overflow: Slot,
    /// Held (by try-lock, never waited on) by the one thread that may change
    /// fingerprints in this window.
    claiming: AtomicBool,
}

/// What pinning a slot found.
pub(super) enum Pin {
    /// Pinned; the pin count before this pin.
    Pinned(u32),
    /// The slot belongs to someone else.
    NotOwner,
    /// The pin count is at its maximum (cannot happen below 2^24 pins).
    Full,
}

impl Slot {
    /// Pins the slot if its owner is `fingerprint`. Only a pinned slot's
    /// buckets and ban may be touched, and a pinned slot is never reclaimed.
    pub(super) fn pin(&self, fingerprint: u64) -> Pin {
        let mut current = self.owner.load(Ordering::Acquire);
        loop {
            if current >> COUNT_BITS != fingerprint {
                return Pin::NotOwner;
            }
            let count = current & COUNT_MASK;
            if count == COUNT_MASK {
                return Pin::Full;
            }
            match self.owner.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Pin::Pinned(count as u32),
                Err(actual) => current = actual,
            }
        }
    }

    /// Drops one pin. Release ordering publishes every bucket or ban update
    /// made under the pin to whoever next claims or pins the slot.
    pub(super) fn unpin(&self) {
        let before = self.owner.fetch_sub(1, Ordering::Release);
        debug_assert!(before & COUNT_MASK > 0, "unpin without a pin");
    }

    /// The pin count (open connections and admissions in flight).
    pub(super) fn pins(&self) -> u32 {
        (self.owner.load(Ordering::Acquire) & COUNT_MASK) as u32
    }

    /// Nothing here constrains anyone at `now`: no pins, full buckets, no
    /// ban. Forgetting a fresh slot's state loses nothing.
    pub(super) fn is_fresh(&self, now_ms: u64) -> bool {
        let now_us = micros(now_ms);
        self.pins() == 0
            && self.attempts_tat_us.load(Ordering::Acquire) <= now_us
            && self.failures_tat_us.load(Ordering::Acquire) <= now_us
            && self.ban_until_ms.load(Ordering::Acquire) <= now_ms
    }

    /// Takes the slot for `fingerprint` if it is fresh, leaving it pinned
    /// once (by the caller's admission). Only the holder of the window's
    /// claim flag may call this.
    fn claim_if_fresh(&self, fingerprint: u64, now_ms: u64) -> bool {
        let previous = self.owner.load(Ordering::Acquire);
        if previous & COUNT_MASK != 0 || !self.is_fresh(now_ms) {
            return false;
        }
        // Fence the old owner out first: its pinners now fail their CAS, and
        // acquiring its last unpin makes its final bucket updates visible.
        if self
            .owner
            .compare_exchange(
                previous,
                RESERVED << COUNT_BITS,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return false;
        }
        // A pinner may have come and gone between the check and the CAS.
        if !self.is_fresh(now_ms) {
            self.owner.store(previous, Ordering::Release);
            return false;
        }
        // Fresh already reads as reset; zero it so a shard whose clock is a
        // few milliseconds behind ours doesn't see the old owner's last
        // ban or bucket as the new owner's.
        self.attempts_tat_us.store(0, Ordering::Relaxed);
        self.failures_tat_us.store(0, Ordering::Relaxed);
        self.ban_until_ms.store(0, Ordering::Relaxed);
        self.owner
            .store((fingerprint << COUNT_BITS) | 1, Ordering::Release);
        true
    }
}

/// Where a claim attempt left the caller.
pub(super) enum Claim {
    /// The key owns (already, or now) this regular slot; how pinning it went.
    Own(usize, Pin),
    /// No slot could be had: the key uses the overflow slot, pinned while
    /// the flag was held (so no other claimer can see the overflow slot
    /// fresh, and give this key a slot of its own, before the pin lands).
    Overflow(Pin),
}

impl Window {
    /// Finds `fingerprint`'s slot and pins it.
    pub(super) fn pin_existing(&self, fingerprint: u64) -> Option<(usize, Pin)> {
        self.slots
            .iter()
            .enumerate()
            .find_map(|(index, slot)| match slot.pin(fingerprint) {
                Pin::NotOwner => None,
                pin => Some((index, pin)),
            })
    }

    /// Tries to take the claim flag; never waits.
    pub(super) fn try_begin_claim(&self) -> bool {
        self.claiming
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// With the claim flag held: gives `fingerprint` a fresh slot of its own,
    /// unless the overflow slot still holds state that may be its (see the
    /// parent module: a key's state must live in one place only). Releases
    /// the flag.
    pub(super) fn claim_and_end(&self, fingerprint: u64, now_ms: u64) -> Claim {
        let claim = self.claim_locked(fingerprint, now_ms);
        self.claiming.store(false, Ordering::Release);
        claim
    }

    fn claim_locked(&self, fingerprint: u64, now_ms: u64) -> Claim {
        // Fingerprints change only under the flag, so this look is final.
        if let Some((index, pin)) = self.pin_existing(fingerprint) {
            return Claim::Own(index, pin);
        }
        let claimed = match self.overflow.is_fresh(now_ms) {
            true => self
                .slots
                .iter()
                .position(|slot| slot.claim_if_fresh(fingerprint, now_ms)),
            false => None,
        };
        match claimed {
            Some(index) => Claim::Own(index, Pin::Pinned(0)),
            None => Claim::Overflow(self.overflow.pin(NOBODY)),
        }
    }
}

/// A token bucket whose burst is its per-minute rate, refilled continuously,
/// kept as one word: the generic cell rate algorithm's theoretical arrival
/// time (TAT). The bucket is full when the TAT is not in the future; each
/// token pushes it one interval further; a take is allowed while the TAT
/// stays within `burst × interval` of now.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bucket {
    interval_us: u64,
    span_us: u64,
}

impl Bucket {
    /// `None` when `per_minute` is 0 (the limit is off).
    pub(super) fn per_minute(per_minute: u32) -> Option<Bucket> {
        if per_minute == 0 {
            return None;
        }
        // Rounded up: a rate that doesn't divide a minute is enforced a hair
        // stricter, never looser.
        let interval_us = 60_000_000u64.div_ceil(u64::from(per_minute));
        Some(Bucket {
            interval_us,
            span_us: interval_us * u64::from(per_minute),
        })
    }

    /// Takes one token at `now_ms`, or says how many microseconds until one
    /// is there. A refused take changes nothing.
    pub(super) fn take(&self, tat_us: &AtomicU64, now_ms: u64) -> Result<(), u64> {
        let now_us = micros(now_ms);
        let mut current = tat_us.load(Ordering::Acquire);
        loop {
            let next = current.max(now_us).saturating_add(self.interval_us);
            let ahead = next - now_us;
            if ahead > self.span_us {
                return Err(ahead - self.span_us);
            }
            match tat_us.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }
}

fn micros(ms: u64) -> u64 {
    ms.saturating_mul(1000)
}
