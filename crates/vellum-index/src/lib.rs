//! The query index: answers "events matching these filters, from this index on" without
//! reading the whole log.
//!
//! Derived data in `DIR/index/postings.redb` (redb: a pure-Rust, ACID, copy-on-write
//! B-tree with MVCC readers, so queries never wait for the indexer). It can be deleted at
//! any time and is rebuilt from the log. It holds (format 4, in `meta` as `format`):
//!
//! - postings (`postings_v2`): one per event and field, for `category`, `action`,
//!   `actor.user` and `source.ip`. The key is `partition | hash(field, value) | offset`
//!   (`posting.rs`): a value's events in log order within each partition of 2^20 indexes.
//!   The value is the event's filterable fields (`fields.rs`): category, outcome, time, and
//!   hashes of action, user and ip, so every filter is checked on the posting first and
//!   only events that can match are read from the log.
//! - zone maps: the min and max event `time` of each block of 4,096 indexes
//!   (`zones_v2`) and of each partition (`part_zones_v2`), so a time-range query skips
//!   blocks and partitions that cannot match.
//! - `indexed`: every index below it is indexed.
//!
//! A database of another format (format 1 had no `format` key) is deleted on open and
//! rebuilt from the log.
//!
//! A query picks the most selective indexed filter (user, then ip, action, category) to
//! drive a posting scan, checks the other filters on each posting's fields, reads the
//! candidates left and checks every filter on the event itself (postings are a superset:
//! values are hashed), then scans the unindexed tail linearly. Without such a filter it
//! scans the log, skipping blocks by zone map. Every page examines at most `budget`
//! candidates (postings, or events read by a scan) and returns a cursor to continue.
//!
//! It does not store events (it reads them through `LogReader`), decide who may query,
//! or touch the log's files.

mod fields;
mod posting;
#[cfg(test)]
mod tests;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{
    Builder, ConcurrencyMode, Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase,
    ReadableTable, TableDefinition, TransactionError,
};
use thiserror::Error;
use vellum_event::{Filter, StoredEvent};
use vellum_store::{Layout, LogReader, StoreError};

use fields::{Encoded, Fields, Probe, TAG_ACTION, TAG_CATEGORY, TAG_IP, TAG_USER, hash64};
use posting::{PART_BITS, PART_LEN, PostingKey};

/// The layout of the tables below; a database of another format is deleted and rebuilt.
/// Format 1 (no `format` key) keyed postings by the value itself and held no fields.
/// Format 2 hashed `source.ip` as stored; format 3 hashes its canonical text (as events are
/// now stored and filters given); format 4 takes an IPv4-mapped address for the IPv4
/// address it maps, so an index of an earlier format is rebuilt.
const FORMAT: u64 = 4;

const POSTINGS: TableDefinition<PostingKey, &Encoded> = TableDefinition::new("postings_v2");
const ZONES: TableDefinition<u64, (i64, i64)> = TableDefinition::new("zones_v2");
const PART_ZONES: TableDefinition<u64, (i64, i64)> = TableDefinition::new("part_zones_v2");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// `META` key: every index below its value is indexed. (Format 1 used `next`: a binary of
/// that format opening this file sees nothing indexed and builds its own tables.)
const INDEXED: &str = "indexed";
const FORMAT_KEY: &str = "format";

/// Indexes per zone-map block. (Small in unit tests, so a few hundred events cross blocks.)
#[cfg(not(test))]
pub const ZONE: u64 = 4096;
#[cfg(test)]
pub const ZONE: u64 = 16;
/// Events a caller should let one [`Index::catch_up`] index: one write transaction each.
/// Larger batches cost less per event (a B-tree page is copied once per transaction however
/// many postings land in it) and hold more memory (about 150 bytes per event, some 40 MB).
pub const BATCH: u64 = 250_000;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("index database {path}: {message}")]
    Db { path: PathBuf, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

/// One page of a query.
#[derive(Debug, Default)]
pub struct Page {
    /// Stored bytes of the matching events, in index order.
    pub events: Vec<Vec<u8>>,
    /// Where the next page starts; `None` when the log has been read to its end.
    pub next: Option<u64>,
    /// Events read to answer this page.
    pub examined: u64,
}

/// The query index of one data directory.
#[derive(Debug)]
pub struct Index {
    /// `None` while being reopened after a failed write (redb refuses every write after an
    /// I/O error until the database is reopened, e.g. once a full disk has room again).
    db: RwLock<Option<Db>>,
    path: PathBuf,
    failed: AtomicBool,
}

/// The database, as the indexer opens it (read and write) or as a read-only command does.
enum Db {
    Writable(Database),
    ReadOnly(ReadOnlyDatabase),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Db::Writable(_) => "Db::Writable",
            Db::ReadOnly(_) => "Db::ReadOnly",
        })
    }
}

