#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A pruning that fails part-way must leave nothing that breaks the next one or the log.
//!
//! - `a_full_disk_while_recording_a_prune_leaves_no_torn_record`: `prunes.log` fills its
//!   file system in the middle of a record (a short write, then `ENOSPC`). The pruning
//!   fails; the file must be cut back to its previous length, and the next pruning, in the
//!   same process or after a reopen, must be recorded after the last good record, under
//!   the event the failed one stored, so that the log opens and verifies. `prunes.log` is a symlink onto a 16 KiB tmpfs (needs root, like the other
//!   disk-full tests; `.ci/run` runs as root).
//! - `a_prune_whose_files_could_not_be_removed_is_finished_first`: the record is durable,
//!   then removing a file is refused (`chattr +i`, needs root). The next pruning, in the
//!   same process or after a reopen, must first remove what the recorded pruning left
//!   (also a `.idx` whose `.seg` is gone) and write a record that follows the first one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vellum_event::{Category, Event, Outcome, Timestamp};
use vellum_store::{LogReader, Options, PruneRecord, Retention, Store, VerifyOptions, verify};
use vellum_testkit::{fill, mount_tmpfs};

fn options() -> Options {
    Options {
        create: true,
        origin: Some("vellum/prune-failures-test".into()),
        // One event a segment: every append seals the segment before it.
        segment_max_bytes: 1,
        checkpoint_interval: Duration::from_secs(3600),
        retention: Retention {
            max_age: Duration::ZERO,
            legal_hold: false,
        },
        ..Options::default()
    }
}

fn append(store: &Store, events: usize) -> Vec<Event> {
    (0..events)
        .map(|_| {
            let e = Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
            store.append(vec![e.clone()]).unwrap();
            e
        })
        .collect()
}

/// Prunes every sealed segment (all have expired by `later()`), and what it recorded.
fn prune_expired(store: &Store) -> PruneRecord {
    store
        .prune(later())
        .unwrap()
        .pruned
        .expect("sealed segments to prune")
}

/// A time at which every sealed segment has expired.
fn later() -> Timestamp {
    Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 3_600_000_000).unwrap()
}

/// The files of the segments directory whose first index is below `start`.
fn files_below(dir: &Path, start: u64) -> Vec<String> {
    let mut below: Vec<String> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.get(..20)
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|f| f < start)
        })
        .collect();
    below.sort();
    below
}

/// The first indexes of the `.seg` files, in order.
fn segment_firsts(dir: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".seg").and_then(|s| s.parse().ok()))
        .collect();
    firsts.sort_unstable();
    firsts
}

