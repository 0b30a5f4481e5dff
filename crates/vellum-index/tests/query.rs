#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The index answers exactly what a full scan with the same filter answers, page after
//! page, whatever part of the log is indexed. (`src/tests.rs` checks the same with
//! partitions and zone blocks small enough to cross.)

use proptest::prelude::*;
use vellum_event::{Category, Event, Filter, Outcome, StoredEvent, Timestamp};
use vellum_index::Index;
use vellum_store::{LogReader, Options, Store};

mod support {
    pub mod paging;
}
use support::paging::all_pages;

fn event(n: u64, user: u8, ip: u8, cat: u8, fail: bool, t: i64) -> Event {
    let category = Category::ALL[cat as usize % 6];
    let mut e = Event::new(
        category,
        format!("act{}", n % 3),
        if fail {
            Outcome::Failure
        } else {
            Outcome::Success
        },
    );
    e.id = format!("e{n}").parse().unwrap();
    e.time = Timestamp::from_unix_micros(1_795_000_000_000_000 + t as i128 * 1_000_000).unwrap();
    e.actor = serde_json::from_value(serde_json::json!({"user": format!("u{user}")})).ok();
    e.source = serde_json::from_value(serde_json::json!({"ip": format!("10.0.0.{ip}")})).ok();
    e
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn index_query_equals_a_full_scan(
        events in prop::collection::vec((0u8..4, 0u8..5, 0u8..6, any::<bool>(), 0i64..10_000), 1..300),
        indexed_part in 0u64..400,
        user in prop::option::of(0u8..4),
        ip in prop::option::of(0u8..5),
        cat in prop::option::of(0u8..6),
        outcome in prop::option::of(any::<bool>()),
        action in prop::option::of(0u8..4),
        since in prop::option::of(0i64..10_000),
        until in prop::option::of(0i64..10_000),
        limit in 1usize..40,
        budget in 1u64..100,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options { segment_max_bytes: 16 << 10, ..Options::default() }).unwrap();
        let evs: Vec<Event> = events.iter().enumerate()
            .map(|(n, &(u, i, c, f, t))| event(n as u64, u, i, c, f, t)).collect();
        store.append(evs).unwrap();
        let reader = LogReader::open(dir.path()).unwrap();
        let index = Index::open(store.layout()).unwrap();
        index.catch_up(&reader, indexed_part).unwrap();
        let filter = Filter {
            user: user.map(|u| format!("u{u}")),
            ip: ip.map(|i| format!("10.0.0.{i}")),
            category: cat.map(|c| Category::ALL[c as usize]),
            outcome: outcome.map(|f| if f { Outcome::Failure } else { Outcome::Success }),
            action: action.map(|a| format!("act{a}")),
            since: since.map(|t| Timestamp::from_unix_micros(1_795_000_000_000_000 + t as i128 * 1_000_000).unwrap()),
            until: until.map(|t| Timestamp::from_unix_micros(1_795_000_000_000_000 + t as i128 * 1_000_000).unwrap()),
        };
        let mut want = Vec::new();
        reader.for_each(0, reader.size().unwrap(), |i, b| {
            if filter.matches(&StoredEvent::parse(b).unwrap()) { want.push(i); }
            Ok(())
        }).unwrap();
        let got = all_pages(&index, &reader, &filter, limit, budget);
        prop_assert_eq!(got, want);
    }
}

#[test]
fn catch_up_indexes_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store
        .append(
            (0..5000)
                .map(|n| event(n, (n % 7) as u8, 1, 2, false, n as i64))
                .collect(),
        )
        .unwrap();
    let reader = LogReader::open(dir.path()).unwrap();
    let index = Index::open(store.layout()).unwrap();
    let mut total = 0;
    loop {
        let n = index.catch_up(&reader, 1000).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    assert_eq!(total, 5000);
    assert_eq!(index.indexed().unwrap(), 5000);
    let filter = Filter {
        user: Some("u3".into()),
        ..Filter::default()
    };
    let page = index.query(&reader, &filter, 0, 1000, 1_000_000).unwrap();
    assert_eq!(page.events.len(), (0..5000).filter(|n| n % 7 == 3).count());
    assert_eq!(
        page.examined as usize,
        page.events.len(),
        "postings lead straight to matches"
    );
}

/// A read-only handle (a `vellum query`) opens beside the one writer (a server's indexer),
/// follows its commits, and answers exactly as the writer does.
#[test]
fn a_reader_beside_the_writer_follows_its_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store
        .append(
            (0..3000)
                .map(|n| event(n, (n % 5) as u8, 1, 2, false, n as i64))
                .collect(),
        )
        .unwrap();
    let reader = LogReader::open(dir.path()).unwrap();
    let writer = Index::open(store.layout()).unwrap();
    assert_eq!(writer.catch_up(&reader, 1000).unwrap(), 1000);
    let read_only = Index::open_read_only(store.layout()).expect("opens beside the writer");
    assert_eq!(read_only.indexed().unwrap(), 1000);
    assert_eq!(writer.catch_up(&reader, 1500).unwrap(), 1500);
    assert_eq!(
        read_only.indexed().unwrap(),
        2500,
        "sees the writer's commit"
    );
    let filter = Filter {
        user: Some("u2".into()),
        ..Filter::default()
    };
    let want = (0..3000).filter(|n| n % 5 == 2).count();
    for index in [&writer, &read_only] {
        let page = index.query(&reader, &filter, 0, 5000, u64::MAX).unwrap();
        assert_eq!(page.events.len(), want);
    }
}
