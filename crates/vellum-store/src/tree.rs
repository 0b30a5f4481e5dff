//! The persisted Merkle tree: one file per level, `tree/level-LL.hashes`, where entry `i`
//! (32 bytes) of level `L` is the hash of the complete subtree over leaves
//! `[i << L, (i + 1) << L)`. Level 0 holds the leaf hashes.
//!
//! Only complete subtrees are stored; proofs that need the tree's ragged right edge compute
//! it from them. The files are derived data: the writer appends to them without fsync and
//! syncs them before each checkpoint is signed, so that after a crash they are intact up to
//! the latest checkpoint's size and are rebuilt from the segments past it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use vellum_merkle::{Hash, NodeId, NodeSource};

use crate::error::{IoContext, Result, StoreError, SyncContext};
use crate::layout::{self, Layout};

/// Enough levels for 2^63 leaves.
pub(crate) const MAX_LEVELS: usize = 64;

/// Read access to the tree files, for proofs. Files are opened on first use.
#[derive(Debug)]
pub(crate) struct TreeReader {
    layout: Layout,
    /// Set once a level file opened; a level that does not exist yet is retried later.
    files: Vec<OnceLock<File>>,
}

impl TreeReader {
    pub(crate) fn new(layout: Layout) -> Self {
        Self {
            layout,
            files: (0..MAX_LEVELS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn file(&self, level: u8) -> Option<&File> {
        let slot = self.files.get(level as usize)?;
        if let Some(f) = slot.get() {
            return Some(f);
        }
        let f = File::open(self.layout.tree_level(level)).ok()?;
        Some(slot.get_or_init(|| f))
    }

    /// How many entries a level file holds.
    pub(crate) fn level_len(&self, level: u8) -> Result<u64> {
        match self.file(level) {
            None => Ok(0),
            Some(f) => Ok(f
                .metadata()
                .ctx(|| format!("reading {}", self.layout.tree_level(level).display()))?
                .len()
                / 32),
        }
    }
}

impl NodeSource for TreeReader {
    type Error = StoreError;
    fn node(&self, id: NodeId) -> Result<Hash, StoreError> {
        let path = || self.layout.tree_level(id.level);
        let file = self
            .file(id.level)
            .ok_or_else(|| StoreError::corrupt(path(), "tree level file is missing"))?;
        let mut h = [0u8; 32];
        let at = id
            .index
            .checked_mul(32)
            .ok_or_else(|| StoreError::corrupt(path(), "node index overflows"))?;
        file.read_exact_at(&mut h, at).map_err(|_| {
            StoreError::corrupt(
                path(),
                format!("node {} of level {} is missing", id.index, id.level),
            )
        })?;
        Ok(Hash(h))
    }
}

/// The writer's side: appends nodes as the frontier completes them.
#[derive(Debug)]
pub(crate) struct TreeWriter {
    layout: Layout,
    levels: Vec<Level>,
    /// A level's file was made since the tree directory was last synced.
    dir_unsynced: bool,
}

#[derive(Debug)]
struct Level {
    file: File,
    /// Entries on disk (written, not necessarily synced).
    written: u64,
    pending: Vec<u8>,
    dirty: bool,
}

impl TreeWriter {
    /// Opens the tree files and cuts every level back to what a tree of `size` leaves holds.
    pub(crate) fn open(layout: Layout, size: u64) -> Result<Self> {
        crate::layout::create_dir(&layout.tree_dir())?;
        let mut levels = Vec::new();
        for level in 0..MAX_LEVELS as u8 {
            let entries = size >> level;
            let path = layout.tree_level(level);
            if entries == 0 && !path.exists() {
                break;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .ctx(|| format!("opening {}", path.display()))?;
            let len = file
                .metadata()
                .ctx(|| format!("reading {}", path.display()))?
                .len();
            if len < entries * 32 {
                return Err(StoreError::corrupt(
                    &path,
                    format!(
                        "holds {} nodes, the checkpointed tree needs {entries}",
                        len / 32
                    ),
                ));
            }
            if len != entries * 32 {
                // Nodes past the checkpoint, which are cut here and hashed again: a
                // writeback error of theirs that the writer never saw would be reported to
                // the next sync of the file.
                let _ = file.sync_data();
                file.set_len(entries * 32)
                    .ctx(|| format!("truncating {}", path.display()))?;
            }
            levels.push(Level {
                file,
                written: entries,
                pending: Vec::new(),
                dirty: len != entries * 32,
            });
        }
        Ok(Self {
            layout,
            levels,
            dir_unsynced: false,
        })
    }

    /// Makes sure the file of every level a tree of `size` leaves has a node on exists, its
    /// directory entry durable: called before a commit is written, so that a file that
    /// cannot be created (a full disk, no inodes left) fails the commit before anything of
    /// it is durable, instead of after, when its events could only be answered wrongly.
    pub(crate) fn ensure_levels(&mut self, size: u64) -> Result<()> {
        let Some(top) = size.checked_ilog2() else {
            return Ok(());
        };
        while self.levels.len() <= top as usize {
            self.add_level()?;
        }
        self.sync_dir()
    }

    /// Makes the entries of the level files made so far durable (again, after a failure).
    fn sync_dir(&mut self) -> Result<()> {
        if self.dir_unsynced {
            layout::sync_dir(&self.layout.tree_dir())?;
            self.dir_unsynced = false;
        }
        Ok(())
    }

    fn add_level(&mut self) -> Result<()> {
        let l = self.levels.len() as u8;
        let path = self.layout.tree_level(l);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .ctx(|| format!("creating {}", path.display()))?;
        self.levels.push(Level {
            file,
            written: 0,
            pending: Vec::new(),
            dirty: true,
        });
        self.dir_unsynced = true;
        Ok(())
    }

    /// Queues one node; nodes of a level must come in index order. (Its level's file is
    /// made here if [`TreeWriter::ensure_levels`] was not asked first.)
    pub(crate) fn push(&mut self, id: NodeId, hash: &Hash) -> Result<()> {
        let level = id.level as usize;
        while self.levels.len() <= level {
            self.add_level()?;
        }
        let l = &mut self.levels[level];
        debug_assert_eq!(id.index, l.written + (l.pending.len() / 32) as u64);
        l.pending.extend_from_slice(&hash.0);
        Ok(())
    }

    /// Writes queued nodes to the files (no fsync).
    pub(crate) fn flush(&mut self) -> Result<()> {
        for (n, l) in self.levels.iter_mut().enumerate() {
            if l.pending.is_empty() {
                continue;
            }
            l.file
                .write_all_at(&l.pending, l.written * 32)
                .ctx(|| format!("writing {}", self.layout.tree_level(n as u8).display()))?;
            l.written += (l.pending.len() / 32) as u64;
            l.pending.clear();
            l.dirty = true;
        }
        Ok(())
    }

    /// Flushes and fsyncs every level written since the last sync (and the directory, if a
    /// level's file was made since it was synced).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.sync_dir()?;
        for (n, l) in self.levels.iter_mut().enumerate() {
            if l.dirty {
                l.file.sync_data().sync_ctx(|| {
                    format!("syncing {}", self.layout.tree_level(n as u8).display())
                })?;
                l.dirty = false;
            }
        }
        Ok(())
    }
}

impl Drop for TreeWriter {
    fn drop(&mut self) {
        // Best effort: the files are rebuilt from the segments if this does not happen.
        let _ = self.flush();
        for l in &mut self.levels {
            let _ = l.file.flush();
        }
    }
}
