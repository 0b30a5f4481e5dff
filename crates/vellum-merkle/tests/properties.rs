//! Property tests against a naive model: the RFC 6962 definitions (MTH, PATH, SUBPROOF)
//! written out recursively over slices, with their own SHA-256 calls, exactly as the RFC
//! states them. The library must agree with the model everywhere, and its verifier must
//! reject every tampered proof.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::convert::Infallible;

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use vellum_merkle::{
    Frontier, Hash, LeafIndex, MemoryTree, NodeId, NodeSource, TreeSize, consistency_proof,
    inclusion_proof, leaf_hash, root, root_of_leaves, verify_consistency, verify_inclusion,
};

// ---- The model -------------------------------------------------------------------------

fn model_leaf(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

fn model_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Largest power of two strictly below `n`, by counting up.
fn model_split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) over raw leaf data.
fn model_mth(d: &[Vec<u8>]) -> [u8; 32] {
    match d.len() {
        0 => Sha256::digest([]).into(),
        1 => model_leaf(&d[0]),
        n => {
            let k = model_split(n);
            model_node(&model_mth(&d[..k]), &model_mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]).
fn model_path(m: usize, d: &[Vec<u8>]) -> Vec<[u8; 32]> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = model_split(n);
    let (mut path, sibling) = if m < k {
        (model_path(m, &d[..k]), model_mth(&d[k..]))
    } else {
        (model_path(m - k, &d[k..]), model_mth(&d[..k]))
    };
    path.push(sibling);
    path
}

/// SUBPROOF(m, D[n], b).
fn model_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<[u8; 32]> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![model_mth(d)] };
    }
    let k = model_split(n);
    let (mut proof, sibling) = if m <= k {
        (model_subproof(m, &d[..k], b), model_mth(&d[k..]))
    } else {
        (model_subproof(m - k, &d[k..], false), model_mth(&d[..k]))
    };
    proof.push(sibling);
    proof
}

fn hashes(raw: Vec<[u8; 32]>) -> Vec<Hash> {
    raw.into_iter().map(Hash).collect()
}

// ---- Fixtures --------------------------------------------------------------------------

/// Distinct leaf data for a tree of `n` leaves; `seed` varies the tree between cases.
fn leaf_data(seed: u64, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("{seed}/{i}").into_bytes()).collect()
}

fn memory_tree(data: &[Vec<u8>]) -> MemoryTree {
    let mut tree = MemoryTree::new();
    for d in data {
        tree.push(leaf_hash(d));
    }
    tree
}

/// Counts the reads of a wrapped source, and fails the test on a read of anything but a
/// complete subtree inside the tree of `size` leaves that a proof was asked for.
struct Counting<'a> {
    inner: &'a MemoryTree,
    size: usize,
    reads: Cell<usize>,
}

impl NodeSource for Counting<'_> {
    type Error = Infallible;

    fn node(&self, id: NodeId) -> Result<Hash, Infallible> {
        self.reads.set(self.reads.get() + 1);
        let end = (id.index as usize + 1) << id.level;
        assert!(
            end <= self.size,
            "read {id:?} for a proof in a tree of {}",
            self.size
        );
        self.inner.node(id)
    }

    fn leaf_count(&self) -> Option<TreeSize> {
        self.inner.leaf_count()
    }
}

/// Bits needed to write `n`: a tree of n leaves has height at most this.
fn bit_len(n: usize) -> usize {
    (usize::BITS - n.leading_zeros()) as usize
}

fn flip(proof: &[Hash], at: usize, bit: usize) -> Vec<Hash> {
    let mut p = proof.to_vec();
    p[at].0[bit / 8] ^= 1 << (bit % 8);
    p
}

/// One tree plus random positions in it. Raw numbers are reduced in the tests, so every
/// combination is valid for any leaf count.
#[derive(Debug, Clone)]
struct Case {
    seed: u64,
    n: usize,
    picks: [usize; 6],
}

