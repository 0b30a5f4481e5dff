//! Commands that write: append, keys create/revoke, prune.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use vellum_event::{
    BatchError, BodyFormat, Category, Event, JsonObject, Limits, Outcome, Timestamp,
    parse_batch_canonical,
};
use vellum_store::{ApiKeys, Prepared, Role};

use crate::args::{AppendArgs, PruneArgs, StoreArgs};
use crate::output::open_store;

pub(crate) fn append(data: &Path, store_args: &StoreArgs, args: AppendArgs) -> anyhow::Result<()> {
    let limits = Limits {
        max_event_bytes: store_args.max_event_bytes,
    };
    // Validate everything before anything is written: a bad line anywhere rejects it all.
    // Parsing and preparing (canonical bytes, id fingerprints) run on every core, a chunk of
    // stdin at a time, so the raw input is never held whole.
    let events = read_and_prepare(&mut std::io::stdin().lock(), CHUNK, &limits)?;
    if events.is_empty() {
        bail!("no events on stdin");
    }
    let store = open_store(data, store_args)?;
    let mut pending = Vec::new();
    let mut events = events.into_iter();
    let batch = args.batch.max(1);
    loop {
        let chunk: Vec<Prepared> = events.by_ref().take(batch).collect();
        if chunk.is_empty() {
            break;
        }
        pending.push(store.append_deferred_prepared(chunk)?);
    }
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    let (mut first, mut last, mut size) = (None, None, 0);
    for p in pending {
        let r = p.wait().context("appending")?;
        accepted += r.accepted;
        duplicates += r.duplicates;
        first = first.or(r.first_index);
        last = r.last_index.or(last);
        size = size.max(r.tree_size);
    }
    store.checkpoint().context("signing the checkpoint")?;
    match (first, last) {
        (Some(a), Some(b)) => {
            outln!("appended {accepted} events, indexes {a}..{b}, tree size {size}")
        }
        _ => outln!("appended 0 events, tree size {size}"),
    }
    if duplicates > 0 {
        outln!("{duplicates} duplicates (ids already in the log) were not stored again");
    }
    Ok(())
}

/// Bytes of input parsed at a time.
const CHUNK: u64 = 16 << 20;

/// Reads NDJSON to the end and parses and prepares every event, `chunk` bytes at a time.
fn read_and_prepare(
    input: &mut impl Read,
    chunk: u64,
    limits: &Limits,
) -> anyhow::Result<Vec<Prepared>> {
    let mut prepared = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut lines_before = 0usize;
    loop {
        let read = input
            .by_ref()
            .take(chunk)
            .read_to_end(&mut buf)
            .context("reading events from stdin")?;
        let eof = read == 0;
        // Parse up to the last complete line; the rest waits for the next chunk (or is the
        // last line, without a newline, at the end of the input).
        let complete = if eof {
            buf.len()
        } else {
            match buf.iter().rposition(|&b| b == b'\n') {
                Some(at) => at + 1,
                None => continue,
            }
        };
        let part = buf.get(..complete).unwrap_or_default();
        prepared.extend(parse_ndjson_parallel(part, lines_before, limits)?);
        lines_before += memchr::memchr_iter(b'\n', part).count();
        buf.drain(..complete);
        if eof {
            return Ok(prepared);
        }
    }
}

/// Parses and prepares NDJSON on every core, keeping line numbers (counted from
/// `lines_before + 1`) for errors.
fn parse_ndjson_parallel(
    input: &[u8],
    lines_before: usize,
    limits: &Limits,
) -> anyhow::Result<Vec<Prepared>> {
    match parse_batch_canonical(input, BodyFormat::Ndjson, limits, Prepared::from_canonical) {
        Ok(prepared) => Ok(prepared),
        Err(BatchError::Empty) => Ok(Vec::new()),
        Err(BatchError::Item { kind, item, error }) => Err(BatchError::Item {
            kind,
            item: lines_before + item,
            error,
        })
        .context("nothing was appended"),
        Err(e) => Err(e).context("nothing was appended"),
    }
}

fn audit(store: &vellum_store::Store, event: Event) -> anyhow::Result<()> {
    store
        .append(vec![event])
        .context("recording the audit event")?;
    store.checkpoint().context("signing the checkpoint")?;
    Ok(())
}

