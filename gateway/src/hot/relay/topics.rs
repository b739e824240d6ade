//! The shard's local subscription index: which of this shard's connections
//! subscribed to which topic, and the reverse, so a router delivery fans out
//! to local subscribers in one lookup and a closing connection leaves every
//! topic it joined.
//!
//! The router sees one subscription per (shard, topic), whatever the number
//! of local subscribers: `subscribe` reports when a topic gains its first
//! local subscriber and `unsubscribe`/`remove_connection` when it loses its
//! last, which is when the shard tells the topic's router.

use std::collections::HashMap;

/// A connection as the shard names it: slab slot and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subscriber {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Default)]
pub struct Topics {
    subscribers: HashMap<Box<str>, Vec<Subscriber>>,
    joined: HashMap<Subscriber, Vec<Box<str>>>,
}

/// Whether the router must hear about a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// First local subscriber: send SUBSCRIBE.
    FirstSubscriber,
    /// Last local subscriber left: send UNSUBSCRIBE.
    LastSubscriberLeft,
    /// The router already knows (or the request changed nothing).
    Unchanged,
}

impl Topics {
    /// Adds a subscription; subscribing twice is harmless.
    pub fn subscribe(&mut self, topic: &str, subscriber: Subscriber) -> Change {
        let list = match self.subscribers.get_mut(topic) {
            Some(list) => list,
            None => self.subscribers.entry(topic.into()).or_default(),
        };
        if list.contains(&subscriber) {
            return Change::Unchanged;
        }
        list.push(subscriber);
        let first = list.len() == 1;
        self.joined
            .entry(subscriber)
            .or_default()
            .push(topic.into());
        if first {
            Change::FirstSubscriber
        } else {
            Change::Unchanged
        }
    }

    /// Removes a subscription; unknown ones are harmless.
    pub fn unsubscribe(&mut self, topic: &str, subscriber: Subscriber) -> Change {
        if let Some(topics) = self.joined.get_mut(&subscriber) {
            topics.retain(|joined| &**joined != topic);
            if topics.is_empty() {
                self.joined.remove(&subscriber);
            }
        }
        self.leave(topic, subscriber)
    }

    fn leave(&mut self, topic: &str, subscriber: Subscriber) -> Change {
        let Some(list) = self.subscribers.get_mut(topic) else {
            return Change::Unchanged;
        };
        let before = list.len();
        list.retain(|s| *s != subscriber);
        if list.len() == before {
            return Change::Unchanged;
        }
        if list.is_empty() {
            self.subscribers.remove(topic);
            return Change::LastSubscriberLeft;
        }
        Change::Unchanged
    }

    /// Removes every subscription of a closing connection; returns the topics
    /// that lost their last local subscriber.
    pub fn remove_connection(&mut self, subscriber: Subscriber) -> Vec<Box<str>> {
        let Some(topics) = self.joined.remove(&subscriber) else {
            return Vec::new();
        };
        let mut emptied = Vec::new();
        for topic in topics {
            if self.leave(&topic, subscriber) == Change::LastSubscriberLeft {
                emptied.push(topic);
            }
        }
        emptied
    }

    /// Local subscribers of a topic.
    pub fn subscribers(&self, topic: &str) -> &[Subscriber] {
        self.subscribers.get(topic).map_or(&[], Vec::as_slice)
    }

    /// Topics with at least one local subscriber (re-sent to a router after
    /// it reconnects, since routers keep no state across restarts).
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.subscribers.keys().map(|topic| &**topic)
    }

    /// Topics a connection joined.
    pub fn joined_by(&self, subscriber: Subscriber) -> usize {
        self.joined.get(&subscriber).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Subscriber = Subscriber {
        slot: 1,
        generation: 1,
    };
    const B: Subscriber = Subscriber {
        slot: 2,
        generation: 1,
    };

    #[test]
    fn the_router_hears_first_and_last_only() {
        let mut topics = Topics::default();
        assert_eq!(topics.subscribe("t", A), Change::FirstSubscriber);
        assert_eq!(topics.subscribe("t", B), Change::Unchanged);
        assert_eq!(
            topics.subscribe("t", B),
            Change::Unchanged,
            "twice is harmless"
        );
        assert_eq!(topics.subscribers("t"), &[A, B]);
        assert_eq!(topics.unsubscribe("t", A), Change::Unchanged);
        assert_eq!(
            topics.unsubscribe("t", A),
            Change::Unchanged,
            "twice is harmless"
        );
        assert_eq!(topics.unsubscribe("t", B), Change::LastSubscriberLeft);
        assert!(topics.subscribers("t").is_empty());
        assert_eq!(topics.topics().count(), 0);
    }

    #[test]
    fn a_closing_connection_leaves_every_topic() {
        let mut topics = Topics::default();
        topics.subscribe("x", A);
        topics.subscribe("y", A);
        topics.subscribe("y", B);
        assert_eq!(topics.joined_by(A), 2);
        let mut emptied = topics.remove_connection(A);
        emptied.sort();
        assert_eq!(emptied, vec![Box::from("x")]);
        assert_eq!(topics.subscribers("y"), &[B]);
        assert_eq!(topics.joined_by(A), 0);
        assert!(topics.remove_connection(A).is_empty());
    }

    #[test]
    fn a_reused_slot_is_a_different_subscriber() {
        let mut topics = Topics::default();
        topics.subscribe("t", A);
        let reused = Subscriber {
            slot: A.slot,
            generation: A.generation + 1,
        };
        assert_eq!(topics.unsubscribe("t", reused), Change::Unchanged);
        assert_eq!(topics.subscribers("t"), &[A]);
    }
}
