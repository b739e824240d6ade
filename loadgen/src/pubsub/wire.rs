//! The client JSON envelopes loadgen sends and reads (docs/CLIENT_PROTOCOL.md).
//! Pure: writes into a buffer, parses from bytes.
//!
//! A publish carries everything needed to account for it without
//! per-message state on either side:
//!
//! - its `id` is `RUN.TOPIC.SEQ.INTENDED` in hex (RUN: the run's start on
//!   the monotonic clock, so a rerun within the gateway's 300 s dedup window
//!   is not taken for a retry; INTENDED: the intended send time in ns), so an
//!   `ack` or `err` alone gives the ack latency and the topic to book it on;
//! - its `data` is `{"t":INTENDED_US,"p":PUBLISHER,"s":SEQ,"x":"…"}`: the
//!   intended send time in µs (monotonic clock: loadgen timestamps only for
//!   itself), the publishing user and its sequence number on the topic,
//!   padded with `x` to `--size` bytes.
//!
//! Subscriptions carry `id` `sK` (K: the subscription's slot on its
//! connection), so an `err` names which one failed.

use std::borrow::Cow;
use std::io::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;

/// Bytes of `data` without padding when every number is at its longest;
/// `--size` may not be below this.
pub const DATA_MIN_BYTES: usize = 64;
/// Longest `data` loadgen sends: the gateway's default text-message cap is
/// 64 KiB and the envelope around `data` needs room.
pub const DATA_MAX_BYTES: usize = 60 * 1024;

const TOPIC_PREFIX: &str = "t";

/// What a publish's `id` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishId {
    pub run: u64,
    pub topic: u32,
    pub seq: u32,
    pub intended_ns: u64,
}

/// `{"op":"sub","topic":"tTOPIC","id":"sSLOT"}`
pub fn write_subscribe(out: &mut Vec<u8>, topic: u32, slot: usize) {
    let _ = write!(
        out,
        r#"{{"op":"sub","topic":"{TOPIC_PREFIX}{topic}","id":"s{slot}"}}"#
    );
}

/// A publish envelope whose `data` is `data_bytes` long (or as short as
/// possible if that is less than the unpadded object).
pub fn write_publish(out: &mut Vec<u8>, id: PublishId, publisher: u64, data_bytes: usize) {
    let _ = write!(
        out,
        r#"{{"op":"pub","topic":"{TOPIC_PREFIX}{}","id":"{:x}.{:x}.{:x}.{:x}","data":"#,
        id.topic, id.run, id.topic, id.seq, id.intended_ns
    );
    let data_at = out.len();
    let _ = write!(
        out,
        r#"{{"t":{},"p":{publisher},"s":{}"#,
        id.intended_ns / 1_000,
        id.seq
    );
    // `,"x":""` and the closing brace.
    let frame = 8;
    let used = out.len() - data_at + frame;
    if data_bytes > used {
        out.extend_from_slice(br#","x":""#);
        out.resize(out.len() + (data_bytes - used), b'x');
        out.extend_from_slice(b"\"}");
    } else {
        out.push(b'}');
    }
    out.push(b'}');
}

pub fn parse_publish_id(id: &str) -> Option<PublishId> {
    let mut parts = id.split('.');
    let mut next = || parts.next().and_then(|p| u64::from_str_radix(p, 16).ok());
    let run = next()?;
    let topic = u32::try_from(next()?).ok()?;
    let seq = u32::try_from(next()?).ok()?;
    let intended_ns = next()?;
    Some(PublishId {
        run,
        topic,
        seq,
        intended_ns,
    })
}

/// The subscription slot named by a `sub`'s `id`.
pub fn parse_subscribe_id(id: &str) -> Option<usize> {
    id.strip_prefix('s')?.parse().ok()
}

/// The topic number of a topic name loadgen made.
pub fn parse_topic(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(TOPIC_PREFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A delivery's `data`, as loadgen wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Stamp {
    /// Intended send time, µs on the monotonic clock.
    pub t: u64,
    /// Publishing user (global index).
    pub p: u64,
    /// Sequence number on the topic.
    pub s: u32,
}

/// Every field loadgen reads from any server envelope; the rest is ignored,
/// as the protocol asks of clients.
#[derive(Debug, Deserialize)]
struct Raw<'a> {
    #[serde(borrow)]
    op: Cow<'a, str>,
    #[serde(borrow, default)]
    topic: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    dup: Option<bool>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    state: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
}

/// A server envelope, reduced to what loadgen acts on.
#[derive(Debug, PartialEq)]
pub enum ServerMessage<'a> {
    Subscribed {
        topic: Cow<'a, str>,
    },
    Ack {
        id: Cow<'a, str>,
        dup: bool,
    },
    Err {
        id: Option<Cow<'a, str>>,
        code: Cow<'a, str>,
    },
    /// A delivery; `stamp` is `None` when its `data` is not loadgen's.
    Msg {
        topic: Cow<'a, str>,
        stamp: Option<Stamp>,
    },
    Status {
        state: Cow<'a, str>,
    },
    /// `unsubscribed`, or an op this loadgen does not know.
    Other,
}

fn need(field: Option<Cow<'_, str>>) -> Result<Cow<'_, str>, ParseError> {
    field.ok_or(ParseError::MissingField)
}

/// Why a server message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not a JSON object with a string `op`.
    NotAnEnvelope,
    /// A known op without a field it must have.
    MissingField,
}

