#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large commits are written (direct) and synced on the sync thread while the writer lays
//! out the next ones. With several appenders keeping large appends in flight (so commits
//! overlap their syncs, and segments rotate between them), every acknowledged event must be
//! stored once at the index it was given, re-sent events must come back as duplicates of
//! those indexes (and other events under their ids be refused, even while the commit that
//! holds them is in flight), the tree must match, and the log must verify after reopening.
//!
//! Appends queued together are gathered into commits of at most 16 MiB of bodies; the one
//! that would go past it starts the next commit.
//!
//! A full disk fails a large commit and changes nothing: the commit's space is reserved
//! before its direct write is handed to the sync thread, so the error comes back to that
//! append alone, the writer is not poisoned, and once there is room again appends (large
//! and small) go on where they stopped. That test runs on a small tmpfs, so it needs root
//! (`mount`); `.ci/run` runs as root.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Duration;

use vellum_event::{Category, Event, Outcome, StoredEvent};
use vellum_store::{
    AppendChain, LogReader, Options, Prepared, Store, StoreError, VerifyOptions, verify,
};
use vellum_testkit::{fill, mount_tmpfs};

const THREADS: usize = 4;
const BATCHES: usize = 8;
/// Above the size from which commits sync on the sync thread.
const BATCH_EVENTS: usize = 2500;
const IN_FLIGHT: usize = 3;

fn event(thread: usize, batch: usize, i: usize) -> Event {
    let mut e = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
    e.id = format!("t{thread}-b{batch}-{i}").parse().unwrap();
    e
}

fn batch(thread: usize, batch: usize) -> Vec<Event> {
    (0..BATCH_EVENTS).map(|i| event(thread, batch, i)).collect()
}

#[test]
fn overlapping_large_commits_keep_every_acknowledged_event() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let options = Options {
        create: true,
        origin: Some("vellum/pipeline-test".into()),
        segment_max_bytes: 2 << 20,
        checkpoint_interval: Duration::from_millis(20),
        ..Options::default()
    };
    let store = Store::open(&dir, options.clone()).unwrap();
    let acknowledged: Vec<HashMap<String, u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    let mut acked = HashMap::new();
                    let mut in_flight = VecDeque::new();
                    let settle = |b: usize, p: vellum_store::Pending, acked: &mut HashMap<_, _>| {
                        let a = p.wait().unwrap();
                        assert_eq!(a.accepted, BATCH_EVENTS as u64, "batch {b} of thread {t}");
                        for (i, (index, duplicate)) in a.indexes.into_iter().enumerate() {
                            assert!(!duplicate);
                            acked.insert(event(t, b, i).id.to_string(), index);
                        }
                    };
                    let mut resent = Vec::new();
                    for b in 0..BATCHES {
                        in_flight.push_back((b, store.append_deferred(batch(t, b)).unwrap()));
                        // While batch `b` is in flight (its direct write perhaps not even
                        // made yet): one of its events re-sent is a duplicate; another
                        // event under that id is refused.
                        let same = store.append_deferred(vec![event(t, b, 7)]).unwrap();
                        let mut other = event(t, b, 7);
                        other.action = "embeddings".into();
                        let other = store.append_deferred(vec![other]).unwrap();
                        resent.push((b, same, other));
                        if in_flight.len() >= IN_FLIGHT {
                            let (b, p) = in_flight.pop_front().unwrap();
                            settle(b, p, &mut acked);
                        }
                    }
                    for (b, p) in in_flight {
                        settle(b, p, &mut acked);
                    }
                    for (b, same, other) in resent {
                        let at = acked[&event(t, b, 7).id.to_string()];
                        let same = same.wait().unwrap();
                        assert_eq!((same.accepted, same.indexes), (0, vec![(at, true)]));
                        match other.wait() {
                            Err(vellum_store::StoreError::IdConflict { id, index }) => {
                                assert_eq!((id, index), (event(t, b, 7).id.to_string(), at));
                            }
                            other => panic!("batch {b}: {other:?}"),
                        }
                    }
                    // Sent again: answered with the indexes they already have.
                    let again = store.append(batch(t, 0)).unwrap();
                    assert_eq!(again.accepted, 0);
                    for (i, (index, duplicate)) in again.indexes.into_iter().enumerate() {
                        assert!(duplicate);
                        assert_eq!(Some(&index), acked.get(&event(t, 0, i).id.to_string()));
                    }
                    acked
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total = THREADS * BATCHES * BATCH_EVENTS;
    assert_eq!(store.tree_size(), total as u64);
    drop(store);

    let all: HashMap<String, u64> = acknowledged.into_iter().flatten().collect();
    assert_eq!(all.len(), total);
    let reopened = Store::open(&dir, options).unwrap();
    assert_eq!(reopened.tree_size(), total as u64);
    drop(reopened);

    assert_log_holds(&dir, &all, total as u64);
}

