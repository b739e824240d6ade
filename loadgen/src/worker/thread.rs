//! One worker thread: an epoll (mio) event loop over its share of connections.
//!
//! Per loop turn: take the time once, do what is due (start connects, send
//! scheduled messages, time out handshakes), then wait for readiness or the
//! next deadline. Per readable connection: read everything into the thread's
//! one read buffer, decode every frame, queue all replies, and send them in
//! one `write`. Deadlines finer than epoll's millisecond timeout go through a
//! timerfd so an open-loop schedule is kept to the microsecond.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Token};
use ringgate_wscodec::{ClientHandshakeError, OpCode, accept_key, parse_server_response};

mod churn;

use super::conn::{Conn, Phase};
use super::control::{Control, Window};
use super::engine::{Engine, Traffic};
use super::frames::decode_all;
use super::pubsub::{PubSub, PubSubPlan};
use super::socket::{
    Wait, connect_registered, connect_result, connect_settled, poll_with_timer, read_once, wait,
    wants_read, write_upgrade_request, ws_key,
};
use crate::churn::ChurnPlan;
use crate::schedule::{Schedule, due_for_conn, latency_us, seq_of};
use crate::stats::{ErrorReason, Totals};
use crate::sys::{self, Timer, now_ns};

const TIMER: Token = Token(usize::MAX - 1);
/// Shared read buffer per thread; also bounds one read's worth of replies.
const READ_BUFFER_BYTES: usize = 128 * 1024;
/// Longest upgrade answer we accept before calling it garbage.
const HANDSHAKE_HEAD_MAX_BYTES: usize = 16 * 1024;
/// Open loop: stop materialising a connection's owed messages while this
/// much is already queued for it; the rest goes out when it drains.
const PENDING_BACKLOG_MAX_BYTES: usize = 1 << 20;
const HOUSEKEEPING_NS: u64 = 50_000_000;
const INTERVAL_PUBLISH_NS: u64 = 250_000_000;
/// A thread that is ready but never told to go gives up after this.
const GO_WAIT_MAX_NS: u64 = 600_000_000_000;
const EVENTS_CAPACITY: usize = 1024;
/// pubsub: most publishes sent per loop turn, so a sender that fell behind
/// still reads (and timestamps) deliveries between bursts.
const PUBLISH_BURST_MAX: u32 = 1024;

#[derive(Debug, Clone)]
pub struct ThreadPlan {
    pub target: SocketAddr,
    pub host: Arc<str>,
    pub path: Arc<str>,
    /// This process's source addresses (empty: let the kernel choose).
    pub sources: Arc<[IpAddr]>,
    /// The thread's `j`-th connection is process-local connection
    /// `first_index + j * stride`; that index picks its source address.
    pub first_index: u64,
    pub stride: u64,
    pub conns: usize,
    /// New connections per second (0: as fast as `max_pending` allows).
    pub connect_rate: f64,
    pub max_pending: usize,
    pub timeout_ns: u64,
    pub cpu: Option<usize>,
    pub seed: u64,
    pub traffic: Traffic,
    pub size: usize,
    pub binary: bool,
    pub track_interval: bool,
    /// The pubsub scenario's part for this thread.
    pub pubsub: Option<PubSubPlan>,
    /// The churn scenario's part for this thread.
    pub churn: Option<ChurnPlan>,
    /// The attack scenario's part (the thread runs `attack::thread` instead).
    pub attack: Option<crate::attack::AttackPlan>,
}

impl ThreadPlan {
    /// The source address of the thread's `j`-th connection (None: let
    /// the kernel choose).
    pub fn source(&self, j: u64) -> Option<IpAddr> {
        if self.sources.is_empty() {
            return None;
        }
        let local = self.first_index + j * self.stride;
        Some(self.sources[(local % self.sources.len() as u64) as usize])
    }
}

