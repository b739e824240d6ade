#!/usr/bin/env python3
"""wss against a running gateway: TLS handshake rate and memory per idle TLS
connection.

  bench/tls_idle.py [--conns 2000] [--bin target/release/ringgate]

Starts `ringgate --echo --shards 1` on CPU 0 with the test certificate
(gateway/tests/tls_certs, ECDSA P-256), opens --conns wss connections from
this process (TLS 1.3 + WebSocket upgrade, one at a time, trusting the test
CA), and reports upgrades per second (the client's cost is in the figure,
so it is a lower bound for the gateway) and the gateway's RSS growth per
idle wss connection once all are open.
"""

import argparse
import os
import socket
import ssl
import sys
import tempfile
import time

from benchlib import BIN, ROOT, rss_bytes, start_server, stop

CERTS = os.path.join(ROOT, "gateway", "tests", "tls_certs")
UPGRADE = (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conns", type=int, default=2000)
    parser.add_argument("--bin", default=os.path.join(BIN, "ringgate"))
    options = parser.parse_args()
    config = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    config.write(f'[tls]\ncert_file = "{CERTS}/server.pem"\nkey_file = "{CERTS}/server.key"\n'
                 '[limits.per_ip]\nexempt = ["127.0.0.0/8"]\n')
    config.close()
    gateway, address = start_server(
        [options.bin, "--echo", "--shards", "1", "--listen", "127.0.0.1:0",
         "--admin", "127.0.0.1:0", "--config", config.name], 0)
    try:
        port = int(address.rsplit(":", 1)[-1])
        context = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
        time.sleep(0.3)
        rss_before = rss_bytes(gateway.pid)
        held = []
        started = time.perf_counter()
        for _ in range(options.conns):
            raw = socket.create_connection(("127.0.0.1", port))
            tls = context.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(UPGRADE)
            head = b""
            while b"\r\n\r\n" not in head:
                head += tls.recv(4096)
            assert head.startswith(b"HTTP/1.1 101"), head
            held.append(tls)
        elapsed = time.perf_counter() - started
        time.sleep(1.0)
        growth = rss_bytes(gateway.pid) - rss_before
        version = held[0].version()
        print(f"{len(held)} wss upgrades ({version}, ECDSA P-256) in {elapsed:.2f}s: "
              f"{len(held) / elapsed:.0f} per second, one at a time from one Python client")
        print(f"gateway RSS +{growth / 1e6:.2f} MB: {growth / len(held):.0f} bytes per idle wss "
              f"connection")
        for tls in held:
            tls.close()
    finally:
        stop(gateway)
        os.unlink(config.name)


if __name__ == "__main__":
    sys.exit(main())
