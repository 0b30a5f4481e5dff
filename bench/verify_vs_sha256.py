#!/usr/bin/env python3
"""`vellum verify` throughput (GB/s of segment files) vs `sha256sum` (and `openssl dgst -sha256`)
of the same files, same run.

usage: bench/verify_vs_sha256.py [--events N | --data DIR] [--runs R] [--keep]

Without --data, a log of N events is made first with `vellum append` (gen_events.py, seed 7)
under /var/tmp/vellum-bench/verify-log and removed afterwards unless --keep. GB/s = bytes of
the segment files (segments/*.seg) / wall time of the command, process start to exit.
Runs alternate (verify, sha256sum, openssl, ...); one untimed read of every file first, so both run
from the page cache (this measures hashing and checking, not the disk).

`sha256sum` hashes the files on one core and checks nothing (coreutils' own SHA-256, no
SHA-NI); `openssl dgst -sha256` does the same with OpenSSL's SHA-NI code, the single-core
hashing bound; `vellum verify` re-hashes every
leaf (SHA-256 over each stored event, on every core), folds the Merkle tree, compares every
node with the tree files, checks every record's CRC and index and every signed checkpoint.
"""
import argparse, glob, os, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import WORK, binary, events_file, fresh, loadavg, median, segment_bytes, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--data")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    vellum = binary("vellum")
    made = a.data is None
    data = a.data or os.path.join(WORK, "verify-log")
    for attempt in range(1, 4):
        if made:
            fresh(data)
            with open(events_file(a.events, "native"), "rb") as f:
                timed([vellum, "--data", data, "--origin", "vellum/bench", "append"], stdin=f)
        # One untimed verification first: it warms the page cache and checks that the log
        # verifies at all (a failing verify stops early, and its time would mean nothing).
        p = subprocess.run([vellum, "--data", data, "verify"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode == 0:
            break
        print(f"NOTE: vellum verify failed on {data} (attempt {attempt}): {p.stderr.decode(errors='replace').strip()}")
        if not made or attempt == 3:
            sys.exit("vellum verify fails on this log; no throughput to report")
        print("NOTE: making the log again")
    segs = sorted(glob.glob(os.path.join(data, "segments", "*.seg")))
    total = segment_bytes(data)
    for s in segs:  # warm the page cache
        with open(s, "rb") as f:
            while f.read(1 << 24):
                pass
    print(f"verify_vs_sha256: {data}: {len(segs)} segment files, {total / 1e9:.3f} GB, {a.runs} runs; {loadavg()}")
    v_rates, s_rates, o_rates = [], [], []
    for run in range(1, a.runs + 1):
        secs, out = timed([vellum, "--data", data, "verify"])
        v_rates.append(total / secs / 1e9)
        first = out.strip().splitlines()[0] if out.strip() else ""
        print(f"run {run}: vellum verify {secs:.3f} s = {total / secs / 1e9:.2f} GB/s ({first})")
        secs, _ = timed(["sha256sum", *segs])
        s_rates.append(total / secs / 1e9)
        print(f"run {run}: sha256sum     {secs:.3f} s = {total / secs / 1e9:.2f} GB/s")
        secs, _ = timed(["openssl", "dgst", "-sha256", *segs])
        o_rates.append(total / secs / 1e9)
        print(f"run {run}: openssl dgst  {secs:.3f} s = {total / secs / 1e9:.2f} GB/s")
    v, s, o = median(v_rates), median(s_rates), median(o_rates)
    print(f"RESULT verify_vs_sha256 bytes={total} runs={a.runs} vellum_verify_gb_per_s={v:.2f} "
          f"sha256sum_gb_per_s={s:.2f} ratio={v / s:.2f} openssl_sha256_gb_per_s={o:.2f} ratio_openssl={v / o:.2f}")
    if made and not a.keep:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
