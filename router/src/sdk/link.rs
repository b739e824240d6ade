//! One router link: a thread that connects, says HELLO, re-claims, reads
//! frames into events, and reconnects with backoff; and the shared state
//! other threads write through (verdicts, deliveries, claims).
//!
//! Locking: one mutex per link guards its socket's write half and its
//! credit; writes are whole frames under it, so frames never interleave.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::mpsc::TrySendError;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::{
    Code, Credit, CreditWindow, Decoder, Encoder, Frame, GoAway, Hello, HelloAck, Pong,
    PresenceEvent, Role, VERSION,
};

use super::verdict::Verdict;
use super::{Event, Message, PresenceChange, PresenceNotice, SdkError, Shared};

/// A link's state, shared by its reader thread and every writer.
pub(super) struct Link {
    pub address: SocketAddr,
    state: Mutex<LinkState>,
    changed: Condvar,
}

struct LinkState {
    writer: Option<TcpStream>,
    /// Bumped on every successful HELLO: a verdict for an older session
    /// is not sent (that router already answered its publisher).
    generation: u64,
    /// The router's node id, from its last HELLO_ACK (kept while down).
    router_id: Option<u32>,
    up: bool,
    /// What the router lets us send (DELIVER).
    send: CreditWindow,
    /// What the router may still send us (PUBLISH).
    receive: CreditWindow,
    owed_messages: u64,
    owed_bytes: u64,
    encoder: Encoder,
    next_request: u64,
    replies: HashMap<u64, (Code, String)>,
    scratch: Vec<u8>,
}

impl Link {
    pub fn new(address: SocketAddr) -> Link {
        Link {
            address,
            state: Mutex::new(LinkState {
                writer: None,
                generation: 0,
                router_id: None,
                up: false,
                send: CreditWindow::default(),
                receive: CreditWindow::default(),
                owed_messages: 0,
                owed_bytes: 0,
                encoder: Encoder::default(),
                next_request: 0,
                replies: HashMap::new(),
                scratch: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LinkState> {
        // A panicking writer leaves plain data behind; keep going.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn is_up(&self) -> bool {
        self.lock().up
    }

    pub fn router_id(&self) -> Option<u32> {
        self.lock().router_id
    }

    /// Writes a control frame if the link is up.
    pub fn send(&self, frame: &Frame<'_>) -> Result<(), SdkError> {
        let mut state = self.lock();
        if !state.up {
            return Err(SdkError::LinkDown(self.address));
        }
        self.write(&mut state, frame)
    }

    /// Writes a DELIVER, waiting up to `timeout` for the router's credit.
    pub fn send_flow(&self, frame: &Frame<'_>, timeout: Duration) -> Result<(), SdkError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            if !state.up {
                return Err(SdkError::LinkDown(self.address));
            }
            if state.send.can_spend() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SdkError::NoCredit {
                    router: self.address,
                    waited: timeout,
                });
            }
            state = self.wait(state, left);
        }
        let length = frame.encoded_len()?;
        self.write(&mut state, frame)?;
        // Checked `can_spend` under the same lock.
        let _ = state.send.spend(length);
        Ok(())
    }

    /// Writes a PUBLISH_ACK for session `generation` and gives the PUBLISH's
    /// credit back (a CREDIT when a quarter of the grant is owed).
    pub fn answer(
        &self,
        generation: u64,
        frame: &Frame<'_>,
        frame_len: u32,
        grant: Credit,
    ) -> Result<(), SdkError> {
        let mut state = self.lock();
        if !state.up || state.generation != generation {
            return Err(SdkError::LinkDown(self.address));
        }
        self.write(&mut state, frame)?;
        state.owed_messages += 1;
        state.owed_bytes += u64::from(frame_len);
        if let Some(credit) = credit_due(&mut state, grant) {
            let _ = state.receive.grant(credit);
            self.write(&mut state, &Frame::Credit(credit))?;
        }
        Ok(())
    }

