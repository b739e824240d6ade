//! The control plane: start-up (settings, listeners, shard threads), signals
//! and drain. Nothing here runs per message.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use ringgate_uring::RingConfig;
use ringgate_uring::sys::{self, WakeFd};
use ringgate_wscodec::Limits;
use ringgate_wscodec::handshake::HandshakeConfig;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::{Config, Mode};
use crate::defense::auth::Authenticator;
use crate::defense::ip_table::IpTable;
use crate::defense::tls::TlsAcceptor;
use crate::defense::user_table::{TopicTable, UserTable};
use crate::hot::conn::Deadlines;
use crate::hot::relay::RouterAddress;
use crate::hot::shard::Shard;
use crate::hot::stats::ShardStats;
use crate::hot::timer::ticks;
use crate::log;
use crate::metrics::{Board, admin};

/// The node id of the router embedded in a gateway with no `[[router]]`.
const EMBEDDED_ROUTER_ID: u32 = 1;

/// How long a close we started waits for the peer's close frame.
const CLOSE_LINGER_MS: u64 = 5_000;

/// Read-only settings every shard shares, derived once from the config.
#[derive(Debug)]
pub struct Settings {
    pub codec_limits: Limits,
    pub max_header_bytes: usize,
    pub subprotocols: Vec<String>,
    /// Origins allowed to upgrade; empty: any.
    pub allowed_origins: Vec<String>,
    pub deadlines: Deadlines,
    pub max_connections_per_shard: usize,
    pub max_write_queue_bytes: usize,
    pub drain_timeout_ms: u64,
    pub ring: RingConfig,
    pub pool_buffers: usize,
    /// Relay mode: this gateway's id and its routers. None: echo mode.
    pub relay: Option<Routing>,
    /// JWT verification at upgrade; None: every connection is anonymous.
    pub authenticator: Option<Arc<Authenticator>>,
    /// Per-address limits, shared lock-free by every shard.
    pub ip_table: Arc<IpTable>,
    /// wss: the TLS acceptor shared by every shard (tickets resume on any).
    pub tls: Option<TlsAcceptor>,
    /// What to do at the per-user device cap.
    pub on_device_limit: crate::defense::user_table::DeviceLimitPolicy,
    /// Per-user devices and message rates, and per-topic rates.
    pub user_table: Arc<UserTable>,
    pub topic_table: Arc<TopicTable>,
    /// The clock origin all shards share (the IP table's times must agree).
    pub epoch: std::time::Instant,
    /// Where shards publish their metrics; None when the admin listener is
    /// off (shards then skip the snapshots and the busy-time clock reads).
    pub board: Option<Arc<Board>>,
}

/// Where relay-mode shards send client messages.
#[derive(Clone, Debug)]
pub struct Routing {
    /// The gateway's id; shard `i` is node `node_id * 256 + i` to routers.
    pub node_id: u32,
    pub routers: Vec<RouterAddress>,
    /// What client envelopes may contain.
    pub rules: crate::envelope::Rules,
    /// Most publishes each shard holds per router while it is down.
    pub held_messages_max: usize,
}

impl Settings {
    pub fn from_config(config: &Config, shards: usize, file_limit: u64) -> Settings {
        let limits = &config.limits;
        // Leave room for the listener, the ring, the eventfd and stdio.
        let by_files = (file_limit.saturating_sub(64) as usize / shards).max(1);
        let by_config = if limits.max_connections == 0 {
            usize::MAX
        } else {
            limits.max_connections.div_ceil(shards)
        };
        Settings {
            codec_limits: Limits {
                max_frame_bytes: limits.max_frame_bytes,
                max_text_message_bytes: limits.max_text_message_bytes,
                max_binary_message_bytes: limits.max_binary_message_bytes,
            },
            max_header_bytes: if limits.max_header_bytes == 0 {
                usize::MAX
            } else {
                limits.max_header_bytes
            },
            subprotocols: config.gateway.subprotocols.clone(),
            allowed_origins: config.gateway.allowed_origins.clone(),
            deadlines: Deadlines {
                handshake: ticks(limits.handshake_timeout_ms),
                frame: ticks(limits.frame_timeout_ms),
                ping: ticks(limits.ping_interval_ms),
                idle: ticks(limits.idle_timeout_ms),
                close_linger: ticks(CLOSE_LINGER_MS),
            },
            max_connections_per_shard: by_config.min(by_files),
            max_write_queue_bytes: limits.max_write_queue_bytes,
            drain_timeout_ms: config.gateway.drain_timeout_ms,
            ring: RingConfig {
                buffer_count: config.gateway.recv_buffers,
                buffer_size: config.gateway.recv_buffer_bytes,
                ..RingConfig::default()
            },
            pool_buffers: 256,
            relay: None,
            authenticator: None,
            ip_table: Arc::new(IpTable::new(&limits.per_ip.limits())),
            tls: None,
            on_device_limit: limits.per_user.on_device_limit,
            user_table: Arc::new(UserTable::new(&limits.per_user.limits())),
            topic_table: Arc::new(TopicTable::new(&limits.per_topic.limits())),
            epoch: std::time::Instant::now(),
            board: None,
        }
    }

