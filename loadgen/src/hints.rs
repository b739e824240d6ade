//! What to tune when the kernel refuses a connection, said once per run and
//! again under the summary.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::stats::ErrorReason;

static FILE_LIMIT_SAID: AtomicBool = AtomicBool::new(false);
static ADDRESS_SAID: AtomicBool = AtomicBool::new(false);
static BUFFERS_SAID: AtomicBool = AtomicBool::new(false);

pub const FILE_LIMIT: &str = "out of file descriptors (EMFILE/ENFILE): raise the hard limit \
(`ulimit -Hn`, LimitNOFILE= in systemd, nofile in /etc/security/limits.conf), \
`sysctl -w fs.nr_open=4194304 fs.file-max=4194304`, or spread the connections over \
worker processes with --procs N (each holds at most its file limit)";

pub const ADDRESS: &str = "no local port/address left (EADDRNOTAVAIL): widen the port range \
with `sysctl -w net.ipv4.ip_local_port_range=\"1024 65535\"`, add source addresses \
(--src 127.0.0.2-127.0.255.254 on loopback; each address gives ~64K connections per \
destination), and let closed ports be reused with `sysctl -w net.ipv4.tcp_tw_reuse=1`";

pub const BUFFERS: &str = "kernel out of socket memory (ENOBUFS/ENOMEM): raise \
`sysctl -w net.ipv4.tcp_mem=\"1048576 2097152 4194304\"` (pages) and \
`sysctl -w net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535`, \
or lower --max-pending";

/// Where all of the above live as one profile.
pub const PROFILE: &str =
    "tuning/loadgen.conf has all of these: sudo tuning/apply.sh tuning/loadgen.conf";

/// The advice for an error key of the report, if there is one.
pub fn hint_for(key: &str) -> Option<&'static str> {
    match key {
        "file_limit" => Some(FILE_LIMIT),
        "address_unavailable" => Some(ADDRESS),
        "no_buffers" => Some(BUFFERS),
        _ => None,
    }
}

/// Prints the advice for `reason` the first time this process meets it.
pub fn warn_once(reason: ErrorReason) {
    let (flag, text) = match reason {
        ErrorReason::FileLimit => (&FILE_LIMIT_SAID, FILE_LIMIT),
        ErrorReason::AddressUnavailable => (&ADDRESS_SAID, ADDRESS),
        ErrorReason::NoBuffers => (&BUFFERS_SAID, BUFFERS),
        _ => return,
    };
    if !flag.swap(true, Ordering::Relaxed) {
        eprintln!("loadgen: {text} ({PROFILE})");
    }
}