    /// Sends a CLAIM or RELEASE and waits for its REPLY.
    pub fn request<'a>(
        &self,
        make: impl FnOnce(u64) -> Frame<'a>,
        timeout: Duration,
    ) -> Result<(Code, String), SdkError> {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        if !state.up {
            return Err(SdkError::LinkDown(self.address));
        }
        state.next_request += 1;
        let request_id = state.next_request;
        let generation = state.generation;
        self.write(&mut state, &make(request_id))?;
        loop {
            if let Some(reply) = state.replies.remove(&request_id) {
                return Ok(reply);
            }
            if !state.up || state.generation != generation {
                return Err(SdkError::LinkDown(self.address));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SdkError::Timeout {
                    router: self.address,
                    waited: timeout,
                });
            }
            state = self.wait(state, left);
        }
    }

    /// Ends the current session (the reader thread sees its socket close).
    pub fn shut_down(&self) {
        let mut state = self.lock();
        if let Some(writer) = state.writer.take() {
            let _ = writer.shutdown(Shutdown::Both);
        }
        state.up = false;
        self.changed.notify_all();
    }

    fn wait<'a>(
        &self,
        state: MutexGuard<'a, LinkState>,
        timeout: Duration,
    ) -> MutexGuard<'a, LinkState> {
        self.changed
            .wait_timeout(state, timeout)
            .map(|(state, _)| state)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0)
    }

    fn write(&self, state: &mut LinkState, frame: &Frame<'_>) -> Result<(), SdkError> {
        let LinkState {
            writer,
            encoder,
            scratch,
            ..
        } = state;
        scratch.clear();
        encoder.encode(frame, scratch)?;
        let Some(stream) = writer.as_mut() else {
            return Err(SdkError::LinkDown(self.address));
        };
        if let Err(error) = stream.write_all(scratch) {
            // A link that cannot take a whole frame is broken: end it so
            // the reader reconnects.
            let _ = stream.shutdown(Shutdown::Both);
            state.up = false;
            state.writer = None;
            self.changed.notify_all();
            return Err(SdkError::Io(error));
        }
        Ok(())
    }
}

/// The CREDIT to send now: when a quarter of the grant is owed, or the
/// router is down to its last quarter (the router's rule, mirrored).
fn credit_due(state: &mut LinkState, grant: Credit) -> Option<Credit> {
    if state.owed_messages == 0 {
        return None;
    }
    let quarter_messages = u64::from(grant.messages / 4).max(1);
    let quarter_bytes = i64::from(grant.bytes / 4).max(1);
    let due = state.owed_messages >= quarter_messages
        || state.owed_bytes >= quarter_bytes as u64
        || state.receive.messages() <= quarter_messages
        || state.receive.bytes() <= quarter_bytes;
    if !due {
        return None;
    }
    let credit = Credit {
        messages: u32::try_from(state.owed_messages).unwrap_or(u32::MAX),
        bytes: u32::try_from(state.owed_bytes).unwrap_or(u32::MAX),
    };
    state.owed_messages -= u64::from(credit.messages);
    state.owed_bytes -= u64::from(credit.bytes);
    Some(credit)
}

/// Why a session ended.
enum Ended {
    Io(io::Error),
    GoAway(Code, String),
    Protocol(String),
    Stopped,
}

impl From<io::Error> for Ended {
    fn from(error: io::Error) -> Ended {
        Ended::Io(error)
    }
}

/// The link thread: sessions until the backend closes.
pub(super) fn run(shared: Arc<Shared>, index: usize) {
    let link = Arc::clone(&shared.links[index]);
    let mut jitter = Jitter::new(u64::from(shared.node_id) << 16 | index as u64);
    let mut attempt = 0u32;
    while !shared.stopped.load(Ordering::Acquire) {
        let started = Instant::now();
        let ended = session(&shared, &link);
        let was_up = {
            let mut state = link.lock();
            let was_up = state.up;
            state.up = false;
            if let Some(writer) = state.writer.take() {
                let _ = writer.shutdown(Shutdown::Both);
            }
            was_up
        };
        link.changed.notify_all();
        if was_up {
            shared.routers_changed();
            let router = link.router_id();
            let reason = match &ended {
                Ended::Io(error) => error.to_string(),
                Ended::GoAway(code, text) => format!("GOAWAY {}: {text}", code.name()),
                Ended::Protocol(text) => text.clone(),
                Ended::Stopped => "backend closing".to_string(),
            };
            shared.emit(Event::RouterDown {
                router,
                address: link.address,
                reason,
            });
        }
        if matches!(ended, Ended::Stopped) {
            break;
        }
        // Backoff with full jitter (docs/PROTOCOL.md, Reconnect): a random
        // wait below min(backoff_max, backoff_min × 2^attempt), from the
        // first step again once a session lasted RESET_AFTER.
        if started.elapsed() >= RESET_AFTER {
            attempt = 0;
        }
        let ceiling = shared
            .options
            .backoff_min
            .saturating_mul(1 << attempt.min(16))
            .min(shared.options.backoff_max);
        shared.sleep(jitter.below(ceiling));
        attempt = attempt.saturating_add(1);
    }
}

