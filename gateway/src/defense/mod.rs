//! Hot-path defenses shared by every shard: per-IP limits, authentication.

pub mod auth;
pub mod content;
pub mod ip_table;
pub mod tls;
pub mod user_table;
