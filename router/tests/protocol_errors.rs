//! Every way a peer can break the format gets its own error, found from the
//! header alone when the header is at fault; and the encoder refuses what
//! the decoder would refuse, leaving its output untouched.

use ringgate_router::protocol::{
    self, Code, ConnectionRef, Credit, DecodeError, Decoder, Deliver, EncodeError, Encoder, Field,
    Frame, FrameType, Hello, HelloAck, Hops, Kick, Ping, Presence, PresenceEvent, Publish,
    PublishAck, PublishOutcome, Recipient, Refusal, Role, Target, TopicRequest, UNASSIGNED_ID,
};

/// A frame with a hand-made header.
fn raw(frame_type: u8, flags: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&[frame_type, flags, 0, 0]);
    bytes.extend_from_slice(body);
    bytes
}

fn encoded(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::encode(frame, &mut out).unwrap();
    out
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    protocol::decode(bytes).expect_err("must be refused")
}

fn hello(min_version: u16, max_version: u16) -> Hello<'static> {
    Hello {
        min_version,
        max_version,
        role: Role::Gateway,
        node_id: 1,
        capabilities: protocol::Capabilities::NONE,
        max_body_bytes: protocol::DEFAULT_MAX_BODY_BYTES,
        ping_interval_ms: 5000,
        credit: Credit {
            messages: 8,
            bytes: 8192,
        },
        agent: "test",
        token: b"",
        extensions: b"",
    }
}

fn publish(topic: &str) -> Publish<'_> {
    Publish {
        publish_id: 1,
        message_id: UNASSIGNED_ID,
        sender: ConnectionRef {
            gateway: 1,
            connection: 2,
        },
        topic,
        user: "u",
        anonymous: false,
        client_msg_id: "c",
        trace_id: "",
        hops: None,
        payload: b"{}",
    }
}

/// A HELLO body up to and including max_version, for hand-made variants.
fn hello_prefix(magic: &[u8; 4], min: u16, max: u16) -> Vec<u8> {
    let mut body = magic.to_vec();
    body.extend_from_slice(&min.to_be_bytes());
    body.extend_from_slice(&max.to_be_bytes());
    body
}

#[test]
fn bad_magic() {
    let mut bytes = encoded(&Frame::Hello(hello(1, 1)));
    bytes[8..12].copy_from_slice(b"HTTP");
    assert_eq!(decode_err(&bytes), DecodeError::BadMagic(*b"HTTP"));
    // Found before the rest of the body is read.
    let short = raw(0x01, 0, &hello_prefix(b"GET ", 1, 1));
    assert_eq!(decode_err(&short), DecodeError::BadMagic(*b"GET "));
}

#[test]
fn bad_versions() {
    let newer = encoded_unchecked_hello(2, 3);
    assert_eq!(
        decode_err(&newer),
        DecodeError::UnsupportedVersion { min: 2, max: 3 }
    );
    assert_eq!(
        decode_err(&newer).code(),
        Code::UNSUPPORTED_VERSION,
        "answered with GOAWAY unsupported_version"
    );
    assert_eq!(
        decode_err(&encoded_unchecked_hello(0, 1)),
        DecodeError::InvalidVersionRange { min: 0, max: 1 }
    );
    assert_eq!(
        decode_err(&encoded_unchecked_hello(3, 2)),
        DecodeError::InvalidVersionRange { min: 3, max: 2 }
    );
    let ack = HelloAck {
        version: 1,
        role: Role::Router,
        node_id: 1,
        capabilities: protocol::Capabilities::NONE,
        max_body_bytes: protocol::MIN_MAX_BODY_BYTES,
        ping_interval_ms: 0,
        credit: Credit::default(),
        agent: "",
    };
    let mut bytes = encoded(&Frame::HelloAck(ack));
    bytes[13] = 2; // version low byte
    assert_eq!(
        decode_err(&bytes),
        DecodeError::UnsupportedVersion { min: 2, max: 2 }
    );
}

/// A HELLO with any version range (the encoder refuses bad ones).
fn encoded_unchecked_hello(min: u16, max: u16) -> Vec<u8> {
    let mut bytes = encoded(&Frame::Hello(hello(1, 1)));
    bytes[12..14].copy_from_slice(&min.to_be_bytes());
    bytes[14..16].copy_from_slice(&max.to_be_bytes());
    bytes
}

