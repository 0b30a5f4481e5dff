//! Many concurrent callers appending one event each and waiting for durability.
//!
//! `--threads` appenders (default 64) share one `Store`; each appends its own pre-parsed
//! events one at a time and waits until they are fdatasync'ed and in the Merkle tree, timing
//! every call. With `--mode threads` (the default) the appenders are OS threads calling the
//! blocking `Store::append`; with `--mode tasks` they are tasks on a tokio runtime (one worker
//! per core) awaiting `Store::append_async`, as the server's request handlers do. Throughput is all events over the time from the start
//! barrier until the last thread is done. Every run uses a fresh data directory.
//!
//! With `--warmup-per-thread W`, each appender first appends W events of its own, untimed, on
//! the same store: the timed events then meet a writer whose memory (its id window, its
//! allocator's pages) is already in use, as in a server that has been running, instead of a
//! store opened a moment before.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use vellum_bench::{fresh_dir, load_events, median, percentile, remove_dir, us, writer_schedstat};
use vellum_event::Event;
use vellum_store::Store;

#[derive(Parser, Debug)]
struct Args {
    /// NDJSON events (native shape), e.g. from `gen_events.py 1000000`.
    #[arg(long)]
    events: PathBuf,
    /// Concurrent appenders.
    #[arg(long, default_value_t = 64)]
    threads: usize,
    /// Events each appender appends (one per call).
    #[arg(long, default_value_t = 2_000)]
    per_thread: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the data directories are made.
    #[arg(long, default_value = "/var/tmp/vellum-bench")]
    dir: PathBuf,
    /// `threads`: OS threads and blocking appends; `tasks`: tokio tasks and async appends.
    #[arg(long, value_enum, default_value_t = Mode::Threads)]
    mode: Mode,
    /// Split each appender's events into this many bursts, with a pause before each burst
    /// after the first (audit traffic comes in bursts). Rates are over the bursts' time.
    #[arg(long, default_value_t = 1)]
    bursts: usize,
    /// The pause between bursts, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Events each appender appends first, untimed, on the same store (other events than
    /// the timed ones).
    #[arg(long, default_value_t = 0)]
    warmup_per_thread: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Threads,
    Tasks,
}

/// What one appender measured: every call's latency, the tree size each call was answered
/// with, and when it finished.
type Measured = (Vec<Duration>, Vec<u64>, Instant);

