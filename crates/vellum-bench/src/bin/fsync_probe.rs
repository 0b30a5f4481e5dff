//! The disk's floor for a durable commit: `pwrite` of `--bytes` into a preallocated file, then
//! `fdatasync`, repeated — what the store's writer does for each group commit, with nothing
//! else. Its latency bounds how fast waiting callers can be answered: `C` callers who each
//! wait for their commit can do at most `C / latency` appends per second.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use vellum_bench::{median, percentile, us};

#[derive(Parser, Debug)]
struct Args {
    /// Bytes per commit (64 events of ~390 stored bytes ≈ 25,000).
    #[arg(long, default_value_t = 25_000)]
    bytes: usize,
    /// Commits per run.
    #[arg(long, default_value_t = 1000)]
    commits: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Callers per commit, for the derived bound.
    #[arg(long, default_value_t = 64)]
    callers: usize,
    /// Where the probe file is made (on the disk under test).
    #[arg(long, default_value = "/var/tmp/vellum-bench")]
    dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let path = args.dir.join("fsync-probe.tmp");
    let total = (args.bytes * args.commits) as u64;
    let (mut p50s, mut p99s) = (Vec::new(), Vec::new());
    for run in 1..=args.runs.max(1) {
        // Zero-filled and synced first, as the store's segments are.
        let file = vellum_bench::zeroed_file(&path, total)?;
        let data = vec![b'x'; args.bytes];
        let mut lat: Vec<Duration> = Vec::with_capacity(args.commits);
        for i in 0..args.commits {
            let t = Instant::now();
            file.write_all_at(&data, (i * args.bytes) as u64)
                .with_context(|| format!("writing {}", path.display()))?;
            file.sync_data()
                .with_context(|| format!("syncing {}", path.display()))?;
            lat.push(t.elapsed());
        }
        drop(file);
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        lat.sort_unstable();
        let (p50, p99) = (percentile(&lat, 50.0), percentile(&lat, 99.0));
        println!(
            "run {run}: {} x (pwrite {} B + fdatasync): p50 {:.0} us, p99 {:.0} us, max {:.0} us",
            args.commits,
            args.bytes,
            us(p50),
            us(p99),
            us(lat.last().copied().unwrap_or_default())
        );
        p50s.push(us(p50));
        p99s.push(us(p99));
    }
    let p50 = median(&p50s);
    println!(
        "RESULT fsync_probe bytes={} commits={} runs={} median_p50_us={p50:.0} median_p99_us={:.0} bound_events_per_s_for_{}_callers={:.0}",
        args.bytes,
        args.commits,
        p50s.len(),
        median(&p99s),
        args.callers,
        args.callers as f64 / (p50 / 1e6),
    );
    Ok(())
}
