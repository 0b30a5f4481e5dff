//! The query index: answers "events matching these filters, from this index on" without
//! reading the whole log.
//!
//! Derived data in `DIR/index/postings.redb` (redb: a pure-Rust, ACID, copy-on-write
//! B-tree with MVCC readers, so queries never wait for the indexer). It can be deleted at
//! any time and is rebuilt from the log. It holds:
//!
//! - postings: one empty-valued key per (field, value, event index), for `category`,
//!   `action`, `actor.user` and `source.ip`: `tag u8 | len u16 BE | value | index u64 BE`.
//!   Keys sort by field, value, then index, so one range scan yields a value's events in
//!   log order from any cursor.
//! - zone maps: the min and max event `time` of each block of 4,096 indexes, so a
//!   time-range query skips blocks that cannot match.
//! - `next`: every index below it is indexed.
//!
//! A query picks the most selective indexed filter (user, then ip, action, category) to
//! drive a posting scan, reads each candidate and checks every filter on the event itself
//! (postings are a superset: long values are truncated), then scans the unindexed tail
//! linearly. Without such a filter it scans the log, skipping blocks by zone map. Every
//! page examines at most `budget` events and returns a cursor to continue.
//!
//! It does not store events (it reads them through `LogReader`), decide who may query,
//! or touch the log's files.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use thiserror::Error;
use vellum_event::{Filter, StoredEvent};
use vellum_store::{Layout, LogReader, StoreError};

const POSTINGS: TableDefinition<&[u8], ()> = TableDefinition::new("postings");
const ZONES: TableDefinition<u64, (i64, i64)> = TableDefinition::new("zones");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Indexes per zone-map block.
pub const ZONE: u64 = 4096;
/// Longest value kept in a posting key; longer ones are truncated (candidates are checked).
const MAX_VALUE: usize = 512;
/// Every this many batches, the index commit is made durable.
const DURABLE_EVERY: u32 = 16;

const TAG_CATEGORY: u8 = 1;
const TAG_ACTION: u8 = 2;
const TAG_USER: u8 = 3;
const TAG_IP: u8 = 4;

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
    db: RwLock<Option<Database>>,
    path: PathBuf,
    batches: std::sync::atomic::AtomicU32,
    failed: AtomicBool,
}

