//! Relay mode: the client JSON protocol on one side, router links on the
//! other (docs/design/why-routers-over-tcp.md).
//!
//! A shard keeps one [`Link`] per router and a local topic table. Client
//! `pub` becomes PUBLISH to the topic's router (by the shard map) and its
//! PUBLISH_ACK becomes `ack`/`err`; `sub`/`unsub` update the topic table and
//! tell the topic's router about the first and last local subscriber; a
//! router's DELIVER is encoded once into a WebSocket frame and queued, shared,
//! on every local subscriber. Pending publishes live in a fixed-entry slab, so
//! the publish path allocates nothing per message.

pub mod held;
pub mod link;
pub mod topics;
pub mod trace;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use ringgate_router::protocol::{
    self, Capabilities, ConnectionRef, Credit, CreditWindow, Deliver, Frame, Hello, Presence,
    PresenceEvent, Publish, PublishAck, PublishOutcome, Recipient, Role, Target, TopicRequest,
    UNASSIGNED_ID,
};
use ringgate_shardmap::{RouterId, ShardMap};
use ringgate_uring::Ops;
use ringgate_wscodec::{OpCode, write_frame};

use crate::defense::user_table::{TopicKey, UserKey};
use crate::envelope::{
    self, DEGRADED_TEXT, Delivery, ErrorCode, ErrorReply, Hop, RawJson, Request, Rules, Status,
    write_ack, write_err, write_status, write_subscribed, write_unsubscribed,
};
use crate::log;

use super::conn::Phase;
use super::shard::Core;
use super::stats::FrameKind;
use held::{HELD_BYTES_MAX, Held, HoldRefused};
use link::{Link, LinkState};
use topics::{Change, Subscriber, Topics};
use trace::{MAX_SHOWN_HOPS, StartedHops, TraceIds};

/// Why router links fail (the `reason` label of
/// `ringgate_router_link_failures_total`): a bad or unexpected frame, no
/// HELLO_ACK in time, missed pings, a failed connect, send or receive, or
/// the router closing the connection.
pub const LINK_FAILURE_KINDS: [&str; 7] = [
    "protocol", "timeout", "silence", "connect", "send", "recv", "closed",
];

/// Most publishes one shard may have waiting for their PUBLISH_ACK.
const MAX_PENDING: usize = 65_536;
/// Most publishes one shard holds for all its down routers together: held
/// publishes keep their pending-ack slot, so this leaves half of
/// [`MAX_PENDING`] to the routers that are up, however many are down and
/// whatever `limits.degraded_buffer_messages` says.
const MAX_HELD_PER_SHARD: usize = MAX_PENDING / 2;
/// What a shard grants each router at HELLO, and tops up as it delivers.
const DELIVER_CREDIT: Credit = Credit {
    messages: 65_536,
    bytes: 64 << 20,
};
/// Deliveries handled before the shard sends a CREDIT top-up.
const CREDIT_TOP_UP: u32 = 4_096;
/// Interval between pings on an idle link, and pings missed before it is
/// declared down (the brief: checked every 5 s, 3 failures = down).
const LINK_PING_MS: u64 = 5_000;
const LINK_MISSED_PINGS: u32 = 3;
/// How long a connect or HELLO may take.
const LINK_SETUP_MS: u64 = 5_000;

/// A router the shard should link to.
#[derive(Clone, Debug)]
pub struct RouterAddress {
    pub id: u32,
    pub address: SocketAddr,
}

/// How long a client should wait before retrying a `sub` refused `degraded`.
const DEGRADED_RETRY_AFTER_MS: u64 = 5_000;
/// Times a router may refuse (unavailable) the first held publish sent after
/// a reconnect before that refusal goes to its client and the rest follow:
/// a restarted router refuses for its 3 s claim grace, not for minutes.
const PROBE_REFUSALS_MAX: u32 = 20;

/// A publish waiting for its PUBLISH_ACK: who asked, under which client id,
/// on which link and when it was sent (the router round-trip metric).
/// `sent` is false while the publish is held for a down router.
struct Pending {
    slot: u32,
    generation: u32,
    sent_us: u64,
    sent: bool,
    link: u8,
    id_len: u8,
    id: [u8; 128],
}

pub struct Relay {
    pub node_id: u32,
    pub links: Vec<Link>,
    map: ShardMap,
    pub topics: Topics,
    /// Local connections of each authenticated user (user deliveries).
    users: std::collections::HashMap<Box<str>, Vec<Subscriber>>,
    pending: Vec<Option<Pending>>,
    pending_generation: Vec<u32>,
    pending_free: Vec<u32>,
    pub rules: Rules,
    decoder: protocol::Decoder,
    /// Scratch for encoding one delivery before it is shared.
    frame: Vec<u8>,
    /// Scratch list of one delivery's local recipients.
    recipients: Vec<Subscriber>,
    json: Vec<u8>,
    /// Scratch for a traced delivery's named hops.
    hop_names: [Hop<'static>; MAX_SHOWN_HOPS],
    trace_ids: TraceIds,
    random: u64,
    next_request: u64,
    /// The shard's clients were told `status` `degraded` (and not yet `ok`).
    pub degraded: bool,
}

impl Relay {
    /// `held_messages_max`: most publishes held per router link while it is
    /// down (`limits.degraded_buffer_messages`).
    pub fn new(
        node_id: u32,
        routers: &[RouterAddress],
        held_messages_max: usize,
    ) -> io::Result<Relay> {
        let ids: Vec<RouterId> = routers.iter().map(|r| RouterId(r.id)).collect();
        let map = ShardMap::new(ringgate_shardmap::DEFAULT_VSHARDS, ids)
            .map_err(|error| io::Error::other(format!("shard map: {error}")))?;
        Ok(Relay {
            node_id,
            links: routers
                .iter()
                .map(|r| {
                    let held = Held::new(held_messages_max, HELD_BYTES_MAX);
                    Link::new(RouterId(r.id), r.address, held)
                })
                .collect(),
            map,
            topics: Topics::default(),
            users: std::collections::HashMap::new(),
            pending: Vec::new(),
            pending_generation: Vec::new(),
            pending_free: Vec::new(),
            rules: Rules::default(),
            decoder: protocol::Decoder::default(),
            frame: Vec::new(),
            recipients: Vec::new(),
            json: Vec::new(),
            hop_names: [Hop {
                stage: "",
                ts_us: 0,
            }; MAX_SHOWN_HOPS],
            trace_ids: TraceIds::new(node_id),
            random: 0x9e37_79b9_7f4a_7c15 ^ u64::from(node_id),
            next_request: 1,
            degraded: false,
        })
    }

