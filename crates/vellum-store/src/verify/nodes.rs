//! The tree files, read level by level as the fold reaches them, compared node by node with
//! the recomputed tree.

use std::fs::File;
use std::io::Read;

use vellum_merkle::{Hash, NodeId};

use crate::layout::Layout;

/// Reads the stored tree levels sequentially to compare them with recomputed nodes.
pub(super) struct NodeCursors {
    layout: Layout,
    levels: Vec<Option<Cursor>>,
    /// Nodes over leaves below this size must be stored (a checkpoint of it was signed
    /// after the tree files were synced).
    required: u64,
}

struct Cursor {
    file: File,
    /// What was read is `buf[..valid]`; the buffer is reused, not reallocated, per read.
    buf: Vec<u8>,
    valid: usize,
    /// Node index of buf[0].
    start: u64,
}

/// How much of the file of level 0 is read at a time; each level above reads half as much
/// as the one below (it holds half as many nodes), down to 1/256.
const LEVEL_0_READ: usize = 1 << 20;

impl NodeCursors {
    pub(super) fn new(layout: &Layout, required: u64) -> Self {
        Self {
            layout: layout.clone(),
            levels: Vec::new(),
            required,
        }
    }

    /// Compares a recomputed node with the stored one; returns what is wrong, if anything.
    pub(super) fn check(&mut self, id: NodeId, hash: &Hash) -> Option<String> {
        let level = id.level as usize;
        while self.levels.len() <= level {
            self.levels.push(None);
        }
        let layout = &self.layout;
        // Only formatted on the error paths: this runs once per tree node.
        let path = || layout.tree_level(id.level);
        if self.levels[level].is_none() {
            let path = path();
            let mut file = match File::open(&path) {
                Ok(f) => f,
                Err(_) => {
                    let covered = (id.index + 1)
                        .checked_shl(u32::from(id.level))
                        .unwrap_or(u64::MAX);
                    // A level the writer had not created yet when it stopped is only
                    // missing if a checkpoint covers it.
                    return (covered <= self.required)
                        .then(|| format!("tree file {} is missing", path.display()));
                }
            };
            if std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(id.index * 32)).is_err() {
                return Some(format!("tree file {} is unreadable", path.display()));
            }
            self.levels[level] = Some(Cursor {
                file,
                buf: Vec::new(),
                valid: 0,
                start: id.index,
            });
        }
        let c = self.levels[level].as_mut()?;
        let at = (id.index.checked_sub(c.start)? * 32) as usize;
        if at + 32 > c.valid {
            // Keep what is left from `at` on, read more after it.
            let keep = at.min(c.valid);
            c.buf.copy_within(keep..c.valid, 0);
            c.valid -= keep;
            c.start = id.index;
            let want = c.valid + (LEVEL_0_READ >> level.min(8));
            if c.buf.len() < want {
                c.buf.resize(want, 0);
            }
            match c.file.read(&mut c.buf[c.valid..want]) {
                Ok(n) => c.valid += n,
                Err(e) => return Some(format!("reading {}: {e}", path().display())),
            }
            if c.valid < 32 {
                let covered = (id.index + 1)
                    .checked_shl(u32::from(id.level))
                    .unwrap_or(u64::MAX);
                if covered <= self.required {
                    return Some(format!(
                        "tree file {} ends before node {} although a checkpoint covers it: it was truncated",
                        path().display(),
                        id.index
                    ));
                }
                // Past the end of what was written: the leaf is newer than the tree files
                // (the writer is behind or was killed); nothing stored to compare with.
                return None;
            }
        }
        let at = ((id.index - c.start) * 32) as usize;
        let stored = c.buf[..c.valid].get(at..at + 32)?;
        if stored != hash.0 {
            return Some(if id.level == 0 {
                "the event's leaf hash differs from the one in the tree: the event was changed"
                    .to_string()
            } else {
                format!(
                    "tree node {} of level {} in {} differs from the recomputed one",
                    id.index,
                    id.level,
                    path().display()
                )
            });
        }
        None
    }
}
