//! Reproduces, deterministically, the segment-scan bug found while benchmarking (see
//! BENCHMARKS.md, "A correctness bug found while benchmarking"): a record that ends exactly
//! where a scan's 8 MiB read chunk ends (offset 32 + 8 MiB) is taken for the end of the
//! records, so `verify` reports a healthy log as damaged and recovery cuts acknowledged
//! events as a "torn tail".
//!
//! It makes a new log in `--dir` whose records fill exactly 8 MiB after the segment header
//! (the last one padded with its `reason`), appends `--after` more events, then runs
//! `vellum_store::verify` and reopens the store. With `--crash`, the appending process exits
//! right after the append is acknowledged, before any checkpoint covers it (as after a
//! `kill -9`), and the reopen then treats the acknowledged events past the boundary as a torn
//! tail. Not a benchmark: a diagnostic for the store's
//! owners. Prints what each step found; the data directory is removed unless `--keep`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use vellum_bench::remove_dir;
use vellum_event::{Category, Event, Outcome};
use vellum_store::{LogReader, Store, VerifyOptions, verify};

#[derive(Parser, Debug)]
struct Args {
    /// Where the log is made (removed first).
    #[arg(long, default_value = "/var/tmp/vellum-bench/scan-boundary")]
    dir: PathBuf,
    /// Events appended after the one that ends at the chunk boundary.
    #[arg(long, default_value_t = 1000)]
    after: usize,
    /// Leave the data directory in place.
    #[arg(long)]
    keep: bool,
    /// Append in a child process that exits without closing the store (no final checkpoint).
    #[arg(long)]
    crash: bool,
    /// Internal: be that child (append, then exit at once).
    #[arg(long, hide = true)]
    child: bool,
}

/// Where the scan's first chunk ends: the segment header, then 8 MiB.
const BOUNDARY: u64 = 32 + (8 << 20);
/// Bytes of a record's frame (length and CRC).
const FRAME: u64 = 8;
/// Any timestamp: the store's `received` always has this width.
const RECEIVED: &str = "2026-11-26T16:55:08.976526Z";

fn event(reason_len: usize) -> Event {
    let mut ev = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
    ev.reason = Some("x".repeat(reason_len));
    ev
}

/// Bytes the record of `ev` takes in a segment when stored at `index`.
fn record_len(ev: &Event, index: u64) -> u64 {
    let mut buf = Vec::new();
    ev.write_stored(&mut buf, index, RECEIVED);
    FRAME + buf.len() as u64
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.child {
        remove_dir(&args.dir)?;
    }
    let mut events = Vec::new();
    let mut at = 32u64;
    loop {
        let index = events.len() as u64;
        let ev = event(300);
        let len = record_len(&ev, index);
        if BOUNDARY - at > len + 1000 {
            at += len;
            events.push(ev);
            continue;
        }
        // The last one before the boundary: pad it to end exactly there.
        let bare = record_len(&event(0), index);
        let pad = usize::try_from(BOUNDARY - at - bare).context("padding")?;
        let ev = event(pad);
        at += record_len(&ev, index);
        events.push(ev);
        break;
    }
    anyhow::ensure!(at == BOUNDARY, "the records end at {at}, not {BOUNDARY}");
    let last_before = events.len() as u64 - 1;
    events.extend((0..args.after).map(|_| event(300)));
    let total = events.len() as u64;
    println!(
        "appending {total} events in one commit; record {last_before} ends at offset {BOUNDARY} (32 + 8 MiB)"
    );

    if args.crash {
        let me = std::env::current_exe().context("finding this program")?;
        let status = std::process::Command::new(me)
            .arg("--dir")
            .arg(&args.dir)
            .arg("--after")
            .arg(args.after.to_string())
            .arg("--child")
            .status()
            .context("running the appending child")?;
        anyhow::ensure!(status.success(), "the appending child failed: {status}");
    } else {
        let store = Store::open(&args.dir, vellum_bench::store_options())
            .with_context(|| format!("opening {}", args.dir.display()))?;
        let appended = store.append(events)?;
        println!(
            "appended: {} events acknowledged durable, tree size {}",
            appended.accepted, appended.tree_size
        );
        if args.child {
            // Like a kill -9 right after the acknowledgement: no final checkpoint.
            std::process::exit(0);
        }
        drop(store);
    }

    let report = verify(&args.dir, &VerifyOptions::default())?;
    println!(
        "verify: ok={} events_checked={} problems={:?}",
        report.ok(),
        report.events_checked,
        report
            .problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    );

    match Store::open(&args.dir, vellum_bench::store_options()) {
        Ok(store) => println!(
            "reopen: ok, tree size {}, torn tail cut: {:?}",
            store.tree_size(),
            store.recovered().torn_tail
        ),
        Err(e) => println!("reopen: FAILED: {e}"),
    }
    let size = LogReader::open(&args.dir)?.size()?;
    println!("after reopening, the log's segments hold {size} of the {total} acknowledged events");
    let bug = !report.ok() || size != total;
    println!(
        "{}",
        if bug {
            "REPRODUCED: a record ending at a scan-chunk boundary is taken for the end of the log"
        } else {
            "not reproduced: the log verifies and reopens whole"
        }
    );
    if !args.keep {
        remove_dir(&args.dir)?;
    }
    Ok(())
}
