#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The store against a simple model, driven by random sequences of operations.
//!
//! The model is what the store promises, written out plainly: a vector of stored bytes by
//! index, the set of ids and the index each was first stored at, the segments (first index,
//! records, bytes) with the rotation rule, the pruned prefix, the prunings, and an in-memory
//! Merkle tree over the leaf hashes of the stored bytes. After every operation the store
//! must agree with it: tree size, reads, `for_each`, the segment files on disk, proofs and
//! roots (against the tree files and against the model's own tree), checkpoints, prunings,
//! and `verify`.
//!
//! Operations: appends (ids fresh or re-used, so some events are duplicates, within a batch
//! too), a forced rotation, reopening, checkpoints, pruning with "now" far in the future
//! (with and without a legal hold), reads, inclusion and consistency proofs at random
//! indexes and sizes.
//!
//! Cases the property test steers around (and says where) are pinned by the plain tests at
//! the end: re-sending the id of a pruned event, with and without a reopen, and a
//! long-lived reader (tree levels it looked for too early, segments pruned since it opened
//! them); so are a refused append and the window, and client events that read like a
//! pruning.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use vellum_event::{Category, Event, Outcome, StoredEvent, Timestamp};
use vellum_merkle::{
    Hash, LeafIndex, MemoryTree, TreeSize, leaf_hash, verify_consistency, verify_inclusion,
};
use vellum_note::Checkpoint;
use vellum_store::{
    LogReader, Options, PruneRecord, PruneReport, Retention, Store, StoreError, VerifyOptions,
    verify,
};

/// Bytes of a segment header.
const SEGMENT_HEADER: u64 = 32;
/// Bytes of a record's frame header (length and checksum).
const RECORD_HEADER: u64 = 8;
/// "Now" for pruning: this far past the present, every sealed segment has expired.
const FUTURE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

// ---- Operations -------------------------------------------------------------------------

/// A choice among however many things there are when the operation runs.
#[derive(Clone, Copy, Debug)]
struct Pick(u32);

impl Pick {
    fn index(self, n: usize) -> usize {
        self.0 as usize % n
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    any::<u32>().prop_map(Pick)
}

#[derive(Clone, Debug)]
enum IdChoice {
    Fresh,
    /// An id seen before: of an event still stored, or earlier in the same batch. (Not of a
    /// pruned event: how the store answers that depends on whether it was reopened since, a
    /// bug pinned by `a_pruned_id_re_sent_gets_the_same_answer_with_or_without_a_reopen`.)
    /// Re-sent: the same content (a new `time`, as a sender rebuilding it gives it).
    Reuse(Pick),
    /// Another event under an id seen before: the whole append is refused.
    Conflict(Pick),
}

#[derive(Clone, Debug)]
struct EventSpec {
    id: IdChoice,
    pad: usize,
}

#[derive(Clone, Debug)]
enum Op {
    Append(Vec<EventSpec>),
    /// One event larger than a segment: the active segment must be sealed first.
    Rotate,
    Reopen,
    Checkpoint,
    Prune {
        legal_hold: bool,
        max_age: Duration,
    },
    Read(Pick),
    Prove(Pick, Pick),
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        prop_oneof![
            12 => Just(IdChoice::Fresh),
            4 => pick().prop_map(IdChoice::Reuse),
            1 => pick().prop_map(IdChoice::Conflict),
        ],
        0usize..300,
    )
        .prop_map(|(id, pad)| EventSpec { id, pad })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(event_spec(), 1..8).prop_map(Op::Append),
        1 => Just(Op::Rotate),
        2 => Just(Op::Reopen),
        1 => Just(Op::Checkpoint),
        2 => (
            any::<bool>(),
            prop_oneof![
                Just(Duration::ZERO),
                Just(Duration::from_millis(1)),
                Just(Duration::from_secs(1))
            ]
        )
            .prop_map(|(legal_hold, max_age)| Op::Prune { legal_hold, max_age }),
        2 => pick().prop_map(Op::Read),
        2 => (pick(), pick()).prop_map(|(i, s)| Op::Prove(i, s)),
    ]
}

// ---- The model --------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
struct Segment {
    first: u64,
    count: u64,
    /// Bytes in the file: header and framed records.
    bytes: u64,
}

#[derive(Debug)]
struct Model {
    segment_max_bytes: u64,
    retention: Retention,
    /// Stored bytes by index (kept after pruning, to check proofs of pruned events).
    stored: Vec<Vec<u8>>,
    tree: MemoryTree,
    /// Every id in the log, and the index it was first stored at.
    ids: HashMap<String, u64>,
    /// The same ids in the order they were stored, to pick re-used ones from.
    id_order: Vec<String>,
    /// Segments still on disk, oldest first; the last is the active one.
    segments: Vec<Segment>,
    /// Indexes below this were pruned.
    pruned_before: u64,
    prunes: Vec<PruneRecord>,
    fresh: u64,
    /// The content of each id's event (its padding), so that a re-sent one has it again.
    pads: HashMap<String, usize>,
}

