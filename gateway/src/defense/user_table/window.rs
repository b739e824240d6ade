//! The fixed, lock-free array both the per-user and the per-topic limits
//! live in: windows of 7 slots plus one overflow slot, an owner word per
//! slot, and the claim protocol that hands a fresh slot to a new key. It is
//! generic over what a slot holds ([`CellState`]); the parent module
//! explains why the protocol is exact.

use std::sync::atomic::{AtomicU64, Ordering};

/// Cells per window: 7 regular slots, then the overflow slot. The 8 owner
/// words fill one cache line, so finding a key reads one line.
pub(super) const WINDOW_CELLS: usize = 8;
pub(super) const OVERFLOW: usize = WINDOW_CELLS - 1;

/// Owner word, low to high: operations in flight (12 bits), held devices
/// (12 bits), then the owner's fingerprint (40 bits). The overflow slot has
/// no fingerprint; its top bit is the window's claim flag instead.
const OPERATION_ONE: u64 = 1;
const DEVICE_SHIFT: u32 = 12;
const DEVICE_ONE: u64 = 1 << DEVICE_SHIFT;
const FIELD_MAX: u64 = (1 << DEVICE_SHIFT) - 1;
const HOLD_BITS: u32 = 2 * DEVICE_SHIFT;
const HOLDS_MASK: u64 = (1 << HOLD_BITS) - 1;

/// The device field's ceiling: the largest per-user connection cap.
pub(super) const DEVICES_MAX: u32 = FIELD_MAX as u32;

/// Fingerprint 0 is a never-claimed slot (an all-zero word); this one is
/// held while the claimer checks and resets a slot; it matches
/// no key, so nobody can hold the slot meanwhile.
const RESERVED: u64 = 1;
/// Key fingerprints are at least this, so they never equal the two above.
pub(super) const FIRST_KEY_FINGERPRINT: u64 = 2;
/// The overflow slot has no fingerprint; its owner word's top bit is the
/// window's claim flag, and the 39 bits below it a one-hash Bloom filter of
/// the keys sent to the overflow since it was last fresh (its members).
const CLAIMING: u64 = 1 << 63;
const MEMBER_BITS: u64 = 39;
const MEMBERS_MASK: u64 = ((1 << MEMBER_BITS) - 1) << HOLD_BITS;

/// The member filter bit of a key.
fn member_bit(fingerprint: u64) -> u64 {
    1 << (HOLD_BITS as u64 + fingerprint % MEMBER_BITS)
}

/// What a slot holds besides its owner word.
pub(super) trait CellState: Default {
    /// Nothing here limits anyone at `now_ms`: forgetting it loses nothing.
    /// Must read true for a default (all-zero) state.
    fn is_fresh(&self, now_ms: u64) -> bool;
    /// Back to the default state. Called by the claimer on a fenced slot.
    fn reset(&self);
}

/// What a hold on a slot is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum Hold {
    /// One operation (a bucket take, a content check), released at once.
    Operation,
    /// An open connection, counted against `max` until released.
    Device { max: u32 },
}

impl Hold {
    fn one(self) -> u64 {
        match self {
            Hold::Operation => OPERATION_ONE,
            Hold::Device { .. } => DEVICE_ONE,
        }
    }

    /// How many of this kind the owner word already holds.
    fn count(self, word: u64) -> u64 {
        match self {
            Hold::Operation => word & FIELD_MAX,
            Hold::Device { .. } => (word >> DEVICE_SHIFT) & FIELD_MAX,
        }
    }

    fn limit(self) -> u64 {
        match self {
            Hold::Operation => FIELD_MAX,
            Hold::Device { max } => u64::from(max).min(FIELD_MAX),
        }
    }
}

/// What taking a hold on a slot found.
enum Take {
    Held,
    /// The slot belongs to another key.
    NotOwner,
    /// The hold's count is at its limit (the device cap, or 4,095
    /// operations in flight).
    Full,
}

