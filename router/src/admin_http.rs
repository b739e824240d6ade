//! A tiny blocking HTTP/1.1 server for admin endpoints (`/metrics`,
//! `/healthz`, ...), shared by the gateway's admin listener and the
//! standalone router's `--admin`.
//!
//! One plain thread, blocking sockets, one request per connection
//! (`Connection: close`): it serves operators and scrapers, never clients.
//! Only GET (others: 405); a request head over 8 KiB is refused (431); a
//! peer that has not sent its whole request head within 2 s is dropped. The
//! caller routes by path.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A request head larger than this is refused (431).
pub const MAX_REQUEST_BYTES: usize = 8 << 10;
/// A slow or silent peer is dropped after this.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// A GET request's head.
#[derive(Debug)]
pub struct Request<'a> {
    /// The target without its query string.
    pub path: &'a str,
    head: &'a str,
}

impl Request<'_> {
    /// Whether the `Accept` header asks for OpenMetrics text.
    pub fn accepts_openmetrics(&self) -> bool {
        self.head.lines().any(|line| {
            let line = line.to_ascii_lowercase();
            line.starts_with("accept:") && line.contains("application/openmetrics-text")
        })
    }
}

/// A response: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain",
            body: body.into(),
        }
    }
}

/// Binds `address` with SO_REUSEADDR and, when `reuse_port`, SO_REUSEPORT
/// (a new gateway binds its admin address while the old one drains).
pub fn bind(address: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&address.into())?;
    socket.listen(64)?;
    Ok(socket.into())
}

/// Serves `listener` on a thread named `admin`: each GET goes to `route`.
/// Failed requests are logged (`admin_request_failed`) and forgotten.
pub fn spawn(
    listener: TcpListener,
    route: impl Fn(&Request<'_>) -> Response + Send + 'static,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Err(error) = serve(stream, &route) {
                    ringgate_logging::warn!("admin_request_failed", "admin request: {error}");
                }
            }
        })?;
    Ok(())
}

fn serve(mut stream: TcpStream, route: &dyn Fn(&Request<'_>) -> Response) -> io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let response = match read_head(&mut stream)? {
        Some(head) => answer(&head, route),
        None => Response::text(431, "request head too large\n"),
    };
    write_response(&mut stream, &response)
}

fn answer(head: &str, route: &dyn Fn(&Request<'_>) -> Response) -> Response {
    let mut words = head.split_ascii_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" {
        return Response::text(405, "only GET\n");
    }
    let path = target.split('?').next().unwrap_or("");
    route(&Request { path, head })
}

/// Reads up to the end of the request head. `None`: too large. The whole
/// head must arrive within [`IO_TIMEOUT`], not each read: a peer trickling
/// a byte a second cannot hold the (single) admin thread.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not complete in time",
            ));
        }
        stream.set_read_timeout(Some(left))?;
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

fn write_response(stream: &mut TcpStream, response: &Response) -> io::Result<()> {
    let status = response.status;
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        response.content_type,
        response.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(response.body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(request: &[u8]) -> String {
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let address = listener.local_addr().unwrap();
        spawn(listener, |request| match request.path {
            "/ok" if request.accepts_openmetrics() => Response::text(200, "open\n"),
            "/ok" => Response::text(200, "plain\n"),
            _ => Response::text(404, "no\n"),
        })
        .unwrap();
        let mut stream = TcpStream::connect(address).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn routes_gets_by_path_and_refuses_other_methods_and_huge_heads() {
        let answer = exchange(b"GET /ok?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nplain\n"), "{answer}");
        let answer = exchange(b"GET /ok HTTP/1.1\r\nAccept: application/openmetrics-text\r\n\r\n");
        assert!(answer.ends_with("open\n"), "{answer}");
        assert!(exchange(b"GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(exchange(b"POST /ok HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        // Past 8 KiB with no end of head in sight (all of it is read, so
        // closing does not reset the connection).
        let huge = format!("GET /ok HTTP/1.1\r\nX: {}", "a".repeat(9_000));
        assert!(exchange(huge.as_bytes()).starts_with("HTTP/1.1 431"));
    }

    #[test]
    fn a_trickling_peer_is_dropped_after_two_seconds_in_all() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let address = listener.local_addr().unwrap();
        spawn(listener, |_| Response::text(200, "ok\n")).unwrap();
        let mut slow = TcpStream::connect(address).unwrap();
        let started = std::time::Instant::now();
        // A byte every 500 ms: each read succeeds well inside 2 s, so only
        // a deadline for the whole head stops it.
        for byte in b"GET /ok HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa" {
            std::thread::sleep(Duration::from_millis(500));
            if slow.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(6) {
                break;
            }
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the slow peer got an answer: {rest:?}");
        // Dropped at the 2 s deadline (seen here one write later), not
        // after it stopped sending.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "dropped only after {:?}",
            started.elapsed()
        );
        // Meanwhile-blocked peers are served once it is dropped.
        let mut next = TcpStream::connect(address).unwrap();
        next.write_all(b"GET /ok HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        next.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
