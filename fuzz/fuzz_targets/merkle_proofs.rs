//! Proofs from a real tree (up to 300 distinct leaves), then tampered with.
//!
//! Checks: the root of every prefix agrees between `MemoryTree`, `root` and `root_of_leaves`;
//! a generated inclusion or consistency proof verifies, and its length is exactly what the
//! verifier demands; flipping any bit of any proof hash, of the leaf or of a root makes
//! verification fail; a proof checked against the wrong leaf index fails.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vellum_merkle::{
    Hash, LeafIndex, MemoryTree, TreeSize, consistency_proof, inclusion_proof, leaf_hash, root,
    root_of_leaves, verify_consistency, verify_inclusion,
};

#[derive(Arbitrary, Debug)]
struct Input {
    leaves: u16,
    salt: u64,
    index: u16,
    size: u16,
    size1: u16,
    size2: u16,
    other_index: u16,
    tamper: Tamper,
}

#[derive(Arbitrary, Debug)]
enum Tamper {
    Nothing,
    Proof { which: u8, bit: u8 },
    Leaf { bit: u8 },
    Root { bit: u8 },
    OldRoot { bit: u8 },
}

fn flip(h: &mut Hash, bit: u8) {
    h.0[usize::from(bit / 8)] ^= 1 << (bit % 8);
}

fuzz_target!(|input: Input| {
    let n = 1 + u64::from(input.leaves % 300);
    // Distinct leaves, so no two subtrees share a hash and any index change is detectable.
    let leaves: Vec<Hash> = (0..n)
        .map(|i| leaf_hash(&[input.salt.to_le_bytes(), i.to_le_bytes()].concat()))
        .collect();
    let mut tree = MemoryTree::new();
    for leaf in &leaves {
        tree.push(*leaf);
    }
    assert_eq!(tree.size(), TreeSize(n));
    assert_eq!(tree.root(), root_of_leaves(&leaves));

    // Inclusion.
    let size = 1 + u64::from(input.size) % n;
    let index = u64::from(input.index) % size;
    let size_root = root(&tree, TreeSize(size)).expect("prefix root");
    assert_eq!(size_root, root_of_leaves(&leaves[..size as usize]));
    let mut proof = inclusion_proof(&tree, LeafIndex(index), TreeSize(size)).expect("proof");
    let mut leaf = leaves[index as usize];
    let mut root_hash = size_root;
    assert_eq!(
        verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &root_hash),
        Ok(()),
        "inclusion of {index} in {size}"
    );
    let other = u64::from(input.other_index) % size;
    if other != index {
        assert!(
            verify_inclusion(&leaf, LeafIndex(other), TreeSize(size), &proof, &root_hash).is_err(),
            "proof of {index} in {size} also shows {other}"
        );
    }
    let tampered = match input.tamper {
        Tamper::Nothing | Tamper::OldRoot { .. } => false,
        Tamper::Proof { which, bit } if !proof.is_empty() => {
            let i = usize::from(which) % proof.len();
            flip(&mut proof[i], bit);
            true
        }
        Tamper::Proof { .. } => false,
        Tamper::Leaf { bit } => {
            flip(&mut leaf, bit);
            true
        }
        Tamper::Root { bit } => {
            flip(&mut root_hash, bit);
            true
        }
    };
    if tampered {
        assert!(
            verify_inclusion(&leaf, LeafIndex(index), TreeSize(size), &proof, &root_hash).is_err(),
            "tampered inclusion proof verified"
        );
    }

    // Consistency.
    let size2 = 1 + u64::from(input.size2) % n;
    let size1 = 1 + u64::from(input.size1) % size2;
    let mut proof = consistency_proof(&tree, TreeSize(size1), TreeSize(size2)).expect("proof");
    let mut root1 = root(&tree, TreeSize(size1)).expect("prefix root");
    let mut root2 = root(&tree, TreeSize(size2)).expect("prefix root");
    assert_eq!(
        verify_consistency(TreeSize(size1), TreeSize(size2), &proof, &root1, &root2),
        Ok(()),
        "consistency {size1} -> {size2}"
    );
    let tampered = match input.tamper {
        Tamper::Nothing | Tamper::Leaf { .. } => false,
        Tamper::Proof { which, bit } if !proof.is_empty() => {
            let i = usize::from(which) % proof.len();
            flip(&mut proof[i], bit);
            true
        }
        Tamper::Proof { .. } => false,
        Tamper::Root { bit } => {
            flip(&mut root2, bit);
            true
        }
        Tamper::OldRoot { bit } => {
            flip(&mut root1, bit);
            true
        }
    };
    if tampered {
        assert!(
            verify_consistency(TreeSize(size1), TreeSize(size2), &proof, &root1, &root2).is_err(),
            "tampered consistency proof verified ({size1} -> {size2})"
        );
    }
});
