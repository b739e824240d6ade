//! `capacity`: steps the load of one scenario (echo, connect or pubsub)
//! until a stated SLO breaks, and reports the knee: the highest step that
//! held, with a table of every step.
//!
//! Each step is one complete run of the target scenario (fresh
//! connections, warmup, window, drain) through `run::execute`, with the
//! varied figure (rate or connections) and the window (`--step-duration`)
//! replaced. Steps grow by a factor (`x2`) or a sum (`+1000`) from
//! `--start` up to `--max` and stop at the first step that breaks; then
//! `--refine N` bisects between the last held step and that one.
//!
//! A step holds when all of these are true (docs/LOADGEN.md, "capacity"):
//! - p99 latency ≤ `--slo-p99` (echo round trip, pubsub delivery, connect
//!   handshake);
//! - failures / attempts ≤ `--slo-errors` (`failures` and `attempts` per
//!   scenario are defined in `figures`);
//! - the load was carried: achieved / offered ≥ `--slo-keep-up` where an
//!   offered throughput exists (open loop, pubsub, connect).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use crate::cli::{CommonArgs, ConnectArgs, EchoArgs, PubSubArgs, Rate, Scenario, Seconds};
use crate::html::{self, Curve};
use crate::report::Report;
use crate::run;
use crate::sys::{self, Machine};

/// At most this many steps in one capacity run, refinement included.
const STEPS_MAX: usize = 200;

#[derive(Args, Debug, Clone, Serialize)]
pub struct CapacityArgs {
    /// What to step: rate (echo open loop, pubsub; connect's ramp) or conns
    /// (echo, connect; pubsub users). Default: rate for pubsub and for echo
    /// given --rate, conns otherwise.
    #[arg(long, value_enum)]
    pub vary: Option<Vary>,
    /// Load of the first step (messages or publishes per second, or connections).
    #[arg(long)]
    pub start: f64,
    /// Growth per step: xF multiplies (x2), +D adds (+1000).
    #[arg(long, default_value = "x2")]
    pub step: StepRule,
    /// Highest load tried (the last step is clamped to it).
    #[arg(long)]
    pub max: f64,
    /// Measurement window of each step (connect: the hold).
    #[arg(long, default_value = "10s")]
    pub step_duration: Seconds,
    /// Pause between steps (lets the server close the last step's connections).
    #[arg(long, default_value = "2s")]
    pub pause: Seconds,
    /// SLO: highest p99 latency that holds.
    #[arg(long, default_value = "200ms")]
    pub slo_p99: Seconds,
    /// SLO: highest failure rate that holds (0.1% or 0.001).
    #[arg(long, default_value = "0.1%")]
    pub slo_errors: Fraction,
    /// SLO: least share of the offered throughput that must be achieved (98% or 0.98).
    #[arg(long, default_value = "98%")]
    pub slo_keep_up: Fraction,
    /// Bisection steps between the last held and the first broken step.
    #[arg(long, default_value_t = 0)]
    pub refine: u32,
    /// The scenario to step, with its flags (--json, --html, --hist-out there
    /// name the capacity run's outputs).
    #[command(subcommand)]
    pub target: Target,
}

/// The scenarios capacity can step.
#[derive(Subcommand, Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// Echo: vary --rate (open loop) or --conns.
    Echo(EchoArgs),
    /// Connect: vary --conns or the ramp --rate.
    Connect(ConnectArgs),
    /// Pubsub: vary --rate or --users.
    Pubsub(PubSubArgs),
}

impl Target {
    pub fn scenario(&self) -> Scenario {
        match self.clone() {
            Target::Echo(a) => Scenario::Echo(a),
            Target::Connect(a) => Scenario::Connect(a),
            Target::Pubsub(a) => Scenario::Pubsub(a),
        }
    }

    pub fn common(&self) -> &CommonArgs {
        match self {
            Target::Echo(a) => &a.common,
            Target::Connect(a) => &a.common,
            Target::Pubsub(a) => &a.common,
        }
    }

