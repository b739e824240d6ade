//! The Prometheus exposition: a prometheus-client [`Collector`] that sums
//! the shards' latest views at scrape time (docs/operations/METRICS.md lists
//! every metric). Label values come from fixed sets (frame kinds, close
//! codes, refusal reasons, router ids from the config): never user ids,
//! topics or addresses.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use ringgate_router::metrics::{Families, NONE};

use super::histogram::Histogram;
use super::{Board, ShardView, readiness};
use crate::control::Control;
use crate::hot::relay::LINK_FAILURE_KINDS;
use crate::hot::stats::{FrameKind, ShardStats};

/// The collector: the shards' views and the drain flag.
#[derive(Debug)]
pub struct Exporter {
    pub board: Arc<Board>,
    pub control: Arc<Control>,
}

/// Close codes that get their own label value; others count as "other"
/// (a peer may send any code from 3000 to 4999).
const KNOWN_CLOSE_CODES: [u16; 11] = [
    1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012,
];

/// Protocol errors by the close code they earned, named.
fn frame_rejection_reason(code: u16) -> &'static str {
    match code {
        1002 => "protocol_error",
        1007 => "invalid_payload",
        1008 => "policy",
        1009 => "too_big",
        _ => "other",
    }
}

/// The families helper is the router crate's, shared with its exporter.
type Out<'a, 'b> = Families<'a, 'b>;

fn histogram<L: EncodeLabelSet>(
    out: &mut Out<'_, '_>,
    name: &str,
    help: &str,
    samples: &[(L, &Histogram)],
) -> Result<(), std::fmt::Error> {
    let mut family = out
        .encoder
        .encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, histogram) in samples {
        family
            .encode_family(labels)?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                histogram.exported_sum(),
                histogram.count(),
                &histogram.exported_buckets(),
                None,
            )?;
    }
    Ok(())
}

impl Collector for Exporter {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let views = self.board.views();
        let draining = self.control.is_draining();
        let mut total = ShardStats::default();
        for view in views.iter().flatten() {
            total.merge(&view.stats);
        }
        let out = &mut Out {
            encoder: &mut encoder,
        };
        encode_state(out, &views, draining)?;
        encode_traffic(out, &views, &total)?;
        encode_errors(out, &total)?;
        encode_relay(out, &views, &total)?;
        encode_latency(out, &total)?;
        encode_saturation(out, &views)
    }
}

