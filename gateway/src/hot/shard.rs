//! One shard: a thread pinned to a core, its own io_uring, its own
//! SO_REUSEPORT listener and its own connections. Nothing here is shared with
//! other shards except the read-only settings and the drain flag.
//!
//! The loop: submit and wait; drain every completion into a queue; handle
//! them (no handler runs from inside another); advance the timer wheel;
//! publish recycled receive buffers; flush the connections that have output
//! or need a re-armed recv. One send per connection per turn, however many
//! messages it echoes.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::HashMap;
use std::net::IpAddr;

use crate::defense::tls::TlsSession;
use crate::defense::user_table::{DeviceLimitPolicy, UserHandle, UserKey, UserRefusalReason};

use ringgate_uring::{Completion, Ops, Token, Uring, sys::WakeFd};
use ringgate_wscodec::handshake::{
    UpgradeRequest, parse_upgrade, write_accept_response, write_error_response, write_http_response,
};
use ringgate_wscodec::{Decoder, HandshakeError, Message, OpCode, Role, write_close, write_frame};

use super::conn::{Conn, Due, Phase, flag};
use super::output::Outgoing;
use super::pool::BufferPool;
use super::relay::{self, Relay};
use super::stats::{FrameKind, ShardStats};
use super::timer::{self, Entry, TimerWheel};
use crate::control::{Control, Settings};
use crate::log;
use crate::metrics::{Board, LoopGauges, RouterView, ShardView};

/// Why an upgrade is refused with an HTTP status (policy, not syntax).
#[derive(Clone, Copy, Debug)]
pub struct Refusal {
    pub status: u16,
    /// Short text for the body and the metric label.
    pub reason: &'static str,
    /// Retry-After seconds; 0: no header.
    pub retry_after_s: u32,
}

/// Token of the listener's multishot accept.
const LISTENER: Token = u32::MAX as Token;
/// Token of the tick timeout and the wake-up read.
const SHARD: Token = u32::MAX as Token - 1;

fn token(slot: u32, generation: u32) -> Token {
    Token::from(generation) << 32 | Token::from(slot)
}

/// Everything a shard owns except the ring, so handlers can borrow a received
/// buffer from the ring while they change connection state.
pub struct Core {
    pub(in crate::hot) settings: Arc<Settings>,
    pub(in crate::hot) conns: Vec<Conn>,
    /// Partial upgrade requests of connections whose request arrived split.
    pub(in crate::hot) requests: HashMap<u32, Vec<u8>>,
    /// Users of authenticated connections (anonymous ones have none).
    pub(in crate::hot) users: HashMap<u32, Box<str>>,
    /// Their device slots in the per-user table (kept here, not in `Conn`,
    /// so anonymous connections pay nothing for them).
    pub(in crate::hot) user_handles: HashMap<u32, UserHandle>,
    /// Peer addresses of connections still handshaking (failed auths count
    /// against them) and when they were accepted (µs, [`Core::clock_us`]).
    pub(in crate::hot) handshake_peers: HashMap<u32, (IpAddr, u64)>,
    /// Connections refused at accept by a per-IP limit, answered once their
    /// request arrives.
    pub(in crate::hot) refusals: HashMap<u32, Refusal>,
    /// Scratch for answers sent without a connection slot.
    pub(in crate::hot) scratch: Vec<u8>,
    /// TLS sessions of wss connections (plain connections have none).
    pub(in crate::hot) tls_sessions: HashMap<u32, Box<TlsSession>>,
    /// Scratch for decrypted bytes.
    pub(in crate::hot) tls_plaintext: Vec<u8>,
    pub(in crate::hot) free: Vec<u32>,
    pub(in crate::hot) live: usize,
    pub(in crate::hot) max_live: usize,
    pub(in crate::hot) wheel: TimerWheel,
    pub(in crate::hot) fired: Vec<Entry>,
    pub(in crate::hot) dirty: Vec<u32>,
    pub(in crate::hot) pool: BufferPool,
    pub(in crate::hot) stats: ShardStats,
    pub(in crate::hot) now: u32,
    pub(in crate::hot) draining: bool,
    pub(in crate::hot) relay: Option<Relay>,
    /// Router links with queued output (bit per link).
    pub(in crate::hot) dirty_links: u64,
    /// Microseconds since `settings.epoch` when this loop turn woke: one
    /// clock read per turn times everything handled in it.
    pub(in crate::hot) clock_us: u64,
    /// Unix milliseconds, read at most once per turn when a delivery needs
    /// it (0: not read yet this turn).
    pub(in crate::hot) wall_ms: u64,
    /// Publishes queued to routers and deliveries queued to clients this
    /// turn: they all leave at the turn's submit, so they share one latency.
    pub(in crate::hot) routed_to_router: u64,
    pub(in crate::hot) routed_to_client: u64,
}

pub struct Shard {
    index: usize,
    uring: Uring,
    core: Core,
    completions: Vec<Completion>,
    listener: Option<socket2::Socket>,
    wake: Arc<WakeFd>,
    control: Arc<Control>,
    started: Instant,
    /// Where the shard publishes its metrics (None: admin listener off).
    board: Option<Arc<Board>>,
}

