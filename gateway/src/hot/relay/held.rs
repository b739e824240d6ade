//! Publishes held for a router that went down after having been up (the
//! DEGRADED state, docs/CLIENT_PROTOCOL.md `status`).
//!
//! One per link per shard: the encoded PUBLISH frames back to back in one
//! byte buffer, and their publish ids and lengths in order. Bounded by a
//! message count (`limits.degraded_buffer_messages`, 10,000 by default) and
//! [`HELD_BYTES_MAX`] (8 MiB); beyond either a publish is refused. When the
//! link is back the frames are released in order into its output as the
//! router's publish credit allows; the relay first sends the oldest alone
//! ([`Held::front`]) and drops it ([`Held::pop_front`]) only once the router
//! took it, because a router that just restarted refuses publishes for a few
//! seconds. Holding and releasing copy bytes but
//! allocate nothing once the buffers have grown. The buffer lives in memory
//! only: a gateway restart loses it (clients retry by id).

use std::collections::VecDeque;

use ringgate_router::protocol::CreditWindow;

/// Default most publishes held per link per shard.
pub const HELD_MESSAGES_DEFAULT: usize = 10_000;
/// Most bytes of held PUBLISH frames per link per shard.
pub const HELD_BYTES_MAX: usize = 8 << 20;

/// Why a publish was not held.
#[derive(Debug, PartialEq, Eq)]
pub enum HoldRefused<E> {
    /// The message or byte bound is reached.
    Full,
    /// The frame could not be encoded (too large for the protocol).
    Encode(E),
}

#[derive(Debug)]
pub struct Held {
    /// Encoded frames; those before `start` were released already.
    bytes: Vec<u8>,
    start: usize,
    /// Publish id and frame length of each held frame, oldest first.
    frames: VecDeque<(u64, u32)>,
    messages_max: usize,
    bytes_max: usize,
}

impl Held {
    pub fn new(messages_max: usize, bytes_max: usize) -> Held {
        Held {
            bytes: Vec::new(),
            start: 0,
            frames: VecDeque::new(),
            messages_max,
            bytes_max,
        }
    }

