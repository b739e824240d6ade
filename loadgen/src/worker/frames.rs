//! Turning one read's bytes into messages: the codec, behind a fast path
//! for the one frame shape an echo brings back.
//!
//! Nearly every frame loadgen reads is a whole, unfragmented, unmasked text
//! or binary frame shorter than 64 KiB, entirely inside the read. Such a
//! frame is taken from the input directly (two header bytes, maybe two
//! length bytes, the UTF-8 check for text) instead of through the codec's
//! general state machine, which handles split headers, fragments and
//! control frames; the codec's call alone was a third of loadgen's user CPU
//! per echoed message. Everything else (control frames, longer frames,
//! fragments, reserved bits, masks, frames cut by the end of the read, and
//! so every protocol error) goes to the codec, and the fast path is only
//! taken while the codec holds nothing: the events and errors are the
//! codec's own, which the tests check against the codec alone.

use ringgate_wscodec::{Decoder, Limits, Message};

use crate::stats::ErrorReason;

const FIN_TEXT: u8 = 0x81;
const FIN_BINARY: u8 = 0x82;
/// The 7-bit length values that mean "a 16-bit length follows" and
/// "a 64-bit length follows" (the latter, and the mask bit, are left to the codec).
const LENGTH_16: u8 = 126;
const LENGTH_7_MAX: u8 = 125;

