#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A disk whose `fdatasync` fails, for real: the store on an ext4 file system on a loop
//! device whose backing file sits on a tmpfs that the test fills (`vellum_testkit::
//! FailingDisk`). Writing back a block never written before then fails with `EIO`, and a
//! second `fdatasync` succeeds with the data lost, so a writer that simply retried would
//! acknowledge events that are not on the disk.
//!
//! Each test appends until an append fails, then holds the store to this: the writer stops
//! (every later append is refused as `Poisoned`), and once the disk has room again and is
//! mounted afresh (what is read then comes from the disk, not from the page cache; one test
//! restarts without that first), reopening recovers a log that holds every acknowledged
//! event exactly once, at the index it was acknowledged with, that `verify` passes and that
//! takes appends again.
//!
//! Needs root, tmpfs and a loop device; `.ci/run` runs as root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use vellum_event::{Category, Event, Outcome, StoredEvent};
use vellum_store::{LogReader, Options, Store, StoreError, VerifyOptions, verify};
use vellum_testkit::FailingDisk;

fn options() -> Options {
    Options {
        create: true,
        origin: Some("vellum/fsync-failure-test".into()),
        segment_max_bytes: 8 << 20,
        checkpoint_interval: Duration::from_millis(200),
        ..Options::default()
    }
}

fn event(id: &str, pad: usize) -> Event {
    let mut e = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success)
        .with_details(serde_json::json!({ "pad": "x".repeat(pad) }));
    e.id = id.parse().unwrap();
    e
}

/// A failing disk (`backing` of tmpfs under an ext4 of `size`) and where the log goes on
/// it; the temporary directory holding both comes first, to be dropped last.
fn failing_disk(
    backing: &str,
    size: &str,
    journal: bool,
) -> (tempfile::TempDir, FailingDisk, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let disk = FailingDisk::new(tmp.path(), backing, size, journal);
    let data = disk.dir.join("log");
    (tmp, disk, data)
}

/// Every acknowledged id and the index it was acknowledged with.
type Acked = HashMap<String, u64>;

fn keep(acked: &Mutex<Acked>, events: &[Event], a: &vellum_store::Appended) {
    let mut acked = acked.lock().unwrap();
    for (e, &(index, _)) in events.iter().zip(&a.indexes) {
        if let Some(was) = acked.insert(e.id.to_string(), index) {
            assert_eq!(was, index, "{} acknowledged at two indexes", e.id);
        }
    }
}

/// After the failure: the writer refuses everything, though the disk would now take a sync.
fn assert_stopped(store: &Store, failure: &StoreError) {
    assert!(
        store.poisoned().is_some(),
        "an append failed ({failure}) but the writer goes on"
    );
    match store.append(vec![event("after-the-failure", 10)]) {
        Err(StoreError::Poisoned(why)) => assert!(!why.is_empty()),
        other => panic!("an append after a failed sync: {other:?}"),
    }
}

/// Reopens the log from the disk and holds it to every acknowledgement.
fn assert_recovered(disk: &mut FailingDisk, data: &Path, acked: &Acked) {
    disk.repair_and_remount();
    let store = assert_holds(data, acked);
    let next = store.tree_size();
    let a = store.append(vec![event("after-the-repair", 10)]).unwrap();
    assert_eq!(
        a.first_index,
        Some(next),
        "the log does not go on after its last event"
    );
}

/// Opens the log and holds it to every acknowledgement: each acknowledged id stored once,
/// at its index, nothing stored twice, no index skipped, and `verify` passes.
fn assert_holds(data: &Path, acked: &Acked) -> Store {
    let store = Store::open(data, options()).unwrap();
    let reader = LogReader::open(data).unwrap();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut next = 0;
    reader
        .for_each(0, u64::MAX, |index, bytes| {
            assert_eq!(index, next, "the log skips an index");
            next += 1;
            let stored = StoredEvent::parse(bytes).unwrap();
            let id = stored.event.id.as_str().to_string();
            if let Some(other) = seen.insert(id.clone(), index) {
                panic!("{id} is stored twice, at {other} and at {index}");
            }
            Ok(())
        })
        .unwrap();
    for (id, &index) in acked {
        match seen.get(id) {
            Some(&at) => assert_eq!(at, index, "{id} acknowledged at {index}, stored at {at}"),
            None => panic!("acknowledged {id} (index {index}) is not on the disk"),
        }
    }
    let report = verify(data, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "verify found {:#?}", report.problems);
    assert_eq!(store.tree_size(), next);
    store
}

