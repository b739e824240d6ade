//! The client JSON envelope: parse what clients send in text frames, write
//! what the gateway answers. `docs/CLIENT_PROTOCOL.md` is the specification;
//! this module is its only implementation.
//!
//! What it does:
//! - [`parse`] turns one text message (`{"op":"pub",...}`, `sub`, `unsub`)
//!   into a [`Request`] that borrows from the message: strings without
//!   escapes are slices of it, and a publish's `data` is the exact bytes the
//!   client sent ([`RawJson`]), forwarded without re-encoding. It checks the
//!   whole message against RFC 8259 (plus I-JSON's ban on lone surrogates)
//!   and the configurable content [`Rules`]: topic alphabet and length, id
//!   and trace length, and no C0 control characters, raw or escaped.
//!   Anything wrong is one [`ParseError`]: a machine [`Reason`] plus the
//!   request's `id` when it could be read, so the `err` answer can carry it.
//! - The `write_*` functions append the gateway's envelopes (`ack`, `err`,
//!   `subscribed`, `unsubscribed`, `msg`, `status`) to a caller's `Vec<u8>`,
//!   escaping every string field.
//!
//! What it does not do: no I/O, no clock (times are arguments), no
//! allocation on the common path, no `unsafe`.
//! It does not decide what to do with a request: rate limits, authorization
//! and routing happen in the caller, which then picks an [`ErrorCode`].
//!
//! Key number: a typical 100-byte publish parses with no allocation in about
//! 2,700 instructions (about 220 ns on the shared dev VM, the same as
//! serde_json's borrowing derive, which checks far less); an `ack` is
//! written in about 21 ns (`benches/envelope.rs`; the protocol doc's
//! "Cost" section has the table).
//!
//! ```
//! use ringgate::envelope::{self, ErrorReply, Request, Rules};
//!
//! let frame = br#"{"op":"pub","topic":"conv_456","id":"c-1","data":{"text":"hi"}}"#;
//! let mut out = Vec::new();
//! match envelope::parse(frame, &Rules::default()) {
//!     Ok(Request::Publish(publish)) => {
//!         assert_eq!(publish.data.as_bytes(), br#"{"text":"hi"}"#);
//!         envelope::write_ack(&mut out, &publish.id, "01JB9W9SFP001G00000W00001A", false);
//!     }
//!     Ok(_) => unreachable!(),
//!     Err(error) => envelope::write_err(&mut out, &ErrorReply::from(&error)),
//! }
//! assert_eq!(
//!     out,
//!     br#"{"op":"ack","id":"c-1","msg":"01JB9W9SFP001G00000W00001A","dup":false}"#
//! );
//! ```

mod code;
mod parse;
mod scan;
mod write;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

pub use code::{ErrorCode, Field, ParseError, Reason};
pub use parse::{parse, parse_str};
pub use write::{
    Delivery, ErrorReply, Hop, Status, write_ack, write_err, write_msg, write_status,
    write_subscribed, write_unsubscribed,
};

/// Deepest nesting of arrays and objects accepted inside a field's value
/// (`data`, or an ignored unknown field): `{"a":[1]}` is depth 2. Bounds the
/// work per byte and keeps every consumer's recursive decoder safe.
pub const MAX_DEPTH: u32 = 64;

/// The text of a `degraded` status when the caller has nothing better.
pub const DEGRADED_TEXT: &str = "Limited connectivity";

