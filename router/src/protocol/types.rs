//! The small fixed-size values frames are built from: frame types, roles,
//! capability bits, connection references and credit grants.

use std::fmt;

/// A frame's type byte (header offset 4). Zero and every value not listed
/// are refused with [`DecodeError::UnknownType`](super::DecodeError).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameType {
    Hello = 0x01,
    HelloAck = 0x02,
    GoAway = 0x03,
    Ping = 0x04,
    Pong = 0x05,
    Credit = 0x06,
    Publish = 0x10,
    PublishAck = 0x11,
    Deliver = 0x12,
    Subscribe = 0x20,
    Unsubscribe = 0x21,
    Claim = 0x22,
    Release = 0x23,
    Reply = 0x24,
    Presence = 0x30,
    Kick = 0x31,
}

impl FrameType {
    /// Every frame type, in type-byte order.
    pub const ALL: [FrameType; 16] = [
        FrameType::Hello,
        FrameType::HelloAck,
        FrameType::GoAway,
        FrameType::Ping,
        FrameType::Pong,
        FrameType::Credit,
        FrameType::Publish,
        FrameType::PublishAck,
        FrameType::Deliver,
        FrameType::Subscribe,
        FrameType::Unsubscribe,
        FrameType::Claim,
        FrameType::Release,
        FrameType::Reply,
        FrameType::Presence,
        FrameType::Kick,
    ];

    /// The type for a header's type byte, or `None` for an unknown one.
    pub const fn from_u8(value: u8) -> Option<FrameType> {
        Some(match value {
            0x01 => FrameType::Hello,
            0x02 => FrameType::HelloAck,
            0x03 => FrameType::GoAway,
            0x04 => FrameType::Ping,
            0x05 => FrameType::Pong,
            0x06 => FrameType::Credit,
            0x10 => FrameType::Publish,
            0x11 => FrameType::PublishAck,
            0x12 => FrameType::Deliver,
            0x20 => FrameType::Subscribe,
            0x21 => FrameType::Unsubscribe,
            0x22 => FrameType::Claim,
            0x23 => FrameType::Release,
            0x24 => FrameType::Reply,
            0x30 => FrameType::Presence,
            0x31 => FrameType::Kick,
            _ => return None,
        })
    }

