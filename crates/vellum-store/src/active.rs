//! The active segment: the one file the writer appends to.
//!
//! Small commits write into space zero-filled ahead of time, so that `fdatasync` has no
//! file-size change to journal. Large commits extend the file with direct I/O
//! (`O_DIRECT`): their bytes go from the writer's buffer to the disk without being copied
//! into the page cache, which for a bulk load costs more CPU than framing and hashing
//! (fresh pages to allocate, a copy, writeback). A direct write covers whole 4 KiB blocks:
//! it starts with the bytes already in the block the commit begins in (kept in memory,
//! `tail`), rewritten unchanged, and ends with zeros to the end of the last block — the same
//! zeros that end the written part of a preallocated segment. A large commit can be
//! written later, on the sync thread ([`ActiveSegment::write_later`]): its space is
//! reserved first (`fallocate`, so a full disk fails it here and changes nothing), and
//! the writes are performed in the order they were laid out. Where the file system refuses
//! direct I/O (probed when the segment is opened), every commit goes through the page cache.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{FallocateFlags, OFlags};
use rustix::io::Errno;

use crate::error::{IoContext, Result, SyncContext};
use crate::layout::{self, Layout};
use crate::segment;

/// How much zeroed space is added ahead of small commits.
const PREALLOCATE: u64 = 1 << 20;
/// What zeroed space is written from. A static of zeros stays mapped to the kernel's one
/// zero page: no allocation, no page faults and no `memset` each time space is added (a
/// fresh `vec![0; 1 MiB]` for every MiB cost all three on the writer thread).
static ZEROS: [u8; PREALLOCATE as usize] = [0; PREALLOCATE as usize];
/// How much zeroed, durable space an idle writer keeps ahead of the records, so that a
/// burst of small commits after a pause neither writes nor syncs zeros.
const IDLE_AHEAD: u64 = 4 << 20;
/// Commits at least this large extend the file instead of using zeroed space, with direct
/// I/O where the file system allows it.
const LARGE_COMMIT: u64 = 256 << 10;
/// Direct I/O needs the buffer's address, the file offset and the length aligned to the
/// device's logical block; 4 KiB covers every common device.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// A commit's framed records, laid out in memory as the segment will write them (see
/// [`ActiveSegment::lay_out`]). Reused from commit to commit.
#[derive(Debug, Default)]
pub(crate) struct CommitBuf {
    raw: Vec<u8>,
    /// Where the write starts in `raw` (a `DIRECT_ALIGN` boundary for a direct write).
    start: usize,
    /// Bytes already in the segment before the records, rewritten unchanged (direct only).
    head: usize,
    /// The framed records.
    len: usize,
    /// Zeros after the records, to the end of their last block (direct only).
    pad: usize,
    direct: bool,
}

impl CommitBuf {
    /// The records' bytes, to be overwritten whole by framing (they hold whatever the
    /// buffer held before).
    pub(crate) fn records_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start + self.head..][..self.len]
    }

    pub(crate) fn records(&self) -> &[u8] {
        &self.raw[self.start + self.head..][..self.len]
    }

    /// Laid out for a direct write.
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Everything the write covers: head, records, padding.
    fn whole(&self) -> &[u8] {
        &self.raw[self.start..][..self.head + self.len + self.pad]
    }
}

/// A direct write of a commit, laid out and its space reserved, to be performed later
/// (on the sync thread, before the `fdatasync` that makes it durable). Writes must be
/// performed in the order they were made: each rewrites the start of the block the one
/// before it ended in.
#[derive(Debug)]
pub(crate) struct DirectWrite {
    file: Arc<File>,
    at: u64,
    buf: CommitBuf,
}

impl DirectWrite {
    pub(crate) fn perform(&self) -> std::io::Result<()> {
        self.file.write_all_at(self.buf.whole(), self.at)
    }

    /// The buffer, for the next commit.
    pub(crate) fn into_buf(self) -> CommitBuf {
        self.buf
    }
}

/// The segment opened a second time for direct writes, or `None` where the file system
/// refuses `O_DIRECT`.
fn open_direct(path: &Path) -> Option<Arc<File>> {
    OpenOptions::new()
        .write(true)
        .custom_flags(OFlags::DIRECT.bits() as i32)
        .open(path)
        .ok()
        .map(Arc::new)
}

