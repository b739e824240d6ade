//! Frame encoding (RFC 6455 5.2) and the masking primitive the decoder shares.
//!
//! Encoders append to a caller-owned `Vec<u8>` so the gateway can batch many
//! frames into one send buffer; they never allocate anything else.

/// Largest payload a control frame may carry (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Longest possible frame header: 2 fixed bytes, 8 length bytes, 4 mask bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// Frame opcodes defined by RFC 6455 11.8; the others are reserved and refused.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    Continuation = 0,
    Text = 1,
    Binary = 2,
    Close = 8,
    Ping = 9,
    Pong = 10,
}

impl OpCode {
    /// The opcode for a header's low nibble, or `None` for a reserved value.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Continuation),
            1 => Some(Self::Text),
            2 => Some(Self::Binary),
            8 => Some(Self::Close),
            9 => Some(Self::Ping),
            10 => Some(Self::Pong),
            _ => None,
        }
    }

    /// Control frames (Close, Ping, Pong) have the high opcode bit set.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// Writes a frame header into `buf` and returns its length (2 to 14 bytes).
///
/// The length uses the minimal encoding, as RFC 6455 5.2 requires.
/// Panics if `payload_len` has its top bit set: no such frame is legal.
pub fn encode_header(
    buf: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    assert!(
        payload_len >> 63 == 0,
        "frame payload length {payload_len} over 2^63"
    );
    buf[0] = (u8::from(fin) << 7) | opcode as u8;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut len = if payload_len <= 125 {
        buf[1] = mask_bit | payload_len as u8;
        2
    } else if let Ok(short) = u16::try_from(payload_len) {
        buf[1] = mask_bit | 126;
        buf[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        buf[1] = mask_bit | 127;
        buf[2..10].copy_from_slice(&payload_len.to_be_bytes());
        10
    };
    if let Some(mask) = mask {
        buf[len..len + 4].copy_from_slice(&mask);
        len += 4;
    }
    len
}

/// Appends one frame, possibly a non-final fragment, masking the payload
/// copy when `mask` is `Some` (clients must mask, servers must not).
pub fn write_fragment(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    debug_assert!(
        !opcode.is_control() || (fin && payload.len() <= MAX_CONTROL_PAYLOAD),
        "control frames must be final and at most 125 bytes"
    );
    let mut header = [0u8; MAX_HEADER_LEN];
    let header_len = encode_header(&mut header, fin, opcode, payload.len() as u64, mask);
    out.reserve(header_len + payload.len());
    out.extend_from_slice(&header[..header_len]);
    let payload_start = out.len();
    out.extend_from_slice(payload);
    if let Some(mask) = mask {
        apply_mask(&mut out[payload_start..], mask, 0);
    }
}

/// Appends one final (unfragmented) frame.
pub fn write_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], mask: Option<[u8; 4]>) {
    write_fragment(out, true, opcode, payload, mask);
}

/// Appends a Close frame carrying `code` and `reason`.
///
/// The reason is cut at a character boundary to fit the 125-byte control
/// payload (123 bytes after the code), so the frame is always legal.
pub fn write_close(out: &mut Vec<u8>, code: u16, reason: &str, mask: Option<[u8; 4]>) {
    debug_assert!(
        is_valid_close_code(code),
        "close code {code} may not be sent"
    );
    let mut reason_len = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(reason_len) {
        reason_len -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason_len].copy_from_slice(&reason.as_bytes()[..reason_len]);
    write_frame(out, OpCode::Close, &payload[..2 + reason_len], mask);
}

/// XORs `data` with `mask`, where `data[0]` is payload byte number `offset`
/// of its frame (so a payload split across buffers unmasks piece by piece).
///
/// Works a u64 at a time; the mask repeats every 4 bytes, so a word holds it
/// twice, rotated to start at `offset`.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    let [m0, m1, m2, m3] = mask;
    let mask_word = u64::from_ne_bytes([m0, m1, m2, m3, m0, m1, m2, m3]);
    let mut words = data.chunks_exact_mut(8);
    for word in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ mask_word).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the mask phase is unchanged.
    for (index, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[index % 4];
    }
}