/// The log in `dir` holds `total` events, each acknowledged at the index it has, and verifies.
/// Appends queued together are gathered into one commit only up to 16 MiB of event bodies
/// (`MAX_GROUP_BYTES` in the writer): the append that would go past it starts the next
/// commit, and nothing is lost, reordered or stored twice on the way.
#[test]
fn queued_appends_past_the_commit_size_go_into_the_next_commit() {
    const APPENDS: usize = 12;
    const EVENTS: usize = 1000;
    const CAP: usize = 16 << 20;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let options = Options {
        create: true,
        origin: Some("vellum/pipeline-test".into()),
        ..Options::default()
    };
    let store = Store::open(&dir, options).unwrap();
    // About 4 MB an append, 50 MB in all: prepared first, so that queueing them is quick
    // and most wait together while the writer commits the first.
    let appends: Vec<Vec<(String, vellum_store::Prepared)>> = (0..APPENDS)
        .map(|a| {
            (0..EVENTS)
                .map(|i| {
                    let mut e = event(a, 0, i);
                    e.reason = Some("x".repeat(4000));
                    (e.id.to_string(), vellum_store::Prepared::new(&e))
                })
                .collect()
        })
        .collect();
    let bytes: Vec<usize> = appends
        .iter()
        .map(|a| a.iter().map(|(_, p)| p.body().len()).sum())
        .collect();
    let ids: Vec<Vec<String>> = appends
        .iter()
        .map(|a| a.iter().map(|(id, _)| id.clone()).collect())
        .collect();
    let pending: Vec<_> = appends
        .into_iter()
        .map(|a| {
            store
                .append_deferred_prepared(a.into_iter().map(|(_, p)| p).collect())
                .unwrap()
        })
        .collect();
    let mut acked = HashMap::new();
    // Appends answered with the same tree size were one commit.
    let mut commits: Vec<(u64, usize, usize)> = Vec::new(); // (tree size, appends, bytes)
    let mut last_index = None;
    for (a, p) in pending.into_iter().enumerate() {
        let done = p.wait().unwrap();
        assert_eq!(done.accepted, EVENTS as u64, "append {a}");
        for (id, (index, duplicate)) in ids[a].iter().zip(done.indexes) {
            assert!(!duplicate);
            assert!(
                last_index < Some(index),
                "append {a}: indexes in the order sent"
            );
            last_index = Some(index);
            acked.insert(id.clone(), index);
        }
        match commits.last_mut() {
            Some((size, n, b)) if *size == done.tree_size => {
                *n += 1;
                *b += bytes[a];
            }
            _ => commits.push((done.tree_size, 1, bytes[a])),
        }
    }
    assert!(
        bytes.iter().sum::<usize>() > CAP + bytes[0],
        "the test must queue more than a commit holds"
    );
    for (size, appends, b) in &commits {
        assert!(
            *appends == 1 || *b <= CAP,
            "the commit ending at {size} gathered {appends} appends, {b} bytes: {commits:?}"
        );
    }
    assert!(commits.len() >= 2, "{commits:?}");
    drop(store);
    assert_log_holds(&dir, &acked, (APPENDS * EVENTS) as u64);
}

