//! A chat backend on the ringgate backend SDK: it owns the topics under a
//! prefix, accepts a message only when its `data` is a JSON object with a
//! string `text` of at most 2,000 characters, keeps the last N messages of
//! every topic, and replays them to each connection that joins the topic.
//!
//! ```text
//! cargo run --example chat_history -- --router 127.0.0.1:7100 [--router ...] \
//!     [--node-id 1] [--prefix chat.] [--history 50]
//! ```
//!
//! It also answers retries it already holds as duplicates (with the
//! original id): after a router restart the router's dedup table is empty,
//! but this history is not. `docs/BACKENDS.md` walks through it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{Code, ConnectionRef};
use ringgate_router::sdk::{Backend, DeliverTo, Delivery, Event, Message, PresenceChange};
use serde_json::Value;

/// Longest `text` accepted, in characters.
const MAX_TEXT_CHARS: usize = 2000;

#[derive(Parser, Debug)]
struct Args {
    /// A router to attach to (repeat for every router of the fleet).
    #[arg(long = "router", required = true)]
    routers: Vec<SocketAddr>,
    /// This backend's node id (unique among backends).
    #[arg(long, default_value_t = 1)]
    node_id: u32,
    /// The topics this service owns.
    #[arg(long, default_value = "chat.")]
    prefix: String,
    /// Messages kept per topic.
    #[arg(long, default_value_t = 50)]
    history: usize,
}

/// One accepted message, as it will be replayed.
struct Stored {
    message_id: MessageId,
    from: String,
    anonymous: bool,
    client_msg_id: String,
    data: Vec<u8>,
}

/// The last `limit` messages of each topic.
struct History {
    topics: HashMap<String, VecDeque<Stored>>,
    limit: usize,
}

impl History {
    /// A message already taken with the same dedup key as `message`
    /// (topic, user, client id; topic and client id when anonymous).
    fn find(&self, message: &Message) -> Option<MessageId> {
        if message.client_msg_id.is_empty() {
            return None;
        }
        self.topics
            .get(&message.topic)?
            .iter()
            .find(|stored| {
                stored.client_msg_id == message.client_msg_id
                    && stored.anonymous == message.anonymous
                    && (message.anonymous || stored.from == message.user)
            })
            .map(|stored| stored.message_id)
    }

    fn keep(&mut self, message: Message) {
        let messages = self.topics.entry(message.topic).or_default();
        if messages.len() == self.limit {
            messages.pop_front();
        }
        messages.push_back(Stored {
            message_id: message.message_id,
            from: message.user,
            anonymous: message.anonymous,
            client_msg_id: message.client_msg_id,
            data: message.data,
        });
    }
}

/// Why `data` is refused, if it is.
fn check(data: &[u8]) -> Result<(), &'static str> {
    let value: Value = serde_json::from_slice(data).map_err(|_| "data is not JSON")?;
    let object = value.as_object().ok_or("data must be a JSON object")?;
    let text = object
        .get("text")
        .and_then(Value::as_str)
        .ok_or("data needs a string \"text\" field")?;
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err("text is longer than 2000 characters");
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let backend = Backend::attach(&args.routers, args.node_id)?;
    backend.claim(&args.prefix)?;
    println!(
        "chat_history: {} of {} routers attached, claimed {:?}",
        backend.routers_up(),
        args.routers.len(),
        args.prefix
    );
    let mut history = History {
        topics: HashMap::new(),
        limit: args.history.max(1),
    };
    loop {
        let Some(event) = backend.next_event(Duration::from_secs(1)) else {
            continue;
        };
        match event {
            Event::Publish { message, reply } => {
                if let Some(original) = history.find(&message) {
                    ignore_link_down(reply.duplicate(original))?;
                    continue;
                }
                match check(&message.data) {
                    Ok(()) => {
                        // Keep it before accepting: once the client hears
                        // `ack`, this service holds the message.
                        history.keep(message);
                        ignore_link_down(reply.accept())?;
                    }
                    Err(reason) => ignore_link_down(reply.reject(Code::BAD_REQUEST, reason))?,
                }
            }
            Event::Presence(notice) => {
                if let PresenceChange::Joined(topic) = &notice.change
                    && topic.starts_with(&args.prefix)
                {
                    replay(&backend, &history, topic, notice.connection);
                }
            }
            Event::RouterUp { router, address } => {
                eprintln!("chat_history: router {router} at {address} up");
            }
            Event::RouterDown {
                address, reason, ..
            } => eprintln!("chat_history: router at {address} down: {reason}"),
        }
    }
}

/// Sends a topic's history to a connection that joined it, oldest first,
/// with the original ids (a client that saw a message live can drop the
/// replayed copy).
fn replay(backend: &Backend, history: &History, topic: &str, connection: ConnectionRef) {
    let Some(messages) = history.topics.get(topic) else {
        return;
    };
    for stored in messages {
        let delivery = Delivery {
            topic,
            from: &stored.from,
            client_msg_id: &stored.client_msg_id,
            message_id: Some(stored.message_id),
            data: &stored.data,
            ..Delivery::default()
        };
        if let Err(error) = backend.deliver(DeliverTo::Connection(connection), &delivery) {
            eprintln!("chat_history: replay to {connection:?} failed: {error}");
            return;
        }
    }
}

/// A verdict for a link that broke meanwhile: the router already told the
/// client `unavailable`, and the retry will come back. Not an error here.
fn ignore_link_down(
    result: Result<(), ringgate_router::sdk::SdkError>,
) -> Result<(), ringgate_router::sdk::SdkError> {
    match result {
        Err(ringgate_router::sdk::SdkError::LinkDown(_)) => Ok(()),
        other => other,
    }
}
