//! `ref-fastws`: a reference WebSocket echo server on hyper + fastwebsockets.
//!
//! Runs beside the gateway in the same benchmark run, so its numbers are a
//! baseline from the same machine and load. Single-threaded tokio runtime,
//! hyper http1 for the upgrade, fragmented messages reassembled by
//! `FragmentCollector` and echoed as one frame with the same opcode, messages
//! up to 16 MiB, automatic pong and close replies. Not tuned beyond that.
//!
//! Limit: fastwebsockets caps each frame, not the reassembled message, so a
//! message sent in many frames can exceed 16 MiB here (unlike
//! `ref-tungstenite` and the gateway). Bench loads send whole messages.

use std::net::SocketAddr;

use anyhow::Result;
use bytes::Bytes;
use clap::Parser;
use fastwebsockets::upgrade::{UpgradeFut, upgrade};
use fastwebsockets::{FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use ringgate_bench::{MESSAGE_BYTES_MAX, serve};
use tokio::net::TcpStream;

#[derive(Parser)]
#[command(about = "fastwebsockets WebSocket echo server for same-run comparisons")]
struct Args {
    /// Address to accept WebSocket connections on.
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    serve(args.listen, serve_http).await?;
    Ok(())
}

/// Serves the HTTP/1 upgrade request on one connection.
async fn serve_http(stream: TcpStream) {
    let connection = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service_fn(upgrade_to_echo))
        .with_upgrades();
    if let Err(error) = connection.await {
        eprintln!("http: {error}");
    }
}

/// Answers 101 and starts the echo once hyper hands over the upgraded stream.
async fn upgrade_to_echo(
    mut request: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade(&mut request)?;
    tokio::spawn(async move {
        if let Err(error) = echo(upgraded).await {
            eprintln!("websocket: {error}");
        }
    });
    Ok(response)
}

/// Echoes text and binary messages until the peer closes; the close reply is
/// sent by `set_auto_close`.
async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = upgraded.await?;
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    // fastwebsockets refuses a frame whose length is >= the limit.
    ws.set_max_message_size(MESSAGE_BYTES_MAX + 1);
    let mut ws = FragmentCollector::new(ws);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}
