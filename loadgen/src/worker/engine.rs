//! What a worker thread does with frames: reacting to echoes, pongs, pings
//! and closes, and composing the messages it sends. No sockets here: it
//! reads decoded messages and appends frames to the thread's `out` buffer,
//! which the event loop sends.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use ringgate_wscodec::frame::MAX_HEADER_LEN;
use ringgate_wscodec::{Limits, Message, OpCode, encode_header, write_frame};

use super::conn::Conn;
use super::control::{ProgressDelta, Window};
use super::pubsub::PubSub;
use crate::schedule::latency_us;
use crate::stamp::{self, StampCache};
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

/// Replies counted but not yet recorded: `count` of them, all stamped
/// `intended` and read at `now`.
#[derive(Debug, Clone, Copy, Default)]
struct Unrecorded {
    intended: u64,
    now: u64,
    count: u64,
}

/// What frame handling touches besides the connection and the read buffer.
pub struct Engine {
    pub out: Vec<u8>,
    pub opcode: OpCode,
    /// The whole message frame, unmasked: header (mask key last), then the
    /// payload (the stamp, then filler to `--size`). Every message has the
    /// same length, so it is encoded once; `queue` copies it, then writes
    /// the stamp and mask key into the copy and masks it there.
    frame: Vec<u8>,
    /// Where the payload starts in `frame`.
    payload_at: usize,
    stamps: StampCache,
    /// Replies read but not yet in the histograms (see `record_latency`).
    unrecorded: Unrecorded,
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
        let payload_len = size.max(stamp::STAMP_LEN);
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let mut header = [0u8; MAX_HEADER_LEN];
        let payload_at = encode_header(&mut header, true, opcode, payload_len as u64, Some([0; 4]));
        let mut frame = header[..payload_at].to_vec();
        frame.resize(payload_at + payload_len, b'x');
        stamp::write(&mut frame[payload_at..], 0);
        Engine {
            out: Vec::new(),
            opcode,
            frame,
            payload_at,
            stamps: StampCache::default(),
            unrecorded: Unrecorded::default(),
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
                let Some(intended) = self.stamps.read(payload) else {
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
        let Some(intended) = self.stamps.read(payload) else {
            self.count_error_n(ErrorReason::BadEcho, 1);
            return;
        };
        self.answered(outstanding);
        self.count_received(now);
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
            self.count_received(now);
            if intended_in_window {
                self.totals.latency.saturating_record(latency);
            }
            if self.track_interval {
                self.interval.saturating_record(latency);
            }
        }
    }

    /// A reply (echo) or delivery (pubsub) arrived at `now`.
    fn count_received(&mut self, now: u64) {
        let counts = &mut self.totals.counts;
        counts.received_total += 1;
        self.delta.received += 1;
        if let Some(window) = self.window
            && now >= window.start_ns
            && now < window.end_ns
        {
            counts.received_in_window += 1;
        }
    }

    fn answered(&mut self, outstanding: &mut u32) {
        *outstanding = outstanding.saturating_sub(1);
        self.outstanding_total = self.outstanding_total.saturating_sub(1);
    }

    pub fn forget_outstanding(&mut self, count: u32) {
        self.outstanding_total = self.outstanding_total.saturating_sub(u64::from(count));
    }

    /// Books a reply's latency. Replies with the stamp and arrival time of
    /// the one before (a closed loop's replies to one write, read together)
    /// are counted up and recorded at once, by `flush_latencies`, which the
    /// event loop calls after each read: same values, fewer histogram calls.
    fn record_latency(&mut self, intended: u64, now: u64) {
        let run = &mut self.unrecorded;
        if run.count > 0 && run.intended == intended && run.now == now {
            run.count += 1;
            return;
        }
        self.flush_latencies();
        self.unrecorded = Unrecorded {
            intended,
            now,
            count: 1,
        };
    }

