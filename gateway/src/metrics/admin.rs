//! The admin HTTP listener (default 127.0.0.1:9090): `/metrics`,
//! `/healthz`, `/readyz` and `/status`. One plain thread with blocking
//! sockets, one request per connection: it serves operators and scrapers,
//! never clients, and shares nothing with the shards but the [`Board`]
//! (and the embedded router's snapshot slot).

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use prometheus_client::registry::Registry;
use ringgate_router::admin_http::{self, Request, Response};
use ringgate_router::metrics::RouterCollector;
use ringgate_router::server::Snapshots;
use serde_json::json;

use super::export::Exporter;
use super::{Board, readiness};
use crate::control::Control;

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

/// What the listener reads: the shards' views, the drain flag and, when
/// the gateway embeds a router, that router's snapshots.
#[derive(Debug)]
pub struct Exported {
    pub board: Arc<Board>,
    pub control: Arc<Control>,
    pub router: Option<Arc<Snapshots>>,
}

/// Binds the listener (so a taken port fails start-up) and serves it on a
/// thread. Returns the bound address (port 0 resolves here).
pub fn spawn(address: SocketAddr, exported: Exported, info: StatusInfo) -> io::Result<SocketAddr> {
    let Exported {
        board,
        control,
        router,
    } = exported;
    // SO_REUSEPORT, like the client listener: during a zero-downtime
    // upgrade the new process binds the same admin address while the old
    // one drains (docs/OPERATIONS.md). A port held by anything else still
    // fails start-up.
    let listener = admin_http::bind(address, true)?;
    let bound = listener.local_addr()?;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exporter {
        board: Arc::clone(&board),
        control: Arc::clone(&control),
    }));
    if let Some(snapshots) = router {
        registry.register_collector(Box::new(RouterCollector { snapshots }));
    }
    let admin = Admin {
        registry,
        board,
        control,
        info,
        started: Instant::now(),
    };
    admin_http::spawn(listener, move |request| admin.answer(request))?;
    Ok(bound)
}

impl Admin {
    fn answer(&self, request: &Request<'_>) -> Response {
        match request.path {
            "/metrics" => ringgate_router::metrics::response(&self.registry, request),
            "/healthz" => Response::text(200, "ok\n"),
            "/readyz" => match readiness(&self.board.views(), self.control.is_draining()) {
                Ok(()) => Response::text(200, "ready\n"),
                Err(reason) => Response::text(503, format!("{reason}\n")),
            },
            "/status" => Response {
                status: 200,
                content_type: "application/json",
                body: self.status(),
            },
            _ => Response::text(
                404,
                "not found: try /metrics, /healthz, /readyz or /status\n",
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
