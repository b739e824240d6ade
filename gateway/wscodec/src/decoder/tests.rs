use super::*;
use crate::frame::{write_close, write_fragment, write_frame};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

impl From<Message<'_>> for Event {
    fn from(message: Message<'_>) -> Self {
        match message {
            Message::Text(payload) => Self::Text(payload.to_vec()),
            Message::Binary(payload) => Self::Binary(payload.to_vec()),
            Message::Ping(payload) => Self::Ping(payload.to_vec()),
            Message::Pong(payload) => Self::Pong(payload.to_vec()),
            Message::Close(close) => Self::Close(close.code, close.reason.to_string()),
        }
    }
}

fn text(payload: &str) -> Event {
    Event::Text(payload.as_bytes().to_vec())
}

/// Feeds `chunks` in order, checking the `decode` contract on every call.
fn feed(
    decoder: &mut Decoder,
    chunks: &mut [&mut [u8]],
    limits: &Limits,
) -> (Vec<Event>, Option<ProtocolError>) {
    let mut events = Vec::new();
    for chunk in chunks.iter_mut() {
        let mut offset = 0;
        while offset < chunk.len() {
            let remaining = chunk.len() - offset;
            match decoder.decode(&mut chunk[offset..], limits) {
                Ok((used, event)) => {
                    assert!(used > 0, "no progress");
                    if event.is_none() {
                        assert_eq!(used, remaining, "None before the end");
                    }
                    events.extend(event.map(Event::from));
                    offset += used;
                }
                Err(error) => return (events, Some(error)),
            }
        }
    }
    (events, None)
}

fn decode_whole(role: Role, bytes: &[u8], limits: &Limits) -> (Vec<Event>, Option<ProtocolError>) {
    let mut input = bytes.to_vec();
    feed(&mut Decoder::new(role), &mut [&mut input], limits)
}

fn decode_bytewise(
    role: Role,
    bytes: &[u8],
    limits: &Limits,
) -> (Vec<Event>, Option<ProtocolError>) {
    let mut input = bytes.to_vec();
    let mut chunks: Vec<&mut [u8]> = input.chunks_mut(1).collect();
    feed(&mut Decoder::new(role), &mut chunks, limits)
}

/// The error a server decoder reports for `bytes`, fed whole and bytewise
/// (both must agree), with its close code.
fn server_error(bytes: &[u8], limits: &Limits) -> (ProtocolError, u16) {
    let (_, whole) = decode_whole(Role::Server, bytes, limits);
    let (_, bytewise) = decode_bytewise(Role::Server, bytes, limits);
    assert_eq!(whole, bytewise);
    let error = whole.expect("an error");
    (error, error.close_code())
}

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_frame(&mut out, opcode, payload, Some(MASK));
    out
}

fn fragment(out: &mut Vec<u8>, fin: bool, opcode: OpCode, payload: &[u8]) {
    write_fragment(out, fin, opcode, payload, Some(MASK));
}

/// A masked frame with a hand-built first byte and length field.
fn raw_frame(first: u8, length_field: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.push(length_field[0] | 0x80);
    out.extend_from_slice(&length_field[1..]);
    out.extend_from_slice(&MASK);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], MASK, 0);
    out
}

#[test]
fn decoder_is_at_most_96_bytes() {
    let size = std::mem::size_of::<Decoder>();
    assert!(size <= 96, "Decoder grew to {size} bytes");
    assert_eq!(size, 72, "update the key number in lib.rs");
}

