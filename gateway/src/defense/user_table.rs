//! Per-user and per-topic limits shared by every shard: concurrent
//! connections (devices) per user, messages per minute and per hour per
//! user, persistent abuse, repeated content, and messages per minute per
//! topic. One [`UserTable`] and one [`TopicTable`] serve all shard threads
//! without locks, each in a fixed array sized at start-up.
//!
//! What it does:
//! - [`UserTable::acquire_connection`] counts an authenticated connection
//!   against its user's device cap (default 5), or refuses it (429 at
//!   upgrade); [`UserTable::release`] takes the returned [`UserHandle`] back.
//! - [`UserTable::allow_publish`] decides a client publish: the user's
//!   minute bucket (default 100, burst 100), hour bucket (default 1,000,
//!   burst 1,000), and the [repeated-content detector](crate::defense::content)
//!   (default: the same payload at most 5 times in 60 s). A refused message
//!   is answered `rate_limited` with `retry_after_ms`; refusals themselves
//!   go into a strike bucket (default 300 per minute, 3 × the minute rate),
//!   and a refusal that finds it empty is [`MessageRefusal::Abuse`]: close
//!   1008. [`UserTable::allow_message`] and [`UserTable::check_content`] are
//!   its two halves.
//! - [`TopicTable::allow_topic`] takes a token from the topic's bucket
//!   (default 10,000 per minute, burst 10,000).
//! - Keys: [`UserKey::named`] for an authenticated user id,
//!   [`UserKey::anonymous`] for a connection when auth is off (each
//!   connection its own user; never equal to a named key), and
//!   [`TopicKey::new`]; SipHash under a per-process random key.
//!
//! What it does not do: no clock (time is an argument, monotonic
//! milliseconds), no allocation and no syscall after `new`, no waiting, no
//! growth, no `unsafe`. It doesn't read the config file (the caller fills
//! [`UserLimits`] and [`TopicLimits`]) and it can't close a connection: for
//! `on_device_limit = "close_oldest"` it reports [`UserRefusalReason::TooManyDevices`]
//! and the shard moves the handle of its own oldest connection of that user
//! to the new one (see [`DeviceLimitPolicy::CloseOldest`]).
//!
//! Key number: 64 bytes per slot (an owner word in the window's owner line,
//! 7 words of state), so the default 262,144 slots take 16 MiB whatever the
//! traffic; the topic table's 65,536 take 1 MiB. A publish by a known user
//! (rates and the content of a 100-byte payload) costs about 37 ns, a
//! topic's bucket about 9 ns (plus 18 ns to hash its name).
//!
//! # How it stays bounded, exact and lock-free
//! The design of [`crate::defense::ip_table`], adapted:
//! - **Windows.** A key's hash picks a window of 8 slots: 7 regular and 1
//!   overflow. The window's 8 owner words share one cache line, so finding
//!   a key reads one line; the key's state is on the next lines.
//! - **Owner word.** A 40-bit key fingerprint, 12 bits of held devices and
//!   12 bits of operations in flight. Holding a slot is one CAS that checks
//!   the fingerprint and bumps a count; an open connection's device count is
//!   its hold until [`UserTable::release`], a message check holds an
//!   operation for its duration. Devices and operations are counted apart,
//!   so messages in flight never count against the device cap. A held slot
//!   is never reclaimed, so counts can't leak to another key.
//! - **Claims.** A key with no slot claims a *fresh* one (no holds, full
//!   buckets, no live content entry): its state equals a brand-new slot's, so
//!   reclaiming forgets nothing that still limits anybody. Fingerprints
//!   change only under the window's claim flag, a try-lock nobody waits on
//!   (the top bit of the overflow slot's owner word): one thread reshapes a
//!   window at a time, so a key is never in two slots.
//! - **Saturation.** When no slot of the window is fresh, the key shares the
//!   window's overflow slot: its limits (including the device cap) are shared
//!   by every slotless key of the window, stricter and never looser, and
//!   `table_saturated` counts it. The overflow's owner word keeps a 39-bit
//!   filter of the keys sent there since it was last fresh; a key it names
//!   (one that may have state there) keeps going there, so it can't escape
//!   its limits into a freed slot, while other keys may still claim freed
//!   slots. (The per-IP table's rule, "everybody goes to a non-fresh
//!   overflow", would keep a window overflowing for as long as new keys
//!   keep coming within one content window of each other.) A thread that
//!   finds the claim flag taken rescans briefly, then refuses (`TableBusy`)
//!   rather than wait.
//! - **Collisions.** Two keys with the same window and fingerprint share
//!   limits: stricter, not aimable without the seed. Named and anonymous keys
//!   differ in the fingerprint's top bit, so they never collide.
//!
//! `docs/design/why-user-table.md` has the alternatives, the cross-shard
//! close-oldest question and the sizing rule.
//!
//! ```
//! use ringgate::defense::user_table::{
//!     MessageRefusal, RateScope, UserKey, UserLimits, UserRefusalReason, UserTable,
//! };
//!
//! let table = UserTable::new(&UserLimits { max_connections: 1, ..UserLimits::default() });
//! let alice = UserKey::named("alice");
//! let now_ms = 0; // the shard's monotonic clock
//! let handle = table.acquire_connection(alice, now_ms).expect("first device");
//! let refusal = table.acquire_connection(alice, now_ms).unwrap_err();
//! assert_eq!(refusal.reason, UserRefusalReason::TooManyDevices);
//! for n in 0..100 {
//!     table.allow_publish(alice, format!("hello {n}").as_bytes(), now_ms).unwrap();
//! }
//! let refused = table.allow_publish(alice, b"one too many", now_ms).unwrap_err();
//! let MessageRefusal::RateLimited(limited) = refused else { panic!() };
//! assert_eq!((limited.scope, limited.retry_after_ms), (RateScope::Minute, 600));
//! table.release(handle); // when the connection closes
//! ```

