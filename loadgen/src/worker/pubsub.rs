//! One worker thread's part of the `pubsub` scenario: its users'
//! subscriptions and their per-subscription sequence trackers, the topics
//! it owns and publishes on, and what it makes of each server envelope.
//! No sockets here: it appends frames to the thread's `out` buffer and
//! tells the event loop what a message meant (see `Handled`).
//!
//! Memory is sized at start-up: one 24-byte `Slot` per subscription, one
//! sequence counter per owned topic, one `TopicCounts` row per topic.

use hdrhistogram::Histogram;
use ringgate_wscodec::{OpCode, write_frame};

use super::control::Window;
use crate::pubsub::accounting::{PubSubCounts, TopicTable};
use crate::pubsub::in_window_us;
use crate::pubsub::topics::{Distribution, Ownership, Progression, Rng, Sampler, user_seed};
use crate::pubsub::track::{Arrival, SeqWindow};
use crate::pubsub::wire::{self, PublishId, ServerMessage};
use crate::stats::{EnvelopeCode, ErrorReason, new_histogram};

/// What a thread needs to know to play its part.
#[derive(Debug, Clone)]
pub struct PubSubPlan {
    pub topics: u32,
    pub subs_per_user: u32,
    pub distribution: Distribution,
    /// The thread's `j`-th user is global user `first_user + j * user_stride`.
    pub first_user: u64,
    pub user_stride: u64,
    pub ownership: Ownership,
    /// This thread's publishes per second (its owned topics' share of --rate).
    pub rate: f64,
    pub data_bytes: usize,
    /// `--seed`: the same in every process.
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubState {
    /// `sub` sent, no answer yet.
    Pending,
    Confirmed,
    /// Answered with `err`.
    Refused,
    /// No answer within --timeout (a late `subscribed` still confirms it).
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    topic: u32,
    state: SubState,
    /// Subscribed and open when traffic started: its deliveries are expected.
    counted: bool,
    /// Already counted in `out_of_order_pairs`.
    reordered: bool,
    seq: SeqWindow,
}

/// What one server message meant, for the event loop.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Handled {
    /// A publish of this connection got its `ack` or `err`.
    pub answered: bool,
    /// A first delivery: its latency (µs from the intended publish) and
    /// whether that publish was intended in the window.
    pub delivery: Option<(u64, bool)>,
    pub error: Option<ErrorReason>,
}

pub struct PubSub {
    plan: PubSubPlan,
    users: usize,
    /// `subs_per_user` slots per user, user after user.
    slots: Vec<Slot>,
    /// Subscriptions sent and not answered yet.
    pub subs_pending: usize,
    /// Publish topic draws, over the topics this thread owns.
    owned: Sampler,
    /// Next sequence number of each owned topic (by position in `owned`).
    next_seq: Vec<u32>,
    topic_rng: Rng,
    mask_rng: Rng,
    /// A topic drawn for the next scheduled publish that is not sent yet
    /// (its publisher's connection was backed up).
    held: Option<u32>,
    json: Vec<u8>,
    window: Option<Window>,
    pub table: TopicTable,
    pub counts: PubSubCounts,
    pub ack_latency: Histogram<u64>,
    /// `err` codes already shown on stderr (one example of each per thread).
    codes_shown: Vec<EnvelopeCode>,
}

/// Longest `err` envelope quoted on stderr.
const ERR_QUOTE_MAX_BYTES: usize = 300;

impl PubSub {
    pub fn new(plan: PubSubPlan, users: usize) -> PubSub {
        let per_user = plan.subs_per_user as usize;
        let everything = Sampler::new(plan.distribution, Progression::all(plan.topics));
        let mut topics = Vec::with_capacity(per_user);
        let mut slots = Vec::with_capacity(users * per_user);
        for j in 0..users {
            let user = plan.first_user + j as u64 * plan.user_stride;
            topics.clear();
            everything.distinct(
                &mut Rng::new(user_seed(plan.seed, user)),
                per_user,
                &mut topics,
            );
            slots.extend(topics.iter().map(|&topic| Slot {
                topic,
                state: SubState::Pending,
                counted: false,
                reordered: false,
                seq: SeqWindow::default(),
            }));
        }
        drop(everything);
        let owned_topics = plan.ownership.owned(plan.topics);
        let owned = Sampler::new(plan.distribution, owned_topics);
        let thread_seed = user_seed(plan.seed, u64::from(owned_topics.first) | 1 << 40);
        PubSub {
            users,
            slots,
            subs_pending: 0,
            owned,
            next_seq: vec![0; owned_topics.count as usize],
            topic_rng: Rng::new(thread_seed),
            mask_rng: Rng::new(thread_seed ^ 0x6d61_736b),
            held: None,
            json: Vec::with_capacity(plan.data_bytes + 256),
            window: None,
            table: TopicTable::new(plan.topics),
            counts: PubSubCounts {
                subscriptions_planned: (users * per_user) as u64,
                ..PubSubCounts::default()
            },
            ack_latency: new_histogram(),
            codes_shown: Vec::new(),
            plan,
        }
    }