/// The content rules applied to every request, from the configuration.
///
/// A limit of 0 turns that limit off (the brief's convention); the minimum
/// of one byte and the alphabets always apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// Longest `topic`, in bytes (default 256). Topics are 1 or more bytes
    /// of `A-Z a-z 0-9 _ . : -`.
    pub max_topic_bytes: usize,
    /// Longest client `id`, in bytes of UTF-8 after unescaping (default 128).
    pub max_id_bytes: usize,
    /// Longest `trace`, in bytes (default 128). Traces are 1 or more bytes of
    /// visible ASCII (`!` to `~`), so they can go into logs as they are.
    pub max_trace_bytes: usize,
    /// Refuse NUL and the C0 control characters other than tab, CR and LF
    /// anywhere in the message, raw or as escapes (`\u0000`, `\b`, `\f`)
    /// (default on; issue 3 item 9).
    pub refuse_control_characters: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            max_topic_bytes: 256,
            max_id_bytes: 128,
            max_trace_bytes: 128,
            refuse_control_characters: true,
        }
    }
}

/// One client request, borrowing from the message it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `{"op":"pub",...}`.
    Publish(Publish<'a>),
    /// `{"op":"sub","topic":...}`.
    Subscribe(Subscription<'a>),
    /// `{"op":"unsub","topic":...}`.
    Unsubscribe(Subscription<'a>),
}

impl<'a> Request<'a> {
    /// The request's topic.
    pub fn topic(&self) -> &str {
        match self {
            Request::Publish(publish) => &publish.topic,
            Request::Subscribe(subscription) | Request::Unsubscribe(subscription) => {
                &subscription.topic
            }
        }
    }

    /// The client's id for this request, to put in an `err` about it.
    pub fn id(&self) -> Option<&str> {
        match self {
            Request::Publish(publish) => Some(&publish.id),
            Request::Subscribe(subscription) | Request::Unsubscribe(subscription) => {
                subscription.id.as_deref()
            }
        }
    }
}

/// A publish: `{"op":"pub","topic":...,"id":...,"data":...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Where to publish. Borrowed unless the client escaped a character.
    pub topic: Cow<'a, str>,
    /// The client's message id: the dedup key with topic and sender.
    pub id: Cow<'a, str>,
    /// The payload, exactly as sent.
    pub data: RawJson<'a>,
    /// An end-to-end trace id, carried to backends and deliveries.
    pub trace: Option<Cow<'a, str>>,
    /// The client asks for per-hop timestamps in deliveries (`"hops":true`).
    pub hops: bool,
    /// The client's send time (`"sent_us"`, µs since the Unix epoch on its
    /// clock): the first hop when `hops` is true, ignored otherwise.
    pub sent_us: Option<u64>,
}

/// A subscribe or unsubscribe: `{"op":"sub","topic":...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription<'a> {
    /// The topic. Borrowed unless the client escaped a character.
    pub topic: Cow<'a, str>,
    /// An optional client id, only echoed in an `err` about this request.
    pub id: Option<Cow<'a, str>>,
}

/// One JSON value, as bytes that are known to be valid JSON (RFC 8259, no
/// lone surrogates, nesting at most [`MAX_DEPTH`]), exactly as they arrived.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawJson<'a>(&'a [u8]);

impl<'a> RawJson<'a> {
    /// Checks that `bytes` hold exactly one JSON value (whitespace around it
    /// is kept) and that it passes the control-character rule, for payloads
    /// that did not come through [`parse`], such as a backend's delivery.
    pub fn check(bytes: &'a [u8], rules: &Rules) -> Result<RawJson<'a>, Reason> {
        let text = simdutf8::basic::from_utf8(bytes).map_err(|_| Reason::InvalidJson)?;
        scan::check_value(text, rules.refuse_control_characters)?;
        Ok(RawJson(bytes))
    }

    /// Wraps bytes that were checked before, for instance a payload that
    /// [`parse`] accepted and that came back through a router. Passing bytes
    /// that are not JSON makes the gateway send clients invalid JSON.
    pub const fn trusted(bytes: &'a [u8]) -> RawJson<'a> {
        RawJson(bytes)
    }

    /// The JSON text.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// Bytes in the JSON text.
    pub const fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a checked value: JSON has no empty value.
    pub const fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for RawJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawJson({})", String::from_utf8_lossy(self.0))
    }
}
