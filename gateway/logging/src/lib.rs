//! ringgate-logging: the logs of `ringgate` and `ringgate-router`.
//!
//! `tracing` events written by `tracing-subscriber` to stderr, as JSON lines
//! (default) or human-readable lines. Every line carries `timestamp`,
//! `level`, `event` (a stable snake_case name) and `message`; lines from a
//! shard thread carry `shard`, from a router thread `router`.
//!
//! Two per-thread guards keep logging off the hot path and out of an
//! attacker's hands, both plain thread-local state (a shard is a thread; no
//! locks, no atomics):
//! - [`info!`], [`warn!`], [`error!`] pass a token bucket per event name
//!   ([`limiter`]); lines left out are counted and reported once a second in
//!   one `log_suppressed` line.
//! - [`sampled!`] logs a fixed fraction of per-message events ([`sampler`]);
//!   an unsampled message costs one xorshift step, and its fields are never
//!   formatted.
//!
//! Not here: metrics, config reload (neither binary reloads its config).

pub mod json;
pub mod limiter;
pub mod sampler;

use std::cell::{Cell, RefCell};
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Instant;

use serde::Deserialize;
use tracing::span::EnteredSpan;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;

pub use tracing;

use limiter::{Limiter, Limits};
use sampler::Sampler;

/// How lines look.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    #[default]
    Json,
    /// For people at a terminal.
    Pretty,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        match text {
            "json" => Ok(Format::Json),
            "pretty" => Ok(Format::Pretty),
            other => Err(format!("{other:?} is not a log format (json or pretty)")),
        }
    }
}

/// `[log]` in the gateway's config file (the router takes the same as flags).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: Format,
    /// Lowest level written (`error`, `warn`, `info`, `debug`, `trace`), or
    /// per-module directives (`warn,ringgate::hot=info`); `RUST_LOG`
    /// overrides it.
    pub level: String,
    /// Fraction of per-message events logged (`message_routed`); 0: none.
    pub sample_rate: f64,
    /// Lines per second each thread writes of one event; 0: no limit.
    pub lines_per_second: u32,
    /// Lines of one event a thread may write at once before the rate holds.
    pub burst: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        let limits = Limits::default();
        LogConfig {
            format: Format::Json,
            level: "info".into(),
            sample_rate: 0.01,
            lines_per_second: limits.lines_per_second,
            burst: limits.burst,
        }
    }
}

/// A refused `[log]` value: which key and why.
#[derive(Debug, thiserror::Error)]
#[error("key `{key}`: {reason}")]
pub struct LogConfigError {
    pub key: &'static str,
    pub reason: String,
}

impl LogConfig {
    pub fn validate(&self) -> Result<(), LogConfigError> {
        if let Err(reason) = parse_level(&self.level) {
            return Err(LogConfigError {
                key: "log.level",
                reason,
            });
        }
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(LogConfigError {
                key: "log.sample_rate",
                reason: format!("{} must be from 0 to 1", self.sample_rate),
            });
        }
        if self.lines_per_second != 0 && self.burst == 0 {
            return Err(LogConfigError {
                key: "log.burst",
                reason: "must be at least 1 while log.lines_per_second is set".into(),
            });
        }
        Ok(())
    }

    fn limits(&self) -> Limits {
        Limits {
            lines_per_second: self.lines_per_second,
            burst: self.burst,
        }
    }
}

/// Parses `level` or `level,target=level,...`. Stricter than `Targets`,
/// which reads a lone misspelt level as a target name.
fn parse_level(text: &str) -> Result<Targets, String> {
    for directive in text.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if tracing_subscriber::filter::LevelFilter::from_str(level).is_err() {
            return Err(format!(
                "{directive:?} is not a level (off, error, warn, info, debug, trace) \
                 or target=level"
            ));
        }
    }
    Targets::from_str(text).map_err(|error| format!("{text:?}: {error}"))
}

static CONFIG: OnceLock<LogConfig> = OnceLock::new();
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn config() -> &'static LogConfig {
    CONFIG.get_or_init(LogConfig::default)
}

/// Installs the process-wide subscriber writing to stderr. `RUST_LOG`, when
/// set, replaces `config.level`. Call once, before any thread logs; a second
/// call keeps the first setup.
pub fn init(config: &LogConfig) -> Result<(), LogConfigError> {
    config.validate()?;
    let level = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => directives,
        _ => config.level.clone(),
    };
    let targets = parse_level(&level).map_err(|reason| LogConfigError {
        key: "RUST_LOG",
        reason,
    })?;
    if CONFIG.set(config.clone()).is_err() {
        return Ok(());
    }
    EPOCH.get_or_init(Instant::now);
    let (json, pretty) = match config.format {
        Format::Json => (
            Some(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                    .event_format(json::JsonLines)
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        Format::Pretty => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    let subscriber = tracing_subscriber::registry()
        .with(targets)
        .with(json)
        .with(pretty);
    // Already set (a test process): the first subscriber stays.
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(())
}

thread_local! {
    static LIMITER: RefCell<Option<Limiter>> = const { RefCell::new(None) };
    static SAMPLER: Cell<Sampler> = const { Cell::new(Sampler::OFF) };
}

/// A shard or router thread's logging identity; dropping it (at the end of
/// the thread) writes every pending `log_suppressed` summary.
#[derive(Debug)]
pub struct ThreadGuard {
    _span: EnteredSpan,
}

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        write_summaries(u64::MAX);
    }
}

