//! A per-shard free list of output buffers, so steady-state sending does not
//! allocate: a connection takes a buffer when it first has output and the
//! buffer comes back when its send completes. Idle connections hold none.

/// Buffers above this capacity are freed instead of kept (a burst of large
/// messages must not pin memory forever).
const KEEP_CAPACITY_MAX: usize = 64 << 10;
const NEW_CAPACITY: usize = 1024;

pub struct BufferPool {
    free: Vec<Vec<u8>>,
    keep_max: usize,
}

impl BufferPool {
    /// `keep_max`: how many idle buffers the pool holds at most.
    pub fn new(keep_max: usize) -> BufferPool {
        BufferPool {
            free: Vec::with_capacity(keep_max),
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
