//! The send timestamp carried in each echo payload.
//!
//! The first 16 payload bytes are the intended send time (monotonic ns) as
//! lowercase hex: valid UTF-8 for text messages, and the echo brings it back,
//! so a connection needs no per-message state to time its replies.
//!
//! Both directions work 8 hex digits at a time inside a u64 (SWAR), with no
//! branch per digit: they run once per message, and loadgen's own CPU per
//! message is one of the figures it reports.

pub const STAMP_LEN: usize = 16;

const ONES: u64 = 0x0101_0101_0101_0101;

/// Writes `ns` into `payload[..16]`.
#[inline]
pub fn write(payload: &mut [u8], ns: u64) {
    payload[..STAMP_LEN].copy_from_slice(&encode(ns));
}

/// The 16 bytes of the stamp for `ns`.
#[inline]
pub fn encode(ns: u64) -> [u8; STAMP_LEN] {
    let digits = u128::from(encode8((ns >> 32) as u32)) << 64 | u128::from(encode8(ns as u32));
    digits.to_be_bytes()
}

/// Reads the stamp back; `None` if the payload is short or not our hex.
#[inline]
pub fn read(payload: &[u8]) -> Option<u64> {
    let digits = payload.get(..STAMP_LEN)?;
    let high = u64::from_be_bytes(digits[..8].try_into().ok()?);
    let low = u64::from_be_bytes(digits[8..].try_into().ok()?);
    Some(u64::from(decode8(high)?) << 32 | u64::from(decode8(low)?))
}

/// `read` and `encode` with the last answer of each remembered. A closed
/// loop stamps every message it queues in one loop turn with the same clock
/// reading, and the replies come back together, so most stamps repeat the
/// one before: a 16-byte compare then replaces the hex work.
#[derive(Debug, Clone)]
pub struct StampCache {
    last_read: (u128, u64),
    last_encoded: (u64, [u8; STAMP_LEN]),
}

impl Default for StampCache {
    fn default() -> Self {
        let zero = encode(0);
        StampCache {
            last_read: (u128::from_ne_bytes(zero), 0),
            last_encoded: (0, zero),
        }
    }
}

impl StampCache {
    /// As [`read`].
    #[inline]
    pub fn read(&mut self, payload: &[u8]) -> Option<u64> {
        let digits: [u8; STAMP_LEN] = payload.get(..STAMP_LEN)?.try_into().ok()?;
        let digits = u128::from_ne_bytes(digits);
        if digits == self.last_read.0 {
            return Some(self.last_read.1);
        }
        let ns = read(payload)?;
        self.last_read = (digits, ns);
        Some(ns)
    }

    /// As [`encode`].
    #[inline]
    pub fn encode(&mut self, ns: u64) -> [u8; STAMP_LEN] {
        if ns != self.last_encoded.0 {
            self.last_encoded = (ns, encode(ns));
        }
        self.last_encoded.1
    }
}

/// Eight lowercase hex digits of `value`, most significant first, as the
/// big-endian bytes of the result.
fn encode8(value: u32) -> u64 {
    // Spread the eight nibbles into the low half of eight bytes.
    let mut v = u64::from(value);
    v = (v | v << 16) & 0x0000_FFFF_0000_FFFF;
    v = (v | v << 8) & 0x00FF_00FF_00FF_00FF;
    v = (v | v << 4) & 0x0F0F_0F0F_0F0F_0F0F;
    ascii_of_nibbles(v)
}

/// '0'..'9' for 0..9, 'a'..'f' for 10..15, per byte.
fn ascii_of_nibbles(nibbles: u64) -> u64 {
    // A byte holding 10..15 carries into bit 4 when 6 is added.
    let letters = ((nibbles + 6 * ONES) >> 4) & ONES;
    nibbles + 0x30 * ONES + letters * (b'a' - b'0' - 10) as u64
}

/// The value of eight hex digits (big-endian bytes of `ascii`), or `None`
/// unless every byte is one of `0-9a-f`.
fn decode8(ascii: u64) -> Option<u32> {
    // For '0'..'9' the low nibble is the value; for 'a'..'f' (0x61..) bit 6
    // is set and the value is the low nibble plus 9.
    let letters = (ascii >> 6) & ONES;
    let nibbles = (ascii & 0x0F0F_0F0F_0F0F_0F0F) + letters * 9;
    // Anything else decodes to some nibbles too; re-encoding catches it.
    if nibbles & !0x0F0F_0F0F_0F0F_0F0F != 0 || ascii_of_nibbles(nibbles) != ascii {
        return None;
    }
    let mut v = nibbles;
    v = (v | v >> 4) & 0x00FF_00FF_00FF_00FF;
    v = (v | v >> 8) & 0x0000_FFFF_0000_FFFF;
    v = (v | v >> 16) & 0x0000_0000_FFFF_FFFF;
    Some(v as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The obvious digit-at-a-time version, as the oracle.
    fn read_scalar(payload: &[u8]) -> Option<u64> {
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

    fn values() -> impl Iterator<Item = u64> {
        let mut x = 0x1234_5678_9abc_def0u64;
        let random = (0..10_000).map(move |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        });
        [
            0,
            1,
            9,
            10,
            15,
            16,
            0xdead_beef,
            u64::MAX,
            1_234_567_890_123_456,
        ]
        .into_iter()
        .chain(random)
    }

    #[test]
    fn stamps_round_trip_and_match_plain_hex() {
        let mut payload = vec![b'x'; 20];
        for ns in values() {
            write(&mut payload, ns);
            assert_eq!(&payload[..16], format!("{ns:016x}").as_bytes());
            assert_eq!(read(&payload), Some(ns));
            assert_eq!(&payload[16..], b"xxxx");
        }
    }

    #[test]
    fn every_byte_is_checked() {
        let mut payload = *b"0123456789abcdef";
        for position in 0..STAMP_LEN {
            for byte in 0..=255u8 {
                let original = payload[position];
                payload[position] = byte;
                assert_eq!(
                    read(&payload),
                    read_scalar(&payload),
                    "byte {byte:#x} at {position}"
                );
                payload[position] = original;
            }
        }
    }

    #[test]
    fn the_cache_answers_as_the_functions_do() {
        let mut cache = StampCache::default();
        let mut payload = *b"0000000000000000xx";
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            // Mostly repeats, as in a closed loop; some garbage.
            let ns = if rng.is_multiple_of(3) { rng } else { rng % 4 };
            assert_eq!(cache.encode(ns), encode(ns));
            write(&mut payload, ns);
            if rng.is_multiple_of(11) {
                payload[(rng % 16) as usize] = b'G';
            }
            assert_eq!(cache.read(&payload), read(&payload));
        }
        assert_eq!(cache.read(b"short"), None);
    }

    #[test]
    fn foreign_payloads_are_rejected() {
        assert_eq!(read(b"short"), None);
        assert_eq!(read(b"0123456789ABCDEF"), None);
        assert_eq!(read(b"hello world, what"), None);
        assert_eq!(read(&[0xff; 16]), None);
    }
}
