//! Command line: scenarios as subcommands, shared flags flattened into each.
//!
//! Values are parsed into their final units here (nanoseconds, messages per
//! second, socket addresses) so the rest of the crate never re-parses text.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::attack::AttackArgs;
use crate::capacity::CapacityArgs;
use crate::churn::ChurnArgs;
use crate::pubsub::topics::{Distribution, TOPICS_MAX};
use crate::pubsub::wire::{DATA_MAX_BYTES, DATA_MIN_BYTES};
use crate::source::{parse_cpus, parse_sources};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "ringgate-loadgen",
    version,
    about = "WebSocket load generator: echo throughput/latency, connection capacity, pub/sub delivery"
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand, Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// C connections echoing messages of S bytes, closed loop (--inflight) or open loop (--rate).
    Echo(EchoArgs),
    /// Open N connections at a ramp rate, hold them, report memory per connection.
    Connect(ConnectArgs),
    /// U users subscribed to topics publish at a total rate; delivery latency, loss, duplicates.
    Pubsub(PubSubArgs),
    /// Hold N connections, close and reopen R per second (or all at once: --storm).
    Churn(ChurnArgs),
    /// Hostile clients (slowloris, trickle, nonreader, oversized, flood) and how the server answers.
    Attack(AttackArgs),
    /// Step the load of echo, connect or pubsub until an SLO breaks; report the knee.
    Capacity(CapacityArgs),
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Echo(_) => "echo",
            Scenario::Connect(_) => "connect",
            Scenario::Pubsub(_) => "pubsub",
            Scenario::Churn(_) => "churn",
            Scenario::Attack(_) => "attack",
            Scenario::Capacity(_) => "capacity",
        }
    }

    pub fn common(&self) -> &CommonArgs {
        match self {
            Scenario::Echo(a) => &a.common,
            Scenario::Connect(a) => &a.common,
            Scenario::Pubsub(a) => &a.common,
            Scenario::Churn(a) => &a.common,
            Scenario::Attack(a) => &a.common,
            Scenario::Capacity(a) => a.target.common(),
        }
    }

    pub fn conns(&self) -> u64 {
        match self {
            Scenario::Echo(a) => a.conns,
            Scenario::Connect(a) => a.conns,
            Scenario::Pubsub(a) => a.users,
            Scenario::Churn(a) => a.conns,
            Scenario::Attack(a) => a.total_attackers(),
            Scenario::Capacity(a) => a.target.scenario().conns(),
        }
    }
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct CommonArgs {
    /// Target: ws://host:port/path
    #[arg(long, default_value = "ws://127.0.0.1:8080/")]
    pub url: WsUrl,
    /// Local source addresses: a range a.b.c.d-e.f.g.h, a CIDR, or a comma list of them.
    #[arg(long)]
    pub src: Option<String>,
    /// CPUs to pin worker threads to, one thread per CPU (e.g. 1 or 0,2 or 2-3).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Worker processes of this binary, each with its share of connections and sources.
    #[arg(long, default_value_t = 1)]
    pub procs: u32,
    /// Measurement window length (echo, pubsub).
    #[arg(long, default_value = "10s")]
    pub duration: Seconds,
    /// Time after all connections are open before measuring starts (echo, pubsub).
    #[arg(long, default_value = "2s")]
    pub warmup: Seconds,
    /// Handshake timeout: TCP connect plus HTTP upgrade.
    #[arg(long, default_value = "10s")]
    pub timeout: Seconds,
    /// Most connection attempts in flight per thread (bounds SYN bursts).
    #[arg(long, default_value_t = 512)]
    pub max_pending: u32,
    /// Write the result as JSON to this file.
    #[arg(long)]
    #[serde(skip)]
    pub json: Option<PathBuf>,
    /// Write the latency percentile distribution (.hgrm text) to this file.
    #[arg(long)]
    #[serde(skip)]
    pub hist_out: Option<PathBuf>,
    /// Write a self-contained HTML report (charts, summary, parameters) to this file.
    #[arg(long)]
    #[serde(skip)]
    pub html: Option<PathBuf>,
    /// Server process(es) to sample CPU and RSS from (repeatable or comma list).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// No progress lines on stderr.
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
    /// Internal: run as worker process INDEX/COUNT of a --procs parent.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub child: Option<ChildSlot>,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct EchoArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Connections.
    #[arg(long, default_value_t = 100)]
    pub conns: u64,
    /// Message payload bytes (at least 16: the send timestamp travels in the payload).
    #[arg(long, default_value_t = 64)]
    pub size: u32,
    /// Closed loop: messages kept outstanding per connection.
    #[arg(long, conflicts_with = "rate")]
    pub inflight: Option<u32>,
    /// Open loop: total messages per second over all connections (e.g. 50000 or 50000/s).
    #[arg(long)]
    pub rate: Option<Rate>,
    /// Send binary messages instead of text.
    #[arg(long)]
    pub binary: bool,
    /// How long to wait after the window for replies to messages sent in it.
    #[arg(long, default_value = "2s")]
    pub drain: Seconds,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct ConnectArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub conns: u64,
    /// Ramp: new connections per second over all workers (0: as fast as --max-pending allows).
    #[arg(long, default_value = "1000/s")]
    pub rate: Rate,
    /// How long to hold the connections once all are open.
    #[arg(long, default_value = "30s")]
    pub hold: Seconds,
    /// Send a ping on every connection this often while holding (default: idle).
    #[arg(long)]
    pub ping_interval: Option<Seconds>,
}

