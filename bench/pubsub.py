#!/usr/bin/env python3
"""Pub/sub delivery capacity of one gateway shard, with loadgen's `pubsub`.

  bench/pubsub.py [--users 10000] [--subs-per-user 1] [--topics 1000]
                  [--dist uniform] [--size 128] [--step 5] [--start-rate 1000]
                  [--max-rate 1000000] [--refine 3] [--slo-p99-ms 200]
                  [--latency-duration 10] [--json out.json]

Starts `ringgate --shards 1` (relay mode with its embedded router, loopback
exempt from the per-IP limits) pinned to --server-cpu, and runs loadgen
pinned to --client-cpu. Each step is a fresh loadgen run: the users connect,
subscribe, warm up for 1 s, publish open loop at the step's rate for --step
seconds and drain for 2 s. The rate doubles from --start-rate until a step
fails, then --refine bisection steps narrow the knee; loadgen's `capacity`
mode runs and judges the steps (docs/LOADGEN.md). A step holds when

  - nothing is lost (`lost` 0) and nothing was refused (no `err`, no error
    of any kind: `--slo-errors 0`),
  - deliveries keep up: deliveries/s received in the window at least 98% of
    the deliveries/s the window's publishes call for, and publishes/s at
    least 98% of the rate, and
  - delivery p99 (from the intended publish time) is within --slo-p99-ms
    (issue 5's capacity SLO: 200 ms).

The highest holding step gives deliveries/s at saturation. A final run at
half that publish rate (--latency-duration seconds) gives the delivery
latency percentiles. The table shows each step with loadgen's and the
gateway's CPU (the gateway process: its shard and the embedded router's
thread), so a loadgen-bound result would show. Every figure comes from
loadgen's JSON (docs/LOADGEN.md); this script starts processes (stopping
them by PID), steps the rate and prints.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time

from benchlib import BIN, machine, start_server, stop
from benchlib import build as cargo_build
# The embedded router refuses publishes for its first 3 s (claim grace:
# backends may still be attaching); steps start after it.
ROUTER_GRACE_S = 3.3
WARMUP = "1s"
DRAIN = "2s"
KEEP_UP = 0.98


def write_config():
    path = os.path.join(tempfile.gettempdir(), f"ringgate-pubsub-bench-{os.getpid()}.toml")
    with open(path, "w") as handle:
        # Loopback load: per-IP limits exempt, per-user and per-topic limits
        # off (one publisher per topic sends far above the 100/min default).
        handle.write('[limits.per_ip]\nexempt = ["127.0.0.0/8"]\n'
                     '[limits.per_user]\nmessages_per_minute = 0\nmessages_per_hour = 0\n'
                     'repeated_content_max = 0\n[limits.per_topic]\nmessages_per_minute = 0\n')
    return path


def build():
    cargo_build("ringgate", "ringgate-loadgen")


def start_gateway(config, cpu):
    """Starts the gateway pinned to `cpu`, past the embedded router's claim
    grace; returns (process, address, argv)."""
    argv = [os.path.join(BIN, "ringgate"), "--shards", "1", "--listen", "127.0.0.1:0",
            "--admin", "127.0.0.1:0", "--config", config]
    started = time.monotonic()
    process, address = start_server(argv, cpu)
    time.sleep(max(0.0, started + ROUTER_GRACE_S - time.monotonic()))
    return process, address, ["taskset", "-c", str(cpu)] + argv


def loadgen_argv(options, address, rate, duration, gateway_pid, cpu):
    return ["taskset", "-c", str(cpu), os.path.join(BIN, "ringgate-loadgen"), "pubsub",
            "--url", f"ws://{address}/", "--users", str(options.users),
            "--subs-per-user", str(options.subs_per_user), "--topics", str(options.topics),
            "--dist", options.dist, "--size", str(options.size), "--rate", f"{rate}/s",
            "--warmup", WARMUP, "--duration", f"{duration}s", "--drain", DRAIN,
            "--server-pid", str(gateway_pid), "--quiet"]


def run_json(argv, timeout):
    """Runs loadgen with `--json` into a temporary file; returns the report."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = handle.name
    try:
        subprocess.run(argv + ["--json", path], check=True, stdout=subprocess.DEVNULL,
                       timeout=timeout)
        with open(path) as handle:
            return json.load(handle)
    finally:
        os.unlink(path)


def step_of(report, rate, command, holds=None):
    """One table row from a pubsub report (a capacity step's `report`)."""
    results = report["results"]
    pubsub = results["pubsub"]
    server = results["servers"][0] if results["servers"] else {}
    step = {
        "rate": rate,
        "publishes_per_s": pubsub["publishes_per_s"],
        "expected_per_s": pubsub["expected_per_s"],
        "deliveries_per_s": pubsub["deliveries_per_s"],
        "expected": pubsub["expected"],
        "delivered": pubsub["delivered"],
        "lost": pubsub["lost"],
        "duplicates": pubsub["duplicates"],
        "out_of_order": pubsub["out_of_order"],
        "errors": results["errors"],
        "p50_us": pubsub["delivery_latency_us"]["p50"],
        "p99_us": pubsub["delivery_latency_us"]["p99"],
        "p999_us": pubsub["delivery_latency_us"]["p999"],
        "ack_p99_us": pubsub["ack_latency_us"]["p99"],
        "gateway_cpu": server.get("cpu_util"),
        "loadgen_cpu": results["loadgen_cpu"]["cpu_util"],
        "command": command,
    }
    step["holds"] = holds
    return step


