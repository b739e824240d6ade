//! The request parser: one pass over the message checks it as JSON and
//! collects the known fields (in any order); then come the checks for
//! repeated fields and, in a fixed order, `op`, `topic`, `id`, `data`,
//! `trace`, `hops`, `sent_us`.
//!
//! Unknown fields are ignored, so clients newer than the gateway can add
//! optional fields during a rolling upgrade; their values must still be
//! valid JSON and pass the control-character rule. A known field that
//! appears twice is refused, because JSON libraries disagree on which copy
//! wins, and a message that means one thing here and another to a backend
//! is how filters get bypassed.

use std::borrow::Cow;

use super::scan::{self, Kind, Scanner, Value};
use super::{Field, ParseError, Publish, RawJson, Reason, Request, Rules, Subscription};

/// Parses one client text message, the payload of a WebSocket text frame.
///
/// The WebSocket codec has checked UTF-8 already; this checks it again
/// (simdutf8, a small share of the parse) so that it can hand out `str`
/// slices without `unsafe` and without one check per field. Bytes that are
/// not UTF-8 are `invalid_json` (RFC 8259 section 8.1). A caller that holds
/// the message as a `str` already can call [`parse_str`].
///
/// The common path allocates nothing: strings without escapes and `data`
/// are slices of `frame`. A string with an escape is decoded into a
/// `String`.
pub fn parse<'a>(frame: &'a [u8], rules: &Rules) -> Result<Request<'a>, ParseError<'a>> {
    match simdutf8::basic::from_utf8(frame) {
        Ok(text) => parse_str(text, rules),
        Err(_) => Err(ParseError {
            reason: Reason::InvalidJson,
            id: None,
        }),
    }
}

/// [`parse`] for a message already held as a `str`.
pub fn parse_str<'a>(frame: &'a str, rules: &Rules) -> Result<Request<'a>, ParseError<'a>> {
    let mut fields = Fields::default();
    scan_object(frame, rules, &mut fields)
        .and_then(|()| fields.check_duplicates())
        .and_then(|()| fields.request(rules))
        .map_err(|reason| ParseError {
            reason,
            id: fields.recover_id(rules),
        })
}

/// Scans the top-level object, storing the known fields' values.
fn scan_object<'a>(frame: &'a str, rules: &Rules, fields: &mut Fields<'a>) -> Result<(), Reason> {
    let mut scanner = Scanner::new(frame, rules.refuse_control_characters);
    scanner.skip_whitespace();
    if scanner.peek() != Some(b'{') {
        return Err(
            match scan::check_value(frame, rules.refuse_control_characters) {
                Ok(()) => Reason::NotAnObject,
                Err(reason) => reason,
            },
        );
    }
    scanner.expect(b'{')?;
    scanner.skip_whitespace();
    if !scanner.eat(b'}') {
        loop {
            scanner.skip_whitespace();
            let (key, escaped) = scanner.string()?;
            scanner.skip_whitespace();
            scanner.expect(b':')?;
            scanner.skip_whitespace();
            let value = scanner.value()?;
            if let Some(field) = field_named(key, escaped) {
                fields.store(field, value);
            }
            scanner.skip_whitespace();
            if !scanner.eat(b',') {
                scanner.expect(b'}')?;
                break;
            }
        }
    }
    scanner.skip_whitespace();
    scanner.expect_end()
}

/// The known fields' values, as scanned.
#[derive(Default)]
struct Fields<'a> {
    op: Option<Value<'a>>,
    topic: Option<Value<'a>>,
    id: Option<Value<'a>>,
    data: Option<Value<'a>>,
    trace: Option<Value<'a>>,
    hops: Option<Value<'a>>,
    sent_us: Option<Value<'a>>,
    /// The first known field seen twice. Reported after the scan, so that a
    /// message is judged as JSON first, whatever comes after the repeat.
    duplicate: Option<Field>,
}

impl<'a> Fields<'a> {
    /// Keeps the first value of each field and notes the first repeat.
    fn store(&mut self, field: Field, value: Value<'a>) {
        let slot = match field {
            Field::Op => &mut self.op,
            Field::Topic => &mut self.topic,
            Field::Id => &mut self.id,
            Field::Data => &mut self.data,
            Field::Trace => &mut self.trace,
            Field::Hops => &mut self.hops,
            Field::SentUs => &mut self.sent_us,
        };
        if slot.is_some() {
            self.duplicate = self.duplicate.or(Some(field));
            return;
        }
        *slot = Some(value);
    }

    fn check_duplicates(&self) -> Result<(), Reason> {
        match self.duplicate {
            Some(field) => Err(Reason::DuplicateField(field)),
            None => Ok(()),
        }
    }

