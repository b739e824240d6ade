//! What a worker counts, how counts merge, and how they travel between processes.
//!
//! Histograms hold microseconds from 1 µs to 60 s at 3 significant digits.
//! Between a worker process and its parent they travel as HdrHistogram V2
//! serialized bytes in base64, so merged percentiles are exact, not averaged.

use std::collections::BTreeMap;
use std::io;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use serde::{Deserialize, Serialize};

use crate::attack::AttackTotals;
use crate::churn::ChurnTotals;
use crate::pubsub::accounting::{PubSubCounts, TopicTable, WireTopics};
use crate::sys::CpuTime;

pub const HIST_LOW_US: u64 = 1;
pub const HIST_HIGH_US: u64 = 60_000_000;
pub const HIST_SIGFIG: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// Why a connection or a message failed. Each maps to one key of the
/// report's `errors` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorReason {
    /// TCP connect refused (nothing listening, or listen backlog overflow with tcp_abort_on_overflow).
    Refused,
    /// Handshake (TCP + upgrade) not complete within --timeout, or TCP timed out.
    Timeout,
    /// Connection reset by the peer.
    Reset,
    /// Server answered the upgrade with this HTTP status instead of 101.
    HttpStatus(u16),
    /// Upgrade answer was not valid HTTP/WebSocket (bad accept key, garbage).
    BadHandshake,
    /// Out of file descriptors (EMFILE/ENFILE).
    FileLimit,
    /// No local address/port left (EADDRNOTAVAIL, EADDRINUSE on bind).
    AddressUnavailable,
    /// Kernel out of socket memory (ENOBUFS/ENOMEM).
    NoBuffers,
    /// Network unreachable (bad --src or route).
    Unreachable,
    /// Server sent frames the codec rejects.
    Protocol,
    /// Server closed the connection with a close frame (code if given).
    ServerClose(Option<u16>),
    /// Server closed the TCP stream without a close frame.
    Eof,
    /// An echo came back that we did not send (payload without our stamp).
    BadEcho,
    /// Open loop: message due on a connection that was not open.
    NotOpen,
    /// pubsub: the server answered a request with an `err` envelope.
    Envelope(EnvelopeCode),
    /// pubsub: a server message that is not a protocol envelope.
    BadEnvelope,
    /// pubsub: a delivery on a topic its connection did not subscribe to.
    Misrouted,
    /// pubsub: a `status` envelope with state `degraded`.
    Degraded,
    /// pubsub: a subscription unanswered within --timeout.
    SubscribeTimeout,
    /// Anything else, by errno where known.
    Other(i32),
}

/// The `code` of an `err` envelope (docs/CLIENT_PROTOCOL.md, a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EnvelopeCode {
    RateLimited,
    TooLarge,
    Forbidden,
    BadRequest,
    Unavailable,
    Degraded,
    Rejected,
    Internal,
    /// A code the protocol does not define (treated like `internal`).
    Unknown,
}

impl EnvelopeCode {
    pub fn from_code(code: &str) -> EnvelopeCode {
        match code {
            "rate_limited" => EnvelopeCode::RateLimited,
            "too_large" => EnvelopeCode::TooLarge,
            "forbidden" => EnvelopeCode::Forbidden,
            "bad_request" => EnvelopeCode::BadRequest,
            "unavailable" => EnvelopeCode::Unavailable,
            "degraded" => EnvelopeCode::Degraded,
            "rejected" => EnvelopeCode::Rejected,
            "internal" => EnvelopeCode::Internal,
            _ => EnvelopeCode::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            EnvelopeCode::RateLimited => "rate_limited",
            EnvelopeCode::TooLarge => "too_large",
            EnvelopeCode::Forbidden => "forbidden",
            EnvelopeCode::BadRequest => "bad_request",
            EnvelopeCode::Unavailable => "unavailable",
            EnvelopeCode::Degraded => "degraded",
            EnvelopeCode::Rejected => "rejected",
            EnvelopeCode::Internal => "internal",
            EnvelopeCode::Unknown => "unknown",
        }
    }
}

