//! Every way a peer can break the protocol, each with the close code or HTTP
//! status that answers it and a short static label for metrics.
//!
//! All of these are the peer's fault: the codec has no I/O, so it has no
//! errors of its own to report.

/// Close codes this crate produces (RFC 6455 7.4.1).
pub mod close_code {
    /// The purpose of the connection has been fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The endpoint is going away (server shutdown, browser navigation).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the framing rules.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A generic policy violation (the gateway uses it for auth and rate limits).
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A frame or message was over the configured limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// A frame-layer violation by the peer. The connection must be failed with
/// [`ProtocolError::close_code`]; the decoder ignores all later input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("client sent an unmasked frame")]
    UnmaskedFrame,
    #[error("server sent a masked frame")]
    MaskedFrame,
    #[error("reserved bits {bits:#05b} set but no extension was negotiated")]
    ReservedBits { bits: u8 },
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    #[error("control frame without FIN")]
    FragmentedControlFrame,
    #[error("control frame payload over 125 bytes")]
    ControlFrameTooLong,
    #[error("continuation frame with no message in progress")]
    UnexpectedContinuation,
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    #[error("64-bit payload length with the most significant bit set")]
    LengthTopBitSet,
    #[error("payload length {len} not in its minimal encoding")]
    NonMinimalLength { len: u64 },
    #[error("frame payload of {len} bytes over the {max}-byte frame limit")]
    FrameTooLarge { len: u64, max: u64 },
    #[error("message of {len} bytes over the {max}-byte message limit")]
    MessageTooLarge { len: u64, max: usize },
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("close frame payload of one byte")]
    CloseTooShort,
    #[error("close code {0} is not allowed on the wire")]
    InvalidCloseCode(u16),
    #[error("close reason is not valid UTF-8")]
    InvalidCloseReason,
}

impl ProtocolError {
    /// The close code to fail the connection with (RFC 6455 7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => {
                close_code::MESSAGE_TOO_BIG
            }
            Self::InvalidUtf8 => close_code::INVALID_PAYLOAD,
            // An invalid close reason is a malformed Close frame, not a
            // malformed message, so it is a protocol error (unlike 1007).
            Self::UnmaskedFrame
            | Self::MaskedFrame
            | Self::ReservedBits { .. }
            | Self::ReservedOpcode(_)
            | Self::FragmentedControlFrame
            | Self::ControlFrameTooLong
            | Self::UnexpectedContinuation
            | Self::ExpectedContinuation
            | Self::LengthTopBitSet
            | Self::NonMinimalLength { .. }
            | Self::CloseTooShort
            | Self::InvalidCloseCode(_)
            | Self::InvalidCloseReason => close_code::PROTOCOL_ERROR,
        }
    }

    /// A short static label, for metrics and as the close reason sent back.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnmaskedFrame => "unmasked_frame",
            Self::MaskedFrame => "masked_frame",
            Self::ReservedBits { .. } => "reserved_bits",
            Self::ReservedOpcode(_) => "reserved_opcode",
            Self::FragmentedControlFrame => "fragmented_control",
            Self::ControlFrameTooLong => "control_too_long",
            Self::UnexpectedContinuation => "unexpected_continuation",
            Self::ExpectedContinuation => "expected_continuation",
            Self::LengthTopBitSet => "length_top_bit",
            Self::NonMinimalLength { .. } => "non_minimal_length",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::CloseTooShort => "close_too_short",
            Self::InvalidCloseCode(_) => "invalid_close_code",
            Self::InvalidCloseReason => "invalid_close_reason",
        }
    }
}

/// Why a client's opening handshake (RFC 6455 4.2.1) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("malformed HTTP request")]
    Malformed,
    #[error("method is not GET")]
    MethodNotAllowed,
    #[error("HTTP version is not 1.1")]
    HttpVersion,
    #[error("request head over the size limit")]
    HeadersTooLarge,
    #[error("more than 100 request headers")]
    TooManyHeaders,
    #[error("missing Host header")]
    MissingHost,
    #[error("duplicate {0} header")]
    DuplicateHeader(&'static str),
    #[error("header value is not valid UTF-8")]
    NonUtf8Header,
    #[error("Upgrade header does not name websocket")]
    NotWebSocketUpgrade,
    #[error("Connection header does not contain upgrade")]
    MissingConnectionUpgrade,
    #[error("missing Sec-WebSocket-Version header")]
    MissingVersion,
    #[error("Sec-WebSocket-Version is not 13")]
    UnsupportedVersion,
    #[error("missing Sec-WebSocket-Key header")]
    MissingKey,
    #[error("Sec-WebSocket-Key is not 16 bytes in base64")]
    BadKey,
}

impl HandshakeError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::NotWebSocketUpgrade | Self::MissingVersion | Self::UnsupportedVersion => 426,
            Self::HeadersTooLarge | Self::TooManyHeaders => 431,
            Self::Malformed
            | Self::HttpVersion
            | Self::MissingHost
            | Self::DuplicateHeader(_)
            | Self::NonUtf8Header
            | Self::MissingConnectionUpgrade
            | Self::MissingKey
            | Self::BadKey => 400,
        }
    }

    /// A short static label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::MethodNotAllowed => "bad_method",
            Self::HttpVersion => "bad_http_version",
            Self::HeadersTooLarge => "headers_too_large",
            Self::TooManyHeaders => "too_many_headers",
            Self::MissingHost => "missing_host",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::NonUtf8Header => "non_utf8_header",
            Self::NotWebSocketUpgrade => "not_websocket_upgrade",
            Self::MissingConnectionUpgrade => "missing_connection_upgrade",
            Self::MissingVersion => "missing_version",
            Self::UnsupportedVersion => "unsupported_version",
            Self::MissingKey => "missing_key",
            Self::BadKey => "bad_key",
        }
    }
}

/// Why a server's handshake response was refused by the client side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientHandshakeError {
    #[error("malformed HTTP response")]
    Malformed,
    #[error("response head over the size limit")]
    HeadersTooLarge,
    #[error("more than 100 response headers")]
    TooManyHeaders,
    #[error("server answered {0} instead of 101")]
    Status(u16),
    #[error("Upgrade header does not name websocket")]
    NotWebSocketUpgrade,
    #[error("Connection header does not contain upgrade")]
    MissingConnectionUpgrade,
    #[error("missing Sec-WebSocket-Accept header")]
    MissingAccept,
    #[error("Sec-WebSocket-Accept does not match the key")]
    BadAccept,
    #[error("server selected an extension that was not offered")]
    UnexpectedExtension,
}

impl ClientHandshakeError {
    /// A short static label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::HeadersTooLarge => "headers_too_large",
            Self::TooManyHeaders => "too_many_headers",
            Self::Status(_) => "status",
            Self::NotWebSocketUpgrade => "not_websocket_upgrade",
            Self::MissingConnectionUpgrade => "missing_connection_upgrade",
            Self::MissingAccept => "missing_accept",
            Self::BadAccept => "bad_accept",
            Self::UnexpectedExtension => "unexpected_extension",
        }
    }
}
