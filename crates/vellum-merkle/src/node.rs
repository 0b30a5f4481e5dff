//! Complete subtrees, the [`NodeSource`] proofs read them from, and the hash of any subtree of
//! the RFC 6962 tree computed from complete ones.
//!
//! A tree of `n` leaves only has complete subtrees to the left of its right edge; the nodes on
//! the right edge change with every append. So a source stores complete subtrees only (they
//! never change once written) and everything else is folded from them here, at most 64 reads
//! per incomplete node.

use crate::error::ProofError;
use crate::hash::{Hash, empty_root, node_hash};
use crate::size::TreeSize;

/// A complete (perfect) subtree: covers leaves `[index << level, (index + 1) << level)`.
///
/// Level 0 is a leaf; its hash is the leaf hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NodeId {
    /// Height above the leaves: the subtree has `2^level` leaves.
    pub level: u8,
    /// Position among the subtrees of this level, from the left.
    pub index: u64,
}

impl NodeId {
    /// The node of leaf `index`.
    pub const fn leaf(index: u64) -> NodeId {
        NodeId { level: 0, index }
    }
}

/// Where proof generation reads complete-subtree hashes from (the store implements this over
/// files).
///
/// Proof generation only asks for complete subtrees that lie inside the requested tree size;
/// it never asks for a node on the incomplete right edge.
pub trait NodeSource {
    /// How reading a node fails.
    type Error;

    /// The hash of the complete subtree `id`.
    fn node(&self, id: NodeId) -> Result<Hash, Self::Error>;

    /// How many leaves the source holds, if it knows cheaply.
    ///
    /// When this returns `Some(n)`, proof generation rejects tree sizes above `n` with
    /// [`ProofError::NotAvailable`] before reading anything. The default, `None`, means every
    /// size is attempted and a missing node surfaces as the source's own error.
    fn leaf_count(&self) -> Option<TreeSize> {
        None
    }
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, id: NodeId) -> Result<Hash, Self::Error> {
        (**self).node(id)
    }

    fn leaf_count(&self) -> Option<TreeSize> {
        (**self).leaf_count()
    }
}

/// Fails with [`ProofError::NotAvailable`] if the source knows it holds fewer than `size`
/// leaves.
pub(crate) fn check_available<S: NodeSource>(
    src: &S,
    size: TreeSize,
) -> Result<(), ProofError<S::Error>> {
    match src.leaf_count() {
        Some(available) if available < size => Err(ProofError::NotAvailable { size, available }),
        _ => Ok(()),
    }
}

/// MTH of leaves `[start, end)`, where the range is a node of some RFC 6962 tree: `start` is a
/// multiple of the smallest power of two that is `>= end - start`. Such a range is a sequence
/// of complete subtrees, one per set bit of its length, largest first; its hash folds them
/// from the right. Reads `popcount(end - start)` nodes. An empty range is the empty tree.
pub(crate) fn range_hash<S: NodeSource>(
    src: &S,
    start: u64,
    end: u64,
) -> Result<Hash, ProofError<S::Error>> {
    if start >= end {
        return Ok(empty_root());
    }
    let read = |level: u32, first_leaf: u64| {
        debug_assert_eq!(first_leaf % (1u64 << level), 0, "range is not a tree node");
        let id = NodeId {
            // The trailing zeros of a non-zero u64 number at most 63.
            level: level as u8,
            index: first_leaf >> level,
        };
        src.node(id).map_err(ProofError::Source)
    };
    // The smallest piece is the rightmost; fold leftwards from it.
    let mut remaining = end - start;
    let mut level = remaining.trailing_zeros();
    let mut piece_start = end - (1u64 << level);
    let mut acc = read(level, piece_start)?;
    remaining &= remaining - 1;
    while remaining != 0 {
        level = remaining.trailing_zeros();
        piece_start -= 1u64 << level;
        acc = node_hash(&read(level, piece_start)?, &acc);
        remaining &= remaining - 1;
    }
    Ok(acc)
}
