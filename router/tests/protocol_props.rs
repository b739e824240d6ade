//! Property tests: arbitrary frames round trip through the codec, and any
//! byte stream, however it is chopped, decodes to the same frames up to the
//! same error.

use proptest::prelude::*;
use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{
    self, Capabilities, Code, ConnectionRef, Credit, DecodeError, Decoder, Deliver, Encoder, Frame,
    GoAway, Hello, HelloAck, Hops, Kick, Ping, Pong, PrefixRequest, Presence, PresenceEvent,
    Publish, PublishAck, PublishOutcome, Recipient, Refusal, Reply, Role, Target, TopicRequest,
};

// Strategies build `Frame<'static>` by leaking their strings: a few KiB per
// case, gone when the test process exits.
fn leak_str(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

fn leak_bytes(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

fn text() -> impl Strategy<Value = &'static str> {
    ".{0,12}".prop_map(leak_str)
}

fn address() -> impl Strategy<Value = &'static str> {
    ".{1,12}".prop_map(leak_str)
}

fn trace() -> impl Strategy<Value = &'static str> {
    "[ -~]{0,40}".prop_map(leak_str)
}

fn bytes(max: usize) -> impl Strategy<Value = &'static [u8]> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(leak_bytes)
}

fn message_id() -> impl Strategy<Value = MessageId> {
    prop_oneof![
        Just(protocol::UNASSIGNED_ID),
        any::<u128>().prop_map(MessageId::from_u128)
    ]
}

fn connection() -> impl Strategy<Value = ConnectionRef> {
    (any::<u32>(), any::<u64>()).prop_map(|(gateway, connection)| ConnectionRef {
        gateway,
        connection,
    })
}

fn credit() -> impl Strategy<Value = Credit> {
    (any::<u32>(), any::<u32>()).prop_map(|(messages, bytes)| Credit { messages, bytes })
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Gateway), Just(Role::Backend), Just(Role::Router)]
}

fn hops() -> impl Strategy<Value = Option<Hops<'static>>> {
    prop::option::of(prop::collection::vec(any::<u64>(), 0..6).prop_map(|times| {
        let wire: Vec<u8> = times.iter().flat_map(|time| time.to_be_bytes()).collect();
        Hops::from_wire(leak_bytes(wire)).expect("under 255 timestamps")
    }))
}

fn max_body() -> impl Strategy<Value = u32> {
    protocol::MIN_MAX_BODY_BYTES..=u32::MAX
}

fn hello() -> impl Strategy<Value = Frame<'static>> {
    (
        (1..=u16::MAX, role(), any::<u32>(), any::<u32>(), max_body()),
        (any::<u32>(), credit(), text(), bytes(20), bytes(20)),
    )
        .prop_map(
            |(
                (max_version, role, node_id, capabilities, max_body_bytes),
                (ping_interval_ms, credit, agent, token, extensions),
            )| {
                Frame::Hello(Hello {
                    min_version: 1,
                    max_version,
                    role,
                    node_id,
                    capabilities: Capabilities(capabilities),
                    max_body_bytes,
                    ping_interval_ms,
                    credit,
                    agent,
                    token,
                    extensions,
                })
            },
        )
}

fn hello_ack() -> impl Strategy<Value = Frame<'static>> {
    (
        role(),
        any::<u32>(),
        any::<u32>(),
        max_body(),
        any::<u32>(),
        credit(),
        text(),
    )
        .prop_map(
            |(role, node_id, capabilities, max_body_bytes, ping_interval_ms, credit, agent)| {
                Frame::HelloAck(HelloAck {
                    version: protocol::VERSION,
                    role,
                    node_id,
                    capabilities: Capabilities(capabilities),
                    max_body_bytes,
                    ping_interval_ms,
                    credit,
                    agent,
                })
            },
        )
}

fn publish() -> impl Strategy<Value = Frame<'static>> {
    (
        (any::<u64>(), message_id(), connection(), address()),
        (text(), any::<bool>(), text(), trace(), hops(), bytes(64)),
    )
        .prop_map(
            |(
                (publish_id, message_id, sender, topic),
                (user, anonymous, client_msg_id, trace_id, hops, payload),
            )| {
                Frame::Publish(Publish {
                    publish_id,
                    message_id,
                    sender,
                    topic,
                    user,
                    anonymous,
                    client_msg_id,
                    trace_id,
                    hops,
                    payload,
                })
            },
        )
}