#[test]
fn a_newer_peer_that_also_speaks_version_1_is_accepted_with_its_extensions() {
    let mut bytes = encoded_unchecked_hello(1, 2);
    bytes.extend_from_slice(b"v2 fields");
    let body_len = (bytes.len() - 8) as u32;
    bytes[..4].copy_from_slice(&body_len.to_be_bytes());
    let (frame, used) = protocol::decode(&bytes).unwrap().unwrap();
    let Frame::Hello(hello) = frame else {
        panic!("not a HELLO")
    };
    assert_eq!(
        (hello.max_version, hello.extensions),
        (2, &b"v2 fields"[..])
    );
    assert_eq!(used, bytes.len());
    assert_eq!(encoded(&frame), bytes, "extensions re-encode verbatim");
}

#[test]
fn small_max_body_announcement() {
    let mut small = hello(1, 1);
    small.max_body_bytes = 65_535;
    let mut out = Vec::new();
    assert_eq!(
        protocol::encode(&Frame::Hello(small), &mut out),
        Err(EncodeError::Invalid(DecodeError::MaxBodyTooSmall(65_535)))
    );
    let mut bytes = encoded(&Frame::Hello(hello(1, 1)));
    bytes[25..29].copy_from_slice(&1024u32.to_be_bytes());
    assert_eq!(decode_err(&bytes), DecodeError::MaxBodyTooSmall(1024));
}

#[test]
fn unknown_types() {
    for frame_type in [0x00, 0x07, 0x0f, 0x13, 0x25, 0x32, 0x80, 0xff] {
        assert_eq!(
            decode_err(&raw(frame_type, 0, &[])),
            DecodeError::UnknownType(frame_type)
        );
    }
}

#[test]
fn length_over_the_limit_is_refused_from_the_header_alone() {
    let decoder = Decoder::default();
    let header = raw_header(protocol::DEFAULT_MAX_BODY_BYTES + 1, 0x10, 0);
    assert_eq!(
        decoder.decode(&header),
        Err(DecodeError::FrameTooLarge {
            len: protocol::DEFAULT_MAX_BODY_BYTES + 1,
            max: protocol::DEFAULT_MAX_BODY_BYTES
        })
    );
    assert_eq!(decoder.decode(&header[..7]), Ok(None), "not before 8 bytes");
    let at_limit = raw_header(protocol::DEFAULT_MAX_BODY_BYTES, 0x10, 0);
    assert_eq!(decoder.decode(&at_limit), Ok(None), "waits for the body");
    let small = Decoder::new(100);
    let err = small.decode(&raw_header(101, 0x04, 0)).unwrap_err();
    assert_eq!(err, DecodeError::FrameTooLarge { len: 101, max: 100 });
    assert_eq!(err.code(), Code::FRAME_TOO_LARGE);
    assert_eq!(
        small.decode(&raw_header(u32::MAX, 0xff, 0xff)),
        Err(DecodeError::FrameTooLarge {
            len: u32::MAX,
            max: 100
        }),
        "the length is checked first"
    );
}

fn raw_header(body_len: u32, frame_type: u8, flags: u8) -> Vec<u8> {
    let mut bytes = body_len.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[frame_type, flags, 0, 0]);
    bytes
}

#[test]
fn header_exposes_the_frame_length_before_the_body() {
    let bytes = encoded(&Frame::Ping(Ping {
        nonce: 1,
        sent_us: 2,
    }));
    let header = Decoder::default().header(&bytes[..8]).unwrap().unwrap();
    assert_eq!(header.frame_type, FrameType::Ping);
    assert_eq!((header.body_len, header.frame_len()), (16, 24));
}

