//! The `attack` scenario: hostile clients of the gateway's defenses, each
//! booking how the server answered, while an honest echo client per worker
//! thread measures whether service went on.
//!
//! Kinds: `slowloris` (an upgrade request trickled byte by byte, never
//! finished), `trickle` (after the upgrade, one frame trickled byte by
//! byte), `nonreader` (sends messages the server echoes, never reads),
//! `oversized` (a frame header announcing more than the server's cap),
//! `flood` (messages as fast as the socket takes them, answers read).
//!
//! `thread` is the event loop; `client` the per-attacker state and the
//! pure classification of what the server said. This module: flags,
//! counts that cross processes (merged exactly) and the report.

pub mod client;
pub mod thread;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::cli::{ChildSlot, CommonArgs, Rate, Seconds};
use crate::report::Percentiles;
use crate::source::share;
use crate::stats::{ErrorCounts, Hist, merge_errors};
use crate::worker::control::Window;

/// Largest flood message: the gateway's default message cap.
pub const FLOOD_SIZE_MAX: u32 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Slowloris,
    Trickle,
    Nonreader,
    Oversized,
    Flood,
    /// Every kind above, `--attackers` of each.
    All,
}

impl Kind {
    pub const EACH: [Kind; 5] = [
        Kind::Slowloris,
        Kind::Trickle,
        Kind::Nonreader,
        Kind::Oversized,
        Kind::Flood,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Slowloris => "slowloris",
            Kind::Trickle => "trickle",
            Kind::Nonreader => "nonreader",
            Kind::Oversized => "oversized",
            Kind::Flood => "flood",
            Kind::All => "all",
        }
    }

    pub fn expands_to(self) -> Vec<Kind> {
        match self {
            Kind::All => Kind::EACH.to_vec(),
            kind => vec![kind],
        }
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct AttackArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Which attack: slowloris, trickle, nonreader, oversized, flood or all.
    #[arg(long, value_enum, default_value = "all")]
    pub kind: Kind,
    /// Attacking connections per kind (over all workers).
    #[arg(long, default_value_t = 10)]
    pub attackers: u64,
    /// slowloris, trickle: time between two trickled bytes.
    #[arg(long, default_value = "1s")]
    pub byte_interval: Seconds,
    /// oversized: the frame length announced in the header.
    #[arg(long, default_value_t = 16 << 20)]
    pub oversize_bytes: u64,
    /// flood: messages each attacker sends.
    #[arg(long, default_value_t = 5_000)]
    pub flood_messages: u64,
    /// flood: bytes per message.
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Honest echo messages per second on each worker thread's control connection.
    #[arg(long, default_value = "50/s")]
    pub control_rate: Rate,
    /// How long after the attack window to wait for the server's answers.
    #[arg(long, default_value = "5s")]
    pub drain: Seconds,
}

impl AttackArgs {
    pub fn total_attackers(&self) -> u64 {
        self.attackers * self.kind.expands_to().len() as u64
    }
}

pub fn validate(args: &AttackArgs) -> Result<(), String> {
    if args.attackers == 0 {
        return Err("--attackers must be at least 1".into());
    }
    if args.common.duration.0.is_zero() {
        return Err("--duration must be above 0".into());
    }
    if args.byte_interval.0.is_zero() {
        return Err("--byte-interval must be above 0".into());
    }
    if !(crate::stamp::STAMP_LEN as u32..=FLOOD_SIZE_MAX).contains(&args.size) {
        return Err(format!("--size must be 16..={FLOOD_SIZE_MAX}"));
    }
    if args.oversize_bytes < 126 {
        return Err("--oversize-bytes must be at least 126".into());
    }
    if args.control_rate.0 <= 0.0 {
        return Err("--control-rate must be above 0".into());
    }
    Ok(())
}

/// Warmup: the control connection alone (its baseline); the window: the
/// attacks; the drain: answers still awaited.
pub fn window(args: &AttackArgs, go_ns: u64) -> Window {
    Window::measured(go_ns, &args.common, args.drain.as_ns())
}

/// One thread's attackers and pacing.
#[derive(Debug, Clone, PartialEq)]
pub struct AttackPlan {
    /// Kind of each of the thread's attackers, in connection order.
    pub kinds: Vec<Kind>,
    pub byte_interval_ns: u64,
    pub oversize_bytes: u64,
    pub flood_messages: u64,
    pub flood_size: usize,
    pub control_rate: f64,
}

