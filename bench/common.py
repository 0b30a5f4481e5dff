"""Helpers shared by the benchmark drivers in bench/ (standard library only)."""
import os, shutil, statistics, subprocess, sys, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASELINES = os.environ.get("VELLUM_BASELINES", os.path.join(os.path.dirname(REPO), "shared", "baselines"))
TARGET = os.environ.get("CARGO_TARGET_DIR", "/var/tmp/vt-bench")
WORK = os.environ.get("VELLUM_BENCH_DIR", "/var/tmp/vellum-bench")


def binary(name):
    """A release binary of the workspace (build with `cargo build --release`)."""
    path = os.path.join(TARGET, "release", name)
    if not os.path.exists(path):
        sys.exit(f"{path} not found: run CARGO_TARGET_DIR={TARGET} cargo build --release -p vellum -p vellum-bench")
    return path


def events_file(n, shape="native"):
    """The gen_events.py output for N events (default seed 7), made once and cached in WORK."""
    os.makedirs(WORK, exist_ok=True)
    path = os.path.join(WORK, f"events-{n}-{shape}.ndjson")
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as out:
            subprocess.run([sys.executable, os.path.join(BASELINES, "gen_events.py"), str(n), "--shape", shape],
                           stdout=out, check=True)
        os.rename(tmp, path)
    return path


def fresh(path):
    shutil.rmtree(path, ignore_errors=True)
    return path


def timed(cmd, stdin=None, env=None):
    """Runs cmd, returns (wall seconds from process start to exit, stdout). Dirty pages left by
    whatever ran before (a peer's log files, a removed data directory) are written out first,
    outside the clock, so no command pays for another's writeback."""
    os.sync()
    start = time.perf_counter()
    p = subprocess.run(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    secs = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return secs, p.stdout.decode()


def segment_bytes(data):
    seg = os.path.join(data, "segments")
    return sum(os.path.getsize(os.path.join(seg, f)) for f in os.listdir(seg) if f.endswith(".seg"))


def median(xs):
    return statistics.median(xs)


def loadavg():
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
