//! A model of the store's small-commit cycle on the real disk, to ask what bounds section 2
//! of BENCHMARKS.md: `--callers` tokio tasks (on a 2-worker runtime, as in
//! `append_concurrent`) each append one event at a time and wait for its answer;
//! `--committers` threads each take everything queued, spend `--layout-ns` of CPU per
//! event (laying out, framing, hashing) and `pwrite` ~400 bytes an event under a shared
//! lock, `fdatasync` outside it, then finish in commit order (`--finish-ns` per event:
//! folding, the `.idx` and tree writes) and answer. No event is parsed or stored: only the
//! shape of the cycle, the disk and the wake-ups are real.
//!
//! With one committer and no CPU per event it shows how fast the disk and the answering
//! alone allow; raising `--layout-ns`/`--finish-ns` shows what the writer's own CPU costs;
//! `--committers 2` shows whether a second commit syncing while the first does would help.

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use tokio::sync::oneshot;
use vellum_bench::median;

#[derive(Parser, Debug)]
struct Args {
    /// Threads that commit (each takes what is queued and syncs it itself).
    #[arg(long, default_value_t = 1)]
    committers: usize,
    /// CPU spent per event before the write, in nanoseconds.
    #[arg(long, default_value_t = 0)]
    layout_ns: u64,
    /// CPU spent per event after the sync, in commit order, in nanoseconds.
    #[arg(long, default_value_t = 0)]
    finish_ns: u64,
    /// Tasks appending one event at a time.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Events each task appends per run.
    #[arg(long, default_value_t = 1000)]
    per_caller: usize,
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where the model's file is made (on the disk under test).
    #[arg(long, default_value = "/var/tmp/vellum-bench")]
    dir: PathBuf,
}

/// Stored bytes per event, framed (as in section 2's events).
const EVENT_BYTES: u64 = 400;

struct Queue {
    waiting: Mutex<VecDeque<oneshot::Sender<()>>>,
    more: Condvar,
    stop: AtomicBool,
}

struct Order {
    /// Next write offset, next commit number, commits finished.
    state: Mutex<(u64, u64, u64)>,
    finished: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn spin(d: Duration) {
    let end = Instant::now() + d;
    while Instant::now() < end {
        std::hint::spin_loop();
    }
}

fn committer(
    file: &std::fs::File,
    queue: &Queue,
    order: &Order,
    args: &Args,
    commits: &AtomicU64,
) -> std::io::Result<()> {
    let buf = vec![b'x'; EVENT_BYTES as usize * args.callers];
    loop {
        let batch: Vec<_> = {
            let mut q = lock(&queue.waiting);
            while q.is_empty() {
                if queue.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                q = queue
                    .more
                    .wait_timeout(q, Duration::from_millis(50))
                    .map_or_else(|e| e.into_inner().0, |r| r.0);
            }
            q.drain(..).collect()
        };
        let n = batch.len() as u64;
        let seq = {
            let mut st = lock(&order.state);
            spin(Duration::from_nanos(args.layout_ns * n));
            let len = (EVENT_BYTES * n) as usize;
            file.write_all_at(&buf[..len.min(buf.len())], st.0)?;
            st.0 += len as u64;
            st.1 += 1;
            st.1 - 1
        };
        file.sync_data()?;
        {
            let mut st = lock(&order.state);
            while st.2 != seq {
                st = order.finished.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            spin(Duration::from_nanos(args.finish_ns * n));
            st.2 += 1;
            order.finished.notify_all();
        }
        commits.fetch_add(1, Ordering::Relaxed);
        for reply in batch {
            let _ = reply.send(());
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Arc::new(Args::parse());
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let path = args.dir.join("commit-model.tmp");
    // Zero-filled and synced ahead, as the store's segments are: the syncs measured change
    // no file size. Each run rewrites the same bytes.
    let per_run = EVENT_BYTES * (args.callers * args.per_caller) as u64;
    let file = vellum_bench::zeroed_file(&path, per_run)?;
    let file = Arc::new(file);
    let queue = Arc::new(Queue {
        waiting: Mutex::new(VecDeque::new()),
        more: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let order = Arc::new(Order {
        state: Mutex::new((0, 0, 0)),
        finished: Condvar::new(),
    });
    let commits = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..args.committers.max(1) {
        let (file, queue, order, args, commits) = (
            file.clone(),
            queue.clone(),
            order.clone(),
            args.clone(),
            commits.clone(),
        );
        threads.push(std::thread::spawn(move || {
            committer(&file, &queue, &order, &args, &commits)
        }));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .context("starting the tokio runtime")?;
    let events = (args.callers * args.per_caller) as f64;
    let (mut rates, mut sizes) = (Vec::new(), Vec::new());
    for run in 1..=args.runs.max(1) {
        lock(&order.state).0 = 0;
        let before = commits.load(Ordering::Relaxed);
        let started = Instant::now();
        rt.block_on(async {
            let mut tasks = Vec::with_capacity(args.callers);
            for _ in 0..args.callers {
                let (queue, per) = (queue.clone(), args.per_caller);
                tasks.push(tokio::spawn(async move {
                    for _ in 0..per {
                        let (tx, rx) = oneshot::channel();
                        lock(&queue.waiting).push_back(tx);
                        queue.more.notify_one();
                        rx.await.context("a committer stopped")?;
                    }
                    Ok::<(), anyhow::Error>(())
                }));
            }
            for t in tasks {
                t.await.context("a caller task panicked")??;
            }
            Ok::<(), anyhow::Error>(())
        })?;
        let secs = started.elapsed().as_secs_f64();
        let made = (commits.load(Ordering::Relaxed) - before).max(1) as f64;
        println!(
            "run {run}: {:.0} events/s, {:.1} events per commit, a commit every {:.0} us",
            events / secs,
            events / made,
            secs * 1e6 / made
        );
        rates.push(events / secs);
        sizes.push(events / made);
    }
    queue.stop.store(true, Ordering::Relaxed);
    queue.more.notify_all();
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a committer panicked"))?
            .context("a committer's write or sync failed")?;
    }
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    println!(
        "RESULT commit_model committers={} layout_ns={} finish_ns={} callers={} runs={} median_events_per_s={:.0} median_events_per_commit={:.1}",
        args.committers,
        args.layout_ns,
        args.finish_ns,
        args.callers,
        rates.len(),
        median(&rates),
        median(&sizes)
    );
    Ok(())
}
