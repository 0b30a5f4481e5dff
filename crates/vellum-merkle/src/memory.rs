//! An in-memory [`NodeSource`] holding every complete subtree, for tests and small tools.

use std::convert::Infallible;

use crate::frontier::Frontier;
use crate::hash::Hash;
use crate::node::{NodeId, NodeSource};
use crate::size::TreeSize;

/// In-memory [`NodeSource`] (all levels in `Vec`s) for tests and small tools; `push(leaf)`
/// appends.
///
/// Memory is about two hashes per leaf. A store should persist what
/// [`Frontier::push`] reports instead.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the hash of `NodeId { level: l, index: i }`; only complete subtrees.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        MemoryTree::default()
    }

    /// Appends a leaf hash.
    ///
    /// # Panics
    ///
    /// If the tree already holds `u64::MAX` leaves (memory runs out long before).
    pub fn push(&mut self, leaf: Hash) {
        let levels = &mut self.levels;
        self.frontier.push(leaf, |id, hash| {
            let level = usize::from(id.level);
            if levels.len() <= level {
                levels.resize_with(level + 1, Vec::new);
            }
            // Subtrees of a level complete left to right, so `id.index` is the next slot.
            levels[level].push(*hash);
        });
    }

    /// The number of leaves.
    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    /// The root of the whole tree (the empty root when empty).
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// The frontier of the whole tree.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }

    /// The hash of complete subtree `id`, or `None` if the tree has no such subtree (yet).
    pub fn get(&self, id: NodeId) -> Option<Hash> {
        let index = usize::try_from(id.index).ok()?;
        self.levels.get(usize::from(id.level))?.get(index).copied()
    }
}

impl NodeSource for MemoryTree {
    type Error = Infallible;

    /// # Panics
    ///
    /// If `id` is not a complete subtree of this tree. The proof functions never ask for one:
    /// they check sizes against [`NodeSource::leaf_count`] first. Use [`MemoryTree::get`] for
    /// a lookup that may miss.
    fn node(&self, id: NodeId) -> Result<Hash, Infallible> {
        match self.get(id) {
            Some(hash) => Ok(hash),
            None => panic!(
                "MemoryTree::node: {id:?} is not a complete subtree of a tree of {} leaves",
                self.size()
            ),
        }
    }

    fn leaf_count(&self) -> Option<TreeSize> {
        Some(self.size())
    }
}