/// One connection: HELLO, re-claims, then frames until it ends.
fn session(shared: &Shared, link: &Arc<Link>) -> Ended {
    let options = &shared.options;
    let stream = match TcpStream::connect_timeout(&link.address, options.connect_timeout) {
        Ok(stream) => stream,
        Err(error) => return Ended::Io(error),
    };
    match attach(shared, link, stream) {
        Ok(ended) | Err(ended) => ended,
    }
}

fn attach(shared: &Shared, link: &Arc<Link>, stream: TcpStream) -> Result<Ended, Ended> {
    let options = &shared.options;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(options.request_timeout))?;
    stream.set_read_timeout(Some(options.connect_timeout))?;
    let mut reader = FrameReader::new(stream.try_clone()?, options.max_body_bytes);
    let hello = Frame::Hello(Hello {
        min_version: VERSION,
        max_version: VERSION,
        role: Role::Backend,
        node_id: shared.node_id,
        capabilities: options.capabilities,
        max_body_bytes: options.max_body_bytes,
        ping_interval_ms: 0,
        credit: options.credit,
        agent: &options.agent,
        token: &options.token,
        extensions: &[],
    });
    let mut bytes = Vec::new();
    Encoder::default()
        .encode(&hello, &mut bytes)
        .map_err(|error| Ended::Protocol(error.to_string()))?;
    (&stream).write_all(&bytes)?;
    let ack = reader.next_owned()?;
    let ack = match ack.frame(&reader.decoder) {
        Frame::HelloAck(ack) => owned_ack(&ack),
        Frame::GoAway(go_away) => return Err(Ended::GoAway(go_away.code, go_away.text.into())),
        other => {
            return Err(Ended::Protocol(format!(
                "expected HELLO_ACK, got {}",
                other.frame_type()
            )));
        }
    };
    // Three missed router pings mean the link is dead.
    let silence = match ack.ping_interval_ms {
        0 => None,
        ms => Some(Duration::from_millis(u64::from(ms) * 3 + 1000)),
    };
    stream.set_read_timeout(silence)?;
    let generation = {
        let mut state = link.lock();
        if shared.stopped.load(Ordering::Acquire) {
            return Err(Ended::Stopped);
        }
        state.writer = Some(stream);
        state.generation += 1;
        state.router_id = Some(ack.node_id);
        state.up = true;
        state.send = CreditWindow::new(ack.credit);
        state.receive = CreditWindow::new(options.credit);
        state.owed_messages = 0;
        state.owed_bytes = 0;
        state.encoder = Encoder::new(ack.max_body_bytes);
        state.replies.clear();
        state.generation
    };
    link.changed.notify_all();
    shared.routers_changed();
    // Routers keep nothing across a restart: claim again on every session.
    for prefix in shared.claimed_prefixes() {
        let prefix: &str = &prefix;
        link.send(&Frame::Claim(crate::protocol::PrefixRequest {
            request_id: 0,
            prefix,
        }))
        .map_err(|error| Ended::Protocol(error.to_string()))?;
    }
    shared.emit(Event::RouterUp {
        router: ack.node_id,
        address: link.address,
    });
    read_frames(shared, link, &mut reader, ack.node_id, generation)
}

struct OwnedAck {
    node_id: u32,
    ping_interval_ms: u32,
    credit: Credit,
    max_body_bytes: u32,
}

fn owned_ack(ack: &HelloAck<'_>) -> OwnedAck {
    OwnedAck {
        node_id: ack.node_id,
        ping_interval_ms: ack.ping_interval_ms,
        credit: ack.credit,
        max_body_bytes: ack.max_body_bytes,
    }
}