#[test]
fn non_zero_reserved_bytes_and_undefined_flags() {
    let mut bytes = encoded(&Frame::Ping(Ping::default()));
    bytes[7] = 1;
    assert_eq!(decode_err(&bytes), DecodeError::ReservedNonZero(1));
    bytes[6] = 0x80;
    assert_eq!(decode_err(&bytes), DecodeError::ReservedNonZero(0x8001));
    let mut flagged = encoded(&Frame::Ping(Ping::default()));
    flagged[5] = 0x01;
    assert_eq!(
        decode_err(&flagged),
        DecodeError::InvalidFlags {
            frame_type: FrameType::Ping,
            flags: 1
        }
    );
    let mut publish_bytes = encoded(&Frame::Publish(publish("t")));
    publish_bytes[5] = 0x04;
    assert_eq!(
        decode_err(&publish_bytes),
        DecodeError::InvalidFlags {
            frame_type: FrameType::Publish,
            flags: 4
        }
    );
    publish_bytes[5] = protocol::flags::ANONYMOUS;
    let (frame, _) = protocol::decode(&publish_bytes).unwrap().unwrap();
    assert!(matches!(
        frame,
        Frame::Publish(Publish {
            anonymous: true,
            ..
        })
    ));
    // ANONYMOUS is a PUBLISH flag only.
    let deliver = Deliver {
        message_id: UNASSIGNED_ID,
        target: Target::Topic,
        topic: "t",
        from: "",
        client_msg_id: "",
        trace_id: "",
        hops: None,
        payload: b"1",
    };
    let mut deliver_bytes = encoded(&Frame::Deliver(deliver));
    deliver_bytes[5] = protocol::flags::ANONYMOUS;
    assert_eq!(
        decode_err(&deliver_bytes),
        DecodeError::InvalidFlags {
            frame_type: FrameType::Deliver,
            flags: 2
        }
    );
}

#[test]
fn no_fanout_only_with_accepted() {
    let rejected = PublishAck {
        publish_id: 1,
        outcome: PublishOutcome::Rejected(Refusal {
            code: Code::FORBIDDEN,
            retry_after_ms: 0,
            text: "",
        }),
        no_fanout: false,
    };
    let mut bytes = encoded(&Frame::PublishAck(rejected));
    bytes[5] = protocol::flags::NO_FANOUT;
    let expected = DecodeError::InvalidFlags {
        frame_type: FrameType::PublishAck,
        flags: protocol::flags::NO_FANOUT,
    };
    assert_eq!(decode_err(&bytes), expected);
    let mut out = Vec::new();
    let refused = protocol::encode(
        &Frame::PublishAck(PublishAck {
            no_fanout: true,
            ..rejected
        }),
        &mut out,
    );
    assert_eq!(refused, Err(EncodeError::Invalid(expected)));
    assert!(out.is_empty());
}

#[test]
fn truncated_fixed_fields() {
    assert_eq!(
        decode_err(&raw(0x04, 0, &[0; 15])),
        DecodeError::Truncated {
            frame_type: FrameType::Ping,
            field: Field::SentTime
        }
    );
    assert_eq!(
        decode_err(&raw(0x10, 0, &[0; 20])),
        DecodeError::Truncated {
            frame_type: FrameType::Publish,
            field: Field::MessageId
        }
    );
    assert_eq!(
        decode_err(&raw(0x03, 0, &[0, 0, 0])),
        DecodeError::Truncated {
            frame_type: FrameType::GoAway,
            field: Field::Text
        },
        "a length prefix cut in half"
    );
    assert_eq!(
        decode_err(&raw(0x11, 0, &[])),
        DecodeError::Truncated {
            frame_type: FrameType::PublishAck,
            field: Field::PublishId
        }
    );
}

#[test]
fn lengths_pointing_past_the_frame_end() {
    // GOAWAY: code, then a text length of 5 with 2 bytes left.
    assert_eq!(
        decode_err(&raw(0x03, 0, &[0, 0, 0, 5, b'h', b'i'])),
        DecodeError::LengthPastEnd {
            frame_type: FrameType::GoAway,
            field: Field::Text,
            len: 5,
            remaining: 2
        }
    );
    // PUBLISH whose payload length claims one byte more than is there.
    let mut bytes = encoded(&Frame::Publish(publish("t")));
    let payload_len_at = bytes.len() - 2 - 4;
    bytes[payload_len_at..payload_len_at + 4].copy_from_slice(&3u32.to_be_bytes());
    assert_eq!(
        decode_err(&bytes),
        DecodeError::LengthPastEnd {
            frame_type: FrameType::Publish,
            field: Field::Payload,
            len: 3,
            remaining: 2
        }
    );
    // A huge u32 length does not overflow anything.
    bytes[payload_len_at..payload_len_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        decode_err(&bytes),
        DecodeError::LengthPastEnd {
            field: Field::Payload,
            ..
        }
    ));
    // A topic length running past the end of a SUBSCRIBE.
    let mut body = 7u64.to_be_bytes().to_vec();
    body.extend_from_slice(&[0xff, 0xff, b'a']);
    assert_eq!(
        decode_err(&raw(0x20, 0, &body)),
        DecodeError::LengthPastEnd {
            frame_type: FrameType::Subscribe,
            field: Field::Topic,
            len: 0xffff,
            remaining: 1
        }
    );
}