// RFC 6455 5.7 examples, decoded.
#[test]
fn rfc_masked_text_decodes_in_place() {
    let mut input = vec![
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let range = input.as_ptr_range();
    let mut decoder = Decoder::new(Role::Server);
    let (used, event) = decoder.decode(&mut input, &Limits::default()).unwrap();
    assert_eq!(used, 11);
    let Some(Message::Text(payload)) = event else {
        panic!("expected text, got {event:?}");
    };
    assert_eq!(payload, b"Hello");
    assert!(
        range.contains(&payload.as_ptr()),
        "payload must borrow the input"
    );
    assert_eq!(decoder.buffered_bytes(), 0);
    assert_eq!(&input[6..], b"Hello", "unmasked in place");
}

#[test]
fn rfc_unmasked_examples_decode_client_side() {
    let limits = Limits::default();
    let single = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(
        decode_whole(Role::Client, &single, &limits),
        (vec![text("Hello")], None)
    );
    let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(
        decode_whole(Role::Client, &fragmented, &limits),
        (vec![text("Hello")], None)
    );
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    let expected = vec![Event::Ping(b"Hello".to_vec())];
    assert_eq!(decode_whole(Role::Client, &ping, &limits), (expected, None));
}

#[test]
fn rfc_masked_pong_decodes_server_side() {
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let expected = vec![Event::Pong(b"Hello".to_vec())];
    assert_eq!(
        decode_whole(Role::Server, &pong, &Limits::default()),
        (expected, None)
    );
}

#[test]
fn rfc_256_byte_and_64k_binary_decode() {
    let limits = Limits::default();
    let mut frame = vec![0x82, 0x7E, 0x01, 0x00];
    frame.extend(std::iter::repeat_n(7u8, 256));
    let expected = vec![Event::Binary(vec![7; 256])];
    assert_eq!(
        decode_whole(Role::Client, &frame, &limits),
        (expected, None)
    );
    let mut frame = vec![0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0];
    frame.extend(std::iter::repeat_n(9u8, 65536));
    let expected = vec![Event::Binary(vec![9; 65536])];
    assert_eq!(
        decode_whole(Role::Client, &frame, &limits),
        (expected, None)
    );
}

#[test]
fn server_refuses_unmasked_frame() {
    let mut frame = Vec::new();
    write_frame(&mut frame, OpCode::Text, b"hi", None);
    assert_eq!(
        server_error(&frame, &Limits::default()),
        (ProtocolError::UnmaskedFrame, 1002)
    );
}

#[test]
fn client_refuses_masked_frame() {
    let (_, error) = decode_whole(
        Role::Client,
        &masked(OpCode::Text, b"hi"),
        &Limits::default(),
    );
    let error = error.unwrap();
    assert_eq!(
        (error, error.close_code()),
        (ProtocolError::MaskedFrame, 1002)
    );
}

#[test]
fn reserved_bits_are_refused() {
    for (bit, bits) in [(0x40, 4), (0x20, 2), (0x10, 1)] {
        let frame = raw_frame(0x81 | bit, &[2], b"hi");
        assert_eq!(
            server_error(&frame, &Limits::default()),
            (ProtocolError::ReservedBits { bits }, 1002)
        );
    }
}

#[test]
fn reserved_opcodes_are_refused() {
    for opcode in (3..=7).chain(11..=15) {
        let frame = raw_frame(0x80 | opcode, &[0], b"");
        assert_eq!(
            server_error(&frame, &Limits::default()),
            (ProtocolError::ReservedOpcode(opcode), 1002)
        );
    }
}

#[test]
fn fragmented_control_frame_is_refused() {
    for opcode in [0x8, 0x9, 0xA] {
        let frame = raw_frame(opcode, &[0], b"");
        assert_eq!(
            server_error(&frame, &Limits::default()),
            (ProtocolError::FragmentedControlFrame, 1002)
        );
    }
}

#[test]
fn control_payload_over_125_is_refused() {
    let frame = raw_frame(0x89, &[126, 0, 126], &[0; 126]);
    assert_eq!(
        server_error(&frame, &Limits::default()),
        (ProtocolError::ControlFrameTooLong, 1002)
    );
    // 125 is the largest allowed.
    let frame = raw_frame(0x89, &[125], &[1; 125]);
    let expected = vec![Event::Ping(vec![1; 125])];
    assert_eq!(
        decode_whole(Role::Server, &frame, &Limits::default()),
        (expected, None)
    );
}

#[test]
fn control_frames_interleave_a_fragmented_message() {
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, b"Hel");
    fragment(&mut stream, true, OpCode::Ping, b"p");
    fragment(&mut stream, false, OpCode::Continuation, b"l");
    fragment(&mut stream, true, OpCode::Pong, b"q");
    fragment(&mut stream, true, OpCode::Continuation, b"o");
    let expected = vec![
        Event::Ping(b"p".to_vec()),
        Event::Pong(b"q".to_vec()),
        text("Hello"),
    ];
    let limits = Limits::default();
    assert_eq!(
        decode_whole(Role::Server, &stream, &limits),
        (expected.clone(), None)
    );
    assert_eq!(
        decode_bytewise(Role::Server, &stream, &limits),
        (expected, None)
    );
}

