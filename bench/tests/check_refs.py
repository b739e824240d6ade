#!/usr/bin/env python3
"""Smoke check of the reference echo servers (ref-tungstenite, ref-fastws).

Starts each built binary on a free port (it prints the address it bound),
checks text and binary echoes keep their type and bytes (5 B, 100 KB, 1 MiB,
16 MiB, a fragmented message), that pings are answered, close is clean and a
message over 16 MiB is refused, then sends SIGTERM to its PID and expects
exit status 0.

    python3 bench/tests/check_refs.py --bin-dir /work/target-bench/release

Needs the `websockets` package (pip install websockets).
"""

import argparse
import asyncio
import os
import signal
import subprocess
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

SERVERS = ("ref-tungstenite", "ref-fastws")
MESSAGE_BYTES_MAX = 16 << 20
TIMEOUT_S = 10


async def check_echoes(url):
    async with connect(url, max_size=MESSAGE_BYTES_MAX) as ws:
        cases = [
            ("text", "hello"),
            ("binary 100 KB", os.urandom(100_000)),
            ("binary 1 MiB", os.urandom(1 << 20)),
            ("binary 16 MiB, the cap", bytes(MESSAGE_BYTES_MAX)),
        ]
        for name, message in cases:
            await ws.send(message)
            echo = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
            assert type(echo) is type(message), f"{name}: got {type(echo).__name__}"
            assert echo == message, f"{name}: echo differs"
        fragments = [b"frag", b"mented", b"!" * 70_000]
        await ws.send(fragments)
        echo = await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        assert echo == b"".join(fragments), "fragmented: echo differs"
        pong = await ws.ping()
        await asyncio.wait_for(pong, TIMEOUT_S)
        await ws.close()
        assert ws.close_code == 1000, f"close code {ws.close_code}"


async def check_oversize_refused(url):
    async with connect(url, max_size=None) as ws:
        try:
            await ws.send(bytes(MESSAGE_BYTES_MAX + 1))
            await asyncio.wait_for(ws.recv(), TIMEOUT_S)
        except ConnectionClosed:
            return
        raise AssertionError("message over 16 MiB was echoed")


def check_server(path):
    server = subprocess.Popen(
        [path, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True
    )
    try:
        line = server.stdout.readline().strip()
        assert line.startswith("listening on "), f"start-up line {line!r}"
        address = line.removeprefix("listening on ")
        asyncio.run(check_echoes(f"ws://{address}/"))
        asyncio.run(check_oversize_refused(f"ws://{address}/"))
        os.kill(server.pid, signal.SIGTERM)
        status = server.wait(timeout=TIMEOUT_S)
        assert status == 0, f"exit status {status} after SIGTERM"
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", required=True)
    args = parser.parse_args()
    passed = failed = 0
    for name in SERVERS:
        try:
            check_server(os.path.join(args.bin_dir, name))
        except Exception as error:  # report every server, not just the first
            failed += 1
            print(f"FAIL {name}: {error!r}")
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
