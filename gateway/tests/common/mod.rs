//! Test harness: starts a real `ringgate` process on a free loopback port and
//! talks to it over real sockets with a small blocking WebSocket client built
//! on the project's codec (client role).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringgate_wscodec::handshake::{parse_server_response, write_client_request};
use ringgate_wscodec::{Decoder, Limits, Message, OpCode, Role, accept_key, write_frame};

pub struct Gateway {
    pub child: Child,
    pub address: SocketAddr,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    _config: Option<tempfile_path::TempPath>,
}

mod tempfile_path {
    /// A config file removed on drop.
    pub struct TempPath(pub std::path::PathBuf);
    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Gateway {
    /// Starts `ringgate --echo --shards 1 --listen 127.0.0.1:0` plus a config
    /// made of `toml` (may be empty) and waits for its listening line.
    pub fn start(toml: &str) -> Gateway {
        Gateway::start_with(toml, &["--shards", "1"])
    }

    /// Echo mode. With `RINGGATE_TEST_TLS=1` in the environment the gateway
    /// serves wss with the test certificate and `address` is a local
    /// TLS-terminating proxy in front of it, so every plaintext test case
    /// runs over TLS unchanged (`.ci/run` runs the RFC 6455 suite both ways).
    pub fn start_with(toml: &str, extra: &[&str]) -> Gateway {
        let mut args = vec!["--echo"];
        args.extend_from_slice(extra);
        if std::env::var_os("RINGGATE_TEST_TLS").is_none() {
            return Gateway::launch(toml, &args);
        }
        let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls_certs");
        let toml = format!(
            "{toml}\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            certs.join("server.pem").display(),
            certs.join("server.key").display()
        );
        let mut gateway = Gateway::launch(&toml, &args);
        gateway.address = tls_proxy::start(gateway.address, &certs.join("ca.pem"));
        gateway
    }

    /// Starts `ringgate --listen 127.0.0.1:0 --config <toml>` in the mode
    /// the config (or `extra`) chooses.
    pub fn launch(toml: &str, extra: &[&str]) -> Gateway {
        let path = std::env::temp_dir().join(format!(
            "ringgate-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::write(&path, toml).unwrap();
        // The admin listener on an ephemeral port (the default 9090 would
        // collide between tests), unless the test chose one.
        let admin: &[&str] = if extra.contains(&"--admin") || toml.contains("[admin]") {
            &[]
        } else {
            &["--admin", "127.0.0.1:0"]
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringgate"))
            .args(["--listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .args(admin)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ringgate");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = std::sync::Arc::clone(&stderr);
        let mut err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut text = String::new();
            let mut buffer = [0u8; 4096];
            while let Ok(n) = err.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buffer[..n]));
                *sink.lock().unwrap() = text.clone();
            }
            // End of stream: mark it, so readers after exit see everything.
            sink.lock().unwrap().push('\u{0}');
        });
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let address = line
            .trim()
            .strip_prefix("ringgate listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "unexpected first line {line:?}; stderr: {}",
                    stderr.lock().unwrap()
                )
            })
            .parse()
            .unwrap();
        Gateway {
            child,
            address,
            stderr,
            _config: Some(tempfile_path::TempPath(path)),
        }
    }

    /// The admin listener's address, from its start-up log line.
    pub fn admin_address(&self) -> SocketAddr {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stderr = self.stderr();
            if let Some(rest) = stderr.split("admin listening on ").nth(1) {
                let address = rest.split_whitespace().next().unwrap_or("");
                return address
                    .parse()
                    .unwrap_or_else(|_| panic!("admin address {address:?} in {stderr}"));
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no admin listener in the log: {stderr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the gateway (by its PID).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, returning its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr reader drain the pipe to its end.
                while !self.stderr.lock().unwrap().ends_with('\u{0}') && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.address, "/", &[])
    }

    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What a client observed.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    /// The TCP connection ended without (further) frames.
    Eof,
}

pub struct Client {
    pub stream: TcpStream,
    decoder: Decoder,
    pending: Vec<u8>,
    events: std::collections::VecDeque<Event>,
    pub response_head: String,
}

pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A TCP connection from a chosen local source address (127.x), so tests can
/// play many clients' addresses on one host.
pub fn connect_from(source: &str, address: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let source: std::net::SocketAddr = format!("{source}:0").parse().unwrap();
    socket.bind(&source.into()).unwrap();
    socket.connect(&address.into()).unwrap();
    socket.into()
}

/// Like [`http_exchange`], from a chosen source address.
pub fn http_exchange_from(source: &str, address: SocketAddr, request: &[u8]) -> String {
    let mut stream = connect_from(source, address);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into()
}

impl Client {
    pub fn connect(address: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
        Client::over(TcpStream::connect(address).unwrap(), address, path, headers)
    }

    /// Upgrades from a chosen source address.
    pub fn connect_from(
        source: &str,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Client {
        Client::over(connect_from(source, address), address, path, headers)
    }

    /// Upgrades an already connected stream.
    pub fn over(
        stream: TcpStream,
        address: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Client {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut request = Vec::new();
        write_client_request(&mut request, &address.to_string(), path, key, headers);
        let mut client = Client {
            stream,
            decoder: Decoder::new(Role::Client),
            pending: Vec::new(),
            events: Default::default(),
            response_head: String::new(),
        };
        client.stream.write_all(&request).unwrap();
        let expected = accept_key(key.as_bytes());
        let mut buffer = vec![0u8; 65536];
        loop {
            let n = client.stream.read(&mut buffer).unwrap();
            assert!(n > 0, "connection closed during handshake");
            client.pending.extend_from_slice(&buffer[..n]);
            if let Some(length) = parse_server_response(&client.pending, &expected).unwrap() {
                client.response_head = String::from_utf8_lossy(&client.pending[..length]).into();
                client.pending.drain(..length);
                break;
            }
        }
        client
    }

    pub fn send(&mut self, opcode: OpCode, payload: &[u8]) {
        let mut out = Vec::new();
        write_frame(&mut out, opcode, payload, Some(MASK));
        self.stream.write_all(&out).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Next event, reading from the socket as needed.
    pub fn next(&mut self) -> Event {
        let limits = Limits {
            max_frame_bytes: 0,
            max_text_message_bytes: 0,
            max_binary_message_bytes: 0,
        };
        loop {
            if let Some(event) = self.events.pop_front() {
                return event;
            }
            if !self.pending.is_empty() {
                let mut input = std::mem::take(&mut self.pending);
                let mut offset = 0;
                while offset < input.len() {
                    let (consumed, message) = self
                        .decoder
                        .decode(&mut input[offset..], &limits)
                        .expect("server sent an invalid frame");
                    offset += consumed;
                    if let Some(message) = message {
                        self.events.push_back(match message {
                            Message::Text(p) => Event::Text(p.to_vec()),
                            Message::Binary(p) => Event::Binary(p.to_vec()),
                            Message::Ping(p) => Event::Ping(p.to_vec()),
                            Message::Pong(p) => Event::Pong(p.to_vec()),
                            Message::Close(frame) => {
                                Event::Close(frame.code, frame.reason.to_string())
                            }
                        });
                    }
                }
                continue;
            }
            let mut buffer = vec![0u8; 1 << 16];
            match self.stream.read(&mut buffer) {
                Ok(0) => return Event::Eof,
                Ok(n) => self.pending.extend_from_slice(&buffer[..n]),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    return Event::Eof;
                }
                Err(error) => panic!("read failed: {error}"),
            }
        }
    }

    /// True if nothing (no frame, buffered or new) arrives within `quiet`.
    pub fn stays_quiet(&mut self, quiet: Duration) -> bool {
        if !self.events.is_empty() || !self.pending.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(quiet)).unwrap();
        let nothing = self.stream.peek(&mut [0u8; 1]).is_err();
        self.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        nothing
    }

    /// Reads until a close frame, returning its code; asserts the TCP
    /// connection then ends.
    pub fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next() {
                Event::Close(code, _) => {
                    return code;
                }
                Event::Eof => panic!("connection ended without a close frame"),
                _ => {}
            }
        }
    }

    /// After a close, the server closes TCP.
    pub fn expect_eof(&mut self) {
        loop {
            match self.next() {
                Event::Eof => return,
                Event::Close(..) => {}
                other => panic!("expected EOF, got {other:?}"),
            }
        }
    }
}

