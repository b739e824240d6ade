//! Everything but publishes: gateway subscriptions, backend claims,
//! presence, and the backends' deliveries and kicks.

use crate::protocol::{
    Capabilities, Code, Deliver, Encoder, Frame, Kick, PrefixRequest, Presence, PresenceEvent,
    Recipient, Reply, Target, TopicRequest, UNASSIGNED_ID,
};

use super::claims::Claimed;
use super::core::Core;
use super::peer::PeerId;

impl Core {
    fn reply(&mut self, id: PeerId, request_id: u64, code: Code, text: &str) {
        let reply = Frame::Reply(Reply {
            request_id,
            code,
            text,
        });
        self.send_control(id, &reply);
    }

    pub(super) fn on_subscribe(&mut self, id: PeerId, request: TopicRequest<'_>) {
        let limit = self.config.max_subscriptions_per_gateway;
        match self.subscriptions.subscribe(request.topic, id, limit) {
            Ok(()) => self.reply(id, request.request_id, Code::OK, ""),
            Err(_) => self.reply(
                id,
                request.request_id,
                Code::OVERLOADED,
                "this gateway node holds as many subscriptions as the router allows",
            ),
        }
    }

    pub(super) fn on_unsubscribe(&mut self, id: PeerId, request: TopicRequest<'_>) {
        self.subscriptions.unsubscribe(request.topic, id);
        self.reply(id, request.request_id, Code::OK, "");
    }

    pub(super) fn on_claim(&mut self, id: PeerId, request: PrefixRequest<'_>) {
        let limit = self.config.max_claims_per_backend;
        let Some(node_id) = self
            .open_peer(id)
            .and_then(|peer| peer.session.as_ref())
            .map(|session| session.node_id)
        else {
            return;
        };
        let (code, text) = match self.claims.claim(request.prefix, id, node_id, limit) {
            Claimed::Held { sharers: 0 } => (Code::OK, ""),
            Claimed::Held { .. } => (
                Code::OK,
                "shared: other backends claimed this prefix too; its topics are split among them",
            ),
            Claimed::Full => (
                Code::OVERLOADED,
                "this backend holds as many claims as the router allows",
            ),
        };
        self.reply(id, request.request_id, code, text);
    }

    pub(super) fn on_release(&mut self, id: PeerId, request: PrefixRequest<'_>) {
        let text = match self.claims.release(request.prefix, id) {
            true => "",
            false => "not claimed by this backend",
        };
        self.reply(id, request.request_id, Code::OK, text);
    }

    /// A gateway's PRESENCE: connections are indexed by user (for user
    /// deliveries and kicks) and every event goes on to the backends that
    /// asked: connected/disconnected to those with the PRESENCE capability,
    /// joined/left to the topic's owner if it has TOPIC_EVENTS.
    pub(super) fn on_presence(&mut self, id: PeerId, presence: Presence<'_>) {
        self.stats.presence_in += 1;
        let Some(node) = self
            .open_peer(id)
            .and_then(|peer| peer.session.as_ref())
            .map(|session| session.node_id)
        else {
            return;
        };
        let limit = self.config.max_presence_per_gateway;
        let user = presence.user;
        match presence.event {
            PresenceEvent::Connected if !user.is_empty() => {
                let recorded = self
                    .presence
                    .connected(node, presence.connection, user, limit);
                self.stats.presence_over_limit += u64::from(!recorded);
            }
            PresenceEvent::Disconnected if !user.is_empty() => {
                self.presence.disconnected(node, presence.connection);
            }
            _ => {}
        }
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        match presence.event {
            PresenceEvent::Connected | PresenceEvent::Disconnected => {
                targets.extend(self.backends.values().copied());
                targets.retain(|&backend| self.has_capability(backend, Capabilities::PRESENCE));
            }
            PresenceEvent::Joined(topic) | PresenceEvent::Left(topic) => {
                targets.extend(self.claims.owner(topic));
                targets.retain(|&backend| self.has_capability(backend, Capabilities::TOPIC_EVENTS));
            }
        }
        let frame = Frame::Presence(presence);
        for &backend in &targets {
            if self.send_control(backend, &frame) {
                self.stats.presence_out += 1;
            }
        }
        self.targets = targets;
    }

