//! The coordinator: starts the workers (threads here, or `--procs` child
//! processes), waits for the connections, opens the measurement window,
//! samples the servers at its edges, prints progress, and writes the report.

use std::ffi::OsString;
use std::io::Write as _;

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::cli::{ChildSlot, Scenario};
use crate::html;
use crate::procs::ChildWorkers;
use crate::report::{self, Report, RunFacts, ServerSamples};
use crate::stats::Totals;
use crate::sys::{self, now_ns};
use crate::timeline::{Sample, Timeline};
use crate::worker::control::{Progress, Window};
use crate::worker::{LocalWorkers, thread::conn_state_bytes, thread_plans};

const TICK_NS: u64 = 50_000_000;
const PROGRESS_EVERY_NS: u64 = 1_000_000_000;
/// Slack on top of the planned connect time before giving up on stragglers.
const CONNECT_SLACK_NS: u64 = 30_000_000_000;
/// How long after the drain the parent waits for worker processes' results.
const RESULT_SLACK_NS: u64 = 30_000_000_000;
/// Connect scenario: how long to wait for the last pongs after the hold.
const PONG_DRAIN_NS: u64 = 1_000_000_000;
/// File descriptors a process keeps for itself besides connections.
const FDS_RESERVED: u64 = 64;
/// pubsub: pause between "every subscription confirmed" and the first
/// publish. A `subscribed` is sent when the gateway has taken the request;
/// this leaves time for it to reach the topic's router before anything is
/// published there.
const SUBSCRIBE_SETTLE_NS: u64 = 200_000_000;

enum Workers {
    Local(LocalWorkers),
    Children(ChildWorkers),
}

impl Workers {
    fn progress(&mut self) -> Progress {
        match self {
            Workers::Local(w) => w.progress(),
            Workers::Children(w) => w.progress(),
        }
    }

    fn take_interval(&mut self) -> Histogram<u64> {
        match self {
            Workers::Local(w) => w.take_interval(),
            Workers::Children(w) => w.take_interval(),
        }
    }

    fn ready(&mut self) -> bool {
        match self {
            Workers::Local(w) => w.ready(),
            Workers::Children(w) => w.ready(),
        }
    }

    fn threads(&self) -> usize {
        match self {
            Workers::Local(w) => w.threads(),
            Workers::Children(w) => w.threads(),
        }
    }

    fn go(&mut self, window: Window) {
        match self {
            Workers::Local(w) => w.go(window),
            Workers::Children(w) => w.go(window),
        }
    }

    fn at_window_start(&mut self) {
        if let Workers::Local(w) = self {
            w.sample_cpu_start();
        }
    }

    fn at_window_end(&mut self) {
        if let Workers::Local(w) = self {
            w.sample_cpu_end();
        }
    }

    fn finish(self, window: Window) -> anyhow::Result<Totals> {
        match self {
            Workers::Local(w) => Ok(w.finish()),
            Workers::Children(w) => w.finish(window.drain_end_ns + RESULT_SLACK_NS),
        }
    }
}

/// Prints a progress line each second on stderr (unless quiet) and keeps
/// it as a timeline sample.
struct Ticker {
    quiet: bool,
    /// churn: the rate column counts completed handshakes, not messages.
    count_connects: bool,
    begun_ns: u64,
    next_ns: u64,
    last_ns: u64,
    last_received: u64,
    samples: Vec<Sample>,
}

impl Ticker {
    fn new(quiet: bool, count_connects: bool) -> Ticker {
        let now = now_ns();
        Ticker {
            quiet,
            count_connects,
            begun_ns: now,
            next_ns: now + PROGRESS_EVERY_NS,
            last_ns: now,
            last_received: 0,
            samples: Vec::new(),
        }
    }

    fn seconds_since_begun(&self, ns: u64) -> f64 {
        ns.saturating_sub(self.begun_ns) as f64 / 1e9
    }

    fn timeline(self, window: Window) -> Timeline {
        Timeline {
            window_start_s: self.seconds_since_begun(window.start_ns),
            window_end_s: self.seconds_since_begun(window.end_ns),
            samples: self.samples,
        }
    }