/// Opens the log after the disk was repaired but not remounted (a restart without a
/// reboot: the page cache still holds what failed to reach the disk), signs a checkpoint,
/// then remounts: both opens hold every acknowledgement and agree on the log's size.
fn assert_restart_then_reboot(disk: &mut FailingDisk, data: &Path, acked: &Acked) {
    disk.free_backing();
    let store = assert_holds(data, acked);
    let size = store.tree_size();
    store.checkpoint().unwrap();
    drop(store);
    disk.remount();
    let store = assert_holds(data, acked);
    assert_eq!(
        store.tree_size(),
        size,
        "the restart counted records the disk did not hold"
    );
}

/// Appends `commits` commits of 10 small events (ids `<prefix>-<commit>-<i>`), each of which
/// must succeed.
fn append_commits(store: &Store, acked: &Mutex<Acked>, prefix: &str, commits: usize) {
    for b in 0..commits {
        let e: Vec<Event> = (0..10)
            .map(|i| event(&format!("{prefix}-{b}-{i}"), 100))
            .collect();
        keep(acked, &e, &store.append(e.clone()).unwrap());
    }
}

/// Appends `batch(i)` for `i` in `0..most` until an append fails; the failure.
fn append_until_failure(
    store: &Store,
    acked: &Mutex<Acked>,
    most: usize,
    batch: impl Fn(usize) -> Vec<Event>,
) -> StoreError {
    for i in 0..most {
        let e = batch(i);
        match store.append(e.clone()) {
            Ok(a) => keep(acked, &e, &a),
            Err(err) => return err,
        }
    }
    panic!("no append failed on a full disk");
}

/// A store on `disk` with 50 acknowledged events, then the disk filled.
fn store_then_fill(disk: &FailingDisk, data: &Path) -> (Store, Mutex<Acked>) {
    let store = Store::open(data, options()).unwrap();
    let acked = Mutex::new(Acked::new());
    for i in 0..50 {
        let e = vec![event(&format!("before-{i}"), 200)];
        keep(&acked, &e, &store.append(e.clone()).unwrap());
    }
    disk.fill_backing();
    (store, acked)
}

#[test]
fn a_failed_fdatasync_stops_the_writer_and_loses_no_acknowledged_event() {
    let (_tmp, mut disk, data) = failing_disk("48m", "40m", false);
    let (store, acked) = store_then_fill(&disk, &data);
    // Single events of about 8 KB, each synced alone: the zeroed space ahead of the records
    // (blocks written before the disk filled) runs out within a few MiB, and the next sync
    // writes blocks the disk has no room for.
    let failure = append_until_failure(&store, &acked, 4000, |i| {
        vec![event(&format!("after-{i}"), 8000)]
    });
    assert_stopped(&store, &failure);
    drop(store);
    assert_recovered(&mut disk, &data, &acked.into_inner().unwrap());
}

/// Large commits are synced on the writer's sync thread while the next is laid out, and a
/// re-sent event makes the writer wait for the commit that holds it: a sync failing there
/// must fail every commit after it, acknowledged at none of its indexes.
#[test]
fn a_failed_sync_on_the_sync_thread_acknowledges_nothing_written_after_it() {
    let (_tmp, mut disk, data) = failing_disk("96m", "80m", true);
    let store = Store::open(&data, options()).unwrap();
    let acked = Arc::new(Mutex::new(Acked::new()));
    // Enough that the tree already has the levels the first commits after the fill reach
    // (14 levels; the failure comes within a few commits): making a level syncs the tree
    // directory, which would fail first (`a_failed_directory_sync_...` below).
    let first: Vec<Event> = (0..9000)
        .map(|i| event(&format!("first-{i}"), 100))
        .collect();
    keep(&acked, &first, &store.append(first.clone()).unwrap());

    disk.fill_backing();
    // Two appenders, each keeping a few large appends in flight; every append re-sends the
    // last event of the one before it, so the writer compares it with a commit that may
    // still be syncing.
    let failures: Vec<StoreError> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let (store, acked) = (store.clone(), Arc::clone(&acked));
                s.spawn(move || {
                    let mut pending = std::collections::VecDeque::new();
                    let mut previous_last: Option<Event> = None;
                    for b in 0..40 {
                        let mut events: Vec<Event> = (0..2500)
                            .map(|i| event(&format!("t{t}-b{b}-{i}"), 100))
                            .collect();
                        if let Some(last) = previous_last.take() {
                            events.insert(0, last);
                        }
                        previous_last = events.last().cloned();
                        match store.append_deferred(events.clone()) {
                            Ok(p) => pending.push_back((events, p)),
                            Err(e) => return Some(e),
                        }
                        if pending.len() >= 3
                            && let Some((events, p)) = pending.pop_front()
                        {
                            match p.wait() {
                                Ok(a) => keep(&acked, &events, &a),
                                Err(e) => return Some(e),
                            }
                        }
                    }
                    for (events, p) in pending {
                        match p.wait() {
                            Ok(a) => keep(&acked, &events, &a),
                            Err(e) => return Some(e),
                        }
                    }
                    None
                })
            })
            .collect();
        workers
            .into_iter()
            .filter_map(|w| w.join().unwrap())
            .collect()
    });
    let failure = failures.first().expect("no append failed on a full disk");
    assert_stopped(&store, failure);
    drop(store);
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    assert_recovered(&mut disk, &data, &acked);
}

