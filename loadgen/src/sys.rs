//! The operating-system facts loadgen reads and the few knobs it turns.
//!
//! The only `unsafe` in the crate lives here (two libc calls that neither
//! rustix nor socket2 wrap: `getrusage` and `IP_BIND_ADDRESS_NO_PORT`).

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use rustix::thread::{CpuSet, sched_setaffinity};
use rustix::time::{
    ClockId, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, clock_gettime,
    timerfd_create, timerfd_settime,
};
use serde::{Deserialize, Serialize};

/// CLOCK_MONOTONIC in nanoseconds. It is system-wide, so worker processes
/// and their parent agree on it (std's `Instant` is opaque across processes).
pub fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Wall-clock seconds since the Unix epoch, for the report's `started_at`.
pub fn unix_time_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sleeps until the monotonic clock reads `deadline_ns` (returns at once if past).
pub fn sleep_until(deadline_ns: u64) {
    let now = now_ns();
    if deadline_ns > now {
        std::thread::sleep(std::time::Duration::from_nanos(deadline_ns - now));
    }
}

/// User and system CPU time, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTime {
    pub user_us: u64,
    pub sys_us: u64,
}

impl CpuTime {
    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            sys_us: self.sys_us.saturating_sub(earlier.sys_us),
        }
    }

    pub fn add(&mut self, other: CpuTime) {
        self.user_us += other.user_us;
        self.sys_us += other.sys_us;
    }
}

/// CPU time of this whole process (all threads), from `getrusage(RUSAGE_SELF)`.
pub fn own_cpu() -> CpuTime {
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable, correctly typed out-parameter for
    // the duration of the call; RUSAGE_SELF needs nothing else.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return CpuTime::default();
    }
    let us = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000 + tv.tv_usec as u64;
    CpuTime {
        user_us: us(usage.ru_utime),
        sys_us: us(usage.ru_stime),
    }
}

/// Lets `bind(addr, 0)` leave the port choice to `connect`, so one source
/// address can reuse a port towards different destinations.
pub fn set_bind_address_no_port(socket: &impl AsFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    let fd = socket.as_fd().as_raw_fd();
    // SAFETY: `fd` is borrowed from a live socket for this call; the option
    // value points to a c_int that outlives the call and the length matches.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft open-file limit to the hard one; returns the new soft limit.
pub fn raise_file_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum;
    if limit.current != hard {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: hard,
                maximum: hard,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Pins the calling thread to `cpu`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set).map_err(io::Error::from)
}

/// A timerfd on CLOCK_MONOTONIC, armed with absolute deadlines; lets the
/// event loop wake at microsecond precision (epoll's own timeout is in ms).
pub struct Timer {
    fd: OwnedFd,
    armed_ns: u64,
}

impl Timer {
    pub fn new() -> io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        Ok(Timer { fd, armed_ns: 0 })
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Arms the timer for `deadline_ns` unless it already is.
    pub fn arm(&mut self, deadline_ns: u64) -> io::Result<()> {
        if deadline_ns == self.armed_ns {
            return Ok(());
        }
        let deadline_ns = deadline_ns.max(1);
        let value = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: (deadline_ns / 1_000_000_000) as i64,
                tv_nsec: (deadline_ns % 1_000_000_000) as i64,
            },
        };
        timerfd_settime(&self.fd, TimerfdTimerFlags::ABSTIME, &value)?;
        self.armed_ns = deadline_ns;
        Ok(())
    }
}

/// CPU time and RSS of another process, from /proc.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcSample {
    pub cpu: CpuTime,
    pub rss_bytes: u64,
}

pub fn sample_process(pid: u32) -> io::Result<ProcSample> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let cpu = parse_stat_cpu(&stat, rustix::param::clock_ticks_per_second())
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))?;
    let rss_bytes = parse_status_rss(&status)
        .ok_or_else(|| io::Error::other(format!("no VmRSS in /proc/{pid}/status")))?;
    Ok(ProcSample { cpu, rss_bytes })
}

/// Sockets a process holds (entries of /proc/PID/fd that are sockets): how
/// many of loadgen's connections a server got, when several share a port.
pub fn count_sockets(pid: u32) -> io::Result<u64> {
    let mut sockets = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(entry) = entry else { continue };
        if let Ok(target) = fs::read_link(entry.path())
            && target
                .as_os_str()
                .as_encoded_bytes()
                .starts_with(b"socket:")
        {
            sockets += 1;
        }
    }
    Ok(sockets)
}

/// utime and stime (fields 14 and 15, in clock ticks) of a /proc/PID/stat line.
pub fn parse_stat_cpu(stat: &str, ticks_per_s: u64) -> Option<CpuTime> {
    // The command name (field 2) may hold spaces and parentheses; skip past its last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    // after_name starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let us_per_tick = 1_000_000 / ticks_per_s.max(1);
    Some(CpuTime {
        user_us: utime * us_per_tick,
        sys_us: stime * us_per_tick,
    })
}

/// VmRSS of a /proc/PID/status text, in bytes.
pub fn parse_status_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// What the report says about the machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
}

pub fn machine() -> Machine {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    Machine {
        cpu_model,
        cores,
        kernel,
    }
}

/// RFC 3339 UTC text of a Unix time, e.g. `2025-01-31T23:59:59Z`.
pub fn rfc3339_utc(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_fields_survive_odd_names() {
        let stat = "1234 (my (weird) srv) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    250 75 0 0 20 0 4 0 555 1000000 300 18446744073709551615";
        let cpu = parse_stat_cpu(stat, 100).unwrap();
        assert_eq!(cpu.user_us, 2_500_000);
        assert_eq!(cpu.sys_us, 750_000);
    }

    #[test]
    fn status_rss_in_bytes() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t1\n";
        assert_eq!(parse_status_rss(status), Some(1234 * 1024));
        assert_eq!(parse_status_rss("Name: x\n"), None);
    }

    #[test]
    fn own_sockets_are_counted() {
        let before = count_sockets(std::process::id()).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let after = count_sockets(std::process::id()).unwrap();
        drop(listener);
        // Other tests may open sockets meanwhile; ours is at least counted.
        assert!(after > before || after >= 1);
    }

    #[test]
    fn own_process_is_sampled() {
        let sample = sample_process(std::process::id()).unwrap();
        assert!(sample.rss_bytes > 0);
        let before = own_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(own_cpu().user_us + own_cpu().sys_us >= before.user_us + before.sys_us);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a && a > 0);
    }
}
