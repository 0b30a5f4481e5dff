//! A large log (default 10,000,000 events): memory while appending it, the time to open it,
//! and inclusion proofs for random indexes.
//!
//! 1. Build: events from a pool parsed from `--events` get fresh, unique ids (so none is a
//!    duplicate) and are appended in batches with `--inflight` deferred appends in flight.
//!    Every million events the process's VmRSS and VmHWM (peak RSS) are sampled from
//!    `/proc/self/status`. The pool and the batches in flight are a constant overhead,
//!    measured as the baseline before the store is opened.
//! 2. Open: `Store::open` on the finished log, timed `--reopens` times (median).
//! 3. Proofs: `LogReader::inclusion_proof` for `--proofs` random indexes against the latest
//!    checkpoint, repeated `--passes` times (median of each pass's p50/p99). Every proof is
//!    checked against the checkpoint's root, outside the clock. `LogReader::read` (the event
//!    bytes a receipt carries) is timed alongside.
//!
//! The data directory is removed at the end unless `--keep`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use vellum_bench::{
    SplitMix64, load_events, median, percentile, proc_status_kib, remove_dir, segment_bytes,
    unique_id, us,
};
use vellum_event::Event;
use vellum_merkle::{LeafIndex, TreeSize, verify_inclusion};
use vellum_store::{LogReader, Store};

#[derive(Parser, Debug)]
struct Args {
    /// NDJSON events (native shape) to draw the pool from.
    #[arg(long)]
    events: PathBuf,
    /// Events in the log.
    #[arg(long, default_value_t = 10_000_000)]
    count: u64,
    /// Events parsed into the pool (reused with fresh ids).
    #[arg(long, default_value_t = 100_000)]
    pool: usize,
    /// Events per append.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Deferred appends in flight while building.
    #[arg(long, default_value_t = 4)]
    inflight: usize,
    /// Sample memory every this many events.
    #[arg(long, default_value_t = 1_000_000)]
    sample_every: u64,
    /// Timed reopenings of the finished store.
    #[arg(long, default_value_t = 3)]
    reopens: usize,
    /// Random indexes proved per pass.
    #[arg(long, default_value_t = 1000)]
    proofs: usize,
    /// Passes over the random indexes (medians are reported).
    #[arg(long, default_value_t = 3)]
    passes: usize,
    /// The data directory.
    #[arg(long, default_value = "/var/tmp/vellum-bench/big-log")]
    dir: PathBuf,
    /// Use the log already in `--dir` instead of building one.
    #[arg(long)]
    skip_build: bool,
    /// Leave the data directory in place at the end.
    #[arg(long)]
    keep: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.skip_build {
        build(&args)?;
    }
    let result = measure(&args);
    if !args.keep {
        remove_dir(&args.dir)?;
        eprintln!("big_log: removed {}", args.dir.display());
    }
    result
}