    fn user_slots(&self, user: usize) -> std::ops::Range<usize> {
        let per_user = self.plan.subs_per_user as usize;
        user * per_user..(user + 1) * per_user
    }

    fn mask(&mut self) -> [u8; 4] {
        (self.mask_rng.next_u64() as u32).to_ne_bytes()
    }

    /// Queues user `user`'s `sub` requests (its connection just opened).
    pub fn subscribe(&mut self, user: usize, out: &mut Vec<u8>) {
        for slot in self.user_slots(user) {
            self.json.clear();
            wire::write_subscribe(
                &mut self.json,
                self.slots[slot].topic,
                slot - user * self.plan.subs_per_user as usize,
            );
            let mask = self.mask();
            write_frame(out, OpCode::Text, &self.json, Some(mask));
            self.subs_pending += 1;
        }
    }

    /// User `user`'s connection closed: its unanswered subscriptions failed.
    pub fn forget_user(&mut self, user: usize) {
        for slot in self.user_slots(user) {
            if self.slots[slot].state == SubState::Pending {
                self.slots[slot].state = SubState::Refused;
                self.subs_pending -= 1;
                self.counts.subscriptions_failed += 1;
            }
        }
    }

    /// --timeout passed: every unanswered subscription failed; returns how many.
    pub fn expire_subscriptions(&mut self) -> u64 {
        let mut expired = 0;
        for slot in &mut self.slots {
            if slot.state == SubState::Pending {
                slot.state = SubState::TimedOut;
                expired += 1;
            }
        }
        self.subs_pending = 0;
        self.counts.subscriptions_failed += expired;
        expired
    }

    /// Traffic starts (every subscription is answered or has failed by
    /// now): books the subscribers whose deliveries are expected, those
    /// confirmed on connections open now. One that closes later still counts,
    /// and what it misses is lost.
    pub fn begin(&mut self, window: Window, is_open: impl Fn(usize) -> bool) {
        self.window = Some(window);
        for user in 0..self.users {
            if !is_open(user) {
                continue;
            }
            for slot in self.user_slots(user) {
                let slot = &mut self.slots[slot];
                if slot.state == SubState::Confirmed {
                    slot.counted = true;
                    if let Some(row) = self.table.get_mut(slot.topic) {
                        row.subscribers += 1;
                    }
                }
            }
        }
    }

    /// The next scheduled publish's topic (position among the owned ones)
    /// and the user that publishes it. It stays drawn until `publish` or
    /// `skip` takes it.
    pub fn next_publish(&mut self) -> (u32, usize) {
        let position = match self.held {
            Some(position) => position,
            None => self.owned.sample_position(&mut self.topic_rng),
        };
        self.held = Some(position);
        (position, Ownership::publisher(position, self.users))
    }

    /// The drawn publish cannot go out (its publisher is not connected).
    pub fn skip(&mut self) {
        self.held = None;
        self.counts.publishes_not_sent += 1;
    }

    /// Appends the drawn publish, intended at `intended_ns`, to `out`.
    pub fn publish(&mut self, intended_ns: u64, out: &mut Vec<u8>) {
        let position = self.held.take().expect("next_publish comes first");
        let topic = self.owned.topics().topic(position);
        let seq = self.next_seq[position as usize];
        self.next_seq[position as usize] += 1;
        let window = self.window.expect("publishing has a window");
        let publisher = Ownership::publisher(position, self.users) as u64;
        let id = PublishId {
            run: window.go_ns,
            topic,
            seq,
            intended_ns,
        };
        self.json.clear();
        wire::write_publish(
            &mut self.json,
            id,
            self.plan.first_user + publisher * self.plan.user_stride,
            self.plan.data_bytes,
        );
        let mask = self.mask();
        write_frame(out, OpCode::Text, &self.json, Some(mask));
        self.counts.publishes_sent += 1;
        if in_window_us(intended_ns / 1_000, window.start_ns, window.end_ns) {
            self.counts.publishes_in_window += 1;
            if let Some(row) = self.table.get_mut(topic) {
                row.published += 1;
            }
        }
    }

