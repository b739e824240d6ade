//! Golden byte vectors, one or more per frame type. The hex was written
//! from the layout in `docs/PROTOCOL.md` (one field per line, annotated),
//! not produced by this codec: each frame must encode to exactly these
//! bytes and decode back to itself, and the doc must show the same bytes
//! under `<!-- golden: NAME -->`.

use std::collections::HashSet;

use ringgate_router::msgid::{Hlc, MessageId};
use ringgate_router::protocol::{
    self, Capabilities, Code, ConnectionRef, Credit, Deliver, Frame, FrameType, GoAway, Hello,
    HelloAck, Hops, Kick, Ping, Pong, PrefixRequest, Presence, PresenceEvent, Publish, PublishAck,
    PublishOutcome, Recipient, Refusal, Reply, Role, Target, TopicRequest, UNASSIGNED_ID,
};

/// 2025-01-01T00:00:00Z.
const WALL_MS: u64 = 1_735_689_600_000;
const T_US: u64 = WALL_MS * 1000;

static PUBLISH_HOPS: [u8; 8] = (T_US + 10).to_be_bytes();
static DELIVER_HOPS: [u8; 24] = concat3(
    (T_US + 10).to_be_bytes(),
    (T_US + 180).to_be_bytes(),
    (T_US + 420).to_be_bytes(),
);

const fn concat3(a: [u8; 8], b: [u8; 8], c: [u8; 8]) -> [u8; 24] {
    let mut out = [0; 24];
    let mut index = 0;
    while index < 8 {
        out[index] = a[index];
        out[8 + index] = b[index];
        out[16 + index] = c[index];
        index += 1;
    }
    out
}

fn id(wall_ms: u64, logical: u16, router: u32, seq: u32) -> MessageId {
    MessageId {
        hlc: Hlc::new(wall_ms, logical).unwrap(),
        router,
        seq,
    }
}

const ALICE_CONNECTION: ConnectionRef = ConnectionRef {
    gateway: 257,
    connection: 42,
};

