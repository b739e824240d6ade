#!/usr/bin/env python3
"""Interop client: drives a ringgate echo gateway with the `websockets` package.

Usage: python_client.py ws://HOST:PORT/

Exchanges text and binary messages of 0 B to 1 MiB (one at a time, then all
pipelined), a ping, a fragmented message of each type, and a close with 1000.
Prints one line per step; exits 0 on success, 1 on any mismatch, 2 on bad
usage and 3 when the `websockets` package is missing (which CI treats as a
failure, never a skip).

The gateway must allow 1 MiB messages (see gateway/tests/interop.rs).
"""

import random
import sys
import time

try:
    import websockets
    from websockets.sync.client import connect
except ImportError as error:
    print(
        f"FAIL: python package `websockets` is missing ({error}); "
        "install it with: python3 -m pip install 'websockets>=13'",
        file=sys.stderr,
    )
    sys.exit(3)

# Frame-length encoding edges (7-bit, 16-bit, 64-bit) and the largest message.
SIZES_BYTES = [0, 1, 125, 126, 65535, 65536, 1 << 20]
# Every wait is bounded: a stuck gateway fails the run instead of hanging it.
RECEIVE_TIMEOUT_S = 10
CLOSE_TIMEOUT_S = 5
MAX_MESSAGE_BYTES = 2 << 20


class Mismatch(Exception):
    pass


def text_of(size_bytes):
    """A str whose UTF-8 encoding is exactly `size_bytes` long and mixes 1-,
    2-, 3- and 4-byte characters, so code points straddle frame and receive
    buffer boundaries in the gateway's UTF-8 validation."""
    pattern = "a\u00e9\u20ac\U0001f600"  # 1 + 2 + 3 + 4 bytes
    encoded = (pattern * (size_bytes // 10 + 1)).encode()
    cut = size_bytes
    # Step back to a code point boundary, then pad with ASCII.
    while cut > 0 and (encoded[cut] & 0xC0) == 0x80:
        cut -= 1
    text = encoded[:cut].decode() + "z" * (size_bytes - cut)
    assert len(text.encode()) == size_bytes
    return text


def binary_of(size_bytes):
    return random.Random(size_bytes).randbytes(size_bytes)


def describe(value):
    kind = type(value).__name__
    length = len(value.encode()) if isinstance(value, str) else len(value)
    return f"{kind} of {length} B"


def first_difference(expected, actual):
    for index, (a, b) in enumerate(zip(expected, actual)):
        if a != b:
            return index
    return min(len(expected), len(actual))


def expect_echo(ws, sent, label):
    try:
        received = ws.recv(timeout=RECEIVE_TIMEOUT_S)
    except TimeoutError:
        raise Mismatch(f"{label}: no echo within {RECEIVE_TIMEOUT_S} s")
    if type(received) is not type(sent):
        raise Mismatch(f"{label}: sent {describe(sent)}, got {describe(received)}")
    if received != sent:
        at = first_difference(sent, received)
        raise Mismatch(
            f"{label}: sent {describe(sent)}, got {describe(received)} "
            f"differing first at index {at}"
        )


def messages():
    for size in SIZES_BYTES:
        yield f"text {size} B", text_of(size)
        yield f"binary {size} B", binary_of(size)


def exchange_one_at_a_time(ws):
    for label, message in messages():
        ws.send(message)
        expect_echo(ws, message, label)
        print(f"ok   {label}")


def exchange_pipelined(ws):
    batch = list(messages())
    for _, message in batch:
        ws.send(message)
    for label, message in batch:
        expect_echo(ws, message, f"pipelined {label}")
    print(f"ok   {len(batch)} messages pipelined, echoed in order")


def exchange_fragmented(ws):
    # An iterable is sent as one message, one frame per item.
    text_parts = ["frag", "mented \u20ac", "", " text"]
    ws.send(text_parts)
    expect_echo(ws, "".join(text_parts), "fragmented text")
    binary_parts = [b"\x00\x01", binary_of(70000), b"", b"\xff"]
    ws.send(binary_parts)
    expect_echo(ws, b"".join(binary_parts), "fragmented binary")
    print("ok   fragmented text and binary")


def exchange_ping(ws):
    pong = ws.ping(b"interop-ping")
    if not pong.wait(RECEIVE_TIMEOUT_S):
        raise Mismatch(f"ping: no pong within {RECEIVE_TIMEOUT_S} s")
    print("ok   ping answered by pong")


def close_cleanly(ws):
    started = time.monotonic()
    ws.close(1000, "interop done")
    elapsed_s = time.monotonic() - started
    received = ws.protocol.close_rcvd
    if received is None:
        raise Mismatch("close: the gateway sent no close frame")
    if received.code != 1000:
        raise Mismatch(f"close: sent 1000, gateway answered {received.code} {received.reason!r}")
    # websockets waits for the server to end TCP, up to close_timeout.
    if elapsed_s >= CLOSE_TIMEOUT_S * 0.9:
        raise Mismatch(f"close: the gateway did not end TCP ({elapsed_s:.1f} s)")
    print(
        f"ok   closed with {received.code} {received.reason!r}, "
        f"TCP ended after {elapsed_s * 1000:.0f} ms"
    )


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    url = sys.argv[1]
    # wss: the second argument is the CA certificate to trust.
    tls = {}
    if len(sys.argv) == 3:
        import ssl
        tls["ssl"] = ssl.create_default_context(cafile=sys.argv[2])
    print(f"websockets {websockets.__version__} -> {url}")
    try:
        with connect(
            url,
            **tls,
            open_timeout=RECEIVE_TIMEOUT_S,
            close_timeout=CLOSE_TIMEOUT_S,
            max_size=MAX_MESSAGE_BYTES,
        ) as ws:
            extensions = ws.response.headers.get("Sec-WebSocket-Extensions")
            print(f"ok   handshake (extensions accepted: {extensions})")
            exchange_one_at_a_time(ws)
            exchange_pipelined(ws)
            exchange_fragmented(ws)
            exchange_ping(ws)
            close_cleanly(ws)
    except Mismatch as error:
        print(f"FAIL: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # anything websockets raises is a failure too
        print(f"FAIL: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