    fn common_mut(&mut self) -> &mut CommonArgs {
        match self {
            Target::Echo(a) => &mut a.common,
            Target::Connect(a) => &mut a.common,
            Target::Pubsub(a) => &mut a.common,
        }
    }

    fn default_vary(&self) -> Vary {
        match self {
            Target::Echo(a) if a.rate.is_none() => Vary::Conns,
            Target::Connect(_) => Vary::Conns,
            _ => Vary::Rate,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Vary {
    Rate,
    Conns,
}

/// How the load grows from one step to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepRule {
    Times(f64),
    Plus(f64),
}

impl StepRule {
    fn next(self, load: f64) -> f64 {
        match self {
            StepRule::Times(factor) => load * factor,
            StepRule::Plus(delta) => load + delta,
        }
    }
}

impl FromStr for StepRule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = || format!("bad step {text:?}: expected x2 (multiply) or +1000 (add)");
        if let Some(factor) = text.strip_prefix(['x', '*']) {
            let factor: f64 = factor.parse().map_err(|_| bad())?;
            if !(factor.is_finite() && factor > 1.0) {
                return Err(format!("step factor {factor} must be above 1"));
            }
            return Ok(StepRule::Times(factor));
        }
        let delta: f64 = text
            .strip_prefix('+')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if !(delta.is_finite() && delta > 0.0) {
            return Err(format!("step increment {delta} must be above 0"));
        }
        Ok(StepRule::Plus(delta))
    }
}

impl Serialize for StepRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StepRule::Times(f) => s.collect_str(&format_args!("x{f}")),
            StepRule::Plus(d) => s.collect_str(&format_args!("+{d}")),
        }
    }
}

/// A share: `0.1%` or `0.001`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fraction(pub f64);

impl FromStr for Fraction {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (number, scale) = match text.strip_suffix('%') {
            Some(number) => (number, 0.01),
            None => (text, 1.0),
        };
        let value: f64 = number
            .parse()
            .map_err(|_| format!("bad share {text:?}: expected e.g. 0.1% or 0.001"))?;
        let value = value * scale;
        if !(0.0..=1.0).contains(&value) {
            return Err(format!("share {text:?} must be 0% to 100%"));
        }
        Ok(Fraction(value))
    }
}

pub fn validate(args: &CapacityArgs) -> Result<(), String> {
    if !(args.start.is_finite() && args.start > 0.0) {
        return Err("--start must be above 0".into());
    }
    if !(args.max.is_finite() && args.max >= args.start) {
        return Err("--max must be at least --start".into());
    }
    if args.step_duration.0.is_zero() {
        return Err("--step-duration must be above 0".into());
    }
    if loads(args.start, args.step, args.max).len() > STEPS_MAX {
        return Err(format!(
            "more than {STEPS_MAX} steps from --start to --max: take a larger --step"
        ));
    }
    Ok(())
}

/// The planned loads: `start`, grown by `rule`, the last clamped to `max`.
fn loads(start: f64, rule: StepRule, max: f64) -> Vec<f64> {
    let mut loads = vec![start];
    let mut load = start;
    while load < max && loads.len() <= STEPS_MAX {
        load = rule.next(load).min(max);
        loads.push(load);
    }
    loads
}

/// [`loads`], whole when the load is a connection count: each step runs
/// and reports the count actually used (x1.5 from 1 would otherwise run 2
/// connections twice, reported as 1.5 and 2.25).
fn planned_loads(start: f64, rule: StepRule, max: f64, whole_units: bool) -> Vec<f64> {
    let mut planned = loads(start, rule, max);
    if whole_units {
        for load in &mut planned {
            *load = load.round().max(1.0);
        }
        planned.dedup();
    }
    planned
}

