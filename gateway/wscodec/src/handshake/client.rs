//! Client side, for the load generator: writing the upgrade request and
//! checking the server's 101 (RFC 6455 4.1).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::response::push_header;
use super::{MAX_HEADERS, has_token};
use crate::ClientHandshakeError;

/// Largest response head the client waits for.
pub const MAX_RESPONSE_HEAD_BYTES: usize = 8192;

/// The `Sec-WebSocket-Key` for 16 random bytes the caller drew (the codec
/// reads no randomness itself).
pub fn client_key(nonce: [u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    STANDARD
        .encode_slice(nonce, &mut key)
        .expect("16 bytes encode to exactly 24 base64 bytes");
    key
}

/// Appends an upgrade request; `extra_headers` (for example
/// `Sec-WebSocket-Protocol` or `Authorization`) go after the required ones.
pub fn write_client_request(
    out: &mut Vec<u8>,
    host: &str,
    path: &str,
    key_b64: &str,
    extra_headers: &[(&str, &str)],
) {
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    push_header(out, "Host", host);
    out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
    push_header(out, "Sec-WebSocket-Key", key_b64);
    out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

/// Checks the server's answer at the start of `buf`. Returns the length of
/// the response head once complete (bytes after it are frames), `Ok(None)`
/// while incomplete.
pub fn parse_server_response(
    buf: &[u8],
    expected_accept: &[u8; 28],
) -> Result<Option<usize>, ClientHandshakeError> {
    let head = &buf[..buf.len().min(MAX_RESPONSE_HEAD_BYTES)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_RESPONSE_HEAD_BYTES => {
            return Err(ClientHandshakeError::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ClientHandshakeError::TooManyHeaders),
        Err(_) => return Err(ClientHandshakeError::Malformed),
    };
    match response.code {
        Some(101) => {}
        Some(status) => return Err(ClientHandshakeError::Status(status)),
        None => return Err(ClientHandshakeError::Malformed),
    }
    let mut upgrade_websocket = false;
    let mut connection_upgrade = false;
    let mut accept = None;
    for header in response.headers.iter() {
        let value = header.value.trim_ascii();
        let name = header.name;
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade_websocket |= has_token(value, "websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, "upgrade");
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            // This client never offers an extension (RFC 6455 4.1, item 5).
            return Err(ClientHandshakeError::UnexpectedExtension);
        }
    }
    if !upgrade_websocket {
        return Err(ClientHandshakeError::NotWebSocketUpgrade);
    }
    if !connection_upgrade {
        return Err(ClientHandshakeError::MissingConnectionUpgrade);
    }
    match accept {
        None => Err(ClientHandshakeError::MissingAccept),
        Some(accept) if accept == expected_accept => Ok(Some(head_len)),
        Some(_) => Err(ClientHandshakeError::BadAccept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handshake::{HandshakeConfig, accept_key, parse_upgrade, write_accept_response};

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn expected_accept() -> [u8; 28] {
        accept_key(KEY.as_bytes())
    }

    #[test]
    fn client_key_encodes_16_bytes() {
        assert_eq!(&client_key(*b"the sample nonce"), KEY.as_bytes());
    }

    #[test]
    fn request_is_accepted_by_server_side_and_answer_by_client_side() {
        let mut request = Vec::new();
        write_client_request(&mut request, "example.com", "/ws", KEY, &[("Origin", "x")]);
        let upgrade = parse_upgrade(&request, &HandshakeConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (upgrade.host, upgrade.path, upgrade.origin),
            ("example.com", "/ws", Some("x"))
        );
        assert_eq!(upgrade.request_len, request.len());

        let mut response = Vec::new();
        write_accept_response(&mut response, &upgrade);
        let head_len = response.len();
        response.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(
            parse_server_response(&response, &expected_accept()),
            Ok(Some(head_len))
        );
        assert_eq!(
            parse_server_response(&response[..head_len - 1], &expected_accept()),
            Ok(None)
        );
    }

    fn response_with(lines: &[&str]) -> Vec<u8> {
        let mut text = lines.join("\r\n");
        text.push_str("\r\n\r\n");
        text.into_bytes()
    }

    const STATUS: &str = "HTTP/1.1 101 Switching Protocols";
    const UPGRADE: &str = "Upgrade: websocket";
    const CONNECTION: &str = "Connection: Upgrade";
    const ACCEPT: &str = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn check(lines: &[&str]) -> Result<Option<usize>, ClientHandshakeError> {
        parse_server_response(&response_with(lines), &expected_accept())
    }

    #[test]
    fn non_101_reports_status() {
        let lines = ["HTTP/1.1 429 Too Many Requests", "Retry-After: 1"];
        assert_eq!(check(&lines), Err(ClientHandshakeError::Status(429)));
    }

    #[test]
    fn wrong_or_missing_accept_is_refused() {
        let wrong = "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(
            check(&[STATUS, UPGRADE, CONNECTION, wrong]),
            Err(ClientHandshakeError::BadAccept)
        );
        assert_eq!(
            check(&[STATUS, UPGRADE, CONNECTION]),
            Err(ClientHandshakeError::MissingAccept)
        );
    }

    #[test]
    fn missing_upgrade_headers_are_refused() {
        assert_eq!(
            check(&[STATUS, CONNECTION, ACCEPT]),
            Err(ClientHandshakeError::NotWebSocketUpgrade)
        );
        assert_eq!(
            check(&[STATUS, UPGRADE, ACCEPT]),
            Err(ClientHandshakeError::MissingConnectionUpgrade)
        );
    }

    #[test]
    fn unrequested_extension_is_refused() {
        let extension = "Sec-WebSocket-Extensions: permessage-deflate";
        assert_eq!(
            check(&[STATUS, UPGRADE, CONNECTION, ACCEPT, extension]),
            Err(ClientHandshakeError::UnexpectedExtension)
        );
    }

    #[test]
    fn garbage_and_oversized_heads_are_refused() {
        assert_eq!(check(&["nonsense"]), Err(ClientHandshakeError::Malformed));
        let mut huge = b"HTTP/1.1 101 Switching Protocols\r\nX: ".to_vec();
        huge.resize(MAX_RESPONSE_HEAD_BYTES + 1, b'x');
        assert_eq!(
            parse_server_response(&huge, &expected_accept()),
            Err(ClientHandshakeError::HeadersTooLarge)
        );
    }
}