#[test]
fn hop_count_past_the_end() {
    let mut buffer = protocol::HopBuffer::new();
    let traced = Publish {
        hops: buffer.fill(&[1]),
        ..publish("t")
    };
    let mut bytes = encoded(&Frame::Publish(traced));
    let count_at = bytes.len() - 2 - 4 - 8 - 1;
    assert_eq!(bytes[count_at], 1);
    bytes[count_at] = 2;
    assert!(matches!(
        decode_err(&bytes),
        DecodeError::LengthPastEnd {
            field: Field::Hops,
            len: 16,
            ..
        }
    ));
}

#[test]
fn cutting_any_body_short_is_an_error_not_a_panic() {
    let frames = sample_frames();
    for frame in &frames {
        let bytes = encoded(frame);
        for cut in 1..=bytes.len() - 8 {
            let body = &bytes[8..bytes.len() - cut];
            let shortened = raw(bytes[4], bytes[5], body);
            let result = protocol::decode(&shortened);
            assert!(
                matches!(
                    result,
                    Err(DecodeError::Truncated { .. } | DecodeError::LengthPastEnd { .. })
                ),
                "{} cut by {cut}: {result:?}",
                frame.frame_type()
            );
        }
    }
}

fn sample_frames() -> Vec<Frame<'static>> {
    vec![
        Frame::Hello(hello(1, 1)),
        Frame::Ping(Ping {
            nonce: 3,
            sent_us: 4,
        }),
        Frame::Publish(publish("topic")),
        Frame::PublishAck(PublishAck {
            publish_id: 3,
            outcome: PublishOutcome::Unavailable(Refusal {
                code: Code::OVERLOADED,
                retry_after_ms: 250,
                text: "busy",
            }),
            no_fanout: false,
        }),
        Frame::Deliver(Deliver {
            message_id: UNASSIGNED_ID,
            target: Target::Connection(ConnectionRef {
                gateway: 9,
                connection: 10,
            }),
            topic: "",
            from: "x",
            client_msg_id: "",
            trace_id: "tr",
            hops: Hops::from_wire(&[0; 16]),
            payload: b"[1]",
        }),
        Frame::Presence(Presence {
            event: PresenceEvent::Left("room"),
            connection: ConnectionRef::default(),
            user: "",
        }),
        Frame::Kick(Kick {
            recipient: Recipient::Connection(ConnectionRef::default()),
            close_code: 4000,
            reason: "bye",
        }),
    ]
}

#[test]
fn trailing_bytes_after_the_last_field() {
    let mut body = [0u8; 17].to_vec();
    body[16] = 9;
    assert_eq!(
        decode_err(&raw(0x04, 0, &body)),
        DecodeError::TrailingBytes {
            frame_type: FrameType::Ping,
            count: 1
        }
    );
    let mut bytes = encoded(&Frame::Subscribe(TopicRequest {
        request_id: 1,
        topic: "t",
    }));
    bytes.extend_from_slice(&[0, 0]);
    bytes[3] += 2;
    assert_eq!(
        decode_err(&bytes),
        DecodeError::TrailingBytes {
            frame_type: FrameType::Subscribe,
            count: 2
        }
    );
}

#[test]
fn invalid_utf8_in_strings() {
    let mut body = 7u64.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 2, 0xc3, 0x28]);
    assert_eq!(
        decode_err(&raw(0x20, 0, &body)),
        DecodeError::InvalidUtf8 {
            frame_type: FrameType::Subscribe,
            field: Field::Topic
        }
    );
    let bytes = encoded(&Frame::Publish(publish("abc")));
    let topic_at = 8 + 8 + 16 + 12 + 2;
    assert_eq!(&bytes[topic_at..topic_at + 3], b"abc");
    let mut broken = bytes.clone();
    broken[topic_at + 1] = 0xff;
    assert_eq!(
        decode_err(&broken),
        DecodeError::InvalidUtf8 {
            frame_type: FrameType::Publish,
            field: Field::Topic
        }
    );
    // A surrogate half encoded as UTF-8 is not UTF-8 either.
    let mut goaway = 0u16.to_be_bytes().to_vec();
    goaway.extend_from_slice(&[0, 3, 0xed, 0xa0, 0x80]);
    assert_eq!(
        decode_err(&raw(0x03, 0, &goaway)),
        DecodeError::InvalidUtf8 {
            frame_type: FrameType::GoAway,
            field: Field::Text
        }
    );
}

