//! Decoding: bytes at the front of a buffer into one [`Frame`] that borrows
//! from them.
//!
//! The decoder is a pure function of its input and its limit. It answers
//! `Ok(None)` until the input holds the 8-byte header, then checks the header
//! (so an oversized frame is refused before its body is buffered), then
//! answers `Ok(None)` until the whole body is there, and only then parses it.
//! So for any input, every prefix decodes to `Ok(None)` or to the same result
//! as the whole input: a stream can be fed in any pieces.

use crate::msgid::{self, MessageId};

use super::error::{DecodeError, Field};
use super::frame::{
    Deliver, Frame, GoAway, Hello, HelloAck, Kick, Ping, Pong, PrefixRequest, Presence,
    PresenceEvent, Publish, PublishAck, PublishOutcome, Recipient, Refusal, Reply, Target,
    TopicRequest,
};
use super::hops::Hops;
use super::types::{Capabilities, ConnectionRef, Credit, FrameType, Role, flags};
use super::{Code, DEFAULT_MAX_BODY_BYTES, HEADER_LEN, MAGIC, rules};

/// A checked frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Bytes after the header.
    pub body_len: u32,
    pub frame_type: FrameType,
    pub flags: u8,
}

impl Header {
    /// Bytes of the whole frame: header and body.
    pub const fn frame_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.body_len as usize)
    }
}

/// Decodes frames, refusing bodies over its limit. `Copy`, no state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoder {
    max_body_bytes: u32,
}

impl Decoder {
    /// A decoder that refuses bodies over `max_body_bytes` (announce the same
    /// number in HELLO).
    pub const fn new(max_body_bytes: u32) -> Decoder {
        Decoder { max_body_bytes }
    }

    /// The largest body this decoder accepts.
    pub const fn max_body_bytes(&self) -> u32 {
        self.max_body_bytes
    }

    /// The header at the front of `input`: `Ok(None)` before 8 bytes, an
    /// error for a body over the limit, an unknown type, non-zero reserved
    /// bytes or flags the type does not define (checked in that order).
    pub fn header(&self, input: &[u8]) -> Result<Option<Header>, DecodeError> {
        let Some(bytes) = input.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let body_len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        if body_len > self.max_body_bytes {
            return Err(DecodeError::FrameTooLarge {
                len: body_len,
                max: self.max_body_bytes,
            });
        }
        let frame_type = FrameType::from_u8(bytes[4]).ok_or(DecodeError::UnknownType(bytes[4]))?;
        let reserved = u16::from_be_bytes([bytes[6], bytes[7]]);
        if reserved != 0 {
            return Err(DecodeError::ReservedNonZero(reserved));
        }
        let flags = bytes[5];
        if flags & !frame_type.allowed_flags() != 0 {
            return Err(DecodeError::InvalidFlags { frame_type, flags });
        }
        Ok(Some(Header {
            body_len,
            frame_type,
            flags,
        }))
    }

    /// The frame at the front of `input` and its length in bytes, or
    /// `Ok(None)` when `input` does not hold all of it yet. Bytes after the
    /// frame are not looked at. Never allocates.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Option<(Frame<'a>, usize)>, DecodeError> {
        let Some(header) = self.header(input)? else {
            return Ok(None);
        };
        let frame_len = header.frame_len();
        let Some(body) = input.get(HEADER_LEN..frame_len) else {
            return Ok(None);
        };
        let frame = parse_body(header, body)?;
        rules::check(&frame)?;
        Ok(Some((frame, frame_len)))
    }
}

impl Default for Decoder {
    /// Bodies up to [`DEFAULT_MAX_BODY_BYTES`] (16 MiB).
    fn default() -> Decoder {
        Decoder::new(DEFAULT_MAX_BODY_BYTES)
    }
}

/// [`Decoder::decode`] with the default 16 MiB limit.
pub fn decode(input: &[u8]) -> Result<Option<(Frame<'_>, usize)>, DecodeError> {
    Decoder::default().decode(input)
}