pub fn parse(text: &[u8]) -> Result<ServerMessage<'_>, ParseError> {
    // Borrowed throughout: `data` (the one large field) is only delimited
    // here and read as a stamp below, so a delivery allocates nothing.
    let raw: Raw<'_> = serde_json::from_slice(text).map_err(|_| ParseError::NotAnEnvelope)?;
    Ok(match raw.op.as_ref() {
        "subscribed" => ServerMessage::Subscribed {
            topic: need(raw.topic)?,
        },
        "ack" => ServerMessage::Ack {
            id: need(raw.id)?,
            dup: raw.dup.unwrap_or(false),
        },
        "err" => ServerMessage::Err {
            id: raw.id,
            code: need(raw.code)?,
        },
        "msg" => ServerMessage::Msg {
            topic: need(raw.topic)?,
            stamp: raw.data.and_then(|d| serde_json::from_str(d.get()).ok()),
        },
        "status" => ServerMessage::Status {
            state: need(raw.state)?,
        },
        _ => ServerMessage::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(data_bytes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let id = PublishId {
            run: 0xabc,
            topic: 42,
            seq: 7,
            intended_ns: 1_234_567_890,
        };
        write_publish(&mut out, id, 99, data_bytes);
        out
    }

    #[test]
    fn publishes_are_valid_json_padded_to_size() {
        for size in [DATA_MIN_BYTES, 100, 1_000, DATA_MAX_BYTES] {
            let out = publish(size);
            let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(value["op"], "pub");
            assert_eq!(value["topic"], "t42");
            assert_eq!(value["id"], "abc.2a.7.499602d2");
            let data = serde_json::to_vec(&value["data"]).unwrap();
            assert_eq!(data.len(), size, "{}", String::from_utf8_lossy(&data));
            assert_eq!(value["data"]["t"], 1_234_567);
            assert_eq!(value["data"]["p"], 99);
            assert_eq!(value["data"]["s"], 7);
        }
        // Too small to pad: no padding field at all.
        let value: serde_json::Value = serde_json::from_slice(&publish(10)).unwrap();
        assert!(value["data"].get("x").is_none());
    }

    #[test]
    fn longest_unpadded_data_fits_the_minimum() {
        let mut out = Vec::new();
        let id = PublishId {
            run: u64::MAX,
            topic: u32::MAX,
            seq: u32::MAX,
            intended_ns: u64::MAX,
        };
        write_publish(&mut out, id, u64::MAX, 0);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let data = serde_json::to_vec(&value["data"]).unwrap();
        assert!(data.len() <= DATA_MIN_BYTES, "{}", data.len());
        assert!(value["id"].as_str().unwrap().len() <= 128);
    }

    #[test]
    fn ids_round_trip() {
        let id = PublishId {
            run: 0x1234_5678_9abc,
            topic: 999_999,
            seq: 3,
            intended_ns: 5_000_000_123,
        };
        let mut out = Vec::new();
        write_publish(&mut out, id, 1, DATA_MIN_BYTES);
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parse_publish_id(value["id"].as_str().unwrap()), Some(id));
        assert_eq!(parse_publish_id("1.2.3"), None);
        assert_eq!(parse_publish_id("x.2.3.4"), None);
        assert_eq!(parse_publish_id("1.200000000.3.4"), None);
    }

    #[test]
    fn subscriptions_and_topics() {
        let mut out = Vec::new();
        write_subscribe(&mut out, 17, 3);
        assert_eq!(out, br#"{"op":"sub","topic":"t17","id":"s3"}"#);
        assert_eq!(parse_subscribe_id("s3"), Some(3));
        assert_eq!(parse_subscribe_id("3"), None);
        assert_eq!(parse_topic("t17"), Some(17));
        assert_eq!(parse_topic("t"), None);
        assert_eq!(parse_topic("t+1"), None);
        assert_eq!(parse_topic("conv_1"), None);
    }

    #[test]
    fn server_messages_parse() {
        let m = |text: &str| parse(text.as_bytes()).map(|m| format!("{m:?}"));
        assert_eq!(
            parse(br#"{"op":"subscribed","topic":"t1"}"#),
            Ok(ServerMessage::Subscribed { topic: "t1".into() })
        );
        assert_eq!(
            parse(br#"{"op":"ack","id":"a.b","msg":"01JB","dup":true}"#),
            Ok(ServerMessage::Ack {
                id: "a.b".into(),
                dup: true
            })
        );
        assert_eq!(
            parse(br#"{"op":"err","id":"x","code":"rate_limited","retry_after_ms":1200}"#),
            Ok(ServerMessage::Err {
                id: Some("x".into()),
                code: "rate_limited".into()
            })
        );
        assert_eq!(
            parse(br#"{"op":"err","code":"bad_request","reason":"invalid_json"}"#),
            Ok(ServerMessage::Err {
                id: None,
                code: "bad_request".into()
            })
        );
        let delivery = br#"{"op":"msg","topic":"t3","msg":"01M8","from":"anon-1","id":"1.3.0.5","ts":17,"data":{"t":12,"p":4,"s":9,"x":"xxxx"}}"#;
        assert_eq!(
            parse(delivery),
            Ok(ServerMessage::Msg {
                topic: "t3".into(),
                stamp: Some(Stamp { t: 12, p: 4, s: 9 })
            })
        );
        // Field order does not matter; a foreign payload has no stamp.
        assert_eq!(
            parse(br#"{"data":{"text":"hi"},"topic":"t3","op":"msg"}"#),
            Ok(ServerMessage::Msg {
                topic: "t3".into(),
                stamp: None
            })
        );
        assert_eq!(
            parse(br#"{"op":"status","state":"degraded","text":"Limited connectivity"}"#),
            Ok(ServerMessage::Status {
                state: "degraded".into()
            })
        );
        assert_eq!(m(r#"{"op":"unsubscribed","topic":"t1"}"#).unwrap(), "Other");
        assert_eq!(parse(b"[1]"), Err(ParseError::NotAnEnvelope));
        assert_eq!(parse(br#"{"op":"ack"}"#), Err(ParseError::MissingField));
    }
}