impl ErrorReason {
    pub fn key(self) -> String {
        match self {
            ErrorReason::Refused => "refused".into(),
            ErrorReason::Timeout => "timeout".into(),
            ErrorReason::Reset => "reset".into(),
            ErrorReason::HttpStatus(code) => format!("http_status_{code}"),
            ErrorReason::BadHandshake => "bad_handshake".into(),
            ErrorReason::FileLimit => "file_limit".into(),
            ErrorReason::AddressUnavailable => "address_unavailable".into(),
            ErrorReason::NoBuffers => "no_buffers".into(),
            ErrorReason::Unreachable => "unreachable".into(),
            ErrorReason::Protocol => "protocol".into(),
            ErrorReason::ServerClose(Some(code)) => format!("server_close_{code}"),
            ErrorReason::ServerClose(None) => "server_close".into(),
            ErrorReason::Eof => "eof".into(),
            ErrorReason::BadEcho => "bad_echo".into(),
            ErrorReason::NotOpen => "not_open".into(),
            ErrorReason::Envelope(code) => format!("err_{}", code.name()),
            ErrorReason::BadEnvelope => "bad_envelope".into(),
            ErrorReason::Misrouted => "misrouted".into(),
            ErrorReason::Degraded => "status_degraded".into(),
            ErrorReason::SubscribeTimeout => "subscribe_timeout".into(),
            ErrorReason::Other(0) => "other".into(),
            ErrorReason::Other(errno) => format!("other_errno_{errno}"),
        }
    }

    /// The one place an OS error becomes a reason.
    pub fn from_io(error: &io::Error) -> ErrorReason {
        if error.kind() == io::ErrorKind::TimedOut {
            return ErrorReason::Timeout;
        }
        match error.raw_os_error() {
            Some(libc::ECONNREFUSED) => ErrorReason::Refused,
            Some(libc::ETIMEDOUT) => ErrorReason::Timeout,
            Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => ErrorReason::Reset,
            Some(libc::EMFILE | libc::ENFILE) => ErrorReason::FileLimit,
            Some(libc::EADDRNOTAVAIL | libc::EADDRINUSE) => ErrorReason::AddressUnavailable,
            Some(libc::ENOBUFS | libc::ENOMEM) => ErrorReason::NoBuffers,
            Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => ErrorReason::Unreachable,
            Some(errno) => ErrorReason::Other(errno),
            None => ErrorReason::Other(0),
        }
    }
}

/// Counts by reason key; sorted so reports are stable.
pub type ErrorCounts = BTreeMap<String, u64>;

/// Everything one worker thread, process or the whole run counted.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Round trips (echo), ping round trips (connect) or deliveries (pubsub,
    /// from the intended publish), intended send in the window.
    pub latency: Histogram<u64>,
    /// pubsub: publish to `ack`, from the intended send, intended in the window.
    pub ack_latency: Histogram<u64>,
    /// TCP connect start to 101 response, per successful connection.
    pub handshake: Histogram<u64>,
    pub counts: Counts,
    pub errors: ErrorCounts,
    /// This process's CPU over the window (filled per process, summed over processes).
    pub cpu: CpuTime,
    pub pubsub: PubSubCounts,
    /// pubsub: per-topic publish, subscriber and delivery counts (empty otherwise).
    pub topics: TopicTable,
    pub churn: ChurnTotals,
    pub attack: AttackTotals,
}

/// The scalar part of `Totals`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub conns_planned: u64,
    pub connect_attempts: u64,
    pub connects_ok: u64,
    pub connects_failed: u64,
    /// Monotonic ns of the first connect attempt (0: none).
    pub first_attempt_ns: u64,
    /// Monotonic ns of the last successful handshake (0: none).
    pub last_connect_ns: u64,
    /// Connections still open when the window ended.
    pub held_at_end: u64,
    pub messages_sent: u64,
    /// Replies received while the window was open (throughput numerator).
    pub received_in_window: u64,
    pub received_total: u64,
    /// Messages sent in the window still unanswered when the drain ended.
    pub unanswered: u64,
    pub pings_sent: u64,
    pub pongs_received: u64,
}

impl Counts {
    pub fn merge(&mut self, other: &Counts) {
        self.conns_planned += other.conns_planned;
        self.connect_attempts += other.connect_attempts;
        self.connects_ok += other.connects_ok;
        self.connects_failed += other.connects_failed;
        self.first_attempt_ns = min_nonzero(self.first_attempt_ns, other.first_attempt_ns);
        self.last_connect_ns = self.last_connect_ns.max(other.last_connect_ns);
        self.held_at_end += other.held_at_end;
        self.messages_sent += other.messages_sent;
        self.received_in_window += other.received_in_window;
        self.received_total += other.received_total;
        self.unanswered += other.unanswered;
        self.pings_sent += other.pings_sent;
        self.pongs_received += other.pongs_received;
    }
}

