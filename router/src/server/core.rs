//! The router's state machine: every table, every peer's protocol state and
//! queued output. No I/O and no clock: the event loop feeds it bytes,
//! completions and the time ([`Clock`]), and takes the bytes to send.
//!
//! Handlers live next door by subject: `session.rs` (HELLO, PING, CREDIT,
//! GOAWAY), `publish.rs` (dedup, verdicts, ordered release) and
//! `routing.rs` (subscriptions, claims, presence, deliveries, kicks).

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ringgate_uring::Chunk;

use crate::msgid::{DEFAULT_MAX_OFFSET_MS, MessageIdGenerator};
use crate::protocol::{
    Code, Decoder, Encoder, Frame, GoAway, HEADER_LEN, HopBuffer, MIN_MAX_BODY_BYTES, Ping, Role,
};

use super::claims::Claims;
use super::config::RouterConfig;
use super::dedup::{DedupKeys, DedupTable};
use super::log;
use super::output::BufferPool;
use super::peer::{Peer, PeerId, Phase, flag};
use super::pending::{Decision, OwnedRefusal, Pending};
use super::presence::Presence;
use super::snapshot::RouterSnapshot;
use super::stats::RouterStats;
use super::topics::Subscriptions;

/// The time, read once per event-loop turn.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Clock {
    /// Monotonic milliseconds since the router started: timeouts, dedup.
    pub mono_ms: u64,
    /// Wall clock, for message ids.
    pub wall_ms: u64,
    /// Wall clock, for hop timestamps and PING/PONG.
    pub wall_us: u64,
}

impl Clock {
    pub fn read(started: Instant) -> Clock {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Clock {
            mono_ms: started.elapsed().as_millis() as u64,
            wall_ms: wall.as_millis() as u64,
            wall_us: wall.as_micros() as u64,
        }
    }
}

/// Partial-frame buffers above this are freed once empty.
const KEEP_PARTIAL_BYTES: usize = 64 << 10;

pub(super) struct Core {
    pub config: RouterConfig,
    pub peers: Vec<Peer>,
    free: Vec<u32>,
    pub live: usize,
    /// Slots with output to send, a receive to re-arm or a socket to close.
    pub dirty: Vec<u32>,
    pub pool: BufferPool,
    pub stats: RouterStats,
    pub clock: Clock,
    /// Open sessions by node id, per role.
    pub gateways: HashMap<u32, PeerId>,
    pub backends: HashMap<u32, PeerId>,
    pub subscriptions: Subscriptions,
    pub claims: Claims,
    pub presence: Presence,
    pub pending: Pending,
    pub dedup: DedupTable,
    pub keys: DedupKeys,
    pub ids: MessageIdGenerator,
    /// Scratch: one frame being encoded, a hop list being extended, the
    /// peers a frame goes to, the gateway nodes of a user.
    pub scratch: Vec<u8>,
    pub hops: HopBuffer,
    pub targets: Vec<PeerId>,
    pub nodes: Vec<u32>,
    /// Peers whose output passed the bound during this turn.
    overloaded: Vec<PeerId>,
    hello_decoder: Decoder,
    decoder: Decoder,
    ping_nonce: u64,
    pub shutting_down: bool,
}

impl Core {
    pub fn new(config: RouterConfig, clock: Clock) -> Core {
        Core {
            peers: Vec::new(),
            free: Vec::new(),
            live: 0,
            dirty: Vec::new(),
            pool: BufferPool::default(),
            stats: RouterStats::default(),
            clock,
            gateways: HashMap::new(),
            backends: HashMap::new(),
            subscriptions: Subscriptions::default(),
            claims: Claims::default(),
            presence: Presence::default(),
            pending: Pending::new(config.max_pending_publishes),
            dedup: DedupTable::new(config.dedup_capacity, config.dedup_window_ms),
            keys: DedupKeys::default(),
            ids: MessageIdGenerator::new(config.id, DEFAULT_MAX_OFFSET_MS),
            scratch: Vec::new(),
            hops: HopBuffer::new(),
            targets: Vec::new(),
            nodes: Vec::new(),
            overloaded: Vec::new(),
            // Before HELLO a peer may not make the router buffer more than
            // the smallest body any peer must accept.
            hello_decoder: Decoder::new(MIN_MAX_BODY_BYTES),
            decoder: Decoder::new(config.max_body_bytes),
            ping_nonce: 0,
            shutting_down: false,
            config,
        }
    }

