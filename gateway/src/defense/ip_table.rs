//! Per-IP limits shared by every shard: concurrent connections, connection
//! attempts per minute, and failed authentications per minute that end in a
//! temporary ban. One [`IpTable`] serves all shard threads without locks,
//! in a fixed array sized at start-up.
//!
//! What it does:
//! - [`IpTable::admit`] decides an accepted connection: exempt (a CIDR of the
//!   allowlist), banned (403), over the attempt rate or the concurrent cap
//!   (429), or admitted with an [`IpHandle`] that [`IpTable::release`] takes
//!   back when the connection closes.
//! - [`IpTable::record_auth_failure`] counts a failed authentication and bans
//!   the address when its bucket is empty.
//! - Keys: an IPv4 address (`ipv4_prefix`, default /32) or an IPv6 prefix
//!   (`ipv6_prefix`, default /64: one subscriber's LAN). IPv4-mapped IPv6
//!   addresses count as IPv4.
//!
//! What it does not do: no clock (time is an argument, monotonic
//! milliseconds), no allocation and no syscall after [`IpTable::new`], no
//! waiting, no growth, no `unsafe`. It does not read the config file; the
//! caller fills [`IpLimits`].
//!
//! Key number: 192 bytes per window of 4 slots plus one overflow slot, so
//! 48 bytes per slot: the default 65,536 slots take 3 MiB, whatever the
//! traffic. An admit+release of a known address costs about 37 ns.
//!
//! # How it stays bounded, exact and lock-free
//! The table is an array of windows; a key (hashed with SipHash under a
//! per-process random key, so an attacker can't aim addresses at one window)
//! may live in any of its window's 4 slots. A slot is four atomic words:
//! owner (a 40-bit key fingerprint and a 24-bit pin count, in one word),
//! attempts bucket, failures bucket, ban deadline. Buckets are token buckets
//! kept as one word each (a theoretical arrival time, GCRA), updated by CAS.
//!
//! - **Pins.** Every operation on a slot's buckets or ban happens under a
//!   pin: a CAS on the owner word that checks the fingerprint and adds one.
//!   An admitted connection keeps its pin until [`IpTable::release`], and the
//!   handle names the slot, so a release never re-hashes and always finds
//!   the slot it pinned. A pinned slot is never reclaimed; so counts can't
//!   leak to another key or go missing.
//! - **Claims.** A key with no slot claims one that is *fresh* (no pins,
//!   full buckets, no ban): its state then equals a brand-new slot's, so
//!   reclaiming it forgets nothing that still limits anybody. Fingerprints
//!   change only under the window's claim flag, a try-lock that no one ever
//!   waits on: at most one thread reshapes a window at a time, so a key can
//!   never end up in two slots. The claimer first swaps the owner to a
//!   reserved fingerprint (fencing out late pinners of the old owner), checks
//!   freshness again, zeroes the words and publishes the new owner pinned.
//! - **Saturation.** When no slot of the window is fresh (an attacker is
//!   cycling addresses faster than slots go fresh), nothing grows and nothing
//!   fails open: the key uses the window's overflow slot, whose limits are
//!   shared by every slotless key of the window (stricter, never looser), and
//!   `table_saturated` counts it. While the overflow slot holds any state,
//!   new keys of that window go there too rather than claim a freed slot: a
//!   key that was limited in the overflow can't escape to a fresh slot of its
//!   own. So each key's limiting state lives in exactly one place.
//! - **Contention.** A thread that finds the claim flag taken rescans
//!   briefly; if the holder is still busy (pre-empted) it refuses with 429
//!   `TableBusy` and `Retry-After: 1` rather than wait or guess.
//! - **Collisions.** Two keys with the same window and fingerprint share
//!   limits: stricter, never looser, and not aimable without the seed.
//!
//! `docs/design/why-ip-table.md` has the alternatives and the sizing rule.
//!
//! ```
//! use std::net::IpAddr;
//! use ringgate::defense::ip_table::{IpLimits, IpTable, RefusalReason};
//!
//! let table = IpTable::new(&IpLimits { max_connections: 1, ..IpLimits::default() });
//! let client: IpAddr = "203.0.113.9".parse().unwrap();
//! let now_ms = 0; // the shard's monotonic clock
//! let handle = table.admit(client, now_ms).expect("first connection");
//! let refusal = table.admit(client, now_ms).unwrap_err();
//! assert_eq!(refusal.reason, RefusalReason::TooManyConnections);
//! assert_eq!((refusal.status(), refusal.retry_after_s), (429, 10));
//! table.release(handle); // when the connection closes
//! ```

