//! What a worker thread does with frames: reacting to echoes, pongs, pings
//! and closes, and composing the messages it sends. No sockets here: it
//! reads decoded messages and appends frames to the thread's `out` buffer,
//! which the event loop sends.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use ringgate_wscodec::frame::MAX_HEADER_LEN;
use ringgate_wscodec::{Limits, Message, OpCode, apply_mask, encode_header, write_frame};

use super::conn::Conn;
use super::control::{ProgressDelta, Window};
use super::pubsub::PubSub;
use crate::schedule::latency_us;
use crate::stamp;
use crate::stats::{ErrorReason, Totals, new_histogram};

/// Largest message we send (`--size` is capped at 16 MiB) and so accept back.
const ECHO_MESSAGE_MAX_BYTES: usize = 16 << 20;

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
    /// Subscribe, then publish on the owned topics at this rate (per second).
    PubSub { rate: f64 },
}

/// What frame handling touches besides the connection and the read buffer.
pub struct Engine {
    pub out: Vec<u8>,
    /// The message: the stamp, then filler to `--size`.
    pub payload: Vec<u8>,
    pub opcode: OpCode,
    /// The message's frame header, mask key last (overwritten per frame):
    /// every message has the same length, so it is encoded once.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
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
    /// The pubsub scenario's state (None in the others).
    pub pubsub: Option<Box<PubSub>>,
}

impl Engine {
    pub fn new(
        traffic: Traffic,
        size: usize,
        binary: bool,
        seed: u64,
        track_interval: bool,
    ) -> Engine {
        let mut payload = vec![b'x'; size.max(stamp::STAMP_LEN)];
        stamp::write(&mut payload, 0);
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let mut header = [0u8; MAX_HEADER_LEN];
        let header_len = encode_header(
            &mut header,
            true,
            opcode,
            payload.len() as u64,
            Some([0; 4]),
        );
        Engine {
            out: Vec::new(),
            payload,
            opcode,
            header,
            header_len,
            rng: seed | 1,
            // A load generator accepts whatever it asked to be echoed.
            limits: Limits {
                max_frame_bytes: ECHO_MESSAGE_MAX_BYTES as u64,
                max_text_message_bytes: ECHO_MESSAGE_MAX_BYTES,
                max_binary_message_bytes: ECHO_MESSAGE_MAX_BYTES,
            },
            traffic,
            window: None,
            totals: Totals::default(),
            errors: BTreeMap::new(),
            interval: new_histogram(),
            track_interval,
            delta: ProgressDelta::default(),
            outstanding_total: 0,
            pubsub: None,
        }
    }

    /// Is traffic flowing (after go, before the window ends)?
    pub fn sending(&self, now: u64) -> bool {
        self.window
            .is_some_and(|w| now >= w.go_ns && now < w.end_ns)
    }

    /// A message on the thread's connection `index`.
    pub fn on_message(
        &mut self,
        index: usize,
        outstanding: &mut u32,
        message: Message<'_>,
        now: u64,
    ) -> Result<(), ErrorReason> {
        match message {
            Message::Text(payload) if self.pubsub.is_some() => {
                self.on_pubsub_text(index, outstanding, payload, now);
            }
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

    fn on_pubsub_text(&mut self, index: usize, outstanding: &mut u32, payload: &[u8], now: u64) {
        let pubsub = self.pubsub.as_mut().expect("pubsub scenario");
        let handled = pubsub.on_text(index, payload, now);
        if handled.answered {
            self.answered(outstanding);
        }
        if let Some(reason) = handled.error {
            self.count_error_n(reason, 1);
        }
        if let Some((latency, intended_in_window)) = handled.delivery {
            let counts = &mut self.totals.counts;
            counts.received_total += 1;
            self.delta.received += 1;
            if let Some(window) = self.window
                && now >= window.start_ns
                && now < window.end_ns
            {
                counts.received_in_window += 1;
            }
            if intended_in_window {
                self.totals.latency.saturating_record(latency);
            }
            if self.track_interval {
                self.interval.saturating_record(latency);
            }
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
        if opcode == OpCode::Ping {
            let stamp = &self.payload[..stamp::STAMP_LEN];
            write_frame(&mut self.out, OpCode::Ping, stamp, Some(mask));
        } else {
            debug_assert_eq!(opcode, self.opcode);
            // write_frame, minus encoding the same header every time.
            let out = &mut self.out;
            out.extend_from_slice(&self.header[..self.header_len]);
            let payload_at = out.len();
            out[payload_at - 4..payload_at].copy_from_slice(&mask);
            out.extend_from_slice(&self.payload);
            apply_mask(&mut out[payload_at..], mask, 0);
            self.totals.counts.messages_sent += 1;
        }
        self.outstanding_total += 1;
    }

    pub fn next_mask(&mut self) -> [u8; 4] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_frames_equal_the_codec_s() {
        for (size, binary) in [(16, false), (64, true), (200, false), (70_000, true)] {
            let mut engine = Engine::new(Traffic::Idle, size, binary, 42, false);
            engine.queue(engine.opcode, 0x0123_4567_89ab_cdef);
            let frame = std::mem::take(&mut engine.out);
            // The mask this frame used sits just before the payload.
            let payload_at = frame.len() - size;
            let mask: [u8; 4] = frame[payload_at - 4..payload_at].try_into().unwrap();
            let mut expected = Vec::new();
            write_frame(&mut expected, engine.opcode, &engine.payload, Some(mask));
            assert_eq!(frame, expected, "size {size}");
            assert_eq!(engine.totals.counts.messages_sent, 1);
        }
    }

    #[test]
    fn masks_change_per_frame() {
        let mut engine = Engine::new(Traffic::Idle, 16, false, 7, false);
        let a = engine.next_mask();
        let b = engine.next_mask();
        assert_ne!(a, b);
    }
}
