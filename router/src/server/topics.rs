//! Gateway subscriptions: which gateway nodes want a topic's DELIVERs.
//!
//! Gateway level, not per client: a gateway node subscribes once per topic
//! however many of its clients did, so a topic's entry is a short list of
//! gateway nodes and one fan-out is one frame per gateway node.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::peer::PeerId;

#[derive(Default)]
pub(super) struct Subscriptions {
    topics: HashMap<Rc<str>, Vec<PeerId>>,
    by_peer: HashMap<PeerId, HashSet<Rc<str>>>,
}

/// The gateway holds as many topics as it may.
#[derive(Debug)]
pub(super) struct Full;

impl Subscriptions {
    /// Adds `peer` to `topic`; subscribing twice changes nothing.
    pub fn subscribe(&mut self, topic: &str, peer: PeerId, max_topics: usize) -> Result<(), Full> {
        let joined = self.by_peer.entry(peer).or_default();
        if joined.contains(topic) {
            return Ok(());
        }
        if joined.len() >= max_topics {
            return Err(Full);
        }
        let topic: Rc<str> = match self.topics.get_key_value(topic) {
            Some((shared, _)) => Rc::clone(shared),
            None => Rc::from(topic),
        };
        joined.insert(Rc::clone(&topic));
        self.topics.entry(topic).or_default().push(peer);
        Ok(())
    }

    /// Removes `peer` from `topic`; unknown pairs are harmless.
    pub fn unsubscribe(&mut self, topic: &str, peer: PeerId) {
        let Some(joined) = self.by_peer.get_mut(&peer) else {
            return;
        };
        if joined.remove(topic) {
            self.remove_from_topic(topic, peer);
        }
    }

    /// The gateway nodes subscribed to `topic`.
    pub fn subscribers(&self, topic: &str) -> &[PeerId] {
        self.topics.get(topic).map_or(&[], Vec::as_slice)
    }

    /// Forgets every subscription of a departed gateway.
    pub fn remove_peer(&mut self, peer: PeerId) {
        let Some(joined) = self.by_peer.remove(&peer) else {
            return;
        };
        for topic in joined {
            self.remove_from_topic(&topic, peer);
        }
    }

    /// Topics with at least one subscribed gateway.
    pub fn topic_count(&self) -> usize {
        self.topics.len()
    }

    fn remove_from_topic(&mut self, topic: &str, peer: PeerId) {
        if let Some(peers) = self.topics.get_mut(topic) {
            peers.retain(|subscriber| *subscriber != peer);
            if peers.is_empty() {
                self.topics.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(slot: u32) -> PeerId {
        PeerId {
            slot,
            generation: 1,
        }
    }

    #[test]
    fn one_entry_per_gateway_and_cleanup_on_departure() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.subscribe("a", peer(1), 10).unwrap();
        subscriptions.subscribe("a", peer(1), 10).unwrap();
        subscriptions.subscribe("a", peer(2), 10).unwrap();
        subscriptions.subscribe("b", peer(1), 10).unwrap();
        assert_eq!(subscriptions.subscribers("a"), [peer(1), peer(2)]);
        subscriptions.remove_peer(peer(1));
        assert_eq!(subscriptions.subscribers("a"), [peer(2)]);
        assert_eq!(subscriptions.topic_count(), 1);
        subscriptions.unsubscribe("a", peer(2));
        assert_eq!(subscriptions.topic_count(), 0);
    }

    #[test]
    fn a_gateway_is_bounded() {
        let mut subscriptions = Subscriptions::default();
        subscriptions.subscribe("a", peer(1), 1).unwrap();
        assert!(subscriptions.subscribe("b", peer(1), 1).is_err());
    }
}