#[derive(Args, Debug, Clone, Serialize)]
pub struct PubSubArgs {
    #[command(flatten)]
    #[serde(flatten)]
    pub common: CommonArgs,
    /// Users: one connection each.
    #[arg(long, default_value_t = 100)]
    pub users: u64,
    /// Topics, named t0, t1, ...; t0 is the most popular under zipf.
    #[arg(long, default_value_t = 100)]
    pub topics: u32,
    /// Distinct topics each user subscribes to, drawn from --dist.
    #[arg(long, default_value_t = 1)]
    pub subs_per_user: u32,
    /// Topic popularity for subscriptions and publishes: uniform, zipf (exponent 1) or zipf:S.
    #[arg(long, default_value = "uniform")]
    pub dist: Distribution,
    /// Open loop: total publishes per second over all users (e.g. 1000 or 1000/s).
    #[arg(long, default_value = "1000/s")]
    pub rate: Rate,
    /// Bytes of each publish's `data` (stamp plus padding).
    #[arg(long, default_value_t = 128)]
    pub size: u32,
    /// How long to wait after the window for acks and deliveries of its publishes.
    #[arg(long, default_value = "2s")]
    pub drain: Seconds,
    /// Seed of the subscription and topic choices (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A duration given as `10s`, `500ms`, `250us`, `2m`, `1h` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl Seconds {
    pub fn as_ns(self) -> u64 {
        u64::try_from(self.0.as_nanos()).unwrap_or(u64::MAX)
    }
}

impl FromStr for Seconds {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("bad duration {text:?}: expected e.g. 10s, 500ms"))?;
        let scale = match unit {
            "" | "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(format!("bad duration unit {unit:?} in {text:?}")),
        };
        let secs = value * scale;
        if !secs.is_finite() || !(0.0..=86_400.0 * 365.0).contains(&secs) {
            return Err(format!("duration {text:?} out of range"));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

impl Serialize for Seconds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.0.as_secs_f64())
    }
}

/// Events per second, given as `1000` or `1000/s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate(pub f64);

impl FromStr for Rate {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let number = text.trim().trim_end_matches("/s");
        let value: f64 = number
            .parse()
            .map_err(|_| format!("bad rate {text:?}: expected e.g. 1000 or 1000/s"))?;
        if !value.is_finite() || value < 0.0 {
            return Err(format!("rate {text:?} out of range"));
        }
        Ok(Rate(value))
    }
}

/// `ws://host:port/path`, resolved once at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct WsUrl {
    pub text: String,
    /// Value of the Host header.
    pub host: String,
    pub path: String,
    pub addr: SocketAddr,
}

impl FromStr for WsUrl {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("ws://")
            .ok_or_else(|| format!("url {text:?} must start with ws:// (wss is not supported)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("url {text:?} has no host"));
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_string()
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {authority:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("{authority:?} resolves to no address"))?;
        Ok(WsUrl {
            text: text.to_string(),
            host: authority.to_string(),
            path: path.to_string(),
            addr,
        })
    }
}

impl Serialize for WsUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// `INDEX/COUNT`: which worker process this is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildSlot {
    pub index: u32,
    pub count: u32,
}

impl FromStr for ChildSlot {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (index, count) = text.split_once('/').ok_or("expected INDEX/COUNT")?;
        let index: u32 = index.parse().map_err(|_| "bad index")?;
        let count: u32 = count.parse().map_err(|_| "bad count")?;
        if count == 0 || index >= count {
            return Err("index must be below count".into());
        }
        Ok(ChildSlot { index, count })
    }
}

