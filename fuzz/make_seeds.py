"""Writes the committed seed corpus: a few hand-made inputs per target."""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
MASK = bytes([0x37, 0xFA, 0x21, 0x3D])


def frame(first, payload, masked=True, length_form=None):
    """One frame; `length_form` forces the 16- or 64-bit length field."""
    n = len(payload)
    bit = 0x80 if masked else 0
    if length_form is None and n <= 125:
        head = bytes([first, bit | n])
    elif length_form in (None, 16) and n <= 0xFFFF:
        head = bytes([first, bit | 126]) + struct.pack(">H", n)
    else:
        head = bytes([first, bit | 127]) + struct.pack(">Q", n)
    if not masked:
        return head + payload
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


def decoder_input(settings, split, stream):
    return bytes([settings]) + struct.pack("<H", split) + stream


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "seed-" + name), "wb") as f:
        f.write(data)


fragmented = (
    frame(0x01, "Hé".encode())
    + frame(0x89, b"ping")
    + frame(0x00, "llo €".encode()[:5])
    + frame(0x80, "llo €".encode()[5:])
)
write("frame_decoder", "rfc-hello", decoder_input(0, 3, frame(0x81, b"Hello")))
write("frame_decoder", "fragmented-with-ping", decoder_input(0x10, 9, fragmented))
write("frame_decoder", "binary-16bit", decoder_input(0x08, 2, frame(0x82, bytes(range(200)))))
write("frame_decoder", "close", decoder_input(0, 1, frame(0x88, b"\x03\xe8bye") + frame(0x81, b"late")))
write("frame_decoder", "client-unmasked", decoder_input(1, 4, frame(0x81, b"Hello", masked=False) + frame(0x8A, b"", masked=False)))
write("frame_decoder", "limits-small", decoder_input(0x02, 5, frame(0x01, b"x" * 90) + frame(0x80, b"y" * 90)))

request = (
    b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v2, chat\r\n"
    b"Origin: https://example.com\r\n\r\n"
)
write("handshake", "upgrade-request", request)
write("handshake", "upgrade-request-with-frame", request + frame(0x81, b"Hello"))
write("handshake", "post-request", b"POST / HTTP/1.1\r\nHost: a\r\n\r\n")
write(
    "handshake",
    "server-101",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
)
write("handshake", "server-429", b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\n\r\n")
