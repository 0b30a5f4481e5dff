//! Retention: the only thing that ever deletes events.
//!
//! Whole sealed segments whose newest event was received before `now - max_age` are
//! deleted, oldest first, never the active segment, never while a legal hold is set. Each
//! pruning is first announced in `prune-pending.json`, then appended to the log itself as an
//! `admin` / `retention.pruned` event and covered by a checkpoint, then recorded in
//! `prunes.log` (framed JSON records), then the announcement and the files are removed.
//! The tree files keep every node, so proofs and old checkpoints stay checkable for pruned
//! indexes too.

use std::fs::OpenOptions;
use std::io::Read;

use serde::{Deserialize, Serialize};
use vellum_event::{Category, Event, Outcome, StoredEvent, Timestamp};

use crate::error::{IoContext, Result, StoreError, SyncContext};
use crate::layout::{self, Layout};
use crate::record::{self, LogEnd};
use crate::recovery::{idx_len, idx_offset};
use crate::segment;
use crate::writer::Writer;

/// One pruning, as kept in `prunes.log`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PruneRecord {
    /// The pruned indexes are `[first_index, end_index)`.
    pub first_index: u64,
    pub end_index: u64,
    pub segments: Vec<String>,
    pub pruned_at: String,
    /// The index of the `retention.pruned` event that recorded it.
    pub event_index: u64,
}

/// What a call to prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    pub pruned: Option<PruneRecord>,
    /// Set when a legal hold stopped expired segments from being pruned.
    pub held_segments: usize,
}

pub(crate) fn read_prunes(layout: &Layout) -> Result<Vec<PruneRecord>> {
    Ok(read_prunes_and_tail(layout)?.0)
}

/// Cuts a torn last record off `prunes.log` (a crash while appending: that pruning did
/// not happen, its files are still there) and returns the first index still stored.
pub(crate) fn recover_prunes(layout: &Layout) -> Result<u64> {
    let (prunes, torn) = read_prunes_and_tail(layout)?;
    if let Some(at) = torn {
        let path = layout.file(layout::PRUNES);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        f.set_len(at)
            .ctx(|| format!("cutting the torn tail of {}", path.display()))?;
        f.sync_all()
            .sync_ctx(|| format!("syncing {}", path.display()))?;
    }
    Ok(prunes.last().map_or(0, |p| p.end_index))
}