fn goldens() -> Vec<(&'static str, &'static str, Frame<'static>)> {
    vec![
        (
            "hello",
            HELLO,
            Frame::Hello(Hello {
                min_version: 1,
                max_version: 1,
                role: Role::Backend,
                node_id: 7,
                capabilities: Capabilities::PRESENCE.union(Capabilities::TOPIC_EVENTS),
                max_body_bytes: 16 << 20,
                ping_interval_ms: 5000,
                credit: Credit {
                    messages: 256,
                    bytes: 1 << 20,
                },
                agent: "chat/1.0",
                token: b"s3cret",
                extensions: b"",
            }),
        ),
        (
            "hello_ack",
            HELLO_ACK,
            Frame::HelloAck(HelloAck {
                version: 1,
                role: Role::Router,
                node_id: 2,
                capabilities: Capabilities(3),
                max_body_bytes: 16 << 20,
                ping_interval_ms: 5000,
                credit: Credit {
                    messages: 1024,
                    bytes: 4 << 20,
                },
                agent: "ringgate-router/0.1.0",
            }),
        ),
        (
            "goaway",
            GOAWAY,
            Frame::GoAway(GoAway {
                code: Code::UNSUPPORTED_VERSION,
                text: "speaks 1..=1",
            }),
        ),
        (
            "ping",
            PING,
            Frame::Ping(Ping {
                nonce: 1,
                sent_us: T_US,
            }),
        ),
        (
            "pong",
            PONG,
            Frame::Pong(Pong {
                nonce: 1,
                ping_sent_us: T_US,
                sent_us: T_US + 250,
            }),
        ),
        (
            "credit",
            CREDIT,
            Frame::Credit(Credit {
                messages: 64,
                bytes: 65536,
            }),
        ),
        (
            "publish",
            PUBLISH,
            Frame::Publish(Publish {
                publish_id: 1,
                message_id: UNASSIGNED_ID,
                sender: ALICE_CONNECTION,
                topic: "conv_456",
                user: "alice",
                anonymous: false,
                client_msg_id: "m1",
                trace_id: "t-9",
                hops: Hops::from_wire(&PUBLISH_HOPS),
                payload: br#"{"text":"hi"}"#,
            }),
        ),
        (
            "publish_ack_accepted",
            PUBLISH_ACK_ACCEPTED,
            Frame::PublishAck(PublishAck {
                publish_id: 1,
                outcome: PublishOutcome::Accepted {
                    message_id: id(WALL_MS, 0, 2, 42),
                },
                no_fanout: false,
            }),
        ),
        (
            "publish_ack_rejected",
            PUBLISH_ACK_REJECTED,
            Frame::PublishAck(PublishAck {
                publish_id: 9,
                outcome: PublishOutcome::Rejected(Refusal {
                    code: Code::FORBIDDEN,
                    retry_after_ms: 0,
                    text: "not a member",
                }),
                no_fanout: false,
            }),
        ),
        (
            "deliver_topic",
            DELIVER_TOPIC,
            Frame::Deliver(Deliver {
                message_id: id(WALL_MS, 0, 2, 42),
                target: Target::Topic,
                topic: "conv_456",
                from: "alice",
                client_msg_id: "m1",
                trace_id: "t-9",
                hops: Hops::from_wire(&DELIVER_HOPS),
                payload: br#"{"text":"hi"}"#,
            }),
        ),
        (
            "deliver_user",
            DELIVER_USER,
            Frame::Deliver(Deliver {
                message_id: UNASSIGNED_ID,
                target: Target::User("bob"),
                topic: "inbox",
                from: "",
                client_msg_id: "",
                trace_id: "",
                hops: None,
                payload: br#"{"n":1}"#,
            }),
        ),
        (
            "deliver_connection",
            DELIVER_CONNECTION,
            Frame::Deliver(Deliver {
                message_id: id(WALL_MS - 60_000, 3, 2, 7),
                target: Target::Connection(ALICE_CONNECTION),
                topic: "conv_456",
                from: "bob",
                client_msg_id: "b7",
                trace_id: "",
                hops: None,
                payload: br#""earlier""#,
            }),
        ),
        (
            "subscribe",
            SUBSCRIBE,
            Frame::Subscribe(TopicRequest {
                request_id: 5,
                topic: "conv_456",
            }),
        ),
        (
            "unsubscribe",
            UNSUBSCRIBE,
            Frame::Unsubscribe(TopicRequest {
                request_id: 6,
                topic: "conv_456",
            }),
        ),
        (
            "claim",
            CLAIM,
            Frame::Claim(PrefixRequest {
                request_id: 1,
                prefix: "conv_",
            }),
        ),
        (
            "release",
            RELEASE,
            Frame::Release(PrefixRequest {
                request_id: 2,
                prefix: "conv_",
            }),
        ),
        (
            "reply",
            REPLY,
            Frame::Reply(Reply {
                request_id: 1,
                code: Code::OK,
                text: "",
            }),
        ),
        (
            "presence_connected",
            PRESENCE_CONNECTED,
            Frame::Presence(Presence {
                event: PresenceEvent::Connected,
                connection: ALICE_CONNECTION,
                user: "alice",
            }),
        ),
        (
            "presence_joined",
            PRESENCE_JOINED,
            Frame::Presence(Presence {
                event: PresenceEvent::Joined("conv_456"),
                connection: ALICE_CONNECTION,
                user: "alice",
            }),
        ),
        (
            "kick",
            KICK,
            Frame::Kick(Kick {
                recipient: Recipient::User("mallory"),
                close_code: 1008,
                reason: "banned",
            }),
        ),
    ]
}

/// The bytes of an annotated block: hex pairs before each line's `|`.
fn parse_hex(block: &str) -> Vec<u8> {
    block
        .lines()
        .flat_map(|line| line.split('|').next().unwrap().split_whitespace())
        .map(|pair| u8::from_str_radix(pair, 16).unwrap_or_else(|_| panic!("bad hex {pair:?}")))
        .collect()
}

#[test]
fn every_golden_encodes_to_its_bytes_and_decodes_back() {
    for (name, hex, frame) in goldens() {
        let bytes = parse_hex(hex);
        let mut encoded = Vec::new();
        let written = protocol::encode(&frame, &mut encoded).unwrap();
        assert_eq!(
            encoded, bytes,
            "{name}: encoding differs from the golden bytes"
        );
        assert_eq!(written, bytes.len(), "{name}");
        assert_eq!(frame.encoded_len(), Ok(bytes.len()), "{name}");
        let (decoded, used) = protocol::decode(&bytes).unwrap().unwrap();
        assert_eq!(decoded, frame, "{name}: decoding differs");
        assert_eq!(used, bytes.len(), "{name}");
    }
}

