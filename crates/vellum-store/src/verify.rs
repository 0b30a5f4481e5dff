//! Offline verification: recompute every leaf and tree head from the segments and check
//! them against the tree files, every stored checkpoint and any trusted checkpoints.
//!
//! Detects a changed, removed, inserted, reordered or truncated event (checksums, the index
//! each record carries, leaf hashes, checkpoint roots), a deleted segment (the chain of
//! first indexes), a replaced or forged checkpoint (signatures), and — given a checkpoint
//! saved elsewhere — a rolled-back or forked log. It names the first bad index and file.
//! Leaf hashing runs on every core; the tree is folded in order on one.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::ops::ControlFlow;
use std::path::PathBuf;

use rayon::prelude::*;
use vellum_event::StoredEvent;
use vellum_merkle::{Frontier, Hash, NodeId, TreeSize, leaf_hash};
use vellum_note::{Checkpoint, VerifierKey};

use crate::error::{Result, StoreError};
use crate::layout::{self, Layout};
use crate::reader::LogReader;
use crate::segment;

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
    let mut frontier = if start > 0 {
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
    let mut stored_nodes = NodeCursors::new(&layout, last_size);
    let mut expected = start;
    let mut done_bytes = 0u64;
    let mut tail_damage: Option<Problem> = None;
    'segments: for (n, &first) in firsts.iter().enumerate() {
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
            Err(e) => {
                report.problems.push(Problem {
                    index: Some(first),
                    file: Some(path.clone()),
                    what: e,
                });
                break;
            }
        }
        let mut first_problem: Option<Problem> = None;
        let end = segment::scan(&path, segment::HEADER_LEN, 8 << 20, |seen| {
            if first_problem.is_some() {
                return Ok(ControlFlow::Break(()));
            }
            let leaves: Vec<Hash> = seen.par_iter().map(|s| leaf_hash(s.payload)).collect();
            for (s, leaf) in seen.iter().zip(leaves) {
                let claimed = StoredEvent::index_of(s.payload);
                if claimed != Some(expected) {
                    first_problem = Some(Problem {
                        index: Some(expected),
                        file: Some(path.clone()),
                        what: match claimed {
                            Some(c) => format!(
                                "the record at offset {} holds index {c}: events were removed, inserted or reordered",
                                s.offset
                            ),
                            None => {
                                format!("the record at offset {} is not a stored event", s.offset)
                            }
                        },
                    });
                    return Ok(ControlFlow::Break(()));
                }
                let mut mismatch = None;
                frontier.push(leaf, |id, h| {
                    if mismatch.is_none() {
                        mismatch = stored_nodes.check(id, h);
                    }
                });
                if let Some(what) = mismatch {
                    first_problem = Some(Problem {
                        index: Some(expected),
                        file: Some(path.clone()),
                        what,
                    });
                    return Ok(ControlFlow::Break(()));
                }
                expected += 1;
                if let Some(list) = checks.get(&expected) {
                    // A signed root that differs although every leaf matched the tree files:
                    // the files were rewritten consistently; the bad index is below here.
                    check_root(&mut report, expected, frontier.root(), list, Some(&path));
                }
                done_bytes += (s.payload.len() + 8) as u64;
                report.bytes_checked += (s.payload.len() + 8) as u64;
            }
            if let Some(p) = opts.progress {
                p(done_bytes, total_bytes);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(p) = first_problem {
            report.problems.push(p);
            break 'segments;
        }
        if let Some(why) = end.damage {
            let p = Problem {
                index: Some(expected),
                file: Some(path.clone()),
                what: format!("{why} at offset {}", end.end),
            };
            if n + 1 == firsts.len() {
                tail_damage = Some(p);
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
    }
    report.events_checked = expected - start;
    report.tree_size = expected;
    report.root = Some(frontier.root());
    if let Some(p) = opts.progress {
        p(total_bytes, total_bytes);
    }

    // Anything signed beyond where the log ends means events are missing.
    if let Some((&size, list)) = checks.range(expected + 1..).next() {
        let labels: Vec<&str> = list.iter().map(|c| c.label.as_str()).collect();
        let file = tail_damage
            .as_ref()
            .and_then(|p| p.file.clone())
            .or_else(|| firsts.last().map(|&f| layout.segment(f)));
        let cause = tail_damage
            .as_ref()
            .map(|p| format!(" ({})", p.what))
            .unwrap_or_default();
        if report.problems.is_empty() {
            report.problems.push(Problem {
                index: Some(expected),
                file,
                what: format!(
                    "the log ends at index {expected}{cause} but {} covers {size} events: it was truncated or rolled back",
                    labels.join(", ")
                ),
            });
        }
    } else if let Some(p) = tail_damage {
        report
            .notes
            .push(format!("unacknowledged torn tail, cut on next open: {p}"));
    }
    Ok(report)
}

fn check_root(report: &mut Report, size: u64, root: Hash, list: &[Check], file: Option<&PathBuf>) {
    for c in list {
        if c.root != root {
            report.problems.push(Problem {
                index: Some(size.saturating_sub(1)),
                file: file.cloned(),
                what: format!(
                    "the tree of the first {size} events does not match {}: an event below index {size} was changed, or the log forked",
                    c.label
                ),
            });
        }
    }
}

/// Reads the stored tree levels sequentially to compare them with recomputed nodes.
struct NodeCursors {
    layout: Layout,
    levels: Vec<Option<Cursor>>,
    /// Nodes over leaves below this size must be stored (a checkpoint of it was signed
    /// after the tree files were synced).
    required: u64,
}

struct Cursor {
    file: File,
    buf: Vec<u8>,
    /// Node index of buf[0].
    start: u64,
}

impl NodeCursors {
    fn new(layout: &Layout, required: u64) -> Self {
        Self {
            layout: layout.clone(),
            levels: Vec::new(),
            required,
        }
    }

    /// Compares a recomputed node with the stored one; returns what is wrong, if anything.
    fn check(&mut self, id: NodeId, hash: &Hash) -> Option<String> {
        let level = id.level as usize;
        while self.levels.len() <= level {
            self.levels.push(None);
        }
        let layout = &self.layout;
        // Only formatted on the error paths: this runs once per tree node.
        let path = || layout.tree_level(id.level);
        if self.levels[level].is_none() {
            let path = path();
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(_) => {
                    let covered = (id.index + 1)
                        .checked_shl(u32::from(id.level))
                        .unwrap_or(u64::MAX);
                    // A level the writer had not created yet when it stopped is only
                    // missing if a checkpoint covers it.
                    return (covered <= self.required)
                        .then(|| format!("tree file {} is missing", path.display()));
                }
            };
            if std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(id.index * 32)).is_err() {
                return Some(format!("tree file {} is unreadable", path.display()));
            }
            self.levels[level] = Some(Cursor {
                file,
                buf: Vec::new(),
                start: id.index,
            });
        }
        let c = self.levels[level].as_mut()?;
        let at = (id.index.checked_sub(c.start)? * 32) as usize;
        if at + 32 > c.buf.len() {
            c.buf.drain(..at.min(c.buf.len()));
            c.start = id.index;
            let mut chunk = vec![0u8; 1 << 20];
            match c.file.read(&mut chunk) {
                Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Some(format!("reading {}: {e}", path().display())),
            }
            if c.buf.len() < 32 {
                let covered = (id.index + 1)
                    .checked_shl(u32::from(id.level))
                    .unwrap_or(u64::MAX);
                if covered <= self.required {
                    return Some(format!(
                        "tree file {} ends before node {} although a checkpoint covers it: it was truncated",
                        path().display(),
                        id.index
                    ));
                }
                // Past the end of what was written: the leaf is newer than the tree files
                // (the writer is behind or was killed); nothing stored to compare with.
                return None;
            }
        }
        let at = ((id.index - c.start) * 32) as usize;
        let stored = c.buf.get(at..at + 32)?;
        if stored != hash.0 {
            return Some(if id.level == 0 {
                "the event's leaf hash differs from the one in the tree: the event was changed"
                    .to_string()
            } else {
                format!(
                    "tree node {} of level {} in {} differs from the recomputed one",
                    id.index,
                    id.level,
                    path().display()
                )
            });
        }
        None
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