/// The prune records, and where a torn last record starts.
fn read_prunes_and_tail(layout: &Layout) -> Result<(Vec<PruneRecord>, Option<u64>)> {
    let path = layout.file(layout::PRUNES);
    let mut bytes = Vec::new();
    match std::fs::File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .ctx(|| format!("reading {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    }
    let (records, end) = record::read_log(&bytes, 0);
    let mut out: Vec<PruneRecord> = Vec::new();
    for (_, payload) in records {
        let r: PruneRecord = serde_json::from_slice(payload)
            .map_err(|e| StoreError::corrupt(&path, format!("record {}: {e}", out.len())))?;
        if r.first_index != out.last().map_or(0, |l| l.end_index) || r.end_index <= r.first_index {
            return Err(StoreError::corrupt(
                &path,
                format!("record {} does not follow the one before", out.len()),
            ));
        }
        out.push(r);
    }
    match end {
        LogEnd::Clean => Ok((out, None)),
        LogEnd::Torn(at) => Ok((out, Some(at))),
        // Only the last record can be torn; damage before it is not a crash.
        LogEnd::Damaged(at, why) => Err(StoreError::corrupt(
            &path,
            format!("{why} at offset {at}, before the end"),
        )),
    }
}

/// The `received` time of the last event of a sealed segment.
fn newest_received(layout: &Layout, first: u64) -> Result<Option<Timestamp>> {
    let n = idx_len(layout, first)?;
    if n == 0 {
        return Ok(None);
    }
    let offset = idx_offset(layout, first, n - 1)?;
    let path = layout.segment(first);
    let file = std::fs::File::open(&path).ctx(|| format!("opening {}", path.display()))?;
    let payload = segment::read_record_at(&file, &path, offset)?;
    let stored = StoredEvent::parse(&payload)
        .map_err(|e| StoreError::corrupt(&path, format!("last record: {e}")))?;
    Ok(Some(stored.received))
}

/// A pruning whose `retention.pruned` event is (about to be) stored and which is not
/// recorded in `prunes.log` yet, kept in `prune-pending.json` until it is. Written before
/// the event, with the index the event is to take, so that whatever stops the prune after
/// that (a crash, a failed checkpoint, a full disk for the record) the next prune, in this
/// process or after a restart, finishes exactly this pruning under that event rather than
/// store a second event for it. Only the store writes the file, and the event must carry
/// the fresh id the file names, so nothing a client can append steers retention: an event
/// merely reading like a pruning decides nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Announced {
    first_index: u64,
    end_index: u64,
    event_index: u64,
    event_id: String,
}

/// The announced pruning still to be finished, if any: the one `prune-pending.json` names,
/// if the log holds its event (its id, its range) at the index it names, the range ends
/// where a segment begins (`firsts`: the segments from `log_start` on), and `prunes.log`
/// does not record it yet. One that did not come true (its event was never stored, or
/// `prunes.log` records it already) is removed.
fn announced(w: &mut Writer, log_start: u64, firsts: &[u64]) -> Result<Option<Announced>> {
    let path = w.layout.file(layout::PRUNE_PENDING);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    };
    let a: Announced = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::corrupt(&path, format!("not an announced pruning: {e}")))?;
    let stored = a.first_index == log_start
        && a.first_index < a.end_index
        && a.end_index <= a.event_index
        && (a.end_index == w.seg.first_index || firsts.binary_search(&a.end_index).is_ok())
        && a.event_index < w.settled_size()
        && StoredEvent::parse(&w.read_stored(a.event_index)?).is_ok_and(|s| {
            s.event.id.as_str() == a.event_id && announces(&s.event, a.first_index, a.end_index)
        });
    if stored {
        return Ok(Some(a));
    }
    std::fs::remove_file(&path).ctx(|| format!("removing {}", path.display()))?;
    Ok(None)
}

/// Whether `event` is the `retention.pruned` event of the pruning of `[first, end)`.
fn announces(event: &Event, first: u64, end: u64) -> bool {
    #[derive(Deserialize)]
    struct Range {
        first_index: u64,
        end_index: u64,
    }
    event.category == Category::Admin
        && event.action == "retention.pruned"
        && event
            .details
            .as_ref()
            .and_then(|d| serde_json::from_str::<Range>(d.get()).ok())
            .is_some_and(|r| (r.first_index, r.end_index) == (first, end))
}