/// What a thread that could not set up its event loop reports: ready (so
/// the run does not wait for it), and the error.
pub fn start_failed(control: &Control, error: &io::Error) -> Totals {
    eprintln!("loadgen: worker thread cannot start: {error}");
    control.mark_ready();
    let mut totals = Totals::default();
    totals.errors.insert(ErrorReason::from_io(error).key(), 1);
    totals
}

/// Runs one thread's share to completion and returns what it counted.
pub fn run(plan: ThreadPlan, control: Arc<Control>) -> Totals {
    if let Some(cpu) = plan.cpu
        && let Err(e) = sys::pin_current_thread(cpu)
    {
        eprintln!("loadgen: cannot pin thread to CPU {cpu}: {e}");
    }
    if plan.attack.is_some() {
        return crate::attack::thread::run(plan, control);
    }
    let mut worker = match Worker::new(plan, Arc::clone(&control)) {
        Ok(worker) => worker,
        Err(e) => return start_failed(&control, &e),
    };
    let mut events = Events::with_capacity(EVENTS_CAPACITY);
    worker.run(&mut events);
    worker.finish()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    WaitGo,
    Running,
    Draining,
}

struct Worker {
    plan: ThreadPlan,
    control: Arc<Control>,
    poll: Poll,
    timer: Timer,
    conns: Vec<Conn>,
    read_buf: Box<[u8]>,
    engine: Engine,
    /// Next connection to start, and how many are connecting or handshaking.
    next_to_start: usize,
    pending: usize,
    /// No connection below this index is still pending (timeout scan start).
    pending_low: usize,
    connect_schedule: Option<Schedule>,
    /// Open loop or pings: the schedule, how much of it is done, and where it stops.
    schedule: Option<Schedule>,
    schedule_done: u64,
    schedule_end: u64,
    /// pubsub: subscriptions unanswered at this time have failed (set once
    /// every connection is open or failed).
    subscribe_deadline_ns: Option<u64>,
    churn: Option<churn::ChurnState>,
}

impl Worker {
    fn new(plan: ThreadPlan, control: Arc<Control>) -> io::Result<Worker> {
        let (poll, timer) = poll_with_timer(TIMER)?;
        let conns = (0..plan.conns).map(|_| Conn::new()).collect();
        let mut engine = Engine::new(
            plan.traffic,
            plan.size,
            plan.binary,
            plan.seed,
            plan.track_interval,
        );
        engine.out.reserve(READ_BUFFER_BYTES);
        engine.totals.counts.conns_planned = plan.conns as u64;
        engine.pubsub = plan
            .pubsub
            .clone()
            .map(|p| Box::new(PubSub::new(p, plan.conns)));
        let churn = plan.churn.map(churn::ChurnState::new);
        Ok(Worker {
            churn,
            plan,
            control,
            poll,
            timer,
            conns,
            read_buf: vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
            engine,
            next_to_start: 0,
            pending: 0,
            pending_low: 0,
            connect_schedule: None,
            schedule: None,
            schedule_done: 0,
            schedule_end: 0,
            subscribe_deadline_ns: None,
        })
    }