mod bucket;
mod keys;
mod refusal;
#[cfg(test)]
mod tests;
mod topic;
mod window;

pub use keys::{TopicKey, UserKey};
pub use refusal::{MessageRefusal, RateLimited, RateScope, UserRefusal, UserRefusalReason};
pub use topic::{TopicLimits, TopicTable};
pub use window::{Occupancy, TableStats};

use std::sync::atomic::AtomicU64;

use crate::defense::content::{self, ContentRule, PayloadHasher, RecentPayloads};
use bucket::Bucket;
use window::{CellState, Found, Hold, Table, WINDOW_CELLS};

/// Bounds on `table_slots`: one window at least; at most 2^27 so that the
/// window bits (24) and the fingerprint bits (40) of a hash don't overlap.
const SLOTS_MIN: usize = WINDOW_CELLS;
const SLOTS_MAX: usize = 1 << 27;
/// The largest `max_connections` the owner word can count.
pub const MAX_CONNECTIONS_MAX: u32 = window::DEVICES_MAX;
/// The longest repeated-content window: a day.
pub const REPEATED_CONTENT_WINDOW_S_MAX: u32 = 86_400;
/// Retry-After for the device cap: connections close on human time scales.
const DEVICES_RETRY_AFTER_S: u32 = 10;

/// What the gateway does with a connection over the device cap
/// (`on_device_limit`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceLimitPolicy {
    /// Refuse the new connection's upgrade with 429 and `Retry-After`.
    #[default]
    Refuse,
    /// Close the user's oldest connection with 1008 and admit the new one.
    /// The table can't close anything: when `acquire_connection` says
    /// `TooManyDevices`, the accepting shard looks for its own oldest open
    /// connection of the same [`UserKey`], takes that connection's
    /// [`UserHandle`] for the new connection (the device count doesn't
    /// change, so no other shard can slip in between) and closes the old one
    /// with 1008 without releasing. If the shard holds none of the user's
    /// connections (they are all on other shards), it refuses with 429 like
    /// `Refuse`: finding the oldest across shards needs a message between
    /// shards that the accept path doesn't have.
    CloseOldest,
}

impl DeviceLimitPolicy {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceLimitPolicy::Refuse => "refuse",
            DeviceLimitPolicy::CloseOldest => "close_oldest",
        }
    }
}