impl Db {
    fn begin_read(&self) -> std::result::Result<ReadTransaction, TransactionError> {
        match self {
            Db::Writable(db) => db.begin_read(),
            Db::ReadOnly(db) => db.begin_read(),
        }
    }
}

/// How the index file is opened: one process (a server's indexer) writes while any number
/// of read-only commands query it and follow its commits.
fn shared() -> Builder {
    let mut builder = Builder::new();
    builder.set_concurrency_mode(ConcurrencyMode::SingleWriter);
    builder
}

/// Where the index of the log laid out at `layout` lives.
fn db_path(layout: &Layout) -> PathBuf {
    layout.index_dir().join("postings.redb")
}

/// What one `catch_up` adds, before it is sorted and written.
#[derive(Debug, Default)]
struct Batch {
    /// Each posting's key and the position of its event's fields in `fields`.
    postings: Vec<(PostingKey, u32)>,
    fields: Vec<Encoded>,
    /// `(block, min time, max time)`, blocks ascending.
    zones: Vec<(u64, i64, i64)>,
    /// The same per partition.
    part_zones: Vec<(u64, i64, i64)>,
}

impl Batch {
    /// Adds `index`'s postings; `false` (adding nothing) if the index is past what keys hold.
    fn add(&mut self, index: u64, f: &Fields<'_>) -> bool {
        let at = self.fields.len() as u32;
        let values = [
            Some((TAG_CATEGORY, f.category.as_str())),
            Some((TAG_ACTION, f.action.as_ref())),
            f.user.as_deref().map(|u| (TAG_USER, u)),
            f.ip.as_deref().map(|i| (TAG_IP, i)),
        ];
        for (tag, value) in values.into_iter().flatten() {
            let Some(key) = PostingKey::new(hash64(tag, value.as_bytes()), index) else {
                return false;
            };
            self.postings.push((key, at));
        }
        self.fields.push(f.encode());
        widen(&mut self.zones, index / ZONE, f.time);
        widen(&mut self.part_zones, index >> PART_BITS, f.time);
        true
    }
}

/// Widens the last zone of `zones` to hold `t` if it is `key`'s, else starts `key`'s.
fn widen(zones: &mut Vec<(u64, i64, i64)>, key: u64, t: i64) {
    match zones.last_mut() {
        Some((k, lo, hi)) if *k == key => {
            *lo = (*lo).min(t);
            *hi = (*hi).max(t);
        }
        _ => zones.push((key, t, t)),
    }
}

impl Index {
    /// Opens (or creates) the index of the log laid out at `layout`. An index of another
    /// format is deleted and rebuilt from the log.
    pub fn open(layout: &Layout) -> Result<Index> {
        let path = db_path(layout);
        let db_err = |e: &dyn std::fmt::Display| IndexError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(layout.index_dir()).map_err(|e| db_err(&e))?;
        let db = Self::create(&path).map_err(|e| db_err(&e))?;
        Ok(Self::with(Db::Writable(db), path))
    }

    /// Opens the index of the log at `layout` for queries only, changing nothing (for the
    /// CLI's read-only commands), beside a running server's indexer if there is one. `None`
    /// when there is none to use: no index yet, one not closed cleanly (the next writer
    /// repairs it), one of another format, or one a writer of an older Vellum holds
    /// exclusively. Events it does not cover are scanned, as for any index.
    pub fn open_read_only(layout: &Layout) -> Option<Index> {
        if !Self::exists(layout) {
            return None;
        }
        let path = db_path(layout);
        let db = shared().open_read_only(&path).ok()?;
        (Self::format(&db).ok()? == Some(FORMAT)).then(|| Self::with(Db::ReadOnly(db), path))
    }

    /// Whether the log has an index file at all (used or not).
    pub fn exists(layout: &Layout) -> bool {
        db_path(layout).is_file()
    }

    fn with(db: Db, path: PathBuf) -> Index {
        Index {
            db: RwLock::new(Some(db)),
            path,
            failed: AtomicBool::new(false),
        }
    }