/// Takes a hold if the owner is `fingerprint` (`None`: the overflow slot,
/// whose owner is every slotless key of the window).
fn take_hold(owner: &AtomicU64, fingerprint: Option<u64>, hold: Hold) -> Take {
    let mut current = owner.load(Ordering::Acquire);
    loop {
        if let Some(fingerprint) = fingerprint
            && current >> HOLD_BITS != fingerprint
        {
            return Take::NotOwner;
        }
        if hold.count(current) >= hold.limit() {
            return Take::Full;
        }
        match owner.compare_exchange_weak(
            current,
            current + hold.one(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Take::Held,
            Err(actual) => current = actual,
        }
    }
}

/// A probe window: where a key may live, and where it goes when it can't
/// have a slot of its own. Owner words first, on their own cache line.
#[repr(C, align(64))]
#[derive(Default)]
pub(super) struct Window<S> {
    owners: [AtomicU64; WINDOW_CELLS],
    cells: [S; WINDOW_CELLS],
}

/// Where a lookup left the caller.
pub(super) enum Found {
    /// The key's slot (`window * 8 + index`) is held once more for it.
    Held(u32),
    /// The key's slot is at the hold's limit; nothing was taken.
    Full,
    /// Another thread kept the window's claim flag too long; nothing was
    /// taken.
    Busy,
}

/// Where a claim left the caller.
enum Claim {
    /// The key's own regular slot, and how the hold went.
    Own(usize, Take),
    /// No slot could be had: the overflow slot, held under the flag (so no
    /// other claimer sees the overflow fresh before the hold lands).
    Overflow(Take),
}

impl<S: CellState> Window<S> {
    fn find(&self, fingerprint: u64, hold: Hold) -> Option<(usize, Take)> {
        (0..OVERFLOW).find_map(|index| {
            match take_hold(&self.owners[index], Some(fingerprint), hold) {
                Take::NotOwner => None,
                take => Some((index, take)),
            }
        })
    }

    fn try_begin_claim(&self) -> bool {
        self.owners[OVERFLOW].fetch_or(CLAIMING, Ordering::Acquire) & CLAIMING == 0
    }

    fn end_claim(&self) {
        self.owners[OVERFLOW].fetch_and(!CLAIMING, Ordering::Release);
    }

    /// With the flag held: the key's slot, a fresh slot for it, or the
    /// overflow. A key that may have state in the overflow (its member bit
    /// is set) goes back there and never starts over in a fresh slot.
    fn claim_locked(&self, fingerprint: u64, hold: Hold, now_ms: u64) -> Claim {
        // Fingerprints change only under the flag, so this look is final.
        if let Some((index, take)) = self.find(fingerprint, hold) {
            return Claim::Own(index, take);
        }
        let overflow = &self.owners[OVERFLOW];
        // Overflow holds are taken only under the flag, so a fresh overflow
        // stays fresh until we let go: nobody's state is there, and the
        // member filter can start empty again.
        if self.is_fresh(OVERFLOW, now_ms) {
            overflow.fetch_and(!MEMBERS_MASK, Ordering::Relaxed);
        }
        let member = member_bit(fingerprint);
        if overflow.load(Ordering::Relaxed) & member == 0
            && let Some(index) =
                (0..OVERFLOW).find(|&index| self.claim_if_fresh(index, fingerprint, hold, now_ms))
        {
            return Claim::Own(index, Take::Held);
        }
        overflow.fetch_or(member, Ordering::Relaxed);
        Claim::Overflow(take_hold(overflow, None, hold))
    }

    /// Gives slot `index` to `fingerprint`, held once, if nothing in it
    /// limits anyone.
    fn claim_if_fresh(&self, index: usize, fingerprint: u64, hold: Hold, now_ms: u64) -> bool {
        let owner = &self.owners[index];
        let previous = owner.load(Ordering::Acquire);
        if previous & HOLDS_MASK != 0 || !self.cells[index].is_fresh(now_ms) {
            return false;
        }
        // Fence the old owner out first: its holders now fail their CAS, and
        // acquiring its last release makes its final updates visible.
        let reserved = RESERVED << HOLD_BITS;
        if owner
            .compare_exchange(previous, reserved, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // A holder may have come and gone between the check and the CAS.
        if !self.cells[index].is_fresh(now_ms) {
            owner.store(previous, Ordering::Release);
            return false;
        }
        // Fresh already reads as reset; zero it so a shard whose clock is a
        // few milliseconds behind ours doesn't see the old owner's state.
        self.cells[index].reset();
        owner.store((fingerprint << HOLD_BITS) | hold.one(), Ordering::Release);
        true
    }

    fn is_fresh(&self, index: usize, now_ms: u64) -> bool {
        self.owners[index].load(Ordering::Acquire) & HOLDS_MASK == 0
            && self.cells[index].is_fresh(now_ms)
    }
}

/// How many times a thread rescans while another claims in its window.
const CLAIM_TRIES: u32 = 64;

/// Slow-path counters, on their own cache line.
#[repr(align(64))]
#[derive(Default)]
struct Counters {
    saturated: AtomicU64,
    busy: AtomicU64,
}

/// Regular slots holding state at one instant, and saturated windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Occupancy {
    /// Regular slots that are not fresh.
    pub slots: usize,
    /// Windows whose overflow slot is not fresh.
    pub overflowing_windows: usize,
}

/// Event counts since start-up, summed over all shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Lookups that went to an overflow slot: no slot of the key's window
    /// could be had.
    pub table_saturated: u64,
    /// Lookups refused because another thread held the window's claim flag
    /// too long (it was pre-empted).
    pub table_busy: u64,
}

/// The array of windows, hashed into by a 64-bit key hash.
pub(super) struct Table<S> {
    windows: Box<[Window<S>]>,
    window_mask: u64,
    counters: Counters,
}

