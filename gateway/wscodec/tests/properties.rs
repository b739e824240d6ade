//! Property tests of the codec: chunking never changes what the decoder
//! sees, encode and decode round-trip, masking matches its definition, and
//! UTF-8 checking fails exactly as early as the bytes allow.

mod common;

use common::{Event, Outcome, feed_chunk, feed_cut};
use proptest::prelude::*;
use proptest::sample::Index;
use ringgate_wscodec::{
    Decoder, Limits, OpCode, ProtocolError, Role, apply_mask, write_close, write_fragment,
    write_frame,
};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1024,
        ..ProptestConfig::default()
    }
}

/// A data message as a client sends it: payload, fragment boundaries, and
/// control frames slipped in between fragments.
#[derive(Clone, Debug)]
struct TestMessage {
    text: bool,
    payload: Vec<u8>,
    cuts: Vec<Index>,
    interleaved: Vec<Option<(bool, Vec<u8>)>>,
}

fn message() -> impl Strategy<Value = TestMessage> {
    let payload = prop_oneof![
        any::<String>().prop_map(|text| (true, text.into_bytes())),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|bytes| (false, bytes)),
    ];
    let control = (any::<bool>(), prop::collection::vec(any::<u8>(), 0..=125));
    (
        payload,
        prop::collection::vec(any::<Index>(), 0..4),
        prop::collection::vec(prop::option::of(control), 0..4),
    )
        .prop_map(|((text, payload), cuts, interleaved)| TestMessage {
            text,
            payload,
            cuts,
            interleaved,
        })
}

/// Mask number `frame` of a stream, varied by `seed`.
fn mask_for(seed: u32, frame: u32) -> [u8; 4] {
    seed.wrapping_add(frame.wrapping_mul(0x9E37_79B9))
        .to_le_bytes()
}

