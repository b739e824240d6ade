//! Hybrid logical clock: physical milliseconds plus a logical counter, so
//! timestamps stay close to wall time yet strictly increase and respect
//! causality (an id issued after seeing a remote id sorts after it).
//!
//! The clock is pure: it reads no clock. The caller passes physical time
//! (milliseconds since the Unix epoch) to every call, so tests drive it with
//! any sequence of times, including ones that go backwards.

use thiserror::Error;

/// A hybrid logical timestamp: `wall_ms` (48 bits, milliseconds since the Unix
/// epoch, enough until the year 10889) then `logical` (16 bits).
///
/// Ordered by `(wall_ms, logical)`, which is also the order of
/// [`to_u64`](Hlc::to_u64): `wall_ms << 16 | logical`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hlc {
    // Field order is the derived order.
    wall_ms: u64,
    logical: u16,
}

impl Hlc {
    /// Largest wall time a timestamp can carry: 2^48 - 1 ms.
    pub const MAX_WALL_MS: u64 = (1 << 48) - 1;
    /// The smallest timestamp.
    pub const ZERO: Hlc = Hlc {
        wall_ms: 0,
        logical: 0,
    };
    /// The largest timestamp.
    pub const MAX: Hlc = Hlc {
        wall_ms: Hlc::MAX_WALL_MS,
        logical: u16::MAX,
    };

    /// A timestamp, or None when `wall_ms` does not fit in 48 bits.
    pub const fn new(wall_ms: u64, logical: u16) -> Option<Hlc> {
        if wall_ms > Hlc::MAX_WALL_MS {
            return None;
        }
        Some(Hlc { wall_ms, logical })
    }

    /// Milliseconds since the Unix epoch.
    pub const fn wall_ms(self) -> u64 {
        self.wall_ms
    }

    /// Counter that orders timestamps sharing a wall time.
    pub const fn logical(self) -> u16 {
        self.logical
    }

    /// `wall_ms << 16 | logical`: order-preserving, and every `u64` is a
    /// timestamp. Note for JSON: values exceed 2^53, so JavaScript numbers
    /// cannot hold them exactly.
    pub const fn to_u64(self) -> u64 {
        self.wall_ms << 16 | self.logical as u64
    }

    /// The inverse of [`to_u64`](Hlc::to_u64).
    pub const fn from_u64(packed: u64) -> Hlc {
        Hlc {
            wall_ms: packed >> 16,
            logical: packed as u16,
        }
    }

    /// The next timestamp: logical + 1, or the next millisecond at logical 0
    /// when the counter is full. None after [`Hlc::MAX`].
    pub const fn successor(self) -> Option<Hlc> {
        match self.to_u64().checked_add(1) {
            Some(packed) => Some(Hlc::from_u64(packed)),
            None => None,
        }
    }
}

/// Why the clock refused to issue a timestamp. Nothing changes on an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ClockError {
    /// The physical time passed in does not fit in 48 bits (a broken clock).
    #[error("physical time {physical_ms} ms does not fit in 48 bits")]
    PhysicalOutOfRange { physical_ms: u64 },
    /// A remote timestamp is further ahead of our physical time than the
    /// configured bound: following it would drag every later id into the future.
    #[error(
        "remote time {remote_wall_ms} ms is more than {max_offset_ms} ms ahead of local {physical_ms} ms"
    )]
    RemoteAhead {
        remote_wall_ms: u64,
        physical_ms: u64,
        max_offset_ms: u64,
    },
    /// The clock reached [`Hlc::MAX`]; no larger timestamp exists.
    #[error("hybrid logical clock exhausted")]
    Exhausted,
}

/// Default bound on how far ahead of local physical time a remote timestamp
/// may be and still be followed: 10 s, far above NTP-disciplined skew.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 10_000;

/// The clock of one router. Every timestamp it returns is strictly greater
/// than every timestamp it returned or observed before, whatever the physical
/// times passed in.
///
/// After a restart, observe the newest timestamp learned from peers (or wait
/// out the clock offset) before issuing, so a restarted router does not reuse
/// the timestamps of its previous life.
#[derive(Clone, Debug)]
pub struct HybridClock {
    last: Hlc,
    max_offset_ms: u64,
}

impl HybridClock {
    /// A clock at [`Hlc::ZERO`] that follows remote timestamps at most
    /// `max_offset_ms` ahead of local physical time.
    pub const fn new(max_offset_ms: u64) -> HybridClock {
        HybridClock {
            last: Hlc::ZERO,
            max_offset_ms,
        }
    }