fn build(args: &Args) -> anyhow::Result<()> {
    remove_dir(&args.dir)?;
    if let Some(parent) = args.dir.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let pool = load_events(&args.events, Some(args.pool))?;
    let batch = args.batch.max(1) as u64;
    let inflight = args.inflight.max(1);
    let count = args.count;
    let (tx, rx) = mpsc::sync_channel::<Vec<Event>>(inflight);
    // The producer clones pool events with fresh ids, off the appending thread.
    let producer = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut next = 0u64;
        while next < count {
            let n = batch.min(count - next);
            let mut b = Vec::with_capacity(n as usize);
            for k in next..next + n {
                let mut ev = pool[(k % pool.len() as u64) as usize].clone();
                ev.id = unique_id(k)?;
                b.push(ev);
            }
            next += n;
            if tx.send(b).is_err() {
                break;
            }
        }
        Ok(())
    });
    // Let the producer fill its channel, so the baseline holds the pool and the queued batches.
    std::thread::sleep(Duration::from_millis(500));
    let base_rss = proc_status_kib("VmRSS")?;
    let base_hwm = proc_status_kib("VmHWM")?;
    println!(
        "baseline before opening the store (pool of {} events + queued batches): VmRSS {} MiB, VmHWM {} MiB",
        args.pool,
        base_rss / 1024,
        base_hwm / 1024
    );
    let store = Store::open(&args.dir, vellum_bench::store_options())
        .with_context(|| format!("opening {}", args.dir.display()))?;
    let start = Instant::now();
    let mut last = (0u64, start);
    let mut stored = 0u64;
    let mut next_sample = args.sample_every;
    let mut samples: Vec<(u64, u64, u64)> = Vec::new();
    let mut pending = VecDeque::with_capacity(inflight);
    let mut sample = |stored: u64, last: &mut (u64, Instant)| -> anyhow::Result<()> {
        let rss = proc_status_kib("VmRSS")?;
        let hwm = proc_status_kib("VmHWM")?;
        let now = Instant::now();
        let rate = (stored - last.0) as f64 / (now - last.1).as_secs_f64();
        println!(
            "at {stored:>11} events: VmRSS {:>5} MiB, VmHWM {:>5} MiB, {rate:.0} events/s since the last sample",
            rss / 1024,
            hwm / 1024
        );
        *last = (stored, now);
        samples.push((stored, rss, hwm));
        Ok(())
    };
    let wait_one = |pending: &mut VecDeque<vellum_store::Pending>| -> anyhow::Result<u64> {
        match pending.pop_front() {
            Some(p) => Ok(p.wait()?.accepted),
            None => Ok(0),
        }
    };
    for b in rx {
        if pending.len() == inflight {
            stored += wait_one(&mut pending)?;
        }
        pending.push_back(store.append_deferred(b)?);
        while stored >= next_sample {
            sample(stored, &mut last)?;
            next_sample += args.sample_every;
        }
    }
    while !pending.is_empty() {
        stored += wait_one(&mut pending)?;
        while stored >= next_sample {
            sample(stored, &mut last)?;
            next_sample += args.sample_every;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer panicked"))??;
    anyhow::ensure!(stored == count, "stored {stored} of {count} events");
    drop(store);
    let bytes = segment_bytes(&args.dir)?;
    println!(
        "built {count} events in {secs:.1} s ({:.0} events/s, {:.2} GB of segments)",
        count as f64 / secs,
        bytes as f64 / 1e9
    );
    let first = samples.first().copied().unwrap_or((0, base_rss, base_hwm));
    let lastv = samples.last().copied().unwrap_or(first);
    println!(
        "RESULT big_log_memory events={count} baseline_rss_mib={} rss_at_first_sample_mib={} hwm_at_first_sample_mib={} first_sample_events={} rss_at_end_mib={} hwm_at_end_mib={} hwm_growth_ratio={:.3} store_hwm_first_mib={} store_hwm_end_mib={} build_events_per_s={:.0}",
        base_rss / 1024,
        first.1 / 1024,
        first.2 / 1024,
        first.0,
        lastv.1 / 1024,
        lastv.2 / 1024,
        lastv.2 as f64 / first.2.max(1) as f64,
        first.2.saturating_sub(base_hwm) / 1024,
        lastv.2.saturating_sub(base_hwm) / 1024,
        count as f64 / secs,
    );
    Ok(())
}

fn measure(args: &Args) -> anyhow::Result<()> {
    // Opening.
    let mut opens = Vec::new();
    for i in 1..=args.reopens.max(1) {
        let t = Instant::now();
        let store = Store::open(&args.dir, vellum_bench::store_options())
            .with_context(|| format!("opening {}", args.dir.display()))?;
        let d = t.elapsed();
        let r = store.recovered().clone();
        drop(store);
        println!(
            "open {i}: Store::open took {:.1} ms (tree size {}, re-hashed {} leaves)",
            d.as_secs_f64() * 1e3,
            r.tree_size,
            r.rehashed
        );
        opens.push(d.as_secs_f64() * 1e3);
    }
    let t = Instant::now();
    let reader = LogReader::open(&args.dir)?;
    let reader_open = t.elapsed();
    let (cp, _) = reader.latest_checkpoint()?;
    let size = cp.size.0;
    anyhow::ensure!(size > 0, "the log is empty");
    println!(
        "RESULT big_log_open tree_size={size} reopens={} median_open_ms={:.1} min_ms={:.1} max_ms={:.1} logreader_open_us={:.0}",
        opens.len(),
        median(&opens),
        opens.iter().copied().fold(f64::INFINITY, f64::min),
        opens.iter().copied().fold(0.0, f64::max),
        us(reader_open),
    );

    // Proofs.
    let mut rng = SplitMix64::new(0x5eed_0f7e_u64);
    let (mut p50s, mut p99s, mut maxs, mut r50s, mut r99s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pass in 1..=args.passes.max(1) {
        let mut lat = Vec::with_capacity(args.proofs);
        let mut reads = Vec::with_capacity(args.proofs);
        for _ in 0..args.proofs.max(1) {
            let index = rng.below(size);
            let t = Instant::now();
            let proof = reader.inclusion_proof(index, size)?;
            lat.push(t.elapsed());
            let t = Instant::now();
            let bytes = reader.read(index)?;
            reads.push(t.elapsed());
            anyhow::ensure!(
                vellum_merkle::leaf_hash(&bytes) == proof.leaf_hash,
                "index {index}: the event's bytes do not hash to the proved leaf"
            );
            verify_inclusion(
                &proof.leaf_hash,
                LeafIndex(index),
                TreeSize(size),
                &proof.proof,
                &cp.root,
            )
            .map_err(|e| anyhow::anyhow!("index {index}: the proof does not verify: {e}"))?;
        }
        lat.sort_unstable();
        reads.sort_unstable();
        println!(
            "proofs pass {pass}: {} random indexes of {size}: inclusion_proof p50 {:.1} us, p99 {:.1} us, max {:.1} us; read p50 {:.1} us, p99 {:.1} us (all proofs verified)",
            lat.len(),
            us(percentile(&lat, 50.0)),
            us(percentile(&lat, 99.0)),
            us(lat.last().copied().unwrap_or_default()),
            us(percentile(&reads, 50.0)),
            us(percentile(&reads, 99.0)),
        );
        p50s.push(us(percentile(&lat, 50.0)));
        p99s.push(us(percentile(&lat, 99.0)));
        maxs.push(us(lat.last().copied().unwrap_or_default()));
        r50s.push(us(percentile(&reads, 50.0)));
        r99s.push(us(percentile(&reads, 99.0)));
    }
    println!(
        "RESULT big_log_proofs tree_size={size} proofs_per_pass={} passes={} median_p50_us={:.1} median_p99_us={:.1} median_max_us={:.1} read_median_p50_us={:.1} read_median_p99_us={:.1}",
        args.proofs,
        p50s.len(),
        median(&p50s),
        median(&p99s),
        median(&maxs),
        median(&r50s),
        median(&r99s),
    );
    Ok(())
}
