//! Which topics users subscribe to and publish on: the popularity
//! distribution, a sampler over it, and which worker thread owns (publishes
//! on) which topics. Pure: no I/O, no clock; randomness is a seeded
//! generator, so every process derives the same choices from `--seed`.
//!
//! Topic `t` (0-based) has popularity rank `t + 1`: under Zipf with exponent
//! `s` its weight is `1 / (t + 1)^s`; under uniform every weight is 1.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Most topics a run may have: per-topic counts are a fixed table of this
/// many entries at most, per thread.
pub const TOPICS_MAX: u32 = 1_000_000;

/// How popular each topic is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Uniform,
    /// Weight of topic `t` is `1 / (t + 1)^exponent`.
    Zipf {
        exponent: f64,
    },
}

impl Distribution {
    pub fn weight(self, topic: u32) -> f64 {
        match self {
            Distribution::Uniform => 1.0,
            Distribution::Zipf { exponent } => (f64::from(topic) + 1.0).powf(-exponent),
        }
    }
}

impl FromStr for Distribution {
    type Err = String;
    /// `uniform`, `zipf` (exponent 1.0) or `zipf:S`.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "uniform" => Ok(Distribution::Uniform),
            "zipf" => Ok(Distribution::Zipf { exponent: 1.0 }),
            other => {
                let exponent = other
                    .strip_prefix("zipf:")
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && (0.0..=10.0).contains(s))
                    .ok_or_else(|| {
                        format!("bad distribution {text:?}: expected uniform, zipf or zipf:S (0 <= S <= 10)")
                    })?;
                Ok(Distribution::Zipf { exponent })
            }
        }
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Distribution::Uniform => write!(f, "uniform"),
            Distribution::Zipf { exponent } => write!(f, "zipf:{exponent}"),
        }
    }
}