/// `prunes.log` holds exactly `expected`, each record following the one before; no file of
/// a pruned segment is left; the store opens; `verify` passes.
fn check_log(dir: &Path, expected: &[PruneRecord], ctx: &str) {
    let reader = LogReader::open(dir).unwrap();
    let prunes = reader
        .prunes()
        .unwrap_or_else(|e| panic!("{ctx}: prunes.log: {e}"));
    assert_eq!(prunes, expected, "{ctx}");
    for pair in prunes.windows(2) {
        assert_eq!(pair[1].first_index, pair[0].end_index, "{ctx}: {pair:?}");
    }
    let start = reader.first_index().unwrap();
    assert_eq!(start, expected.last().map_or(0, |p| p.end_index), "{ctx}");
    assert_eq!(
        files_below(dir, start),
        Vec::<String>::new(),
        "{ctx}: files of pruned segments are left"
    );
    let store =
        Store::open(dir, options()).unwrap_or_else(|e| panic!("{ctx}: the store must open: {e}"));
    drop(store);
    assert_eq!(files_below(dir, start), Vec::<String>::new(), "{ctx}");
    let report = verify(dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{ctx}: {:#?}", report.problems);
}

#[test]
fn a_full_disk_while_recording_a_prune_leaves_no_torn_record() {
    for then in [Then::PruneAgain, Then::Reopen] {
        full_disk_while_recording(then);
    }
}

fn full_disk_while_recording(then: Then) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let small = tmp.path().join("small");
    // A few pages: one for `prunes.log`, the rest for the filler (and, once it is
    // removed, for the records after the failed one).
    let _mount = mount_tmpfs(&small, "16k");
    let prunes = small.join("prunes.log");
    let store = Store::open(&dir, options()).unwrap();
    std::os::unix::fs::symlink(&prunes, dir.join("prunes.log")).unwrap();
    append(&store, 3);
    let first = prune_expired(&store);
    let len = std::fs::metadata(&prunes).unwrap().len();
    assert!(len < 4096, "the first record should fit in a page: {len}");

    // The next record names just enough segments (27 bytes each, quoted, with a comma)
    // to run past the page: a short write, then `ENOSPC`.
    fill(&small.join("filler"));
    append(&store, (4096 - len as usize) / 27 + 2);
    let size = store.tree_size();
    let e = store.prune(later()).unwrap_err();
    assert!(e.is_disk_full(), "{e}");
    assert_eq!(
        std::fs::metadata(&prunes).unwrap().len(),
        len,
        "a failed append must leave no torn record behind"
    );

    // The failed attempt's `retention.pruned` event was stored before the record failed.
    assert_eq!(store.tree_size(), size + 1);

    // Room again: the next pruning follows the first record; it is the one the failed
    // attempt announced, under that attempt's event, not a second one, also after a
    // restart.
    std::fs::remove_file(small.join("filler")).unwrap();
    let store = match then {
        Then::PruneAgain => store,
        Then::Reopen => {
            drop(store);
            Store::open(&dir, options()).unwrap()
        }
    };
    let second = prune_expired(&store);
    assert_eq!(second.first_index, first.end_index, "{then:?}");
    assert_eq!(
        (second.event_index, store.tree_size()),
        (size, size + 1),
        "{then:?}"
    );
    assert!(!dir.join("prune-pending.json").exists(), "{then:?}");
    drop(store);
    check_log(
        &dir,
        &[first, second],
        &format!("after a full disk, {then:?}"),
    );
}

/// A file made immutable (`chattr +i`) until dropped, so that removing it is refused.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Self {
        let status = Command::new("chattr").arg("+i").arg(path).status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "this test needs root and `chattr +i` on {}: {status:?}",
            path.display()
        );
        Self(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// What comes after the failed pruning.
#[derive(Clone, Copy, Debug)]
enum Then {
    /// The next pruning, in the same process.
    PruneAgain,
    /// The store is reopened first, then prunes.
    Reopen,
}

#[test]
fn a_prune_whose_files_could_not_be_removed_is_finished_first() {
    // Which file cannot be removed: of the sealed segments (oldest first), the one at
    // `len * n / 2` (clamped to the last); its `.seg` or its `.idx`.
    let cases = [
        ("the oldest .seg", 0, "seg"),
        ("a middle .seg", 1, "seg"),
        // Its `.seg` is removed first: the `.idx` is left alone, which the segment
        // listing does not see.
        ("the newest .idx", 2, "idx"),
    ];
    for (what, n, ext) in cases {
        for then in [Then::PruneAgain, Then::Reopen] {
            let ctx = format!("{what} cannot be removed, then {then:?}");
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("data");
            let store = Store::open(&dir, options()).unwrap();
            let sent = append(&store, 5);
            let firsts = segment_firsts(&dir);
            let sealed = &firsts[..firsts.len() - 1];
            let first = sealed[(sealed.len() * n / 2).min(sealed.len() - 1)];
            let path = dir.join("segments").join(format!("{first:020}.{ext}"));
            let immutable = Immutable::set(&path);
            let e = store.prune(later()).unwrap_err();
            assert!(e.to_string().contains("removing"), "{ctx}: {e}");
            let recorded = LogReader::open(&dir).unwrap().prunes().unwrap();
            assert_eq!(recorded.len(), 1, "{ctx}: the pruning was recorded");
            drop(immutable);
            // Recorded, the pruned events' ids are forgotten, whether or not their files
            // are gone yet: one re-sent is stored anew, as after a reopen (and its old
            // record, perhaps removed, is never looked for).
            for e in &sent[..2] {
                let again = store.append(vec![e.clone()]);
                let again = again.unwrap_or_else(|e| panic!("{ctx}: re-sent: {e}"));
                assert_eq!(again.accepted, 1, "{ctx}");
            }

            let store = match then {
                Then::PruneAgain => store,
                Then::Reopen => {
                    drop(store);
                    Store::open(&dir, options())
                        .unwrap_or_else(|e| panic!("{ctx}: the store must open: {e}"))
                }
            };
            append(&store, 3);
            let second = store
                .prune(later())
                .unwrap_or_else(|e| panic!("{ctx}: the next pruning: {e}"))
                .pruned
                .expect("sealed segments");
            assert_eq!(second.first_index, recorded[0].end_index, "{ctx}");
            drop(store);
            check_log(&dir, &[recorded[0].clone(), second], &ctx);
        }
    }
}

/// `prune-pending.json` announces a pruning only together with its event, at the index it
/// names, under the fresh id it names, for a range that ends where a segment begins. Else
/// it is dropped and the prune decides afresh: an announcement whose event was never stored
/// (the commit failed after the file was written), whose index holds another event, or an
/// event a client made to read like the pruning. A file that is not an announcement at all
/// is a clear error, and nothing is pruned.
#[test]
fn an_announcement_without_its_event_is_dropped() {
    struct Case {
        what: &'static str,
        /// A client's event appended after the store's own: its id and pruned range.
        client: Option<(&'static str, u64, u64)>,
        pending: &'static str,
        /// The pruning that follows: its range and event index, or `None` for an error.
        pruned: Option<(u64, u64, u64)>,
    }
    // Segments before each case's client event: [0,2) (one append of two), [2,3), [3,4),
    // and the active [4,5).
    let cases = [
        Case {
            what: "its event was never stored",
            client: None,
            pending: r#"{"first_index":0,"end_index":2,"event_index":5,"event_id":"x"}"#,
            pruned: Some((0, 4, 5)),
        },
        Case {
            what: "another event is at its index",
            client: None,
            pending: r#"{"first_index":0,"end_index":2,"event_index":4,"event_id":"x"}"#,
            pruned: Some((0, 4, 5)),
        },
        Case {
            what: "a client's event reading like it is at its index",
            client: Some(("client", 0, 2)),
            pending: r#"{"first_index":0,"end_index":2,"event_index":5,"event_id":"x"}"#,
            pruned: Some((0, 5, 6)),
        },
        Case {
            what: "its range ends inside a segment",
            client: Some(("forged", 0, 1)),
            pending: r#"{"first_index":0,"end_index":1,"event_index":5,"event_id":"forged"}"#,
            pruned: Some((0, 5, 6)),
        },
        Case {
            what: "the store's own file and event (here forged, to name an id): followed",
            client: Some(("forged", 0, 2)),
            pending: r#"{"first_index":0,"end_index":2,"event_index":5,"event_id":"forged"}"#,
            pruned: Some((0, 2, 5)),
        },
        Case {
            what: "not an announcement",
            client: None,
            pending: r#"{"first_index":"#,
            pruned: None,
        },
    ];
    let fresh = || Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
    for case in cases {
        let what = case.what;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let store = Store::open(&dir, options()).unwrap();
        store.append(vec![fresh(), fresh()]).unwrap();
        append(&store, 3);
        if let Some((id, first, end)) = case.client {
            let mut event = Event::new(Category::Admin, "retention.pruned", Outcome::Success)
                .with_details(serde_json::json!({ "first_index": first, "end_index": end }));
            event.id = id.parse().unwrap();
            store.append(vec![event]).unwrap();
        }
        let size = store.tree_size();
        let file = dir.join("prune-pending.json");
        std::fs::write(&file, case.pending).unwrap();
        let report = store.prune(later());
        let Some(expected) = case.pruned else {
            let e = report.unwrap_err();
            assert!(e.to_string().contains("prune-pending.json"), "{what}: {e}");
            assert_eq!(store.tree_size(), size, "{what}: nothing stored");
            assert_eq!(segment_firsts(&dir)[0], 0, "{what}: nothing pruned");
            continue;
        };
        let pruned = report.unwrap().pruned.expect("sealed segments");
        assert_eq!(
            (pruned.first_index, pruned.end_index, pruned.event_index),
            expected,
            "{what}"
        );
        assert!(!file.exists(), "{what}");
        drop(store);
        check_log(&dir, &[pruned], what);
    }
}

/// A crash after `prunes.log` recorded a pruning and before its announcement was removed
/// leaves `prune-pending.json` naming a recorded pruning, its event and all: the next prune
/// drops it and goes on with the segments after it, rather than wait for a range that
/// is gone.
#[test]
fn an_announcement_of_a_recorded_pruning_is_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, options()).unwrap();
    append(&store, 3);
    let first = prune_expired(&store);
    let stored = LogReader::open(&dir)
        .unwrap()
        .read(first.event_index)
        .unwrap();
    let event_id = vellum_event::StoredEvent::parse(&stored)
        .unwrap()
        .event
        .id
        .to_string();
    let file = dir.join("prune-pending.json");
    let left = serde_json::json!({
        "first_index": first.first_index,
        "end_index": first.end_index,
        "event_index": first.event_index,
        "event_id": event_id,
    });
    std::fs::write(&file, left.to_string()).unwrap();
    drop(store);
    let store = Store::open(&dir, options()).unwrap();
    append(&store, 2);
    let second = prune_expired(&store);
    assert_eq!(second.first_index, first.end_index);
    assert!(!file.exists());
    drop(store);
    check_log(&dir, &[first, second], "after an announcement left behind");
}
