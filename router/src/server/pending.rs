//! Publishes the router has taken but not yet answered, and the order in
//! which it answers them.
//!
//! A publish waits here while the backend that claimed its topic decides,
//! and also when it was decided at once but an earlier publish on the same
//! topic still waits: every topic's publishes are released (delivered and
//! acknowledged) in the order they arrived, which is their message-id
//! order. A retry of a publish that is still here waits with it and gets
//! the same answer (`duplicate` when it is accepted); it is never delivered
//! twice.
//!
//! Bounded by `max_pending_publishes`; each gateway's share is also bounded
//! by the credit the router grants it, because that credit comes back only
//! when the publish is answered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use crate::msgid::MessageId;
use crate::protocol::{Code, Refusal};

use super::dedup::DedupKey;
use super::peer::PeerId;

/// Who waits for a publish's PUBLISH_ACK, and the credit it holds.
#[derive(Clone, Copy, Debug)]
pub(super) struct Waiter {
    pub peer: PeerId,
    pub publish_id: u64,
    pub frame_len: u32,
}

/// A refusal that outlives the frame it came in.
#[derive(Clone, Debug)]
pub(super) struct OwnedRefusal {
    pub code: Code,
    pub retry_after_ms: u32,
    pub text: Box<str>,
}

impl OwnedRefusal {
    pub fn new(code: Code, retry_after_ms: u32, text: &str) -> OwnedRefusal {
        OwnedRefusal {
            code,
            retry_after_ms,
            text: text.into(),
        }
    }

    pub fn as_refusal(&self) -> Refusal<'_> {
        Refusal {
            code: self.code,
            retry_after_ms: self.retry_after_ms,
            text: &self.text,
        }
    }
}

/// How a publish ends.
#[derive(Clone, Debug)]
pub(super) enum Decision {
    /// Taken: deliver (unless the backend said no fan-out) and acknowledge.
    Accepted {
        fanout: bool,
    },
    /// The backend already had it (e.g. taken before a router restart):
    /// acknowledge with the original id, deliver nothing.
    Duplicate {
        original: MessageId,
    },
    Rejected(OwnedRefusal),
    Unavailable(OwnedRefusal),
}

enum State {
    Waiting { backend: PeerId },
    Decided(Decision),
}

/// One publish being decided.
pub(super) struct Entry {
    pub topic: Rc<str>,
    pub key: Option<DedupKey>,
    pub message_id: MessageId,
    /// The DELIVER for the topic's subscribers, encoded once at arrival.
    pub deliver: Rc<[u8]>,
    /// Where the DELIVER's `router_out` hop time is written at release.
    pub router_out_at: Option<usize>,
    pub publisher: Waiter,
    /// Retries that arrived while this publish waited.
    pub duplicates: Vec<Waiter>,
    state: State,
}

impl Entry {
    pub fn new(
        topic: &str,
        key: Option<DedupKey>,
        message_id: MessageId,
        deliver: Rc<[u8]>,
        publisher: Waiter,
    ) -> Entry {
        Entry {
            topic: Rc::from(topic),
            key,
            message_id,
            deliver,
            router_out_at: None,
            publisher,
            duplicates: Vec::new(),
            state: State::Decided(Decision::Accepted { fanout: true }),
        }
    }
}

pub(super) struct Pending {
    entries: Vec<Option<Entry>>,
    /// Per slot; bumped when the slot frees, kept under 2^31 so the
    /// backend-facing publish id `generation << 32 | slot` stays unique.
    generations: Vec<u32>,
    free: Vec<u32>,
    live: usize,
    max: usize,
    /// Per topic with entries here: their slots, in arrival order.
    order: HashMap<Rc<str>, VecDeque<u32>>,
    /// Dedup keys of entries here, so a retry joins its first copy.
    keys: HashMap<DedupKey, u32>,
    /// Verdict deadlines in arrival order: (due, slot, generation).
    deadlines: VecDeque<(u64, u32, u32)>,
}

impl Pending {
    pub fn new(max: usize) -> Pending {
        Pending {
            entries: Vec::new(),
            generations: Vec::new(),
            free: Vec::new(),
            live: 0,
            max,
            order: HashMap::new(),
            keys: HashMap::new(),
            deadlines: VecDeque::new(),
        }
    }

    pub fn is_full(&self) -> bool {
        self.live >= self.max
    }

    /// Publishes waiting for a verdict (or behind one on their topic).
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether publishes on `topic` wait here (a new one must queue behind).
    pub fn topic_busy(&self, topic: &str) -> bool {
        self.order.contains_key(topic)
    }

