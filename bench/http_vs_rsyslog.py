#!/usr/bin/env python3
"""Ingest over HTTP (vellum serve, NDJSON batches, keep-alive, durable and Merkle-hashed)
against rsyslog (imptcp -> omfile, no fsync, no integrity: ../shared/baselines/rsyslog_peer.py)
on the same events, in the same run, alternating; then single-event POSTs from many
connections with p50/p99 latency.

usage: bench/http_vs_rsyslog.py [--events N] [--batch 1000] [--conns 4] [--runs 3]
                                [--client native|python] [--single-conns 64] [--single-events 20000]
Needs rsyslogd (apt-get install rsyslog) and a release build of vellum and vellum-bench
(common.binary). The batches are sent by the native load generator `http_ingest`
(crates/vellum-bench/src/bin/http_ingest.rs), which builds every request before the clock
starts so that, like rsyslog_peer.py's single sendall, the client takes little of the CPUs the
server needs; `--client python` uses the former http.client client instead (a diagnostic: it
takes most of a core). The clock for vellum runs from the first request sent to the last 200
received: every event acknowledged is fsync'ed. Each run prints the client's CPU time in that
window and the server's CPU time while the client ran. Prints every run and RESULT lines of
medians.
"""
import argparse, http.client, itertools, json, os, re, subprocess, sys, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BASELINES, WORK, binary, events_file, fresh, loadavg, median  # noqa: E402