pub(crate) fn prune(w: &mut Writer, now: Timestamp) -> Result<PruneReport> {
    let layout = w.layout.clone();
    let max_age = w.options.retention.max_age.as_micros() as i128;
    let cutoff = now.unix_micros() - max_age;
    // First finish what `prunes.log` already records: a torn record left by a failed append
    // is no pruning, and the files of a recorded pruning whose removal failed are removed
    // now, so that they are never pruned (recorded) twice.
    w.close_sealed();
    let log_start = recover_prunes(&layout)?;
    if remove_pruned_files(&layout, log_start)? {
        layout::sync_dir(&layout.segments_dir())?;
    }
    // The ids of pruned events are forgotten, as after a reopen (the window is rebuilt from
    // the `.idx` files that remain), those of a pruning an earlier prune recorded too.
    w.ids.forget_below(log_start);
    let mut firsts = layout.list_segments()?;
    firsts.retain(|&f| f >= log_start);
    let announced = announced(w, log_start, &firsts)?;
    let mut expired = Vec::new();
    for &first in &firsts {
        if first == w.seg.first_index {
            break;
        }
        if let Some(a) = &announced {
            // Announced: expired then, whatever the settings say now.
            if first < a.end_index {
                expired.push(first);
                continue;
            }
            break;
        }
        match newest_received(&layout, first)? {
            Some(t) if t.unix_micros() < cutoff => expired.push(first),
            _ => break,
        }
    }
    let mut report = PruneReport::default();
    if expired.is_empty() {
        return Ok(report);
    }
    if w.options.retention.legal_hold {
        report.held_segments = expired.len();
        return Ok(report);
    }
    let first_index = expired[0];
    if first_index != log_start {
        // A record must follow the one before; refuse rather than write one that does not.
        return Err(StoreError::corrupt(
            layout.segment(first_index),
            format!(
                "the log should start at index {log_start} but its first segment starts at {first_index}"
            ),
        ));
    }
    let end_index = match &announced {
        Some(a) => a.end_index,
        None => firsts
            .iter()
            .find(|&&f| f > expired[expired.len() - 1])
            .copied()
            .unwrap_or(w.seg.first_index),
    };
    let names: Vec<String> = expired.iter().map(|f| format!("{f:020}.seg")).collect();
    let event_index = match announced {
        Some(a) => a.event_index,
        None => {
            let cutoff_ts = Timestamp::from_unix_micros(cutoff).unwrap_or(now);
            let event = Event::new(Category::Admin, "retention.pruned", Outcome::Success)
                .with_details(serde_json::json!({
                    "first_index": first_index,
                    "end_index": end_index,
                    "events": end_index - first_index,
                    "segments": names,
                    "cutoff": cutoff_ts.to_string(),
                    "max_age_days": w.options.retention.max_age.as_secs() / 86400,
                }));
            // Announced before the event is stored, under the index it is to take: if the
            // commit fails, nothing is stored at that index that announces this pruning,
            // and the next prune drops the file.
            let pending = Announced {
                first_index,
                end_index,
                event_index: w.settled_size(),
                event_id: event.id.to_string(),
            };
            let json = serde_json::to_vec(&pending)
                .map_err(|e| StoreError::Internal(format!("an announced pruning: {e}")))?;
            layout::write_atomic(&layout.file(layout::PRUNE_PENDING), &json, 0o644)?;
            let appended = w.commit(&[(&[crate::writer::Prepared::new(&event)], None)])?;
            appended
                .first()
                .and_then(|a| a.first_index)
                .ok_or_else(|| StoreError::Internal("the prune event was not stored".into()))?
        }
    };
    w.issue_checkpoint()?;
    let rec = PruneRecord {
        first_index,
        end_index,
        segments: names,
        pruned_at: now.to_string(),
        event_index,
    };
    let json = serde_json::to_vec(&rec).map_err(|e| StoreError::InvalidOption(e.to_string()))?;
    let path = layout.file(layout::PRUNES);
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    let len = f
        .metadata()
        .ctx(|| format!("reading {}", path.display()))?
        .len();
    record::append_synced(&mut f, len, &json, &path)?;
    // Recorded: the events are pruned now, whether or not their files go at once. The
    // announcement is done with; one left by a crash here names a recorded pruning, and the
    // next prune drops it.
    w.ids.forget_below(end_index);
    let pending = layout.file(layout::PRUNE_PENDING);
    std::fs::remove_file(&pending).ctx(|| format!("removing {}", pending.display()))?;
    layout::sync_dir(layout.root())?;
    remove_pruned_files(&layout, end_index)?;
    layout::sync_dir(&layout.segments_dir())?;
    report.pruned = Some(rec);
    Ok(report)
}

/// Removes the files of the segments below `end` (pruned: `prunes.log` says the log starts
/// there) that are still in the segments directory, including a `.idx` whose `.seg` is
/// already gone. Returns whether anything was removed; the caller syncs the directory.
/// Used by `prune` (its own files, and those a failed earlier pruning left) and by recovery.
pub(crate) fn remove_pruned_files(layout: &Layout, end: u64) -> Result<bool> {
    let stale: Vec<u64> = layout
        .segment_file_firsts()?
        .into_iter()
        .take_while(|&first| first < end)
        .collect();
    for &first in &stale {
        layout.remove_segment_files(first)?;
    }
    Ok(!stale.is_empty())
}
