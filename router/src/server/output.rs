//! One peer's queued output, and the credit that gates part of it.
//!
//! Two queues. `ready` holds bytes that may go out now, in order: control
//! frames (acks, replies, pongs, presence, kicks) encoded into owned buffers,
//! and flow-controlled frames (PUBLISH to a backend, DELIVER to a gateway)
//! that credit allowed; a DELIVER fanned out to many gateways is one shared
//! `Rc` frame, queued on each without a copy. `blocked` holds
//! flow-controlled frames waiting for the peer's credit, in order; a CREDIT
//! from the peer moves them to `ready`. So control frames may overtake
//! flow-controlled ones that wait for credit, and flow-controlled frames
//! never overtake each other.

use std::collections::VecDeque;

use ringgate_uring::Chunk;

use crate::protocol::{Credit, CreditError, CreditWindow, EncodeError, Encoder, Frame};

/// Spare buffers and chunk lists, so steady traffic allocates nothing but
/// the shared frames themselves.
#[derive(Default)]
pub(super) struct BufferPool {
    buffers: Vec<Vec<u8>>,
    lists: Vec<Vec<Chunk>>,
}

/// Buffers kept for reuse; a larger one is freed instead.
const POOLED_BUFFER_BYTES: usize = 256 << 10;
/// Spare buffers and lists kept.
const POOLED_COUNT: usize = 256;

impl BufferPool {
    fn take(&mut self) -> Vec<u8> {
        self.buffers.pop().unwrap_or_default()
    }

    fn put(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0
            || buffer.capacity() > POOLED_BUFFER_BYTES
            || self.buffers.len() >= POOLED_COUNT
        {
            return;
        }
        buffer.clear();
        self.buffers.push(buffer);
    }

    fn take_list(&mut self) -> Vec<Chunk> {
        self.lists.pop().unwrap_or_default()
    }

    /// Returns a list's owned buffers and the list itself.
    pub(super) fn put_list(&mut self, mut list: Vec<Chunk>) {
        for chunk in list.drain(..) {
            if let Chunk::Owned(buffer) = chunk {
                self.put(buffer);
            }
        }
        if self.lists.len() < POOLED_COUNT {
            self.lists.push(list);
        }
    }
}

pub(super) struct Output {
    ready: Vec<Chunk>,
    ready_bytes: usize,
    blocked: VecDeque<Chunk>,
    blocked_bytes: usize,
    /// What the peer lets the router send (its HELLO grant plus CREDITs).
    window: CreditWindow,
}

impl Output {
    pub(super) fn new() -> Output {
        Output {
            ready: Vec::new(),
            ready_bytes: 0,
            blocked: VecDeque::new(),
            blocked_bytes: 0,
            window: CreditWindow::new(Credit::default()),
        }
    }

    /// Starts a session with the peer's initial grant.
    pub(super) fn set_window(&mut self, initial: Credit) {
        self.window = CreditWindow::new(initial);
    }

    /// Bytes queued in both queues (not counting a send in flight).
    pub(super) fn queued_bytes(&self) -> usize {
        self.ready_bytes + self.blocked_bytes
    }

    /// Frames waiting for credit.
    pub(super) fn blocked_frames(&self) -> usize {
        self.blocked.len()
    }

    /// Appends a control frame to `ready`; returns its length.
    pub(super) fn control(
        &mut self,
        encoder: &Encoder,
        frame: &Frame<'_>,
        pool: &mut BufferPool,
    ) -> Result<usize, EncodeError> {
        let buffer = self.owned_tail(pool);
        match encoder.encode(frame, buffer) {
            Ok(written) => {
                self.ready_bytes += written;
                Ok(written)
            }
            Err(error) => {
                // Never leave an empty buffer queued: a send needs bytes.
                if matches!(self.ready.last(), Some(Chunk::Owned(tail)) if tail.is_empty())
                    && let Some(Chunk::Owned(empty)) = self.ready.pop()
                {
                    pool.put(empty);
                }
                Err(error)
            }
        }
    }

    /// Queues a flow-controlled frame: `ready` if credit allows and nothing
    /// waits before it, else `blocked`.
    pub(super) fn flow(&mut self, frame: Chunk, pool: &mut BufferPool) {
        let length = frame.bytes().len();
        if self.blocked.is_empty() && self.window.spend(length).is_ok() {
            self.push_ready(frame, pool);
        } else {
            self.blocked_bytes += length;
            self.blocked.push_back(frame);
        }
    }

