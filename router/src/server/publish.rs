//! The publish path: dedup, message ids, the backend's verdict, and the
//! ordered release that delivers and acknowledges.
//!
//! For one PUBLISH from a gateway:
//! 1. A retry of a publish taken within the window (the dedup table) is
//!    answered `duplicate` with the original id at once; a retry of one
//!    still being decided waits for it ([`Pending`](super::pending)).
//! 2. Otherwise it gets the next message id, and its DELIVER is encoded
//!    once (the router's hop time appended when the publish is traced).
//! 3. If a backend claimed the topic, the PUBLISH goes to it with that id
//!    and waits for its PUBLISH_ACK; if not, it is accepted at once.
//! 4. Release, per topic in arrival order: on accept the key enters the
//!    dedup table, the DELIVER goes to every subscribed gateway node, and
//!    the publisher gets PUBLISH_ACK `accepted`. A refusal goes back as is.
//!
//! The publisher's credit comes back with its PUBLISH_ACK, so a gateway
//! never has more publishes in the router than the router granted.

use std::rc::Rc;

use ringgate_uring::Chunk;

use crate::msgid::MessageId;
use crate::protocol::{
    Code, Deliver, Encoder, Frame, MAX_HOPS, Publish, PublishAck, PublishOutcome, Target,
};

use super::core::Core;
use super::dedup::DedupKey;
use super::peer::PeerId;
use super::pending::{Decision, Entry, OwnedRefusal, Waiter};

impl Core {
    pub(super) fn on_publish(&mut self, id: PeerId, publish: Publish<'_>, length: usize) {
        self.stats.publishes += 1;
        let waiter = Waiter {
            peer: id,
            publish_id: publish.publish_id,
            frame_len: length as u32,
        };
        let key = self.dedup_key(&publish);
        if let Some(key) = key {
            if let Some(original) = self.dedup.get(key, self.clock.mono_ms) {
                self.stats.duplicates += 1;
                return self.answer(
                    waiter,
                    PublishOutcome::Duplicate {
                        message_id: original,
                    },
                );
            }
            if self.pending.attach_duplicate(key, waiter) {
                self.stats.duplicates += 1;
                return;
            }
        }
        let owner = self.claims.owner(publish.topic);
        if owner.is_none() && self.clock.mono_ms < self.config.claim_grace_ms {
            self.stats.unavailable_publishes += 1;
            let left_ms = self.config.claim_grace_ms - self.clock.mono_ms;
            let refusal = OwnedRefusal::new(
                Code::UNAVAILABLE,
                u32::try_from(left_ms).unwrap_or(u32::MAX),
                "router starting: backends are attaching",
            );
            return self.answer(waiter, PublishOutcome::Unavailable(refusal.as_refusal()));
        }
        let must_wait = owner.is_some() || self.pending.topic_busy(publish.topic);
        if must_wait && self.pending.is_full() {
            self.stats.unavailable_publishes += 1;
            let refusal = OwnedRefusal::new(Code::OVERLOADED, 100, "too many publishes wait here");
            return self.answer(waiter, PublishOutcome::Unavailable(refusal.as_refusal()));
        }
        let Ok(message_id) = self.ids.next(self.clock.wall_ms) else {
            self.stats.clock_errors += 1;
            self.stats.unavailable_publishes += 1;
            let refusal =
                OwnedRefusal::new(Code::INTERNAL, 1000, "the router clock cannot issue ids");
            return self.answer(waiter, PublishOutcome::Unavailable(refusal.as_refusal()));
        };
        if let Some(backend) = owner
            && self.backend_is_behind(backend, length)
        {
            self.stats.unavailable_publishes += 1;
            let refusal = OwnedRefusal::new(Code::OVERLOADED, 100, "the topic's backend is behind");
            return self.answer(waiter, PublishOutcome::Unavailable(refusal.as_refusal()));
        }
        let forward = match owner {
            Some(backend) => match self.encode_forward(backend, &publish, message_id) {
                Ok(bytes) => Some((backend, bytes)),
                Err(refusal) => {
                    self.stats.rejected_publishes += 1;
                    return self.answer(waiter, PublishOutcome::Rejected(refusal.as_refusal()));
                }
            },
            None => None,
        };
        if !must_wait {
            return self.relay_now(&publish, key, message_id, waiter);
        }
        let (deliver, router_out_at) = self.encode_topic_deliver(&publish, message_id);
        let mut entry = Entry::new(publish.topic, key, message_id, deliver, waiter);
        entry.router_out_at = router_out_at;
        match forward {
            Some((backend, bytes)) => {
                self.stats.forwarded_to_backends += 1;
                let due_ms = self.clock.mono_ms + self.config.verdict_timeout_ms;
                self.pending.wait_for(entry, backend, due_ms);
                self.send_flow(backend, Chunk::Owned(bytes));
            }
            None => {
                self.pending
                    .queue_decided(entry, Decision::Accepted { fanout: true });
            }
        }
    }

