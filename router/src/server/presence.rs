//! Presence: which gateway nodes hold a user's connections, from the
//! gateways' PRESENCE connected/disconnected frames, so a DELIVER or KICK
//! for a user reaches every gateway node where the user is connected.

use std::collections::HashMap;
use std::rc::Rc;

use crate::protocol::ConnectionRef;

#[derive(Default)]
pub(super) struct Presence {
    /// A user's connections, fleet wide as this router heard them.
    users: HashMap<Rc<str>, Vec<ConnectionRef>>,
    /// Per gateway node: its connections and their users, for cleanup.
    by_gateway: HashMap<u32, HashMap<u64, Rc<str>>>,
}

impl Presence {
    /// Records a connection of `user` on gateway node `gateway`; `false`
    /// when that node already holds `max_per_gateway` connections.
    pub fn connected(
        &mut self,
        gateway: u32,
        connection: ConnectionRef,
        user: &str,
        max_per_gateway: usize,
    ) -> bool {
        let connections = self.by_gateway.entry(gateway).or_default();
        if connections.contains_key(&connection.connection) {
            return true;
        }
        if connections.len() >= max_per_gateway {
            return false;
        }
        let user: Rc<str> = match self.users.get_key_value(user) {
            Some((shared, _)) => Rc::clone(shared),
            None => Rc::from(user),
        };
        connections.insert(connection.connection, Rc::clone(&user));
        let devices = self.users.entry(user).or_default();
        devices.push(ConnectionRef {
            gateway,
            connection: connection.connection,
        });
        true
    }

    pub fn disconnected(&mut self, gateway: u32, connection: ConnectionRef) {
        let Some(connections) = self.by_gateway.get_mut(&gateway) else {
            return;
        };
        if let Some(user) = connections.remove(&connection.connection) {
            self.forget(&user, gateway, connection.connection);
        }
    }

    /// The distinct gateway nodes where `user` is connected, into `out`.
    pub fn gateways_of(&self, user: &str, out: &mut Vec<u32>) {
        out.clear();
        let Some(devices) = self.users.get(user) else {
            return;
        };
        for device in devices {
            if !out.contains(&device.gateway) {
                out.push(device.gateway);
            }
        }
    }

    /// Forgets everything a departed gateway node announced.
    pub fn remove_gateway(&mut self, gateway: u32) {
        let Some(connections) = self.by_gateway.remove(&gateway) else {
            return;
        };
        for (connection, user) in connections {
            self.forget(&user, gateway, connection);
        }
    }

    #[cfg(test)]
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn forget(&mut self, user: &str, gateway: u32, connection: u64) {
        if let Some(devices) = self.users.get_mut(user) {
            devices
                .retain(|device| !(device.gateway == gateway && device.connection == connection));
            if devices.is_empty() {
                self.users.remove(user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(gateway: u32, connection: u64) -> ConnectionRef {
        ConnectionRef {
            gateway,
            connection,
        }
    }

    #[test]
    fn a_user_on_two_gateways_and_cleanup() {
        let mut presence = Presence::default();
        let mut nodes = Vec::new();
        assert!(presence.connected(1, conn(1, 10), "alice", 8));
        assert!(presence.connected(1, conn(1, 11), "alice", 8));
        assert!(presence.connected(2, conn(2, 10), "alice", 8));
        presence.gateways_of("alice", &mut nodes);
        assert_eq!(nodes, [1, 2]);
        presence.remove_gateway(1);
        presence.gateways_of("alice", &mut nodes);
        assert_eq!(nodes, [2]);
        presence.disconnected(2, conn(2, 10));
        assert_eq!(presence.user_count(), 0);
    }

    #[test]
    fn a_gateway_is_bounded() {
        let mut presence = Presence::default();
        assert!(presence.connected(1, conn(1, 1), "a", 1));
        assert!(!presence.connected(1, conn(1, 2), "b", 1));
    }
}
