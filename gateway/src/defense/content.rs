//! The repeated-content detector: the same payload more than
//! `repeated_content_max` times (default 5) within `repeated_content_window_s`
//! (default 60 s) from one user is throttled.
//!
//! What it does: hashes a payload with a fast hash under a per-process
//! random key ([`PayloadHasher`], about 8 ns for 100 bytes), and keeps, in
//! each user's slot of the [user table](crate::defense::user_table), the 4
//! payloads the user repeated most recently ([`RecentPayloads`], one atomic
//! word each: tag, count, window end). The table's
//! [`check_content`](crate::defense::user_table::UserTable::check_content) and
//! [`allow_publish`](crate::defense::user_table::UserTable::allow_publish)
//! call it.
//!
//! What it does not do: it is a cheap filter for copy-paste floods and
//! stuck retry loops, not a spam classifier. A payload changed by one byte
//! is a new payload, and a user cycling through more than 4 distinct
//! payloads pushes the oldest, least-repeated ones out of memory; the
//! per-user rates stay the hard bound either way. No clock (time is an
//! argument), no allocation, no `unsafe`.
//!
//! # Semantics, exactly
//! A payload's window opens at its first accepted occurrence and lasts the
//! configured window; occurrences 1 to N in it pass, later ones are refused
//! with [`Repeated`] and `retry_after_ms` = the time left in the window;
//! refused occurrences don't count. At the window's end the payload starts
//! over. So a user repeats a payload at most N times per window, and at most
//! 2N times in any span of one window's length.
//!
//! When a payload is not among the 4 remembered, it takes the place of an
//! expired entry, else of the live entry with the fewest repeats (the
//! earliest to end on a tie): the entries closest to the limit stay.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Entries per user slot: one 32-byte half of a cache line.
pub const RECENT_PAYLOADS: usize = 4;
/// The count field's ceiling: the largest `repeated_content_max`.
pub const REPEATS_MAX: u32 = 255;

/// Entry word, low to high: window end in ms (40 bits: 34 years of
/// monotonic time), count (8 bits; 0 = empty), tag (16 bits).
const END_BITS: u32 = 40;
const END_MASK: u64 = (1 << END_BITS) - 1;
const COUNT_SHIFT: u32 = END_BITS;
const COUNT_MASK: u64 = 0xff;
const TAG_SHIFT: u32 = 48;

/// A payload repeated too often; answer `rate_limited` with the wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("same payload repeated too often, retry after {retry_after_ms} ms")]
pub struct Repeated {
    /// Until the payload's window ends (at least 1).
    pub retry_after_ms: u64,
}

/// A fast seeded hash for payload bytes: 16 bytes per step through a
/// 64×64→128-bit multiply whose halves are folded together, keyed by four
/// secrets drawn per process. Its job is spreading, not resisting an
/// adversary: a collision can only merge two payloads of the same user
/// (stricter for that user), never touch anybody else's limits.
#[derive(Clone, Copy)]
pub struct PayloadHasher {
    secrets: [u64; 4],
}

impl std::fmt::Debug for PayloadHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PayloadHasher")
    }
}

impl PayloadHasher {
    /// Secrets derived from a random SipHash key (the process's).
    pub fn new(seed: &RandomState) -> PayloadHasher {
        // Odd secrets: a multiply by an odd number loses no bits.
        PayloadHasher {
            secrets: std::array::from_fn(|i| seed.hash_one(("payload", i)) | 1),
        }
    }

    pub fn hash(&self, payload: &[u8]) -> u64 {
        let [s0, s1, s2, s3] = self.secrets;
        let mut state = s0 ^ payload.len() as u64;
        let mut chunks = payload.chunks_exact(16);
        for chunk in &mut chunks {
            state = fold(word(chunk, 0) ^ s1 ^ state, word(chunk, 8) ^ s2);
        }
        if !chunks.remainder().is_empty() {
            let (low, high) = tail(payload);
            state = fold(low ^ s1 ^ state, high ^ s2);
        }
        fold(state ^ s3, s0)
    }
}

/// The little-endian word at `at`.
fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// The bytes after the last whole 16-byte chunk, read as two words without
/// a copy: the last 16 bytes when there are that many (overlapping the last
/// chunk), else overlapping reads that still cover every byte. The length
/// is in the state already, so overlaps can't make two payloads collide.
fn tail(payload: &[u8]) -> (u64, u64) {
    let length = payload.len();
    let half = |at: usize| {
        u64::from(u32::from_le_bytes(
            payload[at..at + 4].try_into().expect("4 bytes"),
        ))
    };
    match length {
        16.. => (word(payload, length - 16), word(payload, length - 8)),
        8.. => (word(payload, 0), word(payload, length - 8)),
        4.. => (half(0), half(length - 4)),
        _ => {
            let (first, middle, last) = (payload[0], payload[length / 2], payload[length - 1]);
            let packed = u64::from(first) | u64::from(middle) << 8 | u64::from(last) << 16;
            (packed, 0)
        }
    }
}

