//! One table of status codes shared by GOAWAY (why a connection ends), REPLY
//! (how a request went) and PUBLISH_ACK refusals (why a publish was not
//! taken, and so which `err` code the client sees: see
//! [`PublishOutcome::client_error`](super::PublishOutcome::client_error)).
//!
//! Codes explain; they never change how a frame is parsed. So a code this
//! version does not know is kept as is, never refused: treat an unknown
//! GOAWAY code like `internal` and an unknown REPLY code like a refusal.

use std::fmt;

/// A status code (u16 on the wire).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u16);

impl Code {
    /// Success (REPLY); a graceful GOAWAY (shutdown or drain: reconnect later).
    pub const OK: Code = Code(0);
    /// The peer broke the frame format or the connection rules.
    pub const PROTOCOL_ERROR: Code = Code(1);
    /// No protocol version in common.
    pub const UNSUPPORTED_VERSION: Code = Code(2);
    /// Bad or missing HELLO token, or a role this router does not accept.
    pub const UNAUTHORIZED: Code = Code(3);
    /// A PUBLISH or DELIVER arrived without credit, or a grant overflowed.
    pub const FLOW_CONTROL: Code = Code(4);
    /// A frame header announced a body over the receiver's limit.
    pub const FRAME_TOO_LARGE: Code = Code(5);
    /// HELLO not received in time, or pings went unanswered.
    pub const TIMEOUT: Code = Code(6);
    /// The sender hit a bug or an unexpected condition.
    pub const INTERNAL: Code = Code(7);
    /// The sender is over capacity (queues full); retry later or elsewhere.
    pub const OVERLOADED: Code = Code(8);
    /// A frame not allowed for the sender's role, or before HELLO.
    pub const UNEXPECTED_MESSAGE: Code = Code(9);
    /// Another live connection already uses this node id and role.
    pub const DUPLICATE_NODE: Code = Code(10);
    /// The request or publish is not allowed (client `err` code `forbidden`).
    pub const FORBIDDEN: Code = Code(16);
    /// The request or publish breaks the receiver's rules (client `err` code
    /// `rejected`, with the refusal text as reason).
    pub const BAD_REQUEST: Code = Code(17);
    /// Too many publishes; retry after the hint (client `rate_limited`).
    pub const RATE_LIMITED: Code = Code(18);
    /// The payload is too large for the receiver (client `too_large`).
    pub const TOO_LARGE: Code = Code(19);
    /// The service for this topic is unavailable now; retry later.
    pub const UNAVAILABLE: Code = Code(20);
    /// This router does not own the topic's shard (the sender's shard map is
    /// stale): refresh the map and send to the owner.
    pub const NOT_OWNER: Code = Code(21);

    /// The code's name in the specification (lower case), or `"unknown"`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0 => "ok",
            1 => "protocol_error",
            2 => "unsupported_version",
            3 => "unauthorized",
            4 => "flow_control",
            5 => "frame_too_large",
            6 => "timeout",
            7 => "internal",
            8 => "overloaded",
            9 => "unexpected_message",
            10 => "duplicate_node",
            16 => "forbidden",
            17 => "bad_request",
            18 => "rate_limited",
            19 => "too_large",
            20 => "unavailable",
            21 => "not_owner",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({} {})", self.0, self.name())
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}