fn cli_actor() -> JsonObject {
    let mut m = serde_json::Map::new();
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    m.insert("user".into(), json!(user));
    m.insert("via".into(), json!("vellum-cli"));
    m.into()
}

pub(crate) fn keys_create(
    data: &Path,
    store_args: &StoreArgs,
    name: &str,
    role: &str,
) -> anyhow::Result<()> {
    let role: Role = role.parse()?;
    let store = open_store(data, store_args)?;
    let new = ApiKeys::new(data).create(name, role)?;
    let mut ev = Event::new(Category::Admin, "key.created", Outcome::Success)
        .with_details(json!({"key_id": new.key.id, "name": new.key.name, "role": role.as_str()}));
    ev.actor = Some(cli_actor());
    audit(&store, ev)?;
    outln!("{}", new.token);
    eprintln!(
        "vellum: created key {} ({}, role {}); the secret above is shown only now",
        new.key.id, new.key.name, new.key.role
    );
    Ok(())
}

pub(crate) fn keys_revoke(data: &Path, store_args: &StoreArgs, id: &str) -> anyhow::Result<()> {
    let store = open_store(data, store_args)?;
    let key = ApiKeys::new(data).revoke(id)?;
    let mut ev = Event::new(Category::Admin, "key.revoked", Outcome::Success)
        .with_details(json!({"key_id": key.id, "name": key.name, "role": key.role.as_str()}));
    ev.actor = Some(cli_actor());
    audit(&store, ev)?;
    outln!("revoked {} ({})", key.id, key.name);
    Ok(())
}

pub(crate) fn prune(data: &Path, store_args: &StoreArgs, args: PruneArgs) -> anyhow::Result<()> {
    let mut options = vellum_store::Options {
        origin: store_args.origin.clone(),
        create: false,
        ..Default::default()
    };
    options.retention.max_age = Duration::from_secs(args.max_age_days.saturating_mul(86400));
    options.retention.legal_hold = args.legal_hold;
    let store = vellum_store::Store::open(data, options)
        .with_context(|| format!("opening {}", data.display()))?;
    let report = store.prune(Timestamp::now())?;
    match (&report.pruned, report.held_segments) {
        (Some(p), _) => outln!(
            "pruned indexes {}..{} ({} segments); recorded as event {}",
            p.first_index,
            p.end_index,
            p.segments.len(),
            p.event_index
        ),
        (None, 0) => outln!("nothing to prune"),
        (None, n) => outln!("legal hold: {n} expired segments kept"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: [&str; 3] = [
        r#"{"id":"a-1","time":"2026-11-26T10:00:00Z","category":"admin","action":"key.created","outcome":"success"}"#,
        r#"{"id":"a-2","time":"2026-11-26T10:00:01Z","category":"security","action":"alert","outcome":"failure"}"#,
        r#"{"id":"a-3","time":"2026-11-26T10:00:02Z","category":"authentication","action":"login","outcome":"failure","actor":{"user":"bob"}}"#,
    ];

    fn bodies(input: &str, chunk: u64) -> anyhow::Result<Vec<Vec<u8>>> {
        let prepared = read_and_prepare(&mut input.as_bytes(), chunk, &Limits::default())?;
        Ok(prepared.iter().map(|p| p.body().to_vec()).collect())
    }

    /// Chunks cut lines anywhere: the events and the line numbers of errors are those of
    /// reading the input whole.
    #[test]
    fn chunks_do_not_change_what_is_read() {
        for input in [
            format!("{}\n{}\r\n\n  \n{}\n", LINES[0], LINES[1], LINES[2]),
            format!("{}\n{}\n{}", LINES[0], LINES[1], LINES[2]),
        ] {
            let whole = bodies(&input, u64::MAX).unwrap();
            assert_eq!(whole.len(), 3);
            for chunk in [1, 2, 7, 64, 100, 1000] {
                assert_eq!(bodies(&input, chunk).unwrap(), whole, "chunk {chunk}");
            }
        }
        let bad = format!("{}\n\n{}\n{{\"id\":1}}\n{}\n", LINES[0], LINES[1], LINES[2]);
        for chunk in [1, 5, 80, u64::MAX] {
            let err = format!("{:#}", bodies(&bad, chunk).unwrap_err());
            assert!(err.contains("line 4"), "chunk {chunk}: {err}");
        }
    }
}