    fn in_window(&self, intended_us: u64) -> bool {
        self.window
            .is_some_and(|w| in_window_us(intended_us, w.start_ns, w.end_ns))
    }

    /// A text message from the server on user `user`'s connection.
    pub fn on_text(&mut self, user: usize, text: &[u8], now: u64) -> Handled {
        let message = match wire::parse(text) {
            Ok(message) => message,
            Err(_) => return error(ErrorReason::BadEnvelope),
        };
        match message {
            ServerMessage::Msg { topic, stamp } => {
                let (Some(topic), Some(stamp)) = (wire::parse_topic(&topic), stamp) else {
                    return error(ErrorReason::BadEnvelope);
                };
                self.on_delivery(user, topic, stamp, now)
            }
            ServerMessage::Ack { id, dup } => {
                let Some(id) = wire::parse_publish_id(&id) else {
                    return error(ErrorReason::BadEnvelope);
                };
                if dup {
                    self.counts.duplicate_acks += 1;
                }
                if self.in_window(id.intended_ns / 1_000) {
                    self.counts.acked += 1;
                    let latency = now.saturating_sub(id.intended_ns) / 1_000;
                    self.ack_latency.saturating_record(latency);
                }
                Handled {
                    answered: true,
                    ..Handled::default()
                }
            }
            ServerMessage::Err { id, code } => {
                let code = EnvelopeCode::from_code(&code);
                if !self.codes_shown.contains(&code) {
                    // The reason and retry hint say why; one example is enough.
                    self.codes_shown.push(code);
                    let quote = &text[..text.len().min(ERR_QUOTE_MAX_BYTES)];
                    eprintln!(
                        "loadgen: server refused: {}",
                        String::from_utf8_lossy(quote)
                    );
                }
                self.on_err(user, id.as_deref(), ErrorReason::Envelope(code))
            }
            ServerMessage::Subscribed { topic } => {
                self.on_subscribed(user, &topic);
                Handled::default()
            }
            ServerMessage::Status { state } if state == "degraded" => error(ErrorReason::Degraded),
            ServerMessage::Status { .. } | ServerMessage::Other => Handled::default(),
        }
    }

    fn on_delivery(&mut self, user: usize, topic: u32, stamp: wire::Stamp, now: u64) -> Handled {
        let range = self.user_slots(user);
        let Some(index) = range.clone().find(|&i| self.slots[i].topic == topic) else {
            self.counts.misrouted += 1;
            return error(ErrorReason::Misrouted);
        };
        let window = self.window;
        let slot = &mut self.slots[index];
        match slot.seq.record(stamp.s) {
            Arrival::Duplicate => {
                self.counts.duplicates += 1;
                return Handled::default();
            }
            Arrival::Late => {
                self.counts.out_of_order += 1;
                if !slot.reordered {
                    slot.reordered = true;
                    self.counts.out_of_order_pairs += 1;
                }
            }
            Arrival::InOrder => {}
        }
        let intended_in_window =
            window.is_some_and(|w| in_window_us(stamp.t, w.start_ns, w.end_ns));
        if intended_in_window
            && slot.counted
            && let Some(row) = self.table.get_mut(topic)
        {
            row.delivered += 1;
        }
        if window.is_some_and(|w| now >= w.start_ns && now < w.end_ns) {
            self.counts.deliveries_in_window += 1;
        }
        let latency = (now / 1_000).saturating_sub(stamp.t);
        Handled {
            delivery: Some((latency, intended_in_window)),
            ..Handled::default()
        }
    }