/// The `[limits.per_user]` settings. A value of 0 turns a limit off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserLimits {
    /// Concurrent connections per user (`max_connections`, default 5).
    /// Anonymous users are one connection each, so it never binds them.
    pub max_connections: u32,
    /// What happens to the connection over the cap (`on_device_limit`).
    pub on_device_limit: DeviceLimitPolicy,
    /// Messages per minute and burst (`messages_per_minute`, default 100).
    pub messages_per_minute: u32,
    /// Messages per hour and burst (`messages_per_hour`, default 1,000).
    pub messages_per_hour: u32,
    /// Refused messages per minute, and burst, before a refusal closes the
    /// connection with 1008 (`abuse_refusals_per_minute`, default 300: 3 ×
    /// the minute rate).
    pub abuse_refusals_per_minute: u32,
    /// Times one payload may repeat within the window
    /// (`repeated_content_max`, default 5, at most 255).
    pub repeated_content_max: u32,
    /// The repeated-content window (`repeated_content_window_s`, default 60).
    pub repeated_content_window_s: u32,
    /// Table size in slots, a power of two (`table_slots`, default 262,144);
    /// one slot in 8 is its window's overflow slot.
    pub slots: usize,
}

impl Default for UserLimits {
    fn default() -> Self {
        UserLimits {
            max_connections: 5,
            on_device_limit: DeviceLimitPolicy::Refuse,
            messages_per_minute: 100,
            messages_per_hour: 1000,
            abuse_refusals_per_minute: 300,
            repeated_content_max: 5,
            repeated_content_window_s: 60,
            slots: 262_144,
        }
    }
}

/// A setting a table can't work with; each names its config key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    #[error(
        "limits.per_user.table_slots = {slots}: must be a power of two from {SLOTS_MIN} to {SLOTS_MAX}"
    )]
    UserSlots { slots: usize },
    #[error(
        "limits.per_topic.table_slots = {slots}: must be a power of two from {SLOTS_MIN} to {SLOTS_MAX}"
    )]
    TopicSlots { slots: usize },
    #[error("limits.per_user.max_connections = {value}: must be at most {MAX_CONNECTIONS_MAX}")]
    MaxConnections { value: u32 },
    #[error(
        "limits.per_user.repeated_content_max = {value}: must be at most {}",
        content::REPEATS_MAX
    )]
    RepeatedContentMax { value: u32 },
    #[error(
        "limits.per_user.repeated_content_window_s = {value}: must be from 1 to {REPEATED_CONTENT_WINDOW_S_MAX}"
    )]
    RepeatedContentWindow { value: u32 },
}

fn slots_are_valid(slots: usize) -> bool {
    slots.is_power_of_two() && (SLOTS_MIN..=SLOTS_MAX).contains(&slots)
}

impl UserLimits {
    /// Checks what [`UserTable::new`] asserts.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if !slots_are_valid(self.slots) {
            return Err(LimitsError::UserSlots { slots: self.slots });
        }
        if self.max_connections > MAX_CONNECTIONS_MAX {
            return Err(LimitsError::MaxConnections {
                value: self.max_connections,
            });
        }
        if self.repeated_content_max > content::REPEATS_MAX {
            return Err(LimitsError::RepeatedContentMax {
                value: self.repeated_content_max,
            });
        }
        let window_s = self.repeated_content_window_s;
        if self.repeated_content_max > 0 && !(1..=REPEATED_CONTENT_WINDOW_S_MAX).contains(&window_s)
        {
            return Err(LimitsError::RepeatedContentWindow { value: window_s });
        }
        Ok(())
    }
}

/// An accepted connection's hold on its user's slot; give it back with
/// [`UserTable::release`] when the connection closes (or move it to the
/// connection that replaces this one, see [`DeviceLimitPolicy::CloseOldest`]).
/// Neither `Clone` nor `Copy`, so it can't be released twice.
#[must_use = "a UserHandle must be given back to UserTable::release, or the device stays counted"]
#[derive(Debug, PartialEq, Eq)]
pub struct UserHandle {
    key: UserKey,
    /// `window * 8 + slot` (slot 7: the overflow), or `UNTRACKED`.
    cell: u32,
}

impl UserHandle {
    const UNTRACKED: u32 = u32::MAX;

    /// The user this connection counts for.
    pub fn key(&self) -> UserKey {
        self.key
    }

    /// Whether the connection counts against a device cap (false for
    /// anonymous users and when the cap is off).
    pub fn is_tracked(&self) -> bool {
        self.cell != Self::UNTRACKED
    }
}

/// One user's limiting state (7 words). All zero when fresh.
#[derive(Default)]
struct UserState {
    minute_tat_us: AtomicU64,
    hour_tat_us: AtomicU64,
    strikes_tat_us: AtomicU64,
    recent: RecentPayloads,
}

