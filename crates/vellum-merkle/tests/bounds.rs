//! Rejections and extremes: every malformed request or proof is an error, never a panic,
//! including at `u64::MAX`; proof generation stays inside the requested tree.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::convert::Infallible;

use vellum_merkle::{
    Frontier, FrontierError, Hash, LeafIndex, MemoryTree, NodeId, NodeSource, ProofError, TreeSize,
    VerifyError, consistency_proof, empty_root, inclusion_proof, leaf_hash, node_hash, root,
    verify_consistency, verify_inclusion,
};

/// A tree of `size` identical leaves, of any size up to `u64::MAX`: every complete subtree of
/// a level has the same hash, so 64 hashes describe it. Fails the test if asked for a node
/// that is not a complete subtree inside the tree.
struct Uniform {
    size: u64,
    levels: [Hash; 64],
    reads: Cell<usize>,
}

impl Uniform {
    fn new(size: u64) -> Self {
        let mut levels = [leaf_hash(b"same"); 64];
        for l in 1..64 {
            levels[l] = node_hash(&levels[l - 1], &levels[l - 1]);
        }
        Uniform {
            size,
            levels,
            reads: Cell::new(0),
        }
    }
}

impl NodeSource for Uniform {
    type Error = Infallible;

    fn node(&self, id: NodeId) -> Result<Hash, Infallible> {
        let end = (u128::from(id.index) + 1) << id.level;
        assert!(
            end <= u128::from(self.size),
            "asked for {id:?}, outside a tree of {}",
            self.size
        );
        self.reads.set(self.reads.get() + 1);
        Ok(self.levels[usize::from(id.level)])
    }
}

fn garbage(n: usize) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
}

#[test]
fn proofs_at_u64_max_generate_and_verify() {
    let max = u64::MAX;
    let src = Uniform::new(max);
    let leaf = src.levels[0];
    for size in [max, max - 1, 1 << 63, (1 << 63) + 1, 3] {
        let root_hash = root(&src, TreeSize(size)).unwrap();
        for index in [0, 1, size / 2, size - 2, size - 1] {
            src.reads.set(0);
            let (i, s) = (LeafIndex(index), TreeSize(size));
            let proof = inclusion_proof(&src, i, s).unwrap();
            assert!(src.reads.get() <= 128, "{} reads", src.reads.get());
            assert_eq!(verify_inclusion(&leaf, i, s, &proof, &root_hash), Ok(()));
        }
        for size1 in [1, 2, size / 2, size - 1, 1 << 62] {
            if size1 > size {
                continue;
            }
            let (s1, s2) = (TreeSize(size1), TreeSize(size));
            let root1 = root(&src, s1).unwrap();
            src.reads.set(0);
            let proof = consistency_proof(&src, s1, s2).unwrap();
            assert!(src.reads.get() <= 128, "{} reads", src.reads.get());
            assert_eq!(
                verify_consistency(s1, s2, &proof, &root1, &root_hash),
                Ok(())
            );
        }
    }
}

#[test]
fn inclusion_rejects_malformed_claims_at_the_edges() {
    let h = leaf_hash(b"x");
    let max = u64::MAX;
    let cases: [(u64, u64, usize); 8] = [
        (0, 0, 0),
        (max, max, 0),
        (max, max, 64),
        (max, 0, 0),
        (5, 5, 3),
        (0, 1, 1),
        (max - 1, max, 62),
        (0, max, 65),
    ];
    for (index, size, proof_len) in cases {
        let got = verify_inclusion(
            &h,
            LeafIndex(index),
            TreeSize(size),
            &garbage(proof_len),
            &h,
        );
        assert!(got.is_err(), "index {index} size {size} proof {proof_len}");
    }
    assert_eq!(
        verify_inclusion(&h, LeafIndex(max), TreeSize(max), &[], &h),
        Err(VerifyError::IndexOutOfRange {
            index: LeafIndex(max),
            size: TreeSize(max)
        })
    );
    // The right length but garbage content: a root mismatch, not a panic.
    assert_eq!(
        verify_inclusion(&h, LeafIndex(max - 1), TreeSize(max), &garbage(63), &h),
        Err(VerifyError::RootMismatch)
    );
    assert_eq!(
        verify_inclusion(&h, LeafIndex(0), TreeSize(max), &garbage(64), &h),
        Err(VerifyError::RootMismatch)
    );
    assert_eq!(
        verify_inclusion(&h, LeafIndex(0), TreeSize(8), &garbage(4), &h),
        Err(VerifyError::WrongProofLength {
            expected: 3,
            got: 4
        })
    );
    // A single-leaf tree: the leaf is the root and the proof is empty.
    assert_eq!(
        verify_inclusion(&h, LeafIndex(0), TreeSize(1), &[], &h),
        Ok(())
    );
}