mod cidr;
mod slot;
#[cfg(test)]
mod tests;

pub use cidr::{Cidr, CidrError};

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use cidr::IpKey;
use slot::{Bucket, Claim, FINGERPRINT_BITS, FIRST_KEY_FINGERPRINT, NOBODY, Pin, Slot, Window};

/// Slots per window (4 regular, 1 overflow), as numbered in a handle.
const CELLS_PER_WINDOW: usize = slot::WINDOW_SLOTS + 1;
const OVERFLOW_CELL: usize = slot::WINDOW_SLOTS;
/// Bounds on `slots`: a whole window at least; at most 2^26 so that window
/// bits (24) and fingerprint bits (40) of the 64-bit hash don't overlap.
const SLOTS_MIN: usize = slot::WINDOW_SLOTS;
const SLOTS_MAX: usize = 1 << 26;
/// The pin count has 24 bits; half are kept for admissions in flight.
pub const MAX_CONNECTIONS_MAX: u32 = 1 << 23;
/// How many times a thread rescans while another claims in its window.
const CLAIM_TRIES: u32 = 64;
/// Retry-After for the concurrent cap: held connections close on human time
/// scales, so retrying within a second mostly earns another refusal.
const CONNECTIONS_RETRY_AFTER_S: u32 = 10;

/// The `[limits.per_ip]` settings. A value of 0 turns a limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpLimits {
    /// Concurrent connections per key (`max_connections`, default 1,000).
    pub max_connections: u32,
    /// Connection attempts per minute and burst (`connects_per_minute`,
    /// default 100). Every attempt counts, refused or not, except while
    /// banned.
    pub connects_per_minute: u32,
    /// Failed authentications per minute and burst before a ban
    /// (`failed_auths_per_minute`, default 10).
    pub failed_auths_per_minute: u32,
    /// Ban length (`ban_seconds`, default 600).
    pub ban_seconds: u32,
    /// Addresses that bypass every per-IP limit (`exempt`).
    pub exempt: Vec<Cidr>,
    /// Table size in slots, a power of two (`table_slots`, default 65,536).
    pub slots: usize,
    /// IPv4 key prefix length (`ipv4_prefix`, default 32).
    pub v4_prefix: u8,
    /// IPv6 key prefix length (`ipv6_prefix`, default 64).
    pub v6_prefix: u8,
}

impl Default for IpLimits {
    fn default() -> Self {
        IpLimits {
            max_connections: 1000,
            connects_per_minute: 100,
            failed_auths_per_minute: 10,
            ban_seconds: 600,
            exempt: Vec::new(),
            slots: 65_536,
            v4_prefix: 32,
            v6_prefix: 64,
        }
    }
}

/// A setting [`IpTable::new`] can't work with; each names its config key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IpLimitsError {
    #[error(
        "limits.per_ip.table_slots = {slots}: must be a power of two from {SLOTS_MIN} to {SLOTS_MAX}"
    )]
    Slots { slots: usize },
    #[error("limits.per_ip.ipv4_prefix = {prefix}: must be from 0 to 32")]
    V4Prefix { prefix: u8 },
    #[error("limits.per_ip.ipv6_prefix = {prefix}: must be from 0 to 128")]
    V6Prefix { prefix: u8 },
    #[error("limits.per_ip.max_connections = {value}: must be at most {MAX_CONNECTIONS_MAX}")]
    MaxConnections { value: u32 },
}

impl IpLimits {
    /// Checks what [`IpTable::new`] asserts.
    pub fn validate(&self) -> Result<(), IpLimitsError> {
        if !self.slots.is_power_of_two() || !(SLOTS_MIN..=SLOTS_MAX).contains(&self.slots) {
            return Err(IpLimitsError::Slots { slots: self.slots });
        }
        if self.v4_prefix > 32 {
            return Err(IpLimitsError::V4Prefix {
                prefix: self.v4_prefix,
            });
        }
        if self.v6_prefix > 128 {
            return Err(IpLimitsError::V6Prefix {
                prefix: self.v6_prefix,
            });
        }
        if self.max_connections > MAX_CONNECTIONS_MAX {
            return Err(IpLimitsError::MaxConnections {
                value: self.max_connections,
            });
        }
        Ok(())
    }
}

