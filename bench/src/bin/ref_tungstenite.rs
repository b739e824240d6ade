//! `ref-tungstenite`: a reference WebSocket echo server on tokio-tungstenite.
//!
//! Runs beside the gateway in the same benchmark run, so its numbers are a
//! baseline from the same machine and load. Single-threaded tokio runtime,
//! echoes every text/binary message with its type, messages up to 16 MiB;
//! tungstenite answers pings and close frames itself. Not tuned beyond that.

use std::net::SocketAddr;

use anyhow::Result;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use ringgate_bench::{MESSAGE_BYTES_MAX, serve};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, protocol::WebSocketConfig};

#[derive(Parser)]
#[command(about = "tokio-tungstenite WebSocket echo server for same-run comparisons")]
struct Args {
    /// Address to accept WebSocket connections on.
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    serve(args.listen, |stream| async move {
        if let Err(error) = echo(stream).await {
            eprintln!("websocket: {error}");
        }
    })
    .await?;
    Ok(())
}

/// Echoes text and binary messages until the peer closes.
async fn echo(stream: TcpStream) -> Result<(), tungstenite::Error> {
    let config = WebSocketConfig::default()
        .max_message_size(Some(MESSAGE_BYTES_MAX))
        .max_frame_size(Some(MESSAGE_BYTES_MAX));
    let mut ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}
