//! The router's Prometheus metrics (`ringgate_router_*`): a
//! prometheus-client [`Collector`] over the latest [`RouterSnapshot`] a
//! running router published (docs/operations/METRICS.md, "Router"). The
//! gateway registers it for the router it embeds; the standalone
//! `ringgate-router` serves it on `--admin`.
//!
//! Labels come from fixed sets (result, role, direction, reason): never
//! topics, users or addresses. With no snapshot in the slot nothing is
//! exported ([`Router::with_snapshots`](crate::server::Router::with_snapshots)
//! puts one there before the router starts).

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::admin_http::{Request, Response};
use crate::server::{RouterSnapshot, Snapshots};

/// Exports a router's snapshots.
#[derive(Debug)]
pub struct RouterCollector {
    pub snapshots: Arc<Snapshots>,
}

/// Writes metric families into a scrape: the shared shape of every
/// counter and gauge ringgate exports.
pub struct Families<'a, 'b> {
    pub encoder: &'a mut DescriptorEncoder<'b>,
}

impl Families<'_, '_> {
    /// A counter family; `name` without `_total` (the encoder adds it).
    pub fn counter<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(L, u64)],
    ) -> Result<(), std::fmt::Error> {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }

    pub fn gauge<L: EncodeLabelSet>(
        &mut self,
        name: &str,
        help: &str,
        samples: &[(L, f64)],
    ) -> Result<(), std::fmt::Error> {
        let mut family = self
            .encoder
            .encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (labels, value) in samples {
            ConstGauge::new(*value).encode(family.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// Samples without labels.
pub type NoLabels = [(&'static str, &'static str); 0];
pub const NONE: NoLabels = [];

impl Collector for RouterCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(snapshot) = self.snapshots.latest() else {
            return Ok(());
        };
        let out = &mut Families {
            encoder: &mut encoder,
        };
        encode_state(out, &snapshot)?;
        encode_sessions(out, &snapshot)?;
        encode_publishes(out, &snapshot)?;
        encode_routing(out, &snapshot)
    }
}

fn encode_state(
    out: &mut Families<'_, '_>,
    snapshot: &RouterSnapshot,
) -> Result<(), std::fmt::Error> {
    out.gauge(
        "ringgate_router_info",
        "The router's node id and version (always 1).",
        &[(
            [
                ("id", snapshot.id.to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ],
            1.0,
        )],
    )?;
    out.gauge(
        "ringgate_router_uptime_seconds",
        "Seconds since the router started.",
        &[(NONE, snapshot.uptime_ms as f64 / 1e3)],
    )?;
    out.gauge(
        "ringgate_router_connections",
        "Open connections, any phase (before HELLO too).",
        &[(NONE, snapshot.peers as f64)],
    )?;
    out.gauge(
        "ringgate_router_peers",
        "Open sessions (HELLO accepted), by role.",
        &[
            ([("role", "gateway")], snapshot.gateways as f64),
            ([("role", "backend")], snapshot.backends as f64),
        ],
    )?;
    out.gauge(
        "ringgate_router_topics",
        "Topics with at least one subscribed gateway node.",
        &[(NONE, snapshot.topics as f64)],
    )?;
    out.gauge(
        "ringgate_router_pending_publishes",
        "Publishes waiting for a backend's verdict (or behind one on their topic).",
        &[(NONE, snapshot.pending_publishes as f64)],
    )
}

fn encode_sessions(
    out: &mut Families<'_, '_>,
    snapshot: &RouterSnapshot,
) -> Result<(), std::fmt::Error> {
    let stats = &snapshot.stats;
    out.counter(
        "ringgate_router_connections_accepted",
        "TCP connections accepted.",
        &[(NONE, stats.accepted)],
    )?;
    out.counter(
        "ringgate_router_sessions_opened",
        "HELLOs accepted, by role.",
        &[
            ([("role", "gateway")], stats.gateways_attached),
            ([("role", "backend")], stats.backends_attached),
        ],
    )?;
    out.counter(
        "ringgate_router_connections_refused",
        "Connections refused: at_capacity (max_peers open), hello (bad token, role, \
         version, or no HELLO in time).",
        &[
            ([("reason", "at_capacity")], stats.refused_at_capacity),
            ([("reason", "hello")], stats.hellos_refused),
        ],
    )?;
    out.counter(
        "ringgate_router_protocol_errors",
        "Peers closed for breaking the frame format or the connection rules.",
        &[(NONE, stats.protocol_errors)],
    )?;
    out.counter(
        "ringgate_router_flow_control_violations",
        "Peers that sent a PUBLISH or DELIVER without credit.",
        &[(NONE, stats.flow_control_violations)],
    )?;
    out.counter(
        "ringgate_router_slow_peers_disconnected",
        "Peers closed because their queued output passed max_output_bytes.",
        &[(NONE, stats.slow_peers_disconnected)],
    )?;
    out.counter(
        "ringgate_router_peer_timeouts",
        "Peers closed for silence (no HELLO in time, or idle past the timeout).",
        &[(NONE, stats.timeouts)],
    )?;
    out.counter(
        "ringgate_router_bytes_received",
        "Bytes read from peers.",
        &[(NONE, stats.bytes_in)],
    )?;
    out.counter(
        "ringgate_router_bytes_sent",
        "Bytes written to peers.",
        &[(NONE, stats.bytes_out)],
    )?;
    out.counter(
        "ringgate_router_buffer_ring_exhausted",
        "Receives stopped because the buffer ring ran dry (re-armed, nothing lost).",
        &[(NONE, stats.buffer_ring_exhausted)],
    )
}

fn encode_publishes(
    out: &mut Families<'_, '_>,
    snapshot: &RouterSnapshot,
) -> Result<(), std::fmt::Error> {
    let stats = &snapshot.stats;
    out.counter(
        "ringgate_router_publishes",
        "Publishes answered, by result: accepted, duplicate, rejected (by a backend), \
         unavailable (no backend, verdict timeout, too many waiting).",
        &[
            ([("result", "accepted")], stats.accepted_publishes),
            ([("result", "duplicate")], stats.duplicates),
            ([("result", "rejected")], stats.rejected_publishes),
            ([("result", "unavailable")], stats.unavailable_publishes),
        ],
    )?;
    out.counter(
        "ringgate_router_publishes_received",
        "PUBLISH frames received from gateways.",
        &[(NONE, stats.publishes)],
    )?;
    out.counter(
        "ringgate_router_publishes_forwarded",
        "Publishes forwarded to the backend that claimed their topic.",
        &[(NONE, stats.forwarded_to_backends)],
    )?;
    out.counter(
        "ringgate_router_verdict_timeouts",
        "Forwarded publishes whose backend verdict did not come in time.",
        &[(NONE, stats.verdict_timeouts)],
    )?;
    out.counter(
        "ringgate_router_unmatched_verdicts",
        "Backend verdicts for no waiting publish (late, or an unknown id).",
        &[(NONE, stats.unmatched_verdicts)],
    )?;
    out.counter(
        "ringgate_router_dedup_entries_dropped",
        "Dedup entries dropped: evicted (table full, before their window ended), expired.",
        &[
            ([("reason", "evicted")], stats.dedup_evicted_before_expiry),
            ([("reason", "expired")], stats.dedup_expired),
        ],
    )?;
    out.counter(
        "ringgate_router_clock_errors",
        "Message ids the clock could not issue (wall clock out of range).",
        &[(NONE, stats.clock_errors)],
    )
}

fn encode_routing(
    out: &mut Families<'_, '_>,
    snapshot: &RouterSnapshot,
) -> Result<(), std::fmt::Error> {
    let stats = &snapshot.stats;
    out.counter(
        "ringgate_router_backend_delivers",
        "DELIVER frames received from backends.",
        &[(NONE, stats.backend_deliveries)],
    )?;
    out.counter(
        "ringgate_router_deliver_frames",
        "DELIVER frames queued to gateways (one per gateway node reached).",
        &[(NONE, stats.deliver_frames_out)],
    )?;
    out.counter(
        "ringgate_router_unroutable",
        "Deliveries or kicks that reached no gateway (no subscriber, user not present).",
        &[(NONE, stats.unroutable)],
    )?;
    out.counter(
        "ringgate_router_too_large_for_gateway",
        "Deliveries not sent to a gateway whose max_body_bytes is smaller than the frame.",
        &[(NONE, stats.too_large_for_gateway)],
    )?;
    out.counter(
        "ringgate_router_kicks",
        "KICK frames forwarded to gateways.",
        &[(NONE, stats.kicks_out)],
    )?;
    out.counter(
        "ringgate_router_presence_frames",
        "PRESENCE frames, by direction: in (from gateways), out (to backends).",
        &[
            ([("direction", "in")], stats.presence_in),
            ([("direction", "out")], stats.presence_out),
        ],
    )?;
    out.counter(
        "ringgate_router_presence_over_limit",
        "PRESENCE entries dropped because a gateway passed max_presence_per_gateway.",
        &[(NONE, stats.presence_over_limit)],
    )
}

/// The `/metrics` answer: the registry in the format the request asks for.
pub fn response(registry: &Registry, request: &Request<'_>) -> Response {
    let openmetrics = request.accepts_openmetrics();
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    Response {
        status: 200,
        content_type,
        body: render(registry, openmetrics),
    }
}

/// Renders the registry: OpenMetrics when asked for it, else the Prometheus
/// text format 0.0.4 (what `promtool check metrics` and older scrapers
/// read: counters named with `_total` in HELP and TYPE, no `# EOF`).
pub fn render(registry: &Registry, openmetrics: bool) -> String {
    let mut text = String::with_capacity(16 << 10);
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        text.clear();
        let _ = writeln!(text, "# encoding failed");
    }
    if openmetrics {
        text
    } else {
        to_prometheus_text(&text)
    }
}

/// OpenMetrics text to Prometheus text 0.0.4.
fn to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some(name) = rest.strip_suffix(" counter")
        {
            counters.insert(name.to_string());
        }
    }
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_total_in_their_help_and_type_lines() {
        let openmetrics = "# HELP a_thing A.\n# TYPE a_thing counter\na_thing_total 3\n\
                           # HELP b B.\n# TYPE b gauge\n# UNIT b seconds\nb 1\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP a_thing_total A.\n# TYPE a_thing_total counter\na_thing_total 3\n\
             # HELP b B.\n# TYPE b gauge\nb 1\n"
        );
    }
}
