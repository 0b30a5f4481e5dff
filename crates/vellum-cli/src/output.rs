//! Small shared helpers: base64, progress bars, opening the store.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use indicatif::{ProgressBar, ProgressStyle};
use vellum_merkle::Hash;
use vellum_store::{LogReader, Store};

use crate::args::StoreArgs;

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) fn b64_hashes(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| b64(&h.0)).collect()
}

pub(crate) fn open_reader(data: &Path) -> anyhow::Result<LogReader> {
    LogReader::open(data).with_context(|| format!("opening {}", data.display()))
}

pub(crate) fn open_store(data: &Path, args: &StoreArgs) -> anyhow::Result<Store> {
    open_store_with(data, args, args.options())
}

/// [`open_store`] with options of the caller's (prune's retention), saying the same about
/// what recovery did.
pub(crate) fn open_store_with(
    data: &Path,
    args: &StoreArgs,
    options: vellum_store::Options,
) -> anyhow::Result<Store> {
    let store =
        Store::open(data, options).with_context(|| format!("opening {}", data.display()))?;
    let r = store.recovered();
    if let Some((path, at, bytes)) = &r.torn_tail {
        errln!(
            "vellum: recovered: cut {bytes} bytes after the last intact record, at offset {at} of {} (a crash leaves only unacknowledged records there){}",
            path.display(),
            match (&r.torn_tail_kept, &r.torn_tail_not_kept) {
                (Some(k), _) => format!(
                    "; the bytes cut, up to the last non-zero one, are kept in {}",
                    k.display()
                ),
                (None, Some(why)) => format!("; the bytes cut could not be kept: {why}"),
                (None, None) => String::new(),
            }
        );
    }
    if let Some(asked) = &args.origin
        && !r.created
        && asked != store.origin()
    {
        errln!(
            "vellum: --origin {asked} is ignored: this log's origin is {} (set when it was created, never changed)",
            store.origin()
        );
    }
    if r.created {
        errln!(
            "vellum: created a new log in {} (origin {})",
            data.display(),
            store.origin()
        );
        errln!("vellum: verifier key: {}", store.verifier_key());
    }
    Ok(store)
}

/// A byte-count progress bar on stderr, only when stderr is a terminal.
pub(crate) fn progress(total: u64, what: &str) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}
