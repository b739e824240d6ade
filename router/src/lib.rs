//! The router: the stateless process between gateways and backend services.
//!
//! It will hold the router protocol codec (pure, shared by gateway, router and
//! backend SDK), the `ringgate-router` binary (dedup of client message ids,
//! fan-out to gateways and backends) and the backend SDK.
//!
//! What it holds today: [`msgid`], server message ids as
//! `(hybrid logical time, router id, sequence)`: a pure hybrid logical clock
//! (time is an argument), a total order, a 16-byte binary encoding for the
//! router protocol and a 26-character sortable text encoding for the client
//! JSON `msg` field. No I/O, no clock reads, no `unsafe`.
//!
//! Key number: an id is 16 bytes, and its wall time runs until the year 10889.

#![forbid(unsafe_code)]

pub mod msgid;