impl Model {
    fn new(segment_max_bytes: u64) -> Self {
        Model {
            segment_max_bytes,
            // Until the first `Prune`, which reopens the store with its own retention.
            retention: Retention {
                max_age: Duration::ZERO,
                legal_hold: true,
            },
            stored: Vec::new(),
            tree: MemoryTree::new(),
            ids: HashMap::new(),
            id_order: Vec::new(),
            segments: vec![Segment {
                first: 0,
                count: 0,
                bytes: SEGMENT_HEADER,
            }],
            pruned_before: 0,
            prunes: Vec::new(),
            fresh: 0,
            pads: HashMap::new(),
        }
    }

    fn size(&self) -> u64 {
        self.stored.len() as u64
    }

    fn root(&self, size: u64) -> Hash {
        vellum_merkle::root(&self.tree, TreeSize(size)).unwrap()
    }

    fn options(&self) -> Options {
        Options {
            create: true,
            origin: Some("vellum/model-test".into()),
            segment_max_bytes: self.segment_max_bytes,
            // Checkpoints only when the test asks (and on open, close and prune).
            checkpoint_interval: Duration::from_secs(3600),
            retention: self.retention,
            ..Options::default()
        }
    }

    /// One commit of `records` (stored bytes, in index order): the rotation rule is that a
    /// non-empty active segment is sealed when the commit would take it past the limit.
    fn commit(&mut self, records: &[Vec<u8>]) {
        if records.is_empty() {
            return;
        }
        let len: u64 = records.iter().map(|r| RECORD_HEADER + r.len() as u64).sum();
        let active = self.segments.last().unwrap().clone();
        if active.count > 0 && active.bytes + len > self.segment_max_bytes {
            self.segments.push(Segment {
                first: active.first + active.count,
                count: 0,
                bytes: SEGMENT_HEADER,
            });
        }
        let active = self.segments.last_mut().unwrap();
        active.count += records.len() as u64;
        active.bytes += len;
        for r in records {
            let stored = StoredEvent::parse(r).unwrap();
            let id = stored.event.id.as_str().to_string();
            assert!(
                self.ids.insert(id.clone(), self.size()).is_none(),
                "{id} stored twice"
            );
            self.id_order.push(id);
            self.tree.push(leaf_hash(r));
            self.stored.push(r.clone());
        }
    }
}

// ---- Running a case ---------------------------------------------------------------------

struct Case {
    dir: std::path::PathBuf,
    model: Model,
    store: Option<Store>,
    /// A reader kept open for the whole case, as a server keeps one.
    reader: LogReader,
}

impl Case {
    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn reopen(&mut self) {
        self.store = None;
        let store = Store::open(&self.dir, self.model.options()).unwrap();
        let rec = store.recovered();
        assert!(!rec.created);
        assert_eq!(rec.torn_tail, None, "a clean close leaves no torn tail");
        assert_eq!(rec.torn_checkpoint, None);
        assert_eq!(rec.tree_size, self.model.size());
        assert_eq!(rec.rehashed, 0, "closing checkpoints everything");
        self.store = Some(store);
    }

    /// The events of `specs`, each with its content (padding).
    fn make_events(&mut self, specs: &[EventSpec]) -> Vec<(Event, usize)> {
        let mut batch_ids: Vec<String> = Vec::new();
        let mut batch_pads: HashMap<String, usize> = HashMap::new();
        specs
            .iter()
            .map(|spec| {
                // `id_order` is in index order: the pruned ids come first.
                let live = &self.model.id_order[self.model.pruned_before as usize..];
                let pool = live.len() + batch_ids.len();
                let seen = |ix: &Pick| {
                    let k = ix.index(pool);
                    live.get(k)
                        .cloned()
                        .unwrap_or_else(|| batch_ids[k - live.len()].clone())
                };
                let (id, pad) = match &spec.id {
                    IdChoice::Reuse(ix) | IdChoice::Conflict(ix) if pool > 0 => {
                        let id = seen(ix);
                        // The store's own events (a prune's) have content of their own:
                        // any event of ours under their ids conflicts.
                        let pad = self.model.pads.get(&id).or(batch_pads.get(&id)).copied();
                        let conflict = matches!(spec.id, IdChoice::Conflict(_));
                        let pad = pad.map_or(spec.pad, |p| if conflict { p + 1 } else { p });
                        (id, pad)
                    }
                    _ => {
                        self.model.fresh += 1;
                        (format!("e{}", self.model.fresh), spec.pad)
                    }
                };
                batch_ids.push(id.clone());
                batch_pads.entry(id.clone()).or_insert(pad);
                // `Event::new` gives each its own `time`: a re-sent event still matches.
                let mut ev =
                    Event::new(Category::DataAccess, "document.retrieved", Outcome::Success)
                        .with_details(serde_json::json!({ "pad": "x".repeat(pad) }));
                ev.id = id.parse().unwrap();
                (ev, pad)
            })
            .collect()
    }