    /// Publishes held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of held frames.
    pub fn held_bytes(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Whether one more publish may be held (bytes permitting).
    pub fn has_room(&self) -> bool {
        self.frames.len() < self.messages_max && self.held_bytes() < self.bytes_max
    }

    /// Appends the frame `encode` writes, after the ones already held.
    /// Returns its length.
    pub fn hold<E>(
        &mut self,
        publish_id: u64,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<usize, E>,
    ) -> Result<usize, HoldRefused<E>> {
        if !self.has_room() {
            return Err(HoldRefused::Full);
        }
        let before = self.bytes.len();
        let length = match encode(&mut self.bytes) {
            Ok(length) => length,
            Err(error) => {
                self.bytes.truncate(before);
                return Err(HoldRefused::Encode(error));
            }
        };
        if self.held_bytes() > self.bytes_max {
            self.bytes.truncate(before);
            return Err(HoldRefused::Full);
        }
        self.frames.push_back((publish_id, length as u32));
        Ok(length)
    }

    /// The oldest held frame and its publish id (it stays held).
    pub fn front(&self) -> Option<(u64, &[u8])> {
        let &(publish_id, length) = self.frames.front()?;
        Some((
            publish_id,
            &self.bytes[self.start..self.start + length as usize],
        ))
    }

    /// Drops the oldest held frame (the router took it).
    pub fn pop_front(&mut self) {
        if let Some((_, length)) = self.frames.pop_front() {
            self.start += length as usize;
            self.compact();
        }
    }

    /// Moves held frames, oldest first, into `output` while `credit` lets
    /// them be sent, calling `released` with each one's publish id. Returns
    /// how many were released.
    pub fn release(
        &mut self,
        credit: &mut CreditWindow,
        output: &mut Vec<u8>,
        mut released: impl FnMut(u64),
    ) -> usize {
        let mut count = 0;
        while let Some(&(publish_id, length)) = self.frames.front() {
            if credit.spend(length as usize).is_err() {
                break;
            }
            let end = self.start + length as usize;
            output.extend_from_slice(&self.bytes[self.start..end]);
            self.start = end;
            self.frames.pop_front();
            released(publish_id);
            count += 1;
        }
        self.compact();
        count
    }

    /// Forgets released bytes: at once when nothing is held, else once they
    /// are half the buffer (not per frame).
    fn compact(&mut self) {
        if self.frames.is_empty() {
            self.bytes.clear();
            self.start = 0;
        } else if self.start > self.bytes.len() / 2 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        if self.bytes.is_empty() && self.bytes.capacity() > 1 << 20 {
            // The outage is over: give its memory back.
            self.bytes = Vec::new();
            self.frames = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringgate_router::protocol::Credit;

    fn frame(tag: u8, length: usize) -> impl FnOnce(&mut Vec<u8>) -> Result<usize, ()> {
        move |out| {
            out.extend(std::iter::repeat_n(tag, length));
            Ok(length)
        }
    }

    fn credit(messages: u32, bytes: u32) -> CreditWindow {
        CreditWindow::new(Credit { messages, bytes })
    }

    #[test]
    fn releases_in_order_as_credit_allows() {
        let mut held = Held::new(10, 1_000);
        for tag in 1..=4u8 {
            held.hold(u64::from(tag), frame(tag, 3)).unwrap();
        }
        assert_eq!((held.len(), held.held_bytes()), (4, 12));
        let mut output = Vec::new();
        let mut ids = Vec::new();
        let mut window = credit(3, 1_000);
        assert_eq!(held.release(&mut window, &mut output, |id| ids.push(id)), 3);
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(output, [1, 1, 1, 2, 2, 2, 3, 3, 3]);
        assert_eq!((held.len(), held.held_bytes()), (1, 3));
        // A publish held meanwhile goes after the one still waiting.
        held.hold(5, frame(5, 2)).unwrap();
        window
            .grant(Credit {
                messages: 10,
                bytes: 100,
            })
            .unwrap();
        output.clear();
        assert_eq!(held.release(&mut window, &mut output, |id| ids.push(id)), 2);
        assert_eq!(ids, [1, 2, 3, 4, 5]);
        assert_eq!(output, [4, 4, 4, 5, 5]);
        assert!(held.is_empty());
        assert_eq!(held.held_bytes(), 0);
    }

    #[test]
    fn the_front_stays_held_until_popped() {
        let mut held = Held::new(10, 100);
        held.hold(1, frame(1, 2)).unwrap();
        held.hold(2, frame(2, 3)).unwrap();
        assert_eq!(held.front(), Some((1, &[1u8, 1][..])));
        assert_eq!(
            held.front(),
            Some((1, &[1u8, 1][..])),
            "a retry sees it again"
        );
        held.pop_front();
        assert_eq!(held.front(), Some((2, &[2u8, 2, 2][..])));
        assert_eq!((held.len(), held.held_bytes()), (1, 3));
        held.pop_front();
        assert_eq!(held.front(), None);
        assert_eq!(held.held_bytes(), 0);
    }

    #[test]
    fn refuses_beyond_the_message_bound() {
        let mut held = Held::new(2, 1_000);
        held.hold(1, frame(1, 1)).unwrap();
        held.hold(2, frame(2, 1)).unwrap();
        assert_eq!(held.hold(3, frame(3, 1)), Err(HoldRefused::Full));
        assert_eq!(held.len(), 2);
    }

    #[test]
    fn refuses_beyond_the_byte_bound_and_keeps_what_it_holds() {
        let mut held = Held::new(100, 10);
        held.hold(1, frame(1, 6)).unwrap();
        assert_eq!(held.hold(2, frame(2, 6)), Err(HoldRefused::Full));
        assert_eq!(held.held_bytes(), 6);
        held.hold(3, frame(3, 4)).unwrap();
        assert!(!held.has_room());
        let mut output = Vec::new();
        held.release(&mut credit(10, 100), &mut output, |_| {});
        assert_eq!(output, [1, 1, 1, 1, 1, 1, 3, 3, 3, 3]);
    }

    #[test]
    fn an_encoding_failure_holds_nothing() {
        let mut held = Held::new(10, 100);
        held.hold(1, frame(1, 2)).unwrap();
        let refused = held.hold(2, |out: &mut Vec<u8>| {
            out.push(9);
            Err("too large")
        });
        assert_eq!(refused, Err(HoldRefused::Encode("too large")));
        assert_eq!((held.len(), held.held_bytes()), (1, 2));
    }

    #[test]
    fn nothing_is_released_without_credit() {
        let mut held = Held::new(10, 100);
        held.hold(1, frame(1, 2)).unwrap();
        let mut output = Vec::new();
        assert_eq!(held.release(&mut credit(0, 100), &mut output, |_| {}), 0);
        assert!(output.is_empty());
        assert_eq!(held.len(), 1);
    }
}
