//! Writers for the gateway's envelopes. Each appends one JSON object to the
//! caller's buffer (which it may grow, and nothing else): strings are
//! escaped as JSON requires, numbers are written as decimal integers, and a
//! payload goes in as the bytes it arrived as.
//!
//! String escaping: `"` and `\` get a backslash; `\b \f \n \r \t` their
//! short escapes; other C0 controls `\u00XX`; everything else, non-ASCII
//! included, goes out as it is (the output is UTF-8 because `&str` is).

use super::scan::find_special_byte;
use super::{ErrorCode, ParseError, RawJson};

/// An `err` envelope: `{"op":"err","id":...,"code":...,"retry_after_ms":...,"reason":...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorReply<'a> {
    /// The failed request's client id; omitted when unknown.
    pub id: Option<&'a str>,
    /// What went wrong.
    pub code: ErrorCode,
    /// When to try again; omitted when the gateway has no estimate.
    pub retry_after_ms: Option<u64>,
    /// Machine detail: the [`Reason`](super::Reason) of a `bad_request`, or a
    /// backend's reason for `rejected`; omitted when there is none.
    pub reason: Option<&'a str>,
}

impl ErrorReply<'_> {
    /// An error with just a code.
    pub const fn new(code: ErrorCode) -> ErrorReply<'static> {
        ErrorReply {
            id: None,
            code,
            retry_after_ms: None,
            reason: None,
        }
    }
}

impl<'a> From<&'a ParseError<'_>> for ErrorReply<'a> {
    /// The `bad_request` for a message [`parse`](super::parse) refused.
    fn from(error: &'a ParseError<'_>) -> Self {
        ErrorReply {
            id: error.id.as_deref(),
            code: error.code(),
            retry_after_ms: None,
            reason: Some(error.reason.as_str()),
        }
    }
}

/// A delivery: `{"op":"msg","topic":...,"msg":...,"from":...,"id":...,"ts":...,"data":...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery<'a> {
    /// The topic it was published on.
    pub topic: &'a str,
    /// The server message id (the router's 26-character sortable text).
    pub msg: &'a str,
    /// The sender's user id (for anonymous senders, the name the gateway
    /// gave their connection).
    pub from: &'a str,
    /// The sender's client message id.
    pub id: &'a str,
    /// The wall-clock part of the message's hybrid logical clock:
    /// milliseconds since the Unix epoch. Below 2^48, so exact as a
    /// JavaScript number.
    pub ts_ms: u64,
    /// The payload, as the publisher sent it.
    pub data: RawJson<'a>,
    /// The publisher's trace id; omitted when absent.
    pub trace: Option<&'a str>,
    /// Per-hop timestamps, when the publisher asked for them.
    pub hops: Option<&'a [Hop<'a>]>,
}

/// One per-hop timestamp of a delivery: `{"stage":...,"ts_us":...}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop<'a> {
    /// Where the message was, such as `gateway_in` or `router`.
    pub stage: &'a str,
    /// When, in microseconds since the Unix epoch on that host's clock.
    pub ts_us: u64,
}

/// A connectivity status envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<'a> {
    /// `{"op":"status","state":"ok"}`: back to normal.
    Ok,
    /// `{"op":"status","state":"degraded","text":...}`: some topics are cut
    /// off from their router; publishes are buffered.
    Degraded {
        /// For people (default [`DEGRADED_TEXT`](super::DEGRADED_TEXT)).
        text: &'a str,
    },
}