def run_step(options, address, rate, duration, gateway_pid):
    argv = loadgen_argv(options, address, rate, duration, gateway_pid, options.client_cpu)
    report = run_json(argv, duration + 120)
    return step_of(report, rate, " ".join(shlex.quote(a) for a in argv + ["--json", "OUT.json"]))


def row(step):
    errors = ",".join(f"{k}:{v}" for k, v in step["errors"].items()) or "-"
    cpu = lambda v: "-" if v is None else f"{v:.0f}%"
    return (f"{step['rate']:>9} {step['publishes_per_s']:>10.0f} {step['expected_per_s']:>11.0f} "
            f"{step['deliveries_per_s']:>11.0f} {step['lost']:>8} {step['duplicates']:>5} "
            f"{step['p50_us'] / 1000:>8.2f} {step['p99_us'] / 1000:>9.2f} "
            f"{step['p999_us'] / 1000:>9.2f} {cpu(step['gateway_cpu']):>7} "
            f"{cpu(step['loadgen_cpu']):>7}  {'-' if step['holds'] is None else 'yes' if step['holds'] else 'NO':<5} {errors}")


HEADER = (f"{'rate/s':>9} {'pubs/s':>10} {'expected/s':>11} {'delivered/s':>11} {'lost':>8} "
          f"{'dups':>5} {'p50 ms':>8} {'p99 ms':>9} {'p99.9 ms':>9} {'gw cpu':>7} {'lg cpu':>7}  "
          f"holds errors")


def sweep(options, address, gateway_pid):
    """loadgen's `capacity` mode does the stepping and judging: doubling from
    --start-rate, --refine bisections, and the SLO above (`--slo-errors 0`:
    any loss, surplus, duplicate or `err` breaks a step; keep-up 98%)."""
    pubsub = loadgen_argv(options, address, 1, options.step, gateway_pid, options.client_cpu)
    argv = pubsub[:4] + ["capacity", "--start", str(options.start_rate), "--step", "x2",
                         "--max", str(options.max_rate), "--step-duration", f"{options.step}s",
                         "--refine", str(options.refine), "--pause", "1s",
                         "--slo-p99", f"{options.slo_p99_ms}ms", "--slo-errors", "0",
                         "--slo-keep-up", f"{KEEP_UP * 100}%"] + pubsub[4:]
    budget = (options.step + 10) * (40 + options.refine)
    capacity = run_json(argv, budget)
    command = " ".join(shlex.quote(a) for a in argv + ["--json", "OUT.json"])
    print(HEADER, flush=True)
    steps = []
    for step in capacity["steps"]:
        rate = int(step["load"])
        steps.append(step_of(step["report"], rate, command, holds=step["held"]))
        print(row(steps[-1]), flush=True)
    knee = capacity["knee"]
    return steps, (int(knee["load"]) if knee else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--subs-per-user", type=int, default=1)
    parser.add_argument("--topics", type=int, default=1_000)
    parser.add_argument("--dist", default="uniform")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--step", type=int, default=5, help="seconds measured per step")
    parser.add_argument("--start-rate", type=int, default=1_000)
    parser.add_argument("--max-rate", type=int, default=1_000_000)
    parser.add_argument("--refine", type=int, default=3, help="bisection steps after doubling")
    parser.add_argument("--slo-p99-ms", type=float, default=200.0)
    parser.add_argument("--latency-duration", type=int, default=10)
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--json")
    options = parser.parse_args()
    if not options.no_build:
        build()
    config = write_config()
    gateway, address, gateway_argv = start_gateway(config, options.server_cpu)
    try:
        print(f"# {json.dumps(machine())}")
        print(f"# gateway: {' '.join(gateway_argv)}   (config: {open(config).read().strip()!r})")
        print(f"# {options.users} users x {options.subs_per_user} subscriptions over "
              f"{options.topics} topics ({options.dist}), data {options.size} B, "
              f"{options.step} s per step")
        steps, best = sweep(options, address, gateway.pid)
        latency = None
        if best is not None:
            half = max(1, best // 2)
            print(f"\n# saturation: {best}/s publishes held; latency at half that, {half}/s, "
                  f"for {options.latency_duration} s")
            print(HEADER)
            latency = run_step(options, address, half, options.latency_duration, gateway.pid)
            print(row(latency))
        summary = {"machine": machine(), "options": vars(options), "steps": steps,
                   "saturation_rate": best, "latency_run": latency}
        print()
        if best is not None:
            held = next(s for s in steps if s["holds"] and s["rate"] == best)
            print(f"deliveries/s at saturation: {held['deliveries_per_s']:.0f} "
                  f"({held['rate']}/s publishes, gateway CPU {held['gateway_cpu']}%, "
                  f"loadgen CPU {held['loadgen_cpu']}%)")
            print(f"delivery latency at {latency['rate']}/s: p50 {latency['p50_us'] / 1000:.2f} ms, "
                  f"p99 {latency['p99_us'] / 1000:.2f} ms, p99.9 {latency['p999_us'] / 1000:.2f} ms "
                  f"({latency['deliveries_per_s']:.0f} deliveries/s, lost {latency['lost']})")
            print(f"commands: {held['command']}\n          {latency['command']}")
        else:
            print("no step held; lower --start-rate")
        if options.json:
            with open(options.json, "w") as handle:
                json.dump(summary, handle, indent=2)
    finally:
        stop(gateway)
        os.unlink(config)


if __name__ == "__main__":
    sys.exit(main())
