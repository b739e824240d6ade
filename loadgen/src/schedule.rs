//! Open-loop schedules: when event number `seq` is meant to happen.
//!
//! Pure arithmetic on nanosecond timestamps, no clock. Event `seq` (from 0)
//! is intended at `start_ns + seq / rate`. Latency is measured from that
//! intended time, not from when the send actually happened, so a server stall
//! that delays sends is charged to the server (coordinated-omission
//! correction, as wrk2 does). A sender that falls behind sends its whole
//! backlog at once, each message still stamped with its own intended time.
//!
//! One thread's schedule is interleaved over its connections: event `seq`
//! belongs to connection `seq % conns`, so each connection sees a steady
//! `rate / conns` and connection `c`'s `m`-th event is `seq = m * conns + c`.

const NS_PER_S: f64 = 1e9;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    pub start_ns: u64,
    /// Events per second; above 0.
    pub rate: f64,
}

impl Schedule {
    pub fn new(start_ns: u64, rate: f64) -> Schedule {
        assert!(
            rate > 0.0 && rate.is_finite(),
            "schedule rate must be positive"
        );
        Schedule { start_ns, rate }
    }

    /// Intended time of event `seq`.
    pub fn intended_ns(&self, seq: u64) -> u64 {
        self.start_ns + (seq as f64 * NS_PER_S / self.rate) as u64
    }

    /// How many events are due at `now_ns` (intended at or before it).
    pub fn due(&self, now_ns: u64) -> u64 {
        if now_ns < self.start_ns {
            return 0;
        }
        let elapsed = (now_ns - self.start_ns) as f64;
        let mut due = (elapsed * self.rate / NS_PER_S) as u64 + 1;
        // Float rounding may disagree with intended_ns by one; intended_ns is the truth.
        while due > 0 && self.intended_ns(due - 1) > now_ns {
            due -= 1;
        }
        while self.intended_ns(due) <= now_ns {
            due += 1;
        }
        due
    }

    /// How many events are intended strictly before `end_ns`.
    pub fn count_before(&self, end_ns: u64) -> u64 {
        if end_ns == 0 {
            return 0;
        }
        self.due(end_ns - 1)
    }
}

/// Of the first `due` events of a schedule interleaved over `conns`
/// connections, how many belong to connection `conn`.
pub fn due_for_conn(due: u64, conns: u64, conn: u64) -> u64 {
    debug_assert!(conn < conns);
    if due <= conn {
        0
    } else {
        (due - conn).div_ceil(conns)
    }
}

/// Sequence number of connection `conn`'s `nth` event (from 0).
pub fn seq_of(nth: u64, conns: u64, conn: u64) -> u64 {
    nth * conns + conn
}

/// Latency of a reply, in microseconds, measured from the intended send time.
/// A reply can't precede its send; clamp clock noise to zero.
pub fn latency_us(intended_ns: u64, received_ns: u64) -> u64 {
    received_ns.saturating_sub(intended_ns) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_evenly_spaced() {
        let s = Schedule::new(1_000, 1_000.0); // one per ms
        assert_eq!(s.intended_ns(0), 1_000);
        assert_eq!(s.intended_ns(1), 1_001_000);
        assert_eq!(s.intended_ns(1_000), 1_000_001_000);
    }

    #[test]
    fn due_counts_events_at_or_before_now() {
        let s = Schedule::new(1_000, 1_000.0);
        assert_eq!(s.due(0), 0);
        assert_eq!(s.due(999), 0);
        assert_eq!(s.due(1_000), 1);
        assert_eq!(s.due(1_000_999), 1);
        assert_eq!(s.due(1_001_000), 2);
        assert_eq!(s.due(10_000_000_000), 10_000);
    }

    #[test]
    fn due_agrees_with_intended_at_awkward_rates() {
        for rate in [3.0, 7.7, 33_333.0, 1e6 / 3.0, 999_983.0] {
            let s = Schedule::new(123_456_789, rate);
            for seq in [0u64, 1, 2, 99, 12_345, 1_000_003] {
                let t = s.intended_ns(seq);
                assert_eq!(s.due(t), seq + 1, "rate {rate} seq {seq}");
                if t > s.start_ns {
                    assert!(s.due(t - 1) <= seq, "rate {rate} seq {seq}");
                }
            }
        }
    }

    #[test]
    fn count_before_excludes_the_end() {
        let s = Schedule::new(0, 1_000.0);
        assert_eq!(s.count_before(1_000_000_000), 1_000);
        assert_eq!(s.count_before(1_000_000_001), 1_001);
    }

    #[test]
    fn backlog_after_a_stall_keeps_intended_times() {
        // A sender stalled for 200 ms at 1000/s owes 200 messages; the
        // first of them was meant at the start of the stall, so its
        // latency includes the whole stall (what wrk2 reports, and what a
        // user waiting on it sees).
        let s = Schedule::new(0, 1_000.0);
        let sent_before_stall = s.due(99_999_999); // 100 messages by 99.99 ms
        assert_eq!(sent_before_stall, 100);
        let after_stall = 300_000_000;
        let owed = s.due(after_stall) - sent_before_stall;
        assert_eq!(owed, 201);
        let first_owed = s.intended_ns(sent_before_stall);
        assert_eq!(latency_us(first_owed, after_stall), 200_000);
        let last_owed = s.intended_ns(s.due(after_stall) - 1);
        assert_eq!(latency_us(last_owed, after_stall), 0);
    }

    #[test]
    fn interleaving_gives_each_connection_its_share() {
        let conns = 4;
        let mut per_conn = [0u64; 4];
        for seq in 0..10 {
            per_conn[(seq % conns) as usize] += 1;
        }
        for conn in 0..conns {
            assert_eq!(due_for_conn(10, conns, conn), per_conn[conn as usize]);
        }
        assert_eq!(due_for_conn(0, conns, 0), 0);
        assert_eq!(due_for_conn(3, conns, 3), 0);
        assert_eq!(due_for_conn(4, conns, 3), 1);
        assert_eq!(seq_of(2, conns, 3), 11);
    }

    #[test]
    fn latency_never_negative() {
        assert_eq!(latency_us(5_000, 4_000), 0);
        assert_eq!(latency_us(5_000, 5_001_999), 4_996);
    }
}
