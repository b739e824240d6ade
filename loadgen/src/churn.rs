//! The `churn` scenario's flags, counts and report: a population of N
//! connections of which R per second are closed and reopened (rate mode), or
//! all of which are dropped and reopened at once (`--storm`, the reconnect
//! thundering herd after a partition heals).
//!
//! The event-loop part lives in `worker/thread/churn.rs`; this module holds
//! what crosses threads and processes (`ChurnTotals`, merged exactly) and
//! what the report shows (`ChurnResult`).

use std::fmt::Write as _;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::cli::{CommonArgs, Rate, Seconds};
use crate::report::Percentiles;
use crate::stats::{ErrorCounts, Hist, merge_errors};
use crate::worker::control::Window;

/// Most storms one run books (bounds `ChurnTotals`'s vectors).
pub const STORMS_MAX: usize = 1000;

#[derive(Args, Debug, Clone, Serialize)]
pub struct ChurnArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Connections held (the population).
    #[arg(long, default_value_t = 100)]
    pub conns: u64,
    /// Connections closed and reopened per second over all workers (e.g. 50 or 50/s).
    #[arg(long, default_value = "10/s")]
    pub rate: Rate,
    /// Storm mode: drop every connection at once, then reopen all as fast as --max-pending allows.
    #[arg(long)]
    pub storm: bool,
    /// Storm mode: time between storms (default: one storm, at the window's start).
    #[arg(long, requires = "storm")]
    pub storm_every: Option<Seconds>,
}

pub fn validate(args: &ChurnArgs) -> Result<(), String> {
    if args.common.duration.0.is_zero() {
        return Err("--duration must be above 0".into());
    }
    if !args.storm && args.rate.0 <= 0.0 {
        return Err("--rate must be above 0 (or use --storm)".into());
    }
    if let Some(every) = args.storm_every {
        if every.0.is_zero() {
            return Err("--storm-every must be above 0".into());
        }
        if args.common.duration.0.as_secs_f64() / every.0.as_secs_f64() > STORMS_MAX as f64 {
            return Err(format!("--storm-every gives more than {STORMS_MAX} storms"));
        }
    }
    Ok(())
}

/// Warmup holds the population; churn runs from the window's start to its
/// end; the drain waits (up to --timeout) for the last reconnects.
pub fn window(args: &ChurnArgs, go_ns: u64) -> Window {
    Window::measured(go_ns, &args.common, args.common.timeout.as_ns())
}

/// What one thread does: its share of the churn rate, or storms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnPlan {
    /// Rate mode: closes-and-reopens per second for this thread.
    pub rate: f64,
    /// Storm mode: time between storms (`u64::MAX`: one storm).
    pub storm_every_ns: Option<u64>,
}

impl ChurnPlan {
    pub fn of(args: &ChurnArgs, fraction: f64) -> ChurnPlan {
        ChurnPlan {
            rate: args.rate.0 * fraction,
            storm_every_ns: args
                .storm
                .then(|| args.storm_every.map_or(u64::MAX, Seconds::as_ns)),
        }
    }
}

/// Churn counts of a thread, process or run. Everything here happened to
/// connections (re)opened or closed inside the window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChurnTotals {
    /// Open connections loadgen closed on purpose (close frame 1000, then the socket).
    pub closes: u64,
    pub reconnects_attempted: u64,
    pub reconnects_ok: u64,
    pub reconnects_failed: u64,
    /// Churn turns that found their connection still reconnecting (skipped).
    pub skipped: u64,
    /// TCP connect start to `101` of reconnects.
    pub handshake: Hist,
    /// Failed reconnects by reason (the `errors` keys).
    pub failures: ErrorCounts,
    /// Storm k began at `storm_started_ns[k]`; its last connection was up
    /// (or had failed) at `storm_settled_ns[k]` (monotonic ns, the same clock
    /// in every process; merged by maximum).
    pub storm_started_ns: Vec<u64>,
    pub storm_settled_ns: Vec<u64>,
}

impl ChurnTotals {
    pub fn merge(&mut self, other: &ChurnTotals) {
        self.closes += other.closes;
        self.reconnects_attempted += other.reconnects_attempted;
        self.reconnects_ok += other.reconnects_ok;
        self.reconnects_failed += other.reconnects_failed;
        self.skipped += other.skipped;
        self.handshake.merge(&other.handshake);
        merge_errors(&mut self.failures, &other.failures);
        merge_max(&mut self.storm_started_ns, &other.storm_started_ns);
        merge_max(&mut self.storm_settled_ns, &other.storm_settled_ns);
    }
}

fn merge_max(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a = (*a).max(*b);
    }
}

