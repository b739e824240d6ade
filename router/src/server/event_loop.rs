//! The router's one I/O loop, on `ringgate-uring`: multishot accept,
//! multishot receive into the shared buffer ring, chunked sends (a DELIVER
//! for many gateways is one shared `Rc` frame in each gateway's send), a
//! tick, and an eventfd that wakes the loop to stop.
//!
//! A turn: submit and wait; drain every completion into a queue; read the
//! clock once; handle the completions (no handler runs inside another);
//! disconnect peers that passed their output bound; hand recycled receive
//! buffers back to the kernel; then flush: per dirty peer, owed CREDIT, a
//! re-armed receive, at most one send, or the steps of closing its socket.
//!
//! This is the only file that submits io_uring operations.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringgate_uring::{Chunk, Completion, RecvBuffer, Token, Uring};

use super::StopHandle;
use super::config::RouterConfig;
use super::core::{Clock, Core};
use super::log;
use super::peer::{Phase, flag};
use super::snapshot::{self, Snapshots};
use super::stats::RouterStats;

/// Token of the listener's multishot accept. Peer tokens are
/// `generation << 32 | slot` with slots below `u32::MAX - 2`, so never this.
const LISTENER: Token = u32::MAX as Token;
/// Token of the tick and of the stop wake-up.
const CONTROL: Token = u32::MAX as Token - 1;
/// How often timeouts, pings and the dedup expiry run.
const TICK: Duration = Duration::from_millis(50);
/// Flush rounds per turn: closing a peer may dirty it again (cancel, then
/// close), so a few rounds finish what one turn started.
const FLUSH_ROUNDS: usize = 4;

struct Loop<'a> {
    uring: Uring,
    core: Core,
    listener: RawFd,
    accepting: bool,
    stop: &'a StopHandle,
    snapshots: Option<Arc<Snapshots>>,
    next_snapshot_ms: u64,
}

pub(super) fn run(
    config: RouterConfig,
    snapshots: Option<Arc<Snapshots>>,
    listener: &TcpListener,
    stop: &StopHandle,
) -> io::Result<RouterStats> {
    let id = config.id;
    // Every line this thread writes carries "router": id.
    let _router = ringgate_logging::enter_router(id);
    let uring = Uring::new(&config.ring)?;
    let started = Instant::now();
    let mut event_loop = Loop {
        uring,
        core: Core::new(config, Clock::read(started)),
        listener: listener.as_raw_fd(),
        accepting: true,
        stop,
        snapshots,
        next_snapshot_ms: 0,
    };
    let address = listener.local_addr()?;
    log::info!("router_started", "router {id} serving on {address}");
    let result = event_loop.turns(started);
    event_loop.close_all();
    event_loop.publish_snapshot();
    let stats = event_loop.core.stats();
    log::info!(
        "router_stopped",
        "router {id} stopped: {} publishes, {} accepted, {} duplicates",
        stats.publishes,
        stats.accepted_publishes,
        stats.duplicates
    );
    result.map(|()| stats)
}