    /// The name the specification uses, e.g. `PUBLISH_ACK`.
    pub const fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::HelloAck => "HELLO_ACK",
            FrameType::GoAway => "GOAWAY",
            FrameType::Ping => "PING",
            FrameType::Pong => "PONG",
            FrameType::Credit => "CREDIT",
            FrameType::Publish => "PUBLISH",
            FrameType::PublishAck => "PUBLISH_ACK",
            FrameType::Deliver => "DELIVER",
            FrameType::Subscribe => "SUBSCRIBE",
            FrameType::Unsubscribe => "UNSUBSCRIBE",
            FrameType::Claim => "CLAIM",
            FrameType::Release => "RELEASE",
            FrameType::Reply => "REPLY",
            FrameType::Presence => "PRESENCE",
            FrameType::Kick => "KICK",
        }
    }

    /// The header flag bits this type defines; any other bit set is refused.
    pub const fn allowed_flags(self) -> u8 {
        match self {
            FrameType::Publish => flags::HOPS | flags::ANONYMOUS,
            FrameType::Deliver => flags::HOPS,
            FrameType::PublishAck => flags::NO_FANOUT,
            _ => 0,
        }
    }

    /// Whether frames of this type spend flow-control credit (PUBLISH and
    /// DELIVER: the frames whose number is driven by clients and backends).
    pub const fn is_flow_controlled(self) -> bool {
        matches!(self, FrameType::Publish | FrameType::Deliver)
    }

    /// Whether a peer of role `from` may send this frame to a peer of role
    /// `to` (the direction table of `docs/PROTOCOL.md`). Every connection has
    /// a router on at least one end; the dialer sends HELLO, the router that
    /// accepted answers HELLO_ACK. A frame refused here is answered with
    /// GOAWAY [`Code::UNEXPECTED_MESSAGE`](super::Code::UNEXPECTED_MESSAGE).
    pub const fn may_send(self, from: Role, to: Role) -> bool {
        use Role::{Backend, Gateway, Router};
        if !matches!(from, Router) && !matches!(to, Router) {
            return false;
        }
        match self {
            FrameType::Hello => matches!(to, Router),
            FrameType::HelloAck => matches!(from, Router),
            FrameType::GoAway | FrameType::Ping | FrameType::Pong | FrameType::Credit => true,
            FrameType::Publish => matches!((from, to), (Gateway, Router) | (Router, Backend)),
            FrameType::PublishAck => matches!((from, to), (Router, Gateway) | (Backend, Router)),
            FrameType::Deliver | FrameType::Kick => matches!(
                (from, to),
                (Router, Gateway) | (Backend, Router) | (Router, Router)
            ),
            FrameType::Subscribe | FrameType::Unsubscribe => {
                matches!((from, to), (Gateway, Router))
            }
            FrameType::Claim | FrameType::Release => matches!((from, to), (Backend, Router)),
            FrameType::Reply => matches!((from, to), (Router, Gateway) | (Router, Backend)),
            FrameType::Presence => matches!((from, to), (Gateway, Router) | (Router, Backend)),
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Header flag bits (header offset 5). Each type defines its own; see
/// [`FrameType::allowed_flags`].
pub mod flags {
    /// PUBLISH, DELIVER: a hop-timestamp list follows the trace id, and every
    /// hop that forwards the message appends its receive time to it.
    pub const HOPS: u8 = 0x01;
    /// PUBLISH: the sender is not authenticated; `user` is only the name the
    /// gateway gave its connection, so dedup ignores it.
    pub const ANONYMOUS: u8 = 0x02;
    /// PUBLISH_ACK with outcome accepted, from a backend: the router must not
    /// fan the message out to the topic's subscribers (the backend handled
    /// it, and delivers whatever it wants itself).
    pub const NO_FANOUT: u8 = 0x01;
}

/// What a peer is, announced in HELLO and HELLO_ACK.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Gateway = 1,
    Backend = 2,
    Router = 3,
}

impl Role {
    /// The role for a wire byte, or `None`.
    pub const fn from_u8(value: u8) -> Option<Role> {
        match value {
            1 => Some(Role::Gateway),
            2 => Some(Role::Backend),
            3 => Some(Role::Router),
            _ => None,
        }
    }
}

/// Optional features a peer asks for in HELLO; the router answers in
/// HELLO_ACK with the subset it will honour. Unknown bits are kept (so a
/// frame re-encodes to the same bytes) and ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// No optional feature.
    pub const NONE: Capabilities = Capabilities(0);
    /// Backend: send me PRESENCE connected/disconnected for every user.
    pub const PRESENCE: Capabilities = Capabilities(1 << 0);
    /// Backend: send me PRESENCE joined/left for the topics I claimed.
    pub const TOPIC_EVENTS: Capabilities = Capabilities(1 << 1);
    /// Every bit version 1 defines.
    pub const KNOWN: Capabilities = Capabilities(0b11);

    /// Whether every bit of `other` is set in `self`.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in both.
    pub const fn intersection(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 & other.0)
    }

    /// The bits set in either.
    pub const fn union(self, other: Capabilities) -> Capabilities {
        Capabilities(self.0 | other.0)
    }
}

/// One client WebSocket connection, fleet wide: the gateway's node id and
/// that gateway's connection id. 12 bytes on the wire: u32 then u64.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionRef {
    pub gateway: u32,
    pub connection: u64,
}

/// A flow-control grant: how many more PUBLISH or DELIVER frames, and how
/// many more bytes of them (header included), the receiver accepts. Used as
/// the initial window in HELLO/HELLO_ACK and as the body of CREDIT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Credit {
    pub messages: u32,
    pub bytes: u32,
}
