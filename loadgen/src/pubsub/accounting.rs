//! Expected against delivered, per topic, merged over threads and processes.
//!
//! Every thread keeps one [`TopicCounts`] per topic. The thread that owns a
//! topic (its only publisher) counts the topic's publishes intended in the
//! window and how many of them the gateway refused; every thread counts, for
//! its own users, the topic's subscribers when traffic starts and the
//! distinct deliveries of window publishes they received. Worker processes
//! send their tables to the parent (non-zero rows only), which adds them.
//! Then, per topic,
//!
//! `expected = (published - refused) × subscribers`,
//!
//! and loss is `expected - delivered` summed over topics where it is
//! positive; a topic where more arrived than expected shows as `surplus`
//! instead of hiding a loss elsewhere.

use serde::{Deserialize, Serialize};

/// One topic's counts (of one thread, process or the whole run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicCounts {
    /// Publishes sent whose intended time is in the window.
    pub published: u64,
    /// Of those, answered with `err` (not accepted, so nobody expects them).
    pub refused: u64,
    /// Users subscribed (confirmed, connection open) when traffic started.
    pub subscribers: u64,
    /// Distinct deliveries of window publishes to those subscribers.
    pub delivered: u64,
}

impl TopicCounts {
    pub fn add(&mut self, other: &TopicCounts) {
        self.published += other.published;
        self.refused += other.refused;
        self.subscribers += other.subscribers;
        self.delivered += other.delivered;
    }

    pub fn expected(&self) -> u64 {
        self.published.saturating_sub(self.refused) * self.subscribers
    }

    fn is_zero(&self) -> bool {
        *self == TopicCounts::default()
    }
}

/// Counts for topics `0..len`, allocated once.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicTable {
    rows: Vec<TopicCounts>,
}

/// The delivery figures of a whole table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub expected: u64,
    pub delivered: u64,
    /// Sum over topics of `expected - delivered` where positive.
    pub lost: u64,
    /// Sum over topics of `delivered - expected` where positive.
    pub surplus: u64,
    pub topics_with_subscribers: u64,
    pub subscribers_per_topic_max: u64,
}

impl TopicTable {
    pub fn new(topics: u32) -> TopicTable {
        TopicTable {
            rows: vec![TopicCounts::default(); topics as usize],
        }
    }

    /// The row of `topic`; `None` outside the table (a topic name loadgen
    /// did not make).
    pub fn get_mut(&mut self, topic: u32) -> Option<&mut TopicCounts> {
        self.rows.get_mut(topic as usize)
    }

    pub fn merge(&mut self, other: &TopicTable) {
        if self.rows.len() < other.rows.len() {
            self.rows.resize(other.rows.len(), TopicCounts::default());
        }
        for (row, theirs) in self.rows.iter_mut().zip(&other.rows) {
            row.add(theirs);
        }
    }

    pub fn summary(&self) -> DeliverySummary {
        let mut s = DeliverySummary::default();
        for row in &self.rows {
            let expected = row.expected();
            s.expected += expected;
            s.delivered += row.delivered;
            s.lost += expected.saturating_sub(row.delivered);
            s.surplus += row.delivered.saturating_sub(expected);
            s.topics_with_subscribers += u64::from(row.subscribers > 0);
            s.subscribers_per_topic_max = s.subscribers_per_topic_max.max(row.subscribers);
        }
        s
    }

    /// Non-zero rows with their topic, for the trip to the parent process.
    pub fn to_wire(&self) -> WireTopics {
        WireTopics {
            len: self.rows.len() as u32,
            rows: self
                .rows
                .iter()
                .enumerate()
                .filter(|(_, row)| !row.is_zero())
                .map(|(topic, row)| (topic as u32, *row))
                .collect(),
        }
    }

    pub fn from_wire(wire: &WireTopics) -> Result<TopicTable, String> {
        let mut table = TopicTable::new(wire.len);
        for (topic, row) in &wire.rows {
            *table
                .get_mut(*topic)
                .ok_or_else(|| format!("topic {topic} outside a table of {}", wire.len))? = *row;
        }
        Ok(table)
    }
}

/// A [`TopicTable`] as a worker process sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WireTopics {
    pub len: u32,
    pub rows: Vec<(u32, TopicCounts)>,
}

