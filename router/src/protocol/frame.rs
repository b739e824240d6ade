//! The frames, one struct per message. Strings and payloads borrow from the
//! decoded buffer (or, when encoding, from wherever the caller has them).
//!
//! Field order here is wire order; `docs/PROTOCOL.md` gives every offset.
//! Every string on the wire is UTF-8; the decoder checks.

use crate::msgid::MessageId;

use super::code::Code;
use super::hops::Hops;
use super::types::{Capabilities, ConnectionRef, Credit, FrameType, Role, flags};

/// One router-protocol frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Hello(Hello<'a>),
    HelloAck(HelloAck<'a>),
    GoAway(GoAway<'a>),
    Ping(Ping),
    Pong(Pong),
    Credit(Credit),
    Publish(Publish<'a>),
    PublishAck(PublishAck<'a>),
    Deliver(Deliver<'a>),
    Subscribe(TopicRequest<'a>),
    Unsubscribe(TopicRequest<'a>),
    Claim(PrefixRequest<'a>),
    Release(PrefixRequest<'a>),
    Reply(Reply<'a>),
    Presence(Presence<'a>),
    Kick(Kick<'a>),
}

impl Frame<'_> {
    /// The header type byte of this frame.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::HelloAck(_) => FrameType::HelloAck,
            Frame::GoAway(_) => FrameType::GoAway,
            Frame::Ping(_) => FrameType::Ping,
            Frame::Pong(_) => FrameType::Pong,
            Frame::Credit(_) => FrameType::Credit,
            Frame::Publish(_) => FrameType::Publish,
            Frame::PublishAck(_) => FrameType::PublishAck,
            Frame::Deliver(_) => FrameType::Deliver,
            Frame::Subscribe(_) => FrameType::Subscribe,
            Frame::Unsubscribe(_) => FrameType::Unsubscribe,
            Frame::Claim(_) => FrameType::Claim,
            Frame::Release(_) => FrameType::Release,
            Frame::Reply(_) => FrameType::Reply,
            Frame::Presence(_) => FrameType::Presence,
            Frame::Kick(_) => FrameType::Kick,
        }
    }

    /// The header flag byte this frame encodes with.
    pub const fn flags(&self) -> u8 {
        match self {
            Frame::Publish(publish) => {
                let mut bits = 0;
                if publish.hops.is_some() {
                    bits |= flags::HOPS;
                }
                if publish.anonymous {
                    bits |= flags::ANONYMOUS;
                }
                bits
            }
            Frame::Deliver(Deliver { hops: Some(_), .. }) => flags::HOPS,
            Frame::PublishAck(PublishAck {
                no_fanout: true, ..
            }) => flags::NO_FANOUT,
            _ => 0,
        }
    }
}

/// HELLO: the first frame of the peer that dialed. Its layout is frozen for
/// every protocol version; later versions only append `extensions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello<'a> {
    /// Oldest protocol version the sender speaks (at least 1).
    pub min_version: u16,
    /// Newest protocol version the sender speaks (at least `min_version`).
    pub max_version: u16,
    pub role: Role,
    /// The sender's node id: unique per role in the fleet.
    pub node_id: u32,
    /// Optional features asked for.
    pub capabilities: Capabilities,
    /// Largest frame body the sender accepts (at least 64 KiB).
    pub max_body_bytes: u32,
    /// How often the sender pings; 0: it does not.
    pub ping_interval_ms: u32,
    /// The initial credit the sender grants the receiver.
    pub credit: Credit,
    /// Software name and version, for logs, e.g. `ringgate-gateway/0.1.0`.
    pub agent: &'a str,
    /// Shared secret the router may require; empty when none.
    pub token: &'a [u8],
    /// Fields of later versions, after `token` up to the body's end: a
    /// version-1 peer keeps and ignores them. Empty in version 1.
    pub extensions: &'a [u8],
}

/// HELLO_ACK: the router's answer to an acceptable HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelloAck<'a> {
    /// The version both sides speak from now on: the highest in common.
    pub version: u16,
    pub role: Role,
    pub node_id: u32,
    /// The subset of the asked-for capabilities the router will honour.
    pub capabilities: Capabilities,
    pub max_body_bytes: u32,
    pub ping_interval_ms: u32,
    /// The initial credit the router grants the dialer.
    pub credit: Credit,
    pub agent: &'a str,
}

/// GOAWAY: the sender will close the connection, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoAway<'a> {
    pub code: Code,
    pub text: &'a str,
}

/// PING: answer with a PONG echoing both fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ping {
    pub nonce: u64,
    /// The sender's clock when sending, microseconds since the Unix epoch.
    pub sent_us: u64,
}

/// PONG: the answer to a PING.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pong {
    /// The PING's nonce.
    pub nonce: u64,
    /// The PING's `sent_us`, echoed: round trip time without keeping state.
    pub ping_sent_us: u64,
    /// The answering side's clock, microseconds since the Unix epoch: an
    /// estimate of the clock offset between the peers.
    pub sent_us: u64,
}

/// PUBLISH: a client's publish, gateway to router, and router to the backend
/// that claimed the topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Publish<'a> {
    /// Correlation id chosen by the sender, echoed in PUBLISH_ACK; unique
    /// among this connection's unanswered publishes.
    pub publish_id: u64,
    /// [`UNASSIGNED_ID`](super::UNASSIGNED_ID) from a gateway; the id the
    /// router assigned when it forwards to a backend.
    pub message_id: MessageId,
    /// The client connection that published.
    pub sender: ConnectionRef,
    /// Not empty.
    pub topic: &'a str,
    /// The sender's user id, or (flag ANONYMOUS) the name the gateway gave
    /// an anonymous sender's connection; empty: anonymous without a name.
    pub user: &'a str,
    /// Flag ANONYMOUS: `user` is not an authenticated id. The dedup key is
    /// then (topic, client_msg_id), else (topic, user, client_msg_id).
    pub anonymous: bool,
    /// The client's `id`: the dedup key with topic and user.
    pub client_msg_id: &'a str,
    /// The client's `trace`; empty: none. At most 255 bytes.
    pub trace_id: &'a str,
    /// Present (flag HOPS) when the message is hop-traced.
    pub hops: Option<Hops<'a>>,
    /// The client's `data`, verbatim JSON bytes.
    pub payload: &'a [u8],
}

/// PUBLISH_ACK: the fate of one PUBLISH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishAck<'a> {
    /// The PUBLISH's `publish_id`.
    pub publish_id: u64,
    pub outcome: PublishOutcome<'a>,
    /// Flag NO_FANOUT: only with [`PublishOutcome::Accepted`].
    pub no_fanout: bool,
}

/// How a publish went. Wire values: 1 accepted, 2 duplicate, 3 rejected,
/// 4 unavailable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublishOutcome<'a> {
    /// Taken; `message_id` is its server id.
    Accepted { message_id: MessageId },
    /// A retry of a publish already taken within the dedup window;
    /// `message_id` is the original's. Not delivered again.
    Duplicate { message_id: MessageId },
    /// Refused for good (the same publish would be refused again, except
    /// after `retry_after_ms` for [`Code::RATE_LIMITED`]).
    Rejected(Refusal<'a>),
    /// Not decided: retry the same publish (same client id) later.
    Unavailable(Refusal<'a>),
}

impl PublishOutcome<'_> {
    /// The client JSON `err` code a gateway answers with, or `None` for an
    /// `ack` (accepted, duplicate). Rejected with forbidden, rate_limited or
    /// too_large: that code; rejected with any other code: `rejected`, with
    /// the refusal text as `reason`; unavailable: `unavailable`.
    pub const fn client_error(&self) -> Option<&'static str> {
        match self {
            PublishOutcome::Accepted { .. } | PublishOutcome::Duplicate { .. } => None,
            PublishOutcome::Rejected(refusal) => Some(match refusal.code {
                Code::FORBIDDEN => "forbidden",
                Code::RATE_LIMITED => "rate_limited",
                Code::TOO_LARGE => "too_large",
                _ => "rejected",
            }),
            PublishOutcome::Unavailable(_) => Some("unavailable"),
        }
    }
}