    fn maybe_print(&mut self, workers: &mut Workers, stage: &'static str) {
        let now = now_ns();
        if now < self.next_ns {
            return;
        }
        self.next_ns = now + PROGRESS_EVERY_NS;
        let progress = workers.progress();
        let interval = workers.take_interval();
        let seconds = (now - self.last_ns) as f64 / 1e9;
        let (counted, label) = if self.count_connects {
            (progress.connects_ok, "connects/s")
        } else {
            (progress.received, "msgs/s")
        };
        let rate = counted.saturating_sub(self.last_received) as f64 / seconds;
        self.last_ns = now;
        self.last_received = counted;
        let p99_us = (!interval.is_empty()).then(|| interval.value_at_quantile(0.99));
        self.samples.push(Sample {
            t_s: (self.seconds_since_begun(now) * 1000.0).round() / 1000.0,
            stage,
            open: progress.open,
            messages_per_s: rate.round(),
            errors: progress.errors,
            p99_us,
        });
        if self.quiet {
            return;
        }
        let p99 = p99_us.map_or_else(|| "-".to_string(), |p| format!("{p}us"));
        eprintln!(
            "[{:6.1}s] {stage:<10} open {:>8}  connects ok {:>8} failed {:>6}  {label} {:>10.0}  errors {:>6}  p99 {p99}",
            (now - self.begun_ns) as f64 / 1e9,
            progress.open,
            progress.connects_ok,
            progress.connects_failed,
            rate,
            progress.errors,
        );
    }

    /// Sleeps until `deadline_ns`, printing progress meanwhile.
    fn wait_until(&mut self, workers: &mut Workers, deadline_ns: u64, stage: &'static str) {
        loop {
            let now = now_ns();
            if now >= deadline_ns {
                return;
            }
            self.maybe_print(workers, stage);
            sys::sleep_until(deadline_ns.min(now + TICK_NS));
        }
    }
}

fn sample_servers(
    servers: &mut [ServerSamples],
    pick: impl Fn(&mut ServerSamples) -> &mut Option<sys::ProcSample>,
) {
    for server in servers {
        match sys::sample_process(server.pid) {
            Ok(sample) => *pick(server) = Some(sample),
            Err(e) => server.error = Some(format!("cannot sample: {e}")),
        }
    }
}

/// Warns when one process will need more descriptors than it may open.
fn check_file_limit(scenario: &Scenario, file_limit: u64) {
    let common = scenario.common();
    let per_process = scenario.conns().div_ceil(u64::from(common.procs));
    if per_process + FDS_RESERVED > file_limit {
        let procs_needed = scenario
            .conns()
            .div_ceil(file_limit.saturating_sub(FDS_RESERVED).max(1));
        eprintln!(
            "loadgen: each process needs ~{} file descriptors but may open {file_limit}: \
             use --procs {procs_needed} or more, or raise the hard limit (ulimit -Hn)",
            per_process + FDS_RESERVED,
        );
    }
}

/// The latency histograms of a run, for the HTML report's percentile chart.
pub struct Histograms {
    pub latency: Histogram<u64>,
    pub ack_latency: Histogram<u64>,
    pub handshake: Histogram<u64>,
}

impl Histograms {
    /// The latency a scenario is judged by: connect's handshakes, else `latency`.
    pub fn primary(&self, scenario: &str) -> Histogram<u64> {
        if scenario == "connect" {
            self.handshake.clone()
        } else {
            self.latency.clone()
        }
    }
}

/// A finished run: its report and its histograms.
pub struct Outcome {
    pub report: Report,
    pub histograms: Histograms,
}