/// The pubsub scenario's scalar counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PubSubCounts {
    /// Subscriptions loadgen meant to make (users × subs per user).
    pub subscriptions_planned: u64,
    /// Answered `subscribed`.
    pub subscriptions_confirmed: u64,
    /// Answered `err`, or unanswered within --timeout.
    pub subscriptions_failed: u64,
    /// Publishes sent over the whole run (warmup included).
    pub publishes_sent: u64,
    /// Publishes due but not sent because their publisher's connection was closed.
    pub publishes_not_sent: u64,
    /// Publishes sent whose intended time is in the window.
    pub publishes_in_window: u64,
    /// Of those, answered `ack` / `err`.
    pub acked: u64,
    pub refused: u64,
    /// `ack`s with `"dup":true` (each publish has a fresh id, so none are expected).
    pub duplicate_acks: u64,
    /// Deliveries received during the window, of any publish (throughput).
    pub deliveries_in_window: u64,
    /// Deliveries seen a second time (or more) by the same subscription.
    pub duplicates: u64,
    /// Deliveries that came after a later message of the same topic (and so
    /// the same publisher) to the same subscriber.
    pub out_of_order: u64,
    /// Subscriptions (subscriber, topic) that saw at least one such delivery.
    pub out_of_order_pairs: u64,
    /// Deliveries on a topic the receiving connection never subscribed to.
    pub misrouted: u64,
}

impl PubSubCounts {
    pub fn merge(&mut self, o: &PubSubCounts) {
        self.subscriptions_planned += o.subscriptions_planned;
        self.subscriptions_confirmed += o.subscriptions_confirmed;
        self.subscriptions_failed += o.subscriptions_failed;
        self.publishes_sent += o.publishes_sent;
        self.publishes_not_sent += o.publishes_not_sent;
        self.publishes_in_window += o.publishes_in_window;
        self.acked += o.acked;
        self.refused += o.refused;
        self.duplicate_acks += o.duplicate_acks;
        self.deliveries_in_window += o.deliveries_in_window;
        self.duplicates += o.duplicates;
        self.out_of_order += o.out_of_order;
        self.out_of_order_pairs += o.out_of_order_pairs;
        self.misrouted += o.misrouted;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(published: u64, refused: u64, subscribers: u64, delivered: u64) -> TopicCounts {
        TopicCounts {
            published,
            refused,
            subscribers,
            delivered,
        }
    }

    #[test]
    fn expected_is_accepted_publishes_times_subscribers() {
        assert_eq!(row(10, 2, 3, 0).expected(), 24);
        assert_eq!(row(10, 0, 0, 0).expected(), 0);
        assert_eq!(row(1, 5, 3, 0).expected(), 0);
    }

    #[test]
    fn publisher_and_subscriber_halves_merge_into_exact_figures() {
        // Topic 0: owned by process A (10 publishes, 1 refused); 2
        // subscribers in A and 1 in B; A's got 17 of 18, B's all 9.
        // Topic 1: owned by B (5 publishes); 1 subscriber in A, got 6 (one
        // more than possible: a surplus, not a cancelled loss).
        let mut a = TopicTable::new(3);
        *a.get_mut(0).unwrap() = row(10, 1, 2, 17);
        *a.get_mut(1).unwrap() = row(0, 0, 1, 6);
        let mut b = TopicTable::new(3);
        *b.get_mut(0).unwrap() = row(0, 0, 1, 9);
        *b.get_mut(1).unwrap() = row(5, 0, 0, 0);
        let mut run = TopicTable::default();
        run.merge(&a);
        run.merge(&b);
        let s = run.summary();
        assert_eq!(s.expected, 9 * 3 + 5);
        assert_eq!(s.delivered, 17 + 9 + 6);
        assert_eq!(s.lost, 1);
        assert_eq!(s.surplus, 1);
        assert_eq!(s.topics_with_subscribers, 2);
        assert_eq!(s.subscribers_per_topic_max, 3);
    }

    #[test]
    fn tables_travel_as_non_zero_rows() {
        let mut table = TopicTable::new(1_000);
        *table.get_mut(7).unwrap() = row(1, 0, 2, 2);
        *table.get_mut(999).unwrap() = row(0, 0, 1, 0);
        let wire = table.to_wire();
        assert_eq!(wire.rows.len(), 2);
        let json = serde_json::to_string(&wire).unwrap();
        let back = TopicTable::from_wire(&serde_json::from_str(&json).unwrap()).unwrap();
        assert_eq!(back, table);
        let bad = WireTopics {
            len: 2,
            rows: vec![(5, row(1, 0, 0, 0))],
        };
        assert!(TopicTable::from_wire(&bad).is_err());
        assert!(table.get_mut(1_000).is_none());
    }
}
