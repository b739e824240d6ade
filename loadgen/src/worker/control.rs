//! What a worker process's threads and its controller share: the window
//! (set once), a stop flag, and progress counters the threads flush into a
//! few times a second. This is the control plane; the event loops touch it
//! only on their housekeeping tick.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cli::CommonArgs;
use crate::stats::new_histogram;

/// Absolute monotonic times (ns) of a run's phases.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// Traffic starts (warmup begins; connect: hold begins).
    pub go_ns: u64,
    /// Measurement starts.
    pub start_ns: u64,
    /// Measurement ends; no new messages after this.
    pub end_ns: u64,
    /// Replies to messages sent in the window are awaited until this.
    pub drain_end_ns: u64,
}

impl Window {
    /// Warmup from `go_ns`, then `--duration` measured, then `drain_ns`.
    pub fn measured(go_ns: u64, common: &CommonArgs, drain_ns: u64) -> Window {
        let start_ns = go_ns + common.warmup.as_ns();
        let end_ns = start_ns + common.duration.as_ns();
        Window {
            go_ns,
            start_ns,
            end_ns,
            drain_end_ns: end_ns + drain_ns,
        }
    }

    pub fn length_s(&self) -> f64 {
        (self.end_ns - self.start_ns) as f64 / 1e9
    }
}

/// Cumulative progress of one worker process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub open: u64,
    pub connects_ok: u64,
    pub connects_failed: u64,
    pub received: u64,
    pub errors: u64,
    pub threads_ready: u64,
}

impl Progress {
    pub fn add(&mut self, other: &Progress) {
        self.open += other.open;
        self.connects_ok += other.connects_ok;
        self.connects_failed += other.connects_failed;
        self.received += other.received;
        self.errors += other.errors;
        self.threads_ready += other.threads_ready;
    }
}

pub struct Control {
    window: OnceLock<Window>,
    stop: AtomicBool,
    open: AtomicU64,
    connects_ok: AtomicU64,
    connects_failed: AtomicU64,
    received: AtomicU64,
    errors: AtomicU64,
    threads_ready: AtomicU64,
    /// Latencies since the controller last looked (for the progress p99).
    interval: Mutex<Histogram<u64>>,
}

/// A thread's unflushed progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProgressDelta {
    pub opened: u64,
    pub closed: u64,
    pub connects_ok: u64,
    pub connects_failed: u64,
    pub received: u64,
    pub errors: u64,
}

impl Control {
    pub fn new() -> Control {
        Control {
            window: OnceLock::new(),
            stop: AtomicBool::new(false),
            open: AtomicU64::new(0),
            connects_ok: AtomicU64::new(0),
            connects_failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            threads_ready: AtomicU64::new(0),
            interval: Mutex::new(new_histogram()),
        }
    }

    pub fn set_window(&self, window: Window) {
        let _ = self.window.set(window);
    }

    pub fn window(&self) -> Option<Window> {
        self.window.get().copied()
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub fn mark_ready(&self) {
        // Release: the counts flushed before this are visible to whoever sees it.
        self.threads_ready.fetch_add(1, Ordering::Release);
    }

    pub fn flush(&self, delta: &mut ProgressDelta) {
        let add = |counter: &AtomicU64, value: u64| {
            if value != 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&self.open, delta.opened);
        if delta.closed != 0 {
            self.open.fetch_sub(delta.closed, Ordering::Relaxed);
        }
        add(&self.connects_ok, delta.connects_ok);
        add(&self.connects_failed, delta.connects_failed);
        add(&self.received, delta.received);
        add(&self.errors, delta.errors);
        *delta = ProgressDelta::default();
    }

    pub fn publish_interval(&self, histogram: &mut Histogram<u64>) {
        if histogram.is_empty() {
            return;
        }
        if let Ok(mut shared) = self.interval.lock() {
            let _ = shared.add(&*histogram);
        }
        histogram.reset();
    }

    pub fn take_interval(&self) -> Histogram<u64> {
        match self.interval.lock() {
            Ok(mut shared) => {
                let taken = shared.clone();
                shared.reset();
                taken
            }
            Err(_) => new_histogram(),
        }
    }

    pub fn progress(&self) -> Progress {
        let threads_ready = self.threads_ready.load(Ordering::Acquire);
        Progress {
            open: self.open.load(Ordering::Relaxed),
            connects_ok: self.connects_ok.load(Ordering::Relaxed),
            connects_failed: self.connects_failed.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            threads_ready,
        }
    }
}
