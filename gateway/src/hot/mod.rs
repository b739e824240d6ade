//! The hot path: per-core shards, each a single thread that owns its ring,
//! its connections, its timer wheel and its counters. No locks, no shared
//! mutable state, no per-message allocation.

pub mod conn;
pub mod output;
pub mod pool;
pub mod relay;
pub mod shard;
pub mod stats;
pub mod timer;
