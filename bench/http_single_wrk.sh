#!/usr/bin/env bash
# Single-event POSTs from 64 keep-alive connections (wrk, 2 threads) against `vellum serve`,
# each answered after fsync. Every request stores two events: the event and the server's
# own authentication record. Usage: bench/http_single_wrk.sh [RUNS] [SECONDS]
# Needs wrk (apt-get install wrk) and a release build (CARGO_TARGET_DIR, default /var/tmp/vt-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"; secs="${2:-10}"
bin="${CARGO_TARGET_DIR:-/var/tmp/vt-bench}/release/vellum"
work="${VELLUM_BENCH_DIR:-/var/tmp/vellum-bench}/wrk-data"
rm -rf "$work"; mkdir -p "$(dirname "$work")"
out="$(mktemp)"
"$bin" --data "$work" serve --listen 127.0.0.1:0 >"$out" 2>/dev/null &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work" "$out"' EXIT
for _ in $(seq 50); do grep -q 'audit API on' "$out" && break; sleep 0.1; done
addr=$(sed -n 's/.*audit API on http:\/\/\(.*\)/\1/p' "$out")
token=$(grep '^vk-' "$out")
for run in $(seq "$runs"); do
  echo "run $run: $(uptime)"
  RUN=$run TOKEN=$token wrk -t2 -c64 -d"${secs}s" --latency -s bench/single_post.lua "http://$addr" |
    grep -E 'Requests/sec|  50%|  99%|Non-2xx'
done