    fn run(&mut self, events: &mut Events) {
        let begun = now_ns();
        if self.plan.connect_rate > 0.0 {
            self.connect_schedule = Some(Schedule::new(begun, self.plan.connect_rate));
        }
        let mut stage = Stage::Connecting;
        let mut ready_ns = 0;
        let mut next_housekeeping = 0;
        let mut next_interval_publish = begun + INTERVAL_PUBLISH_NS;
        loop {
            let now = now_ns();
            if now >= next_housekeeping {
                self.housekeeping(now);
                next_housekeeping = now + HOUSEKEEPING_NS;
                if now >= next_interval_publish {
                    self.control.publish_interval(&mut self.engine.interval);
                    next_interval_publish = now + INTERVAL_PUBLISH_NS;
                }
            }
            if self.control.stop_requested() {
                break;
            }
            let wake = match stage {
                Stage::Connecting => {
                    let wake = self.start_connects(now);
                    if self.next_to_start == self.conns.len()
                        && self.pending == 0
                        && self.subscriptions_settled(now)
                    {
                        // Counts first, so whoever sees "ready" sees them too.
                        self.control.flush(&mut self.engine.delta);
                        self.control.mark_ready();
                        stage = Stage::WaitGo;
                        ready_ns = now;
                    }
                    wake
                }
                Stage::WaitGo => {
                    if let Some(window) = self.control.window() {
                        self.begin(window, now);
                        stage = Stage::Running;
                        continue;
                    }
                    if now > ready_ns + GO_WAIT_MAX_NS {
                        break;
                    }
                    None
                }
                Stage::Running => {
                    let window = self.engine.window.expect("running has a window");
                    if now >= window.end_ns {
                        self.at_window_end();
                        stage = Stage::Draining;
                        continue;
                    }
                    let next_send = if self.engine.pubsub.is_some() {
                        self.publish_due(now)
                    } else if self.churn.is_some() {
                        self.churn_due(now)
                    } else {
                        self.send_due(now)
                    };
                    Some(next_send.map_or(window.end_ns, |t| t.min(window.end_ns)))
                }
                Stage::Draining => {
                    let window = self.engine.window.expect("draining has a window");
                    // pubsub waits the whole drain: deliveries of its
                    // publishes may still be on their way to other
                    // threads and processes, and theirs to it.
                    let done = self.engine.outstanding_total == 0
                        && self.engine.pubsub.is_none()
                        && self.pending == 0;
                    if done || now >= window.drain_end_ns {
                        break;
                    }
                    Some(window.drain_end_ns)
                }
            };
            let timeout = Duration::from_nanos(next_housekeeping.saturating_sub(now));
            match wait(&mut self.poll, &mut self.timer, events, wake, timeout) {
                Wait::Ready => {}
                Wait::Again => continue,
                Wait::Stop => break,
            }
            let now = now_ns();
            for event in events.iter() {
                if event.token() == TIMER {
                    continue;
                }
                self.handle_event(event.token().0, event, now);
            }
        }
    }

    /// pubsub: every subscription answered, or --timeout past the last
    /// connection (the rest are booked as failed). Other scenarios: true.
    fn subscriptions_settled(&mut self, now: u64) -> bool {
        let Some(pubsub) = self.engine.pubsub.as_mut() else {
            return true;
        };
        if pubsub.subs_pending == 0 {
            return true;
        }
        let deadline = *self
            .subscribe_deadline_ns
            .get_or_insert(now + self.plan.timeout_ns);
        if now < deadline {
            return false;
        }
        let expired = pubsub.expire_subscriptions();
        self.engine
            .count_error_n(ErrorReason::SubscribeTimeout, expired);
        true
    }

    /// pubsub: sends the publishes the schedule says are due, each from its
    /// topic's publisher and stamped with its intended time; returns the
    /// next intended time.
    fn publish_due(&mut self, now: u64) -> Option<u64> {
        let schedule = self.schedule?;
        let due = schedule.due(now).min(self.schedule_end);
        let mut burst = PUBLISH_BURST_MAX;
        while self.schedule_done < due {
            if burst == 0 {
                // Come back at once, after reading what has arrived.
                return Some(now);
            }
            burst -= 1;
            let engine = &mut self.engine;
            let pubsub = engine.pubsub.as_mut().expect("pubsub scenario");
            let (_, user) = pubsub.next_publish();
            let conn = &mut self.conns[user];
            if !conn.is_open() {
                pubsub.skip();
                engine.count_error_n(ErrorReason::NotOpen, 1);
                self.schedule_done += 1;
                continue;
            }
            if conn.pending.len() > PENDING_BACKLOG_MAX_BYTES {
                // Its publisher is backed up: the schedule waits (with the
                // drawn topic held) until the socket drains (`on_writable`).
                return None;
            }
            pubsub.publish(schedule.intended_ns(self.schedule_done), &mut engine.out);
            engine.totals.counts.messages_sent += 1;
            engine.outstanding_total += 1;
            conn.outstanding += 1;
            self.schedule_done += 1;
            self.send_out(user);
        }
        (due < self.schedule_end).then(|| schedule.intended_ns(due))
    }

