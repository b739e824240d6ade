//! The backend SDK: what a backend service links to attach to the routers.
//!
//! What it does:
//! - [`Backend::attach`] connects to every router (one thread and one TCP
//!   connection each), says HELLO as a backend, and reconnects with
//!   exponential backoff and jitter whenever a link breaks. Routers keep
//!   nothing across a restart, so on every (re)connect the SDK claims its
//!   prefixes again.
//! - [`Backend::claim`] and [`Backend::release`] take or give up topic
//!   prefixes on every router.
//! - [`Backend::next_event`] hands out what routers send: each
//!   [`Event::Publish`] carries a [`Verdict`] to answer (accept, reject, ...)
//!   and [`Event::Presence`] reports clients coming, going, joining and
//!   leaving topics.
//! - Deliveries to a topic, a user or one connection, and kicks, go to the
//!   router that owns the target in the same shard map the gateways use
//!   (`ringgate-shardmap` over the router ids learned from HELLO_ACK).
//! - Credit: the SDK grants each router [`AttachOptions::credit`] and gives
//!   it back as verdicts are sent, so a backend that stops answering stops
//!   receiving; deliveries wait for the router's credit (up to
//!   [`AttachOptions::request_timeout`]).
//!
//! What it does not do: no async runtime (blocking std sockets), no
//! persistence, no dedup of its own (a backend that must survive router
//! restarts keeps its own record; see `docs/BACKENDS.md`).
//!
//! Key numbers: one thread per router; at most
//! [`AttachOptions::event_capacity`] events queued (4,096 by default), after
//! which the SDK stops reading from routers until the backend catches up.
//!
//! ```no_run
//! use std::time::Duration;
//! use ringgate_router::sdk::{Backend, Event};
//!
//! let routers = ["127.0.0.1:7100".parse()?];
//! let backend = Backend::attach(&routers, 1)?;
//! backend.claim("chat.")?;
//! loop {
//!     match backend.next_event(Duration::from_secs(1)) {
//!         Some(Event::Publish { message, reply }) if message.data.len() < 4096 => reply.accept()?,
//!         Some(Event::Publish { reply, .. }) => {
//!             reply.reject(ringgate_router::protocol::Code::TOO_LARGE, "too long")?
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod link;
mod verdict;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringgate_shardmap::{DEFAULT_VSHARDS, Member, RouterId, RouterState, ShardMap};

use crate::msgid::MessageId;
use crate::protocol::{
    Capabilities, Code, ConnectionRef, Credit, Deliver, EncodeError, Frame, Kick, PrefixRequest,
    Publish, Recipient, Target, UNASSIGNED_ID, is_valid_close_code,
};

use link::Link;
pub use verdict::Verdict;

/// How a backend attaches.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// PRESENCE: connected/disconnected for every user; TOPIC_EVENTS:
    /// joined/left for the topics this backend owns. Default: both.
    pub capabilities: Capabilities,
    /// What each router may send before the SDK gives credit back: PUBLISH
    /// frames waiting for (or being delivered to) a verdict.
    pub credit: Credit,
    /// Largest frame body this backend accepts.
    pub max_body_bytes: u32,
    /// The routers' shared secret, if they require one.
    pub token: Vec<u8>,
    /// Limit on one connect attempt (and on waiting for HELLO_ACK).
    pub connect_timeout: Duration,
    /// How long [`Backend::attach`] waits for every router to answer.
    pub attach_wait: Duration,
    /// Reconnect backoff with full jitter: before attempt n a random wait
    /// below min(`backoff_max`, `backoff_min` × 2^n), reset once a session
    /// lasted 10 s. Keep `backoff_max` under the routers' `claim_grace_ms`
    /// (3 s by default) so claims come back before a restarted router
    /// relays unclaimed topics.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// How long a claim waits for replies and a delivery for credit.
    pub request_timeout: Duration,
    /// Events queued before the SDK stops reading from routers.
    pub event_capacity: usize,
    /// Virtual shards of the shard map: must match the gateways'.
    pub vshards: u32,
    /// Software name sent in HELLO.
    pub agent: String,
}

impl Default for AttachOptions {
    fn default() -> AttachOptions {
        AttachOptions {
            capabilities: Capabilities::PRESENCE.union(Capabilities::TOPIC_EVENTS),
            credit: Credit {
                messages: 1024,
                bytes: 8 << 20,
            },
            max_body_bytes: 16 << 20,
            token: Vec::new(),
            connect_timeout: Duration::from_secs(2),
            attach_wait: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            event_capacity: 4096,
            vshards: DEFAULT_VSHARDS,
            agent: concat!("ringgate-backend-sdk/", env!("CARGO_PKG_VERSION")).to_string(),
        }
    }
}