fn parse_body<'a>(header: Header, body: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
    let mut reader = Reader {
        body,
        frame_type: header.frame_type,
    };
    let frame = match header.frame_type {
        FrameType::Hello => Frame::Hello(hello(&mut reader)?),
        FrameType::HelloAck => Frame::HelloAck(hello_ack(&mut reader)?),
        FrameType::GoAway => Frame::GoAway(GoAway {
            code: Code(reader.u16(Field::Code)?),
            text: reader.str16(Field::Text)?,
        }),
        FrameType::Ping => Frame::Ping(Ping {
            nonce: reader.u64(Field::Nonce)?,
            sent_us: reader.u64(Field::SentTime)?,
        }),
        FrameType::Pong => Frame::Pong(Pong {
            nonce: reader.u64(Field::Nonce)?,
            ping_sent_us: reader.u64(Field::PingSentTime)?,
            sent_us: reader.u64(Field::SentTime)?,
        }),
        FrameType::Credit => Frame::Credit(credit(&mut reader)?),
        FrameType::Publish => Frame::Publish(publish(&mut reader, header.flags)?),
        FrameType::PublishAck => Frame::PublishAck(publish_ack(&mut reader, header.flags)?),
        FrameType::Deliver => Frame::Deliver(deliver(&mut reader, header.flags)?),
        FrameType::Subscribe => Frame::Subscribe(topic_request(&mut reader)?),
        FrameType::Unsubscribe => Frame::Unsubscribe(topic_request(&mut reader)?),
        FrameType::Claim => Frame::Claim(prefix_request(&mut reader)?),
        FrameType::Release => Frame::Release(prefix_request(&mut reader)?),
        FrameType::Reply => Frame::Reply(Reply {
            request_id: reader.u64(Field::RequestId)?,
            code: Code(reader.u16(Field::Code)?),
            text: reader.str16(Field::Text)?,
        }),
        FrameType::Presence => Frame::Presence(presence(&mut reader)?),
        FrameType::Kick => Frame::Kick(kick(&mut reader)?),
    };
    reader.finish()?;
    Ok(frame)
}

fn hello<'a>(reader: &mut Reader<'a>) -> Result<Hello<'a>, DecodeError> {
    magic(reader)?;
    Ok(Hello {
        min_version: reader.u16(Field::MinVersion)?,
        max_version: reader.u16(Field::MaxVersion)?,
        role: role(reader)?,
        node_id: reader.u32(Field::NodeId)?,
        capabilities: Capabilities(reader.u32(Field::Capabilities)?),
        max_body_bytes: reader.u32(Field::MaxBodyBytes)?,
        ping_interval_ms: reader.u32(Field::PingInterval)?,
        credit: credit(reader)?,
        agent: reader.str16(Field::Agent)?,
        token: reader.bytes16(Field::Token)?,
        extensions: reader.rest(),
    })
}

fn hello_ack<'a>(reader: &mut Reader<'a>) -> Result<HelloAck<'a>, DecodeError> {
    magic(reader)?;
    Ok(HelloAck {
        version: reader.u16(Field::Version)?,
        role: role(reader)?,
        node_id: reader.u32(Field::NodeId)?,
        capabilities: Capabilities(reader.u32(Field::Capabilities)?),
        max_body_bytes: reader.u32(Field::MaxBodyBytes)?,
        ping_interval_ms: reader.u32(Field::PingInterval)?,
        credit: credit(reader)?,
        agent: reader.str16(Field::Agent)?,
    })
}

fn magic(reader: &mut Reader<'_>) -> Result<(), DecodeError> {
    let magic = reader.array::<4>(Field::Magic)?;
    if magic != MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    Ok(())
}

fn role(reader: &mut Reader<'_>) -> Result<Role, DecodeError> {
    let value = reader.u8(Field::Role)?;
    Role::from_u8(value).ok_or_else(|| reader.unknown(Field::Role, value))
}

fn credit(reader: &mut Reader<'_>) -> Result<Credit, DecodeError> {
    Ok(Credit {
        messages: reader.u32(Field::CreditMessages)?,
        bytes: reader.u32(Field::CreditBytes)?,
    })
}