fn refusal() -> impl Strategy<Value = Refusal<'static>> {
    (any::<u16>(), any::<u32>(), text()).prop_map(|(code, retry_after_ms, text)| Refusal {
        code: Code(code),
        retry_after_ms,
        text,
    })
}

fn publish_ack() -> impl Strategy<Value = Frame<'static>> {
    let outcome = prop_oneof![
        message_id().prop_map(|message_id| PublishOutcome::Accepted { message_id }),
        message_id().prop_map(|message_id| PublishOutcome::Duplicate { message_id }),
        refusal().prop_map(PublishOutcome::Rejected),
        refusal().prop_map(PublishOutcome::Unavailable),
    ];
    (any::<u64>(), outcome, any::<bool>()).prop_map(|(publish_id, outcome, no_fanout)| {
        let no_fanout = no_fanout && matches!(outcome, PublishOutcome::Accepted { .. });
        Frame::PublishAck(PublishAck {
            publish_id,
            outcome,
            no_fanout,
        })
    })
}

fn deliver() -> impl Strategy<Value = Frame<'static>> {
    let target = prop_oneof![
        Just(Target::Topic),
        address().prop_map(Target::User),
        connection().prop_map(Target::Connection),
    ];
    (
        (message_id(), target, address(), text()),
        (text(), trace(), hops(), bytes(64)),
    )
        .prop_map(
            |((message_id, target, topic, from), (client_msg_id, trace_id, hops, payload))| {
                Frame::Deliver(Deliver {
                    message_id,
                    target,
                    topic,
                    from,
                    client_msg_id,
                    trace_id,
                    hops,
                    payload,
                })
            },
        )
}

fn presence() -> impl Strategy<Value = Frame<'static>> {
    let event = prop_oneof![
        Just(PresenceEvent::Connected),
        Just(PresenceEvent::Disconnected),
        address().prop_map(PresenceEvent::Joined),
        address().prop_map(PresenceEvent::Left),
    ];
    (event, connection(), text()).prop_map(|(event, connection, user)| {
        Frame::Presence(Presence {
            event,
            connection,
            user,
        })
    })
}

fn kick() -> impl Strategy<Value = Frame<'static>> {
    let recipient = prop_oneof![
        address().prop_map(Recipient::User),
        connection().prop_map(Recipient::Connection),
    ];
    let close_code = prop_oneof![1000..=1003u16, 1007..=1011u16, 3000..=4999u16];
    (recipient, close_code, text()).prop_map(|(recipient, close_code, reason)| {
        Frame::Kick(Kick {
            recipient,
            close_code,
            reason,
        })
    })
}

fn frame() -> impl Strategy<Value = Frame<'static>> {
    prop_oneof![
        hello(),
        hello_ack(),
        (any::<u16>(), text()).prop_map(|(code, text)| Frame::GoAway(GoAway {
            code: Code(code),
            text
        })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(nonce, sent_us)| Frame::Ping(Ping { nonce, sent_us })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(nonce, ping_sent_us, sent_us)| {
            Frame::Pong(Pong {
                nonce,
                ping_sent_us,
                sent_us,
            })
        }),
        credit().prop_map(Frame::Credit),
        publish(),
        publish_ack(),
        deliver(),
        (any::<u64>(), address())
            .prop_map(|(request_id, topic)| Frame::Subscribe(TopicRequest { request_id, topic })),
        (any::<u64>(), address())
            .prop_map(|(request_id, topic)| Frame::Unsubscribe(TopicRequest { request_id, topic })),
        (any::<u64>(), text())
            .prop_map(|(request_id, prefix)| Frame::Claim(PrefixRequest { request_id, prefix })),
        (any::<u64>(), text())
            .prop_map(|(request_id, prefix)| Frame::Release(PrefixRequest { request_id, prefix })),
        (any::<u64>(), any::<u16>(), text()).prop_map(|(request_id, code, text)| Frame::Reply(
            Reply {
                request_id,
                code: Code(code),
                text
            }
        )),
        presence(),
        kick(),
    ]
}

