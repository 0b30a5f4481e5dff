#!/usr/bin/env python3
"""`vellum append` from a file vs the chapter's Python logger (seed_logger.py), same run.

usage: bench/cli_vs_seed.py [--events N] [--runs R] [--diag-batch B]

Both get the same N events from gen_events.py (seed 7): the native shape for vellum, the
chapter's shape (--shape seed) for the seed logger. Runs alternate (vellum, seed, vellum, ...)
so both see the same machine load.

- vellum: `vellum --data DIR append < events.ndjson`, timed END TO END (process start to exit:
  reading stdin, parsing, opening/creating the store, appending with fdatasync and Merkle
  hashing, signing the final checkpoint). Fresh data directory each run.
- seed logger: the figure it prints itself, which covers ONLY its in-process logging loop
  (not the interpreter start nor reading and parsing its input); it does not fsync or hash.
  Its whole-process wall time is reported too, for reference.
- diagnostic (--diag-batch B, 0 = off): `vellum append --batch B` in the same run. With B >= N
  the CLI sends one append and skips its batching loop, which shows what that loop costs.
"""
import argparse, os, re, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BASELINES, WORK, binary, events_file, fresh, loadavg, median, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--diag-batch", type=int, default=0)
    a = ap.parse_args()
    vellum = binary("vellum")
    native, seed = events_file(a.events, "native"), events_file(a.events, "seed")
    data, logs = os.path.join(WORK, "cli-append"), os.path.join(WORK, "seed-logs")
    print(f"cli_vs_seed: {a.events} events, {a.runs} runs; {loadavg()}")
    v_rates, s_rates, s_wall_rates, d_rates = [], [], [], []
    for run in range(1, a.runs + 1):
        fresh(data)
        with open(native, "rb") as f:
            secs, out = timed([vellum, "--data", data, "--origin", "vellum/bench", "append"], stdin=f)
        m = re.search(r"appended (\d+) event", out)
        if not m or int(m.group(1)) != a.events:
            sys.exit(f"unexpected vellum output: {out!r}")
        v_rates.append(a.events / secs)
        print(f"run {run}: vellum append (end to end) {a.events} events in {secs:.3f} s = {a.events / secs:.0f} events/s")
        if a.diag_batch:
            fresh(data)
            with open(native, "rb") as f:
                secs, out = timed([vellum, "--data", data, "--origin", "vellum/bench", "append",
                                   "--batch", str(a.diag_batch)], stdin=f)
            d_rates.append(a.events / secs)
            print(f"run {run}: vellum append --batch {a.diag_batch} (diagnostic, end to end) {secs:.3f} s = {a.events / secs:.0f} events/s")
        fresh(data)
        fresh(logs)
        secs, out = timed([sys.executable, os.path.join(BASELINES, "seed_logger.py"), seed, logs])
        m = re.search(r"events=(\d+) seconds=([\d.]+) events_per_s=(\d+)", out)
        if not m:
            sys.exit(f"unexpected seed_logger output: {out!r}")
        s_rates.append(float(m.group(3)))
        s_wall_rates.append(a.events / secs)
        print(f"run {run}: seed_logger loop {m.group(3)} events/s (its own figure); whole process {secs:.3f} s = {a.events / secs:.0f} events/s")
        fresh(logs)
    v, s, sw = median(v_rates), median(s_rates), median(s_wall_rates)
    print(f"RESULT cli_vs_seed events={a.events} runs={a.runs} vellum_end_to_end_events_per_s={v:.0f} "
          f"seed_loop_events_per_s={s:.0f} ratio={v / s:.1f} seed_whole_process_events_per_s={sw:.0f} "
          f"ratio_whole_process={v / sw:.1f}"
          + (f" diag_batch={a.diag_batch} diag_events_per_s={median(d_rates):.0f} diag_ratio={median(d_rates) / s:.1f}"
             if d_rates else ""))


if __name__ == "__main__":
    main()
