//! One connection to the router: its socket state, its session after HELLO,
//! its partial input and its queued output.

use std::os::fd::RawFd;

use crate::protocol::{Capabilities, Credit, CreditWindow, Encoder, Role};

use super::output::Output;

/// A peer as the router names it: slab slot and generation, so a completion
/// or a waiting publish for a closed connection never reaches its successor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct PeerId {
    pub slot: u32,
    pub generation: u32,
}

impl PeerId {
    /// The io_uring token of this peer's operations.
    pub fn token(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    pub fn from_token(token: u64) -> PeerId {
        PeerId {
            slot: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Slot unused.
    Free,
    /// Accepted; the first frame must be HELLO.
    AwaitingHello,
    /// HELLO answered: frames flow both ways.
    Open,
    /// A GOAWAY is queued: input is ignored, output drains, then the socket
    /// is closed.
    Closing,
    /// The socket is being torn down (receive cancelled, send awaited,
    /// close submitted); the slot frees at the close completion.
    Finishing,
}

/// Socket-state bits the event loop keeps.
pub(super) mod flag {
    pub const RECV_ARMED: u8 = 1 << 0;
    pub const RECV_REARM: u8 = 1 << 1;
    pub const SEND_IN_FLIGHT: u8 = 1 << 2;
    pub const DIRTY: u8 = 1 << 3;
    pub const CANCEL_SENT: u8 = 1 << 4;
}

/// What HELLO established.
pub(super) struct Session {
    pub role: Role,
    pub node_id: u32,
    pub capabilities: Capabilities,
    /// Encodes for this peer's `max_body_bytes`.
    pub encoder: Encoder,
    /// The largest frame body this peer accepts (from its HELLO).
    pub max_body_bytes: u32,
    /// What this peer may still send the router (the router's grant).
    pub receive: CreditWindow,
    /// Credit the router owes back for frames it has finished with.
    pub owed_messages: u64,
    pub owed_bytes: u64,
}

impl Session {
    /// Notes that a flow-controlled frame of `frame_len` bytes is done with.
    pub fn owe(&mut self, frame_len: u32) {
        self.owed_messages += 1;
        self.owed_bytes += u64::from(frame_len);
    }

    /// The CREDIT to send now, if any: when a quarter of the grant is owed,
    /// or the peer is down to its last quarter (so a peer is never left
    /// without credit while the router owes it some).
    pub fn credit_due(&mut self, grant: Credit) -> Option<Credit> {
        if self.owed_messages == 0 {
            return None;
        }
        let quarter_messages = u64::from(grant.messages / 4).max(1);
        let quarter_bytes = i64::from(grant.bytes / 4).max(1);
        let worth_it = self.owed_messages >= quarter_messages
            || self.owed_bytes >= quarter_bytes as u64
            || self.receive.messages() <= quarter_messages
            || self.receive.bytes() <= quarter_bytes;
        if !worth_it {
            return None;
        }
        let credit = Credit {
            messages: u32::try_from(self.owed_messages).unwrap_or(u32::MAX),
            bytes: u32::try_from(self.owed_bytes).unwrap_or(u32::MAX),
        };
        self.owed_messages -= u64::from(credit.messages);
        self.owed_bytes -= u64::from(credit.bytes);
        Some(credit)
    }
}

pub(super) struct Peer {
    pub generation: u32,
    pub phase: Phase,
    pub fd: RawFd,
    pub flags: u8,
    /// Bytes handed to the kernel and not yet completed.
    pub in_flight_bytes: usize,
    /// The start of a frame whose end has not arrived.
    pub partial: Vec<u8>,
    pub output: Output,
    pub session: Option<Session>,
    pub opened_ms: u64,
    pub last_receive_ms: u64,
    pub last_ping_ms: u64,
    pub closing_since_ms: u64,
}

impl Peer {
    pub fn free() -> Peer {
        Peer {
            generation: 0,
            phase: Phase::Free,
            fd: -1,
            flags: 0,
            in_flight_bytes: 0,
            partial: Vec::new(),
            output: Output::new(),
            session: None,
            opened_ms: 0,
            last_receive_ms: 0,
            last_ping_ms: 0,
            closing_since_ms: 0,
        }
    }

    pub fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    pub fn set(&mut self, bit: u8) {
        self.flags |= bit;
    }

    pub fn clear(&mut self, bit: u8) {
        self.flags &= !bit;
    }

    /// Bytes this peer holds in the router: queued and in flight.
    pub fn output_bytes(&self) -> usize {
        self.output.queued_bytes() + self.in_flight_bytes
    }

    /// The role, once HELLO was accepted.
    pub fn role(&self) -> Option<Role> {
        self.session.as_ref().map(|session| session.role)
    }
}