    fn housekeeping(&mut self, now: u64) {
        if self.pending > 0 {
            self.expire_handshakes(now);
        }
        self.control.flush(&mut self.engine.delta);
    }

    /// Fails connections whose TCP connect plus upgrade took longer than --timeout.
    fn expire_handshakes(&mut self, now: u64) {
        while self.pending_low < self.next_to_start && !self.conns[self.pending_low].is_pending() {
            self.pending_low += 1;
        }
        for index in self.pending_low..self.next_to_start {
            let conn = &self.conns[index];
            if conn.is_pending() && now.saturating_sub(conn.started_ns) > self.plan.timeout_ns {
                self.drop_conn(index, ErrorReason::Timeout);
            }
        }
    }

    /// Starts the connections that are due; returns when the next one is.
    fn start_connects(&mut self, now: u64) -> Option<u64> {
        while self.next_to_start < self.conns.len() && self.pending < self.plan.max_pending {
            let index = self.next_to_start;
            if let Some(schedule) = &self.connect_schedule
                && schedule.due(now) <= index as u64
            {
                return Some(schedule.intended_ns(index as u64));
            }
            self.next_to_start += 1;
            self.open_connection(index, now);
        }
        None
    }

    fn open_connection(&mut self, index: usize, now: u64) {
        let counts = &mut self.engine.totals.counts;
        counts.connect_attempts += 1;
        if counts.first_attempt_ns == 0 {
            counts.first_attempt_ns = now;
        }
        let source = self.plan.source(index as u64);
        let conn = &mut self.conns[index];
        conn.started_ns = now;
        conn.phase = Phase::Connecting;
        self.pending += 1;
        match connect_registered(&self.poll, &self.plan, source, index) {
            Ok(stream) => self.conns[index].stream = Some(stream),
            Err(reason) => self.drop_conn(index, reason),
        }
    }

    fn handle_event(&mut self, index: usize, event: &mio::event::Event, now: u64) {
        let Some(conn) = self.conns.get(index) else {
            return;
        };
        let readable = wants_read(event);
        match conn.phase {
            Phase::Connecting => {
                if connect_settled(event) {
                    self.finish_connect(index);
                }
                if readable && self.conns[index].phase == Phase::Handshaking {
                    self.read_handshake(index, now);
                }
            }
            Phase::Handshaking => {
                if readable {
                    self.read_handshake(index, now);
                }
            }
            Phase::Open => {
                if event.is_writable() {
                    self.on_writable(index, now);
                }
                if readable && self.conns[index].is_open() {
                    self.read_open(index, now);
                }
            }
            Phase::Idle | Phase::Closed => {}
        }
    }

    /// TCP is up (or failed): send the upgrade request.
    fn finish_connect(&mut self, index: usize) {
        let Some(stream) = self.conns[index].stream.as_ref() else {
            return;
        };
        match connect_result(stream) {
            Ok(true) => {}
            Ok(false) => return,
            Err(reason) => return self.drop_conn(index, reason),
        }
        let out = &mut self.engine.out;
        write_upgrade_request(out, &self.plan, index);
        let conn = &mut self.conns[index];
        let sent = conn.send(out);
        match sent {
            // A fresh socket always takes a few hundred bytes; if it didn't,
            // `pending` would mix request and answer bytes.
            Ok(()) if !conn.pending.is_empty() => self.drop_conn(index, ErrorReason::NoBuffers),
            Ok(()) => conn.phase = Phase::Handshaking,
            Err(reason) => self.drop_conn(index, reason),
        }
    }