impl AttackPlan {
    /// Thread `thread` of `threads` in process `slot`: its attackers are the
    /// run's attackers `process_first + thread + j * threads`, and attacker
    /// `g` has kind `g % kinds`, so every kind gets `--attackers` in total.
    pub fn of(
        args: &AttackArgs,
        slot: ChildSlot,
        thread: u64,
        threads: u64,
        conns: u64,
    ) -> AttackPlan {
        let total = args.total_attackers();
        let procs = u64::from(slot.count);
        let process_first: u64 = (0..u64::from(slot.index))
            .map(|p| share(total, procs, p))
            .sum();
        let each = args.kind.expands_to();
        let kinds = (0..conns)
            .map(|j| each[((process_first + thread + j * threads) % each.len() as u64) as usize])
            .collect();
        AttackPlan {
            kinds,
            byte_interval_ns: args.byte_interval.as_ns().max(1),
            oversize_bytes: args.oversize_bytes,
            flood_messages: args.flood_messages,
            flood_size: args.size as usize,
            control_rate: args.control_rate.0,
        }
    }
}

/// What the attackers of one kind met.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KindTotals {
    pub attackers: u64,
    /// Attackers whose attack began (slowloris: TCP up; others: upgraded).
    pub started: u64,
    /// How each attacker's connection ended, by what the server did.
    pub outcomes: ErrorCounts,
    /// Attack start to the server's answer (answers only, not `no_answer`).
    pub answer_time: Hist,
    /// flood and nonreader: messages sent; flood: answers read.
    pub messages_sent: u64,
    pub answered: u64,
    pub throttled: u64,
    pub refused_other: u64,
}

impl KindTotals {
    fn merge(&mut self, other: &KindTotals) {
        self.attackers += other.attackers;
        self.started += other.started;
        merge_errors(&mut self.outcomes, &other.outcomes);
        self.answer_time.merge(&other.answer_time);
        self.messages_sent += other.messages_sent;
        self.answered += other.answered;
        self.throttled += other.throttled;
        self.refused_other += other.refused_other;
    }
}

/// The honest echo client(s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ControlTotals {
    pub conns: u64,
    /// Connections up when the attacks began.
    pub open_at_start: u64,
    pub sent: u64,
    pub received: u64,
    /// Control connections lost or never opened, by reason.
    pub failures: ErrorCounts,
    /// Echo round trips intended before the attacks (warmup) and from their start on.
    pub baseline: Hist,
    pub during: Hist,
}