/// Runs `scenario`, prints its summary and writes the files it asks for.
pub fn run(scenario: &Scenario) -> anyhow::Result<()> {
    let common = scenario.common();
    let outcome = execute(scenario, std::env::args_os().skip(1).collect())?;
    let summary = report::summary(&outcome.report);
    print!("{summary}");
    std::io::stdout().flush().ok();
    if let Some(path) = &common.json {
        let text = serde_json::to_string_pretty(&outcome.report)? + "\n";
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &common.hist_out {
        std::fs::write(
            path,
            report::percentile_distribution(&outcome.histograms.latency),
        )
        .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &common.html {
        let json = serde_json::to_value(&outcome.report)?;
        let page = html::run_page(&json, &summary, &html::run_curves(&outcome));
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Runs `scenario` once and returns its report. `worker_args` are the
/// arguments `--procs` worker processes get (before `--child`).
pub fn execute(scenario: &Scenario, worker_args: Vec<OsString>) -> anyhow::Result<Outcome> {
    let common = scenario.common().clone();
    let file_limit = sys::raise_file_limit();
    check_file_limit(scenario, file_limit);
    let machine = sys::machine();
    let started_at = sys::rfc3339_utc(sys::unix_time_s());
    let mut servers: Vec<ServerSamples> = common
        .server_pid
        .iter()
        .map(|&pid| ServerSamples {
            pid,
            ..ServerSamples::default()
        })
        .collect();
    sample_servers(&mut servers, |s| &mut s.before);
    for server in &mut servers {
        server.sockets_before = sys::count_sockets(server.pid).ok();
    }

    let mut workers = if common.procs > 1 {
        Workers::Children(ChildWorkers::spawn(common.procs, worker_args)?)
    } else {
        let plans = thread_plans(scenario, ChildSlot { index: 0, count: 1 }, !common.quiet);
        Workers::Local(LocalWorkers::start(plans).context("cannot start worker threads")?)
    };
    let churn = matches!(scenario, Scenario::Churn(_));
    let mut ticker = Ticker::new(common.quiet, churn);
    wait_for_connections(scenario, &mut workers, &mut ticker);
    let open_now = workers.progress().open;
    for server in &mut servers {
        server.open_at_after = open_now;
    }
    sample_servers(&mut servers, |s| &mut s.after_connect);
    for server in &mut servers {
        server.sockets_after = sys::count_sockets(server.pid).ok();
    }

    let window = window_from(scenario, now_ns());
    workers.go(window);
    let (warm, hot) = match scenario {
        Scenario::Connect(_) => ("holding", "holding"),
        Scenario::Churn(_) => ("holding", "churning"),
        Scenario::Attack(_) => ("baseline", "attacking"),
        _ => ("warmup", "measuring"),
    };
    ticker.wait_until(&mut workers, window.start_ns, warm);
    sample_servers(&mut servers, |s| &mut s.window_start);
    workers.at_window_start();
    ticker.wait_until(&mut workers, window.end_ns, hot);
    sample_servers(&mut servers, |s| &mut s.window_end);
    workers.at_window_end();
    ticker.wait_until(&mut workers, window.drain_end_ns, "draining");
    let threads = workers.threads();
    let totals = workers.finish(window)?;

    let histograms = Histograms {
        latency: totals.latency.clone(),
        ack_latency: totals.ack_latency.clone(),
        handshake: totals.handshake.clone(),
    };
    let mut report = report::build(RunFacts {
        scenario: scenario.name().into(),
        params: scenario_params(scenario),
        machine,
        started_at,
        window,
        totals,
        servers,
        procs: common.procs,
        threads,
        conn_state_bytes: conn_state_bytes(),
    });
    report.timeline = ticker.timeline(window);
    Ok(Outcome { report, histograms })
}

/// Waits until every worker has opened (or failed) its connections, bounded
/// by the ramp, the handshake timeout and some slack.
fn wait_for_connections(scenario: &Scenario, workers: &mut Workers, ticker: &mut Ticker) {
    let ramp_ns = match scenario {
        Scenario::Connect(c) if c.rate.0 > 0.0 => (scenario.conns() as f64 / c.rate.0 * 1e9) as u64,
        _ => 0,
    };
    let timeout_ns = scenario.common().timeout.as_ns();
    let deadline = now_ns() + ramp_ns + timeout_ns + CONNECT_SLACK_NS;
    while !workers.ready() {
        if now_ns() >= deadline {
            eprintln!("loadgen: connections still pending at the connect deadline; going on");
            return;
        }
        ticker.maybe_print(workers, "connecting");
        sys::sleep_until(now_ns() + TICK_NS);
    }
}

/// The run's phases, starting now (`go_ns`): echo warms up, measures, then
/// drains; connect holds (and waits briefly for the last pongs).
fn window_from(scenario: &Scenario, go_ns: u64) -> Window {
    let common = scenario.common();
    match scenario {
        Scenario::Echo(echo) => Window::measured(go_ns, common, echo.drain.as_ns()),
        Scenario::Pubsub(pubsub) => {
            Window::measured(go_ns + SUBSCRIBE_SETTLE_NS, common, pubsub.drain.as_ns())
        }
        Scenario::Churn(churn) => crate::churn::window(churn, go_ns),
        Scenario::Attack(attack) => crate::attack::window(attack, go_ns),
        Scenario::Capacity(capacity) => window_from(&capacity.target.scenario(), go_ns),
        Scenario::Connect(connect) => {
            let end_ns = go_ns + connect.hold.as_ns();
            let drain_ns = if connect.ping_interval.is_some() {
                PONG_DRAIN_NS
            } else {
                0
            };
            Window {
                go_ns,
                start_ns: go_ns,
                end_ns,
                drain_end_ns: end_ns + drain_ns,
            }
        }
    }
}

/// The parameters as the report shows them: the scenario's flags.
fn scenario_params(scenario: &Scenario) -> serde_json::Value {
    match scenario {
        Scenario::Echo(a) => serde_json::to_value(a),
        Scenario::Connect(a) => serde_json::to_value(a),
        Scenario::Pubsub(a) => serde_json::to_value(a),
        Scenario::Churn(a) => serde_json::to_value(a),
        Scenario::Attack(a) => serde_json::to_value(a),
        Scenario::Capacity(a) => serde_json::to_value(a),
    }
    .unwrap_or(serde_json::Value::Null)
}
