//! RCU publication: one writer publishes whole maps, readers never lock.
//!
//! Read paths, and what each costs on a reading thread:
//! - [`ShardMapReader::current`] (the hot path, one reader per gateway
//!   worker): one relaxed atomic load of the published pointer and a
//!   compare with the pointer it cached. No lock, no atomic read-modify-write,
//!   no write to memory shared with other threads. Only when the pointer
//!   changed (an update was published) does it take a counted reference to the
//!   new map. The cached reference keeps the old map alive, so its address
//!   cannot be reused by a newer map and the compare cannot be fooled (no ABA).
//! - [`SharedShardMap::load`]: arc-swap's `load`. It never touches the map's
//!   shared reference count. It records the pointer in a debt slot owned by the
//!   calling thread (an uncontended atomic swap on a cache line no other
//!   thread writes in the common case) and clears it when the guard drops.
//!   Cheap and lock-free, fine for the control plane and occasional readers.
//! - [`SharedShardMap::snapshot`]: a counted `Arc`, to hold a map for long.
//!
//! Writers (router added, removed, marked down or up, config reloaded) are
//! serialized by a mutex that readers never touch; each change builds a new
//! [`ShardMap`] with epoch + 1 and swaps it in. An update that changes nothing
//! publishes nothing and returns the current epoch, so a health checker
//! repeating "down" every 5 s does not churn epochs.

use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, Cache, Guard};

use crate::{Member, RouterId, RouterState, ShardMap, ShardMapError};

/// The published shard map of one gateway (or router), shared by all threads.
#[derive(Clone)]
pub struct SharedShardMap {
    current: Arc<ArcSwap<ShardMap>>,
    /// Serializes updates; holds no data, the current map is the state.
    writer: Arc<Mutex<()>>,
}

/// A map loaded with [`SharedShardMap::load`]; dereferences to [`ShardMap`].
pub struct ShardMapGuard(Guard<Arc<ShardMap>>);

impl Deref for ShardMapGuard {
    type Target = ShardMap;

    #[inline]
    fn deref(&self) -> &ShardMap {
        &self.0
    }
}

/// A per-thread reader that keeps the last map it saw and revalidates it with
/// one relaxed load per call. Give each gateway worker its own.
pub struct ShardMapReader(Cache<Arc<ArcSwap<ShardMap>>, Arc<ShardMap>>);

impl ShardMapReader {
    /// The newest published map.
    #[inline]
    pub fn current(&mut self) -> &ShardMap {
        self.0.load()
    }
}

impl SharedShardMap {
    /// Publishes `initial` as the current map.
    pub fn new(initial: ShardMap) -> SharedShardMap {
        SharedShardMap {
            current: Arc::new(ArcSwap::from_pointee(initial)),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The current map, lock-free (see the module docs for the cost).
    #[inline]
    pub fn load(&self) -> ShardMapGuard {
        ShardMapGuard(self.current.load())
    }

    /// A counted reference to the current map.
    pub fn snapshot(&self) -> Arc<ShardMap> {
        self.current.load_full()
    }

    /// A reader for one thread's hot path.
    pub fn reader(&self) -> ShardMapReader {
        ShardMapReader(Cache::new(Arc::clone(&self.current)))
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.current.load().epoch()
    }

    /// Adds `id` as an up router. A router that is already a member keeps its
    /// state (use [`mark_up`](Self::mark_up)), and nothing is published.
    pub fn add_router(&self, id: RouterId) -> Result<u64, ShardMapError> {
        self.update(|members| {
            if members.iter().any(|member| member.id == id) {
                return Ok(false);
            }
            members.push(Member {
                id,
                state: RouterState::Up,
            });
            Ok(true)
        })
    }

    /// Removes `id`; its virtual shards move to the remaining live routers.
    /// Removing a non-member publishes nothing.
    pub fn remove_router(&self, id: RouterId) -> Result<u64, ShardMapError> {
        self.update(|members| {
            let before = members.len();
            members.retain(|member| member.id != id);
            Ok(members.len() != before)
        })
    }

    /// Marks member `id` down: it keeps its membership but its virtual shards
    /// fail over to the live routers until [`mark_up`](Self::mark_up).
    pub fn mark_down(&self, id: RouterId) -> Result<u64, ShardMapError> {
        self.set_state(id, RouterState::Down)
    }

    /// Marks member `id` up: it takes back exactly the virtual shards it wins.
    pub fn mark_up(&self, id: RouterId) -> Result<u64, ShardMapError> {
        self.set_state(id, RouterState::Up)
    }

    /// Sets the membership to exactly `routers` (a config reload). Routers
    /// already members keep their state; new ones start up.
    pub fn replace(
        &self,
        routers: impl IntoIterator<Item = RouterId>,
    ) -> Result<u64, ShardMapError> {
        let mut wanted: Vec<RouterId> = routers.into_iter().collect();
        wanted.sort_unstable();
        wanted.dedup();
        self.update(|members| {
            let mut next: Vec<Member> = wanted
                .iter()
                .map(|&id| match members.iter().find(|member| member.id == id) {
                    Some(&member) => member,
                    None => Member {
                        id,
                        state: RouterState::Up,
                    },
                })
                .collect();
            let changed = next != *members;
            std::mem::swap(members, &mut next);
            Ok(changed)
        })
    }

    fn set_state(&self, id: RouterId, state: RouterState) -> Result<u64, ShardMapError> {
        self.update(|members| {
            let member = members
                .iter_mut()
                .find(|member| member.id == id)
                .ok_or(ShardMapError::UnknownRouter(id))?;
            let changed = member.state != state;
            member.state = state;
            Ok(changed)
        })
    }

    /// Runs `change` on a copy of the current members (sorted by id); when it
    /// reports a change, builds and publishes the next map at epoch + 1.
    fn update(
        &self,
        change: impl FnOnce(&mut Vec<Member>) -> Result<bool, ShardMapError>,
    ) -> Result<u64, ShardMapError> {
        // The mutex guards no data (`()`), so a panic in another writer
        // cannot have left anything half-updated: poisoning is ignored.
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.current.load_full();
        let mut members = current.members().to_vec();
        if !change(&mut members)? {
            return Ok(current.epoch());
        }
        let epoch = current.epoch() + 1;
        let next = ShardMap::from_members(epoch, current.vshards(), members)?;
        self.current.store(Arc::new(next));
        Ok(epoch)
    }
}

impl std::fmt::Debug for SharedShardMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedShardMap")
            .field("epoch", &self.epoch())
            .finish()
    }
}

impl std::fmt::Debug for ShardMapReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardMapReader").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ShardMapGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ShardMapGuard").field(&self.epoch()).finish()
    }
}