    /// The common case, no backend and nothing earlier waiting on the
    /// topic: remember, deliver, acknowledge, all now. The DELIVER is
    /// encoded only when some gateway node is subscribed.
    fn relay_now(
        &mut self,
        publish: &Publish<'_>,
        key: Option<DedupKey>,
        message_id: MessageId,
        waiter: Waiter,
    ) {
        self.stats.accepted_publishes += 1;
        if let Some(key) = key {
            self.dedup.insert(key, message_id, self.clock.mono_ms);
        }
        if !self.subscriptions.subscribers(publish.topic).is_empty() {
            let (deliver, _) = self.encode_topic_deliver(publish, message_id);
            self.fan_out_topic(publish.topic, &deliver);
        }
        self.answer(waiter, PublishOutcome::Accepted { message_id });
    }

    /// Whether one more PUBLISH would take the backend's queue (frames it
    /// has no credit for, or has not read) past the output bound.
    fn backend_is_behind(&mut self, backend: PeerId, length: usize) -> bool {
        let bound = self.config.max_output_bytes;
        self.open_peer(backend)
            .is_some_and(|peer| peer.output_bytes() + length > bound)
    }

    /// The dedup key: (topic, user, client id), or (topic, client id) for
    /// an anonymous sender. A publish without a client id has none.
    fn dedup_key(&self, publish: &Publish<'_>) -> Option<DedupKey> {
        if publish.client_msg_id.is_empty() {
            return None;
        }
        let user = (!publish.anonymous && !publish.user.is_empty()).then_some(publish.user);
        Some(self.keys.key(publish.topic, user, publish.client_msg_id))
    }

    /// The PUBLISH for the claiming backend: the router's id and a publish
    /// id of its own (the slot it will wait in), the hop time appended.
    fn encode_forward(
        &mut self,
        backend: PeerId,
        publish: &Publish<'_>,
        message_id: MessageId,
    ) -> Result<Vec<u8>, OwnedRefusal> {
        let encoder = self
            .open_peer(backend)
            .and_then(|peer| peer.session.as_ref())
            .map(|session| session.encoder)
            .expect("claims hold open backends only");
        let hops = match publish.hops {
            Some(hops) => Some(self.hops.append(hops, self.clock.wall_us).unwrap_or(hops)),
            None => None,
        };
        let forwarded = Frame::Publish(Publish {
            publish_id: self.pending.next_backend_publish_id(),
            message_id,
            hops,
            ..*publish
        });
        let mut bytes = Vec::new();
        encoder.encode(&forwarded, &mut bytes).map_err(|_| {
            OwnedRefusal::new(Code::TOO_LARGE, 0, "too large for the topic's backend")
        })?;
        Ok(bytes)
    }

    /// The topic DELIVER of a publish, encoded once for every gateway, and
    /// where in it the `router_out` hop time goes (written at release).
    ///
    /// A traced publish's DELIVER carries the publish's hops then
    /// `router_in` (now) and `router_out` (now, rewritten when the publish
    /// is released after a backend's verdict): `docs/PROTOCOL.md`, hop
    /// timestamps. A full list goes on unchanged.
    fn encode_topic_deliver(
        &mut self,
        publish: &Publish<'_>,
        message_id: MessageId,
    ) -> (Rc<[u8]>, Option<usize>) {
        let now_us = self.clock.wall_us;
        let mut router_out = false;
        let hops = match publish.hops {
            Some(hops) => {
                let mut times = [0u64; MAX_HOPS];
                for (slot, time) in times.iter_mut().zip(hops.iter()) {
                    *slot = time;
                }
                let mut count = hops.len();
                for _ in 0..2 {
                    if count < MAX_HOPS {
                        times[count] = now_us;
                        count += 1;
                        router_out = count == hops.len() + 2;
                    }
                }
                self.hops.fill(&times[..count])
            }
            None => None,
        };
        let deliver = Frame::Deliver(Deliver {
            message_id,
            target: Target::Topic,
            topic: publish.topic,
            from: publish.user,
            client_msg_id: publish.client_msg_id,
            trace_id: publish.trace_id,
            hops,
            payload: publish.payload,
        });
        self.scratch.clear();
        // The fields came from a decoded PUBLISH within the router's body
        // limit; the DELIVER adds a few bytes, so only u32::MAX can refuse.
        Encoder::new(u32::MAX)
            .encode(&deliver, &mut self.scratch)
            .expect("a decoded publish re-encodes as a deliver");
        // The last hop sits just before the payload and its u32 length.
        let router_out_at = router_out.then(|| self.scratch.len() - publish.payload.len() - 4 - 8);
        (self.shared_scratch(), router_out_at)
    }