#[test]
fn every_frame_type_has_a_golden() {
    let covered: HashSet<FrameType> = goldens()
        .iter()
        .map(|(_, _, frame)| frame.frame_type())
        .collect();
    for frame_type in FrameType::ALL {
        assert!(covered.contains(&frame_type), "no golden for {frame_type}");
    }
}

#[test]
fn the_specification_shows_the_same_bytes() {
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/PROTOCOL.md");
    for (name, hex, _) in goldens() {
        let marker = format!("<!-- golden: {name} -->");
        let start = doc
            .find(&marker)
            .unwrap_or_else(|| panic!("docs/PROTOCOL.md has no {marker}"));
        let after = &doc[start + marker.len()..];
        let fence = after.find("```").expect("a fenced block after the marker");
        let body_start = fence + after[fence..].find('\n').unwrap() + 1;
        let body_len = after[body_start..].find("```").expect("the block's end");
        let block = &after[body_start..body_start + body_len];
        assert_eq!(
            parse_hex(block),
            parse_hex(hex),
            "{name}: doc differs from the test"
        );
    }
}

#[test]
fn type_and_enum_bytes_are_the_documented_ones() {
    let types: Vec<(u8, &str)> = FrameType::ALL
        .iter()
        .map(|&frame_type| (frame_type as u8, frame_type.name()))
        .collect();
    assert_eq!(
        types,
        [
            (0x01, "HELLO"),
            (0x02, "HELLO_ACK"),
            (0x03, "GOAWAY"),
            (0x04, "PING"),
            (0x05, "PONG"),
            (0x06, "CREDIT"),
            (0x10, "PUBLISH"),
            (0x11, "PUBLISH_ACK"),
            (0x12, "DELIVER"),
            (0x20, "SUBSCRIBE"),
            (0x21, "UNSUBSCRIBE"),
            (0x22, "CLAIM"),
            (0x23, "RELEASE"),
            (0x24, "REPLY"),
            (0x30, "PRESENCE"),
            (0x31, "KICK"),
        ]
    );
    for value in 0..=u8::MAX {
        match FrameType::from_u8(value) {
            Some(frame_type) => assert_eq!(frame_type as u8, value),
            None => assert!(types.iter().all(|&(known, _)| known != value)),
        }
    }
    assert_eq!(
        [Role::Gateway as u8, Role::Backend as u8, Role::Router as u8],
        [1, 2, 3]
    );
    assert_eq!(protocol::MAGIC, [0x52, 0x47, 0x52, 0x50]);
    assert_eq!(UNASSIGNED_ID.to_bytes(), [0; 16]);
    let codes: Vec<(u16, &str)> = (0..=21)
        .map(Code)
        .filter(|code| code.name() != "unknown")
        .map(|code| (code.0, code.name()))
        .collect();
    assert_eq!(
        codes,
        [
            (0, "ok"),
            (1, "protocol_error"),
            (2, "unsupported_version"),
            (3, "unauthorized"),
            (4, "flow_control"),
            (5, "frame_too_large"),
            (6, "timeout"),
            (7, "internal"),
            (8, "overloaded"),
            (9, "unexpected_message"),
            (10, "duplicate_node"),
            (16, "forbidden"),
            (17, "bad_request"),
            (18, "rate_limited"),
            (19, "too_large"),
            (20, "unavailable"),
            (21, "not_owner"),
        ]
    );
}

#[test]
fn outcomes_map_to_client_error_codes() {
    let rejected = |code| {
        PublishOutcome::Rejected(Refusal {
            code,
            retry_after_ms: 0,
            text: "",
        })
        .client_error()
    };
    assert_eq!(rejected(Code::FORBIDDEN), Some("forbidden"));
    assert_eq!(rejected(Code::RATE_LIMITED), Some("rate_limited"));
    assert_eq!(rejected(Code::TOO_LARGE), Some("too_large"));
    assert_eq!(rejected(Code::BAD_REQUEST), Some("rejected"));
    assert_eq!(rejected(Code(999)), Some("rejected"));
    let unavailable = PublishOutcome::Unavailable(Refusal {
        code: Code::FORBIDDEN,
        retry_after_ms: 100,
        text: "",
    });
    assert_eq!(unavailable.client_error(), Some("unavailable"));
    let id = MessageId::from_u128(1);
    assert_eq!(
        PublishOutcome::Accepted { message_id: id }.client_error(),
        None
    );
    assert_eq!(
        PublishOutcome::Duplicate { message_id: id }.client_error(),
        None
    );
}