impl Shard {
    pub fn new(
        index: usize,
        settings: Arc<Settings>,
        listener: socket2::Socket,
        wake: Arc<WakeFd>,
        control: Arc<Control>,
    ) -> io::Result<Shard> {
        let uring = Uring::new(&settings.ring)?;
        let settings_epoch = settings.epoch;
        let relay = match &settings.relay {
            Some(routing) => {
                let mut relay = Relay::new(
                    routing.node_id * 256 + index as u32,
                    &routing.routers,
                    routing.held_messages_max,
                )?;
                relay.rules = routing.rules.clone();
                Some(relay)
            }
            None => None,
        };
        let max_live = settings.max_connections_per_shard;
        let board = settings.board.clone();
        Ok(Shard {
            index,
            uring,
            core: Core {
                conns: Vec::new(),
                requests: HashMap::new(),
                users: HashMap::new(),
                user_handles: HashMap::new(),
                handshake_peers: HashMap::new(),
                refusals: HashMap::new(),
                scratch: Vec::new(),
                tls_sessions: HashMap::new(),
                tls_plaintext: Vec::new(),
                free: Vec::new(),
                live: 0,
                max_live,
                wheel: TimerWheel::new(1024, 0),
                fired: Vec::new(),
                dirty: Vec::new(),
                pool: BufferPool::new(settings.pool_buffers),
                stats: ShardStats::default(),
                now: 0,
                draining: false,
                relay,
                dirty_links: 0,
                clock_us: 0,
                wall_ms: 0,
                routed_to_router: 0,
                routed_to_client: 0,
                settings,
            },
            completions: Vec::with_capacity(1024),
            listener: Some(listener),
            wake,
            control,
            started: settings_epoch,
            board,
        })
    }

    /// Runs until a drain completes (or times out). Returns the shard's
    /// counters.
    pub fn run(mut self) -> io::Result<ShardStats> {
        let listener_fd = self
            .listener
            .as_ref()
            .map(AsRawFd::as_raw_fd)
            .expect("listener");
        self.uring.ops.accept_multishot(listener_fd, LISTENER)?;
        self.uring
            .ops
            .tick(Duration::from_millis(timer::TICK_MS), SHARD)?;
        self.uring.ops.wake_on(self.wake.raw(), SHARD)?;
        let mut drain_deadline = u32::MAX;
        let mut gauges = LoopGauges::default();
        loop {
            let submitted = self.uring.ops.submission_pending();
            self.uring.ops.submit_and_wait(1)?;
            let reaped = self
                .uring
                .ops
                .drain(&mut self.uring.buffers, &mut self.completions);
            let woke = Instant::now();
            let elapsed_us = woke.duration_since(self.started).as_micros() as u64;
            self.core.clock_us = elapsed_us;
            self.core.wall_ms = 0;
            self.core.now = (elapsed_us / 1_000 / timer::TICK_MS) as u32;
            let mut completions = std::mem::take(&mut self.completions);
            for completion in completions.drain(..) {
                self.dispatch(completion)?;
            }
            self.completions = completions;
            if self.control.is_draining() && !self.core.draining {
                drain_deadline = self.core.now + timer::ticks(self.core.settings.drain_timeout_ms);
                self.core.begin_drain(&mut self.uring.ops)?;
            }
            self.uring.buffers.publish();
            self.core.flush(&mut self.uring.ops)?;
            if let Some(board) = &self.board {
                let done_us = self.started.elapsed().as_micros() as u64;
                self.core.record_turn(done_us);
                gauges.turn(elapsed_us, done_us, submitted, reaped);
                if gauges.due(done_us) {
                    board.publish(self.index, || self.core.view(&gauges));
                }
            }
            if self.core.draining && (self.core.live == 0 || self.core.now >= drain_deadline) {
                break;
            }
        }
        if let Some(board) = &self.board {
            self.core.stats.unclosed_at_exit = self.core.live as u64;
            board.publish_final(self.index, self.core.view(&gauges));
        }
        self.core.stats.unclosed_at_exit = self.core.live as u64;
        for conn in &self.core.conns {
            if conn.phase != Phase::Free && conn.fd >= 0 {
                ringgate_uring::sys::close_fd(conn.fd);
            }
        }
        log::info!(
            "shard_stopped",
            "shard {} stopped with {} connections open",
            self.index,
            self.core.live
        );
        Ok(self.core.stats)
    }

    fn dispatch(&mut self, completion: Completion) -> io::Result<()> {
        let Uring { ops, buffers } = &mut self.uring;
        let core = &mut self.core;
        match completion {
            Completion::Accept { result, more, .. } => {
                match result {
                    Ok(fd) => core.on_accept(ops, fd)?,
                    Err(error) => core.on_accept_error(&error),
                }
                if !more {
                    if core.draining {
                        self.listener = None;
                    } else if let Some(listener) = &self.listener {
                        ops.accept_multishot(listener.as_raw_fd(), LISTENER)?;
                    }
                }
            }
            Completion::Recv {
                token,
                result,
                more,
            } if relay::link_of_token(token).is_some() => {
                let Some(index) = core.link_of(token) else {
                    if let Ok(Some(buffer)) = result {
                        buffers.recycle(buffer);
                    }
                    return Ok(());
                };
                match result {
                    Ok(Some(buffer)) => {
                        core.on_link_data(ops, index, buffers.bytes_mut(&buffer));
                        buffers.recycle(buffer);
                        if !more {
                            let ended = io::Error::from_raw_os_error(libc::ENOBUFS);
                            core.on_link_recv_end(ops, index, Some(ended))?;
                        }
                    }
                    Ok(None) => core.on_link_recv_end(ops, index, None)?,
                    Err(error) => core.on_link_recv_end(ops, index, Some(error))?,
                }
            }
            Completion::Send {
                token,
                result,
                buffer,
                offset,
            } if relay::link_of_token(token).is_some() => match core.link_of(token) {
                Some(index) => core.on_link_sent(ops, index, result, buffer, offset)?,
                None => core.pool.put(buffer),
            },
            Completion::Connect { token, result } => {
                if let Some(index) = core.link_of(token) {
                    core.on_link_connected(ops, index, result)?;
                }
            }
            Completion::Recv {
                token,
                result,
                more,
            } => {
                let Some(slot) = core.lookup(token) else {
                    if let Ok(Some(buffer)) = result {
                        buffers.recycle(buffer);
                    }
                    return Ok(());
                };
                if !more {
                    core.conns[slot].clear(flag::RECV_ARMED);
                }
                match result {
                    Ok(Some(buffer)) => {
                        core.on_data(ops, slot, buffers.bytes_mut(&buffer))?;
                        buffers.recycle(buffer);
                        if !more {
                            core.request_rearm(slot);
                        }
                    }
                    Ok(None) => core.on_peer_gone(ops, slot, false)?,
                    Err(error) => match error.raw_os_error() {
                        Some(libc::ENOBUFS) => {
                            core.stats.buffer_ring_exhausted += 1;
                            core.request_rearm(slot);
                        }
                        Some(libc::ECANCELED) => {}
                        _ => core.on_peer_gone(ops, slot, true)?,
                    },
                }
                core.close_if_done(ops, slot)?;
            }
            Completion::Send {
                token,
                result,
                buffer,
                offset,
            } => core.on_sent(ops, token, result, Outgoing::Bytes(buffer), offset)?,
            Completion::SendChunks {
                token,
                result,
                chunks,
                skip,
            } => core.on_sent(ops, token, result, Outgoing::Chunks(chunks), skip)?,
            Completion::Close { token, .. } => core.on_closed(token),
            Completion::Cancel { .. } => {}
            Completion::Tick { .. } => {
                core.on_tick(ops)?;
                ops.tick(Duration::from_millis(timer::TICK_MS), SHARD)?;
            }
            Completion::Wake { .. } => ops.wake_on(self.wake.raw(), SHARD)?,
        }
        Ok(())
    }
}

