//! The parallel half of verification: one chunk of a segment, checked and hashed on every
//! core before it is folded into the tree in order.
//!
//! Per record: its checksum, whether it holds the index of its position, its leaf hash. Then
//! every complete subtree that lies inside the chunk, level by level, so that folding the
//! chunk hashes (almost) nothing. Nothing here decides which problem is reported: it only
//! records where the first bad checksum and the first bad index are, and the fold, which
//! walks the records in order, reports whichever comes first.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use vellum_event::StoredEvent;
use vellum_merkle::{Hash, NodeId, leaf_hash, node_hash};

use crate::segment::{Chunk, ChunkMemory};

/// Levels with fewer nodes than this are hashed on the calling thread.
const PARALLEL_NODES: usize = 512;

/// A chunk of records whose checksums held, with their leaves and the subtrees over them.
#[derive(Debug)]
pub(super) struct Hashed {
    chunk: Chunk,
    /// The index record 0 must hold.
    first: u64,
    /// The records before the first whose checksum does not match (the others are dropped:
    /// the segment's records end there).
    count: usize,
    /// The first record (below `count`) that does not hold the index of its position.
    bad_index: Option<usize>,
    /// `levels[0]` holds the leaves; `levels[l]` the complete subtrees of height `l` that lie
    /// inside the chunk.
    levels: Vec<Level>,
}

#[derive(Debug)]
struct Level {
    /// The node index of `nodes[0]` in its level.
    first: u64,
    nodes: Vec<Hash>,
}

impl Hashed {
    /// Checks and hashes `chunk` on every core; its first record must hold index `first`.
    /// The level vectors of `memory` (from [`Hashed::into_memory`]) are reused.
    pub(super) fn new(chunk: Chunk, first: u64, memory: Vec<Vec<Hash>>) -> Self {
        let mut memory = memory.into_iter();
        let mut leaves = memory.next().unwrap_or_default();
        leaves.clear();
        // The first record with a bad checksum, and with a bad index (usize::MAX: none).
        let bad_checksum = AtomicUsize::new(usize::MAX);
        let bad_index = AtomicUsize::new(usize::MAX);
        leaves.par_extend((0..chunk.len()).into_par_iter().with_min_len(64).map(|i| {
            let payload = chunk.payload(i);
            if !chunk.checksum_matches(i) {
                bad_checksum.fetch_min(i, Ordering::Relaxed);
            }
            if StoredEvent::index_of(payload) != first.checked_add(i as u64) {
                bad_index.fetch_min(i, Ordering::Relaxed);
            }
            leaf_hash(payload)
        }));
        let count = bad_checksum.into_inner().min(chunk.len());
        let bad_index = Some(bad_index.into_inner()).filter(|&i| i < count);
        leaves.truncate(count);
        Hashed {
            chunk,
            first,
            count,
            bad_index,
            levels: subtrees(first, leaves, memory),
        }
    }

    /// Whether a record's checksum does not match (the one just after the last to fold):
    /// the segment's records end there.
    pub(super) fn checksum_failed(&self) -> bool {
        self.count < self.chunk.len()
    }

    pub(super) fn chunk(&self) -> &Chunk {
        &self.chunk
    }

    /// The number of records to fold.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// The index the next chunk must start at.
    pub(super) fn next_index(&self) -> u64 {
        self.first.saturating_add(self.count as u64)
    }

    /// The first record that does not hold the index of its position.
    pub(super) fn bad_index(&self) -> Option<usize> {
        self.bad_index
    }

    /// The leaf hash of record `i`.
    pub(super) fn leaf(&self, i: usize) -> Hash {
        self.levels[0].nodes[i]
    }

    /// The hash of `id` if it lies inside this chunk.
    pub(super) fn node(&self, id: NodeId) -> Option<Hash> {
        let level = self.levels.get(usize::from(id.level))?;
        let at = usize::try_from(id.index.checked_sub(level.first)?).ok()?;
        level.nodes.get(at).copied()
    }

    pub(super) fn payload(&self, i: usize) -> &[u8] {
        self.chunk.payload(i)
    }

    pub(super) fn offset_of(&self, i: usize) -> u64 {
        self.chunk.offset_of(i)
    }

    /// Its memory, to read and hash a later chunk into.
    pub(super) fn into_memory(self) -> (ChunkMemory, Vec<Vec<Hash>>) {
        (
            self.chunk.into_memory(),
            self.levels.into_iter().map(|l| l.nodes).collect(),
        )
    }
}

/// Every complete subtree over leaves `first..first + leaves.len()`, level by level, in
/// vectors taken from `memory` while it has some.
fn subtrees(
    first: u64,
    leaves: Vec<Hash>,
    mut memory: impl Iterator<Item = Vec<Hash>>,
) -> Vec<Level> {
    // A log this close to 2^64 events cannot exist; cut it short rather than overflow.
    let end = first.saturating_add(leaves.len() as u64);
    let mut levels = vec![Level {
        first,
        nodes: leaves,
    }];
    for height in 1..64u32 {
        // The nodes of this height that lie inside [first, end).
        let lo = first.div_ceil(1 << height);
        let hi = end >> height;
        if hi <= lo {
            break;
        }
        let below = &levels[levels.len() - 1];
        // Their children: the nodes below from `2 * lo` on, which lie inside too.
        let from = (2 * lo - below.first) as usize;
        let pairs = &below.nodes[from..from + 2 * (hi - lo) as usize];
        let pair = |p: &[Hash]| node_hash(&p[0], &p[1]);
        let mut nodes = memory.next().unwrap_or_default();
        nodes.clear();
        if pairs.len() >= 2 * PARALLEL_NODES {
            nodes.par_extend(pairs.par_chunks_exact(2).map(pair));
        } else {
            nodes.extend(pairs.chunks_exact(2).map(pair));
        }
        levels.push(Level { first: lo, nodes });
    }
    levels
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vellum_merkle::MemoryTree;

    use super::*;

    #[test]
    fn subtrees_inside_a_range_are_those_of_the_whole_tree() {
        let all: Vec<Hash> = (0..300u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut tree = MemoryTree::new();
        for &leaf in &all {
            tree.push(leaf);
        }
        for (first, end) in [(0, 300), (0, 1), (5, 6), (7, 133), (64, 128), (1, 299)] {
            let levels = subtrees(
                first,
                all[first as usize..end as usize].to_vec(),
                [].into_iter(),
            );
            let mut found = 0;
            for (height, level) in levels.iter().enumerate() {
                for (k, hash) in level.nodes.iter().enumerate() {
                    let id = NodeId {
                        level: height as u8,
                        index: level.first + k as u64,
                    };
                    assert!(id.index << height >= first && (id.index + 1) << height <= end);
                    assert_eq!(Some(*hash), tree.get(id), "{first}..{end}: {id:?}");
                    found += 1;
                }
            }
            // Every complete subtree inside the range is there.
            let expected: u64 = (0..10)
                .map(|h| (end >> h).saturating_sub(first.div_ceil(1 << h)))
                .sum();
            assert_eq!(found, expected, "{first}..{end}");
        }
    }
}