/// What went wrong with an SDK call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdkError {
    /// No attached router owns the target (none is up, or none answered yet).
    #[error("no attached router for this target")]
    NoRouter,
    /// The link to that router is down (it reconnects by itself).
    #[error("the link to router {0} is down")]
    LinkDown(SocketAddr),
    /// The router granted no credit in time: it is overloaded or slow.
    #[error("router {router} granted no credit within {waited:?}")]
    NoCredit {
        router: SocketAddr,
        waited: Duration,
    },
    #[error("router {router} did not reply within {waited:?}")]
    Timeout {
        router: SocketAddr,
        waited: Duration,
    },
    /// A router refused a claim.
    #[error("router {router} refused: {code} {text}")]
    Refused {
        router: SocketAddr,
        code: Code,
        text: String,
    },
    /// An argument the protocol cannot carry (empty topic, bad close code,
    /// oversized field).
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What routers tell a backend.
#[derive(Debug)]
pub enum Event {
    /// A client published on a topic this backend owns. Answer with
    /// `reply`; the client hears `ack` (or `err`) only after that.
    Publish { message: Message, reply: Verdict },
    /// A client connection came, went, joined or left a topic.
    Presence(PresenceNotice),
    /// A router link came up (its claims were sent again).
    RouterUp { router: u32, address: SocketAddr },
    /// A router link went down; it reconnects by itself. Presence learnt
    /// through it may be stale; publishes waiting on it were answered
    /// `unavailable` by the router.
    RouterDown {
        router: Option<u32>,
        address: SocketAddr,
        reason: String,
    },
}

/// A client's publish, as the router forwarded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The router it came through.
    pub router: u32,
    /// The server id the router assigned (the client's `msg` if accepted).
    pub message_id: MessageId,
    /// The client connection that published.
    pub sender: ConnectionRef,
    pub topic: String,
    /// The sender's user id (or, when `anonymous`, the gateway's name for
    /// the connection).
    pub user: String,
    pub anonymous: bool,
    /// The client's `id`.
    pub client_msg_id: String,
    /// The client's `trace`, or the id its gateway made for a traced
    /// publish without one; empty: none.
    pub trace_id: String,
    /// Hop timestamps (µs since the Unix epoch), when the client asked for
    /// tracing: `[client_send?, gateway_in, router_in]`, `client_send` only
    /// when the client sent its own time (`docs/CLIENT_PROTOCOL.md`,
    /// "Tracing").
    pub hops: Option<Vec<u64>>,
    /// The client's `data`: one JSON value, verbatim.
    pub data: Vec<u8>,
}

impl Message {
    fn from_publish(router: u32, publish: &Publish<'_>) -> Message {
        Message {
            router,
            message_id: publish.message_id,
            sender: publish.sender,
            topic: publish.topic.to_string(),
            user: publish.user.to_string(),
            anonymous: publish.anonymous,
            client_msg_id: publish.client_msg_id.to_string(),
            trace_id: publish.trace_id.to_string(),
            hops: publish.hops.map(|hops| hops.iter().collect()),
            data: publish.payload.to_vec(),
        }
    }
}

/// A PRESENCE event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceNotice {
    pub router: u32,
    pub change: PresenceChange,
    pub connection: ConnectionRef,
    /// Empty for an anonymous connection.
    pub user: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PresenceChange {
    Connected,
    Disconnected,
    /// The connection subscribed to this topic (only for topics this
    /// backend owns): e.g. the moment to replay history to it.
    Joined(String),
    Left(String),
}

/// Who a delivery is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverTo<'a> {
    /// Every subscriber of [`Delivery::topic`].
    Topic,
    /// Every connection of this user, on every gateway.
    User(&'a str),
    /// One connection.
    Connection(ConnectionRef),
}

/// What a delivery carries: the client's `msg` envelope fields.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delivery<'a> {
    /// The envelope's `topic`: required for [`DeliverTo::Topic`].
    pub topic: &'a str,
    /// The envelope's `from`; empty: the system.
    pub from: &'a str,
    /// The envelope's `id`.
    pub client_msg_id: &'a str,
    /// `None`: the router assigns a new id. A replayed message passes its
    /// original id, so clients can recognise what they have seen.
    pub message_id: Option<MessageId>,
    /// The envelope's `trace`: pass a publish's `trace_id` on to tie this
    /// delivery to it; empty: none.
    pub trace_id: &'a str,
    /// The envelope's `data`: one JSON value.
    pub data: &'a [u8],
}

/// Shared by the backend handle, its link threads and its verdicts.
struct Shared {
    node_id: u32,
    options: AttachOptions,
    links: Vec<Arc<Link>>,
    claims: Mutex<Vec<String>>,
    events: SyncSender<Event>,
    stopped: AtomicBool,
    /// The shard map over the routers known so far, up or down.
    map: Mutex<Option<ShardMap>>,
    epoch: AtomicU64,
}

