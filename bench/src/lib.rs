//! Shared plumbing for the reference echo servers in `src/bin/`.
//!
//! The gateway is measured in the same run as `ref-tungstenite` and
//! `ref-fastws`, so those servers must differ only in the WebSocket library
//! under test: the same message cap, socket options, start-up line that bench
//! scripts wait for, and clean exit on SIGTERM/SIGINT. That shared part is
//! [`serve`] and [`MESSAGE_BYTES_MAX`].
//!
//! It does not implement WebSocket itself and is not used by the gateway.
//! Key number: messages up to 16 MiB are echoed.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

/// Largest message either reference server accepts.
pub const MESSAGE_BYTES_MAX: usize = 16 << 20;

/// Pause after a failed accept (e.g. out of fds) so the loop does not spin.
const ACCEPT_RETRY_MS: u64 = 10;

/// Binds `listen`, prints `listening on ADDR` (the bound address, so port 0
/// works), then spawns `handle_connection` on every accepted socket, with
/// TCP_NODELAY set, until SIGTERM or SIGINT. Returns `Ok(())` on a signal so
/// `main` exits 0; open connections are dropped with the runtime.
pub async fn serve<F, Fut>(listen: SocketAddr, handle_connection: F) -> io::Result<()>
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Handlers go in before the start-up line: a script may signal right after
    // reading it, and the default action would kill us with a non-zero status.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        tokio::select! {
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if let Err(error) = stream.set_nodelay(true) {
                        eprintln!("set TCP_NODELAY: {error}");
                    }
                    tokio::spawn(handle_connection(stream));
                }
                Err(error) => {
                    eprintln!("accept: {error}");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                }
            },
        }
    }
}