fn min_nonzero(a: u64, b: u64) -> u64 {
    match (a, b) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.min(b),
    }
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            latency: new_histogram(),
            ack_latency: new_histogram(),
            handshake: new_histogram(),
            counts: Counts::default(),
            errors: ErrorCounts::new(),
            cpu: CpuTime::default(),
            pubsub: PubSubCounts::default(),
            topics: TopicTable::default(),
            churn: ChurnTotals::default(),
            attack: AttackTotals::default(),
        }
    }
}

impl Totals {
    pub fn merge(&mut self, other: &Totals) {
        // Same bounds on both sides, so adding cannot fail.
        self.latency
            .add(&other.latency)
            .expect("histograms share bounds");
        self.ack_latency
            .add(&other.ack_latency)
            .expect("histograms share bounds");
        self.handshake
            .add(&other.handshake)
            .expect("histograms share bounds");
        self.counts.merge(&other.counts);
        merge_errors(&mut self.errors, &other.errors);
        self.cpu.add(other.cpu);
        self.pubsub.merge(&other.pubsub);
        self.topics.merge(&other.topics);
        self.churn.merge(&other.churn);
        self.attack.merge(&other.attack);
    }

    pub fn to_wire(&self) -> WireTotals {
        WireTotals {
            latency: histogram_to_base64(&self.latency),
            ack_latency: histogram_to_base64(&self.ack_latency),
            handshake: histogram_to_base64(&self.handshake),
            counts: self.counts,
            errors: self.errors.clone(),
            cpu: self.cpu,
            pubsub: self.pubsub,
            topics: self.topics.to_wire(),
            churn: self.churn.clone(),
            attack: self.attack.clone(),
        }
    }

    pub fn from_wire(wire: &WireTotals) -> Result<Totals, String> {
        Ok(Totals {
            latency: histogram_from_base64(&wire.latency)?,
            ack_latency: histogram_from_base64(&wire.ack_latency)?,
            handshake: histogram_from_base64(&wire.handshake)?,
            counts: wire.counts,
            errors: wire.errors.clone(),
            cpu: wire.cpu,
            pubsub: wire.pubsub,
            topics: TopicTable::from_wire(&wire.topics)?,
            churn: wire.churn.clone(),
            attack: wire.attack.clone(),
        })
    }
}

pub fn merge_errors(into: &mut ErrorCounts, from: &ErrorCounts) {
    for (reason, count) in from {
        *into.entry(reason.clone()).or_default() += count;
    }
}

/// `Totals` as a worker process sends it to its parent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WireTotals {
    pub latency: String,
    pub ack_latency: String,
    pub handshake: String,
    pub counts: Counts,
    pub errors: ErrorCounts,
    pub cpu: CpuTime,
    pub pubsub: PubSubCounts,
    pub topics: WireTopics,
    pub churn: ChurnTotals,
    pub attack: AttackTotals,
}

/// A histogram that travels as base64 HdrHistogram V2 (for the churn and
/// attack counts, which derive serde).
#[derive(Debug, Clone, PartialEq)]
pub struct Hist(pub Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        Hist(new_histogram())
    }
}

impl Hist {
    pub fn merge(&mut self, other: &Hist) {
        self.0.add(&other.0).expect("histograms share bounds");
    }
}

impl Serialize for Hist {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&histogram_to_base64(&self.0))
    }
}

impl<'de> Deserialize<'de> for Hist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        histogram_from_base64(&text)
            .map(Hist)
            .map_err(serde::de::Error::custom)
    }
}

pub fn histogram_to_base64(histogram: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(histogram, &mut bytes)
        .expect("serializing into a Vec cannot fail");
    BASE64.encode(bytes)
}