    /// Publishes held for down routers, all links.
    fn held_total(&self) -> usize {
        self.links.iter().map(|link| link.held.len()).sum()
    }

    pub fn shardmap_epoch(&self) -> u64 {
        self.map.epoch()
    }

    fn link_of_topic(&self, topic: &str) -> Option<usize> {
        let router = self.map.route(topic.as_bytes())?;
        self.links.iter().position(|link| link.router == router)
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: jitter only, no security property needed.
        self.random ^= self.random << 13;
        self.random ^= self.random >> 7;
        self.random ^= self.random << 17;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    fn insert_pending(
        &mut self,
        slot: u32,
        generation: u32,
        id: &str,
        link: usize,
        sent_us: u64,
        sent: bool,
    ) -> Option<u64> {
        let index = match self.pending_free.pop() {
            Some(index) => index as usize,
            None if self.pending.len() < MAX_PENDING => {
                self.pending.push(None);
                self.pending_generation.push(0);
                self.pending.len() - 1
            }
            None => return None,
        };
        let mut entry = Pending {
            slot,
            generation,
            sent_us,
            sent,
            link: link as u8,
            id_len: id.len() as u8,
            id: [0; 128],
        };
        entry.id[..id.len()].copy_from_slice(id.as_bytes());
        self.pending[index] = Some(entry);
        self.pending_generation[index] = self.pending_generation[index].wrapping_add(1);
        Some(u64::from(self.pending_generation[index]) << 32 | index as u64)
    }

    fn take_pending(&mut self, publish_id: u64) -> Option<Pending> {
        let index = (publish_id & 0xffff_ffff) as usize;
        if self.pending_generation.get(index) != Some(&((publish_id >> 32) as u32)) {
            return None;
        }
        let entry = self.pending.get_mut(index)?.take()?;
        self.pending_free.push(index as u32);
        Some(entry)
    }
}

/// A held publish leaves: its round trip starts now; `sent` once it is no
/// longer held (a probe stays held until the router takes it).
fn restart_round_trip(
    pending: &mut [Option<Pending>],
    generations: &[u32],
    publish_id: u64,
    now_us: u64,
    sent: bool,
) {
    let index = (publish_id & 0xffff_ffff) as usize;
    if generations.get(index) == Some(&((publish_id >> 32) as u32))
        && let Some(Some(entry)) = pending.get_mut(index)
    {
        entry.sent = sent;
        entry.sent_us = now_us;
    }
}

/// The name an anonymous connection publishes under (`from` in deliveries):
/// `anon-<node>-<slot>-<generation>` in hex, written into `buffer` so the
/// publish path allocates nothing.
fn anonymous_name(buffer: &mut [u8; 40], node_id: u32, slot: u32, generation: u32) -> &str {
    use std::io::Write;
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = write!(cursor, "anon-{node_id:x}-{slot:x}-{generation:x}");
    let length = cursor.position() as usize;
    std::str::from_utf8(&buffer[..length]).unwrap_or("anon")
}

/// A connection's name on the router protocol: its slot and generation.
pub fn connection_ref(node_id: u32, slot: u32, generation: u32) -> ConnectionRef {
    ConnectionRef {
        gateway: node_id,
        connection: u64::from(generation) << 32 | u64::from(slot),
    }
}

impl Core {
    fn relay(&mut self) -> &mut Relay {
        self.relay.as_mut().expect("relay mode")
    }

    /// A text message from a client in relay mode.
    pub(in crate::hot) fn on_client_text(&mut self, slot: usize, text: &[u8]) {
        let parsed = envelope::parse(text, &self.relay.as_ref().expect("relay mode").rules);
        match parsed {
            Ok(Request::Publish(publish)) => self.publish(slot, &publish),
            Ok(Request::Subscribe(subscription)) => self.subscribe(slot, &subscription.topic),
            Ok(Request::Unsubscribe(subscription)) => self.unsubscribe(slot, &subscription.topic),
            Err(error) => {
                self.stats.bad_requests += 1;
                log::warn!(
                    "bad_request",
                    reason = error.reason.as_str(),
                    "client request refused: {error}"
                );
                let reply = ErrorReply::from(&error);
                self.reply_error(slot, &reply);
            }
        }
    }

    /// A binary message in relay mode: the relay protocol is JSON text.
    pub(in crate::hot) fn on_client_binary(&mut self, slot: usize) {
        self.stats.bad_requests += 1;
        log::warn!(
            "bad_request",
            reason = "binary_not_supported",
            "client request refused: binary message in relay mode"
        );
        let reply = ErrorReply {
            reason: Some("binary_not_supported"),
            ..ErrorReply::new(ErrorCode::BadRequest)
        };
        self.reply_error(slot, &reply);
    }

    fn reply_error(&mut self, slot: usize, reply: &ErrorReply<'_>) {
        let mut json = std::mem::take(&mut self.relay().json);
        json.clear();
        write_err(&mut json, reply);
        self.send_text(slot, &json);
        self.relay().json = json;
    }

    /// Queues one text frame of own bytes on a connection.
    fn send_text(&mut self, slot: usize, json: &[u8]) {
        let conn = &mut self.conns[slot];
        write_frame(conn.output.writer(&mut self.pool), OpCode::Text, json, None);
        self.stats.messages_out += 1;
        self.stats.count_out(FrameKind::Text);
        self.mark_dirty(slot);
        self.enforce_write_queue(slot);
    }

