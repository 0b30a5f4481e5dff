#!/usr/bin/env bash
# Sequential write bandwidth of the disk under test, synced at the end (dd conv=fdatasync),
# and the latency of small synced writes (dd oflag=dsync, 4 KiB): the peers that tell whether
# appending is disk-bound. usage: bench/dd_bandwidth.sh [DIR] [RUNS]
set -euo pipefail
dir=${1:-/var/tmp/vellum-bench}
runs=${2:-3}
mkdir -p "$dir"
f="$dir/dd-bandwidth.tmp"
bw=()
for i in $(seq "$runs"); do
    line=$(dd if=/dev/zero of="$f" bs=4M count=128 conv=fdatasync 2>&1 | tail -1)
    rm -f "$f"
    bytes=$(awk '{print $1}' <<<"$line")
    secs=$(awk -F', ' '{split($3, a, " "); print a[1]}' <<<"$line")
    mbps=$(awk -v b="$bytes" -v s="$secs" 'BEGIN {printf "%.1f", b / s / 1e6}')
    echo "run $i: dd bs=4M count=128 conv=fdatasync: $line ($mbps MB/s)"
    bw+=("$mbps")
done
lat=()
for i in $(seq "$runs"); do
    line=$(dd if=/dev/zero of="$f" bs=4k count=300 oflag=dsync 2>&1 | tail -1)
    rm -f "$f"
    secs=$(awk -F', ' '{split($3, a, " "); print a[1]}' <<<"$line")
    ms=$(awk -v s="$secs" 'BEGIN {printf "%.2f", s / 300 * 1000}')
    echo "run $i: dd bs=4k count=300 oflag=dsync: $line ($ms ms per synced write)"
    lat+=("$ms")
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "RESULT dd runs=$runs median_fdatasync_write_mb_per_s=$(med "${bw[@]}") median_dsync_4k_write_ms=$(med "${lat[@]}")"
