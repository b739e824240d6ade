//! The HTTP/1.1 opening handshake (RFC 6455 4): the server side parses an
//! upgrade request and writes the 101 or the refusal; the client side (for
//! the load generator) writes the request and checks the 101.
//!
//! Parsing is done by `httparse` over the caller's buffer with a fixed
//! array of [`MAX_HEADERS`] headers: nothing is allocated, and everything a
//! parsed request exposes borrows the buffer.

mod client;
mod response;
mod server;

pub use client::{
    MAX_RESPONSE_HEAD_BYTES, client_key, parse_server_response, write_client_request,
};
pub use response::{write_accept_response, write_error_response, write_http_response};
pub use server::{HandshakeConfig, UpgradeRequest, parse_upgrade};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

/// Most headers a request or response may carry; more is refused (431).
pub const MAX_HEADERS: usize = 100;

/// The GUID RFC 6455 1.3 appends to the key before hashing.
pub const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a client's `Sec-WebSocket-Key`:
/// base64(SHA-1(key + GUID)), always 28 ASCII bytes.
pub fn accept_key(client_key: &[u8]) -> [u8; 28] {
    let mut sha1 = Sha1::new();
    sha1.update(client_key);
    sha1.update(WEBSOCKET_GUID);
    let digest = sha1.finalize();
    let mut accept = [0u8; 28];
    STANDARD
        .encode_slice(digest, &mut accept)
        .expect("a 20-byte digest encodes to exactly 28 base64 bytes");
    accept
}

/// Whether a comma-separated header value lists `token`, ignoring ASCII
/// case and optional whitespace (RFC 9110 5.6.1).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_rfc_example() {
        // RFC 6455 1.3.
        assert_eq!(
            &accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn token_lists_ignore_case_and_whitespace() {
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"UPGRADE", "upgrade"));
        assert!(has_token(b" foo ,\tupgrade\t", "upgrade"));
        assert!(!has_token(b"upgrades, keep-alive", "upgrade"));
        assert!(!has_token(b"", "upgrade"));
    }
}
