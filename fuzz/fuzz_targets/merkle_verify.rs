//! `verify_inclusion` and `verify_consistency` with arbitrary proofs, indices and sizes (any
//! `u64`), as a receipt or a `--trusted` checkpoint from someone else supplies them; and
//! `Frontier::from_parts` with an arbitrary size and hashes, as the store reloads it.
//!
//! Checks: no panic or overflow for any input; the only inputs that can verify without a
//! proof are the trivial ones (a one-leaf tree whose root is the leaf, equal trees with equal
//! roots); a frontier rebuilt from parts has one hash per set bit of its size and its root
//! is their right-to-left fold.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vellum_merkle::{
    Frontier, Hash, LeafIndex, TreeSize, VerifyError, node_hash, verify_consistency,
    verify_inclusion,
};

#[derive(Arbitrary, Debug)]
struct Input {
    index: u64,
    size: u64,
    size1: u64,
    size2: u64,
    leaf: [u8; 32],
    root: [u8; 32],
    root1: [u8; 32],
    root2: [u8; 32],
    proof: Vec<[u8; 32]>,
    /// Use `size` and `index` near the top of the `u64` range.
    high: bool,
}

fuzz_target!(|input: Input| {
    let lift = |n: u64| if input.high { u64::MAX - (n % 1024) } else { n };
    let (index, size) = (lift(input.index), lift(input.size));
    let (size1, size2) = (lift(input.size1), lift(input.size2));
    let proof: Vec<Hash> = input.proof.iter().copied().map(Hash).collect();
    let (leaf, root) = (Hash(input.leaf), Hash(input.root));
    let (root1, root2) = (Hash(input.root1), Hash(input.root2));

    let inclusion = verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &root);
    if index >= size {
        assert!(matches!(
            inclusion,
            Err(VerifyError::IndexOutOfRange { .. })
        ));
    }
    if inclusion.is_ok() && proof.is_empty() {
        assert_eq!((index, size), (0, 1));
        assert_eq!(leaf, root);
    }

    let consistency = verify_consistency(TreeSize(size1), TreeSize(size2), &proof, &root1, &root2);
    if size1 > size2 {
        assert!(matches!(consistency, Err(VerifyError::SizeOrder { .. })));
    }
    if size1 == size2 {
        assert_eq!(consistency.is_ok(), proof.is_empty() && root1 == root2);
    }
    if size1 == 0 && size2 > 0 {
        assert!(matches!(consistency, Err(VerifyError::EmptyOldTree)));
    }

    // The store rebuilds its frontier from what it persisted.
    let hashes: Vec<Hash> = proof.iter().copied().take(64).collect();
    if let Ok(mut frontier) = Frontier::from_parts(TreeSize(size), hashes.clone()) {
        assert_eq!(hashes.len(), size.count_ones() as usize);
        let expected = match hashes.split_last() {
            None => vellum_merkle::empty_root(),
            Some((&last, rest)) => rest.iter().rev().fold(last, |r, l| node_hash(l, &r)),
        };
        assert_eq!(frontier.root(), expected);
        let pushed = frontier.try_push(leaf, |_, _| {});
        assert_eq!(pushed.is_ok(), size < u64::MAX);
        if pushed.is_ok() {
            assert_eq!(frontier.size(), TreeSize(size + 1));
            assert_eq!(frontier.hashes().len(), (size + 1).count_ones() as usize);
        }
    } else {
        assert_ne!(hashes.len(), size.count_ones() as usize);
    }
});