/// Decodes every frame in `input` (unmasking in place where the codec
/// needs to), handing each complete message to `on_message` in order.
/// Stops at the first error, the codec's or `on_message`'s.
pub fn decode_all(
    decoder: &mut Decoder,
    input: &mut [u8],
    limits: &Limits,
    on_message: impl FnMut(Message<'_>) -> Result<(), ErrorReason>,
) -> Result<(), ErrorReason> {
    decode::<true>(decoder, input, limits, on_message)
}

/// `decode_all`, with the fast path or (the tests' oracle) without.
fn decode<const FAST_PATH: bool>(
    decoder: &mut Decoder,
    input: &mut [u8],
    limits: &Limits,
    mut on_message: impl FnMut(Message<'_>) -> Result<(), ErrorReason>,
) -> Result<(), ErrorReason> {
    let mut offset = 0;
    while offset < input.len() {
        // The decoder is between frames with nothing buffered (a Close or
        // an error ends the connection, so it is never fed after one).
        if FAST_PATH
            && !decoder.in_message()
            && let Some((frame_len, message)) = whole_data_frame(&input[offset..], limits)
        {
            offset += frame_len;
            on_message(message?)?;
            continue;
        }
        let (used, message) = decoder
            .decode(&mut input[offset..], limits)
            .map_err(|_| ErrorReason::Protocol)?;
        offset += used;
        match message {
            Some(message) => on_message(message)?,
            None if used == 0 => break,
            None => {}
        }
    }
    Ok(())
}

/// A whole, final, unmasked text or binary frame with a 7- or 16-bit
/// length at the start of `input`: its length and its message (text that
/// is not UTF-8 is the codec's error). `None` for any other frame, and for
/// one over `limits` (the codec refuses it).
fn whole_data_frame<'a>(
    input: &'a [u8],
    limits: &Limits,
) -> Option<(usize, Result<Message<'a>, ErrorReason>)> {
    let [first, second, ..] = *input else {
        return None;
    };
    let text = match first {
        FIN_TEXT => true,
        FIN_BINARY => false,
        _ => return None,
    };
    let (header_len, payload_len) = match second {
        0..=LENGTH_7_MAX => (2, usize::from(second)),
        LENGTH_16 => {
            let len = u16::from_be_bytes(input.get(2..4)?.try_into().ok()?);
            // A length that fits 7 bits is non-minimal: the codec rejects it.
            if len <= u16::from(LENGTH_7_MAX) {
                return None;
            }
            (4, usize::from(len))
        }
        _ => return None,
    };
    let message_cap = if text {
        limits.max_text_message_bytes
    } else {
        limits.max_binary_message_bytes
    };
    if payload_len as u64 > limits.max_frame_bytes || payload_len > message_cap {
        return None;
    }
    let payload = input.get(header_len..header_len + payload_len)?;
    let message = if !text {
        Ok(Message::Binary(payload))
    } else if payload.is_ascii() || std::str::from_utf8(payload).is_ok() {
        Ok(Message::Text(payload))
    } else {
        Err(ErrorReason::Protocol)
    };
    Some((header_len + payload_len, message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringgate_wscodec::{OpCode, Role, write_frame};

    fn limits() -> Limits {
        Limits {
            max_frame_bytes: 1 << 20,
            max_text_message_bytes: 1 << 20,
            max_binary_message_bytes: 1 << 20,
        }
    }

    /// Feeds `stream` in reads of the given sizes; the messages (as their
    /// `Debug` text, so two decodings can be compared) until the first
    /// error, and whether there was one.
    fn run<const FAST_PATH: bool>(stream: &[u8], cuts: &[usize]) -> (Vec<String>, bool) {
        run_with::<FAST_PATH>(stream, cuts, &limits())
    }

    fn run_with<const FAST_PATH: bool>(
        stream: &[u8],
        cuts: &[usize],
        limits: &Limits,
    ) -> (Vec<String>, bool) {
        let mut decoder = Decoder::new(Role::Client);
        let mut events = Vec::new();
        let mut at = 0;
        for &cut in cuts.iter().chain(std::iter::once(&usize::MAX)) {
            let end = at + cut.min(stream.len() - at);
            let mut read = stream[at..end].to_vec();
            let record = |m: Message<'_>| {
                events.push(format!("{m:?}"));
                Ok(())
            };
            if decode::<FAST_PATH>(&mut decoder, &mut read, limits, record).is_err() {
                return (events, true);
            }
            at = end;
            if at == stream.len() {
                break;
            }
        }
        (events, false)
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// One frame of a mix that is mostly echoes, with every shape the fast
    /// path must leave to the codec, and some broken ones.
    fn random_frame(rng: &mut Rng, out: &mut Vec<u8>) {
        let len = match rng.below(4) {
            0 => rng.below(126),
            1 => 126 + rng.below(400),
            2 => rng.below(20),
            _ => 65_530 + rng.below(10),
        } as usize;
        let mut payload: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        match rng.below(14) {
            0..=5 => write_frame(out, OpCode::Text, &payload, None),
            6 | 7 => {
                payload.iter_mut().for_each(|b| *b = rng.next() as u8);
                write_frame(out, OpCode::Binary, &payload, None);
            }
            8 => {
                // Text that is UTF-8 but not ASCII, or not UTF-8 at all.
                payload.extend_from_slice(if rng.below(2) == 0 {
                    "é€".as_bytes()
                } else {
                    &[0xC3, 0x28]
                });
                write_frame(out, OpCode::Text, &payload, None);
            }
            9 => write_frame(out, OpCode::Ping, &payload[..len.min(125)], None),
            10 => write_frame(out, OpCode::Pong, &payload[..len.min(125)], None),
            11 => {
                // A message in two fragments.
                let split = len / 2;
                let mut first = Vec::new();
                write_frame(&mut first, OpCode::Text, &payload[..split], None);
                first[0] &= 0x7F;
                out.extend_from_slice(&first);
                write_frame(out, OpCode::Continuation, &payload[split..], None);
            }
            12 => {
                // A non-minimal 16-bit length, or reserved bits.
                if rng.below(2) == 0 {
                    let short = [5, 125][rng.below(2) as usize];
                    out.extend_from_slice(&[0x81, 126, 0, short]);
                    out.extend_from_slice(&payload[..usize::from(short).min(len)]);
                } else {
                    let at = out.len();
                    write_frame(out, OpCode::Binary, &payload, None);
                    out[at] |= 0x40;
                }
            }
            _ => write_frame(out, OpCode::Text, &payload, Some([1, 2, 3, 4])),
        }
    }

    #[test]
    fn fast_path_gives_the_codec_s_events_and_errors() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let mut with_messages = 0;
        for case in 0..3_000 {
            let mut stream = Vec::new();
            let frames = 1 + rng.below(12);
            for _ in 0..frames {
                random_frame(&mut rng, &mut stream);
            }
            // Reads: whole, or cut anywhere (inside headers and payloads).
            let cuts: Vec<usize> = match case % 3 {
                0 => vec![],
                1 => (0..8).map(|_| 1 + rng.below(300) as usize).collect(),
                _ => (0..40).map(|_| 1 + rng.below(7) as usize).collect(),
            };
            let expected = run::<false>(&stream, &cuts);
            let got = run::<true>(&stream, &cuts);
            assert_eq!(got, expected, "case {case}, cuts {cuts:?}");
            with_messages += usize::from(!got.0.is_empty());
        }
        assert!(with_messages > 1_000, "the mix must exercise real messages");
    }

    #[test]
    fn frames_over_the_limits_are_the_codec_s_errors_on_the_fast_path_too() {
        let mut stream = Vec::new();
        write_frame(&mut stream, OpCode::Text, &[b'a'; 50], None);
        write_frame(&mut stream, OpCode::Text, &[b'a'; 200], None);
        let small = Limits {
            max_frame_bytes: 100,
            max_text_message_bytes: 100,
            max_binary_message_bytes: 100,
        };
        let expected = run_with::<false>(&stream, &[], &small);
        assert!(expected.1, "the codec refuses the 200-byte frame");
        assert_eq!(run_with::<true>(&stream, &[], &small), expected);
        let text_only = Limits {
            max_text_message_bytes: 100,
            ..limits()
        };
        assert_eq!(
            run_with::<true>(&stream, &[], &text_only),
            run_with::<false>(&stream, &[], &text_only)
        );
    }

    #[test]
    fn echo_frames_take_the_fast_path() {
        let mut stream = Vec::new();
        write_frame(&mut stream, OpCode::Text, b"0123456789abcdefxxxx", None);
        write_frame(&mut stream, OpCode::Binary, &[7; 300], None);
        assert_eq!(
            whole_data_frame(&stream, &Limits::default()).map(|(n, _)| n),
            Some(22)
        );
        assert_eq!(
            whole_data_frame(&stream[22..], &Limits::default()).map(|(n, _)| n),
            Some(304)
        );
        // Cut by the end of the read: left to the codec.
        assert!(whole_data_frame(&stream[..21], &Limits::default()).is_none());
        assert!(whole_data_frame(&stream[22..24], &Limits::default()).is_none());
    }
}