/// Appends `{"op":"ack","id":...,"msg":...,"dup":...}`.
pub fn write_ack(out: &mut Vec<u8>, id: &str, msg: &str, dup: bool) {
    out.reserve(40 + id.len() + msg.len());
    out.extend_from_slice(br#"{"op":"ack","id":"#);
    write_string(out, id);
    out.extend_from_slice(br#","msg":"#);
    write_string(out, msg);
    out.extend_from_slice(if dup {
        br#","dup":true}"#
    } else {
        br#","dup":false}"#
    });
}

/// Appends an `err` envelope.
pub fn write_err(out: &mut Vec<u8>, error: &ErrorReply<'_>) {
    let id_len = error.id.map_or(0, str::len);
    let reason_len = error.reason.map_or(0, str::len);
    out.reserve(90 + id_len + reason_len);
    out.extend_from_slice(br#"{"op":"err""#);
    if let Some(id) = error.id {
        out.extend_from_slice(br#","id":"#);
        write_string(out, id);
    }
    out.extend_from_slice(br#","code":"#);
    write_string(out, error.code.as_str());
    if let Some(retry_after_ms) = error.retry_after_ms {
        out.extend_from_slice(br#","retry_after_ms":"#);
        write_u64(out, retry_after_ms);
    }
    if let Some(reason) = error.reason {
        out.extend_from_slice(br#","reason":"#);
        write_string(out, reason);
    }
    out.push(b'}');
}

/// Appends `{"op":"subscribed","topic":...}`.
pub fn write_subscribed(out: &mut Vec<u8>, topic: &str) {
    write_topic_answer(out, br#"{"op":"subscribed","topic":"#, topic);
}

/// Appends `{"op":"unsubscribed","topic":...}`.
pub fn write_unsubscribed(out: &mut Vec<u8>, topic: &str) {
    write_topic_answer(out, br#"{"op":"unsubscribed","topic":"#, topic);
}

fn write_topic_answer(out: &mut Vec<u8>, head: &[u8], topic: &str) {
    out.reserve(head.len() + topic.len() + 3);
    out.extend_from_slice(head);
    write_string(out, topic);
    out.push(b'}');
}

/// Appends a `msg` envelope.
pub fn write_msg(out: &mut Vec<u8>, delivery: &Delivery<'_>) {
    let strings = [delivery.topic, delivery.msg, delivery.from, delivery.id];
    let strings_len: usize = strings.iter().map(|text| text.len()).sum();
    let trace_len = delivery.trace.map_or(0, str::len);
    let hops_len = delivery.hops.map_or(0, |hops| hops.len() * 56);
    out.reserve(120 + strings_len + delivery.data.len() + trace_len + hops_len);
    out.extend_from_slice(br#"{"op":"msg","topic":"#);
    write_string(out, delivery.topic);
    out.extend_from_slice(br#","msg":"#);
    write_string(out, delivery.msg);
    out.extend_from_slice(br#","from":"#);
    write_string(out, delivery.from);
    out.extend_from_slice(br#","id":"#);
    write_string(out, delivery.id);
    out.extend_from_slice(br#","ts":"#);
    write_u64(out, delivery.ts_ms);
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(delivery.data.as_bytes());
    if let Some(trace) = delivery.trace {
        out.extend_from_slice(br#","trace":"#);
        write_string(out, trace);
    }
    if let Some(hops) = delivery.hops {
        write_hops(out, hops);
    }
    out.push(b'}');
}

fn write_hops(out: &mut Vec<u8>, hops: &[Hop<'_>]) {
    out.extend_from_slice(br#","hops":["#);
    for (index, hop) in hops.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"stage":"#);
        write_string(out, hop.stage);
        out.extend_from_slice(br#","ts_us":"#);
        write_u64(out, hop.ts_us);
        out.push(b'}');
    }
    out.push(b']');
}

/// Appends a `status` envelope.
pub fn write_status(out: &mut Vec<u8>, status: Status<'_>) {
    match status {
        Status::Ok => out.extend_from_slice(br#"{"op":"status","state":"ok"}"#),
        Status::Degraded { text } => {
            out.reserve(45 + text.len());
            out.extend_from_slice(br#"{"op":"status","state":"degraded","text":"#);
            write_string(out, text);
            out.push(b'}');
        }
    }
}

/// For each byte that [`find_special_byte`] stops at: the letter after the
/// backslash of its escape (`u` for `\u00XX`); 0 for the other bytes.
static ESCAPES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x0C] = b'f';
    table[b'\n' as usize] = b'n';
    table[b'\r' as usize] = b'r';
    table[b'\t' as usize] = b't';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `text` as a JSON string, quotes included.
pub(super) fn write_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.push(b'"');
    let mut start = 0;
    loop {
        let pos = find_special_byte(bytes, start);
        let Some(&byte) = bytes.get(pos) else {
            break;
        };
        out.extend_from_slice(&bytes[start..pos]);
        start = pos + 1;
        let escape = ESCAPES[usize::from(byte)];
        if escape == b'u' {
            let high = HEX_DIGITS[usize::from(byte >> 4)];
            let low = HEX_DIGITS[usize::from(byte & 0xF)];
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', high, low]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `value` in decimal.
fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0; 20];
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
