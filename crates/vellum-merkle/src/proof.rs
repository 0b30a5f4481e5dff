//! Proof generation (RFC 9162 §2.1.3.1 and §2.1.4.1) over a [`NodeSource`].
//!
//! The RFC defines proofs recursively over leaf ranges. The walkers below run that recursion
//! as a loop and name the subtrees whose hashes make up the proof; generation reads their
//! hashes from the source and verification uses the same walk to know how long a proof must
//! be. Every subtree named is a node of the RFC 6962 tree: complete ones are one read, and the
//! one that can touch the right edge is folded from at most 64 complete ones, so a proof costs
//! O(log n) reads.

use std::convert::Infallible;

use crate::error::ProofError;
use crate::hash::Hash;
use crate::node::{NodeSource, check_available, range_hash};
use crate::size::{LeafIndex, TreeSize, split_point};

/// The root of the tree of `size` leaves (the empty root for 0). Reads `popcount(size)`
/// nodes.
pub fn root<S: NodeSource>(src: &S, size: TreeSize) -> Result<Hash, ProofError<S::Error>> {
    check_available(src, size)?;
    range_hash(src, 0, size.0)
}

/// The inclusion proof (audit path) of leaf `index` in the tree of `size` leaves, leaf-most
/// hash first, as RFC 9162 §2.1.3.1 orders it.
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if index.0 >= size.0 {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    check_available(src, size)?;
    let mut proof = Vec::with_capacity(inclusion_proof_len(index.0, size.0));
    inclusion_path(index.0, size.0, |start, end| {
        proof.push(range_hash(src, start, end)?);
        Ok(())
    })?;
    proof.reverse();
    Ok(proof)
}

/// The consistency proof between the trees of `size1` and `size2` leaves, as RFC 9162
/// §2.1.4.1 orders it.
///
/// Equal sizes give an empty proof. A proof from the empty tree is not defined
/// ([`ProofError::EmptyOldTree`]): the empty tree is a prefix of every tree.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    size1: TreeSize,
    size2: TreeSize,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if size1 > size2 {
        return Err(ProofError::SizeOrder { size1, size2 });
    }
    check_available(src, size2)?;
    if size1 == size2 {
        return Ok(Vec::new());
    }
    if size1.0 == 0 {
        return Err(ProofError::EmptyOldTree);
    }
    let mut proof = Vec::with_capacity(consistency_proof_len(size1.0, size2.0));
    consistency_path(size1.0, size2.0, |start, end| {
        proof.push(range_hash(src, start, end)?);
        Ok(())
    })?;
    proof.reverse();
    Ok(proof)
}

/// Calls `visit(start, end)` for each leaf range `[start, end)` whose hash belongs in the
/// inclusion proof of leaf `index` in a tree of `size` leaves, root-most first (the reverse of
/// proof order). Requires `index < size`.
///
/// PATH(m, D[n]) for n > 1 with split k: if m < k, PATH(m, D[0:k]) : MTH(D[k:n]), else
/// PATH(m - k, D[k:n]) : MTH(D[0:k]). Each step names the sibling and descends.
pub(crate) fn inclusion_path<E>(
    index: u64,
    size: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert!(index < size);
    let (mut start, mut end) = (0, size);
    while end - start > 1 {
        let mid = start + split_point(end - start);
        if index < mid {
            visit(mid, end)?;
            end = mid;
        } else {
            visit(start, mid)?;
            start = mid;
        }
    }
    Ok(())
}

/// Calls `visit(start, end)` for each leaf range whose hash belongs in the consistency proof
/// from `size1` to `size2` leaves, root-most first (the reverse of proof order). Requires
/// `0 < size1 < size2`.
///
/// SUBPROOF(m, D[n], b): if m = n, nothing when b, else MTH(D[n]); otherwise, with split k,
/// if m <= k, SUBPROOF(m, D[0:k], b) : MTH(D[k:n]), else SUBPROOF(m - k, D[k:n], false) :
/// MTH(D[0:k]). Here the subtree is `[start, end)` in absolute leaf positions, so m = n
/// becomes `size1 == end` and m <= k becomes `size1 <= mid`.
pub(crate) fn consistency_path<E>(
    size1: u64,
    size2: u64,
    mut visit: impl FnMut(u64, u64) -> Result<(), E>,
) -> Result<(), E> {
    debug_assert!(0 < size1 && size1 < size2);
    let (mut start, mut end) = (0, size2);
    // The RFC's `b`: whether this subtree's left part up to size1 is the whole old tree, whose
    // root the verifier already has.
    let mut old_root_known = true;
    // `start < size1 < end` holds on entry to every iteration until size1 == end, so the
    // subtree has at least two leaves whenever it is split.
    while size1 != end {
        let mid = start + split_point(end - start);
        if size1 <= mid {
            visit(mid, end)?;
            end = mid;
        } else {
            visit(start, mid)?;
            start = mid;
            old_root_known = false;
        }
    }
    if !old_root_known {
        visit(start, end)?;
    }
    Ok(())
}

/// The number of hashes in an inclusion proof. Requires `index < size`.
pub(crate) fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let mut len = 0;
    let Ok(()) = inclusion_path::<Infallible>(index, size, |_, _| {
        len += 1;
        Ok(())
    });
    len
}

/// The number of hashes in a consistency proof. Requires `0 < size1 < size2`.
pub(crate) fn consistency_proof_len(size1: u64, size2: u64) -> usize {
    let mut len = 0;
    let Ok(()) = consistency_path::<Infallible>(size1, size2, |_, _| {
        len += 1;
        Ok(())
    });
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proof_lengths() {
        assert_eq!(inclusion_proof_len(0, 1), 0);
        assert_eq!(inclusion_proof_len(0, 8), 3);
        assert_eq!(inclusion_proof_len(4, 5), 1);
        assert_eq!(inclusion_proof_len(6, 7), 2);
        assert_eq!(inclusion_proof_len(u64::MAX - 1, u64::MAX), 63);
        assert_eq!(inclusion_proof_len(0, u64::MAX), 64);
        assert_eq!(consistency_proof_len(1, 8), 3);
        assert_eq!(consistency_proof_len(6, 8), 3);
        assert_eq!(consistency_proof_len(4, 8), 1);
        assert_eq!(consistency_proof_len(3, 7), 4);
        assert_eq!(consistency_proof_len(u64::MAX - 1, u64::MAX), 64);
        assert_eq!(consistency_proof_len(1, u64::MAX), 64);
    }
}
