//! `ringgate-router`: one stateless router process.
//!
//! ```text
//! ringgate-router --listen 127.0.0.1:7100 --id 1 [--dedup-window-s 300] [--dedup-capacity N]
//!                 [--admin ADDR|off] [--log-format json|pretty] [--log-level info]
//! ```
//!
//! `--admin ADDR` (default off) serves `/metrics` (the `ringgate_router_*`
//! metrics of docs/operations/METRICS.md) and `/healthz` over HTTP.
//!
//! Prints `ringgate-router listening on ADDR` on stdout once bound (ADDR is
//! the real address, so `--listen 127.0.0.1:0` works for scripts), then
//! `ringgate-router admin on ADDR` when `--admin` is on, logs JSON
//! lines on stderr, and on SIGTERM or SIGINT sends GOAWAY to every peer and
//! exits 0.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use prometheus_client::registry::Registry;
use ringgate_router::admin_http::{self, Response};
use ringgate_router::metrics::{self, RouterCollector};
use ringgate_router::server::{Router, RouterConfig, Snapshots, StopHandle};

/// A ringgate router: dedup, message ids, fan-out between gateways and backends.
#[derive(Parser, Debug)]
#[command(name = "ringgate-router", version)]
struct Args {
    /// Address to listen on for gateways and backends.
    #[arg(long, default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    /// This router's node id: unique in the fleet, the shard map's key.
    #[arg(long)]
    id: u32,
    /// How long a client message id is remembered, in seconds.
    #[arg(long, default_value_t = 300)]
    dedup_window_s: u64,
    /// Dedup entries (48 bytes each, allocated at start-up); at capacity
    /// the oldest is forgotten first.
    #[arg(long, default_value_t = 1 << 20)]
    dedup_capacity: usize,
    /// Largest frame body a peer may send, in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    max_body_bytes: u32,
    /// Bytes queued for one peer before it is disconnected as too slow.
    #[arg(long, default_value_t = 32 << 20)]
    max_output_bytes: usize,
    /// How long a backend has to accept or reject a publish, in ms (the
    /// library default, as the embedded router uses).
    #[arg(long, default_value_t = 5_000)]
    verdict_timeout_ms: u64,
    /// After start, publishes on topics no backend claimed are answered
    /// `unavailable` for this long, so backends re-claim before the router
    /// relays their topics (ms; 0 when no backend attaches).
    #[arg(long, default_value_t = 3_000)]
    claim_grace_ms: u64,
    /// Admin HTTP listener (`/metrics`, `/healthz`), e.g. 127.0.0.1:9091;
    /// `off`: none.
    #[arg(long, default_value = "off", value_parser = parse_admin)]
    admin: Admin,
    /// File holding the shared secret every peer's HELLO must carry.
    #[arg(long)]
    token_file: Option<std::path::PathBuf>,
    /// Log lines on stderr: `json` (one object per line) or `pretty`.
    #[arg(long, default_value = "json")]
    log_format: ringgate_logging::Format,
    /// Lowest level logged, or `level,target=level,...` (RUST_LOG overrides).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Lines per second of one event before lines are left out (and counted
    /// in a `log_suppressed` line); 0: no limit.
    #[arg(long, default_value_t = 10)]
    log_lines_per_second: u32,
    /// Lines of one event written at once before that rate holds.
    #[arg(long, default_value_t = 20)]
    log_burst: u32,
}

fn main() -> Result<()> {
    let args = Args::parse();
    ringgate_logging::init(&ringgate_logging::LogConfig {
        format: args.log_format,
        level: args.log_level.clone(),
        lines_per_second: args.log_lines_per_second,
        burst: args.log_burst,
        ..Default::default()
    })
    .context("invalid log settings")?;
    let token = match &args.token_file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim_ascii()
            .to_vec(),
        None => Vec::new(),
    };
    let config = RouterConfig {
        id: args.id,
        dedup_window_ms: args.dedup_window_s.saturating_mul(1000),
        dedup_capacity: args.dedup_capacity,
        max_body_bytes: args.max_body_bytes,
        max_output_bytes: args.max_output_bytes,
        verdict_timeout_ms: args.verdict_timeout_ms,
        claim_grace_ms: args.claim_grace_ms,
        token,
        ..RouterConfig::default()
    };
    config.validate().context("invalid settings")?;
    ringgate_uring::probe_io_uring().map_err(anyhow::Error::msg)?;
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr()?;
    let mut router = Router::new(config);
    let mut admin = None;
    if let Admin(Some(wanted)) = args.admin {
        let snapshots = Arc::new(Snapshots::new());
        router = router.with_snapshots(Arc::clone(&snapshots));
        let bound = serve_admin(wanted, snapshots)
            .with_context(|| format!("binding the admin listener {wanted} (or --admin off)"))?;
        ringgate_logging::info!(
            "admin_listening",
            "admin listening on {bound} (/metrics /healthz)"
        );
        admin = Some(bound);
    }
    let stop = StopHandle::new().context("creating the stop eventfd")?;
    watch_signals(stop.clone())?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ringgate-router listening on {address}")?;
    if let Some(bound) = admin {
        writeln!(stdout, "ringgate-router admin on {bound}")?;
    }
    stdout.flush()?;
    drop(stdout);
    router.serve(listener, stop).context("router event loop")?;
    Ok(())
}

/// Where `--admin` listens, if anywhere.
#[derive(Clone, Copy, Debug)]
struct Admin(Option<SocketAddr>);

fn parse_admin(text: &str) -> Result<Admin, String> {
    if text == "off" {
        return Ok(Admin(None));
    }
    text.parse()
        .map(|address| Admin(Some(address)))
        .map_err(|_| format!("{text:?} is neither an address (127.0.0.1:9091) nor off"))
}

/// Binds the admin listener and serves `/metrics` and `/healthz` on a
/// thread; the bound address.
fn serve_admin(address: SocketAddr, snapshots: Arc<Snapshots>) -> std::io::Result<SocketAddr> {
    // No SO_REUSEPORT: a second router on the same admin port must fail,
    // not share its scrapes.
    let listener = admin_http::bind(address, false)?;
    let bound = listener.local_addr()?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(RouterCollector { snapshots }));
    admin_http::spawn(listener, move |request| match request.path {
        "/metrics" => metrics::response(&registry, request),
        "/healthz" => Response::text(200, "ok\n"),
        _ => Response::text(404, "not found: try /metrics or /healthz\n"),
    })?;
    Ok(bound)
}

/// SIGTERM or SIGINT: stop gracefully. A second one: exit at once.
fn watch_signals(stop: StopHandle) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for (seen, _) in signals.forever().enumerate() {
                if seen > 0 {
                    std::process::exit(1);
                }
                stop.stop();
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}
