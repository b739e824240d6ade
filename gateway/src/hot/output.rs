//! A connection's queued output.
//!
//! The common case (echo, acks, control frames) is one pooled `Vec<u8>` sent
//! with a plain send. Once a shared frame is queued (a delivery encoded once
//! for every local subscriber), output becomes an ordered chunk list of own
//! bytes and shared frames, sent with one sendmsg. Invariant: while `chunks`
//! is non-empty, `bytes` is empty, so order is kept.

use std::rc::Rc;

use ringgate_uring::{Chunk, Ops, Token};

use super::pool::BufferPool;

#[derive(Default)]
pub struct Output {
    bytes: Vec<u8>,
    chunks: Vec<Chunk>,
}

/// What one send takes off the queue.
pub enum Outgoing {
    Bytes(Vec<u8>),
    Chunks(Vec<Chunk>),
}

impl Outgoing {
    /// Bytes in the whole send.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Bytes(bytes) => bytes.len(),
            Outgoing::Chunks(chunks) => chunks.iter().map(|chunk| chunk.bytes().len()).sum(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Submits the bytes after the first `from`: a plain send for one
    /// buffer, a sendmsg for a chunk list.
    pub fn submit(self, ops: &mut Ops, fd: i32, from: usize, token: Token) -> std::io::Result<()> {
        match self {
            Outgoing::Bytes(bytes) => ops.send(fd, bytes, from, token),
            Outgoing::Chunks(chunks) => ops.send_chunks(fd, chunks, from, token),
        }
    }

    /// Gives the buffers back to the pool (shared frames are released).
    pub fn recycle(self, pool: &mut BufferPool) {
        match self {
            Outgoing::Bytes(bytes) => pool.put(bytes),
            Outgoing::Chunks(chunks) => pool.put_chunk_list(chunks),
        }
    }
}

impl Output {
    /// Where to append own bytes.
    pub fn writer(&mut self, pool: &mut BufferPool) -> &mut Vec<u8> {
        if self.chunks.is_empty() {
            return pool.fill(&mut self.bytes);
        }
        if !matches!(self.chunks.last(), Some(Chunk::Owned(_))) {
            self.chunks.push(Chunk::Owned(pool.take()));
        }
        match self.chunks.last_mut() {
            Some(Chunk::Owned(bytes)) => bytes,
            _ => unreachable!("an owned chunk was just ensured"),
        }
    }

    /// Queues a frame shared with other connections, after what is queued.
    pub fn push_shared(&mut self, frame: Rc<[u8]>, pool: &mut BufferPool) {
        if self.chunks.is_empty() {
            self.chunks = pool.take_chunk_list();
            if !self.bytes.is_empty() {
                self.chunks
                    .push(Chunk::Owned(std::mem::take(&mut self.bytes)));
            }
        }
        self.chunks.push(Chunk::Shared(frame));
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.chunks.is_empty()
    }

    /// Bytes queued (what the write-queue cap limits, with what is in flight).
    pub fn queued_bytes(&self) -> usize {
        self.bytes.len()
            + self
                .chunks
                .iter()
                .map(|chunk| chunk.bytes().len())
                .sum::<usize>()
    }

    /// Takes everything queued for one send.
    pub fn take(&mut self) -> Option<Outgoing> {
        if !self.chunks.is_empty() {
            return Some(Outgoing::Chunks(std::mem::take(&mut self.chunks)));
        }
        if !self.bytes.is_empty() {
            return Some(Outgoing::Bytes(std::mem::take(&mut self.bytes)));
        }
        None
    }

    /// Drops everything queued, returning buffers to the pool.
    pub fn clear(&mut self, pool: &mut BufferPool) {
        pool.put(std::mem::take(&mut self.bytes));
        pool.put_chunk_list(std::mem::take(&mut self.chunks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(outgoing: Outgoing) -> Vec<u8> {
        match outgoing {
            Outgoing::Bytes(bytes) => bytes,
            Outgoing::Chunks(chunks) => chunks.iter().flat_map(|c| c.bytes().to_vec()).collect(),
        }
    }

    #[test]
    fn own_bytes_only_stay_one_buffer() {
        let mut pool = BufferPool::new(4);
        let mut output = Output::default();
        output.writer(&mut pool).extend_from_slice(b"ab");
        output.writer(&mut pool).extend_from_slice(b"cd");
        assert_eq!(output.queued_bytes(), 4);
        assert!(matches!(output.take(), Some(Outgoing::Bytes(bytes)) if bytes == b"abcd"));
        assert!(output.is_empty());
    }

    #[test]
    fn shared_frames_keep_their_place() {
        let mut pool = BufferPool::new(4);
        let mut output = Output::default();
        let frame: Rc<[u8]> = Rc::from(&b"[shared]"[..]);
        output.writer(&mut pool).extend_from_slice(b"ack1");
        output.push_shared(Rc::clone(&frame), &mut pool);
        output.writer(&mut pool).extend_from_slice(b"ack2");
        output.push_shared(Rc::clone(&frame), &mut pool);
        assert_eq!(Rc::strong_count(&frame), 3, "shared, not copied");
        assert_eq!(output.queued_bytes(), 24);
        assert_eq!(flatten(output.take().unwrap()), b"ack1[shared]ack2[shared]");
        assert!(output.is_empty());
    }

    #[test]
    fn clear_returns_buffers() {
        let mut pool = BufferPool::new(4);
        let mut output = Output::default();
        output.writer(&mut pool).extend_from_slice(b"x");
        output.push_shared(Rc::from(&b"y"[..]), &mut pool);
        output.writer(&mut pool).extend_from_slice(b"z");
        output.clear(&mut pool);
        assert!(output.is_empty());
        assert!(pool.idle() >= 2);
    }
}