/// Why a publish was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal<'a> {
    pub code: Code,
    /// When to retry, in milliseconds; 0: no hint.
    pub retry_after_ms: u32,
    /// Short detail. For [`PublishOutcome::Rejected`] with a code that has
    /// no client error of its own, the client sees it as the `err`'s
    /// `reason`: keep it short and free of secrets.
    pub text: &'a str,
}

/// DELIVER: a message for clients, router to gateway (and backend to router,
/// router to router).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deliver<'a> {
    /// The server id (its HLC is the client's `ts`). From a backend:
    /// [`UNASSIGNED_ID`](super::UNASSIGNED_ID) asks the router for one.
    pub message_id: MessageId,
    pub target: Target<'a>,
    /// The client envelope's `topic`; the target itself for
    /// [`Target::Topic`] (then not empty), may be empty otherwise.
    pub topic: &'a str,
    /// The envelope's `from`; empty: anonymous or the system.
    pub from: &'a str,
    /// The envelope's `id`; may be empty.
    pub client_msg_id: &'a str,
    /// The envelope's `trace`; empty: none.
    pub trace_id: &'a str,
    pub hops: Option<Hops<'a>>,
    /// The envelope's `data`: one JSON value, spliced in verbatim.
    pub payload: &'a [u8],
}

/// Who a DELIVER is for. Wire values: 1 topic, 2 user, 3 connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Every subscriber of [`Deliver::topic`].
    Topic,
    /// Every connection of this user (not empty), on every gateway.
    User(&'a str),
    /// One connection.
    Connection(ConnectionRef),
}