impl Shared {
    fn claimed_prefixes(&self) -> Vec<String> {
        lock(&self.claims).clone()
    }

    /// Rebuilds the shard map after a link came up or went down.
    fn routers_changed(&self) {
        let members: Vec<Member> = self
            .links
            .iter()
            .filter_map(|link| {
                let id = link.router_id()?;
                let state = match link.is_up() {
                    true => RouterState::Up,
                    false => RouterState::Down,
                };
                Some(Member {
                    id: RouterId(id),
                    state,
                })
            })
            .collect();
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let map = ShardMap::from_members(epoch, self.options.vshards, members).ok();
        *lock(&self.map) = map;
    }

    /// The up link of the router that owns `key` (a topic, or a user).
    fn route(&self, key: &[u8], user: bool) -> Result<Arc<Link>, SdkError> {
        let owner = {
            let map = lock(&self.map);
            let map = map.as_ref().ok_or(SdkError::NoRouter)?;
            match user {
                true => map.route_user(key),
                false => map.route(key),
            }
        };
        let RouterId(owner) = owner.ok_or(SdkError::NoRouter)?;
        self.links
            .iter()
            .find(|link| link.router_id() == Some(owner))
            .cloned()
            .ok_or(SdkError::NoRouter)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A backend attached to a set of routers. Dropping it (or
/// [`close`](Self::close)) closes every link.
pub struct Backend {
    shared: Arc<Shared>,
    events: Mutex<Receiver<Event>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("node_id", &self.shared.node_id)
            .field("routers", &self.shared.links.len())
            .finish()
    }
}

impl Backend {
    /// Attaches to every router with the default options; see
    /// [`attach_with`](Self::attach_with).
    pub fn attach(routers: &[SocketAddr], node_id: u32) -> Result<Backend, SdkError> {
        Backend::attach_with(routers, node_id, AttachOptions::default())
    }

    /// Starts one link per router and waits up to
    /// [`AttachOptions::attach_wait`] for all of them to answer HELLO.
    /// Routers that did not are retried in the background (see
    /// [`routers_up`](Self::routers_up)); only an empty router list fails.
    pub fn attach_with(
        routers: &[SocketAddr],
        node_id: u32,
        options: AttachOptions,
    ) -> Result<Backend, SdkError> {
        if routers.is_empty() {
            return Err(SdkError::Invalid("no router address".into()));
        }
        let (sender, receiver) = sync_channel(options.event_capacity.max(1));
        let wait = options.attach_wait;
        let shared = Arc::new(Shared {
            node_id,
            links: routers
                .iter()
                .map(|&address| Arc::new(Link::new(address)))
                .collect(),
            options,
            claims: Mutex::new(Vec::new()),
            events: sender,
            stopped: AtomicBool::new(false),
            map: Mutex::new(None),
            epoch: AtomicU64::new(0),
        });
        let mut threads = Vec::with_capacity(routers.len());
        for index in 0..routers.len() {
            let shared = Arc::clone(&shared);
            let thread = std::thread::Builder::new()
                .name(format!("ringgate-sdk-{index}"))
                .spawn(move || link::run(shared, index))?;
            threads.push(thread);
        }
        let backend = Backend {
            shared,
            events: Mutex::new(receiver),
            threads,
        };
        backend.wait_attached(wait);
        Ok(backend)
    }

    /// Waits until every router link is up; `false` after `timeout`.
    pub fn wait_attached(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.routers_up() == self.shared.links.len() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Router links up now.
    pub fn routers_up(&self) -> usize {
        self.shared.links.iter().filter(|link| link.is_up()).count()
    }

    /// The ids of the routers whose links are up.
    pub fn router_ids(&self) -> Vec<u32> {
        self.shared
            .links
            .iter()
            .filter(|link| link.is_up())
            .filter_map(|link| link.router_id())
            .collect()
    }

    pub fn node_id(&self) -> u32 {
        self.shared.node_id
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        lock(&self.events).recv_timeout(timeout).ok()
    }

    /// Claims the topics starting with `prefix` (empty: all) on every
    /// router, now and after every reconnect. The longest claimed prefix
    /// owns a topic; on a tie the earliest claim owns it and later ones
    /// stand by. Waits for the replies of the routers that are up.
    pub fn claim(&self, prefix: &str) -> Result<(), SdkError> {
        {
            let mut claims = lock(&self.shared.claims);
            if !claims.iter().any(|claimed| claimed == prefix) {
                claims.push(prefix.to_string());
            }
        }
        self.on_every_router(|request_id| Frame::Claim(PrefixRequest { request_id, prefix }))
    }

    /// Gives up a prefix on every router.
    pub fn release(&self, prefix: &str) -> Result<(), SdkError> {
        lock(&self.shared.claims).retain(|claimed| claimed != prefix);
        self.on_every_router(|request_id| Frame::Release(PrefixRequest { request_id, prefix }))
    }

    fn on_every_router<'a>(&self, make: impl Fn(u64) -> Frame<'a>) -> Result<(), SdkError> {
        let timeout = self.shared.options.request_timeout;
        for link in &self.shared.links {
            match link.request(&make, timeout) {
                Ok((Code::OK, _)) => {}
                Ok((code, text)) => {
                    return Err(SdkError::Refused {
                        router: link.address,
                        code,
                        text,
                    });
                }
                // Sent again when that link comes up.
                Err(SdkError::LinkDown(_)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// Delivers `data` to every subscriber of `topic`, as from `from`.
    pub fn deliver_to_topic(&self, topic: &str, from: &str, data: &[u8]) -> Result<(), SdkError> {
        let delivery = Delivery {
            topic,
            from,
            data,
            ..Delivery::default()
        };
        self.deliver(DeliverTo::Topic, &delivery)
    }

    /// Delivers `data` to every connection of `user`, on every gateway.
    pub fn deliver_to_user(&self, user: &str, data: &[u8]) -> Result<(), SdkError> {
        let delivery = Delivery {
            data,
            ..Delivery::default()
        };
        self.deliver(DeliverTo::User(user), &delivery)
    }

    /// Delivers `data` to one client connection.
    pub fn deliver_to_connection(
        &self,
        connection: ConnectionRef,
        data: &[u8],
    ) -> Result<(), SdkError> {
        let delivery = Delivery {
            data,
            ..Delivery::default()
        };
        self.deliver(DeliverTo::Connection(connection), &delivery)
    }

    /// A delivery with every envelope field. Routed like the gateways do:
    /// a topic to the topic's router, a user to the user's router, a
    /// connection to the topic's router when `delivery.topic` is set (so it
    /// travels with that topic's other traffic) and else by its gateway
    /// node. Waits up to `request_timeout` for the router's credit.
    pub fn deliver(&self, to: DeliverTo<'_>, delivery: &Delivery<'_>) -> Result<(), SdkError> {
        let (target, link) = match to {
            DeliverTo::Topic => {
                if delivery.topic.is_empty() {
                    return Err(SdkError::Invalid("a topic delivery needs a topic".into()));
                }
                (
                    Target::Topic,
                    self.shared.route(delivery.topic.as_bytes(), false)?,
                )
            }
            DeliverTo::User(user) => (
                Target::User(user),
                self.shared.route(user.as_bytes(), true)?,
            ),
            DeliverTo::Connection(connection) => {
                let link = match delivery.topic.is_empty() {
                    true => self
                        .shared
                        .route(&connection.gateway.to_be_bytes(), false)?,
                    false => self.shared.route(delivery.topic.as_bytes(), false)?,
                };
                (Target::Connection(connection), link)
            }
        };
        if serde_json::from_slice::<serde::de::IgnoredAny>(delivery.data).is_err() {
            return Err(SdkError::Invalid(
                "data must be exactly one JSON value (it becomes the client's `data`)".into(),
            ));
        }
        let frame = Frame::Deliver(Deliver {
            message_id: delivery.message_id.unwrap_or(UNASSIGNED_ID),
            target,
            topic: delivery.topic,
            from: delivery.from,
            client_msg_id: delivery.client_msg_id,
            trace_id: delivery.trace_id,
            hops: None,
            payload: delivery.data,
        });
        link.send_flow(&frame, self.shared.options.request_timeout)
    }

    /// Closes every connection of `user` with a WebSocket close code
    /// (1000-1003, 1007-1011, 3000-4999) and a reason.
    pub fn kick_user(&self, user: &str, close_code: u16, reason: &str) -> Result<(), SdkError> {
        let link = self.shared.route(user.as_bytes(), true)?;
        self.kick(&link, Recipient::User(user), close_code, reason)
    }

    /// Closes one client connection.
    pub fn kick_connection(
        &self,
        connection: ConnectionRef,
        close_code: u16,
        reason: &str,
    ) -> Result<(), SdkError> {
        let link = self
            .shared
            .route(&connection.gateway.to_be_bytes(), false)?;
        self.kick(&link, Recipient::Connection(connection), close_code, reason)
    }

    fn kick(
        &self,
        link: &Link,
        recipient: Recipient<'_>,
        close_code: u16,
        reason: &str,
    ) -> Result<(), SdkError> {
        if !is_valid_close_code(close_code) {
            return Err(SdkError::Invalid(format!("close code {close_code}")));
        }
        link.send(&Frame::Kick(Kick {
            recipient,
            close_code,
            reason,
        }))
    }

    /// Closes every link and waits for the link threads.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopped.store(true, Ordering::Release);
        for link in &self.shared.links {
            link.shut_down();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}
