//! A raw router-protocol peer for tests: blocking std sockets and the codec,
//! nothing from the router under test. Each test binary uses part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ringgate_router::msgid::MessageId;
use ringgate_router::protocol::{
    self, Capabilities, Code, ConnectionRef, Credit, CreditWindow, Deliver, Frame, Hello, Ping,
    Pong, PrefixRequest, Publish, PublishAck, PublishOutcome, Reply, Role, TopicRequest,
    UNASSIGNED_ID,
};
use ringgate_router::server::{Router, RouterConfig, RouterThread};
use ringgate_uring::RingConfig;

/// How long a test waits for a frame that should come.
pub const WAIT: Duration = Duration::from_secs(15);
/// How long a test waits to be sure a frame does not come.
pub const QUIET: Duration = Duration::from_millis(300);

/// A router on an ephemeral loopback port, on its own thread.
pub fn start_router(config: RouterConfig) -> RouterThread {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    Router::new(config).spawn(listener).expect("spawn router")
}

/// A router config for tests: small tables, quick timeouts.
pub fn test_config(id: u32) -> RouterConfig {
    RouterConfig {
        id,
        dedup_capacity: 4096,
        claim_grace_ms: 0,
        ring: RingConfig {
            sq_entries: 256,
            cq_entries: 1024,
            buffer_count: 64,
            buffer_size: 16 << 10,
        },
        ..RouterConfig::default()
    }
}

/// A generous credit grant.
pub const PLENTY: Credit = Credit {
    messages: 100_000,
    bytes: 1 << 30,
};

/// One frame read off the wire, owned.
pub struct Received(Vec<u8>);

impl Received {
    pub fn frame(&self) -> Frame<'_> {
        protocol::decode(&self.0).expect("valid").expect("whole").0
    }
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.frame())
    }
}

/// A gateway or backend speaking the protocol by hand.
pub struct Peer {
    stream: TcpStream,
    input: Vec<u8>,
    pub router_id: u32,
    pub node_id: u32,
    /// What the router lets this peer send (HELLO_ACK plus CREDITs).
    pub send_credit: CreditWindow,
    next_request: u64,
    /// Frames read while waiting for credit, returned first by `next`.
    stashed: VecDeque<Received>,
}

impl Peer {
    /// Connects and says HELLO; panics unless the router answers HELLO_ACK.
    pub fn attach(address: SocketAddr, role: Role, node_id: u32, credit: Credit) -> Peer {
        let capabilities = match role {
            Role::Backend => Capabilities::KNOWN,
            _ => Capabilities::NONE,
        };
        Peer::attach_with(address, role, node_id, credit, capabilities)
    }

    pub fn attach_with(
        address: SocketAddr,
        role: Role,
        node_id: u32,
        credit: Credit,
        capabilities: Capabilities,
    ) -> Peer {
        let mut peer = Peer::connect(address);
        peer.node_id = node_id;
        peer.send(&hello(role, node_id, capabilities, credit, b""));
        let ack = peer.next().expect("HELLO_ACK");
        match ack.frame() {
            Frame::HelloAck(ack) => {
                assert_eq!(ack.role, Role::Router);
                peer.router_id = ack.node_id;
                peer.send_credit = CreditWindow::new(ack.credit);
            }
            other => panic!("expected HELLO_ACK, got {other:?}"),
        }
        peer
    }

    pub fn gateway(address: SocketAddr, node_id: u32) -> Peer {
        Peer::attach(address, Role::Gateway, node_id, PLENTY)
    }

    pub fn backend(address: SocketAddr, node_id: u32) -> Peer {
        Peer::attach(address, Role::Backend, node_id, PLENTY)
    }

    /// A bare TCP connection, no HELLO yet.
    pub fn connect(address: SocketAddr) -> Peer {
        let stream = TcpStream::connect(address).expect("connect");
        stream.set_nodelay(true).unwrap();
        Peer {
            stream,
            input: Vec::new(),
            router_id: 0,
            node_id: 0,
            send_credit: CreditWindow::default(),
            next_request: 1,
            stashed: VecDeque::new(),
        }
    }

