//! Offline verification: recompute every leaf and tree head from the segments and check
//! them against the tree files, every stored checkpoint and any trusted checkpoints.
//!
//! Detects a changed, removed, inserted, reordered or truncated event (checksums, the index
//! each record carries, leaf hashes, checkpoint roots), a deleted segment (the chain of
//! first indexes), a replaced or forged checkpoint (signatures), and — given a checkpoint
//! saved elsewhere — a rolled-back or forked log. It names the first bad index and file.
//!
//! Each segment is read in chunks. A chunk's records are checked (checksum, index) and
//! hashed (leaves, and every subtree inside the chunk) on every core ([`hashed`]), while the
//! chunk before it is folded into the tree in order on one (`Frontier::try_push_known`,
//! taking the subtrees a chunk hashed instead of hashing them again) and compared with the
//! tree files ([`nodes`]) and the signed roots. The fold walks the records in order and
//! reports the first thing wrong, so what is reported does not depend on the parallelism.

mod hashed;
mod nodes;
mod pipeline;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::ops::{Bound, ControlFlow};
use std::path::{Path, PathBuf};

use vellum_merkle::{Frontier, Hash, TreeSize};
use vellum_note::{Checkpoint, VerifierKey};

use crate::error::{Result, StoreError};
use crate::layout;
use crate::reader::LogReader;
use crate::segment;

use nodes::NodeCursors;
use pipeline::{Memory, Walk, fold_segment};

/// How much of a segment is read, checked and hashed at a time. Three chunks are in memory
/// at most: one being read, one being hashed, one being folded. (2–4 MiB measured fastest
/// on the 2-core machine of BENCHMARKS.md: they stay in its cache between the stages.)
const CHUNK_BYTES: usize = 4 << 20;

/// What to verify against.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// Checkpoints saved elsewhere (note text and a label naming where it came from).
    pub trusted: Vec<(String, String)>,
    /// The key the log must be signed with; the key recorded in the log if unset.
    pub key: Option<VerifierKey>,
    /// Called with (bytes verified, total bytes) as verification proceeds.
    pub progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

/// One thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub index: Option<u64>,
    pub file: Option<PathBuf>,
    pub what: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.index {
            write!(f, "index {i}: ")?;
        }
        f.write_str(&self.what)?;
        if let Some(p) = &self.file {
            write!(f, " ({})", p.display())?;
        }
        Ok(())
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub tree_size: u64,
    pub root: Option<Hash>,
    pub events_checked: u64,
    pub bytes_checked: u64,
    pub checkpoints_checked: usize,
    pub trusted_checked: usize,
    /// Events before this index were pruned by retention (their leaves come from the tree files).
    pub pruned_before: u64,
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not integrity failures (a torn, unacknowledged tail).
    pub notes: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Debug for VerifyOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("trusted", &self.trusted.len())
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

struct Check {
    root: Hash,
    label: String,
}

/// Verifies the log in `dir`.
pub fn verify(dir: impl Into<PathBuf>, opts: &VerifyOptions<'_>) -> Result<Report> {
    verify_in_chunks(dir.into(), opts, CHUNK_BYTES)
}

