//! Receipts: everything needed to prove one event is in the log, checkable offline with
//! only the log's verifier key.
//!
//! `{"index","tree_size","leaf_hash","proof","checkpoint","event"}` where `event` is the
//! stored event embedded byte for byte (its bytes are the Merkle leaf), `checkpoint` the
//! signed note of a checkpoint of `tree_size`, hashes in standard base64.

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use vellum_merkle::{LeafIndex, TreeSize, leaf_hash};
use vellum_note::Checkpoint;

use crate::CheckFailed;
use crate::output::{b64, b64_hashes, open_reader, unb64_hash};
use crate::read::read_key;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Receipt {
    index: u64,
    tree_size: u64,
    leaf_hash: String,
    proof: Vec<String>,
    checkpoint: String,
    event: Box<RawValue>,
}

pub(crate) fn receipt(data: &Path, index: u64) -> anyhow::Result<()> {
    let reader = open_reader(data)?;
    let (cp, note) = reader.latest_checkpoint()?;
    if index >= cp.size.0 {
        bail!(
            "index {index} is not covered by the latest checkpoint (size {}) yet; try again in a few seconds",
            cp.size.0
        );
    }
    let event = reader.read(index)?;
    let proof = reader.inclusion_proof(index, cp.size.0)?;
    let event = String::from_utf8(event).context("stored event is not UTF-8")?;
    let r = Receipt {
        index,
        tree_size: cp.size.0,
        leaf_hash: b64(&proof.leaf_hash.0),
        proof: b64_hashes(&proof.proof),
        checkpoint: note,
        event: RawValue::from_string(event).context("stored event is not JSON")?,
    };
    outln!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

pub(crate) fn verify_receipt(key: &str, file: &Path) -> anyhow::Result<()> {
    let key = read_key(key)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let r: Receipt = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not a receipt: {e}", file.display()))?;
    let fail =
        |why: String| -> anyhow::Error { CheckFailed(format!("receipt INVALID: {why}")).into() };
    let cp = Checkpoint::open(&r.checkpoint, &key).map_err(|e| fail(format!("checkpoint: {e}")))?;
    if cp.size.0 != r.tree_size {
        return Err(fail(format!(
            "the checkpoint is for tree size {}, the receipt says {}",
            cp.size.0, r.tree_size
        )));
    }
    let event = r.event.get().as_bytes();
    let leaf = leaf_hash(event);
    if leaf != unb64_hash(&r.leaf_hash, "leaf_hash")? {
        return Err(fail(
            "the event's bytes do not hash to leaf_hash: the event was changed".into(),
        ));
    }
    if vellum_event::StoredEvent::index_of(event) != Some(r.index) {
        return Err(fail("the event does not carry the receipt's index".into()));
    }
    let proof = r
        .proof
        .iter()
        .enumerate()
        .map(|(i, h)| unb64_hash(h, &format!("proof[{i}]")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    vellum_merkle::verify_inclusion(
        &leaf,
        LeafIndex(r.index),
        TreeSize(r.tree_size),
        &proof,
        &cp.root,
    )
    .map_err(|e| fail(format!("inclusion proof: {e}")))?;
    outln!(
        "ok: event {} is in {} at tree size {} (checkpoint signed by {})",
        r.index,
        cp.origin,
        r.tree_size,
        key.name()
    );
    Ok(())
}