/// The `results.churn` object (docs/LOADGEN.md names each field).
#[derive(Debug, Serialize, PartialEq)]
pub struct ChurnResult {
    pub mode: &'static str,
    pub population: u64,
    pub target_per_s: Option<f64>,
    pub closes: u64,
    pub closes_per_s: f64,
    pub reconnects_attempted: u64,
    pub reconnects_ok: u64,
    pub connects_per_s: f64,
    pub reconnects_failed: u64,
    pub failures: ErrorCounts,
    pub skipped: u64,
    pub handshake_us: Percentiles,
    pub held_at_end: u64,
    pub storms: usize,
    pub storm_settle_ms: Vec<f64>,
}

/// `params` is the run's `params` object (the flags as given).
pub fn result(
    params: &serde_json::Value,
    totals: &ChurnTotals,
    held_at_end: u64,
    window_s: f64,
) -> ChurnResult {
    let per_s = |n: u64| {
        if window_s > 0.0 {
            (n as f64 / window_s * 1000.0).round() / 1000.0
        } else {
            0.0
        }
    };
    let storm_settle_ms = totals
        .storm_started_ns
        .iter()
        .zip(&totals.storm_settled_ns)
        .map(|(start, settled)| (settled.saturating_sub(*start) as f64 / 1e3).round() / 1e3)
        .collect();
    let storm = params["storm"].as_bool().unwrap_or(false);
    ChurnResult {
        mode: if storm { "storm" } else { "rate" },
        population: params["conns"].as_u64().unwrap_or(0),
        target_per_s: if storm { None } else { params["rate"].as_f64() },
        closes: totals.closes,
        closes_per_s: per_s(totals.closes),
        reconnects_attempted: totals.reconnects_attempted,
        reconnects_ok: totals.reconnects_ok,
        connects_per_s: per_s(totals.reconnects_ok),
        reconnects_failed: totals.reconnects_failed,
        failures: totals.failures.clone(),
        skipped: totals.skipped,
        handshake_us: Percentiles::of(&totals.handshake.0),
        held_at_end,
        storms: totals.storm_started_ns.len(),
        storm_settle_ms,
    }
}

/// The summary table's churn lines.
pub fn summary(s: &mut String, c: &ChurnResult) {
    let target = c
        .target_per_s
        .map_or_else(|| "storm".to_string(), |t| format!("target {t:.0}/s"));
    let _ = writeln!(
        s,
        "churn        {target}  closes {} ({:.1}/s)  reconnects ok {} ({:.1}/s)  failed {}  skipped {}  held at end {}/{}",
        c.closes,
        c.closes_per_s,
        c.reconnects_ok,
        c.connects_per_s,
        c.reconnects_failed,
        c.skipped,
        c.held_at_end,
        c.population
    );
    let h = &c.handshake_us;
    let _ = writeln!(
        s,
        "reconnect us p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}",
        h.p50, h.p90, h.p99, h.p999, h.p9999, h.max
    );
    if !c.failures.is_empty() {
        let list: Vec<String> = c.failures.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "failed by    {}", list.join(", "));
    }
    if c.storms > 0 {
        let list: Vec<String> = c
            .storm_settle_ms
            .iter()
            .map(|ms| format!("{ms:.1}"))
            .collect();
        let _ = writeln!(
            s,
            "storms       {}  all back (or failed) after ms: {}",
            c.storms,
            list.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storms_merge_by_latest_settle_and_counts_add() {
        let mut a = ChurnTotals {
            closes: 3,
            storm_started_ns: vec![100, 1000],
            storm_settled_ns: vec![150, 1200],
            ..ChurnTotals::default()
        };
        a.handshake.0.saturating_record(10);
        a.failures.insert("refused".into(), 1);
        let mut b = ChurnTotals {
            closes: 4,
            storm_started_ns: vec![100],
            storm_settled_ns: vec![190],
            ..ChurnTotals::default()
        };
        b.handshake.0.saturating_record(20);
        b.failures.insert("refused".into(), 2);
        a.merge(&b);
        assert_eq!(a.closes, 7);
        assert_eq!(a.storm_settled_ns, vec![190, 1200]);
        assert_eq!(a.handshake.0.len(), 2);
        assert_eq!(a.failures["refused"], 3);
        let json = serde_json::to_string(&a).unwrap();
        let back: ChurnTotals = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn storm_settle_times_are_relative_to_their_storm() {
        use clap::Parser as _;
        let cli = crate::cli::Cli::parse_from(["loadgen", "churn", "--conns", "10", "--storm"]);
        let crate::cli::Scenario::Churn(args) = cli.scenario else {
            panic!("parsed as churn");
        };
        let totals = ChurnTotals {
            storm_started_ns: vec![1_000_000_000],
            storm_settled_ns: vec![1_250_000_000],
            reconnects_ok: 10,
            ..ChurnTotals::default()
        };
        let params = serde_json::to_value(&args).unwrap();
        let r = result(&params, &totals, 10, 2.0);
        assert_eq!(r.storm_settle_ms, vec![250.0]);
        assert_eq!(r.connects_per_s, 5.0);
        assert_eq!(r.target_per_s, None);
        assert_eq!(r.mode, "storm");
    }
}
