//! Bytes from a router-protocol connection into the frame decoder: it must
//! never panic; every frame it returns must re-encode to exactly the bytes it
//! came from (one encoding per frame) and decode again to itself; and the
//! result must not depend on how the bytes arrive: every prefix of the input
//! decodes to "incomplete" or to the same frame or error.
//!
//! Input layout: byte 0 picks the decoder's body limit (bits 0-1) and a chunk
//! size (bits 2-7, plus one) for the chopped replay; the rest is the stream.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ringgate_router::protocol::{DecodeError, Decoder, Encoder, Frame};

fn decoder(selector: u8) -> Decoder {
    match selector & 0b11 {
        0 => Decoder::default(),
        1 => Decoder::new(64 << 10),
        2 => Decoder::new(64),
        _ => Decoder::new(0),
    }
}

/// The frames of `stream` (as their bytes) up to the error if any, decoding
/// it whole, the way a reader with one big buffer would.
fn decode_all(decoder: Decoder, stream: &[u8]) -> (Vec<Vec<u8>>, Option<DecodeError>) {
    let encoder = Encoder::new(decoder.max_body_bytes());
    let mut frames = Vec::new();
    let mut offset = 0;
    loop {
        let rest = &stream[offset..];
        match decoder.decode(rest) {
            Ok(Some((frame, used))) => {
                assert!(used >= 8 && used <= rest.len(), "bad consumed count");
                check_canonical(encoder, decoder, &frame, &rest[..used]);
                // Prefix consistency, cheaply: the byte before the end is incomplete.
                assert_eq!(decoder.decode(&rest[..used - 1]), Ok(None));
                frames.push(rest[..used].to_vec());
                offset += used;
            }
            Ok(None) => return (frames, None),
            Err(error) => {
                for end in [0, 7, 8, rest.len() / 2, rest.len().saturating_sub(1)] {
                    let prefix = decoder.decode(&rest[..end.min(rest.len())]);
                    assert!(
                        prefix == Ok(None) || prefix == Err(error),
                        "prefix {end}: {prefix:?} vs {error:?}"
                    );
                }
                return (frames, Some(error));
            }
        }
    }
}

fn check_canonical(encoder: Encoder, decoder: Decoder, frame: &Frame<'_>, wire: &[u8]) {
    let mut again = Vec::new();
    let written = encoder.encode(frame, &mut again).expect("a decoded frame encodes");
    assert_eq!(written, wire.len());
    assert_eq!(again, wire, "decode then encode changed the bytes");
    assert_eq!(frame.encoded_len(), Ok(wire.len()));
    assert_eq!(decoder.decode(&again), Ok(Some((*frame, wire.len()))));
}

/// The same stream fed `chunk` bytes at a time through a growing buffer.
fn decode_chopped(
    decoder: Decoder,
    stream: &[u8],
    chunk: usize,
) -> (Vec<Vec<u8>>, Option<DecodeError>) {
    let mut buffer = Vec::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buffer.extend_from_slice(piece);
        loop {
            match decoder.decode(&buffer) {
                Ok(Some((_, used))) => {
                    frames.push(buffer[..used].to_vec());
                    buffer.drain(..used);
                }
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, stream)) = data.split_first() else {
        return;
    };
    let decoder = decoder(selector);
    let chunk = usize::from(selector >> 2) + 1;
    let whole = decode_all(decoder, stream);
    assert_eq!(decode_chopped(decoder, stream, chunk), whole, "chunks of {chunk}");
    if let Some(error) = whole.1 {
        assert!(!error.reason().is_empty());
        let _ = error.code();
    }
});