#[test]
fn direction_table() {
    use FrameType as T;
    use Role::{Backend as B, Gateway as G, Router as R};
    let allowed = |frame_type: T, from, to| frame_type.may_send(from, to);
    assert!(allowed(T::Hello, G, R) && allowed(T::Hello, B, R) && allowed(T::Hello, R, R));
    assert!(!allowed(T::Hello, R, G) && !allowed(T::HelloAck, G, R));
    assert!(allowed(T::Publish, G, R) && allowed(T::Publish, R, B));
    assert!(!allowed(T::Publish, B, R) && !allowed(T::Publish, R, G));
    assert!(allowed(T::PublishAck, B, R) && allowed(T::PublishAck, R, G));
    assert!(allowed(T::Deliver, B, R) && allowed(T::Deliver, R, G) && allowed(T::Deliver, R, R));
    assert!(!allowed(T::Deliver, G, R) && !allowed(T::Deliver, R, B));
    assert!(allowed(T::Subscribe, G, R) && !allowed(T::Subscribe, B, R));
    assert!(allowed(T::Claim, B, R) && !allowed(T::Claim, G, R));
    assert!(allowed(T::Reply, R, G) && allowed(T::Reply, R, B) && !allowed(T::Reply, B, R));
    assert!(allowed(T::Presence, G, R) && allowed(T::Presence, R, B));
    assert!(allowed(T::Kick, B, R) && allowed(T::Kick, R, G) && !allowed(T::Kick, G, R));
    for frame_type in FrameType::ALL {
        assert!(!allowed(frame_type, G, B) && !allowed(frame_type, B, G));
        assert_eq!(
            frame_type.is_flow_controlled(),
            matches!(frame_type, T::Publish | T::Deliver)
        );
    }
    assert!(allowed(T::Ping, G, R) && allowed(T::Credit, R, B) && allowed(T::GoAway, R, G));
}

// The annotated bytes, as in docs/PROTOCOL.md.

const HELLO: &str = r#"
00 00 00 33              | body length = 51
01                       | type = HELLO (0x01)
00                       | flags = 0
00 00                    | reserved = 0
52 47 52 50              | magic = "RGRP"
00 01                    | min_version = 1
00 01                    | max_version = 1
02                       | role = backend (2)
00 00 00 07              | node_id = 7
00 00 00 03              | capabilities = PRESENCE | TOPIC_EVENTS
01 00 00 00              | max_body_bytes = 16777216
00 00 13 88              | ping_interval_ms = 5000
00 00 01 00              | credit_messages = 256
00 10 00 00              | credit_bytes = 1048576
00 08                    | agent length = 8
63 68 61 74 2f 31 2e 30  | agent = "chat/1.0"
00 06                    | token length = 6
73 33 63 72 65 74        | token = "s3cret"
"#;

const HELLO_ACK: &str = r#"
00 00 00 36                                      | body length = 54
02                                               | type = HELLO_ACK (0x02)
00                                               | flags = 0
00 00                                            | reserved = 0
52 47 52 50                                      | magic = "RGRP"
00 01                                            | version = 1
03                                               | role = router (3)
00 00 00 02                                      | node_id = 2
00 00 00 03                                      | capabilities = PRESENCE | TOPIC_EVENTS
01 00 00 00                                      | max_body_bytes = 16777216
00 00 13 88                                      | ping_interval_ms = 5000
00 00 04 00                                      | credit_messages = 1024
00 40 00 00                                      | credit_bytes = 4194304
00 15                                            | agent length = 21
72 69 6e 67 67 61 74 65 2d 72 6f 75 74 65 72 2f  | agent = "ringgate-router/0.1.0"
30 2e 31 2e 30                                   | ...
"#;

const GOAWAY: &str = r#"
00 00 00 10                          | body length = 16
03                                   | type = GOAWAY (0x03)
00                                   | flags = 0
00 00                                | reserved = 0
00 02                                | code = unsupported_version (2)
00 0c                                | text length = 12
73 70 65 61 6b 73 20 31 2e 2e 3d 31  | text = "speaks 1..=1"
"#;

