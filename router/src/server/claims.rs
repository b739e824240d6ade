//! Backend claims: which backend decides the publishes of a topic.
//!
//! A backend claims a prefix (bytewise; empty: every topic). A topic belongs
//! to the claim with the longest prefix it starts with. Ties (several
//! backends claiming that same prefix, e.g. replicas of one service): the
//! topic goes to one of them by rendezvous hashing of the topic's virtual
//! shard over their node ids (`docs/PROTOCOL.md`, routing rules). Every
//! router picks the same backend for a topic, the topics spread evenly over
//! the replicas, and when one replica leaves only its topics move.
//!
//! Lookup cost: one hash lookup per distinct claimed prefix length, longest
//! first (usually one or two), not one per claim; a tie adds one weight
//! hash per claimant.

use std::collections::HashMap;

use ringgate_shardmap::hash::{rendezvous_weight, topic_vshard};
use ringgate_shardmap::{DEFAULT_VSHARDS, RouterId};

use super::peer::PeerId;

/// One backend holding a claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claimant {
    backend: PeerId,
    node_id: u32,
}

#[derive(Default)]
pub(super) struct Claims {
    by_prefix: HashMap<Box<str>, Vec<Claimant>>,
    /// Distinct claimed prefix lengths, longest first.
    lengths: Vec<usize>,
    by_backend: HashMap<PeerId, Vec<Box<str>>>,
}

/// How a claim went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Claimed {
    /// Recorded; `sharers` other backends claimed the same prefix and
    /// share its topics.
    Held { sharers: usize },
    /// The backend holds as many claims as it may.
    Full,
}

impl Claims {
    pub fn claim(
        &mut self,
        prefix: &str,
        backend: PeerId,
        node_id: u32,
        max_claims: usize,
    ) -> Claimed {
        let held = self.by_backend.entry(backend).or_default();
        if !held.iter().any(|claimed| &**claimed == prefix) {
            if held.len() >= max_claims {
                return Claimed::Full;
            }
            held.push(prefix.into());
            let claimant = Claimant { backend, node_id };
            self.by_prefix
                .entry(prefix.into())
                .or_default()
                .push(claimant);
            self.recount();
        }
        Claimed::Held {
            sharers: self.by_prefix[prefix].len() - 1,
        }
    }

    /// Gives up a claim; `false` when the backend did not hold it.
    pub fn release(&mut self, prefix: &str, backend: PeerId) -> bool {
        let Some(held) = self.by_backend.get_mut(&backend) else {
            return false;
        };
        let before = held.len();
        held.retain(|claimed| &**claimed != prefix);
        if held.len() == before {
            return false;
        }
        self.drop_claimant(prefix, backend);
        self.recount();
        true
    }

    /// The backend that owns `topic`, if any claim covers it.
    pub fn owner(&self, topic: &str) -> Option<PeerId> {
        let claimants = self
            .lengths
            .iter()
            .filter(|&&length| topic.is_char_boundary(length))
            .find_map(|&length| self.by_prefix.get(&topic[..length]))?;
        match claimants.as_slice() {
            [] => None,
            [only] => Some(only.backend),
            several => {
                let vshard = topic_vshard(topic.as_bytes(), DEFAULT_VSHARDS);
                several
                    .iter()
                    .max_by_key(|claimant| {
                        (
                            rendezvous_weight(vshard, RouterId(claimant.node_id)),
                            claimant.node_id,
                        )
                    })
                    .map(|claimant| claimant.backend)
            }
        }
    }

    /// Drops every claim of a departed backend.
    pub fn remove_backend(&mut self, backend: PeerId) {
        let Some(held) = self.by_backend.remove(&backend) else {
            return;
        };
        for prefix in held {
            self.drop_claimant(&prefix, backend);
        }
        self.recount();
    }

    fn drop_claimant(&mut self, prefix: &str, backend: PeerId) {
        if let Some(claimants) = self.by_prefix.get_mut(prefix) {
            claimants.retain(|claimant| claimant.backend != backend);
            if claimants.is_empty() {
                self.by_prefix.remove(prefix);
            }
        }
    }

    fn recount(&mut self) {
        self.lengths.clear();
        self.lengths
            .extend(self.by_prefix.keys().map(|prefix| prefix.len()));
        self.lengths.sort_unstable_by(|a, b| b.cmp(a));
        self.lengths.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(slot: u32) -> PeerId {
        PeerId {
            slot,
            generation: 1,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let mut claims = Claims::default();
        assert_eq!(
            claims.claim("chat.", backend(1), 1, 8),
            Claimed::Held { sharers: 0 }
        );
        claims.claim("chat.vip.", backend(2), 2, 8);
        claims.claim("", backend(3), 3, 8);
        assert_eq!(claims.owner("chat.vip.room"), Some(backend(2)));
        assert_eq!(claims.owner("chat.room"), Some(backend(1)));
        assert_eq!(claims.owner("news"), Some(backend(3)));
        claims.remove_backend(backend(3));
        assert_eq!(claims.owner("news"), None);
        assert_eq!(claims.owner("ch"), None);
    }

    #[test]
    fn ties_spread_topics_by_rendezvous_and_move_only_the_leavers() {
        let mut claims = Claims::default();
        for slot in 1..=3 {
            claims.claim("chat.", backend(slot), slot * 10, 8);
        }
        assert_eq!(
            claims.claim("chat.", backend(1), 10, 8),
            Claimed::Held { sharers: 2 },
            "idempotent"
        );
        let topics: Vec<String> = (0..300).map(|n| format!("chat.{n}")).collect();
        let before: Vec<PeerId> = topics.iter().map(|t| claims.owner(t).unwrap()).collect();
        for slot in 1..=3 {
            let share = before
                .iter()
                .filter(|owner| **owner == backend(slot))
                .count();
            assert!(
                (60..=140).contains(&share),
                "backend {slot} owns {share} of 300"
            );
        }
        assert!(claims.release("chat.", backend(2)));
        assert!(!claims.release("chat.", backend(2)));
        for (topic, owner) in topics.iter().zip(&before) {
            let now = claims.owner(topic).unwrap();
            if *owner != backend(2) {
                assert_eq!(now, *owner, "{topic} moved though its owner stayed");
            }
        }
    }

    #[test]
    fn prefixes_split_inside_a_character_never_match() {
        let mut claims = Claims::default();
        claims.claim("é", backend(1), 1, 8);
        assert_eq!(claims.owner("ébc"), Some(backend(1)));
        assert_eq!(claims.owner("e"), None);
        assert_eq!(claims.claim("x", backend(1), 1, 1), Claimed::Full);
    }
}