    fn read_handshake(&mut self, index: usize, now: u64) {
        let conn = &mut self.conns[index];
        let read = read_once(conn, &mut self.read_buf);
        let n = match read {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(reason) => return self.drop_conn(index, reason),
        };
        let expected = accept_key(&ws_key(self.plan.seed, index));
        let buffered = !conn.pending.is_empty();
        if buffered {
            if conn.pending.len() + n > HANDSHAKE_HEAD_MAX_BYTES {
                return self.drop_conn(index, ErrorReason::BadHandshake);
            }
            conn.pending.extend_from_slice(&self.read_buf[..n]);
        }
        let head = if buffered {
            &conn.pending[..]
        } else {
            &self.read_buf[..n]
        };
        let head_len = match parse_server_response(head, &expected) {
            Ok(Some(head_len)) => head_len,
            Ok(None) => {
                if !buffered {
                    if n > HANDSHAKE_HEAD_MAX_BYTES {
                        return self.drop_conn(index, ErrorReason::BadHandshake);
                    }
                    conn.pending.extend_from_slice(&self.read_buf[..n]);
                }
                return;
            }
            Err(ClientHandshakeError::Status(code)) => {
                return self.drop_conn(index, ErrorReason::HttpStatus(code));
            }
            Err(_) => return self.drop_conn(index, ErrorReason::BadHandshake),
        };
        // Frames that came with the answer move to the front of the read buffer.
        let rest = if buffered {
            let rest = conn.pending.len() - head_len;
            self.read_buf[..rest].copy_from_slice(&conn.pending[head_len..]);
            conn.pending = Vec::new();
            rest
        } else {
            self.read_buf.copy_within(head_len..n, 0);
            n - head_len
        };
        self.on_open(index, now);
        if rest > 0
            && let Err(reason) = self.process_input(index, rest, now)
        {
            return self.drop_conn(index, reason);
        }
        self.send_out(index);
        if n == self.read_buf.len() && self.conns[index].is_open() {
            self.read_open(index, now);
        }
    }

    fn on_open(&mut self, index: usize, now: u64) {
        self.pending -= 1;
        let engine = &mut self.engine;
        let conn = &mut self.conns[index];
        conn.phase = Phase::Open;
        let counts = &mut engine.totals.counts;
        counts.connects_ok += 1;
        counts.last_connect_ns = now;
        let handshake_us = latency_us(conn.started_ns, now);
        engine.totals.handshake.saturating_record(handshake_us);
        if let Some(churn) = self.churn.as_mut() {
            churn.on_open(conn.started_ns, handshake_us);
        }
        if engine.track_interval && (engine.window.is_none() || self.churn.is_some()) {
            // Before traffic starts (and in churn), the progress line's p99 is the handshake's.
            engine.interval.saturating_record(handshake_us);
        }
        engine.delta.connects_ok += 1;
        engine.delta.opened += 1;
        if let Some(pubsub) = engine.pubsub.as_mut() {
            pubsub.subscribe(index, &mut engine.out);
        }
        if engine.sending(now)
            && let Traffic::ClosedLoop { inflight } = engine.traffic
        {
            engine.prime(conn, inflight, now);
        }
    }

    /// Reads until the socket is drained (a short read means it was),
    /// decoding as it goes, then sends every reply in one write.
    fn read_open(&mut self, index: usize, now: u64) {
        loop {
            let n = match read_once(&mut self.conns[index], &mut self.read_buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(reason) => return self.drop_conn(index, reason),
            };
            if let Err(reason) = self.process_input(index, n, now) {
                return self.drop_conn(index, reason);
            }
            if n < self.read_buf.len() {
                break;
            }
        }
        self.send_out(index);
    }

