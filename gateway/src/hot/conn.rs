//! One client connection's state: its phase, its WebSocket decoder, its
//! output queue and its deadlines. Pure data and decisions; the shard performs
//! the I/O these decisions call for.
//!
//! Size matters: an idle, open connection is exactly this struct in the
//! shard's slab, with no heap behind it (the decoder's reassembly buffer and
//! the output queue are empty `Vec`s until used; a partial upgrade request
//! lives in the shard, not here). A unit test pins the size.

use ringgate_wscodec::Decoder;
use ringgate_wscodec::Role;

use super::output::Output;
use crate::defense::ip_table::IpHandle;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Slab slot not in use.
    Free,
    /// Reading the HTTP upgrade request.
    Handshaking,
    /// WebSocket open.
    Open,
    /// A close frame (or an HTTP error) is queued or sent; waiting for the
    /// output to drain and, for a clean close we started, the peer's close.
    Closing,
    /// Tearing down the socket: cancel the recv, wait for the send, close fd.
    Finishing,
}

/// Bit flags kept in one byte.
pub mod flag {
    /// A multishot recv is armed.
    pub const RECV_ARMED: u8 = 1 << 0;
    /// A send is in flight (its buffer is owned by the ring).
    pub const SEND_IN_FLIGHT: u8 = 1 << 1;
    /// We queued our close frame.
    pub const CLOSE_SENT: u8 = 1 << 2;
    /// The peer's close frame arrived.
    pub const CLOSE_RECEIVED: u8 = 1 << 3;
    /// Close the TCP connection as soon as the output has drained.
    pub const FINISH_AFTER_FLUSH: u8 = 1 << 4;
    /// In the shard's flush list.
    pub const DIRTY: u8 = 1 << 5;
    /// A ping went out since the peer last sent anything.
    pub const PING_SENT: u8 = 1 << 6;
    /// The recv ended (ENOBUFS or a finished multishot) and must be re-armed.
    pub const RECV_REARM: u8 = 1 << 7;
}

pub struct Conn {
    pub fd: i32,
    /// Bumped when the slot is reused, so a stale completion or timer entry
    /// for a previous occupant is recognised and ignored.
    pub generation: u32,
    pub phase: Phase,
    pub flags: u8,
    /// Close code recorded for the close metric (1006 = abnormal).
    pub close_code: u16,
    /// Bytes of the send currently in flight.
    pub in_flight_bytes: u32,
    /// Tick of the last byte received (idle and ping deadlines).
    pub last_receive_tick: u32,
    /// Tick the current phase began (handshake and close deadlines).
    pub phase_tick: u32,
    /// Tick the current partial frame or fragmented message began; 0 = none.
    pub frame_tick: u32,
    /// Due tick of this connection's live timer entry; 0 = none.
    pub timer_due: u32,
    pub decoder: Decoder,
    /// Output waiting to be sent (pooled buffers when non-empty).
    pub output: Output,
    /// The connection's place in the per-IP table, released at close.
    pub ip: Option<IpHandle>,
}

impl Conn {
    pub fn free() -> Conn {
        Conn {
            fd: -1,
            generation: 0,
            phase: Phase::Free,
            flags: 0,
            close_code: 0,
            in_flight_bytes: 0,
            last_receive_tick: 0,
            phase_tick: 0,
            frame_tick: 0,
            timer_due: 0,
            decoder: Decoder::new(Role::Server),
            output: Output::default(),
            ip: None,
        }
    }

    /// Resets a free slot for a newly accepted socket.
    pub fn open(&mut self, fd: i32, now: u32) {
        debug_assert_eq!(self.phase, Phase::Free);
        self.fd = fd;
        self.generation = (self.generation + 1) & 0x00ff_ffff;
        self.phase = Phase::Handshaking;
        self.flags = 0;
        self.close_code = 1006;
        self.in_flight_bytes = 0;
        self.last_receive_tick = now;
        self.phase_tick = now;
        self.frame_tick = 0;
        self.timer_due = 0;
        self.decoder = Decoder::new(Role::Server);
    }

    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    pub fn set(&mut self, bit: u8) {
        self.flags |= bit;
    }

    pub fn clear(&mut self, bit: u8) {
        self.flags &= !bit;
    }

    /// Bytes queued or in flight: what the write-queue cap limits.
    pub fn pending_output(&self) -> usize {
        self.output.queued_bytes() + self.in_flight_bytes as usize
    }

    /// True once the socket can be closed: nothing left to send.
    pub fn drained(&self) -> bool {
        self.output.is_empty() && !self.has(flag::SEND_IN_FLIGHT)
    }
}