#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub path: PathBuf,
    pub idx_path: PathBuf,
    pub file: Arc<File>,
    /// The same file opened with `O_DIRECT`, for large commits.
    direct: Option<Arc<File>>,
    pub idx: File,
    pub first_index: u64,
    pub created_micros: i64,
    /// Records in the segment.
    pub count: u64,
    /// Offset just past the last record.
    pos: u64,
    /// The bytes before `pos` in the 4 KiB block `pos` is in: what a direct write starting
    /// at `pos` rewrites (from memory: the write before it may not be performed yet).
    tail: Vec<u8>,
    /// Length of the file (records plus zeroed space).
    allocated: u64,
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
            .ctx(|| format!("writing {}", path.display()))
            .and_then(|()| {
                file.sync_all()
                    .sync_ctx(|| format!("syncing {}", path.display()))
            })
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
        Self::reopen(
            path,
            idx_path,
            file,
            idx,
            (first_index, now_micros),
            0,
            (segment::HEADER_LEN, segment::HEADER_LEN),
        )
    }

    /// The active segment as recovery found it (or as just created): `count` records
    /// ending at `pos`, the file `allocated` bytes long (zeros after `pos`).
    pub(crate) fn reopen(
        path: PathBuf,
        idx_path: PathBuf,
        file: File,
        idx: File,
        (first_index, created_micros): (u64, i64),
        count: u64,
        (pos, allocated): (u64, u64),
    ) -> Result<Self> {
        let in_block = pos % DIRECT_ALIGN as u64;
        let mut tail = vec![0u8; in_block as usize];
        file.read_exact_at(&mut tail, pos - in_block)
            .ctx(|| format!("reading {}", path.display()))?;
        let mut seg = Self {
            direct: open_direct(&path),
            path,
            idx_path,
            file: Arc::new(file),
            idx,
            first_index,
            created_micros,
            count,
            pos,
            tail,
            allocated,
            idx_pending: Vec::new(),
            idx_written: count,
        };
        seg.probe_direct();
        Ok(seg)
    }

    /// Keeps the direct descriptor only if a direct write works here: rewrites the block
    /// `pos` is in as it is (its bytes up to `pos`, zeros after), or, when `pos` starts a
    /// block, writes that block's zeros (past the records, where zeros are). Writes handed
    /// to the sync thread then fail only as any write can.
    fn probe_direct(&mut self) {
        if self.direct.is_some() {
            let mut buf = CommitBuf::default();
            self.lay_out_as(&mut buf, 0, true);
            let at = self.pos - buf.head as u64;
            let written = if buf.whole().is_empty() {
                // Nothing to rewrite, and an empty write proves nothing: a block of zeros.
                self.lay_out_as(&mut buf, DIRECT_ALIGN, true);
                self.direct.as_ref().is_some_and(|direct| {
                    let ok = direct.write_all_at(buf.whole(), at).is_ok();
                    if ok {
                        self.allocated = self.allocated.max(at + DIRECT_ALIGN as u64);
                    }
                    ok
                })
            } else {
                self.write(&buf).is_ok()
            };
            let works = written
                && rustix::fs::fallocate(
                    &*self.file,
                    FallocateFlags::empty(),
                    at,
                    DIRECT_ALIGN as u64,
                )
                .is_ok();
            if !works {
                self.direct = None;
            }
        }
    }

    /// Offset just past the last record.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Lays `buf` out for a commit of `len` bytes of framed records written at `pos`,
    /// ready to be framed in [`CommitBuf::records_mut`].
    pub(crate) fn lay_out(&self, buf: &mut CommitBuf, len: usize) {
        let direct = self.direct.is_some() && len as u64 >= LARGE_COMMIT;
        self.lay_out_as(buf, len, direct);
    }

    fn lay_out_as(&self, buf: &mut CommitBuf, len: usize, direct: bool) {
        let (head, pad) = if direct {
            let head = self.tail.len();
            (
                head,
                (DIRECT_ALIGN - (head + len) % DIRECT_ALIGN) % DIRECT_ALIGN,
            )
        } else {
            (0, 0)
        };
        let whole = head + len + pad;
        let need = whole + if direct { DIRECT_ALIGN } else { 0 };
        if buf.raw.capacity() < need {
            // Replaced, not grown: growing would copy the old bytes only to zero them, and
            // fresh pages cost the most here. Whole MiBs, so that a slightly larger commit
            // next time fits too.
            buf.raw = Vec::with_capacity(need.next_multiple_of(1 << 20));
        }
        // A reused buffer keeps the last commit's bytes where framing will overwrite every
        // one of them (zeroing them first cost a pass over the whole commit); only the bytes
        // past its old length are zeroed here.
        buf.raw.resize(need, 0);
        buf.start = if direct {
            (DIRECT_ALIGN - buf.raw.as_ptr().addr() % DIRECT_ALIGN) % DIRECT_ALIGN
        } else {
            0
        };
        (buf.head, buf.len, buf.pad, buf.direct) = (head, len, pad, direct);
        if direct {
            buf.raw[buf.start..][..head].copy_from_slice(&self.tail);
            buf.raw[buf.start + head + len..][..pad].fill(0);
        }
    }

    /// Writes the records laid out in `buf` (by [`ActiveSegment::lay_out`], since when
    /// nothing was written) after the last record, now. Not yet durable. On failure the
    /// bytes that may have landed are zeroed again, so the segment is as it was; the error
    /// says whether that worked.
    pub(crate) fn write(&mut self, buf: &CommitBuf) -> Result<()> {
        if buf.direct
            && let Some(direct) = &self.direct
        {
            let at = self.pos - buf.head as u64;
            let whole = buf.whole();
            match direct.write_all_at(whole, at) {
                Ok(()) => {
                    self.allocated = self.allocated.max(at + whole.len() as u64);
                    self.advance(buf.records());
                    return Ok(());
                }
                // The file system takes `O_DIRECT` at open but not this write: write
                // through the page cache from now on.
                Err(e) if e.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {
                    self.direct = None;
                    self.undo(buf.len as u64 + buf.pad as u64);
                }
                Err(e) => {
                    self.undo(buf.len as u64 + buf.pad as u64);
                    return Err(e).ctx(|| format!("writing {}", self.path.display()));
                }
            }
        }
        self.write_buffered(buf.records())
    }

    /// Like [`ActiveSegment::write`] for a buffer laid out for a direct write, except that
    /// the write is only made ready: its space is reserved and the segment counts it as
    /// written, and the caller performs it before the next `fdatasync` of the segment, after
    /// every direct write made before. A failure to reserve (a full disk) changes nothing.
    pub(crate) fn write_later(&mut self, buf: CommitBuf) -> Result<DirectWrite> {
        let direct = match &self.direct {
            Some(direct) if buf.direct => Arc::clone(direct),
            // The caller waits for earlier writes only before writing at once: writing
            // this one at once here could be overwritten by them.
            _ => {
                return Err(crate::error::StoreError::Internal(
                    "a commit not laid out for a direct write was handed to write_later".into(),
                ));
            }
        };
        let at = self.pos - buf.head as u64;
        let end = at + buf.whole().len() as u64;
        if end > self.allocated {
            let reserved = rustix::fs::fallocate(
                &*self.file,
                FallocateFlags::empty(),
                self.allocated,
                end - self.allocated,
            );
            match reserved {
                Ok(()) => self.allocated = end,
                Err(e) => {
                    let _ = self.file.set_len(self.allocated);
                    return Err(std::io::Error::from(e))
                        .ctx(|| format!("reserving space in {}", self.path.display()));
                }
            }
        }
        self.advance(buf.records());
        Ok(DirectWrite {
            file: direct,
            at,
            buf,
        })
    }

    /// Counts `records`, written (or to be) at `pos`.
    fn advance(&mut self, records: &[u8]) {
        let end = self.pos + records.len() as u64;
        let keep = (end % DIRECT_ALIGN as u64) as usize;
        match records.len().checked_sub(keep) {
            Some(from) => {
                self.tail.clear();
                self.tail.extend_from_slice(&records[from..]);
            }
            None => self.tail.extend_from_slice(records),
        }
        self.pos = end;
    }

    /// Writes zeros from the end of the zeroed space up to `target` (nothing if it reaches
    /// that far already).
    /// On failure (a full disk) the file is cut back to where it was, so that no partly
    /// written zeros hold space the next commit could use.
    fn zero_to(&mut self, target: u64) -> Result<()> {
        let mut at = self.allocated;
        while at < target {
            let n = (target - at).min(PREALLOCATE);
            if let Err(e) = self.file.write_all_at(&ZEROS[..n as usize], at) {
                let _ = self.file.set_len(self.allocated);
                return Err(e).ctx(|| format!("preallocating {}", self.path.display()));
            }
            at += n;
        }
        self.allocated = self.allocated.max(target);
        Ok(())
    }

    /// For an idle writer: makes sure [`IDLE_AHEAD`] bytes past the records are zeroed and
    /// durable (not past `limit`, where the segment is sealed anyway), so that the next small
    /// commits write and sync only their own bytes. Returns whether it wrote anything.
    pub(crate) fn zero_ahead_when_idle(&mut self, limit: u64) -> Result<bool> {
        let target = (self.pos + IDLE_AHEAD).min(limit);
        if self.allocated >= target.saturating_sub(IDLE_AHEAD / 2) {
            return Ok(false);
        }
        self.zero_to(target)?;
        self.sync()?;
        Ok(true)
    }

    fn write_buffered(&mut self, bytes: &[u8]) -> Result<()> {
        let len = bytes.len() as u64;
        let end = self.pos + len;
        if end > self.allocated && len < LARGE_COMMIT {
            self.zero_to(end + PREALLOCATE)?;
        }
        if let Err(e) = self.file.write_all_at(bytes, self.pos) {
            self.undo(len);
            return Err(e).ctx(|| format!("writing {}", self.path.display()));
        }
        self.allocated = self.allocated.max(end);
        self.advance(bytes);
        Ok(())
    }

    /// After a failed write of `len` bytes at `pos`: zeroes what may have landed and cuts
    /// what it may have added past the zeroed space (best effort: recovery cuts a torn
    /// tail anyway).
    fn undo(&self, len: u64) {
        let zeros = vec![0u8; len as usize];
        let _ = self.file.write_all_at(&zeros, self.pos);
        if self.allocated < self.pos + len {
            let _ = self.file.set_len(self.allocated.max(self.pos));
        }
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
            .sync_ctx(|| format!("syncing {}", self.path.display()))
    }

    /// Cuts the zeroed space and makes the segment and its index durable: it is sealed.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.file
            .set_len(self.pos)
            .ctx(|| format!("sealing {}", self.path.display()))?;
        self.file
            .sync_all()
            .sync_ctx(|| format!("sealing {}", self.path.display()))?;
        self.idx
            .sync_all()
            .sync_ctx(|| format!("syncing {}", self.idx_path.display()))?;
        self.allocated = self.pos;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{self, Frame};

    /// Commits, each as (records, payload bytes per record): small ones go through the page
    /// cache into zeroed space, large ones (from 256 KiB) are written direct, each starting
    /// wherever the one before ended.
    const CASES: &[(&str, &[(usize, usize)])] = &[
        ("small then large", &[(3, 100), (1, 300_000)]),
        (
            "large then small then large",
            &[(1, 262_139), (5, 333), (2, 200_000)],
        ),
        (
            "large ones back to back",
            &[(7, 40_001), (9, 33_333), (1, 500_000)],
        ),
        // 32 header bytes + 8 frame bytes + payload = 70 blocks exactly: no padding.
        (
            "large ending on a block boundary",
            &[(1, 70 * 4096 - 40), (2, 10)],
        ),
        (
            "small after large, inside its last block",
            &[(1, 270_000), (1, 10), (1, 20)],
        ),
        // The second reuses the first one's buffer: its padding is where records were.
        ("large after a larger one", &[(1, 500_000), (1, 300_000)]),
    ];

    fn payload(commit: usize, record: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ commit.wrapping_mul(7) ^ record) as u8 | 1)
            .collect()
    }

    /// How the commits of a case are written.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Way {
        /// What a file system that refuses `O_DIRECT` gives.
        PageCache,
        /// Large commits direct, written at once.
        Direct,
        /// Large commits direct, performed only when a write is made at once or at the end
        /// (as on the sync thread): their first block comes from memory.
        Later,
        /// Like `Direct`, the segment reopened after every commit (its tail read back).
        Reopened,
    }

    fn reopen(seg: ActiveSegment) -> ActiveSegment {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&seg.path)
            .expect("open");
        let idx = OpenOptions::new()
            .write(true)
            .open(&seg.idx_path)
            .expect("open idx");
        ActiveSegment::reopen(
            seg.path.clone(),
            seg.idx_path.clone(),
            file,
            idx,
            (seg.first_index, seg.created_micros),
            seg.count,
            (seg.pos, seg.allocated),
        )
        .expect("reopen")
    }

    /// Writes `commits` as the writer does; returns the payloads and the segment.
    fn write_all(
        dir: &Path,
        commits: &[(usize, usize)],
        way: Way,
    ) -> (Vec<Vec<u8>>, ActiveSegment) {
        let layout = Layout::new(dir);
        crate::layout::create_dir(&layout.segments_dir()).expect("segments dir");
        let mut seg = ActiveSegment::create(&layout, 0, 0).expect("create");
        if way == Way::PageCache {
            seg.direct = None;
        }
        let mut pending: Vec<DirectWrite> = Vec::new();
        let mut payloads = Vec::new();
        // Buffers are reused as the writer reuses them, each left full of other bytes.
        let mut spare: Option<CommitBuf> = None;
        for (c, &(n, len)) in commits.iter().enumerate() {
            let mut framed = Vec::new();
            for r in 0..n {
                let p = payload(c, r, len);
                record::encode(&mut framed, &p);
                payloads.push(p);
            }
            let mut buf = spare.take().unwrap_or_default();
            buf.raw.fill(0xa5);
            seg.lay_out(&mut buf, framed.len());
            buf.records_mut().copy_from_slice(&framed);
            if way == Way::Later && buf.is_direct() {
                pending.push(seg.write_later(buf).expect("stage"));
            } else {
                for w in pending.drain(..) {
                    w.perform().expect("perform");
                }
                seg.write(&buf).expect("write");
                spare = Some(buf);
            }
            seg.count += n as u64;
            if way == Way::Reopened {
                seg = reopen(seg);
            }
        }
        for w in pending {
            w.perform().expect("perform");
        }
        (payloads, seg)
    }

    #[test]
    fn an_idle_writer_keeps_durable_zeros_ahead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layout = Layout::new(dir.path());
        crate::layout::create_dir(&layout.segments_dir()).expect("segments dir");
        let mut seg = ActiveSegment::create(&layout, 0, 0).expect("create");
        let len = |seg: &ActiveSegment| std::fs::metadata(&seg.path).expect("stat").len();
        let write = |seg: &mut ActiveSegment, n: usize| {
            let mut framed = Vec::new();
            record::encode(&mut framed, &vec![b'e'; n]);
            let mut buf = CommitBuf::default();
            seg.lay_out(&mut buf, framed.len());
            buf.records_mut().copy_from_slice(&framed);
            seg.write(&buf).expect("write");
            seg.count += 1;
        };
        write(&mut seg, 100);
        let limit = 64 << 20;
        assert!(seg.zero_ahead_when_idle(limit).expect("zero ahead"));
        assert_eq!(len(&seg), seg.pos + IDLE_AHEAD);
        assert_eq!(seg.allocated, seg.pos + IDLE_AHEAD);
        // Still more than half of it ahead: nothing to do.
        assert!(!seg.zero_ahead_when_idle(limit).expect("zero ahead"));
        for _ in 0..12 {
            write(&mut seg, 200_000);
        }
        assert!(seg.zero_ahead_when_idle(limit).expect("zero ahead"));
        assert_eq!(seg.allocated, seg.pos + IDLE_AHEAD);
        // Never past where the segment is sealed.
        let near = seg.pos + 1000;
        assert!(!seg.zero_ahead_when_idle(near).expect("zero ahead"));
        // The records are intact, and zeros follow them to the end.
        let bytes = std::fs::read(&seg.path).expect("read");
        let mut at = segment::HEADER_LEN as usize;
        for n in 0..13 {
            let Frame::Record(p) = record::decode(&bytes[at..], true) else {
                panic!("record {n} is not intact");
            };
            at += record::HEADER_LEN + p.len();
        }
        assert_eq!(at as u64, seg.pos);
        assert!(bytes[at..].iter().all(|&b| b == 0));
    }

    #[test]
    fn every_way_of_writing_leaves_the_same_records() {
        for &(name, commits) in CASES {
            let mut files = Vec::new();
            for way in [Way::PageCache, Way::Direct, Way::Later, Way::Reopened] {
                let dir = tempfile::tempdir().expect("tempdir");
                let (payloads, mut seg) = write_all(dir.path(), commits, way);
                let could = open_direct(&seg.path).is_some();
                // No write was refused: where the file system takes `O_DIRECT`, it was used.
                assert_eq!(
                    seg.direct.is_some(),
                    way != Way::PageCache && could,
                    "{name} {way:?}"
                );
                let bytes = std::fs::read(&seg.path).expect("read");
                assert_eq!(bytes.len() as u64, seg.allocated, "{name} {way:?}");
                let (written, after) = bytes.split_at(seg.pos as usize);
                assert!(
                    after.iter().all(|&b| b == 0),
                    "{name} {way:?}: not zeros after the records"
                );
                let mut at = segment::HEADER_LEN as usize;
                for (i, p) in payloads.iter().enumerate() {
                    assert_eq!(
                        record::decode(&bytes[at..], true),
                        Frame::Record(p),
                        "{name} {way:?}: record {i}"
                    );
                    at += record::HEADER_LEN + p.len();
                }
                assert_eq!(
                    record::decode(&bytes[at..], true),
                    Frame::End,
                    "{name} {way:?}"
                );
                files.push(written.to_vec());
                seg.seal().expect("seal");
                assert_eq!(
                    std::fs::metadata(&seg.path).expect("stat").len(),
                    seg.pos,
                    "{name} {way:?}"
                );
            }
            for (i, f) in files.iter().enumerate() {
                assert!(
                    *f == files[0],
                    "{name}: way {i} wrote other bytes than the page cache"
                );
            }
        }
    }
}
