#!/usr/bin/env bash
# Runs every benchmark of BENCHMARKS.md in one go and keeps the full output.
#
# usage: bench/run_all.sh            (from the repository root)
# env:   N=1000000 (events for the append/CLI/verify benchmarks), BIG=10000000 (events of the
#        large log), RUNS=5 (repetitions; medians are reported), SKIP_BIG=1 to leave out the
#        large log, CARGO_TARGET_DIR (default /var/tmp/vt-bench), VELLUM_BENCH_DIR (default
#        /var/tmp/vellum-bench: inputs, data directories, results; data directories are removed).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/vt-bench}
export VELLUM_BENCH_DIR=${VELLUM_BENCH_DIR:-/var/tmp/vellum-bench}
N=${N:-1000000}
BIG=${BIG:-10000000}
RUNS=${RUNS:-5}
W=$VELLUM_BENCH_DIR
B=$CARGO_TARGET_DIR/release
mkdir -p "$W"
OUT="$W/results-$(date -u +%Y%m%dT%H%M%SZ).txt"
exec > >(tee "$OUT") 2>&1

cargo build --release -p vellum -p vellum-bench

echo "== machine"
date -u +"date: %Y-%m-%d %H:%M UTC"
echo "nproc: $(nproc)"
lscpu | grep -E '^(Model name|CPU family|Model|Hypervisor vendor|L3 cache):' || true
grep -o -w -m1 sha_ni /proc/cpuinfo | sed 's/^/cpu flag: /' || true
echo "memory: $(free -g | awk '/Mem:/ {print $2 " GiB"}')"
echo "disk: $(df -h "$W" | awk 'NR==2 {print $1 " " $2}') $(findmnt -n -o FSTYPE,OPTIONS --target "$W")"
lsblk -d -o NAME,ROTA,SIZE,MODEL 2>/dev/null | grep -v zram || true
uname -r
uptime

EVENTS="$W/events-$N-native.ndjson"
python3 - "$N" <<'PY'
import sys; sys.path.insert(0, "bench")
from common import events_file
events_file(int(sys.argv[1]), "native"); events_file(int(sys.argv[1]), "seed")
PY

echo "== disk peers"
bench/dd_bandwidth.sh "$W" 3

echo "== 1. in-process durable append in batches"
uptime
"$B/append_batch" --events "$EVENTS" --batch 10000 --inflight 1 --runs "$RUNS" --dir "$W"
"$B/append_batch" --events "$EVENTS" --batch 10000 --inflight 4 --runs "$RUNS" --dir "$W"
"$B/append_batch" --events "$EVENTS" --batch 10000 --inflight 16 --runs "$RUNS" --dir "$W"
echo "-- group commit: small appends (100 events), blocking vs 64 in flight"
"$B/append_batch" --events "$EVENTS" --limit 200000 --batch 100 --inflight 1 --runs "$RUNS" --dir "$W"
"$B/append_batch" --events "$EVENTS" --limit 200000 --batch 100 --inflight 64 --runs "$RUNS" --dir "$W"
echo "-- the same on tmpfs (fdatasync costs nothing): the writer's CPU ceiling"
"$B/append_batch" --events "$EVENTS" --batch 10000 --inflight 4 --runs "$RUNS" --dir /dev/shm/vellum-bench
rm -rf /dev/shm/vellum-bench

echo "== 2. 64 concurrent appenders, one event each, waiting for durability"
uptime
"$B/fsync_probe" --bytes 25000 --commits 1000 --runs 3 --dir "$W"
"$B/append_concurrent" --events "$EVENTS" --threads 64 --per-thread 1000 --runs "$RUNS" --dir "$W" --mode tasks
echo "-- the same after 500 untimed appends each on the same store (a writer that has been running)"
"$B/append_concurrent" --events "$EVENTS" --threads 64 --per-thread 1000 --warmup-per-thread 500 --runs "$RUNS" --dir "$W" --mode tasks
"$B/append_concurrent" --events "$EVENTS" --threads 64 --per-thread 1000 --runs "$RUNS" --dir "$W" --mode threads
"$B/fsync_probe" --bytes 25000 --commits 1000 --runs 3 --dir "$W"
echo "-- the same in bursts of 100 per appender with 3 s pauses (audit traffic): the p99"
"$B/append_concurrent" --events "$EVENTS" --threads 64 --per-thread 1000 --bursts 10 --pause-ms 3000 --runs 3 --dir "$W" --mode tasks
echo "-- a model of the commit cycle: the writer's CPU per event, and a second committer"
for cfg in "1 0 0" "1 1000 500" "2 0 0" "2 1000 500"; do
  set -- $cfg
  "$B/commit_model" --committers "$1" --layout-ns "$2" --finish-ns "$3" --runs 3 --dir "$W"
done

echo "== 3. vellum append (CLI, end to end) vs seed_logger.py"
python3 bench/cli_vs_seed.py --events "$N" --runs 3 --diag-batch "$N"

echo "== 4. vellum verify vs sha256sum"
python3 bench/verify_vs_sha256.py --events "$N" --runs "$RUNS"

if [ "${SKIP_BIG:-0}" != 1 ]; then
    echo "== 5. a $BIG-event log: memory while appending, opening, inclusion proofs"
    uptime
    "$B/big_log" --events "$EVENTS" --count "$BIG" --dir "$W/big-log" --keep
    echo "-- vellum verify vs sha256sum on the same large log"
    python3 bench/verify_vs_sha256.py --data "$W/big-log" --runs 3
    rm -rf "$W/big-log"
fi

echo "== 6. the audit server: HTTP ingest vs rsyslog, single-event POSTs"
python3 bench/http_vs_rsyslog.py --events "$N" --runs 3
bash bench/http_single_wrk.sh 3 10

if [ "${SKIP_BIG:-0}" != 1 ]; then
    echo "== 7. queries on a $BIG-event log through the index"
    "$B/query_latency" --events "$EVENTS" --count "$BIG" --samples 50 --keep
    for _ in 1 2; do
        "$B/query_latency" --events "$EVENTS" --count "$BIG" --samples 50 --keep --reuse
    done
    rm -rf "$W/query-log"
fi

echo "== results"
grep '^RESULT' "$OUT"
echo "full output: $OUT"
