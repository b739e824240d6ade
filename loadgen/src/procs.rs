//! `--procs N`: worker processes of this same binary, and the line protocol
//! between them and their parent.
//!
//! A child gets the parent's arguments plus `--child INDEX/COUNT` and works
//! out its own share (connections, rate, source-address slice). It writes
//! JSON lines to stdout (`progress` each second, `ready` once its connections
//! are up, `result` at the end, with histograms as base64 HdrHistogram V2)
//! and reads one line from stdin: the window, in CLOCK_MONOTONIC ns, which is
//! the same clock in every process. When stdin closes it stops, so children
//! never outlive a parent that died.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::cli::{ChildSlot, Scenario};
use crate::stats::{Totals, WireTotals, histogram_from_base64, histogram_to_base64, new_histogram};
use crate::sys::{self, now_ns};
use crate::worker::control::{Progress, Window};
use crate::worker::{LocalWorkers, thread_plans};

const PROGRESS_EVERY_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChildMessage {
    Progress {
        progress: Progress,
        interval: String,
    },
    Ready {
        threads: usize,
    },
    Result {
        totals: Box<WireTotals>,
    },
}

enum ChildEvent {
    Message(ChildMessage),
    Exited,
}

/// The worker processes, as their parent sees them.
pub struct ChildWorkers {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    events: Receiver<(usize, ChildEvent)>,
    latest: Vec<Progress>,
    ready: Vec<bool>,
    exited: Vec<bool>,
    results: Vec<Option<Totals>>,
    threads: usize,
    interval: Histogram<u64>,
}

