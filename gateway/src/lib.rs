//! ringgate: a thread-per-core io_uring WebSocket gateway.
//!
//! Layout: `hot/` is the per-core data plane (shards, connections, timers,
//! no locks, no per-message allocation); `control/` is the control plane
//! (start-up, signals, drain); `config` is the TOML file. All `unsafe` lives
//! in the `ringgate-uring` crate; the WebSocket protocol lives in the pure
//! `ringgate-wscodec` crate.
//!
//! Key number: an idle open connection costs one `Conn` slab entry (under
//! 200 bytes) and no heap; reads go through one shared buffer ring per core.
#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod control;
pub mod defense;
pub mod envelope;
pub mod hot;
pub mod log;
pub mod metrics;