#[test]
fn undefined_enum_values() {
    let unknown = |frame_type, field, value| DecodeError::UnknownValue {
        frame_type,
        field,
        value,
    };
    let mut bytes = encoded(&Frame::Hello(hello(1, 1)));
    for role in [0, 4, 0xff] {
        bytes[16] = role;
        assert_eq!(
            decode_err(&bytes),
            unknown(FrameType::Hello, Field::Role, role)
        );
    }
    for outcome in [0, 5] {
        let mut body = 1u64.to_be_bytes().to_vec();
        body.push(outcome);
        body.extend_from_slice(&[0; 16]);
        assert_eq!(
            decode_err(&raw(0x11, 0, &body)),
            unknown(FrameType::PublishAck, Field::Outcome, outcome)
        );
    }
    for kind in [0, 4] {
        let mut body = vec![0; 16];
        body.push(kind);
        assert_eq!(
            decode_err(&raw(0x12, 0, &body)),
            unknown(FrameType::Deliver, Field::TargetKind, kind)
        );
    }
    // KICK has no topic target: kind 1 is undefined there.
    assert_eq!(
        decode_err(&raw(0x31, 0, &[1, 0x03, 0xe8, 0, 0])),
        unknown(FrameType::Kick, Field::TargetKind, 1)
    );
    let mut presence = vec![5];
    presence.extend_from_slice(&[0; 12]);
    presence.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode_err(&raw(0x30, 0, &presence)),
        unknown(FrameType::Presence, Field::Event, 5)
    );
}

#[test]
fn empty_addresses() {
    let empty = |frame_type, field| DecodeError::EmptyField { frame_type, field };
    let cases: Vec<(Frame<'_>, DecodeError)> = vec![
        (
            Frame::Publish(publish("")),
            empty(FrameType::Publish, Field::Topic),
        ),
        (
            Frame::Subscribe(TopicRequest {
                request_id: 1,
                topic: "",
            }),
            empty(FrameType::Subscribe, Field::Topic),
        ),
        (
            Frame::Unsubscribe(TopicRequest {
                request_id: 1,
                topic: "",
            }),
            empty(FrameType::Unsubscribe, Field::Topic),
        ),
        (
            Frame::Deliver(Deliver {
                message_id: UNASSIGNED_ID,
                target: Target::Topic,
                topic: "",
                from: "",
                client_msg_id: "",
                trace_id: "",
                hops: None,
                payload: b"1",
            }),
            empty(FrameType::Deliver, Field::Topic),
        ),
        (
            Frame::Deliver(Deliver {
                message_id: UNASSIGNED_ID,
                target: Target::User(""),
                topic: "inbox",
                from: "",
                client_msg_id: "",
                trace_id: "",
                hops: None,
                payload: b"1",
            }),
            empty(FrameType::Deliver, Field::Target),
        ),
        (
            Frame::Presence(Presence {
                event: PresenceEvent::Joined(""),
                connection: ConnectionRef::default(),
                user: "u",
            }),
            empty(FrameType::Presence, Field::Topic),
        ),
        (
            Frame::Kick(Kick {
                recipient: Recipient::User(""),
                close_code: 1000,
                reason: "",
            }),
            empty(FrameType::Kick, Field::Target),
        ),
    ];
    for (frame, error) in cases {
        let mut out = vec![0xaa];
        assert_eq!(
            protocol::encode(&frame, &mut out),
            Err(EncodeError::Invalid(error))
        );
        assert_eq!(out, [0xaa], "output untouched");
        // Encoded by hand: the same frame with a one-byte address, then emptied.
        assert_eq!(decode_err(&emptied(&frame)), error);
    }
}

/// The wire bytes of `frame` with its (empty) address field written out by
/// hand: encode with a placeholder "x" then drop that byte and fix lengths.
fn emptied(frame: &Frame<'_>) -> Vec<u8> {
    let filled = match *frame {
        Frame::Publish(publish) => Frame::Publish(Publish {
            topic: "\u{1}",
            ..publish
        }),
        Frame::Subscribe(request) => Frame::Subscribe(TopicRequest {
            topic: "\u{1}",
            ..request
        }),
        Frame::Unsubscribe(request) => Frame::Unsubscribe(TopicRequest {
            topic: "\u{1}",
            ..request
        }),
        Frame::Deliver(deliver) => match deliver.target {
            Target::Topic => Frame::Deliver(Deliver {
                topic: "\u{1}",
                ..deliver
            }),
            _ => Frame::Deliver(Deliver {
                target: Target::User("\u{1}"),
                ..deliver
            }),
        },
        Frame::Presence(presence) => Frame::Presence(Presence {
            event: PresenceEvent::Joined("\u{1}"),
            ..presence
        }),
        Frame::Kick(kick) => Frame::Kick(Kick {
            recipient: Recipient::User("\u{1}"),
            ..kick
        }),
        _ => unreachable!("no address"),
    };
    let bytes = encoded(&filled);
    // The placeholder is the first u16 length 1 followed by byte 0x01.
    let at = bytes
        .windows(3)
        .position(|window| window == [0, 1, 1])
        .unwrap();
    let mut out = bytes[..at].to_vec();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&bytes[at + 3..]);
    let body_len = (out.len() - 8) as u32;
    out[..4].copy_from_slice(&body_len.to_be_bytes());
    out
}