    /// Per-user rates, repeated content and per-topic rate, before a
    /// publish leaves the shard. Returns false if it was answered (or the
    /// connection closed for abuse).
    fn admit_publish(&mut self, slot: usize, topic: &str, id: &str, data: &[u8]) -> bool {
        let now_ms = self.settings.epoch.elapsed().as_millis() as u64;
        let key = match self.user_handles.get(&(slot as u32)) {
            Some(handle) => handle.key(),
            None => {
                let node = self.relay.as_ref().expect("relay mode").node_id;
                let generation = self.conns[slot].generation;
                UserKey::anonymous(
                    node,
                    connection_ref(node, slot as u32, generation).connection,
                )
            }
        };
        let refusal = match self.settings.user_table.allow_publish(key, data, now_ms) {
            Ok(()) => match self
                .settings
                .topic_table
                .allow_topic(TopicKey::new(topic), now_ms)
            {
                Ok(()) => return true,
                Err(limited) => {
                    *self
                        .stats
                        .message_refusals
                        .entry("per_topic_rate")
                        .or_default() += 1;
                    log::warn!(
                        "rate_limited",
                        reason = "per_topic_rate",
                        topic_bytes = topic.len(),
                        "publish refused rate_limited by the per-topic limit"
                    );
                    let reply = ErrorReply {
                        id: Some(id),
                        retry_after_ms: Some(limited.retry_after_ms),
                        reason: Some("per_topic_rate"),
                        ..ErrorReply::new(ErrorCode::RateLimited)
                    };
                    self.reply_error(slot, &reply);
                    return false;
                }
            },
            Err(refusal) => refusal,
        };
        *self
            .stats
            .message_refusals
            .entry(refusal.as_str())
            .or_default() += 1;
        if let Some(code) = refusal.close_code() {
            log::warn!(
                "abuse_closed",
                reason = refusal.as_str(),
                close_code = code,
                "a connection kept sending past its rate limits: closed"
            );
            self.close_with(slot, code, false);
            return false;
        }
        let code = match refusal.error_code() {
            Some("unavailable") => ErrorCode::Unavailable,
            _ => ErrorCode::RateLimited,
        };
        log::warn!(
            "rate_limited",
            reason = refusal.as_str(),
            code = code.as_str(),
            "publish refused by a per-user limit"
        );
        let reply = ErrorReply {
            id: Some(id),
            retry_after_ms: refusal.retry_after_ms(),
            reason: Some(refusal.as_str()),
            ..ErrorReply::new(code)
        };
        self.reply_error(slot, &reply);
        false
    }

    fn publish(&mut self, slot: usize, publish: &envelope::Publish<'_>) {
        let (topic, id, data) = (&*publish.topic, &*publish.id, publish.data);
        if !self.admit_publish(slot, topic, id, data.as_bytes()) {
            return;
        }
        let generation = self.conns[slot].generation;
        let relay = self.relay.as_mut().expect("relay mode");
        // The reason tells clients (and operators) which overload this is.
        let unavailable = |retry_after_ms, reason| {
            log::warn!(
                "publish_unavailable",
                reason,
                trace_id = publish.trace.as_deref(),
                "publish refused unavailable"
            );
            ErrorReply {
                id: Some(id),
                retry_after_ms: Some(retry_after_ms),
                reason: Some(reason),
                ..ErrorReply::new(ErrorCode::Unavailable)
            }
        };
        let Some(link_index) = relay
            .link_of_topic(topic)
            .filter(|&i| relay.links[i].was_up)
        else {
            self.stats.publish_unavailable += 1;
            return self.reply_error(slot, &unavailable(1_000, "no_router"));
        };
        // Held while the router is down (after having been up), and behind
        // those held until they are all released.
        let link = &relay.links[link_index];
        let hold = link.holds_publishes();
        if hold && (!link.held.has_room() || relay.held_total() >= MAX_HELD_PER_SHARD) {
            self.stats.publish_unavailable += 1;
            return self.reply_error(slot, &unavailable(5_000, "buffer_full"));
        }
        if !hold && !link.publish_credit.can_spend() {
            self.stats.publish_unavailable += 1;
            return self.reply_error(slot, &unavailable(100, "router_busy"));
        }
        let sent_us = self.clock_us;
        let Some(publish_id) =
            relay.insert_pending(slot as u32, generation, id, link_index, sent_us, !hold)
        else {
            self.stats.publish_unavailable += 1;
            return self.reply_error(slot, &unavailable(100, "too_many_pending"));
        };
        let mut name = [0u8; 40];
        let (user, anonymous) = match self.users.get(&(slot as u32)) {
            Some(user) => (&**user, false),
            None => (
                anonymous_name(&mut name, relay.node_id, slot as u32, generation),
                true,
            ),
        };
        // Traced (`"hops":true`): a trace id if the client gave none, and
        // the hop list started; untraced publishes read no clock.
        let mut generated = [0u8; 32];
        let trace = match (&publish.trace, publish.hops) {
            (Some(trace), _) => &**trace,
            (None, true) => relay.trace_ids.next(&mut generated),
            (None, false) => "",
        };
        let hops = publish
            .hops
            .then(|| StartedHops::new(publish.sent_us, trace::wall_us()));
        let frame = Frame::Publish(Publish {
            publish_id,
            message_id: UNASSIGNED_ID,
            sender: connection_ref(relay.node_id, slot as u32, generation),
            topic,
            // Anonymous (auth off): the router de-duplicates on (topic, id).
            user,
            anonymous,
            client_msg_id: id,
            trace_id: trace,
            hops: hops.as_ref().map(StartedHops::hops),
            payload: data.as_bytes(),
        });
        let link = &mut relay.links[link_index];
        if hold {
            match link
                .held
                .hold(publish_id, |out| protocol::encode(&frame, out))
            {
                Ok(_) => {
                    self.stats.publishes_buffered += 1;
                    self.release_held(link_index);
                }
                Err(HoldRefused::Full) => {
                    relay.take_pending(publish_id);
                    self.stats.publish_unavailable += 1;
                    self.reply_error(slot, &unavailable(5_000, "buffer_full"));
                }
                Err(HoldRefused::Encode(error)) => {
                    relay.take_pending(publish_id);
                    self.refuse_too_large(slot, id, trace, &error);
                }
            }
            return;
        }
        let before = link.output.len();
        match protocol::encode(&frame, &mut link.output) {
            Ok(length) => {
                let _ = link.publish_credit.spend(length);
                link.in_flight += 1;
                self.stats.publishes += 1;
                self.routed_to_router += 1;
                log::sampled!(
                    "message_routed",
                    direction = "publish",
                    router = link.router.0,
                    topic_bytes = topic.len(),
                    bytes = length,
                    trace_id = (!trace.is_empty()).then_some(trace),
                    "publish sent to its router"
                );
                self.mark_link_dirty(link_index);
            }
            Err(error) => {
                relay.links[link_index].output.truncate(before);
                relay.take_pending(publish_id);
                self.refuse_too_large(slot, id, trace, &error);
            }
        }
    }

    fn refuse_too_large(
        &mut self,
        slot: usize,
        id: &str,
        trace: &str,
        error: &protocol::EncodeError,
    ) {
        log::warn!(
            "publish_too_large",
            trace_id = (!trace.is_empty()).then_some(trace),
            "publish refused too_large: {error}"
        );
        let reason = error.to_string();
        let reply = ErrorReply {
            id: Some(id),
            reason: Some(&reason),
            ..ErrorReply::new(ErrorCode::TooLarge)
        };
        self.reply_error(slot, &reply);
    }