/// Marks the calling thread as shard `index` for the rest of its life: its
/// lines carry `"shard":index` and it samples per-message events. Keep the
/// returned guard alive for the thread's life.
pub fn enter_shard(index: usize) -> ThreadGuard {
    SAMPLER.set(Sampler::new(config().sample_rate, index as u64 + 1));
    // ERROR level: the span exists whatever level is configured.
    let span =
        tracing::span!(target: "ringgate", tracing::Level::ERROR, "shard", shard = index as u64);
    ThreadGuard {
        _span: span.entered(),
    }
}

/// Marks the calling thread as router `id` (its lines carry `"router":id`).
pub fn enter_router(id: u32) -> ThreadGuard {
    SAMPLER.set(Sampler::new(config().sample_rate, u64::from(id) << 32));
    let span = tracing::span!(target: "ringgate", tracing::Level::ERROR, "router", router = id);
    ThreadGuard {
        _span: span.entered(),
    }
}

/// True for the configured fraction of calls on this thread (none on a
/// thread that never called [`enter_shard`]/[`enter_router`]).
#[inline]
pub fn sampled() -> bool {
    SAMPLER.with(|cell| {
        let mut sampler = cell.get();
        let hit = sampler.sample();
        cell.set(sampler);
        hit
    })
}

fn now_ms() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Whether this thread may write one more line of `event` now; first writes
/// the `log_suppressed` summary of `event` if one is due.
pub fn admit(event: &'static str) -> bool {
    let now_ms = now_ms();
    let verdict = LIMITER.with_borrow_mut(|limiter| {
        limiter
            .get_or_insert_with(|| Limiter::new(config().limits()))
            .check(event, now_ms)
    });
    if let Some(count) = verdict.summary {
        suppressed(event, count);
    }
    verdict.allowed
}

/// Writes the summaries due on this thread (call from a periodic tick, so a
/// flood that stops is still reported).
pub fn flush_suppressed() {
    write_summaries(now_ms());
}

/// Writes the summaries due at `now_ms` (`u64::MAX`: all of them).
fn write_summaries(now_ms: u64) {
    let mut due = Vec::new();
    LIMITER.with_borrow_mut(|limiter| {
        if let Some(limiter) = limiter {
            limiter.due_summaries(now_ms, |event, count| due.push((event, count)));
        }
    });
    for (event, count) in due {
        suppressed(event, count);
    }
}

fn suppressed(event: &'static str, count: u64) {
    tracing::warn!(
        event = "log_suppressed",
        suppressed = count,
        of = event,
        "{count} {event} lines left out by the log rate limit"
    );
}

/// The rate-limited line behind [`info!`], [`warn!`] and [`error!`].
#[doc(hidden)]
#[macro_export]
macro_rules! limited {
    ($level:ident, $event:literal, $($rest:tt)+) => {
        if $crate::tracing::enabled!($crate::tracing::Level::$level) && $crate::admit($event) {
            $crate::tracing::event!($crate::tracing::Level::$level, event = $event, $($rest)+);
        }
    };
}

/// An `info` line: `info!("event_name", field = value, "message {}", x)`.
/// Rate limited per thread and event; nothing is formatted when left out.
#[macro_export]
macro_rules! info {
    ($($arguments:tt)+) => { $crate::limited!(INFO, $($arguments)+) };
}

/// A `warn` line (a request or connection failed); see [`info!`].
#[macro_export]
macro_rules! warn {
    ($($arguments:tt)+) => { $crate::limited!(WARN, $($arguments)+) };
}

/// An `error` line (the process itself failed); see [`info!`].
#[macro_export]
macro_rules! error {
    ($($arguments:tt)+) => { $crate::limited!(ERROR, $($arguments)+) };
}

/// A per-message `info` line for the sampled fraction of calls only (not
/// rate limited: the sample rate bounds it). Unsampled calls cost one
/// xorshift step; their fields are never evaluated.
#[macro_export]
macro_rules! sampled {
    ($event:literal, $($rest:tt)+) => {
        if $crate::sampled() {
            $crate::tracing::info!(event = $event, $($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_config_is_checked() {
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert_eq!("pretty".parse::<Format>(), Ok(Format::Pretty));
        assert!("xml".parse::<Format>().is_err());
        assert!(LogConfig::default().validate().is_ok());
        let bad_rate = LogConfig {
            sample_rate: 1.5,
            ..LogConfig::default()
        };
        assert_eq!(bad_rate.validate().unwrap_err().key, "log.sample_rate");
        let bad_level = LogConfig {
            level: "loud".into(),
            ..LogConfig::default()
        };
        assert_eq!(bad_level.validate().unwrap_err().key, "log.level");
        let directives = LogConfig {
            level: "warn,ringgate::hot=info".into(),
            ..LogConfig::default()
        };
        assert!(directives.validate().is_ok());
    }

    #[test]
    fn threads_sample_only_after_entering_a_shard() {
        std::thread::spawn(|| {
            assert!(!(0..10_000).any(|_| sampled()), "not a shard thread");
            let _shard = enter_shard(3);
            let hits = (0..100_000).filter(|_| sampled()).count();
            assert!((500..=1_500).contains(&hits), "{hits}");
        })
        .join()
        .unwrap();
    }
}
