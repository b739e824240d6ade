//! The admin HTTP listener (default 127.0.0.1:9090): `/metrics`,
//! `/healthz`, `/readyz` and `/status`. One plain thread with blocking
//! sockets, one request per connection: it serves operators and scrapers,
//! never clients, and shares nothing with the shards but the [`Board`].

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use serde_json::json;

use super::export::{Exporter, render};
use super::{Board, readiness};
use crate::control::Control;
use crate::log;

/// A request head larger than this is refused (431).
const MAX_REQUEST_BYTES: usize = 8 << 10;
/// A slow or silent peer is dropped after this.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// What `/status` reports besides the shards' views.
#[derive(Debug, Clone)]
pub struct StatusInfo {
    /// SHA-1 of the effective configuration, first 16 hex digits: two
    /// gateways with the same digest run the same settings.
    pub config_digest: String,
    pub mode: &'static str,
    pub listen: SocketAddr,
}

struct Admin {
    registry: Registry,
    board: Arc<Board>,
    control: Arc<Control>,
    info: StatusInfo,
    started: Instant,
}

/// Binds the listener (so a taken port fails start-up) and serves it on a
/// thread. Returns the bound address (port 0 resolves here).
pub fn spawn(
    address: SocketAddr,
    board: Arc<Board>,
    control: Arc<Control>,
    info: StatusInfo,
) -> io::Result<SocketAddr> {
    // SO_REUSEPORT, like the client listener: during a zero-downtime
    // upgrade the new process binds the same admin address while the old
    // one drains (docs/OPERATIONS.md). A port held by anything else still
    // fails start-up.
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&address.into())?;
    socket.listen(64)?;
    let listener: TcpListener = socket.into();
    let bound = listener.local_addr()?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exporter {
        board: Arc::clone(&board),
        control: Arc::clone(&control),
    }));
    let admin = Admin {
        registry,
        board,
        control,
        info,
        started: Instant::now(),
    };
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Err(error) = admin.serve(stream) {
                    log::warn!("admin_request_failed", "admin request: {error}");
                }
            }
        })?;
    Ok(bound)
}

/// A response: status, content type, body.
type Response = (u16, &'static str, String);

impl Admin {
    fn serve(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let response = match read_head(&mut stream)? {
            Some(head) => self.answer(&head),
            None => (431, "text/plain", "request head too large\n".into()),
        };
        write_response(&mut stream, &response)
    }

    fn answer(&self, head: &str) -> Response {
        let mut words = head.split_ascii_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        if method != "GET" {
            return (405, "text/plain", "only GET\n".into());
        }
        let path = target.split('?').next().unwrap_or("");
        match path {
            "/metrics" => {
                let openmetrics = head.lines().any(|line| {
                    let line = line.to_ascii_lowercase();
                    line.starts_with("accept:") && line.contains("application/openmetrics-text")
                });
                let body = render(&self.registry, openmetrics);
                let content_type = if openmetrics {
                    "application/openmetrics-text; version=1.0.0; charset=utf-8"
                } else {
                    "text/plain; version=0.0.4; charset=utf-8"
                };
                (200, content_type, body)
            }
            "/healthz" => (200, "text/plain", "ok\n".into()),
            "/readyz" => match readiness(&self.board.views(), self.control.is_draining()) {
                Ok(()) => (200, "text/plain", "ready\n".into()),
                Err(reason) => (503, "text/plain", format!("{reason}\n")),
            },
            "/status" => (200, "application/json", self.status()),
            _ => (
                404,
                "text/plain",
                "not found: try /metrics, /healthz, /readyz or /status\n".into(),
            ),
        }
    }

    fn status(&self) -> String {
        let views = self.board.views();
        let draining = self.control.is_draining();
        let ready = readiness(&views, draining);
        let shards: Vec<_> = views
            .iter()
            .enumerate()
            .map(|(index, view)| match view {
                Some(view) => json!({
                    "index": index,
                    "connections": view.connections,
                    "busy_ratio": view.busy_ratio,
                    "draining": view.draining,
                }),
                None => json!({"index": index, "reporting": false}),
            })
            .collect();
        // One entry per router: its state is the worst of the shards' links.
        let mut routers: Vec<serde_json::Value> = Vec::new();
        for view in views.iter().flatten() {
            for router in &view.routers {
                let existing = routers
                    .iter_mut()
                    .find(|entry| entry["id"] == json!(router.id));
                match existing {
                    Some(entry) => {
                        if router.up {
                            let up = entry["links_up"].as_u64().unwrap_or(0) + 1;
                            entry["links_up"] = json!(up);
                        } else {
                            entry["state"] = json!(router.state);
                        }
                        let depth = entry["in_flight"].as_u64().unwrap_or(0);
                        entry["in_flight"] = json!(depth + u64::from(router.in_flight));
                        let held = entry["held"].as_u64().unwrap_or(0);
                        entry["held"] = json!(held + u64::from(router.held));
                    }
                    None => routers.push(json!({
                        "id": router.id,
                        "address": router.address.to_string(),
                        "state": router.state,
                        "links_up": u64::from(router.up),
                        "in_flight": router.in_flight,
                        "held": router.held,
                    })),
                }
            }
        }
        let epoch = views
            .iter()
            .flatten()
            .map(|view| view.shardmap_epoch)
            .max()
            .unwrap_or(0);
        let status = json!({
            "version": env!("CARGO_PKG_VERSION"),
            "mode": self.info.mode,
            "listen": self.info.listen.to_string(),
            "config_digest": self.info.config_digest,
            "uptime_s": self.started.elapsed().as_secs(),
            "ready": ready.is_ok(),
            "not_ready_reason": ready.err(),
            "draining": draining,
            "connections": views.iter().flatten().map(|view| view.connections).sum::<u64>(),
            "shards": shards,
            "routers": routers,
            "shardmap_epoch": epoch,
        });
        let mut text = serde_json::to_string_pretty(&status).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// Reads up to the end of the request head. `None`: too large.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        if head.len() > MAX_REQUEST_BYTES {
            return Ok(None);
        }
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    Ok(Some(String::from_utf8_lossy(&head).into_owned()))
}

fn write_response(
    stream: &mut TcpStream,
    (status, content_type, body): &Response,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}