/// The tree files are synced only before a checkpoint is signed. When that sync fails (here
/// with `ENOSPC`: writing back blocks that need room the disk no longer has), the nodes it
/// was to make durable may be lost, and a second sync succeeds without them: a checkpoint
/// signed then would cover a tree the disk does not hold, and the log would not open after
/// a restart. The failure must stop the writer instead, as a failed sync of a segment does.
#[test]
fn a_checkpoint_is_never_signed_over_tree_nodes_whose_sync_failed() {
    let (_tmp, mut disk, data) = failing_disk("48m", "40m", false);
    let options = Options {
        checkpoint_interval: Duration::from_secs(3600),
        ..options()
    };
    let store = Store::open(&data, options.clone()).unwrap();
    let acked = Mutex::new(Acked::new());
    append_commits(&store, &acked, "a", 100);
    store.checkpoint().unwrap();

    disk.fill_backing();
    // Into the zeroed space ahead of the records, which the disk already holds: these
    // commits sync. Their tree nodes and `.idx` entries go to blocks not written before.
    append_commits(&store, &acked, "b", 30);
    let failure = store
        .checkpoint()
        .expect_err("the tree files were synced to a full disk");
    assert!(failure.is_sync_failure(), "{failure}");
    // Retried, each try used to meet the failure of another level's file, until one signed
    // a checkpoint over the lost nodes (and the log then failed to open: "the tree files
    // do not match the latest checkpoint"). Now the first failure stops the writer.
    match store.checkpoint() {
        Err(StoreError::Poisoned(_)) => {}
        Ok(issued) => panic!(
            "a checkpoint of size {} was signed after the tree's sync failed ({failure})",
            issued.checkpoint.size.0
        ),
        Err(e) => panic!("a second checkpoint after a failed sync: {e}"),
    }
    assert_stopped(&store, &failure);
    drop(store);
    assert_recovered(&mut disk, &data, &acked.into_inner().unwrap());
}

/// "Restart to recover" without a reboot: the page cache still holds, clean, the pages
/// whose writeback failed, so a new process would read records the disk never got (and
/// rebuild its `.idx` from them, or sign a checkpoint over them). Opening drops the active
/// segment's clean cached pages first, and reads what the disk holds.
#[test]
fn a_restart_after_a_failed_fdatasync_reads_what_the_disk_holds() {
    let (_tmp, mut disk, data) = failing_disk("48m", "40m", false);
    let (store, acked) = store_then_fill(&disk, &data);
    // Appends of 25 events of about 8 KB: the failed one leaves whole pages of records in
    // the cache past what the disk holds.
    let failure = append_until_failure(&store, &acked, 400, |i| {
        (0..25)
            .map(|k| event(&format!("after-{i}-{k}"), 8000))
            .collect()
    });
    assert_stopped(&store, &failure);
    drop(store);
    let acked = acked.into_inner().unwrap();

    assert_restart_then_reboot(&mut disk, &data, &acked);
}

/// A commit that reaches a new tree level makes the level's file and syncs the tree
/// directory while it is laid out, before its records are written: a failure there fails
/// the commit and stops the writer, as any failed sync does.
#[test]
fn a_failed_directory_sync_while_laying_out_a_commit_stops_the_writer() {
    // With a journal, the first metadata that cannot be written fails the directory's sync
    // (the records themselves go to zeroed blocks the disk already holds).
    let (_tmp, mut disk, data) = failing_disk("48m", "40m", true);
    let options = Options {
        checkpoint_interval: Duration::from_secs(3600),
        ..options()
    };
    let store = Store::open(&data, options).unwrap();
    let acked = Mutex::new(Acked::new());
    // 1,000 events: the tree has levels 0..=9; the 1,024th event needs level 10.
    append_commits(&store, &acked, "a", 100);
    disk.fill_backing();
    let failure = append_until_failure(&store, &acked, 10, |b| {
        (0..10).map(|i| event(&format!("b-{b}-{i}"), 100)).collect()
    });
    match &failure {
        StoreError::SyncFailed { context, .. } => {
            assert!(context.contains("syncing directory"), "{failure}")
        }
        other => panic!("not a failed directory sync: {other}"),
    }
    assert_eq!(
        acked.lock().unwrap().len(),
        1020,
        "the commit before level 10 was stored"
    );
    assert_stopped(&store, &failure);
    drop(store);
    assert_recovered(&mut disk, &data, &acked.into_inner().unwrap());
}