fn encoded(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::encode(frame, &mut out).expect("generated frames are valid");
    out
}

/// What a decoder makes of a stream: each frame (re-encoded, so it outlives
/// the buffer), then the error if any. `None` error: the stream ended on a
/// frame boundary or inside an incomplete frame.
type Outcome = (Vec<Vec<u8>>, Option<DecodeError>);

/// Feeds `stream` in pieces cut at `cuts`, the way a connection's read loop
/// would: append, decode all complete frames, keep the rest.
fn feed(decoder: Decoder, stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut cuts: Vec<usize> = cuts.iter().map(|&cut| cut % (stream.len() + 1)).collect();
    cuts.push(stream.len());
    cuts.sort_unstable();
    let encoder = Encoder::new(decoder.max_body_bytes());
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    let mut start = 0;
    for end in cuts {
        buffer.extend_from_slice(&stream[start..end]);
        start = end;
        loop {
            match decoder.decode(&buffer) {
                Ok(Some((frame, used))) => {
                    let mut again = Vec::new();
                    encoder.encode(&frame, &mut again).expect("re-encodes");
                    assert_eq!(again, buffer[..used], "decoding is canonical");
                    frames.push(again);
                    buffer.drain(..used);
                }
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

/// A stream of valid frames, then perhaps a few corrupted bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(frame(), 0..5),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
    )
        .prop_map(|(frames, corruptions)| {
            let mut stream: Vec<u8> = frames.iter().flat_map(encoded).collect();
            if !stream.is_empty() {
                for (index, value) in corruptions {
                    let at = index.index(stream.len());
                    stream[at] = value;
                }
            }
            stream
        })
}

fn decoder() -> impl Strategy<Value = Decoder> {
    prop_oneof![Just(Decoder::default()), (0..300u32).prop_map(Decoder::new)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn frames_round_trip(frame in frame()) {
        let bytes = encoded(&frame);
        prop_assert_eq!(frame.encoded_len(), Ok(bytes.len()));
        prop_assert_eq!(protocol::decode(&bytes), Ok(Some((frame, bytes.len()))));
    }

    #[test]
    fn every_strict_prefix_is_incomplete(frame in frame()) {
        let bytes = encoded(&frame);
        for end in 0..bytes.len() {
            prop_assert_eq!(protocol::decode(&bytes[..end]), Ok(None), "prefix of {}", end);
        }
    }

    #[test]
    fn bytes_after_a_frame_are_not_looked_at(frame in frame(), tail in bytes(16)) {
        let mut bytes = encoded(&frame);
        let len = bytes.len();
        bytes.extend_from_slice(tail);
        prop_assert_eq!(protocol::decode(&bytes), Ok(Some((frame, len))));
    }

    #[test]
    fn frame_streams_decode_the_same_however_chopped(
        frames in prop::collection::vec(frame(), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(encoded).collect();
        let expected: Vec<Vec<u8>> = frames.iter().map(encoded).collect();
        prop_assert_eq!(feed(Decoder::default(), &stream, &cuts), (expected, None));
    }

    #[test]
    fn corrupted_streams_decode_the_same_however_chopped(
        stream in stream(),
        decoder in decoder(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = feed(decoder, &stream, &[]);
        prop_assert_eq!(&feed(decoder, &stream, &cuts), &whole);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&feed(decoder, &stream, &bytewise), &whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_prefixes_agree(
        stream in prop::collection::vec(any::<u8>(), 0..200),
        decoder in decoder(),
    ) {
        let whole = decoder.decode(&stream);
        for end in 0..stream.len() {
            let prefix = decoder.decode(&stream[..end]);
            prop_assert!(prefix == Ok(None) || prefix == whole, "prefix {}: {:?} vs {:?}", end, prefix, whole);
        }
        let cuts: Vec<usize> = (0..stream.len()).step_by(3).collect();
        prop_assert_eq!(feed(decoder, &stream, &cuts), feed(decoder, &stream, &[]));
    }
}
