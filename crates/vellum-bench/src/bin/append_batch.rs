//! In-process durable append in batches.
//!
//! Events are parsed (and split into batches) before the clock starts; the clock runs from
//! the first append until the last one is acknowledged durable (fdatasync'ed and in the
//! Merkle tree). `--inflight 1` uses the blocking `Store::append`; `--inflight K` keeps K
//! `append_deferred` calls in flight, so the store's group commit can merge them.
//! Every run uses a fresh data directory, removed afterwards.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use vellum_bench::{
    fresh_dir, load_events, mean_body_bytes, median, remove_dir, segment_bytes, writer_schedstat,
};
use vellum_event::Event;
use vellum_store::Store;

#[derive(Parser, Debug)]
struct Args {
    /// NDJSON events (native shape), e.g. from `gen_events.py 1000000`.
    #[arg(long)]
    events: PathBuf,
    /// Use only the first N events of the file.
    #[arg(long)]
    limit: Option<usize>,
    /// Events per append call.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Appends in flight at once (1 = blocking `append`).
    #[arg(long, default_value_t = 1)]
    inflight: usize,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the data directories are made.
    #[arg(long, default_value = "/var/tmp/vellum-bench")]
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let events = load_events(&args.events, args.limit)?;
    let n = events.len();
    let batch = args.batch.max(1);
    let inflight = args.inflight.max(1);
    eprintln!(
        "append_batch: {n} events (mean canonical body {:.0} bytes), batch {batch}, in flight {inflight}, {} runs",
        mean_body_bytes(&events),
        args.runs
    );
    let mut rates = Vec::new();
    let mut mbps = Vec::new();
    let mut cpus = Vec::new();
    let mut all_cpus = Vec::new();
    for run in 1..=args.runs.max(1) {
        let batches: Vec<Vec<Event>> = events.chunks(batch).map(<[Event]>::to_vec).collect();
        let dir = fresh_dir(&args.dir, "append-batch")?;
        let store = Store::open(&dir, vellum_bench::store_options())
            .with_context(|| format!("opening {}", dir.display()))?;
        let sched0 = writer_schedstat()?;
        let cpu0 = vellum_bench::process_cpu_secs()?;
        let start = Instant::now();
        let mut stored = 0u64;
        if inflight == 1 {
            for b in batches {
                stored += store.append(b)?.accepted;
            }
        } else {
            let mut pending = VecDeque::with_capacity(inflight);
            for b in batches {
                if pending.len() == inflight
                    && let Some(p) = pending.pop_front()
                {
                    stored += vellum_store::Pending::wait(p)?.accepted;
                }
                pending.push_back(store.append_deferred(b)?);
            }
            for p in pending {
                stored += p.wait()?.accepted;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let sched1 = writer_schedstat()?;
        let all_cpu_us = (vellum_bench::process_cpu_secs()? - cpu0) * 1e6 / n as f64;
        let cpu_us = (sched1.0 - sched0.0) as f64 / 1e3 / n as f64;
        let waited = (sched1.1 - sched0.1) as f64 / 1e9;
        anyhow::ensure!(stored == n as u64, "stored {stored} of {n} events");
        drop(store);
        let bytes = segment_bytes(&dir)?;
        remove_dir(&dir)?;
        let rate = n as f64 / secs;
        let mb = bytes as f64 / secs / 1e6;
        println!(
            "run {run}: {n} events in {secs:.3} s = {rate:.0} events/s, {mb:.1} MB/s of segment; writer thread on CPU {cpu_us:.2} us/event ({:.0}% of the time), waiting for a CPU {waited:.2} s; process CPU {all_cpu_us:.2} us/event",
            cpu_us * n as f64 / 1e6 / secs * 100.0
        );
        all_cpus.push(all_cpu_us);
        cpus.push(cpu_us);
        rates.push(rate);
        mbps.push(mb);
    }
    println!(
        "RESULT append_batch events={n} batch={batch} inflight={inflight} runs={} median_events_per_s={:.0} median_segment_mb_per_s={:.1} min={:.0} max={:.0} median_writer_cpu_us_per_event={:.2} median_process_cpu_us_per_event={:.2}",
        rates.len(),
        median(&rates),
        median(&mbps),
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
        median(&cpus),
        median(&all_cpus),
    );
    Ok(())
}