/// Multiplies into 128 bits and folds the halves: every input bit reaches
/// most output bits in one step.
fn fold(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

/// The entry tag of `payload_hash` for the user hashed to `user_hash`: the
/// user is part of it so that, in an overflow slot shared by several users,
/// one user's repeats never count against another's.
pub fn tag(user_hash: u64, payload_hash: u64) -> u16 {
    (fold(
        payload_hash ^ user_hash.rotate_left(29),
        0x9e37_79b9_7f4a_7c15,
    ) >> 48) as u16
}

/// How a user's payload counting is configured; `max_repeats` 0 is off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentRule {
    pub max_repeats: u32,
    pub window_ms: u64,
}

#[derive(Clone, Copy)]
struct Entry {
    end_ms: u64,
    count: u32,
    tag: u16,
}

impl Entry {
    fn unpack(word: u64) -> Entry {
        Entry {
            end_ms: word & END_MASK,
            count: ((word >> COUNT_SHIFT) & COUNT_MASK) as u32,
            tag: (word >> TAG_SHIFT) as u16,
        }
    }

    fn pack(self) -> u64 {
        (u64::from(self.tag) << TAG_SHIFT) | (u64::from(self.count) << COUNT_SHIFT) | self.end_ms
    }

    fn is_live(self, now_ms: u64) -> bool {
        self.count > 0 && self.end_ms > now_ms
    }

    /// Eviction order: dead entries first, then the fewest repeats, then the
    /// earliest end.
    fn eviction_rank(self, now_ms: u64) -> (bool, u32, u64) {
        (self.is_live(now_ms), self.count, self.end_ms)
    }
}

/// One user's recently repeated payloads. All zero (every entry empty) when
/// fresh. Updated by CAS on one word at a time.
#[derive(Default)]
pub struct RecentPayloads {
    entries: [AtomicU64; RECENT_PAYLOADS],
}

impl RecentPayloads {
    /// Counts one occurrence of the payload tagged `tag` at `now_ms`, or
    /// refuses it if it already occurred `max_repeats` times in its window.
    /// `now_ms` must be below 2^40 (34 years of monotonic time).
    pub fn record(&self, tag: u16, rule: ContentRule, now_ms: u64) -> Result<(), Repeated> {
        loop {
            let words: [u64; RECENT_PAYLOADS] =
                std::array::from_fn(|i| self.entries[i].load(Ordering::Acquire));
            let (index, entry) = match find(&words, tag, now_ms) {
                Lookup::Counted {
                    total, last_end_ms, ..
                } if total >= rule.max_repeats => {
                    return Err(Repeated {
                        retry_after_ms: last_end_ms.saturating_sub(now_ms).max(1),
                    });
                }
                Lookup::Counted { first, .. } => {
                    let entry = Entry::unpack(words[first]);
                    (
                        first,
                        Entry {
                            count: entry.count + 1,
                            ..entry
                        },
                    )
                }
                Lookup::Absent { victim } => {
                    let end_ms = now_ms.saturating_add(rule.window_ms).min(END_MASK);
                    (
                        victim,
                        Entry {
                            end_ms,
                            count: 1,
                            tag,
                        },
                    )
                }
            };
            if self.entries[index]
                .compare_exchange(
                    words[index],
                    entry.pack(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return Ok(());
            }
        }
    }

    /// No entry is live at `now_ms`.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.entries
            .iter()
            .all(|word| !Entry::unpack(word.load(Ordering::Acquire)).is_live(now_ms))
    }

    pub fn reset(&self) {
        for word in &self.entries {
            word.store(0, Ordering::Relaxed);
        }
    }
}

enum Lookup {
    /// Live entries carry the tag: their counts summed (two shards can
    /// insert the same new payload at once; the sum keeps counting right),
    /// the first of them, and the latest end among them.
    Counted {
        total: u32,
        first: usize,
        last_end_ms: u64,
    },
    /// No live entry carries the tag; the entry to replace.
    Absent { victim: usize },
}