/// Encodes `messages` client side (masked); returns the stream and the
/// events a server must see.
fn encode_messages(
    messages: &[TestMessage],
    close: Option<(u16, String)>,
    seed: u32,
) -> (Vec<u8>, Vec<Event>) {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    let mut frame = 0;
    let mut next_mask = || {
        frame += 1;
        Some(mask_for(seed, frame))
    };
    for message in messages {
        let mut cuts: Vec<usize> = message
            .cuts
            .iter()
            .map(|cut| cut.index(message.payload.len() + 1))
            .collect();
        cuts.push(0);
        cuts.push(message.payload.len());
        cuts.sort_unstable();
        cuts.dedup();
        if cuts.len() == 1 {
            cuts.push(0); // an empty message is one empty frame
        }
        let fragments = cuts.len() - 1;
        for (index, window) in cuts.windows(2).enumerate() {
            let opcode = match (index, message.text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let fin = index + 1 == fragments;
            write_fragment(
                &mut stream,
                fin,
                opcode,
                &message.payload[window[0]..window[1]],
                next_mask(),
            );
            if let Some(Some((ping, payload))) = message.interleaved.get(index).filter(|_| !fin) {
                let opcode = if *ping { OpCode::Ping } else { OpCode::Pong };
                write_frame(&mut stream, opcode, payload, next_mask());
                expected.push(if *ping {
                    Event::Ping(payload.clone())
                } else {
                    Event::Pong(payload.clone())
                });
            }
        }
        expected.push(if message.text {
            Event::Text(String::from_utf8(message.payload.clone()).unwrap())
        } else {
            Event::Binary(message.payload.clone())
        });
    }
    if let Some((code, reason)) = close {
        write_close(&mut stream, code, &reason, next_mask());
        expected.push(Event::Close(Some(code), reason));
        // Anything after the Close is ignored.
        stream.extend_from_slice(b"\x81\x05trailing junk");
    }
    (stream, expected)
}

fn valid_close_code() -> impl Strategy<Value = u16> {
    prop_oneof![1000..=1003u16, 1007..=1011u16, 3000..=4999u16]
}

fn close_reason() -> impl Strategy<Value = String> {
    // At most 123 bytes: 30 characters of at most 4 bytes.
    "\\PC{0,30}"
}

fn server(stream: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
    feed_cut(&mut Decoder::new(Role::Server), stream, cuts, limits)
}

proptest! {
    #![proptest_config(config())]

    /// Property 1: valid message sequences decode to exactly the messages
    /// sent, however the stream is cut.
    #[test]
    fn valid_sequences_survive_any_chunking(
        messages in prop::collection::vec(message(), 0..6),
        close in prop::option::of((valid_close_code(), close_reason())),
        seed in any::<u32>(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let (stream, expected) = encode_messages(&messages, close, seed);
        let cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        let limits = Limits::default();
        prop_assert_eq!(server(&stream, &[], &limits), (expected.clone(), None));
        prop_assert_eq!(server(&stream, &cuts, &limits), (expected, None));
    }
}

/// A frame with any header, mostly plausible for `role` so decoding gets
/// past the first frame.
fn raw_frame(role: Role) -> impl Strategy<Value = Vec<u8>> {
    let opcodes = vec![0u8, 0, 1, 1, 2, 2, 8, 9, 9, 10];
    // Mostly by the rules (control frames final), sometimes any byte.
    let first = prop_oneof![
        30 => (prop::bool::weighted(0.7), prop::bool::weighted(0.97), prop::sample::select(opcodes))
            .prop_map(|(fin, control_fin, opcode)| {
                let fin = if opcode >= 8 { control_fin } else { fin };
                (u8::from(fin) << 7) | opcode
            }),
        1 => any::<u8>(),
    ];
    let payload = prop_oneof![
        any::<String>().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..300),
    ];
    // 0: minimal length; 1: 16-bit; 2: 64-bit; 3: announce more than sent.
    let length_form = prop_oneof![12 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)];
    let mask_rule_kept = prop::bool::weighted(0.95);
    (
        first,
        mask_rule_kept,
        any::<[u8; 4]>(),
        length_form,
        payload,
    )
        .prop_map(
            move |(first, mask_rule_kept, mask, length_form, mut payload)| {
                let masked = (role == Role::Server) == mask_rule_kept;
                if first & 0x08 != 0 && mask_rule_kept {
                    payload.truncate(125); // mostly legal control frames
                }
                let len = payload.len() as u64;
                let mut frame = vec![first];
                let mask_bit = if masked { 0x80 } else { 0 };
                match length_form {
                    0 if len <= 125 => frame.push(mask_bit | len as u8),
                    0 | 1 => {
                        frame.push(mask_bit | 126);
                        frame.extend_from_slice(&(len as u16).to_be_bytes());
                    }
                    2 => {
                        frame.push(mask_bit | 127);
                        frame.extend_from_slice(&len.to_be_bytes());
                    }
                    _ => {
                        frame.push(mask_bit | 127);
                        frame.extend_from_slice(&(len + 1000).to_be_bytes());
                    }
                }
                if masked {
                    frame.extend_from_slice(&mask);
                }
                frame.extend_from_slice(&payload);
                frame
            },
        )
}

fn role_and_stream() -> impl Strategy<Value = (Role, Vec<u8>)> {
    prop_oneof![Just(Role::Server), Just(Role::Client)].prop_flat_map(|role| {
        let stream = prop_oneof![
            6 => prop::collection::vec(raw_frame(role), 0..10).prop_map(|frames| frames.concat()),
            1 => prop::collection::vec(any::<u8>(), 0..400),
        ];
        (Just(role), stream)
    })
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        Just(Limits {
            max_frame_bytes: 150,
            max_text_message_bytes: 200,
            max_binary_message_bytes: 250
        }),
        Just(Limits {
            max_frame_bytes: 0,
            max_text_message_bytes: 0,
            max_binary_message_bytes: 0
        }),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Server), Just(Role::Client)]
}

