//! Server message ids: `(hybrid logical time, router id, sequence)`.
//!
//! Ids are totally ordered by `(hlc, router, seq)`. Each router's
//! [`HybridClock`] strictly increases, and two routers never share a router
//! id, so no two ids are equal, and histories from both sides of a partition
//! merge into one deterministic order by sorting.
//!
//! Two encodings, both order-preserving (comparing encodings compares ids):
//!
//! | form | size | layout |
//! | --- | --- | --- |
//! | binary, router protocol | 16 bytes | big-endian: `wall_ms` (6) ‖ `logical` (2) ‖ `router` (4) ‖ `seq` (4) |
//! | text, client JSON `msg` | 26 chars | Crockford base32 of those 128 bits, e.g. `"01JB9W9SFP001G00000W00001A"` |
//!
//! Every 16-byte string is a valid id; a text id must be canonical (see
//! [`TextError`]).

mod hlc;
mod text;

use std::fmt;
use std::str::FromStr;

pub use hlc::{ClockError, DEFAULT_MAX_OFFSET_MS, Hlc, HybridClock};
pub use text::{TEXT_LEN, TextError};

/// A server message id. The derived order is `(hlc, router, seq)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId {
    /// When the router accepted the message.
    pub hlc: Hlc,
    /// The router that accepted it.
    pub router: u32,
    /// That router's count of ids issued (wrapping): lets a reader spot gaps
    /// in one router's stream. Never needed for order within one router.
    pub seq: u32,
}

/// Bytes in the binary encoding.
pub const BINARY_LEN: usize = 16;

impl MessageId {
    /// The id as one order-preserving 128-bit number: the binary layout.
    pub const fn to_u128(self) -> u128 {
        (self.hlc.to_u64() as u128) << 64 | (self.router as u128) << 32 | self.seq as u128
    }

    /// The inverse of [`to_u128`](MessageId::to_u128); every value is an id.
    pub const fn from_u128(value: u128) -> MessageId {
        MessageId {
            hlc: Hlc::from_u64((value >> 64) as u64),
            router: (value >> 32) as u32,
            seq: value as u32,
        }
    }

    /// The 16-byte router protocol encoding.
    pub const fn to_bytes(self) -> [u8; BINARY_LEN] {
        self.to_u128().to_be_bytes()
    }

    /// Decodes the 16-byte router protocol encoding.
    pub const fn from_bytes(bytes: [u8; BINARY_LEN]) -> MessageId {
        MessageId::from_u128(u128::from_be_bytes(bytes))
    }

    /// The 26-character client encoding, without allocating.
    pub fn to_text(self) -> MessageIdText {
        MessageIdText(text::encode(self.to_u128()))
    }

    /// Decodes the 26-character client encoding.
    pub fn from_text(text: &[u8]) -> Result<MessageId, TextError> {
        text::decode(text).map(MessageId::from_u128)
    }
}

/// A message id's text encoding: 26 ASCII bytes, held inline.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageIdText([u8; TEXT_LEN]);

impl MessageIdText {
    pub fn as_bytes(&self) -> &[u8; TEXT_LEN] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base32 digits are ASCII")
    }
}

impl fmt::Debug for MessageIdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_text().as_str())
    }
}

impl FromStr for MessageId {
    type Err = TextError;

    fn from_str(text: &str) -> Result<MessageId, TextError> {
        MessageId::from_text(text.as_bytes())
    }
}

/// Issues the ids of one router: its clock, its router id and its sequence.
#[derive(Clone, Debug)]
pub struct MessageIdGenerator {
    clock: HybridClock,
    router: u32,
    seq: u32,
}

impl MessageIdGenerator {
    /// A generator for `router` whose clock follows remote timestamps at most
    /// `max_offset_ms` ahead (see [`HybridClock`]).
    pub const fn new(router: u32, max_offset_ms: u64) -> MessageIdGenerator {
        MessageIdGenerator {
            clock: HybridClock::new(max_offset_ms),
            router,
            seq: 0,
        }
    }

    /// The next id; strictly greater than every id this generator issued.
    /// The sequence advances only when an id is issued.
    pub fn next(&mut self, physical_ms: u64) -> Result<MessageId, ClockError> {
        let hlc = self.clock.now(physical_ms)?;
        let id = MessageId {
            hlc,
            router: self.router,
            seq: self.seq,
        };
        self.seq = self.seq.wrapping_add(1);
        Ok(id)
    }

    /// Moves the clock past a timestamp seen from a peer (see
    /// [`HybridClock::observe`]), so later ids sort after it.
    pub fn observe(&mut self, remote: Hlc, physical_ms: u64) -> Result<Hlc, ClockError> {
        self.clock.observe(remote, physical_ms)
    }

    /// The last timestamp issued or observed.
    pub const fn last(&self) -> Hlc {
        self.clock.last()
    }
}