fn find(words: &[u64; RECENT_PAYLOADS], tag: u16, now_ms: u64) -> Lookup {
    let mut counted: Option<(u32, usize, u64)> = None;
    let mut victim = 0;
    for (index, &word) in words.iter().enumerate() {
        let entry = Entry::unpack(word);
        if entry.is_live(now_ms) && entry.tag == tag {
            let (total, first, last_end_ms) = counted.unwrap_or((0, index, 0));
            counted = Some((total + entry.count, first, last_end_ms.max(entry.end_ms)));
        }
        if entry.eviction_rank(now_ms) < Entry::unpack(words[victim]).eviction_rank(now_ms) {
            victim = index;
        }
    }
    match counted {
        Some((total, first, last_end_ms)) => Lookup::Counted {
            total,
            first,
            last_end_ms,
        },
        None => Lookup::Absent { victim },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: ContentRule = ContentRule {
        max_repeats: 5,
        window_ms: 60_000,
    };

    #[test]
    fn n_repeats_pass_and_the_next_waits_for_the_window_end() {
        let recent = RecentPayloads::default();
        for now_ms in 0..5 {
            assert_eq!(recent.record(7, RULE, 1_000 + now_ms), Ok(()));
        }
        let refused = recent.record(7, RULE, 1_010).unwrap_err();
        assert_eq!(refused.retry_after_ms, 59_990);
        assert_eq!(
            recent.record(7, RULE, 60_999).unwrap_err().retry_after_ms,
            1
        );
        // The window opened at 1,000 ms ends at 61,000 ms.
        assert_eq!(recent.record(7, RULE, 61_000), Ok(()));
        assert!(!recent.is_fresh(61_000));
        assert!(recent.is_fresh(121_000));
    }

    #[test]
    fn other_tags_count_apart() {
        let recent = RecentPayloads::default();
        for _ in 0..5 {
            recent.record(1, RULE, 0).unwrap();
        }
        assert!(recent.record(1, RULE, 0).is_err());
        for tag in 2..=4 {
            for _ in 0..5 {
                assert_eq!(recent.record(tag, RULE, 0), Ok(()));
            }
        }
        assert!(recent.record(1, RULE, 0).is_err());
    }

    #[test]
    fn a_new_payload_replaces_the_least_repeated_live_entry() {
        let recent = RecentPayloads::default();
        for (tag, repeats) in [(1, 5), (2, 1), (3, 3), (4, 2)] {
            for _ in 0..repeats {
                recent.record(tag, RULE, 0).unwrap();
            }
        }
        recent.record(5, RULE, 1).unwrap();
        // Tag 2 (one repeat) went; tag 1 (five) is still refused.
        assert!(recent.record(1, RULE, 2).is_err());
        for _ in 0..2 {
            recent
                .record(3, RULE, 2)
                .unwrap_or_else(|_| panic!("tag 3 has 2 left"));
        }
        assert!(recent.record(3, RULE, 2).is_err());
    }

    #[test]
    fn duplicate_entries_of_one_tag_are_summed() {
        let recent = RecentPayloads::default();
        let duplicate = Entry {
            end_ms: 60_000,
            count: 2,
            tag: 9,
        }
        .pack();
        recent.entries[0].store(duplicate, Ordering::Relaxed);
        recent.entries[3].store(duplicate, Ordering::Relaxed);
        assert_eq!(recent.record(9, RULE, 0), Ok(()));
        assert!(recent.record(9, RULE, 0).is_err());
    }

    #[test]
    fn hash_depends_on_every_byte_the_length_and_the_seed() {
        let seed = RandomState::new();
        let hasher = PayloadHasher::new(&seed);
        // Every length up to a few chunks: each tail-reading case.
        for length in 0..=100usize {
            let payload: Vec<u8> = (0..length as u8).collect();
            let base = hasher.hash(&payload);
            assert_eq!(hasher.hash(&payload), base);
            for i in 0..length {
                let mut changed = payload.clone();
                changed[i] ^= 0x80;
                assert_ne!(
                    hasher.hash(&changed),
                    base,
                    "length {length}: byte {i} ignored"
                );
            }
            if length > 0 {
                assert_ne!(hasher.hash(&payload[..length - 1]), base, "length {length}");
            }
        }
        let payload: Vec<u8> = (0..100u8).collect();
        let base = hasher.hash(&payload);
        assert_ne!(hasher.hash(b""), hasher.hash(&[0]));
        assert_ne!(hasher.hash(&[0]), hasher.hash(&[0, 0]));
        assert_ne!(PayloadHasher::new(&RandomState::new()).hash(&payload), base);
    }

    #[test]
    fn hash_spreads_similar_payloads_over_the_tag_bits() {
        let hasher = PayloadHasher::new(&RandomState::new());
        let mut seen = std::collections::HashSet::new();
        for n in 0..10_000u32 {
            let payload = format!("{{\"text\":\"message {n}\"}}");
            seen.insert(tag(42, hasher.hash(payload.as_bytes())));
        }
        // 10,000 draws from 65,536 tags: about 9,300 distinct if uniform.
        assert!(seen.len() > 9_000, "{} distinct tags", seen.len());
    }
}