fn publish<'a>(reader: &mut Reader<'a>, header_flags: u8) -> Result<Publish<'a>, DecodeError> {
    Ok(Publish {
        publish_id: reader.u64(Field::PublishId)?,
        message_id: reader.message_id()?,
        sender: reader.connection()?,
        topic: reader.str16(Field::Topic)?,
        user: reader.str16(Field::User)?,
        anonymous: header_flags & flags::ANONYMOUS != 0,
        client_msg_id: reader.str16(Field::ClientMsgId)?,
        trace_id: reader.str8(Field::TraceId)?,
        hops: reader.hops(header_flags & flags::HOPS != 0)?,
        payload: reader.bytes32(Field::Payload)?,
    })
}

fn publish_ack<'a>(
    reader: &mut Reader<'a>,
    header_flags: u8,
) -> Result<PublishAck<'a>, DecodeError> {
    let publish_id = reader.u64(Field::PublishId)?;
    let outcome = match reader.u8(Field::Outcome)? {
        1 => PublishOutcome::Accepted {
            message_id: reader.message_id()?,
        },
        2 => PublishOutcome::Duplicate {
            message_id: reader.message_id()?,
        },
        3 => PublishOutcome::Rejected(refusal(reader)?),
        4 => PublishOutcome::Unavailable(refusal(reader)?),
        value => return Err(reader.unknown(Field::Outcome, value)),
    };
    Ok(PublishAck {
        publish_id,
        outcome,
        no_fanout: header_flags & flags::NO_FANOUT != 0,
    })
}

fn refusal<'a>(reader: &mut Reader<'a>) -> Result<Refusal<'a>, DecodeError> {
    Ok(Refusal {
        code: Code(reader.u16(Field::Code)?),
        retry_after_ms: reader.u32(Field::RetryAfter)?,
        text: reader.str16(Field::Text)?,
    })
}

fn deliver<'a>(reader: &mut Reader<'a>, header_flags: u8) -> Result<Deliver<'a>, DecodeError> {
    let message_id = reader.message_id()?;
    let target = match reader.u8(Field::TargetKind)? {
        1 => Target::Topic,
        2 => Target::User(reader.str16(Field::Target)?),
        3 => Target::Connection(reader.connection()?),
        value => return Err(reader.unknown(Field::TargetKind, value)),
    };
    Ok(Deliver {
        message_id,
        target,
        topic: reader.str16(Field::Topic)?,
        from: reader.str16(Field::From)?,
        client_msg_id: reader.str16(Field::ClientMsgId)?,
        trace_id: reader.str8(Field::TraceId)?,
        hops: reader.hops(header_flags & flags::HOPS != 0)?,
        payload: reader.bytes32(Field::Payload)?,
    })
}

fn topic_request<'a>(reader: &mut Reader<'a>) -> Result<TopicRequest<'a>, DecodeError> {
    Ok(TopicRequest {
        request_id: reader.u64(Field::RequestId)?,
        topic: reader.str16(Field::Topic)?,
    })
}

fn prefix_request<'a>(reader: &mut Reader<'a>) -> Result<PrefixRequest<'a>, DecodeError> {
    Ok(PrefixRequest {
        request_id: reader.u64(Field::RequestId)?,
        prefix: reader.str16(Field::Prefix)?,
    })
}

fn presence<'a>(reader: &mut Reader<'a>) -> Result<Presence<'a>, DecodeError> {
    let event = reader.u8(Field::Event)?;
    let connection = reader.connection()?;
    let user = reader.str16(Field::User)?;
    let event = match event {
        1 => PresenceEvent::Connected,
        2 => PresenceEvent::Disconnected,
        3 => PresenceEvent::Joined(reader.str16(Field::Topic)?),
        4 => PresenceEvent::Left(reader.str16(Field::Topic)?),
        value => return Err(reader.unknown(Field::Event, value)),
    };
    Ok(Presence {
        event,
        connection,
        user,
    })
}