    fn on_err(&mut self, user: usize, id: Option<&str>, code: ErrorReason) -> Handled {
        if let Some(k) = id.and_then(wire::parse_subscribe_id) {
            let per_user = self.plan.subs_per_user as usize;
            if k < per_user {
                let slot = &mut self.slots[user * per_user + k];
                if slot.state == SubState::Pending {
                    slot.state = SubState::Refused;
                    self.subs_pending -= 1;
                    self.counts.subscriptions_failed += 1;
                }
            }
            return error(code);
        }
        let Some(id) = id.and_then(wire::parse_publish_id) else {
            return error(code);
        };
        if self.in_window(id.intended_ns / 1_000) {
            self.counts.refused += 1;
            if let Some(row) = self.table.get_mut(id.topic) {
                row.refused += 1;
            }
        }
        Handled {
            answered: true,
            error: Some(code),
            ..Handled::default()
        }
    }

    fn on_subscribed(&mut self, user: usize, topic: &str) {
        let Some(topic) = wire::parse_topic(topic) else {
            return;
        };
        for index in self.user_slots(user) {
            let slot = &mut self.slots[index];
            if slot.topic != topic {
                continue;
            }
            match slot.state {
                SubState::Pending => {
                    self.subs_pending -= 1;
                    self.counts.subscriptions_confirmed += 1;
                }
                SubState::TimedOut => {
                    self.counts.subscriptions_failed -= 1;
                    self.counts.subscriptions_confirmed += 1;
                }
                SubState::Confirmed | SubState::Refused => return,
            }
            slot.state = SubState::Confirmed;
            return;
        }
    }
}

