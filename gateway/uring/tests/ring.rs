//! The unsafe layer against a real kernel ring over loopback TCP: buffer
//! ownership through recv, ENOBUFS and re-arm, cancel, and send buffers
//! coming back with their completion.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use ringgate_uring::{Completion, RingConfig, Uring};

fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

fn ring(buffer_count: u16, buffer_size: u32) -> Uring {
    Uring::new(&RingConfig {
        sq_entries: 64,
        cq_entries: 256,
        buffer_count,
        buffer_size,
    })
    .unwrap()
}

/// Waits for completions until `done` says stop (bounded in time).
fn collect(uring: &mut Uring, mut done: impl FnMut(&mut Uring, Completion) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut queue = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for completions"
        );
        uring.ops.submit_and_wait(1).unwrap();
        uring.ops.drain(&mut uring.buffers, &mut queue);
        for completion in queue.drain(..) {
            if done(uring, completion) {
                return;
            }
        }
    }
}

#[test]
fn multishot_recv_lends_buffers_that_come_back() {
    let (mut client, server) = pair();
    let mut uring = ring(4, 1024);
    uring.ops.recv_multishot(server.as_raw_fd(), 7).unwrap();
    let mut received = Vec::new();
    for round in 0..10u8 {
        client.write_all(&[round; 100]).unwrap();
        collect(&mut uring, |uring, completion| match completion {
            Completion::Recv {
                token: 7,
                result: Ok(Some(buffer)),
                more,
            } => {
                assert!(more, "multishot ended early");
                received.extend_from_slice(uring.buffers.bytes_mut(&buffer));
                uring.buffers.recycle(buffer);
                uring.buffers.publish();
                received.len() == 100 * (usize::from(round) + 1)
            }
            other => panic!("unexpected {other:?}"),
        });
    }
    assert_eq!(uring.buffers.lent(), 0);
    let expected: Vec<u8> = (0..10u8).flat_map(|r| [r; 100]).collect();
    assert_eq!(received, expected, "40 recvs through a 4-buffer ring");
}

#[test]
fn a_dry_ring_ends_the_recv_with_enobufs_and_loses_nothing() {
    let (mut client, server) = pair();
    let mut uring = ring(1, 512);
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    client.write_all(&data).unwrap();
    uring.ops.recv_multishot(server.as_raw_fd(), 1).unwrap();
    let mut received = Vec::new();
    let mut enobufs = 0;
    collect(&mut uring, |uring, completion| {
        match completion {
            Completion::Recv {
                result: Ok(Some(buffer)),
                ..
            } => {
                received.extend_from_slice(uring.buffers.bytes_mut(&buffer));
                uring.buffers.recycle(buffer);
            }
            Completion::Recv {
                result: Err(error),
                more: false,
                ..
            } => {
                assert_eq!(error.raw_os_error(), Some(libc::ENOBUFS));
                enobufs += 1;
                uring.buffers.publish();
                uring.ops.recv_multishot(server.as_raw_fd(), 1).unwrap();
            }
            other => panic!("unexpected {other:?}"),
        }
        received.len() == data.len()
    });
    assert!(enobufs > 0, "a one-buffer ring never ran dry");
    assert_eq!(received, data);
}

#[test]
fn cancel_ends_an_armed_recv() {
    let (_client, server) = pair();
    let mut uring = ring(2, 512);
    uring.ops.recv_multishot(server.as_raw_fd(), 3).unwrap();
    uring.ops.submit_and_wait(0).unwrap();
    uring.ops.cancel_recv(3).unwrap();
    let (mut recv_ended, mut cancel_done) = (false, false);
    collect(&mut uring, |_, completion| {
        match completion {
            Completion::Recv {
                token: 3,
                result: Err(error),
                more: false,
            } => {
                assert_eq!(error.raw_os_error(), Some(libc::ECANCELED));
                recv_ended = true;
            }
            Completion::Cancel { token: 3 } => cancel_done = true,
            other => panic!("unexpected {other:?}"),
        }
        recv_ended && cancel_done
    });
    assert_eq!(uring.buffers.lent(), 0);
}

#[test]
fn sends_hand_their_buffer_back() {
    let (mut client, server) = pair();
    let mut uring = ring(2, 512);
    let buffer = b"hello over io_uring".to_vec();
    let pointer = buffer.as_ptr();
    uring.ops.send(server.as_raw_fd(), buffer, 6, 9).unwrap();
    collect(&mut uring, |_, completion| match completion {
        Completion::Send {
            token: 9,
            result,
            buffer,
            offset,
        } => {
            assert_eq!(result.unwrap(), 13);
            assert_eq!(offset, 6);
            assert_eq!(buffer.as_ptr(), pointer, "the same allocation comes back");
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    let mut text = [0u8; 13];
    client.read_exact(&mut text).unwrap();
    assert_eq!(&text, b"over io_uring");
}

#[test]
fn a_peer_close_is_end_of_stream() {
    let (client, server) = pair();
    let mut uring = ring(2, 512);
    uring.ops.recv_multishot(server.as_raw_fd(), 4).unwrap();
    drop(client);
    collect(&mut uring, |_, completion| match completion {
        Completion::Recv {
            token: 4,
            result: Ok(None),
            more: false,
        } => true,
        other => panic!("unexpected {other:?}"),
    });
}

#[test]
fn chunked_sends_carry_owned_and_shared_bytes_in_order() {
    use ringgate_uring::Chunk;
    use std::rc::Rc;
    let (mut client, server) = pair();
    let mut uring = ring(2, 512);
    let shared: Rc<[u8]> = Rc::from(&b"-shared-"[..]);
    let chunks = vec![
        Chunk::Owned(b"first".to_vec()),
        Chunk::Shared(Rc::clone(&shared)),
        Chunk::Owned(b"last".to_vec()),
    ];
    // Skip into the middle of the first chunk, as a resubmitted short write does.
    uring
        .ops
        .send_chunks(server.as_raw_fd(), chunks, 2, 11)
        .unwrap();
    assert_eq!(
        Rc::strong_count(&shared),
        2,
        "the ring holds the shared frame"
    );
    collect(&mut uring, |_, completion| match completion {
        Completion::SendChunks {
            token: 11,
            result,
            chunks,
            skip,
        } => {
            assert_eq!(result.unwrap(), 15);
            assert_eq!((chunks.len(), skip), (3, 2));
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    assert_eq!(
        Rc::strong_count(&shared),
        1,
        "the shared frame came back and was dropped"
    );
    let mut text = [0u8; 15];
    client.read_exact(&mut text).unwrap();
    assert_eq!(&text, b"rst-shared-last");
}

#[test]
fn connect_reaches_a_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let mut uring = ring(2, 512);
    uring
        .ops
        .connect(socket.as_raw_fd(), listener.local_addr().unwrap(), 5)
        .unwrap();
    collect(&mut uring, |_, completion| match completion {
        Completion::Connect { token: 5, result } => {
            result.unwrap();
            true
        }
        other => panic!("unexpected {other:?}"),
    });
    let (accepted, _) = listener.accept().unwrap();
    assert_eq!(
        accepted.peer_addr().unwrap(),
        socket.local_addr().unwrap().as_socket().unwrap()
    );
    // A refused connect reports the errno.
    let closed_port = {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    uring
        .ops
        .connect(socket.as_raw_fd(), closed_port, 6)
        .unwrap();
    collect(&mut uring, |_, completion| match completion {
        Completion::Connect { token: 6, result } => {
            assert_eq!(result.unwrap_err().raw_os_error(), Some(libc::ECONNREFUSED));
            true
        }
        other => panic!("unexpected {other:?}"),
    });
}
