//! Per-shard counters: plain integers owned by the shard thread (no atomics,
//! no sharing on the hot path), summed across shards when reported.

use std::collections::BTreeMap;

use crate::metrics::histogram::{Histogram, LATENCY_US, SIZE_BYTES};

/// WebSocket frame kinds, the `type` label of the message counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    Text = 0,
    Binary = 1,
    Ping = 2,
    Pong = 3,
    Close = 4,
}

impl FrameKind {
    pub const ALL: [FrameKind; 5] = [
        FrameKind::Text,
        FrameKind::Binary,
        FrameKind::Ping,
        FrameKind::Pong,
        FrameKind::Close,
    ];

    pub fn label(self) -> &'static str {
        match self {
            FrameKind::Text => "text",
            FrameKind::Binary => "binary",
            FrameKind::Ping => "ping",
            FrameKind::Pong => "pong",
            FrameKind::Close => "close",
        }
    }
}

/// The shard's latency and size distributions (see docs/operations/METRICS.md).
#[derive(Clone, Debug)]
pub struct Histograms {
    /// TCP accept to the 101 response queued, in microseconds.
    pub handshake_us: Histogram,
    /// Client frame handled to its PUBLISH submitted to the router.
    pub to_router_us: Histogram,
    /// Router DELIVER handled to the frame submitted to the client.
    pub to_client_us: Histogram,
    /// PUBLISH sent to PUBLISH_ACK handled.
    pub router_rtt_us: Histogram,
    /// The message's router time (its HLC wall clock) to the frame out.
    pub delivery_us: Histogram,
    /// Bytes queued on a connection at each send.
    pub write_queue_bytes: Histogram,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            handshake_us: Histogram::new(&LATENCY_US),
            to_router_us: Histogram::new(&LATENCY_US),
            to_client_us: Histogram::new(&LATENCY_US),
            router_rtt_us: Histogram::new(&LATENCY_US),
            delivery_us: Histogram::new(&LATENCY_US),
            write_queue_bytes: Histogram::new(&SIZE_BYTES),
        }
    }
}

impl Histograms {
    fn merge(&mut self, other: &Histograms) {
        self.handshake_us.merge(&other.handshake_us);
        self.to_router_us.merge(&other.to_router_us);
        self.to_client_us.merge(&other.to_client_us);
        self.router_rtt_us.merge(&other.router_rtt_us);
        self.delivery_us.merge(&other.delivery_us);
        self.write_queue_bytes.merge(&other.write_queue_bytes);
    }
}

#[derive(Clone, Debug, Default)]
pub struct ShardStats {
    pub accepted: u64,
    pub accept_errors: u64,
    pub refused_at_capacity: u64,
    pub upgraded: u64,
    /// Upgrade refusals by HTTP status.
    pub refused_by_status: BTreeMap<u16, u64>,
    /// Upgrade refusals by HTTP status and reason (the metric's labels).
    pub refusal_reasons: BTreeMap<(u16, &'static str), u64>,
    /// Frames received and sent, by [`FrameKind`].
    pub frames_in: [u64; 5],
    pub frames_out: [u64; 5],
    /// Relay: `msg` deliveries dropped, by reason.
    pub delivery_failures: BTreeMap<&'static str, u64>,
    /// Relay: `msg` frames queued to clients.
    pub deliveries_out: u64,
    /// Latency and size distributions.
    pub histograms: Histograms,
    /// Closed connections by close code (1006: without a close handshake).
    pub closed_by_code: BTreeMap<u16, u64>,
    /// Protocol errors by the close code they earned.
    pub protocol_errors_by_code: BTreeMap<u16, u64>,
    pub messages_in: u64,
    pub messages_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub handshake_timeouts: u64,
    pub frame_timeouts: u64,
    pub idle_timeouts: u64,
    pub close_timeouts: u64,
    pub pings_sent: u64,
    pub slow_consumers: u64,
    pub socket_errors: u64,
    pub short_writes: u64,
    pub buffer_ring_exhausted: u64,
    pub unclosed_at_exit: u64,
    /// Relay mode: client requests refused as `bad_request`.
    pub bad_requests: u64,
    /// Relay mode: publishes sent to a router, acknowledged, refused.
    pub publishes: u64,
    pub acks: u64,
    /// Publishes sent whose link failed before their PUBLISH_ACK: answered
    /// `unavailable` `router_lost`.
    pub publishes_lost: u64,
    pub publish_rejected: u64,
    /// Publishes answered `unavailable` (no live router, no credit, full).
    pub publish_unavailable: u64,
    /// Publishes held for a router that is down (sent when it is back).
    pub publishes_buffered: u64,
    /// DELIVER frames received from routers.
    pub deliveries_in: u64,
    /// Router links that failed, by kind (`relay::LINK_FAILURE_KINDS`).
    pub router_failures: BTreeMap<&'static str, u64>,
    /// Router requests (subscribe, unsubscribe) the router refused.
    pub router_refusals: u64,
    /// Upgrades refused 401, by reason.
    pub auth_failures: BTreeMap<&'static str, u64>,
    /// Connections refused by a per-IP limit, by reason.
    pub ip_refusals: BTreeMap<&'static str, u64>,
    /// Addresses banned after failed authentications.
    pub ip_bans: u64,
    /// Upgrades refused 403 for an Origin not in the allowlist.
    pub origin_refusals: u64,
    /// Upgrades refused by the per-user device cap, by reason.
    pub user_refusals: BTreeMap<&'static str, u64>,
    /// Relay publishes refused by per-user or per-topic limits, by reason
    /// (rate_limited scopes, repeated content, abuse).
    pub message_refusals: BTreeMap<&'static str, u64>,
    /// Oldest devices closed 1008 for a new one (`close_oldest`).
    pub devices_replaced: u64,
    /// wss: completed TLS handshakes and TLS failures by reason.
    pub tls_handshakes: u64,
    pub tls_errors: BTreeMap<&'static str, u64>,
}

impl ShardStats {
    pub fn count_refusal(&mut self, status: u16, reason: &'static str) {
        *self.refused_by_status.entry(status).or_default() += 1;
        *self.refusal_reasons.entry((status, reason)).or_default() += 1;
    }