impl Loop<'_> {
    fn turns(&mut self, started: Instant) -> io::Result<()> {
        let ops = &mut self.uring.ops;
        ops.accept_multishot(self.listener, LISTENER)?;
        ops.tick(TICK, CONTROL)?;
        ops.wake_on(self.stop.wake_fd(), CONTROL)?;
        let mut completions = Vec::with_capacity(1024);
        let mut shutdown_deadline_ms = None;
        loop {
            self.uring.ops.submit_and_wait(1)?;
            self.uring
                .ops
                .drain(&mut self.uring.buffers, &mut completions);
            self.core.clock = Clock::read(started);
            for completion in completions.drain(..) {
                self.dispatch(completion)?;
            }
            if self.stop.is_stopped() && shutdown_deadline_ms.is_none() {
                if self.accepting {
                    self.accepting = false;
                    self.uring.ops.cancel_accept(LISTENER)?;
                }
                self.core.shutdown();
                shutdown_deadline_ms =
                    Some(self.core.clock.mono_ms + self.core.config.shutdown_grace_ms);
            }
            self.core.drop_overloaded();
            self.uring.buffers.publish();
            self.flush()?;
            if let Some(deadline_ms) = shutdown_deadline_ms
                && (self.core.live == 0 || self.core.clock.mono_ms >= deadline_ms)
            {
                return Ok(());
            }
        }
    }

    fn dispatch(&mut self, completion: Completion) -> io::Result<()> {
        match completion {
            Completion::Accept { result, more, .. } => {
                match result {
                    Ok(fd) => self.on_accept(fd)?,
                    Err(error) if error.raw_os_error() == Some(libc::ECANCELED) => {}
                    Err(error) => log::warn!("accept_failed", "accept failed: {error}"),
                }
                if !more && self.accepting {
                    self.uring.ops.accept_multishot(self.listener, LISTENER)?;
                }
            }
            Completion::Recv {
                token,
                result,
                more,
            } => self.on_recv(token, result, more),
            Completion::SendChunks {
                token,
                result,
                chunks,
                skip,
            } => self.on_sent(token, result, chunks, skip)?,
            Completion::Send { token, result, .. } => {
                // The router sends only chunk lists; kept total for safety.
                if let Some(slot) = self.core.lookup(token) {
                    self.core.peers[slot].clear(flag::SEND_IN_FLIGHT);
                    if result.is_err() {
                        self.core.finish(slot);
                    }
                    self.core.mark_dirty(slot);
                }
            }
            Completion::Close { token, .. } => {
                if let Some(slot) = self.core.lookup(token) {
                    self.core.freed(slot);
                }
            }
            Completion::Tick { .. } => {
                ringgate_logging::flush_suppressed();
                self.core.on_tick();
                if self.core.clock.mono_ms >= self.next_snapshot_ms {
                    self.next_snapshot_ms = self.core.clock.mono_ms + snapshot::PUBLISH_EVERY_MS;
                    self.publish_snapshot();
                }
                self.uring.ops.tick(TICK, CONTROL)?;
            }
            Completion::Wake { .. } => self.uring.ops.wake_on(self.stop.wake_fd(), CONTROL)?,
            Completion::Connect { .. } | Completion::Cancel { .. } => {}
        }
        Ok(())
    }

    fn on_accept(&mut self, fd: RawFd) -> io::Result<()> {
        self.core.stats.accepted += 1;
        if self.core.shutting_down || self.core.live >= self.core.config.max_peers {
            self.core.stats.refused_at_capacity += 1;
            ringgate_uring::sys::close_fd(fd);
            return Ok(());
        }
        let id = self.core.open(fd);
        self.uring.ops.recv_multishot(fd, id.token())
    }

    fn on_recv(&mut self, token: Token, result: io::Result<Option<RecvBuffer>>, more: bool) {
        let Some(slot) = self.core.lookup(token) else {
            if let Ok(Some(buffer)) = result {
                self.uring.buffers.recycle(buffer);
            }
            return;
        };
        if !more {
            self.core.peers[slot].clear(flag::RECV_ARMED);
            self.core.mark_dirty(slot);
        }
        match result {
            Ok(Some(buffer)) => {
                self.core
                    .on_data(slot, self.uring.buffers.bytes_mut(&buffer));
                self.uring.buffers.recycle(buffer);
                if !more {
                    self.core.request_rearm(slot);
                }
            }
            Ok(None) => self.core.finish(slot),
            Err(error) => match error.raw_os_error() {
                Some(libc::ENOBUFS) => {
                    self.core.stats.buffer_ring_exhausted += 1;
                    self.core.request_rearm(slot);
                }
                Some(libc::ECANCELED) => {}
                _ => self.core.finish(slot),
            },
        }
    }

    fn on_sent(
        &mut self,
        token: Token,
        result: io::Result<usize>,
        chunks: Vec<Chunk>,
        skip: usize,
    ) -> io::Result<()> {
        let Some(slot) = self.core.lookup(token) else {
            self.core.pool.put_list(chunks);
            return Ok(());
        };
        let peer = &mut self.core.peers[slot];
        peer.clear(flag::SEND_IN_FLIGHT);
        match result {
            Ok(written) => {
                self.core.stats.bytes_out += written as u64;
                let total: usize = chunks.iter().map(|chunk| chunk.bytes().len()).sum();
                if skip + written < total && peer.phase != Phase::Finishing {
                    peer.in_flight_bytes = total - skip - written;
                    peer.set(flag::SEND_IN_FLIGHT);
                    return self
                        .uring
                        .ops
                        .send_chunks(peer.fd, chunks, skip + written, token);
                }
                peer.in_flight_bytes = 0;
                self.core.pool.put_list(chunks);
            }
            Err(_) => {
                peer.in_flight_bytes = 0;
                self.core.pool.put_list(chunks);
                self.core.finish(slot);
            }
        }
        self.core.mark_dirty(slot);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for _ in 0..FLUSH_ROUNDS {
            if self.core.dirty.is_empty() {
                break;
            }
            let mut dirty = std::mem::take(&mut self.core.dirty);
            for slot in dirty.drain(..) {
                self.flush_one(slot as usize)?;
            }
            if self.core.dirty.is_empty() {
                self.core.dirty = dirty;
            }
        }
        Ok(())
    }

    fn flush_one(&mut self, slot: usize) -> io::Result<()> {
        let token = self.core.id_of(slot).token();
        self.core.peers[slot].clear(flag::DIRTY);
        match self.core.peers[slot].phase {
            Phase::Free => return Ok(()),
            Phase::Finishing => return self.tear_down(slot, token),
            Phase::AwaitingHello | Phase::Open | Phase::Closing => {}
        }
        self.core.settle_credit(slot);
        let ops = &mut self.uring.ops;
        let peer = &mut self.core.peers[slot];
        if peer.has(flag::RECV_REARM)
            && !peer.has(flag::RECV_ARMED)
            && matches!(peer.phase, Phase::AwaitingHello | Phase::Open)
        {
            peer.clear(flag::RECV_REARM);
            peer.set(flag::RECV_ARMED);
            ops.recv_multishot(peer.fd, token)?;
        }
        if !peer.has(flag::SEND_IN_FLIGHT)
            && let Some((chunks, bytes)) = peer.output.take_ready(&mut self.core.pool)
        {
            peer.in_flight_bytes = bytes;
            peer.set(flag::SEND_IN_FLIGHT);
            return ops.send_chunks(peer.fd, chunks, 0, token);
        }
        if peer.phase == Phase::Closing && !peer.has(flag::SEND_IN_FLIGHT) {
            self.core.finish(slot);
            return self.tear_down(slot, token);
        }
        Ok(())
    }

    /// Closing a socket: cancel its receive, wait for its send, then close.
    fn tear_down(&mut self, slot: usize, token: Token) -> io::Result<()> {
        let peer = &mut self.core.peers[slot];
        if peer.fd < 0 {
            return Ok(());
        }
        if peer.has(flag::RECV_ARMED) {
            if !peer.has(flag::CANCEL_SENT) {
                peer.set(flag::CANCEL_SENT);
                self.uring.ops.cancel_recv(token)?;
            }
            return Ok(());
        }
        if peer.has(flag::SEND_IN_FLIGHT) {
            return Ok(());
        }
        let fd = std::mem::replace(&mut peer.fd, -1);
        self.uring.ops.close(fd, token)
    }

    fn publish_snapshot(&self) {
        if let Some(snapshots) = &self.snapshots {
            snapshots.publish(|| self.core.snapshot());
        }
    }

    /// At exit: close what the grace period did not.
    fn close_all(&mut self) {
        for peer in &mut self.core.peers {
            if peer.phase != Phase::Free && peer.fd >= 0 {
                ringgate_uring::sys::close_fd(std::mem::replace(&mut peer.fd, -1));
            }
        }
    }
}
