//! Commands that write: append, keys create/revoke, prune.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde_json::json;
use vellum_event::{BatchError, Category, Event, Limits, Outcome, Timestamp};
use vellum_store::{ApiKeys, Prepared, Role};

use crate::args::{AppendArgs, PruneArgs, StoreArgs};
use crate::output::open_store;

pub(crate) fn append(data: &Path, store_args: &StoreArgs, args: AppendArgs) -> anyhow::Result<()> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut input)
        .context("reading events from stdin")?;
    let limits = Limits {
        max_event_bytes: store_args.max_event_bytes,
    };
    // Validate everything before anything is written: a bad line anywhere rejects it all.
    // Parsing and preparing (canonical bytes, id fingerprints) run on every core.
    let events = parse_ndjson_parallel(&input, &limits)?;
    drop(input);
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

/// Parses and prepares NDJSON on every core, keeping line numbers for errors.
fn parse_ndjson_parallel(input: &[u8], limits: &Limits) -> anyhow::Result<Vec<Prepared>> {
    let lines: Vec<(usize, &[u8])> = input
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(n, l)| (n + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .collect();
    let parsed: Result<Vec<Prepared>, BatchError> = lines
        .par_iter()
        .map(|(n, line)| {
            Event::parse(line, limits)
                .map(|e| Prepared::new(&e))
                .map_err(|error| BatchError::Item {
                    kind: "line",
                    item: *n,
                    error,
                })
        })
        .collect();
    parsed.context("nothing was appended")
}

fn audit(store: &vellum_store::Store, event: Event) -> anyhow::Result<()> {
    store
        .append(vec![event])
        .context("recording the audit event")?;
    store.checkpoint().context("signing the checkpoint")?;
    Ok(())
}

fn cli_actor() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    m.insert("user".into(), json!(user));
    m.insert("via".into(), json!("vellum-cli"));
    m
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
