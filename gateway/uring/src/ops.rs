//! Submission of typed operations and the single completion drain.
//!
//! user_data layout: the top 8 bits name the operation kind, the low 56 bits
//! carry the caller's [`Token`] (for sends: the in-flight send slot, which
//! remembers the caller's token and owns the buffer).

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};

use crate::bufring::{BUFFER_GROUP, BufRing, RecvBuffer};

/// A caller's name for an operation; only the low 56 bits are kept.
pub type Token = u64;

const TOKEN_MASK: u64 = (1 << 56) - 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Kind {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Close = 4,
    Cancel = 5,
    Tick = 6,
    Wake = 7,
    SendChunks = 8,
    Connect = 9,
}

impl Kind {
    fn from_user_data(user_data: u64) -> Option<Kind> {
        Some(match user_data >> 56 {
            1 => Kind::Accept,
            2 => Kind::Recv,
            3 => Kind::Send,
            4 => Kind::Close,
            5 => Kind::Cancel,
            6 => Kind::Tick,
            7 => Kind::Wake,
            8 => Kind::SendChunks,
            9 => Kind::Connect,
            _ => return None,
        })
    }
}

fn user_data(kind: Kind, token: Token) -> u64 {
    debug_assert_eq!(token & !TOKEN_MASK, 0, "token wider than 56 bits");
    (kind as u64) << 56 | (token & TOKEN_MASK)
}

/// Sizes decided at start-up.
#[derive(Clone, Debug)]
pub struct RingConfig {
    /// Submission queue entries (power of two).
    pub sq_entries: u32,
    /// Completion queue entries (power of two, >= sq_entries).
    pub cq_entries: u32,
    /// Provided buffers in the shard's buffer ring (power of two).
    pub buffer_count: u16,
    /// Bytes per provided buffer.
    pub buffer_size: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            sq_entries: 4096,
            cq_entries: 16384,
            buffer_count: 2048,
            buffer_size: 4096,
        }
    }
}

/// One completion, typed by the operation that produced it.
#[derive(Debug)]
pub enum Completion {
    /// A multishot accept produced a socket (or failed). `more == false`
    /// means the multishot ended and must be re-armed.
    Accept {
        token: Token,
        result: io::Result<RawFd>,
        more: bool,
    },
    /// A multishot recv produced data (`Ok(Some)`), end of stream
    /// (`Ok(None)`), or an error (ENOBUFS: the buffer ring ran dry; nothing is
    /// lost, the data stays in the socket until the recv is re-armed).
    Recv {
        token: Token,
        result: io::Result<Option<RecvBuffer>>,
        more: bool,
    },
    /// A send finished: `result` is bytes written (may be short); the buffer
    /// comes back so the caller can resubmit the rest or reuse it.
    Send {
        token: Token,
        result: io::Result<usize>,
        buffer: Vec<u8>,
        offset: usize,
    },
    /// A chunked send finished: `result` is bytes written (may be short);
    /// the chunks come back with the `skip` they were sent with.
    SendChunks {
        token: Token,
        result: io::Result<usize>,
        chunks: Vec<Chunk>,
        skip: usize,
    },
    /// An outgoing connect finished.
    Connect {
        token: Token,
        result: io::Result<()>,
    },
    /// A close finished.
    Close {
        token: Token,
        result: io::Result<()>,
    },
    /// A cancel request finished (its target completes separately).
    Cancel { token: Token },
    /// The tick timeout fired; re-arm with [`Ops::tick`].
    Tick { token: Token },
    /// The eventfd wake-up read completed; re-arm with [`Ops::wake_on`].
    Wake { token: Token },
}

/// A piece of a connection's output: bytes of its own, or a frame shared by
/// many connections (one delivery fanned out to every local subscriber
/// without a copy per subscriber).
#[derive(Debug)]
pub enum Chunk {
    Owned(Vec<u8>),
    Shared(Rc<[u8]>),
}

impl Chunk {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned(bytes) => bytes,
            Chunk::Shared(bytes) => bytes,
        }
    }
}

