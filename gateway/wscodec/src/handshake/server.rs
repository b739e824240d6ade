//! Server side: checking a client's upgrade request (RFC 6455 4.2.1).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{MAX_HEADERS, accept_key, has_token};
use crate::HandshakeError;

/// What the server accepts in a handshake.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeConfig<'c> {
    /// Largest request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Subprotocols the server speaks; the client's first match is selected.
    pub subprotocols: &'c [String],
}

impl Default for HandshakeConfig<'_> {
    fn default() -> Self {
        Self {
            max_header_bytes: 8192,
            subprotocols: &[],
        }
    }
}

/// A valid upgrade request, borrowing the request buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRequest<'a> {
    pub path: &'a str,
    pub host: &'a str,
    pub origin: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// The selected subprotocol: the first of the client's list, in the
    /// client's order, that the server speaks.
    pub subprotocol: Option<&'a str>,
    /// The `Sec-WebSocket-Accept` value to answer with (base64).
    pub accept: [u8; 28],
    /// Length of the request head; any bytes after it are frame data.
    pub request_len: usize,
}

/// Parses and checks an upgrade request at the start of `buf`.
///
/// `Ok(None)` means the head is incomplete: read more and call again with
/// the whole buffer. A head that is still incomplete past
/// `max_header_bytes` fails with [`HandshakeError::HeadersTooLarge`].
pub fn parse_upgrade<'a>(
    buf: &'a [u8],
    config: &HandshakeConfig,
) -> Result<Option<UpgradeRequest<'a>>, HandshakeError> {
    // Parsing only the allowed prefix bounds the work on a hostile buffer.
    let head = &buf[..buf.len().min(config.max_header_bytes)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let request_len = match request.parse(head) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > config.max_header_bytes => {
            return Err(HandshakeError::HeadersTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    let (Some(method), Some(path), Some(version)) = (request.method, request.path, request.version)
    else {
        return Err(HandshakeError::Malformed);
    };
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if version != 1 {
        return Err(HandshakeError::HttpVersion);
    }
    let fields = UpgradeFields::collect(request.headers, config)?;
    let host = fields.host.ok_or(HandshakeError::MissingHost)?;
    if !fields.upgrade_websocket {
        return Err(HandshakeError::NotWebSocketUpgrade);
    }
    if !fields.connection_upgrade {
        return Err(HandshakeError::MissingConnectionUpgrade);
    }
    match fields.version {
        None => return Err(HandshakeError::MissingVersion),
        Some(b"13") => {}
        Some(_) => return Err(HandshakeError::UnsupportedVersion),
    }
    let key = fields.key.ok_or(HandshakeError::MissingKey)?;
    if !is_valid_key(key) {
        return Err(HandshakeError::BadKey);
    }
    Ok(Some(UpgradeRequest {
        path,
        host,
        origin: fields.origin,
        authorization: fields.authorization,
        subprotocol: fields.subprotocol,
        accept: accept_key(key),
        request_len,
    }))
}

/// RFC 6455 4.1: the key is 16 random bytes in (padded) base64.
fn is_valid_key(key: &[u8]) -> bool {
    let mut decoded = [0u8; 18];
    matches!(STANDARD.decode_slice(key, &mut decoded), Ok(16))
}

/// The headers the handshake reads, gathered in one pass.
#[derive(Default)]
struct UpgradeFields<'a> {
    host: Option<&'a str>,
    origin: Option<&'a str>,
    authorization: Option<&'a str>,
    key: Option<&'a [u8]>,
    version: Option<&'a [u8]>,
    subprotocol: Option<&'a str>,
    upgrade_websocket: bool,
    connection_upgrade: bool,
}

impl<'a> UpgradeFields<'a> {
    fn collect(
        headers: &[httparse::Header<'a>],
        config: &HandshakeConfig,
    ) -> Result<Self, HandshakeError> {
        let mut fields = Self::default();
        for header in headers {
            let value = header.value.trim_ascii();
            let name = header.name;
            if name.eq_ignore_ascii_case("host") {
                set_once(&mut fields.host, utf8(value)?, "Host")?;
            } else if name.eq_ignore_ascii_case("origin") {
                set_once(&mut fields.origin, utf8(value)?, "Origin")?;
            } else if name.eq_ignore_ascii_case("authorization") {
                set_once(&mut fields.authorization, utf8(value)?, "Authorization")?;
            } else if name.eq_ignore_ascii_case("sec-websocket-key") {
                set_once(&mut fields.key, value, "Sec-WebSocket-Key")?;
            } else if name.eq_ignore_ascii_case("sec-websocket-version") {
                set_once(&mut fields.version, value, "Sec-WebSocket-Version")?;
            } else if name.eq_ignore_ascii_case("upgrade") {
                fields.upgrade_websocket |= has_token(value, "websocket");
            } else if name.eq_ignore_ascii_case("connection") {
                fields.connection_upgrade |= has_token(value, "upgrade");
            } else if name.eq_ignore_ascii_case("sec-websocket-protocol")
                && fields.subprotocol.is_none()
            {
                fields.subprotocol = select_subprotocol(value, config.subprotocols);
            }
        }
        Ok(fields)
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), HandshakeError> {
    if slot.is_some() {
        return Err(HandshakeError::DuplicateHeader(name));
    }
    *slot = Some(value);
    Ok(())
}

fn utf8(value: &[u8]) -> Result<&str, HandshakeError> {
    std::str::from_utf8(value).map_err(|_| HandshakeError::NonUtf8Header)
}

/// The first protocol in the client's list that the server speaks.
fn select_subprotocol<'a>(offered: &'a [u8], supported: &[String]) -> Option<&'a str> {
    offered
        .split(|&byte| byte == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|name| supported.iter().any(|known| known.as_bytes() == *name))
        .find_map(|name| std::str::from_utf8(name).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn request_with(lines: &[&str]) -> Vec<u8> {
        let mut request = String::new();
        for line in lines {
            request.push_str(line);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.into_bytes()
    }

    fn valid_lines() -> Vec<String> {
        vec![
            "GET /chat?room=1 HTTP/1.1".into(),
            "Host: server.example.com".into(),
            "Upgrade: websocket".into(),
            "Connection: Upgrade".into(),
            format!("Sec-WebSocket-Key: {KEY}"),
            "Sec-WebSocket-Version: 13".into(),
        ]
    }

    /// The valid request with the line starting `prefix` replaced by
    /// `replacement` (or removed when it is empty).
    fn with_line(prefix: &str, replacement: &str) -> Vec<u8> {
        let mut lines = valid_lines();
        let index = lines
            .iter()
            .position(|line| line.starts_with(prefix))
            .unwrap();
        if replacement.is_empty() {
            lines.remove(index);
        } else {
            lines[index] = replacement.into();
        }
        request_with(&lines.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn parse(buf: &[u8]) -> Result<Option<UpgradeRequest<'_>>, HandshakeError> {
        parse_upgrade(buf, &HandshakeConfig::default())
    }

    fn refusal(buf: &[u8]) -> (HandshakeError, u16) {
        let error = parse(buf).unwrap_err();
        (error, error.status())
    }

    #[test]
    fn accepts_rfc_example_request() {
        let mut buf = request_with(&valid_lines().iter().map(String::as_str).collect::<Vec<_>>());
        let head_len = buf.len();
        buf.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let request = parse(&buf).unwrap().unwrap();
        assert_eq!(request.path, "/chat?room=1");
        assert_eq!(request.host, "server.example.com");
        assert_eq!(&request.accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(request.request_len, head_len);
        assert_eq!(request.subprotocol, None);
        assert_eq!((request.origin, request.authorization), (None, None));
    }

    #[test]
    fn incomplete_head_asks_for_more() {
        let buf = request_with(&valid_lines().iter().map(String::as_str).collect::<Vec<_>>());
        for len in [0, 1, 10, buf.len() - 1] {
            assert_eq!(parse(&buf[..len]), Ok(None));
        }
    }

    #[test]
    fn head_over_limit_is_431() {
        let config = HandshakeConfig {
            max_header_bytes: 64,
            subprotocols: &[],
        };
        let mut buf = b"GET / HTTP/1.1\r\nX: ".to_vec();
        buf.resize(65, b'x');
        let error = parse_upgrade(&buf, &config).unwrap_err();
        assert_eq!(
            (error, error.status()),
            (HandshakeError::HeadersTooLarge, 431)
        );
        // The same prefix at the limit is merely incomplete.
        assert_eq!(parse_upgrade(&buf[..64], &config), Ok(None));
    }

    #[test]
    fn over_100_headers_is_431() {
        let mut lines = valid_lines();
        lines.extend((0..100).map(|i| format!("X-Filler-{i}: y")));
        let buf = request_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let config = HandshakeConfig {
            max_header_bytes: 1 << 20,
            subprotocols: &[],
        };
        let error = parse_upgrade(&buf, &config).unwrap_err();
        assert_eq!(
            (error, error.status()),
            (HandshakeError::TooManyHeaders, 431)
        );
    }

    #[test]
    fn method_other_than_get_is_405() {
        let buf = with_line("GET", "POST /chat HTTP/1.1");
        assert_eq!(refusal(&buf), (HandshakeError::MethodNotAllowed, 405));
    }

    #[test]
    fn http_1_0_is_400() {
        let buf = with_line("GET", "GET / HTTP/1.0");
        assert_eq!(refusal(&buf), (HandshakeError::HttpVersion, 400));
    }

    #[test]
    fn garbage_is_400() {
        assert_eq!(
            refusal(b"\x00\x01 nonsense\r\n\r\n"),
            (HandshakeError::Malformed, 400)
        );
        assert_eq!(
            refusal(b"GET / HTTP/2.0\r\n\r\n"),
            (HandshakeError::Malformed, 400)
        );
    }

    #[test]
    fn missing_host_is_400() {
        assert_eq!(
            refusal(&with_line("Host", "")),
            (HandshakeError::MissingHost, 400)
        );
    }

    #[test]
    fn missing_or_wrong_upgrade_is_426() {
        let expected = (HandshakeError::NotWebSocketUpgrade, 426);
        assert_eq!(refusal(&with_line("Upgrade", "")), expected);
        assert_eq!(refusal(&with_line("Upgrade", "Upgrade: h2c")), expected);
    }

    #[test]
    fn upgrade_token_is_case_insensitive() {
        let buf = with_line("Upgrade", "Upgrade: WebSocket");
        assert!(parse(&buf).unwrap().is_some());
    }

    #[test]
    fn connection_upgrade_anywhere_in_list() {
        let buf = with_line("Connection", "Connection: keep-alive, UPGRADE");
        assert!(parse(&buf).unwrap().is_some());
        let expected = (HandshakeError::MissingConnectionUpgrade, 400);
        assert_eq!(
            refusal(&with_line("Connection", "Connection: keep-alive")),
            expected
        );
        assert_eq!(refusal(&with_line("Connection", "")), expected);
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let key_line = format!("sec-WEBSOCKET-key: {KEY}");
        let buf = request_with(&[
            "GET / HTTP/1.1",
            "HOST: a",
            "UPGRADE: websocket",
            "connection: upgrade",
            &key_line,
            "SEC-WEBSOCKET-VERSION: 13",
        ]);
        assert!(parse(&buf).unwrap().is_some());
    }

    #[test]
    fn bad_keys_are_400() {
        let expected = (HandshakeError::BadKey, 400);
        for key in [
            "",
            "not base64!",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZQ==",
            "AAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let line = format!("Sec-WebSocket-Key: {key}");
            assert_eq!(
                refusal(&with_line("Sec-WebSocket-Key", &line)),
                expected,
                "{key}"
            );
        }
        let expected = (HandshakeError::MissingKey, 400);
        assert_eq!(refusal(&with_line("Sec-WebSocket-Key", "")), expected);
    }

    #[test]
    fn duplicate_key_is_400() {
        let mut lines = valid_lines();
        lines.push(format!("Sec-WebSocket-Key: {KEY}"));
        let buf = request_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let expected = (HandshakeError::DuplicateHeader("Sec-WebSocket-Key"), 400);
        assert_eq!(refusal(&buf), expected);
    }

    #[test]
    fn missing_or_wrong_version_is_426() {
        let missing = (HandshakeError::MissingVersion, 426);
        assert_eq!(refusal(&with_line("Sec-WebSocket-Version", "")), missing);
        let wrong = (HandshakeError::UnsupportedVersion, 426);
        let line = "Sec-WebSocket-Version: 8";
        assert_eq!(refusal(&with_line("Sec-WebSocket-Version", line)), wrong);
    }

    #[test]
    fn subprotocol_is_clients_first_supported() {
        let supported = ["chat".to_string(), "superchat".to_string()];
        let config = HandshakeConfig {
            max_header_bytes: 8192,
            subprotocols: &supported,
        };
        let mut lines = valid_lines();
        lines.push("Sec-WebSocket-Protocol: v2.json, superchat".into());
        lines.push("Sec-WebSocket-Protocol: chat".into());
        let buf = request_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let request = parse_upgrade(&buf, &config).unwrap().unwrap();
        assert_eq!(request.subprotocol, Some("superchat"));
        // Nothing in common: no subprotocol, still accepted.
        let none = parse_upgrade(&buf, &HandshakeConfig::default())
            .unwrap()
            .unwrap();
        assert_eq!(none.subprotocol, None);
    }

    #[test]
    fn origin_and_authorization_are_exposed() {
        let mut lines = valid_lines();
        lines.push("Origin: https://example.com".into());
        lines.push("Authorization: Bearer abc".into());
        let buf = request_with(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let request = parse(&buf).unwrap().unwrap();
        assert_eq!(request.origin, Some("https://example.com"));
        assert_eq!(request.authorization, Some("Bearer abc"));
    }
}