    /// Decodes `read_buf[..len]` on connection `index`, queueing replies in `out`.
    fn process_input(&mut self, index: usize, len: usize, now: u64) -> Result<(), ErrorReason> {
        let conn = &mut self.conns[index];
        let engine = &mut self.engine;
        let limits = engine.limits;
        let outstanding = &mut conn.outstanding;
        let decoded = decode_all(
            &mut conn.decoder,
            &mut self.read_buf[..len],
            &limits,
            |message| engine.on_message(index, outstanding, message, now),
        );
        engine.flush_latencies();
        decoded
    }

    fn send_out(&mut self, index: usize) {
        if self.engine.out.is_empty() {
            return;
        }
        let conn = &mut self.conns[index];
        if !conn.is_open() {
            self.engine.out.clear();
            return;
        }
        if let Err(reason) = conn.send(&mut self.engine.out) {
            self.drop_conn(index, reason);
        }
    }

    fn on_writable(&mut self, index: usize, now: u64) {
        if let Err(reason) = self.conns[index].flush_pending() {
            return self.drop_conn(index, reason);
        }
        if !self.engine.sending(now) {
            return;
        }
        match self.engine.traffic {
            Traffic::OpenLoop { .. } => self.catch_up(index, self.schedule_done),
            Traffic::PubSub { .. } => {
                self.publish_due(now);
            }
            _ => {}
        }
    }

    /// Traffic starts: warmup (echo) or hold (connect) begins.
    fn begin(&mut self, window: Window, now: u64) {
        self.engine.window = Some(window);
        self.begin_churn(window);
        let conns = self.conns.len() as u64;
        match self.engine.traffic {
            Traffic::Idle => {}
            Traffic::ClosedLoop { inflight } => {
                for index in 0..self.conns.len() {
                    let conn = &mut self.conns[index];
                    if conn.is_open() {
                        self.engine.prime(conn, inflight, now);
                        self.send_out(index);
                    }
                }
            }
            Traffic::OpenLoop { rate } => self.start_schedule(window, rate),
            Traffic::PubSub { rate } => {
                if let Some(pubsub) = self.engine.pubsub.as_mut() {
                    let conns = &self.conns;
                    pubsub.begin(window, |user| conns[user].is_open());
                }
                self.start_schedule(window, rate);
            }
            Traffic::Ping { interval_ns } => {
                if conns > 0 {
                    self.start_schedule(window, conns as f64 * 1e9 / interval_ns as f64);
                }
            }
        }
    }

    fn start_schedule(&mut self, window: Window, rate: f64) {
        if rate <= 0.0 || self.conns.is_empty() {
            return;
        }
        let schedule = Schedule::new(window.go_ns, rate);
        self.schedule_end = schedule.count_before(window.end_ns);
        self.schedule = Some(schedule);
    }

    /// Sends what the open-loop (or ping) schedule says is due; returns the
    /// next intended time.
    fn send_due(&mut self, now: u64) -> Option<u64> {
        let schedule = self.schedule?;
        let due = schedule.due(now).min(self.schedule_end);
        if due > self.schedule_done {
            let conns = self.conns.len() as u64;
            let touched = (due - self.schedule_done).min(conns);
            for k in 0..touched {
                let index = ((self.schedule_done + k) % conns) as usize;
                self.catch_up(index, due);
            }
            self.schedule_done = due;
        }
        (due < self.schedule_end).then(|| schedule.intended_ns(due))
    }