/// Most iovecs one sendmsg carries (Linux IOV_MAX); the rest goes in the
/// next send after the completion.
pub const MAX_IOVECS: usize = 1024;

struct InFlightSend {
    token: Token,
    buffer: Vec<u8>,
    offset: usize,
}

/// A sendmsg in flight: the chunks, and the iovec array and header the
/// kernel reads, all kept here until the completion.
struct InFlightChunks {
    token: Token,
    chunks: Vec<Chunk>,
    skip: usize,
    _iovecs: Vec<libc::iovec>,
    _header: Box<libc::msghdr>,
}

struct InFlightConnect {
    token: Token,
    _address: Box<libc::sockaddr_storage>,
}

/// Submits operations to one io_uring instance and drains its completions.
pub struct Ops {
    ring: IoUring,
    sends: Vec<Option<InFlightSend>>,
    free_sends: Vec<u32>,
    chunk_sends: Vec<Option<InFlightChunks>>,
    free_chunk_sends: Vec<u32>,
    connects: Vec<Option<InFlightConnect>>,
    free_connects: Vec<u32>,
    tick_timespec: Box<types::Timespec>,
    wake_value: Box<u64>,
}

/// Checks that io_uring can be used here, with a message that names the
/// reason when it cannot (disabled by sysctl, blocked by seccomp, too old).
pub fn probe_io_uring() -> Result<(), String> {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .unwrap_or(0);
    IoUring::new(8)
        .map(drop)
        .map_err(|error| explain_setup_error(&error, disabled))
}

/// Turns an io_uring_setup failure into advice an operator can act on.
fn explain_setup_error(error: &io::Error, disabled: u32) -> String {
    match (error.raw_os_error(), disabled) {
        (Some(libc::EPERM), 1 | 2) => format!(
            "io_uring is disabled on this host (/proc/sys/kernel/io_uring_disabled = {disabled}); \
             ringgate needs it: run `sysctl -w kernel.io_uring_disabled=0` \
             (or, with 1, add this user to kernel.io_uring_group)"
        ),
        (Some(libc::ENOSYS), _) => "io_uring is not available: the kernel lacks it or a \
             seccomp filter blocks io_uring_setup (containers often do); ringgate needs \
             io_uring (Linux 6.1 or newer)"
            .to_string(),
        (Some(libc::EPERM), _) => "io_uring_setup was refused (EPERM): a seccomp filter or \
             LSM blocks io_uring here; ringgate needs io_uring"
            .to_string(),
        _ => format!("io_uring could not be set up: {error}"),
    }
}