/// Sends a raw HTTP request and returns the full response text (until EOF).
pub fn http_exchange(address: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into()
}

/// Builds a masked frame by hand (for invalid frames the codec won't write).
pub fn raw_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first_byte];
    let length = payload.len();
    if length < 126 {
        out.push(0x80 | length as u8);
    } else if length < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(length as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// A plaintext-to-TLS proxy for running test cases over wss: each accepted
/// connection gets a thread that pumps bytes between the plain socket and a
/// rustls client connection to the gateway (trusting the test CA).
pub mod tls_proxy {
    use std::io::{ErrorKind, Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::time::Duration;

    pub fn start(gateway: SocketAddr, ca: &std::path::Path) -> SocketAddr {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for plain in listener.incoming().flatten() {
                let config = Arc::clone(&config);
                std::thread::spawn(move || pump(plain, gateway, config));
            }
        });
        address
    }

    fn pump(plain: TcpStream, gateway: SocketAddr, config: Arc<rustls::ClientConfig>) {
        let Ok(mut tcp) = TcpStream::connect(gateway) else {
            return;
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(config, name).unwrap();
        let mut plain = plain;
        let _ = plain.set_nodelay(true);
        let _ = tcp.set_nodelay(true);
        plain.set_nonblocking(true).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let mut buffer = vec![0u8; 1 << 16];
        let (mut plain_open, mut tls_open) = (true, true);
        // Bounded: a test connection lives seconds, never minutes.
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while (plain_open || tls_open) && std::time::Instant::now() < deadline {
            let mut busy = false;
            if plain_open {
                match plain.read(&mut buffer) {
                    Ok(0) => {
                        plain_open = false;
                        tls.send_close_notify();
                    }
                    Ok(n) => {
                        tls.writer().write_all(&buffer[..n]).unwrap();
                        busy = true;
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        plain_open = false;
                        tls.send_close_notify();
                    }
                }
            }
            while tls.wants_write() {
                match tls.write_tls(&mut tcp) {
                    Ok(_) => busy = true,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        tls_open = false;
                        break;
                    }
                }
            }
            if tls_open {
                match tls.read_tls(&mut tcp) {
                    Ok(0) => tls_open = false,
                    Ok(_) => {
                        busy = true;
                        if tls.process_new_packets().is_err() {
                            tls_open = false;
                        }
                    }
                    Err(error) if error.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => tls_open = false,
                }
                loop {
                    match tls.reader().read(&mut buffer) {
                        Ok(0) => {
                            tls_open = false;
                            break;
                        }
                        Ok(n) => {
                            if write_all_blocking(&mut plain, &buffer[..n]).is_err() {
                                plain_open = false;
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            if !tls_open {
                // The gateway closed: end the plaintext side too.
                let _ = plain.shutdown(std::net::Shutdown::Both);
                break;
            }
            if !busy {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    }

    fn write_all_blocking(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            match stream.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(error) if error.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

/// The HS256 secret the authentication tests configure (32+ bytes).
pub const JWT_SECRET: &str = "test-secret-of-at-least-32-bytes!!";

/// An HS256 token for `user`, expiring `exp_offset_s` seconds from now
/// (negative: already expired).
pub fn jwt(user: &str, exp_offset_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": user, "exp": now as i64 + exp_offset_s});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A loopback port that was free a moment ago (bind to port 0, read it,
/// release it), for listeners a test must name up front, like the admin
/// listener's `--admin 127.0.0.1:PORT` or a Prometheus server.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over HTTP/1.1 with `Connection: close`; returns the status and
/// the body (de-chunked when the answer is chunked), or None when the
/// connection fails (the server is not up yet).
pub fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        line.starts_with("transfer-encoding:") && line.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some((status, body))
}

/// Joins the chunks of a chunked HTTP/1.1 body.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Sends a JSON value as one text frame (a relay-mode client envelope).
pub fn send_json(client: &mut Client, value: serde_json::Value) {
    client.send(OpCode::Text, value.to_string().as_bytes());
}

/// The next text frame as JSON, skipping pings and pongs.
pub fn next_json(client: &mut Client) -> serde_json::Value {
    loop {
        match client.next() {
            Event::Text(text) => return serde_json::from_slice(&text).unwrap(),
            Event::Ping(_) | Event::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}
