//! The send timestamp carried in each echo payload.
//!
//! The first 16 payload bytes are the intended send time (monotonic ns) as
//! lowercase hex: valid UTF-8 for text messages, and the echo brings it back,
//! so a connection needs no per-message state to time its replies.

pub const STAMP_LEN: usize = 16;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `ns` into `payload[..16]`.
pub fn write(payload: &mut [u8], ns: u64) {
    for (i, byte) in payload[..STAMP_LEN].iter_mut().enumerate() {
        let shift = 60 - 4 * i as u32;
        *byte = HEX[((ns >> shift) & 0xf) as usize];
    }
}

/// Reads the stamp back; `None` if the payload is short or not our hex.
pub fn read(payload: &[u8]) -> Option<u64> {
    let digits = payload.get(..STAMP_LEN)?;
    let mut ns = 0u64;
    for &byte in digits {
        let nibble = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            _ => return None,
        };
        ns = ns << 4 | u64::from(nibble);
    }
    Some(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut payload = vec![b'x'; 20];
        for ns in [0, 1, 0xdead_beef, u64::MAX, 1_234_567_890_123_456] {
            write(&mut payload, ns);
            assert_eq!(read(&payload), Some(ns));
            assert_eq!(&payload[16..], b"xxxx");
        }
    }

    #[test]
    fn foreign_payloads_are_rejected() {
        assert_eq!(read(b"short"), None);
        assert_eq!(read(b"0123456789ABCDEF"), None);
        assert_eq!(read(b"hello world, what"), None);
    }
}