def start_server(data):
    fresh(data)
    proc = subprocess.Popen([binary("vellum"), "--data", data, "serve", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    token, addr = None, None
    for line in proc.stdout:
        if line.startswith("vk-"):
            token = line.strip()
        m = re.search(r"audit API on http://(\S+)", line)
        if m:
            addr = m.group(1)
            break
    if not (token and addr):
        proc.kill()
        sys.exit("vellum serve did not start")
    host, port = addr.rsplit(":", 1)
    return proc, token, host, int(port)


def stop_server(proc):
    proc.terminate()
    proc.wait(timeout=60)


def post(conn, token, body, ctype):
    conn.request("POST", "/v1/events", body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": ctype})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{resp.status}: {data[:200]!r}")
    return json.loads(data)


def stat_cpu_seconds(path):
    """User + system CPU time in a /proc stat file (a process's or one thread's)."""
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    return stat_cpu_seconds(f"/proc/{pid}/stat")


def indexer_cpu_seconds(pid):
    """CPU time so far of the server's query-index thread (`vellum-indexer`)."""
    total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() == "vellum-indexer":
                    total += stat_cpu_seconds(f"/proc/{pid}/task/{tid}/stat")
        except OSError:
            continue
    return total


def index_catch_up_seconds(host, port, limit=300):
    """Seconds until the server's query index holds every committed event (its
    `vellum_index_lag_events` gauge reads 0), polled every 50 ms."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        m = re.search(r"^vellum_index_lag_events (\d+)$", text, re.M)
        if m and int(m.group(1)) == 0:
            return time.perf_counter() - start
        time.sleep(0.05)
    sys.exit(f"the index did not catch up within {limit} s")


def run_threads(worker, n):
    """Runs worker(0) .. worker(n - 1) on n threads at once; returns the seconds they took."""
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def http_batches(path, batch, conns, data):
    """The native client: returns (events, seconds, client CPU s in the window, server CPU s,
    (the query indexer's CPU s in the window, and until it held every event), seconds after
    the last response until the query index held every event)."""
    proc, token, host, port = start_server(data)
    try:
        server0, indexer0 = cpu_seconds(proc.pid), indexer_cpu_seconds(proc.pid)
        p = subprocess.run([binary("http_ingest"), "--events", path, "--url", f"http://{host}:{port}",
                            "--batch", str(batch), "--conns", str(conns)],
                           env=dict(os.environ, VELLUM_TOKEN=token), capture_output=True, text=True)
        server = cpu_seconds(proc.pid) - server0
        indexer = indexer_cpu_seconds(proc.pid) - indexer0
        if p.returncode != 0:
            sys.exit(f"http_ingest failed ({p.returncode}): {p.stderr.strip()}")
        catch_up = index_catch_up_seconds(host, port)
        indexer = (indexer, indexer_cpu_seconds(proc.pid) - indexer0)
        m = re.search(r"RESULT http_ingest events=(\d+) seconds=([0-9.]+) \S+ client_cpu_s=(\S+)", p.stdout)
        if not m:
            sys.exit(f"no RESULT line from http_ingest: {p.stdout!r}")
        return int(m.group(1)), float(m.group(2)), float(m.group(3)), server, indexer, catch_up
    finally:
        stop_server(proc)


def http_batches_python(path, batch, conns, data):
    """The former client (http.client, one thread per connection), kept as a diagnostic of
    what a client on the same CPUs costs. Same return value as http_batches."""
    lines = open(path, "rb").read().splitlines()
    proc, token, host, port = start_server(data)
    try:
        bodies = [b"\n".join(lines[i:i + batch]) + b"\n" for i in range(0, len(lines), batch)]
        parts = [bodies[i::conns] for i in range(conns)]
        accepted = [0] * conns

        def worker(i):
            c = http.client.HTTPConnection(host, port, timeout=120)
            for b in parts[i]:
                accepted[i] += post(c, token, b, "application/x-ndjson")["accepted"]
            c.close()

        server0, client0 = cpu_seconds(proc.pid), time.process_time()
        indexer0 = indexer_cpu_seconds(proc.pid)
        seconds = run_threads(worker, conns)
        client, server = time.process_time() - client0, cpu_seconds(proc.pid) - server0
        if sum(accepted) != len(lines):
            sys.exit(f"vellum accepted {sum(accepted)} of {len(lines)}")
        return len(lines), seconds, client, server
    finally:
        stop_server(proc)


def http_single(lines, conns, data):
    proc, token, host, port = start_server(data)
    try:
        parts = [lines[i::conns] for i in range(conns)]
        lat = [[] for _ in range(conns)]

        def worker(i):
            c = http.client.HTTPConnection(host, port, timeout=120)
            for line in parts[i]:
                t = time.perf_counter()
                post(c, token, line, "application/json")
                lat[i].append(time.perf_counter() - t)
            c.close()

        seconds = run_threads(worker, conns)
        all_lat = sorted(x for l in lat for x in l)
        pick = lambda q: all_lat[min(len(all_lat) - 1, int(q * len(all_lat)))]  # noqa: E731
        return len(lines) / seconds, pick(0.5) * 1e3, pick(0.99) * 1e3
    finally:
        stop_server(proc)


def rsyslog(path):
    """Returns (events, seconds)."""
    out = subprocess.run([sys.executable, os.path.join(BASELINES, "rsyslog_peer.py"), path,
                          os.path.join(WORK, "rsyslog-work")], capture_output=True, text=True, check=True).stdout
    fresh(os.path.join(WORK, "rsyslog-work"))
    m = re.search(r"events=(\d+) seconds=([0-9.]+)", out)
    return int(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--single-conns", type=int, default=64)
    ap.add_argument("--single-events", type=int, default=20_000)
    ap.add_argument("--client", choices=["native", "python"], default="native",
                    help="what sends the batches: http_ingest (default) or the former Python client")
    a = ap.parse_args()
    path = events_file(a.events)
    data = os.path.join(WORK, "http-data")
    send = http_batches if a.client == "native" else http_batches_python
    v, r, cpu = [], [], []
    for run in range(a.runs):
        n, vs, client, server, indexer, catch_up = send(path, a.batch, a.conns, data)
        rn, rs = rsyslog(path)
        if rn != n:
            sys.exit(f"vellum was sent {n} events, rsyslog {rn}")
        v.append(n / vs)
        r.append(n / rs)
        cpu.append(client / vs * 100)
        print(f"run {run + 1}: vellum HTTP {v[-1]:.0f} events/s ({vs:.2f} s; {a.client} client on a CPU "
              f"{client:.2f} s = {cpu[-1]:.0f}% of one core, server {server:.2f} s of CPU, "
              f"{indexer[0]:.2f} s of it indexing; index complete {catch_up:.2f} s after the last 200, "
              f"{indexer[1]:.2f} s of indexing CPU in all), rsyslog {r[-1]:.0f} "
              f"events/s ({rs:.2f} s), ratio {v[-1] / r[-1]:.2f}; load {loadavg()}", flush=True)
    print(f"RESULT http_batches events={n} batch={a.batch} conns={a.conns} runs={a.runs} client={a.client} "
          f"vellum_median={median(v):.0f} rsyslog_median={median(r):.0f} ratio={median(v) / median(r):.2f} "
          f"client_cpu_pct_median={median(cpu):.0f}")
    with open(path, "rb") as f:
        lines = [l.rstrip(b"\n") for l in itertools.islice(f, a.single_events)]
    singles = []
    for run in range(a.runs):
        s = http_single(lines[:a.single_events], a.single_conns, data)
        singles.append(s)
        print(f"run {run + 1}: single-event POSTs from {a.single_conns} connections: {s[0]:.0f} events/s, "
              f"p50 {s[1]:.2f} ms, p99 {s[2]:.2f} ms; load {loadavg()}", flush=True)
    print(f"RESULT http_single conns={a.single_conns} events={a.single_events} runs={a.runs} "
          f"events_per_s_median={median([s[0] for s in singles]):.0f} "
          f"p50_ms_median={median([s[1] for s in singles]):.2f} p99_ms_median={median([s[2] for s in singles]):.2f}")
    fresh(data)


if __name__ == "__main__":
    main()
