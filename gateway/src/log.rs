//! The gateway's logs: `log::info!`, `log::warn!`, `log::error!` (rate
//! limited per shard and event) and `log::sampled!` (per-message, a sampled
//! fraction), from `ringgate-logging`. Format, fields and the list of events:
//! docs/OPERATIONS.md, "Logs".

pub use ringgate_logging::{enter_shard, error, flush_suppressed, info, sampled, warn};
