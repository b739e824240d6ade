//! The result: JSON (`--json`), a human summary, and the percentile
//! distribution file (`--hist-out`). Every JSON field is documented in
//! docs/LOADGEN.md; change both together.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::stats::{ErrorCounts, Totals};
use crate::sys::{Machine, ProcSample};
use crate::timeline::Timeline;
use crate::worker::control::Window;

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: String,
    pub params: serde_json::Value,
    pub machine: Machine,
    pub started_at: String,
    pub duration_s: f64,
    pub results: Results,
    /// Per-second samples over the whole run (filled by the coordinator).
    pub timeline: Timeline,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub messages_per_s: f64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub unanswered: u64,
    pub latency_us: Percentiles,
    pub errors: ErrorCounts,
    pub loadgen_cpu: LoadgenCpu,
    pub servers: Vec<ServerResult>,
    pub connect: ConnectResult,
    pub procs: u32,
    pub threads: usize,
    pub conn_state_bytes: usize,
    /// Only in the pubsub scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pubsub: Option<PubSubResult>,
    /// Only in the churn scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub churn: Option<crate::churn::ChurnResult>,
    /// Only in the attack scenario.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attack: Option<crate::attack::AttackResult>,
}

/// The pubsub scenario's figures (docs/LOADGEN.md names each).
#[derive(Debug, Serialize, PartialEq)]
pub struct PubSubResult {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub surplus: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub out_of_order_pairs: u64,
    pub misrouted: u64,
    pub deliveries_per_s: f64,
    pub expected_per_s: f64,
    pub delivery_latency_us: Percentiles,
    pub publishes_sent: u64,
    pub publishes_not_sent: u64,
    pub publishes_in_window: u64,
    pub publishes_per_s: f64,
    pub acked: u64,
    pub refused: u64,
    pub duplicate_acks: u64,
    pub ack_latency_us: Percentiles,
    pub errors_by_code: ErrorCounts,
    pub subscriptions_planned: u64,
    pub subscriptions_confirmed: u64,
    pub subscriptions_failed: u64,
    pub topics_with_subscribers: u64,
    pub subscribers_per_topic_max: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub p9999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Percentiles {
        let q = |quantile| histogram.value_at_quantile(quantile);
        Percentiles {
            count: histogram.len(),
            p50: q(0.5),
            p90: q(0.9),
            p99: q(0.99),
            p999: q(0.999),
            p9999: q(0.9999),
            max: histogram.max(),
            mean: round3(histogram.mean()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct LoadgenCpu {
    pub user_us_per_msg: Option<f64>,
    pub sys_us_per_msg: Option<f64>,
    pub user_s: f64,
    pub sys_s: f64,
    pub cpu_util: f64,
}

#[derive(Debug, Serialize)]
pub struct ServerResult {
    pub pid: u32,
    pub user_us_per_msg: Option<f64>,
    pub sys_us_per_msg: Option<f64>,
    pub total_us_per_msg: Option<f64>,
    pub cpu_util: Option<f64>,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
    pub rss_per_conn: Option<f64>,
    /// Connections this server gained: its socket count after minus before,
    /// or loadgen's open connections split evenly if /proc/PID/fd is unreadable.
    pub conns: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ConnectResult {
    pub planned: u64,
    pub attempted: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub connect_rate_per_s: f64,
    pub held_at_end: u64,
    pub handshake_us: Percentiles,
    pub pings_sent: u64,
    pub pongs_received: u64,
}

/// Samples of one server process taken during the run.
#[derive(Debug, Clone, Default)]
pub struct ServerSamples {
    pub pid: u32,
    /// Before the first connect.
    pub before: Option<ProcSample>,
    /// Once every connection was open (or failed).
    pub after_connect: Option<ProcSample>,
    /// loadgen's connections open when `after_connect` was taken.
    pub open_at_after: u64,
    /// Sockets the server held before the first connect and after.
    pub sockets_before: Option<u64>,
    pub sockets_after: Option<u64>,
    pub window_start: Option<ProcSample>,
    pub window_end: Option<ProcSample>,
    pub error: Option<String>,
}

pub struct RunFacts {
    pub scenario: String,
    pub params: serde_json::Value,
    pub machine: Machine,
    pub started_at: String,
    pub window: Window,
    pub totals: Totals,
    pub servers: Vec<ServerSamples>,
    pub procs: u32,
    pub threads: usize,
    pub conn_state_bytes: usize,
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn per_second(count: u64, window_s: f64) -> f64 {
    if window_s > 0.0 {
        round3(count as f64 / window_s)
    } else {
        0.0
    }
}

fn pubsub_result(totals: &Totals, window_s: f64) -> PubSubResult {
    let counts = &totals.pubsub;
    let summary = totals.topics.summary();
    let errors_by_code = totals
        .errors
        .iter()
        .filter_map(|(key, count)| Some((key.strip_prefix("err_")?.to_string(), *count)))
        .collect();
    PubSubResult {
        expected: summary.expected,
        delivered: summary.delivered,
        lost: summary.lost,
        surplus: summary.surplus,
        duplicates: counts.duplicates,
        out_of_order: counts.out_of_order,
        out_of_order_pairs: counts.out_of_order_pairs,
        misrouted: counts.misrouted,
        deliveries_per_s: per_second(counts.deliveries_in_window, window_s),
        expected_per_s: per_second(summary.expected, window_s),
        delivery_latency_us: Percentiles::of(&totals.latency),
        publishes_sent: counts.publishes_sent,
        publishes_not_sent: counts.publishes_not_sent,
        publishes_in_window: counts.publishes_in_window,
        publishes_per_s: per_second(counts.publishes_in_window, window_s),
        acked: counts.acked,
        refused: counts.refused,
        duplicate_acks: counts.duplicate_acks,
        ack_latency_us: Percentiles::of(&totals.ack_latency),
        errors_by_code,
        subscriptions_planned: counts.subscriptions_planned,
        subscriptions_confirmed: counts.subscriptions_confirmed,
        subscriptions_failed: counts.subscriptions_failed,
        topics_with_subscribers: summary.topics_with_subscribers,
        subscribers_per_topic_max: summary.subscribers_per_topic_max,
    }
}

fn per_message(micros: u64, messages: u64) -> Option<f64> {
    (messages > 0).then(|| round3(micros as f64 / messages as f64))
}

pub fn build(facts: RunFacts) -> Report {
    let window_s = facts.window.length_s();
    let window_us = window_s * 1e6;
    let counts = facts.totals.counts;
    let messages = counts.received_in_window;
    let cpu = facts.totals.cpu;
    let servers = facts
        .servers
        .iter()
        .map(|s| server_result(s, facts.servers.len(), messages, window_us))
        .collect();
    let pubsub = (facts.scenario == "pubsub").then(|| pubsub_result(&facts.totals, window_s));
    let churn = (facts.scenario == "churn").then(|| {
        crate::churn::result(
            &facts.params,
            &facts.totals.churn,
            counts.held_at_end,
            window_s,
        )
    });
    let attack = (facts.scenario == "attack").then(|| crate::attack::result(&facts.totals.attack));
    let connect_span_s = counts
        .last_connect_ns
        .saturating_sub(counts.first_attempt_ns) as f64
        / 1e9;
    Report {
        scenario: facts.scenario,
        params: facts.params,
        machine: facts.machine,
        started_at: facts.started_at,
        duration_s: round3(window_s),
        results: Results {
            messages_per_s: if window_s > 0.0 {
                round3(messages as f64 / window_s)
            } else {
                0.0
            },
            messages_sent: counts.messages_sent,
            messages_received: messages,
            unanswered: counts.unanswered,
            latency_us: Percentiles::of(&facts.totals.latency),
            errors: facts.totals.errors.clone(),
            loadgen_cpu: LoadgenCpu {
                user_us_per_msg: per_message(cpu.user_us, messages),
                sys_us_per_msg: per_message(cpu.sys_us, messages),
                user_s: round3(cpu.user_us as f64 / 1e6),
                sys_s: round3(cpu.sys_us as f64 / 1e6),
                cpu_util: utilisation(cpu.user_us + cpu.sys_us, window_us).unwrap_or(0.0),
            },
            servers,
            connect: ConnectResult {
                planned: counts.conns_planned,
                attempted: counts.connect_attempts,
                succeeded: counts.connects_ok,
                failed: counts.connects_failed,
                connect_rate_per_s: if connect_span_s > 0.0 {
                    round3(counts.connects_ok as f64 / connect_span_s)
                } else {
                    0.0
                },
                held_at_end: counts.held_at_end,
                handshake_us: Percentiles::of(&facts.totals.handshake),
                pings_sent: counts.pings_sent,
                pongs_received: counts.pongs_received,
            },
            procs: facts.procs,
            threads: facts.threads,
            conn_state_bytes: facts.conn_state_bytes,
            pubsub,
            churn,
            attack,
        },
        timeline: Timeline::default(),
    }
}

/// CPU time as a percentage of one core over the window.
fn utilisation(cpu_us: u64, window_us: f64) -> Option<f64> {
    (window_us > 0.0).then(|| round3(cpu_us as f64 * 100.0 / window_us))
}

fn server_result(
    samples: &ServerSamples,
    servers: usize,
    messages: u64,
    window_us: f64,
) -> ServerResult {
    let cpu = match (samples.window_start, samples.window_end) {
        (Some(start), Some(end)) => Some(end.cpu.since(start.cpu)),
        _ => None,
    };
    let rss_before = samples.before.map(|s| s.rss_bytes);
    let rss_after = samples.after_connect.map(|s| s.rss_bytes);
    let conns = match (samples.sockets_before, samples.sockets_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => Some(samples.open_at_after / servers.max(1) as u64),
    }
    .filter(|&c| c > 0);
    let rss_per_conn = match (rss_before, rss_after, conns) {
        (Some(before), Some(after), Some(conns)) => {
            Some(round3((after as f64 - before as f64) / conns as f64))
        }
        _ => None,
    };
    ServerResult {
        pid: samples.pid,
        user_us_per_msg: cpu.and_then(|c| per_message(c.user_us, messages)),
        sys_us_per_msg: cpu.and_then(|c| per_message(c.sys_us, messages)),
        total_us_per_msg: cpu.and_then(|c| per_message(c.user_us + c.sys_us, messages)),
        cpu_util: cpu.and_then(|c| utilisation(c.user_us + c.sys_us, window_us)),
        rss_before,
        rss_after,
        rss_per_conn,
        conns,
        error: samples.error.clone(),
    }
}

fn opt(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.3}{unit}"))
}

/// The table printed at the end of a run.
pub fn summary(report: &Report) -> String {
    let r = &report.results;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringgate-loadgen {} | {} procs x {} threads | window {:.1}s | {} ({} cores), kernel {}",
        report.scenario,
        r.procs,
        r.threads,
        report.duration_s,
        report.machine.cpu_model,
        report.machine.cores,
        report.machine.kernel
    );
    let c = &r.connect;
    let _ = writeln!(
        s,
        "connections  planned {}  ok {}  failed {}  held at end {}  rate {:.0}/s",
        c.planned, c.succeeded, c.failed, c.held_at_end, c.connect_rate_per_s
    );
    let h = &c.handshake_us;
    let _ = writeln!(
        s,
        "handshake us p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        h.p50, h.p90, h.p99, h.p999, h.max
    );
    let l = &r.latency_us;
    if report.scenario == "echo" {
        let _ = writeln!(
            s,
            "messages     {:.0}/s  received {}  sent {}  unanswered {}",
            r.messages_per_s, r.messages_received, r.messages_sent, r.unanswered
        );
        let _ = writeln!(
            s,
            "latency us   p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
        );
    } else if let Some(p) = &r.pubsub {
        pubsub_summary(&mut s, p);
    } else if let Some(c) = &r.churn {
        crate::churn::summary(&mut s, c);
    } else if let Some(a) = &r.attack {
        crate::attack::summary(&mut s, a);
    } else if c.pings_sent > 0 {
        let _ = writeln!(
            s,
            "ping rtt us  p50 {}  p99 {}  max {}  (pings {}, pongs {})",
            l.p50, l.p99, l.max, c.pings_sent, c.pongs_received
        );
    }
    let cpu = &r.loadgen_cpu;
    let _ = writeln!(
        s,
        "loadgen cpu  user {} sys {} per msg  ({:.1}% of a core)",
        opt(cpu.user_us_per_msg, "us"),
        opt(cpu.sys_us_per_msg, "us"),
        cpu.cpu_util
    );
    for server in &r.servers {
        let _ = writeln!(
            s,
            "server {:<6} user {} sys {} total {} per msg  cpu {}  rss {} -> {} ({} B/conn over {} conns){}",
            server.pid,
            opt(server.user_us_per_msg, "us"),
            opt(server.sys_us_per_msg, "us"),
            opt(server.total_us_per_msg, "us"),
            opt(server.cpu_util, "%"),
            server.rss_before.map_or("-".into(), |b| b.to_string()),
            server.rss_after.map_or("-".into(), |b| b.to_string()),
            opt(server.rss_per_conn, ""),
            server.conns.map_or("-".into(), |c| c.to_string()),
            server
                .error
                .as_ref()
                .map_or(String::new(), |e| format!("  ({e})"))
        );
    }
    if r.errors.is_empty() {
        let _ = writeln!(s, "errors       none");
    } else {
        let list: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "errors       {}", list.join(", "));
        for key in r.errors.keys() {
            if let Some(hint) = crate::hints::hint_for(key) {
                let _ = writeln!(s, "  hint: {hint}");
            }
        }
    }
    s
}

fn pubsub_summary(s: &mut String, p: &PubSubResult) {
    let _ = writeln!(
        s,
        "subscribe    planned {}  confirmed {}  failed {}  topics with subscribers {} (max {} per topic)",
        p.subscriptions_planned,
        p.subscriptions_confirmed,
        p.subscriptions_failed,
        p.topics_with_subscribers,
        p.subscribers_per_topic_max
    );
    let _ = writeln!(
        s,
        "publishes    {:.0}/s  in window {}  acked {}  refused {}  sent {}  not sent {}",
        p.publishes_per_s,
        p.publishes_in_window,
        p.acked,
        p.refused,
        p.publishes_sent,
        p.publishes_not_sent
    );
    let _ = writeln!(
        s,
        "deliveries   {:.0}/s (expected {:.0}/s)  expected {}  delivered {}  lost {}  surplus {}",
        p.deliveries_per_s, p.expected_per_s, p.expected, p.delivered, p.lost, p.surplus
    );
    let _ = writeln!(
        s,
        "anomalies    duplicates {}  out of order {} (in {} subscriptions)  misrouted {}  duplicate acks {}",
        p.duplicates, p.out_of_order, p.out_of_order_pairs, p.misrouted, p.duplicate_acks
    );
    for (label, l) in [
        ("delivery us ", &p.delivery_latency_us),
        ("ack us      ", &p.ack_latency_us),
    ] {
        let _ = writeln!(
            s,
            "{label} p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
        );
    }
}

/// HdrHistogram's percentile distribution text (values in milliseconds),
/// readable by the usual .hgrm plotters.
pub fn percentile_distribution(histogram: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let ms = |us: u64| us as f64 / 1000.0;
    let mut total = 0u64;
    for value in histogram.iter_quantiles(5) {
        total += value.count_since_last_iteration();
        let quantile = value.quantile_iterated_to();
        if quantile < 1.0 {
            let _ = writeln!(
                s,
                "{:12.3} {:2.12} {:10} {:14.2}",
                ms(value.value_iterated_to()),
                quantile,
                total,
                1.0 / (1.0 - quantile)
            );
        } else {
            let _ = writeln!(
                s,
                "{:12.3} {:2.12} {:10}",
                ms(value.value_iterated_to()),
                quantile,
                total
            );
        }
    }
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        histogram.mean() / 1000.0,
        histogram.stdev() / 1000.0
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        ms(histogram.max()),
        histogram.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        histogram.buckets(),
        histogram.distinct_values()
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;
    use crate::sys::CpuTime;

    fn sample(user_us: u64, sys_us: u64, rss_bytes: u64) -> Option<ProcSample> {
        Some(ProcSample {
            cpu: CpuTime { user_us, sys_us },
            rss_bytes,
        })
    }

    #[test]
    fn per_message_and_utilisation_figures() {
        let mut totals = Totals::default();
        totals.counts.received_in_window = 1_000_000;
        totals.counts.connects_ok = 100;
        totals.counts.first_attempt_ns = 1_000_000_000;
        totals.counts.last_connect_ns = 1_500_000_000;
        totals.cpu = CpuTime {
            user_us: 500_000,
            sys_us: 1_500_000,
        };
        let server = ServerSamples {
            pid: 42,
            before: sample(0, 0, 10_000_000),
            after_connect: sample(0, 0, 10_000_000 + 100 * 4096),
            open_at_after: 100,
            sockets_before: Some(3),
            sockets_after: Some(103),
            window_start: sample(1_000_000, 1_000_000, 0),
            window_end: sample(3_000_000, 7_000_000, 0),
            error: None,
        };
        let report = build(RunFacts {
            scenario: "echo".into(),
            params: serde_json::json!({}),
            machine: crate::sys::machine(),
            started_at: "2025-01-01T00:00:00Z".into(),
            window: Window {
                go_ns: 0,
                start_ns: 0,
                end_ns: 10_000_000_000,
                drain_end_ns: 10_000_000_000,
            },
            totals,
            servers: vec![server],
            procs: 1,
            threads: 1,
            conn_state_bytes: 80,
        });
        let r = &report.results;
        assert_eq!(r.messages_per_s, 100_000.0);
        assert_eq!(r.loadgen_cpu.user_us_per_msg, Some(0.5));
        assert_eq!(r.loadgen_cpu.sys_us_per_msg, Some(1.5));
        assert_eq!(r.loadgen_cpu.cpu_util, 20.0);
        let s = &r.servers[0];
        assert_eq!(s.user_us_per_msg, Some(2.0));
        assert_eq!(s.sys_us_per_msg, Some(6.0));
        assert_eq!(s.total_us_per_msg, Some(8.0));
        assert_eq!(s.cpu_util, Some(80.0));
        assert_eq!(s.rss_per_conn, Some(4096.0));
        assert_eq!(s.conns, Some(100));
        assert_eq!(r.connect.connect_rate_per_s, 200.0);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["results"]["servers"][0]["pid"], 42);
        assert!(json["results"]["latency_us"]["p9999"].is_u64());
    }

    #[test]
    fn no_messages_means_no_per_message_figures() {
        let report = build(RunFacts {
            scenario: "connect".into(),
            params: serde_json::json!({}),
            machine: crate::sys::machine(),
            started_at: String::new(),
            window: Window {
                go_ns: 0,
                start_ns: 0,
                end_ns: 1_000_000_000,
                drain_end_ns: 1_000_000_000,
            },
            totals: Totals::default(),
            servers: vec![],
            procs: 1,
            threads: 1,
            conn_state_bytes: 80,
        });
        assert_eq!(report.results.loadgen_cpu.user_us_per_msg, None);
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["results"]["loadgen_cpu"]["user_us_per_msg"].is_null());
    }

    #[test]
    fn distribution_file_ends_at_the_max() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.saturating_record(v * 10);
        }
        let text = percentile_distribution(&h);
        assert!(text.starts_with("       Value"));
        let last_row = text
            .lines()
            .rfind(|l| !l.starts_with('#') && !l.trim().is_empty())
            .unwrap();
        assert!(last_row.contains("1.000000000000"), "{last_row}");
        assert!(last_row.trim_start().starts_with("10.0"), "{last_row}");
        assert!(text.contains("Total count    =         1000"));
    }
}