    /// Checks the fields for their op and builds the request.
    fn request(&self, rules: &Rules) -> Result<Request<'a>, Reason> {
        let op = required(self.op, Field::Op)?;
        let op = op.string().ok_or(Reason::WrongType(Field::Op))?;
        let op = Short::decode(op).ok_or(Reason::UnknownOp)?;
        match op.as_str() {
            "pub" => self.publish(rules).map(Request::Publish),
            "sub" => self.subscription(rules).map(Request::Subscribe),
            "unsub" => self.subscription(rules).map(Request::Unsubscribe),
            _ => Err(Reason::UnknownOp),
        }
    }

    fn publish(&self, rules: &Rules) -> Result<Publish<'a>, Reason> {
        let topic = topic(required(self.topic, Field::Topic)?, rules)?;
        let id = id(required(self.id, Field::Id)?, rules)?;
        let data = RawJson(required(self.data, Field::Data)?.raw.as_bytes());
        let trace = optional(self.trace).map(|trace| checked_trace(trace, rules));
        let hops = match optional(self.hops).map(|hops| hops.kind) {
            None => false,
            Some(Kind::Bool(hops)) => hops,
            Some(_) => return Err(Reason::WrongType(Field::Hops)),
        };
        let sent_us = optional(self.sent_us).map(sent_us).transpose()?;
        Ok(Publish {
            topic,
            id,
            data,
            trace: trace.transpose()?,
            hops,
            sent_us,
        })
    }

    fn subscription(&self, rules: &Rules) -> Result<Subscription<'a>, Reason> {
        let topic = topic(required(self.topic, Field::Topic)?, rules)?;
        let id = optional(self.id).map(|value| id(value, rules));
        Ok(Subscription {
            topic,
            id: id.transpose()?,
        })
    }

    /// The request's id for an `err`, if it was scanned and is valid.
    fn recover_id(&self, rules: &Rules) -> Option<Cow<'a, str>> {
        id(optional(self.id)?, rules).ok()
    }
}

/// A field that must be present; `null` is a value of the wrong type here.
fn required(value: Option<Value<'_>>, field: Field) -> Result<Value<'_>, Reason> {
    value.ok_or(Reason::MissingField(field))
}

/// A field that may be absent; `null` counts as absent.
fn optional(value: Option<Value<'_>>) -> Option<Value<'_>> {
    value.filter(|value| value.kind != Kind::Null)
}

/// Topic: 1 or more bytes of `A-Z a-z 0-9 _ . : -`, at most the rule's cap.
fn topic<'a>(value: Value<'a>, rules: &Rules) -> Result<Cow<'a, str>, Reason> {
    let topic = text(value, Field::Topic)?;
    let allowed =
        |byte| matches!(byte, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-');
    if !within(topic.len(), rules.max_topic_bytes) || !topic.bytes().all(allowed) {
        return Err(Reason::InvalidTopic);
    }
    Ok(topic)
}

/// Client id: 1 or more bytes of UTF-8, at most the rule's cap.
fn id<'a>(value: Value<'a>, rules: &Rules) -> Result<Cow<'a, str>, Reason> {
    let id = text(value, Field::Id)?;
    if !within(id.len(), rules.max_id_bytes) {
        return Err(Reason::InvalidId);
    }
    Ok(id)
}

/// Trace: 1 or more bytes of visible ASCII, at most the rule's cap.
fn checked_trace<'a>(value: Value<'a>, rules: &Rules) -> Result<Cow<'a, str>, Reason> {
    let trace = text(value, Field::Trace)?;
    let visible = trace.bytes().all(|byte| byte.is_ascii_graphic());
    if !within(trace.len(), rules.max_trace_bytes) || !visible {
        return Err(Reason::InvalidTrace);
    }
    Ok(trace)
}

/// The client's send time: a whole number of microseconds, digits only
/// (no sign, fraction or exponent), that fits a u64.
fn sent_us(value: Value<'_>) -> Result<u64, Reason> {
    if value.kind != Kind::Number {
        return Err(Reason::WrongType(Field::SentUs));
    }
    let digits = value.raw.as_bytes();
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(Reason::InvalidSentUs);
    }
    value.raw.parse().map_err(|_| Reason::InvalidSentUs)
}

/// Whether a length is 1 or more and at most `max` (0: no maximum).
fn within(len: usize, max: usize) -> bool {
    len >= 1 && (max == 0 || len <= max)
}

/// A string field's text: borrowed when it has no escape.
fn text(value: Value<'_>, field: Field) -> Result<Cow<'_, str>, Reason> {
    let (content, escaped) = value.string().ok_or(Reason::WrongType(field))?;
    if !escaped {
        return Ok(Cow::Borrowed(content));
    }
    let mut decoded = String::with_capacity(content.len());
    let complete = scan::unescape(content, |run| {
        decoded.push_str(run);
        true
    });
    if !complete {
        return Err(Reason::InvalidJson);
    }
    Ok(Cow::Owned(decoded))
}

/// The field a key names, if any. An escaped key is unescaped into a small
/// stack buffer first: `"t\u006fpic"` is `topic`.
fn field_named(key: &str, escaped: bool) -> Option<Field> {
    if !escaped {
        return Field::from_key(key);
    }
    Field::from_key(Short::decode((key, escaped))?.as_str())
}

/// A short string (an op or a key), unescaped on the stack.
struct Short<'a> {
    /// The text when it had no escape.
    plain: &'a str,
    bytes: [u8; Short::CAPACITY],
    len: usize,
}

impl<'a> Short<'a> {
    /// Longer than every op and field name.
    const CAPACITY: usize = 8;

    /// The text of string content; `None` when it has an escape and decodes
    /// to more than [`Short::CAPACITY`] bytes (so it is no name this module
    /// knows).
    fn decode((content, escaped): (&'a str, bool)) -> Option<Short<'a>> {
        let mut short = Short {
            plain: content,
            bytes: [0; Short::CAPACITY],
            len: 0,
        };
        if !escaped {
            return Some(short);
        }
        let fits = scan::unescape(content, |run| {
            let end = short.len + run.len();
            let Some(room) = short.bytes.get_mut(short.len..end) else {
                return false;
            };
            room.copy_from_slice(run.as_bytes());
            short.len = end;
            true
        });
        short.plain = "";
        fits.then_some(short)
    }

    fn as_str(&self) -> &str {
        if self.len == 0 {
            return self.plain;
        }
        // Whole characters were copied in, so this is UTF-8.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}
