//! Encoding: one [`Frame`] appended to a caller's `Vec<u8>`.
//!
//! The encoder first measures the body (checking every length prefix), then
//! checks the frame rules and the receiver's limit, and only then writes, in
//! one reservation. On any error the output is untouched, and the error is
//! the one the receiving decoder would have reported.

use super::error::{EncodeError, Field};
use super::frame::{
    Deliver, Frame, Hello, HelloAck, Kick, Presence, PresenceEvent, Publish, PublishAck,
    PublishOutcome, Recipient, Refusal, Target,
};
use super::hops::Hops;
use super::types::{ConnectionRef, Credit, FrameType};
use super::{DEFAULT_MAX_BODY_BYTES, HEADER_LEN, MAGIC, rules};
use crate::msgid::MessageId;

/// Encodes frames for a receiver that accepts bodies up to a limit (the
/// `max_body_bytes` of its HELLO or HELLO_ACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoder {
    max_body_bytes: u32,
}

impl Encoder {
    pub const fn new(max_body_bytes: u32) -> Encoder {
        Encoder { max_body_bytes }
    }

    /// Appends `frame` to `out` and returns the bytes written (header
    /// included). On error `out` is unchanged.
    pub fn encode(&self, frame: &Frame<'_>, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
        let body_len = body_len(frame)?;
        rules::check(frame)?;
        let body_len_u32 = u32::try_from(body_len)
            .ok()
            .filter(|&len| len <= self.max_body_bytes)
            .ok_or(EncodeError::FrameTooLarge {
                len: body_len,
                max: self.max_body_bytes,
            })?;
        let start = out.len();
        out.reserve(HEADER_LEN + body_len);
        out.extend_from_slice(&body_len_u32.to_be_bytes());
        out.extend_from_slice(&[frame.frame_type() as u8, frame.flags(), 0, 0]);
        if let Err(error) = write_body(frame, &mut Writer::new(out, frame.frame_type())) {
            out.truncate(start);
            return Err(error);
        }
        debug_assert_eq!(out.len() - start, HEADER_LEN + body_len);
        Ok(HEADER_LEN + body_len)
    }
}

impl Default for Encoder {
    /// For a receiver with the default 16 MiB limit.
    fn default() -> Encoder {
        Encoder::new(DEFAULT_MAX_BODY_BYTES)
    }
}

/// [`Encoder::encode`] for a receiver with the default 16 MiB limit.
pub fn encode(frame: &Frame<'_>, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    Encoder::default().encode(frame, out)
}

impl Frame<'_> {
    /// Bytes this frame encodes to, header included (what it costs in byte
    /// credit), or the length prefix it overflows. Writes nothing.
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        Ok(HEADER_LEN + body_len(self)?)
    }
}

fn body_len(frame: &Frame<'_>) -> Result<usize, EncodeError> {
    let mut counter = Counter(0);
    write_body(frame, &mut Writer::new(&mut counter, frame.frame_type()))?;
    Ok(counter.0)
}

/// Where body bytes go: the output, or a counter that only measures.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

struct Counter(usize);

impl Sink for Counter {
    fn put(&mut self, bytes: &[u8]) {
        self.0 += bytes.len();
    }
}

fn write_body<S: Sink>(frame: &Frame<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    match frame {
        Frame::Hello(hello) => write_hello(hello, w)?,
        Frame::HelloAck(ack) => write_hello_ack(ack, w)?,
        Frame::GoAway(go_away) => {
            w.u16(go_away.code.0);
            w.str16(Field::Text, go_away.text)?;
        }
        Frame::Ping(ping) => {
            w.u64(ping.nonce);
            w.u64(ping.sent_us);
        }
        Frame::Pong(pong) => {
            w.u64(pong.nonce);
            w.u64(pong.ping_sent_us);
            w.u64(pong.sent_us);
        }
        Frame::Credit(credit) => w.credit(credit),
        Frame::Publish(publish) => write_publish(publish, w)?,
        Frame::PublishAck(ack) => write_publish_ack(ack, w)?,
        Frame::Deliver(deliver) => write_deliver(deliver, w)?,
        Frame::Subscribe(request) | Frame::Unsubscribe(request) => {
            w.u64(request.request_id);
            w.str16(Field::Topic, request.topic)?;
        }
        Frame::Claim(request) | Frame::Release(request) => {
            w.u64(request.request_id);
            w.str16(Field::Prefix, request.prefix)?;
        }
        Frame::Reply(reply) => {
            w.u64(reply.request_id);
            w.u16(reply.code.0);
            w.str16(Field::Text, reply.text)?;
        }
        Frame::Presence(presence) => write_presence(presence, w)?,
        Frame::Kick(kick) => write_kick(kick, w)?,
    }
    Ok(())
}

fn write_hello<S: Sink>(hello: &Hello<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    w.put(&MAGIC);
    w.u16(hello.min_version);
    w.u16(hello.max_version);
    w.u8(hello.role as u8);
    w.u32(hello.node_id);
    w.u32(hello.capabilities.0);
    w.u32(hello.max_body_bytes);
    w.u32(hello.ping_interval_ms);
    w.credit(&hello.credit);
    w.str16(Field::Agent, hello.agent)?;
    w.bytes16(Field::Token, hello.token)?;
    w.put(hello.extensions);
    Ok(())
}

fn write_hello_ack<S: Sink>(ack: &HelloAck<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    w.put(&MAGIC);
    w.u16(ack.version);
    w.u8(ack.role as u8);
    w.u32(ack.node_id);
    w.u32(ack.capabilities.0);
    w.u32(ack.max_body_bytes);
    w.u32(ack.ping_interval_ms);
    w.credit(&ack.credit);
    w.str16(Field::Agent, ack.agent)
}

