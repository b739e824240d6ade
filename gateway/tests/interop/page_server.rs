//! A one-page HTTP server for the browser test (std::net, one thread, one
//! request per connection): it serves the page and receives its result, so
//! the test does not depend on when a headless browser would dump its DOM.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// A one-page HTTP server on 127.0.0.1:0: serves the page at any GET path
/// ending in `.html` and hands the body of `POST /result` to the test.
/// Its thread ends when the test is done with it or at its deadline.
pub struct PageServer {
    pub address: SocketAddr,
    results: mpsc::Receiver<String>,
    done: Arc<AtomicBool>,
}

/// Bounds on what the page server reads from one request.
const MAX_REQUEST_HEAD_BYTES: usize = 16 << 10;
const MAX_RESULT_BYTES: usize = 8 << 20;

impl PageServer {
    pub fn start(page: &'static [u8], lifetime: Duration) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let (sender, results) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&done);
        let deadline = Instant::now() + lifetime + Duration::from_secs(5);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Err(error) = serve(stream, page, &sender) {
                            eprintln!("page server: {error}");
                        }
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(error) => panic!("page server accept: {error}"),
                }
            }
        });
        PageServer {
            address,
            results,
            done,
        }
    }

    /// The DOM the page posted, or `None` if none arrived within `timeout`.
    pub fn wait_result(&self, timeout: Duration) -> Option<String> {
        self.results.recv_timeout(timeout).ok()
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Answers one request on `stream` and closes it.
fn serve(
    mut stream: TcpStream,
    page: &[u8],
    results: &mpsc::Sender<String>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some((head, mut body)) = read_head(&mut stream)? else {
        return Ok(()); // a speculative preconnect closed unused
    };
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default();
    match (method, path) {
        ("GET", path) if path.ends_with(".html") => {
            respond(&mut stream, "200 OK", "text/html; charset=utf-8", page)
        }
        ("POST", "/result") => {
            let length = content_length(&head).min(MAX_RESULT_BYTES);
            while body.len() < length {
                let mut buffer = [0u8; 65536];
                let n = stream.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&buffer[..n]);
            }
            respond(&mut stream, "204 No Content", "text/plain", b"")?;
            let _ = results.send(String::from_utf8_lossy(&body).into_owned());
            Ok(())
        }
        _ => respond(&mut stream, "404 Not Found", "text/plain", b"not found"),
    }
}

/// Reads up to the blank line; returns the head and any body bytes after it,
/// or `None` if the peer closed without sending anything.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            return Ok(Some((head, received[end + 4..].to_vec())));
        }
        if received.len() > MAX_REQUEST_HEAD_BYTES {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = stream.read(&mut buffer)?;
        if n == 0 && received.is_empty() {
            return Ok(None);
        }
        if n == 0 {
            return Err(std::io::Error::other(
                "connection closed inside the request head",
            ));
        }
        received.extend_from_slice(&buffer[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0)
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}
