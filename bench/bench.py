#!/usr/bin/env python3
"""Same-run benchmarks of ringgate against reference servers, with loadgen.

  bench/bench.py speed   [--runs 3] [--duration 5] [--json out.json]
      ringgate (1 shard), ref-fastws and ref-tungstenite (1 thread each), one
      at a time, server pinned to --server-cpu, loadgen pinned to
      --client-cpu; echo of 20-byte messages over 100 connections at 1 and 8
      in flight; median of --runs; prints messages/s, server CPU per message
      (total and user space, from /proc/PID/stat) and the ratios against
      ref-fastws.

  bench/bench.py defenses [--runs 3] [--duration 5]
      ringgate with every defense at its default (auth off) against every
      limit off, same run, echo at 8 in flight: CPU per message ratios.

  bench/bench.py metrics [--runs 5] [--duration 5]
      ringgate with its admin listener on and /metrics scraped every second
      against --admin off, same run, echo at 8 in flight: the cost of metrics.

  bench/bench.py memory  [--conns 19000] [--group 7 --group-conns 100000]
      RSS growth per idle connection: one gateway holding --conns, then
      --group gateway processes sharing one port (an SO_REUSEPORT group, as
      during an upgrade handover) holding --group-conns from loadgen worker
      processes.

Every figure comes from loadgen's JSON (docs/LOADGEN.md); this script only
starts processes (stopping them by PID), collects and compares.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import urllib.request

from benchlib import BIN, machine, start_server, stop
from benchlib import build as cargo_build


def build():
    cargo_build("ringgate", "ringgate-loadgen", "ringgate-bench")


def loadgen(args, cpu):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = handle.name
    try:
        command = ["taskset", "-c", str(cpu), os.path.join(BIN, "ringgate-loadgen")] + args + [
            "--json", path, "--quiet"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=600)
        with open(path) as handle:
            return json.load(handle)
    finally:
        os.unlink(path)


# Benchmarks open thousands of connections from a few loopback addresses;
# the per-IP defaults (100 connects/min, 1,000 open per address) are for
# production traffic, so the benchmark gateway exempts loopback.
LOOPBACK_CONFIG = os.path.join(tempfile.gettempdir(), "ringgate-bench.toml")
with open(LOOPBACK_CONFIG, "w") as _handle:
    _handle.write('[limits.per_ip]\nexempt = ["127.0.0.0/8", "::1/128"]\n')

SERVERS = {
    "ringgate": lambda: [os.path.join(BIN, "ringgate"), "--echo", "--shards", "1", "--listen",
                         "127.0.0.1:0", "--admin", "127.0.0.1:0", "--config", LOOPBACK_CONFIG],
    "fastwebsockets": lambda: [os.path.join(BIN, "ref-fastws"), "--listen", "127.0.0.1:0"],
    "tokio-tungstenite": lambda: [os.path.join(BIN, "ref-tungstenite"), "--listen", "127.0.0.1:0"],
}


def speed(options):
    build()
    samples = {}  # (server, inflight) -> list of dicts
    for run in range(options.runs):
        for name, argv in SERVERS.items():
            process, address = start_server(argv(), options.server_cpu)
            try:
                for inflight in (1, 8):
                    result = loadgen([
                        "echo", "--url", f"ws://{address}/", "--conns", "100", "--size", "20",
                        "--inflight", str(inflight), "--duration", f"{options.duration}s",
                        "--warmup", "1s", "--server-pid", str(process.pid)], options.client_cpu)
                    figures = result["results"]
                    server = figures["servers"][0]
                    samples.setdefault((name, inflight), []).append({
                        "messages_per_s": figures["messages_per_s"],
                        "total_us": server["total_us_per_msg"],
                        "user_us": server["user_us_per_msg"],
                        "server_util": server["cpu_util"],
                        "loadgen_user_us": figures["loadgen_cpu"]["user_us_per_msg"],
                        "p99_us": figures["latency_us"]["p99"],
                    })
                    print(f"run {run + 1}/{options.runs} {name:18} inflight {inflight}: "
                          f"{figures['messages_per_s']:>10.0f} msg/s  total "
                          f"{server['total_us_per_msg']:.3f} us  user "
                          f"{server['user_us_per_msg']:.3f} us  server cpu "
                          f"{server['cpu_util']:.1f}%", file=sys.stderr)
            finally:
                stop(process)

    medians = {key: {field: statistics.median(s[field] for s in runs) for field in runs[0]}
               for key, runs in samples.items()}
    print(f"\nmedian of {options.runs} runs; server on CPU {options.server_cpu}, loadgen on CPU "
          f"{options.client_cpu}; 100 connections, 20-byte text messages\n")
    header = (f"| server | in flight | messages/s | total CPU us/msg | user CPU us/msg | "
              f"server CPU % | loadgen user us/msg | p99 us | msg/s vs fastws | total CPU vs "
              f"fastws | user CPU vs fastws |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for inflight in (1, 8):
        reference = medians[("fastwebsockets", inflight)]
        for name in SERVERS:
            m = medians[(name, inflight)]
            print(f"| {name} | {inflight} | {m['messages_per_s']:.0f} | {m['total_us']:.3f} | "
                  f"{m['user_us']:.3f} | {m['server_util']:.1f} | {m['loadgen_user_us']:.3f} | "
                  f"{m['p99_us']:.0f} | {m['messages_per_s'] / reference['messages_per_s']:.2f} | "
                  f"{m['total_us'] / reference['total_us']:.2f} | "
                  f"{m['user_us'] / reference['user_us']:.2f} |")
    if options.json:
        with open(options.json, "w") as handle:
            json.dump({"machine": machine(), "runs": options.runs,
                       "samples": {f"{k[0]}/{k[1]}": v for k, v in samples.items()},
                       "medians": {f"{k[0]}/{k[1]}": v for k, v in medians.items()}},
                      handle, indent=2)


DEFENSES_ON = """[limits.per_ip]
connects_per_minute = 1000
"""
DEFENSES_OFF = """[limits]
max_frame_bytes = 0
max_text_message_bytes = 0
max_binary_message_bytes = 0
max_header_bytes = 0
handshake_timeout_ms = 0
idle_timeout_ms = 0
ping_interval_ms = 0
max_connections = 0
max_write_queue_bytes = 0
frame_timeout_ms = 0
[limits.per_ip]
max_connections = 0
connects_per_minute = 0
failed_auths_per_minute = 0
ban_seconds = 0
"""


def echo_ab(options, variants):
    """Echo at 8 in flight against each variant (name -> (config text, extra
    ringgate flags, scrape)), alternating variants within each run so they see
    the same machine. `scrape`: fetch /metrics once a second during the run,
    as Prometheus would (more often than its usual 15 s). Prints and returns
    the medians per variant: (total us/msg, user us/msg, msg/s)."""
    build()
    samples = {}
    for run in range(options.runs):
        for name, (text, extra, scrape) in variants.items():
            path = os.path.join(tempfile.gettempdir(), f"ringgate-{name.replace(' ', '-')}.toml")
            with open(path, "w") as handle:
                handle.write(text)
            admin = f"127.0.0.1:{free_port()}" if scrape else "127.0.0.1:0"
            if "--admin" not in extra:
                extra = ["--admin", admin] + extra
            argv = [os.path.join(BIN, "ringgate"), "--echo", "--shards", "1", "--listen",
                    "127.0.0.1:0", "--config", path] + extra
            process, address = start_server(argv, options.server_cpu)
            scraper = Scraper(admin) if scrape else None
            try:
                result = loadgen(["echo", "--url", f"ws://{address}/", "--conns", "100", "--size",
                                  "20", "--inflight", "8", "--duration", f"{options.duration}s",
                                  "--warmup", "1s", "--server-pid", str(process.pid)],
                                 options.client_cpu)
            finally:
                if scraper:
                    scraper.stop()
                stop(process)
            server = result["results"]["servers"][0]
            samples.setdefault(name, []).append((server["total_us_per_msg"],
                                                 server["user_us_per_msg"],
                                                 result["results"]["messages_per_s"]))
            scraped = f", {scraper.count} scrapes" if scraper else ""
            print(f"run {run + 1}/{options.runs} {name}: total {server['total_us_per_msg']:.3f} us "
                  f"user {server['user_us_per_msg']:.3f} us{scraped}", file=sys.stderr)
    print(f"\nmedian of {options.runs} runs, echo 100 connections x 8 in flight, 20 B\n")
    print("| gateway | messages/s | total CPU us/msg | user CPU us/msg |")
    print("|---|---|---|---|")
    medians = {}
    for name, rows in samples.items():
        medians[name] = [statistics.median(column) for column in zip(*rows)]
        total, user, rate = medians[name]
        print(f"| {name} | {rate:.0f} | {total:.3f} | {user:.3f} |")
    return medians


def defenses(options):
    """Every defense at its default (auth off; the per-IP attempt rate raised
    so the benchmark's own connections pass) against every limit off."""
    medians = echo_ab(options, {"defenses on": (DEFENSES_ON, [], False),
                                "defenses off": (DEFENSES_OFF, [], False)})
    on, off = medians["defenses on"], medians["defenses off"]
    print(f"\ntotal CPU on/off: {on[0] / off[0]:.3f} (due <= 1.03); "
          f"user CPU on/off: {on[1] / off[1]:.3f} (due <= 1.15)")


def metrics(options):
    """The admin listener on and scraped every second, against `--admin off`
    (no listener, no per-shard snapshots, no busy-time clock reads)."""
    with open(LOOPBACK_CONFIG) as handle:
        config = handle.read()
    medians = echo_ab(options, {"metrics on": (config, [], True),
                                "metrics off": (config, ["--admin", "off"], False)})
    on, off = medians["metrics on"], medians["metrics off"]
    print(f"\nmessages/s on/off: {on[2] / off[2]:.3f}; total CPU us/msg on/off: "
          f"{on[0] / off[0]:.3f}; user CPU us/msg on/off: {on[1] / off[1]:.3f} (due within 3%)")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Scraper:
    """GETs /metrics once a second on a thread until stopped."""

    def __init__(self, admin):
        self.admin, self.count, self.done = admin, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.wait(1.0):
            try:
                with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=2) as reply:
                    reply.read()
                self.count += 1
            except OSError:
                pass

    def stop(self):
        self.done.set()
        self.thread.join()