fn write_publish<S: Sink>(publish: &Publish<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    w.u64(publish.publish_id);
    w.message_id(publish.message_id);
    w.connection(publish.sender);
    w.str16(Field::Topic, publish.topic)?;
    w.str16(Field::User, publish.user)?;
    w.str16(Field::ClientMsgId, publish.client_msg_id)?;
    w.str8(Field::TraceId, publish.trace_id)?;
    w.hops(publish.hops);
    w.bytes32(Field::Payload, publish.payload)
}

fn write_publish_ack<S: Sink>(
    ack: &PublishAck<'_>,
    w: &mut Writer<'_, S>,
) -> Result<(), EncodeError> {
    w.u64(ack.publish_id);
    match ack.outcome {
        PublishOutcome::Accepted { message_id } => {
            w.u8(1);
            w.message_id(message_id);
        }
        PublishOutcome::Duplicate { message_id } => {
            w.u8(2);
            w.message_id(message_id);
        }
        PublishOutcome::Rejected(refusal) => {
            w.u8(3);
            write_refusal(&refusal, w)?;
        }
        PublishOutcome::Unavailable(refusal) => {
            w.u8(4);
            write_refusal(&refusal, w)?;
        }
    }
    Ok(())
}

fn write_refusal<S: Sink>(refusal: &Refusal<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    w.u16(refusal.code.0);
    w.u32(refusal.retry_after_ms);
    w.str16(Field::Text, refusal.text)
}

fn write_deliver<S: Sink>(deliver: &Deliver<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    w.message_id(deliver.message_id);
    match deliver.target {
        Target::Topic => w.u8(1),
        Target::User(user) => {
            w.u8(2);
            w.str16(Field::Target, user)?;
        }
        Target::Connection(connection) => {
            w.u8(3);
            w.connection(connection);
        }
    }
    w.str16(Field::Topic, deliver.topic)?;
    w.str16(Field::From, deliver.from)?;
    w.str16(Field::ClientMsgId, deliver.client_msg_id)?;
    w.str8(Field::TraceId, deliver.trace_id)?;
    w.hops(deliver.hops);
    w.bytes32(Field::Payload, deliver.payload)
}

fn write_presence<S: Sink>(
    presence: &Presence<'_>,
    w: &mut Writer<'_, S>,
) -> Result<(), EncodeError> {
    let (event, topic) = match presence.event {
        PresenceEvent::Connected => (1, None),
        PresenceEvent::Disconnected => (2, None),
        PresenceEvent::Joined(topic) => (3, Some(topic)),
        PresenceEvent::Left(topic) => (4, Some(topic)),
    };
    w.u8(event);
    w.connection(presence.connection);
    w.str16(Field::User, presence.user)?;
    if let Some(topic) = topic {
        w.str16(Field::Topic, topic)?;
    }
    Ok(())
}

fn write_kick<S: Sink>(kick: &Kick<'_>, w: &mut Writer<'_, S>) -> Result<(), EncodeError> {
    match kick.recipient {
        Recipient::User(user) => {
            w.u8(2);
            w.str16(Field::Target, user)?;
        }
        Recipient::Connection(connection) => {
            w.u8(3);
            w.connection(connection);
        }
    }
    w.u16(kick.close_code);
    w.str16(Field::Reason, kick.reason)
}

/// Big-endian writes into a [`Sink`]; length prefixes are checked.
struct Writer<'s, S> {
    sink: &'s mut S,
    frame_type: FrameType,
}

impl<'s, S: Sink> Writer<'s, S> {
    fn new(sink: &'s mut S, frame_type: FrameType) -> Self {
        Writer { sink, frame_type }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.sink.put(bytes);
    }

    fn u8(&mut self, value: u8) {
        self.put(&[value]);
    }

    fn u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }

    fn u32(&mut self, value: u32) {
        self.put(&value.to_be_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.put(&value.to_be_bytes());
    }

    fn message_id(&mut self, id: MessageId) {
        self.put(&id.to_bytes());
    }

    fn connection(&mut self, connection: ConnectionRef) {
        self.u32(connection.gateway);
        self.u64(connection.connection);
    }

    fn credit(&mut self, credit: &Credit) {
        self.u32(credit.messages);
        self.u32(credit.bytes);
    }

    fn too_long(&self, field: Field, len: usize, max: usize) -> EncodeError {
        EncodeError::FieldTooLong {
            frame_type: self.frame_type,
            field,
            len,
            max,
        }
    }

    fn str8(&mut self, field: Field, value: &str) -> Result<(), EncodeError> {
        let len = u8::try_from(value.len())
            .map_err(|_| self.too_long(field, value.len(), u8::MAX.into()))?;
        self.u8(len);
        self.put(value.as_bytes());
        Ok(())
    }

    fn str16(&mut self, field: Field, value: &str) -> Result<(), EncodeError> {
        self.bytes16(field, value.as_bytes())
    }

    fn bytes16(&mut self, field: Field, value: &[u8]) -> Result<(), EncodeError> {
        let len = u16::try_from(value.len())
            .map_err(|_| self.too_long(field, value.len(), u16::MAX.into()))?;
        self.u16(len);
        self.put(value);
        Ok(())
    }

    fn bytes32(&mut self, field: Field, value: &[u8]) -> Result<(), EncodeError> {
        let len = u32::try_from(value.len())
            .map_err(|_| self.too_long(field, value.len(), u32::MAX as usize))?;
        self.u32(len);
        self.put(value);
        Ok(())
    }

    fn hops(&mut self, hops: Option<Hops<'_>>) {
        if let Some(hops) = hops {
            // Hops holds at most 255 timestamps, so the count fits a byte.
            self.u8(hops.len() as u8);
            self.put(hops.as_wire());
        }
    }
}
