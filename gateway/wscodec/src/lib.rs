//! Pure RFC 6455 WebSocket codec: the opening handshake and the frame layer.
//!
//! What it does:
//! - [`Decoder`] turns bytes from the wire into [`Message`]s, server or
//!   client side, enforcing every framing rule of RFC 6455 (mask rule,
//!   reserved bits and opcodes, control frame rules, fragmentation order,
//!   minimal length encoding, UTF-8 of text, Close payload) and the size
//!   [`Limits`]. Each violation is a [`ProtocolError`] variant that knows its
//!   close code.
//! - [`frame`] encodes frames into a caller's `Vec<u8>`.
//! - [`handshake`] parses and answers the HTTP/1.1 upgrade, both sides.
//!
//! What it does not do: no I/O, no clock, no threads, no `unsafe`. No
//! extensions (permessage-deflate is never negotiated, so RSV bits are
//! refused). It does not reply to pings or echo Close frames: the caller
//! owns the connection and decides.
//!
//! Key numbers: a [`Decoder`] is 72 bytes (asserted at most 96) plus one
//! reassembly `Vec` that never holds more than the message limit plus one
//! 125-byte control frame, and is empty for a connection whose frames each
//! arrive inside one read. Such a frame is returned as a slice of the read
//! buffer, unmasked in place, with no allocation.
//!
//! The read loop, server side:
//!
//! ```
//! use ringgate_wscodec::{Decoder, Limits, Message, OpCode, Role, write_frame};
//!
//! let mut read_buffer = Vec::new(); // stands in for an io_uring buffer
//! write_frame(&mut read_buffer, OpCode::Text, b"hi", Some([1, 2, 3, 4]));
//!
//! let mut decoder = Decoder::new(Role::Server);
//! let limits = Limits::default();
//! let mut offset = 0;
//! while offset < read_buffer.len() {
//!     match decoder.decode(&mut read_buffer[offset..], &limits) {
//!         Ok((used, event)) => {
//!             if let Some(Message::Text(text)) = event {
//!                 assert_eq!(text, b"hi");
//!             }
//!             offset += used;
//!         }
//!         Err(error) => {
//!             // Send a Close with error.close_code(), then drop the connection.
//!             panic!("{error} ({})", error.close_code());
//!         }
//!     }
//! }
//! // Every byte is consumed: the buffer can go back to the ring now.
//! ```

#![forbid(unsafe_code)]

mod decoder;
mod error;
pub mod frame;
pub mod handshake;
mod utf8;

pub use decoder::{CloseFrame, Decoder, Limits, Message, Role};
pub use error::{ClientHandshakeError, HandshakeError, ProtocolError, close_code};
pub use frame::{
    OpCode, apply_mask, encode_header, is_valid_close_code, write_close, write_fragment,
    write_frame,
};
pub use handshake::{
    HandshakeConfig, UpgradeRequest, accept_key, client_key, parse_server_response, parse_upgrade,
    write_accept_response, write_client_request, write_error_response, write_http_response,
};
