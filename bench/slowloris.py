#!/usr/bin/env python3
"""Memory under a slowloris attack: N connections from N distinct source
addresses (127.1.x.y), each sending a partial upgrade request and then
nothing, held at once; meanwhile an honest client keeps echoing.

  bench/slowloris.py [--conns 15000] [--bin target/release/ringgate]

Reports the gateway's RSS growth per attacking connection and the honest
client's echo round trip before and during the attack (median and p99 of
200 echoes each). The gateway runs with a handshake deadline of 60 s so all
N partial handshakes are held at the same time (the worst case for memory;
with the default 5 s they would be closed as they arrive).
"""

import argparse
import os
import selectors
import socket
import statistics
import sys
import tempfile
import time

from benchlib import BIN, rss_bytes, start_server, stop

PARTIAL = b"GET /chat HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\n"


def source_address(index):
    # 127.1.0.1 .. 127.1.255.254, then 127.2.x.y: one distinct address each.
    block, rest = divmod(index, 65_000)
    return f"127.{1 + block}.{rest // 254}.{rest % 254 + 1}"


def honest_round_trips(address, count=200):
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    frame = bytes([0x81, 0x80 | 5, 1, 2, 3, 4]) + bytes(b ^ m for b, m in zip(b"hello", [1, 2, 3, 4, 1]))
    times = []
    for _ in range(count):
        started = time.perf_counter()
        sock.sendall(frame)
        got = b""
        while len(got) < 7:
            got += sock.recv(64)
        times.append((time.perf_counter() - started) * 1e6)
    sock.close()
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, default=15_000)
    parser.add_argument("--bin", default=os.path.join(BIN, "ringgate"))
    options = parser.parse_args()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write("[limits]\nhandshake_timeout_ms = 60000\n")
    config.close()
    gateway, address = start_server(
        [options.bin, "--echo", "--shards", "1", "--listen", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", "--config", config.name], 0)
    try:
        host, port = address.rsplit(":", 1)
        time.sleep(0.3)
        before_rtt = honest_round_trips(address)
        rss_before = rss_bytes(gateway.pid)
        selector = selectors.DefaultSelector()
        sockets = []
        failures = 0
        started = time.time()
        for index in range(options.conns):
            sock = socket.socket()
            sock.setblocking(False)
            try:
                sock.bind((source_address(index), 0))
                sock.connect_ex((host, int(port)))
            except OSError:
                failures += 1
                sock.close()
                continue
            sockets.append(sock)
            selector.register(sock, selectors.EVENT_WRITE)
            if len(sockets) % 500 == 0:
                drain(selector)
        drain(selector, final=True)
        opened = time.time() - started
        time.sleep(1.0)
        rss_during = rss_bytes(gateway.pid)
        during_rtt = honest_round_trips(address)
        held = sum(1 for s in sockets if still_open(s))
        growth = rss_during - rss_before
        print(f"{len(sockets)} partial handshakes from {len(sockets)} addresses opened in "
              f"{opened:.1f}s ({failures} failed to open), {held} still held")
        print(f"gateway RSS {rss_before / 1e6:.1f} MB -> {rss_during / 1e6:.1f} MB: "
              f"{growth / max(len(sockets), 1):.0f} bytes per attacking connection (limit 2048)")
        print(f"honest echo round trip: before median {before_rtt[0]:.0f} us p99 {before_rtt[1]:.0f} "
              f"us; during median {during_rtt[0]:.0f} us p99 {during_rtt[1]:.0f} us")
        for sock in sockets:
            sock.close()
    finally:
        stop(gateway)
        os.unlink(config.name)


def drain(selector, final=False):
    """Sends the partial request on every socket whose connect finished."""
    deadline = time.time() + (10 if final else 0.05)
    while selector.get_map() and time.time() < deadline:
        for key, _ in selector.select(timeout=0.05):
            sock = key.fileobj
            selector.unregister(sock)
            try:
                sock.send(PARTIAL)
            except OSError:
                pass
        if not final:
            break


def still_open(sock):
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(main())
