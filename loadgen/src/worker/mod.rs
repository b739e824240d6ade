//! A worker process: its share of the connections split over threads (one
//! per --cpus entry), and the handle its controller drives them through.
//!
//! Hot path: `thread` (event loop), `conn` (per-connection state),
//! `frames` (bytes to messages) and `engine` (what to do with each message).
//! Control plane: `control` (window, stop flag, progress counters).

pub mod conn;
pub mod control;
pub mod engine;
pub mod frames;
pub mod pubsub;
pub mod socket;
pub mod thread;

use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use hdrhistogram::Histogram;

use crate::attack::AttackPlan;
use crate::cli::{ChildSlot, PubSubArgs, Scenario};
use crate::pubsub::topics::{self, Ownership, Progression};
use crate::source::{parse_cpus, parse_sources, share, slice_for_process};
use crate::stats::Totals;
use crate::sys::{self, CpuTime};
use control::{Control, Progress, Window};
use engine::Traffic;
use pubsub::PubSubPlan;
use thread::ThreadPlan;

/// The thread plans of worker process `slot` of a run.
pub fn thread_plans(scenario: &Scenario, slot: ChildSlot, track_interval: bool) -> Vec<ThreadPlan> {
    if let Scenario::Capacity(capacity) = scenario {
        // Each capacity step runs its target scenario.
        return thread_plans(&capacity.target.scenario(), slot, track_interval);
    }
    let common = scenario.common();
    let total_conns = scenario.conns();
    let process_conns = share(total_conns, u64::from(slot.count), u64::from(slot.index));
    let sources: Arc<[IpAddr]> = match &common.src {
        Some(text) => {
            let all = parse_sources(text).expect("validated at start-up");
            slice_for_process(&all, slot.index, slot.count).into()
        }
        None => Arc::from(Vec::new()),
    };
    let cpus: Vec<Option<usize>> = match &common.cpus {
        Some(text) => parse_cpus(text)
            .expect("validated at start-up")
            .into_iter()
            .map(Some)
            .collect(),
        None => vec![None],
    };
    let threads = (cpus.len() as u64).min(process_conns).max(1);
    let seed = sys::now_ns() ^ (u64::from(std::process::id()) << 32);
    let host: Arc<str> = common.url.host.as_str().into();
    let path: Arc<str> = common.url.path.as_str().into();
    (0..threads)
        .map(|t| {
            let conns = share(process_conns, threads, t);
            let fraction = conns as f64 / total_conns as f64;
            let mut pubsub = None;
            let mut churn = None;
            let mut attack = None;
            let (traffic, connect_rate, size, binary) = match scenario {
                Scenario::Echo(echo) => {
                    let traffic = match (echo.rate, echo.inflight) {
                        (Some(rate), _) => Traffic::OpenLoop {
                            rate: rate.0 * fraction,
                        },
                        (None, inflight) => Traffic::ClosedLoop {
                            inflight: inflight.unwrap_or(1),
                        },
                    };
                    (traffic, 0.0, echo.size as usize, echo.binary)
                }
                Scenario::Connect(connect) => {
                    let traffic = match connect.ping_interval {
                        Some(interval) => Traffic::Ping {
                            interval_ns: interval.as_ns(),
                        },
                        None => Traffic::Idle,
                    };
                    (traffic, connect.rate.0 * fraction, 0, false)
                }
                Scenario::Capacity(_) => unreachable!("capacity runs its target, above"),
                Scenario::Pubsub(args) => {
                    let ownership = Ownership {
                        procs: slot.count,
                        proc_index: slot.index,
                        threads: threads as u32,
                        thread: t as u32,
                    };
                    let plan = pubsub_plan(args, slot, ownership);
                    let traffic = Traffic::PubSub { rate: plan.rate };
                    pubsub = Some(plan);
                    (traffic, 0.0, 0, false)
                }
                Scenario::Churn(args) => {
                    churn = Some(crate::churn::ChurnPlan::of(args, fraction));
                    (Traffic::Idle, 0.0, 0, false)
                }
                Scenario::Attack(args) => {
                    attack = Some(AttackPlan::of(args, slot, t, threads, conns));
                    (Traffic::Idle, 0.0, 0, false)
                }
            };
            ThreadPlan {
                target: common.url.addr,
                host: Arc::clone(&host),
                path: Arc::clone(&path),
                sources: Arc::clone(&sources),
                first_index: t,
                stride: threads,
                conns: conns as usize,
                connect_rate,
                max_pending: common.max_pending.max(1) as usize,
                timeout_ns: common.timeout.as_ns(),
                cpu: cpus[t as usize],
                seed: seed.wrapping_add(t.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                traffic,
                size,
                binary,
                track_interval,
                pubsub,
                churn,
                attack,
            }
        })
        .collect()
}

/// The pubsub part of thread `ownership.thread` of process `slot`: its
/// users (process-local connection `thread + j * threads` is global user
/// `process_first + thread + j * threads`), and the rate of the topics it owns.
fn pubsub_plan(args: &PubSubArgs, slot: ChildSlot, ownership: Ownership) -> PubSubPlan {
    let procs = u64::from(slot.count);
    let process_first: u64 = (0..u64::from(slot.index))
        .map(|p| share(args.users, procs, p))
        .sum();
    let owned = ownership.owned(args.topics);
    let share_of_rate =
        topics::mass(args.dist, owned) / topics::mass(args.dist, Progression::all(args.topics));
    PubSubPlan {
        topics: args.topics,
        subs_per_user: args.subs_per_user,
        distribution: args.dist,
        first_user: process_first + u64::from(ownership.thread),
        user_stride: u64::from(ownership.threads),
        ownership,
        rate: args.rate.0 * share_of_rate,
        data_bytes: args.size as usize,
        seed: args.seed,
    }
}

/// The threads of this process, running.
pub struct LocalWorkers {
    control: Arc<Control>,
    handles: Vec<JoinHandle<Totals>>,
    cpu_at_start: Option<CpuTime>,
    cpu_in_window: CpuTime,
}

impl LocalWorkers {
    pub fn start(plans: Vec<ThreadPlan>) -> std::io::Result<LocalWorkers> {
        let control = Arc::new(Control::new());
        let mut handles = Vec::with_capacity(plans.len());
        for (index, plan) in plans.into_iter().enumerate() {
            let control = Arc::clone(&control);
            let handle = std::thread::Builder::new()
                .name(format!("loadgen-{index}"))
                .spawn(move || thread::run(plan, control))?;
            handles.push(handle);
        }
        Ok(LocalWorkers {
            control,
            handles,
            cpu_at_start: None,
            cpu_in_window: CpuTime::default(),
        })
    }

    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    pub fn control(&self) -> Arc<Control> {
        Arc::clone(&self.control)
    }

    pub fn progress(&self) -> Progress {
        self.control.progress()
    }

    pub fn take_interval(&self) -> Histogram<u64> {
        self.control.take_interval()
    }

    pub fn ready(&self) -> bool {
        self.control.progress().threads_ready >= self.handles.len() as u64
    }

    pub fn go(&self, window: Window) {
        self.control.set_window(window);
    }

    pub fn stop(&self) {
        self.control.request_stop();
    }

    /// Call at the window's start and end: this process's CPU over the window.
    pub fn sample_cpu_start(&mut self) {
        self.cpu_at_start = Some(sys::own_cpu());
    }

    pub fn sample_cpu_end(&mut self) {
        if let Some(start) = self.cpu_at_start {
            self.cpu_in_window = sys::own_cpu().since(start);
        }
    }

    /// Waits for the threads (they stop by themselves after the drain) and merges.
    pub fn finish(self) -> Totals {
        let mut totals = Totals::default();
        for handle in self.handles {
            match handle.join() {
                Ok(part) => totals.merge(&part),
                Err(_) => {
                    *totals.errors.entry("worker_panicked".into()).or_default() += 1;
                }
            }
        }
        totals.cpu = self.cpu_in_window;
        totals
    }
}