impl CellState for UserState {
    fn is_fresh(&self, now_ms: u64) -> bool {
        bucket::is_full(&self.minute_tat_us, now_ms)
            && bucket::is_full(&self.hour_tat_us, now_ms)
            && bucket::is_full(&self.strikes_tat_us, now_ms)
            && self.recent.is_fresh(now_ms)
    }

    fn reset(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        self.minute_tat_us.store(0, Relaxed);
        self.hour_tat_us.store(0, Relaxed);
        self.strikes_tat_us.store(0, Relaxed);
        self.recent.reset();
    }
}

/// The per-user table; share one (e.g. in an `Arc`) between all shards.
pub struct UserTable {
    table: Table<UserState>,
    max_connections: u32,
    policy: DeviceLimitPolicy,
    minute: Option<Bucket>,
    hour: Option<Bucket>,
    strikes: Option<Bucket>,
    content: Option<ContentRule>,
    hasher: PayloadHasher,
}

impl std::fmt::Debug for UserTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTable")
            .field("slots", &self.table.cells())
            .field("memory_bytes", &self.memory_bytes())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl UserTable {
    /// Allocates the whole table; nothing is allocated after this. With
    /// every limit off the table is one window, never touched.
    ///
    /// # Panics
    /// If [`UserLimits::validate`] fails.
    pub fn new(limits: &UserLimits) -> UserTable {
        if let Err(error) = limits.validate() {
            panic!("invalid per-user limits: {error}");
        }
        let minute = Bucket::per_minute(limits.messages_per_minute);
        let hour = Bucket::per_hour(limits.messages_per_hour);
        let content = (limits.repeated_content_max > 0).then(|| ContentRule {
            max_repeats: limits.repeated_content_max,
            window_ms: u64::from(limits.repeated_content_window_s) * 1000,
        });
        let in_use =
            limits.max_connections > 0 || minute.is_some() || hour.is_some() || content.is_some();
        UserTable {
            table: Table::new(if in_use { limits.slots } else { SLOTS_MIN }),
            max_connections: limits.max_connections,
            policy: limits.on_device_limit,
            minute,
            hour,
            strikes: Bucket::per_minute(limits.abuse_refusals_per_minute),
            content,
            hasher: PayloadHasher::new(keys::process_seed()),
        }
    }

    /// Counts a new connection of `user` at `now_ms` against the device
    /// cap. Anonymous users (one connection each) and a cap of 0 get an
    /// untracked handle without touching the table.
    pub fn acquire_connection(
        &self,
        user: UserKey,
        now_ms: u64,
    ) -> Result<UserHandle, UserRefusal> {
        if self.max_connections == 0 || user.is_anonymous() {
            return Ok(UserHandle {
                key: user,
                cell: UserHandle::UNTRACKED,
            });
        }
        let hold = Hold::Device {
            max: self.max_connections,
        };
        match self.table.hold(user.hash(), hold, now_ms) {
            Found::Held(cell) => Ok(UserHandle { key: user, cell }),
            Found::Full => Err(UserRefusal {
                reason: UserRefusalReason::TooManyDevices,
                retry_after_s: DEVICES_RETRY_AFTER_S,
            }),
            Found::Busy => Err(UserRefusal {
                reason: UserRefusalReason::TableBusy,
                retry_after_s: 1,
            }),
        }
    }

    /// Gives back a connection's place under its user's device cap.
    pub fn release(&self, handle: UserHandle) {
        if handle.is_tracked() {
            let hold = Hold::Device {
                max: self.max_connections,
            };
            self.table.release(handle.cell, hold);
        }
    }

    /// What the gateway does over the device cap.
    pub fn device_limit_policy(&self) -> DeviceLimitPolicy {
        self.policy
    }

    /// Decides a publish from `user` at `now_ms`: the minute and hour
    /// buckets, then the repeated-content check of `payload` (the message's
    /// `data`). One lookup for both; a message refused for its content has
    /// used its rate tokens (spam pays for itself).
    pub fn allow_publish(
        &self,
        user: UserKey,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), MessageRefusal> {
        if self.minute.is_none() && self.hour.is_none() && self.content.is_none() {
            return Ok(());
        }
        let tag = self.content_tag(user, payload);
        self.with_state(user, now_ms, |state| {
            self.take_rates(state, now_ms)?;
            self.record_content(state, tag, now_ms)
        })
    }

    /// The rate half of [`UserTable::allow_publish`]: takes a token from the
    /// user's minute bucket and hour bucket, or neither.
    pub fn allow_message(&self, user: UserKey, now_ms: u64) -> Result<(), MessageRefusal> {
        if self.minute.is_none() && self.hour.is_none() {
            return Ok(());
        }
        self.with_state(user, now_ms, |state| self.take_rates(state, now_ms))
    }

    /// The content half of [`UserTable::allow_publish`]: counts `payload`
    /// from `user`, refusing it when it repeats too often.
    pub fn check_content(
        &self,
        user: UserKey,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(), MessageRefusal> {
        let Some(tag) = self.content_tag(user, payload) else {
            return Ok(());
        };
        self.with_state(user, now_ms, |state| {
            self.record_content(state, Some(tag), now_ms)
        })
    }

    /// The table's whole memory: fixed at [`UserTable::new`].
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of::<UserTable>() - std::mem::size_of::<Table<UserState>>()
            + self.table.memory_bytes()
    }

    /// Event counts since start-up.
    pub fn stats(&self) -> TableStats {
        self.table.stats()
    }

    /// Scans the whole table (control plane only: O(slots)) for slots that
    /// still limit someone at `now_ms`. At `u64::MAX`, when every bucket is
    /// full and every content window over, it counts the slots held by open
    /// connections.
    pub fn occupancy(&self, now_ms: u64) -> Occupancy {
        self.table.occupancy(now_ms)
    }

    /// Holds the user's slot for one operation, runs `check` on its state,
    /// and turns a refusal into a strike.
    fn with_state(
        &self,
        user: UserKey,
        now_ms: u64,
        check: impl FnOnce(&UserState) -> Result<(), MessageRefusal>,
    ) -> Result<(), MessageRefusal> {
        let cell = match self.table.hold(user.hash(), Hold::Operation, now_ms) {
            Found::Held(cell) => cell,
            Found::Full | Found::Busy => return Err(MessageRefusal::TableBusy),
        };
        let state = self.table.state(cell);
        let verdict = check(state).map_err(|refusal| self.strike(state, refusal, now_ms));
        self.table.release(cell, Hold::Operation);
        verdict
    }

    fn take_rates(&self, state: &UserState, now_ms: u64) -> Result<(), MessageRefusal> {
        let limited = |scope| {
            move |retry_after_ms| {
                MessageRefusal::RateLimited(RateLimited {
                    retry_after_ms,
                    scope,
                })
            }
        };
        if let Some(minute) = self.minute {
            minute
                .take(&state.minute_tat_us, now_ms)
                .map_err(limited(RateScope::Minute))?;
        }
        if let Some(hour) = self.hour
            && let Err(wait_ms) = hour.take(&state.hour_tat_us, now_ms)
        {
            if let Some(minute) = self.minute {
                minute.give_back(&state.minute_tat_us);
            }
            return Err(limited(RateScope::Hour)(wait_ms));
        }
        Ok(())
    }

    fn content_tag(&self, user: UserKey, payload: &[u8]) -> Option<u16> {
        self.content
            .map(|_| content::tag(user.hash(), self.hasher.hash(payload)))
    }

    fn record_content(
        &self,
        state: &UserState,
        tag: Option<u16>,
        now_ms: u64,
    ) -> Result<(), MessageRefusal> {
        match (self.content, tag) {
            (Some(rule), Some(tag)) => state
                .recent
                .record(tag, rule, now_ms)
                .map_err(MessageRefusal::Repeated),
            _ => Ok(()),
        }
    }

    /// Counts a refusal; with the strike bucket empty it becomes `Abuse`.
    fn strike(&self, state: &UserState, refusal: MessageRefusal, now_ms: u64) -> MessageRefusal {
        match self.strikes {
            Some(strikes) if strikes.take(&state.strikes_tat_us, now_ms).is_err() => {
                MessageRefusal::Abuse
            }
            _ => refusal,
        }
    }
}

#[cfg(test)]
impl UserTable {
    /// Devices held in `user`'s slot (tests only).
    fn devices(&self, user: UserKey) -> u32 {
        self.table.devices(user.hash())
    }

    fn block_window(&self, user: UserKey, blocked: bool) {
        self.table.block_window(user.hash(), blocked);
    }
}