#[test]
fn continuation_without_message_is_refused() {
    let frame = masked(OpCode::Continuation, b"x");
    assert_eq!(
        server_error(&frame, &Limits::default()),
        (ProtocolError::UnexpectedContinuation, 1002)
    );
}

#[test]
fn new_message_inside_fragmented_message_is_refused() {
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Binary, b"a");
    fragment(&mut stream, true, OpCode::Text, b"b");
    assert_eq!(
        server_error(&stream, &Limits::default()),
        (ProtocolError::ExpectedContinuation, 1002)
    );
}

#[test]
fn length_with_top_bit_is_refused() {
    let frame = raw_frame(0x82, &[127, 0x80, 0, 0, 0, 0, 0, 0, 0], b"");
    let unlimited = Limits {
        max_frame_bytes: 0,
        max_text_message_bytes: 0,
        max_binary_message_bytes: 0,
    };
    assert_eq!(
        server_error(&frame, &unlimited),
        (ProtocolError::LengthTopBitSet, 1002)
    );
}

#[test]
fn non_minimal_lengths_are_refused() {
    let frame = raw_frame(0x82, &[126, 0, 5], &[0; 5]);
    let expected = (ProtocolError::NonMinimalLength { len: 5 }, 1002);
    assert_eq!(server_error(&frame, &Limits::default()), expected);
    let frame = raw_frame(0x82, &[127, 0, 0, 0, 0, 0, 0, 0, 200], &[0; 200]);
    let expected = (ProtocolError::NonMinimalLength { len: 200 }, 1002);
    assert_eq!(server_error(&frame, &Limits::default()), expected);
    let frame = raw_frame(0x82, &[127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], &[]);
    let expected = (ProtocolError::NonMinimalLength { len: 65535 }, 1002);
    assert_eq!(server_error(&frame, &Limits::default()), expected);
}

#[test]
fn oversized_frame_fails_on_its_header_alone() {
    let limits = Limits {
        max_frame_bytes: 100,
        ..Limits::default()
    };
    // Only the header: no payload byte needs to arrive for the error.
    let header = raw_frame(0x82, &[126, 0, 200], &[]);
    let expected = (ProtocolError::FrameTooLarge { len: 200, max: 100 }, 1009);
    assert_eq!(server_error(&header, &limits), expected);
    let at_limit = raw_frame(0x82, &[100], &[0; 100]);
    assert_eq!(decode_whole(Role::Server, &at_limit, &limits).1, None);
}

#[test]
fn message_over_limit_fails_on_the_fragment_header() {
    let limits = Limits {
        max_text_message_bytes: 64,
        max_binary_message_bytes: 32,
        ..Limits::default()
    };
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, &[b'a'; 40]);
    let header_only = raw_frame(0x80, &[25], &[]);
    stream.extend_from_slice(&header_only[..6]);
    let mut decoder = Decoder::new(Role::Server);
    let (_, error) = feed(&mut decoder, &mut [&mut stream], &limits);
    let expected = ProtocolError::MessageTooLarge { len: 65, max: 64 };
    assert_eq!(error, Some(expected));
    assert_eq!(expected.close_code(), 1009);
    // Binary has its own limit.
    let frame = masked(OpCode::Binary, &[0; 33]);
    let expected = (ProtocolError::MessageTooLarge { len: 33, max: 32 }, 1009);
    assert_eq!(server_error(&frame, &limits), expected);
    let frame = masked(OpCode::Text, &[b'a'; 64]);
    assert_eq!(decode_whole(Role::Server, &frame, &limits).1, None);
}

#[test]
fn zero_limits_mean_unlimited() {
    let limits = Limits {
        max_frame_bytes: 0,
        max_text_message_bytes: 0,
        max_binary_message_bytes: 0,
    };
    let frame = masked(OpCode::Binary, &vec![1; 200_000]);
    let expected = vec![Event::Binary(vec![1; 200_000])];
    assert_eq!(
        decode_whole(Role::Server, &frame, &limits),
        (expected, None)
    );
}

#[test]
fn invalid_utf8_in_single_frame_is_1007() {
    let frame = masked(OpCode::Text, b"ok \xFF");
    assert_eq!(
        server_error(&frame, &Limits::default()),
        (ProtocolError::InvalidUtf8, 1007)
    );
}

#[test]
fn invalid_utf8_fails_before_the_final_fragment() {
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, b"ok \xC0\xAF");
    let mut decoder = Decoder::new(Role::Server);
    let (events, error) = feed(&mut decoder, &mut [&mut stream], &Limits::default());
    assert_eq!((events, error), (vec![], Some(ProtocolError::InvalidUtf8)));
}

