//! A per-shard free list of output buffers, so steady-state sending does not
//! allocate: a connection takes a buffer when it first has output and the
//! buffer comes back when its send completes. Idle connections hold none.

use ringgate_uring::Chunk;

/// Buffers above this capacity are freed instead of kept (a burst of large
/// messages must not pin memory forever).
const KEEP_CAPACITY_MAX: usize = 64 << 10;
const NEW_CAPACITY: usize = 1024;

pub struct BufferPool {
    free: Vec<Vec<u8>>,
    free_chunk_lists: Vec<Vec<Chunk>>,
    keep_max: usize,
}

impl BufferPool {
    /// `keep_max`: how many idle buffers the pool holds at most.
    pub fn new(keep_max: usize) -> BufferPool {
        BufferPool {
            free: Vec::with_capacity(keep_max),
            free_chunk_lists: Vec::new(),
            keep_max,
        }
    }

    /// Makes sure `output` has a buffer behind it and returns it.
    pub fn fill<'a>(&mut self, output: &'a mut Vec<u8>) -> &'a mut Vec<u8> {
        if output.capacity() == 0 {
            *output = self
                .free
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(NEW_CAPACITY));
        }
        output
    }

    /// A buffer from the pool (or a new one).
    pub fn take(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(NEW_CAPACITY))
    }

    /// An empty chunk list from the pool (or a new one).
    pub fn take_chunk_list(&mut self) -> Vec<Chunk> {
        self.free_chunk_lists
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(8))
    }

    /// Takes a chunk list back: owned chunks' buffers return to the pool,
    /// shared frames are released.
    pub fn put_chunk_list(&mut self, mut chunks: Vec<Chunk>) {
        for chunk in chunks.drain(..) {
            if let Chunk::Owned(bytes) = chunk {
                self.put(bytes);
            }
        }
        if chunks.capacity() != 0
            && chunks.capacity() <= 1024
            && self.free_chunk_lists.len() < self.keep_max
        {
            self.free_chunk_lists.push(chunks);
        }
    }

    /// Takes a buffer back (or frees it if it is large or the pool is full).
    pub fn put(&mut self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0
            || buffer.capacity() > KEEP_CAPACITY_MAX
            || self.free.len() >= self.keep_max
        {
            return;
        }
        buffer.clear();
        self.free.push(buffer);
    }

    pub fn idle(&self) -> usize {
        self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_not_reallocated() {
        let mut pool = BufferPool::new(4);
        let mut output = Vec::new();
        pool.fill(&mut output).extend_from_slice(b"abc");
        let pointer = output.as_ptr();
        pool.put(std::mem::take(&mut output));
        assert_eq!(pool.idle(), 1);
        pool.fill(&mut output);
        assert_eq!(output.as_ptr(), pointer);
        assert!(output.is_empty());
    }

    #[test]
    fn large_buffers_and_overflow_are_freed() {
        let mut pool = BufferPool::new(1);
        pool.put(Vec::with_capacity(KEEP_CAPACITY_MAX + 1));
        assert_eq!(pool.idle(), 0);
        pool.put(Vec::with_capacity(16));
        pool.put(Vec::with_capacity(16));
        assert_eq!(pool.idle(), 1);
    }
}
