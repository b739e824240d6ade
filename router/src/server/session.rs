//! Session frames: HELLO and its answer, GOAWAY, PING, CREDIT, and the
//! credit check on every PUBLISH and DELIVER a peer sends.

use crate::protocol::{
    Capabilities, Code, Credit, CreditWindow, Encoder, Frame, GoAway, Hello, HelloAck, Ping, Pong,
    Role, VERSION,
};

use super::core::Core;
use super::log;
use super::peer::{PeerId, Phase, Session};

/// What the router calls itself in HELLO_ACK.
const AGENT: &str = concat!("ringgate-router/", env!("CARGO_PKG_VERSION"));

impl Core {
    /// The first frame of a connection must be an acceptable HELLO.
    pub(super) fn on_first_frame(&mut self, id: PeerId, frame: Frame<'_>) {
        let Frame::Hello(hello) = frame else {
            self.stats.hellos_refused += 1;
            return self.goaway(
                id,
                Code::UNEXPECTED_MESSAGE,
                "the first frame must be HELLO",
            );
        };
        if let Err((code, text)) = self.check_hello(&hello) {
            self.stats.hellos_refused += 1;
            log::warn!(
                "hello_refused",
                "{:?} node {} ({}): {text}",
                hello.role,
                hello.node_id,
                hello.agent
            );
            return self.goaway(id, code, text);
        }
        let registry = match hello.role {
            Role::Gateway => &mut self.gateways,
            _ => &mut self.backends,
        };
        if let Some(older) = registry.insert(hello.node_id, id) {
            // The newest connection wins, so a reconnect never waits for
            // the old link's timeout.
            self.goaway(
                older,
                Code::DUPLICATE_NODE,
                "a newer connection with this node id replaced this one",
            );
            if hello.role == Role::Gateway {
                // The new link re-announces what is still connected.
                self.presence.remove_gateway(hello.node_id);
            }
        }
        let capabilities = match hello.role {
            Role::Backend => hello.capabilities.intersection(Capabilities::KNOWN),
            _ => Capabilities::NONE,
        };
        let grant = self.config.peer_credit;
        let peer = &mut self.peers[id.slot as usize];
        peer.session = Some(Session {
            role: hello.role,
            node_id: hello.node_id,
            capabilities,
            encoder: Encoder::new(hello.max_body_bytes),
            max_body_bytes: hello.max_body_bytes,
            receive: CreditWindow::new(grant),
            owed_messages: 0,
            owed_bytes: 0,
        });
        peer.output.set_window(hello.credit);
        peer.phase = Phase::Open;
        match hello.role {
            Role::Gateway => self.stats.gateways_attached += 1,
            _ => self.stats.backends_attached += 1,
        }
        log::info!(
            "peer_attached",
            "{:?} node {} ({}) attached",
            hello.role,
            hello.node_id,
            hello.agent
        );
        let ack = Frame::HelloAck(HelloAck {
            version: VERSION,
            role: Role::Router,
            node_id: self.config.id,
            capabilities,
            max_body_bytes: self.config.max_body_bytes,
            ping_interval_ms: self.config.ping_interval_ms,
            credit: grant,
            agent: AGENT,
        });
        self.send_control(id, &ack);
    }

    /// Why a HELLO is refused: the GOAWAY code and text. (The decoder
    /// already refused a bad magic or a version range without 1.)
    fn check_hello(&self, hello: &Hello<'_>) -> Result<(), (Code, &'static str)> {
        if !matches!(hello.role, Role::Gateway | Role::Backend) {
            return Err((
                Code::UNAUTHORIZED,
                "this router accepts gateways and backends only",
            ));
        }
        if !constant_time_eq(hello.token, &self.config.token) {
            return Err((Code::UNAUTHORIZED, "bad token"));
        }
        if self.shutting_down {
            return Err((Code::OK, "router stopping"));
        }
        Ok(())
    }

    pub(super) fn on_goaway(&mut self, id: PeerId, go_away: GoAway<'_>) {
        log::info!(
            "peer_goaway",
            "{} leaves: {} {}",
            self.describe(id),
            go_away.code.name(),
            go_away.text
        );
        self.finish(id.slot as usize);
    }

    pub(super) fn on_ping(&mut self, id: PeerId, ping: Ping) {
        let pong = Frame::Pong(Pong {
            nonce: ping.nonce,
            ping_sent_us: ping.sent_us,
            sent_us: self.clock.wall_us,
        });
        self.send_control(id, &pong);
    }

    pub(super) fn on_credit(&mut self, id: PeerId, credit: Credit) {
        if self.open_peer(id).is_none() {
            return;
        }
        let peer = &mut self.peers[id.slot as usize];
        let granted = peer.output.grant(credit, &mut self.pool);
        if granted.is_err() {
            self.stats.flow_control_violations += 1;
            return self.violation(id, Code::FLOW_CONTROL, "credit grant overflows");
        }
        self.mark_dirty(id.slot as usize);
    }

    /// Spends the peer's credit on a PUBLISH or DELIVER it sent; a frame
    /// beyond the router's grant ends the connection.
    pub(super) fn spend_receive_credit(&mut self, id: PeerId, length: usize) -> bool {
        let Some(peer) = self.open_peer(id) else {
            return false;
        };
        let session = peer.session.as_mut().expect("open peer");
        if session.receive.spend(length).is_ok() {
            return true;
        }
        self.stats.flow_control_violations += 1;
        self.violation(id, Code::FLOW_CONTROL, "PUBLISH or DELIVER without credit");
        false
    }

    /// Returns a peer's credit for a frame the router is done with.
    pub(super) fn owe_credit(&mut self, id: PeerId, frame_len: u32) {
        let Some(peer) = self.open_peer(id) else {
            return;
        };
        peer.session.as_mut().expect("open peer").owe(frame_len);
        self.mark_dirty(id.slot as usize);
    }
}

/// Compares secrets without an early exit that would leak a prefix length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}