/// Runs every appender, each on its own events, from one common start; returns the start
/// instant and what each appender measured.
fn run_appenders(
    store: &Store,
    events: &[Event],
    per: usize,
    mode: Mode,
) -> anyhow::Result<(Instant, Vec<Measured>)> {
    let appenders = events.len() / per;
    match mode {
        Mode::Threads => {
            let barrier = Arc::new(Barrier::new(appenders + 1));
            let mut handles = Vec::with_capacity(appenders);
            for chunk in events.chunks(per) {
                let mine: Vec<Event> = chunk.to_vec();
                let store = store.clone();
                let barrier = barrier.clone();
                handles.push(std::thread::spawn(move || -> anyhow::Result<Measured> {
                    let mut lat = Vec::with_capacity(mine.len());
                    let mut sizes = Vec::with_capacity(mine.len());
                    barrier.wait();
                    for ev in mine {
                        let t = Instant::now();
                        let r = store.append(vec![ev])?;
                        lat.push(t.elapsed());
                        anyhow::ensure!(r.accepted == 1, "an event was not stored");
                        sizes.push(r.tree_size);
                    }
                    Ok((lat, sizes, Instant::now()))
                }));
            }
            barrier.wait();
            let start = Instant::now();
            let mut out = Vec::with_capacity(appenders);
            for h in handles {
                out.push(
                    h.join()
                        .map_err(|_| anyhow::anyhow!("an appender thread panicked"))??,
                );
            }
            Ok((start, out))
        }
        Mode::Tasks => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(async {
                let barrier = Arc::new(tokio::sync::Barrier::new(appenders + 1));
                let mut handles = Vec::with_capacity(appenders);
                for chunk in events.chunks(per) {
                    let mine: Vec<Event> = chunk.to_vec();
                    let store = store.clone();
                    let barrier = barrier.clone();
                    handles.push(tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(mine.len());
                        let mut sizes = Vec::with_capacity(mine.len());
                        barrier.wait().await;
                        for ev in mine {
                            let t = Instant::now();
                            let r = store.append_async(vec![ev]).await?;
                            lat.push(t.elapsed());
                            anyhow::ensure!(r.accepted == 1, "an event was not stored");
                            sizes.push(r.tree_size);
                        }
                        Ok::<Measured, anyhow::Error>((lat, sizes, Instant::now()))
                    }));
                }
                barrier.wait().await;
                let start = Instant::now();
                let mut out = Vec::with_capacity(appenders);
                for h in handles {
                    out.push(h.await.context("an appender task panicked")??);
                }
                Ok((start, out))
            })
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args.threads.max(1);
    let per = args.per_thread.max(1);
    let bursts = args.bursts.clamp(1, per);
    anyhow::ensure!(
        per % bursts == 0,
        "--per-thread {per} does not split into {bursts} equal bursts"
    );
    let per_burst = per / bursts;
    let warm = args.warmup_per_thread;
    let needed = threads * (warm + per);
    let mut events = load_events(&args.events, Some(needed))?;
    anyhow::ensure!(
        events.len() == needed,
        "need {needed} events in {}, found {}",
        args.events.display(),
        events.len()
    );
    let timed = events.split_off(threads * warm);
    let (warmup, events) = (events, timed);
    eprintln!(
        "append_concurrent: {threads} {:?} x {per} single-event appends ({warm} each first, untimed), {} runs",
        args.mode, args.runs
    );
    let (mut rates, mut p50s, mut p99s, mut p999s, mut groups) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut intervals = Vec::new();
    let mut cpus = Vec::new();
    let mut syncs = Vec::new();
    for run in 1..=args.runs.max(1) {
        let dir = fresh_dir(&args.dir, "append-concurrent")?;
        let store = Store::open(&dir, vellum_bench::store_options())
            .with_context(|| format!("opening {}", dir.display()))?;
        if warm > 0 {
            run_appenders(&store, &warmup, warm, args.mode)?;
        }
        let size_before = store.tree_size();
        let (_, fsync_secs0, fsyncs0) = store.stats().fsync_seconds.snapshot();
        let sched0 = writer_schedstat()?;
        let cpu0 = vellum_bench::process_cpu_secs()?;
        let mut all = Vec::with_capacity(threads * per);
        let mut commits = Vec::with_capacity(threads * per);
        let mut secs = 0.0;
        for b in 0..bursts {
            if b > 0 {
                std::thread::sleep(Duration::from_millis(args.pause_ms));
            }
            // Each appender's b-th share of its own events.
            let burst: Vec<Event> = events
                .chunks(per)
                .flat_map(|mine| mine[b * per_burst..(b + 1) * per_burst].iter().cloned())
                .collect();
            let (start, measured) = run_appenders(&store, &burst, per_burst, args.mode)?;
            let mut end = start;
            for (lat, sizes, done) in measured {
                all.extend(lat);
                commits.extend(sizes);
                end = end.max(done);
            }
            secs += (end - start).as_secs_f64();
        }
        let cpu_us = (vellum_bench::process_cpu_secs()? - cpu0) * 1e6 / (threads * per) as f64;
        let sched1 = writer_schedstat()?;
        let busy = (sched1.0 - sched0.0) as f64 / 1e9 / secs * 100.0;
        let waited = (sched1.1 - sched0.1) as f64 / 1e9;
        let appended = store.tree_size() - size_before;
        let (_, fsync_secs, fsyncs) = store.stats().fsync_seconds.snapshot();
        let (fsync_secs, fsyncs) = (fsync_secs - fsync_secs0, fsyncs - fsyncs0);
        let fsync_us = fsync_secs * 1e6 / fsyncs.max(1) as f64;
        let fsync_share = fsync_secs / secs * 100.0;
        drop(store);
        remove_dir(&dir)?;
        all.sort_unstable();
        let rate = all.len() as f64 / secs;
        let (p50, p99, p999) = (
            percentile(&all, 50.0),
            percentile(&all, 99.0),
            percentile(&all, 99.9),
        );
        // Every append of one commit is answered with the same tree size: distinct sizes
        // count the commits (one fdatasync each).
        commits.sort_unstable();
        commits.dedup();
        let per_commit = all.len() as f64 / commits.len().max(1) as f64;
        println!(
            "run {run}: {} events in {secs:.3} s = {rate:.0} events/s; latency p50 {:.0} us, p99 {:.0} us, p99.9 {:.0} us, max {:.0} us; {} commits ({:.2} ms apart), {per_commit:.1} events per commit; writer on CPU {busy:.0}% of the time, waiting for a CPU {waited:.2} s; fdatasync {fsync_us:.0} us on average, {fsync_share:.0}% of the time; process CPU {cpu_us:.1} us/event",
            appended,
            us(p50),
            us(p99),
            us(p999),
            us(all.last().copied().unwrap_or_default()),
            commits.len(),
            secs * 1e3 / commits.len().max(1) as f64,
        );
        rates.push(rate);
        p50s.push(us(p50));
        p99s.push(us(p99));
        p999s.push(us(p999));
        groups.push(per_commit);
        cpus.push(cpu_us);
        intervals.push(secs * 1e3 / commits.len().max(1) as f64);
        syncs.push(fsync_us);
    }
    println!(
        "RESULT append_concurrent mode={:?} threads={threads} per_thread={per} warmup_per_thread={warm} bursts={bursts} pause_ms={} runs={} median_events_per_s={:.0} median_p50_us={:.0} median_p99_us={:.0} median_p999_us={:.0} events_per_commit={:.0} median_commit_interval_ms={:.2} median_fsync_us={:.0} median_process_cpu_us_per_event={:.1}",
        args.mode,
        args.pause_ms,
        rates.len(),
        median(&rates),
        median(&p50s),
        median(&p99s),
        median(&p999s),
        median(&groups),
        median(&intervals),
        median(&syncs),
        median(&cpus),
    );
    Ok(())
}
