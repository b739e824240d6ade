//! A per-shard hashed timer wheel for connection deadlines (handshake, frame,
//! ping, idle, close linger).
//!
//! Time is counted in ticks (100 ms). Each connection keeps at most one live
//! entry: the shard re-arms only when a deadline moves earlier, and a fired
//! entry whose connection has moved its deadline later is simply re-armed for
//! the new one. So recording activity on the hot path is a plain store, never
//! a wheel operation. Slots are `Vec`s that keep their capacity, so steady
//! state does not allocate.

/// Milliseconds per tick.
pub const TICK_MS: u64 = 100;

/// One scheduled deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub slot: u32,
    pub generation: u32,
    pub due: u32,
}

pub struct TimerWheel {
    slots: Vec<Vec<Entry>>,
    /// The last tick whose entries have fired.
    now: u32,
}

impl TimerWheel {
    /// `slot_count` bounds how far ahead an entry lands precisely; entries
    /// further out wrap and stay until their own tick.
    pub fn new(slot_count: usize, now: u32) -> TimerWheel {
        assert!(slot_count.is_power_of_two());
        TimerWheel {
            slots: (0..slot_count).map(|_| Vec::new()).collect(),
            now,
        }
    }

    /// Schedules `entry` at `entry.due`, clamped to the next tick.
    pub fn schedule(&mut self, mut entry: Entry) {
        entry.due = entry.due.max(self.now + 1);
        let index = entry.due as usize & (self.slots.len() - 1);
        self.slots[index].push(entry);
    }

    /// Fires every entry due at or before `to`, appending them to `fired`.
    pub fn advance(&mut self, to: u32, fired: &mut Vec<Entry>) {
        if to <= self.now {
            return;
        }
        let span = (to - self.now).min(self.slots.len() as u32);
        for step in 1..=span {
            let index = (self.now + step) as usize & (self.slots.len() - 1);
            let slot = &mut self.slots[index];
            let mut kept = 0;
            for position in 0..slot.len() {
                let entry = slot[position];
                if entry.due <= to {
                    fired.push(entry);
                } else {
                    slot[kept] = entry;
                    kept += 1;
                }
            }
            slot.truncate(kept);
        }
        self.now = to;
    }

    pub fn now(&self) -> u32 {
        self.now
    }

    /// Entries held (live and stale), for saturation reporting and tests.
    pub fn len(&self) -> usize {
        self.slots.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Vec::is_empty)
    }
}

/// Converts milliseconds to whole ticks, rounding up (a deadline never fires
/// early).
pub fn ticks(ms: u64) -> u32 {
    ms.div_ceil(TICK_MS).min(u64::from(u32::MAX / 2)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(slot: u32, due: u32) -> Entry {
        Entry {
            slot,
            generation: 0,
            due,
        }
    }

    #[test]
    fn fires_in_order_of_ticks_and_not_early() {
        let mut wheel = TimerWheel::new(8, 0);
        wheel.schedule(entry(1, 3));
        wheel.schedule(entry(2, 5));
        let mut fired = Vec::new();
        wheel.advance(2, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(3, &mut fired);
        assert_eq!(fired, vec![entry(1, 3)]);
        wheel.advance(10, &mut fired);
        assert_eq!(fired, vec![entry(1, 3), entry(2, 5)]);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn entries_beyond_one_revolution_wait_for_their_tick() {
        let mut wheel = TimerWheel::new(8, 0);
        wheel.schedule(entry(1, 20));
        let mut fired = Vec::new();
        wheel.advance(12, &mut fired);
        assert!(fired.is_empty(), "fired a full revolution early");
        wheel.advance(19, &mut fired);
        assert!(fired.is_empty());
        wheel.advance(20, &mut fired);
        assert_eq!(fired, vec![entry(1, 20)]);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_tick() {
        let mut wheel = TimerWheel::new(8, 10);
        wheel.schedule(entry(1, 4));
        let mut fired = Vec::new();
        wheel.advance(11, &mut fired);
        assert_eq!(fired, vec![entry(1, 11)]);
    }

    #[test]
    fn a_long_jump_fires_everything_due() {
        let mut wheel = TimerWheel::new(4, 0);
        for due in 1..=40 {
            wheel.schedule(entry(due, due));
        }
        let mut fired = Vec::new();
        wheel.advance(1000, &mut fired);
        assert_eq!(fired.len(), 40);
    }

    #[test]
    fn ticks_round_up() {
        assert_eq!(ticks(0), 0);
        assert_eq!(ticks(1), 1);
        assert_eq!(ticks(100), 1);
        assert_eq!(ticks(101), 2);
        assert_eq!(ticks(5_000), 50);
    }
}