pub fn histogram_from_base64(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = BASE64
        .decode(text)
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("histogram does not deserialize: {e:?}"))?;
    // Re-home into our bounds so later merges never fail.
    let mut histogram = new_histogram();
    histogram
        .add(&decoded)
        .map_err(|e| format!("histogram out of bounds: {e:?}"))?;
    Ok(histogram)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals_with(latencies: &[u64], errors: &[(&str, u64)]) -> Totals {
        let mut totals = Totals::default();
        for &l in latencies {
            totals.latency.saturating_record(l);
        }
        for (reason, count) in errors {
            totals.errors.insert((*reason).to_string(), *count);
        }
        totals
    }

    #[test]
    fn merging_adds_histograms_counts_and_errors() {
        let mut a = totals_with(&[100, 200, 300], &[("refused", 2)]);
        a.counts.connects_ok = 5;
        a.counts.first_attempt_ns = 50;
        a.counts.last_connect_ns = 900;
        a.cpu = CpuTime {
            user_us: 10,
            sys_us: 20,
        };
        let mut b = totals_with(&[400, 50_000], &[("refused", 1), ("timeout", 4)]);
        b.counts.connects_ok = 7;
        b.counts.first_attempt_ns = 30;
        b.counts.last_connect_ns = 800;
        b.cpu = CpuTime {
            user_us: 1,
            sys_us: 2,
        };
        a.merge(&b);
        assert_eq!(a.latency.len(), 5);
        assert_eq!(a.latency.max(), b.latency.max());
        assert_eq!(a.counts.connects_ok, 12);
        assert_eq!(a.counts.first_attempt_ns, 30);
        assert_eq!(a.counts.last_connect_ns, 900);
        assert_eq!(a.errors["refused"], 3);
        assert_eq!(a.errors["timeout"], 4);
        assert_eq!(
            a.cpu,
            CpuTime {
                user_us: 11,
                sys_us: 22
            }
        );
    }

    #[test]
    fn first_attempt_ignores_workers_that_never_tried() {
        let mut a = Counts::default();
        let b = Counts {
            first_attempt_ns: 77,
            ..Counts::default()
        };
        a.merge(&b);
        assert_eq!(a.first_attempt_ns, 77);
        a.merge(&Counts::default());
        assert_eq!(a.first_attempt_ns, 77);
    }

    #[test]
    fn wire_round_trip_keeps_percentiles() {
        let latencies: Vec<u64> = (1..=10_000).collect();
        let totals = totals_with(&latencies, &[("reset", 1)]);
        let json = serde_json::to_string(&totals.to_wire()).unwrap();
        let wire: WireTotals = serde_json::from_str(&json).unwrap();
        let back = Totals::from_wire(&wire).unwrap();
        assert_eq!(back.latency.len(), 10_000);
        for q in [0.5, 0.99, 0.999] {
            assert_eq!(
                back.latency.value_at_quantile(q),
                totals.latency.value_at_quantile(q)
            );
        }
        assert_eq!(back.errors, totals.errors);
    }

    #[test]
    fn merged_percentiles_are_exact_not_averaged() {
        // 99 fast workers and one stalled one: p99.9 must show the stall.
        let mut all = Totals::default();
        for _ in 0..99 {
            all.merge(&totals_with(&vec![1_000; 100], &[]));
        }
        all.merge(&totals_with(&vec![200_000; 100], &[]));
        assert!(all.latency.value_at_quantile(0.999) >= 199_000);
        assert!(all.latency.value_at_quantile(0.5) <= 1_001);
    }

    #[test]
    fn garbage_histograms_are_refused() {
        assert!(histogram_from_base64("not base64!").is_err());
        assert!(histogram_from_base64("AAAA").is_err());
    }

    #[test]
    fn errno_mapping() {
        let e = |errno| ErrorReason::from_io(&io::Error::from_raw_os_error(errno));
        assert_eq!(e(libc::ECONNREFUSED), ErrorReason::Refused);
        assert_eq!(e(libc::ECONNRESET), ErrorReason::Reset);
        assert_eq!(e(libc::EMFILE), ErrorReason::FileLimit);
        assert_eq!(e(libc::EADDRNOTAVAIL), ErrorReason::AddressUnavailable);
        assert_eq!(e(libc::ENOBUFS), ErrorReason::NoBuffers);
        assert_eq!(ErrorReason::HttpStatus(503).key(), "http_status_503");
        assert_eq!(
            ErrorReason::ServerClose(Some(1008)).key(),
            "server_close_1008"
        );
        let err = |code| ErrorReason::Envelope(EnvelopeCode::from_code(code)).key();
        assert_eq!(err("rate_limited"), "err_rate_limited");
        assert_eq!(err("unavailable"), "err_unavailable");
        assert_eq!(err("something_new"), "err_unknown");
    }
}