    /// Queues every message owed to connection `index` of the first `due`
    /// scheduled, each stamped with its intended time, and sends them at once.
    fn catch_up(&mut self, index: usize, due: u64) {
        let Some(schedule) = self.schedule else {
            return;
        };
        let conns = self.conns.len() as u64;
        let owed_until = due_for_conn(due, conns, index as u64);
        let engine = &mut self.engine;
        let conn = &mut self.conns[index];
        let sent = u64::from(conn.sent);
        if owed_until <= sent {
            return;
        }
        if !conn.is_open() {
            engine.count_error_n(ErrorReason::NotOpen, owed_until - sent);
            conn.sent = owed_until as u32;
            return;
        }
        if conn.pending.len() > PENDING_BACKLOG_MAX_BYTES {
            return;
        }
        let opcode = match engine.traffic {
            Traffic::Ping { .. } => OpCode::Ping,
            _ => engine.opcode,
        };
        if opcode == OpCode::Ping {
            // One ping per turn is enough to see whether the connection lives.
            engine.queue(
                OpCode::Ping,
                schedule.intended_ns(seq_of(owed_until - 1, conns, index as u64)),
            );
            engine.totals.counts.pings_sent += 1;
            conn.outstanding += 1;
        } else {
            for nth in sent..owed_until {
                engine.queue(
                    opcode,
                    schedule.intended_ns(seq_of(nth, conns, index as u64)),
                );
            }
            conn.outstanding += (owed_until - sent) as u32;
        }
        conn.sent = owed_until as u32;
        self.send_out(index);
    }

    fn at_window_end(&mut self) {
        let held = self.conns.iter().filter(|c| c.is_open()).count();
        self.engine.totals.counts.held_at_end = held as u64;
    }

    /// Closes connection `index` and books why.
    fn drop_conn(&mut self, index: usize, reason: ErrorReason) {
        let conn = &mut self.conns[index];
        let engine = &mut self.engine;
        match conn.phase {
            Phase::Open => {
                engine.delta.closed += 1;
                engine.forget_outstanding(conn.outstanding);
                if engine.window.is_some() {
                    engine.totals.counts.unanswered += u64::from(conn.outstanding);
                }
            }
            Phase::Connecting | Phase::Handshaking => {
                self.pending -= 1;
                engine.totals.counts.connects_failed += 1;
                engine.delta.connects_failed += 1;
                if let Some(churn) = self.churn.as_mut() {
                    churn.on_connect_failed(conn.started_ns, reason);
                }
            }
            Phase::Idle | Phase::Closed => {}
        }
        conn.outstanding = 0;
        conn.close();
        if let Some(pubsub) = engine.pubsub.as_mut() {
            pubsub.forget_user(index);
        }
        engine.count_error_n(reason, 1);
        crate::hints::warn_once(reason);
    }

    /// Books what is still open and closes everything.
    fn finish(mut self) -> Totals {
        let engine = &mut self.engine;
        for conn in &mut self.conns {
            match conn.phase {
                Phase::Open => {
                    engine.delta.closed += 1;
                    if engine.window.is_some() {
                        engine.totals.counts.unanswered += u64::from(conn.outstanding);
                    }
                }
                Phase::Connecting | Phase::Handshaking => {
                    engine.totals.counts.connects_failed += 1;
                    engine.delta.connects_failed += 1;
                    *engine.errors.entry(ErrorReason::Timeout).or_default() += 1;
                    if let Some(churn) = self.churn.as_mut() {
                        churn.on_connect_failed(conn.started_ns, ErrorReason::Timeout);
                    }
                }
                Phase::Idle | Phase::Closed => {}
            }
            conn.close();
        }
        self.control.flush(&mut engine.delta);
        self.control.publish_interval(&mut engine.interval);
        let mut totals = std::mem::take(&mut engine.totals);
        for (reason, count) in &engine.errors {
            *totals.errors.entry(reason.key()).or_default() += count;
        }
        if let Some(pubsub) = engine.pubsub.take() {
            let pubsub = *pubsub;
            totals.pubsub = pubsub.counts;
            totals.topics = pubsub.table;
            totals.ack_latency = pubsub.ack_latency;
        }
        if let Some(churn) = self.churn.take() {
            totals.churn = churn.totals;
        }
        totals
    }
}

/// Size of one connection's state, for the report.
pub fn conn_state_bytes() -> usize {
    std::mem::size_of::<Conn>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_state_stays_small() {
        // The budget is 2 KiB of client memory per connection; the
        // struct itself must stay a small fraction of it.
        assert!(
            conn_state_bytes() <= 256,
            "Conn is {} bytes",
            conn_state_bytes()
        );
    }
}