    fn append(&mut self, events: Vec<(Event, usize)>) {
        let (events, pads): (Vec<Event>, Vec<usize>) = events.into_iter().unzip();
        // What the model expects: each id's first index, new ones numbered on; or, for an
        // id seen before with other content, the append refused whole.
        let mut next = self.model.size();
        let mut expected = Vec::new();
        let mut new_in_batch: HashMap<String, u64> = HashMap::new();
        let mut new_pads: HashMap<String, usize> = HashMap::new();
        let mut conflict = None;
        for (ev, &pad) in events.iter().zip(&pads) {
            let id = ev.id.as_str();
            match self.model.ids.get(id).or_else(|| new_in_batch.get(id)) {
                Some(&at) => {
                    let was = self.model.pads.get(id).or(new_pads.get(id));
                    if was != Some(&pad) {
                        // An index of this append is no index: the append is refused whole.
                        let stored = self.model.ids.contains_key(id).then_some(at);
                        conflict = Some((id.to_string(), stored));
                        break;
                    }
                    expected.push((at, true));
                }
                None => {
                    new_pads.insert(id.to_string(), pad);
                    new_in_batch.insert(id.to_string(), next);
                    expected.push((next, false));
                    next += 1;
                }
            }
        }
        let size = self.model.size();
        let outcome = self.store().append(events.clone());
        if let Some((id, at)) = conflict {
            match (outcome, at) {
                (Err(StoreError::IdConflict { id: got, index }), Some(at)) => {
                    assert_eq!((got, index), (id, at), "the conflicting id and its index");
                }
                (Err(StoreError::IdRepeated { id: got }), None) => assert_eq!(got, id),
                (other, _) => panic!("id {id} re-sent with other content: {other:?}"),
            }
            assert_eq!(self.store().tree_size(), size, "nothing of it stored");
            return;
        }
        let appended = outcome.unwrap();
        self.model.pads.extend(new_pads);
        assert_eq!(
            appended.indexes, expected,
            "indexes and duplicates (the model says duplicates keep their first index)"
        );
        let accepted = next - self.model.size();
        assert_eq!(appended.accepted, accepted);
        assert_eq!(appended.duplicates, events.len() as u64 - accepted);
        assert_eq!(appended.tree_size, next);
        assert_eq!(
            appended.first_index,
            (accepted > 0).then_some(self.model.size())
        );
        assert_eq!(appended.last_index, (accepted > 0).then(|| next - 1));
        assert_eq!(self.store().tree_size(), next);

        // The stored bytes are exactly `index`, `received`, then the canonical body.
        let mut records = Vec::new();
        for (ev, &(index, dup)) in events.iter().zip(&expected) {
            if dup {
                continue;
            }
            let bytes = self.reader.read(index).unwrap();
            let stored = StoredEvent::parse(&bytes).unwrap();
            assert_eq!(stored.index, index);
            assert_eq!(stored.event.id, ev.id);
            let mut want = Vec::new();
            ev.write_stored(&mut want, index, &stored.received.to_string());
            assert_eq!(
                String::from_utf8_lossy(&bytes),
                String::from_utf8_lossy(&want)
            );
            records.push(bytes);
        }
        self.model.commit(&records);
    }

    fn prune(&mut self, legal_hold: bool, max_age: Duration) {
        let retention = Retention {
            max_age,
            legal_hold,
        };
        if self.model.retention != retention {
            // Retention is an option of the open store.
            self.model.retention = retention;
            self.reopen();
        }
        let now = Timestamp::from_unix_micros(
            Timestamp::now().unix_micros() + FUTURE.as_micros() as i128,
        )
        .unwrap();
        let report = self.store().prune(now).unwrap();
        let sealed = self.model.segments.len() - 1;
        if sealed == 0 {
            assert_eq!(
                report,
                PruneReport::default(),
                "nothing sealed, nothing to prune"
            );
            return;
        }
        if legal_hold {
            assert_eq!(report.pruned, None, "a legal hold prunes nothing");
            assert_eq!(report.held_segments, sealed);
            return;
        }
        // Every sealed segment has expired; the active one is never pruned.
        let first_index = self.model.segments[0].first;
        let end_index = self.model.segments[sealed].first;
        let names: Vec<String> = self.model.segments[..sealed]
            .iter()
            .map(|s| format!("{:020}.seg", s.first))
            .collect();
        let event_index = self.model.size();
        let pruned = report.pruned.clone().expect("expired segments were pruned");
        assert_eq!(
            pruned,
            PruneRecord {
                first_index,
                end_index,
                segments: names.clone(),
                pruned_at: now.to_string(),
                event_index,
            }
        );
        assert_eq!(report.held_segments, 0);
        // The pruning was recorded in the log itself first.
        let bytes = self.reader.read(event_index).unwrap();
        let stored = StoredEvent::parse(&bytes).unwrap();
        assert_eq!(stored.event.category, Category::Admin);
        assert_eq!(stored.event.action, "retention.pruned");
        assert_eq!(stored.event.outcome, Outcome::Success);
        let details: serde_json::Value =
            serde_json::from_str(stored.event.details.as_ref().unwrap().get()).unwrap();
        assert_eq!(details["first_index"], first_index);
        assert_eq!(details["end_index"], end_index);
        assert_eq!(details["events"], end_index - first_index);
        assert_eq!(details["segments"], serde_json::json!(names));
        assert_eq!(self.store().tree_size(), event_index + 1);
        self.model.commit(&[bytes]);
        self.model.segments.drain(..sealed);
        self.model.pruned_before = end_index;
        self.model.prunes.push(pruned);
    }