/// SUBSCRIBE and UNSUBSCRIBE: a gateway's interest in a topic, once per
/// gateway and topic however many of its clients subscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicRequest<'a> {
    /// Echoed in REPLY.
    pub request_id: u64,
    /// Not empty.
    pub topic: &'a str,
}

/// CLAIM and RELEASE: a backend takes or gives up the topics starting with
/// `prefix` (bytewise; empty: every topic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixRequest<'a> {
    pub request_id: u64,
    pub prefix: &'a str,
}

/// REPLY: the answer to SUBSCRIBE, UNSUBSCRIBE, CLAIM and RELEASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    pub request_id: u64,
    /// [`Code::OK`] on success.
    pub code: Code,
    pub text: &'a str,
}

/// PRESENCE: a client connection came or went, or joined or left a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Presence<'a> {
    pub event: PresenceEvent<'a>,
    pub connection: ConnectionRef,
    /// The connection's user; empty: anonymous.
    pub user: &'a str,
}

/// What happened. Wire values: 1 connected, 2 disconnected, 3 joined,
/// 4 left; joined and left carry the topic (not empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PresenceEvent<'a> {
    Connected,
    Disconnected,
    Joined(&'a str),
    Left(&'a str),
}

/// KICK: close client connections with a WebSocket close code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kick<'a> {
    pub recipient: Recipient<'a>,
    /// Sent to the client in its Close frame: a code a peer may send
    /// (1000-1003, 1007-1011, 3000-4999).
    pub close_code: u16,
    /// The Close frame's reason: at most 123 bytes reach the client.
    pub reason: &'a str,
}

/// Who a KICK is for. Wire values as in [`Target`]: 2 user, 3 connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recipient<'a> {
    /// Every connection of this user (not empty).
    User(&'a str),
    Connection(ConnectionRef),
}