    /// The counters, with the dedup table's folded in.
    pub fn stats(&self) -> RouterStats {
        let mut stats = self.stats.clone();
        stats.dedup_evicted_before_expiry = self.dedup.evicted_before_expiry();
        stats.dedup_expired = self.dedup.expired();
        stats
    }

    /// The counters and gauges metrics show (see `snapshot`).
    pub fn snapshot(&self) -> RouterSnapshot {
        RouterSnapshot {
            id: self.config.id,
            stats: self.stats(),
            peers: self.live as u64,
            gateways: self.gateways.len() as u64,
            backends: self.backends.len() as u64,
            topics: self.subscriptions.topic_count() as u64,
            pending_publishes: self.pending.len() as u64,
            uptime_ms: self.clock.mono_ms,
        }
    }

    // ---- peer slots -------------------------------------------------------

    /// A new connection; the caller arms its receive.
    pub fn open(&mut self, fd: RawFd) -> PeerId {
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.peers.push(Peer::free());
                self.peers.len() - 1
            }
        };
        let now = self.clock.mono_ms;
        let peer = &mut self.peers[slot];
        peer.phase = Phase::AwaitingHello;
        peer.fd = fd;
        peer.flags = flag::RECV_ARMED;
        peer.opened_ms = now;
        peer.last_receive_ms = now;
        peer.last_ping_ms = now;
        self.live += 1;
        PeerId {
            slot: slot as u32,
            generation: peer.generation,
        }
    }

    /// The slot a completion token names, if that connection still exists.
    pub fn lookup(&self, token: u64) -> Option<usize> {
        let id = PeerId::from_token(token);
        let peer = self.peers.get(id.slot as usize)?;
        (peer.generation == id.generation && peer.phase != Phase::Free).then_some(id.slot as usize)
    }

    pub fn id_of(&self, slot: usize) -> PeerId {
        PeerId {
            slot: slot as u32,
            generation: self.peers[slot].generation,
        }
    }

    /// A peer with an open session, by id.
    pub fn open_peer(&mut self, id: PeerId) -> Option<&mut Peer> {
        let peer = self.peers.get_mut(id.slot as usize)?;
        (peer.generation == id.generation && peer.phase == Phase::Open).then_some(peer)
    }

    /// The socket closed: the slot is free for a new connection.
    pub fn freed(&mut self, slot: usize) {
        let peer = &mut self.peers[slot];
        peer.phase = Phase::Free;
        peer.fd = -1;
        peer.flags = 0;
        peer.in_flight_bytes = 0;
        peer.partial = Vec::new();
        peer.output.clear(&mut self.pool);
        peer.session = None;
        // Tokens carry 56 bits: 32 of slot, 24 of generation.
        peer.generation = (peer.generation + 1) & 0x00ff_ffff;
        self.free.push(slot as u32);
        self.live -= 1;
    }

    pub fn mark_dirty(&mut self, slot: usize) {
        let peer = &mut self.peers[slot];
        if !peer.has(flag::DIRTY) {
            peer.set(flag::DIRTY);
            self.dirty.push(slot as u32);
        }
    }

    pub fn request_rearm(&mut self, slot: usize) {
        self.peers[slot].set(flag::RECV_REARM);
        self.mark_dirty(slot);
    }

    // ---- input ------------------------------------------------------------

    /// Bytes received from a peer: every complete frame is handled; the
    /// start of an incomplete one is kept for the next bytes.
    pub fn on_data(&mut self, slot: usize, data: &[u8]) {
        self.stats.bytes_in += data.len() as u64;
        let id = self.id_of(slot);
        if !self.is_reading(id) {
            return;
        }
        self.peers[slot].last_receive_ms = self.clock.mono_ms;
        let mut partial = std::mem::take(&mut self.peers[slot].partial);
        if partial.is_empty() {
            let used = self.process(id, data);
            if used < data.len() {
                partial.extend_from_slice(&data[used..]);
            }
        } else {
            partial.extend_from_slice(data);
            let used = self.process(id, &partial);
            partial.drain(..used);
        }
        if !self.is_reading(id) {
            return;
        }
        if partial.is_empty() && partial.capacity() > KEEP_PARTIAL_BYTES {
            partial = Vec::new();
        }
        self.peers[slot].partial = partial;
    }

    fn is_reading(&self, id: PeerId) -> bool {
        let peer = &self.peers[id.slot as usize];
        peer.generation == id.generation && matches!(peer.phase, Phase::AwaitingHello | Phase::Open)
    }

    /// Handles the complete frames at the front of `input`; returns the
    /// bytes they took.
    fn process(&mut self, id: PeerId, input: &[u8]) -> usize {
        let mut offset = 0;
        while self.is_reading(id) {
            let decoder = match self.peers[id.slot as usize].phase {
                Phase::Open => self.decoder,
                _ => self.hello_decoder,
            };
            match decoder.decode(&input[offset..]) {
                Ok(Some((frame, length))) => {
                    offset += length;
                    self.on_frame(id, frame, length);
                }
                Ok(None) => break,
                Err(error) => {
                    if self.peers[id.slot as usize].phase == Phase::Open {
                        self.stats.protocol_errors += 1;
                    } else {
                        self.stats.hellos_refused += 1;
                    }
                    log::warn!("peer_protocol_error", "{}: {error}", self.describe(id));
                    self.goaway(id, error.code(), error.reason());
                    break;
                }
            }
        }
        offset
    }

    /// Dispatches one frame by the sender's role.
    fn on_frame(&mut self, id: PeerId, frame: Frame<'_>, length: usize) {
        let Some(role) = self.peers[id.slot as usize].role() else {
            return self.on_first_frame(id, frame);
        };
        let frame_type = frame.frame_type();
        if !frame_type.may_send(role, Role::Router) || matches!(frame, Frame::Hello(_)) {
            return self.violation(id, Code::UNEXPECTED_MESSAGE, frame_type.name());
        }
        if frame_type.is_flow_controlled() && !self.spend_receive_credit(id, length) {
            return;
        }
        match frame {
            Frame::GoAway(go_away) => self.on_goaway(id, go_away),
            Frame::Ping(ping) => self.on_ping(id, ping),
            Frame::Pong(_) => {}
            Frame::Credit(credit) => self.on_credit(id, credit),
            Frame::Publish(publish) => self.on_publish(id, publish, length),
            Frame::PublishAck(ack) => self.on_verdict(id, ack),
            Frame::Deliver(deliver) => self.on_backend_deliver(id, deliver, length),
            Frame::Subscribe(request) => self.on_subscribe(id, request),
            Frame::Unsubscribe(request) => self.on_unsubscribe(id, request),
            Frame::Claim(request) => self.on_claim(id, request),
            Frame::Release(request) => self.on_release(id, request),
            Frame::Presence(presence) => self.on_presence(id, presence),
            Frame::Kick(kick) => self.on_kick(id, kick),
            Frame::Hello(_) | Frame::HelloAck(_) | Frame::Reply(_) => {
                self.violation(id, Code::UNEXPECTED_MESSAGE, frame_type.name())
            }
        }
    }

    /// A peer broke the connection rules: GOAWAY with `code`, then close.
    pub fn violation(&mut self, id: PeerId, code: Code, what: &str) {
        self.stats.protocol_errors += 1;
        log::warn!(
            "peer_protocol_error",
            "{}: {} ({what})",
            self.describe(id),
            code.name()
        );
        self.goaway(id, code, what);
    }

    // ---- output -----------------------------------------------------------

    /// Queues a control frame (not flow-controlled) for an open peer.
    /// `false` when the peer is gone or the frame does not fit its limit.
    pub fn send_control(&mut self, id: PeerId, frame: &Frame<'_>) -> bool {
        let Some(peer) = self.peers.get_mut(id.slot as usize) else {
            return false;
        };
        if peer.generation != id.generation || peer.phase != Phase::Open {
            return false;
        }
        let encoder = peer.session.as_ref().expect("open peer").encoder;
        if let Err(error) = peer.output.control(&encoder, frame, &mut self.pool) {
            log::warn!("encode_failed", "{}: {error}", frame.frame_type());
            return false;
        }
        self.after_queue(id);
        true
    }

    /// Queues a flow-controlled frame (PUBLISH to a backend, DELIVER to a
    /// gateway) for an open peer: sent when its credit allows. `false` when
    /// the peer is gone or the frame is over its `max_body_bytes`.
    pub fn send_flow(&mut self, id: PeerId, frame: Chunk) -> bool {
        let Some(peer) = self.peers.get_mut(id.slot as usize) else {
            return false;
        };
        if peer.generation != id.generation || peer.phase != Phase::Open {
            return false;
        }
        let session = peer.session.as_ref().expect("open peer");
        if frame.bytes().len() - HEADER_LEN > session.max_body_bytes as usize {
            self.stats.too_large_for_gateway += 1;
            return false;
        }
        peer.output.flow(frame, &mut self.pool);
        self.after_queue(id);
        true
    }

    /// Marks the peer for sending and notes it when it passed its bound.
    fn after_queue(&mut self, id: PeerId) {
        let slot = id.slot as usize;
        if self.peers[slot].output_bytes() > self.config.max_output_bytes
            && !self.overloaded.contains(&id)
        {
            self.overloaded.push(id);
        }
        self.mark_dirty(slot);
    }

    /// Disconnects the peers that passed their output bound this turn.
    /// Done once per turn, after the handlers, so no table a handler walks
    /// changes under it.
    pub fn drop_overloaded(&mut self) {
        for id in std::mem::take(&mut self.overloaded) {
            let Some(peer) = self.open_peer(id) else {
                continue;
            };
            let (queued, blocked) = (peer.output_bytes(), peer.output.blocked_frames());
            self.stats.slow_peers_disconnected += 1;
            log::warn!(
                "slow_peer",
                "{}: {queued} bytes queued ({blocked} frames waiting for credit), over the {}-byte bound",
                self.describe(id),
                self.config.max_output_bytes
            );
            let peer = &mut self.peers[id.slot as usize];
            peer.output.clear(&mut self.pool);
            self.goaway(
                id,
                Code::OVERLOADED,
                "output over the router's bound: grant credit and read faster",
            );
        }
    }

    /// Queues the CREDIT the router owes a peer, when it is due.
    pub fn settle_credit(&mut self, slot: usize) {
        let peer = &mut self.peers[slot];
        if peer.phase != Phase::Open {
            return;
        }
        let session = peer.session.as_mut().expect("open peer");
        let Some(credit) = session.credit_due(self.config.peer_credit) else {
            return;
        };
        // Cannot overflow: the router never grants more than it was owed.
        let _ = session.receive.grant(credit);
        let encoder = session.encoder;
        let _ = peer
            .output
            .control(&encoder, &Frame::Credit(credit), &mut self.pool);
    }

    // ---- leaving ----------------------------------------------------------

    /// Sends GOAWAY after what is ready to send (frames waiting for credit
    /// are dropped), and closes once it is written or the grace runs out.
    /// The peer's subscriptions, presence and claims go at once.
    pub fn goaway(&mut self, id: PeerId, code: Code, text: &str) {
        let slot = id.slot as usize;
        if !self.is_reading(id) {
            return;
        }
        let encoder = self.peers[slot]
            .session
            .as_ref()
            .map_or(Encoder::new(MIN_MAX_BODY_BYTES), |session| session.encoder);
        self.detach(id);
        let peer = &mut self.peers[slot];
        peer.output.drop_blocked();
        peer.partial = Vec::new();
        let _ = peer.output.control(
            &encoder,
            &Frame::GoAway(GoAway { code, text }),
            &mut self.pool,
        );
        peer.phase = Phase::Closing;
        peer.closing_since_ms = self.clock.mono_ms;
        self.mark_dirty(slot);
    }

    /// The connection ends now (EOF, socket error, GOAWAY received, or our
    /// GOAWAY flushed): forget the peer and tear the socket down.
    pub fn finish(&mut self, slot: usize) {
        let id = self.id_of(slot);
        if matches!(self.peers[slot].phase, Phase::Free | Phase::Finishing) {
            return;
        }
        self.detach(id);
        let peer = &mut self.peers[slot];
        peer.output.clear(&mut self.pool);
        peer.partial = Vec::new();
        peer.phase = Phase::Finishing;
        self.mark_dirty(slot);
    }

    /// Removes what a peer registered: for a gateway its subscriptions and
    /// presence, for a backend its claims (publishes waiting for its verdict
    /// are answered `unavailable`). Runs once per session.
    fn detach(&mut self, id: PeerId) {
        let Some(session) = self.peers[id.slot as usize].session.take() else {
            return;
        };
        log::info!(
            "peer_detached",
            "{:?} node {} detached",
            session.role,
            session.node_id
        );
        match session.role {
            Role::Gateway => {
                self.subscriptions.remove_peer(id);
                if self.gateways.get(&session.node_id) == Some(&id) {
                    self.gateways.remove(&session.node_id);
                    self.presence.remove_gateway(session.node_id);
                }
            }
            Role::Backend => {
                if self.backends.get(&session.node_id) == Some(&id) {
                    self.backends.remove(&session.node_id);
                }
                self.claims.remove_backend(id);
                let decision = Decision::Unavailable(OwnedRefusal::new(
                    Code::UNAVAILABLE,
                    0,
                    "the topic's backend disconnected before deciding",
                ));
                let topics = self.pending.fail_backend(id, &decision);
                for topic in topics {
                    self.release(&topic);
                }
            }
            Role::Router => {}
        }
    }

    /// Stop: answer every publish still waiting (`unavailable`), then
    /// GOAWAY `ok` to everyone (reconnect elsewhere or later).
    pub fn shutdown(&mut self) {
        self.shutting_down = true;
        let decision =
            Decision::Unavailable(OwnedRefusal::new(Code::UNAVAILABLE, 0, "router stopping"));
        for topic in self.pending.fail_all(&decision) {
            self.release(&topic);
        }
        for slot in 0..self.peers.len() {
            let id = self.id_of(slot);
            if self.is_reading(id) {
                self.goaway(id, Code::OK, "router stopping");
            }
        }
    }

    // ---- time -------------------------------------------------------------

    /// Timeouts and pings, run on every tick.
    pub fn on_tick(&mut self) {
        let now = self.clock.mono_ms;
        for slot in 0..self.peers.len() {
            let id = self.id_of(slot);
            let peer = &self.peers[slot];
            match peer.phase {
                Phase::AwaitingHello if now - peer.opened_ms >= self.config.hello_timeout_ms => {
                    self.stats.timeouts += 1;
                    self.stats.hellos_refused += 1;
                    self.goaway(id, Code::TIMEOUT, "no HELLO in time");
                }
                Phase::Open if now - peer.last_receive_ms >= self.config.idle_timeout_ms => {
                    self.stats.timeouts += 1;
                    log::warn!("peer_silent", "{}: silent, closing", self.describe(id));
                    self.goaway(
                        id,
                        Code::TIMEOUT,
                        "nothing received within the idle timeout",
                    );
                }
                Phase::Open
                    if now - peer.last_ping_ms >= u64::from(self.config.ping_interval_ms) =>
                {
                    self.ping_nonce += 1;
                    let ping = Frame::Ping(Ping {
                        nonce: self.ping_nonce,
                        sent_us: self.clock.wall_us,
                    });
                    self.peers[slot].last_ping_ms = now;
                    self.send_control(id, &ping);
                }
                Phase::Closing if now - peer.closing_since_ms >= self.config.shutdown_grace_ms => {
                    self.finish(slot);
                }
                _ => {}
            }
        }
        let decision = Decision::Unavailable(OwnedRefusal::new(
            Code::TIMEOUT,
            0,
            "the topic's backend did not decide in time",
        ));
        let (topics, expired) = self.pending.expire(now, &decision);
        self.stats.verdict_timeouts += expired;
        for topic in topics {
            self.release(&topic);
        }
        self.dedup.expire(now);
    }

    /// A peer for logs: role and node id once known, else the slot.
    pub fn describe(&self, id: PeerId) -> String {
        match &self.peers[id.slot as usize].session {
            Some(session) => format!("{:?} node {}", session.role, session.node_id),
            None => format!("connection {} (before HELLO)", id.slot),
        }
    }

    /// A DELIVER (or other frame) encoded once in `scratch`, shared.
    pub fn shared_scratch(&self) -> Rc<[u8]> {
        Rc::from(&self.scratch[..])
    }
}
