//! Hot-path defenses shared by every shard: per-IP limits, authentication.

pub mod auth;
pub mod ip_table;
pub mod tls;