    /// Moves a link's held publishes into its output while it is up and the
    /// router's credit allows, oldest first; their round trip starts now.
    /// After a reconnect the oldest goes alone first (a probe, still held):
    /// a router that just restarted refuses publishes for its claim grace
    /// (3 s), and the probe is retried until the router takes it.
    fn release_held(&mut self, index: usize) {
        let (now_us, now) = (self.clock_us, self.now);
        let relay = self.relay.as_mut().expect("relay mode");
        let link = &mut relay.links[index];
        if !link.is_up() || link.held.is_empty() || link.probe.is_some() {
            return;
        }
        if !link.taking {
            if now < link.probe_retry_tick || !link.publish_credit.can_spend() {
                return;
            }
            let Some((publish_id, frame)) = link.held.front() else {
                return;
            };
            let _ = link.publish_credit.spend(frame.len());
            link.output.extend_from_slice(frame);
            // Still counted as held (the buffer depth), not in flight.
            link.probe = Some(publish_id);
            restart_round_trip(
                &mut relay.pending,
                &relay.pending_generation,
                publish_id,
                now_us,
                false,
            );
            self.mark_link_dirty(index);
            return;
        }
        let (pending, generations) = (&mut relay.pending, &relay.pending_generation);
        let released =
            link.held
                .release(&mut link.publish_credit, &mut link.output, |publish_id| {
                    restart_round_trip(pending, generations, publish_id, now_us, true)
                });
        if released == 0 {
            return;
        }
        link.in_flight += released as u32;
        self.routed_to_router += released as u64;
        self.mark_link_dirty(index);
        let link = &self.relay().links[index];
        if link.held.is_empty() {
            log::info!(
                "router_buffer_flushed",
                router = link.router.0,
                "publishes held for router {} all sent",
                link.router.0
            );
        }
    }

    fn subscribe(&mut self, slot: usize, topic: &str) {
        let subscriber = Subscriber {
            slot: slot as u32,
            generation: self.conns[slot].generation,
        };
        let relay = self.relay();
        if relay
            .link_of_topic(topic)
            .is_some_and(|index| relay.links[index].was_up && !relay.links[index].is_up())
        {
            // The router would not hear of it until the link is back: say so
            // rather than promise deliveries that cannot come.
            let reply = ErrorReply {
                retry_after_ms: Some(DEGRADED_RETRY_AFTER_MS),
                ..ErrorReply::new(ErrorCode::Degraded)
            };
            return self.reply_error(slot, &reply);
        }
        if relay.topics.subscribe(topic, subscriber) == Change::FirstSubscriber {
            self.send_topic_request(topic, true);
        }
        let mut json = std::mem::take(&mut self.relay().json);
        json.clear();
        write_subscribed(&mut json, topic);
        self.send_text(slot, &json);
        self.relay().json = json;
    }

    fn unsubscribe(&mut self, slot: usize, topic: &str) {
        let subscriber = Subscriber {
            slot: slot as u32,
            generation: self.conns[slot].generation,
        };
        if self.relay().topics.unsubscribe(topic, subscriber) == Change::LastSubscriberLeft {
            self.send_topic_request(topic, false);
        }
        let mut json = std::mem::take(&mut self.relay().json);
        json.clear();
        write_unsubscribed(&mut json, topic);
        self.send_text(slot, &json);
        self.relay().json = json;
    }

    /// SUBSCRIBE/UNSUBSCRIBE to the topic's router, if its link is up (a link
    /// that comes up later re-sends every subscribed topic).
    fn send_topic_request(&mut self, topic: &str, subscribe: bool) {
        let relay = self.relay();
        let Some(index) = relay.link_of_topic(topic) else {
            return;
        };
        if !relay.links[index].is_up() {
            return;
        }
        let request = TopicRequest {
            request_id: relay.request_id(),
            topic,
        };
        let frame = if subscribe {
            Frame::Subscribe(request)
        } else {
            Frame::Unsubscribe(request)
        };
        if protocol::encode(&frame, &mut relay.links[index].output).is_ok() {
            self.mark_link_dirty(index);
        }
    }

    /// A connection is going away: leave its topics.
    pub(in crate::hot) fn relay_forget(&mut self, slot: usize) {
        let subscriber = Subscriber {
            slot: slot as u32,
            generation: self.conns[slot].generation,
        };
        let Some(relay) = self.relay.as_mut() else {
            return;
        };
        for topic in relay.topics.remove_connection(subscriber) {
            self.send_topic_request(&topic, false);
        }
        if let Some(user) = self.users.get(&(slot as u32)).cloned() {
            let relay = self.relay();
            if let Some(list) = relay.users.get_mut(&user) {
                list.retain(|s| *s != subscriber);
                if list.is_empty() {
                    relay.users.remove(&user);
                }
            }
            self.send_presence(slot, &user, false);
        }
    }

    /// An authenticated connection opened: index it and tell the user's router.
    fn relay_user_joined(&mut self, slot: usize) {
        let Some(user) = self.users.get(&(slot as u32)).cloned() else {
            return;
        };
        let subscriber = Subscriber {
            slot: slot as u32,
            generation: self.conns[slot].generation,
        };
        self.relay()
            .users
            .entry(user.clone())
            .or_default()
            .push(subscriber);
        self.send_presence(slot, &user, true);
    }

    /// PRESENCE to the router that owns the user (by the shard map over
    /// user ids), if its link is up (a link coming up re-sends them all).
    fn send_presence(&mut self, slot: usize, user: &str, connected: bool) {
        let generation = self.conns[slot].generation;
        let relay = self.relay();
        let Some(router) = relay.map.route_user(user.as_bytes()) else {
            return;
        };
        let Some(index) = relay
            .links
            .iter()
            .position(|l| l.router == router && l.is_up())
        else {
            return;
        };
        let frame = Frame::Presence(Presence {
            event: if connected {
                PresenceEvent::Connected
            } else {
                PresenceEvent::Disconnected
            },
            connection: connection_ref(relay.node_id, slot as u32, generation),
            user,
        });
        if protocol::encode(&frame, &mut relay.links[index].output).is_ok() {
            self.mark_link_dirty(index);
        }
    }

