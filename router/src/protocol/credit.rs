//! Flow-control arithmetic for one direction of one connection.
//!
//! The receiver grants credit (initially in HELLO/HELLO_ACK, then with CREDIT
//! frames); the sender spends it on PUBLISH and DELIVER frames. Both sides
//! run the same [`CreditWindow`] over the same numbers, so they agree on
//! every decision: the sender calls [`CreditWindow::spend`] before sending
//! (and waits when it fails), the receiver calls it on arrival (and closes
//! the connection with GOAWAY `FLOW_CONTROL` when it fails).
//!
//! The rule: a frame may be sent while at least one message and at least one
//! byte of credit remain. It then costs one message and its whole length
//! (header included), so the byte balance may go negative by less than one
//! frame. That lets a receiver grant fewer bytes than its largest frame
//! without deadlock, and still bounds what it must hold to its grant plus
//! one frame.

use super::types::Credit;

/// Credit spent beyond what was granted, or a grant too large to track.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CreditError {
    /// No credit left: the sender must wait; a receiver that sees it closes.
    #[error("no credit left ({messages} messages, {bytes} bytes)")]
    Exhausted { messages: u64, bytes: i64 },
    /// A grant would overflow the balance (a peer granting without end).
    #[error("credit grant overflows the balance")]
    Overflow,
}

/// The credit balance of one direction: what the sender may still send.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CreditWindow {
    messages: u64,
    bytes: i64,
}

impl CreditWindow {
    /// A window holding the initial grant from the handshake.
    pub const fn new(initial: Credit) -> CreditWindow {
        CreditWindow {
            messages: initial.messages as u64,
            bytes: initial.bytes as i64,
        }
    }

    /// Adds a CREDIT grant.
    pub fn grant(&mut self, credit: Credit) -> Result<(), CreditError> {
        let messages = self.messages.checked_add(u64::from(credit.messages));
        let bytes = self.bytes.checked_add(i64::from(credit.bytes));
        let (Some(messages), Some(bytes)) = (messages, bytes) else {
            return Err(CreditError::Overflow);
        };
        self.messages = messages;
        self.bytes = bytes;
        Ok(())
    }

    /// Whether a flow-controlled frame may be sent now.
    pub const fn can_spend(&self) -> bool {
        self.messages > 0 && self.bytes > 0
    }

    /// Spends credit on one frame of `frame_len` bytes (header included).
    /// Unchanged on error.
    pub fn spend(&mut self, frame_len: usize) -> Result<(), CreditError> {
        if !self.can_spend() {
            return Err(CreditError::Exhausted {
                messages: self.messages,
                bytes: self.bytes,
            });
        }
        self.messages -= 1;
        let cost = i64::try_from(frame_len).unwrap_or(i64::MAX);
        self.bytes = self.bytes.saturating_sub(cost);
        Ok(())
    }

    /// Messages left.
    pub const fn messages(&self) -> u64 {
        self.messages
    }

    /// Bytes left; negative after a frame larger than the balance.
    pub const fn bytes(&self) -> i64 {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_one_message_and_the_frame_length() {
        let mut window = CreditWindow::new(Credit {
            messages: 2,
            bytes: 100,
        });
        window.spend(30).unwrap();
        assert_eq!((window.messages(), window.bytes()), (1, 70));
        window.spend(30).unwrap();
        assert_eq!(
            window.spend(1),
            Err(CreditError::Exhausted {
                messages: 0,
                bytes: 40
            })
        );
    }

    #[test]
    fn last_frame_may_overshoot_the_bytes_then_nothing_more() {
        let mut window = CreditWindow::new(Credit {
            messages: 10,
            bytes: 10,
        });
        window.spend(1000).unwrap();
        assert_eq!(window.bytes(), -990);
        assert!(!window.can_spend());
        assert!(window.spend(1).is_err());
        window
            .grant(Credit {
                messages: 0,
                bytes: 991,
            })
            .unwrap();
        assert_eq!(window.bytes(), 1);
        window.spend(500).unwrap();
    }

    #[test]
    fn zero_grant_sends_nothing_and_overflow_is_refused() {
        let mut window = CreditWindow::new(Credit::default());
        assert!(!window.can_spend());
        let before = window;
        assert!(window.spend(8).is_err());
        assert_eq!(window, before, "unchanged on error");
        let mut full = CreditWindow {
            messages: u64::MAX,
            bytes: 0,
        };
        assert_eq!(
            full.grant(Credit {
                messages: 1,
                bytes: 1
            }),
            Err(CreditError::Overflow)
        );
        assert_eq!(full.bytes(), 0, "unchanged on error");
    }
}