/// Deadlines in ticks, from the limits (0 = off).
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    pub handshake: u32,
    pub frame: u32,
    pub ping: u32,
    pub idle: u32,
    pub close_linger: u32,
}

/// What a connection's deadline asks the shard to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    Nothing,
    HandshakeTimeout,
    FrameTimeout,
    SendPing,
    IdleTimeout,
    CloseTimeout,
}

impl Conn {
    /// The next tick at which something may be due; None if nothing is armed.
    pub fn next_deadline(&self, deadlines: &Deadlines) -> Option<u32> {
        let after = |start: u32, length: u32| (length != 0).then(|| start + length);
        match self.phase {
            Phase::Free | Phase::Finishing => None,
            Phase::Handshaking => after(self.phase_tick, deadlines.handshake),
            Phase::Closing => after(self.phase_tick, deadlines.close_linger),
            Phase::Open => {
                let frame = if self.frame_tick != 0 {
                    after(self.frame_tick, deadlines.frame)
                } else {
                    None
                };
                let quiet = if deadlines.ping != 0 && !self.has(flag::PING_SENT) {
                    after(self.last_receive_tick, deadlines.ping)
                } else {
                    after(self.last_receive_tick, deadlines.idle)
                };
                match (frame, quiet) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// What is due at `now`, most severe first.
    pub fn due(&self, now: u32, deadlines: &Deadlines) -> Due {
        let passed = |start: u32, length: u32| length != 0 && now >= start + length;
        match self.phase {
            Phase::Free | Phase::Finishing => Due::Nothing,
            Phase::Handshaking if passed(self.phase_tick, deadlines.handshake) => {
                Due::HandshakeTimeout
            }
            Phase::Closing if passed(self.phase_tick, deadlines.close_linger) => Due::CloseTimeout,
            Phase::Open => {
                if self.frame_tick != 0 && passed(self.frame_tick, deadlines.frame) {
                    Due::FrameTimeout
                } else if passed(self.last_receive_tick, deadlines.idle) {
                    Due::IdleTimeout
                } else if !self.has(flag::PING_SENT)
                    && passed(self.last_receive_tick, deadlines.ping)
                {
                    Due::SendPing
                } else {
                    Due::Nothing
                }
            }
            _ => Due::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        handshake: 50,
        frame: 100,
        ping: 200,
        idle: 600,
        close_linger: 30,
    };

    #[test]
    fn an_idle_connection_is_small() {
        // The memory budget is 256 bytes per idle connection in all; the slab
        // entry is most of it.
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 192, "Conn grew to {size} bytes");
        eprintln!("size_of::<Conn>() = {size}");
    }

    #[test]
    fn handshake_deadline() {
        let mut conn = Conn::free();
        conn.open(3, 10);
        assert_eq!(conn.next_deadline(&DEADLINES), Some(60));
        assert_eq!(conn.due(59, &DEADLINES), Due::Nothing);
        assert_eq!(conn.due(60, &DEADLINES), Due::HandshakeTimeout);
    }

    #[test]
    fn ping_then_idle() {
        let mut conn = Conn::free();
        conn.open(3, 0);
        conn.phase = Phase::Open;
        conn.last_receive_tick = 10;
        assert_eq!(conn.next_deadline(&DEADLINES), Some(210));
        assert_eq!(conn.due(210, &DEADLINES), Due::SendPing);
        conn.set(flag::PING_SENT);
        assert_eq!(conn.next_deadline(&DEADLINES), Some(610));
        assert_eq!(conn.due(609, &DEADLINES), Due::Nothing);
        assert_eq!(conn.due(610, &DEADLINES), Due::IdleTimeout);
    }

    #[test]
    fn frame_deadline_comes_first() {
        let mut conn = Conn::free();
        conn.open(3, 0);
        conn.phase = Phase::Open;
        conn.frame_tick = 5;
        assert_eq!(conn.next_deadline(&DEADLINES), Some(105));
        assert_eq!(conn.due(105, &DEADLINES), Due::FrameTimeout);
    }

    #[test]
    fn zero_turns_a_deadline_off() {
        let off = Deadlines {
            handshake: 0,
            frame: 0,
            ping: 0,
            idle: 0,
            close_linger: 0,
        };
        let mut conn = Conn::free();
        conn.open(3, 0);
        assert_eq!(conn.next_deadline(&off), None);
        conn.phase = Phase::Open;
        assert_eq!(conn.next_deadline(&off), None);
        assert_eq!(conn.due(1_000_000, &off), Due::Nothing);
    }
}