    /// A retry of a publish still here waits for its answer; `false` when
    /// no publish with `key` is here.
    pub fn attach_duplicate(&mut self, key: DedupKey, waiter: Waiter) -> bool {
        let Some(&slot) = self.keys.get(&key) else {
            return false;
        };
        let entry = self.entries[slot as usize].as_mut().expect("keyed entry");
        entry.duplicates.push(waiter);
        true
    }

    /// The publish id the next [`wait_for`](Self::wait_for) will give the
    /// backend.
    pub fn next_backend_publish_id(&self) -> u64 {
        let slot = self
            .free
            .last()
            .copied()
            .unwrap_or(self.entries.len() as u32);
        let generation = self.generations.get(slot as usize).copied().unwrap_or(0);
        backend_publish_id(slot, generation)
    }

    /// Queues a publish that waits for `backend`'s verdict until `due_ms`.
    pub fn wait_for(&mut self, mut entry: Entry, backend: PeerId, due_ms: u64) -> u64 {
        entry.state = State::Waiting { backend };
        let slot = self.insert(entry);
        let generation = self.generations[slot as usize];
        self.deadlines.push_back((due_ms, slot, generation));
        if self.deadlines.len() > 2 * self.max.max(self.live) {
            self.compact_deadlines();
        }
        backend_publish_id(slot, generation)
    }

    /// Queues a publish decided at once behind earlier ones on its topic.
    pub fn queue_decided(&mut self, mut entry: Entry, decision: Decision) {
        entry.state = State::Decided(decision);
        self.insert(entry);
    }

    /// Records `backend`'s verdict on the publish it knows as `publish_id`.
    /// Returns the topic to release, or `None` when that publish is not
    /// waiting for this backend (answered already, timed out, unknown).
    pub fn decide(
        &mut self,
        publish_id: u64,
        backend: PeerId,
        decision: Decision,
    ) -> Option<Rc<str>> {
        let slot = publish_id as u32;
        let generation = (publish_id >> 32) as u32;
        if self.generations.get(slot as usize) != Some(&generation) {
            return None;
        }
        let entry = self.entries[slot as usize].as_mut()?;
        match entry.state {
            State::Waiting { backend: waited } if waited == backend => {
                entry.state = State::Decided(decision);
                Some(Rc::clone(&entry.topic))
            }
            _ => None,
        }
    }

    /// Decides every publish waiting for a departed backend with
    /// `decision`; returns the topics to release.
    pub fn fail_backend(&mut self, backend: PeerId, decision: &Decision) -> Vec<Rc<str>> {
        self.fail_where(decision, |waited| waited == backend)
    }

    /// Decides every waiting publish with `decision` (the router stops).
    pub fn fail_all(&mut self, decision: &Decision) -> Vec<Rc<str>> {
        self.fail_where(decision, |_| true)
    }

    fn fail_where(&mut self, decision: &Decision, failed: impl Fn(PeerId) -> bool) -> Vec<Rc<str>> {
        let mut topics: HashSet<Rc<str>> = HashSet::new();
        for entry in self.entries.iter_mut().flatten() {
            if matches!(entry.state, State::Waiting { backend } if failed(backend)) {
                entry.state = State::Decided(decision.clone());
                topics.insert(Rc::clone(&entry.topic));
            }
        }
        topics.into_iter().collect()
    }

    /// Decides publishes whose verdict is overdue at `now_ms` with
    /// `decision`; returns the topics to release and how many timed out.
    pub fn expire(&mut self, now_ms: u64, decision: &Decision) -> (Vec<Rc<str>>, u64) {
        let mut topics: HashSet<Rc<str>> = HashSet::new();
        let mut expired = 0;
        while let Some(&(due_ms, slot, generation)) = self.deadlines.front() {
            if due_ms > now_ms {
                break;
            }
            self.deadlines.pop_front();
            if self.generations[slot as usize] != generation {
                continue;
            }
            let Some(entry) = self.entries[slot as usize].as_mut() else {
                continue;
            };
            if matches!(entry.state, State::Waiting { .. }) {
                entry.state = State::Decided(decision.clone());
                expired += 1;
                topics.insert(Rc::clone(&entry.topic));
            }
        }
        (topics.into_iter().collect(), expired)
    }

    /// The oldest publish on `topic` if it is decided: it leaves, with its
    /// decision. `None` when the oldest still waits or none is left.
    pub fn pop_released(&mut self, topic: &str) -> Option<(Entry, Decision)> {
        let queue = self.order.get_mut(topic)?;
        let &slot = queue.front()?;
        let decided = matches!(
            self.entries[slot as usize]
                .as_ref()
                .map(|entry| &entry.state),
            Some(State::Decided(_))
        );
        if !decided {
            return None;
        }
        queue.pop_front();
        if queue.is_empty() {
            self.order.remove(topic);
        }
        let entry = self.entries[slot as usize].take().expect("queued entry");
        self.generations[slot as usize] = (self.generations[slot as usize] + 1) & 0x7fff_ffff;
        self.free.push(slot);
        self.live -= 1;
        if let Some(key) = entry.key
            && self.keys.get(&key) == Some(&slot)
        {
            self.keys.remove(&key);
        }
        let State::Decided(decision) = &entry.state else {
            unreachable!("checked decided above");
        };
        let decision = decision.clone();
        Some((entry, decision))
    }

