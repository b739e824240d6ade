//! The closed sets the protocol names on the wire: error codes for `err`,
//! and the machine reasons of a `bad_request`.

use std::borrow::Cow;
use std::fmt;

/// The `code` of an `err` envelope. A closed set: every code is documented
/// in `docs/CLIENT_PROTOCOL.md`, and a new one is a protocol change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Over a message rate (per user or per topic) or throttled for
    /// repeating the same content; `retry_after_ms` says when to try again.
    RateLimited,
    /// Within the WebSocket message cap but over a smaller cap that applies
    /// to this request (for instance the router path's payload cap).
    TooLarge,
    /// The user may not do this on this topic.
    Forbidden,
    /// The envelope is malformed or breaks a content rule; `reason` says how.
    BadRequest,
    /// Nobody can take the request now (no reachable router and no room to
    /// buffer it); `retry_after_ms` when the gateway has a guess.
    Unavailable,
    /// The gateway is degraded and this request needs coordination it cannot
    /// get now (for instance a subscribe on a partitioned shard).
    Degraded,
    /// A backend service refused the publish; `reason` is its reason.
    Rejected,
    /// The gateway failed; not the client's fault.
    Internal,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 8] = [
        ErrorCode::RateLimited,
        ErrorCode::TooLarge,
        ErrorCode::Forbidden,
        ErrorCode::BadRequest,
        ErrorCode::Unavailable,
        ErrorCode::Degraded,
        ErrorCode::Rejected,
        ErrorCode::Internal,
    ];

    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Degraded => "degraded",
            ErrorCode::Rejected => "rejected",
            ErrorCode::Internal => "internal",
        }
    }

    /// Whether sending the same request again later can succeed. For a
    /// publish, retrying with the same `id` is safe: it is deduplicated.
    pub const fn is_retryable(self) -> bool {
        match self {
            ErrorCode::RateLimited
            | ErrorCode::Unavailable
            | ErrorCode::Degraded
            | ErrorCode::Internal => true,
            ErrorCode::TooLarge
            | ErrorCode::Forbidden
            | ErrorCode::BadRequest
            | ErrorCode::Rejected => false,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of a request envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// `op`
    Op,
    /// `topic`
    Topic,
    /// `id`
    Id,
    /// `data`
    Data,
    /// `trace`
    Trace,
    /// `hops`
    Hops,
    /// `sent_us`
    SentUs,
}

impl Field {
    /// Every field, in the order the parser checks them.
    pub const ALL: [Field; 7] = [
        Field::Op,
        Field::Topic,
        Field::Id,
        Field::Data,
        Field::Trace,
        Field::Hops,
        Field::SentUs,
    ];

    /// The JSON key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::Op => "op",
            Field::Topic => "topic",
            Field::Id => "id",
            Field::Data => "data",
            Field::Trace => "trace",
            Field::Hops => "hops",
            Field::SentUs => "sent_us",
        }
    }

    /// The field named by a JSON key (after unescaping), if it is one.
    pub(super) fn from_key(key: &str) -> Option<Field> {
        Some(match key {
            "op" => Field::Op,
            "topic" => Field::Topic,
            "id" => Field::Id,
            "data" => Field::Data,
            "trace" => Field::Trace,
            "hops" => Field::Hops,
            "sent_us" => Field::SentUs,
            _ => return None,
        })
    }
}

/// Why a request is a `bad_request`: the `reason` of its `err`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Not one JSON value (RFC 8259), or a lone UTF-16 surrogate escape.
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    /// Arrays and objects nested deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
    /// NUL or another C0 control character (not tab, CR, LF), raw or
    /// escaped, while the rule is on.
    ControlCharacter,
    /// A field the op requires is absent (or `null`).
    MissingField(Field),
    /// A field has the wrong JSON type.
    WrongType(Field),
    /// A known field appears twice.
    DuplicateField(Field),
    /// `op` is not one of `pub`, `sub`, `unsub`.
    UnknownOp,
    /// The topic is empty, too long, or outside its alphabet.
    InvalidTopic,
    /// The id is empty or too long.
    InvalidId,
    /// The trace is empty, too long, or not visible ASCII.
    InvalidTrace,
    /// `sent_us` is a number but not a whole number from 0 to 2^64 - 1
    /// written without a fraction or exponent.
    InvalidSentUs,
}