fn assert_log_holds(dir: &Path, acked: &HashMap<String, u64>, total: u64) {
    let reader = LogReader::open(dir).unwrap();
    let mut seen = 0u64;
    reader
        .for_each(0, total, |index, bytes| {
            let stored = StoredEvent::parse(bytes).unwrap();
            assert_eq!(stored.index, index);
            assert_eq!(acked.get(stored.event.id.as_str()), Some(&index));
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, total);
    let report = verify(dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{report:?}");
}

fn named(name: &str, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut e = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success)
                .with_details(serde_json::json!({"pad": "x".repeat(40)}));
            e.id = format!("{name}-{i}").parse().unwrap();
            e
        })
        .collect()
}

#[test]
fn a_full_disk_fails_a_large_commit_alone_and_appends_go_on_after() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    let _mount = mount_tmpfs(&mnt, "12m");
    let dir = mnt.join("log");
    let options = Options {
        create: true,
        origin: Some("vellum/disk-full-test".into()),
        checkpoint_interval: Duration::from_secs(3600),
        // Exactly the first batch: a failed commit must not push any of it out.
        dedupe_window: BATCH_EVENTS,
        ..Options::default()
    };
    let store = Store::open(&dir, options.clone()).unwrap();
    let mut acked: HashMap<String, u64> = HashMap::new();
    let mut keep = |events: &[Event], a: vellum_store::Appended| {
        for (e, (index, duplicate)) in events.iter().zip(a.indexes) {
            assert!(!duplicate);
            acked.insert(e.id.to_string(), index);
        }
    };
    let first = named("first", BATCH_EVENTS);
    keep(&first, store.append(first.clone()).unwrap());

    let filler = mnt.join("filler");
    fill(&filler);
    // With a re-sent event in it: a failed commit reports no duplicates, nor counts them.
    let mut refused = named("refused", BATCH_EVENTS);
    refused.push(first[1].clone());
    let refused = store.append(refused).unwrap_err();
    assert!(refused.is_disk_full(), "{refused}");
    let duplicates = || {
        store
            .stats()
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    assert_eq!(duplicates(), 0, "duplicates of a failed commit counted");
    assert_eq!(store.poisoned(), None, "a full disk poisoned the writer");
    assert_eq!(store.tree_size(), BATCH_EVENTS as u64);
    // In a chain, an append after a refused one is refused too (or fails with it), even
    // one that would fit: the chain stores a prefix of what it sent.
    let chain = AppendChain::new();
    let prepared = |events: Vec<Event>| events.iter().map(Prepared::new).collect::<Vec<_>>();
    let big = store
        .append_deferred_in(&chain, prepared(named("chained", BATCH_EVENTS)))
        .unwrap();
    let after = store
        .append_deferred_in(&chain, prepared(named("after", 3)))
        .unwrap();
    assert!(big.wait().unwrap_err().is_disk_full());
    let after = after.wait();
    assert!(
        matches!(&after, Err(StoreError::ChainBroken))
            || after.as_ref().is_err_and(|e| e.is_disk_full()),
        "{after:?}"
    );
    assert!(chain.is_broken());
    assert_eq!(store.tree_size(), BATCH_EVENTS as u64);

    std::fs::remove_file(&filler).unwrap();
    let resent = store.append(vec![first[0].clone()]).unwrap();
    assert_eq!(
        resent.indexes,
        [(0, true)],
        "the window lost an id to a failed commit"
    );
    assert_eq!(duplicates(), 1);
    let again = named("again", BATCH_EVENTS);
    keep(&again, store.append(again.clone()).unwrap());
    let small = named("small", 3);
    keep(&small, store.append(small.clone()).unwrap());
    let total = 2 * BATCH_EVENTS as u64 + 3;
    assert_eq!(store.tree_size(), total);
    drop(store);

    // Reopened: nothing lost, nothing of the refused append, every index where it was given.
    let reopened = Store::open(&dir, options).unwrap();
    assert_eq!(reopened.tree_size(), total);
    assert!(reopened.recovered().torn_tail.is_none());
    drop(reopened);
    assert_log_holds(&dir, &acked, total);
}