    pub fn handshake(&self) -> HandshakeConfig<'_> {
        HandshakeConfig {
            max_header_bytes: self.max_header_bytes,
            subprotocols: &self.subprotocols,
        }
    }
}

/// Shared between the signal thread and the shards: the drain flag and each
/// shard's wake-up eventfd.
#[derive(Debug, Default)]
pub struct Control {
    draining: AtomicBool,
}

impl Control {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn begin_drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }
}

fn bind_listener(address: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    // Accepted sockets inherit TCP_NODELAY from the listener.
    socket.set_tcp_nodelay(true)?;
    socket.bind(&address.into())?;
    socket.listen(4096)?;
    Ok(socket)
}

/// Starts the shards, serves until SIGTERM/SIGINT, drains, returns.
pub fn serve(config: &Config) -> anyhow::Result<ShardStats> {
    if let Err(message) = ringgate_uring::probe_io_uring() {
        bail!("{message}");
    }
    sys::ignore_sigpipe();
    let file_limit = sys::raise_nofile_limit().context("reading the open-file limit")?;
    let cpus = sys::allowed_cpus();
    let shards = if config.gateway.shards == 0 {
        cpus.len().max(1)
    } else {
        config.gateway.shards
    };
    let mut settings = Settings::from_config(config, shards, file_limit);
    if let Some(tls) = &config.tls {
        let acceptor = TlsAcceptor::from_config(tls).map_err(|error| anyhow::anyhow!("{error}"))?;
        settings.tls = Some(acceptor);
        log::info!("tls", "serving wss (TLS 1.2 and 1.3, ALPN http/1.1)");
    }
    // Single-host default: relay mode with no [[router]] runs one router as a
    // thread here, on an ephemeral loopback port, spoken to like any other.
    let mut embedded_router = None;
    // The embedded router's counters, for /metrics (ringgate_router_*).
    let mut embedded_router_snapshots = None;
    settings.authenticator = Authenticator::from_config(&config.auth)
        .map_err(|error| anyhow::anyhow!("{error}"))?
        .map(Arc::new);
    match &settings.authenticator {
        None => log::warn!(
            "auth_off",
            "AUTHENTICATION IS OFF: every connection is accepted as an anonymous user \
             (set [auth] jwt_hs256_secret or jwt_public_key_file, and required = true)",
        ),
        Some(auth) if !auth.required() => log::warn!(
            "auth_optional",
            "auth.required = false: connections without a token are accepted as \
                 anonymous users ({} tokens are verified when present)",
            auth.algorithm_name()
        ),
        Some(auth) => log::info!(
            "auth_on",
            "every connection must present a valid {} token",
            auth.algorithm_name()
        ),
    }
    if config.gateway.mode == Mode::Relay {
        let routers = if config.router.is_empty() {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")
                .context("binding the embedded router")?;
            let snapshots = Arc::new(ringgate_router::server::Snapshots::new());
            // No backend can attach to an embedded router before it starts,
            // so no claim grace: publishes are relayed from the first one.
            let router =
                ringgate_router::server::Router::new(ringgate_router::server::RouterConfig {
                    id: EMBEDDED_ROUTER_ID,
                    claim_grace_ms: 0,
                    ..Default::default()
                })
                .with_snapshots(Arc::clone(&snapshots))
                .spawn(listener)
                .context("starting the embedded router")?;
            let address = router.address();
            log::info!("embedded_router", "embedded router listening on {address}");
            embedded_router = Some(router);
            embedded_router_snapshots = Some(snapshots);
            vec![RouterAddress {
                id: EMBEDDED_ROUTER_ID,
                address,
            }]
        } else {
            config
                .router
                .iter()
                .map(|r| RouterAddress {
                    id: r.id,
                    address: r.address,
                })
                .collect()
        };
        settings.relay = Some(Routing {
            node_id: config.gateway.node_id,
            routers,
            rules: config.limits.content.rules(),
            held_messages_max: config.limits.degraded_buffer_messages,
        });
    }
    let admin_address = config
        .admin
        .address()
        .map_err(|reason| anyhow::anyhow!("admin.listen: {reason}"))?;
    if admin_address.is_some() {
        settings.board = Some(Arc::new(Board::new(shards)));
    }
    let settings = Arc::new(settings);
    let control = Arc::new(Control::default());

    // The first bind resolves port 0; the others join its SO_REUSEPORT group.
    let first = bind_listener(config.gateway.listen)
        .with_context(|| format!("binding {}", config.gateway.listen))?;
    let address = first
        .local_addr()?
        .as_socket()
        .context("listener has no socket address")?;
    let mut listeners = vec![first];
    for _ in 1..shards {
        listeners.push(bind_listener(address).with_context(|| format!("binding {address}"))?);
    }

    if let (Some(wanted), Some(board)) = (admin_address, &settings.board) {
        let info = admin::StatusInfo {
            config_digest: config_digest(config),
            mode: match config.gateway.mode {
                Mode::Echo => "echo",
                Mode::Relay => "relay",
            },
            listen: address,
        };
        let exported = admin::Exported {
            board: Arc::clone(board),
            control: Arc::clone(&control),
            router: embedded_router_snapshots,
        };
        let bound = admin::spawn(wanted, exported, info).with_context(|| {
            format!("binding the admin listener {wanted} (set admin.listen, or --admin off)")
        })?;
        log::info!(
            "admin_listening",
            address = %bound,
            "admin listening on {bound} (/metrics /healthz /readyz /status)"
        );
    }
    let mut wakes = Vec::new();
    let mut threads = Vec::new();
    let (ready_sender, ready) = std::sync::mpsc::channel::<Result<(), String>>();
    for (index, listener) in listeners.into_iter().enumerate() {
        let wake = Arc::new(WakeFd::new().context("creating an eventfd")?);
        wakes.push(Arc::clone(&wake));
        let (settings, control, ready) = (
            Arc::clone(&settings),
            Arc::clone(&control),
            ready_sender.clone(),
        );
        let cpu = cpus.get(index % cpus.len().max(1)).copied();
        let thread = std::thread::Builder::new()
            .name(format!("shard-{index}"))
            .spawn(move || -> io::Result<ShardStats> {
                // Every line this thread writes carries "shard": index.
                let _shard = crate::log::enter_shard(index);
                if let Some(cpu) = cpu {
                    sys::pin_current_thread(cpu)?;
                }
                let shard = match Shard::new(index, settings, listener, wake, control) {
                    Ok(shard) => shard,
                    Err(error) => {
                        let _ = ready.send(Err(format!("shard {index}: {error}")));
                        return Err(error);
                    }
                };
                let _ = ready.send(Ok(()));
                shard.run()
            })?;
        threads.push(thread);
    }
    drop(ready_sender);
    for _ in 0..shards {
        match ready.recv() {
            Ok(Ok(())) => {}
            Ok(Err(message)) => bail!("{message}"),
            Err(_) => bail!("a shard thread exited during start-up"),
        }
    }

    let mode = match config.gateway.mode {
        Mode::Echo => "echo",
        Mode::Relay => "relay",
    };
    log::info!(
        "listening",
        "listening on {address} ({shards} shards, {mode} mode, up to {} connections per shard)",
        settings.max_connections_per_shard
    );
    // Handlers first: whoever saw the line below may signal at once (a
    // SIGTERM before them would kill the process instead of draining it).
    watch_signals(Arc::clone(&control), wakes)?;
    // Scripts and tests wait for this exact line on stdout.
    println!("ringgate listening on {address}");

    let mut total = ShardStats::default();
    for (index, thread) in threads.into_iter().enumerate() {
        match thread.join() {
            Ok(Ok(stats)) => total.merge(&stats),
            Ok(Err(error)) => bail!("shard {index} failed: {error}"),
            Err(_) => bail!("shard {index} panicked"),
        }
    }
    if let Some(router) = embedded_router {
        match router.stop() {
            Ok(stats) => log::info!("embedded_router_stopped", "{stats:?}"),
            Err(error) => log::warn!("embedded_router_failed", "{error}"),
        }
    }
    Ok(total)
}

/// SHA-1 of the effective configuration (16 hex digits), so operators can
/// tell whether two gateways run the same settings.
fn config_digest(config: &Config) -> String {
    use sha1::{Digest, Sha1};
    let digest = Sha1::digest(format!("{config:?}").as_bytes());
    digest[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// First SIGTERM/SIGINT: drain. A second one: exit at once.
fn watch_signals(control: Arc<Control>, wakes: Vec<Arc<WakeFd>>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    log::warn!(
                        "forced_exit",
                        "second signal: exiting without waiting for the drain",
                    );
                    std::process::exit(1);
                }
                log::info!("draining", "signal {signal}: draining connections");
                control.begin_drain();
                for wake in &wakes {
                    if let Err(error) = wake.wake() {
                        log::error!("wake_failed", "could not wake a shard: {error}");
                    }
                }
            }
        })?;
    Ok(())
}