impl Reason {
    /// The code every reason maps to.
    pub const CODE: ErrorCode = ErrorCode::BadRequest;

    /// Every reason the parser can give, for tests and documentation checks.
    /// (`data` may hold any JSON type and `trace`, `hops` and `sent_us` are
    /// optional, so `wrong_type:data` and `missing_field:` for those never
    /// occur.)
    pub fn all() -> impl Iterator<Item = Reason> {
        let simple = [
            Reason::InvalidJson,
            Reason::NotAnObject,
            Reason::TooDeep,
            Reason::ControlCharacter,
            Reason::UnknownOp,
            Reason::InvalidTopic,
            Reason::InvalidId,
            Reason::InvalidTrace,
            Reason::InvalidSentUs,
        ];
        let missing = [Field::Op, Field::Topic, Field::Id, Field::Data].map(Reason::MissingField);
        let wrong_type = [
            Field::Op,
            Field::Topic,
            Field::Id,
            Field::Trace,
            Field::Hops,
            Field::SentUs,
        ]
        .map(Reason::WrongType);
        let duplicate = Field::ALL.map(Reason::DuplicateField);
        simple
            .into_iter()
            .chain(missing)
            .chain(wrong_type)
            .chain(duplicate)
    }

    /// The wire name, for the `reason` field of the `err`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidJson => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::TooDeep => "too_deep",
            Reason::ControlCharacter => "control_character",
            Reason::UnknownOp => "unknown_op",
            Reason::InvalidTopic => "invalid_topic",
            Reason::InvalidId => "invalid_id",
            Reason::InvalidTrace => "invalid_trace",
            Reason::InvalidSentUs => "invalid_sent_us",
            Reason::MissingField(field) => match field {
                Field::Op => "missing_field:op",
                Field::Topic => "missing_field:topic",
                Field::Id => "missing_field:id",
                Field::Data => "missing_field:data",
                Field::Trace => "missing_field:trace",
                Field::Hops => "missing_field:hops",
                Field::SentUs => "missing_field:sent_us",
            },
            Reason::WrongType(field) => match field {
                Field::Op => "wrong_type:op",
                Field::Topic => "wrong_type:topic",
                Field::Id => "wrong_type:id",
                Field::Data => "wrong_type:data",
                Field::Trace => "wrong_type:trace",
                Field::Hops => "wrong_type:hops",
                Field::SentUs => "wrong_type:sent_us",
            },
            Reason::DuplicateField(field) => match field {
                Field::Op => "duplicate_field:op",
                Field::Topic => "duplicate_field:topic",
                Field::Id => "duplicate_field:id",
                Field::Data => "duplicate_field:data",
                Field::Trace => "duplicate_field:trace",
                Field::Hops => "duplicate_field:hops",
                Field::SentUs => "duplicate_field:sent_us",
            },
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the gateway answers with `err` `bad_request`. The connection
/// stays open: the next message is parsed as if this one never came.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad request: {reason}")]
pub struct ParseError<'a> {
    /// What is wrong.
    pub reason: Reason,
    /// The request's `id`, when the message was readable up to it and the
    /// id itself passes the rules; the `err` carries it.
    pub id: Option<Cow<'a, str>>,
}

impl ParseError<'_> {
    /// Always [`ErrorCode::BadRequest`].
    pub const fn code(&self) -> ErrorCode {
        Reason::CODE
    }

    /// The same error, owning its id.
    pub fn into_owned(self) -> ParseError<'static> {
        ParseError {
            reason: self.reason,
            id: self.id.map(|id| Cow::Owned(id.into_owned())),
        }
    }
}
