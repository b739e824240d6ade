//! The router protocol codec: the binary frames that gateways, routers and
//! backend services exchange over TCP (specified byte by byte in
//! `docs/PROTOCOL.md`).
//!
//! What it does:
//! - [`Decoder::decode`] turns the bytes at the front of a read buffer into
//!   one [`Frame`] that borrows its strings and payload from that buffer
//!   (zero copy, no heap allocation), or `Ok(None)` while the frame is
//!   incomplete. It keeps no state: the caller keeps the unconsumed bytes and
//!   calls again. Every way a peer can break the format is a [`DecodeError`]
//!   variant that knows the [`Code`] to send in a GOAWAY.
//! - [`Decoder::header`] checks the 8-byte header alone, so a caller learns a
//!   frame's size (and refuses one over the limit) before buffering its body.
//! - [`encode`] appends a frame to a caller's `Vec<u8>`. It refuses what a
//!   decoder would refuse, with the same error, so every frame that encodes
//!   decodes back to itself. Each frame has exactly one encoding.
//! - [`CreditWindow`] does the flow-control arithmetic that both the sender
//!   and the receiver of PUBLISH and DELIVER frames must agree on.
//!
//! What it does not do: no I/O, no clock (timestamps are fields the caller
//! fills), no connection state machine. Which frame may come when (HELLO
//! first, roles, credit) is the caller's to enforce, with the help of
//! [`FrameType::may_send`] and [`CreditWindow`].
//!
//! Key numbers: an 8-byte header; bodies up to [`DEFAULT_MAX_BODY_BYTES`]
//! (16 MiB) unless the decoder is configured otherwise; protocol
//! [`VERSION`] 1.
//!
//! ```
//! use ringgate_router::msgid::MessageId;
//! use ringgate_router::protocol::{self, ConnectionRef, Frame, Publish};
//!
//! let publish = Frame::Publish(Publish {
//!     publish_id: 7,
//!     message_id: protocol::UNASSIGNED_ID,
//!     sender: ConnectionRef { gateway: 1, connection: 42 },
//!     topic: "conv_456",
//!     user: "alice",
//!     anonymous: false,
//!     client_msg_id: "c1",
//!     trace_id: "",
//!     hops: None,
//!     payload: br#"{"text":"hi"}"#,
//! });
//! let mut wire = Vec::new();
//! protocol::encode(&publish, &mut wire).unwrap();
//!
//! let decoder = protocol::Decoder::default();
//! assert_eq!(decoder.decode(&wire[..10]), Ok(None), "incomplete: wait for more");
//! let (frame, used) = decoder.decode(&wire).unwrap().unwrap();
//! assert_eq!((frame, used), (publish, wire.len()));
//! ```

mod code;
mod credit;
mod decode;
mod encode;
mod error;
mod frame;
mod hops;
mod rules;
mod types;

use crate::msgid::MessageId;

pub use code::Code;
pub use credit::{CreditError, CreditWindow};
pub use decode::{Decoder, Header, decode};
pub use encode::{Encoder, encode};
pub use error::{DecodeError, EncodeError, Field};
pub use frame::{
    Deliver, Frame, GoAway, Hello, HelloAck, Kick, Ping, Pong, PrefixRequest, Presence,
    PresenceEvent, Publish, PublishAck, PublishOutcome, Recipient, Refusal, Reply, Target,
    TopicRequest,
};
pub use hops::{HopBuffer, Hops, MAX_HOPS};
pub use rules::is_valid_close_code;
pub use types::{Capabilities, ConnectionRef, Credit, FrameType, Role, flags};

/// The first four body bytes of HELLO and HELLO_ACK: `RGRP` in ASCII.
pub const MAGIC: [u8; 4] = *b"RGRP";

/// The protocol version this codec speaks.
pub const VERSION: u16 = 1;

/// Bytes in a frame header: body length (u32), type (u8), flags (u8),
/// reserved (u16, zero).
pub const HEADER_LEN: usize = 8;

/// Largest body a [`Decoder::default`] accepts: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u32 = 16 << 20;

/// Smallest `max_body_bytes` a peer may announce in HELLO: 64 KiB, so every
/// control frame and a useful message always fit.
pub const MIN_MAX_BODY_BYTES: u32 = 64 << 10;

/// The message id a gateway puts in PUBLISH (the router assigns the real one)
/// and a backend puts in DELIVER to let the router assign one: all zero bits.
/// No router issues it: its wall time is the Unix epoch.
pub const UNASSIGNED_ID: MessageId = MessageId::from_u128(0);
