//! Proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2).
//!
//! Input here comes from someone else, so nothing is assumed: sizes and indices are checked
//! first, then the proof length is checked against the exact length the sizes require (a
//! proof with a hash missing or a hash too many is rejected before any hashing), then the RFC
//! algorithm runs. Works for every `u64` index and size without overflow or panic.

use crate::error::VerifyError;
use crate::hash::{Hash, node_hash};
use crate::proof::{consistency_proof_len, inclusion_proof_len};
use crate::size::{LeafIndex, TreeSize};

/// Checks that `proof` shows the leaf with hash `leaf` at `index` in the tree of `size`
/// leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: LeafIndex,
    size: TreeSize,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index.0 >= size.0 {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index.0, size.0);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 §2.1.3.2, with the RFC's names.
    let mut fn_ = index.0;
    let mut sn = size.0 - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(wrong_length(expected));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length(expected));
    }
    if r != *root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` shows the tree of `size1` leaves with root `root1` is a prefix of the
/// tree of `size2` leaves with root `root2`.
///
/// Equal sizes need an empty proof and equal roots. A proof from the empty tree is not
/// defined (RFC 9162 §2.1.4.1) and is rejected with [`VerifyError::EmptyOldTree`]; a caller
/// that holds no earlier tree has nothing to check.
pub fn verify_consistency(
    size1: TreeSize,
    size2: TreeSize,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), VerifyError> {
    if size1 > size2 {
        return Err(VerifyError::SizeOrder { size1, size2 });
    }
    if size1 == size2 {
        if !proof.is_empty() {
            return Err(VerifyError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if root1 != root2 {
            return Err(VerifyError::RootsDiffer { size: size1 });
        }
        return Ok(());
    }
    if size1.0 == 0 {
        return Err(VerifyError::EmptyOldTree);
    }
    let expected = consistency_proof_len(size1.0, size2.0);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }

    // RFC 9162 §2.1.4.2, with the RFC's names. Step 2 prepends first_hash when size1 is a
    // power of two; here the path is that optional hash followed by the proof, unallocated.
    let (first, rest) = if size1.0.is_power_of_two() {
        (root1, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            // Unreachable: a proof for 0 < size1 < size2 has at least one hash.
            None => return Err(wrong_length(expected)),
        }
    };
    let mut fn_ = size1.0 - 1;
    let mut sn = size2.0 - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if sn == 0 {
            return Err(wrong_length(expected));
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(wrong_length(expected));
    }
    if fr != *root1 {
        return Err(VerifyError::OldRootMismatch);
    }
    if sr != *root2 {
        return Err(VerifyError::NewRootMismatch);
    }
    Ok(())
}

/// The RFC algorithm ran out of (or had left over) proof hashes although the length matched
/// the walk; kept as a rejection rather than an assertion so no input can panic.
fn wrong_length(expected: usize) -> VerifyError {
    VerifyError::WrongProofLength {
        expected,
        got: expected,
    }
}
