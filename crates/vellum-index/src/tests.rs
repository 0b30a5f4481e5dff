//! The index against a full scan, with partitions and zone blocks small enough (see
//! `PART_BITS`, `ZONE` under `cfg(test)`) that a few hundred events cross many of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vellum_event::{Category, Event, Filter, Outcome, StoredEvent, Timestamp};
use vellum_store::{LogReader, Options, Store};

use super::*;

#[path = "../tests/support/paging.rs"]
mod paging;
use paging::all_pages;

const T0: i128 = 1_795_000_000_000_000;

#[derive(Debug, Clone)]
struct Spec {
    user: Option<u8>,
    ip: Option<u8>,
    cat: u8,
    action: u8,
    outcome: u8,
    t: i64,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::option::weighted(0.8, 0u8..4),
        prop::option::weighted(0.8, 0u8..5),
        0u8..6,
        0u8..3,
        0u8..3,
        0i64..60,
    )
        .prop_map(|(user, ip, cat, action, outcome, t)| Spec {
            user,
            ip,
            cat,
            action,
            outcome,
            t,
        })
}

fn outcome(n: u8) -> Outcome {
    [Outcome::Success, Outcome::Failure, Outcome::Unknown][n as usize % 3]
}

fn time(t: i64) -> Timestamp {
    Timestamp::from_unix_micros(T0 + t as i128 * 1_000_000).unwrap()
}

fn event(n: usize, s: &Spec) -> Event {
    let mut e = Event::new(
        Category::ALL[s.cat as usize % 6],
        format!("act.{}", s.action),
        outcome(s.outcome),
    );
    e.id = format!("e{n}").parse().unwrap();
    e.time = time(s.t);
    if let Some(u) = s.user {
        e.actor = serde_json::from_value(serde_json::json!({"user": format!("u{u}")})).ok();
    }
    if let Some(i) = s.ip {
        e.source = serde_json::from_value(serde_json::json!({"ip": format!("10.0.0.{i}")})).ok();
    }
    e
}

fn full_scan(reader: &LogReader, filter: &Filter) -> Vec<u64> {
    let mut want = Vec::new();
    reader
        .for_each(0, reader.size().unwrap(), |i, b| {
            if filter.matches(&StoredEvent::parse(b).unwrap()) {
                want.push(i);
            }
            Ok(())
        })
        .unwrap();
    want
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]
    #[test]
    fn index_query_equals_a_full_scan_across_partitions(
        specs in prop::collection::vec(spec(), 1..400),
        steps in prop::collection::vec(1u64..150, 0..6),
        user in prop::option::of(0u8..5),
        ip in prop::option::of(0u8..6),
        cat in prop::option::of(0u8..6),
        action in prop::option::of(0u8..4),
        outcome_f in prop::option::of(0u8..3),
        since in prop::option::of(0i64..60),
        until in prop::option::of(0i64..60),
        limit in 1usize..40,
        budget in 1u64..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options { segment_max_bytes: 16 << 10, ..Options::default() }).unwrap();
        let evs: Vec<Event> = specs.iter().enumerate().map(|(n, s)| event(n, s)).collect();
        store.append(evs).unwrap();
        let reader = LogReader::open(dir.path()).unwrap();
        let index = Index::open(store.layout()).unwrap();
        for step in steps {
            index.catch_up(&reader, step).unwrap();
        }
        let filter = Filter {
            user: user.map(|u| format!("u{u}")),
            ip: ip.map(|i| format!("10.0.0.{i}")),
            category: cat.map(|c| Category::ALL[c as usize]),
            action: action.map(|a| format!("act.{a}")),
            outcome: outcome_f.map(outcome),
            since: since.map(time),
            until: until.map(time),
        };
        let got = all_pages(&index, &reader, &filter, limit, budget);
        prop_assert_eq!(got, full_scan(&reader, &filter));
    }
}

#[test]
fn postings_filter_on_their_fields_without_reading_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let specs: Vec<Spec> = (0..1000)
        .map(|n| Spec {
            user: Some((n % 4) as u8),
            ip: Some((n % 5) as u8),
            cat: (n % 5) as u8,
            action: (n % 3) as u8,
            outcome: (n % 7 == 0) as u8,
            t: n as i64,
        })
        .collect();
    store
        .append(specs.iter().enumerate().map(|(n, s)| event(n, s)).collect())
        .unwrap();
    let reader = LogReader::open(dir.path()).unwrap();
    let index = Index::open(store.layout()).unwrap();
    while index.catch_up(&reader, 10_000).unwrap() > 0 {}
    let filter = Filter {
        user: Some("u1".into()),
        category: Some(Category::Authentication),
        outcome: Some(Outcome::Failure),
        since: Some(time(500)),
        ..Filter::default()
    };
    let want = full_scan(&reader, &filter);
    assert!(!want.is_empty());
    let page = index.query(&reader, &filter, 0, 1000, 1_000_000).unwrap();
    let got: Vec<u64> = page
        .events
        .iter()
        .map(|b| StoredEvent::index_of(b).unwrap())
        .collect();
    assert_eq!(got, want);
    // Only the user's postings from partitions that can hold a time ≥ 500 were examined.
    let partitions_before = 500 / PART_LEN * PART_LEN;
    assert!(
        page.examined <= (1000 - partitions_before) / 4 + 1,
        "{}",
        page.examined
    );
}

