//! Socket-level helpers of the event loop: starting a connection, one
//! non-blocking read, and the per-connection upgrade key.

use std::io;
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;
use ringgate_wscodec::client_key;
use rustix::io::Errno;
use rustix::net::RecvFlags;
use socket2::{Domain, Protocol, Socket, Type};

use super::conn::Conn;
use crate::stats::ErrorReason;
use crate::sys;

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