    pub fn send(&mut self, frame: &Frame<'_>) {
        let mut bytes = Vec::new();
        protocol::encode(frame, &mut bytes).expect("encode");
        if frame.frame_type().is_flow_controlled() {
            // Wait for credit like a real peer; tests that break the rule
            // use send_raw.
            let deadline = Instant::now() + WAIT;
            while !self.send_credit.can_spend() {
                let received = self.read_frame(deadline).expect("credit from the router");
                match received.frame() {
                    Frame::Credit(credit) => self.send_credit.grant(credit).unwrap(),
                    _ => self.stashed.push_back(received),
                }
            }
            self.send_credit.spend(bytes.len()).unwrap();
        }
        self.stream.write_all(&bytes).expect("write");
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// The next frame from the router within `WAIT`, PINGs answered and
    /// CREDITs applied on the way; `None` at EOF.
    pub fn next(&mut self) -> Option<Received> {
        self.next_within(WAIT)
    }

    pub fn next_within(&mut self, timeout: Duration) -> Option<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let frame = match self.stashed.pop_front() {
                Some(frame) => frame,
                None => self.read_frame(deadline)?,
            };
            match frame.frame() {
                Frame::Ping(ping) => self.send(&Frame::Pong(Pong {
                    nonce: ping.nonce,
                    ping_sent_us: ping.sent_us,
                    sent_us: 0,
                })),
                Frame::Credit(credit) => self.send_credit.grant(credit).unwrap(),
                _ => return Some(frame),
            }
        }
    }

    /// Any frame, nothing skipped; `None` at EOF or timeout.
    pub fn read_frame(&mut self, deadline: Instant) -> Option<Received> {
        loop {
            if let Some((_, length)) = protocol::decode(&self.input).expect("router sent garbage") {
                let bytes: Vec<u8> = self.input.drain(..length).collect();
                return Some(Received(bytes));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.input.extend_from_slice(&chunk[..n]),
                Err(error)
                    if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
                {
                    return None;
                }
                Err(error) if error.kind() == ErrorKind::ConnectionReset => return None,
                Err(error) => panic!("read: {error}"),
            }
        }
    }

    /// Asserts no frame (but PING/CREDIT) comes within `QUIET`.
    pub fn assert_quiet(&mut self) {
        if let Some(frame) = self.next_within(QUIET) {
            panic!("node {} expected nothing, got {frame:?}", self.node_id);
        }
    }

    /// Expects GOAWAY with `code`, then the connection's end.
    pub fn expect_goaway(&mut self, code: Code) {
        let frame = self.next().expect("GOAWAY");
        match frame.frame() {
            Frame::GoAway(go_away) => assert_eq!(go_away.code, code, "{}", go_away.text),
            other => panic!("expected GOAWAY {code:?}, got {other:?}"),
        }
        self.expect_closed();
    }

    pub fn expect_closed(&mut self) {
        let deadline = Instant::now() + WAIT;
        while let Some(frame) = self.read_frame(deadline) {
            assert!(
                matches!(frame.frame(), Frame::Ping(_) | Frame::Credit(_)),
                "expected the end, got {frame:?}"
            );
        }
        assert!(Instant::now() < deadline, "connection still open");
    }

    fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Sends a request frame and returns the REPLY's code and text.
    fn request(&mut self, make: impl FnOnce(u64) -> Frame<'static>) -> (Code, String) {
        let request_id = self.request_id();
        self.send(&make(request_id));
        let frame = self.next().expect("REPLY");
        match frame.frame() {
            Frame::Reply(Reply {
                request_id: answered,
                code,
                text,
            }) => {
                assert_eq!(answered, request_id);
                (code, text.to_string())
            }
            other => panic!("expected REPLY, got {other:?}"),
        }
    }

    pub fn subscribe(&mut self, topic: &str) {
        let topic: &'static str = Box::leak(topic.to_string().into_boxed_str());
        let (code, text) =
            self.request(|request_id| Frame::Subscribe(TopicRequest { request_id, topic }));
        assert_eq!(code, Code::OK, "{text}");
    }

    pub fn unsubscribe(&mut self, topic: &str) {
        let topic: &'static str = Box::leak(topic.to_string().into_boxed_str());
        let (code, text) =
            self.request(|request_id| Frame::Unsubscribe(TopicRequest { request_id, topic }));
        assert_eq!(code, Code::OK, "{text}");
    }

    pub fn claim(&mut self, prefix: &str) -> (Code, String) {
        let prefix: &'static str = Box::leak(prefix.to_string().into_boxed_str());
        self.request(|request_id| Frame::Claim(PrefixRequest { request_id, prefix }))
    }

    pub fn release(&mut self, prefix: &str) -> (Code, String) {
        let prefix: &'static str = Box::leak(prefix.to_string().into_boxed_str());
        self.request(|request_id| Frame::Release(PrefixRequest { request_id, prefix }))
    }

    /// A gateway publish from connection 1 of this node.
    pub fn publish(
        &mut self,
        publish_id: u64,
        topic: &str,
        user: &str,
        client_id: &str,
        data: &str,
    ) {
        self.send(&Frame::Publish(publish(
            self.node_id,
            publish_id,
            topic,
            user,
            client_id,
            data.as_bytes(),
        )));
    }

    /// Expects PUBLISH_ACK for `publish_id`; returns (duplicate?, id) for
    /// an ack, panics on a refusal.
    pub fn expect_ack(&mut self, publish_id: u64) -> (bool, MessageId) {
        let frame = self.next().expect("PUBLISH_ACK");
        match frame.frame() {
            Frame::PublishAck(PublishAck {
                publish_id: answered,
                outcome,
                ..
            }) => {
                assert_eq!(answered, publish_id, "{outcome:?}");
                match outcome {
                    PublishOutcome::Accepted { message_id } => (false, message_id),
                    PublishOutcome::Duplicate { message_id } => (true, message_id),
                    other => panic!("publish {publish_id} refused: {other:?}"),
                }
            }
            other => panic!("expected PUBLISH_ACK {publish_id}, got {other:?}"),
        }
    }

    /// Expects a refusal for `publish_id`: (unavailable?, code, text).
    pub fn expect_refusal(&mut self, publish_id: u64) -> (bool, Code, String) {
        let frame = self.next().expect("PUBLISH_ACK");
        match frame.frame() {
            Frame::PublishAck(PublishAck {
                publish_id: answered,
                outcome,
                ..
            }) => {
                assert_eq!(answered, publish_id);
                match outcome {
                    PublishOutcome::Rejected(refusal) => {
                        (false, refusal.code, refusal.text.to_string())
                    }
                    PublishOutcome::Unavailable(refusal) => {
                        (true, refusal.code, refusal.text.to_string())
                    }
                    other => panic!("publish {publish_id} taken: {other:?}"),
                }
            }
            other => panic!("expected PUBLISH_ACK {publish_id}, got {other:?}"),
        }
    }

    /// Expects the PUBLISH_ACK of `publish_id` and a DELIVER, in either
    /// order (the ack is a control frame, the DELIVER flow-controlled).
    pub fn expect_ack_and_deliver(&mut self, publish_id: u64) -> ((bool, MessageId), Delivered) {
        let first = self.next().expect("ack or deliver");
        if let Frame::Deliver(deliver) = first.frame() {
            let delivered = Delivered::from(&deliver);
            return (self.expect_ack(publish_id), delivered);
        }
        self.stashed.push_front(first);
        let ack = self.expect_ack(publish_id);
        (ack, self.expect_deliver())
    }

    /// Expects a DELIVER and returns it owned.
    pub fn expect_deliver(&mut self) -> Delivered {
        let frame = self.next().expect("DELIVER");
        match frame.frame() {
            Frame::Deliver(deliver) => Delivered::from(&deliver),
            other => panic!("node {} expected DELIVER, got {other:?}", self.node_id),
        }
    }

    /// A backend's next PUBLISH, owned.
    pub fn expect_publish(&mut self) -> Forwarded {
        let frame = self.next().expect("PUBLISH");
        match frame.frame() {
            Frame::Publish(publish) => Forwarded {
                publish_id: publish.publish_id,
                message_id: publish.message_id,
                sender: publish.sender,
                topic: publish.topic.to_string(),
                user: publish.user.to_string(),
                client_msg_id: publish.client_msg_id.to_string(),
                payload: String::from_utf8(publish.payload.to_vec()).unwrap(),
            },
            other => panic!("backend expected PUBLISH, got {other:?}"),
        }
    }

    /// A backend's verdict.
    pub fn verdict(&mut self, publish_id: u64, outcome: PublishOutcome<'_>, no_fanout: bool) {
        self.send(&Frame::PublishAck(PublishAck {
            publish_id,
            outcome,
            no_fanout,
        }));
    }

    pub fn accept(&mut self, forwarded: &Forwarded) {
        let outcome = PublishOutcome::Accepted {
            message_id: forwarded.message_id,
        };
        self.verdict(forwarded.publish_id, outcome, false);
    }

    pub fn ping(&mut self, nonce: u64) {
        self.send(&Frame::Ping(Ping { nonce, sent_us: 1 }));
    }
}

