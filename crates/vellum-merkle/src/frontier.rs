//! The frontier (compact range `[0, size)`): the state an appender needs to extend the tree and
//! compute its root without reading anything back.
//!
//! A tree of `size` leaves is, left to right, one complete subtree per set bit of `size`,
//! largest first. The frontier keeps exactly those hashes. Appending a leaf merges it with the
//! trailing subtrees of equal height, like a binary counter's carry; the root folds the
//! subtrees from the right. At most 64 hashes are ever held, so after the first few appends
//! `push` never allocates.

use crate::error::{FrontierError, ProofError};
use crate::hash::{Hash, empty_root, node_hash};
use crate::node::{NodeId, NodeSource, check_available};
use crate::size::TreeSize;

/// The compact range `[0, size)`: one hash per set bit of size, largest subtree first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: TreeSize,
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Frontier {
            size: TreeSize(0),
            // The most a frontier ever holds; reserving it keeps `push` allocation-free.
            hashes: Vec::with_capacity(64),
        }
    }

    /// The number of leaves appended so far.
    pub fn size(&self) -> TreeSize {
        self.size
    }

    /// The complete-subtree hashes, largest (leftmost) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Rebuilds a frontier from a size and its subtree hashes, largest first. The count must
    /// equal the number of set bits of `size`; the hashes themselves cannot be checked here.
    pub fn from_parts(size: TreeSize, hashes: Vec<Hash>) -> Result<Self, FrontierError> {
        let expected = size.0.count_ones() as usize;
        if hashes.len() != expected {
            return Err(FrontierError::WrongHashCount {
                size,
                expected,
                got: hashes.len(),
            });
        }
        Ok(Frontier { size, hashes })
    }

    /// Reads the frontier of the tree of `size` leaves from a node source (`popcount(size)`
    /// reads).
    pub fn from_source<S: NodeSource>(
        src: &S,
        size: TreeSize,
    ) -> Result<Self, ProofError<S::Error>> {
        check_available(src, size)?;
        let mut hashes = Vec::with_capacity(64);
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size.0 & (1u64 << level) != 0 {
                let id = NodeId {
                    level,
                    index: start >> level,
                };
                hashes.push(src.node(id).map_err(ProofError::Source)?);
                start += 1u64 << level;
            }
        }
        Ok(Frontier { size, hashes })
    }

    /// Appends one leaf; calls `on_node` for the leaf itself (`NodeId { level: 0, index }`)
    /// and then for every complete subtree this leaf completes, bottom up, so a store can
    /// persist them.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves (over 500,000 years at a million leaves a
    /// second). [`Frontier::try_push`] reports that as an error instead.
    pub fn push(&mut self, leaf: Hash, on_node: impl FnMut(NodeId, &Hash)) {
        if self.try_push(leaf, on_node).is_err() {
            panic!("Frontier::push: the tree already holds u64::MAX leaves");
        }
    }

    /// [`Frontier::push`], but a full tree is an error and the frontier is left unchanged.
    pub fn try_push(
        &mut self,
        leaf: Hash,
        on_node: impl FnMut(NodeId, &Hash),
    ) -> Result<(), FrontierError> {
        self.try_push_known(leaf, |_| None, on_node)
    }

    /// [`Frontier::try_push`], taking each subtree the leaf completes from `known` when it
    /// has it (hashed already, e.g. on another core) instead of hashing it here. A known
    /// hash is trusted as the subtree's: the caller vouches for it.
    pub fn try_push_known(
        &mut self,
        leaf: Hash,
        known: impl Fn(NodeId) -> Option<Hash>,
        mut on_node: impl FnMut(NodeId, &Hash),
    ) -> Result<(), FrontierError> {
        let index = self.size.0;
        let new_size = index.checked_add(1).ok_or(FrontierError::Full)?;
        on_node(NodeId::leaf(index), &leaf);
        // The trailing ones of the old size are the subtrees of heights 0, 1, ... that the new
        // leaf completes, and they are the last hashes held.
        let mut acc = leaf;
        for level in 1..=index.trailing_ones() {
            let Some(left) = self.hashes.pop() else {
                // Unreachable: popcount(size) hashes are held, one per trailing one at least.
                break;
            };
            // The new subtree ends at leaf `index`, whose low `level` bits are all ones.
            let id = NodeId {
                level: level as u8,
                index: index >> level,
            };
            acc = known(id).unwrap_or_else(|| node_hash(&left, &acc));
            on_node(id, &acc);
        }
        self.hashes.push(acc);
        self.size = TreeSize(new_size);
        Ok(())
    }

    /// The root of the tree of `size` leaves (the empty root for 0).
    pub fn root(&self) -> Hash {
        let mut rev = self.hashes.iter().rev();
        let Some(&last) = rev.next() else {
            return empty_root();
        };
        rev.fold(last, |right, left| node_hash(left, &right))
    }
}
