//! `vellum receipt` and `vellum verify-receipt` (the format is in `vellum_store::Receipt`).

use std::path::Path;

use anyhow::{Context, anyhow};
use vellum_store::Receipt;

use crate::CheckFailed;
use crate::output::open_reader;
use crate::read::read_key;

pub(crate) fn receipt(data: &Path, index: u64) -> anyhow::Result<()> {
    let r = open_reader(data)?.receipt(index)?;
    outln!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}

pub(crate) fn verify_receipt(key: &str, file: &Path) -> anyhow::Result<()> {
    let key = read_key(key)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let r: Receipt = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{} is not a receipt: {e}", file.display()))?;
    let cp = r
        .verify(&key)
        .map_err(|e| CheckFailed(format!("receipt INVALID: {e}")))?;
    outln!(
        "ok: event {} is in {} at tree size {} (checkpoint signed by {})",
        r.index,
        cp.origin,
        r.tree_size,
        key.name()
    );
    Ok(())
}