impl ChildWorkers {
    /// Starts `count` copies of this binary with `args` (the scenario and
    /// its flags) plus `--child INDEX/COUNT`.
    pub fn spawn(count: u32, args: Vec<OsString>) -> anyhow::Result<ChildWorkers> {
        let exe = std::env::current_exe().context("cannot find own executable")?;
        let (sender, events) = mpsc::channel();
        let mut children = Vec::new();
        let mut stdins = Vec::new();
        for index in 0..count {
            let mut child = Command::new(&exe)
                .args(&args)
                .arg("--child")
                .arg(format!("{index}/{count}"))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .with_context(|| format!("cannot start worker process {index}"))?;
            let stdout = child.stdout.take().expect("stdout is piped");
            stdins.push(child.stdin.take());
            let sender = sender.clone();
            let slot = index as usize;
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    match serde_json::from_str::<ChildMessage>(&line) {
                        Ok(message) => {
                            if sender.send((slot, ChildEvent::Message(message))).is_err() {
                                return;
                            }
                        }
                        Err(e) => eprintln!("loadgen: worker {slot} said {line:?}: {e}"),
                    }
                }
                let _ = sender.send((slot, ChildEvent::Exited));
            });
            children.push(child);
        }
        let n = count as usize;
        Ok(ChildWorkers {
            children,
            stdins,
            events,
            latest: vec![Progress::default(); n],
            ready: vec![false; n],
            exited: vec![false; n],
            results: (0..n).map(|_| None).collect(),
            threads: 0,
            interval: new_histogram(),
        })
    }

    fn handle(&mut self, index: usize, event: ChildEvent) {
        match event {
            ChildEvent::Message(ChildMessage::Progress { progress, interval }) => {
                self.latest[index] = progress;
                if let Ok(h) = histogram_from_base64(&interval) {
                    let _ = self.interval.add(&h);
                }
            }
            ChildEvent::Message(ChildMessage::Ready { threads }) => {
                self.ready[index] = true;
                self.threads += threads;
            }
            ChildEvent::Message(ChildMessage::Result { totals }) => {
                match Totals::from_wire(&totals) {
                    Ok(totals) => self.results[index] = Some(totals),
                    Err(e) => eprintln!("loadgen: worker {index} sent a bad result: {e}"),
                }
            }
            ChildEvent::Exited => self.exited[index] = true,
        }
    }

    /// Takes in whatever the children said since the last call.
    pub fn pump(&mut self) {
        while let Ok((index, event)) = self.events.try_recv() {
            self.handle(index, event);
        }
    }

    pub fn progress(&mut self) -> Progress {
        self.pump();
        let mut sum = Progress::default();
        for p in &self.latest {
            sum.add(p);
        }
        sum
    }

    pub fn take_interval(&mut self) -> Histogram<u64> {
        self.pump();
        let taken = self.interval.clone();
        self.interval.reset();
        taken
    }

    /// All children ready, or gone (a dead child must not stall the run).
    pub fn ready(&mut self) -> bool {
        self.pump();
        self.ready.iter().zip(&self.exited).all(|(r, e)| *r || *e)
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn go(&mut self, window: Window) {
        let line = serde_json::to_string(&window).expect("window serializes") + "\n";
        for (index, stdin) in self.stdins.iter_mut().enumerate() {
            if let Some(pipe) = stdin
                && pipe
                    .write_all(line.as_bytes())
                    .and_then(|_| pipe.flush())
                    .is_err()
            {
                eprintln!("loadgen: worker {index} is gone");
            }
        }
    }

    /// Closing stdin tells children to stop early.
    pub fn stop(&mut self) {
        for stdin in &mut self.stdins {
            stdin.take();
        }
    }

    /// Collects every child's result (waiting at most until `deadline_ns`) and merges.
    pub fn finish(mut self, deadline_ns: u64) -> anyhow::Result<Totals> {
        loop {
            self.pump();
            let pending = self
                .results
                .iter()
                .zip(&self.exited)
                .any(|(r, e)| r.is_none() && !e);
            if !pending {
                break;
            }
            let now = now_ns();
            if now >= deadline_ns {
                eprintln!("loadgen: gave up waiting for worker results");
                break;
            }
            let wait = Duration::from_nanos((deadline_ns - now).min(100_000_000));
            match self.events.recv_timeout(wait) {
                Ok((index, event)) => self.handle(index, event),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        self.stop();
        for (index, child) in self.children.iter_mut().enumerate() {
            if self.results[index].is_none() {
                // We started it; end it by its own handle (its PID) if it hangs.
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let mut totals = Totals::default();
        let mut missing = 0u64;
        for result in &self.results {
            match result {
                Some(part) => totals.merge(part),
                None => missing += 1,
            }
        }
        if missing == self.results.len() as u64 {
            bail!("no worker process returned a result");
        }
        if missing > 0 {
            *totals.errors.entry("worker_lost".into()).or_default() += missing;
        }
        Ok(totals)
    }
}

/// Writes one protocol line to stdout.
fn emit(message: &ChildMessage) {
    let line = serde_json::to_string(message).expect("messages serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn emit_progress(workers: &LocalWorkers) {
    emit(&ChildMessage::Progress {
        progress: workers.progress(),
        interval: histogram_to_base64(&workers.take_interval()),
    });
}

/// Sleeps until `deadline_ns`, sending progress every second meanwhile.
fn tick_until(workers: &LocalWorkers, deadline_ns: u64, next_progress: &mut u64) {
    loop {
        let now = now_ns();
        if now >= deadline_ns {
            return;
        }
        if now >= *next_progress {
            emit_progress(workers);
            *next_progress = now + PROGRESS_EVERY_NS;
        }
        sys::sleep_until(deadline_ns.min(*next_progress));
    }
}

/// Main of a worker process (`--child INDEX/COUNT`).
pub fn run_child(scenario: &Scenario, slot: ChildSlot) -> anyhow::Result<()> {
    sys::raise_file_limit();
    let mut workers = LocalWorkers::start(thread_plans(scenario, slot, true))?;
    let (sender, windows) = mpsc::channel::<Window>();
    let control = workers.control();
    std::thread::spawn(move || {
        let mut lines = std::io::stdin().lock().lines();
        if let Some(Ok(line)) = lines.next()
            && let Ok(window) = serde_json::from_str::<Window>(&line)
        {
            let _ = sender.send(window);
        }
        // Parent closed our stdin (done, or dead): stop.
        for _ in lines.by_ref() {}
        control.request_stop();
    });
    let mut said_ready = false;
    let mut next_progress = now_ns() + PROGRESS_EVERY_NS;
    let window = loop {
        if !said_ready && workers.ready() {
            // Up-to-date counts first: the parent reads them when all are ready.
            emit_progress(&workers);
            emit(&ChildMessage::Ready {
                threads: workers.threads(),
            });
            said_ready = true;
        }
        match windows.recv_timeout(Duration::from_millis(50)) {
            Ok(window) => break Some(window),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break None,
        }
        if now_ns() >= next_progress {
            emit_progress(&workers);
            next_progress = now_ns() + PROGRESS_EVERY_NS;
        }
    };
    match window {
        Some(window) => {
            workers.go(window);
            tick_until(&workers, window.start_ns, &mut next_progress);
            workers.sample_cpu_start();
            tick_until(&workers, window.end_ns, &mut next_progress);
            workers.sample_cpu_end();
        }
        None => workers.stop(),
    }
    let totals = workers.finish();
    emit(&ChildMessage::Result {
        totals: Box::new(totals.to_wire()),
    });
    Ok(())
}