    /// Bytes arrived on a router link.
    pub(in crate::hot) fn on_link_data(&mut self, ops: &mut Ops, index: usize, data: &[u8]) {
        let now = self.now;
        let relay = self.relay();
        relay.links[index].last_heard_tick = now;
        let mut input = std::mem::take(&mut relay.links[index].input);
        input.extend_from_slice(data);
        let decoder = relay.decoder;
        let mut offset = 0;
        let mut failure = None;
        while offset < input.len() {
            match decoder.decode(&input[offset..]) {
                Ok(Some((frame, used))) => {
                    offset += used;
                    if let Err(reason) = self.on_link_frame(index, frame) {
                        failure = Some(reason);
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    failure = Some(format!("router sent an invalid frame: {error}"));
                    break;
                }
            }
        }
        input.drain(..offset);
        let relay = self.relay();
        if input.capacity() > 1 << 20 && input.len() < 4096 {
            input.shrink_to(4096);
        }
        relay.links[index].input = input;
        if let Some(reason) = failure {
            self.link_failed(ops, index, "protocol", &reason);
        }
    }

    fn on_link_frame(&mut self, index: usize, frame: Frame<'_>) -> Result<(), String> {
        match frame {
            Frame::HelloAck(ack) => {
                let now = self.now;
                let relay = self.relay();
                let link = &mut relay.links[index];
                if link.state != LinkState::Hello {
                    return Err("HELLO_ACK out of order".into());
                }
                if ack.node_id != link.router.0 {
                    return Err(format!(
                        "router at {} says it is {}, configured as {}",
                        link.address, ack.node_id, link.router.0
                    ));
                }
                link.publish_credit = CreditWindow::new(ack.credit);
                link.max_body_bytes = ack.max_body_bytes;
                link.came_up(now);
                log::info!(
                    "router_up",
                    router = link.router.0,
                    address = %link.address,
                    "router {} at {} is up",
                    link.router.0,
                    link.address
                );
                self.resubscribe(index);
                self.release_held(index);
                self.update_degraded();
            }
            Frame::Ping(ping) => {
                let pong = Frame::Pong(protocol::Pong {
                    nonce: ping.nonce,
                    ping_sent_us: ping.sent_us,
                    sent_us: 0,
                });
                let _ = protocol::encode(&pong, &mut self.relay().links[index].output);
                self.mark_link_dirty(index);
            }
            Frame::Pong(_) => {}
            Frame::Credit(credit) => {
                self.relay().links[index]
                    .publish_credit
                    .grant(credit)
                    .map_err(|error| error.to_string())?;
                self.release_held(index);
                self.update_degraded();
            }
            Frame::PublishAck(ack) => self.on_publish_ack(index, ack),
            Frame::Deliver(deliver) => {
                self.on_deliver(&deliver);
                let relay = self.relay();
                let link = &mut relay.links[index];
                link.delivered_since_grant += 1;
                if link.delivered_since_grant >= CREDIT_TOP_UP {
                    let grant = Credit {
                        messages: link.delivered_since_grant,
                        bytes: DELIVER_CREDIT.bytes / 2,
                    };
                    link.delivered_since_grant = 0;
                    let _ = protocol::encode(&Frame::Credit(grant), &mut link.output);
                    self.mark_link_dirty(index);
                }
            }
            Frame::Reply(reply) => {
                if reply.code != protocol::Code::OK {
                    self.stats.router_refusals += 1;
                    log::warn!(
                        "router_refused",
                        "router refused request {}: {}",
                        reply.request_id,
                        reply.text
                    );
                }
            }
            Frame::Kick(kick) => self.on_kick(&kick),
            Frame::GoAway(goaway) => return Err(format!("router said GOAWAY: {}", goaway.text)),
            other => return Err(format!("unexpected {:?} from a router", other.frame_type())),
        }
        Ok(())
    }

    /// The router answered a link's probe: refused (unavailable), it stays
    /// held and is sent again after the router's `retry_after_ms` (at most
    /// [`PROBE_REFUSALS_MAX`] times); otherwise the router takes publishes
    /// again and the rest may follow. True if the probe stays held.
    fn on_probe_answer(&mut self, index: usize, ack: &PublishAck<'_>) -> bool {
        let now = self.now;
        let link = &mut self.relay().links[index];
        link.probe = None;
        if let PublishOutcome::Unavailable(refusal) = &ack.outcome
            && link.probe_refusals < PROBE_REFUSALS_MAX
        {
            link.probe_refusals += 1;
            let wait_ms = u64::from(refusal.retry_after_ms).clamp(100, 5_000);
            link.probe_retry_tick = now + super::timer::ticks(wait_ms).max(1);
            return true;
        }
        // Answered: from held to in flight, answered like any publish below.
        link.in_flight += 1;
        link.taking = true;
        link.held.pop_front();
        false
    }

    fn on_publish_ack(&mut self, index: usize, ack: PublishAck<'_>) {
        if self.relay().links[index].probe == Some(ack.publish_id) {
            if self.on_probe_answer(index, &ack) {
                return;
            }
            self.release_held(index);
            self.update_degraded();
        }
        let Some(pending) = self.relay().take_pending(ack.publish_id) else {
            return;
        };
        let rtt_us = self.clock_us.saturating_sub(pending.sent_us);
        self.stats.histograms.router_rtt_us.observe(rtt_us);
        if let Some(link) = self.relay().links.get_mut(usize::from(pending.link)) {
            link.in_flight = link.in_flight.saturating_sub(1);
        }
        let slot = pending.slot as usize;
        if self
            .conns
            .get(slot)
            .is_none_or(|conn| conn.generation != pending.generation || conn.phase != Phase::Open)
        {
            return;
        }
        let id = std::str::from_utf8(&pending.id[..usize::from(pending.id_len)]).unwrap_or("");
        let mut json = std::mem::take(&mut self.relay().json);
        json.clear();
        match ack.outcome {
            PublishOutcome::Accepted { message_id } | PublishOutcome::Duplicate { message_id } => {
                let duplicate = matches!(ack.outcome, PublishOutcome::Duplicate { .. });
                write_ack(&mut json, id, message_id.to_text().as_str(), duplicate);
                self.stats.acks += 1;
            }
            PublishOutcome::Rejected(refusal) | PublishOutcome::Unavailable(refusal) => {
                // The router protocol's mapping: forbidden, rate_limited and
                // too_large keep their code; other rejections are `rejected`.
                let code = match ack.outcome.client_error() {
                    Some("forbidden") => ErrorCode::Forbidden,
                    Some("rate_limited") => ErrorCode::RateLimited,
                    Some("too_large") => ErrorCode::TooLarge,
                    Some("unavailable") => ErrorCode::Unavailable,
                    _ => ErrorCode::Rejected,
                };
                let reply = ErrorReply {
                    id: Some(id),
                    code,
                    retry_after_ms: (refusal.retry_after_ms != 0)
                        .then_some(u64::from(refusal.retry_after_ms)),
                    reason: (!refusal.text.is_empty()).then_some(refusal.text),
                };
                write_err(&mut json, &reply);
                self.stats.publish_rejected += 1;
                log::warn!(
                    "publish_rejected",
                    code = code.as_str(),
                    reason = refusal.text,
                    "the router refused a publish"
                );
            }
        }
        self.send_text(slot, &json);
        self.relay().json = json;
    }

    /// Encodes a delivery once and queues it, shared, on every local
    /// recipient.
    fn on_deliver(&mut self, deliver: &Deliver<'_>) {
        let relay = self.relay.as_mut().expect("relay mode");
        let text = deliver.message_id.to_text();
        relay.json.clear();
        envelope::write_msg(
            &mut relay.json,
            &Delivery {
                topic: deliver.topic,
                msg: text.as_str(),
                from: deliver.from,
                id: deliver.client_msg_id,
                ts_ms: deliver.message_id.hlc.wall_ms(),
                data: RawJson::trusted(deliver.payload),
                trace: (!deliver.trace_id.is_empty()).then_some(deliver.trace_id),
                hops: deliver
                    .hops
                    .map(|hops| trace::named_hops(hops, trace::wall_us(), &mut relay.hop_names)),
            },
        );
        relay.frame.clear();
        write_frame(&mut relay.frame, OpCode::Text, &relay.json, None);
        let shared: Rc<[u8]> = Rc::from(&relay.frame[..]);
        // A reused list: the recipients are copied out (the loop below needs
        // the whole shard), but into a buffer that keeps its capacity.
        let mut recipients = std::mem::take(&mut relay.recipients);
        recipients.clear();
        match deliver.target {
            Target::Topic => recipients.extend_from_slice(relay.topics.subscribers(deliver.topic)),
            Target::Connection(connection) if connection.gateway == relay.node_id => {
                recipients.push(Subscriber {
                    slot: (connection.connection & 0xffff_ffff) as u32,
                    generation: (connection.connection >> 32) as u32,
                });
            }
            Target::User(user) => {
                if let Some(devices) = relay.users.get(user) {
                    recipients.extend_from_slice(devices);
                }
            }
            Target::Connection(_) => {}
        }
        self.stats.deliveries_in += 1;
        let age_us = self
            .wall_clock_ms()
            .saturating_sub(deliver.message_id.hlc.wall_ms())
            * 1_000;
        let mut dropped = 0u32;
        for &recipient in &recipients {
            let slot = recipient.slot as usize;
            let open = self.conns.get(slot).is_some_and(|conn| {
                conn.generation == recipient.generation && conn.phase == Phase::Open
            });
            if !open {
                *self.stats.delivery_failures.entry("closed").or_default() += 1;
                dropped += 1;
                continue;
            }
            let conn = &mut self.conns[slot];
            conn.output.push_shared(Rc::clone(&shared), &mut self.pool);
            self.stats.messages_out += 1;
            self.stats.count_out(FrameKind::Text);
            self.mark_dirty(slot);
            if self.enforce_write_queue(slot) {
                *self
                    .stats
                    .delivery_failures
                    .entry("slow_consumer")
                    .or_default() += 1;
            } else {
                self.stats.deliveries_out += 1;
                self.routed_to_client += 1;
                self.stats.histograms.delivery_us.observe(age_us);
            }
        }
        let trace_id = (!deliver.trace_id.is_empty()).then_some(deliver.trace_id);
        if dropped != 0 {
            log::warn!(
                "delivery_dropped",
                reason = "recipient_closed",
                recipients = dropped,
                trace_id,
                "delivery not queued: recipient closed or closing"
            );
        }
        log::sampled!(
            "message_routed",
            direction = "deliver",
            recipients = recipients.len(),
            topic_bytes = deliver.topic.len(),
            bytes = deliver.payload.len(),
            trace_id,
            "delivery queued on local recipients"
        );
        self.relay().recipients = recipients;
    }

    fn on_kick(&mut self, kick: &protocol::Kick<'_>) {
        if let Recipient::User(user) = kick.recipient {
            let connections = self.relay().users.get(user).cloned().unwrap_or_default();
            for subscriber in connections {
                let slot = subscriber.slot as usize;
                if self.conns.get(slot).is_some_and(|c| {
                    c.generation == subscriber.generation && c.phase == Phase::Open
                }) {
                    self.close_with(slot, kick.close_code, false);
                }
            }
            return;
        }
        let node = self.relay().node_id;
        if let Recipient::Connection(connection) = kick.recipient
            && connection.gateway == node
        {
            let slot = (connection.connection & 0xffff_ffff) as usize;
            let generation = (connection.connection >> 32) as u32;
            if self
                .conns
                .get(slot)
                .is_some_and(|c| c.generation == generation && c.phase == Phase::Open)
            {
                self.close_with(slot, kick.close_code, false);
            }
        }
    }

    /// After a (re)connect, tell the router every topic this shard has local
    /// subscribers for that it owns: routers keep nothing across restarts.
    fn resubscribe(&mut self, index: usize) {
        let relay = self.relay();
        let router = relay.links[index].router;
        let topics: Vec<String> = relay
            .topics
            .topics()
            .filter(|topic| relay.map.route(topic.as_bytes()) == Some(router))
            .map(str::to_string)
            .collect();
        for topic in topics {
            let request_id = relay.request_id();
            let frame = Frame::Subscribe(TopicRequest {
                request_id,
                topic: &topic,
            });
            let _ = protocol::encode(&frame, &mut relay.links[index].output);
        }
        let present: Vec<(Box<str>, Subscriber)> = relay
            .users
            .iter()
            .filter(|(user, _)| relay.map.route_user(user.as_bytes()) == Some(router))
            .flat_map(|(user, list)| list.iter().map(move |s| (user.clone(), *s)))
            .collect();
        for (user, subscriber) in present {
            let frame = Frame::Presence(Presence {
                event: PresenceEvent::Connected,
                connection: connection_ref(relay.node_id, subscriber.slot, subscriber.generation),
                user: &user,
            });
            let _ = protocol::encode(&frame, &mut relay.links[index].output);
        }
        self.mark_link_dirty(index);
    }

    /// Enters or leaves DEGRADED: degraded while any link that was up is
    /// down or still has publishes held. Every open client is told once
    /// each way.
    fn update_degraded(&mut self) {
        let relay = self.relay();
        let degraded = relay.links.iter().any(Link::holds_publishes);
        if degraded == relay.degraded {
            return;
        }
        relay.degraded = degraded;
        if degraded {
            log::warn!(
                "degraded",
                "a router link is down: publishes for its topics are held, clients told degraded"
            );
        } else {
            log::info!(
                "degraded_over",
                "every router link is back and held publishes are sent: clients told ok"
            );
        }
        let open: Vec<usize> = (0..self.conns.len())
            .filter(|&slot| self.conns[slot].phase == Phase::Open)
            .collect();
        for slot in open {
            self.send_status(slot, degraded);
        }
    }

    fn send_status(&mut self, slot: usize, degraded: bool) {
        let mut json = std::mem::take(&mut self.relay().json);
        json.clear();
        let status = if degraded {
            Status::Degraded {
                text: DEGRADED_TEXT,
            }
        } else {
            Status::Ok
        };
        write_status(&mut json, status);
        self.send_text(slot, &json);
        self.relay().json = json;
    }

    /// A client connection is open: tell the user's router, and tell the
    /// client if the shard is degraded (it missed the announcement).
    pub(in crate::hot) fn relay_connection_opened(&mut self, slot: usize) {
        self.relay_user_joined(slot);
        if self.relay().degraded {
            self.send_status(slot, true);
        }
    }

    fn mark_link_dirty(&mut self, index: usize) {
        self.dirty_links |= 1 << index.min(63);
    }

    /// Connects links that are due, pings idle ones, declares silent ones
    /// down. Runs on the shard tick.
    pub(in crate::hot) fn relay_tick(&mut self, ops: &mut Ops) -> io::Result<()> {
        let now = self.now;
        let setup = super::timer::ticks(LINK_SETUP_MS);
        let ping = super::timer::ticks(LINK_PING_MS);
        for index in 0..self.relay().links.len() {
            let link = &self.relay().links[index];
            match link.state {
                LinkState::Backoff if now >= link.retry_tick => self.link_connect(ops, index)?,
                LinkState::Connecting | LinkState::Hello if now >= link.state_tick + setup => {
                    self.link_failed(ops, index, "timeout", "router did not answer in time");
                }
                LinkState::Up if now >= link.last_heard_tick + ping * LINK_MISSED_PINGS => {
                    self.link_failed(ops, index, "silence", "router missed 3 pings");
                }
                LinkState::Up if now >= link.last_heard_tick + ping && link.output.is_empty() => {
                    let frame = Frame::Ping(protocol::Ping {
                        nonce: u64::from(now),
                        sent_us: 0,
                    });
                    let _ = protocol::encode(&frame, &mut self.relay().links[index].output);
                    self.mark_link_dirty(index);
                }
                _ => {}
            }
            // A probe the router refused is due again.
            self.release_held(index);
        }
        Ok(())
    }

    fn link_connect(&mut self, ops: &mut Ops, index: usize) -> io::Result<()> {
        let now = self.now;
        let link = &mut self.relay().links[index];
        let domain = socket2::Domain::for_address(link.address);
        let socket = match socket2::Socket::new(domain, socket2::Type::STREAM, None) {
            Ok(socket) => socket,
            Err(error) => {
                let random = self.relay().next_random();
                self.relay().links[index].back_off(now, random);
                log::warn!(
                    "router_connect_failed",
                    router = self.relay().links[index].router.0,
                    "socket: {error}"
                );
                return Ok(());
            }
        };
        let _ = socket.set_tcp_nodelay(true);
        link.fd = std::os::fd::IntoRawFd::into_raw_fd(socket);
        link.generation = link.generation.wrapping_add(1) & 0x00ff_ffff;
        link.state = LinkState::Connecting;
        link.state_tick = now;
        link.input.clear();
        link.output.clear();
        let (fd, address, token) = (link.fd, link.address, link_token(index, link.generation));
        ops.connect(fd, address, token)
    }

    /// The TCP connect finished.
    pub(in crate::hot) fn on_link_connected(
        &mut self,
        ops: &mut Ops,
        index: usize,
        result: io::Result<()>,
    ) -> io::Result<()> {
        if let Err(error) = result {
            self.link_failed(ops, index, "connect", &format!("connect: {error}"));
            return Ok(());
        }
        let (node_id, now) = (self.relay().node_id, self.now);
        let link = &mut self.relay().links[index];
        link.state = LinkState::Hello;
        link.state_tick = now;
        let hello = Frame::Hello(Hello {
            min_version: protocol::VERSION,
            max_version: protocol::VERSION,
            role: Role::Gateway,
            node_id,
            capabilities: Capabilities::NONE,
            max_body_bytes: protocol::DEFAULT_MAX_BODY_BYTES,
            ping_interval_ms: LINK_PING_MS as u32,
            credit: DELIVER_CREDIT,
            agent: concat!("ringgate/", env!("CARGO_PKG_VERSION")),
            token: &[],
            extensions: &[],
        });
        let _ = protocol::encode(&hello, &mut link.output);
        link.recv_armed = true;
        let (fd, token) = (link.fd, link_token(index, link.generation));
        ops.recv_multishot(fd, token)?;
        self.mark_link_dirty(index);
        Ok(())
    }

    /// A link broke: drop its socket, fail what waits on it, back off.
    /// `kind` is the metric label (one of [`LINK_FAILURE_KINDS`]).
    pub(in crate::hot) fn link_failed(
        &mut self,
        ops: &mut Ops,
        index: usize,
        kind: &'static str,
        reason: &str,
    ) {
        let link = &mut self.relay().links[index];
        if matches!(link.state, LinkState::Backoff | LinkState::Closing) {
            return;
        }
        log::warn!(
            "router_down",
            router = link.router.0,
            address = %link.address,
            was_up = link.state == LinkState::Up,
            "router {} at {}: {reason}",
            link.router.0,
            link.address
        );
        link.state = LinkState::Closing;
        link.output.clear();
        link.input.clear();
        if link.recv_armed {
            let _ = ops.cancel_recv(link_token(index, link.generation));
        }
        *self.stats.router_failures.entry(kind).or_default() += 1;
        self.link_close_if_done(index);
        self.fail_pending(index);
        self.update_degraded();
    }

    /// Closes a failed link's socket once no operation uses it, and starts
    /// the backoff.
    pub(in crate::hot) fn link_close_if_done(&mut self, index: usize) {
        let now = self.now;
        let random = self.relay().next_random();
        let link = &mut self.relay().links[index];
        if link.state != LinkState::Closing || link.recv_armed || link.send_in_flight {
            return;
        }
        if link.fd >= 0 {
            ringgate_uring::sys::close_fd(std::mem::replace(&mut link.fd, -1));
        }
        link.back_off(now, random);
    }

    /// Publishes sent on a failed link will never be acknowledged: answer
    /// them `unavailable` (the client may retry with the same id; the router
    /// de-duplicates if the first attempt did get through). Held publishes
    /// stay held: they were never sent. (Re-holding the sent ones would need
    /// a copy of every frame until its ack; the client's retry does it.)
    fn fail_pending(&mut self, link: usize) {
        let relay = self.relay();
        relay.links[link].in_flight = 0;
        let mut failed = Vec::new();
        for index in 0..relay.pending.len() {
            if relay.pending[index]
                .as_ref()
                .is_some_and(|pending| pending.sent && usize::from(pending.link) == link)
            {
                let pending = relay.pending[index].take().expect("checked above");
                relay.pending_free.push(index as u32);
                failed.push(pending);
            }
        }
        self.stats.publishes_lost += failed.len() as u64;
        if !failed.is_empty() {
            log::warn!(
                "publish_unavailable",
                reason = "router_lost",
                publishes = failed.len(),
                "publishes waiting on a lost router answered unavailable"
            );
        }
        for pending in failed {
            let slot = pending.slot as usize;
            if self
                .conns
                .get(slot)
                .is_none_or(|c| c.generation != pending.generation || c.phase != Phase::Open)
            {
                continue;
            }
            let id = std::str::from_utf8(&pending.id[..usize::from(pending.id_len)]).unwrap_or("");
            let reply = ErrorReply {
                id: Some(id),
                retry_after_ms: Some(1_000),
                reason: Some("router_lost"),
                ..ErrorReply::new(ErrorCode::Unavailable)
            };
            self.reply_error(slot, &reply);
        }
    }

    /// Sends each dirty link's queued output.
    pub(in crate::hot) fn flush_links(&mut self, ops: &mut Ops) -> io::Result<()> {
        let dirty = std::mem::take(&mut self.dirty_links);
        if dirty == 0 {
            return Ok(());
        }
        let Some(relay) = self.relay.as_mut() else {
            return Ok(());
        };
        for index in 0..relay.links.len() {
            if dirty & (1 << index.min(63)) == 0 {
                continue;
            }
            let link = &mut relay.links[index];
            if link.send_in_flight
                || link.output.is_empty()
                || !matches!(link.state, LinkState::Hello | LinkState::Up)
            {
                continue;
            }
            let output = std::mem::take(&mut link.output);
            link.send_in_flight = true;
            ops.send(link.fd, output, 0, link_token(index, link.generation))?;
        }
        Ok(())
    }

    /// A link's send finished.
    pub(in crate::hot) fn on_link_sent(
        &mut self,
        ops: &mut Ops,
        index: usize,
        result: io::Result<usize>,
        mut buffer: Vec<u8>,
        offset: usize,
    ) -> io::Result<()> {
        let link = &mut self.relay().links[index];
        link.send_in_flight = false;
        match result {
            Ok(written) if offset + written < buffer.len() && link.state != LinkState::Closing => {
                link.send_in_flight = true;
                return ops.send(
                    link.fd,
                    buffer,
                    offset + written,
                    link_token(index, link.generation),
                );
            }
            Ok(_) => {
                // Keep the larger buffer for the next batch.
                if link.output.is_empty() && buffer.capacity() <= 1 << 20 {
                    buffer.clear();
                    buffer.extend_from_slice(&link.output);
                    link.output = buffer;
                }
                self.mark_link_dirty(index);
            }
            Err(error) => self.link_failed(ops, index, "send", &format!("send: {error}")),
        }
        self.link_close_if_done(index);
        Ok(())
    }

    /// A link's recv ended or failed.
    pub(in crate::hot) fn on_link_recv_end(
        &mut self,
        ops: &mut Ops,
        index: usize,
        error: Option<io::Error>,
    ) -> io::Result<()> {
        let link = &mut self.relay.as_mut().expect("relay mode").links[index];
        link.recv_armed = false;
        match error {
            Some(error)
                if error.raw_os_error() == Some(libc::ENOBUFS)
                    && link.state != LinkState::Closing =>
            {
                self.stats.buffer_ring_exhausted += 1;
                link.recv_armed = true;
                let (fd, token) = (link.fd, link_token(index, link.generation));
                return ops.recv_multishot(fd, token);
            }
            Some(error) if error.raw_os_error() == Some(libc::ECANCELED) => {}
            Some(error) => self.link_failed(ops, index, "recv", &format!("recv: {error}")),
            None => self.link_failed(ops, index, "closed", "router closed the connection"),
        }
        self.link_close_if_done(index);
        Ok(())
    }
}

/// Router links use slots above every connection slot.
pub const LINK_SLOT_BASE: u32 = 0xffff_0000;
pub fn link_token(index: usize, generation: u32) -> u64 {
    u64::from(generation) << 32 | u64::from(LINK_SLOT_BASE + index as u32)
}

/// The link index of a token, if it names a link.
pub fn link_of_token(token: u64) -> Option<(usize, u32)> {
    let slot = (token & 0xffff_ffff) as u32;
    (LINK_SLOT_BASE..LINK_SLOT_BASE + 1024)
        .contains(&slot)
        .then(|| {
            (
                (slot - LINK_SLOT_BASE) as usize,
                ((token >> 32) & 0x00ff_ffff) as u32,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_names_are_distinct_and_bounded() {
        let mut buffer = [0u8; 40];
        assert_eq!(anonymous_name(&mut buffer, 0x101, 7, 2), "anon-101-7-2");
        let longest = anonymous_name(&mut buffer, u32::MAX, u32::MAX, u32::MAX).len();
        assert!(longest <= 40);
    }

    #[test]
    fn link_tokens_do_not_collide_with_connections() {
        let token = link_token(3, 9);
        assert_eq!(link_of_token(token), Some((3, 9)));
        assert_eq!(link_of_token(u64::from(5u32) << 32 | 12), None);
    }

    #[test]
    fn pending_publishes_are_bounded_and_stale_acks_ignored() {
        let mut relay = Relay::new(
            1,
            &[RouterAddress {
                id: 1,
                address: "127.0.0.1:1".parse().unwrap(),
            }],
            10,
        )
        .unwrap();
        let first = relay.insert_pending(4, 1, "a", 0, 0, true).unwrap();
        assert!(relay.take_pending(first).is_some());
        assert!(relay.take_pending(first).is_none(), "acked twice");
        let second = relay.insert_pending(4, 1, "b", 0, 0, true).unwrap();
        assert_ne!(first, second, "a reused entry has a new generation");
        assert!(relay.take_pending(first).is_none());
        for n in 0..MAX_PENDING - 1 {
            relay
                .insert_pending(1, 1, &n.to_string(), 0, 0, true)
                .unwrap();
        }
        assert!(relay.insert_pending(1, 1, "full", 0, 0, true).is_none());
    }
}