/// The target as one step runs it: the varied figure and the window set,
/// the capacity run's output files removed.
fn step_target(target: &Target, vary: Vary, load: f64, window: Seconds) -> Target {
    let mut step = target.clone();
    let count = load.round().max(1.0) as u64;
    match (&mut step, vary) {
        (Target::Echo(a), Vary::Rate) => {
            a.rate = Some(Rate(load));
            a.inflight = None;
        }
        (Target::Echo(a), Vary::Conns) => a.conns = count,
        (Target::Connect(a), Vary::Rate) => a.rate = Rate(load),
        (Target::Connect(a), Vary::Conns) => a.conns = count,
        (Target::Pubsub(a), Vary::Rate) => a.rate = Rate(load),
        (Target::Pubsub(a), Vary::Conns) => a.users = count,
    }
    match &mut step {
        Target::Connect(a) => a.hold = window,
        other => other.common_mut().duration = window,
    }
    let common = step.common_mut();
    common.json = None;
    common.html = None;
    common.hist_out = None;
    step
}

/// Command-line arguments that make a worker process (`--procs`) run
/// `target`: its flags rebuilt from their serialized values (the files
/// and `--quiet` are not serialized; workers need none of them).
fn worker_args(target: &Target) -> Vec<OsString> {
    let scenario = target.scenario();
    let mut args = vec![OsString::from(scenario.name())];
    let value = match target {
        Target::Echo(a) => serde_json::to_value(a),
        Target::Connect(a) => serde_json::to_value(a),
        Target::Pubsub(a) => serde_json::to_value(a),
    }
    .expect("arguments serialize");
    let serde_json::Value::Object(fields) = value else {
        return args;
    };
    for (name, value) in fields {
        let flag = format!("--{}", name.replace('_', "-"));
        let text = match value {
            serde_json::Value::Null | serde_json::Value::Bool(false) => continue,
            serde_json::Value::Bool(true) => {
                args.push(flag.into());
                continue;
            }
            serde_json::Value::Array(items) => {
                if items.is_empty() {
                    continue;
                }
                items.iter().map(plain).collect::<Vec<_>>().join(",")
            }
            other => plain(&other),
        };
        args.push(flag.into());
        args.push(text.into());
    }
    args
}

/// A JSON scalar as a flag value; numbers never in exponent notation
/// (the duration and rate parsers take plain decimals).
fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => match n.as_u64() {
            Some(u) => u.to_string(),
            None => format!("{}", n.as_f64().unwrap_or(0.0)),
        },
        other => other.to_string(),
    }
}

/// The SLO a step is judged by.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Slo {
    pub p99_us: u64,
    pub error_rate: f64,
    pub keep_up: f64,
}

/// What a step is judged on, taken from its report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Figures {
    pub throughput_per_s: f64,
    /// The throughput the step asked for, where there is one.
    pub offered_per_s: Option<f64>,
    /// Achieved / offered (connect: connections held at the end / planned).
    pub keep_up: Option<f64>,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub failures: u64,
    pub attempts: u64,
    pub error_rate: f64,
}

