//! RFC 6962 Merkle tree hashing, proof generation and proof verification for Vellum.
//!
//! # What this crate owns
//!
//! - The hashes (RFC 6962 §2.1, kept by RFC 9162 §2.1.1): leaf = SHA-256(0x00 ‖ bytes),
//!   interior node = SHA-256(0x01 ‖ left ‖ right), empty tree = SHA-256 of nothing. For
//!   `n > 1` leaves the tree splits at `k`, the largest power of two smaller than `n`; the
//!   left subtree holds the first `k` leaves. See [`leaf_hash`], [`node_hash`],
//!   [`empty_root`], [`root_of_leaves`].
//! - Appending: a [`Frontier`] holds one hash per set bit of the tree size, computes the root,
//!   and reports every complete subtree ([`NodeId`]) an appended leaf completes.
//! - Proofs: [`inclusion_proof`] and [`consistency_proof`] (RFC 9162 §2.1.3.1, §2.1.4.1) read
//!   complete subtrees from a [`NodeSource`] and fold incomplete right-edge nodes from them,
//!   in O(log n) reads. [`verify_inclusion`] and [`verify_consistency`] (§2.1.3.2, §2.1.4.2)
//!   reject every malformed proof (wrong length, index out of range, sizes out of order) with
//!   a [`VerifyError`], for any `u64` input, without panicking.
//! - [`MemoryTree`], an in-memory [`NodeSource`] for tests and small tools.
//!
//! # What it deliberately does not do
//!
//! No I/O and no storage: the store persists the nodes [`Frontier::push`] reports and serves
//! them back through [`NodeSource`]. No signing and no checkpoint format: that is the note
//! crate's job. No encoding: hashes are bytes here; base64 and JSON belong to the callers.
//!
//! # Example
//!
//! ```
//! use vellum_merkle::{
//!     LeafIndex, MemoryTree, TreeSize, inclusion_proof, leaf_hash, verify_inclusion,
//! };
//!
//! let mut tree = MemoryTree::new();
//! for event in [&b"a"[..], b"b", b"c"] {
//!     tree.push(leaf_hash(event));
//! }
//! let proof = inclusion_proof(&tree, LeafIndex(1), TreeSize(3)).unwrap();
//! assert!(verify_inclusion(&leaf_hash(b"b"), LeafIndex(1), TreeSize(3), &proof, &tree.root()).is_ok());
//! ```

mod error;
mod frontier;
mod hash;
mod memory;
mod node;
mod proof;
mod size;
mod verify;

pub use error::{FrontierError, HashLenError, HexError, ProofError, VerifyError};
pub use frontier::Frontier;
pub use hash::{Hash, empty_root, leaf_hash, node_hash, root_of_leaves};
pub use memory::MemoryTree;
pub use node::{NodeId, NodeSource};
pub use proof::{consistency_proof, inclusion_proof, root};
pub use size::{LeafIndex, TreeSize};
pub use verify::{verify_consistency, verify_inclusion};