    /// The last timestamp issued or observed.
    pub const fn last(&self) -> Hlc {
        self.last
    }

    /// A timestamp for a local event: the physical time if it is ahead of the
    /// last timestamp, else the last timestamp's successor.
    pub fn now(&mut self, physical_ms: u64) -> Result<Hlc, ClockError> {
        let physical = physical_hlc(physical_ms)?;
        self.advance_past(self.last, physical)
    }

    /// A timestamp for receiving `remote`: greater than both `remote` and every
    /// earlier timestamp of this clock. Refused when `remote` is more than the
    /// offset bound ahead of `physical_ms`; the remote id itself stays valid
    /// and still orders deterministically, only this clock does not follow it.
    pub fn observe(&mut self, remote: Hlc, physical_ms: u64) -> Result<Hlc, ClockError> {
        let physical = physical_hlc(physical_ms)?;
        if remote.wall_ms.saturating_sub(physical_ms) > self.max_offset_ms {
            return Err(ClockError::RemoteAhead {
                remote_wall_ms: remote.wall_ms,
                physical_ms,
                max_offset_ms: self.max_offset_ms,
            });
        }
        self.advance_past(self.last.max(remote), physical)
    }

    fn advance_past(&mut self, floor: Hlc, physical: Hlc) -> Result<Hlc, ClockError> {
        let next = if physical > floor {
            physical
        } else {
            floor.successor().ok_or(ClockError::Exhausted)?
        };
        self.last = next;
        Ok(next)
    }
}

fn physical_hlc(physical_ms: u64) -> Result<Hlc, ClockError> {
    Hlc::new(physical_ms, 0).ok_or(ClockError::PhysicalOutOfRange { physical_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_physical_time_and_counts_within_a_millisecond() {
        let mut clock = HybridClock::new(DEFAULT_MAX_OFFSET_MS);
        assert_eq!(clock.now(1000), Ok(Hlc::new(1000, 0).unwrap()));
        assert_eq!(clock.now(1000), Ok(Hlc::new(1000, 1).unwrap()));
        assert_eq!(
            clock.now(999),
            Ok(Hlc::new(1000, 2).unwrap()),
            "time went back"
        );
        assert_eq!(clock.now(1001), Ok(Hlc::new(1001, 0).unwrap()));
    }

    #[test]
    fn a_full_logical_counter_borrows_the_next_millisecond() {
        let mut clock = HybridClock::new(DEFAULT_MAX_OFFSET_MS);
        let remote = Hlc::new(5000, u16::MAX - 1).unwrap();
        assert_eq!(
            clock.observe(remote, 5000),
            Ok(Hlc::new(5000, u16::MAX).unwrap())
        );
        assert_eq!(clock.now(5000), Ok(Hlc::new(5001, 0).unwrap()));
    }

    #[test]
    fn observe_follows_a_remote_within_the_offset_and_refuses_beyond() {
        let mut clock = HybridClock::new(100);
        clock.now(1000).unwrap();
        let remote = Hlc::new(1100, 7).unwrap();
        assert_eq!(clock.observe(remote, 1000), Ok(Hlc::new(1100, 8).unwrap()));
        let far = Hlc::new(1201, 0).unwrap();
        let refused = clock.observe(far, 1100);
        assert_eq!(
            refused,
            Err(ClockError::RemoteAhead {
                remote_wall_ms: 1201,
                physical_ms: 1100,
                max_offset_ms: 100
            })
        );
        assert_eq!(
            clock.last(),
            Hlc::new(1100, 8).unwrap(),
            "unchanged on error"
        );
    }

    #[test]
    fn bounds() {
        let mut clock = HybridClock::new(u64::MAX);
        assert_eq!(
            clock.now(Hlc::MAX_WALL_MS + 1),
            Err(ClockError::PhysicalOutOfRange {
                physical_ms: Hlc::MAX_WALL_MS + 1
            })
        );
        assert_eq!(clock.observe(Hlc::MAX, 0), Err(ClockError::Exhausted));
        assert_eq!(
            clock
                .observe(Hlc::new(Hlc::MAX_WALL_MS, 1).unwrap(), 0)
                .unwrap(),
            Hlc::new(Hlc::MAX_WALL_MS, 2).unwrap()
        );
        assert_eq!(Hlc::MAX.successor(), None);
        assert_eq!(Hlc::new(Hlc::MAX_WALL_MS + 1, 0), None);
        assert_eq!(Hlc::from_u64(u64::MAX), Hlc::MAX);
    }
}
