//! The provided-buffer ring (IORING_REGISTER_PBUF_RING) a shard's multishot
//! receives read into.
//!
//! Ownership protocol: every buffer is either in the ring (the kernel may write
//! it at any time) or lent out to user space as a [`RecvBuffer`] that the
//! completion drain created. Only a `RecvBuffer` gives access to a buffer's
//! bytes, and [`BufRing::recycle`] consumes it, so user space never touches a
//! buffer the kernel may be writing. Recycled entries become visible to the
//! kernel at [`BufRing::publish`] (one release store per event-loop turn).

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use crate::ops::Ops;

/// The buffer group id every multishot recv of this crate selects from.
pub(crate) const BUFFER_GROUP: u16 = 0;

/// A received buffer lent to user space by a recv completion.
///
/// Not `Clone`: it is the proof that the kernel handed this buffer over.
#[must_use = "a RecvBuffer must go back through BufRing::recycle or the ring drains"]
#[derive(Debug)]
pub struct RecvBuffer {
    pub(crate) id: u16,
    pub(crate) len: u32,
}

impl RecvBuffer {
    /// Bytes the kernel wrote.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True if the kernel wrote nothing (never produced for a real recv).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A per-shard ring of equally sized receive buffers, sized and pre-faulted at
/// start-up so its memory never grows with the number of connections.
pub struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_bytes: usize,
    data: NonNull<u8>,
    data_bytes: usize,
    buffer_size: u32,
    mask: u16,
    tail: u16,
    lent: u32,
}

/// Maps `bytes` of anonymous, pre-faulted, page-aligned memory.
fn map_populated(bytes: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: an anonymous private mapping with a null hint has no
    // preconditions; the result is checked against MAP_FAILED below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap returned null"))
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes and registers them with the
    /// ring as buffer group [`BUFFER_GROUP`]. `count` must be a power of two
    /// no larger than 32,768 (the kernel's limit).
    pub(crate) fn register(ops: &Ops, count: u16, size: u32) -> io::Result<BufRing> {
        if !count.is_power_of_two() || count > 32_768 || size == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer count must be a power of two <= 32768 and size > 0",
            ));
        }
        let entries_bytes = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        let data_bytes = usize::from(count) * size as usize;
        let entries = map_populated(entries_bytes)?.cast::<BufRingEntry>();
        let data = match map_populated(data_bytes) {
            Ok(data) => data,
            Err(error) => {
                // SAFETY: `entries` was mapped above with exactly this length
                // and nothing else refers to it yet.
                unsafe { libc::munmap(entries.as_ptr().cast(), entries_bytes) };
                return Err(error);
            }
        };
        let mut ring = BufRing {
            entries,
            entries_bytes,
            data,
            data_bytes,
            buffer_size: size,
            mask: count - 1,
            tail: 0,
            lent: 0,
        };
        for id in 0..count {
            ring.push(id);
        }
        ring.publish();
        // SAFETY: the entries array is page aligned (mmap), holds `count`
        // entries and stays mapped until `self` drops, which the owning
        // `Uring` orders after the ring fd is closed.
        unsafe { ops.register_buf_ring(entries.as_ptr() as u64, count, BUFFER_GROUP) }?;
        Ok(ring)
    }

    /// Wraps a completion's buffer id and length as a lent buffer.
    pub(crate) fn lend(&mut self, id: u16, len: u32) -> RecvBuffer {
        debug_assert!(len <= self.buffer_size);
        self.lent += 1;
        RecvBuffer { id, len }
    }

    /// The received bytes of a lent buffer, writable (the WebSocket decoder
    /// unmasks in place).
    pub fn bytes_mut(&mut self, buffer: &RecvBuffer) -> &mut [u8] {
        let offset = usize::from(buffer.id) * self.buffer_size as usize;
        assert!(offset + buffer.len() <= self.data_bytes);
        // SAFETY: `buffer` exists only between the kernel's completion for
        // this id and `recycle`, so the kernel does not write this range now;
        // the range lies inside the data mapping (asserted above); the
        // returned borrow is tied to `&mut self`, so no two slices alias.
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr().add(offset), buffer.len()) }
    }

    /// Gives a lent buffer back to the ring (visible to the kernel after
    /// [`BufRing::publish`]).
    pub fn recycle(&mut self, buffer: RecvBuffer) {
        self.lent -= 1;
        self.push(buffer.id);
    }

    /// Buffers currently lent to user space.
    pub fn lent(&self) -> u32 {
        self.lent
    }

    /// Size of each buffer in bytes.
    pub fn buffer_size(&self) -> u32 {
        self.buffer_size
    }

    fn push(&mut self, id: u16) {
        let slot = usize::from(self.tail & self.mask);
        let addr = self.data.as_ptr() as u64 + u64::from(id) * u64::from(self.buffer_size);
        // SAFETY: `slot` < count, so the entry lies inside the entries
        // mapping. The kernel only reads entries between its head and the
        // published tail; this slot is past the published tail, so user space
        // owns it until `publish`.
        let entry = unsafe { &mut *self.entries.as_ptr().add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.buffer_size);
        entry.set_bid(id);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every recycled buffer visible to the kernel.
    pub fn publish(&mut self) {
        // SAFETY: `BufRingEntry::tail` only computes the address of entry 0's
        // tail field inside our mapping; the kernel reads that u16 with acquire
        // semantics, so it is accessed here only through an atomic.
        let tail = unsafe { &*BufRingEntry::tail(self.entries.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: both regions were mapped in `register` with these lengths;
        // the ring fd that referenced them was closed first (field order of
        // `Uring`), so nothing reads or writes them any more.
        unsafe {
            libc::munmap(self.data.as_ptr().cast(), self.data_bytes);
            libc::munmap(self.entries.as_ptr().cast(), self.entries_bytes);
        }
    }
}