    fn checkpoint(&mut self) {
        let issued = self.store().checkpoint().unwrap();
        let size = self.model.size();
        assert_eq!(issued.checkpoint.size, TreeSize(size));
        assert_eq!(issued.checkpoint.root, self.model.root(size));
        let opened = Checkpoint::open(&issued.note, self.store().verifier_key()).unwrap();
        assert_eq!(opened, issued.checkpoint);
        let (latest, note) = self.reader.latest_checkpoint().unwrap();
        assert_eq!(latest, issued.checkpoint);
        assert_eq!(note, issued.note);
    }

    fn read(&mut self, ix: Pick) {
        let size = self.model.size();
        let index = ix.index(size as usize + 3) as u64;
        if index >= self.model.pruned_before {
            let got = self.reader.read(index);
            self.expect_read(index, got, "the long-lived reader");
        }
        let fresh = LogReader::open(&self.dir).unwrap();
        self.expect_read(index, fresh.read(index), "a new reader");
    }

    fn expect_read(&self, index: u64, got: Result<Vec<u8>, StoreError>, who: &str) {
        let size = self.model.size();
        let first = self.model.pruned_before;
        match got {
            Ok(bytes) => {
                assert!(index < size, "{who}: read({index}) past the end ({size})");
                assert!(
                    index >= first,
                    "{who}: read({index}) returned a pruned event (the log starts at {first})"
                );
                assert_eq!(
                    bytes, self.model.stored[index as usize],
                    "{who}: read({index})"
                );
            }
            Err(StoreError::Pruned { index: i, first: f }) => {
                assert!(index < first, "{who}: read({index}) says pruned");
                assert_eq!((i, f), (index, first), "{who}");
            }
            Err(StoreError::IndexOutOfRange { index: i, size: s }) => {
                assert!(index >= size, "{who}: read({index}) says out of range");
                assert_eq!((i, s), (index, size), "{who}");
            }
            Err(e) => panic!("{who}: read({index}): {e}"),
        }
    }