impl Serialize for Distribution {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The topics `first + k * step` for `k` in `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progression {
    pub first: u32,
    pub step: u32,
    pub count: u32,
}

impl Progression {
    /// Every topic, `0..topics`.
    pub fn all(topics: u32) -> Progression {
        Progression {
            first: 0,
            step: 1,
            count: topics,
        }
    }

    pub fn topic(&self, k: u32) -> u32 {
        self.first + k * self.step
    }
}

/// Which worker thread publishes on which topics.
///
/// Topic `t` belongs to process `t % procs`, and within it to thread
/// `(t / procs) % threads`: so a thread's topics are one progression, every
/// topic has exactly one owner, and popular (low) topics spread evenly. The
/// owner publishes each of its topics from one fixed user (see
/// `Ownership::publisher`), which makes a topic's messages one publisher's
/// sequence: the order the protocol promises, so loss, duplicates and
/// reordering can all be checked exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ownership {
    pub procs: u32,
    pub proc_index: u32,
    /// Threads of this process, and which one this is.
    pub threads: u32,
    pub thread: u32,
}

impl Ownership {
    /// The topics this thread publishes on, of `topics` in all.
    pub fn owned(&self, topics: u32) -> Progression {
        let first = u64::from(self.proc_index) + u64::from(self.procs) * u64::from(self.thread);
        let step = u64::from(self.procs) * u64::from(self.threads);
        let count = if first >= u64::from(topics) {
            0
        } else {
            (u64::from(topics) - first).div_ceil(step)
        };
        Progression {
            first: first.min(u64::from(topics)) as u32,
            step: step as u32,
            count: count as u32,
        }
    }

    /// The thread-local user that publishes the owned topic at position `k`
    /// of `owned`: owned topics are dealt round-robin over the thread's users.
    pub fn publisher(k: u32, users: usize) -> usize {
        k as usize % users.max(1)
    }
}

/// Sum of the weights of `topics` (the distribution's mass on them).
pub fn mass(distribution: Distribution, topics: Progression) -> f64 {
    match distribution {
        Distribution::Uniform => f64::from(topics.count),
        Distribution::Zipf { .. } => (0..topics.count)
            .map(|k| distribution.weight(topics.topic(k)))
            .sum(),
    }
}

/// Draws topics of a progression with probability proportional to their
/// weight: a cumulative table and a binary search (uniform needs no table).
#[derive(Debug, Clone)]
pub struct Sampler {
    topics: Progression,
    /// Cumulative weights, normalised so the last is 1; empty for uniform.
    cumulative: Vec<f64>,
}

impl Sampler {
    pub fn new(distribution: Distribution, topics: Progression) -> Sampler {
        let cumulative = match distribution {
            Distribution::Uniform => Vec::new(),
            Distribution::Zipf { .. } => {
                let mut sum = 0.0;
                let mut table: Vec<f64> = (0..topics.count)
                    .map(|k| {
                        sum += distribution.weight(topics.topic(k));
                        sum
                    })
                    .collect();
                for value in &mut table {
                    *value /= sum;
                }
                table
            }
        };
        Sampler { topics, cumulative }
    }

    pub fn topics(&self) -> Progression {
        self.topics
    }

    /// A position in the progression (not the topic): callers index
    /// per-topic state by it.
    pub fn sample_position(&self, rng: &mut Rng) -> u32 {
        let count = self.topics.count;
        debug_assert!(count > 0, "sampling from no topics");
        let u = rng.next_f64();
        let k = if self.cumulative.is_empty() {
            (u * f64::from(count)) as u32
        } else {
            self.cumulative.partition_point(|&c| c <= u) as u32
        };
        k.min(count - 1)
    }

    pub fn sample(&self, rng: &mut Rng) -> u32 {
        self.topics.topic(self.sample_position(rng))
    }

    /// `count` distinct topics drawn from the distribution (without
    /// replacement), appended to `out`. Rejection sampling, bounded: if a
    /// skewed distribution keeps returning topics already taken, the rest are
    /// the most popular topics not taken yet. `count` must not exceed the
    /// number of topics.
    pub fn distinct(&self, rng: &mut Rng, count: usize, out: &mut Vec<u32>) {
        assert!(
            count <= self.topics.count as usize,
            "more topics than exist"
        );
        let start = out.len();
        let mut attempts = 64 * count + 64;
        while out.len() - start < count && attempts > 0 {
            attempts -= 1;
            let topic = self.sample(rng);
            if !out[start..].contains(&topic) {
                out.push(topic);
            }
        }
        let mut k = 0;
        while out.len() - start < count {
            let topic = self.topics.topic(k);
            if !out[start..].contains(&topic) {
                out.push(topic);
            }
            k += 1;
        }
    }
}

/// xorshift64* seeded through splitmix64: fast, reproducible, and good
/// enough for choosing topics (no security property needed).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(splitmix64(seed) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The seed of global user `user`'s subscription choices: the same in every
/// process, so a run is reproducible from `--seed` alone.
pub fn user_seed(seed: u64, user: u64) -> u64 {
    splitmix64(seed ^ splitmix64(user))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(sampler: &Sampler, draws: usize, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        let mut counts = vec![0u64; sampler.topics().count as usize];
        for _ in 0..draws {
            counts[sampler.sample_position(&mut rng) as usize] += 1;
        }
        counts
    }

    #[test]
    fn distributions_parse() {
        assert_eq!("uniform".parse(), Ok(Distribution::Uniform));
        assert_eq!("zipf".parse(), Ok(Distribution::Zipf { exponent: 1.0 }));
        assert_eq!("zipf:1.2".parse(), Ok(Distribution::Zipf { exponent: 1.2 }));
        assert!("zipf:-1".parse::<Distribution>().is_err());
        assert!("zipf:".parse::<Distribution>().is_err());
        assert!("normal".parse::<Distribution>().is_err());
        assert_eq!(Distribution::Zipf { exponent: 1.5 }.to_string(), "zipf:1.5");
    }

    #[test]
    fn zipf_frequencies_follow_the_weights() {
        // 1,000 topics, s = 1: P(rank k) = 1 / (k * H_1000), H_1000 ~ 7.485.
        let topics = 1_000;
        let distribution = Distribution::Zipf { exponent: 1.0 };
        let sampler = Sampler::new(distribution, Progression::all(topics));
        let draws = 2_000_000;
        let counts = counts(&sampler, draws, 7);
        let harmonic: f64 = (1..=topics).map(|k| 1.0 / f64::from(k)).sum();
        for rank in [1u32, 2, 3, 10, 100] {
            let expected = draws as f64 / (f64::from(rank) * harmonic);
            let got = counts[rank as usize - 1] as f64;
            // Five standard deviations of a binomial count.
            let sigma = (expected * (1.0 - expected / draws as f64)).sqrt();
            assert!(
                (got - expected).abs() < 5.0 * sigma,
                "rank {rank}: got {got}, expected {expected:.0}"
            );
        }
        // Ranks 1..10 together hold H_10 / H_1000 ~ 39% of the draws.
        let top10: u64 = counts[..10].iter().sum();
        let share = top10 as f64 / draws as f64;
        assert!((0.385..0.395).contains(&share), "top-10 share {share}");
    }

    #[test]
    fn steeper_zipf_concentrates_more_and_zero_is_uniform() {
        let all = Progression::all(100);
        let first = |exponent| {
            let sampler = Sampler::new(Distribution::Zipf { exponent }, all);
            counts(&sampler, 200_000, 3)[0]
        };
        assert!(first(1.5) > first(1.0));
        assert!(first(1.0) > first(0.5));
        let flat = counts(
            &Sampler::new(Distribution::Zipf { exponent: 0.0 }, all),
            200_000,
            3,
        );
        let (min, max) = (flat.iter().min().unwrap(), flat.iter().max().unwrap());
        assert!(
            *min > 1_700 && *max < 2_300,
            "s=0 must be flat: {min}..{max}"
        );
    }

    #[test]
    fn uniform_covers_every_topic_evenly() {
        let sampler = Sampler::new(Distribution::Uniform, Progression::all(50));
        let counts = counts(&sampler, 500_000, 11);
        for (topic, &count) in counts.iter().enumerate() {
            assert!((9_400..10_600).contains(&count), "topic {topic}: {count}");
        }
    }

    #[test]
    fn sampler_over_a_progression_stays_in_it() {
        let topics = Progression {
            first: 3,
            step: 4,
            count: 25,
        };
        for distribution in [Distribution::Uniform, Distribution::Zipf { exponent: 1.0 }] {
            let sampler = Sampler::new(distribution, topics);
            let mut rng = Rng::new(5);
            for _ in 0..10_000 {
                let topic = sampler.sample(&mut rng);
                assert_eq!(topic % 4, 3);
                assert!(topic < 100);
            }
        }
    }

    #[test]
    fn distinct_draws_are_distinct_and_reproducible() {
        for distribution in [Distribution::Uniform, Distribution::Zipf { exponent: 3.0 }] {
            let sampler = Sampler::new(distribution, Progression::all(12));
            for count in [1, 5, 12] {
                let mut a = Vec::new();
                sampler.distinct(&mut Rng::new(99), count, &mut a);
                let mut sorted = a.clone();
                sorted.sort_unstable();
                sorted.dedup();
                assert_eq!(sorted.len(), count, "{distribution} {count}: {a:?}");
                let mut b = Vec::new();
                sampler.distinct(&mut Rng::new(99), count, &mut b);
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn ownership_partitions_the_topics() {
        // 3 processes with 2, 1 and 3 threads: every topic exactly once.
        let topics = 1_000;
        let threads = [2u32, 1, 3];
        let mut owner = vec![0u32; topics as usize];
        let mut total_mass = 0.0;
        let distribution = Distribution::Zipf { exponent: 1.0 };
        for (proc_index, &count) in threads.iter().enumerate() {
            for thread in 0..count {
                let ownership = Ownership {
                    procs: 3,
                    proc_index: proc_index as u32,
                    threads: count,
                    thread,
                };
                let owned = ownership.owned(topics);
                for k in 0..owned.count {
                    owner[owned.topic(k) as usize] += 1;
                }
                total_mass += mass(distribution, owned);
            }
        }
        assert!(owner.iter().all(|&n| n == 1));
        let all = mass(distribution, Progression::all(topics));
        assert!((total_mass - all).abs() < 1e-9);
        // More owners than topics: the extra ones own nothing.
        let idle = Ownership {
            procs: 4,
            proc_index: 3,
            threads: 1,
            thread: 0,
        };
        assert_eq!(idle.owned(3).count, 0);
    }
}
