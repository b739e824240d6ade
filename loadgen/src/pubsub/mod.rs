//! The pieces of the `pubsub` scenario that do no I/O: topic popularity and
//! ownership (`topics`), sequence tracking per subscription (`track`), the
//! JSON envelopes (`wire`) and expected-versus-delivered accounting
//! (`accounting`). The worker glue is `worker::pubsub`.
//!
//! How the figures stay exact across threads and worker processes:
//!
//! 1. Each user's subscriptions are drawn from `--seed` and the user's global
//!    index alone, so they do not depend on which process holds the user.
//! 2. Every topic has exactly one owning thread in the whole run
//!    (`topics::Ownership`), and the owner publishes each of its topics from
//!    one fixed user of its own. A topic's messages are therefore one
//!    publisher's sequence 0, 1, 2, …: the order the protocol promises
//!    ("within one topic, messages from one publisher arrive in the order
//!    that publisher's publishes were acknowledged"), so each subscriber can
//!    check loss, duplicates and order with 16 bytes per subscription.
//! 3. Each thread's publish rate is `--rate` times the popularity mass of
//!    the topics it owns, so the run as a whole publishes on topic `t` with
//!    the probability the distribution gives `t`.
//! 4. Counts are per topic (`accounting`) and added across processes at the
//!    end: the owner knows what was published, each subscriber's thread what
//!    arrived, and neither needs the other during the run.

pub mod accounting;
pub mod topics;
pub mod track;
pub mod wire;

/// Whether a publish intended at `intended_us` (µs, monotonic) belongs to
/// the window `[start_ns, end_ns)`. Publisher and subscriber both decide on
/// the µs value the message carries, so they always agree.
pub fn in_window_us(intended_us: u64, start_ns: u64, end_ns: u64) -> bool {
    intended_us >= start_ns.div_ceil(1_000) && intended_us < end_ns.div_ceil(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_membership_is_decided_on_microseconds() {
        // Window [1_500 ns, 3_500 ns): microseconds 2 and 3.
        assert!(!in_window_us(1, 1_500, 3_500));
        assert!(in_window_us(2, 1_500, 3_500));
        assert!(in_window_us(3, 1_500, 3_500));
        assert!(!in_window_us(4, 1_500, 3_500));
        // Adjacent windows never both claim a microsecond.
        for us in 0..10 {
            let first = in_window_us(us, 0, 4_200);
            let second = in_window_us(us, 4_200, 9_000);
            assert!(!(first && second));
        }
    }
}
