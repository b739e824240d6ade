#!/usr/bin/env bash
# Applies a tuning profile, then reads every key back and reports any value
# the kernel did not take (read-only in a container, unknown on an old kernel).
# Usage: sudo tuning/apply.sh tuning/gateway.conf [--check]
#   --check: only compare the running values with the profile; exit 1 if any differ.
set -euo pipefail
profile=${1:?usage: apply.sh PROFILE [--check]}
mode=${2:-apply}
status=0
while IFS='=' read -r key value; do
    key=$(echo "$key" | xargs); value=$(echo "$value" | xargs)
    [ -z "$key" ] || [ "${key:0:1}" = "#" ] && continue
    if [ "$mode" != "--check" ]; then
        sysctl -q -w "$key=$value" >/dev/null 2>&1 || true
    fi
    actual=$(sysctl -n "$key" 2>/dev/null | xargs || echo "<missing>")
    if [ "$actual" != "$value" ]; then
        echo "NOT SET  $key = $actual (profile wants $value)"
        status=1
    else
        echo "ok       $key = $actual"
    fi
done < "$profile"
if [ "$mode" != "--check" ]; then
    echo "note: per-process open files come from the service's LimitNOFILE (systemd/ringgate.service) or 'ulimit -n'."
fi
exit $status
