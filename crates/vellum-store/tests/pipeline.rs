#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Large commits are synced on the sync thread while the writer writes the next ones. With
//! several appenders keeping large appends in flight (so commits overlap their syncs, and
//! segments rotate between them), every acknowledged event must be stored once at the index
//! it was given, re-sent events must come back as duplicates of those indexes, the tree
//! must match, and the log must verify after reopening.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use vellum_event::{Category, Event, Outcome, StoredEvent};
use vellum_store::{LogReader, Options, Store, VerifyOptions, verify};

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
                    for b in 0..BATCHES {
                        in_flight.push_back((b, store.append_deferred(batch(t, b)).unwrap()));
                        if in_flight.len() >= IN_FLIGHT {
                            let (b, p) = in_flight.pop_front().unwrap();
                            settle(b, p, &mut acked);
                        }
                    }
                    for (b, p) in in_flight {
                        settle(b, p, &mut acked);
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

    let reader = LogReader::open(&dir).unwrap();
    let mut seen = 0usize;
    reader
        .for_each(0, total as u64, |index, bytes| {
            let stored = StoredEvent::parse(bytes).unwrap();
            assert_eq!(stored.index, index);
            assert_eq!(all.get(stored.event.id.as_str()), Some(&index));
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, total);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{report:?}");
}