#[test]
fn invalid_utf8_fails_before_a_split_frame_completes() {
    let mut frame = masked(OpCode::Text, b"\xF8 and more bytes to come");
    let (first, _) = frame.split_at_mut(8);
    let mut decoder = Decoder::new(Role::Server);
    let result = decoder.decode(first, &Limits::default());
    assert_eq!(result, Err(ProtocolError::InvalidUtf8));
}

#[test]
fn character_split_across_fragments_and_inputs_is_valid() {
    let euro = "€".as_bytes();
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, &euro[..1]);
    fragment(&mut stream, false, OpCode::Continuation, &euro[1..2]);
    fragment(&mut stream, true, OpCode::Continuation, &euro[2..]);
    let limits = Limits::default();
    assert_eq!(
        decode_whole(Role::Server, &stream, &limits),
        (vec![text("€")], None)
    );
    assert_eq!(
        decode_bytewise(Role::Server, &stream, &limits),
        (vec![text("€")], None)
    );
}

#[test]
fn text_ending_in_a_cut_character_is_1007() {
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, b"a");
    fragment(
        &mut stream,
        true,
        OpCode::Continuation,
        &"€".as_bytes()[..2],
    );
    assert_eq!(
        server_error(&stream, &Limits::default()),
        (ProtocolError::InvalidUtf8, 1007)
    );
}

#[test]
fn close_payload_is_checked() {
    let limits = Limits::default();
    let empty = masked(OpCode::Close, b"");
    assert_eq!(
        decode_whole(Role::Server, &empty, &limits),
        (vec![Event::Close(None, String::new())], None)
    );
    let mut with_reason = Vec::new();
    write_close(&mut with_reason, 1000, "done", Some(MASK));
    assert_eq!(
        decode_whole(Role::Server, &with_reason, &limits),
        (vec![Event::Close(Some(1000), "done".into())], None)
    );
    let one_byte = masked(OpCode::Close, &[3]);
    assert_eq!(
        server_error(&one_byte, &limits),
        (ProtocolError::CloseTooShort, 1002)
    );
    for code in [0u16, 999, 1004, 1005, 1006, 1012, 1015, 2999, 5000] {
        let frame = masked(OpCode::Close, &code.to_be_bytes());
        let expected = (ProtocolError::InvalidCloseCode(code), 1002);
        assert_eq!(server_error(&frame, &limits), expected);
    }
    let bad_reason = masked(OpCode::Close, b"\x03\xe8\xFF");
    assert_eq!(
        server_error(&bad_reason, &limits),
        (ProtocolError::InvalidCloseReason, 1002)
    );
}

#[test]
fn input_after_close_is_ignored() {
    let mut stream = masked(OpCode::Close, b"\x03\xe8");
    let close_len = stream.len();
    stream.extend_from_slice(&masked(OpCode::Text, b"late"));
    stream.extend_from_slice(b"\xFF\xFF garbage");
    let mut decoder = Decoder::new(Role::Server);
    let limits = Limits::default();
    let (used, event) = decoder.decode(&mut stream, &limits).unwrap();
    assert_eq!(used, close_len);
    assert!(matches!(event, Some(Message::Close(_))));
    let rest_len = stream.len() - close_len;
    let rest = &mut stream[close_len..];
    assert_eq!(decoder.decode(rest, &limits).unwrap(), (rest_len, None));
    assert!(!decoder.in_message());
}

#[test]
fn input_after_error_is_ignored() {
    let mut decoder = Decoder::new(Role::Server);
    let limits = Limits::default();
    let mut unmasked = vec![0x81, 0x00];
    assert!(decoder.decode(&mut unmasked, &limits).is_err());
    let mut valid = masked(OpCode::Text, b"x");
    let valid_len = valid.len();
    assert_eq!(
        decoder.decode(&mut valid, &limits).unwrap(),
        (valid_len, None)
    );
}

