//! Socket-level helpers of the event loops (the workers' and the attack
//! scenario's): the epoll instance and its timer, one wait, starting a
//! connection and seeing it complete, the upgrade request, one
//! non-blocking read, and the per-connection upgrade key.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use mio::event::Event;
use mio::net::TcpStream;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use ringgate_wscodec::{client_key, write_client_request};
use rustix::io::Errno;
use rustix::net::RecvFlags;
use socket2::{Domain, Protocol, Socket, Type};

use super::conn::Conn;
use super::thread::ThreadPlan;
use crate::stats::ErrorReason;
use crate::sys::{self, Timer};

/// An epoll instance, with a timerfd (for deadlines finer than epoll's
/// millisecond) registered in it under `timer_token`.
pub fn poll_with_timer(timer_token: Token) -> io::Result<(Poll, Timer)> {
    let poll = Poll::new()?;
    let timer = Timer::new()?;
    poll.registry().register(
        &mut SourceFd(&timer.fd().as_raw_fd()),
        timer_token,
        Interest::READABLE,
    )?;
    Ok((poll, timer))
}

/// What one wait of an event loop came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// `events` holds what is ready (maybe nothing: a timeout).
    Ready,
    /// A signal interrupted the wait: go round again.
    Again,
    /// The timer or epoll failed (the error is printed): the loop ends.
    Stop,
}

/// Arms `timer` for `wake` (if given), then waits for readiness, at most
/// `timeout`.
pub fn wait(
    poll: &mut Poll,
    timer: &mut Timer,
    events: &mut Events,
    wake: Option<u64>,
    timeout: Duration,
) -> Wait {
    if let Some(deadline) = wake
        && let Err(e) = timer.arm(deadline)
    {
        eprintln!("loadgen: timerfd: {e}");
        return Wait::Stop;
    }
    match poll.poll(events, Some(timeout)) {
        Ok(()) => Wait::Ready,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Wait::Again,
        Err(e) => {
            eprintln!("loadgen: epoll: {e}");
            Wait::Stop
        }
    }
}

/// Whether `event` calls for a read: data, the peer's end, or an error to collect.
pub fn wants_read(event: &Event) -> bool {
    event.is_readable() || event.is_read_closed() || event.is_error()
}

/// Whether a connecting socket's `event` says the connect is over (either way).
pub fn connect_settled(event: &Event) -> bool {
    event.is_writable() || event.is_error() || event.is_write_closed()
}

/// Starts connection `index` of `plan` from `source` and registers it with
/// `poll` under `Token(index)`, for reading and writing.
pub fn connect_registered(
    poll: &Poll,
    plan: &ThreadPlan,
    source: Option<IpAddr>,
    index: usize,
) -> Result<TcpStream, ErrorReason> {
    let mut stream = connect_socket(plan.target, source)?;
    poll.registry()
        .register(
            &mut stream,
            Token(index),
            Interest::READABLE | Interest::WRITABLE,
        )
        .map_err(|e| ErrorReason::from_io(&e))?;
    Ok(stream)
}

/// After a connecting socket turned ready: `Ok(true)` once TCP is up,
/// `Ok(false)` while the connect is still in progress, else why it failed.
pub fn connect_result(stream: &TcpStream) -> Result<bool, ErrorReason> {
    match stream.take_error() {
        Ok(None) => {}
        Ok(Some(e)) | Err(e) => return Err(ErrorReason::from_io(&e)),
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(ErrorReason::from_io(&e)),
    }
}

/// Replaces `out` with connection `index`'s upgrade request.
pub fn write_upgrade_request(out: &mut Vec<u8>, plan: &ThreadPlan, index: usize) {
    let key = ws_key(plan.seed, index);
    let key = std::str::from_utf8(&key).expect("base64 is ASCII");
    out.clear();
    write_client_request(out, &plan.host, &plan.path, key, &[]);
}

/// One read; `Ok(None)` when the socket has nothing now.
pub fn read_once(conn: &mut Conn, buf: &mut [u8]) -> Result<Option<usize>, ErrorReason> {
    let Some(stream) = conn.stream.as_ref() else {
        return Err(ErrorReason::NotOpen);
    };
    // rustix's recv is the bare syscall; libc's is also a pthread
    // cancellation point, which costs a few percent of loadgen's user time.
    loop {
        match rustix::net::recv(stream, &mut *buf, RecvFlags::empty()) {
            Ok((0, _)) => return Err(ErrorReason::Eof),
            Ok((n, _)) => return Ok(Some(n)),
            Err(Errno::AGAIN) => return Ok(None),
            Err(Errno::INTR) => continue,
            Err(errno) => return Err(ErrorReason::from_io(&errno.into())),
        }
    }
}

/// A non-blocking TCP socket, Nagle off, bound to `source` if given, connect started.
pub fn connect_socket(
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<TcpStream, ErrorReason> {
    let io_error = |e: io::Error| ErrorReason::from_io(&e);
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.nonblocking(),
        Some(Protocol::TCP),
    )
    .map_err(io_error)?;
    socket.set_tcp_nodelay(true).map_err(io_error)?;
    if let Some(ip) = source {
        if ip.is_ipv4() {
            // Best effort: without it, bind reserves a port per source address.
            let _ = sys::set_bind_address_no_port(&socket);
        }
        socket
            .bind(&SocketAddr::new(ip, 0).into())
            .map_err(io_error)?;
    }
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(io_error(e)),
    }
    Ok(TcpStream::from_std(std::net::TcpStream::from(socket)))
}

/// The Sec-WebSocket-Key of connection `index`: 16 bytes derived from the
/// thread seed, so it can be recomputed to check the answer instead of stored.
pub fn ws_key(seed: u64, index: usize) -> [u8; 24] {
    let a = splitmix64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let b = splitmix64(a);
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&a.to_le_bytes());
    nonce[8..].copy_from_slice(&b.to_le_bytes());
    client_key(nonce)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;

    #[test]
    fn keys_are_stable_and_distinct() {
        assert_eq!(ws_key(7, 3), ws_key(7, 3));
        assert_ne!(ws_key(7, 3), ws_key(7, 4));
        assert_ne!(ws_key(7, 3), ws_key(8, 3));
        let key = ws_key(1, 1);
        assert_eq!(BASE64.decode(key).unwrap().len(), 16);
    }
}
