//! Per-event token buckets, so a flood of one failure (an attack) costs a
//! bounded number of log lines, plus the count of what was left out.
//!
//! Plain state owned by one thread (a shard): no locks, no atomics. Time is
//! an argument (milliseconds from any fixed origin), so tests drive it.

/// Lines per second and burst of each event's bucket (0 per second: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub lines_per_second: u32,
    pub burst: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            lines_per_second: 10,
            burst: 20,
        }
    }
}

/// Distinct events one thread tracks; events past it share no bucket and
/// are always limited to the last entry (the set of names is fixed by the
/// code, so this is never reached in practice).
const MAX_EVENTS: usize = 64;
/// A suppression summary is written at most this often per event.
pub const SUMMARY_INTERVAL_MS: u64 = 1_000;

/// What to do with one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Write the line.
    pub allowed: bool,
    /// Write a `log_suppressed` summary first: this many lines of this event
    /// were left out since the last summary.
    pub summary: Option<u64>,
}

#[derive(Debug)]
struct Entry {
    event: &'static str,
    /// Thousandths of a line, so refill needs no floating point.
    milli_tokens: u64,
    refilled_ms: u64,
    suppressed: u64,
    summarized_ms: u64,
}

/// One thread's buckets, one per event name.
#[derive(Debug)]
pub struct Limiter {
    limits: Limits,
    entries: Vec<Entry>,
}

impl Limiter {
    pub fn new(limits: Limits) -> Limiter {
        Limiter {
            limits,
            entries: Vec::new(),
        }
    }

    /// Decides about one line of `event` at `now_ms`.
    pub fn check(&mut self, event: &'static str, now_ms: u64) -> Verdict {
        if self.limits.lines_per_second == 0 {
            return Verdict {
                allowed: true,
                summary: None,
            };
        }
        let limits = self.limits;
        let entry = self.entry(event, now_ms);
        let elapsed_ms = now_ms.saturating_sub(entry.refilled_ms);
        let capacity = u64::from(limits.burst.max(1)) * 1_000;
        entry.milli_tokens = (entry.milli_tokens
            + elapsed_ms.saturating_mul(u64::from(limits.lines_per_second)))
        .min(capacity);
        entry.refilled_ms = now_ms;
        let allowed = entry.milli_tokens >= 1_000;
        if allowed {
            entry.milli_tokens -= 1_000;
        } else {
            entry.suppressed += 1;
        }
        Verdict {
            allowed,
            summary: Self::take_summary(entry, now_ms),
        }
    }

    /// Summaries due at `now_ms` for every event (called on a periodic tick,
    /// so the last second of a flood is reported even if it then stops).
    pub fn due_summaries(&mut self, now_ms: u64, mut report: impl FnMut(&'static str, u64)) {
        for entry in &mut self.entries {
            if let Some(count) = Self::take_summary(entry, now_ms) {
                report(entry.event, count);
            }
        }
    }

    fn take_summary(entry: &mut Entry, now_ms: u64) -> Option<u64> {
        if entry.suppressed == 0 || now_ms < entry.summarized_ms.saturating_add(SUMMARY_INTERVAL_MS)
        {
            return None;
        }
        entry.summarized_ms = now_ms;
        Some(std::mem::take(&mut entry.suppressed))
    }

    fn entry(&mut self, event: &'static str, now_ms: u64) -> &mut Entry {
        // Names are static: compare the pointer first, then the text.
        let found = self
            .entries
            .iter()
            .position(|e| std::ptr::eq(e.event, event) || e.event == event);
        let index = match found {
            Some(index) => index,
            None if self.entries.len() < MAX_EVENTS => {
                self.entries.push(Entry {
                    event,
                    milli_tokens: u64::from(self.limits.burst.max(1)) * 1_000,
                    refilled_ms: now_ms,
                    suppressed: 0,
                    // The first summary may come as soon as a line is left out.
                    summarized_ms: now_ms.saturating_sub(SUMMARY_INTERVAL_MS),
                });
                self.entries.len() - 1
            }
            None => self.entries.len() - 1,
        };
        &mut self.entries[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        lines_per_second: 10,
        burst: 5,
    };

    fn allowed(limiter: &mut Limiter, event: &'static str, count: usize, now_ms: u64) -> usize {
        (0..count)
            .filter(|_| limiter.check(event, now_ms).allowed)
            .count()
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds() {
        let mut limiter = Limiter::new(LIMITS);
        assert_eq!(allowed(&mut limiter, "auth_failure", 1_000, 0), 5);
        // 10 per second: one token per 100 ms.
        assert_eq!(allowed(&mut limiter, "auth_failure", 1_000, 99), 0);
        assert_eq!(allowed(&mut limiter, "auth_failure", 1_000, 100), 1);
        assert_eq!(
            allowed(&mut limiter, "auth_failure", 1_000, 1_100),
            5,
            "refill caps at burst"
        );
    }

    #[test]
    fn events_have_separate_buckets() {
        let mut limiter = Limiter::new(LIMITS);
        assert_eq!(allowed(&mut limiter, "auth_failure", 100, 0), 5);
        assert_eq!(allowed(&mut limiter, "rate_limited", 100, 0), 5);
    }

    #[test]
    fn suppressed_lines_are_summarized_at_most_once_a_second() {
        let mut limiter = Limiter::new(LIMITS);
        let mut summaries = Vec::new();
        for now_ms in 0..3_000u64 {
            let verdict = limiter.check("auth_failure", now_ms);
            if let Some(count) = verdict.summary {
                summaries.push((now_ms, count));
            }
        }
        // 3,000 attempts, 5 + 10/s * 3 s passed (about 34), the rest counted.
        let total: u64 = summaries.iter().map(|&(_, count)| count).sum();
        let mut tail = 0;
        limiter.due_summaries(10_000, |event, count| {
            assert_eq!(event, "auth_failure");
            tail = count;
        });
        assert!(
            (2_960..=2_970).contains(&(total + tail)),
            "{summaries:?} {tail}"
        );
        for pair in summaries.windows(2) {
            assert!(
                pair[1].0 - pair[0].0 >= SUMMARY_INTERVAL_MS,
                "{summaries:?}"
            );
        }
        let mut again = 0;
        limiter.due_summaries(20_000, |_, _| again += 1);
        assert_eq!(again, 0, "nothing left out since");
    }

    #[test]
    fn zero_lines_per_second_turns_the_limit_off() {
        let mut limiter = Limiter::new(Limits {
            lines_per_second: 0,
            burst: 0,
        });
        assert_eq!(allowed(&mut limiter, "auth_failure", 1_000, 0), 1_000);
    }

    #[test]
    fn distinct_events_are_bounded() {
        let mut limiter = Limiter::new(LIMITS);
        let names: Vec<&'static str> = (0..200)
            .map(|n| &*Box::leak(format!("event_{n}").into_boxed_str()))
            .collect();
        for name in &names {
            limiter.check(name, 0);
        }
        assert_eq!(limiter.entries.len(), MAX_EVENTS);
    }
}
