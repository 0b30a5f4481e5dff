//! Receipts: everything needed to prove one event is in the log, checkable offline with only
//! the log's verifier key.
//!
//! `{"index","tree_size","leaf_hash","proof","checkpoint","event"}`: `event` is the stored
//! event embedded byte for byte (those bytes are the Merkle leaf), `checkpoint` the signed
//! note of a checkpoint of `tree_size`, hashes in standard base64.

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;
use vellum_merkle::{Hash, LeafIndex, TreeSize, leaf_hash};
use vellum_note::{Checkpoint, VerifierKey};

use crate::error::{Result, StoreError};
use crate::reader::LogReader;

#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub proof: Vec<String>,
    pub checkpoint: String,
    pub event: Box<RawValue>,
}

/// Why a receipt does not prove what it claims.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReceiptError {
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("the checkpoint is for tree size {checkpoint}, the receipt says {receipt}")]
    SizeMismatch { checkpoint: u64, receipt: u64 },
    #[error("{0} is not a base64 SHA-256 hash")]
    BadHash(String),
    #[error("the event's bytes do not hash to leaf_hash: the event was changed")]
    LeafMismatch,
    #[error("the event does not carry the receipt's index")]
    IndexMismatch,
    #[error("inclusion proof: {0}")]
    Proof(String),
}

fn b64(h: &Hash) -> String {
    base64::engine::general_purpose::STANDARD.encode(h.0)
}

fn unb64(s: &str, what: &str) -> Result<Hash, ReceiptError> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|b| Hash::from_slice(&b).ok())
        .ok_or_else(|| ReceiptError::BadHash(what.to_string()))
}

impl Receipt {
    /// Checks the receipt with the log's key; returns the verified checkpoint.
    pub fn verify(&self, key: &VerifierKey) -> Result<Checkpoint, ReceiptError> {
        let cp = Checkpoint::open(&self.checkpoint, key)
            .map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
        if cp.size.0 != self.tree_size {
            return Err(ReceiptError::SizeMismatch {
                checkpoint: cp.size.0,
                receipt: self.tree_size,
            });
        }
        let event = self.event.get().as_bytes();
        let leaf = leaf_hash(event);
        if leaf != unb64(&self.leaf_hash, "leaf_hash")? {
            return Err(ReceiptError::LeafMismatch);
        }
        if vellum_event::StoredEvent::index_of(event) != Some(self.index) {
            return Err(ReceiptError::IndexMismatch);
        }
        let proof = self
            .proof
            .iter()
            .enumerate()
            .map(|(i, h)| unb64(h, &format!("proof[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        vellum_merkle::verify_inclusion(
            &leaf,
            LeafIndex(self.index),
            TreeSize(self.tree_size),
            &proof,
            &cp.root,
        )
        .map_err(|e| ReceiptError::Proof(e.to_string()))?;
        Ok(cp)
    }
}

impl LogReader {
    /// A receipt for the event at `index` against the latest checkpoint.
    pub fn receipt(&self, index: u64) -> Result<Receipt> {
        let (cp, note) = self.latest_checkpoint()?;
        let size = self.size()?;
        if index >= size.max(cp.size.0) {
            return Err(StoreError::IndexOutOfRange { index, size });
        }
        if index >= cp.size.0 {
            return Err(StoreError::NotYetCheckpointed {
                index,
                size: cp.size.0,
            });
        }
        let event = self.read(index)?;
        let proof = self.inclusion_proof(index, cp.size.0)?;
        let event = String::from_utf8(event)
            .ok()
            .and_then(|s| RawValue::from_string(s).ok())
            .ok_or_else(|| {
                StoreError::corrupt(self.layout().root(), format!("event {index} is not JSON"))
            })?;
        Ok(Receipt {
            index,
            tree_size: cp.size.0,
            leaf_hash: b64(&proof.leaf_hash),
            proof: proof.proof.iter().map(b64).collect(),
            checkpoint: note,
            event,
        })
    }
}
