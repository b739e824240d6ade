//! ringgate-loadgen: the load generator that proves ringgate's numbers.
//!
//! What it does: opens WebSocket connections to any RFC 6455 server and runs
//! a scenario: `echo` (throughput and round-trip latency, closed loop or
//! open loop with coordinated-omission correction), `connect` (how many
//! connections a server holds and what each costs it) or `pubsub` (users
//! subscribed to topics and publishing through a ringgate relay: delivery
//! latency from the intended publish, expected against delivered, loss,
//! duplicates and reordering), `churn` (connections closed and reopened
//! at a rate, or all at once: reconnect storms) or `attack` (hostile
//! clients of the server's defenses, and what it answered); `capacity`
//! steps echo, connect or pubsub until an SLO breaks. It reports
//! HdrHistogram percentiles, errors by reason, its own CPU per message and
//! the server's (from /proc), as a summary table, as JSON and as a
//! self-contained HTML page.
//!
//! What it does not do: TLS (wss), or any I/O beyond epoll on non-blocking
//! sockets; no async runtime.
//!
//! Key number: one connection's client state is a 136-byte struct on
//! x86-64 (reported as `conn_state_bytes`; the read buffer is shared per
//! thread), so a million connections cost loadgen ~140 MB of its own memory.
//!
//! Layout: `cli` (flags), `run` (coordinator), `procs` (worker processes),
//! `worker/` (hot path: per-thread event loop and connection state),
//! `schedule`/`stamp` (open-loop timing), `pubsub/` (the pubsub scenario's
//! pure parts), `churn` and `attack/` (those scenarios' flags, counts and
//! report; churn's loop part is `worker/thread/churn.rs`, attack runs its
//! own loop), `capacity` (load steps and the SLO), `stats`/`report`/
//! `timeline` (results), `html` (the HTML report).

// The two libc calls in `sys` are the crate's only unsafe code.
#![deny(unsafe_code)]

mod attack;
mod capacity;
mod churn;
mod cli;
mod hints;
mod html;
mod procs;
mod pubsub;
mod report;
mod run;
mod schedule;
mod source;
mod stamp;
mod stats;
#[allow(unsafe_code)]
mod sys;
mod timeline;
mod worker;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(message) = cli::validate(&cli.scenario) {
        eprintln!("ringgate-loadgen: {message}");
        std::process::exit(2);
    }
    let result = match (&cli.scenario, cli.scenario.common().child) {
        (scenario, Some(slot)) => procs::run_child(scenario, slot),
        (cli::Scenario::Capacity(capacity), None) => capacity::run(capacity),
        (scenario, None) => run::run(scenario),
    };
    if let Err(e) = result {
        eprintln!("ringgate-loadgen: {e:#}");
        std::process::exit(1);
    }
}