/// A step's figures. Failures and attempts:
/// - echo: errors + unanswered, of messages received + those;
/// - pubsub: errors + lost + surplus + duplicates + misrouted, of expected
///   deliveries + errors;
/// - connect: errors (failed connects included), of planned connections + pings.
pub fn figures(report: &Report, offered_rate: Option<f64>) -> Figures {
    let r = &report.results;
    let errors: u64 = r.errors.values().sum();
    let latency = if report.scenario == "connect" {
        &r.connect.handshake_us
    } else {
        &r.latency_us
    };
    let (throughput_per_s, failures, attempts, keep_up) = match &r.pubsub {
        Some(p) => {
            let failures = errors + p.lost + p.surplus + p.duplicates + p.misrouted;
            let published = offered_rate.map(|rate| p.publishes_per_s / rate);
            let delivered = (p.expected_per_s > 0.0).then(|| p.deliveries_per_s / p.expected_per_s);
            let keep_up = match (published, delivered) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (p.deliveries_per_s, failures, p.expected + errors, keep_up)
        }
        None if report.scenario == "connect" => {
            let c = &r.connect;
            let held = (c.planned > 0).then(|| c.held_at_end as f64 / c.planned as f64);
            (c.connect_rate_per_s, errors, c.planned + c.pings_sent, held)
        }
        None => {
            let failures = errors + r.unanswered;
            let keep_up = offered_rate.map(|rate| r.messages_per_s / rate);
            (
                r.messages_per_s,
                failures,
                r.messages_received + failures,
                keep_up,
            )
        }
    };
    Figures {
        throughput_per_s,
        offered_per_s: if report.scenario == "connect" {
            None
        } else {
            offered_rate
        },
        keep_up: keep_up.map(round4),
        p50_us: latency.p50,
        p99_us: latency.p99,
        p999_us: latency.p999,
        failures,
        attempts,
        error_rate: round4(failures as f64 / attempts.max(1) as f64),
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Which parts of the SLO a step broke (empty: it held).
pub fn judge(figures: &Figures, slo: &Slo) -> Vec<&'static str> {
    let mut broke = Vec::new();
    if figures.p99_us > slo.p99_us {
        broke.push("p99");
    }
    if figures.error_rate > slo.error_rate {
        broke.push("errors");
    }
    if figures.keep_up.is_some_and(|k| k < slo.keep_up) {
        broke.push("keep_up");
    }
    broke
}

#[derive(Debug, Serialize)]
pub struct Step {
    pub load: f64,
    pub held: bool,
    pub broke: Vec<&'static str>,
    #[serde(flatten)]
    pub figures: Figures,
    pub loadgen_cpu_util: f64,
    /// CPU of the `--server-pid` processes, summed, % of one core.
    pub server_cpu_util: Option<f64>,
    /// The step's complete report (the target scenario's JSON).
    pub report: Report,
}

#[derive(Debug, Serialize)]
pub struct Knee {
    pub load: f64,
    pub throughput_per_s: f64,
    pub p99_us: u64,
    /// Index of the step in `steps`.
    pub step: usize,
}

#[derive(Debug, Serialize)]
pub struct CapacityReport {
    pub scenario: &'static str,
    pub target: &'static str,
    pub vary: Vary,
    pub params: serde_json::Value,
    pub machine: Machine,
    pub started_at: String,
    pub slo: Slo,
    pub steps: Vec<Step>,
    /// The highest held step below the lowest broken one; null if the first broke.
    pub knee: Option<Knee>,
    /// `"slo"` (a step broke) or `"max"` (every planned step held).
    pub stopped_by: &'static str,
}

/// The knee: the highest held load below the lowest broken load.
fn knee(steps: &[Step]) -> Option<Knee> {
    let lowest_broken = steps
        .iter()
        .filter(|s| !s.held)
        .map(|s| s.load)
        .fold(f64::INFINITY, f64::min);
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.held && s.load < lowest_broken)
        .max_by(|a, b| a.1.load.total_cmp(&b.1.load))
        .map(|(index, s)| Knee {
            load: s.load,
            throughput_per_s: s.figures.throughput_per_s,
            p99_us: s.figures.p99_us,
            step: index,
        })
}

fn unit(target: &Target, vary: Vary) -> (&'static str, &'static str) {
    match (target, vary) {
        (Target::Echo(_), Vary::Rate) => ("messages/s", "messages/s"),
        (Target::Echo(_), Vary::Conns) => ("connections", "messages/s"),
        (Target::Connect(_), Vary::Rate) => ("connects/s", "connects/s"),
        (Target::Connect(_), Vary::Conns) => ("connections", "connects/s"),
        (Target::Pubsub(_), Vary::Rate) => ("publishes/s", "deliveries/s"),
        (Target::Pubsub(_), Vary::Conns) => ("users", "deliveries/s"),
    }
}

const HEADER: &str = "        load  throughput/s   p50 ms   p99 ms  p99.9 ms  failures  fail %  keep-up  gw cpu  lg cpu  held  broke";

fn row(step: &Step) -> String {
    let f = &step.figures;
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{:>12.0} {:>13.0} {:>8.2} {:>8.2} {:>9.2} {:>9} {:>7.3} {:>8} {:>7} {:>7.0}  {:<4}  {}",
        step.load,
        f.throughput_per_s,
        ms(f.p50_us),
        ms(f.p99_us),
        ms(f.p999_us),
        f.failures,
        f.error_rate * 100.0,
        f.keep_up
            .map_or("-".into(), |k| format!("{:.1}%", k * 100.0)),
        step.server_cpu_util
            .map_or("-".into(), |c| format!("{c:.0}")),
        step.loadgen_cpu_util,
        if step.held { "yes" } else { "NO" },
        if step.broke.is_empty() {
            "-".to_string()
        } else {
            step.broke.join(",")
        },
    )
}

