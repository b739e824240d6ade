//! The attack scenario's event loop: one mio loop per worker thread over
//! its attackers plus one honest control connection (index 0).
//!
//! Phases follow the run's window: the control connection opens and the
//! thread reports ready; from `go` the control echoes (its baseline); at
//! the window's start every attacker connects and attacks; at its end the
//! attackers stop sending (a nonreader starts reading, to see what the
//! server did); answers are awaited until the drain ends, and whatever has
//! none by then is `no_answer`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Token};
use ringgate_wscodec::{
    ClientHandshakeError, Limits, Message, OpCode, accept_key, parse_server_response, write_frame,
};

use super::client::{
    self as script, Client, FloodReply, NONREADER_BYTES_MAX, NONREADER_MESSAGE_BYTES, Stage,
};
use super::{AttackPlan, AttackTotals, Kind};
use crate::schedule::{Schedule, latency_us};
use crate::stamp;
use crate::stats::{ErrorReason, Totals};
use crate::sys::{Timer, now_ns};
use crate::worker::control::{Control, ProgressDelta, Window};
use crate::worker::socket::{
    Wait, connect_registered, connect_result, connect_settled, poll_with_timer, read_once, wait,
    wants_read, write_upgrade_request, ws_key,
};
use crate::worker::thread::{ThreadPlan, start_failed};

const TIMER: Token = Token(usize::MAX - 1);
const CONTROL: usize = 0;
const READ_BUFFER_BYTES: usize = 128 * 1024;
const HEAD_MAX_BYTES: usize = 16 * 1024;
const HOUSEKEEPING_NS: u64 = 50_000_000;
/// A thread that is ready but never told to go gives up after this.
const GO_WAIT_MAX_NS: u64 = 600_000_000_000;
/// flood: messages queued per attacker per loop turn.
const FLOOD_BURST: u64 = 64;
/// Non-reader messages sent per loop turn at most (1 MiB).
const NONREADER_BURST: usize = 32;
/// Control echo payload: the stamp and some filler.
const CONTROL_PAYLOAD_BYTES: usize = 32;
/// Largest frame the attackers accept back (echoes of their own messages).
const ACCEPT_MAX_BYTES: usize = 16 << 20;

pub fn run(plan: ThreadPlan, control: Arc<Control>) -> Totals {
    let attack = plan.attack.clone().expect("attack plan");
    let mut worker = match AttackWorker::new(plan, attack, Arc::clone(&control)) {
        Ok(worker) => worker,
        Err(e) => return start_failed(&control, &e),
    };
    worker.run();
    worker.finish()
}

struct AttackWorker {
    plan: ThreadPlan,
    attack: AttackPlan,
    control: Arc<Control>,
    poll: Poll,
    timer: Timer,
    /// Index 0 is the control connection; attacker `j` is `j + 1`.
    clients: Vec<Client>,
    read_buf: Box<[u8]>,
    out: Vec<u8>,
    rng: u64,
    limits: Limits,
    window: Option<Window>,
    /// Next attacker to launch, and connections connecting or upgrading.
    next_launch: usize,
    pending: usize,
    ended: bool,
    control_schedule: Option<Schedule>,
    control_done: u64,
    totals: Totals,
    attack_totals: AttackTotals,
    delta: ProgressDelta,
}