/// Re-sent events are compared with what is stored wherever it is (sealed segments, the
/// active one, large commits written direct, after a reopen), in any order, through the
/// writer's read window: each comes back as the duplicate of its index, and another event
/// under its id is refused at that index.
#[test]
fn re_sends_in_any_order_find_their_stored_event() {
    // Sizes vary; every 997th event is larger than the read window.
    let sized = |n: usize| {
        let pad = if n % 997 == 500 {
            1_200_000
        } else {
            (n * 37) % 3000
        };
        let mut e = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success)
            .with_details(serde_json::json!({ "n": n, "pad": "x".repeat(pad) }));
        e.id = format!("ev-{n}").parse().unwrap();
        e
    };
    let mut lcg = 7u64;
    let mut pick = move |below: usize| {
        lcg = lcg
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((lcg >> 33) % below as u64) as usize
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let options = Options {
        create: true,
        origin: Some("vellum/re-send-test".into()),
        segment_max_bytes: 3 << 20,
        checkpoint_interval: Duration::from_millis(50),
        ..Options::default()
    };
    let mut stored: Vec<u64> = Vec::new();
    for _reopen in 0..2 {
        let store = Store::open(&dir, options.clone()).unwrap();
        for _ in 0..3 {
            let start = stored.len();
            let big = store
                .append_deferred((start..start + BATCH_EVENTS).map(sized).collect())
                .unwrap();
            let a = big.wait().unwrap();
            stored.extend(a.indexes.iter().map(|&(i, _)| i));
            for _ in 0..5 {
                let a = store.append(vec![sized(stored.len())]).unwrap();
                stored.push(a.indexes[0].0);
            }
            let recent: Vec<usize> = (stored.len().saturating_sub(3000)..stored.len()).collect();
            let backwards: Vec<usize> = recent.iter().rev().copied().collect();
            let anywhere: Vec<usize> = (0..500).map(|_| pick(stored.len())).collect();
            for order in [recent, backwards, anywhere] {
                let again = store
                    .append(order.iter().map(|&n| sized(n)).collect())
                    .unwrap();
                assert_eq!(again.accepted, 0);
                for (&n, &(index, duplicate)) in order.iter().zip(&again.indexes) {
                    assert_eq!((index, duplicate), (stored[n], true), "event {n}");
                }
                for _ in 0..10 {
                    let n = order[pick(order.len())];
                    let mut other = sized(n);
                    other.action = "embeddings".into();
                    match store.append(vec![other]) {
                        Err(StoreError::IdConflict { index, .. }) => assert_eq!(index, stored[n]),
                        r => panic!("event {n}: {r:?}"),
                    }
                }
            }
        }
    }
}

/// An idle writer zeroes space ahead of the records and makes it durable, so that the next
/// small commits after a pause write and sync only their own bytes; the log stays intact.
#[test]
fn an_idle_writer_zeroes_space_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let options = Options {
        origin: Some("vellum/idle-test".into()),
        checkpoint_interval: Duration::from_millis(20),
        ..Options::default()
    };
    let store = Store::open(&dir, options.clone()).unwrap();
    let mut acked = HashMap::new();
    let mut append = |i: usize| {
        let a = store.append(vec![event(0, 0, i)]).unwrap();
        acked.insert(event(0, 0, i).id.to_string(), a.indexes[0].0);
    };
    append(0);
    let segment = dir.join("segments").join(format!("{:020}.seg", 0));
    let len = || std::fs::metadata(&segment).unwrap().len();
    assert!(
        len() < 2 << 20,
        "1 MiB ahead of the first commit, {} bytes",
        len()
    );
    // Idle for many ticks: the zeroed space grows to 4 MiB ahead.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while len() < 4 << 20 {
        assert!(std::time::Instant::now() < deadline, "never zeroed ahead");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 1..100 {
        append(i);
    }
    drop(store);
    assert_log_holds(&dir, &acked, 100);
}

