//! The shard map: topic (or user id) -> virtual shard -> router.
//!
//! What it does: hashes a topic or user id with a stable, specified hash
//! ([`hash`]: XXH3-64, fixed seeds) onto a fixed number of virtual shards
//! (default [`DEFAULT_VSHARDS`] = 4,096), and maps each virtual shard to a live
//! router by rendezvous (highest random weight) hashing. Every map carries an
//! epoch that increases by one on each published change; routers marked down
//! own nothing, so their shards fail over and return by epoch. A
//! [`SharedShardMap`] publishes maps RCU style; gateway workers read them
//! through a [`ShardMapReader`] with no lock and no atomic read-modify-write.
//!
//! What it does not do: no I/O, no health checking, no clock. It does not
//! decide that a router is down; the router client tells it.
//!
//! Key numbers: a lookup is one hash plus one array index, with no allocation
//! (tested with a counting allocator), in 5 to 8 ns for a short topic through
//! a [`ShardMapReader`] (`benches/lookup.rs`; the budget is 50 ns). A publish costs
//! `vshards * live routers` weight hashes: 65,536 for 16 routers.
//! Why rendezvous hashing and a fixed count: `docs/design/why-rendezvous.md`.

#![forbid(unsafe_code)]

mod error;
pub mod hash;
mod map;
mod shared;

pub use error::ShardMapError;
pub use map::{
    DEFAULT_VSHARDS, MAX_ROUTERS, MAX_VSHARDS, Member, RouterId, RouterState, ShardMap, VshardMove,
};
pub use shared::{ShardMapGuard, ShardMapReader, SharedShardMap};