impl ControlTotals {
    fn merge(&mut self, other: &ControlTotals) {
        self.conns += other.conns;
        self.open_at_start += other.open_at_start;
        self.sent += other.sent;
        self.received += other.received;
        merge_errors(&mut self.failures, &other.failures);
        self.baseline.merge(&other.baseline);
        self.during.merge(&other.during);
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttackTotals {
    pub kinds: BTreeMap<String, KindTotals>,
    pub control: ControlTotals,
}

impl AttackTotals {
    pub fn merge(&mut self, other: &AttackTotals) {
        for (name, kind) in &other.kinds {
            self.kinds.entry(name.clone()).or_default().merge(kind);
        }
        self.control.merge(&other.control);
    }

    pub fn kind(&mut self, kind: Kind) -> &mut KindTotals {
        self.kinds.entry(kind.name().to_string()).or_default()
    }
}

/// `results.attack.kinds.NAME` (docs/LOADGEN.md names each field).
#[derive(Debug, Serialize, PartialEq)]
pub struct KindResult {
    pub attackers: u64,
    pub started: u64,
    pub outcomes: ErrorCounts,
    pub answer_time_us: Percentiles,
    pub messages_sent: u64,
    pub answered: u64,
    pub throttled: u64,
    pub refused_other: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ControlResult {
    pub conns: u64,
    pub open_at_start: u64,
    pub sent: u64,
    pub received: u64,
    pub failures: ErrorCounts,
    pub baseline_us: Percentiles,
    pub during_us: Percentiles,
    pub kept_working: bool,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct AttackResult {
    pub kinds: BTreeMap<String, KindResult>,
    pub control: ControlResult,
}

pub fn result(totals: &AttackTotals) -> AttackResult {
    let kinds = totals
        .kinds
        .iter()
        .map(|(name, k)| {
            let result = KindResult {
                attackers: k.attackers,
                started: k.started,
                outcomes: k.outcomes.clone(),
                answer_time_us: Percentiles::of(&k.answer_time.0),
                messages_sent: k.messages_sent,
                answered: k.answered,
                throttled: k.throttled,
                refused_other: k.refused_other,
            };
            (name.clone(), result)
        })
        .collect();
    let c = &totals.control;
    let control = ControlResult {
        conns: c.conns,
        open_at_start: c.open_at_start,
        sent: c.sent,
        received: c.received,
        failures: c.failures.clone(),
        baseline_us: Percentiles::of(&c.baseline.0),
        during_us: Percentiles::of(&c.during.0),
        kept_working: c.conns > 0
            && c.open_at_start == c.conns
            && c.failures.is_empty()
            && c.received == c.sent
            && !c.during.0.is_empty(),
    };
    AttackResult { kinds, control }
}

fn list(counts: &ErrorCounts) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}

/// The summary table's attack lines.
pub fn summary(s: &mut String, a: &AttackResult) {
    for (name, k) in &a.kinds {
        let t = &k.answer_time_us;
        let _ = writeln!(
            s,
            "{name:<12} attackers {}  started {}  answered in ms p50 {:.1} max {:.1}  outcomes: {}",
            k.attackers,
            k.started,
            t.p50 as f64 / 1e3,
            t.max as f64 / 1e3,
            list(&k.outcomes)
        );
        if k.messages_sent > 0 {
            let _ = writeln!(
                s,
                "             messages sent {}  answered {}  throttled {}  refused otherwise {}",
                k.messages_sent, k.answered, k.throttled, k.refused_other
            );
        }
    }
    let c = &a.control;
    let _ = writeln!(
        s,
        "control      {}  conns {} (open at start {})  echoes {}/{}  failures: {}",
        if c.kept_working {
            "kept working"
        } else {
            "DISTURBED"
        },
        c.conns,
        c.open_at_start,
        c.received,
        c.sent,
        list(&c.failures)
    );
    for (label, p) in [("before", &c.baseline_us), ("during", &c.during_us)] {
        let _ = writeln!(
            s,
            "  rtt {label} us p50 {}  p99 {}  max {}  ({} echoes)",
            p.p50, p.p99, p.max, p.count
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(extra: &[&str]) -> AttackArgs {
        let mut argv = vec!["loadgen", "attack"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).scenario {
            crate::cli::Scenario::Attack(a) => a,
            _ => panic!("parsed as attack"),
        }
    }

    #[test]
    fn every_kind_gets_its_attackers_over_processes_and_threads() {
        let a = args(&["--attackers", "7"]);
        let total = a.total_attackers();
        assert_eq!(total, 35);
        let mut count: BTreeMap<Kind, u64> = BTreeMap::new();
        for p in 0..3 {
            let slot = ChildSlot { index: p, count: 3 };
            let process = share(total, 3, u64::from(p));
            for t in 0..2 {
                let conns = share(process, 2, t);
                for kind in AttackPlan::of(&a, slot, t, 2, conns).kinds {
                    *count.entry(kind).or_default() += 1;
                }
            }
        }
        assert_eq!(count.len(), 5);
        assert!(count.values().all(|&n| n == 7), "{count:?}");
    }

    #[test]
    fn totals_merge_per_kind_and_survive_the_wire() {
        let mut a = AttackTotals::default();
        a.kind(Kind::Oversized).attackers = 2;
        *a.kind(Kind::Oversized)
            .outcomes
            .entry("server_close_1009".into())
            .or_default() += 2;
        a.kind(Kind::Oversized).answer_time.0.saturating_record(300);
        let mut b = a.clone();
        b.control.conns = 1;
        b.control.open_at_start = 1;
        b.control.sent = 10;
        b.control.received = 10;
        b.control.during.0.saturating_record(50);
        a.merge(&b);
        let back: AttackTotals = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
        let r = result(&back);
        let o = &r.kinds["oversized"];
        assert_eq!(o.attackers, 4);
        assert_eq!(o.outcomes["server_close_1009"], 4);
        assert_eq!(o.answer_time_us.count, 2);
        assert!(r.control.kept_working);
    }

    #[test]
    fn a_lost_control_connection_is_not_kept_working() {
        let mut t = AttackTotals::default();
        t.control.conns = 1;
        t.control.open_at_start = 1;
        t.control.during.0.saturating_record(50);
        t.control.failures.insert("reset".into(), 1);
        assert!(!result(&t).control.kept_working);
    }
}