impl AttackWorker {
    fn new(plan: ThreadPlan, attack: AttackPlan, control: Arc<Control>) -> io::Result<Self> {
        let (poll, timer) = poll_with_timer(TIMER)?;
        let mut clients = vec![Client::new(None)];
        clients.extend(attack.kinds.iter().map(|&kind| Client::new(Some(kind))));
        let mut attack_totals = AttackTotals::default();
        for &kind in &attack.kinds {
            attack_totals.kind(kind).attackers += 1;
        }
        attack_totals.control.conns = 1;
        Ok(AttackWorker {
            rng: plan.seed | 1,
            plan,
            attack,
            control,
            poll,
            timer,
            clients,
            read_buf: vec![0u8; READ_BUFFER_BYTES].into_boxed_slice(),
            out: Vec::new(),
            limits: Limits {
                max_frame_bytes: ACCEPT_MAX_BYTES as u64,
                max_text_message_bytes: ACCEPT_MAX_BYTES,
                max_binary_message_bytes: ACCEPT_MAX_BYTES,
            },
            window: None,
            next_launch: 1,
            pending: 0,
            ended: false,
            control_schedule: None,
            control_done: 0,
            totals: Totals::default(),
            attack_totals,
            delta: ProgressDelta::default(),
        })
    }

    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        let begun = now_ns();
        self.open(CONTROL, begun);
        let mut ready = false;
        let mut next_housekeeping = 0;
        loop {
            let now = now_ns();
            if now >= next_housekeeping {
                self.expire_upgrades(now);
                self.control.flush(&mut self.delta);
                next_housekeeping = now + HOUSEKEEPING_NS;
            }
            if self.control.stop_requested() {
                break;
            }
            let mut wake = None;
            if !ready {
                if !self.clients[CONTROL].is_pending() {
                    self.control.flush(&mut self.delta);
                    self.control.mark_ready();
                    ready = true;
                }
            } else if let Some(window) = self.window {
                if now >= window.drain_end_ns || (self.ended && self.all_answered()) {
                    break;
                }
                wake = self.due(window, now);
            } else if let Some(window) = self.control.window() {
                self.window = Some(window);
                self.control_schedule = Some(Schedule::new(window.go_ns, self.attack.control_rate));
                continue;
            } else if now > begun + GO_WAIT_MAX_NS {
                break;
            }
            let timeout = Duration::from_nanos(next_housekeeping.saturating_sub(now));
            match wait(&mut self.poll, &mut self.timer, &mut events, wake, timeout) {
                Wait::Ready => {}
                Wait::Again => continue,
                Wait::Stop => break,
            }
            let now = now_ns();
            for event in events.iter() {
                if event.token() != TIMER {
                    self.handle_event(event.token().0, event, now);
                }
            }
        }
    }

    fn all_answered(&self) -> bool {
        self.clients[1..].iter().all(|c| c.stage == Stage::Done)
    }

    /// What is due in the window; returns when the next thing is.
    fn due(&mut self, window: Window, now: u64) -> Option<u64> {
        let mut wake = self.control_due(window, now);
        if now < window.start_ns {
            return Some(wake.map_or(window.start_ns, |w| w.min(window.start_ns)));
        }
        if now >= window.end_ns {
            if !self.ended {
                self.end_attacks(now);
            }
            return wake.or(Some(window.drain_end_ns));
        }
        if self.next_launch == 1 {
            self.control_at_attack_start();
        }
        while self.next_launch < self.clients.len() && self.pending < self.plan.max_pending {
            let index = self.next_launch;
            self.next_launch += 1;
            self.open(index, now);
        }
        for index in 1..self.clients.len() {
            if let Some(next) = self.attack_due(index, now) {
                wake = Some(wake.map_or(next, |w: u64| w.min(next)));
            }
        }
        Some(wake.map_or(window.end_ns, |w| w.min(window.end_ns)))
    }

    fn control_at_attack_start(&mut self) {
        if self.clients[CONTROL].stage == Stage::Attacking {
            self.attack_totals.control.open_at_start += 1;
        }
    }

    /// The honest echo: one stamped message per scheduled time until the window ends.
    fn control_due(&mut self, window: Window, now: u64) -> Option<u64> {
        let schedule = self.control_schedule?;
        let end = schedule.count_before(window.end_ns);
        let due = schedule.due(now).min(end);
        while self.control_done < due {
            let intended = schedule.intended_ns(self.control_done);
            self.control_done += 1;
            if self.clients[CONTROL].stage != Stage::Attacking {
                continue;
            }
            let mut payload = [b'c'; CONTROL_PAYLOAD_BYTES];
            stamp::write(&mut payload, intended);
            let mask = self.next_mask();
            write_frame(&mut self.out, OpCode::Text, &payload, Some(mask));
            self.attack_totals.control.sent += 1;
            self.totals.counts.messages_sent += 1;
            self.send_out(CONTROL, now);
        }
        (due < end).then(|| schedule.intended_ns(due))
    }

    /// Trickles a byte, or floods a burst, for attacker `index`; returns when it wants to go on.
    fn attack_due(&mut self, index: usize, now: u64) -> Option<u64> {
        let client = &self.clients[index];
        if client.stage != Stage::Attacking || !client.conn.pending.is_empty() {
            return None;
        }
        match client.kind? {
            Kind::Slowloris | Kind::Trickle => {
                if now < client.next_ns {
                    return Some(client.next_ns);
                }
                let byte = if client.kind == Some(Kind::Slowloris) {
                    script::slowloris_byte(client.progress)
                } else {
                    let frame = script::trickle_frame([0x5a, 0x17, 0x33, 0xc4]);
                    match frame.get(client.progress as usize) {
                        Some(&byte) => byte,
                        // The whole frame went out before the server objected.
                        None => return None,
                    }
                };
                self.out.push(byte);
                let client = &mut self.clients[index];
                client.progress += 1;
                client.next_ns += self.attack.byte_interval_ns;
                let next = client.next_ns;
                self.send_out(index, now);
                Some(next)
            }
            Kind::Flood => {
                if client.progress >= self.attack.flood_messages {
                    return None;
                }
                let burst = FLOOD_BURST.min(self.attack.flood_messages - client.progress);
                for _ in 0..burst {
                    let n = self.clients[index].progress;
                    let id = format!("f{:x}.{index}.{n}", self.plan.seed);
                    let message = script::flood_message(&id, self.attack.flood_size);
                    let mask = self.next_mask();
                    write_frame(&mut self.out, OpCode::Text, &message, Some(mask));
                    self.clients[index].progress += 1;
                }
                self.attack_totals.kind(Kind::Flood).messages_sent += burst;
                self.send_out(index, now);
                Some(now)
            }
            // More to send (the burst ran out, not the kernel's room): go on
            // next turn.
            Kind::Nonreader => self.feed_nonreader(index, now).then_some(now),
            Kind::Oversized | Kind::All => None,
        }
    }

    /// Sends echo-worthy messages until the kernel refuses more (or the cap),
    /// at most [`NONREADER_BURST`] per call: a server that reads and drops
    /// them at full speed must not keep this thread (the other attackers
    /// and the control connection) waiting. True if it stopped at the burst.
    fn feed_nonreader(&mut self, index: usize, now: u64) -> bool {
        let payload = vec![b'n'; NONREADER_MESSAGE_BYTES];
        for _ in 0..NONREADER_BURST {
            let client = &self.clients[index];
            if client.reading
                || client.stage != Stage::Attacking
                || !client.conn.pending.is_empty()
                || client.bytes_sent >= NONREADER_BYTES_MAX
            {
                return false;
            }
            let mask = self.next_mask();
            write_frame(&mut self.out, OpCode::Binary, &payload, Some(mask));
            let client = &mut self.clients[index];
            client.progress += 1;
            client.bytes_sent += NONREADER_MESSAGE_BYTES as u64;
            self.attack_totals.kind(Kind::Nonreader).messages_sent += 1;
            self.send_out(index, now);
        }
        true
    }

    /// The window ended: attackers stop; nonreaders read at last.
    fn end_attacks(&mut self, now: u64) {
        self.ended = true;
        for index in 1..self.clients.len() {
            let client = &mut self.clients[index];
            if client.kind == Some(Kind::Nonreader) && client.stage == Stage::Attacking {
                client.reading = true;
                self.read_frames(index, now);
            }
        }
    }

    fn open(&mut self, index: usize, now: u64) {
        self.totals.counts.connect_attempts += 1;
        // Attacker `j` is connection `j + 1`; the control takes no --src address.
        let source = index
            .checked_sub(1)
            .and_then(|attacker| self.plan.source(attacker as u64));
        let client = &mut self.clients[index];
        client.conn.started_ns = now;
        client.stage = Stage::Connecting;
        self.pending += 1;
        match connect_registered(&self.poll, &self.plan, source, index) {
            Ok(stream) => self.clients[index].conn.stream = Some(stream),
            Err(reason) => self.fail_upgrade(index, reason),
        }
    }

    fn expire_upgrades(&mut self, now: u64) {
        for index in 0..self.clients.len() {
            let client = &self.clients[index];
            if client.is_pending()
                && now.saturating_sub(client.conn.started_ns) > self.plan.timeout_ns
            {
                self.fail_upgrade(index, ErrorReason::Timeout);
            }
        }
    }

    fn handle_event(&mut self, index: usize, event: &mio::event::Event, now: u64) {
        let Some(client) = self.clients.get(index) else {
            return;
        };
        let readable = wants_read(event);
        match client.stage {
            Stage::Connecting => {
                if connect_settled(event) {
                    self.finish_connect(index, now);
                }
                if readable && self.clients[index].stage == Stage::Upgrading {
                    self.read_upgrade(index, now);
                }
            }
            Stage::Upgrading if readable => self.read_upgrade(index, now),
            Stage::Attacking => {
                if event.is_writable() {
                    if let Err(reason) = self.clients[index].conn.flush_pending() {
                        return self.on_write_error(index, reason, now);
                    }
                    if self.clients[index].kind == Some(Kind::Nonreader) && !self.ended {
                        // The rest, if any, goes out from `due` next turn.
                        self.feed_nonreader(index, now);
                    }
                }
                let client = &mut self.clients[index];
                if client.kind == Some(Kind::Nonreader)
                    && !client.reading
                    && (event.is_read_closed() || event.is_error())
                {
                    // The server hung up: now see what it said.
                    client.reading = true;
                }
                let reads = client.kind != Some(Kind::Nonreader) || client.reading;
                if readable && reads && self.clients[index].stage == Stage::Attacking {
                    self.read_frames(index, now);
                }
            }
            _ => {}
        }
    }

    /// TCP is up: slowloris begins its request; the others ask to upgrade.
    fn finish_connect(&mut self, index: usize, now: u64) {
        let Some(stream) = self.clients[index].conn.stream.as_ref() else {
            return;
        };
        match connect_result(stream) {
            Ok(true) => {}
            Ok(false) => return,
            Err(reason) => return self.fail_upgrade(index, reason),
        }
        if self.clients[index].kind == Some(Kind::Slowloris) {
            self.out = script::slowloris_start(&self.plan.host, &self.plan.path);
            let started = self.clients[index].conn.started_ns;
            self.begin_attack(index, started, now);
            self.send_out(index, now);
            return;
        }
        write_upgrade_request(&mut self.out, &self.plan, index);
        self.clients[index].stage = Stage::Upgrading;
        self.send_out(index, now);
    }

    fn read_upgrade(&mut self, index: usize, now: u64) {
        let client = &mut self.clients[index];
        let n = match read_once(&mut client.conn, &mut self.read_buf) {
            Ok(Some(n)) => n,
            Ok(None) => return,
            Err(reason) => return self.fail_upgrade(index, reason),
        };
        client.head.extend_from_slice(&self.read_buf[..n]);
        let expected = accept_key(&ws_key(self.plan.seed, index));
        let head_len = match parse_server_response(&client.head, &expected) {
            Ok(Some(len)) => len,
            Ok(None) if client.head.len() > HEAD_MAX_BYTES => {
                return self.fail_upgrade(index, ErrorReason::BadHandshake);
            }
            Ok(None) => return,
            Err(ClientHandshakeError::Status(code)) => {
                return self.fail_upgrade(index, ErrorReason::HttpStatus(code));
            }
            Err(_) => return self.fail_upgrade(index, ErrorReason::BadHandshake),
        };
        let rest = client.head.split_off(head_len);
        client.head = Vec::new();
        self.begin_attack(index, now, now);
        if !rest.is_empty() {
            self.read_buf[..rest.len()].copy_from_slice(&rest);
            self.decode(index, rest.len(), now);
        }
        if self.clients[index].stage == Stage::Attacking {
            self.read_frames(index, now);
        }
    }

    /// The connection is ready to attack (or, control, to echo).
    fn begin_attack(&mut self, index: usize, attack_started_ns: u64, now: u64) {
        self.pending -= 1;
        let client = &mut self.clients[index];
        client.stage = Stage::Attacking;
        client.attack_started_ns = attack_started_ns;
        client.next_ns = now + self.attack.byte_interval_ns;
        self.totals.counts.connects_ok += 1;
        self.totals
            .handshake
            .saturating_record(latency_us(client.conn.started_ns, now));
        self.delta.connects_ok += 1;
        self.delta.opened += 1;
        let Some(kind) = client.kind else {
            return;
        };
        self.attack_totals.kind(kind).started += 1;
        match kind {
            Kind::Trickle => client.next_ns = now,
            // A non-reader keeps its default receive buffer: shrunk, it would
            // pin the TCP window so small (window scaling is fixed at the
            // SYN) that the server's backlog, and the answer behind it,
            // arrive at 8 KiB per delayed ACK once it reads.
            Kind::Nonreader => {}
            Kind::Oversized => {
                let mask = self.next_mask();
                self.out = script::oversized_start(self.attack.oversize_bytes, mask);
                self.send_out(index, now);
            }
            Kind::Slowloris | Kind::Flood | Kind::All => {}
        }
    }

    /// Reads everything there is, decoding as it goes.
    fn read_frames(&mut self, index: usize, now: u64) {
        loop {
            let client = &mut self.clients[index];
            if client.stage != Stage::Attacking {
                return;
            }
            let n = match read_once(&mut client.conn, &mut self.read_buf) {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(reason) => return self.answered(index, reason, now),
            };
            if client.kind == Some(Kind::Slowloris) {
                self.read_http_answer(index, n, now);
            } else {
                self.decode(index, n, now);
            }
            self.send_out(index, now);
        }
    }

    /// slowloris: whatever the server says before closing is an HTTP answer.
    fn read_http_answer(&mut self, index: usize, n: usize, now: u64) {
        let client = &mut self.clients[index];
        if client.head.len() < HEAD_MAX_BYTES {
            client.head.extend_from_slice(&self.read_buf[..n]);
        }
        match script::http_status(&client.head) {
            Some(Ok(code)) => self.answered(index, ErrorReason::HttpStatus(code), now),
            Some(Err(())) => self.answered(index, ErrorReason::BadHandshake, now),
            None => {}
        }
    }

    fn decode(&mut self, index: usize, len: usize, now: u64) {
        let mut offset = 0;
        while offset < len {
            let client = &mut self.clients[index];
            let kind = client.kind;
            let decoded = client
                .conn
                .decoder
                .decode(&mut self.read_buf[offset..len], &self.limits);
            let (used, message) = match decoded {
                Ok(decoded) => decoded,
                Err(_) => return self.answered(index, ErrorReason::Protocol, now),
            };
            offset += used;
            // What matters of the message, owned: it borrows the decoder.
            let seen = match message {
                Some(Message::Close(frame)) => Seen::Close(frame.code),
                Some(Message::Ping(payload)) => Seen::Ping(payload.to_vec()),
                Some(Message::Text(payload) | Message::Binary(payload)) => match kind {
                    None => Seen::Echo(stamp::read(payload)),
                    Some(Kind::Flood) => Seen::Flood(script::classify_flood_reply(payload)),
                    Some(_) => Seen::Nothing,
                },
                Some(Message::Pong(_)) => Seen::Nothing,
                None if used == 0 => return,
                None => Seen::Nothing,
            };
            match seen {
                Seen::Close(code) => {
                    return self.answered(index, ErrorReason::ServerClose(code), now);
                }
                Seen::Ping(payload) => {
                    let mask = self.next_mask();
                    write_frame(&mut self.out, OpCode::Pong, &payload, Some(mask));
                }
                Seen::Echo(intended) => self.on_control_echo(intended, now),
                Seen::Flood(reply) => {
                    let totals = self.attack_totals.kind(Kind::Flood);
                    match reply {
                        FloodReply::Answered => totals.answered += 1,
                        FloodReply::Throttled => totals.throttled += 1,
                        FloodReply::Refused => totals.refused_other += 1,
                    }
                }
                Seen::Nothing => {}
            }
        }
    }

    fn on_control_echo(&mut self, intended: Option<u64>, now: u64) {
        let Some(intended) = intended else {
            return;
        };
        let control = &mut self.attack_totals.control;
        control.received += 1;
        self.delta.received += 1;
        self.totals.counts.received_total += 1;
        let latency = latency_us(intended, now);
        let window = self.window.expect("echoes come after go");
        if intended < window.start_ns {
            control.baseline.0.saturating_record(latency);
        } else {
            control.during.0.saturating_record(latency);
            self.totals.latency.saturating_record(latency);
            if now < window.end_ns {
                self.totals.counts.received_in_window += 1;
            }
        }
    }

    fn send_out(&mut self, index: usize, now: u64) {
        if self.out.is_empty() {
            return;
        }
        let client = &mut self.clients[index];
        if !matches!(client.stage, Stage::Upgrading | Stage::Attacking) {
            self.out.clear();
            return;
        }
        if let Err(reason) = client.conn.send(&mut self.out) {
            self.on_write_error(index, reason, now);
        }
    }

    /// A write failed: the server is gone. Read what it left (its close
    /// frame, if any) before booking the write error.
    fn on_write_error(&mut self, index: usize, reason: ErrorReason, now: u64) {
        let client = &mut self.clients[index];
        if client.stage == Stage::Upgrading {
            return self.fail_upgrade(index, reason);
        }
        client.reading = true;
        self.read_frames(index, now);
        if self.clients[index].stage == Stage::Attacking {
            self.answered(index, reason, now);
        }
    }

    /// The server answered attacker `index` with `reason`: book and close.
    fn answered(&mut self, index: usize, reason: ErrorReason, _turn: u64) {
        let client = &mut self.clients[index];
        if client.stage != Stage::Attacking {
            return;
        }
        // The clock now, not the loop turn's: an answer can come within one turn.
        let now = now_ns();
        client.stage = Stage::Done;
        client.conn.close();
        self.delta.closed += 1;
        let (kind, attack_started_ns) = (client.kind, client.attack_started_ns);
        self.book(kind, reason.key());
        match kind {
            None => *self.totals.errors.entry(reason.key()).or_default() += 1,
            Some(kind) => {
                let waited = latency_us(attack_started_ns, now);
                self.attack_totals
                    .kind(kind)
                    .answer_time
                    .0
                    .saturating_record(waited);
                self.delta.errors += 1;
            }
        }
    }

    /// Counts `key` as a failure of the control connection (`kind` None)
    /// or as an outcome of an attacker of `kind`.
    fn book(&mut self, kind: Option<Kind>, key: String) {
        let counts = match kind {
            None => &mut self.attack_totals.control.failures,
            Some(kind) => &mut self.attack_totals.kind(kind).outcomes,
        };
        *counts.entry(key).or_default() += 1;
    }

    /// Connecting or upgrading failed: the attack never began.
    fn fail_upgrade(&mut self, index: usize, reason: ErrorReason) {
        let client = &mut self.clients[index];
        if !client.is_pending() {
            return;
        }
        self.pending -= 1;
        client.stage = Stage::Done;
        client.conn.close();
        self.totals.counts.connects_failed += 1;
        self.delta.connects_failed += 1;
        *self.totals.errors.entry(reason.key()).or_default() += 1;
        let kind = client.kind;
        let key = match kind {
            None => reason.key(),
            Some(_) => format!("upgrade_{}", reason.key()),
        };
        self.book(kind, key);
    }

    fn next_mask(&mut self) -> [u8; 4] {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng as u32).to_ne_bytes()
    }

    /// Books what never got an answer and closes everything.
    fn finish(mut self) -> Totals {
        let mut held = 0;
        for index in 0..self.clients.len() {
            let client = &mut self.clients[index];
            match client.stage {
                Stage::Attacking => {
                    held += 1;
                    client.conn.close();
                    self.delta.closed += 1;
                    if let kind @ Some(_) = client.kind {
                        self.book(kind, "no_answer".into());
                    }
                }
                Stage::Connecting | Stage::Upgrading => {
                    self.fail_upgrade(index, ErrorReason::Timeout);
                }
                Stage::Idle => {
                    if let kind @ Some(_) = client.kind {
                        self.book(kind, "not_started".into());
                    }
                }
                Stage::Done => {}
            }
        }
        self.control.flush(&mut self.delta);
        self.totals.counts.conns_planned = self.clients.len() as u64;
        self.totals.counts.held_at_end = held;
        self.totals.attack = self.attack_totals;
        self.totals
    }
}

/// A decoded server message, as far as an attacker cares.
enum Seen {
    Close(Option<u16>),
    Ping(Vec<u8>),
    /// Control: the echo's stamp (None: not ours).
    Echo(Option<u64>),
    Flood(FloodReply),
    Nothing,
}
