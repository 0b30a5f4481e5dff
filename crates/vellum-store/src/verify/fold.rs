//! The serial half of verification: the leaves folded into the tree in order.
//!
//! [`Fold`] is [`vellum_merkle::Frontier`] with one difference: a subtree that a chunk
//! already hashed on every core ([`super::hashed`]) is taken from there instead of being
//! hashed again, so the fold itself hashes only the few subtrees that span two chunks.

use vellum_merkle::{Frontier, FrontierError, Hash, NodeId, empty_root, node_hash};

/// The compact range `[0, size)`: one hash per set bit of `size`, largest subtree first.
#[derive(Debug, Clone)]
pub(super) struct Fold {
    size: u64,
    hashes: Vec<Hash>,
}

impl Fold {
    /// Continues from `frontier` (the tree of what retention pruned, or the empty tree).
    pub(super) fn new(frontier: &Frontier) -> Self {
        let mut hashes = Vec::with_capacity(64);
        hashes.extend_from_slice(frontier.hashes());
        Self {
            size: frontier.size().0,
            hashes,
        }
    }

    /// [`Frontier::try_push`]: appends one leaf and calls `on_node` for it and then for every
    /// complete subtree it completes, bottom up. Each of those is `known(id)` if that has it
    /// (it must be the same hash), otherwise hashed here.
    pub(super) fn push(
        &mut self,
        leaf: Hash,
        known: impl Fn(NodeId) -> Option<Hash>,
        mut on_node: impl FnMut(NodeId, &Hash),
    ) -> Result<(), FrontierError> {
        let index = self.size;
        let size = index.checked_add(1).ok_or(FrontierError::Full)?;
        on_node(NodeId::leaf(index), &leaf);
        let mut acc = leaf;
        for level in 1..=index.trailing_ones() {
            // popcount(size) hashes are held: one per trailing one at least.
            let Some(left) = self.hashes.pop() else {
                break;
            };
            let id = NodeId {
                level: level as u8,
                index: index >> level,
            };
            acc = known(id).unwrap_or_else(|| node_hash(&left, &acc));
            on_node(id, &acc);
        }
        self.hashes.push(acc);
        self.size = size;
        Ok(())
    }

    /// The root of the tree of `size` leaves (the empty root for 0).
    pub(super) fn root(&self) -> Hash {
        let mut rev = self.hashes.iter().rev();
        let Some(&last) = rev.next() else {
            return empty_root();
        };
        rev.fold(last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use vellum_merkle::{MemoryTree, leaf_hash};

    use super::*;

    /// Folding with every subtree known, some, or none, gives the frontier's nodes and roots.
    #[test]
    fn folds_like_the_frontier() {
        let leaves: Vec<Hash> = (0..200u32).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut tree = MemoryTree::new();
        for &leaf in &leaves {
            tree.push(leaf);
        }
        let known_all = |id: NodeId| tree.get(id);
        let known_none = |_: NodeId| None;
        let known_low = |id: NodeId| if id.level <= 2 { tree.get(id) } else { None };
        let knowns: [&dyn Fn(NodeId) -> Option<Hash>; 3] = [&known_all, &known_none, &known_low];
        for known in knowns {
            let mut fold = Fold::new(&Frontier::new());
            let mut frontier = Frontier::new();
            assert_eq!(fold.root(), frontier.root());
            for &leaf in &leaves {
                let (mut ours, mut theirs) = (Vec::new(), Vec::new());
                fold.push(leaf, known, |id, h| ours.push((id, *h))).unwrap();
                frontier.push(leaf, |id, h| theirs.push((id, *h)));
                assert_eq!(ours, theirs);
                assert_eq!(fold.root(), frontier.root());
            }
        }
        // From a frontier part way (a pruned log).
        let mut part = Frontier::new();
        for &leaf in &leaves[..77] {
            part.push(leaf, |_, _| {});
        }
        let mut fold = Fold::new(&part);
        for &leaf in &leaves[77..] {
            fold.push(leaf, |_| None, |_, _| {}).unwrap();
        }
        assert_eq!(fold.root(), tree.root());
    }
}
