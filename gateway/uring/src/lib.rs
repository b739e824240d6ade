//! ringgate-uring: the one crate in ringgate that holds `unsafe`.
//!
//! It wraps one io_uring instance per shard behind a small, typed surface:
//! multishot accept, multishot recv from a provided-buffer ring, owned-buffer
//! sends, close, cancel, a tick timeout and an eventfd wake-up. Callers name
//! their operations with a 56-bit [`Token`]; completions come back as
//! [`Completion`] values, drained into a caller-owned queue before any handler
//! runs (no recursion, one place that reads the completion queue).
//!
//! What it does not do: protocol work, timers beyond the tick, policy. It never
//! allocates per operation: send buffers are owned `Vec<u8>` moved in and handed
//! back with their completion, so the kernel can never see a freed buffer.
//!
//! Key number: an idle connection costs this crate nothing. Reads land in one
//! shared, pre-faulted buffer ring per shard (default 2,048 x 4 KiB = 8 MiB,
//! sized at start-up), so memory does not grow with connection count.

mod bufring;
mod ops;
pub mod sys;

pub use bufring::{BufRing, RecvBuffer};
pub use ops::{Chunk, Completion, MAX_IOVECS, Ops, RingConfig, Token, probe_io_uring};

/// A shard's ring: the operation submitter and its provided-buffer ring.
///
/// The two halves are separate fields so a caller can read a received buffer
/// (`buffers`) while it queues new operations (`ops`). Field order matters:
/// `ops` (the ring fd) drops first, so the kernel lets go of the buffer ring
/// before its memory is unmapped.
pub struct Uring {
    pub ops: Ops,
    pub buffers: BufRing,
}

impl Uring {
    /// Builds the ring and registers its provided-buffer ring (group 0).
    pub fn new(config: &RingConfig) -> std::io::Result<Uring> {
        let ops = Ops::new(config)?;
        let buffers = BufRing::register(&ops, config.buffer_count, config.buffer_size)?;
        Ok(Uring { ops, buffers })
    }
}