impl Ops {
    /// Builds the ring with SINGLE_ISSUER and DEFER_TASKRUN where the kernel
    /// has them (6.1+), falling back to COOP_TASKRUN, then to no flags. Must
    /// be called on the thread that will submit (single issuer).
    pub fn new(config: &RingConfig) -> io::Result<Ops> {
        let attempts: [fn(&mut io_uring::Builder); 3] = [
            |b| {
                b.setup_single_issuer().setup_defer_taskrun();
            },
            |b| {
                b.setup_coop_taskrun();
            },
            |_| {},
        ];
        let mut last_error = None;
        for configure in attempts {
            let mut builder = IoUring::builder();
            builder.setup_cqsize(config.cq_entries);
            configure(&mut builder);
            match builder.build(config.sq_entries) {
                Ok(ring) => {
                    return Ok(Ops {
                        ring,
                        sends: Vec::new(),
                        free_sends: Vec::new(),
                        chunk_sends: Vec::new(),
                        free_chunk_sends: Vec::new(),
                        connects: Vec::new(),
                        free_connects: Vec::new(),
                        tick_timespec: Box::new(types::Timespec::new()),
                        wake_value: Box::new(0),
                    });
                }
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    last_error = Some(error)
                }
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("io_uring setup failed")))
    }

    /// # Safety
    /// `ring_addr` must point at page-aligned memory holding `count` buffer
    /// ring entries that stays valid while the ring fd is open.
    pub(crate) unsafe fn register_buf_ring(
        &self,
        ring_addr: u64,
        count: u16,
        group: u16,
    ) -> io::Result<()> {
        // SAFETY: forwarded from this function's contract.
        unsafe {
            self.ring
                .submitter()
                .register_buf_ring_with_flags(ring_addr, count, group, 0)
        }
    }

    /// Queues an entry, flushing the submission queue to the kernel first if
    /// it is full. Callers guarantee every pointer in `entry` outlives the
    /// operation (see each public method).
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        // SAFETY: every entry built by this module points only at memory owned
        // by `self` (boxed timespec, boxed eventfd value, in-flight send
        // buffers kept in `self.sends` until their completion) or at none.
        if unsafe { self.ring.submission().push(&entry) }.is_ok() {
            return Ok(());
        }
        self.ring.submit()?;
        // SAFETY: as above.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("submission queue full after submit"))
    }

    /// Arms a multishot accept on a listening socket.
    pub fn accept_multishot(&mut self, listener: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(types::Fd(listener))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data(Kind::Accept, token));
        self.push(entry)
    }

    /// Arms a multishot recv that selects buffers from this ring's buffer ring.
    pub fn recv_multishot(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP)
            .build()
            .user_data(user_data(Kind::Recv, token));
        self.push(entry)
    }

    /// Sends `buffer[offset..]`. The buffer is owned by the ring until the
    /// matching [`Completion::Send`] hands it back.
    pub fn send(
        &mut self,
        fd: RawFd,
        buffer: Vec<u8>,
        offset: usize,
        token: Token,
    ) -> io::Result<()> {
        assert!(offset < buffer.len(), "send of an empty range");
        let length = u32::try_from(buffer.len() - offset).unwrap_or(u32::MAX);
        // The Vec's heap block does not move when the Vec value moves into
        // the slot table, so this pointer stays valid while the slot holds it.
        let pointer = buffer[offset..].as_ptr();
        let slot = match self.free_sends.pop() {
            Some(slot) => slot,
            None => {
                self.sends.push(None);
                (self.sends.len() - 1) as u32
            }
        };
        self.sends[slot as usize] = Some(InFlightSend {
            token,
            buffer,
            offset,
        });
        let entry = opcode::Send::new(types::Fd(fd), pointer, length)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(user_data(Kind::Send, u64::from(slot)));
        self.push(entry)
    }

    /// Sends the bytes of `chunks` after the first `skip`, as one send for
    /// a single chunk or one sendmsg over up to [`MAX_IOVECS`] chunks. The
    /// chunks are owned by the ring until [`Completion::SendChunks`] hands
    /// them back; a short write is the caller's to resubmit with a larger
    /// `skip`.
    pub fn send_chunks(
        &mut self,
        fd: RawFd,
        chunks: Vec<Chunk>,
        skip: usize,
        token: Token,
    ) -> io::Result<()> {
        let mut iovecs = Vec::with_capacity(chunks.len().min(MAX_IOVECS));
        let mut to_skip = skip;
        for chunk in &chunks {
            let bytes = chunk.bytes();
            if to_skip >= bytes.len() {
                to_skip -= bytes.len();
                continue;
            }
            let rest = &bytes[to_skip..];
            to_skip = 0;
            iovecs.push(libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            });
            if iovecs.len() == MAX_IOVECS {
                break;
            }
        }
        assert!(!iovecs.is_empty(), "send of an empty range");
        // SAFETY: msghdr is plain data; all-zero is a valid empty header.
        let mut header: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        header.msg_iov = iovecs.as_mut_ptr();
        header.msg_iovlen = iovecs.len();
        // The iovecs point into heap blocks (Vec and Rc contents) that do not
        // move when `chunks` and `iovecs` move into the slot table; the
        // header is boxed for the same reason.
        let header_pointer = &*header as *const libc::msghdr;
        let slot = take_slot(&mut self.chunk_sends, &mut self.free_chunk_sends);
        self.chunk_sends[slot as usize] = Some(InFlightChunks {
            token,
            chunks,
            skip,
            _iovecs: iovecs,
            _header: header,
        });
        let entry = opcode::SendMsg::new(types::Fd(fd), header_pointer)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data(Kind::SendChunks, u64::from(slot)));
        self.push(entry)
    }

    /// Connects a socket to `address`.
    pub fn connect(&mut self, fd: RawFd, address: SocketAddr, token: Token) -> io::Result<()> {
        let (storage, length) = socket_address(address);
        let storage = Box::new(storage);
        let pointer = (&*storage as *const libc::sockaddr_storage).cast::<libc::sockaddr>();
        let slot = take_slot(&mut self.connects, &mut self.free_connects);
        self.connects[slot as usize] = Some(InFlightConnect {
            token,
            _address: storage,
        });
        let entry = opcode::Connect::new(types::Fd(fd), pointer, length)
            .build()
            .user_data(user_data(Kind::Connect, u64::from(slot)));
        self.push(entry)
    }

    /// Closes a file descriptor.
    pub fn close(&mut self, fd: RawFd, token: Token) -> io::Result<()> {
        let entry = opcode::Close::new(types::Fd(fd))
            .build()
            .user_data(user_data(Kind::Close, token));
        self.push(entry)
    }

    /// Cancels the multishot recv armed with `token`.
    pub fn cancel_recv(&mut self, token: Token) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(user_data(Kind::Recv, token))
            .build()
            .user_data(user_data(Kind::Cancel, token));
        self.push(entry)
    }

    /// Cancels the multishot accept armed with `token`.
    pub fn cancel_accept(&mut self, token: Token) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(user_data(Kind::Accept, token))
            .build()
            .user_data(user_data(Kind::Cancel, token));
        self.push(entry)
    }

    /// Arms a one-shot timeout that completes as [`Completion::Tick`].
    pub fn tick(&mut self, after: Duration, token: Token) -> io::Result<()> {
        *self.tick_timespec = types::Timespec::from(after);
        let entry = opcode::Timeout::new(&*self.tick_timespec as *const types::Timespec)
            .build()
            .user_data(user_data(Kind::Tick, token));
        self.push(entry)
    }

    /// Arms an 8-byte read of an eventfd that completes as [`Completion::Wake`].
    pub fn wake_on(&mut self, eventfd: RawFd, token: Token) -> io::Result<()> {
        let pointer = (&mut *self.wake_value as *mut u64).cast::<u8>();
        let entry = opcode::Read::new(types::Fd(eventfd), pointer, 8)
            .build()
            .user_data(user_data(Kind::Wake, token));
        self.push(entry)
    }

    /// Submits queued entries and waits for at least `want` completions.
    /// EINTR and EBUSY (completion queue overflow pending) are not errors:
    /// the caller just drains and calls again.
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<()> {
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Submission entries queued but not yet submitted.
    pub fn submission_pending(&mut self) -> usize {
        self.ring.submission().len()
    }

    /// Moves every available completion into `out`, typed. Returns how many.
    /// Recv buffers are lent from `buffers`.
    pub fn drain(&mut self, buffers: &mut BufRing, out: &mut Vec<Completion>) -> usize {
        let before = out.len();
        let mut completion_queue = self.ring.completion();
        completion_queue.sync();
        for entry in &mut completion_queue {
            let (kind, token) = (
                Kind::from_user_data(entry.user_data()),
                entry.user_data() & TOKEN_MASK,
            );
            let result = entry.result();
            let flags = entry.flags();
            let more = cqueue::more(flags);
            let completion = match kind {
                Some(Kind::Accept) => Completion::Accept {
                    token,
                    result: errno_or(result, |fd| fd),
                    more,
                },
                Some(Kind::Recv) => {
                    let buffer = cqueue::buffer_select(flags)
                        .map(|id| buffers.lend(id, result.max(0) as u32));
                    let result = match (result, buffer) {
                        (n, Some(buffer)) if n > 0 => Ok(Some(buffer)),
                        (n, Some(buffer)) => {
                            buffers.recycle(buffer);
                            errno_or(n, |_| None)
                        }
                        (n, None) if n > 0 => Err(io::Error::other("recv data without a buffer")),
                        (n, None) => errno_or(n, |_| None),
                    };
                    Completion::Recv {
                        token,
                        result,
                        more,
                    }
                }
                Some(Kind::Send) => {
                    let slot = token as usize;
                    let InFlightSend {
                        token,
                        buffer,
                        offset,
                    } = self.sends[slot]
                        .take()
                        .expect("send completion for an empty slot");
                    self.free_sends.push(slot as u32);
                    Completion::Send {
                        token,
                        result: errno_or(result, |n| n as usize),
                        buffer,
                        offset,
                    }
                }
                Some(Kind::SendChunks) => {
                    let slot = token as usize;
                    let InFlightChunks {
                        token,
                        chunks,
                        skip,
                        ..
                    } = self.chunk_sends[slot]
                        .take()
                        .expect("chunked send completion for an empty slot");
                    self.free_chunk_sends.push(slot as u32);
                    Completion::SendChunks {
                        token,
                        result: errno_or(result, |n| n as usize),
                        chunks,
                        skip,
                    }
                }
                Some(Kind::Connect) => {
                    let slot = token as usize;
                    let InFlightConnect { token, .. } = self.connects[slot]
                        .take()
                        .expect("connect completion for an empty slot");
                    self.free_connects.push(slot as u32);
                    Completion::Connect {
                        token,
                        result: errno_or(result, |_| ()),
                    }
                }
                Some(Kind::Close) => Completion::Close {
                    token,
                    result: errno_or(result, |_| ()),
                },
                Some(Kind::Cancel) => Completion::Cancel { token },
                Some(Kind::Tick) => Completion::Tick { token },
                Some(Kind::Wake) => Completion::Wake { token },
                None => continue,
            };
            out.push(completion);
        }
        out.len() - before
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        // The kernel tears the ring down asynchronously after its fd closes
        // and a send still queued in it could read its buffer then. Leak such
        // buffers instead of freeing memory the kernel might still read; this
        // only happens at shard exit.
        for send in self.sends.drain(..).flatten() {
            std::mem::forget(send.buffer);
        }
        for send in self.chunk_sends.drain(..).flatten() {
            std::mem::forget(send);
        }
        for connect in self.connects.drain(..).flatten() {
            std::mem::forget(connect);
        }
    }
}

