//! One immutable shard map: members, epoch, and the precomputed
//! virtual shard -> router table.

use std::fmt;

use crate::ShardMapError;
use crate::hash::{rendezvous_weight, topic_vshard, user_vshard};

/// Virtual shards in a cluster unless configured otherwise. Fixed for the life
/// of a cluster: changing it moves nearly every topic.
pub const DEFAULT_VSHARDS: u32 = 4096;
/// Most virtual shards a map may have: bounds the table at 256 KiB.
pub const MAX_VSHARDS: u32 = 65_536;
/// Most routers (up or down) a map may list: bounds a rebuild at
/// `vshards * MAX_ROUTERS` weight hashes (67 M at the largest vshard count).
pub const MAX_ROUTERS: usize = 1024;

/// A router's node id, as announced in its HELLO and written in message ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouterId(pub u32);

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "router-{}", self.0)
    }
}

/// Whether a member router takes part in the assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterState {
    /// Healthy: owns the virtual shards it wins.
    Up,
    /// Failed its health checks: stays a member but owns nothing, so its
    /// virtual shards fail over to the others and come back when it is up.
    Down,
}

/// A router listed in the map and its state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: RouterId,
    pub state: RouterState,
}

/// A virtual shard whose router differs between two maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VshardMove {
    pub vshard: u32,
    /// Owner in the earlier map (None: no live router then).
    pub from: Option<RouterId>,
    /// Owner in the later map (None: no live router now).
    pub to: Option<RouterId>,
}

/// An immutable snapshot: topic -> virtual shard -> router.
///
/// A lookup is one hash and one array index; the rendezvous scoring
/// (`vshards * live routers` hashes) runs once, when the map is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMap {
    epoch: u64,
    vshards: u32,
    /// Sorted by id, ids unique.
    members: Box<[Member]>,
    /// Owner of each virtual shard; empty when no router is up.
    table: Box<[RouterId]>,
}

impl ShardMap {
    /// A map at epoch 0 with `vshards` virtual shards and every given router
    /// up. Duplicate ids count once.
    pub fn new(
        vshards: u32,
        routers: impl IntoIterator<Item = RouterId>,
    ) -> Result<ShardMap, ShardMapError> {
        let members = routers
            .into_iter()
            .map(|id| Member {
                id,
                state: RouterState::Up,
            })
            .collect();
        ShardMap::from_members(0, vshards, members)
    }

    /// A map at `epoch` listing `members` (any order; for a repeated id the
    /// first entry wins).
    pub fn from_members(
        epoch: u64,
        vshards: u32,
        mut members: Vec<Member>,
    ) -> Result<ShardMap, ShardMapError> {
        if vshards == 0 || vshards > MAX_VSHARDS {
            return Err(ShardMapError::VshardCount(vshards));
        }
        members.sort_by_key(|member| member.id);
        members.dedup_by_key(|member| member.id);
        if members.len() > MAX_ROUTERS {
            return Err(ShardMapError::TooManyRouters(members.len()));
        }
        let live: Vec<RouterId> = members
            .iter()
            .filter(|member| member.state == RouterState::Up)
            .map(|member| member.id)
            .collect();
        let table = assign(vshards, &live);
        Ok(ShardMap {
            epoch,
            vshards,
            members: members.into(),
            table,
        })
    }

    /// Increases by one on every published change.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Number of virtual shards.
    pub fn vshards(&self) -> u32 {
        self.vshards
    }

    /// Member routers, up and down, sorted by id.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The state of `id`, or None when it is not a member.
    pub fn state_of(&self, id: RouterId) -> Option<RouterState> {
        let index = self
            .members
            .binary_search_by_key(&id, |member| member.id)
            .ok()?;
        Some(self.members[index].state)
    }

    /// Member routers that are up, sorted by id.
    pub fn live_routers(&self) -> impl Iterator<Item = RouterId> + '_ {
        self.members
            .iter()
            .filter(|member| member.state == RouterState::Up)
            .map(|member| member.id)
    }

    /// The virtual shard of a topic, in `0..vshards()`.
    #[inline]
    pub fn vshard_of(&self, topic: &[u8]) -> u32 {
        topic_vshard(topic, self.vshards)
    }

    /// The virtual shard of a user id, in `0..vshards()`.
    #[inline]
    pub fn vshard_of_user(&self, user: &[u8]) -> u32 {
        user_vshard(user, self.vshards)
    }

    /// The router owning virtual shard `vshard`; None when no router is up
    /// (or `vshard` is out of range).
    #[inline]
    pub fn router_of_vshard(&self, vshard: u32) -> Option<RouterId> {
        self.table.get(vshard as usize).copied()
    }

    /// The router for a topic; None when no router is up.
    #[inline]
    pub fn route(&self, topic: &[u8]) -> Option<RouterId> {
        self.router_of_vshard(self.vshard_of(topic))
    }

    /// The router for a user id; None when no router is up.
    #[inline]
    pub fn route_user(&self, user: &[u8]) -> Option<RouterId> {
        self.router_of_vshard(self.vshard_of_user(user))
    }

    /// Virtual shards whose router differs from `previous`, in vshard order:
    /// what a gateway must re-home (or flush a buffer for) after an update.
    pub fn moves_since<'a>(
        &'a self,
        previous: &'a ShardMap,
    ) -> impl Iterator<Item = VshardMove> + 'a {
        (0..self.vshards).filter_map(move |vshard| {
            let from = previous.router_of_vshard(vshard);
            let to = self.router_of_vshard(vshard);
            (from != to).then_some(VshardMove { vshard, from, to })
        })
    }
}

/// Rendezvous assignment: each virtual shard goes to the live router with the
/// highest (weight, id). Adding a router only takes shards it wins; removing
/// one only frees the shards it held: no other shard changes owner.
fn assign(vshards: u32, live: &[RouterId]) -> Box<[RouterId]> {
    if live.is_empty() {
        return Box::default();
    }
    (0..vshards)
        .map(|vshard| {
            let mut best = (rendezvous_weight(vshard, live[0]), live[0]);
            for &router in &live[1..] {
                best = best.max((rendezvous_weight(vshard, router), router));
            }
            best.1
        })
        .collect()
}
