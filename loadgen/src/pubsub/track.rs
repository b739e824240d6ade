//! Per (subscriber, topic) sequence tracking: is this delivery new, late
//! (out of order) or a duplicate? Pure, 16 bytes per subscription, sized at
//! start-up.
//!
//! A topic's messages are numbered 0, 1, 2, … by its one publisher (see
//! `topics::Ownership`), so one subscriber should see each number once, in
//! order. The tracker keeps the highest number seen and a 64-bit window of
//! which of the 64 numbers below it were seen:
//!
//! - a number above the highest is new (a jump leaves holes: numbers not
//!   seen yet);
//! - a number inside the window is a duplicate if its bit is set, else a
//!   late arrival (out of order) that fills a hole;
//! - a number older than the window cannot be looked up. Holes that slid out
//!   of the window unfilled are counted, so such a number is a late arrival
//!   while any such hole is left, and a duplicate when none is (every older
//!   number was seen). Only a mix of very late arrivals and very old
//!   duplicates in one subscription can swap the two labels; the counts of
//!   distinct deliveries stay exact either way.

/// Numbers the window remembers below the highest seen.
pub const WINDOW: u32 = 64;

/// What one delivery was, for its subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Above everything seen so far.
    InOrder,
    /// Not seen before, but a later number already was.
    Late,
    /// Seen before.
    Duplicate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqWindow {
    /// Highest number seen, plus one (0: nothing seen).
    high: u32,
    /// Bit `i` set: number `high - 1 - i` was seen. Numbers below 0 count as
    /// seen, so a fresh tracker has no holes.
    seen: u64,
    /// Holes that slid out of the window unfilled.
    old_holes: u32,
}

impl Default for SeqWindow {
    fn default() -> Self {
        SeqWindow {
            high: 0,
            seen: u64::MAX,
            old_holes: 0,
        }
    }
}

impl SeqWindow {
    pub fn record(&mut self, seq: u32) -> Arrival {
        if seq >= self.high {
            let jump = u64::from(seq - self.high) + 1;
            let (dropped, skipped_past_window) = if jump >= u64::from(WINDOW) {
                // Every old bit leaves; so do the skipped numbers that do
                // not fit in the new window's 63 places below `seq`.
                (self.seen.count_zeros(), jump - u64::from(WINDOW))
            } else {
                let leaving = self.seen >> (u64::from(WINDOW) - jump);
                (leaving.count_zeros() - (WINDOW - jump as u32), 0)
            };
            let holes = u64::from(dropped) + skipped_past_window;
            self.old_holes = self
                .old_holes
                .saturating_add(holes.min(u64::from(u32::MAX)) as u32);
            self.seen = if jump >= u64::from(WINDOW) {
                1
            } else {
                self.seen << jump | 1
            };
            self.high = seq + 1;
            return Arrival::InOrder;
        }
        let age = self.high - 1 - seq;
        if age < WINDOW {
            let bit = 1u64 << age;
            if self.seen & bit != 0 {
                return Arrival::Duplicate;
            }
            self.seen |= bit;
            return Arrival::Late;
        }
        if self.old_holes > 0 {
            self.old_holes -= 1;
            Arrival::Late
        } else {
            Arrival::Duplicate
        }
    }

    /// Numbers below the highest seen that have not arrived (yet).
    #[cfg(test)]
    pub fn missing(&self) -> u64 {
        let in_window = self.seen.count_zeros();
        u64::from(in_window) + u64::from(self.old_holes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seqs: &[u32]) -> (Vec<Arrival>, SeqWindow) {
        let mut window = SeqWindow::default();
        let arrivals = seqs.iter().map(|&s| window.record(s)).collect();
        (arrivals, window)
    }

    use Arrival::{Duplicate, InOrder, Late};

    #[test]
    fn in_order_stream_has_no_anomalies() {
        let seqs: Vec<u32> = (0..1_000).collect();
        let (arrivals, window) = run(&seqs);
        assert!(arrivals.iter().all(|a| *a == InOrder));
        assert_eq!(window.missing(), 0);
    }

    #[test]
    fn duplicates_inside_the_window_are_caught() {
        let (arrivals, window) = run(&[0, 1, 2, 2, 1, 3, 0]);
        assert_eq!(
            arrivals,
            vec![
                InOrder, InOrder, InOrder, Duplicate, Duplicate, InOrder, Duplicate
            ]
        );
        assert_eq!(window.missing(), 0);
    }

    #[test]
    fn late_arrivals_fill_holes_once() {
        let (arrivals, window) = run(&[0, 2, 3, 1, 1, 5]);
        assert_eq!(
            arrivals,
            vec![InOrder, InOrder, InOrder, Late, Duplicate, InOrder]
        );
        assert_eq!(window.missing(), 1, "4 is still missing");
    }

    #[test]
    fn holes_that_leave_the_window_are_remembered() {
        // 5 never comes in time; 200 messages later it does, then again.
        let mut seqs: Vec<u32> = (0..5).chain(6..205).collect();
        seqs.push(5);
        seqs.push(5);
        let (arrivals, window) = run(&seqs);
        assert!(arrivals[..204].iter().all(|a| *a == InOrder));
        assert_eq!(arrivals[204], Late);
        assert_eq!(arrivals[205], Duplicate);
        assert_eq!(window.missing(), 0);
    }

    #[test]
    fn old_duplicates_without_holes_are_duplicates() {
        let mut seqs: Vec<u32> = (0..300).collect();
        seqs.push(10);
        let (arrivals, _) = run(&seqs);
        assert_eq!(*arrivals.last().unwrap(), Duplicate);
    }

    #[test]
    fn big_jumps_count_every_skipped_number() {
        for (first, jump_to) in [(0u32, 63u32), (0, 64), (0, 65), (10, 1_000), (0, 100_000)] {
            let (_, window) = run(&[first, jump_to]);
            // Everything below `jump_to` but `first`.
            assert_eq!(
                window.missing(),
                u64::from(jump_to - 1),
                "{first} -> {jump_to}"
            );
        }
        // A lost first message is a hole too.
        let (_, window) = run(&[3]);
        assert_eq!(window.missing(), 3);
    }

    #[test]
    fn every_small_permutation_is_classified_exactly() {
        // Against an exact set: permutations of 0..6 with one duplicate.
        let base = [0u32, 1, 2, 3, 4, 5];
        let mut order = base;
        for round in 0..720u32 {
            // Next permutation (lexicographic), wrapping around.
            let mut i = order.len() - 1;
            while i > 0 && order[i - 1] >= order[i] {
                i -= 1;
            }
            if i == 0 {
                order.reverse();
            } else {
                let mut j = order.len() - 1;
                while order[j] <= order[i - 1] {
                    j -= 1;
                }
                order.swap(i - 1, j);
                order[i..].reverse();
            }
            let mut seqs = order.to_vec();
            seqs.insert((round as usize) % 7, order[(round as usize) % 6]);
            let mut window = SeqWindow::default();
            let mut seen = std::collections::BTreeSet::new();
            let mut high = None;
            for &s in &seqs {
                let expected = if seen.contains(&s) {
                    Duplicate
                } else if high.is_some_and(|h| s < h) {
                    Late
                } else {
                    InOrder
                };
                assert_eq!(window.record(s), expected, "{seqs:?} at {s}");
                seen.insert(s);
                high = high.max(Some(s));
            }
            assert_eq!(window.missing(), 0);
        }
    }
}