    fn has_capability(&self, id: PeerId, capability: Capabilities) -> bool {
        self.peers
            .get(id.slot as usize)
            .filter(|peer| peer.generation == id.generation)
            .and_then(|peer| peer.session.as_ref())
            .is_some_and(|session| session.capabilities.contains(capability))
    }

    /// A backend's DELIVER: to a topic's subscribed gateway nodes, to every
    /// gateway node where a user is present, or to one connection's node.
    /// Encoded once with its message id (assigned here when the backend
    /// left it unassigned) and the router's hop time, then shared.
    pub(super) fn on_backend_deliver(&mut self, id: PeerId, deliver: Deliver<'_>, length: usize) {
        self.stats.backend_deliveries += 1;
        if !is_one_json_value(deliver.payload) {
            // It would become the client's `data` byte for byte.
            return self.violation(id, Code::PROTOCOL_ERROR, "payload_not_json");
        }
        self.owe_credit(id, length as u32);
        let message_id = if deliver.message_id == UNASSIGNED_ID {
            match self.ids.next(self.clock.wall_ms) {
                Ok(message_id) => message_id,
                Err(_) => {
                    self.stats.clock_errors += 1;
                    return;
                }
            }
        } else {
            // Ids this router issues later sort after the backend's.
            let _ = self.ids.observe(deliver.message_id.hlc, self.clock.wall_ms);
            deliver.message_id
        };
        let mut targets = std::mem::take(&mut self.targets);
        self.gateways_for(deliver.target, deliver.topic, &mut targets);
        if targets.is_empty() {
            self.stats.unroutable += 1;
            self.targets = targets;
            return;
        }
        // Hop lists trace client publishes; one from a backend is dropped.
        let frame = Frame::Deliver(Deliver {
            message_id,
            hops: None,
            ..deliver
        });
        self.scratch.clear();
        if Encoder::new(u32::MAX)
            .encode(&frame, &mut self.scratch)
            .is_err()
        {
            self.stats.unroutable += 1;
            self.targets = targets;
            return;
        }
        let shared = self.shared_scratch();
        self.deliver_to(&targets, &shared);
        self.targets = targets;
    }

    /// A backend's KICK, to the gateway nodes holding the recipient.
    pub(super) fn on_kick(&mut self, _id: PeerId, kick: Kick<'_>) {
        let target = match kick.recipient {
            Recipient::User(user) => Target::User(user),
            Recipient::Connection(connection) => Target::Connection(connection),
        };
        let mut targets = std::mem::take(&mut self.targets);
        self.gateways_for(target, "", &mut targets);
        if targets.is_empty() {
            self.stats.unroutable += 1;
        }
        let frame = Frame::Kick(kick);
        for &gateway in &targets {
            if self.send_control(gateway, &frame) {
                self.stats.kicks_out += 1;
            }
        }
        self.targets = targets;
    }

    /// The gateway peers a target reaches, into `out`.
    fn gateways_for(&mut self, target: Target<'_>, topic: &str, out: &mut Vec<PeerId>) {
        out.clear();
        match target {
            Target::Topic => out.extend_from_slice(self.subscriptions.subscribers(topic)),
            Target::User(user) => {
                let mut nodes = std::mem::take(&mut self.nodes);
                self.presence.gateways_of(user, &mut nodes);
                out.extend(nodes.iter().filter_map(|node| self.gateways.get(node)));
                self.nodes = nodes;
            }
            Target::Connection(connection) => {
                out.extend(self.gateways.get(&connection.gateway));
            }
        }
    }
}

/// Whether `payload` is exactly one JSON value (what a client's `data`
/// must be). Scans without building anything.
fn is_one_json_value(payload: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload).is_ok()
}