proptest! {
    #![proptest_config(config())]

    /// Property 2: for any bytes, chunking changes nothing: the same events
    /// up to the same error.
    #[test]
    fn any_stream_decodes_the_same_however_chunked(
        (role, stream) in role_and_stream(),
        cuts in prop::collection::vec(any::<Index>(), 0..16),
        limits in limits(),
    ) {
        let cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(stream.len() + 1)).collect();
        let whole = feed_cut(&mut Decoder::new(role), &stream, &[], &limits);
        let chunked = feed_cut(&mut Decoder::new(role), &stream, &cuts, &limits);
        prop_assert_eq!(&whole, &chunked);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(whole, feed_cut(&mut Decoder::new(role), &stream, &bytewise, &limits));
    }

    /// Property 3: every frame the encoder writes decodes to itself, from
    /// client to server (masked) and server to client (unmasked).
    #[test]
    fn encode_decode_round_trip(
        event in single_event(),
        role in role(),
        mask in any::<[u8; 4]>(),
    ) {
        let mask = (role == Role::Server).then_some(mask);
        let mut stream = Vec::new();
        match &event {
            Event::Text(text) => write_frame(&mut stream, OpCode::Text, text.as_bytes(), mask),
            Event::Binary(bytes) => write_frame(&mut stream, OpCode::Binary, bytes, mask),
            Event::Ping(bytes) => write_frame(&mut stream, OpCode::Ping, bytes, mask),
            Event::Pong(bytes) => write_frame(&mut stream, OpCode::Pong, bytes, mask),
            Event::Close(code, reason) => write_close(&mut stream, code.unwrap(), reason, mask),
        }
        let limits = Limits { max_binary_message_bytes: 1 << 20, ..Limits::default() };
        let decoded = feed_cut(&mut Decoder::new(role), &stream, &[], &limits);
        prop_assert_eq!(decoded, (vec![event], None));
    }

    /// Property 4: word-at-a-time masking equals the bytewise definition
    /// at any offset.
    #[test]
    fn mask_equals_bytewise_definition(
        data in prop::collection::vec(any::<u8>(), 0..100),
        mask in any::<[u8; 4]>(),
        offset in any::<usize>(),
    ) {
        let mut masked = data.clone();
        apply_mask(&mut masked, mask, offset);
        for (index, byte) in masked.iter().enumerate() {
            let phase = (offset % 4 + index) % 4;
            prop_assert_eq!(*byte, data[index] ^ mask[phase]);
        }
    }

    /// UTF-8 of a fragmented text message fails on the first fragment
    /// after which the bytes can no longer begin valid text (by std's
    /// definition), or at the final fragment if it ends mid-character.
    #[test]
    fn utf8_fails_exactly_as_early_as_possible(
        bytes in prop_oneof![
            any::<String>().prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..40),
            (any::<String>(), any::<u8>(), any::<Index>()).prop_map(|(text, byte, at)| {
                let mut bytes = text.into_bytes();
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, byte);
                bytes
            }),
        ],
        cuts in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let mut ends: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        ends.push(bytes.len());
        ends.sort_unstable();
        ends.dedup();
        let expected_failure = ends.iter().position(|&end| {
            std::str::from_utf8(&bytes[..end]).is_err_and(|error| error.error_len().is_some())
        }).or_else(|| std::str::from_utf8(&bytes).is_err().then_some(ends.len() - 1));

        let mut decoder = Decoder::new(Role::Server);
        let limits = Limits::default();
        let mut events = Vec::new();
        let mut start = 0;
        let mut failure = None;
        for (index, &end) in ends.iter().enumerate() {
            let opcode = if index == 0 { OpCode::Text } else { OpCode::Continuation };
            let mut frame = Vec::new();
            write_fragment(&mut frame, index + 1 == ends.len(), opcode, &bytes[start..end], Some([5, 6, 7, 8]));
            start = end;
            if let Some(error) = feed_chunk(&mut decoder, &mut frame, &limits, &mut events) {
                prop_assert_eq!(error, ProtocolError::InvalidUtf8);
                failure = Some(index);
                break;
            }
        }
        prop_assert_eq!(failure, expected_failure);
        prop_assert_eq!(events.len(), usize::from(failure.is_none()));
    }
}

fn single_event() -> impl Strategy<Value = Event> {
    let control = prop::collection::vec(any::<u8>(), 0..=125);
    prop_oneof![
        any::<String>().prop_map(Event::Text),
        prop::collection::vec(any::<u8>(), 0..300).prop_map(Event::Binary),
        // Long enough for both extended length forms, cheap to generate.
        (0usize..70_000, any::<u8>()).prop_map(|(len, seed)| {
            Event::Binary(
                (0..len)
                    .map(|index| (index as u8).wrapping_mul(31) ^ seed)
                    .collect(),
            )
        }),
        control.clone().prop_map(Event::Ping),
        control.prop_map(Event::Pong),
        (valid_close_code(), close_reason())
            .prop_map(|(code, reason)| Event::Close(Some(code), reason)),
    ]
}
