#!/usr/bin/env bash
# The multi-process layout on one host: 2 routers, 2 gateways, 1 backend
# (the chat_history example, owning topics under "chat.").
#
#   router/examples/cluster/run.sh            # build (release), start, wait for Ctrl-C, stop all
#   router/examples/cluster/run.sh --smoke    # start, check one message end to end, stop (exit 0/1)
#
# BIN_DIR picks the binaries (default: target/release, built first).
# Everything started here is stopped by PID on exit.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
mode="${1:-serve}"
if [ -z "${BIN_DIR:-}" ]; then
    (cd "$root" && cargo build --release --quiet -p ringgate -p ringgate-router --examples)
    BIN_DIR="$root/target/release"
fi
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
logs="$(mktemp -d)"

start() { # name, wait-for-text, command...
    local name=$1 ready=$2; shift 2
    "$@" >"$logs/$name.out" 2>"$logs/$name.err" &
    pids+=($!)
    for _ in $(seq 100); do
        grep -q "$ready" "$logs/$name.out" "$logs/$name.err" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "$name did not start; its log:" >&2; cat "$logs/$name.err" >&2; return 1
}

start router-1 "listening on" "$BIN_DIR/ringgate-router" --listen 127.0.0.1:7101 --id 1
start router-2 "listening on" "$BIN_DIR/ringgate-router" --listen 127.0.0.1:7102 --id 2
start backend "attached" "$BIN_DIR/examples/chat_history" --router 127.0.0.1:7101 --router 127.0.0.1:7102 --node-id 100 --prefix chat.
start gateway-1 "listening on" "$BIN_DIR/ringgate" --config "$here/gateway-1.toml"
start gateway-2 "listening on" "$BIN_DIR/ringgate" --config "$here/gateway-2.toml"
echo "routers 127.0.0.1:7101 and :7102; gateways ws://127.0.0.1:8081/ and ws://127.0.0.1:8082/; logs in $logs"

if [ "$mode" = "--smoke" ]; then
    python3 - <<'PY'
import asyncio, json, sys
import websockets

async def main():
    for attempt in range(50):  # the gateways' router links come up within a second or two
        try:
            async with websockets.connect("ws://127.0.0.1:8082/") as reader, \
                       websockets.connect("ws://127.0.0.1:8081/") as writer:
                await reader.send(json.dumps({"op": "sub", "topic": "chat.smoke"}))
                assert json.loads(await reader.recv())["op"] == "subscribed"
                await asyncio.sleep(0.3)
                await writer.send(json.dumps({"op": "pub", "topic": "chat.smoke", "id": f"s{attempt}", "data": {"text": "hello"}}))
                answer = json.loads(await asyncio.wait_for(writer.recv(), 5))
                if answer["op"] != "ack":
                    raise RuntimeError(answer)
                while True:
                    got = json.loads(await asyncio.wait_for(reader.recv(), 5))
                    if got["op"] == "msg":
                        assert got["data"] == {"text": "hello"}, got
                        print("smoke: ok", got["msg"])
                        return
        except Exception as error:  # not ready yet: retry
            last = error
            await asyncio.sleep(0.2)
    print("smoke: failed:", last, file=sys.stderr)
    sys.exit(1)

asyncio.run(main())
PY
else
    echo "Ctrl-C to stop"
    wait
fi