impl Core {
    fn lookup(&self, token: Token) -> Option<usize> {
        let slot = (token & 0xffff_ffff) as usize;
        let generation = (token >> 32) as u32;
        let conn = self.conns.get(slot)?;
        (conn.generation == generation && conn.phase != Phase::Free).then_some(slot)
    }

    /// Unix milliseconds, read once per loop turn at most.
    pub(in crate::hot) fn wall_clock_ms(&mut self) -> u64 {
        if self.wall_ms == 0 {
            self.wall_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |since| since.as_millis() as u64);
        }
        self.wall_ms
    }

    /// End of a loop turn (metrics on): what was routed this turn left at
    /// its submit, `done_us`, having arrived when the turn woke.
    fn record_turn(&mut self, done_us: u64) {
        let took = done_us.saturating_sub(self.clock_us);
        let histograms = &mut self.stats.histograms;
        if self.routed_to_router != 0 {
            histograms
                .to_router_us
                .observe_many(took, std::mem::take(&mut self.routed_to_router));
        }
        if self.routed_to_client != 0 {
            histograms
                .to_client_us
                .observe_many(took, std::mem::take(&mut self.routed_to_client));
        }
    }

    /// A copy of the counters and gauges for the admin listener.
    fn view(&self, gauges: &LoopGauges) -> ShardView {
        let routers = self.relay.as_ref().map_or_else(Vec::new, |relay| {
            relay
                .links
                .iter()
                .map(|link| RouterView {
                    id: link.router.0,
                    address: link.address,
                    state: link.state.name(),
                    up: link.is_up(),
                    in_flight: link.in_flight,
                    held: link.held.len() as u32,
                    queued_bytes: link.output.len(),
                })
                .collect()
        });
        ShardView {
            stats: self.stats.clone(),
            connections: self.live as u64,
            busy_us_total: gauges.busy_us_total,
            busy_ratio: gauges.busy_ratio,
            sq_depth: gauges.sq_depth,
            cq_depth: gauges.cq_depth,
            routers,
            shardmap_epoch: self.relay.as_ref().map_or(0, Relay::shardmap_epoch),
            degraded: self.relay.as_ref().is_some_and(|relay| relay.degraded),
            draining: self.draining,
        }
    }

    /// The live link a token names (stale generations are ignored).
    fn link_of(&self, token: Token) -> Option<usize> {
        let (index, generation) = relay::link_of_token(token)?;
        let link = self.relay.as_ref()?.links.get(index)?;
        (link.generation == generation).then_some(index)
    }

    fn token_of(&self, slot: usize) -> Token {
        token(slot as u32, self.conns[slot].generation)
    }

    fn on_accept(&mut self, ops: &mut Ops, fd: RawFd) -> io::Result<()> {
        self.stats.accepted += 1;
        if self.draining {
            ringgate_uring::sys::close_fd(fd);
            return Ok(());
        }
        if self.max_live != 0 && self.live >= self.max_live {
            log::warn!(
                "at_capacity",
                max = self.max_live,
                "connection refused: the shard is at its connection cap"
            );
        }
        if self.max_live != 0 && self.live >= self.max_live && self.settings.tls.is_some() {
            // A plaintext 503 would be garbage inside TLS: just close.
            self.stats.refused_at_capacity += 1;
            ringgate_uring::sys::close_fd(fd);
            return Ok(());
        }
        if self.max_live != 0 && self.live >= self.max_live {
            self.stats.refused_at_capacity += 1;
            self.refuse_at_accept(
                fd,
                Refusal {
                    status: 503,
                    reason: "at_capacity",
                    retry_after_s: 1,
                },
            );
            return Ok(());
        }
        let peer = match ringgate_uring::sys::peer_address(fd) {
            Ok(peer) => peer.ip(),
            Err(_) => {
                // Reset before we looked: nothing to answer.
                self.stats.socket_errors += 1;
                ringgate_uring::sys::close_fd(fd);
                return Ok(());
            }
        };
        let now_ms = self.settings.epoch.elapsed().as_millis() as u64;
        let (handle, refusal) = match self.settings.ip_table.admit(peer, now_ms) {
            Ok(handle) => (Some(handle), None),
            Err(refusal) => {
                *self
                    .stats
                    .ip_refusals
                    .entry(refusal.reason.as_str())
                    .or_default() += 1;
                log::warn!(
                    "ip_refused",
                    peer = %peer,
                    status = refusal.status(),
                    reason = refusal.reason.as_str(),
                    "connection refused by a per-IP limit"
                );
                let answer = Refusal {
                    status: refusal.status(),
                    reason: refusal.reason.as_str(),
                    retry_after_s: refusal.retry_after_s,
                };
                (None, Some(answer))
            }
        };
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.conns.push(Conn::free());
                self.conns.len() - 1
            }
        };
        self.conns[slot].open(fd, self.now);
        self.conns[slot].ip = handle;
        if let Some(acceptor) = &self.settings.tls {
            self.tls_sessions
                .insert(slot as u32, Box::new(TlsSession::new(acceptor)));
        }
        self.handshake_peers
            .insert(slot as u32, (peer, self.clock_us));
        if let Some(refusal) = refusal {
            self.refusals.insert(slot as u32, refusal);
        }
        self.live += 1;
        ops.recv_multishot(fd, self.token_of(slot))?;
        self.conns[slot].set(flag::RECV_ARMED);
        self.arm(slot);
        Ok(())
    }

    /// Answers and closes a connection without giving it a slot: one
    /// non-blocking send of a short HTTP response, then close.
    fn refuse_at_accept(&mut self, fd: RawFd, refusal: Refusal) {
        self.stats.count_refusal(refusal.status, refusal.reason);
        let retry_after = refusal.retry_after_s.to_string();
        self.scratch.clear();
        write_http_response(
            &mut self.scratch,
            refusal.status,
            &[("Retry-After", &retry_after)],
            refusal.reason,
        );
        let _ = ringgate_uring::sys::send_now(fd, &self.scratch);
        ringgate_uring::sys::close_fd(fd);
    }

    fn on_accept_error(&mut self, error: &io::Error) {
        self.stats.accept_errors += 1;
        log::warn!("accept_failed", "accept failed: {error}");
    }

    fn on_data(&mut self, ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        self.stats.bytes_in += data.len() as u64;
        let conn = &mut self.conns[slot];
        conn.last_receive_tick = self.now;
        conn.clear(flag::PING_SENT);
        if self.tls_sessions.contains_key(&(slot as u32)) {
            return self.on_tls_data(ops, slot, data);
        }
        self.on_plaintext(ops, slot, data)
    }

    /// Bytes of the HTTP request or of WebSocket frames, after TLS if any.
    fn on_plaintext(&mut self, ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        let conn = &self.conns[slot];
        match conn.phase {
            Phase::Handshaking => self.on_request_bytes(ops, slot, data),
            Phase::Open => self.on_frames(ops, slot, data),
            // A clean close we started: read on until the peer's close.
            Phase::Closing if !conn.has(flag::FINISH_AFTER_FLUSH | flag::CLOSE_RECEIVED) => {
                self.on_frames(ops, slot, data)
            }
            _ => Ok(()),
        }
    }

    /// Ciphertext from a wss connection: decrypt, then handle the plaintext.
    fn on_tls_data(&mut self, ops: &mut Ops, slot: usize, data: &[u8]) -> io::Result<()> {
        let Some(mut session) = self.tls_sessions.remove(&(slot as u32)) else {
            return Ok(());
        };
        let mut plaintext = std::mem::take(&mut self.tls_plaintext);
        plaintext.clear();
        let outcome = session.receive(data, &mut plaintext);
        let wants_write = session.wants_write();
        self.tls_sessions.insert(slot as u32, session);
        let result = match outcome {
            Ok(outcome) => {
                if outcome.handshake_completed {
                    self.stats.tls_handshakes += 1;
                }
                let handled = if plaintext.is_empty() {
                    Ok(())
                } else {
                    self.on_plaintext(ops, slot, &mut plaintext)
                };
                if outcome.peer_closed && self.conns[slot].phase != Phase::Finishing {
                    let conn = &mut self.conns[slot];
                    conn.phase = Phase::Closing;
                    conn.set(flag::FINISH_AFTER_FLUSH);
                }
                handled
            }
            Err(error) => {
                *self.stats.tls_errors.entry(error.reason()).or_default() += 1;
                log::warn!("tls_error", reason = error.reason(), "TLS failed: closing");
                let conn = &mut self.conns[slot];
                if conn.phase != Phase::Finishing {
                    conn.phase = Phase::Closing;
                    conn.phase_tick = self.now;
                    conn.set(flag::FINISH_AFTER_FLUSH);
                }
                Ok(())
            }
        };
        // Flush when there are records to send, output to encrypt, or a
        // close to finish (close_notify or a TLS error ends the connection).
        if wants_write
            || !self.conns[slot].output.is_empty()
            || self.conns[slot].has(flag::FINISH_AFTER_FLUSH)
        {
            self.mark_dirty(slot);
        }
        if plaintext.capacity() > 1 << 20 {
            plaintext = Vec::new();
        }
        self.tls_plaintext = plaintext;
        self.arm(slot);
        result
    }

    fn on_request_bytes(&mut self, ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        if let Some(refusal) = self.refusals.remove(&(slot as u32)) {
            return self.refuse_status(slot, refusal);
        }
        let settings = Arc::clone(&self.settings);
        let config = settings.handshake();
        let Some(mut request) = self.requests.remove(&(slot as u32)) else {
            let consumed = match parse_upgrade(data, &config) {
                Ok(Some(request)) => {
                    if let Err(refusal) = self.authorize(slot, &request) {
                        return self.refuse_status(slot, refusal);
                    }
                    write_accept_response(self.output_of(slot), &request);
                    request.request_len
                }
                Ok(None) => {
                    self.requests.insert(slot as u32, data.to_vec());
                    return Ok(());
                }
                Err(error) => return self.refuse(slot, &error),
            };
            self.upgraded(slot);
            return self.on_frames(ops, slot, &mut data[consumed..]);
        };
        request.extend_from_slice(data);
        let consumed = match parse_upgrade(&request, &config) {
            Ok(Some(parsed)) => {
                if let Err(refusal) = self.authorize(slot, &parsed) {
                    return self.refuse_status(slot, refusal);
                }
                write_accept_response(self.output_of(slot), &parsed);
                parsed.request_len
            }
            Ok(None) => {
                self.requests.insert(slot as u32, request);
                return Ok(());
            }
            Err(error) => return self.refuse(slot, &error),
        };
        self.upgraded(slot);
        self.on_frames(ops, slot, &mut request[consumed..])
    }

    /// Verifies the upgrade's token (if auth is configured) and records the
    /// connection's user.
    fn authorize(&mut self, slot: usize, request: &UpgradeRequest<'_>) -> Result<(), Refusal> {
        if let Some(origin) = request.origin
            && !self.settings.allowed_origins.is_empty()
            && !self
                .settings
                .allowed_origins
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(origin))
        {
            self.stats.origin_refusals += 1;
            log::warn!(
                "origin_refused",
                origin,
                "upgrade refused 403: origin not allowed"
            );
            return Err(Refusal {
                status: 403,
                reason: "origin_not_allowed",
                retry_after_s: 0,
            });
        }
        let Some(authenticator) = self.settings.authenticator.as_ref() else {
            return Ok(());
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        match authenticator.authenticate(request.authorization, request.path, now) {
            Ok(None) => Ok(()),
            Ok(Some(identity)) => {
                // Devices per user (anonymous connections are each their
                // own user and need no device slot).
                let now_ms = self.settings.epoch.elapsed().as_millis() as u64;
                let key = UserKey::named(&identity.user);
                match self.settings.user_table.acquire_connection(key, now_ms) {
                    Ok(handle) => {
                        self.user_handles.insert(slot as u32, handle);
                    }
                    Err(refusal)
                        if refusal.reason == UserRefusalReason::TooManyDevices
                            && self.settings.on_device_limit == DeviceLimitPolicy::CloseOldest
                            && self.take_oldest_device(key, slot) => {}
                    Err(refusal) => {
                        *self
                            .stats
                            .user_refusals
                            .entry(refusal.reason.as_str())
                            .or_default() += 1;
                        log::warn!(
                            "user_refused",
                            reason = refusal.reason.as_str(),
                            "upgrade refused 429 by a per-user limit"
                        );
                        return Err(Refusal {
                            status: 429,
                            reason: refusal.reason.as_str(),
                            retry_after_s: refusal.retry_after_s,
                        });
                    }
                }
                self.users
                    .insert(slot as u32, identity.user.into_boxed_str());
                Ok(())
            }
            Err(error) => {
                *self.stats.auth_failures.entry(error.reason()).or_default() += 1;
                // The reason only: never the token.
                log::warn!(
                    "auth_failure",
                    peer = self
                        .handshake_peers
                        .get(&(slot as u32))
                        .map(|(peer, _)| ringgate_logging::tracing::field::display(peer)),
                    reason = error.reason(),
                    "upgrade refused 401"
                );
                if error.counts_as_failed_auth()
                    && let Some((peer, _)) = self.handshake_peers.get(&(slot as u32))
                {
                    let now_ms = self.settings.epoch.elapsed().as_millis() as u64;
                    if self.settings.ip_table.record_auth_failure(*peer, now_ms) {
                        self.stats.ip_bans += 1;
                        log::warn!(
                            "ip_banned",
                            peer = %peer,
                            "an address was banned after repeated failed authentications"
                        );
                    }
                }
                Err(Refusal {
                    status: 401,
                    reason: error.reason(),
                    retry_after_s: 0,
                })
            }
        }
    }

    /// `close_oldest` at the device cap: the user's oldest open connection on
    /// this shard gives its device slot to the new connection and is closed
    /// with 1008. The table's count never changes, so no other shard can
    /// take the slot in between. False if this shard holds none of them.
    fn take_oldest_device(&mut self, key: UserKey, new_slot: usize) -> bool {
        let oldest = self
            .user_handles
            .iter()
            .filter(|(_, handle)| handle.key() == key)
            .map(|(&slot, _)| slot as usize)
            .filter(|&slot| self.conns[slot].phase == Phase::Open)
            .min_by_key(|&slot| self.conns[slot].phase_tick);
        let Some(oldest) = oldest else { return false };
        let handle = self
            .user_handles
            .remove(&(oldest as u32))
            .expect("found above");
        self.user_handles.insert(new_slot as u32, handle);
        self.stats.devices_replaced += 1;
        self.close_with(oldest, 1008, false);
        true
    }

    /// Answers an upgrade with an HTTP error and closes.
    fn refuse_status(&mut self, slot: usize, refusal: Refusal) -> io::Result<()> {
        self.stats.count_refusal(refusal.status, refusal.reason);
        let retry_after = refusal.retry_after_s.to_string();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(2);
        if refusal.status == 401 {
            headers.push(("WWW-Authenticate", "Bearer"));
        }
        if refusal.retry_after_s != 0 {
            headers.push(("Retry-After", &retry_after));
        }
        write_http_response(
            self.output_of(slot),
            refusal.status,
            &headers,
            refusal.reason,
        );
        self.users.remove(&(slot as u32));
        self.close_after_answer(slot)
    }

    /// The HTTP answer to a refused upgrade is queued: close once it is sent.
    fn close_after_answer(&mut self, slot: usize) -> io::Result<()> {
        self.requests.remove(&(slot as u32));
        let conn = &mut self.conns[slot];
        conn.phase = Phase::Closing;
        conn.phase_tick = self.now;
        conn.set(flag::FINISH_AFTER_FLUSH);
        self.mark_dirty(slot);
        self.arm(slot);
        Ok(())
    }

    fn upgraded(&mut self, slot: usize) {
        self.stats.upgraded += 1;
        if let Some((_, accepted_us)) = self.handshake_peers.remove(&(slot as u32)) {
            let took = self.clock_us.saturating_sub(accepted_us);
            self.stats.histograms.handshake_us.observe(took);
        }
        let conn = &mut self.conns[slot];
        conn.phase = Phase::Open;
        conn.phase_tick = self.now;
        if self.relay.is_some() {
            self.relay_connection_opened(slot);
        }
        self.mark_dirty(slot);
        self.arm(slot);
    }

    fn refuse(&mut self, slot: usize, error: &HandshakeError) -> io::Result<()> {
        self.stats.count_refusal(error.status(), error.reason());
        log::warn!(
            "handshake_refused",
            status = error.status(),
            "upgrade refused: {error}"
        );
        write_error_response(self.output_of(slot), error);
        self.close_after_answer(slot)
    }

    /// Decodes frames and answers them (echo mode).
    fn on_frames(&mut self, _ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        let limits = self.settings.codec_limits;
        let closing = self.conns[slot].phase == Phase::Closing;
        let relay = self.relay.is_some();
        // The decoder leaves the connection while its messages are handled,
        // so handlers may change any shard state (the relay writes to other
        // connections and to router links). Replacing it costs no allocation.
        let mut decoder =
            std::mem::replace(&mut self.conns[slot].decoder, Decoder::new(Role::Server));
        let mut offset = 0;
        let mut failure = None;
        let mut peer_close = None;
        while offset < data.len() {
            match decoder.decode(&mut data[offset..], &limits) {
                Ok((consumed, message)) => {
                    offset += consumed;
                    let Some(message) = message else { continue };
                    self.stats.messages_in += 1;
                    self.stats.count_in(frame_kind(&message));
                    match message {
                        Message::Text(_) | Message::Binary(_) | Message::Pong(_) if closing => {}
                        Message::Text(payload) if relay => self.on_client_text(slot, payload),
                        Message::Binary(_) if relay => self.on_client_binary(slot),
                        Message::Text(payload) => self.echo(slot, OpCode::Text, payload),
                        Message::Binary(payload) => self.echo(slot, OpCode::Binary, payload),
                        Message::Ping(payload) => {
                            let conn = &mut self.conns[slot];
                            write_frame(
                                conn.output.writer(&mut self.pool),
                                OpCode::Pong,
                                payload,
                                None,
                            );
                            self.stats.count_out(FrameKind::Pong);
                        }
                        Message::Pong(_) => {}
                        Message::Close(frame) => {
                            peer_close = Some(frame.code);
                            break;
                        }
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        let conn = &mut self.conns[slot];
        conn.decoder = decoder;
        if conn.phase != Phase::Open && conn.phase != Phase::Closing {
            conn.decoder.release_memory();
            return Ok(());
        }
        if let Some(error) = failure {
            self.stats.count_protocol_error(error.close_code());
            log::warn!(
                "protocol_error",
                close_code = error.close_code(),
                "closing a connection: {error}"
            );
            self.close_with(slot, error.close_code(), false);
            return Ok(());
        }
        if let Some(code) = peer_close {
            self.on_peer_close(slot, code);
            return Ok(());
        }
        let conn = &mut self.conns[slot];
        if conn.decoder.in_message() {
            if conn.frame_tick == 0 {
                conn.frame_tick = self.now.max(1);
            }
        } else {
            conn.frame_tick = 0;
        }
        if !conn.output.is_empty() {
            self.mark_dirty(slot);
            self.enforce_write_queue(slot);
        }
        self.arm(slot);
        Ok(())
    }

    /// Echo mode: the message goes back with its type.
    fn echo(&mut self, slot: usize, opcode: OpCode, payload: &[u8]) {
        let conn = &mut self.conns[slot];
        write_frame(conn.output.writer(&mut self.pool), opcode, payload, None);
        self.stats.messages_out += 1;
        self.stats.count_out(if opcode == OpCode::Text {
            FrameKind::Text
        } else {
            FrameKind::Binary
        });
    }

    /// The peer sent its close frame: answer it (echoing its code) unless we
    /// already sent ours, then close the TCP connection once flushed.
    fn on_peer_close(&mut self, slot: usize, code: Option<u16>) {
        let conn = &mut self.conns[slot];
        conn.set(flag::CLOSE_RECEIVED);
        if !conn.has(flag::CLOSE_SENT) {
            conn.close_code = code.unwrap_or(1005);
            conn.set(flag::CLOSE_SENT);
            let output = conn.output.writer(&mut self.pool);
            match code {
                Some(code) => write_close(output, code, "", None),
                None => write_frame(output, OpCode::Close, &[], None),
            }
            self.stats.count_out(FrameKind::Close);
        }
        conn.decoder.release_memory();
        conn.phase = Phase::Closing;
        conn.phase_tick = self.now;
        conn.set(flag::FINISH_AFTER_FLUSH);
        self.mark_dirty(slot);
        self.arm(slot);
    }

    /// Starts a close we initiate. With `wait_for_reply` the connection reads
    /// on until the peer's close frame (or the linger deadline); without, the
    /// TCP connection closes as soon as our close frame is flushed.
    pub(in crate::hot) fn close_with(&mut self, slot: usize, code: u16, wait_for_reply: bool) {
        let conn = &mut self.conns[slot];
        if conn.phase == Phase::Finishing {
            return;
        }
        if !conn.has(flag::CLOSE_SENT) {
            conn.set(flag::CLOSE_SENT);
            conn.close_code = code;
            write_close(conn.output.writer(&mut self.pool), code, "", None);
            self.stats.count_out(FrameKind::Close);
        }
        conn.decoder.release_memory();
        conn.phase = Phase::Closing;
        conn.phase_tick = self.now;
        if !wait_for_reply {
            conn.set(flag::FINISH_AFTER_FLUSH);
        }
        self.mark_dirty(slot);
        self.arm(slot);
    }

    /// A client that does not read cannot pin gateway memory: past the cap its
    /// queued output is dropped and it is closed with 1008.
    /// True if it closed the connection.
    pub(in crate::hot) fn enforce_write_queue(&mut self, slot: usize) -> bool {
        let cap = self.settings.max_write_queue_bytes;
        let conn = &mut self.conns[slot];
        if cap == 0 || conn.pending_output() <= cap || conn.has(flag::CLOSE_SENT) {
            return false;
        }
        self.stats.slow_consumers += 1;
        log::warn!(
            "slow_consumer",
            queued_bytes = conn.pending_output(),
            "write queue over its cap: output dropped, closing 1008"
        );
        conn.output.clear(&mut self.pool);
        self.close_with(slot, 1008, false);
        true
    }

    /// EOF or a socket error: the peer is gone; no close frame can be sent.
    fn on_peer_gone(&mut self, ops: &mut Ops, slot: usize, error: bool) -> io::Result<()> {
        if error {
            self.stats.socket_errors += 1;
        }
        self.begin_finish(ops, slot)
    }

    /// A send finished: resubmit the rest after a short write, else give the
    /// buffers back and flush what queued meanwhile (or finish closing).
    /// `done_before` is how much of `sent` earlier sends had written.
    fn on_sent(
        &mut self,
        ops: &mut Ops,
        token: Token,
        result: io::Result<usize>,
        sent: Outgoing,
        done_before: usize,
    ) -> io::Result<()> {
        let Some(slot) = self.lookup(token) else {
            sent.recycle(&mut self.pool);
            return Ok(());
        };
        let total = sent.len();
        let conn = &mut self.conns[slot];
        conn.clear(flag::SEND_IN_FLIGHT);
        conn.in_flight_bytes = 0;
        match result {
            Ok(written) if done_before + written < total && conn.phase != Phase::Finishing => {
                self.stats.bytes_out += written as u64;
                self.stats.short_writes += 1;
                let done = done_before + written;
                conn.in_flight_bytes = (total - done) as u32;
                conn.set(flag::SEND_IN_FLIGHT);
                return sent.submit(ops, conn.fd, done, token);
            }
            Ok(written) => {
                self.stats.bytes_out += written as u64;
                sent.recycle(&mut self.pool);
            }
            Err(_) => {
                sent.recycle(&mut self.pool);
                self.stats.socket_errors += 1;
                self.begin_finish(ops, slot)?;
            }
        }
        if self.conns[slot].phase == Phase::Finishing {
            return self.close_if_done(ops, slot);
        }
        self.mark_dirty(slot);
        Ok(())
    }

    fn on_closed(&mut self, token: Token) {
        let Some(slot) = self.lookup(token) else {
            return;
        };
        self.relay_forget(slot);
        self.users.remove(&(slot as u32));
        self.handshake_peers.remove(&(slot as u32));
        self.refusals.remove(&(slot as u32));
        if let Some(handle) = self.conns[slot].ip.take() {
            self.settings.ip_table.release(handle);
        }
        self.tls_sessions.remove(&(slot as u32));
        if let Some(handle) = self.user_handles.remove(&(slot as u32)) {
            self.settings.user_table.release(handle);
        }
        let conn = &mut self.conns[slot];
        self.stats.count_close(conn.close_code);
        conn.phase = Phase::Free;
        conn.fd = -1;
        conn.decoder.release_memory();
        conn.output.clear(&mut self.pool);
        self.requests.remove(&(slot as u32));
        self.free.push(slot as u32);
        self.live -= 1;
    }

    /// Tears the socket down: cancel the recv, wait for any send, then close.
    fn begin_finish(&mut self, ops: &mut Ops, slot: usize) -> io::Result<()> {
        let token = self.token_of(slot);
        let conn = &mut self.conns[slot];
        if conn.phase == Phase::Finishing {
            return Ok(());
        }
        conn.phase = Phase::Finishing;
        conn.output.clear(&mut self.pool);
        if conn.has(flag::RECV_ARMED) {
            ops.cancel_recv(token)?;
        }
        self.close_if_done(ops, slot)
    }

    fn close_if_done(&mut self, ops: &mut Ops, slot: usize) -> io::Result<()> {
        let token = self.token_of(slot);
        let conn = &mut self.conns[slot];
        if conn.phase != Phase::Finishing
            || conn.fd < 0
            || conn.has(flag::RECV_ARMED)
            || conn.has(flag::SEND_IN_FLIGHT)
        {
            return Ok(());
        }
        let fd = std::mem::replace(&mut conn.fd, -1);
        ops.close(fd, token)
    }

    fn request_rearm(&mut self, slot: usize) {
        self.conns[slot].set(flag::RECV_REARM);
        self.mark_dirty(slot);
    }

    pub(in crate::hot) fn mark_dirty(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if !conn.has(flag::DIRTY) {
            conn.set(flag::DIRTY);
            self.dirty.push(slot as u32);
        }
    }

    fn output_of(&mut self, slot: usize) -> &mut Vec<u8> {
        self.conns[slot].output.writer(&mut self.pool)
    }

    /// Sends queued output and re-arms receives, once per connection per turn.
    fn flush(&mut self, ops: &mut Ops) -> io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        for slot in dirty.drain(..) {
            self.flush_one(ops, slot as usize)?;
        }
        self.dirty = dirty;
        self.flush_links(ops)
    }

    fn flush_one(&mut self, ops: &mut Ops, slot: usize) -> io::Result<()> {
        let token = self.token_of(slot);
        let conn = &mut self.conns[slot];
        conn.clear(flag::DIRTY);
        if matches!(conn.phase, Phase::Free | Phase::Finishing) {
            return Ok(());
        }
        if conn.has(flag::RECV_REARM) && !conn.has(flag::RECV_ARMED) {
            conn.clear(flag::RECV_REARM);
            conn.set(flag::RECV_ARMED);
            ops.recv_multishot(conn.fd, token)?;
        }
        if self.tls_sessions.contains_key(&(slot as u32)) {
            return self.flush_tls(ops, slot);
        }
        let conn = &mut self.conns[slot];
        if !conn.has(flag::SEND_IN_FLIGHT)
            && let Some(outgoing) = conn.output.take()
        {
            conn.set(flag::SEND_IN_FLIGHT);
            conn.in_flight_bytes = outgoing.len() as u32;
            self.stats
                .histograms
                .write_queue_bytes
                .observe(outgoing.len() as u64);
            return outgoing.submit(ops, conn.fd, 0, token);
        }
        let closed_both_ways = conn.has(flag::CLOSE_SENT) && conn.has(flag::CLOSE_RECEIVED);
        if conn.drained() && (conn.has(flag::FINISH_AFTER_FLUSH) || closed_both_ways) {
            return self.begin_finish(ops, slot);
        }
        Ok(())
    }

    /// wss: encrypt what is queued (own bytes and shared frames alike) into
    /// one pooled buffer of TLS records and send it.
    fn flush_tls(&mut self, ops: &mut Ops, slot: usize) -> io::Result<()> {
        let token = self.token_of(slot);
        if self.conns[slot].has(flag::SEND_IN_FLIGHT) {
            return Ok(());
        }
        let Some(session) = self.tls_sessions.get_mut(&(slot as u32)) else {
            return Ok(());
        };
        let conn = &mut self.conns[slot];
        let mut refused = false;
        if let Some(outgoing) = conn.output.take() {
            match outgoing {
                Outgoing::Bytes(bytes) => {
                    refused |= session.send(&bytes).is_err();
                    self.pool.put(bytes);
                }
                Outgoing::Chunks(chunks) => {
                    for chunk in &chunks {
                        refused |= session.send(chunk.bytes()).is_err();
                    }
                    self.pool.put_chunk_list(chunks);
                }
            }
        }
        if refused {
            self.stats.slow_consumers += 1;
            log::warn!(
                "slow_consumer",
                "TLS write queue over its cap: output dropped, closing"
            );
            return self.begin_finish(ops, slot);
        }
        let closing = conn.has(flag::FINISH_AFTER_FLUSH)
            || (conn.has(flag::CLOSE_SENT) && conn.has(flag::CLOSE_RECEIVED));
        if closing && conn.output.is_empty() {
            session.close();
        }
        if session.wants_write() {
            let mut records = self.pool.take();
            session.write_ciphertext(&mut records);
            if !records.is_empty() {
                conn.in_flight_bytes = records.len() as u32;
                conn.set(flag::SEND_IN_FLIGHT);
                return ops.send(conn.fd, records, 0, token);
            }
            self.pool.put(records);
        }
        if closing && conn.drained() {
            return self.begin_finish(ops, slot);
        }
        Ok(())
    }

    /// Schedules the connection's next deadline if it is earlier than the one
    /// already in the wheel.
    fn arm(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let Some(due) = conn.next_deadline(&self.settings.deadlines) else {
            return;
        };
        if conn.timer_due == 0 || due < conn.timer_due {
            conn.timer_due = due.max(self.now + 1);
            self.wheel.schedule(Entry {
                slot: slot as u32,
                generation: conn.generation,
                due: conn.timer_due,
            });
        }
    }

    fn on_tick(&mut self, ops: &mut Ops) -> io::Result<()> {
        log::flush_suppressed();
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(self.now, &mut fired);
        for entry in fired.drain(..) {
            let slot = entry.slot as usize;
            let conn = &mut self.conns[slot];
            if conn.generation != entry.generation
                || conn.phase == Phase::Free
                || conn.timer_due != entry.due
            {
                continue;
            }
            conn.timer_due = 0;
            self.on_due(ops, slot)?;
            self.arm(slot);
        }
        self.fired = fired;
        if self.relay.is_some() && !self.draining {
            self.relay_tick(ops)?;
        }
        Ok(())
    }

    fn on_due(&mut self, ops: &mut Ops, slot: usize) -> io::Result<()> {
        match self.conns[slot].due(self.now, &self.settings.deadlines) {
            Due::Nothing => {}
            Due::HandshakeTimeout => {
                self.stats.handshake_timeouts += 1;
                log::warn!("handshake_timeout", "no upgrade request in time: closing");
                self.begin_finish(ops, slot)?;
            }
            Due::FrameTimeout => {
                self.stats.frame_timeouts += 1;
                log::warn!(
                    "frame_timeout",
                    "a frame took too long to arrive: closing 1008"
                );
                self.close_with(slot, 1008, false);
            }
            Due::IdleTimeout => {
                self.stats.idle_timeouts += 1;
                self.close_with(slot, 1001, false);
            }
            Due::SendPing => {
                self.stats.pings_sent += 1;
                // Quiet for a while: let rustls drop its peak-sized buffers.
                if let Some(session) = self.tls_sessions.get_mut(&(slot as u32)) {
                    session.release_memory();
                }
                let conn = &mut self.conns[slot];
                conn.set(flag::PING_SENT);
                write_frame(conn.output.writer(&mut self.pool), OpCode::Ping, &[], None);
                self.stats.count_out(FrameKind::Ping);
                self.mark_dirty(slot);
            }
            Due::CloseTimeout => {
                self.stats.close_timeouts += 1;
                self.begin_finish(ops, slot)?;
            }
        }
        Ok(())
    }

    /// SIGTERM/SIGINT: stop accepting, say 1001 to every open connection and
    /// wait (up to the drain timeout) for the close handshakes.
    fn begin_drain(&mut self, ops: &mut Ops) -> io::Result<()> {
        self.draining = true;
        ops.cancel_accept(LISTENER)?;
        for slot in 0..self.conns.len() {
            match self.conns[slot].phase {
                Phase::Handshaking => self.begin_finish(ops, slot)?,
                Phase::Open => self.close_with(slot, 1001, true),
                _ => {}
            }
        }
        Ok(())
    }
}

/// The metric label of a decoded message.
fn frame_kind(message: &Message<'_>) -> FrameKind {
    match message {
        Message::Text(_) => FrameKind::Text,
        Message::Binary(_) => FrameKind::Binary,
        Message::Ping(_) => FrameKind::Ping,
        Message::Pong(_) => FrameKind::Pong,
        Message::Close(_) => FrameKind::Close,
    }
}
