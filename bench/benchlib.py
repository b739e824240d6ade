"""What the benchmark scripts share: where the binaries are, building them,
starting a pinned server and reading its address, stopping it by PID, the
machine's description and a process's RSS."""

import os
import platform
import re
import signal
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where `cargo build` puts them (it honours CARGO_TARGET_DIR).
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")


def build(*packages):
    """`cargo build --release` of the given packages."""
    argv = ["cargo", "build", "--release", "--quiet"]
    for package in packages:
        argv += ["-p", package]
    subprocess.run(argv, cwd=ROOT, check=True)


def start_server(argv, cpu):
    """Starts a server pinned to `cpu` and waits (20 s at most) for its
    `listening on ADDR` line; returns (process, address)."""
    process = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(r"listening on (\S+)", line)
        if match:
            return process, match.group(1)
    process.kill()
    process.wait()
    raise RuntimeError(f"{argv[0]} did not report its address")


def stop(process):
    """SIGTERM (the gateway drains), then SIGKILL after 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_model": model, "cores": os.cpu_count(), "kernel": platform.release()}


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")
