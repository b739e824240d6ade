//! What a worker thread does with frames: reacting to echoes, pongs, pings
//! and closes, and composing the messages it sends. No sockets here: it
//! reads decoded messages and appends frames to the thread's `out` buffer,
//! which the event loop sends.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use ringgate_wscodec::{Limits, Message, OpCode, write_frame};

use super::conn::Conn;
use super::control::{ProgressDelta, Window};
use crate::schedule::latency_us;
use crate::stamp;
use crate::stats::{ErrorReason, Totals};

/// What a thread sends once its connections are open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Traffic {
    /// Hold connections, send nothing.
    Idle,
    /// Ping each connection once per interval, spread evenly.
    Ping { interval_ns: u64 },
    /// Keep `inflight` messages outstanding per connection.
    ClosedLoop { inflight: u32 },
    /// This thread's share of the total message rate, per second.
    OpenLoop { rate: f64 },
}

/// What frame handling touches besides the connection and the read buffer.
pub struct Engine {
    pub out: Vec<u8>,
    pub payload: Vec<u8>,
    pub opcode: OpCode,
    pub rng: u64,
    pub limits: Limits,
    pub traffic: Traffic,
    pub window: Option<Window>,
    pub totals: Totals,
    pub errors: BTreeMap<ErrorReason, u64>,
    pub interval: Histogram<u64>,
    pub track_interval: bool,
    pub delta: ProgressDelta,
    pub outstanding_total: u64,
}

impl Engine {
    /// Is traffic flowing (after go, before the window ends)?
    pub fn sending(&self, now: u64) -> bool {
        self.window
            .is_some_and(|w| now >= w.go_ns && now < w.end_ns)
    }

    pub fn on_message(
        &mut self,
        outstanding: &mut u32,
        message: Message<'_>,
        now: u64,
    ) -> Result<(), ErrorReason> {
        match message {
            Message::Text(payload) | Message::Binary(payload) => {
                self.on_echo(outstanding, payload, now);
            }
            Message::Ping(payload) => {
                let mask = self.next_mask();
                write_frame(&mut self.out, OpCode::Pong, payload, Some(mask));
            }
            Message::Pong(payload) => {
                let Some(intended) = stamp::read(payload) else {
                    return Ok(());
                };
                self.totals.counts.pongs_received += 1;
                self.answered(outstanding);
                self.record_latency(intended, now);
            }
            Message::Close(frame) => return Err(ErrorReason::ServerClose(frame.code)),
        }
        Ok(())
    }

    fn on_echo(&mut self, outstanding: &mut u32, payload: &[u8], now: u64) {
        let Some(intended) = stamp::read(payload) else {
            self.count_error_n(ErrorReason::BadEcho, 1);
            return;
        };
        self.answered(outstanding);
        let counts = &mut self.totals.counts;
        counts.received_total += 1;
        self.delta.received += 1;
        if let Some(window) = self.window
            && now >= window.start_ns
            && now < window.end_ns
        {
            counts.received_in_window += 1;
        }
        self.record_latency(intended, now);
        if let Traffic::ClosedLoop { .. } = self.traffic
            && self.sending(now)
        {
            let opcode = self.opcode;
            self.queue(opcode, now);
            *outstanding += 1;
        }
    }

    fn answered(&mut self, outstanding: &mut u32) {
        *outstanding = outstanding.saturating_sub(1);
        self.outstanding_total = self.outstanding_total.saturating_sub(1);
    }

    pub fn forget_outstanding(&mut self, count: u32) {
        self.outstanding_total = self.outstanding_total.saturating_sub(u64::from(count));
    }

    /// Latency counts toward the result if the message was meant to be sent
    /// inside the window; the progress line sees everything.
    fn record_latency(&mut self, intended: u64, now: u64) {
        let latency = latency_us(intended, now);
        if let Some(window) = self.window
            && intended >= window.start_ns
            && intended < window.end_ns
        {
            self.totals.latency.saturating_record(latency);
        }
        if self.track_interval {
            self.interval.saturating_record(latency);
        }
    }

    /// Closed loop: `inflight` messages on a connection that just became usable.
    pub fn prime(&mut self, conn: &mut Conn, inflight: u32, now: u64) {
        let opcode = self.opcode;
        for _ in 0..inflight {
            self.queue(opcode, now);
        }
        conn.outstanding += inflight;
    }

    /// Appends one masked frame stamped with `intended_ns` to `out`.
    pub fn queue(&mut self, opcode: OpCode, intended_ns: u64) {
        stamp::write(&mut self.payload, intended_ns);
        let mask = self.next_mask();
        let payload: &[u8] = if opcode == OpCode::Ping {
            &self.payload[..stamp::STAMP_LEN]
        } else {
            &self.payload
        };
        write_frame(&mut self.out, opcode, payload, Some(mask));
        if opcode != OpCode::Ping {
            self.totals.counts.messages_sent += 1;
        }
        self.outstanding_total += 1;
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift64: masks need only be unpredictable to caches, not to attackers.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_ne_bytes()
    }

    pub fn count_error_n(&mut self, reason: ErrorReason, count: u64) {
        *self.errors.entry(reason).or_default() += count;
        self.delta.errors += count;
    }
}
