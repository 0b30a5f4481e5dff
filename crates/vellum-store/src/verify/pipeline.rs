//! How a segment's chunks flow through verification: chunk N+2 is read (one core) while
//! chunk N+1 is checked and hashed (every core, [`super::hashed`]) and chunk N is folded
//! into the tree in order (one core, [`Walk`]), which reports the first thing wrong.

use std::collections::BTreeMap;
use std::ops::{Bound, ControlFlow};
use std::path::Path;

use vellum_event::StoredEvent;
use vellum_merkle::{Frontier, Hash};

use super::hashed::Hashed;
use super::nodes::NodeCursors;
use super::{Check, Problem, Report, check_root};
use crate::error::Result;
use crate::segment::{self, Chunk, ChunkMemory, ChunkReader, Next, ScanEnd};

/// The memory of chunks done with, for later ones.
#[derive(Default)]
pub(super) struct Memory {
    chunks: Vec<ChunkMemory>,
    levels: Vec<Vec<Vec<Hash>>>,
}

/// Checks the records of the segment at `path`, in a pipeline: chunk N+2 is read (on one
/// core) while chunk N+1 is checked and hashed (on every core) and chunk N is folded (on
/// one core). Returns how the segment's records end, or `Break` once a problem is reported.
pub(super) fn fold_segment(
    walk: &mut Walk<'_>,
    report: &mut Report,
    path: &Path,
    chunk_bytes: usize,
    memory: &mut Memory,
) -> Result<ControlFlow<(), ScanEnd>> {
    let mut reader = ChunkReader::open(path, segment::HEADER_LEN, chunk_bytes)?;
    let mut to_fold: Option<Hashed> = None;
    let mut to_hash: Option<Chunk> = None;
    // Once the reader has nothing more: how the records end, or why reading failed (which
    // counts only if nothing before it is wrong, so it waits for the fold).
    let mut finish: Option<Result<ScanEnd>> = None;
    loop {
        if to_fold.is_none()
            && to_hash.is_none()
            && let Some(finish) = finish
        {
            return finish.map(ControlFlow::Continue);
        }
        let first = to_fold.as_ref().map_or(walk.expected, Hashed::next_index);
        let hash = to_hash.take();
        let levels = match hash {
            Some(_) => memory.levels.pop().unwrap_or_default(),
            None => Vec::new(),
        };
        let read_more = finish.is_none();
        let mut read_into = memory.chunks.pop().unwrap_or_default();
        let (folded, (hashed, read)) = rayon::join(
            || match &to_fold {
                Some(chunk) => walk.chunk(chunk, path, report),
                None => ControlFlow::Continue(()),
            },
            || {
                rayon::join(
                    || hash.map(|chunk| Hashed::new(chunk, first, levels)),
                    || read_more.then(|| reader.next(&mut read_into)),
                )
            },
        );
        if let ControlFlow::Break(p) = folded {
            report.problems.push(p);
            return Ok(ControlFlow::Break(()));
        }
        if let Some(done) = to_fold.take() {
            let (chunk, levels) = done.into_memory();
            memory.chunks.push(chunk);
            memory.levels.push(levels);
        }
        let read = match read {
            // The chunk read owns `read_into` now.
            Some(Ok(Next::Chunk(chunk))) => Some(chunk),
            Some(Ok(Next::End(end))) => {
                memory.chunks.push(read_into);
                finish = Some(Ok(end));
                None
            }
            Some(Err(e)) => {
                memory.chunks.push(read_into);
                finish = Some(Err(e));
                None
            }
            None => {
                memory.chunks.push(read_into);
                None
            }
        };
        match hashed {
            Some(chunk) if chunk.checksum_failed() => {
                // The records end at the bad one: whatever was read after it does not count,
                // and the reader now says they end there.
                reader.bad_checksum(chunk.chunk(), chunk.count());
                if let Some(next) = read {
                    memory.chunks.push(next.into_memory());
                }
                finish = None;
                to_fold = Some(chunk);
            }
            hashed => {
                to_fold = hashed;
                to_hash = read;
            }
        }
    }
}

/// Folds checked chunks into the tree in order, comparing it with the tree files and the
/// signed roots as it grows.
pub(super) struct Walk<'a> {
    pub(super) fold: Frontier,
    pub(super) stored_nodes: NodeCursors,
    pub(super) checks: &'a BTreeMap<u64, Vec<Check>>,
    /// The next size beyond `expected` that something signed a root of.
    pub(super) next_check: Option<u64>,
    /// The index the next record must hold (the size of the tree folded so far).
    pub(super) expected: u64,
    pub(super) done_bytes: u64,
    pub(super) total_bytes: u64,
    pub(super) progress: Option<&'a (dyn Fn(u64, u64) + Sync)>,
}

impl Walk<'_> {
    /// Folds the records of `chunk` (from `path`), in order, until the first problem.
    fn chunk(&mut self, chunk: &Hashed, path: &Path, report: &mut Report) -> ControlFlow<Problem> {
        let problem = |index, what| Problem {
            index: Some(index),
            file: Some(path.to_path_buf()),
            what,
        };
        for i in 0..chunk.count() {
            if chunk.bad_index() == Some(i) {
                let offset = chunk.offset_of(i);
                let what = match StoredEvent::index_of(chunk.payload(i)) {
                    Some(c) => format!(
                        "the record at offset {offset} holds index {c}: events were removed, inserted or reordered"
                    ),
                    None => format!("the record at offset {offset} is not a stored event"),
                };
                return ControlFlow::Break(problem(self.expected, what));
            }
            let mut mismatch = None;
            let stored_nodes = &mut self.stored_nodes;
            let pushed = self.fold.try_push_known(
                chunk.leaf(i),
                |id| chunk.node(id),
                |id, h| {
                    if mismatch.is_none() {
                        mismatch = stored_nodes.check(id, h);
                    }
                },
            );
            if let Err(e) = pushed {
                return ControlFlow::Break(problem(self.expected, e.to_string()));
            }
            if let Some(what) = mismatch {
                return ControlFlow::Break(problem(self.expected, what));
            }
            self.expected += 1;
            if self.next_check == Some(self.expected) {
                if let Some(list) = self.checks.get(&self.expected) {
                    // A signed root that differs although every leaf matched the tree files:
                    // the files were rewritten consistently; the bad index is below here.
                    check_root(report, self.expected, self.fold.root(), list, Some(path));
                }
                self.next_check = self
                    .checks
                    .range((Bound::Excluded(self.expected), Bound::Unbounded))
                    .next()
                    .map(|(&size, _)| size);
            }
            let bytes = (chunk.payload(i).len() + 8) as u64;
            self.done_bytes += bytes;
            report.bytes_checked += bytes;
        }
        if let Some(p) = self.progress {
            p(self.done_bytes, self.total_bytes);
        }
        ControlFlow::Continue(())
    }
}