/// A free index in a slot table, growing it if none is free.
fn take_slot<T>(slots: &mut Vec<Option<T>>, free: &mut Vec<u32>) -> u32 {
    free.pop().unwrap_or_else(|| {
        slots.push(None);
        (slots.len() - 1) as u32
    })
}

/// A `SocketAddr` as the kernel's sockaddr_storage and its length.
fn socket_address(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let length = match address {
        SocketAddr::V4(v4) => {
            let raw = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in; we write exactly one sockaddr_in at its start.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), raw) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            let raw = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), raw) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, length as libc::socklen_t)
}

fn errno_or<T>(result: i32, ok: impl FnOnce(i32) -> T) -> io::Result<T> {
    if result < 0 {
        Err(io::Error::from_raw_os_error(-result))
    } else {
        Ok(ok(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_failures_name_their_cause() {
        let eperm = io::Error::from_raw_os_error(libc::EPERM);
        let text = explain_setup_error(&eperm, 2);
        assert!(
            text.contains("io_uring_disabled = 2") && text.contains("sysctl"),
            "{text}"
        );
        let text = explain_setup_error(&eperm, 0);
        assert!(text.contains("seccomp"), "{text}");
        let enosys = io::Error::from_raw_os_error(libc::ENOSYS);
        assert!(explain_setup_error(&enosys, 0).contains("not available"));
    }

    #[test]
    fn user_data_keeps_kind_and_token_apart() {
        let data = user_data(Kind::Send, TOKEN_MASK);
        assert_eq!(Kind::from_user_data(data), Some(Kind::Send));
        assert_eq!(data & TOKEN_MASK, TOKEN_MASK);
        assert_eq!(Kind::from_user_data(0), None);
    }
}