    fn prove(&mut self, ix: Pick, sx: Pick) {
        let size = self.model.size();
        let reader = LogReader::open(&self.dir).unwrap();
        if size == 0 {
            assert!(reader.inclusion_proof(0, 0).is_err());
            return;
        }
        let index = ix.index(size as usize) as u64;
        let tree_size = index + 1 + sx.index((size - index) as usize) as u64;
        let proof = reader.inclusion_proof(index, tree_size).unwrap();
        let leaf = leaf_hash(&self.model.stored[index as usize]);
        assert_eq!(proof.index, index);
        assert_eq!(proof.tree_size, tree_size);
        assert_eq!(proof.leaf_hash, leaf, "leaf {index}");
        let root = reader.root(tree_size).unwrap();
        assert_eq!(root, self.model.root(tree_size), "root of {tree_size}");
        verify_inclusion(
            &leaf,
            LeafIndex(index),
            TreeSize(tree_size),
            &proof.proof,
            &root,
        )
        .unwrap_or_else(|e| panic!("proof of {index} in {tree_size}: {e}"));
        let model_proof =
            vellum_merkle::inclusion_proof(&self.model.tree, LeafIndex(index), TreeSize(tree_size))
                .unwrap();
        assert_eq!(proof.proof, model_proof);
        // Beyond the log there is nothing to prove.
        assert!(reader.inclusion_proof(index, size + 1).is_err());
        // And the tree of `tree_size` leaves is a prefix of today's: a consistency proof.
        if tree_size < size {
            let proof = reader.consistency_proof(tree_size, size).unwrap();
            verify_consistency(
                TreeSize(tree_size),
                TreeSize(size),
                &proof,
                &root,
                &self.model.root(size),
            )
            .unwrap_or_else(|e| panic!("consistency of {tree_size} with {size}: {e}"));
        }
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Append(specs) => {
                let events = self.make_events(specs);
                self.append(events);
            }
            Op::Rotate => {
                let pad = self.model.segment_max_bytes as usize;
                let events = self.make_events(&[EventSpec {
                    id: IdChoice::Fresh,
                    pad,
                }]);
                let before = self.model.segments.last().unwrap().clone();
                self.append(events);
                if before.count > 0 {
                    assert_eq!(
                        self.model.segments.last().unwrap().first,
                        before.first + before.count,
                        "the oversized append rotated"
                    );
                }
            }
            Op::Reopen => self.reopen(),
            Op::Checkpoint => self.checkpoint(),
            Op::Prune {
                legal_hold,
                max_age,
            } => self.prune(*legal_hold, *max_age),
            Op::Read(ix) => self.read(*ix),
            Op::Prove(ix, sx) => self.prove(*ix, *sx),
        }
    }

    /// Everything the store shows must agree with the model. `scan` adds a `for_each` over
    /// the whole log, `run_verify` a `verify`: in a debug build each scan of a segment costs
    /// tens of milliseconds, so they run only after operations that could change what they
    /// see.
    fn check(&self, scan: bool, run_verify: bool) {
        let m = &self.model;
        let size = m.size();
        assert_eq!(self.store().tree_size(), size, "tree size");
        let fresh = LogReader::open(&self.dir).unwrap();
        for (reader, who) in [
            (&self.reader, "the long-lived reader"),
            (&fresh, "a new reader"),
        ] {
            assert_eq!(reader.size().unwrap(), size, "{who}");
            assert_eq!(reader.first_index().unwrap(), m.pruned_before, "{who}");
            assert_eq!(reader.prunes().unwrap(), m.prunes, "{who}");
            // Every index: stored bytes, or "pruned". (Not the pruned ones through the
            // long-lived reader, which still serves them from files it holds open: see
            // `a_long_lived_reader_does_not_serve_pruned_events`.)
            let from = if std::ptr::eq(reader, &self.reader) {
                m.pruned_before
            } else {
                0
            };
            for index in from..size + 1 {
                self.expect_read(index, reader.read(index), who);
            }
        }
        // (The tree is checked through a new reader only: a long-lived one that looked for a
        // tree file before it existed never sees it, see
        // `a_long_lived_reader_proves_what_was_appended_later`.)
        assert_eq!(fresh.tree_files_size().unwrap(), size);
        assert_eq!(fresh.root(size).unwrap(), m.root(size), "root");
        if scan {
            let mut next = m.pruned_before;
            fresh
                .for_each(0, u64::MAX, |index, bytes| {
                    assert_eq!(index, next, "for_each");
                    assert_eq!(bytes, m.stored[index as usize], "for_each({index})");
                    next += 1;
                    Ok(())
                })
                .unwrap();
            assert_eq!(next, size, "for_each ends at the end of the log");
        }
        // The segment files are the model's: rotation seals, only retention deletes.
        assert_eq!(
            segments_on_disk(&self.dir),
            m.segments.iter().map(|s| s.first).collect::<Vec<_>>()
        );
        for s in &m.segments[..m.segments.len() - 1] {
            let path = self
                .dir
                .join("segments")
                .join(format!("{:020}.seg", s.first));
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                s.bytes,
                "sealed {}",
                path.display()
            );
        }
        // The latest checkpoint verifies and is a prefix of the model's tree.
        let (latest, note) = fresh.latest_checkpoint().unwrap();
        Checkpoint::open(&note, fresh.verifier_key()).unwrap();
        assert!(latest.size.0 <= size);
        assert_eq!(
            latest.root,
            m.root(latest.size.0),
            "the latest checkpoint's root"
        );
        if run_verify {
            let report = verify(&self.dir, &VerifyOptions::default()).unwrap();
            assert!(report.ok(), "verify: {:#?}", report.problems);
            assert_eq!(report.tree_size, size);
            assert_eq!(report.pruned_before, m.pruned_before);
            assert_eq!(report.root, Some(m.root(size)));
        }
    }
}

fn segments_on_disk(dir: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".seg").map(|n| n.parse().unwrap())
        })
        .collect();
    firsts.sort_unstable();
    firsts
}

/// A scratch directory, in memory where there is one: this test is about what the store
/// answers, not about durability (`crash.rs` is), and fsyncs on a real disk would take most
/// of its time.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().unwrap()
}