    /// Records what `record_latency` held back. Latency counts toward the
    /// result if the message was meant to be sent inside the window; the
    /// progress line sees everything.
    pub fn flush_latencies(&mut self) {
        let Unrecorded {
            intended,
            now,
            count,
        } = std::mem::take(&mut self.unrecorded);
        if count == 0 {
            return;
        }
        let latency = latency_us(intended, now);
        if let Some(window) = self.window
            && intended >= window.start_ns
            && intended < window.end_ns
        {
            self.totals.latency.saturating_record_n(latency, count);
        }
        if self.track_interval {
            self.interval.saturating_record_n(latency, count);
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
        let mask = self.next_mask();
        if opcode == OpCode::Ping {
            let stamp = self.stamps.encode(intended_ns);
            write_frame(&mut self.out, OpCode::Ping, &stamp, Some(mask));
        } else {
            debug_assert_eq!(opcode, self.opcode);
            // write_frame, minus encoding the same header every time: one
            // copy of the template, then stamp, key and mask in place.
            let at = self.out.len();
            self.out.extend_from_slice(&self.frame);
            let (header, payload) = self.out[at..].split_at_mut(self.payload_at);
            header[self.payload_at - 4..].copy_from_slice(&mask);
            stamp_and_mask(payload, self.stamps.encode(intended_ns), mask);
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

/// Writes `stamp` over the start of `payload` (filler after it) and masks it (RFC 6455
/// 5.3), 16 then 8 bytes at a time: the codec's `apply_mask` takes any
/// offset and costs a call, which showed per message.
#[inline]
fn stamp_and_mask(payload: &mut [u8], stamp: [u8; stamp::STAMP_LEN], mask: [u8; 4]) {
    let key = u32::from_ne_bytes(mask);
    let key_64 = u64::from(key) << 32 | u64::from(key);
    let key_128 = u128::from(key_64) << 64 | u128::from(key_64);
    let (stamp_bytes, filler) = payload.split_at_mut(stamp::STAMP_LEN);
    stamp_bytes.copy_from_slice(&(u128::from_ne_bytes(stamp) ^ key_128).to_ne_bytes());
    // The filler starts at byte 16, a multiple of 4: the key's phase is 0.
    let mut words = filler.chunks_exact_mut(8);
    for word in &mut words {
        let masked = u64::from_ne_bytes((&*word).try_into().expect("8 bytes")) ^ key_64;
        word.copy_from_slice(&masked.to_ne_bytes());
    }
    for (index, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_frames_equal_the_codec_s() {
        for (size, binary) in [
            (16, false),
            (20, false),
            (23, true),
            (64, true),
            (200, false),
            (70_000, true),
        ] {
            let mut engine = Engine::new(Traffic::Idle, size, binary, 42, false);
            let mut payload = vec![b'x'; size];
            for stamp in [0x0123_4567_89ab_cdef, 7] {
                engine.queue(engine.opcode, stamp);
                let frame = std::mem::take(&mut engine.out);
                // The mask this frame used sits just before the payload.
                let payload_at = frame.len() - size;
                let mask: [u8; 4] = frame[payload_at - 4..payload_at].try_into().unwrap();
                stamp::write(&mut payload, stamp);
                let mut expected = Vec::new();
                write_frame(&mut expected, engine.opcode, &payload, Some(mask));
                assert_eq!(frame, expected, "size {size}");
            }
            assert_eq!(engine.totals.counts.messages_sent, 2);
        }
    }

    #[test]
    fn held_back_latencies_equal_one_record_per_reply() {
        let mut engine = Engine::new(Traffic::ClosedLoop { inflight: 8 }, 20, false, 1, true);
        engine.window = Some(Window {
            go_ns: 0,
            start_ns: 1_000_000,
            end_ns: 9_000_000,
            drain_end_ns: 10_000_000,
        });
        let mut expected = new_histogram();
        let mut expected_interval = new_histogram();
        let mut payload = vec![b'x'; 20];
        let mut outstanding = 1_000;
        // Runs of repeated stamps, arrival times that change inside a run,
        // stamps on both sides of the window's edges.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for read in 0..2_000u64 {
            let now = 2_000_000 + read * 5_000;
            for _ in 0..1 + rng % 9 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let intended = now.saturating_sub(rng % 3 * 1_500_000 + read % 4 * 2_000);
                stamp::write(&mut payload, intended);
                engine
                    .on_message(0, &mut outstanding, Message::Text(&payload), now)
                    .unwrap();
                let latency = latency_us(intended, now);
                if (1_000_000..9_000_000).contains(&intended) {
                    expected.saturating_record(latency);
                }
                expected_interval.saturating_record(latency);
            }
            engine.flush_latencies();
        }
        assert!(expected.len() > 1_000);
        assert_eq!(engine.totals.latency, expected);
        assert_eq!(engine.interval, expected_interval);
    }

    #[test]
    fn masks_change_per_frame() {
        let mut engine = Engine::new(Traffic::Idle, 16, false, 7, false);
        let a = engine.next_mask();
        let b = engine.next_mask();
        assert_ne!(a, b);
    }
}