/// Why an upgrade was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusalReason {
    /// The key already holds `max_connections` connections (429).
    TooManyConnections,
    /// The key's connection attempt bucket is empty (429).
    ConnectRate,
    /// The key is banned after too many failed authentications (403).
    Banned,
    /// Another shard was claiming a slot in the key's window and did not
    /// finish in time (it was pre-empted); refused rather than waiting (429).
    TableBusy,
}

impl RefusalReason {
    /// A stable metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::TooManyConnections => "per_ip_connections",
            RefusalReason::ConnectRate => "per_ip_connect_rate",
            RefusalReason::Banned => "per_ip_banned",
            RefusalReason::TableBusy => "per_ip_table_busy",
        }
    }
}

/// A refused admission: the reason and the `Retry-After` to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused by per-IP limits ({}), retry after {retry_after_s} s", reason.as_str())]
pub struct Refusal {
    pub reason: RefusalReason,
    /// Seconds until trying again can succeed (at least 1): until a token is
    /// back, or the ban ends.
    pub retry_after_s: u32,
}

impl Refusal {
    /// The HTTP status of the refused upgrade: 403 for a ban, else 429.
    pub fn status(&self) -> u16 {
        match self.reason {
            RefusalReason::Banned => 403,
            _ => 429,
        }
    }

    fn after_ms(reason: RefusalReason, wait_ms: u64) -> Refusal {
        let seconds = wait_ms.div_ceil(1000).clamp(1, u64::from(u32::MAX));
        Refusal {
            reason,
            retry_after_s: seconds as u32,
        }
    }
}

/// An admitted connection's hold on its slot; give it back with
/// [`IpTable::release`] when the connection closes. Neither `Clone` nor
/// `Copy`, so it can't be released twice.
#[must_use = "an IpHandle must be given back to IpTable::release, or the slot stays pinned"]
#[derive(Debug, PartialEq, Eq)]
pub struct IpHandle {
    /// `window * 5 + slot` (slot 4: the overflow), or `UNTRACKED`.
    cell: u32,
}

impl IpHandle {
    const UNTRACKED: u32 = u32::MAX;

    /// Whether the connection counts against a key (false for exempt
    /// addresses and when the concurrent cap is off).
    pub fn is_tracked(&self) -> bool {
        self.cell != Self::UNTRACKED
    }

    fn untracked() -> IpHandle {
        IpHandle {
            cell: Self::UNTRACKED,
        }
    }
}

/// Event counts since start-up, summed over all shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpTableStats {
    /// Admissions and failures that went to an overflow slot because no slot
    /// of the key's window could be had.
    pub table_saturated: u64,
    /// Admissions refused with `TableBusy`, and failures recorded in the
    /// overflow slot for the same reason.
    pub table_busy: u64,
    /// Bans started (not counting a ban extended while in force).
    pub bans_issued: u64,
}

/// Slots holding state that still limits someone, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpTableOccupancy {
    /// Regular slots that are not fresh.
    pub slots: usize,
    /// Windows whose overflow slot is not fresh (saturated windows).
    pub overflowing_windows: usize,
}

/// Slow-path event counters, on their own cache line so that bumping them
/// doesn't disturb the line holding the table's read-only fields.
#[repr(align(64))]
#[derive(Default)]
struct Counters {
    table_saturated: AtomicU64,
    table_busy: AtomicU64,
    bans_issued: AtomicU64,
}

/// The per-IP table; share one (e.g. in an `Arc`) between all shards.
pub struct IpTable {
    windows: Box<[Window]>,
    window_mask: u64,
    /// SipHash keyed per process: where a key lands is not predictable.
    hasher: RandomState,
    exempt: Box<[Cidr]>,
    max_connections: u32,
    attempts: Option<Bucket>,
    /// Failures bucket and ban length; `None` when either is 0.
    bans: Option<(Bucket, u64)>,
    /// False when every limit is off: then the table is never touched.
    in_use: bool,
    v4_prefix: u8,
    v6_prefix: u8,
    counters: Counters,
}

