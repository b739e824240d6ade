//! Bytes from the wire into a frame decoder: it must never panic, must keep
//! the `decode` contract, and must decide the same whether the bytes come
//! in one piece, split at one point, or in small chunks.
//!
//! Input layout: byte 0 picks the role (bit 0), the limits (bits 1-2) and a
//! chunk size (bits 3-7, plus one); bytes 1-2 are the split point (u16 LE,
//! taken modulo the stream length + 1); the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate_wscodec::{Decoder, Limits, Message, ProtocolError, Role};

#[derive(Debug, PartialEq, Eq)]
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
            Message::Text(payload) => {
                assert!(
                    std::str::from_utf8(payload).is_ok(),
                    "text event must be UTF-8"
                );
                Self::Text(payload.to_vec())
            }
            Message::Binary(payload) => Self::Binary(payload.to_vec()),
            Message::Ping(payload) => Self::Ping(payload.to_vec()),
            Message::Pong(payload) => Self::Pong(payload.to_vec()),
            Message::Close(close) => Self::Close(close.code, close.reason.to_string()),
        }
    }
}

type Outcome = (Vec<Event>, Option<ProtocolError>);

fn limits(selector: u8) -> Limits {
    match selector & 0b11 {
        0 => Limits::default(),
        1 => Limits {
            max_frame_bytes: 100,
            max_text_message_bytes: 150,
            max_binary_message_bytes: 200,
        },
        2 => Limits {
            max_frame_bytes: 0,
            max_text_message_bytes: 0,
            max_binary_message_bytes: 0,
        },
        _ => Limits {
            max_frame_bytes: 1,
            max_text_message_bytes: 1,
            max_binary_message_bytes: 1,
        },
    }
}

/// Decodes `stream` fed as the pieces between `cuts` (sorted offsets).
fn decode(role: Role, limits: &Limits, stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(role);
    let mut input = stream.to_vec();
    let mut events = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain([&stream.len()]) {
        let chunk = &mut input[start..end];
        start = end;
        let mut offset = 0;
        while offset < chunk.len() {
            let remaining = chunk.len() - offset;
            match decoder.decode(&mut chunk[offset..], limits) {
                Ok((used, event)) => {
                    assert!(used > 0 && used <= remaining, "bad consumed count");
                    assert!(
                        event.is_some() || used == remaining,
                        "Ok(None) before the end"
                    );
                    events.extend(event.map(Event::from));
                    offset += used;
                }
                Err(error) => return (events, Some(error)),
            }
        }
        let capacity_bound = limits
            .max_text_message_bytes
            .max(limits.max_binary_message_bytes);
        if capacity_bound != 0 {
            assert!(
                decoder.buffer_capacity() <= capacity_bound + 125,
                "buffer over its bound"
            );
        }
    }
    (events, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (split, stream) = match rest {
        [low, high, stream @ ..] => (usize::from(u16::from_le_bytes([*low, *high])), stream),
        _ => (0, rest),
    };
    let role = if selector & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let limits = limits(selector >> 1);
    let chunk_len = usize::from(selector >> 3) + 1;

    let whole = decode(role, &limits, stream, &[]);
    let split_at = split % (stream.len() + 1);
    assert_eq!(
        whole,
        decode(role, &limits, stream, &[split_at]),
        "split at {split_at}"
    );
    let chunk_ends: Vec<usize> = (chunk_len..stream.len()).step_by(chunk_len).collect();
    assert_eq!(
        whole,
        decode(role, &limits, stream, &chunk_ends),
        "chunks of {chunk_len}"
    );
    if let Some(error) = whole.1 {
        assert!(matches!(error.close_code(), 1002 | 1007 | 1009));
    }
});
