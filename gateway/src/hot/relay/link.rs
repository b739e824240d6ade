//! One shard's connection to one router: connect, HELLO, up, and back off
//! on failure with exponential backoff and jitter.
//!
//! The link owns its socket, its unconsumed input bytes (router frames may
//! span receive buffers), its queued output and the publish credit the
//! router granted. The relay decides what to send; the link only carries it
//! and tracks its state. Health (missed pongs) is checked on the shard tick.

use std::net::SocketAddr;

use ringgate_router::protocol::{CreditWindow, DEFAULT_MAX_BODY_BYTES};
use ringgate_shardmap::RouterId;

use super::held::Held;

/// Where a link is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Waiting until `retry_tick` to connect again.
    Backoff,
    /// TCP connect submitted.
    Connecting,
    /// HELLO sent, waiting for HELLO_ACK.
    Hello,
    /// Ready for publishes and subscriptions.
    Up,
    /// Socket being torn down (waiting for its recv/send to end).
    Closing,
}

pub struct Link {
    pub router: RouterId,
    pub address: SocketAddr,
    pub state: LinkState,
    pub fd: i32,
    /// Bumped per socket, so completions of an old socket are ignored.
    pub generation: u32,
    pub recv_armed: bool,
    pub send_in_flight: bool,
    /// Output queued while a send is in flight.
    pub output: Vec<u8>,
    /// Received bytes not yet forming a whole frame.
    pub input: Vec<u8>,
    /// What the router lets this shard publish.
    pub publish_credit: CreditWindow,
    /// DELIVER frames handled since the last CREDIT grant back.
    pub delivered_since_grant: u32,
    /// Next reconnect attempt (tick) while backing off.
    pub retry_tick: u32,
    /// Current backoff, doubled per failure, reset once up.
    pub backoff_ms: u64,
    /// Tick of the last frame received (health).
    pub last_heard_tick: u32,
    /// Tick the current state began.
    pub state_tick: u32,
    /// Consecutive failed connects (for logs).
    pub failures: u32,
    /// The router's largest accepted body.
    pub max_body_bytes: u32,
    /// Publishes sent on this link and not yet acknowledged (with `held`,
    /// the router buffer depth metric).
    pub in_flight: u32,
    /// Whether the link has been up since the gateway started: publishes for
    /// a router that was never reached are refused, not held.
    pub was_up: bool,
    /// Publishes waiting for the link to come back (and for credit).
    pub held: Held,
    /// The oldest held publish, sent alone after a reconnect and still held
    /// until the router answers it.
    pub probe: Option<u64>,
    /// Not before this tick is a probe the router refused sent again.
    pub probe_retry_tick: u32,
    /// Times the router refused the probe since the link came up.
    pub probe_refusals: u32,
    /// The router took a publish since the link came up: the rest of the
    /// held publishes may follow.
    pub taking: bool,
}

/// First and largest reconnect delays.
pub const BACKOFF_FIRST_MS: u64 = 100;
pub const BACKOFF_MAX_MS: u64 = 5_000;

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Backoff => "backoff",
            LinkState::Connecting => "connecting",
            LinkState::Hello => "hello",
            LinkState::Up => "up",
            LinkState::Closing => "closing",
        }
    }
}

impl Link {
    pub fn new(router: RouterId, address: SocketAddr, held: Held) -> Link {
        Link {
            router,
            address,
            state: LinkState::Backoff,
            fd: -1,
            generation: 0,
            recv_armed: false,
            send_in_flight: false,
            output: Vec::new(),
            input: Vec::new(),
            publish_credit: CreditWindow::default(),
            delivered_since_grant: 0,
            retry_tick: 0,
            backoff_ms: BACKOFF_FIRST_MS,
            last_heard_tick: 0,
            state_tick: 0,
            failures: 0,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            in_flight: 0,
            was_up: false,
            held,
            probe: None,
            probe_retry_tick: 0,
            probe_refusals: 0,
            taking: false,
        }
    }

    pub fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }

    /// Schedules the next attempt after a failure: exponential backoff with
    /// "equal jitter" (half fixed, half random), so a fleet of gateways that
    /// lost the same router does not reconnect in lockstep.
    pub fn back_off(&mut self, now_tick: u32, random: u64) {
        let delay = self.backoff_ms / 2 + random % (self.backoff_ms / 2 + 1);
        self.retry_tick = now_tick + super::super::timer::ticks(delay).max(1);
        self.backoff_ms = (self.backoff_ms * 2).min(BACKOFF_MAX_MS);
        self.failures += 1;
        self.state = LinkState::Backoff;
        self.state_tick = now_tick;
    }

    /// Called once HELLO_ACK arrives.
    pub fn came_up(&mut self, now_tick: u32) {
        self.state = LinkState::Up;
        self.state_tick = now_tick;
        self.last_heard_tick = now_tick;
        self.backoff_ms = BACKOFF_FIRST_MS;
        self.failures = 0;
        self.was_up = true;
        self.probe = None;
        self.probe_retry_tick = 0;
        self.probe_refusals = 0;
        self.taking = false;
    }

    /// Down after having been up: its publishes are held, its topics
    /// degraded. A link that is back but still releasing held publishes
    /// keeps holding new ones behind them (order).
    pub fn holds_publishes(&self) -> bool {
        self.was_up && (!self.is_up() || !self.held.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let held = Held::new(1, 1);
        let mut link = Link::new(RouterId(1), "127.0.0.1:1".parse().unwrap(), held);
        let mut delays = Vec::new();
        for attempt in 0..10u64 {
            let before = link.backoff_ms;
            link.back_off(1000, attempt * 7919);
            let delay_ticks = link.retry_tick - 1000;
            let low = super::super::super::timer::ticks(before / 2).max(1);
            let high = super::super::super::timer::ticks(before).max(1);
            assert!(
                (low..=high).contains(&delay_ticks),
                "{delay_ticks} not in {low}..={high}"
            );
            delays.push(link.backoff_ms);
        }
        assert_eq!(*delays.last().unwrap(), BACKOFF_MAX_MS);
        link.came_up(2000);
        assert_eq!(link.backoff_ms, BACKOFF_FIRST_MS);
        assert_eq!(link.failures, 0);
    }
}
