//! Query latency on a large log through the query index, for typical audit questions:
//! failed logins of one user in the last week, all admin actions, everything from one IP.
//!
//! Builds a log of `--count` events from the generator's events (ids made unique), indexes
//! it completely (timed), then asks each question for `--samples` different users/IPs and
//! reports p50/p99 of the time to the first page of 100, as `GET /v1/events` answers it.
//!
//! usage: query_latency --events EVENTS.ndjson --count 10000000 --dir /var/tmp/vellum-bench

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use vellum_bench::{SplitMix64, load_events, percentile, remove_dir, store_options, unique_id, us};
use vellum_event::{Category, Filter, Outcome, Timestamp};
use vellum_index::Index;
use vellum_store::{LogReader, Store};

/// Makes the filter of one sample of a question.
type MakeFilter<'a> = Box<dyn Fn(&mut SplitMix64) -> Filter + 'a>;

#[derive(Parser, Debug)]
struct Args {
    #[arg(long)]
    events: PathBuf,
    #[arg(long, default_value_t = 10_000_000)]
    count: u64,
    #[arg(long, default_value = "/var/tmp/vellum-bench")]
    dir: PathBuf,
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Events from the file reused as the pool (ids are rewritten to stay unique).
    #[arg(long, default_value_t = 1_000_000)]
    pool: usize,
    /// Leave the log (and its index) in place afterwards.
    #[arg(long)]
    keep: bool,
    /// Use the log a previous `--keep` run left instead of building one.
    #[arg(long)]
    reuse: bool,
    /// Events per index write transaction while catching up (the server's by default).
    #[arg(long, default_value_t = vellum_index::BATCH)]
    index_batch: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = args.dir.join("query-log");
    let pool = load_events(&args.events, Some(args.pool))?;
    anyhow::ensure!(!pool.is_empty(), "no events in {}", args.events.display());
    if !(args.reuse && dir.exists()) {
        build(&dir, &pool, args.count)?;
    }

    let reader = LogReader::open(&dir)?;
    let index = Index::open(reader.layout())?;
    let started = Instant::now();
    let mut indexed = 0;
    loop {
        let n = index.catch_up(&reader, args.index_batch)?;
        if n == 0 {
            break;
        }
        indexed += n;
    }
    let index_secs = started.elapsed().as_secs_f64();
    println!(
        "indexed {indexed} events in {index_secs:.1} s ({:.0} events/s); {} indexed in all",
        indexed as f64 / index_secs,
        index.indexed()?
    );

    // "Last week" relative to the newest event's time.
    let newest = vellum_event::StoredEvent::parse(&reader.read(reader.size()? - 1)?)
        .map_err(anyhow::Error::msg)?
        .event
        .time;
    let week_ago = Timestamp::from_unix_micros(newest.unix_micros() - 7 * 86_400 * 1_000_000)
        .context("a week before the newest event")?;
    let users: Vec<String> = pool.iter().filter_map(|e| e.user()).collect();
    let ips: Vec<String> = pool.iter().filter_map(|e| e.ip()).collect();
    let mut rng = SplitMix64::new(7);
    let questions: [(&str, MakeFilter); 3] = [
        (
            "failed logins of one user in the last week",
            Box::new(|r: &mut SplitMix64| Filter {
                user: Some(users[r.below(users.len() as u64) as usize].clone()),
                category: Some(Category::Authentication),
                outcome: Some(Outcome::Failure),
                since: Some(week_ago),
                ..Filter::default()
            }),
        ),
        (
            "all admin actions",
            Box::new(|_: &mut SplitMix64| Filter {
                category: Some(Category::Admin),
                ..Filter::default()
            }),
        ),
        (
            "everything from one IP",
            Box::new(|r: &mut SplitMix64| Filter {
                ip: Some(ips[r.below(ips.len() as u64) as usize].clone()),
                ..Filter::default()
            }),
        ),
    ];
    for (name, make) in &questions {
        let mut times: Vec<Duration> = Vec::with_capacity(args.samples);
        let mut found = 0usize;
        for _ in 0..args.samples {
            let filter = make(&mut rng);
            let t = Instant::now();
            let page = index.query(&reader, &filter, 0, 100, 1_000_000)?;
            times.push(t.elapsed());
            found += page.events.len();
        }
        times.sort();
        println!(
            "RESULT query question=\"{name}\" events={} samples={} p50_ms={:.2} p99_ms={:.2} mean_matches_per_page={:.1}",
            args.count,
            args.samples,
            us(percentile(&times, 50.0)) / 1000.0,
            us(percentile(&times, 99.0)) / 1000.0,
            found as f64 / args.samples as f64
        );
    }
    if !args.keep {
        drop(index);
        remove_dir(&dir)?;
    }
    Ok(())
}

/// A fresh log of `count` events from `pool`, ids rewritten to stay unique.
fn build(dir: &std::path::Path, pool: &[vellum_event::Event], count: u64) -> anyhow::Result<()> {
    remove_dir(dir)?;
    let started = Instant::now();
    let store = Store::open(dir, store_options()).context("opening the store")?;
    let mut k = 0u64;
    let mut pending = std::collections::VecDeque::new();
    while k < count {
        let n = 10_000.min(count - k);
        let mut batch = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let mut ev = pool[(k % pool.len() as u64) as usize].clone();
            ev.id = unique_id(k)?;
            batch.push(ev);
            k += 1;
        }
        pending.push_back(store.append_deferred(batch)?);
        if pending.len() > 4
            && let Some(p) = pending.pop_front()
        {
            p.wait()?;
        }
    }
    for p in pending {
        p.wait()?;
    }
    drop(store);
    println!(
        "built {count} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