fn run_case(segment_max_bytes: u64, ops: &[Op]) {
    let tmp = scratch();
    let dir = tmp.path().join("data");
    let model = Model::new(segment_max_bytes);
    let store = Store::open(&dir, model.options()).unwrap();
    assert!(store.recovered().created);
    let reader = LogReader::open(&dir).unwrap();
    let mut case = Case {
        dir,
        model,
        store: Some(store),
        reader,
    };
    case.check(true, true);
    for op in ops {
        case.run(op);
        let changed = !matches!(op, Op::Read(_) | Op::Prove(..));
        case.check(matches!(op, Op::Prune { .. } | Op::Reopen), changed);
    }
    case.reopen();
    case.check(true, true);
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        // Shrinking replays whole cases against a real directory; keep it bounded.
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_behaves_like_its_model(
        // Events take 250 to 600 bytes and appends up to 8 of them: these rotate every one
        // to ten appends, which keeps the number of segments (each scan's cost) small.
        segment_max_bytes in prop_oneof![Just(2_500u64), Just(8_000), Just(20_000)],
        ops in prop::collection::vec(op(), 1..=12),
    ) {
        run_case(segment_max_bytes, &ops);
    }
}

/// A store of small segments (a few events each) whose sealed segments have all expired.
fn pruning_options() -> Options {
    let mut options = Model::new(1_200).options();
    options.retention = Retention {
        max_age: Duration::ZERO,
        legal_hold: false,
    };
    options
}

/// An id is the idempotency key: re-sending the id of an event that retention pruned must
/// get the same answer whether or not the store was reopened in between: a new event, as
/// the window forgets pruned ids when the pruning is recorded, and a reopen rebuilds it
/// from the `.idx` files that remain.
#[test]
fn a_pruned_id_re_sent_gets_the_same_answer_with_or_without_a_reopen() {
    let answer = |reopen: bool| {
        let tmp = scratch();
        let dir = tmp.path().join("data");
        let options = pruning_options();
        let event = |id: &str| {
            let mut ev = Event::new(Category::Admin, "config.changed", Outcome::Success)
                .with_details(serde_json::json!({ "pad": "x".repeat(300) }));
            ev.id = id.parse().unwrap();
            ev
        };
        let mut store = Store::open(&dir, options.clone()).unwrap();
        for i in 0..4 {
            store
                .append(vec![event(&format!("a{i}")), event(&format!("b{i}"))])
                .unwrap();
        }
        let now = Timestamp::from_unix_micros(
            Timestamp::now().unix_micros() + FUTURE.as_micros() as i128,
        )
        .unwrap();
        let pruned = store
            .prune(now)
            .unwrap()
            .pruned
            .expect("sealed segments to prune");
        assert_eq!(pruned.first_index, 0, "a0 (index 0) was pruned");
        if reopen {
            drop(store);
            store = Store::open(&dir, options).unwrap();
        }
        store.append(vec![event("a0")]).unwrap().indexes
    };
    assert_eq!(
        answer(true),
        answer(false),
        "re-sending pruned a0 after a reopen, and without one"
    );
}

/// An append refused for an id conflict takes nothing from the idempotency window: the
/// oldest ids its own would have pushed out are still remembered.
#[test]
fn a_refused_append_leaves_the_window_as_it_was() {
    let tmp = scratch();
    let mut options = Model::new(1 << 20).options();
    options.dedupe_window = 3;
    let store = Store::open(tmp.path().join("data"), options).unwrap();
    let event = |id: &str, action: &str| {
        let mut ev = Event::new(Category::Admin, action, Outcome::Success);
        ev.id = id.parse().unwrap();
        ev
    };
    store
        .append(vec![event("a", "x"), event("b", "x"), event("c", "x")])
        .unwrap();
    let refused = store.append(vec![event("d", "x"), event("c", "y")]);
    assert!(
        matches!(&refused, Err(StoreError::IdConflict { index: 2, .. })),
        "{refused:?}"
    );
    let again = store.append(vec![event("a", "x")]).unwrap();
    assert_eq!(again.indexes, [(0, true)], "a is still remembered");
    assert_eq!(store.tree_size(), 3);
}

