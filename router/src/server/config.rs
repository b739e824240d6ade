//! The router's limits. Every table and queue the router keeps is bounded by
//! one of these, decided at start-up.

use std::io;

use ringgate_uring::RingConfig;

use crate::protocol::{Credit, MIN_MAX_BODY_BYTES};

/// What a [`Router`](super::Router) is and how much it may hold.
///
/// Build one with struct update syntax:
/// `RouterConfig { id: 7, ..RouterConfig::default() }`.
#[derive(Clone, Debug)]
pub struct RouterConfig {
    /// This router's node id: sent in HELLO_ACK (peers key the shard map on
    /// it) and carried in every message id it issues. Unique in the fleet.
    pub id: u32,
    /// How long a publish's dedup key is remembered (the brief: 300 s).
    pub dedup_window_ms: u64,
    /// Entries in the dedup table, allocated at start-up (40 bytes each plus
    /// 8 bytes of index). At capacity the oldest entry goes first, so the
    /// window holds only while fewer than this many publishes are accepted
    /// per window. Default 1,048,576: 3,495 accepted publishes per second
    /// for the whole 300 s.
    pub dedup_capacity: usize,
    /// Largest frame body a peer may send (announced in HELLO_ACK).
    pub max_body_bytes: u32,
    /// The credit the router grants each peer for PUBLISH (gateways) and
    /// DELIVER (backends) frames, in HELLO_ACK, and keeps topping up as it
    /// answers them.
    pub peer_credit: Credit,
    /// Bytes the router queues for one peer (sent, not yet written, or
    /// waiting for that peer's credit). A gateway past it is sent GOAWAY
    /// `overloaded` and disconnected; a backend that far behind gets no new
    /// publishes (they are answered `unavailable`, code `overloaded`). One
    /// slow peer never grows the router.
    pub max_output_bytes: usize,
    /// Connections at once; more are closed at accept.
    pub max_peers: usize,
    /// Publishes waiting for a backend's verdict, router-wide; past it a
    /// publish is answered `unavailable` (code `overloaded`) at once.
    pub max_pending_publishes: usize,
    /// Topics one gateway node may subscribe to.
    pub max_subscriptions_per_gateway: usize,
    /// Connections one gateway node may announce with PRESENCE.
    pub max_presence_per_gateway: usize,
    /// Prefixes one backend may claim.
    pub max_claims_per_backend: usize,
    /// A connection must send HELLO within this.
    pub hello_timeout_ms: u64,
    /// The router pings every peer this often (announced in HELLO_ACK).
    pub ping_interval_ms: u32,
    /// A peer that sends nothing (not even a PONG) for this long is closed
    /// with GOAWAY `timeout` (default: three missed pings).
    pub idle_timeout_ms: u64,
    /// A backend must answer a forwarded PUBLISH within this; after it the
    /// publisher hears `unavailable` (code `timeout`) and the late verdict
    /// is ignored.
    pub verdict_timeout_ms: u64,
    /// After start, how long publishes on topics no backend claims are
    /// answered `unavailable` (retry after the rest of it) instead of being
    /// relayed: a restarted router must not relay, past their backend,
    /// topics whose backend has not re-claimed yet. Above the SDK's largest
    /// reconnect backoff (2 s). 0 for a router no backend attaches to (the
    /// single-host default's embedded router).
    pub claim_grace_ms: u64,
    /// On stop, how long peers get to read their GOAWAY before the router
    /// closes their sockets anyway.
    pub shutdown_grace_ms: u64,
    /// Shared secret every HELLO must carry; empty: none is required.
    pub token: Vec<u8>,
    /// The io_uring and its receive-buffer ring.
    pub ring: RingConfig,
}

impl Default for RouterConfig {
    fn default() -> RouterConfig {
        RouterConfig {
            id: 0,
            dedup_window_ms: 300_000,
            dedup_capacity: 1 << 20,
            max_body_bytes: 1 << 20,
            peer_credit: Credit {
                messages: 1024,
                bytes: 4 << 20,
            },
            max_output_bytes: 32 << 20,
            max_peers: 4096,
            max_pending_publishes: 65_536,
            max_subscriptions_per_gateway: 1 << 20,
            max_presence_per_gateway: 1 << 20,
            max_claims_per_backend: 1024,
            hello_timeout_ms: 5_000,
            ping_interval_ms: 5_000,
            idle_timeout_ms: 15_000,
            verdict_timeout_ms: 5_000,
            claim_grace_ms: 3_000,
            shutdown_grace_ms: 1_000,
            token: Vec::new(),
            ring: RingConfig {
                sq_entries: 1024,
                cq_entries: 8192,
                buffer_count: 512,
                buffer_size: 32 << 10,
            },
        }
    }
}

impl RouterConfig {
    /// Refuses limits the router cannot run with (`serve` checks too).
    pub fn validate(&self) -> io::Result<()> {
        let invalid = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        if self.dedup_capacity == 0 || self.dedup_capacity > u32::MAX as usize / 4 {
            return invalid("dedup_capacity must be between 1 and 2^30 - 1");
        }
        if self.dedup_window_ms == 0 {
            return invalid("dedup_window_ms must be positive");
        }
        if self.max_body_bytes < MIN_MAX_BODY_BYTES {
            return invalid("max_body_bytes must be at least 65536");
        }
        if self.peer_credit.messages == 0 || self.peer_credit.bytes == 0 {
            return invalid("peer_credit must grant at least one message and one byte");
        }
        if self.max_peers == 0 || self.max_peers >= u32::MAX as usize - 2 {
            return invalid("max_peers must be between 1 and 2^32 - 3");
        }
        if self.max_output_bytes == 0 || self.max_pending_publishes == 0 {
            return invalid("max_output_bytes and max_pending_publishes must be positive");
        }
        if self.ping_interval_ms == 0 || self.idle_timeout_ms <= u64::from(self.ping_interval_ms) {
            return invalid("idle_timeout_ms must exceed a positive ping_interval_ms");
        }
        Ok(())
    }
}