fn read_frames(
    shared: &Shared,
    link: &Arc<Link>,
    reader: &mut FrameReader,
    router: u32,
    generation: u64,
) -> Result<Ended, Ended> {
    loop {
        if shared.stopped.load(Ordering::Acquire) {
            return Ok(Ended::Stopped);
        }
        let received = match reader.next_owned() {
            Ok(received) => received,
            Err(_) if shared.stopped.load(Ordering::Acquire) => return Ok(Ended::Stopped),
            Err(error) => return Err(error),
        };
        let frame = received.frame(&reader.decoder);
        let length = received.0.len();
        match frame {
            Frame::Ping(ping) => {
                let pong = Frame::Pong(Pong {
                    nonce: ping.nonce,
                    ping_sent_us: ping.sent_us,
                    sent_us: now_us(),
                });
                let _ = link.send(&pong);
            }
            Frame::Pong(_) => {}
            Frame::Credit(credit) => {
                let mut state = link.lock();
                if state.send.grant(credit).is_err() {
                    drop(state);
                    return Err(goodbye(link, Code::FLOW_CONTROL, "credit overflow"));
                }
                drop(state);
                link.changed.notify_all();
            }
            Frame::Publish(publish) => {
                if link.lock().receive.spend(length).is_err() {
                    return Err(goodbye(link, Code::FLOW_CONTROL, "PUBLISH without credit"));
                }
                let message = Message::from_publish(router, &publish);
                let reply = Verdict::new(
                    Arc::clone(link),
                    generation,
                    publish.publish_id,
                    length as u32,
                    publish.message_id,
                    shared.options.credit,
                );
                if !shared.emit(Event::Publish { message, reply }) {
                    return Ok(Ended::Stopped);
                }
            }
            Frame::Presence(presence) => {
                let change = match presence.event {
                    PresenceEvent::Connected => PresenceChange::Connected,
                    PresenceEvent::Disconnected => PresenceChange::Disconnected,
                    PresenceEvent::Joined(topic) => PresenceChange::Joined(topic.to_string()),
                    PresenceEvent::Left(topic) => PresenceChange::Left(topic.to_string()),
                };
                let notice = PresenceNotice {
                    router,
                    change,
                    connection: presence.connection,
                    user: presence.user.to_string(),
                };
                if !shared.emit(Event::Presence(notice)) {
                    return Ok(Ended::Stopped);
                }
            }
            Frame::Reply(reply) => {
                link.lock()
                    .replies
                    .insert(reply.request_id, (reply.code, reply.text.to_string()));
                link.changed.notify_all();
            }
            Frame::GoAway(go_away) => {
                return Err(Ended::GoAway(go_away.code, go_away.text.to_string()));
            }
            other => {
                let text = format!("{} is not for backends", other.frame_type());
                return Err(goodbye(link, Code::UNEXPECTED_MESSAGE, &text));
            }
        }
    }
}

/// Tells the router why we leave, then ends the session.
fn goodbye(link: &Link, code: Code, text: &str) -> Ended {
    let _ = link.send(&Frame::GoAway(GoAway { code, text }));
    Ended::Protocol(text.to_string())
}

/// A frame's bytes, owned, read off a blocking socket.
struct Owned(Vec<u8>);

impl Owned {
    fn frame<'a>(&'a self, decoder: &Decoder) -> Frame<'a> {
        decoder
            .decode(&self.0)
            .ok()
            .flatten()
            .expect("checked when read")
            .0
    }
}

struct FrameReader {
    stream: TcpStream,
    buffer: Vec<u8>,
    start: usize,
    decoder: Decoder,
}

impl FrameReader {
    fn new(stream: TcpStream, max_body_bytes: u32) -> FrameReader {
        FrameReader {
            stream,
            buffer: Vec::with_capacity(64 << 10),
            start: 0,
            decoder: Decoder::new(max_body_bytes),
        }
    }

    /// The next whole frame (checked), copied out of the read buffer.
    fn next_owned(&mut self) -> Result<Owned, Ended> {
        loop {
            match self.decoder.decode(&self.buffer[self.start..]) {
                Ok(Some((_, length))) => {
                    let frame = Owned(self.buffer[self.start..self.start + length].to_vec());
                    self.start += length;
                    if self.start == self.buffer.len() {
                        self.buffer.clear();
                        self.start = 0;
                    }
                    return Ok(frame);
                }
                Ok(None) => {}
                Err(error) => return Err(Ended::Protocol(error.to_string())),
            }
            if self.start > 0 {
                self.buffer.drain(..self.start);
                self.start = 0;
            }
            let mut chunk = [0u8; 16 << 10];
            let read = self.stream.read(&mut chunk)?;
            if read == 0 {
                return Err(Ended::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the router closed the connection",
                )));
            }
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

impl Shared {
    /// Queues an event for `next_event`; waits while the queue is full
    /// (so a backend that stops reading stops reading its routers too).
    /// `false` when the backend is closing.
    pub(super) fn emit(&self, event: Event) -> bool {
        let mut event = event;
        loop {
            match self.events.try_send(event) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(returned)) => {
                    if self.stopped.load(Ordering::Acquire) {
                        return false;
                    }
                    event = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Sleeps up to `duration`, waking early when the backend closes.
    fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        while !self.stopped.load(Ordering::Acquire) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

/// A session up this long resets the backoff.
const RESET_AFTER: Duration = Duration::from_secs(10);

/// Reconnect jitter: a small xorshift, so a fleet of backends does not
/// reconnect in lockstep after a router restart.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        let time = now_us();
        Jitter((seed ^ time) | 1)
    }

    /// A duration in `[0, ceiling)`.
    fn below(&mut self, ceiling: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ceiling.mul_f64((self.0 % 10_000) as f64 / 10_000.0)
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_micros() as u64)
}
