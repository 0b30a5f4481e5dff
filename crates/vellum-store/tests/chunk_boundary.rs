#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A record that ends exactly where a scan's read chunk ends (8 MiB after the segment
//! header) is not the end of the records: verify sees every event, and reopening keeps
//! them all (it once took the boundary for the end and cut acknowledged events).

use vellum_event::{Category, Event, Outcome};
use vellum_store::{LogReader, Options, Store, VerifyOptions, verify};

const BOUNDARY: u64 = 32 + (8 << 20);
const RECEIVED: &str = "2026-11-26T16:55:08.976526Z";

fn event(reason_len: usize) -> Event {
    let mut ev = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
    ev.reason = Some("x".repeat(reason_len));
    ev
}

fn record_len(ev: &Event, index: u64) -> u64 {
    let mut buf = Vec::new();
    ev.write_stored(&mut buf, index, RECEIVED);
    8 + buf.len() as u64
}

#[test]
fn a_record_ending_at_a_read_chunk_boundary_is_not_the_end() {
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
        let bare = record_len(&event(0), index);
        let ev = event((BOUNDARY - at - bare) as usize);
        at += record_len(&ev, index);
        events.push(ev);
        break;
    }
    assert_eq!(at, BOUNDARY);
    events.extend((0..1000).map(|_| event(300)));
    let total = events.len() as u64;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.append(events).unwrap().tree_size, total);
    drop(store);

    let report = verify(dir.path(), &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.events_checked, total);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.tree_size(), total);
    assert_eq!(store.recovered().torn_tail, None);
    drop(store);
    let reader = LogReader::open(dir.path()).unwrap();
    let mut seen = 0;
    reader
        .for_each(0, total, |_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, total);
}