/// A tree level's file that cannot be created (here: no inode left on the file system of
/// `tree/`) fails the commit that needs it before anything of it is durable: the append
/// gets the error, nothing is stored, and the writer goes on (it is not poisoned).
#[test]
fn a_tree_level_that_cannot_be_created_fails_the_commit_before_it_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    // The mount's own directory and one file (`level-00.hashes`): no room for `level-01`.
    let _mount = mount_tmpfs(&dir.join("tree"), "1m,nr_inodes=2");
    let options = Options {
        create: true,
        origin: Some("vellum/inode-test".into()),
        checkpoint_interval: Duration::from_secs(3600),
        ..Options::default()
    };
    let store = Store::open(&dir, options.clone()).unwrap();
    store.append(named("one", 1)).unwrap();
    let err = store.append(named("two", 1)).unwrap_err().to_string();
    assert!(err.contains("level-01"), "{err}");
    // Not poisoned: trying again meets the same full file system, not a stopped writer.
    let again = store.append(named("two", 1)).unwrap_err().to_string();
    assert!(
        again.contains("level-01") && !again.contains("stopped accepting writes"),
        "{again}"
    );
    drop(store);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.tree_size, 1, "the failed commit stored nothing");
    assert_eq!(LogReader::open(&dir).unwrap().size().unwrap(), 1);
}

/// An event no record can hold (past 64 MiB) is refused before it is queued, and nothing
/// of its append is written; the library's callers are not guarded by the CLI's limits.
#[test]
fn an_event_larger_than_any_record_is_refused_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path(), Options::default()).unwrap();
    let mut huge = Event::new(Category::Malfunction, "dump", Outcome::Failure);
    huge.reason = Some("x".repeat(64 << 20));
    let batch = vec![named("before", 1).remove(0), huge];
    let err = store.append(batch).unwrap_err().to_string();
    assert!(err.contains("larger than a record may be"), "{err}");
    store.append(named("after", 1)).unwrap();
    drop(store);
    let report = verify(tmp.path(), &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.tree_size, 1);
}

/// A torn tail found on a full disk is still cut (zeros written in place need no room);
/// the copy recovery keeps of what it cuts is skipped, said why, and leaves no partial
/// file behind.
#[test]
fn a_torn_tail_on_a_full_disk_is_cut_without_its_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    let _mount = mount_tmpfs(&mnt, "4m");
    let dir = mnt.join("log");
    let options = Options {
        create: true,
        origin: Some("vellum/full-disk-tail".into()),
        checkpoint_interval: Duration::from_secs(3600),
        ..Options::default()
    };
    let store = Store::open(&dir, options.clone()).unwrap();
    store.append(named("kept", 20)).unwrap();
    store.checkpoint().unwrap();
    drop(store);
    fill(&mnt.join("filler"));
    // A torn record right after the last one, inside the zeroed space (no new room).
    let seg = dir.join("segments").join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let end = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    bytes[end..end + 6].copy_from_slice(&[9, 0, 0, 0, 0xee, 0xee]);
    std::fs::write(&seg, &bytes).unwrap();

    let store = Store::open(&dir, options).unwrap();
    let rec = store.recovered();
    assert!(rec.torn_tail.is_some());
    assert!(rec.torn_tail_kept.is_none());
    assert!(
        rec.torn_tail_not_kept
            .as_deref()
            .is_some_and(|w| w.contains("No space")),
        "{rec:?}"
    );
    let leftovers = std::fs::read_dir(dir.join("recovered"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leftovers, 0, "no partial copy");
    drop(store);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.tree_size, 20);
}

/// Readers beside a live writer: a scan to the end, and a walk of everything committed,
/// never call the records the writer is adding "missing" (what a segment promises is read
/// before the segment is, and the writer only adds to it).
#[test]
fn readers_beside_a_live_writer_never_see_events_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let options = Options {
        segment_max_bytes: 256 << 10,
        ..Options::default()
    };
    let store = Store::open(tmp.path(), options).unwrap();
    store.append(named("first", 10)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                store.append(named(&format!("live-{n}"), 3)).unwrap();
                n += 1;
            }
        })
    };
    let reader = LogReader::open(tmp.path()).unwrap();
    let started = std::time::Instant::now();
    let mut rounds = 0;
    while started.elapsed() < Duration::from_secs(3) {
        let mut seen = 0u64;
        reader
            .scan(0, |_, _| {
                seen += 1;
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .unwrap_or_else(|e| panic!("scan, round {rounds}: {e}"));
        let size = reader.size().unwrap();
        reader
            .for_each(0, size, |_, _| Ok(()))
            .unwrap_or_else(|e| panic!("for_each to {size}, round {rounds}: {e}"));
        assert!(seen >= 10);
        rounds += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(rounds > 10, "{rounds} rounds");
}
