//! Command-line flags. Flags override the config file; with neither, the
//! brief's defaults apply.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::config::{Config, ConfigError, Mode};
use crate::log;

/// ringgate: a thread-per-core io_uring WebSocket gateway.
///
/// Started with no arguments it serves WebSocket echo on 127.0.0.1:8080 with
/// one shard per available core.
#[derive(Debug, Parser)]
#[command(name = "ringgate", version, about, long_about = None)]
pub struct Cli {
    /// TOML configuration file (see docs/OPERATIONS.md for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Validate a configuration file and exit: 0 if valid, 2 if not.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check_config: Option<PathBuf>,

    /// Address to listen on (overrides gateway.listen) [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,

    /// Shard threads, each pinned to one core (overrides gateway.shards)
    /// [default: one per available core].
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,

    /// Echo every WebSocket message back with its type (overrides gateway.mode).
    #[arg(long)]
    pub echo: bool,

    /// Admin listener for /metrics, /healthz, /readyz and /status, or `off`
    /// (overrides admin.listen) [default: 127.0.0.1:9090].
    #[arg(long, value_name = "ADDR:PORT|off")]
    pub admin: Option<String>,

    /// Log lines on stderr: `json` (one object per line) or `pretty` (for
    /// people) (overrides log.format) [default: json].
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<ringgate_logging::Format>,

    /// Lowest level logged, or `level,target=level,...` (overrides
    /// log.level; RUST_LOG overrides both) [default: info].
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
}

fn refuse(error: &ConfigError) -> ExitCode {
    eprintln!("ringgate: configuration refused: {error}");
    ExitCode::from(2)
}

/// Parses flags, loads the config and serves. Exit codes: 0 after a clean
/// drain, 1 on a runtime failure, 2 for a refused configuration.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    if let Some(path) = &cli.check_config {
        return match Config::load(path) {
            Ok(_) => {
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(error) => refuse(&error),
        };
    }
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(config) => config,
            Err(error) => return refuse(&error),
        },
        None => Config::default(),
    };
    if let Some(listen) = cli.listen {
        config.gateway.listen = listen;
    }
    if let Some(shards) = cli.shards {
        config.gateway.shards = shards;
    }
    if cli.echo {
        config.gateway.mode = Mode::Echo;
    }
    if let Some(admin) = cli.admin {
        config.admin.listen = admin;
    }
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    if let Some(level) = cli.log_level {
        config.log.level = level;
    }
    if let Err(error) = config.validate("command line") {
        return refuse(&error);
    }
    if let Err(error) = ringgate_logging::init(&config.log) {
        eprintln!("ringgate: {error}");
        return ExitCode::from(2);
    }
    match crate::control::serve(&config) {
        Ok(stats) => {
            log::info!("stopped", "drained and stopped: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            log::error!("failed", "{error:#}");
            eprintln!("ringgate: {error:#}");
            ExitCode::FAILURE
        }
    }
}