const PING: &str = r#"
00 00 00 10              | body length = 16
04                       | type = PING (0x04)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 01  | nonce = 1
00 06 2a 99 ba 0c 60 00  | sent_us = 1735689600000000
"#;

const PONG: &str = r#"
00 00 00 18              | body length = 24
05                       | type = PONG (0x05)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 01  | nonce = 1
00 06 2a 99 ba 0c 60 00  | ping_sent_us = 1735689600000000
00 06 2a 99 ba 0c 60 fa  | sent_us = 1735689600000250
"#;

const CREDIT: &str = r#"
00 00 00 08  | body length = 8
06           | type = CREDIT (0x06)
00           | flags = 0
00 00        | reserved = 0
00 00 00 40  | messages = 64
00 01 00 00  | bytes = 65536
"#;

const PUBLISH: &str = r#"
00 00 00 57                                      | body length = 87
10                                               | type = PUBLISH (0x10)
01                                               | flags = HOPS (0x01)
00 00                                            | reserved = 0
00 00 00 00 00 00 00 01                          | publish_id = 1
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  | message_id = unassigned (all zero)
00 00 01 01                                      | sender.gateway = 257
00 00 00 00 00 00 00 2a                          | sender.connection = 42
00 08                                            | topic length = 8
63 6f 6e 76 5f 34 35 36                          | topic = "conv_456"
00 05                                            | user length = 5
61 6c 69 63 65                                   | user = "alice"
00 02                                            | client_msg_id length = 2
6d 31                                            | client_msg_id = "m1"
03                                               | trace_id length = 3
74 2d 39                                         | trace_id = "t-9"
01                                               | hop count = 1
00 06 2a 99 ba 0c 60 0a                          | hop 0 = 1735689600000010
00 00 00 0d                                      | payload length = 13
7b 22 74 65 78 74 22 3a 22 68 69 22 7d           | payload = {"text":"hi"}
"#;

const PUBLISH_ACK_ACCEPTED: &str = r#"
00 00 00 19              | body length = 25
11                       | type = PUBLISH_ACK (0x11)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 01  | publish_id = 1
01                       | outcome = accepted (1)
01 94 1f 29 7c 00 00 00  | message_id: wall_ms = 1735689600000, logical = 0
00 00 00 02 00 00 00 2a  | message_id: router = 2, seq = 42
"#;

const PUBLISH_ACK_REJECTED: &str = r#"
00 00 00 1d                          | body length = 29
11                                   | type = PUBLISH_ACK (0x11)
00                                   | flags = 0
00 00                                | reserved = 0
00 00 00 00 00 00 00 09              | publish_id = 9
03                                   | outcome = rejected (3)
00 10                                | code = forbidden (16)
00 00 00 00                          | retry_after_ms = 0
00 0c                                | text length = 12
6e 6f 74 20 61 20 6d 65 6d 62 65 72  | text = "not a member"
"#;

const DELIVER_TOPIC: &str = r#"
00 00 00 54                             | body length = 84
12                                      | type = DELIVER (0x12)
01                                      | flags = HOPS (0x01)
00 00                                   | reserved = 0
01 94 1f 29 7c 00 00 00                 | message_id: wall_ms = 1735689600000, logical = 0
00 00 00 02 00 00 00 2a                 | message_id: router = 2, seq = 42
01                                      | target_kind = topic (1)
00 08                                   | topic length = 8
63 6f 6e 76 5f 34 35 36                 | topic = "conv_456"
00 05                                   | from length = 5
61 6c 69 63 65                          | from = "alice"
00 02                                   | client_msg_id length = 2
6d 31                                   | client_msg_id = "m1"
03                                      | trace_id length = 3
74 2d 39                                | trace_id = "t-9"
03                                      | hop count = 3
00 06 2a 99 ba 0c 60 0a                 | hop 0 = 1735689600000010
00 06 2a 99 ba 0c 60 b4                 | hop 1 = 1735689600000180
00 06 2a 99 ba 0c 61 a4                 | hop 2 = 1735689600000420
00 00 00 0d                             | payload length = 13
7b 22 74 65 78 74 22 3a 22 68 69 22 7d  | payload = {"text":"hi"}
"#;