#[test]
fn kick_close_codes_must_be_sendable() {
    for code in [0, 999, 1004, 1005, 1006, 1012, 1015, 2000, 5000] {
        let kick = Kick {
            recipient: Recipient::Connection(ConnectionRef::default()),
            close_code: code,
            reason: "",
        };
        let mut out = Vec::new();
        assert_eq!(
            protocol::encode(&Frame::Kick(kick), &mut out),
            Err(EncodeError::Invalid(DecodeError::InvalidCloseCode(code)))
        );
        let mut bytes = encoded(&Frame::Kick(Kick {
            close_code: 1000,
            ..kick
        }));
        let at = 8 + 1 + 12;
        bytes[at..at + 2].copy_from_slice(&code.to_be_bytes());
        assert_eq!(decode_err(&bytes), DecodeError::InvalidCloseCode(code));
    }
    for code in [1000, 1003, 1007, 1011, 3000, 4999] {
        assert!(protocol::is_valid_close_code(code));
    }
}

#[test]
fn encoder_refuses_fields_over_their_prefix_and_frames_over_the_limit() {
    let long_trace = "t".repeat(256);
    let traced = Publish {
        trace_id: &long_trace,
        ..publish("t")
    };
    let mut out = vec![1, 2, 3];
    assert_eq!(
        protocol::encode(&Frame::Publish(traced), &mut out),
        Err(EncodeError::FieldTooLong {
            frame_type: FrameType::Publish,
            field: Field::TraceId,
            len: 256,
            max: 255
        })
    );
    let long_topic = "t".repeat(65_536);
    assert_eq!(
        Frame::Publish(publish(&long_topic)).encoded_len(),
        Err(EncodeError::FieldTooLong {
            frame_type: FrameType::Publish,
            field: Field::Topic,
            len: 65_536,
            max: 65_535
        })
    );
    let ok_trace = "t".repeat(255);
    let max_trace = Publish {
        trace_id: &ok_trace,
        ..publish("t")
    };
    let len = Frame::Publish(max_trace).encoded_len().unwrap();
    let body_len = len - protocol::HEADER_LEN;
    let tight = Encoder::new(body_len as u32 - 1);
    assert_eq!(
        tight.encode(&Frame::Publish(max_trace), &mut out),
        Err(EncodeError::FrameTooLarge {
            len: body_len,
            max: body_len as u32 - 1
        })
    );
    assert_eq!(out, [1, 2, 3], "output untouched on every error");
    let exact = Encoder::new(body_len as u32);
    assert_eq!(exact.encode(&Frame::Publish(max_trace), &mut out), Ok(len));
    assert_eq!(out.len(), 3 + len, "appended after what was there");
    let decoded = Decoder::new(body_len as u32).decode(&out[3..]).unwrap();
    assert_eq!(decoded, Some((Frame::Publish(max_trace), len)));
}

#[test]
fn errors_name_their_goaway_code_and_metric_label() {
    let errors = [
        DecodeError::UnknownType(0),
        DecodeError::BadMagic(*b"abcd"),
        DecodeError::TrailingBytes {
            frame_type: FrameType::Ping,
            count: 1,
        },
    ];
    for error in errors {
        assert_eq!(error.code(), Code::PROTOCOL_ERROR);
        assert!(!error.reason().is_empty());
        assert!(!error.to_string().is_empty());
    }
    assert_eq!(
        DecodeError::LengthPastEnd {
            frame_type: FrameType::Publish,
            field: Field::Topic,
            len: 9,
            remaining: 1
        }
        .to_string(),
        "PUBLISH topic of 9 bytes runs past the body's end (1 left)"
    );
}
