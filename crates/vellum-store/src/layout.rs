//! Where everything lives in a data directory, and the small helpers that make file
//! creation durable (fsync the file, then its directory).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result, StoreError, SyncContext};

pub(crate) const META: &str = "vellum.json";
pub(crate) const LOCK: &str = "LOCK";
pub(crate) const SIGNING_KEY: &str = "signing.key";
pub(crate) const CHECKPOINTS: &str = "checkpoints.log";
pub(crate) const PRUNES: &str = "prunes.log";
/// The pruning a prune announced and has not recorded yet (`retention`).
pub(crate) const PRUNE_PENDING: &str = "prune-pending.json";
pub(crate) const KEYS: &str = "keys.json";
pub(crate) const SEGMENTS: &str = "segments";
pub(crate) const TREE: &str = "tree";
/// Copies of torn tails cut by recovery.
pub(crate) const RECOVERED: &str = "recovered";

/// The paths of one data directory.
#[derive(Clone, Debug)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `DIR/index/`: derived query indexes, owned by `vellum-index`; deleting it loses
    /// nothing (it is rebuilt from the log).
    pub fn index_dir(&self) -> PathBuf {
        self.root.join("index")
    }
    /// Whether a log is (still) here: its `vellum.json` is.
    pub fn holds_log(&self) -> bool {
        self.file(META).is_file()
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
    pub(crate) fn segments_dir(&self) -> PathBuf {
        self.root.join(SEGMENTS)
    }
    pub(crate) fn tree_dir(&self) -> PathBuf {
        self.root.join(TREE)
    }
    pub(crate) fn segment(&self, first_index: u64) -> PathBuf {
        self.segments_dir().join(format!("{first_index:020}.seg"))
    }
    pub(crate) fn segment_index(&self, first_index: u64) -> PathBuf {
        self.segments_dir().join(format!("{first_index:020}.idx"))
    }
    pub(crate) fn tree_level(&self, level: u8) -> PathBuf {
        self.tree_dir().join(format!("level-{level:02}.hashes"))
    }

    /// The first indexes of the segment files present, in order. Files that are not
    /// `<20 digits>.seg` or `.idx` are reported as foreign.
    pub(crate) fn list_segments(&self) -> Result<Vec<u64>> {
        Ok(self
            .segment_files()?
            .into_iter()
            .filter_map(|(first, is_seg)| is_seg.then_some(first))
            .collect())
    }

    /// The first index of every segment with a file in the segments directory, `.seg` or
    /// `.idx` (a `.idx` can outlive its `.seg` when removing them was interrupted), each
    /// once, ascending.
    pub(crate) fn segment_file_firsts(&self) -> Result<Vec<u64>> {
        let mut firsts: Vec<u64> = self.segment_files()?.into_iter().map(|(f, _)| f).collect();
        firsts.dedup();
        Ok(firsts)
    }

    /// Every segment file: (first index, whether it is the `.seg`), ascending; a foreign
    /// file is an error (temporary `.tmp` files are skipped).
    fn segment_files(&self) -> Result<Vec<(u64, bool)>> {
        let dir = self.segments_dir();
        let mut files = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
            Err(e) => return Err(e).ctx(|| format!("reading {}", dir.display())),
        };
        for entry in entries {
            let entry = entry.ctx(|| format!("reading {}", dir.display()))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let parsed = name
                .strip_suffix(".seg")
                .or_else(|| name.strip_suffix(".idx"))
                .filter(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|stem| stem.parse::<u64>().ok());
            match parsed {
                Some(first) => files.push((first, name.ends_with(".seg"))),
                None if name.ends_with(".tmp") => {}
                None => {
                    return Err(StoreError::corrupt(
                        entry.path(),
                        "a foreign file in the segments directory",
                    ));
                }
            }
        }
        files.sort_unstable();
        Ok(files)
    }

    /// Removes a segment's `.seg`, then its `.idx` (either may be gone already).
    pub(crate) fn remove_segment_files(&self, first: u64) -> Result<()> {
        for p in [self.segment(first), self.segment_index(first)] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("removing {}", p.display())),
            }
        }
        Ok(())
    }
}

/// Fsyncs a directory so that the names created or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .ctx(|| format!("opening directory {}", dir.display()))?
        .sync_all()
        .sync_ctx(|| format!("syncing directory {}", dir.display()))
}

/// Creates a directory (and parents) durably.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// Replaces a file's contents atomically and durably: write a temporary file, fsync it,
/// rename it over the target, fsync the directory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .ctx(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)
        .ctx(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .sync_ctx(|| format!("syncing {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("renaming {} into place", tmp.display()))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}