impl<S: CellState> Table<S> {
    /// `cells` is a power of two, at least one window.
    pub(super) fn new(cells: usize) -> Table<S> {
        assert!(cells.is_power_of_two() && cells >= WINDOW_CELLS);
        let count = cells / WINDOW_CELLS;
        Table {
            windows: (0..count).map(|_| Window::default()).collect(),
            window_mask: count as u64 - 1,
            counters: Counters::default(),
        }
    }

    /// Finds or claims the slot of the key hashed to `hash`, and holds it.
    pub(super) fn hold(&self, hash: u64, hold: Hold, now_ms: u64) -> Found {
        let window_index = (hash & self.window_mask) as usize;
        let fingerprint = (hash >> HOLD_BITS).max(FIRST_KEY_FINGERPRINT);
        let window = &self.windows[window_index];
        let found = |index: usize, take: Take| match take {
            Take::Held => Found::Held((window_index * WINDOW_CELLS + index) as u32),
            Take::Full => Found::Full,
            Take::NotOwner => Found::Busy,
        };
        for _ in 0..CLAIM_TRIES {
            if let Some((index, take)) = window.find(fingerprint, hold) {
                return found(index, take);
            }
            if window.try_begin_claim() {
                let claim = window.claim_locked(fingerprint, hold, now_ms);
                window.end_claim();
                return match claim {
                    Claim::Own(index, take) => found(index, take),
                    Claim::Overflow(take) => {
                        self.counters.saturated.fetch_add(1, Ordering::Relaxed);
                        found(OVERFLOW, take)
                    }
                };
            }
            std::hint::spin_loop();
        }
        self.counters.busy.fetch_add(1, Ordering::Relaxed);
        Found::Busy
    }

    /// The state of a held slot.
    pub(super) fn state(&self, cell: u32) -> &S {
        let cell = cell as usize;
        &self.windows[cell / WINDOW_CELLS].cells[cell % WINDOW_CELLS]
    }

    /// Gives back one hold taken by [`Table::hold`]. Release ordering
    /// publishes every update made under the hold to the next claimer.
    pub(super) fn release(&self, cell: u32, hold: Hold) {
        let cell = cell as usize;
        let owner = &self.windows[cell / WINDOW_CELLS].owners[cell % WINDOW_CELLS];
        let before = owner.fetch_sub(hold.one(), Ordering::Release);
        debug_assert!(hold.count(before) > 0, "release without a hold");
    }

    /// Control plane only: O(cells).
    pub(super) fn occupancy(&self, now_ms: u64) -> Occupancy {
        let mut occupancy = Occupancy::default();
        for window in &self.windows {
            occupancy.slots += (0..OVERFLOW)
                .filter(|&index| !window.is_fresh(index, now_ms))
                .count();
            occupancy.overflowing_windows += usize::from(!window.is_fresh(OVERFLOW, now_ms));
        }
        occupancy
    }

    pub(super) fn stats(&self) -> TableStats {
        TableStats {
            table_saturated: self.counters.saturated.load(Ordering::Relaxed),
            table_busy: self.counters.busy.load(Ordering::Relaxed),
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        std::mem::size_of::<Table<S>>() + std::mem::size_of_val::<[Window<S>]>(&self.windows)
    }

    pub(super) fn cells(&self) -> usize {
        self.windows.len() * WINDOW_CELLS
    }
}

#[cfg(test)]
impl<S: CellState> Table<S> {
    /// Devices held in the slot of the key hashed to `hash` (tests only).
    pub(super) fn devices(&self, hash: u64) -> u32 {
        let Found::Held(cell) = self.hold(hash, Hold::Operation, 0) else {
            panic!("could not hold the key's slot");
        };
        let cell_index = cell as usize;
        let word = self.windows[cell_index / WINDOW_CELLS].owners[cell_index % WINDOW_CELLS]
            .load(Ordering::Acquire);
        self.release(cell, Hold::Operation);
        Hold::Device { max: 0 }.count(word) as u32
    }

    /// Whether the member filter of the key's window names the key.
    pub(super) fn may_be_in_overflow(&self, hash: u64) -> bool {
        let fingerprint = (hash >> HOLD_BITS).max(FIRST_KEY_FINGERPRINT);
        let overflow = &self.windows[self.window_of(hash)].owners[OVERFLOW];
        overflow.load(Ordering::Acquire) & member_bit(fingerprint) != 0
    }

    pub(super) fn window_of(&self, hash: u64) -> usize {
        (hash & self.window_mask) as usize
    }

    /// Takes the claim flag of the window `hash` lands in, as a pre-empted
    /// claimer would hold it (tests only).
    pub(super) fn block_window(&self, hash: u64, blocked: bool) {
        let window = &self.windows[(hash & self.window_mask) as usize];
        match blocked {
            true => assert!(window.try_begin_claim()),
            false => window.end_claim(),
        }
    }
}