    /// Adds the peer's CREDIT and moves what it allows to `ready`.
    pub(super) fn grant(
        &mut self,
        credit: Credit,
        pool: &mut BufferPool,
    ) -> Result<(), CreditError> {
        self.window.grant(credit)?;
        while let Some(front) = self.blocked.front() {
            let length = front.bytes().len();
            if self.window.spend(length).is_err() {
                break;
            }
            self.blocked_bytes -= length;
            let frame = self.blocked.pop_front().expect("front exists");
            self.push_ready(frame, pool);
        }
        Ok(())
    }

    /// Takes everything ready for one send; `None` when nothing is.
    pub(super) fn take_ready(&mut self, pool: &mut BufferPool) -> Option<(Vec<Chunk>, usize)> {
        if self.ready.is_empty() {
            return None;
        }
        let spare = pool.take_list();
        let bytes = std::mem::replace(&mut self.ready_bytes, 0);
        Some((std::mem::replace(&mut self.ready, spare), bytes))
    }

    /// Drops the frames waiting for credit (the peer is going away; what
    /// is ready still goes out before its GOAWAY).
    pub(super) fn drop_blocked(&mut self) {
        self.blocked.clear();
        self.blocked_bytes = 0;
    }

    /// Drops everything queued (the peer is going away).
    pub(super) fn clear(&mut self, pool: &mut BufferPool) {
        let ready = std::mem::take(&mut self.ready);
        pool.put_list(ready);
        self.blocked.clear();
        self.ready_bytes = 0;
        self.blocked_bytes = 0;
    }

    fn push_ready(&mut self, frame: Chunk, pool: &mut BufferPool) {
        self.ready_bytes += frame.bytes().len();
        match (frame, self.ready.last_mut()) {
            (Chunk::Owned(bytes), Some(Chunk::Owned(tail))) => {
                tail.extend_from_slice(&bytes);
                pool.put(bytes);
            }
            (frame, _) => self.ready.push(frame),
        }
    }

    /// The owned buffer at the end of `ready`, added if the tail is shared.
    fn owned_tail(&mut self, pool: &mut BufferPool) -> &mut Vec<u8> {
        if !matches!(self.ready.last(), Some(Chunk::Owned(_))) {
            self.ready.push(Chunk::Owned(pool.take()));
        }
        match self.ready.last_mut() {
            Some(Chunk::Owned(bytes)) => bytes,
            _ => unreachable!("an owned tail was just ensured"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Frame, Ping};
    use std::rc::Rc;

    fn shared(bytes: &[u8]) -> Rc<[u8]> {
        Rc::from(bytes)
    }

    fn flatten(chunks: &[Chunk]) -> Vec<u8> {
        chunks
            .iter()
            .flat_map(|chunk| chunk.bytes().to_vec())
            .collect()
    }

    #[test]
    fn flow_frames_wait_for_credit_and_keep_their_order() {
        let mut pool = BufferPool::default();
        let mut output = Output::new();
        output.set_window(Credit {
            messages: 1,
            bytes: 100,
        });
        output.flow(Chunk::Shared(shared(b"one")), &mut pool);
        output.flow(Chunk::Shared(shared(b"two")), &mut pool);
        output.flow(Chunk::Owned(b"three".to_vec()), &mut pool);
        let ping = Frame::Ping(Ping::default());
        let ping_len = output
            .control(&Encoder::default(), &ping, &mut pool)
            .unwrap();
        assert_eq!(output.blocked_frames(), 2);
        let (chunks, bytes) = output.take_ready(&mut pool).unwrap();
        assert_eq!(bytes, 3 + ping_len);
        assert!(
            flatten(&chunks).starts_with(b"one"),
            "control frames overtake blocked ones"
        );
        output
            .grant(
                Credit {
                    messages: 5,
                    bytes: 100,
                },
                &mut pool,
            )
            .unwrap();
        let (chunks, _) = output.take_ready(&mut pool).unwrap();
        assert_eq!(flatten(&chunks), b"twothree");
        assert_eq!(output.queued_bytes(), 0);
    }
}
