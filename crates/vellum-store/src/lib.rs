//! Vellum's event store: a durable, verifiable, append-only log in a data directory.
//!
//! This crate is the only code that touches the data directory. It owns the segment files,
//! the persisted Merkle tree, the checkpoint log, the signing key, crash recovery,
//! retention and offline verification. It does not parse HTTP, talk to the network or
//! decide policy about who may append.
//!
//! # On-disk layout
//!
//! ```text
//! vellum.json          format version, origin, verifier key (written once)
//! signing.key          Ed25519 seed, mode 0600 (written once)
//! LOCK                 held (flock) by the one writer; holds its pid
//! segments/<first>.seg framed records, one per event (see `segment`)
//! segments/<first>.idx 24 bytes per record: offset and id fingerprint
//! tree/level-LL.hashes complete-subtree hashes of level LL (see `tree`)
//! checkpoints.log      every signed checkpoint, framed
//! prunes.log           every retention pruning, framed JSON
//! prune-pending.json   a pruning announced and not yet recorded (see `retention`)
//! keys.json            API keys: ids, roles, hashes of secrets (never the secrets)
//! recovered/           copies of the bytes recovery cut after the last intact record
//! ```
//!
//! # Invariants
//!
//! - An append is answered only after its records are fdatasync'ed.
//! - Record `i` of the segment starting at `F` holds index `F + i`, and its stored bytes
//!   begin `{"index":F+i,`; the Merkle leaf is exactly those bytes.
//! - The tree files are synced before a checkpoint of their size is signed, so they are
//!   intact up to the latest checkpoint after any crash; past it they are rebuilt.
//! - Checkpoints only grow: each is signed over the writer's one frontier.
//! - Nothing but retention deletes a segment, and retention records itself first.

mod active;
mod checkpoints;
mod error;
mod ids;
mod keys;
mod layout;
mod meta;
mod options;
mod reader;
mod receipt;
mod record;
mod recovery;
mod retention;
mod segment;
mod stats;
mod tree;
mod verify;
mod writer;

pub use checkpoints::StoredCheckpoint;
pub use error::{Result, StoreError};
pub use keys::{ApiKey, ApiKeys, Lookup, NewKey, Revocation, Role, lookup};
pub use layout::Layout;
pub use meta::default_origin;
pub use options::{Options, Retention};
pub use reader::{InclusionProof, LogReader};
pub use receipt::{Receipt, ReceiptError};
pub use recovery::Recovered;
pub use retention::{PruneRecord, PruneReport};
pub use stats::{Histogram, StoreStats};
pub use verify::{Problem, Report, VerifyOptions, verify};
pub use writer::{AppendChain, Appended, Issued, Pending, Prepared, Store};