#[test]
fn in_message_tracks_partial_frames_and_messages() {
    let limits = Limits::default();
    let mut decoder = Decoder::new(Role::Server);
    assert!(!decoder.in_message());
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, b"ab");
    fragment(&mut stream, true, OpCode::Continuation, b"cd");
    let (first_frame, second_frame) = stream.split_at_mut(8);
    decoder.decode(&mut first_frame[..1], &limits).unwrap();
    assert!(decoder.in_message(), "partial header");
    decoder.decode(&mut first_frame[1..7], &limits).unwrap();
    assert!(decoder.in_message(), "partial payload");
    decoder.decode(&mut first_frame[7..], &limits).unwrap();
    assert!(decoder.in_message(), "fragmented message open");
    assert_eq!(decoder.buffered_bytes(), 2);
    let (_, event) = decoder.decode(second_frame, &limits).unwrap();
    assert_eq!(event, Some(Message::Text(b"abcd")));
    assert!(!decoder.in_message());
    assert_eq!(decoder.buffered_bytes(), 0);
}

#[test]
fn buffer_is_kept_between_messages_and_released_on_request() {
    let limits = Limits::default();
    let mut decoder = Decoder::new(Role::Server);
    let mut frame = masked(OpCode::Binary, &[5; 300]);
    let (first, second) = frame.split_at_mut(100);
    decoder.decode(first, &limits).unwrap();
    let (_, event) = decoder.decode(second, &limits).unwrap();
    assert_eq!(event, Some(Message::Binary(&[5; 300])));
    let capacity = decoder.buffer_capacity();
    assert!(capacity >= 300);
    let mut next = masked(OpCode::Ping, b"");
    decoder.decode(&mut next, &limits).unwrap();
    assert_eq!(
        decoder.buffer_capacity(),
        capacity,
        "kept for the next message"
    );
    assert_eq!(decoder.buffered_bytes(), 0);
    decoder.release_memory();
    assert_eq!(decoder.buffer_capacity(), 0);
}

#[test]
fn release_memory_keeps_an_unfinished_message() {
    let limits = Limits::default();
    let mut decoder = Decoder::new(Role::Server);
    let mut stream = Vec::new();
    fragment(&mut stream, false, OpCode::Text, b"abc");
    fragment(&mut stream, true, OpCode::Continuation, b"def");
    let (first, second) = stream.split_at_mut(9);
    decoder.decode(first, &limits).unwrap();
    decoder.release_memory();
    let (_, event) = decoder.decode(second, &limits).unwrap();
    assert_eq!(event, Some(Message::Text(b"abcdef")));
}

#[test]
fn buffer_never_grows_past_limit_plus_one_control_frame() {
    let limits = Limits {
        max_text_message_bytes: 1000,
        ..Limits::default()
    };
    let mut stream = Vec::new();
    for index in 0..100 {
        let opcode = if index == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        fragment(&mut stream, index == 99, opcode, &[b'x'; 10]);
        if index == 98 {
            fragment(&mut stream, true, OpCode::Ping, &[0; 125]);
        }
    }
    let mut decoder = Decoder::new(Role::Server);
    let mut max_capacity = 0;
    let mut events = 0;
    for byte in stream.chunks_mut(1) {
        if let (_, Some(_)) = decoder.decode(byte, &limits).unwrap() {
            events += 1;
        }
        max_capacity = max_capacity.max(decoder.buffer_capacity());
    }
    assert_eq!(events, 2);
    assert!(max_capacity <= 1125, "capacity reached {max_capacity}");
}

#[test]
fn header_split_at_every_point_decodes_the_same() {
    let payload = vec![b'z'; 70_000];
    let frame = masked(OpCode::Text, &payload);
    let limits = Limits {
        max_text_message_bytes: 100_000,
        ..Limits::default()
    };
    for split in 1..=14 {
        let mut input = frame.clone();
        let (first, second) = input.split_at_mut(split);
        let (events, error) = feed(
            &mut Decoder::new(Role::Server),
            &mut [first, second],
            &limits,
        );
        assert_eq!(
            (events, error),
            (vec![Event::Text(payload.clone())], None),
            "{split}"
        );
    }
}

#[test]
fn empty_frames_are_events() {
    let mut stream = masked(OpCode::Text, b"");
    stream.extend_from_slice(&masked(OpCode::Binary, b""));
    fragment(&mut stream, false, OpCode::Text, b"");
    fragment(&mut stream, true, OpCode::Continuation, b"");
    let expected = vec![text(""), Event::Binary(vec![]), text("")];
    let limits = Limits::default();
    assert_eq!(
        decode_whole(Role::Server, &stream, &limits),
        (expected.clone(), None)
    );
    assert_eq!(
        decode_bytewise(Role::Server, &stream, &limits),
        (expected, None)
    );
}