/// Whether a peer may put `code` in a Close frame (RFC 6455 7.4, as the
/// Autobahn suite reads it): the assigned codes that are not reserved for
/// local use, plus the registered and private ranges 3000-4999.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(fin: bool, opcode: OpCode, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut buf, fin, opcode, len, mask);
        buf[..n].to_vec()
    }

    #[test]
    fn header_uses_minimal_length_encoding() {
        assert_eq!(encoded(true, OpCode::Binary, 125, None), [0x82, 125]);
        assert_eq!(
            encoded(true, OpCode::Binary, 126, None),
            [0x82, 126, 0, 126]
        );
        assert_eq!(
            encoded(true, OpCode::Binary, 65535, None),
            [0x82, 126, 0xFF, 0xFF]
        );
        assert_eq!(
            encoded(true, OpCode::Binary, 65536, None),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn header_carries_fin_opcode_and_mask() {
        assert_eq!(encoded(false, OpCode::Text, 0, None), [0x01, 0]);
        assert_eq!(encoded(true, OpCode::Continuation, 1, None), [0x80, 1]);
        assert_eq!(
            encoded(true, OpCode::Ping, 5, Some([1, 2, 3, 4])),
            [0x89, 0x85, 1, 2, 3, 4]
        );
    }

    #[test]
    #[should_panic(expected = "over 2^63")]
    fn header_refuses_length_with_top_bit() {
        encoded(true, OpCode::Binary, 1 << 63, None);
    }

    // RFC 6455 5.7 examples.
    #[test]
    fn rfc_single_frame_unmasked_text() {
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Text, b"Hello", None);
        assert_eq!(out, [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    }

    #[test]
    fn rfc_single_frame_masked_text() {
        let mut out = Vec::new();
        write_frame(
            &mut out,
            OpCode::Text,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(
            out,
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn rfc_fragmented_unmasked_text() {
        let mut out = Vec::new();
        write_fragment(&mut out, false, OpCode::Text, b"Hel", None);
        write_fragment(&mut out, true, OpCode::Continuation, b"lo", None);
        assert_eq!(out, [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]);
    }

    #[test]
    fn rfc_unmasked_ping_and_masked_pong() {
        let mut ping = Vec::new();
        write_frame(&mut ping, OpCode::Ping, b"Hello", None);
        assert_eq!(ping, [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut pong = Vec::new();
        write_frame(
            &mut pong,
            OpCode::Pong,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(
            pong,
            [
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn rfc_256_and_64k_binary_headers() {
        let mut out = Vec::new();
        write_frame(&mut out, OpCode::Binary, &[0u8; 256], None);
        assert_eq!(out[..4], [0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 256);
        out.clear();
        write_frame(&mut out, OpCode::Binary, &vec![0u8; 65536], None);
        assert_eq!(out[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0, 0]);
        assert_eq!(out.len(), 10 + 65536);
    }

    #[test]
    fn close_frame_holds_code_then_reason() {
        let mut out = Vec::new();
        write_close(&mut out, 1001, "bye", None);
        assert_eq!(out, [0x88, 5, 0x03, 0xE9, b'b', b'y', b'e']);
    }

    #[test]
    fn close_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes of 2-byte characters
        let mut out = Vec::new();
        write_close(&mut out, 1000, &reason, None);
        assert_eq!(out[1], 2 + 122);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }

    #[test]
    fn mask_matches_bytewise_definition_at_every_offset() {
        let mask = [0x11, 0x22, 0x44, 0x88];
        let original: Vec<u8> = (0..37).collect();
        for offset in 0..8 {
            let mut data = original.clone();
            apply_mask(&mut data, mask, offset);
            for (index, byte) in data.iter().enumerate() {
                assert_eq!(*byte, original[index] ^ mask[(offset + index) % 4]);
            }
        }
    }

    #[test]
    fn mask_in_pieces_equals_mask_at_once() {
        let mask = [9, 8, 7, 6];
        let mut whole: Vec<u8> = (0..50).collect();
        let mut pieces = whole.clone();
        apply_mask(&mut whole, mask, 0);
        let (first, second) = pieces.split_at_mut(13);
        apply_mask(first, mask, 0);
        apply_mask(second, mask, 13);
        assert_eq!(whole, pieces);
    }

    #[test]
    fn close_codes_follow_rfc_and_autobahn() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ];
        let invalid = [
            0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535,
        ];
        assert!(valid.iter().all(|&code| is_valid_close_code(code)));
        assert!(invalid.iter().all(|&code| !is_valid_close_code(code)));
    }

    #[test]
    fn opcode_round_trips_and_rejects_reserved() {
        for value in 0..16u8 {
            match OpCode::from_u8(value) {
                Some(opcode) => assert_eq!(opcode as u8, value),
                None => assert!(matches!(value, 3..=7 | 11..=15)),
            }
        }
        assert!(OpCode::Ping.is_control() && !OpCode::Continuation.is_control());
    }
}