/// Writes a database as format 1 did: postings keyed by value, high-water mark `next`.
fn write_format_1(path: &Path, next: u64) {
    const OLD_POSTINGS: TableDefinition<&[u8], ()> = TableDefinition::new("postings");
    const OLD_ZONES: TableDefinition<u64, (i64, i64)> = TableDefinition::new("zones");
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        txn.open_table(OLD_POSTINGS).unwrap();
        txn.open_table(OLD_ZONES).unwrap();
        txn.open_table(META).unwrap().insert("next", next).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn an_index_of_an_older_format_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let specs: Vec<Spec> = (0..200)
        .map(|n| Spec {
            user: Some((n % 4) as u8),
            ip: None,
            cat: 0,
            action: 0,
            outcome: 0,
            t: n as i64,
        })
        .collect();
    store
        .append(specs.iter().enumerate().map(|(n, s)| event(n, s)).collect())
        .unwrap();
    let path = store.layout().index_dir().join("postings.redb");
    std::fs::create_dir_all(store.layout().index_dir()).unwrap();
    // An old index that claims everything is indexed but whose postings say nothing.
    write_format_1(&path, 200);
    let reader = LogReader::open(dir.path()).unwrap();
    let index = Index::open(store.layout()).unwrap();
    assert_eq!(index.indexed().unwrap(), 0, "the old index is not trusted");
    let filter = Filter {
        user: Some("u2".into()),
        ..Filter::default()
    };
    let want = full_scan(&reader, &filter);
    assert_eq!(all_pages(&index, &reader, &filter, 7, 1000), want);
    while index.catch_up(&reader, 64).unwrap() > 0 {}
    assert_eq!(all_pages(&index, &reader, &filter, 7, 1000), want);
    drop(index);
    // Reopened in the current format, it keeps what it indexed.
    let index = Index::open(store.layout()).unwrap();
    assert_eq!(index.indexed().unwrap(), 200);
    assert_eq!(all_pages(&index, &reader, &filter, 7, 1000), want);
}

/// A stop requested while a batch is being read abandons it: nothing is written, and the
/// next catch-up indexes those events as if nothing had happened.
#[test]
fn a_stopped_catch_up_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let spec = Spec {
        user: Some(1),
        ip: Some(2),
        cat: 0,
        action: 0,
        outcome: 0,
        t: 0,
    };
    store
        .append((0..3000).map(|n| event(n, &spec)).collect())
        .unwrap();
    let reader = LogReader::open(dir.path()).unwrap();
    let index = Index::open(store.layout()).unwrap();
    let asked = std::cell::Cell::new(0);
    let stop_on_second_look = || {
        asked.set(asked.get() + 1);
        asked.get() > 1
    };
    assert_eq!(
        index
            .catch_up_until(&reader, 10_000, stop_on_second_look)
            .unwrap(),
        0
    );
    assert!(asked.get() > 1, "the stop was never asked");
    assert_eq!(index.indexed().unwrap(), 0);
    assert_eq!(
        index.catch_up_until(&reader, 10_000, || false).unwrap(),
        3000
    );
    assert_eq!(index.indexed().unwrap(), 3000);
}

/// The CLI's read-only index: used only when there is a closed index of this format, never
/// created or changed, refused while the indexer has it open, and answering as the writable
/// one does (the part it does not cover is scanned).
#[test]
fn a_read_only_index_answers_as_the_writable_one_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    let specs: Vec<Spec> = (0..300)
        .map(|n| Spec {
            user: Some((n % 4) as u8),
            ip: Some((n % 3) as u8),
            cat: (n % 6) as u8,
            action: (n % 2) as u8,
            outcome: (n % 3) as u8,
            t: (n % 60) as i64,
        })
        .collect();
    store
        .append(specs.iter().enumerate().map(|(n, s)| event(n, s)).collect())
        .unwrap();
    let reader = LogReader::open(dir.path()).unwrap();
    let layout = store.layout();

    // No index yet: none to use, and none made.
    assert!(Index::open_read_only(layout).is_none());
    assert!(!layout.index_dir().exists());

    let index = Index::open(layout).unwrap();
    index.catch_up(&reader, 200).unwrap();
    // The indexer has it open: a read-only command shares it.
    let beside = Index::open_read_only(layout).expect("opens beside the indexer");
    assert_eq!(beside.indexed().unwrap(), 200);
    drop((beside, index));

    let snapshot = std::fs::read(layout.index_dir().join("postings.redb")).unwrap();
    let read_only = Index::open_read_only(layout).expect("a closed index opens read-only");
    assert_eq!(read_only.indexed().unwrap(), 200);
    let filters = [
        Filter::default(),
        Filter {
            user: Some("u2".into()),
            ..Filter::default()
        },
        Filter {
            ip: Some("10.0.0.1".into()),
            outcome: Some(Outcome::Failure),
            ..Filter::default()
        },
        Filter {
            category: Some(Category::ALL[3]),
            since: Some(time(10)),
            until: Some(time(40)),
            ..Filter::default()
        },
    ];
    for filter in &filters {
        assert_eq!(
            all_pages(&read_only, &reader, filter, 9, 50),
            full_scan(&reader, filter),
            "{filter:?}"
        );
    }
    assert!(read_only.catch_up(&reader, 100).is_err(), "it never writes");
    drop(read_only);
    assert_eq!(
        std::fs::read(layout.index_dir().join("postings.redb")).unwrap(),
        snapshot,
        "a read-only index changed the file"
    );
}
