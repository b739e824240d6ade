//! One attacking (or control) connection's state, and the pure parts of
//! the attacks: the bytes each sends and how a server's reply is read.

use ringgate_wscodec::{OpCode, encode_header, write_frame};

use super::Kind;
use crate::worker::conn::Conn;

/// trickle: payload of the frame trickled after the upgrade (below the
/// gateway's 64 KiB message cap, so only its frame deadline can stop it).
pub const TRICKLE_PAYLOAD_BYTES: usize = 4096;
/// oversized: payload bytes sent after the header (the rest never comes).
pub const OVERSIZE_CHUNK_BYTES: usize = 16 * 1024;
/// nonreader: message size, and the most it sends in all (far above any
/// sane write-queue cap plus socket buffers).
pub const NONREADER_MESSAGE_BYTES: usize = 32 * 1024;
pub const NONREADER_BYTES_MAX: u64 = 256 << 20;
/// slowloris: the header line repeated one byte at a time (never an empty
/// line, so the request head never ends).
const SLOWLORIS_FILLER: &[u8] = b"X-a: b\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Not launched yet.
    Idle,
    Connecting,
    /// Upgrade request sent, waiting for `101`.
    Upgrading,
    /// The attack (or, for the control connection, honest echo) is on.
    Attacking,
    /// The server answered (or the run gave up on it).
    Done,
}

pub struct Client {
    /// None: the honest control connection.
    pub kind: Option<Kind>,
    pub conn: Conn,
    pub stage: Stage,
    /// When the attack began: the answer time is measured from here.
    pub attack_started_ns: u64,
    /// trickle/slowloris: bytes trickled; flood/nonreader: messages sent.
    pub progress: u64,
    /// nonreader: bytes sent.
    pub bytes_sent: u64,
    /// Next trickled byte (or control echo) is due at this time.
    pub next_ns: u64,
    /// nonreader: reading at last (after the window, or the server hung up).
    pub reading: bool,
    /// A partial upgrade answer (or slowloris's HTTP answer).
    pub head: Vec<u8>,
}

impl Client {
    pub fn new(kind: Option<Kind>) -> Client {
        Client {
            kind,
            conn: Conn::new(),
            stage: Stage::Idle,
            attack_started_ns: 0,
            progress: 0,
            bytes_sent: 0,
            next_ns: 0,
            reading: false,
            head: Vec::new(),
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self.stage, Stage::Connecting | Stage::Upgrading)
    }
}

/// slowloris: the request's first bytes, sent at once.
pub fn slowloris_start(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n").into_bytes()
}

/// slowloris: the `n`-th trickled byte.
pub fn slowloris_byte(n: u64) -> u8 {
    SLOWLORIS_FILLER[(n % SLOWLORIS_FILLER.len() as u64) as usize]
}

/// trickle: one masked text frame, sent a byte at a time.
pub fn trickle_frame(mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::new();
    write_frame(
        &mut frame,
        OpCode::Text,
        &[b't'; TRICKLE_PAYLOAD_BYTES],
        Some(mask),
    );
    frame
}

/// oversized: a binary frame header announcing `length` bytes, and the
/// first chunk of its payload.
pub fn oversized_start(length: u64, mask: [u8; 4]) -> Vec<u8> {
    let mut header = [0u8; ringgate_wscodec::frame::MAX_HEADER_LEN];
    let header_len = encode_header(&mut header, true, OpCode::Binary, length, Some(mask));
    let mut bytes = header[..header_len].to_vec();
    let chunk = OVERSIZE_CHUNK_BYTES.min(usize::try_from(length).unwrap_or(usize::MAX));
    bytes.resize(header_len + chunk, 0);
    bytes
}

/// flood: a publish envelope (a relay answers `ack` or `err`; an echo
/// server returns it) padded to about `size` bytes.
pub fn flood_message(id: &str, size: usize) -> Vec<u8> {
    let head = format!("{{\"op\":\"pub\",\"topic\":\"flood\",\"id\":\"{id}\",\"data\":\"");
    let padding = size.saturating_sub(head.len() + 2);
    let mut text = head.into_bytes();
    text.resize(text.len() + padding, b'x');
    text.extend_from_slice(b"\"}");
    text
}

/// What a reply to a flood message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodReply {
    /// Echoed, acknowledged, or anything else that is not a refusal.
    Answered,
    /// `err` with code `rate_limited`.
    Throttled,
    /// `err` with another code.
    Refused,
}

pub fn classify_flood_reply(payload: &[u8]) -> FloodReply {
    let text = String::from_utf8_lossy(payload);
    if !text.contains("\"op\":\"err\"") {
        return FloodReply::Answered;
    }
    if text.contains("\"code\":\"rate_limited\"") {
        FloodReply::Throttled
    } else {
        FloodReply::Refused
    }
}

/// The status of an HTTP answer once its first line is complete:
/// `Some(Ok(code))`, `Some(Err(()))` for garbage, `None` if incomplete.
pub fn http_status(head: &[u8]) -> Option<Result<u16, ()>> {
    let line_end = head.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&head[..line_end]).map_err(|_| ());
    Some(line.and_then(|line| {
        let mut parts = line.split(' ');
        match (parts.next(), parts.next()) {
            (Some(version), Some(code)) if version.starts_with("HTTP/1.") => {
                code.parse().map_err(|_| ())
            }
            _ => Err(()),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringgate_wscodec::{Decoder, Limits, Message, Role};

    #[test]
    fn slowloris_never_ends_its_head() {
        let mut bytes = slowloris_start("h:1", "/");
        bytes.extend((0..1000).map(slowloris_byte));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("GET / HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(!text.contains("\r\n\r\n"));
    }

    #[test]
    fn trickle_and_oversized_frames_decode_as_announced() {
        let mut frame = trickle_frame([1, 2, 3, 4]);
        let frame_len = frame.len();
        let mut server = Decoder::new(Role::Server);
        let (used, message) = server.decode(&mut frame, &Limits::default()).unwrap();
        assert_eq!(used, frame_len);
        assert!(matches!(message, Some(Message::Text(p)) if p.len() == TRICKLE_PAYLOAD_BYTES));
        let mut start = oversized_start(2 << 20, [9, 9, 9, 9]);
        let mut server = Decoder::new(Role::Server);
        assert!(server.decode(&mut start, &Limits::default()).is_err());
    }

    #[test]
    fn flood_replies_are_classified() {
        let message = flood_message("f1", 100);
        assert_eq!(message.len(), 100);
        let parsed: serde_json::Value = serde_json::from_slice(&message).unwrap();
        assert_eq!(parsed["op"], "pub");
        assert_eq!(classify_flood_reply(&message), FloodReply::Answered);
        assert_eq!(
            classify_flood_reply(br#"{"op":"ack","id":"f1"}"#),
            FloodReply::Answered
        );
        assert_eq!(
            classify_flood_reply(
                br#"{"op":"err","id":"f1","code":"rate_limited","retry_after_ms":5}"#
            ),
            FloodReply::Throttled
        );
        assert_eq!(
            classify_flood_reply(br#"{"op":"err","code":"too_large"}"#),
            FloodReply::Refused
        );
    }

    #[test]
    fn http_status_lines() {
        assert_eq!(
            http_status(b"HTTP/1.1 408 Request Timeout\r\n"),
            Some(Ok(408))
        );
        assert_eq!(http_status(b"HTTP/1.1 429"), None);
        assert_eq!(http_status(b"garbage\r\n"), Some(Err(())));
    }
}