/// The writer syncs neither the active `.idx` nor the tree's newest nodes before a
/// checkpoint; when the kernel writes them back on its own and that fails, nobody sees the
/// error, and a restarted writer's first sync of each such file would report it (one
/// failed open per file), though recovery rebuilds exactly those parts. Opening consumes
/// those stale errors, and a restart after the repair opens at once.
#[test]
fn a_restart_after_unseen_writeback_errors_opens_at_once() {
    let (_tmp, mut disk, data) = failing_disk("48m", "40m", false);
    let store = Store::open(&data, options()).unwrap();
    let acked = Mutex::new(Acked::new());
    append_commits(&store, &acked, "a", 100);
    store.checkpoint().unwrap();
    disk.fill_backing();
    // Into the zeroed space the disk holds: these commits sync; their `.idx` entries and
    // tree nodes go to blocks it does not.
    append_commits(&store, &acked, "b", 30);
    // The kernel writes everything back on its own (here: now), and fails.
    let synced = std::process::Command::new("sync")
        .arg("-f")
        .arg(&data)
        .status()
        .unwrap();
    assert!(!synced.success(), "writing back to a full disk succeeded");
    drop(store); // its closing checkpoint fails: the writer stops
    let acked = acked.into_inner().unwrap();

    assert_restart_then_reboot(&mut disk, &data, &acked);
}

/// The physical 4 KiB block of logical block `block` of `file` (`filefrag -v -b4096`).
fn physical_block(file: &Path, block: u64) -> u64 {
    let out = std::process::Command::new("filefrag")
        .args(["-v", "-b4096"])
        .arg(file)
        .output()
        .expect("this test needs e2fsprogs' filefrag");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line
            .split(|c: char| c == ':' || c == '.' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if f.len() >= 5 && f[0].parse::<u64>().is_ok() {
            let (first, last, at): (u64, u64, u64) = (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            );
            if (first..=last).contains(&block) {
                return at + (block - first);
            }
        }
    }
    panic!("no extent of {} holds block {block}", file.display());
}

/// The page cache holds a file in large folios (up to 1 MiB here, as the segment's zeros
/// are written): dropping only the pages from the first record past the checkpoint on
/// would keep the whole folio that page is in, stale records and all. Here the records
/// past the checkpoint and one commit beyond (C1) share a page and its folio with the
/// commit whose sync failed (C2): a restart must read C2's records from the disk (zeros),
/// not from that folio, or it signs a checkpoint over records the disk never got.
#[test]
fn a_restart_reads_what_the_disk_holds_in_a_large_folio_too() {
    let (tmp, mut disk, data) = failing_disk("48m", "40m", false);
    let options = Options {
        checkpoint_interval: Duration::from_secs(3600),
        ..options()
    };
    let store = Store::open(&data, options.clone()).unwrap();
    let segment = data.join("segments/00000000000000000000.seg");
    let records_end = || {
        let bytes = std::fs::read(&segment).unwrap();
        bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |i| i as u64 + 1)
    };
    let acked = Mutex::new(Acked::new());
    let mut b = 0;
    // Past the first 18 pages (inside the first zeroed MiB, one folio), and ending early
    // in a page.
    while records_end() / 4096 < 18 || records_end() % 4096 > 2500 {
        let e = vec![event(&format!("a-{b}"), 300)];
        keep(&acked, &e, &store.append(e.clone()).unwrap());
        b += 1;
    }
    store.checkpoint().unwrap();
    let page = records_end() / 4096;
    // The blocks after that page become blocks the disk cannot write: punched out of the
    // image (they hold zeros), then the tmpfs is filled.
    let image = tmp.path().join("backing/image");
    for block in page + 1..page + 64 {
        let at = physical_block(&segment, block) * 4096;
        let punched = std::process::Command::new("fallocate")
            .args([
                "--punch-hole",
                "--offset",
                &at.to_string(),
                "--length",
                "4096",
            ])
            .arg(&image)
            .status()
            .unwrap();
        assert!(punched.success(), "punching block {block} out of the image");
    }
    disk.fill_backing();
    // C1 fits in that page: durable. C2 runs into the punched blocks: its sync fails.
    let c1 = vec![event("c1", 100)];
    keep(&acked, &c1, &store.append(c1.clone()).unwrap());
    let c2: Vec<Event> = (0..8).map(|k| event(&format!("c2-{k}"), 2000)).collect();
    let failure = store.append(c2).unwrap_err();
    assert!(failure.is_sync_failure(), "{failure}");
    drop(store);
    let acked = acked.into_inner().unwrap();

    // C2's records that reached the disk, if any, are part of the log; no others.
    assert_restart_then_reboot(&mut disk, &data, &acked);
}
