//! Which per-message events to log: a fixed fraction, decided by one
//! xorshift step on plain per-thread state (no clock, no atomics, no
//! allocation), so an unsampled message costs a few instructions.

/// Samples a fraction of calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampler {
    state: u64,
    /// A call is sampled when the next random value is at most this; 0: never.
    threshold: u64,
}

impl Sampler {
    /// Samples nothing.
    pub const OFF: Sampler = Sampler {
        state: 1,
        threshold: 0,
    };

    /// Samples `rate` of the calls (0 or less: none, 1 or more: all);
    /// `seed` makes threads differ.
    pub fn new(rate: f64, seed: u64) -> Sampler {
        let threshold = if rate.is_nan() || rate <= 0.0 {
            0
        } else {
            // Saturates at u64::MAX for rate >= 1.
            (rate * 18_446_744_073_709_551_616.0) as u64
        };
        // splitmix64 of the seed: any seed gives a well-mixed, non-zero state.
        let mut state = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        state = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        state = (state ^ (state >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        state ^= state >> 31;
        Sampler {
            state: state.max(1),
            threshold,
        }
    }

    /// True for about `rate` of the calls.
    #[inline]
    pub fn sample(&mut self) -> bool {
        if self.threshold == 0 {
            return false;
        }
        // xorshift64: uniform enough for sampling, no security property.
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x <= self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(rate: f64, seed: u64, calls: u32) -> u32 {
        let mut sampler = Sampler::new(rate, seed);
        (0..calls).filter(|_| sampler.sample()).count() as u32
    }

    #[test]
    fn one_percent_samples_about_one_percent() {
        for seed in 0..4 {
            let count = hits(0.01, seed, 1_000_000);
            assert!((9_000..=11_000).contains(&count), "seed {seed}: {count}");
        }
    }

    #[test]
    fn zero_samples_nothing_and_one_everything() {
        assert_eq!(hits(0.0, 7, 100_000), 0);
        assert_eq!(hits(-1.0, 7, 100_000), 0);
        assert_eq!(hits(f64::NAN, 7, 100_000), 0);
        assert_eq!(hits(1.0, 7, 100_000), 100_000);
        let mut off = Sampler::OFF;
        assert!(!(0..1_000).any(|_| off.sample()));
    }

    #[test]
    fn seeds_give_different_sequences() {
        let mut first = Sampler::new(0.5, 1);
        let mut second = Sampler::new(0.5, 2);
        let a: Vec<bool> = (0..64).map(|_| first.sample()).collect();
        let b: Vec<bool> = (0..64).map(|_| second.sample()).collect();
        assert_ne!(a, b);
    }
}