impl Index {
    /// Opens (or creates) the index of the log laid out at `layout`.
    pub fn open(layout: &Layout) -> Result<Index> {
        let dir = layout.index_dir();
        let path = dir.join("postings.redb");
        let db_err = |e: &dyn std::fmt::Display| IndexError::Db {
            path: path.clone(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(&dir).map_err(|e| db_err(&e))?;
        let db = Self::create(&path).map_err(|e| db_err(&e))?;
        Ok(Index {
            db: RwLock::new(Some(db)),
            path: path.clone(),
            batches: Default::default(),
            failed: AtomicBool::new(false),
        })
    }

    /// Opens the database file and makes sure its tables exist, so readers find them.
    fn create(path: &std::path::Path) -> std::result::Result<Database, String> {
        let db = Database::create(path).map_err(|e| e.to_string())?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            txn.open_table(POSTINGS).map_err(|e| e.to_string())?;
            txn.open_table(ZONES).map_err(|e| e.to_string())?;
            txn.open_table(META).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
        Ok(db)
    }

    /// Runs `f` on the open database.
    fn with_db<T>(&self, f: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
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
        *guard = Some(Self::create(&self.path).map_err(|e| self.err(e))?);
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
                .get("next")
                .map_err(|e| self.err(e))?
                .map_or(0, |v| v.value()))
        })
    }

    /// Indexes up to `max` events past what is indexed; returns how many it indexed.
    pub fn catch_up(&self, reader: &LogReader, max: u64) -> Result<u64> {
        self.reopen_if_failed()?;
        let start = self.indexed()?.max(reader.first_index()?);
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut zones: Vec<(u64, i64, i64)> = Vec::new();
        let mut end = start;
        reader.scan(start, |index, bytes| {
            if index >= start + max {
                return Ok(ControlFlow::Break(()));
            }
            end = index + 1;
            let Ok(ev) = StoredEvent::parse(bytes) else {
                // Verification reports such a record; the index just cannot use it.
                return Ok(ControlFlow::Continue(()));
            };
            let e = &ev.event;
            keys.push(key(TAG_CATEGORY, e.category.as_str(), index));
            keys.push(key(TAG_ACTION, &e.action, index));
            if let Some(u) = e.user() {
                keys.push(key(TAG_USER, u, index));
            }
            if let Some(ip) = e.ip() {
                keys.push(key(TAG_IP, ip, index));
            }
            let t = e.time.unix_micros() as i64;
            let block = index / ZONE;
            match zones.last_mut() {
                Some((b, lo, hi)) if *b == block => {
                    *lo = (*lo).min(t);
                    *hi = (*hi).max(t);
                }
                _ => zones.push((block, t, t)),
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if end == start {
            return Ok(0);
        }
        keys.sort_unstable();
        let written = self.with_db(|db| self.write_batch(db, &keys, &zones, end));
        if written.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        written.map(|()| end - start)
    }

    fn write_batch(
        &self,
        db: &Database,
        keys: &[Vec<u8>],
        zones: &[(u64, i64, i64)],
        end: u64,
    ) -> Result<()> {
        let mut txn = db.begin_write().map_err(|e| self.err(e))?;
        let n = self.batches.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(DURABLE_EVERY) {
            txn.set_durability(Durability::None)
                .map_err(|e| self.err(e))?;
        }
        {
            let mut postings = txn.open_table(POSTINGS).map_err(|e| self.err(e))?;
            for k in keys {
                postings.insert(k.as_slice(), ()).map_err(|e| self.err(e))?;
            }
            let mut z = txn.open_table(ZONES).map_err(|e| self.err(e))?;
            for &(block, lo, hi) in zones {
                let merged = match z.get(block).map_err(|e| self.err(e))? {
                    Some(old) => {
                        let (olo, ohi) = old.value();
                        (olo.min(lo), ohi.max(hi))
                    }
                    None => (lo, hi),
                };
                z.insert(block, merged).map_err(|e| self.err(e))?;
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("next", end).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Events matching `filter` from index `from` on: at most `limit`, reading at most
    /// `budget` events.
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
        let mut page = Page::default();
        let driver = [
            (TAG_USER, filter.user.as_deref()),
            (TAG_IP, filter.ip.as_deref()),
            (TAG_ACTION, filter.action.as_deref()),
            (TAG_CATEGORY, filter.category.map(|c| c.as_str())),
        ]
        .into_iter()
        .find_map(|(tag, v)| v.map(|v| (tag, v)));
        let tail_from = match driver {
            Some((tag, value)) if from < indexed => {
                let lo = key(tag, value, from);
                let hi = key(tag, value, indexed);
                let guard = self.db.read().map_err(|_| self.err("lock poisoned"))?;
                let db = guard
                    .as_ref()
                    .ok_or_else(|| self.err("reopening after a failed write"))?;
                let txn = db.begin_read().map_err(|e| self.err(e))?;
                let postings = txn.open_table(POSTINGS).map_err(|e| self.err(e))?;
                let range = postings
                    .range::<&[u8]>(lo.as_slice()..hi.as_slice())
                    .map_err(|e| self.err(e))?;
                for item in range {
                    let (k, _) = item.map_err(|e| self.err(e))?;
                    let Some(index) = index_of_key(k.value()) else {
                        continue;
                    };
                    if page.events.len() >= limit || page.examined >= budget {
                        page.next = Some(index);
                        return Ok(page);
                    }
                    page.examined += 1;
                    let bytes = match reader.read(index) {
                        Ok(b) => b,
                        Err(StoreError::Pruned { .. }) => continue,
                        Err(e) => return Err(e.into()),
                    };
                    if StoredEvent::parse(&bytes).is_ok_and(|s| filter.matches(&s)) {
                        page.events.push(bytes);
                    }
                }
                indexed
            }
            _ => from,
        };
        self.scan(reader, filter, tail_from, indexed, limit, budget, &mut page)?;
        Ok(page)
    }

    /// Reads events from `from` on, checking `filter`, skipping indexed blocks whose zone
    /// map rules out the time range.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &self,
        reader: &LogReader,
        filter: &Filter,
        from: u64,
        indexed: u64,
        limit: usize,
        budget: u64,
        page: &mut Page,
    ) -> Result<()> {
        let timed = filter.since.is_some() || filter.until.is_some();
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
                    let since = filter.since.map(|t| t.unix_micros() as i64);
                    let until = filter.until.map(|t| t.unix_micros() as i64);
                    let possible = since.is_none_or(|s| hi >= s) && until.is_none_or(|u| lo < u);
                    if possible {
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
            let mut last = pos;
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
                last = index + 1;
                if filter.is_empty() || StoredEvent::parse(bytes).is_ok_and(|s| filter.matches(&s))
                {
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
                let _ = last;
                return Ok(());
            }
            pos = stop_at;
        }
    }
}

fn key(tag: u8, value: &str, index: u64) -> Vec<u8> {
    let v = truncate(value);
    let mut k = Vec::with_capacity(1 + 2 + v.len() + 8);
    k.push(tag);
    k.extend_from_slice(&(v.len() as u16).to_be_bytes());
    k.extend_from_slice(v);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn truncate(value: &str) -> &[u8] {
    let b = value.as_bytes();
    &b[..b.len().min(MAX_VALUE)]
}

fn index_of_key(k: &[u8]) -> Option<u64> {
    let tail = k.get(k.len().checked_sub(8)?..)?;
    let mut b = [0u8; 8];
    b.copy_from_slice(tail);
    Some(u64::from_be_bytes(b))
}