/// Checks that clap cannot express; returns a message for the user.
pub fn validate(scenario: &Scenario) -> Result<(), String> {
    let common = scenario.common();
    if common.procs == 0 || common.procs > 256 {
        return Err("--procs must be 1..=256".into());
    }
    if scenario.conns() == 0 {
        return Err("--conns must be at least 1".into());
    }
    if let Some(src) = &common.src {
        parse_sources(src)?;
    }
    if let Some(cpus) = &common.cpus {
        parse_cpus(cpus)?;
    }
    if common.timeout.0.is_zero() {
        return Err("--timeout must be above 0".into());
    }
    match scenario {
        Scenario::Echo(echo) => {
            if echo.size < crate::stamp::STAMP_LEN as u32 {
                return Err(format!(
                    "--size must be at least {} bytes (the send time travels in the payload)",
                    crate::stamp::STAMP_LEN
                ));
            }
            if echo.size > 16 << 20 {
                return Err("--size above 16 MiB".into());
            }
            if echo.inflight == Some(0) {
                return Err("--inflight must be at least 1".into());
            }
            if echo.rate.is_some_and(|r| r.0 <= 0.0) {
                return Err("--rate must be above 0".into());
            }
            if common.duration.0.is_zero() {
                return Err("--duration must be above 0".into());
            }
        }
        Scenario::Connect(connect) => {
            if connect.ping_interval.is_some_and(|p| p.0.is_zero()) {
                return Err("--ping-interval must be above 0".into());
            }
        }
        Scenario::Pubsub(pubsub) => validate_pubsub(pubsub)?,
        Scenario::Churn(churn) => crate::churn::validate(churn)?,
        Scenario::Attack(attack) => crate::attack::validate(attack)?,
        Scenario::Capacity(capacity) => {
            crate::capacity::validate(capacity)?;
            validate(&capacity.target.scenario())?;
        }
    }
    Ok(())
}

fn validate_pubsub(pubsub: &PubSubArgs) -> Result<(), String> {
    if pubsub.topics == 0 || pubsub.topics > TOPICS_MAX {
        return Err(format!("--topics must be 1..={TOPICS_MAX}"));
    }
    if pubsub.subs_per_user == 0 || pubsub.subs_per_user > pubsub.topics.min(1024) {
        return Err("--subs-per-user must be 1..=min(--topics, 1024)".into());
    }
    if pubsub.users < u64::from(pubsub.common.procs) || pubsub.users > u64::from(u32::MAX) {
        return Err("--users must be at least --procs and below 2^32".into());
    }
    if pubsub.rate.0 <= 0.0 {
        return Err("--rate must be above 0".into());
    }
    let size = pubsub.size as usize;
    if !(DATA_MIN_BYTES..=DATA_MAX_BYTES).contains(&size) {
        return Err(format!(
            "--size must be {DATA_MIN_BYTES}..={DATA_MAX_BYTES} bytes (the stamp travels in data)"
        ));
    }
    if pubsub.common.duration.0.is_zero() {
        return Err("--duration must be above 0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!("10s".parse::<Seconds>().unwrap().0, Duration::from_secs(10));
        assert_eq!(
            "500ms".parse::<Seconds>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            "250us".parse::<Seconds>().unwrap().0,
            Duration::from_micros(250)
        );
        assert_eq!("2m".parse::<Seconds>().unwrap().0, Duration::from_secs(120));
        assert_eq!(
            "1.5".parse::<Seconds>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert!("10x".parse::<Seconds>().is_err());
        assert!("-1s".parse::<Seconds>().is_err());
    }

    #[test]
    fn rates_accept_per_second_suffix() {
        assert_eq!("1000/s".parse::<Rate>().unwrap().0, 1000.0);
        assert_eq!("2.5".parse::<Rate>().unwrap().0, 2.5);
        assert!("fast".parse::<Rate>().is_err());
    }

    #[test]
    fn urls_split_into_host_and_path() {
        let url: WsUrl = "ws://127.0.0.1:9000/chat?x=1".parse().unwrap();
        assert_eq!(url.host, "127.0.0.1:9000");
        assert_eq!(url.path, "/chat?x=1");
        assert_eq!(url.addr, "127.0.0.1:9000".parse().unwrap());
        let bare: WsUrl = "ws://127.0.0.1".parse().unwrap();
        assert_eq!(bare.path, "/");
        assert_eq!(bare.addr.port(), 80);
        let v6: WsUrl = "ws://[::1]:8080/".parse().unwrap();
        assert_eq!(v6.addr, "[::1]:8080".parse().unwrap());
        assert!("wss://127.0.0.1/".parse::<WsUrl>().is_err());
    }

    #[test]
    fn child_slot_parses() {
        assert_eq!(
            "2/4".parse::<ChildSlot>().unwrap(),
            ChildSlot { index: 2, count: 4 }
        );
        assert!("4/4".parse::<ChildSlot>().is_err());
    }
}