/// A retry whose serializer wrote `details` with its keys in another order, or spaced
/// otherwise, is the same event: reported as a duplicate, not refused, not stored again.
/// A change inside `details` is still a conflict.
#[test]
fn a_re_send_with_details_written_otherwise_is_a_duplicate() {
    let tmp = scratch();
    let store = Store::open(tmp.path().join("data"), Model::new(1 << 20).options()).unwrap();
    let sent = |details: &str| {
        let text = format!(
            r#"{{"id":"req-7","category":"api_request","action":"chat.completions","outcome":"success","details":{details}}}"#
        );
        vec![Event::parse(text.as_bytes(), &vellum_event::Limits::default()).unwrap()]
    };
    store
        .append(sent(
            r#"{"model":"demo","usage":{"prompt":12,"completion":30}}"#,
        ))
        .unwrap();
    let again = store
        .append(sent(
            r#"{ "usage": {"completion": 30, "prompt": 12}, "model": "demo" }"#,
        ))
        .unwrap();
    assert_eq!((again.indexes, again.duplicates), (vec![(0, true)], 1));
    let other = store.append(sent(
        r#"{"model":"demo","usage":{"prompt":12,"completion":31}}"#,
    ));
    assert!(
        matches!(&other, Err(StoreError::IdConflict { index: 0, .. })),
        "{other:?}"
    );
    assert_eq!(store.tree_size(), 1);

    // As deep as `details` may nest (64 levels), reordered at the deepest: compared all
    // the way down, a duplicate.
    let deepest = |inner: &str| {
        let arrays = vellum_event::MAX_NESTING - 2;
        let text = format!(
            r#"{{"id":"req-9","category":"security","action":"rate_limited","outcome":"success","details":{{"a":{}{inner}{}}}}}"#,
            "[".repeat(arrays),
            "]".repeat(arrays)
        );
        vec![Event::parse(text.as_bytes(), &vellum_event::Limits::default()).unwrap()]
    };
    store.append(deepest(r#"{"x":1,"y":2}"#)).unwrap();
    let again = store.append(deepest(r#"{"y":2,"x":1}"#)).unwrap();
    assert_eq!((again.indexes, again.duplicates), (vec![(1, true)], 1));
    assert_eq!(store.tree_size(), 2);

    // One key written twice, spelled two ways: which value counts is up to the reader, so
    // a re-send with the two the other way round is never the same event.
    let twice = |details: &str| {
        let text = format!(
            r#"{{"id":"req-8","category":"admin","action":"permission.changed","outcome":"success","details":{details}}}"#
        );
        vec![Event::parse(text.as_bytes(), &vellum_event::Limits::default()).unwrap()]
    };
    store
        .append(twice(r#"{"role":"user","\u0072ole":"admin"}"#))
        .unwrap();
    let swapped = store.append(twice(r#"{"\u0072ole":"admin","role":"user"}"#));
    assert!(
        matches!(&swapped, Err(StoreError::IdConflict { index: 2, .. })),
        "{swapped:?}"
    );
}

/// A re-sent event whose stored event cannot be read to compare (its record damaged on
/// disk) refuses its own append, with the damage, and only it: the appends committed with
/// it are stored and acknowledged.
#[test]
fn a_re_send_of_a_damaged_event_refuses_only_its_own_append() {
    use std::os::unix::fs::FileExt;
    let tmp = scratch();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, Model::new(1 << 20).options()).unwrap();
    let fresh = || Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
    let mut damaged = Event::new(Category::Admin, "config.changed", Outcome::Success);
    damaged.id = "to-be-damaged".parse().unwrap();
    store.append(vec![damaged.clone()]).unwrap();
    let segment = dir.join("segments").join(format!("{:020}.seg", 0));
    let bytes = std::fs::read(&segment).unwrap();
    let at = bytes
        .windows(14)
        .position(|w| w == b"config.changed")
        .unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    file.write_all_at(b"C", at as u64).unwrap();

    // A large append keeps the writer busy, so the three after it are gathered into one
    // commit (and the test holds whether or not they are).
    let busy = store
        .append_deferred((0..20_000).map(|_| fresh()).collect())
        .unwrap();
    let before = store.append_deferred(vec![fresh()]).unwrap();
    let resent = store.append_deferred(vec![damaged]).unwrap();
    let after = store.append_deferred(vec![fresh()]).unwrap();
    assert_eq!(busy.wait().unwrap().accepted, 20_000);
    assert_eq!(before.wait().unwrap().accepted, 1);
    let refused = resent.wait();
    assert!(
        matches!(&refused, Err(StoreError::Corrupt { .. })),
        "{refused:?}"
    );
    assert_eq!(after.wait().unwrap().accepted, 1);
    assert_eq!(store.tree_size(), 20_003);
}

/// A prune gives back the space of every segment it removes, also of one the writer read
/// to compare a re-sent event with (and kept open for the next).
#[test]
fn a_pruned_segment_read_for_a_re_sent_event_is_not_kept_open() {
    let tmp = scratch();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, pruning_options()).unwrap();
    let events: Vec<Event> = (0..8)
        .map(|i| {
            Event::new(Category::Admin, "config.changed", Outcome::Success)
                .with_details(serde_json::json!({ "pad": "x".repeat(300 + i) }))
        })
        .collect();
    for e in &events {
        store.append(vec![e.clone()]).unwrap();
    }
    assert_eq!(store.append(vec![events[0].clone()]).unwrap().duplicates, 1);
    let now =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() + FUTURE.as_micros() as i128)
            .unwrap();
    store.prune(now).unwrap().pruned.expect("sealed segments");
    let held: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .filter(|p| p.starts_with(&dir.display().to_string()) && p.ends_with("(deleted)"))
        .collect();
    assert!(held.is_empty(), "removed files still open: {held:?}");
}

/// Retention is steered by the log's files and its own settings only: a client's event
/// that reads like a pruning (its action, its details, an id a pruning might have) prunes
/// nothing it names, and blocks nothing.
#[test]
fn a_client_event_that_reads_like_a_pruning_steers_nothing() {
    let tmp = scratch();
    let dir = tmp.path().join("data");
    let options = pruning_options();
    let store = Store::open(&dir, options.clone()).unwrap();
    let padded = |i: usize| {
        Event::new(Category::Admin, "config.changed", Outcome::Success)
            .with_details(serde_json::json!({ "pad": "x".repeat(300 + i) }))
    };
    for i in 0..8 {
        store.append(vec![padded(i)]).unwrap();
    }
    for id in ["vellum.prune.0", "prune-0"] {
        let mut forged = Event::new(Category::Admin, "retention.pruned", Outcome::Success)
            .with_details(serde_json::json!({ "first_index": 0, "end_index": 1 }));
        forged.id = id.parse().unwrap();
        store.append(vec![forged]).unwrap();
    }
    let now =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() + FUTURE.as_micros() as i128)
            .unwrap();
    let pruned = store.prune(now).unwrap().pruned.expect("sealed segments");
    let firsts: Vec<u64> = LogReader::open(&dir).unwrap().prunes().unwrap()[0]
        .segments
        .iter()
        .map(|s| s.trim_end_matches(".seg").parse().unwrap())
        .collect();
    assert_eq!(firsts.first(), Some(&0));
    assert!(pruned.end_index > 1, "{pruned:?}");
    drop(store);
    let reopened = Store::open(&dir, options).unwrap();
    assert_eq!(
        LogReader::open(&dir).unwrap().first_index().unwrap(),
        pruned.end_index
    );
    drop(reopened);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "verify: {:#?}", report.problems);
}

/// A reader opened once and kept (as `vellum serve` keeps one) must prove events appended
/// after it opened, even if it was asked about the tree while the log was still empty and
/// the tree files did not exist yet.
#[test]
fn a_long_lived_reader_proves_what_was_appended_later() {
    let tmp = scratch();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, Model::new(64 << 10).options()).unwrap();
    let reader = LogReader::open(&dir).unwrap();
    // A proof request before the first event: nothing to prove yet.
    assert_eq!(reader.tree_files_size().unwrap(), 0);
    assert!(reader.inclusion_proof(0, 1).is_err());

    let event = || Event::new(Category::Admin, "config.changed", Outcome::Success);
    store.append((0..3).map(|_| event()).collect()).unwrap();
    assert_eq!(
        reader.tree_files_size().unwrap(),
        3,
        "the reader must see leaves appended after it opened"
    );
    let root = reader
        .root(3)
        .unwrap_or_else(|e| panic!("the root of 3 leaves: {e}"));
    let proof = reader
        .inclusion_proof(2, 3)
        .unwrap_or_else(|e| panic!("a proof in the tree of 3 leaves: {e}"));
    verify_inclusion(
        &proof.leaf_hash,
        LeafIndex(2),
        TreeSize(3),
        &proof.proof,
        &root,
    )
    .unwrap();
    assert_eq!(root, LogReader::open(&dir).unwrap().root(3).unwrap());
}

/// Retention deletes: once a segment is pruned, no reader may hand out its events, not even
/// one that was open before (the server keeps one), and its disk space must come back.
#[test]
fn a_long_lived_reader_does_not_serve_pruned_events() {
    let tmp = scratch();
    let dir = tmp.path().join("data");
    let options = pruning_options();
    let store = Store::open(&dir, options).unwrap();
    let reader = LogReader::open(&dir).unwrap();
    let event = || {
        Event::new(Category::Admin, "config.changed", Outcome::Success)
            .with_details(serde_json::json!({ "pad": "x".repeat(300) }))
    };
    for _ in 0..4 {
        store.append(vec![event(), event()]).unwrap();
    }
    // The reader has read the first segment, as a query would.
    assert!(reader.read(0).is_ok());
    let now =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() + FUTURE.as_micros() as i128)
            .unwrap();
    let pruned = store
        .prune(now)
        .unwrap()
        .pruned
        .expect("sealed segments to prune");
    assert_eq!(pruned.first_index, 0);

    assert!(
        matches!(
            LogReader::open(&dir).unwrap().read(0),
            Err(StoreError::Pruned { .. })
        ),
        "a new reader says pruned"
    );
    match reader.read(0) {
        Err(StoreError::Pruned { index: 0, first }) => assert_eq!(first, pruned.end_index),
        Ok(_) => panic!("a reader opened before the pruning still serves pruned event 0"),
        Err(e) => panic!("read(0): {e}"),
    }
}
