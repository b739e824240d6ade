//! The churn scenario inside a worker thread's event loop: close and reopen
//! connections at the thread's share of the rate, or drop all of them and
//! reopen all at once (storm). Reopening reuses the loop's connect path, so
//! handshake timing, timeouts and failure reasons are the same as `connect`.

use ringgate_wscodec::{OpCode, write_frame};

use super::Worker;
use crate::churn::{ChurnPlan, ChurnTotals, STORMS_MAX};
use crate::schedule::Schedule;
use crate::stats::ErrorReason;
use crate::worker::conn::Phase;
use crate::worker::control::Window;

/// Close code loadgen sends when it drops a connection on purpose.
const CLOSE_NORMAL: u16 = 1000;

pub struct ChurnState {
    plan: ChurnPlan,
    window: Option<Window>,
    /// Rate mode: the schedule of close-and-reopen turns, how many are done, and where it stops.
    schedule: Option<Schedule>,
    done: u64,
    end: u64,
    /// Storm mode: when the next storm begins, and the storm still reconnecting.
    next_storm_ns: u64,
    active_storm: Option<usize>,
    pub totals: ChurnTotals,
}

impl ChurnState {
    pub fn new(plan: ChurnPlan) -> ChurnState {
        ChurnState {
            plan,
            window: None,
            schedule: None,
            done: 0,
            end: 0,
            next_storm_ns: u64::MAX,
            active_storm: None,
            totals: ChurnTotals::default(),
        }
    }

    /// Was a connection that started at `started_ns` (re)opened by churn?
    fn is_reconnect(&self, started_ns: u64) -> bool {
        self.window.is_some_and(|w| started_ns >= w.start_ns)
    }

    /// A handshake finished; books it if it was a reconnect.
    pub fn on_open(&mut self, started_ns: u64, handshake_us: u64) {
        if self.is_reconnect(started_ns) {
            self.totals.reconnects_ok += 1;
            self.totals.handshake.0.saturating_record(handshake_us);
        }
    }

    /// A connection attempt failed; books it if it was a reconnect.
    pub fn on_connect_failed(&mut self, started_ns: u64, reason: ErrorReason) {
        if self.is_reconnect(started_ns) {
            self.totals.reconnects_failed += 1;
            *self.totals.failures.entry(reason.key()).or_default() += 1;
        }
    }
}

impl Worker {
    /// Traffic starts: plan the churn turns (rate) or the first storm.
    pub(super) fn begin_churn(&mut self, window: Window) {
        let conns = self.conns.len();
        let Some(state) = self.churn.as_mut() else {
            return;
        };
        state.window = Some(window);
        match state.plan.storm_every_ns {
            Some(_) => state.next_storm_ns = window.start_ns,
            None if state.plan.rate > 0.0 && conns > 0 => {
                let schedule = Schedule::new(window.start_ns, state.plan.rate);
                state.end = schedule.count_before(window.end_ns);
                state.schedule = Some(schedule);
            }
            None => {}
        }
    }

    /// Does the churn that is due; returns when more is.
    pub(super) fn churn_due(&mut self, now: u64) -> Option<u64> {
        let state = self.churn.as_ref()?;
        if state.plan.storm_every_ns.is_some() {
            return self.storm_due(now);
        }
        let schedule = state.schedule?;
        let due = schedule.due(now).min(state.end);
        let conns = self.conns.len() as u64;
        loop {
            let state = self.churn.as_mut().expect("churn scenario");
            if state.done >= due {
                break;
            }
            if self.pending >= self.plan.max_pending {
                // The backlog goes out as handshakes finish (each is an event).
                return None;
            }
            let index = (state.done % conns) as usize;
            state.done += 1;
            self.reopen(index, now);
        }
        let state = self.churn.as_ref().expect("churn scenario");
        (due < state.end).then(|| schedule.intended_ns(due))
    }

    /// Closes connection `index` if open, then starts it again. A connection
    /// still reconnecting from an earlier turn is left alone (`skipped`).
    fn reopen(&mut self, index: usize, now: u64) {
        match self.conns[index].phase {
            Phase::Connecting | Phase::Handshaking => {
                if let Some(state) = self.churn.as_mut() {
                    state.totals.skipped += 1;
                }
                return;
            }
            Phase::Open => self.close_on_purpose(index),
            Phase::Idle | Phase::Closed => {}
        }
        self.pending_low = self.pending_low.min(index);
        if let Some(state) = self.churn.as_mut() {
            state.totals.reconnects_attempted += 1;
        }
        self.open_connection(index, now);
    }

    /// Sends close 1000 (best effort) and drops the socket without waiting
    /// for the answer, as a client leaving abruptly does.
    fn close_on_purpose(&mut self, index: usize) {
        let mask = self.engine.next_mask();
        let engine = &mut self.engine;
        let conn = &mut self.conns[index];
        let mut frame = Vec::with_capacity(8);
        write_frame(
            &mut frame,
            OpCode::Close,
            &CLOSE_NORMAL.to_be_bytes(),
            Some(mask),
        );
        let _ = conn.send(&mut frame);
        engine.delta.closed += 1;
        engine.forget_outstanding(conn.outstanding);
        conn.outstanding = 0;
        conn.close();
        if let Some(state) = self.churn.as_mut() {
            state.totals.closes += 1;
        }
    }

    /// Storm mode: at each storm's time drop everything, then reopen all
    /// connections as fast as `--max-pending` allows; note when the last
    /// one is up (or failed).
    fn storm_due(&mut self, now: u64) -> Option<u64> {
        let state = self.churn.as_mut()?;
        let window = state.window?;
        if state.active_storm.is_none()
            && now >= state.next_storm_ns
            && state.next_storm_ns < window.end_ns
            && state.totals.storm_started_ns.len() < STORMS_MAX
        {
            let every = state.plan.storm_every_ns.unwrap_or(u64::MAX);
            state.next_storm_ns = state.next_storm_ns.saturating_add(every);
            state.active_storm = Some(state.totals.storm_started_ns.len());
            state.totals.storm_started_ns.push(now);
            state.totals.storm_settled_ns.push(now);
            self.drop_all_for_storm();
            self.next_to_start = 0;
            self.pending_low = 0;
        }
        let state = self.churn.as_ref()?;
        let Some(storm) = state.active_storm else {
            return Some(state.next_storm_ns);
        };
        let attempts_before = self.next_to_start;
        let wake = self.start_connects(now);
        let state = self.churn.as_mut()?;
        state.totals.reconnects_attempted += (self.next_to_start - attempts_before) as u64;
        if self.next_to_start == self.conns.len() && self.pending == 0 {
            state.totals.storm_settled_ns[storm] = now;
            state.active_storm = None;
            return Some(state.next_storm_ns);
        }
        wake
    }

    fn drop_all_for_storm(&mut self) {
        for index in 0..self.conns.len() {
            match self.conns[index].phase {
                Phase::Open => self.close_on_purpose(index),
                Phase::Connecting | Phase::Handshaking => {
                    // Still reconnecting from the last storm: abandoned, not failed.
                    self.pending -= 1;
                    self.conns[index].close();
                }
                Phase::Idle | Phase::Closed => {}
            }
        }
    }
}