    fn insert(&mut self, entry: Entry) -> u32 {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.entries.push(None);
                self.generations.push(0);
                (self.entries.len() - 1) as u32
            }
        };
        if let Some(key) = entry.key {
            self.keys.insert(key, slot);
        }
        let topic = match self.order.get_key_value(&*entry.topic) {
            Some((shared, _)) => Rc::clone(shared),
            None => Rc::clone(&entry.topic),
        };
        self.order.entry(topic).or_default().push_back(slot);
        self.entries[slot as usize] = Some(entry);
        self.live += 1;
        slot
    }

    /// Drops deadlines of publishes already answered, so the queue stays
    /// within a small multiple of what waits.
    fn compact_deadlines(&mut self) {
        let generations = &self.generations;
        let entries = &self.entries;
        self.deadlines.retain(|&(_, slot, generation)| {
            generations[slot as usize] == generation
                && matches!(
                    entries[slot as usize].as_ref().map(|entry| &entry.state),
                    Some(State::Waiting { .. })
                )
        });
    }
}

fn backend_publish_id(slot: u32, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(slot)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(slot: u32) -> PeerId {
        PeerId {
            slot,
            generation: 0,
        }
    }

    fn entry(topic: &str, n: u64) -> Entry {
        let waiter = Waiter {
            peer: peer(9),
            publish_id: n,
            frame_len: 10,
        };
        let id = MessageId::from_u128(u128::from(n));
        Entry::new(
            topic,
            Some(DedupKey(u128::from(n))),
            id,
            Rc::from(&b""[..]),
            waiter,
        )
    }

    #[test]
    fn a_topic_releases_in_arrival_order() {
        let mut pending = Pending::new(16);
        let backend = peer(1);
        let first = pending.wait_for(entry("t", 1), backend, 100);
        pending.queue_decided(entry("t", 2), Decision::Accepted { fanout: true });
        assert!(pending.pop_released("t").is_none(), "the first still waits");
        assert!(pending.attach_duplicate(
            DedupKey(2),
            Waiter {
                peer: peer(3),
                publish_id: 7,
                frame_len: 1
            }
        ));
        let topic = pending.decide(first, backend, Decision::Accepted { fanout: false });
        assert_eq!(topic.as_deref(), Some("t"));
        assert_eq!(
            pending.decide(first, backend, Decision::Accepted { fanout: false }),
            None
        );
        let (one, _) = pending.pop_released("t").unwrap();
        let (two, _) = pending.pop_released("t").unwrap();
        assert_eq!((one.publisher.publish_id, two.publisher.publish_id), (1, 2));
        assert_eq!(two.duplicates.len(), 1);
        assert!(!pending.topic_busy("t"));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn backend_loss_and_timeouts_decide_waiting_publishes() {
        let mut pending = Pending::new(16);
        let unavailable = Decision::Unavailable(OwnedRefusal::new(Code::UNAVAILABLE, 0, "x"));
        pending.wait_for(entry("a", 1), peer(1), 100);
        pending.wait_for(entry("b", 2), peer(2), 200);
        assert_eq!(pending.fail_backend(peer(1), &unavailable).len(), 1);
        let (topics, expired) = pending.expire(150, &unavailable);
        assert!(
            topics.is_empty() && expired == 0,
            "a's deadline passed but it was decided"
        );
        let (topics, expired) = pending.expire(200, &unavailable);
        assert_eq!((topics.len(), expired), (1, 1));
        assert!(pending.pop_released("a").is_some());
        assert!(pending.pop_released("b").is_some());
    }

    #[test]
    fn a_stale_publish_id_matches_nothing() {
        let mut pending = Pending::new(16);
        let id = pending.next_backend_publish_id();
        assert_eq!(pending.wait_for(entry("a", 1), peer(1), 100), id);
        assert_eq!(
            pending.decide(id, peer(2), Decision::Accepted { fanout: true }),
            None
        );
        pending.decide(id, peer(1), Decision::Accepted { fanout: true });
        pending.pop_released("a");
        let reused = pending.wait_for(entry("a", 2), peer(1), 100);
        assert_ne!(reused, id, "same slot, new generation");
        assert_eq!(
            pending.decide(id, peer(1), Decision::Accepted { fanout: true }),
            None
        );
    }
}