const DELIVER_USER: &str = r#"
00 00 00 2d                                      | body length = 45
12                                               | type = DELIVER (0x12)
00                                               | flags = 0
00 00                                            | reserved = 0
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  | message_id = unassigned (all zero)
02                                               | target_kind = user (2)
00 03                                            | target user length = 3
62 6f 62                                         | target user = "bob"
00 05                                            | topic length = 5
69 6e 62 6f 78                                   | topic = "inbox"
00 00                                            | from length = 0
00 00                                            | client_msg_id length = 0
00                                               | trace_id length = 0
00 00 00 07                                      | payload length = 7
7b 22 6e 22 3a 31 7d                             | payload = {"n":1}
"#;

const DELIVER_CONNECTION: &str = r#"
00 00 00 3e                 | body length = 62
12                          | type = DELIVER (0x12)
00                          | flags = 0
00 00                       | reserved = 0
01 94 1f 28 91 a0 00 03     | message_id: wall_ms = 1735689540000, logical = 3
00 00 00 02 00 00 00 07     | message_id: router = 2, seq = 7
03                          | target_kind = connection (3)
00 00 01 01                 | target.gateway = 257
00 00 00 00 00 00 00 2a     | target.connection = 42
00 08                       | topic length = 8
63 6f 6e 76 5f 34 35 36     | topic = "conv_456"
00 03                       | from length = 3
62 6f 62                    | from = "bob"
00 02                       | client_msg_id length = 2
62 37                       | client_msg_id = "b7"
00                          | trace_id length = 0
00 00 00 09                 | payload length = 9
22 65 61 72 6c 69 65 72 22  | payload = "earlier"
"#;

const SUBSCRIBE: &str = r#"
00 00 00 12              | body length = 18
20                       | type = SUBSCRIBE (0x20)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 05  | request_id = 5
00 08                    | topic length = 8
63 6f 6e 76 5f 34 35 36  | topic = "conv_456"
"#;

const UNSUBSCRIBE: &str = r#"
00 00 00 12              | body length = 18
21                       | type = UNSUBSCRIBE (0x21)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 06  | request_id = 6
00 08                    | topic length = 8
63 6f 6e 76 5f 34 35 36  | topic = "conv_456"
"#;

const CLAIM: &str = r#"
00 00 00 0f              | body length = 15
22                       | type = CLAIM (0x22)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 01  | request_id = 1
00 05                    | prefix length = 5
63 6f 6e 76 5f           | prefix = "conv_"
"#;

const RELEASE: &str = r#"
00 00 00 0f              | body length = 15
23                       | type = RELEASE (0x23)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 02  | request_id = 2
00 05                    | prefix length = 5
63 6f 6e 76 5f           | prefix = "conv_"
"#;

const REPLY: &str = r#"
00 00 00 0c              | body length = 12
24                       | type = REPLY (0x24)
00                       | flags = 0
00 00                    | reserved = 0
00 00 00 00 00 00 00 01  | request_id = 1
00 00                    | code = ok (0)
00 00                    | text length = 0
"#;

const PRESENCE_CONNECTED: &str = r#"
00 00 00 14              | body length = 20
30                       | type = PRESENCE (0x30)
00                       | flags = 0
00 00                    | reserved = 0
01                       | event = connected (1)
00 00 01 01              | connection.gateway = 257
00 00 00 00 00 00 00 2a  | connection.connection = 42
00 05                    | user length = 5
61 6c 69 63 65           | user = "alice"
"#;

const PRESENCE_JOINED: &str = r#"
00 00 00 1e              | body length = 30
30                       | type = PRESENCE (0x30)
00                       | flags = 0
00 00                    | reserved = 0
03                       | event = joined (3)
00 00 01 01              | connection.gateway = 257
00 00 00 00 00 00 00 2a  | connection.connection = 42
00 05                    | user length = 5
61 6c 69 63 65           | user = "alice"
00 08                    | topic length = 8
63 6f 6e 76 5f 34 35 36  | topic = "conv_456"
"#;

const KICK: &str = r#"
00 00 00 14           | body length = 20
31                    | type = KICK (0x31)
00                    | flags = 0
00 00                 | reserved = 0
02                    | target_kind = user (2)
00 07                 | target user length = 7
6d 61 6c 6c 6f 72 79  | target user = "mallory"
03 f0                 | close_code = 1008
00 06                 | reason length = 6
62 61 6e 6e 65 64     | reason = "banned"
"#;
