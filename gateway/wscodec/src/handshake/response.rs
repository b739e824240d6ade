//! Writing HTTP/1.1 responses: the 101 that completes the upgrade, and the
//! refusals. Every refusal closes the connection, so each carries
//! `Connection: close` and a `Content-Length` for its short text body.

use super::server::UpgradeRequest;
use crate::HandshakeError;

/// Appends the `101 Switching Protocols` answer to an accepted request.
pub fn write_accept_response(out: &mut Vec<u8>, request: &UpgradeRequest) {
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: ",
    );
    out.extend_from_slice(&request.accept);
    out.extend_from_slice(b"\r\n");
    if let Some(subprotocol) = request.subprotocol {
        push_header(out, "Sec-WebSocket-Protocol", subprotocol);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the refusal for a failed handshake, with the headers its status
/// requires: `Allow` for 405, `Upgrade` and `Sec-WebSocket-Version` for 426.
pub fn write_error_response(out: &mut Vec<u8>, error: &HandshakeError) {
    let extra_headers: &[(&str, &str)] = match error.status() {
        405 => &[("Allow", "GET")],
        426 => &[("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")],
        _ => &[],
    };
    let body = format!("{error}\n");
    write_http_response(out, error.status(), extra_headers, &body);
}

/// Appends a complete response that ends the connection: status line,
/// `extra_headers`, `Connection: close`, a text/plain `body`. For refusals
/// decided outside the codec (401, 403, 429 or 503 with `Retry-After`).
///
/// Header names and values must not contain CR or LF.
pub fn write_http_response(
    out: &mut Vec<u8>,
    status: u16,
    extra_headers: &[(&str, &str)],
    body: &str,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in extra_headers {
        push_header(out, name, value);
    }
    out.extend_from_slice(
        b"Connection: close\r\n\
          Content-Type: text/plain; charset=utf-8\r\n\
          Content-Length: ",
    );
    push_decimal(out, body.len() as u64);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
}

pub(super) fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    debug_assert!(
        !name.contains(['\r', '\n']) && !value.contains(['\r', '\n']),
        "header {name:?} would split the response"
    );
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        // The reason phrase is informative only (RFC 9112 4).
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(out: &[u8]) -> &str {
        std::str::from_utf8(out).unwrap()
    }

    #[test]
    fn http_response_has_length_and_closes() {
        let mut out = Vec::new();
        write_http_response(&mut out, 429, &[("Retry-After", "5")], "slow down\n");
        assert_eq!(
            text(&out),
            "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nConnection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\r\nslow down\n"
        );
    }

    #[test]
    fn method_refusal_allows_get() {
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::MethodNotAllowed);
        let response = text(&out);
        assert!(response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(response.contains("\r\nAllow: GET\r\n"));
        assert!(response.contains("\r\nConnection: close\r\n"));
    }

    #[test]
    fn upgrade_required_names_protocol_and_version() {
        for error in [
            HandshakeError::UnsupportedVersion,
            HandshakeError::NotWebSocketUpgrade,
        ] {
            let mut out = Vec::new();
            write_error_response(&mut out, &error);
            let response = text(&out);
            assert!(response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
            assert!(response.contains("\r\nUpgrade: websocket\r\n"));
            assert!(response.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
    }

    #[test]
    fn error_body_length_matches_header() {
        let mut out = Vec::new();
        write_error_response(&mut out, &HandshakeError::BadKey);
        let response = text(&out);
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(head.ends_with(&format!("\r\nContent-Length: {}", body.len())));
        assert_eq!(body, "Sec-WebSocket-Key is not 16 bytes in base64\n");
    }

    #[test]
    fn decimal_digits() {
        for value in [0, 7, 10, 65535, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, value);
            assert_eq!(text(&out), value.to_string());
        }
    }
}