def rss_growth(result):
    servers = result["results"]["servers"]
    opened = result["results"]["connect"]["held_at_end"]
    growth = sum(s["rss_after"] - s["rss_before"] for s in servers)
    return opened, growth


def memory(options):
    build()
    # One gateway: the per-connection figure.
    process, address = start_server(SERVERS["ringgate"](), options.server_cpu)
    try:
        result = loadgen(["connect", "--url", f"ws://{address}/", "--conns", str(options.conns),
                          "--rate", "20000", "--hold", "3s", "--src", "127.0.1.1-127.0.1.60",
                          "--server-pid", str(process.pid)], options.client_cpu)
    finally:
        stop(process)
    opened, growth = rss_growth(result)
    print(f"one gateway: {opened} idle connections, RSS +{growth / 1e6:.2f} MB = "
          f"{growth / max(opened, 1):.0f} bytes per connection")

    # A group of gateways sharing one port (SO_REUSEPORT).
    if options.group <= 0:
        return
    port = options.port
    group = []
    try:
        for _ in range(options.group):
            group.append(start_server(
                [os.path.join(BIN, "ringgate"), "--echo", "--shards", "1", "--listen",
                 f"127.0.0.1:{port}", "--admin", "127.0.0.1:0", "--config", LOOPBACK_CONFIG],
                options.server_cpu)[0])
        pids = ",".join(str(p.pid) for p in group)
        procs = max(1, (options.group_conns + 16_999) // 17_000)
        result = loadgen(["connect", "--url", f"ws://127.0.0.1:{port}/", "--conns",
                          str(options.group_conns), "--rate", "20000", "--hold", "3s",
                          "--procs", str(procs), "--timeout", "30s",
                          "--src", "127.0.2.1-127.0.2.254", "--server-pid", pids],
                         options.client_cpu)
    finally:
        for process in group:
            stop(process)
    opened, growth = rss_growth(result)
    per_server = [s["rss_after"] - s["rss_before"] for s in result["results"]["servers"]]
    print(f"{options.group} gateways on port {port}: {opened} idle connections held "
          f"(loadgen --procs {procs}), RSS +{growth / 1e6:.2f} MB in all = "
          f"{growth / max(opened, 1):.0f} bytes per connection; per gateway +"
          + ", ".join(f"{g / 1e6:.2f}" for g in per_server) + " MB")
    failures = result["results"].get("errors") or {}
    if failures:
        print(f"failures: {failures}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    sub = parser.add_subparsers(dest="command", required=True)
    speed_parser = sub.add_parser("speed")
    speed_parser.add_argument("--runs", type=int, default=3)
    speed_parser.add_argument("--duration", type=int, default=5)
    speed_parser.add_argument("--json")
    memory_parser = sub.add_parser("memory")
    memory_parser.add_argument("--conns", type=int, default=19_000)
    memory_parser.add_argument("--group", type=int, default=7)
    memory_parser.add_argument("--group-conns", type=int, default=100_000)
    memory_parser.add_argument("--port", type=int, default=18080)
    defenses_parser = sub.add_parser("defenses")
    defenses_parser.add_argument("--runs", type=int, default=3)
    defenses_parser.add_argument("--duration", type=int, default=5)
    metrics_parser = sub.add_parser("metrics")
    metrics_parser.add_argument("--runs", type=int, default=5)
    metrics_parser.add_argument("--duration", type=int, default=5)
    options = parser.parse_args()
    print(json.dumps(machine()), file=sys.stderr)
    {"speed": speed, "memory": memory, "defenses": defenses,
     "metrics": metrics}[options.command](options)


if __name__ == "__main__":
    main()
