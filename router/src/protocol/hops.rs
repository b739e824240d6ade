//! Hop timestamps: a list of u64 microsecond times, one appended by each hop
//! that forwards a traced message, read straight from the wire bytes.
//!
//! On the wire: a u8 count, then that many big-endian u64s. [`Hops`] borrows
//! those u64 bytes; appending one (a router forwarding a traced PUBLISH)
//! writes the longer list into a caller's [`HopBuffer`], so neither decoding
//! nor forwarding allocates.

use std::fmt;

/// Most timestamps a list holds: its count is one byte.
pub const MAX_HOPS: usize = u8::MAX as usize;

/// A hop-timestamp list, borrowed from the wire (big-endian u64s).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hops<'a> {
    // Invariant: a multiple of 8 bytes, at most MAX_HOPS * 8.
    wire: &'a [u8],
}

impl<'a> Hops<'a> {
    /// The empty list.
    pub const EMPTY: Hops<'static> = Hops { wire: &[] };

    /// A list over big-endian u64 bytes, or `None` when `wire` is not a
    /// whole number of timestamps or holds more than [`MAX_HOPS`].
    pub const fn from_wire(wire: &'a [u8]) -> Option<Hops<'a>> {
        // `& 7`: whole 8-byte timestamps (`is_multiple_of` needs Rust 1.87).
        if wire.len() & 7 != 0 || wire.len() > MAX_HOPS * 8 {
            return None;
        }
        Some(Hops { wire })
    }

    /// The timestamps' wire bytes (8 per timestamp).
    pub const fn as_wire(&self) -> &'a [u8] {
        self.wire
    }

    /// How many timestamps.
    pub const fn len(&self) -> usize {
        self.wire.len() / 8
    }

    pub const fn is_empty(&self) -> bool {
        self.wire.is_empty()
    }

    /// The timestamp at `index`, in microseconds.
    pub fn get(&self, index: usize) -> Option<u64> {
        let bytes = self.wire.get(index * 8..index * 8 + 8)?;
        Some(u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// The timestamps, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = u64> + 'a {
        self.wire
            .chunks_exact(8)
            .map(|bytes| u64::from_be_bytes(bytes.try_into().expect("8 bytes")))
    }
}

impl fmt::Debug for Hops<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Room for a full hop list, to build a longer one without allocating.
#[derive(Clone)]
pub struct HopBuffer {
    bytes: [u8; MAX_HOPS * 8],
}

impl HopBuffer {
    pub const fn new() -> HopBuffer {
        HopBuffer {
            bytes: [0; MAX_HOPS * 8],
        }
    }

    /// `hops` followed by `micros`, written into this buffer; `None` when
    /// `hops` is already full (then forward it unchanged).
    pub fn append(&mut self, hops: Hops<'_>, micros: u64) -> Option<Hops<'_>> {
        let old_len = hops.wire.len();
        if old_len == MAX_HOPS * 8 {
            return None;
        }
        self.bytes[..old_len].copy_from_slice(hops.wire);
        self.bytes[old_len..old_len + 8].copy_from_slice(&micros.to_be_bytes());
        Some(Hops {
            wire: &self.bytes[..old_len + 8],
        })
    }

    /// A list of the given timestamps, `None` over [`MAX_HOPS`].
    pub fn fill(&mut self, micros: &[u64]) -> Option<Hops<'_>> {
        if micros.len() > MAX_HOPS {
            return None;
        }
        for (slot, time) in self.bytes.chunks_exact_mut(8).zip(micros) {
            slot.copy_from_slice(&time.to_be_bytes());
        }
        Some(Hops {
            wire: &self.bytes[..micros.len() * 8],
        })
    }
}

impl Default for HopBuffer {
    fn default() -> HopBuffer {
        HopBuffer::new()
    }
}

impl fmt::Debug for HopBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HopBuffer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_must_be_whole_timestamps_within_the_count() {
        assert!(Hops::from_wire(&[0; 7]).is_none());
        assert!(Hops::from_wire(&[0; MAX_HOPS * 8 + 8]).is_none());
        assert_eq!(Hops::from_wire(&[0; MAX_HOPS * 8]).unwrap().len(), MAX_HOPS);
        assert!(Hops::from_wire(&[]).unwrap().is_empty());
    }

    #[test]
    fn append_extends_and_stops_when_full() {
        let mut first = HopBuffer::new();
        let one = first.fill(&[1, 2]).unwrap();
        let mut second = HopBuffer::new();
        let longer = second.append(one, 3).unwrap();
        assert_eq!(longer.iter().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(longer.get(2), Some(3));
        assert_eq!(longer.get(3), None);
        let full = Hops::from_wire(&[0; MAX_HOPS * 8]).unwrap();
        assert!(second.append(full, 9).is_none());
        assert!(first.fill(&[0; MAX_HOPS + 1]).is_none());
    }
}
