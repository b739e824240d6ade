//! The rules a well-formed frame must also follow: non-empty addresses,
//! version ranges, limits, close codes, flags that fit the outcome.
//!
//! One function serves both directions: the decoder runs it after parsing
//! and the encoder before writing, so an encodable frame always decodes.

use super::error::{DecodeError, Field};
use super::frame::{
    Deliver, Frame, Hello, HelloAck, Kick, Presence, PresenceEvent, Publish, PublishAck,
    PublishOutcome, Recipient, Target, TopicRequest,
};
use super::types::{FrameType, flags};
use super::{MIN_MAX_BODY_BYTES, VERSION};

/// Checks the rules that the byte layout alone does not enforce.
pub(super) fn check(frame: &Frame<'_>) -> Result<(), DecodeError> {
    match frame {
        Frame::Hello(hello) => check_hello(hello),
        Frame::HelloAck(ack) => check_hello_ack(ack),
        Frame::Publish(Publish { topic, .. }) => not_empty(FrameType::Publish, Field::Topic, topic),
        Frame::PublishAck(ack) => check_publish_ack(ack),
        Frame::Deliver(deliver) => check_deliver(deliver),
        Frame::Subscribe(TopicRequest { topic, .. }) => {
            not_empty(FrameType::Subscribe, Field::Topic, topic)
        }
        Frame::Unsubscribe(TopicRequest { topic, .. }) => {
            not_empty(FrameType::Unsubscribe, Field::Topic, topic)
        }
        Frame::Presence(presence) => check_presence(presence),
        Frame::Kick(kick) => check_kick(kick),
        Frame::GoAway(_)
        | Frame::Ping(_)
        | Frame::Pong(_)
        | Frame::Credit(_)
        | Frame::Claim(_)
        | Frame::Release(_)
        | Frame::Reply(_) => Ok(()),
    }
}

/// Whether a WebSocket peer may put `code` in a Close frame (RFC 6455 7.4):
/// the codes a KICK may carry.
pub const fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

fn check_hello(hello: &Hello<'_>) -> Result<(), DecodeError> {
    let (min, max) = (hello.min_version, hello.max_version);
    if min == 0 || min > max {
        return Err(DecodeError::InvalidVersionRange { min, max });
    }
    if !(min <= VERSION && VERSION <= max) {
        return Err(DecodeError::UnsupportedVersion { min, max });
    }
    check_max_body(hello.max_body_bytes)
}

fn check_hello_ack(ack: &HelloAck<'_>) -> Result<(), DecodeError> {
    if ack.version != VERSION {
        return Err(DecodeError::UnsupportedVersion {
            min: ack.version,
            max: ack.version,
        });
    }
    check_max_body(ack.max_body_bytes)
}

fn check_max_body(max_body_bytes: u32) -> Result<(), DecodeError> {
    if max_body_bytes < MIN_MAX_BODY_BYTES {
        return Err(DecodeError::MaxBodyTooSmall(max_body_bytes));
    }
    Ok(())
}

fn check_publish_ack(ack: &PublishAck<'_>) -> Result<(), DecodeError> {
    if ack.no_fanout && !matches!(ack.outcome, PublishOutcome::Accepted { .. }) {
        return Err(DecodeError::InvalidFlags {
            frame_type: FrameType::PublishAck,
            flags: flags::NO_FANOUT,
        });
    }
    Ok(())
}

fn check_deliver(deliver: &Deliver<'_>) -> Result<(), DecodeError> {
    match deliver.target {
        Target::Topic => not_empty(FrameType::Deliver, Field::Topic, deliver.topic),
        Target::User(user) => not_empty(FrameType::Deliver, Field::Target, user),
        Target::Connection(_) => Ok(()),
    }
}

fn check_presence(presence: &Presence<'_>) -> Result<(), DecodeError> {
    match presence.event {
        PresenceEvent::Joined(topic) | PresenceEvent::Left(topic) => {
            not_empty(FrameType::Presence, Field::Topic, topic)
        }
        PresenceEvent::Connected | PresenceEvent::Disconnected => Ok(()),
    }
}

fn check_kick(kick: &Kick<'_>) -> Result<(), DecodeError> {
    if let Recipient::User(user) = kick.recipient {
        not_empty(FrameType::Kick, Field::Target, user)?;
    }
    if !is_valid_close_code(kick.close_code) {
        return Err(DecodeError::InvalidCloseCode(kick.close_code));
    }
    Ok(())
}

fn not_empty(frame_type: FrameType, field: Field, value: &str) -> Result<(), DecodeError> {
    if value.is_empty() {
        return Err(DecodeError::EmptyField { frame_type, field });
    }
    Ok(())
}
