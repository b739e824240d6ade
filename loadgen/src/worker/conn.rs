//! One client connection's state: small, fixed-size, no buffers of its own
//! unless the kernel refused part of a write (or a handshake answer arrived
//! in pieces). Everything else (read buffer, frame scratch) is per thread.

use mio::net::TcpStream;
use ringgate_wscodec::{Decoder, Role};
use rustix::io::Errno;
use rustix::net::SendFlags;

use crate::stats::ErrorReason;

/// A buffer that grew past this while draining a slow socket is given back
/// once empty, so one burst doesn't pin memory on an idle connection.
const PENDING_KEEP_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet.
    Idle,
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent, waiting for `101`.
    Handshaking,
    Open,
    Closed,
}

pub struct Conn {
    pub stream: Option<TcpStream>,
    pub phase: Phase,
    /// Open loop: how many of this connection's scheduled messages were sent.
    pub sent: u32,
    /// Messages (or pings) sent and not yet answered.
    pub outstanding: u32,
    /// When the TCP connect started (monotonic ns).
    pub started_ns: u64,
    /// Bytes the kernel did not take yet, or (while handshaking) a partial
    /// upgrade answer. Empty, with no allocation, almost always.
    pub pending: Vec<u8>,
    pub decoder: Decoder,
}

impl Conn {
    pub fn new() -> Conn {
        Conn {
            stream: None,
            phase: Phase::Idle,
            sent: 0,
            outstanding: 0,
            started_ns: 0,
            pending: Vec::new(),
            decoder: Decoder::new(Role::Client),
        }
    }

    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    pub fn is_pending(&self) -> bool {
        matches!(self.phase, Phase::Connecting | Phase::Handshaking)
    }

    /// Sends `out` (then clears it) after anything already queued; what the
    /// kernel refuses stays in `pending` until the socket is writable again.
    pub fn send(&mut self, out: &mut Vec<u8>) -> Result<(), ErrorReason> {
        if out.is_empty() {
            return Ok(());
        }
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(out);
            out.clear();
            return self.flush_pending();
        }
        // `out` is emptied even on error: it is shared by the thread's
        // connections, and stale bytes must not go to the next one.
        let written = write_some(self.stream.as_ref(), out);
        if let Ok(written) = written
            && written < out.len()
        {
            self.pending.extend_from_slice(&out[written..]);
        }
        out.clear();
        written.map(|_| ())
    }

    /// Writes queued bytes; call when the socket turns writable.
    pub fn flush_pending(&mut self) -> Result<(), ErrorReason> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = write_some(self.stream.as_ref(), &self.pending)?;
        self.pending.drain(..written);
        if self.pending.is_empty() && self.pending.capacity() > PENDING_KEEP_BYTES {
            self.pending = Vec::new();
        }
        Ok(())
    }

    /// Drops the socket (the kernel removes it from epoll) and any buffers.
    pub fn close(&mut self) {
        self.stream = None;
        self.phase = Phase::Closed;
        self.pending = Vec::new();
        self.decoder = Decoder::new(Role::Client);
    }
}

/// Writes as much as the kernel takes; 0 if the socket is full.
fn write_some(stream: Option<&TcpStream>, bytes: &[u8]) -> Result<usize, ErrorReason> {
    let Some(stream) = stream else {
        return Err(ErrorReason::NotOpen);
    };
    // The bare syscall (see `socket::read_once`); NOSIGNAL: a reset peer is
    // an error to count, not a SIGPIPE.
    loop {
        match rustix::net::send(stream, bytes, SendFlags::NOSIGNAL) {
            Ok(n) => return Ok(n),
            Err(Errno::AGAIN) => return Ok(0),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(ErrorReason::from_io(&errno.into())),
        }
    }
}