/// A PUBLISH as a backend got it, owned.
#[derive(Clone, Debug)]
pub struct Forwarded {
    pub publish_id: u64,
    pub message_id: MessageId,
    pub sender: ConnectionRef,
    pub topic: String,
    pub user: String,
    pub client_msg_id: String,
    pub payload: String,
}

/// A DELIVER's fields, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub message_id: MessageId,
    pub target: String,
    pub topic: String,
    pub from: String,
    pub client_msg_id: String,
    pub hops: Option<Vec<u64>>,
    pub payload: String,
}

impl From<&Deliver<'_>> for Delivered {
    fn from(deliver: &Deliver<'_>) -> Delivered {
        Delivered {
            message_id: deliver.message_id,
            target: format!("{:?}", deliver.target),
            topic: deliver.topic.to_string(),
            from: deliver.from.to_string(),
            client_msg_id: deliver.client_msg_id.to_string(),
            hops: deliver.hops.map(|hops| hops.iter().collect()),
            payload: String::from_utf8(deliver.payload.to_vec()).unwrap(),
        }
    }
}

pub fn hello<'a>(
    role: Role,
    node_id: u32,
    capabilities: Capabilities,
    credit: Credit,
    token: &'a [u8],
) -> Frame<'a> {
    Frame::Hello(Hello {
        min_version: 1,
        max_version: 1,
        role,
        node_id,
        capabilities,
        max_body_bytes: 1 << 20,
        ping_interval_ms: 0,
        credit,
        agent: "test-peer",
        token,
        extensions: &[],
    })
}

pub fn publish<'a>(
    gateway: u32,
    publish_id: u64,
    topic: &'a str,
    user: &'a str,
    client_msg_id: &'a str,
    payload: &'a [u8],
) -> Publish<'a> {
    Publish {
        publish_id,
        message_id: UNASSIGNED_ID,
        sender: ConnectionRef {
            gateway,
            connection: 1,
        },
        topic,
        user,
        anonymous: false,
        client_msg_id,
        trace_id: "",
        hops: None,
        payload,
    }
}
