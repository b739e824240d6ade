//! Every way a peer can break the frame format, each with the GOAWAY code
//! that answers it and a short static label for metrics; and the ways a
//! frame can fail to encode.

use std::fmt;

use super::code::Code;
use super::types::FrameType;

/// A field of a frame body, named in errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    Magic,
    MinVersion,
    MaxVersion,
    Version,
    Role,
    NodeId,
    Capabilities,
    MaxBodyBytes,
    PingInterval,
    CreditMessages,
    CreditBytes,
    Agent,
    Token,
    Code,
    Text,
    Nonce,
    SentTime,
    PingSentTime,
    PublishId,
    MessageId,
    Connection,
    Topic,
    User,
    ClientMsgId,
    TraceId,
    Hops,
    Payload,
    Outcome,
    RetryAfter,
    TargetKind,
    Target,
    From,
    RequestId,
    Prefix,
    Event,
    CloseCode,
    Reason,
}

impl Field {
    /// The field's name in the specification.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Magic => "magic",
            Field::MinVersion => "min_version",
            Field::MaxVersion => "max_version",
            Field::Version => "version",
            Field::Role => "role",
            Field::NodeId => "node_id",
            Field::Capabilities => "capabilities",
            Field::MaxBodyBytes => "max_body_bytes",
            Field::PingInterval => "ping_interval_ms",
            Field::CreditMessages => "credit_messages",
            Field::CreditBytes => "credit_bytes",
            Field::Agent => "agent",
            Field::Token => "token",
            Field::Code => "code",
            Field::Text => "text",
            Field::Nonce => "nonce",
            Field::SentTime => "sent_us",
            Field::PingSentTime => "ping_sent_us",
            Field::PublishId => "publish_id",
            Field::MessageId => "message_id",
            Field::Connection => "connection",
            Field::Topic => "topic",
            Field::User => "user",
            Field::ClientMsgId => "client_msg_id",
            Field::TraceId => "trace_id",
            Field::Hops => "hops",
            Field::Payload => "payload",
            Field::Outcome => "outcome",
            Field::RetryAfter => "retry_after_ms",
            Field::TargetKind => "target_kind",
            Field::Target => "target",
            Field::From => "from",
            Field::RequestId => "request_id",
            Field::Prefix => "prefix",
            Field::Event => "event",
            Field::CloseCode => "close_code",
            Field::Reason => "reason",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame the peer should not have sent. The connection cannot continue:
/// send GOAWAY with [`DecodeError::code`], then close. (After a broken frame
/// the byte stream has no trustworthy frame boundary.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("frame body of {len} bytes over the {max}-byte limit")]
    FrameTooLarge { len: u32, max: u32 },
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    #[error("reserved header bytes are {0:#06x}, not zero")]
    ReservedNonZero(u16),
    #[error("{frame_type} with undefined or misplaced flags {flags:#04x}")]
    InvalidFlags { frame_type: FrameType, flags: u8 },
    #[error("{frame_type} body ends inside {field}")]
    Truncated { frame_type: FrameType, field: Field },
    #[error("{frame_type} {field} of {len} bytes runs past the body's end ({remaining} left)")]
    LengthPastEnd {
        frame_type: FrameType,
        field: Field,
        len: u32,
        remaining: usize,
    },
    #[error("{frame_type} body has {count} bytes after its last field")]
    TrailingBytes { frame_type: FrameType, count: usize },
    #[error("{frame_type} {field} is not valid UTF-8")]
    InvalidUtf8 { frame_type: FrameType, field: Field },
    #[error("{frame_type} {field} is empty")]
    EmptyField { frame_type: FrameType, field: Field },
    #[error("{frame_type} {field} has undefined value {value}")]
    UnknownValue {
        frame_type: FrameType,
        field: Field,
        value: u8,
    },
    #[error("bad magic {0:02x?}: not the ringgate router protocol")]
    BadMagic([u8; 4]),
    #[error("version range {min}..={max} is empty or starts at 0")]
    InvalidVersionRange { min: u16, max: u16 },
    #[error("no common protocol version: peer speaks {min}..={max}, we speak 1")]
    UnsupportedVersion { min: u16, max: u16 },
    #[error("max_body_bytes {0} is under the 65536-byte minimum")]
    MaxBodyTooSmall(u32),
    #[error("close code {0} may not be sent to a WebSocket client")]
    InvalidCloseCode(u16),
}

impl DecodeError {
    /// The code of the GOAWAY that answers this error.
    pub const fn code(&self) -> Code {
        match self {
            DecodeError::FrameTooLarge { .. } => Code::FRAME_TOO_LARGE,
            DecodeError::UnsupportedVersion { .. } => Code::UNSUPPORTED_VERSION,
            _ => Code::PROTOCOL_ERROR,
        }
    }

    /// A short static label, for metrics and as the GOAWAY text.
    pub const fn reason(&self) -> &'static str {
        match self {
            DecodeError::FrameTooLarge { .. } => "frame_too_large",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::ReservedNonZero(_) => "reserved_non_zero",
            DecodeError::InvalidFlags { .. } => "invalid_flags",
            DecodeError::Truncated { .. } => "truncated",
            DecodeError::LengthPastEnd { .. } => "length_past_end",
            DecodeError::TrailingBytes { .. } => "trailing_bytes",
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::EmptyField { .. } => "empty_field",
            DecodeError::UnknownValue { .. } => "unknown_value",
            DecodeError::BadMagic(_) => "bad_magic",
            DecodeError::InvalidVersionRange { .. } => "invalid_version_range",
            DecodeError::UnsupportedVersion { .. } => "unsupported_version",
            DecodeError::MaxBodyTooSmall(_) => "max_body_too_small",
            DecodeError::InvalidCloseCode(_) => "invalid_close_code",
        }
    }
}

/// Why a frame was not encoded. The output buffer is left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A field is longer than its length prefix can say.
    #[error("{frame_type} {field} of {len} bytes over its {max}-byte maximum")]
    FieldTooLong {
        frame_type: FrameType,
        field: Field,
        len: usize,
        max: usize,
    },
    /// The body is over the receiver's limit.
    #[error("frame body of {len} bytes over the receiver's {max}-byte limit")]
    FrameTooLarge { len: usize, max: u32 },
    /// The frame breaks a rule; the receiver would refuse it with this error.
    #[error("the receiver would refuse the frame: {0}")]
    Invalid(#[from] DecodeError),
}