impl std::fmt::Debug for IpTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpTable")
            .field("slots", &(self.windows.len() * slot::WINDOW_SLOTS))
            .field("memory_bytes", &self.memory_bytes())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl IpTable {
    /// Allocates the whole table; nothing is allocated after this.
    ///
    /// # Panics
    /// If [`IpLimits::validate`] fails.
    pub fn new(limits: &IpLimits) -> IpTable {
        if let Err(error) = limits.validate() {
            panic!("invalid per-IP limits: {error}");
        }
        let window_count = limits.slots / slot::WINDOW_SLOTS;
        let windows: Box<[Window]> = (0..window_count).map(|_| Window::default()).collect();
        let attempts = Bucket::per_minute(limits.connects_per_minute);
        let bans = Bucket::per_minute(limits.failed_auths_per_minute)
            .filter(|_| limits.ban_seconds > 0)
            .map(|bucket| (bucket, u64::from(limits.ban_seconds) * 1000));
        IpTable {
            windows,
            window_mask: window_count as u64 - 1,
            hasher: RandomState::new(),
            exempt: limits.exempt.clone().into_boxed_slice(),
            max_connections: limits.max_connections,
            attempts,
            bans,
            in_use: limits.max_connections > 0 || attempts.is_some() || bans.is_some(),
            v4_prefix: limits.v4_prefix,
            v6_prefix: limits.v6_prefix,
            counters: Counters::default(),
        }
    }

    /// Decides a new connection from `ip` at `now_ms`: checks the ban, takes
    /// an attempt token, then counts it against the concurrent cap.
    pub fn admit(&self, ip: IpAddr, now_ms: u64) -> Result<IpHandle, Refusal> {
        let ip = ip.to_canonical();
        if !self.in_use || self.is_exempt(ip) {
            return Ok(IpHandle::untracked());
        }
        let (cell, pin) = self.pin(ip, now_ms);
        let before = match pin {
            Pin::Pinned(before) => before,
            Pin::Full | Pin::NotOwner => return Err(self.refusal_for_unpinned(pin)),
        };
        let slot = self.slot(cell);
        let verdict = self.check(slot, before, now_ms);
        if verdict.is_err() || self.max_connections == 0 {
            slot.unpin();
        }
        verdict?;
        Ok(match self.max_connections {
            0 => IpHandle::untracked(),
            _ => IpHandle { cell },
        })
    }

    /// Gives back an admitted connection's place under the concurrent cap.
    pub fn release(&self, handle: IpHandle) {
        if handle.is_tracked() {
            self.slot(handle.cell).unpin();
        }
    }

    /// Counts a failed authentication from `ip` (an invalid or expired
    /// token; a missing one is not a failure). Returns true if this failure
    /// started a ban: the failures bucket was empty and no ban was in force.
    /// A failure while banned extends the ban.
    pub fn record_auth_failure(&self, ip: IpAddr, now_ms: u64) -> bool {
        let ip = ip.to_canonical();
        let Some((failures, ban_ms)) = self.bans else {
            return false;
        };
        if self.is_exempt(ip) {
            return false;
        }
        let (cell, pin) = self.pin(ip, now_ms);
        let slot = self.slot(cell);
        // Busy window: the overflow slot (stricter) rather than forgetting
        // the failure.
        let pin = match pin {
            Pin::NotOwner => slot.pin(NOBODY),
            pin => pin,
        };
        if !matches!(pin, Pin::Pinned(_)) {
            return false;
        }
        let started = failures.take(&slot.failures_tat_us, now_ms).is_err() && {
            let until_ms = now_ms.saturating_add(ban_ms);
            slot.ban_until_ms.fetch_max(until_ms, Ordering::AcqRel) <= now_ms
        };
        slot.unpin();
        if started {
            self.counters.bans_issued.fetch_add(1, Ordering::Relaxed);
        }
        started
    }

    /// Whether `ip` is on the exemption list (IPv4-mapped counts as IPv4).
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|cidr| cidr.contains(ip))
    }

    /// The table's whole memory: fixed at [`IpTable::new`], whatever the
    /// traffic.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<IpTable>()
            + std::mem::size_of_val::<[Window]>(&self.windows)
            + std::mem::size_of_val::<[Cidr]>(&self.exempt)
    }

    /// Event counts since start-up.
    pub fn stats(&self) -> IpTableStats {
        IpTableStats {
            table_saturated: self.counters.table_saturated.load(Ordering::Relaxed),
            table_busy: self.counters.table_busy.load(Ordering::Relaxed),
            bans_issued: self.counters.bans_issued.load(Ordering::Relaxed),
        }
    }

    /// Scans the whole table (control plane only: O(slots)) for slots that
    /// still limit someone at `now_ms`. At `u64::MAX`, when every bucket is
    /// full and every ban over, it counts the slots held by open connections.
    pub fn occupancy(&self, now_ms: u64) -> IpTableOccupancy {
        let mut occupancy = IpTableOccupancy::default();
        for window in &self.windows {
            occupancy.slots += window.slots.iter().filter(|s| !s.is_fresh(now_ms)).count();
            occupancy.overflowing_windows += usize::from(!window.overflow.is_fresh(now_ms));
        }
        occupancy
    }

    fn check(&self, slot: &Slot, pins_before: u32, now_ms: u64) -> Result<(), Refusal> {
        if self.bans.is_some() {
            let until_ms = slot.ban_until_ms.load(Ordering::Acquire);
            if until_ms > now_ms {
                return Err(Refusal::after_ms(RefusalReason::Banned, until_ms - now_ms));
            }
        }
        if let Some(attempts) = self.attempts {
            attempts
                .take(&slot.attempts_tat_us, now_ms)
                .map_err(|wait_us| {
                    Refusal::after_ms(RefusalReason::ConnectRate, wait_us.div_ceil(1000))
                })?;
        }
        if self.max_connections > 0 && pins_before >= self.max_connections {
            return Err(Refusal {
                reason: RefusalReason::TooManyConnections,
                retry_after_s: CONNECTIONS_RETRY_AFTER_S,
            });
        }
        Ok(())
    }

    fn refusal_for_unpinned(&self, pin: Pin) -> Refusal {
        match pin {
            Pin::Full => Refusal {
                reason: RefusalReason::TooManyConnections,
                retry_after_s: CONNECTIONS_RETRY_AFTER_S,
            },
            _ => Refusal {
                reason: RefusalReason::TableBusy,
                retry_after_s: 1,
            },
        }
    }

    /// Finds or claims the key's slot and pins it. `Pin::NotOwner` means the
    /// window stayed busy with another claim (counted as `table_busy`).
    fn pin(&self, ip: IpAddr, now_ms: u64) -> (u32, Pin) {
        let key = IpKey::new(ip, self.v4_prefix, self.v6_prefix);
        let hash = self.hasher.hash_one(key);
        let window_index = (hash & self.window_mask) as usize;
        let fingerprint = (hash >> (64 - FINGERPRINT_BITS)).max(FIRST_KEY_FINGERPRINT);
        let window = &self.windows[window_index];
        let cell = |index: usize| (window_index * CELLS_PER_WINDOW + index) as u32;

        for _ in 0..CLAIM_TRIES {
            if let Some((index, pin)) = window.pin_existing(fingerprint) {
                return (cell(index), pin);
            }
            if window.try_begin_claim() {
                return match window.claim_and_end(fingerprint, now_ms) {
                    Claim::Own(index, pin) => (cell(index), pin),
                    Claim::Overflow(pin) => {
                        self.counters
                            .table_saturated
                            .fetch_add(1, Ordering::Relaxed);
                        (cell(OVERFLOW_CELL), pin)
                    }
                };
            }
            std::hint::spin_loop();
        }
        self.counters.table_busy.fetch_add(1, Ordering::Relaxed);
        (cell(OVERFLOW_CELL), Pin::NotOwner)
    }

    fn slot(&self, cell: u32) -> &Slot {
        let cell = cell as usize;
        let window = &self.windows[cell / CELLS_PER_WINDOW];
        match cell % CELLS_PER_WINDOW {
            OVERFLOW_CELL => &window.overflow,
            index => &window.slots[index],
        }
    }
}

#[cfg(test)]
impl IpTable {
    /// The pin count of the slot `ip` lives in (tests only).
    fn slot_pins(&self, ip: IpAddr) -> u32 {
        let (cell, pin) = self.pin(ip.to_canonical(), 0);
        let Pin::Pinned(before) = pin else {
            panic!("could not pin {ip}");
        };
        self.slot(cell).unpin();
        before
    }
}