fn verify_in_chunks(dir: PathBuf, opts: &VerifyOptions<'_>, chunk_bytes: usize) -> Result<Report> {
    let reader = LogReader::open(dir)?;
    let layout = reader.layout().clone();
    let mut report = Report::default();
    let key = match &opts.key {
        Some(k) => {
            if k != reader.verifier_key() {
                report.problems.push(Problem {
                    index: None,
                    file: Some(layout.file(layout::META)),
                    what: format!(
                        "the log's key is {}, not the expected {k}",
                        reader.verifier_key()
                    ),
                });
            }
            k.clone()
        }
        None => reader.verifier_key().clone(),
    };
    let cp_path = layout.file(layout::CHECKPOINTS);

    // Sizes at which the recomputed root must match something signed.
    let mut checks: BTreeMap<u64, Vec<Check>> = BTreeMap::new();
    let cp_log = crate::checkpoints::read_all(&layout)?;
    let (stored, torn) = (cp_log.list, cp_log.torn);
    if let Some((at, why)) = cp_log.damaged {
        report.problems.push(Problem {
            index: None,
            file: Some(cp_path.clone()),
            what: format!(
                "{why} at offset {at}, followed by more records: the checkpoint log was altered"
            ),
        });
    }
    if let Some(at) = torn {
        report.notes.push(format!(
            "checkpoints.log ends in a torn record at offset {at} (cut on next open)"
        ));
    }
    let mut last_size = 0u64;
    for c in &stored {
        match Checkpoint::open(&c.note, &key) {
            Ok(cp) => {
                if cp.size.0 < last_size {
                    report.problems.push(Problem {
                        index: None,
                        file: Some(cp_path.clone()),
                        what: format!(
                            "checkpoint #{} has size {} after one of size {last_size}: the log was rolled back",
                            c.seq, cp.size.0
                        ),
                    });
                }
                last_size = last_size.max(cp.size.0);
                checks.entry(cp.size.0).or_default().push(Check {
                    root: cp.root,
                    label: format!("checkpoint #{}", c.seq),
                });
                report.checkpoints_checked += 1;
            }
            Err(e) => report.problems.push(Problem {
                index: None,
                file: Some(cp_path.clone()),
                what: format!("checkpoint #{} does not verify: {e}", c.seq),
            }),
        }
    }
    for (note, label) in &opts.trusted {
        match Checkpoint::open(note, &key) {
            Ok(cp) => {
                checks.entry(cp.size.0).or_default().push(Check {
                    root: cp.root,
                    label: format!("trusted checkpoint {label}"),
                });
                report.trusted_checked += 1;
            }
            Err(e) => report.problems.push(Problem {
                index: None,
                file: Some(PathBuf::from(label)),
                what: format!("trusted checkpoint does not verify with the log's key: {e}"),
            }),
        }
    }

    // The chain of segments after what retention pruned.
    let start = reader.first_index()?;
    report.pruned_before = start;
    let mut firsts = layout.list_segments()?;
    let stale = firsts.iter().take_while(|&&f| f < start).count();
    if stale > 0 {
        report.notes.push(format!(
            "{stale} segment files below index {start} were pruned but not yet removed (removed on next open)"
        ));
        firsts.drain(..stale);
    }
    let frontier = if start > 0 {
        match Frontier::from_source(reader.tree(), TreeSize(start)) {
            Ok(f) => f,
            Err(e) => {
                report.problems.push(Problem {
                    index: Some(start),
                    file: Some(layout.tree_dir()),
                    what: format!("the tree of pruned events is unreadable: {e}"),
                });
                return Ok(report);
            }
        }
    } else {
        Frontier::new()
    };
    // Checkpoints of pruned sizes are checked against the kept tree nodes.
    for (&size, list) in checks.range(..=start) {
        match vellum_merkle::root(reader.tree(), TreeSize(size)) {
            Ok(root) => check_root(&mut report, size, root, list, None),
            Err(e) => report.problems.push(Problem {
                index: None,
                file: Some(layout.tree_dir()),
                what: format!("no tree for pruned size {size}: {e}"),
            }),
        }
    }

    let total_bytes: u64 = firsts
        .iter()
        .filter_map(|&f| std::fs::metadata(layout.segment(f)).ok())
        .map(|m| m.len())
        .sum();
    let mut walk = Walk {
        fold: frontier,
        stored_nodes: NodeCursors::new(&layout, last_size),
        checks: &checks,
        next_check: checks
            .range((Bound::Excluded(start), Bound::Unbounded))
            .next()
            .map(|(&size, _)| size),
        expected: start,
        done_bytes: 0,
        total_bytes,
        progress: opts.progress,
    };
    let mut memory = Memory::default();
    // A bad end of the last segment, and whether it is bytes missing (cut short, or a header
    // never written) rather than bytes present that are wrong.
    let mut tail_damage: Option<(Problem, bool)> = None;
    for (n, &first) in firsts.iter().enumerate() {
        let expected = walk.expected;
        let path = layout.segment(first);
        if first != expected {
            // Events missing from the end of the previous segment (its .idx still lists
            // them) are that segment's fault; otherwise a whole segment is gone.
            let prev = n.checked_sub(1).map(|p| firsts[p]);
            let listed =
                prev.and_then(|p| crate::recovery::idx_len(&layout, p).ok().map(|c| p + c));
            let (file, what) = match (prev, listed) {
                (Some(p), Some(listed)) if first > expected && listed > expected => (
                    layout.segment(p),
                    format!(
                        "the segment ends at index {expected} but its index lists records up to {listed}: events were removed from its end"
                    ),
                ),
                _ if first > expected => (
                    path.clone(),
                    format!("indexes {expected}..{first} are missing: a segment was removed"),
                ),
                _ => (
                    path.clone(),
                    format!("the segment starts at {first}, overlapping indexes before {expected}"),
                ),
            };
            report.problems.push(Problem {
                index: Some(expected),
                file: Some(file),
                what,
            });
            break;
        }
        let header_ok = File::open(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| segment::read_header(&f, &path).map_err(|e| e.to_string()));
        match header_ok {
            Ok((claimed, _)) if claimed == first => {}
            Ok((claimed, _)) => {
                report.problems.push(Problem {
                    index: Some(first),
                    file: Some(path.clone()),
                    what: format!("the segment header says it starts at {claimed}"),
                });
                break;
            }
            // The writer was killed while creating the last segment: its header never
            // reached the disk, so it holds nothing, and the next open removes it. Like a
            // torn record at the end, it is only a problem if a checkpoint covers more.
            Err(e)
                if n + 1 == firsts.len()
                    && crate::recovery::segment_never_started(&layout, first).unwrap_or(false) =>
            {
                tail_damage = Some((
                    Problem {
                        index: Some(first),
                        file: Some(path.clone()),
                        what: format!("{e}: a new segment whose header was never written"),
                    },
                    true,
                ));
                break;
            }
            Err(e) => {
                report.problems.push(Problem {
                    index: Some(first),
                    file: Some(path.clone()),
                    what: e,
                });
                break;
            }
        }
        let end = match fold_segment(&mut walk, &mut report, &path, chunk_bytes, &mut memory)? {
            ControlFlow::Continue(end) => end,
            ControlFlow::Break(()) => break,
        };
        let expected = walk.expected;
        if let Some(why) = end.damage {
            let p = Problem {
                index: Some(expected),
                file: Some(path.clone()),
                what: format!("{why} at offset {}", end.end),
            };
            if n + 1 == firsts.len() {
                tail_damage = Some((p, why.is_cut_short()));
            } else {
                report.problems.push(p);
                break;
            }
        } else if n + 1 < firsts.len() && end.end != end.file_len {
            report.problems.push(Problem {
                index: Some(expected),
                file: Some(path.clone()),
                what: "a sealed segment has bytes after its last record".into(),
            });
            break;
        }
        // The `.idx` (where readers find records) must list every record of a sealed
        // segment. (The last one's may list fewer, a writer that stopped, noted below;
        // records missing from a segment are reported where its successor starts.)
        if n + 1 < firsts.len() && first <= expected {
            let held = expected - first;
            let listed = crate::recovery::idx_len(&layout, first).unwrap_or(0);
            if listed < held {
                report.problems.push(Problem {
                    index: Some(first + listed.min(held)),
                    file: Some(layout.segment_index(first)),
                    what: format!(
                        "the index file lists {listed} records, the segment holds {held} (readers cannot find the others; recovery refuses the mismatch)"
                    ),
                });
                break;
            }
        }
    }
    let expected = walk.expected;
    report.events_checked = expected - start;
    report.tree_size = expected;
    report.root = Some(walk.fold.root());
    if let Some(p) = opts.progress {
        p(total_bytes, total_bytes);
    }

    // Every writer signs a checkpoint when it creates or opens a log, so a log that holds
    // events and no checkpoint at all lost its signed history.
    if stored.is_empty() && expected > 0 {
        report.problems.push(Problem {
            index: None,
            file: Some(cp_path.clone()),
            what: format!(
                "no signed checkpoint, yet the log holds {expected} events: every writer signs one when it creates or opens a log, so the checkpoints were removed"
            ),
        });
    } else if last_size < expected {
        report.notes.push(format!(
            "{} not covered by a signed checkpoint yet, so only checksums and the tree files vouch for them: a running writer signs them within seconds, and a writer that stopped first signs them when the log is next opened",
            events_are(last_size, expected)
        ));
    }
    // Events the segments hold intact past what their `.idx` files list (a writer stopped
    // between the two, or is between them now) are verified here but not yet seen by the
    // other commands.
    let committed = reader.size()?;
    if expected > committed {
        report.notes.push(format!(
            "{} intact but not in the segment's .idx yet, so the other commands see {committed} events: a writer is finishing them, or stopped before it did and the next one to open the log recovers them",
            events_are(committed, expected)
        ));
    }

    // Anything signed beyond where the log ends means events are missing.
    if let Some((&size, list)) = checks.range(expected + 1..).next() {
        let labels: Vec<&str> = list.iter().map(|c| c.label.as_str()).collect();
        let file = tail_damage
            .as_ref()
            .and_then(|(p, _)| p.file.clone())
            .or_else(|| firsts.last().map(|&f| layout.segment(f)));
        let cause = tail_damage
            .as_ref()
            .map(|(p, _)| format!(" ({})", p.what))
            .unwrap_or_default();
        // Bytes that are there and wrong were changed; bytes that are not there were cut.
        let verdict = match tail_damage {
            Some((_, false)) => "a record signed for was altered or damaged",
            _ => "it was truncated or rolled back",
        };
        if report.problems.is_empty() {
            report.problems.push(Problem {
                index: Some(expected),
                file,
                what: format!(
                    "the log ends at index {expected}{cause} but {} covers {size} events: {verdict}",
                    labels.join(", ")
                ),
            });
        }
    } else if let Some((p, _)) = tail_damage {
        report
            .notes
            .push(format!("unacknowledged torn tail, cut on next open: {p}"));
    }
    Ok(report)
}