fn shard_label(index: usize) -> [(&'static str, String); 1] {
    [("shard", index.to_string())]
}

fn encode_state(
    out: &mut Out<'_, '_>,
    views: &[Option<ShardView>],
    draining: bool,
) -> Result<(), std::fmt::Error> {
    out.gauge(
        "ringgate_build_info",
        "The gateway's version (always 1).",
        &[([("version", env!("CARGO_PKG_VERSION"))], 1.0)],
    )?;
    let ready = readiness(views, draining).is_ok();
    out.gauge(
        "ringgate_ready",
        "1 when /readyz answers 200: every shard serving, not draining, every router up.",
        &[(NONE, f64::from(u8::from(ready)))],
    )?;
    out.gauge(
        "ringgate_draining",
        "1 while the gateway drains after SIGTERM.",
        &[(NONE, f64::from(u8::from(draining)))],
    )
}

fn encode_traffic(
    out: &mut Out<'_, '_>,
    views: &[Option<ShardView>],
    total: &ShardStats,
) -> Result<(), std::fmt::Error> {
    let active: Vec<_> = views
        .iter()
        .enumerate()
        .map(|(index, view)| {
            let open = view.as_ref().map_or(0, |view| view.connections);
            (shard_label(index), open as f64)
        })
        .collect();
    out.gauge(
        "ringgate_connections_active",
        "Open client connections (handshaking and upgraded), per shard.",
        &active,
    )?;
    out.counter(
        "ringgate_tcp_accepted",
        "TCP connections accepted.",
        &[(NONE, total.accepted)],
    )?;
    out.counter(
        "ringgate_connections_opened",
        "WebSocket upgrades completed.",
        &[(NONE, total.upgraded)],
    )?;
    let mut closed: Vec<([(&str, String); 1], u64)> = KNOWN_CLOSE_CODES
        .iter()
        .map(|code| ([("code", code.to_string())], 0))
        .collect();
    let mut other = 0;
    for (code, count) in &total.closed_by_code {
        match KNOWN_CLOSE_CODES.iter().position(|known| known == code) {
            Some(index) => closed[index].1 += count,
            None => other += count,
        }
    }
    closed.push(([("code", "other".to_string())], other));
    out.counter(
        "ringgate_connections_closed",
        "Connections closed, by WebSocket close code (1006: no close handshake).",
        &closed,
    )?;
    let by_kind = |counts: &[u64; 5]| -> Vec<([(&str, &str); 1], u64)> {
        FrameKind::ALL
            .iter()
            .map(|&kind| ([("type", kind.label())], counts[kind as usize]))
            .collect()
    };
    out.counter(
        "ringgate_messages_received",
        "WebSocket messages and control frames received from clients, by type.",
        &by_kind(&total.frames_in),
    )?;
    out.counter(
        "ringgate_messages_sent",
        "WebSocket messages and control frames queued to clients, by type.",
        &by_kind(&total.frames_out),
    )?;
    out.counter(
        "ringgate_bytes_received",
        "Bytes read from client sockets (after TLS).",
        &[(NONE, total.bytes_in)],
    )?;
    out.counter(
        "ringgate_bytes_sent",
        "Bytes written to client sockets (WebSocket frames, before TLS).",
        &[(NONE, total.bytes_out)],
    )
}

fn encode_errors(out: &mut Out<'_, '_>, total: &ShardStats) -> Result<(), std::fmt::Error> {
    let refusals: Vec<_> = total
        .refusal_reasons
        .iter()
        .map(|(&(status, reason), &count)| {
            (
                [("status", status.to_string()), ("reason", reason.into())],
                count,
            )
        })
        .collect();
    out.counter(
        "ringgate_upgrade_refusals",
        "Upgrades refused with an HTTP status, by status and reason.",
        &refusals,
    )?;
    let labelled = |name: &'static str, map: &std::collections::BTreeMap<&'static str, u64>| {
        map.iter()
            .map(|(&reason, &count)| ([(name, reason)], count))
            .collect::<Vec<_>>()
    };
    out.counter(
        "ringgate_auth_failures",
        "Upgrades refused 401, by reason.",
        &labelled("reason", &total.auth_failures),
    )?;
    let mut limited: Vec<([(&str, &str); 2], u64)> = Vec::new();
    for (scope, map) in [
        ("ip", &total.ip_refusals),
        ("user", &total.user_refusals),
        ("message", &total.message_refusals),
    ] {
        for (&reason, &count) in map {
            limited.push(([("scope", scope), ("reason", reason)], count));
        }
    }
    limited.push(([("scope", "ip"), ("reason", "banned")], total.ip_bans));
    out.counter(
        "ringgate_rate_limited",
        "Limit hits by scope (ip, user, message) and reason.",
        &limited,
    )?;
    let mut rejected: Vec<([(&str, &str); 1], u64)> = Vec::new();
    for (&code, &count) in &total.protocol_errors_by_code {
        let reason = frame_rejection_reason(code);
        match rejected
            .iter_mut()
            .find(|(labels, _)| labels[0].1 == reason)
        {
            Some(entry) => entry.1 += count,
            None => rejected.push(([("reason", reason)], count)),
        }
    }
    out.counter(
        "ringgate_frames_rejected",
        "Frames that broke the protocol or a limit, by reason (the close code sent).",
        &rejected,
    )?;
    out.counter(
        "ringgate_timeouts",
        "Deadlines that fired, by kind.",
        &[
            ([("kind", "handshake")], total.handshake_timeouts),
            ([("kind", "frame")], total.frame_timeouts),
            ([("kind", "idle")], total.idle_timeouts),
            ([("kind", "close")], total.close_timeouts),
        ],
    )?;
    out.counter(
        "ringgate_slow_consumers",
        "Connections closed 1008 because their write queue passed the cap.",
        &[(NONE, total.slow_consumers)],
    )?;
    out.counter(
        "ringgate_socket_errors",
        "Client socket errors (resets, failed sends).",
        &[(NONE, total.socket_errors)],
    )?;
    out.counter(
        "ringgate_buffer_ring_exhausted",
        "Receives that found the provided-buffer ring empty.",
        &[(NONE, total.buffer_ring_exhausted)],
    )?;
    out.counter(
        "ringgate_tls_handshakes",
        "TLS handshakes completed.",
        &[(NONE, total.tls_handshakes)],
    )?;
    out.counter(
        "ringgate_tls_errors",
        "TLS failures, by reason.",
        &labelled("reason", &total.tls_errors),
    )
}

fn encode_relay(
    out: &mut Out<'_, '_>,
    views: &[Option<ShardView>],
    total: &ShardStats,
) -> Result<(), std::fmt::Error> {
    out.counter(
        "ringgate_publishes",
        "Client publishes, by outcome: sent to a router, buffered for a router that is down \
         (sent when it is back), unavailable, refused (limits, bad request).",
        &[
            ([("outcome", "sent")], total.publishes),
            ([("outcome", "buffered")], total.publishes_buffered),
            ([("outcome", "unavailable")], total.publish_unavailable),
            (
                [("outcome", "refused")],
                total.message_refusals.values().sum::<u64>() + total.bad_requests,
            ),
        ],
    )?;
    out.counter(
        "ringgate_publish_acks",
        "Answers to publishes sent to routers: ok (accepted or duplicate), rejected, or \
         router_lost (the link failed first; the client got unavailable).",
        &[
            ([("result", "ok")], total.acks),
            ([("result", "rejected")], total.publish_rejected),
            ([("result", "router_lost")], total.publishes_lost),
        ],
    )?;
    out.counter(
        "ringgate_deliveries_received",
        "DELIVER frames received from routers.",
        &[(NONE, total.deliveries_in)],
    )?;
    out.counter(
        "ringgate_deliveries_sent",
        "`msg` frames queued to clients.",
        &[(NONE, total.deliveries_out)],
    )?;
    let failures: Vec<_> = ["slow_consumer", "closed"]
        .iter()
        .map(|&reason| {
            let count = total.delivery_failures.get(reason).copied().unwrap_or(0);
            ([("reason", reason)], count)
        })
        .collect();
    out.counter(
        "ringgate_delivery_failures",
        "Deliveries not queued to a recipient, by reason.",
        &failures,
    )?;
    // Router ids come from the config: a bounded label.
    let mut routers: Vec<(u32, bool, u64, u64)> = Vec::new();
    for view in views.iter().flatten() {
        for router in &view.routers {
            let depth = u64::from(router.in_flight) + u64::from(router.held);
            match routers.iter_mut().find(|entry| entry.0 == router.id) {
                Some(entry) => {
                    entry.1 &= router.up;
                    entry.2 += depth;
                }
                None => routers.push((router.id, router.up, depth, 0)),
            }
        }
    }
    let label = |id: u32| [("router", id.to_string())];
    let up: Vec<_> = routers
        .iter()
        .map(|&(id, up, _, _)| (label(id), f64::from(u8::from(up))))
        .collect();
    out.gauge(
        "ringgate_router_up",
        "1 when every shard's link to the router is up.",
        &up,
    )?;
    let depth: Vec<_> = routers
        .iter()
        .map(|&(id, _, depth, _)| (label(id), depth as f64))
        .collect();
    out.gauge(
        "ringgate_router_buffer_depth",
        "Publishes for the router not yet acknowledged, all shards: sent, or held while it is down.",
        &depth,
    )?;
    let degraded = views.iter().flatten().any(|view| view.degraded);
    out.gauge(
        "ringgate_degraded",
        "1 while a router link that was up is down or its held publishes are not all sent.",
        &[(NONE, f64::from(u8::from(degraded)))],
    )?;
    let failures: Vec<_> = LINK_FAILURE_KINDS
        .iter()
        .map(|&reason| {
            let count = total.router_failures.get(reason).copied().unwrap_or(0);
            ([("reason", reason)], count)
        })
        .collect();
    out.counter(
        "ringgate_router_link_failures",
        "Router links lost, all routers, by reason: protocol, timeout (no HELLO_ACK), \
         silence (missed pings), connect, send, recv, closed (by the router).",
        &failures,
    )?;
    out.counter(
        "ringgate_router_request_refusals",
        "Subscribe/unsubscribe requests a router refused.",
        &[(NONE, total.router_refusals)],
    )
}

fn encode_latency(out: &mut Out<'_, '_>, total: &ShardStats) -> Result<(), std::fmt::Error> {
    let histograms = &total.histograms;
    histogram(
        out,
        "ringgate_handshake_duration_seconds",
        "TCP accept to the 101 response (TLS included for wss).",
        &[(NONE, &histograms.handshake_us)],
    )?;
    histogram(
        out,
        "ringgate_routing_latency_seconds",
        "Time inside the gateway: client frame in to PUBLISH out (to_router), \
         DELIVER in to frame out (to_client).",
        &[
            ([("direction", "to_router")], &histograms.to_router_us),
            ([("direction", "to_client")], &histograms.to_client_us),
        ],
    )?;
    histogram(
        out,
        "ringgate_router_rtt_seconds",
        "PUBLISH sent to PUBLISH_ACK handled.",
        &[(NONE, &histograms.router_rtt_us)],
    )?;
    histogram(
        out,
        "ringgate_delivery_latency_seconds",
        "The router's accept time (the message id's clock, ms resolution) to the frame \
         queued to the recipient.",
        &[(NONE, &histograms.delivery_us)],
    )?;
    histogram(
        out,
        "ringgate_write_queue_bytes",
        "Bytes queued on a connection at each send.",
        &[(NONE, &histograms.write_queue_bytes)],
    )
}

fn encode_saturation(
    out: &mut Out<'_, '_>,
    views: &[Option<ShardView>],
) -> Result<(), std::fmt::Error> {
    let per_shard = |value: &dyn Fn(&ShardView) -> f64| -> Vec<_> {
        views
            .iter()
            .enumerate()
            .map(|(index, view)| (shard_label(index), view.as_ref().map_or(0.0, value)))
            .collect()
    };
    let mut family = out.encoder.encode_descriptor(
        "ringgate_shard_busy_seconds",
        "Time each shard's loop spent working rather than waiting in io_uring.",
        None,
        MetricType::Counter,
    )?;
    for (index, view) in views.iter().enumerate() {
        let seconds = view.as_ref().map_or(0, |view| view.busy_us_total) as f64 / 1e6;
        ConstCounter::new(seconds).encode(family.encode_family(&shard_label(index))?)?;
    }
    out.gauge(
        "ringgate_shard_busy_ratio",
        "Working fraction of each shard's last full second.",
        &per_shard(&|view| view.busy_ratio),
    )?;
    out.gauge(
        "ringgate_uring_sq_depth",
        "Most io_uring submissions queued in one loop turn, last second.",
        &per_shard(&|view| view.sq_depth as f64),
    )?;
    out.gauge(
        "ringgate_uring_cq_depth",
        "Most io_uring completions reaped in one loop turn, last second.",
        &per_shard(&|view| view.cq_depth as f64),
    )
}