fn kick<'a>(reader: &mut Reader<'a>) -> Result<Kick<'a>, DecodeError> {
    let recipient = match reader.u8(Field::TargetKind)? {
        2 => Recipient::User(reader.str16(Field::Target)?),
        3 => Recipient::Connection(reader.connection()?),
        value => return Err(reader.unknown(Field::TargetKind, value)),
    };
    Ok(Kick {
        recipient,
        close_code: reader.u16(Field::CloseCode)?,
        reason: reader.str16(Field::Reason)?,
    })
}

/// A cursor over one frame body; every read names its field for errors.
struct Reader<'a> {
    body: &'a [u8],
    frame_type: FrameType,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: Field) -> Result<&'a [u8], DecodeError> {
        let Some((taken, rest)) = self.body.split_at_checked(len) else {
            return Err(DecodeError::Truncated {
                frame_type: self.frame_type,
                field,
            });
        };
        self.body = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, field)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    fn u16(&mut self, field: Field) -> Result<u16, DecodeError> {
        self.array(field).map(u16::from_be_bytes)
    }

    fn u32(&mut self, field: Field) -> Result<u32, DecodeError> {
        self.array(field).map(u32::from_be_bytes)
    }

    fn u64(&mut self, field: Field) -> Result<u64, DecodeError> {
        self.array(field).map(u64::from_be_bytes)
    }

    fn message_id(&mut self) -> Result<MessageId, DecodeError> {
        self.array::<{ msgid::BINARY_LEN }>(Field::MessageId)
            .map(MessageId::from_bytes)
    }

    fn connection(&mut self) -> Result<ConnectionRef, DecodeError> {
        let bytes = self.array::<12>(Field::Connection)?;
        let (gateway, connection) = bytes.split_at(4);
        Ok(ConnectionRef {
            gateway: u32::from_be_bytes(gateway.try_into().expect("4 bytes")),
            connection: u64::from_be_bytes(connection.try_into().expect("8 bytes")),
        })
    }

    /// `len` bytes of a length-prefixed field whose prefix was just read.
    fn prefixed(&mut self, len: u32, field: Field) -> Result<&'a [u8], DecodeError> {
        let remaining = self.body.len();
        match usize::try_from(len) {
            Ok(len) if len <= remaining => self.take(len, field),
            _ => Err(DecodeError::LengthPastEnd {
                frame_type: self.frame_type,
                field,
                len,
                remaining,
            }),
        }
    }

    fn bytes16(&mut self, field: Field) -> Result<&'a [u8], DecodeError> {
        let len = self.u16(field)?;
        self.prefixed(u32::from(len), field)
    }

    fn bytes32(&mut self, field: Field) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(field)?;
        self.prefixed(len, field)
    }

    fn utf8(&self, bytes: &'a [u8], field: Field) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
            frame_type: self.frame_type,
            field,
        })
    }

    fn str8(&mut self, field: Field) -> Result<&'a str, DecodeError> {
        let len = self.u8(field)?;
        let bytes = self.prefixed(u32::from(len), field)?;
        self.utf8(bytes, field)
    }

    fn str16(&mut self, field: Field) -> Result<&'a str, DecodeError> {
        let bytes = self.bytes16(field)?;
        self.utf8(bytes, field)
    }

    /// The hop list when the HOPS flag is set: a u8 count, 8 bytes each.
    fn hops(&mut self, present: bool) -> Result<Option<Hops<'a>>, DecodeError> {
        if !present {
            return Ok(None);
        }
        let count = self.u8(Field::Hops)?;
        let wire = self.prefixed(u32::from(count) * 8, Field::Hops)?;
        Ok(Some(Hops::from_wire(wire).expect("count * 8 bytes")))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.body)
    }

    fn unknown(&self, field: Field, value: u8) -> DecodeError {
        DecodeError::UnknownValue {
            frame_type: self.frame_type,
            field,
            value,
        }
    }

    fn finish(self) -> Result<(), DecodeError> {
        if !self.body.is_empty() {
            return Err(DecodeError::TrailingBytes {
                frame_type: self.frame_type,
                count: self.body.len(),
            });
        }
        Ok(())
    }
}
