//! The active segment: the one file the writer appends to.
//!
//! Small commits write into space zero-filled ahead of time, so that `fdatasync` has no
//! file-size change to journal; large commits simply extend the file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{IoContext, Result};
use crate::layout::{self, Layout};
use crate::segment;

/// How much zeroed space is added ahead of small commits.
const PREALLOCATE: u64 = 1 << 20;
/// Commits at least this large extend the file instead of using zeroed space.
const LARGE_COMMIT: u64 = 256 << 10;

#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub path: PathBuf,
    pub idx_path: PathBuf,
    pub file: Arc<File>,
    pub idx: File,
    pub first_index: u64,
    pub created_micros: i64,
    /// Records in the segment.
    pub count: u64,
    /// Offset just past the last record.
    pub pos: u64,
    /// Length of the file (records plus zeroed space).
    pub allocated: u64,
    /// `.idx` entries of durable records not yet written to the `.idx` file.
    pub idx_pending: Vec<u8>,
    /// Entries in the `.idx` file.
    pub idx_written: u64,
}

impl ActiveSegment {
    /// Creates a new, empty segment whose first record will have `first_index`.
    pub(crate) fn create(layout: &Layout, first_index: u64, now_micros: i64) -> Result<Self> {
        let path = layout.segment(first_index);
        let idx_path = layout.segment_index(first_index);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx(|| format!("creating {}", path.display()))?;
        let header = segment::encode_header(first_index, now_micros);
        let made = file
            .write_all_at(&header, 0)
            .and_then(|()| file.sync_all())
            .ctx(|| format!("writing {}", path.display()))
            .and_then(|()| {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&idx_path)
                    .ctx(|| format!("creating {}", idx_path.display()))
            })
            .and_then(|idx| layout::sync_dir(&layout.segments_dir()).map(|()| idx));
        let idx = match made {
            Ok(idx) => idx,
            Err(e) => {
                // Leave no half-made segment behind (disk full): it would not open.
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(&idx_path);
                return Err(e);
            }
        };
        Ok(Self {
            path,
            idx_path,
            file: Arc::new(file),
            idx,
            first_index,
            created_micros: now_micros,
            count: 0,
            pos: segment::HEADER_LEN,
            allocated: segment::HEADER_LEN,
            idx_pending: Vec::new(),
            idx_written: 0,
        })
    }

    /// Writes `bytes` (whole framed records) after the last record. Not yet durable.
    /// On failure the bytes that may have landed are zeroed again, so the segment is as
    /// it was; the error says whether that worked.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        let end = self.pos + len;
        if end > self.allocated && len < LARGE_COMMIT {
            let target = end + PREALLOCATE;
            let zeros = vec![0u8; (target - self.allocated) as usize];
            self.file
                .write_all_at(&zeros, self.allocated)
                .ctx(|| format!("preallocating {}", self.path.display()))?;
            self.allocated = target;
        }
        if let Err(e) = self.file.write_all_at(bytes, self.pos) {
            let zeros = vec![0u8; bytes.len()];
            let _ = self.file.write_all_at(&zeros, self.pos);
            if self.allocated < end {
                let _ = self.file.set_len(self.allocated.max(self.pos));
            }
            return Err(e).ctx(|| format!("writing {}", self.path.display()));
        }
        self.allocated = self.allocated.max(end);
        Ok(())
    }

    /// Writes queued `.idx` entries (no fsync: the active `.idx` is rebuilt on open).
    pub(crate) fn flush_idx(&mut self) -> Result<()> {
        if self.idx_pending.is_empty() {
            return Ok(());
        }
        self.idx
            .write_all_at(
                &self.idx_pending,
                self.idx_written * segment::IDX_ENTRY as u64,
            )
            .ctx(|| format!("writing {}", self.idx_path.display()))?;
        self.idx_written += (self.idx_pending.len() / segment::IDX_ENTRY) as u64;
        self.idx_pending.clear();
        Ok(())
    }

    /// Makes written records durable.
    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .ctx(|| format!("syncing {}", self.path.display()))
    }

    /// Cuts the zeroed space and makes the segment and its index durable: it is sealed.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.file
            .set_len(self.pos)
            .and_then(|()| self.file.sync_all())
            .ctx(|| format!("sealing {}", self.path.display()))?;
        self.idx
            .sync_all()
            .ctx(|| format!("syncing {}", self.idx_path.display()))?;
        self.allocated = self.pos;
        Ok(())
    }
}