    /// A backend's PUBLISH_ACK.
    pub(super) fn on_verdict(&mut self, backend: PeerId, ack: PublishAck<'_>) {
        let decision = match ack.outcome {
            PublishOutcome::Accepted { .. } => Decision::Accepted {
                fanout: !ack.no_fanout,
            },
            PublishOutcome::Duplicate { message_id } => Decision::Duplicate {
                original: message_id,
            },
            PublishOutcome::Rejected(refusal) => Decision::Rejected(OwnedRefusal::new(
                refusal.code,
                refusal.retry_after_ms,
                refusal.text,
            )),
            PublishOutcome::Unavailable(refusal) => Decision::Unavailable(OwnedRefusal::new(
                refusal.code,
                refusal.retry_after_ms,
                refusal.text,
            )),
        };
        match self.pending.decide(ack.publish_id, backend, decision) {
            Some(topic) => self.release(&topic),
            None => self.stats.unmatched_verdicts += 1,
        }
    }

    /// Emits the decided publishes at the front of `topic`'s queue.
    pub(super) fn release(&mut self, topic: &str) {
        while let Some((entry, decision)) = self.pending.pop_released(topic) {
            self.emit(entry, decision);
        }
    }

    /// Delivers and acknowledges one decided publish (and its retries).
    fn emit(&mut self, mut entry: Entry, decision: Decision) {
        let now = self.clock.mono_ms;
        let (outcome_for_publisher, outcome_for_retries) = match &decision {
            Decision::Accepted { fanout } => {
                self.stats.accepted_publishes += 1;
                if let Some(key) = entry.key {
                    self.dedup.insert(key, entry.message_id, now);
                }
                if *fanout {
                    if let Some(at) = entry.router_out_at
                        && let Some(frame) = Rc::get_mut(&mut entry.deliver)
                    {
                        frame[at..at + 8].copy_from_slice(&self.clock.wall_us.to_be_bytes());
                    }
                    self.fan_out_topic(&entry.topic, &entry.deliver);
                }
                (
                    PublishOutcome::Accepted {
                        message_id: entry.message_id,
                    },
                    PublishOutcome::Duplicate {
                        message_id: entry.message_id,
                    },
                )
            }
            Decision::Duplicate { original } => {
                self.stats.duplicates += 1;
                if let Some(key) = entry.key {
                    self.dedup.insert(key, *original, now);
                }
                let duplicate = PublishOutcome::Duplicate {
                    message_id: *original,
                };
                (duplicate, duplicate)
            }
            Decision::Rejected(refusal) => {
                self.stats.rejected_publishes += 1;
                let rejected = PublishOutcome::Rejected(refusal.as_refusal());
                (rejected, rejected)
            }
            Decision::Unavailable(refusal) => {
                self.stats.unavailable_publishes += 1;
                let unavailable = PublishOutcome::Unavailable(refusal.as_refusal());
                (unavailable, unavailable)
            }
        };
        self.answer(entry.publisher, outcome_for_publisher);
        for retry in &entry.duplicates {
            self.answer(*retry, outcome_for_retries);
        }
    }

    /// PUBLISH_ACK to whoever waits, returning the credit of its PUBLISH.
    fn answer(&mut self, waiter: Waiter, outcome: PublishOutcome<'_>) {
        let ack = Frame::PublishAck(PublishAck {
            publish_id: waiter.publish_id,
            outcome,
            no_fanout: false,
        });
        if self.send_control(waiter.peer, &ack) {
            self.owe_credit(waiter.peer, waiter.frame_len);
        }
    }

    /// One DELIVER frame to every gateway node subscribed to `topic`.
    pub(super) fn fan_out_topic(&mut self, topic: &str, frame: &Rc<[u8]>) -> usize {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        targets.extend_from_slice(self.subscriptions.subscribers(topic));
        let reached = self.deliver_to(&targets, frame);
        self.targets = targets;
        reached
    }

    /// Queues a shared DELIVER on each peer; returns how many took it.
    pub(super) fn deliver_to(&mut self, peers: &[PeerId], frame: &Rc<[u8]>) -> usize {
        let mut reached = 0;
        for &peer in peers {
            if self.send_flow(peer, Chunk::Shared(Rc::clone(frame))) {
                reached += 1;
            }
        }
        self.stats.deliver_frames_out += reached as u64;
        reached
    }
}