fn error(reason: ErrorReason) -> Handled {
    Handled {
        error: Some(reason),
        ..Handled::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(topics: u32, per_user: u32) -> PubSubPlan {
        PubSubPlan {
            topics,
            subs_per_user: per_user,
            distribution: Distribution::Uniform,
            first_user: 0,
            user_stride: 1,
            ownership: Ownership {
                procs: 1,
                proc_index: 0,
                threads: 1,
                thread: 0,
            },
            rate: 1.0,
            data_bytes: 64,
            seed: 1,
        }
    }

    fn window() -> Window {
        Window {
            go_ns: 1_000_000,
            start_ns: 2_000_000,
            end_ns: 10_000_000,
            drain_end_ns: 12_000_000,
        }
    }

    fn delivery(topic: u32, seq: u32, intended_us: u64) -> Vec<u8> {
        format!(
            r#"{{"op":"msg","topic":"t{topic}","msg":"x","from":"a","id":"i","ts":1,"data":{{"t":{intended_us},"p":0,"s":{seq}}}}}"#
        )
        .into_bytes()
    }

    /// A thread with its subscriptions confirmed and the window open.
    fn running(users: usize, topics: u32, per_user: u32) -> PubSub {
        let mut pubsub = PubSub::new(plan(topics, per_user), users);
        let mut out = Vec::new();
        for user in 0..users {
            pubsub.subscribe(user, &mut out);
        }
        for user in 0..users {
            for slot in pubsub.user_slots(user) {
                let topic = pubsub.slots[slot].topic;
                pubsub.on_text(
                    user,
                    format!(r#"{{"op":"subscribed","topic":"t{topic}"}}"#).as_bytes(),
                    0,
                );
            }
        }
        assert_eq!(pubsub.subs_pending, 0);
        pubsub.begin(window(), |_| true);
        pubsub
    }

    #[test]
    fn subscriptions_are_distinct_and_counted_when_traffic_starts() {
        let mut pubsub = running(20, 10, 3);
        assert_eq!(pubsub.counts.subscriptions_confirmed, 60);
        let subscribers: u64 = (0..10)
            .map(|t| pubsub.table.get_mut(t).unwrap().subscribers)
            .sum();
        assert_eq!(subscribers, 60);
        for user in 0..20 {
            let mut topics: Vec<u32> = pubsub
                .user_slots(user)
                .map(|s| pubsub.slots[s].topic)
                .collect();
            topics.sort_unstable();
            topics.dedup();
            assert_eq!(topics.len(), 3);
        }
    }

    #[test]
    fn every_publish_is_expected_once_per_subscriber() {
        // One thread owns every topic: publish 50, deliver each to its
        // subscribers, and the books balance; drop one delivery and one is lost.
        let mut pubsub = running(8, 4, 2);
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for n in 0..50u64 {
            let (position, _) = pubsub.next_publish();
            let topic = pubsub.owned.topics().topic(position);
            let seq = pubsub.next_seq[position as usize];
            let intended_ns = 3_000_000 + n * 1_000;
            pubsub.publish(intended_ns, &mut out);
            sent.push((topic, seq, intended_ns / 1_000));
        }
        assert_eq!(pubsub.counts.publishes_in_window, 50);
        let mut dropped = false;
        for &(topic, seq, intended_us) in &sent {
            for user in 0..8 {
                if !pubsub
                    .user_slots(user)
                    .any(|s| pubsub.slots[s].topic == topic)
                {
                    continue;
                }
                if !dropped {
                    dropped = true;
                    continue;
                }
                let handled = pubsub.on_text(user, &delivery(topic, seq, intended_us), 5_000_000);
                assert!(handled.delivery.is_some_and(|(_, in_window)| in_window));
            }
        }
        let summary = pubsub.table.summary();
        assert!(summary.expected > 50);
        assert_eq!(summary.lost, 1);
        assert_eq!(summary.delivered, summary.expected - 1);
        assert_eq!(pubsub.counts.duplicates, 0);
    }

    #[test]
    fn duplicates_reordering_and_misrouting_are_reported() {
        let mut pubsub = running(1, 5, 5);
        // User 0 is subscribed to all 5 topics.
        for (seq, expect_first) in [(0, true), (2, true), (1, true), (1, false), (3, true)] {
            let handled = pubsub.on_text(0, &delivery(4, seq, 3_000), 4_000_000);
            assert_eq!(handled.delivery.is_some(), expect_first, "seq {seq}");
        }
        assert_eq!(pubsub.counts.duplicates, 1);
        assert_eq!(pubsub.counts.out_of_order, 1);
        assert_eq!(pubsub.counts.out_of_order_pairs, 1);
        let handled = pubsub.on_text(0, &delivery(9, 0, 3_000), 4_000_000);
        assert_eq!(handled.error, Some(ErrorReason::Misrouted));
        let garbage = pubsub.on_text(0, b"not json", 0);
        assert_eq!(garbage.error, Some(ErrorReason::BadEnvelope));
        // Deliveries of warmup publishes are tracked but not expected.
        let warm = pubsub.on_text(0, &delivery(3, 0, 1_500), 4_000_000);
        assert_eq!(warm.delivery, Some((2_500, false)));
        assert_eq!(pubsub.table.summary().delivered, 4);
    }

    #[test]
    fn refused_publishes_are_not_expected_and_errors_name_their_code() {
        let mut pubsub = running(2, 1, 1);
        let mut out = Vec::new();
        pubsub.next_publish();
        pubsub.publish(3_000_000, &mut out);
        let id = format!("{:x}.0.0.{:x}", window().go_ns, 3_000_000);
        let text =
            format!(r#"{{"op":"err","id":"{id}","code":"unavailable","retry_after_ms":100}}"#);
        let handled = pubsub.on_text(0, text.as_bytes(), 3_500_000);
        assert!(handled.answered);
        assert_eq!(
            handled.error,
            Some(ErrorReason::Envelope(EnvelopeCode::Unavailable))
        );
        let summary = pubsub.table.summary();
        assert_eq!(summary.expected, 0);
        assert_eq!(pubsub.counts.refused, 1);
        // An ack gives the ack latency from the intended time.
        let ack = format!(r#"{{"op":"ack","id":"{id}","msg":"m","dup":false}}"#);
        assert!(pubsub.on_text(0, ack.as_bytes(), 3_700_000).answered);
        assert_eq!(pubsub.ack_latency.max(), 700);
    }

    #[test]
    fn failed_and_late_subscriptions_are_counted() {
        let mut pubsub = PubSub::new(plan(4, 1), 3);
        let mut out = Vec::new();
        for user in 0..3 {
            pubsub.subscribe(user, &mut out);
        }
        assert_eq!(pubsub.subs_pending, 3);
        pubsub.on_text(0, br#"{"op":"err","id":"s0","code":"forbidden"}"#, 0);
        pubsub.forget_user(1);
        assert_eq!(pubsub.subs_pending, 1);
        assert_eq!(pubsub.expire_subscriptions(), 1);
        let topic = pubsub.slots[2].topic;
        pubsub.on_text(
            2,
            format!(r#"{{"op":"subscribed","topic":"t{topic}"}}"#).as_bytes(),
            0,
        );
        assert_eq!(pubsub.counts.subscriptions_failed, 2);
        assert_eq!(pubsub.counts.subscriptions_confirmed, 1);
    }
}