    /// Opens the database file, starting it over unless it holds this format, and makes
    /// sure its tables exist, so readers find them.
    fn create(path: &Path) -> std::result::Result<Database, String> {
        let db = shared().create(path).map_err(|e| e.to_string())?;
        if Self::format(&db)? == Some(FORMAT) {
            return Ok(db);
        }
        // Another format (or a new file): the index is derived, so start over. Removing
        // the file (rather than its tables) gives the old format's space back.
        drop(db);
        std::fs::remove_file(path).map_err(|e| e.to_string())?;
        let db = shared().create(path).map_err(|e| e.to_string())?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            txn.open_table(POSTINGS).map_err(|e| e.to_string())?;
            txn.open_table(ZONES).map_err(|e| e.to_string())?;
            txn.open_table(PART_ZONES).map_err(|e| e.to_string())?;
            let mut meta = txn.open_table(META).map_err(|e| e.to_string())?;
            meta.insert(FORMAT_KEY, FORMAT).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
        Ok(db)
    }

    /// The format the database says it holds; `None` if it does not say.
    fn format(db: &impl ReadableDatabase) -> std::result::Result<Option<u64>, String> {
        let txn = db.begin_read().map_err(|e| e.to_string())?;
        let meta = match txn.open_table(META) {
            Ok(meta) => meta,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        Ok(meta
            .get(FORMAT_KEY)
            .map_err(|e| e.to_string())?
            .map(|v| v.value()))
    }

    /// Runs `f` on the open database.
    fn with_db<T>(&self, f: impl FnOnce(&Db) -> Result<T>) -> Result<T> {
        let guard = self.db.read().map_err(|_| self.err("lock poisoned"))?;
        match guard.as_ref() {
            Some(db) => f(db),
            None => Err(self.err("reopening after a failed write")),
        }
    }

    /// After a failed write, closes and reopens the database; what was committed stays.
    fn reopen_if_failed(&self) -> Result<()> {
        if !self.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut guard = self.db.write().map_err(|_| self.err("lock poisoned"))?;
        guard.take();
        *guard = Some(Db::Writable(
            Self::create(&self.path).map_err(|e| self.err(e))?,
        ));
        self.failed.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn err(&self, e: impl std::fmt::Display) -> IndexError {
        IndexError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Every index below this one is indexed.
    pub fn indexed(&self) -> Result<u64> {
        self.with_db(|db| {
            let txn = db.begin_read().map_err(|e| self.err(e))?;
            let meta = txn.open_table(META).map_err(|e| self.err(e))?;
            Ok(meta
                .get(INDEXED)
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value()))
        })
    }

    /// Indexes up to `max` events past what is indexed, in one write transaction; returns
    /// how many it indexed. Memory grows with `max` (about 120 bytes per event).
    pub fn catch_up(&self, reader: &LogReader, max: u64) -> Result<u64> {
        self.catch_up_until(reader, max, || false)
    }

    /// Like [`Index::catch_up`], giving up (writing nothing, returning 0) as soon as `stop`
    /// says so: a server shutting down does not wait for a large batch to be read.
    pub fn catch_up_until(
        &self,
        reader: &LogReader,
        max: u64,
        stop: impl Fn() -> bool,
    ) -> Result<u64> {
        self.reopen_if_failed()?;
        let start = self.indexed()?.max(reader.first_index()?);
        // Only what is committed (its `.idx` entry written): the scan stops there instead of
        // reading on into the zeros ahead of a live writer, and nothing is read at all
        // when there is nothing new.
        let limit = start.saturating_add(max).min(reader.size()?);
        if limit <= start {
            return Ok(0);
        }
        let mut batch = Batch::default();
        let mut end = start;
        let mut stopped = false;
        reader.scan(start, |index, bytes| {
            if index >= limit {
                return Ok(ControlFlow::Break(()));
            }
            if index % 1024 == 0 && stop() {
                stopped = true;
                return Ok(ControlFlow::Break(()));
            }
            // Verification reports a record that does not parse; the index just cannot use
            // it (no query matches it).
            if let Some(f) = Fields::read(bytes)
                && !batch.add(index, &f)
            {
                return Ok(ControlFlow::Break(()));
            }
            end = index + 1;
            Ok(ControlFlow::Continue(()))
        })?;
        if end == start || stopped {
            return Ok(0);
        }
        batch.postings.sort_unstable_by_key(|&(k, _)| k);
        let written = self.with_db(|db| match db {
            Db::Writable(db) => self.write_batch(db, &batch, end),
            Db::ReadOnly(_) => Err(self.err("the index is open read-only")),
        });
        if written.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        written.map(|()| end - start)
    }

    /// Writes one batch in one transaction, with the high-water mark `end`, durably: the mark
    /// commits atomically with the postings it covers, so after a crash the index reopens as
    /// a consistent prefix that `catch_up` continues. (Every commit is synced: redb refuses
    /// unsynced commits to a database other processes read, and one sync per batch of up to
    /// `BATCH` events is little beside the log's own.)
    fn write_batch(&self, db: &Database, batch: &Batch, end: u64) -> Result<()> {
        let txn = db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut postings = txn.open_table(POSTINGS).map_err(|e| self.err(e))?;
            for (key, at) in &batch.postings {
                let fields = batch
                    .fields
                    .get(*at as usize)
                    .ok_or_else(|| self.err("posting without fields"))?;
                postings.insert(key, fields).map_err(|e| self.err(e))?;
            }
            let mut zones = txn.open_table(ZONES).map_err(|e| self.err(e))?;
            let mut parts = txn.open_table(PART_ZONES).map_err(|e| self.err(e))?;
            for &(block, lo, hi) in &batch.zones {
                merge_zone(&mut zones, block, lo, hi).map_err(|e| self.err(e))?;
            }
            for &(part, lo, hi) in &batch.part_zones {
                merge_zone(&mut parts, part, lo, hi).map_err(|e| self.err(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(INDEXED, end).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Events matching `filter` from index `from` on: at most `limit`, examining at most
    /// `budget` candidates (postings checked in the index, events read from the log).
    pub fn query(
        &self,
        reader: &LogReader,
        filter: &Filter,
        from: u64,
        limit: usize,
        budget: u64,
    ) -> Result<Page> {
        let from = from.max(reader.first_index()?);
        let end = reader.size()?;
        // Without a usable index (being reopened), everything is "unindexed": scan.
        let indexed = self.indexed().unwrap_or(0).min(end);
        let probe = Probe::new(filter);
        let mut page = Page::default();
        let driver = [
            (TAG_USER, filter.user.as_deref()),
            (TAG_IP, filter.ip.as_deref()),
            (TAG_ACTION, filter.action.as_deref()),
            (TAG_CATEGORY, filter.category.map(|c| c.as_str())),
        ]
        .into_iter()
        .find_map(|(tag, v)| v.map(|v| hash64(tag, v.as_bytes())));
        let tail_from = match driver {
            Some(value) if from < indexed => {
                let bounds = Bounds {
                    from,
                    to: indexed,
                    limit,
                    budget,
                };
                if self.postings(reader, filter, &probe, value, &bounds, &mut page)? {
                    return Ok(page);
                }
                indexed
            }
            _ => from,
        };
        self.scan(
            reader, filter, &probe, tail_from, indexed, limit, budget, &mut page,
        )?;
        Ok(page)
    }

    /// Follows the postings of `value` over `bounds.from..bounds.to`, partition by
    /// partition, reading only the events whose indexed fields can match. Returns `true`
    /// when the page is full (`page.next` set).
    fn postings(
        &self,
        reader: &LogReader,
        filter: &Filter,
        probe: &Probe,
        value: u64,
        bounds: &Bounds,
        page: &mut Page,
    ) -> Result<bool> {
        let guard = self.db.read().map_err(|_| self.err("lock poisoned"))?;
        let db = guard
            .as_ref()
            .ok_or_else(|| self.err("reopening after a failed write"))?;
        let txn = db.begin_read().map_err(|e| self.err(e))?;
        let postings = txn.open_table(POSTINGS).map_err(|e| self.err(e))?;
        let parts = if probe.is_timed() {
            Some(txn.open_table(PART_ZONES).map_err(|e| self.err(e))?)
        } else {
            None
        };
        let mut pos = bounds.from;
        while pos < bounds.to {
            let part_start = pos >> PART_BITS << PART_BITS;
            let stop = (part_start + PART_LEN).min(bounds.to);
            let skip = match &parts {
                Some(parts) => match parts.get(pos >> PART_BITS).map_err(|e| self.err(e))? {
                    Some(z) => {
                        let (lo, hi) = z.value();
                        !probe.time_possible(lo, hi)
                    }
                    None => true,
                },
                None => false,
            };
            if !skip {
                let (Some(lo), Some(part)) = (
                    PostingKey::new(value, pos),
                    u32::try_from(pos >> PART_BITS).ok(),
                ) else {
                    return Err(self.err("index beyond the postings' range"));
                };
                let hi = PostingKey {
                    part,
                    value,
                    offset: (stop - part_start) as u32,
                };
                let range = postings.range(lo..hi).map_err(|e| self.err(e))?;
                for item in range {
                    let (k, v) = item.map_err(|e| self.err(e))?;
                    let index = k.value().index();
                    if page.events.len() >= bounds.limit || page.examined >= bounds.budget {
                        page.next = Some(index);
                        return Ok(true);
                    }
                    page.examined += 1;
                    if !probe.may_match(v.value()) {
                        continue;
                    }
                    let bytes = match reader.read(index) {
                        Ok(b) => b,
                        Err(StoreError::Pruned { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if StoredEvent::parse(&bytes).is_ok_and(|s| filter.matches(&s)) {
                        page.events.push(bytes);
                    }
                }
            }
            pos = stop;
        }
        Ok(false)
    }

    /// Reads events from `from` on, checking `filter`, skipping indexed blocks whose zone
    /// map rules out the time range.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        reader: &LogReader,
        filter: &Filter,
        probe: &Probe,
        from: u64,
        indexed: u64,
        limit: usize,
        budget: u64,
        page: &mut Page,
    ) -> Result<()> {
        let timed = probe.is_timed();
        let mut pos = from;
        let guard = self.db.read().map_err(|_| self.err("lock poisoned"))?;
        let zones_txn = match guard.as_ref() {
            Some(db) if timed && indexed > 0 => Some(db.begin_read().map_err(|e| self.err(e))?),
            _ => None,
        };
        let zones = match &zones_txn {
            Some(t) => Some(t.open_table(ZONES).map_err(|e| self.err(e))?),
            None => None,
        };
        loop {
            // Skip whole indexed blocks that cannot hold a matching time.
            if let Some(zones) = &zones {
                while (pos / ZONE + 1) * ZONE <= indexed {
                    let block = pos / ZONE;
                    let Some(z) = zones.get(block).map_err(|e| self.err(e))? else {
                        break;
                    };
                    let (lo, hi) = z.value();
                    if probe.time_possible(lo, hi) {
                        break;
                    }
                    pos = (block + 1) * ZONE;
                }
            }
            let stop_at = if timed && pos < indexed {
                ((pos / ZONE + 1) * ZONE).min(indexed)
            } else {
                u64::MAX
            };
            let mut next = None;
            let mut reached_stop = false;
            reader.scan(pos, |index, bytes| {
                if index >= stop_at {
                    reached_stop = true;
                    return Ok(ControlFlow::Break(()));
                }
                if page.events.len() >= limit || page.examined >= budget {
                    next = Some(index);
                    return Ok(ControlFlow::Break(()));
                }
                page.examined += 1;
                // The quick read of the indexed fields rules most events out; the few left
                // are checked with the full parse.
                let matches = filter.is_empty()
                    || (Fields::read(bytes).is_some_and(|f| f.matches(filter))
                        && StoredEvent::parse(bytes).is_ok_and(|s| filter.matches(&s)));
                if matches {
                    page.events.push(bytes.to_vec());
                }
                Ok(ControlFlow::Continue(()))
            })?;
            if next.is_some() {
                page.next = next;
                return Ok(());
            }
            if !reached_stop {
                // The log's end.
                page.next = None;
                return Ok(());
            }
            pos = stop_at;
        }
    }
}

/// The part of the log a posting scan covers and the page's limits.
#[derive(Debug)]
struct Bounds {
    from: u64,
    to: u64,
    limit: usize,
    budget: u64,
}

/// Widens the zone `key` of `table` to hold `[lo, hi]`.
fn merge_zone(
    table: &mut redb::Table<'_, u64, (i64, i64)>,
    key: u64,
    lo: i64,
    hi: i64,
) -> std::result::Result<(), redb::StorageError> {
    let merged = match table.get(key)? {
        Some(old) => {
            let (olo, ohi) = old.value();
            (olo.min(lo), ohi.max(hi))
        }
        None => (lo, hi),
    };
    table.insert(key, merged)?;
    Ok(())
}