fn cases() -> impl Strategy<Value = Case> {
    (any::<u64>(), 0usize..300, any::<[usize; 6]>()).prop_map(|(seed, n, picks)| Case {
        seed,
        n,
        picks,
    })
}

// ---- Properties ------------------------------------------------------------------------

proptest! {
    // Each case checks every size of its tree, quadratic hashing in a debug build: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn roots_agree_at_every_size(case in cases()) {
        let data = leaf_data(case.seed, case.n);
        let leaves: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let tree = memory_tree(&data);
        // The model is quadratic over all sizes, so it checks a few sizes and the full tree;
        // the library's own root functions must agree with each other at every size.
        let modelled: Vec<usize> = case.picks[..3].iter().map(|p| p % (case.n + 1)).collect();
        let mut frontier = Frontier::new();
        for size in 0..=case.n {
            let want = root_of_leaves(&leaves[..size]);
            if size == case.n || modelled.contains(&size) {
                prop_assert_eq!(want, Hash(model_mth(&data[..size])), "model, size {}", size);
            }
            prop_assert_eq!(frontier.root(), want, "Frontier::root, size {}", size);
            prop_assert_eq!(root(&tree, TreeSize(size as u64)).unwrap(), want, "root(), size {}", size);
            let from_source = Frontier::from_source(&tree, TreeSize(size as u64)).unwrap();
            prop_assert_eq!(&from_source, &frontier, "from_source, size {}", size);
            prop_assert_eq!(from_source.hashes().len(), size.count_ones() as usize);
            if size < case.n {
                frontier.push(leaves[size], |_, _| {});
            }
        }
        prop_assert_eq!(tree.root(), Hash(model_mth(&data)));
        prop_assert_eq!(tree.size(), TreeSize(case.n as u64));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn push_reports_exactly_the_complete_subtrees(case in cases()) {
        let data = leaf_data(case.seed, case.n);
        let mut frontier = Frontier::new();
        let mut reported: BTreeMap<(u8, u64), Hash> = BTreeMap::new();
        for (i, d) in data.iter().enumerate() {
            let mut this_push = Vec::new();
            frontier.push(leaf_hash(d), |id, h| this_push.push((id, *h)));
            // The leaf first, then one subtree per level, bottom up.
            for (level, (id, _)) in this_push.iter().enumerate() {
                prop_assert_eq!(usize::from(id.level), level);
            }
            prop_assert_eq!(this_push[0].0, NodeId::leaf(i as u64));
            for (id, h) in this_push {
                prop_assert!(reported.insert((id.level, id.index), h).is_none(), "{:?} twice", id);
            }
        }
        // Every complete subtree of the final tree, each with its model hash, and nothing else.
        let mut want = BTreeMap::new();
        for level in 0..u8::try_from(bit_len(case.n)).unwrap() {
            let width = 1usize << level;
            for index in 0..case.n / width {
                let range = &data[index * width..(index + 1) * width];
                want.insert((level, index as u64), Hash(model_mth(range)));
            }
        }
        prop_assert_eq!(reported, want);
    }

    /// Taking some or all completed subtrees from elsewhere (`try_push_known`, as
    /// verification does with subtrees hashed on other cores) reports the same nodes and
    /// roots as hashing them, also continuing a frontier rebuilt part way.
    #[test]
    fn push_known_equals_push(case in cases(), cut in 0u8..8) {
        let data = leaf_data(case.seed, case.n);
        let tree = memory_tree(&data);
        let split = case.picks[0] % (case.n + 1);
        let known_all = |id: NodeId| tree.node(id).ok();
        let known_none = |_: NodeId| None;
        let known_low = |id: NodeId| if id.level <= cut { tree.node(id).ok() } else { None };
        let knowns: [&dyn Fn(NodeId) -> Option<Hash>; 3] = [&known_all, &known_none, &known_low];
        for known in knowns {
            let mut frontier = Frontier::new();
            let mut ours = Frontier::new();
            for (i, d) in data.iter().enumerate() {
                if i == split {
                    ours = Frontier::from_source(&tree, TreeSize(i as u64)).unwrap();
                }
                let (mut a, mut b) = (Vec::new(), Vec::new());
                frontier.push(leaf_hash(d), |id, h| a.push((id, *h)));
                ours.try_push_known(leaf_hash(d), known, |id, h| b.push((id, *h))).unwrap();
                prop_assert_eq!(&a, &b);
                prop_assert_eq!(frontier.root(), ours.root());
            }
        }
    }

    #[test]
    fn inclusion_proofs_match_the_model_and_verify(case in cases()) {
        prop_assume!(case.n > 0);
        let data = leaf_data(case.seed, case.n);
        let tree = memory_tree(&data);
        let size = 1 + case.picks[0] % case.n;
        let index = case.picks[1] % size;
        let leaf = leaf_hash(&data[index]);
        let root_hash = Hash(model_mth(&data[..size]));

        let counting = Counting { inner: &tree, size, reads: Cell::new(0) };
        let proof = inclusion_proof(&counting, LeafIndex(index as u64), TreeSize(size as u64)).unwrap();
        prop_assert_eq!(&proof, &hashes(model_path(index, &data[..size])));
        prop_assert!(counting.reads.get() <= 2 * bit_len(size), "{} reads", counting.reads.get());
        prop_assert_eq!(
            verify_inclusion(&leaf, LeafIndex(index as u64), TreeSize(size as u64), &proof, &root_hash),
            Ok(())
        );
    }

    #[test]
    fn tampered_inclusion_proofs_are_rejected(case in cases()) {
        prop_assume!(case.n > 0);
        let data = leaf_data(case.seed, case.n);
        let tree = memory_tree(&data);
        let size = 1 + case.picks[0] % case.n;
        let index = case.picks[1] % size;
        let leaf = leaf_hash(&data[index]);
        let root_hash = Hash(model_mth(&data[..size]));
        let (i, s) = (LeafIndex(index as u64), TreeSize(size as u64));
        let proof = inclusion_proof(&tree, i, s).unwrap();

        if !proof.is_empty() {
            let at = case.picks[2] % proof.len();
            let flipped = flip(&proof, at, case.picks[3] % 256);
            prop_assert!(verify_inclusion(&leaf, i, s, &flipped, &root_hash).is_err(), "bit flip");
            let mut dropped = proof.clone();
            dropped.remove(at);
            prop_assert!(verify_inclusion(&leaf, i, s, &dropped, &root_hash).is_err(), "dropped");
        }
        let mut appended = proof.clone();
        appended.push(leaf_hash(b"extra"));
        prop_assert!(verify_inclusion(&leaf, i, s, &appended, &root_hash).is_err(), "appended");
        let mut prepended = proof.clone();
        prepended.insert(0, leaf_hash(b"extra"));
        prop_assert!(verify_inclusion(&leaf, i, s, &prepended, &root_hash).is_err(), "prepended");

        let bad_leaf = flip(&[leaf], 0, case.picks[3] % 256)[0];
        prop_assert!(verify_inclusion(&bad_leaf, i, s, &proof, &root_hash).is_err(), "leaf flip");
        let bad_root = flip(&[root_hash], 0, case.picks[3] % 256)[0];
        prop_assert!(verify_inclusion(&leaf, i, s, &proof, &bad_root).is_err(), "root flip");

        // Another index in the same tree, in range or not.
        let other = case.picks[4] % (size + 2);
        if other != index {
            prop_assert!(
                verify_inclusion(&leaf, LeafIndex(other as u64), s, &proof, &root_hash).is_err(),
                "index {} accepted for a proof of {}", other, index
            );
        }
        // Another tree size, with that tree's own root: the proof must not carry over.
        let other_size = 1 + case.picks[5] % case.n;
        if other_size != size {
            let other_root = Hash(model_mth(&data[..other_size]));
            prop_assert!(
                verify_inclusion(&leaf, i, TreeSize(other_size as u64), &proof, &other_root).is_err(),
                "size {} accepted for a proof at size {}", other_size, size
            );
        }
    }

    #[test]
    fn consistency_proofs_match_the_model_and_verify(case in cases()) {
        prop_assume!(case.n > 0);
        let data = leaf_data(case.seed, case.n);
        let tree = memory_tree(&data);
        let size2 = 1 + case.picks[0] % case.n;
        let size1 = 1 + case.picks[1] % size2;
        let (s1, s2) = (TreeSize(size1 as u64), TreeSize(size2 as u64));
        let root1 = Hash(model_mth(&data[..size1]));
        let root2 = Hash(model_mth(&data[..size2]));

        let counting = Counting { inner: &tree, size: size2, reads: Cell::new(0) };
        let proof = consistency_proof(&counting, s1, s2).unwrap();
        let want = if size1 == size2 { Vec::new() } else { model_subproof(size1, &data[..size2], true) };
        prop_assert_eq!(&proof, &hashes(want));
        prop_assert!(counting.reads.get() <= 2 * bit_len(size2), "{} reads", counting.reads.get());
        prop_assert_eq!(verify_consistency(s1, s2, &proof, &root1, &root2), Ok(()));
    }

    #[test]
    fn tampered_consistency_proofs_are_rejected(case in cases()) {
        prop_assume!(case.n > 0);
        let data = leaf_data(case.seed, case.n);
        let tree = memory_tree(&data);
        let size2 = 1 + case.picks[0] % case.n;
        let size1 = 1 + case.picks[1] % size2;
        let (s1, s2) = (TreeSize(size1 as u64), TreeSize(size2 as u64));
        let root1 = Hash(model_mth(&data[..size1]));
        let root2 = Hash(model_mth(&data[..size2]));
        let proof = consistency_proof(&tree, s1, s2).unwrap();
        let verify = |p: &[Hash]| verify_consistency(s1, s2, p, &root1, &root2);

        if !proof.is_empty() {
            let at = case.picks[2] % proof.len();
            prop_assert!(verify(&flip(&proof, at, case.picks[3] % 256)).is_err(), "bit flip");
            let mut dropped = proof.clone();
            dropped.remove(at);
            prop_assert!(verify(&dropped).is_err(), "dropped");
        }
        let mut appended = proof.clone();
        appended.push(leaf_hash(b"extra"));
        prop_assert!(verify(&appended).is_err(), "appended");
        let mut prepended = proof.clone();
        prepended.insert(0, leaf_hash(b"extra"));
        prop_assert!(verify(&prepended).is_err(), "prepended");

        let bit = case.picks[3] % 256;
        let bad1 = flip(&[root1], 0, bit)[0];
        let bad2 = flip(&[root2], 0, bit)[0];
        prop_assert!(verify_consistency(s1, s2, &proof, &bad1, &root2).is_err(), "root1 flip");
        prop_assert!(verify_consistency(s1, s2, &proof, &root1, &bad2).is_err(), "root2 flip");
        if size1 != size2 {
            prop_assert!(verify_consistency(s2, s1, &proof, &root2, &root1).is_err(), "swapped");
        }

        // Other sizes, each with its own tree's root: the proof must not carry over.
        let other1 = 1 + case.picks[4] % size2;
        if other1 != size1 {
            let r = Hash(model_mth(&data[..other1]));
            prop_assert!(
                verify_consistency(TreeSize(other1 as u64), s2, &proof, &r, &root2).is_err(),
                "size1 {} accepted for a proof from {}", other1, size1
            );
        }
        let other2 = size1 + case.picks[5] % (case.n - size1 + 1);
        if other2 != size2 {
            let r = Hash(model_mth(&data[..other2]));
            prop_assert!(
                verify_consistency(s1, TreeSize(other2 as u64), &proof, &root1, &r).is_err(),
                "size2 {} accepted for a proof to {}", other2, size2
            );
        }
    }
}