    #[inline]
    pub fn count_in(&mut self, kind: FrameKind) {
        self.frames_in[kind as usize] += 1;
    }

    #[inline]
    pub fn count_out(&mut self, kind: FrameKind) {
        self.frames_out[kind as usize] += 1;
    }

    pub fn count_close(&mut self, code: u16) {
        *self.closed_by_code.entry(code).or_default() += 1;
    }

    pub fn count_protocol_error(&mut self, code: u16) {
        *self.protocol_errors_by_code.entry(code).or_default() += 1;
    }

    /// Adds another shard's counters into this one.
    pub fn merge(&mut self, other: &ShardStats) {
        let maps = [
            (&mut self.refused_by_status, &other.refused_by_status),
            (&mut self.closed_by_code, &other.closed_by_code),
            (
                &mut self.protocol_errors_by_code,
                &other.protocol_errors_by_code,
            ),
        ];
        for (into, from) in maps {
            for (key, value) in from {
                *into.entry(*key).or_default() += value;
            }
        }
        for (key, value) in &other.refusal_reasons {
            *self.refusal_reasons.entry(*key).or_default() += value;
        }
        for (key, value) in &other.router_failures {
            *self.router_failures.entry(key).or_default() += value;
        }
        for (key, value) in &other.delivery_failures {
            *self.delivery_failures.entry(key).or_default() += value;
        }
        for (into, from) in self.frames_in.iter_mut().zip(other.frames_in) {
            *into += from;
        }
        for (into, from) in self.frames_out.iter_mut().zip(other.frames_out) {
            *into += from;
        }
        self.histograms.merge(&other.histograms);
        for (key, value) in &other.auth_failures {
            *self.auth_failures.entry(key).or_default() += value;
        }
        for (key, value) in &other.ip_refusals {
            *self.ip_refusals.entry(key).or_default() += value;
        }
        self.ip_bans += other.ip_bans;
        for (key, value) in &other.user_refusals {
            *self.user_refusals.entry(key).or_default() += value;
        }
        self.tls_handshakes += other.tls_handshakes;
        self.devices_replaced += other.devices_replaced;
        for (key, value) in &other.tls_errors {
            *self.tls_errors.entry(key).or_default() += value;
        }
        for (key, value) in &other.message_refusals {
            *self.message_refusals.entry(key).or_default() += value;
        }
        self.origin_refusals += other.origin_refusals;
        let scalars = [
            (&mut self.accepted, other.accepted),
            (&mut self.accept_errors, other.accept_errors),
            (&mut self.refused_at_capacity, other.refused_at_capacity),
            (&mut self.upgraded, other.upgraded),
            (&mut self.messages_in, other.messages_in),
            (&mut self.messages_out, other.messages_out),
            (&mut self.bytes_in, other.bytes_in),
            (&mut self.bytes_out, other.bytes_out),
            (&mut self.handshake_timeouts, other.handshake_timeouts),
            (&mut self.frame_timeouts, other.frame_timeouts),
            (&mut self.idle_timeouts, other.idle_timeouts),
            (&mut self.close_timeouts, other.close_timeouts),
            (&mut self.pings_sent, other.pings_sent),
            (&mut self.slow_consumers, other.slow_consumers),
            (&mut self.socket_errors, other.socket_errors),
            (&mut self.short_writes, other.short_writes),
            (&mut self.buffer_ring_exhausted, other.buffer_ring_exhausted),
            (&mut self.unclosed_at_exit, other.unclosed_at_exit),
            (&mut self.bad_requests, other.bad_requests),
            (&mut self.publishes, other.publishes),
            (&mut self.acks, other.acks),
            (&mut self.publishes_lost, other.publishes_lost),
            (&mut self.publish_rejected, other.publish_rejected),
            (&mut self.publish_unavailable, other.publish_unavailable),
            (&mut self.publishes_buffered, other.publishes_buffered),
            (&mut self.deliveries_in, other.deliveries_in),
            (&mut self.router_refusals, other.router_refusals),
            (&mut self.deliveries_out, other.deliveries_out),
        ];
        for (into, from) in scalars {
            *into += from;
        }
    }
}