#[test]
fn consistency_rejects_malformed_claims_at_the_edges() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    let max = u64::MAX;
    let size = |n| TreeSize(n);
    assert_eq!(
        verify_consistency(size(max), size(max - 1), &[], &a, &b),
        Err(VerifyError::SizeOrder {
            size1: size(max),
            size2: size(max - 1)
        })
    );
    assert_eq!(
        verify_consistency(size(0), size(5), &garbage(3), &empty_root(), &b),
        Err(VerifyError::EmptyOldTree)
    );
    assert_eq!(
        verify_consistency(size(0), size(5), &[], &empty_root(), &b),
        Err(VerifyError::EmptyOldTree)
    );
    assert_eq!(
        verify_consistency(size(max), size(max), &[], &a, &a),
        Ok(())
    );
    assert_eq!(verify_consistency(size(0), size(0), &[], &a, &a), Ok(()));
    assert_eq!(
        verify_consistency(size(max), size(max), &[], &a, &b),
        Err(VerifyError::RootsDiffer { size: size(max) })
    );
    assert_eq!(
        verify_consistency(size(7), size(7), &garbage(1), &a, &a),
        Err(VerifyError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        verify_consistency(size(1), size(8), &[], &a, &b),
        Err(VerifyError::WrongProofLength {
            expected: 3,
            got: 0
        })
    );
    for (s1, s2, len) in [
        (max - 1, max, 64),
        (1, max, 64),
        (1 << 63, max, 1),
        ((1 << 63) + 1, max, 65),
    ] {
        for n in [0, len - 1, len + 1] {
            assert!(matches!(
                verify_consistency(size(s1), size(s2), &garbage(n), &a, &b),
                Err(VerifyError::WrongProofLength { .. })
            ));
        }
        let got = verify_consistency(size(s1), size(s2), &garbage(len), &a, &b);
        assert!(
            matches!(
                got,
                Err(VerifyError::OldRootMismatch | VerifyError::NewRootMismatch)
            ),
            "{s1} -> {s2}: {got:?}"
        );
    }
}

