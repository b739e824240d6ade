//! The router: the stateless process between gateways and backend services.
//!
//! What it holds:
//! - [`protocol`], the router protocol codec shared by gateway, router and
//!   backend SDK: pure (no I/O, no clock), zero-copy decode, typed errors,
//!   specified byte by byte in `docs/PROTOCOL.md`;
//! - [`msgid`], server message ids as `(hybrid logical time, router id,
//!   sequence)`: a pure hybrid logical clock (time is an argument), a total
//!   order, a 16-byte binary encoding for the router protocol and a
//!   26-character sortable text encoding for the client JSON `msg` field;
//! - [`server`], the router itself (the `ringgate-router` binary, and the
//!   router the gateway embeds): one io_uring event-loop thread that
//!   de-duplicates publishes in a fixed-size table, assigns message ids,
//!   asks the backend that claimed a topic, and fans deliveries out to
//!   gateways, with credit flow control both ways;
//! - [`admin_http`], the small blocking HTTP server behind the admin
//!   endpoints of the router and the gateway;
//! - [`metrics`], the router's `ringgate_router_*` Prometheus metrics,
//!   read from the snapshots a running router publishes;
//! - [`sdk`], the backend SDK (blocking std sockets, one thread per router)
//!   and, in `examples/chat_history.rs`, a chat backend built on it
//!   (walkthrough: `docs/BACKENDS.md`).
//!
//! No `unsafe` here: io_uring lives in `ringgate-uring`. The codec and ids
//! do no I/O and read no clock; the server reads the clock once per
//! event-loop turn and passes it down.
//!
//! Key numbers: an id is 16 bytes, and its wall time runs until the year
//! 10889; a protocol frame is an 8-byte header and a body of at most 16 MiB
//! by default (1 MiB accepted by the router); a dedup entry is 48 bytes,
//! allocated at start-up.

#![forbid(unsafe_code)]

pub mod admin_http;
pub mod metrics;
pub mod msgid;
pub mod protocol;
pub mod sdk;
pub mod server;
