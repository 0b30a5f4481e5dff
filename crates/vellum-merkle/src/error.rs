//! Error types, one per kind of operation.
//!
//! [`ProofError`] is the prover's problem: the caller asked for something that does not exist,
//! or the node source failed. [`VerifyError`] is the verifier's verdict on input from someone
//! else: every variant means "do not trust this proof".

use crate::size::{LeafIndex, TreeSize};

/// Bytes that are not a 32-byte hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a hash is 32 bytes, got {got}")]
pub struct HashLenError {
    /// The length that was offered.
    pub got: usize,
}

/// Text that is not 64 hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// Not 64 characters long.
    #[error("a hex hash is 64 digits, got {got} bytes")]
    Length {
        /// The length of the input, in bytes.
        got: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("not a hex digit in hash")]
    Digit,
}

/// Why a proof or root could not be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError<E> {
    /// Inclusion proof for a leaf the tree does not contain.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: LeafIndex,
        /// The tree size the proof was asked for.
        size: TreeSize,
    },
    /// Consistency proof from a larger tree to a smaller one.
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder {
        /// The older size.
        size1: TreeSize,
        /// The newer size.
        size2: TreeSize,
    },
    /// Consistency proof from the empty tree, which RFC 9162 §2.1.4.1 does not define (the
    /// empty tree is a prefix of every tree; there is nothing to prove).
    #[error("a consistency proof from the empty tree is not defined")]
    EmptyOldTree,
    /// The source says it holds fewer leaves than the tree size asked for.
    #[error("tree size {size} is not available: the node source holds {available} leaves")]
    NotAvailable {
        /// The tree size the operation needs.
        size: TreeSize,
        /// The number of leaves the source holds.
        available: TreeSize,
    },
    /// The node source failed to produce a node.
    #[error("reading a tree node from the node source failed")]
    Source(#[source] E),
}

/// Why a proof was rejected. Every variant means the proof does not establish the claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The claimed leaf index is not inside the claimed tree.
    #[error("leaf index {index} is not in a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: LeafIndex,
        /// The claimed tree size.
        size: TreeSize,
    },
    /// The "old" tree is larger than the "new" one.
    #[error("tree size {size1} is larger than tree size {size2}")]
    SizeOrder {
        /// The claimed older size.
        size1: TreeSize,
        /// The claimed newer size.
        size2: TreeSize,
    },
    /// A consistency proof from the empty tree, which RFC 9162 §2.1.4.1 does not define.
    #[error("a consistency proof from the empty tree is not defined")]
    EmptyOldTree,
    /// The proof has the wrong number of hashes for the claimed index and sizes.
    #[error("proof has {got} hashes, expected {expected}")]
    WrongProofLength {
        /// The number the claimed index and sizes require.
        expected: usize,
        /// The number the proof has.
        got: usize,
    },
    /// The inclusion proof does not lead from the leaf to the claimed root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
    /// The consistency proof does not reproduce the old root.
    #[error("consistency proof does not reproduce the old root")]
    OldRootMismatch,
    /// The consistency proof does not reproduce the new root.
    #[error("consistency proof does not reproduce the new root")]
    NewRootMismatch,
    /// Two different roots for the same tree size: the trees are not the same tree.
    #[error("two different roots for tree size {size}")]
    RootsDiffer {
        /// The size both roots claim.
        size: TreeSize,
    },
}

/// A frontier that does not describe a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrontierError {
    /// The hash count is not the number of set bits of the size.
    #[error("a frontier of size {size} has {expected} hashes, got {got}")]
    WrongHashCount {
        /// The claimed size.
        size: TreeSize,
        /// popcount(size).
        expected: usize,
        /// The number of hashes offered.
        got: usize,
    },
    /// The tree already holds `u64::MAX` leaves, the most a [`TreeSize`] can count.
    #[error("the tree is full: it cannot hold more than u64::MAX leaves")]
    Full,
}
