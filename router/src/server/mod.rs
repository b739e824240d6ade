//! The router server: one thread, one io_uring event loop, every gateway and
//! backend connection of one router.
//!
//! What it does (the flows of `docs/design/why-routers-over-tcp.md`):
//! - accepts gateways and backends, checks their HELLO (role, version,
//!   token) and answers HELLO_ACK with its node id and credit grant;
//! - keeps, per topic, the set of gateway nodes subscribed (one entry per
//!   node, not per client) and, per user, the gateway nodes where the user
//!   is connected (from PRESENCE);
//! - takes PUBLISH from gateways: dedup of (topic, user, client id) for
//!   300 s in a fixed-size table, a message id from the hybrid logical
//!   clock, the verdict of the backend that claimed the topic's prefix
//!   (longest prefix wins), then one DELIVER per subscribed gateway node and
//!   PUBLISH_ACK to the publisher, per topic in arrival order;
//! - routes the backends' DELIVER (topic, user, connection) and KICK;
//! - enforces credit both ways: a peer that sends beyond the router's grant
//!   is closed (`flow_control`); frames for a peer that grants no credit
//!   wait, up to `max_output_bytes`, then that peer is closed
//!   (`overloaded`). The router never applies backpressure to one peer
//!   because another is slow.
//!
//! What it does not do: keep anything across a restart (gateways
//! re-subscribe and re-announce presence, backends re-claim, after they
//! reconnect), talk to other routers, or decide who owns a topic (that is
//! the shard map in gateways and the SDK). No `unsafe`: io_uring is
//! `ringgate-uring`'s.
//!
//! Structure: `event_loop` is the only file doing I/O; `core` is the
//! state machine it drives (bytes, completions and the time in, bytes out);
//! handlers by subject in `session`, `publish` and `routing`; tables in
//! `topics`, `claims`, `presence`, `pending` and [`dedup`]; `snapshot`
//! is what the loop publishes for metrics while it runs.
//!
//! Key numbers: one thread; a DELIVER is encoded once and shared by every
//! gateway it goes to; the dedup table is 48 bytes per entry, allocated at
//! start-up (1,048,576 entries, 48 MiB, by default).
//!
//! ```no_run
//! use ringgate_router::server::{Router, RouterConfig};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let router = Router::new(RouterConfig { id: 1, ..RouterConfig::default() });
//! let running = router.spawn(listener)?;
//! println!("router on {}", running.address());
//! let stats = running.stop()?;
//! println!("{} publishes", stats.publishes);
//! # Ok::<(), std::io::Error>(())
//! ```

mod claims;
mod config;
mod core;
pub mod dedup;
mod event_loop;
mod log;
mod output;
mod peer;
mod pending;
mod presence;
mod publish;
mod routing;
mod session;
mod snapshot;
mod stats;
mod topics;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use ringgate_uring::sys::WakeFd;

pub use config::RouterConfig;
pub use dedup::{DedupKey, DedupKeys, DedupTable};
pub use snapshot::{RouterSnapshot, Snapshots};
pub use stats::RouterStats;

/// A router, ready to serve a listener.
#[derive(Debug)]
pub struct Router {
    config: RouterConfig,
    snapshots: Option<Arc<Snapshots>>,
}

impl Router {
    pub fn new(config: RouterConfig) -> Router {
        Router {
            config,
            snapshots: None,
        }
    }

    /// Publishes a [`RouterSnapshot`] into `snapshots` about every 100 ms
    /// while serving, and a last one when it stops (how metrics see a
    /// running router; the loop never waits for a reader). Until the loop
    /// publishes, the slot holds zeros with this router's id, so every
    /// metric exists from the start.
    pub fn with_snapshots(mut self, snapshots: Arc<Snapshots>) -> Router {
        let id = self.config.id;
        snapshots.publish(|| RouterSnapshot {
            id,
            ..RouterSnapshot::default()
        });
        self.snapshots = Some(snapshots);
        self
    }

    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Runs the event loop on this thread until `stop` is triggered, then
    /// sends GOAWAY `ok` to every peer, gives them `shutdown_grace_ms` to
    /// read it, closes everything and returns the counters.
    pub fn serve(self, listener: TcpListener, stop: StopHandle) -> io::Result<RouterStats> {
        self.config.validate()?;
        // Accepted sockets inherit these from the listener (Linux). No
        // Nagle: acks and deliveries are small and latency counts. A user
        // timeout: a peer that stops reading (zero window) or vanishes
        // makes a pending send fail after the idle timeout, so a socket
        // being closed never waits forever on a send that cannot finish.
        let socket = socket2::SockRef::from(&listener);
        socket.set_tcp_nodelay(true)?;
        socket.set_tcp_user_timeout(Some(std::time::Duration::from_millis(
            self.config.idle_timeout_ms,
        )))?;
        event_loop::run(self.config, self.snapshots, &listener, &stop)
    }

    /// Runs [`serve`](Self::serve) on a new thread named `ringgate-router`
    /// (how the gateway embeds a router).
    pub fn spawn(self, listener: TcpListener) -> io::Result<RouterThread> {
        self.config.validate()?;
        let address = listener.local_addr()?;
        let stop = StopHandle::new()?;
        let stop_for_thread = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringgate-router".into())
            .spawn(move || self.serve(listener, stop_for_thread))?;
        Ok(RouterThread {
            address,
            stop,
            thread,
        })
    }
}

/// Stops a serving router from any thread.
#[derive(Clone, Debug)]
pub struct StopHandle(Arc<StopState>);

#[derive(Debug)]
struct StopState {
    wake: WakeFd,
    stopped: AtomicBool,
}

impl StopHandle {
    pub fn new() -> io::Result<StopHandle> {
        Ok(StopHandle(Arc::new(StopState {
            wake: WakeFd::new()?,
            stopped: AtomicBool::new(false),
        })))
    }

    /// Asks the router to stop; it returns from `serve` after the grace.
    pub fn stop(&self) {
        self.0.stopped.store(true, Ordering::Release);
        // A failed write means the counter is saturated: already woken.
        let _ = self.0.wake.wake();
    }

    pub fn is_stopped(&self) -> bool {
        self.0.stopped.load(Ordering::Acquire)
    }

    fn wake_fd(&self) -> RawFd {
        self.0.wake.raw()
    }
}

/// A router running on its own thread.
#[derive(Debug)]
pub struct RouterThread {
    address: SocketAddr,
    stop: StopHandle,
    thread: JoinHandle<io::Result<RouterStats>>,
}

impl RouterThread {
    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Stops the router and waits for it; its counters.
    pub fn stop(self) -> io::Result<RouterStats> {
        self.stop.stop();
        self.thread
            .join()
            .map_err(|_| io::Error::other("the router thread panicked"))?
    }
}