/// The human summary: the SLO, every step, the knee.
pub fn summary(report: &CapacityReport, units: (&str, &str)) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringgate-loadgen capacity of {} (varying {}, load in {}, throughput in {}) | {} ({} cores), kernel {}",
        report.target,
        match report.vary {
            Vary::Rate => "rate",
            Vary::Conns => "conns",
        },
        units.0,
        units.1,
        report.machine.cpu_model,
        report.machine.cores,
        report.machine.kernel
    );
    let _ = writeln!(
        s,
        "SLO: p99 <= {:.1} ms, failures <= {:.3}%, keep-up >= {:.1}%",
        report.slo.p99_us as f64 / 1000.0,
        report.slo.error_rate * 100.0,
        report.slo.keep_up * 100.0
    );
    let _ = writeln!(s, "{HEADER}");
    let mut ordered: Vec<&Step> = report.steps.iter().collect();
    ordered.sort_by(|a, b| a.load.total_cmp(&b.load));
    for step in ordered {
        let _ = writeln!(s, "{}", row(step));
    }
    match &report.knee {
        Some(k) => {
            let _ = writeln!(
                s,
                "knee: {:.0} {} held ({:.0} {}, p99 {:.2} ms){}",
                k.load,
                units.0,
                k.throughput_per_s,
                units.1,
                k.p99_us as f64 / 1000.0,
                if report.stopped_by == "max" {
                    "; every step held: raise --max"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(s, "knee: none, the first step broke: lower --start");
        }
    }
    s
}

fn run_step(args: &CapacityArgs, vary: Vary, load: f64) -> anyhow::Result<(Step, run::Histograms)> {
    let target = step_target(&args.target, vary, load, args.step_duration);
    let outcome = run::execute(&target.scenario(), worker_args(&target))
        .with_context(|| format!("step at load {load}"))?;
    let offered = (vary == Vary::Rate).then_some(load);
    let offered = match &target {
        Target::Echo(a) => a.rate.map(|r| r.0),
        _ => offered,
    };
    let figures = figures(&outcome.report, offered);
    let slo = slo(args);
    let broke = judge(&figures, &slo);
    let servers = &outcome.report.results.servers;
    let server_cpu_util = servers
        .iter()
        .map(|s| s.cpu_util)
        .sum::<Option<f64>>()
        .filter(|_| !servers.is_empty());
    let step = Step {
        load,
        held: broke.is_empty(),
        broke,
        figures,
        loadgen_cpu_util: outcome.report.results.loadgen_cpu.cpu_util,
        server_cpu_util,
        report: outcome.report,
    };
    Ok((step, outcome.histograms))
}

fn slo(args: &CapacityArgs) -> Slo {
    Slo {
        p99_us: u64::try_from(args.slo_p99.0.as_micros()).unwrap_or(u64::MAX),
        error_rate: args.slo_errors.0,
        keep_up: args.slo_keep_up.0,
    }
}

/// Runs the steps, prints the table, writes `--json` / `--html`.
pub fn run(args: &CapacityArgs) -> anyhow::Result<()> {
    let vary = args.vary.unwrap_or_else(|| args.target.default_vary());
    let units = unit(&args.target, vary);
    let started_at = sys::rfc3339_utc(sys::unix_time_s());
    let whole_units = vary == Vary::Conns;
    let planned = planned_loads(args.start, args.step, args.max, whole_units);
    let mut steps: Vec<Step> = Vec::new();
    let mut curves: Vec<Curve> = Vec::new();
    println!("{HEADER}");
    let mut take = |load: f64, steps: &mut Vec<Step>| -> anyhow::Result<bool> {
        if !steps.is_empty() {
            sys::sleep_until(sys::now_ns() + args.pause.as_ns());
        }
        let (step, histograms) = run_step(args, vary, load)?;
        println!("{}", row(&step));
        curves.push(html::percentile_curve(
            &format!("{load:.0} {}", units.0),
            &histograms.primary(&step.report.scenario),
        ));
        let held = step.held;
        steps.push(step);
        Ok(held)
    };
    let mut bounds: Option<(f64, f64)> = None;
    let mut last_held = None;
    for &load in &planned {
        if take(load, &mut steps)? {
            last_held = Some(load);
        } else {
            bounds = last_held.map(|held| (held, load));
            break;
        }
    }
    if let Some((mut low, mut high)) = bounds {
        for _ in 0..args.refine {
            let mut middle = (low + high) / 2.0;
            if whole_units || middle >= 100.0 {
                middle = middle.round();
            }
            if middle <= low || middle >= high {
                break;
            }
            if take(middle, &mut steps)? {
                low = middle;
            } else {
                high = middle;
            }
        }
    }
    let stopped_by = if steps.iter().all(|s| s.held) {
        "max"
    } else {
        "slo"
    };
    let report = CapacityReport {
        scenario: "capacity",
        target: args.target.scenario().name(),
        vary,
        params: serde_json::to_value(args).unwrap_or(serde_json::Value::Null),
        machine: sys::machine(),
        started_at,
        slo: slo(args),
        knee: knee(&steps),
        steps,
        stopped_by,
    };
    let text = summary(&report, units);
    print!("{text}");
    let common = args.target.common();
    let json = serde_json::to_value(&report)?;
    if let Some(path) = &common.json {
        std::fs::write(path, serde_json::to_string_pretty(&json)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &common.html {
        std::fs::write(path, html::capacity_page(&json, &text, &curves, units))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn parse(args: &[&str]) -> CapacityArgs {
        let cli = Cli::try_parse_from(args).expect("parses");
        match cli.scenario {
            Scenario::Capacity(c) => c,
            other => panic!("not capacity: {other:?}"),
        }
    }

    #[test]
    fn steps_multiply_or_add_and_end_at_the_max() {
        assert_eq!(
            loads(1000.0, "x2".parse().unwrap(), 5000.0),
            [1000.0, 2000.0, 4000.0, 5000.0]
        );
        assert_eq!(
            loads(100.0, "+50".parse().unwrap(), 200.0),
            [100.0, 150.0, 200.0]
        );
        assert_eq!(loads(10.0, "x2".parse().unwrap(), 10.0), [10.0]);
        assert_eq!(
            planned_loads(1.0, "x1.5".parse().unwrap(), 6.0, true),
            [1.0, 2.0, 3.0, 5.0, 6.0]
        );
        assert_eq!(
            planned_loads(1.0, "x1.5".parse().unwrap(), 3.0, false),
            [1.0, 1.5, 2.25, 3.0]
        );
        assert!("x1".parse::<StepRule>().is_err());
        assert!("+0".parse::<StepRule>().is_err());
        assert!("2".parse::<StepRule>().is_err());
    }

    #[test]
    fn shares_parse_as_percent_or_fraction() {
        assert_eq!("0.1%".parse::<Fraction>().unwrap().0, 0.001);
        assert_eq!("0.25".parse::<Fraction>().unwrap().0, 0.25);
        assert!("120%".parse::<Fraction>().is_err());
    }

    fn figures_with(p99_us: u64, error_rate: f64, keep_up: Option<f64>) -> Figures {
        Figures {
            throughput_per_s: 1000.0,
            offered_per_s: Some(1000.0),
            keep_up,
            p50_us: 10,
            p99_us,
            p999_us: p99_us,
            failures: 0,
            attempts: 1000,
            error_rate,
        }
    }

    #[test]
    fn a_step_breaks_on_each_part_of_the_slo() {
        let slo = Slo {
            p99_us: 200_000,
            error_rate: 0.001,
            keep_up: 0.98,
        };
        assert!(judge(&figures_with(200_000, 0.001, Some(0.98)), &slo).is_empty());
        assert_eq!(judge(&figures_with(200_001, 0.0, None), &slo), ["p99"]);
        assert_eq!(judge(&figures_with(5, 0.0011, None), &slo), ["errors"]);
        assert_eq!(
            judge(&figures_with(300_000, 0.5, Some(0.5)), &slo),
            ["p99", "errors", "keep_up"]
        );
    }

    #[test]
    fn worker_arguments_parse_back_to_the_same_step() {
        let args = parse(&[
            "ringgate-loadgen",
            "capacity",
            "--start",
            "1000",
            "--max",
            "8000",
            "pubsub",
            "--url",
            "ws://127.0.0.1:9/x",
            "--users",
            "300",
            "--dist",
            "zipf:1.2",
            "--warmup",
            "250ms",
            "--server-pid",
            "7,8",
            "--json",
            "out.json",
        ]);
        let step = step_target(&args.target, Vary::Rate, 4000.0, "3s".parse().unwrap());
        let mut argv = vec![OsString::from("ringgate-loadgen")];
        argv.extend(worker_args(&step));
        let again = Cli::try_parse_from(&argv).expect("worker arguments parse");
        let Scenario::Pubsub(back) = again.scenario else {
            panic!("not pubsub")
        };
        let Target::Pubsub(step) = step else {
            panic!("not pubsub")
        };
        assert_eq!(
            serde_json::to_value(&back).unwrap(),
            serde_json::to_value(&step).unwrap()
        );
        assert_eq!(back.rate.0, 4000.0);
        assert_eq!(back.common.duration.0.as_secs(), 3);
        assert_eq!(back.common.server_pid, [7, 8]);
        assert!(back.common.json.is_none());
    }

    #[test]
    fn echo_varies_connections_in_closed_loop_and_rate_in_open_loop() {
        let closed = parse(&[
            "lg",
            "capacity",
            "--start",
            "10",
            "--max",
            "40",
            "echo",
            "--inflight",
            "4",
        ]);
        assert_eq!(closed.target.default_vary(), Vary::Conns);
        let Target::Echo(step) =
            step_target(&closed.target, Vary::Conns, 20.4, "1s".parse().unwrap())
        else {
            panic!("not echo")
        };
        assert_eq!((step.conns, step.inflight), (20, Some(4)));
        let open = parse(&[
            "lg", "capacity", "--start", "10", "--max", "40", "echo", "--rate", "5",
        ]);
        assert_eq!(open.target.default_vary(), Vary::Rate);
    }

    fn empty_report() -> Report {
        crate::report::build(crate::report::RunFacts {
            scenario: "echo".into(),
            params: serde_json::json!({}),
            machine: crate::sys::machine(),
            started_at: String::new(),
            window: crate::worker::control::Window {
                go_ns: 0,
                start_ns: 0,
                end_ns: 1_000_000_000,
                drain_end_ns: 1_000_000_000,
            },
            totals: crate::stats::Totals::default(),
            servers: vec![],
            procs: 1,
            threads: 1,
            conn_state_bytes: 0,
        })
    }

    fn step(load: f64, held: bool) -> Step {
        Step {
            load,
            held,
            broke: if held { vec![] } else { vec!["p99"] },
            figures: figures_with(1, 0.0, None),
            loadgen_cpu_util: 0.0,
            server_cpu_util: None,
            report: empty_report(),
        }
    }

    #[test]
    fn the_knee_is_the_highest_held_step_below_the_lowest_broken() {
        // Doubling then refining: 1000 ok, 2000 ok, 4000 broke, 3000 broke, 2500 ok;
        // a noisy 5000 that held must not count.
        let steps = vec![
            step(1000.0, true),
            step(2000.0, true),
            step(4000.0, false),
            step(3000.0, false),
            step(2500.0, true),
            step(5000.0, true),
        ];
        let found = knee(&steps).unwrap();
        assert_eq!((found.load, found.step), (2500.0, 4));
        assert!(knee(&[step(1000.0, false)]).is_none());
    }
}
