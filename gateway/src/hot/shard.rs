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

use ringgate_uring::{Chunk, Completion, Ops, Token, Uring, sys::WakeFd};
use ringgate_wscodec::handshake::{parse_upgrade, write_accept_response, write_error_response};
use ringgate_wscodec::{HandshakeError, Message, OpCode, write_close, write_frame};

use super::conn::{Conn, Due, Phase, flag};
use super::output::Outgoing;
use super::pool::BufferPool;
use super::stats::ShardStats;
use super::timer::{self, Entry, TimerWheel};
use crate::control::{Control, Settings};
use crate::log;

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
    settings: Arc<Settings>,
    conns: Vec<Conn>,
    /// Partial upgrade requests of connections whose request arrived split.
    requests: HashMap<u32, Vec<u8>>,
    free: Vec<u32>,
    live: usize,
    max_live: usize,
    wheel: TimerWheel,
    fired: Vec<Entry>,
    dirty: Vec<u32>,
    pool: BufferPool,
    pub stats: ShardStats,
    now: u32,
    draining: bool,
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
        let max_live = settings.max_connections_per_shard;
        Ok(Shard {
            index,
            uring,
            core: Core {
                conns: Vec::new(),
                requests: HashMap::new(),
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
                settings,
            },
            completions: Vec::with_capacity(1024),
            listener: Some(listener),
            wake,
            control,
            started: Instant::now(),
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
        loop {
            self.uring.ops.submit_and_wait(1)?;
            self.uring
                .ops
                .drain(&mut self.uring.buffers, &mut self.completions);
            self.core.now = (self.started.elapsed().as_millis() as u64 / timer::TICK_MS) as u32;
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
            if self.core.draining && (self.core.live == 0 || self.core.now >= drain_deadline) {
                break;
            }
        }
        self.core.stats.unclosed_at_exit = self.core.live as u64;
        for conn in &self.core.conns {
            if conn.phase != Phase::Free && conn.fd >= 0 {
                ringgate_uring::sys::close_fd(conn.fd);
            }
        }
        log::info(
            "shard_stopped",
            &format!(
                "shard {} stopped with {} connections open",
                self.index, self.core.live
            ),
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
            } => core.on_send(ops, token, result, buffer, offset)?,
            Completion::SendChunks {
                token,
                result,
                chunks,
                skip,
            } => core.on_send_chunks(ops, token, result, chunks, skip)?,
            Completion::Connect { .. } => {}
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

    fn token_of(&self, slot: usize) -> Token {
        token(slot as u32, self.conns[slot].generation)
    }

    fn on_accept(&mut self, ops: &mut Ops, fd: RawFd) -> io::Result<()> {
        self.stats.accepted += 1;
        if self.draining || (self.max_live != 0 && self.live >= self.max_live) {
            self.stats.refused_at_capacity += 1;
            ringgate_uring::sys::close_fd(fd);
            return Ok(());
        }
        let slot = match self.free.pop() {
            Some(slot) => slot as usize,
            None => {
                self.conns.push(Conn::free());
                self.conns.len() - 1
            }
        };
        self.conns[slot].open(fd, self.now);
        self.live += 1;
        ops.recv_multishot(fd, self.token_of(slot))?;
        self.conns[slot].set(flag::RECV_ARMED);
        self.arm(slot);
        Ok(())
    }

    fn on_accept_error(&mut self, error: &io::Error) {
        self.stats.accept_errors += 1;
        log::warn("accept_failed", &format!("accept failed: {error}"));
    }

    fn on_data(&mut self, ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        self.stats.bytes_in += data.len() as u64;
        let conn = &mut self.conns[slot];
        conn.last_receive_tick = self.now;
        conn.clear(flag::PING_SENT);
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

    fn on_request_bytes(&mut self, ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        let settings = Arc::clone(&self.settings);
        let config = settings.handshake();
        let Some(mut request) = self.requests.remove(&(slot as u32)) else {
            let consumed = match parse_upgrade(data, &config) {
                Ok(Some(request)) => {
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

    fn upgraded(&mut self, slot: usize) {
        self.stats.upgraded += 1;
        let conn = &mut self.conns[slot];
        conn.phase = Phase::Open;
        conn.phase_tick = self.now;
        self.mark_dirty(slot);
        self.arm(slot);
    }

    fn refuse(&mut self, slot: usize, error: &HandshakeError) -> io::Result<()> {
        self.stats.count_refusal(error.status());
        write_error_response(self.output_of(slot), error);
        let conn = &mut self.conns[slot];
        conn.phase = Phase::Closing;
        conn.phase_tick = self.now;
        conn.set(flag::FINISH_AFTER_FLUSH);
        self.mark_dirty(slot);
        self.arm(slot);
        Ok(())
    }

    /// Decodes frames and answers them (echo mode).
    fn on_frames(&mut self, _ops: &mut Ops, slot: usize, data: &mut [u8]) -> io::Result<()> {
        let limits = self.settings.codec_limits;
        let closing = self.conns[slot].phase == Phase::Closing;
        let mut offset = 0;
        let mut failure = None;
        let mut peer_close = None;
        {
            let conn = &mut self.conns[slot];
            let (decoder, output, pool) = (&mut conn.decoder, &mut conn.output, &mut self.pool);
            while offset < data.len() {
                match decoder.decode(&mut data[offset..], &limits) {
                    Ok((consumed, message)) => {
                        offset += consumed;
                        let Some(message) = message else { continue };
                        self.stats.messages_in += 1;
                        match message {
                            Message::Text(_) | Message::Binary(_) | Message::Pong(_) if closing => {
                            }
                            Message::Text(payload) => {
                                write_frame(output.writer(pool), OpCode::Text, payload, None);
                                self.stats.messages_out += 1;
                            }
                            Message::Binary(payload) => {
                                write_frame(output.writer(pool), OpCode::Binary, payload, None);
                                self.stats.messages_out += 1;
                            }
                            Message::Ping(payload) => {
                                write_frame(output.writer(pool), OpCode::Pong, payload, None);
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
        }
        if let Some(error) = failure {
            self.stats.count_protocol_error(error.close_code());
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
    fn close_with(&mut self, slot: usize, code: u16, wait_for_reply: bool) {
        let conn = &mut self.conns[slot];
        if conn.phase == Phase::Finishing {
            return;
        }
        if !conn.has(flag::CLOSE_SENT) {
            conn.set(flag::CLOSE_SENT);
            conn.close_code = code;
            write_close(conn.output.writer(&mut self.pool), code, "", None);
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
    fn enforce_write_queue(&mut self, slot: usize) {
        let cap = self.settings.max_write_queue_bytes;
        let conn = &mut self.conns[slot];
        if cap == 0 || conn.pending_output() <= cap || conn.has(flag::CLOSE_SENT) {
            return;
        }
        self.stats.slow_consumers += 1;
        conn.output.clear(&mut self.pool);
        self.close_with(slot, 1008, false);
    }

    /// EOF or a socket error: the peer is gone; no close frame can be sent.
    fn on_peer_gone(&mut self, ops: &mut Ops, slot: usize, error: bool) -> io::Result<()> {
        if error {
            self.stats.socket_errors += 1;
        }
        self.begin_finish(ops, slot)
    }

    fn on_send(
        &mut self,
        ops: &mut Ops,
        token: Token,
        result: io::Result<usize>,
        buffer: Vec<u8>,
        offset: usize,
    ) -> io::Result<()> {
        let Some(slot) = self.lookup(token) else {
            self.pool.put(buffer);
            return Ok(());
        };
        let conn = &mut self.conns[slot];
        conn.clear(flag::SEND_IN_FLIGHT);
        conn.in_flight_bytes = 0;
        match result {
            Ok(written) if offset + written < buffer.len() && conn.phase != Phase::Finishing => {
                self.stats.bytes_out += written as u64;
                self.stats.short_writes += 1;
                let rest = offset + written;
                conn.in_flight_bytes = (buffer.len() - rest) as u32;
                conn.set(flag::SEND_IN_FLIGHT);
                return ops.send(conn.fd, buffer, rest, token);
            }
            Ok(written) => {
                self.stats.bytes_out += written as u64;
                self.pool.put(buffer);
            }
            Err(_) => {
                self.pool.put(buffer);
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

    fn on_send_chunks(
        &mut self,
        ops: &mut Ops,
        token: Token,
        result: io::Result<usize>,
        chunks: Vec<Chunk>,
        skip: usize,
    ) -> io::Result<()> {
        let Some(slot) = self.lookup(token) else {
            self.pool.put_chunk_list(chunks);
            return Ok(());
        };
        let total = chunks_len(&chunks);
        let conn = &mut self.conns[slot];
        conn.clear(flag::SEND_IN_FLIGHT);
        conn.in_flight_bytes = 0;
        match result {
            Ok(written) if skip + written < total && conn.phase != Phase::Finishing => {
                self.stats.bytes_out += written as u64;
                self.stats.short_writes += 1;
                conn.in_flight_bytes = (total - skip - written) as u32;
                conn.set(flag::SEND_IN_FLIGHT);
                return ops.send_chunks(conn.fd, chunks, skip + written, token);
            }
            Ok(written) => {
                self.stats.bytes_out += written as u64;
                self.pool.put_chunk_list(chunks);
            }
            Err(_) => {
                self.pool.put_chunk_list(chunks);
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

    fn mark_dirty(&mut self, slot: usize) {
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
        Ok(())
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
        if !conn.has(flag::SEND_IN_FLIGHT)
            && let Some(outgoing) = conn.output.take()
        {
            conn.set(flag::SEND_IN_FLIGHT);
            return match outgoing {
                Outgoing::Bytes(bytes) => {
                    conn.in_flight_bytes = bytes.len() as u32;
                    ops.send(conn.fd, bytes, 0, token)
                }
                Outgoing::Chunks(chunks) => {
                    conn.in_flight_bytes = chunks_len(&chunks) as u32;
                    ops.send_chunks(conn.fd, chunks, 0, token)
                }
            };
        }
        let closed_both_ways = conn.has(flag::CLOSE_SENT) && conn.has(flag::CLOSE_RECEIVED);
        if conn.drained() && (conn.has(flag::FINISH_AFTER_FLUSH) || closed_both_ways) {
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
        Ok(())
    }

    fn on_due(&mut self, ops: &mut Ops, slot: usize) -> io::Result<()> {
        match self.conns[slot].due(self.now, &self.settings.deadlines) {
            Due::Nothing => {}
            Due::HandshakeTimeout => {
                self.stats.handshake_timeouts += 1;
                self.begin_finish(ops, slot)?;
            }
            Due::FrameTimeout => {
                self.stats.frame_timeouts += 1;
                self.close_with(slot, 1008, false);
            }
            Due::IdleTimeout => {
                self.stats.idle_timeouts += 1;
                self.close_with(slot, 1001, false);
            }
            Due::SendPing => {
                self.stats.pings_sent += 1;
                let conn = &mut self.conns[slot];
                conn.set(flag::PING_SENT);
                write_frame(conn.output.writer(&mut self.pool), OpCode::Ping, &[], None);
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

fn chunks_len(chunks: &[Chunk]) -> usize {
    chunks.iter().map(|chunk| chunk.bytes().len()).sum()
}