#[test]
fn generation_rejects_impossible_requests() {
    let mut tree = MemoryTree::new();
    for i in 0u32..10 {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    assert!(matches!(
        inclusion_proof(&tree, LeafIndex(10), TreeSize(10)),
        Err(ProofError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        inclusion_proof(&tree, LeafIndex(u64::MAX), TreeSize(u64::MAX)),
        Err(ProofError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        inclusion_proof(&tree, LeafIndex(0), TreeSize(0)),
        Err(ProofError::IndexOutOfRange { .. })
    ));
    assert!(matches!(
        inclusion_proof(&tree, LeafIndex(3), TreeSize(11)),
        Err(ProofError::NotAvailable {
            size: TreeSize(11),
            available: TreeSize(10)
        })
    ));
    assert!(matches!(
        consistency_proof(&tree, TreeSize(5), TreeSize(4)),
        Err(ProofError::SizeOrder { .. })
    ));
    assert!(matches!(
        consistency_proof(&tree, TreeSize(0), TreeSize(4)),
        Err(ProofError::EmptyOldTree)
    ));
    assert!(matches!(
        consistency_proof(&tree, TreeSize(4), TreeSize(u64::MAX)),
        Err(ProofError::NotAvailable { .. })
    ));
    assert!(matches!(
        root(&tree, TreeSize(11)),
        Err(ProofError::NotAvailable { .. })
    ));
    assert!(matches!(
        Frontier::from_source(&tree, TreeSize(11)),
        Err(ProofError::NotAvailable { .. })
    ));
    assert_eq!(
        consistency_proof(&tree, TreeSize(4), TreeSize(4)).unwrap(),
        Vec::<Hash>::new()
    );
    assert_eq!(
        consistency_proof(&tree, TreeSize(0), TreeSize(0)).unwrap(),
        Vec::<Hash>::new()
    );
    assert_eq!(root(&tree, TreeSize(0)).unwrap(), empty_root());
}

#[derive(Debug, thiserror::Error)]
#[error("disk on fire")]
struct OnFire;

struct Broken;

impl NodeSource for Broken {
    type Error = OnFire;

    fn node(&self, _: NodeId) -> Result<Hash, OnFire> {
        Err(OnFire)
    }
}

#[test]
fn source_errors_are_passed_through() {
    let err = inclusion_proof(&Broken, LeafIndex(1), TreeSize(2)).unwrap_err();
    assert!(matches!(err, ProofError::Source(OnFire)));
    assert_eq!(
        std::error::Error::source(&err).map(ToString::to_string),
        Some("disk on fire".to_owned())
    );
    assert!(matches!(
        consistency_proof(&Broken, TreeSize(1), TreeSize(2)),
        Err(ProofError::Source(OnFire))
    ));
    assert!(matches!(
        root(&Broken, TreeSize(3)),
        Err(ProofError::Source(OnFire))
    ));
    assert!(matches!(
        Frontier::from_source(&Broken, TreeSize(3)),
        Err(ProofError::Source(OnFire))
    ));
    // Nothing to read, nothing to fail.
    assert_eq!(root(&Broken, TreeSize(0)).unwrap(), empty_root());
    assert_eq!(
        inclusion_proof(&Broken, LeafIndex(0), TreeSize(2))
            .unwrap_err()
            .to_string(),
        "reading a tree node from the node source failed"
    );
}

#[test]
fn frontier_restarts_from_its_parts() {
    let mut tree = MemoryTree::new();
    for i in 0u32..37 {
        tree.push(leaf_hash(&i.to_le_bytes()));
    }
    let saved = tree.frontier().clone();
    let mut restored = Frontier::from_parts(saved.size(), saved.hashes().to_vec()).unwrap();
    assert_eq!(restored, saved);
    for i in 37u32..100 {
        let leaf = leaf_hash(&i.to_le_bytes());
        tree.push(leaf);
        restored.push(leaf, |_, _| {});
        assert_eq!(restored.root(), tree.root());
    }
}

#[test]
fn frontier_rejects_bad_parts_and_overflow() {
    assert_eq!(
        Frontier::from_parts(TreeSize(5), vec![Hash::default()]),
        Err(FrontierError::WrongHashCount {
            size: TreeSize(5),
            expected: 2,
            got: 1
        })
    );
    assert_eq!(
        Frontier::from_parts(TreeSize(0), vec![]).unwrap(),
        Frontier::new()
    );
    assert_eq!(Frontier::new().root(), empty_root());

    let mut full = Frontier::from_parts(TreeSize(u64::MAX), vec![Hash::default(); 64]).unwrap();
    let before = full.clone();
    let mut calls = 0;
    assert_eq!(
        full.try_push(Hash::default(), |_, _| calls += 1),
        Err(FrontierError::Full)
    );
    assert_eq!((full, calls), (before, 0));

    // One short of full: the last leaf completes nothing above itself.
    let mut almost =
        Frontier::from_parts(TreeSize(u64::MAX - 1), vec![Hash::default(); 63]).unwrap();
    let mut ids = Vec::new();
    almost.push(Hash::default(), |id, _| ids.push(id));
    assert_eq!(ids, vec![NodeId::leaf(u64::MAX - 1)]);
    assert_eq!(almost.size(), TreeSize(u64::MAX));
    assert_eq!(almost.hashes().len(), 64);
}

#[test]
fn memory_tree_lookups_that_miss() {
    let mut tree = MemoryTree::new();
    tree.push(leaf_hash(b"a"));
    tree.push(leaf_hash(b"b"));
    tree.push(leaf_hash(b"c"));
    assert!(tree.get(NodeId { level: 1, index: 0 }).is_some());
    assert_eq!(tree.get(NodeId { level: 1, index: 1 }), None, "incomplete");
    assert_eq!(
        tree.get(NodeId {
            level: 63,
            index: 0
        }),
        None
    );
    assert_eq!(
        tree.get(NodeId {
            level: 0,
            index: u64::MAX
        }),
        None
    );
    assert_eq!(tree.leaf_count(), Some(TreeSize(3)));
}