/// "1 event (index 7) is" or "3 events (indexes 7..9) are", for indexes `from..to`.
fn events_are(from: u64, to: u64) -> String {
    match to - from {
        1 => format!("1 event (index {from}) is"),
        n => format!("{n} events (indexes {from}..{}) are", to - 1),
    }
}

fn check_root(report: &mut Report, size: u64, root: Hash, list: &[Check], file: Option<&Path>) {
    for c in list {
        if c.root != root {
            report.problems.push(Problem {
                index: Some(size.saturating_sub(1)),
                file: file.map(Path::to_path_buf),
                what: format!(
                    "the tree of the first {size} events does not match {}: an event below index {size} was changed, or the log forked",
                    c.label
                ),
            });
        }
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Problem {
            index: None,
            file: None,
            what: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Path;

    use vellum_event::{Category, Event, Outcome};

    use super::*;
    use crate::layout::Layout;
    use crate::options::Options;
    use crate::record::{self, Frame};
    use crate::writer::Store;

    /// Chunks from smaller than one record (one record a chunk) to the whole segment.
    const CHUNK_SIZES: [usize; 6] = [1, 700, 4096, 10_000, 65_536, CHUNK_BYTES];

    /// 2,000 events in segments of ~64 KiB, with checkpoints every 250 events.
    fn log(dir: &Path) {
        let opts = Options {
            segment_max_bytes: 64 << 10,
            ..Options::default()
        };
        let store = Store::open(dir, opts).unwrap();
        for batch in 0..8 {
            let events = (0..250)
                .map(|i| {
                    let mut ev =
                        Event::new(Category::ApiRequest, "chat.completions", Outcome::Success);
                    ev.reason = Some("x".repeat((batch * 250 + i) % 97));
                    ev
                })
                .collect();
            store.append(events).unwrap();
            store.checkpoint().unwrap();
        }
    }

    /// Rewrites record `n` of the segment at `path` with `change`, its checksum recomputed
    /// (or not).
    fn rewrite(path: &Path, n: usize, fix_checksum: bool, change: fn(&mut Vec<u8>)) {
        let bytes = std::fs::read(path).unwrap();
        let mut out = bytes[..segment::HEADER_LEN as usize].to_vec();
        let mut pos = out.len();
        let mut i = 0;
        while let Frame::Record(payload) = record::decode(&bytes[pos..], true) {
            let mut payload = payload.to_vec();
            pos += record::HEADER_LEN + payload.len();
            if i == n {
                let crc = record::checksum(&payload);
                change(&mut payload);
                let mut framed = Vec::new();
                record::encode(&mut framed, &payload);
                if !fix_checksum {
                    framed[4..8].copy_from_slice(&crc.to_le_bytes());
                }
                out.extend_from_slice(&framed);
            } else {
                record::encode(&mut out, &payload);
            }
            i += 1;
        }
        out.extend_from_slice(&bytes[pos..]);
        std::fs::write(path, out).unwrap();
    }

    /// Verifies with every chunk size; they must all give the same report.
    fn same_for_every_chunk_size(dir: &Path) -> Report {
        let reports: Vec<Report> = CHUNK_SIZES
            .iter()
            .map(|&c| verify_in_chunks(dir.to_path_buf(), &VerifyOptions::default(), c).unwrap())
            .collect();
        for (r, &c) in reports.iter().zip(&CHUNK_SIZES) {
            let first = &reports[0];
            assert_eq!(r.problems, first.problems, "chunks of {c} bytes");
            assert_eq!(r.notes, first.notes, "chunks of {c} bytes");
            assert_eq!(
                (r.tree_size, r.root, r.events_checked, r.bytes_checked),
                (
                    first.tree_size,
                    first.root,
                    first.events_checked,
                    first.bytes_checked
                ),
                "chunks of {c} bytes"
            );
        }
        reports.into_iter().next().unwrap()
    }

    fn segment_holding(dir: &Path, index: u64) -> (PathBuf, usize) {
        let layout = Layout::new(dir);
        let first = layout
            .list_segments()
            .unwrap()
            .into_iter()
            .rfind(|&f| f <= index)
            .unwrap();
        (layout.segment(first), (index - first) as usize)
    }

    #[test]
    fn reports_do_not_depend_on_the_chunk_size() {
        let tmp = tempfile::tempdir().unwrap();
        let clean = tmp.path().join("clean");
        log(&clean);
        let report = same_for_every_chunk_size(&clean);
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.tree_size, 2000);
        assert!(Layout::new(&clean).list_segments().unwrap().len() > 4);

        // (what is done to which event, what the first problem must say)
        type Tamper = fn(&mut Vec<u8>);
        let cases: [(u64, bool, Tamper, &str); 4] = [
            (1234, false, |p| p[40] ^= 1, "checksum"),
            (1234, true, |p| p[40] ^= 1, "leaf hash"),
            (777, true, |p| p[10] = b'9', "holds index"),
            (1999, true, |p| p[60] ^= 1, "leaf hash"),
        ];
        for (k, (index, fix, change, says)) in cases.into_iter().enumerate() {
            let dir = tmp.path().join(format!("case-{k}"));
            copy_dir(&clean, &dir);
            let (path, n) = segment_holding(&dir, index);
            rewrite(&path, n, fix, change);
            let report = same_for_every_chunk_size(&dir);
            let p = report.problems.first().expect("a problem");
            assert_eq!(p.index, Some(index), "case {k}: {p}");
            assert_eq!(p.file.as_deref(), Some(path.as_path()), "case {k}: {p}");
            assert!(p.what.contains(says), "case {k}: {p}");
        }

        // A stored interior node that differs: reported at the leaf that completes it.
        for (level, node) in [(1u8, 700u64), (3, 101), (6, 20)] {
            let dir = tmp.path().join(format!("node-{level}-{node}"));
            copy_dir(&clean, &dir);
            let path = Layout::new(&dir).tree_level(level);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes[node as usize * 32 + 5] ^= 1;
            std::fs::write(&path, bytes).unwrap();
            let report = same_for_every_chunk_size(&dir);
            let p = report.problems.first().expect("a problem");
            assert_eq!(p.index, Some(((node + 1) << level) - 1), "{p}");
            assert!(
                p.what
                    .contains(&format!("tree node {node} of level {level}")),
                "{p}"
            );
        }
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}
