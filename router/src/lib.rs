//! The router: the stateless process between gateways and backend services.
//!
//! It will hold the `ringgate-router` binary (dedup of client message ids,
//! fan-out to gateways and backends) and the backend SDK.
//!
//! What it holds today:
//! - [`protocol`], the router protocol codec shared by gateway, router and
//!   backend SDK: pure (no I/O, no clock), zero-copy decode, typed errors,
//!   specified byte by byte in `docs/PROTOCOL.md`;
//! - [`msgid`], server message ids as `(hybrid logical time, router id,
//!   sequence)`: a pure hybrid logical clock (time is an argument), a total
//!   order, a 16-byte binary encoding for the router protocol and a
//!   26-character sortable text encoding for the client JSON `msg` field.
//!
//! No I/O, no clock reads, no `unsafe`.
//!
//! Key numbers: an id is 16 bytes, and its wall time runs until the year
//! 10889; a protocol frame is an 8-byte header and a body of at most 16 MiB
//! by default.

#![forbid(unsafe_code)]

pub mod msgid;
pub mod protocol;
