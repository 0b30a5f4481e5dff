//! Opening for writing: create or lock the directory, then recover from whatever state a
//! crash left.
//!
//! Recovery trusts only what was made durable: the segments up to their last intact record
//! and the checkpoint log. The active segment is scanned; a torn tail (a record cut short or
//! damaged by a crash mid-write) is cut and zeroed, and reported. Every record must carry
//! the index its position implies. The tree files are cut back to the latest checkpoint's
//! size (they were synced before it was signed), checked against its root, and the leaves
//! past it are re-hashed from the segments. The `.idx` file of the active segment is
//! rebuilt from the scan. If the log now holds fewer events than the latest checkpoint
//! covers, acknowledged events are missing and the store refuses to open.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use vellum_event::{StoredEvent, Timestamp};
use vellum_merkle::{Frontier, TreeSize, leaf_hash};
use vellum_note::Checkpoint;

use crate::active::ActiveSegment;
use crate::checkpoints::{self, CheckpointWriter};
use crate::error::{IoContext, Result, StoreError, SyncContext};
use crate::ids::IdWindow;
use crate::layout::{self, Layout};
use crate::meta::{self, Meta};
use crate::record::Damage;
use crate::segment::{self, IDX_ENTRY};
use crate::tree::{TreeReader, TreeWriter};
use crate::writer::Writer;
use crate::{Options, retention};

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The log was created by this open.
    pub created: bool,
    /// A torn tail that was cut: the file, the offset it was cut at, the bytes removed.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// Where the cut bytes were kept (up to the last non-zero one), if there were any: a
    /// crash leaves only unacknowledged records there, but if the log did not crash they
    /// are the evidence of what damaged it.
    pub torn_tail_kept: Option<PathBuf>,
    /// Why the cut bytes could not be kept (a full disk, say); the tail was cut anyway.
    pub torn_tail_not_kept: Option<String>,
    /// A torn checkpoint record that was cut, at this offset.
    pub torn_checkpoint: Option<u64>,
    /// Leaves re-hashed past the latest checkpoint.
    pub rehashed: u64,
    /// Events in the log.
    pub tree_size: u64,
}

/// Holds the directory lock for as long as the writer lives.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

fn lock(layout: &Layout) -> Result<DirLock> {
    let path = layout.file(layout::LOCK);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|pid| format!(" (pid {pid})"))
                .unwrap_or_default();
            return Err(StoreError::Locked {
                path: layout.root().to_path_buf(),
                holder,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).ctx(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| file.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .ctx(|| format!("writing {}", path.display()))?;
    Ok(DirLock { _file: file })
}

pub(crate) fn open_writer(layout: &Layout, options: &Options) -> Result<(Writer, Recovered)> {
    let mut recovered = Recovered::default();
    let root = layout.root();
    if !layout.file(layout::META).exists() {
        if !options.create {
            return Err(StoreError::NotFound(root.to_path_buf()));
        }
        // A bad origin is refused before anything is made (it left the lock file behind).
        if let Some(origin) = &options.origin {
            meta::parse_origin(origin)?;
        }
        if root.exists()
            && std::fs::read_dir(root)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false)
        {
            // Only the lock file of an earlier, interrupted creation may be there.
            let foreign = std::fs::read_dir(root)
                .ctx(|| format!("reading {}", root.display()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .find(|n| {
                    let empty_dir = |d: &std::path::Path| {
                        std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_none())
                    };
                    // What an interrupted creation leaves: the lock, the key, empty dirs.
                    !(n == layout::LOCK
                        || n == layout::SIGNING_KEY
                        || n.ends_with(".tmp")
                        || (n == layout::SEGMENTS && empty_dir(&layout.segments_dir()))
                        || (n == layout::TREE && empty_dir(&layout.tree_dir())))
                });
            if let Some(name) = foreign {
                return Err(StoreError::unusable(
                    root.join(name),
                    "the directory is not empty and is not a Vellum data directory",
                ));
            }
        }
        layout::create_dir(root)?;
        recovered.created = true;
    }
    let dir_lock = lock(layout)?;
    let meta = if recovered.created {
        let origin = options.origin.clone().unwrap_or_else(meta::default_origin);
        let signer = meta::load_signer(layout, &origin, true)?;
        layout::create_dir(&layout.segments_dir())?;
        layout::create_dir(&layout.tree_dir())?;
        Meta::create(layout, &origin, &signer.verifier_key())?
    } else {
        Meta::load(layout)?
    };
    let signer = meta::load_signer(layout, &meta.origin, false)?;
    if signer.verifier_key() != meta.key(layout)? {
        return Err(StoreError::corrupt(
            layout.file(layout::SIGNING_KEY),
            "the signing key is not the key this log was created with",
        ));
    }
    let key = signer.verifier_key();
    let (checkpoints, torn_checkpoint) = CheckpointWriter::open(layout)?;
    recovered.torn_checkpoint = torn_checkpoint;
    let latest: Option<Checkpoint> = checkpoints::latest(layout, &key)?.map(|(c, _)| c);
    let synced = latest.as_ref().map_or(0, |c| c.size.0);

    let log_start = retention::recover_prunes(layout)?;
    // A pruning recorded but interrupted before its files were removed: finish it (also a
    // `.idx` left without its `.seg`).
    let mut removed = retention::remove_pruned_files(layout, log_start)?;
    let mut firsts = layout.list_segments()?;
    // A rotation interrupted before the new segment's header was written: that segment
    // holds nothing; drop it and carry on with the previous one.
    if let Some(&last) = firsts.last()
        && segment_never_started(layout, last)?
    {
        layout.remove_segment_files(last)?;
        firsts.pop();
        removed = true;
    }
    if removed {
        layout::sync_dir(&layout.segments_dir())?;
    }
    check_segment_chain(layout, &firsts, log_start)?;

    // The active segment: scan it, cut a torn tail, rebuild its index.
    let now = Timestamp::now().unix_micros() as i64;
    let seg = match firsts.last() {
        None => ActiveSegment::create(layout, log_start, now)?,
        Some(&first) => reopen_active(layout, first, synced, &mut recovered)?,
    };
    let size = seg.first_index + seg.count;
    recovered.tree_size = size;
    if size < synced {
        return Err(StoreError::corrupt(
            layout.segment(seg.first_index),
            format!(
                "the log holds {size} events but its latest checkpoint covers {synced}: acknowledged events are missing (run `vellum verify`)"
            ),
        ));
    }

    // The events past the checkpoint must all be there before the tree files are cut back
    // to it: damage in a sealed segment is refused with nothing changed.
    for_each_record(layout, &firsts, synced, size, |_, _| Ok(()))?;

    // The tree: trusted up to the checkpoint, re-hashed past it.
    let mut tree = TreeWriter::open(layout.clone(), synced)?;
    let reader = TreeReader::new(layout.clone());
    let mut frontier = Frontier::from_source(&reader, TreeSize(synced)).map_err(|e| {
        StoreError::corrupt(
            layout.tree_dir(),
            format!("rebuilding the tree frontier: {e}"),
        )
    })?;
    if let Some(cp) = &latest
        && frontier.root() != cp.root
    {
        return Err(StoreError::corrupt(
            layout.tree_dir(),
            format!("the tree files do not match the latest checkpoint (size {synced})"),
        ));
    }
    let mut failed = None;
    for_each_record(layout, &firsts, synced, size, |_, payload| {
        frontier.push(leaf_hash(payload), |id, h| {
            if let Err(e) = tree.push(id, h) {
                failed.get_or_insert(e);
            }
        });
        Ok(())
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    tree.flush()?;
    recovered.rehashed = size - synced;

    let ids = load_ids(layout, &firsts, &seg, options.dedupe_window)?;
    seg.idx
        .sync_all()
        .sync_ctx(|| format!("syncing {}", seg.idx_path.display()))?;
    let mut writer = Writer::new(
        layout.clone(),
        options.clone(),
        meta.origin.clone(),
        signer,
        seg,
        tree,
        frontier,
        ids,
        checkpoints,
        synced,
    );
    writer.dir_lock = Some(dir_lock);
    if size > synced || latest.is_none() {
        writer.issue_checkpoint()?;
    }
    Ok((writer, recovered))
}

/// Every segment's header names the index its file name does, and the files follow each
/// other without gaps (the next starts where the previous ends, which its `.idx` says).
fn check_segment_chain(layout: &Layout, firsts: &[u64], log_start: u64) -> Result<()> {
    if let Some(&first) = firsts.first()
        && first != log_start
    {
        return Err(StoreError::corrupt(
            layout.segment(first),
            format!(
                "the log should start at index {log_start} but its first segment starts at {first}"
            ),
        ));
    }
    for (n, &first) in firsts.iter().enumerate() {
        let path = layout.segment(first);
        let file = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
        let (claimed, _) = segment::read_header(&file, &path)?;
        if claimed != first {
            return Err(StoreError::corrupt(
                &path,
                format!("the header says the segment starts at {claimed}"),
            ));
        }
        if let Some(&next) = firsts.get(n + 1) {
            let count = idx_len(layout, first)?;
            if first + count != next {
                return Err(StoreError::corrupt(
                    &path,
                    format!(
                        "holds indexes {first}..{} but the next segment starts at {next}",
                        first + count
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Records listed in a segment's `.idx` (0 while the file does not exist yet: a segment is
/// created just before its `.idx`).
pub(crate) fn idx_len(layout: &Layout, first: u64) -> Result<u64> {
    let path = layout.segment_index(first);
    match std::fs::metadata(&path) {
        Ok(m) => Ok(m.len() / IDX_ENTRY as u64),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
    }
}

/// A segment whose header never made it to disk: shorter than a header, or a header of
/// zeros (space allocated, bytes never written). It cannot hold a record.
pub(crate) fn segment_never_started(layout: &Layout, first: u64) -> Result<bool> {
    use std::io::Read;
    let path = layout.segment(first);
    let reading = || format!("reading {}", path.display());
    let mut file = File::open(&path).ctx(reading)?;
    // The header first: a written one (every segment but this rare case) answers at once,
    // without reading the segment (up to 64 MiB) on every open.
    let mut header = Vec::with_capacity(segment::HEADER_LEN as usize);
    (&mut file)
        .take(segment::HEADER_LEN)
        .read_to_end(&mut header)
        .ctx(reading)?;
    if header.len() < segment::HEADER_LEN as usize {
        return Ok(true);
    }
    if header.iter().any(|&b| b != 0) {
        return Ok(false);
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).ctx(reading)?;
        if n == 0 {
            return Ok(true);
        }
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

fn reopen_active(
    layout: &Layout,
    first: u64,
    synced: u64,
    recovered: &mut Recovered,
) -> Result<ActiveSegment> {
    let path = layout.segment(first);
    let idx_path = layout.segment_index(first);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    // Records written and not yet synced when a writer died are made durable now, before
    // they are counted; if that fails, the open fails (a second open then reads what the
    // disk holds, below).
    file.sync_data()
        .sync_ctx(|| format!("syncing {}", path.display()))?;
    // After a sync that failed (the writer then stopped, and this is its restart), the
    // page cache may still hold records the disk never got: pages whose writeback failed
    // stay cached, marked clean. Dropping the segment's clean pages makes what is read
    // below what the disk holds; dirty ones stay and are written back. All of them: a
    // range starting later would keep the large folio (up to 2 MiB) it starts in,
    // stale pages and all. Best effort: a file system that ignores the advice reads as
    // before.
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed);
    let (_, created_micros) = segment::read_header(&file, &path)?;
    let mut idx_buf = Vec::new();
    let mut count = 0u64;
    let mut bad = None;
    let end = segment::scan(&path, segment::HEADER_LEN, 8 << 20, |seen| {
        for s in seen {
            let want = first + count;
            if StoredEvent::index_of(s.payload) != Some(want) {
                bad.get_or_insert(format!(
                    "the record at offset {} should hold index {want}",
                    s.offset
                ));
                continue;
            }
            let id = segment::stored_id(s.payload).unwrap_or_default();
            idx_buf.extend_from_slice(&s.offset.to_le_bytes());
            idx_buf.extend_from_slice(&segment::fingerprint(&id));
            count += 1;
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let Some(why) = bad {
        return Err(StoreError::corrupt(&path, why));
    }
    if first + count < synced {
        // Not a torn tail: a signed checkpoint covers events past the last intact record.
        // Cutting or re-indexing would destroy acknowledged events and the evidence;
        // refuse and change nothing.
        let what = end.damage.map_or("the segment ends", Damage::what);
        return Err(StoreError::corrupt(
            &path,
            format!(
                "{what} at offset {} (index {}), but the latest checkpoint covers {synced} events: \
                 acknowledged events are missing or damaged; nothing was changed (run `vellum verify`)",
                end.end,
                first + count
            ),
        ));
    }
    if end.damage.is_some() {
        // Keep a copy of what is cut, then cut the torn tail: zero everything after the
        // last intact record.
        // Best effort: on a full disk the cut itself (zeros written in place) needs no new
        // space, and must not be refused for want of room for the copy.
        match keep_cut_bytes(layout, &file, &path, end.end, end.file_len) {
            Ok(kept) => recovered.torn_tail_kept = kept,
            Err(e) => recovered.torn_tail_not_kept = Some(e.to_string()),
        }
        let cut = end.file_len - end.end;
        let zeros = vec![0u8; 1 << 20];
        let mut at = end.end;
        while at < end.file_len {
            let n = ((end.file_len - at) as usize).min(zeros.len());
            file.write_all_at(&zeros[..n], at)
                .ctx(|| format!("cutting the torn tail of {}", path.display()))?;
            at += n as u64;
        }
        file.sync_all()
            .sync_ctx(|| format!("syncing {}", path.display()))?;
        recovered.torn_tail = Some((path.clone(), end.end, cut));
    }
    let idx = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&idx_path)
        .ctx(|| format!("opening {}", idx_path.display()))?;
    // A writeback error an earlier writer never saw (it does not sync this file) would be
    // reported to the first sync below, about pages the truncation has just replaced.
    let _ = idx.sync_data();
    idx.write_all_at(&idx_buf, 0)
        .ctx(|| format!("writing {}", idx_path.display()))?;
    ActiveSegment::reopen(
        path,
        idx_path,
        file,
        idx,
        (first, created_micros),
        count,
        (end.end, end.file_len),
    )
}

/// Copies the bytes of `file` from `from` to its last non-zero byte before `to` into
/// `DIR/recovered/<segment file>.<from>.tail`, durably; `None` if they are all zeros.
fn keep_cut_bytes(
    layout: &Layout,
    file: &File,
    path: &Path,
    from: u64,
    to: u64,
) -> Result<Option<PathBuf>> {
    let reading = || format!("reading the torn tail of {}", path.display());
    let mut buf = vec![0u8; 1 << 20];
    let mut last_nonzero = None;
    let mut at = from;
    while at < to {
        let n = ((to - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at).ctx(reading)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            last_nonzero = Some(at + i as u64);
        }
        at += n as u64;
    }
    let Some(last) = last_nonzero else {
        return Ok(None);
    };
    let dir = layout.root().join(layout::RECOVERED);
    std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let name = path
        .file_name()
        .map_or_else(|| "segment".into(), |n| n.to_string_lossy().into_owned());
    // A new name each time: a second tear at the same offset keeps the first copy.
    let (kept, mut out) = (0u32..)
        .map(|n| match n {
            0 => dir.join(format!("{name}.{from}.tail")),
            n => dir.join(format!("{name}.{from}.{n}.tail")),
        })
        .find_map(
            |p| match OpenOptions::new().write(true).create_new(true).open(&p) {
                Ok(f) => Some(Ok((p, f))),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => None,
                Err(e) => Some(Err(e).ctx(|| format!("creating {}", p.display()))),
            },
        )
        .ok_or_else(|| StoreError::Internal("no free name for a torn tail".into()))??;
    let mut copy = || -> Result<()> {
        let mut at = from;
        while at <= last {
            let n = ((last + 1 - at) as usize).min(buf.len());
            file.read_exact_at(&mut buf[..n], at).ctx(reading)?;
            out.write_all(&buf[..n])
                .ctx(|| format!("writing {}", kept.display()))?;
            at += n as u64;
        }
        out.sync_all()
            .sync_ctx(|| format!("syncing {}", kept.display()))?;
        layout::sync_dir(&dir)?;
        layout::sync_dir(layout.root())
    };
    if let Err(e) = copy() {
        // No partial copy is left to be taken for the whole.
        let _ = std::fs::remove_file(&kept);
        return Err(e);
    }
    Ok(Some(kept))
}

/// Calls `f(index, payload)` for every record with index in `[from, to)`.
pub(crate) fn for_each_record(
    layout: &Layout,
    firsts: &[u64],
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<()> {
    scan_records(layout, firsts, from, to, |i, p| {
        f(i, p).map(|()| ControlFlow::Continue(()))
    })
}

/// Like [`for_each_record`], but `f` can stop the scan early.
pub(crate) fn scan_records(
    layout: &Layout,
    firsts: &[u64],
    from: u64,
    to: u64,
    mut f: impl FnMut(u64, &[u8]) -> Result<ControlFlow<()>>,
) -> Result<()> {
    if from >= to {
        return Ok(());
    }
    let start_seg = firsts
        .partition_point(|&first| first <= from)
        .saturating_sub(1);
    let mut stopped = false;
    for (n, &first) in firsts.iter().enumerate().skip(start_seg) {
        if first >= to || stopped {
            break;
        }
        // What the segment promises, taken before it is read: a live writer only adds to it
        // (the `.idx` lists records once they are durable), so a promise read after the
        // scan could count records written since, and call them missing.
        let listed = idx_len(layout, first)?;
        let promised = match firsts.get(n + 1) {
            Some(&next) => next,
            None => first + listed,
        };
        let skip = from.saturating_sub(first);
        let start_offset = if skip == 0 {
            segment::HEADER_LEN
        } else if skip >= listed {
            // `from` is past this segment's records: the log's end, or the next segment.
            continue;
        } else {
            idx_offset(layout, first, skip)?
        };
        let path = layout.segment(first);
        let mut index = first + skip;
        // Small first reads: a query that stops early should not read 8 MiB.
        let chunk = if skip == 0 { 8 << 20 } else { 1 << 20 };
        let end = segment::scan(&path, start_offset, chunk, |seen| {
            for s in seen {
                if index >= to || f(index, s.payload)?.is_break() {
                    stopped = true;
                    return Ok(ControlFlow::Break(()));
                }
                index += 1;
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if stopped {
            break;
        }
        // The scan ran to the segment's end. A sealed segment must hold every index up to
        // the next one's first, the last one every index its `.idx` lists (those are
        // written only once their records are durable; intact records past them are a
        // commit in progress, or a writer that stopped, and are read too): fewer is damage,
        // never a reason to skip events silently.
        let want = promised.min(to);
        if index < want {
            let what = end.damage.map_or("the records end", Damage::what);
            return Err(StoreError::corrupt(
                &path,
                format!(
                    "{what} at offset {} (index {index}), but the segment should hold events up to index {}: events are missing or damaged (run `vellum verify`)",
                    end.end,
                    want - 1
                ),
            ));
        }
    }
    Ok(())
}

/// The byte offset of record `n` of the segment starting at `first`, from its `.idx`.
pub(crate) fn idx_offset(layout: &Layout, first: u64, n: u64) -> Result<u64> {
    let path = layout.segment_index(first);
    let file = File::open(&path).ctx(|| format!("opening {}", path.display()))?;
    let mut e = [0u8; 8];
    file.read_exact_at(&mut e, n * IDX_ENTRY as u64)
        .map_err(|_| StoreError::corrupt(&path, format!("entry {n} is missing")))?;
    Ok(u64::from_le_bytes(e))
}

/// Fingerprints of the last `window` events, oldest first.
fn load_ids(
    layout: &Layout,
    firsts: &[u64],
    active: &ActiveSegment,
    window: usize,
) -> Result<IdWindow> {
    let mut ids = IdWindow::new(window);
    let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut remaining = window as u64;
    for &first in firsts.iter().rev() {
        if remaining == 0 {
            break;
        }
        let path = layout.segment_index(first);
        let bytes = if first == active.first_index {
            let mut b = vec![0u8; active.count as usize * IDX_ENTRY];
            active
                .idx
                .read_exact_at(&mut b, 0)
                .ctx(|| format!("reading {}", path.display()))?;
            b
        } else {
            std::fs::read(&path).ctx(|| format!("reading {}", path.display()))?
        };
        let n = (bytes.len() / IDX_ENTRY) as u64;
        let take = n.min(remaining);
        let skip = (n - take) as usize;
        chunks.push((first + skip as u64, bytes[skip * IDX_ENTRY..].to_vec()));
        remaining -= take;
    }
    // Sized once for what is read back, not grown step by step while reading it.
    ids.reserve_exact((window as u64 - remaining) as usize);
    for (first, bytes) in chunks.into_iter().rev() {
        for (i, e) in bytes.chunks_exact(IDX_ENTRY).enumerate() {
            let mut fp = [0u8; 16];
            fp.copy_from_slice(&e[8..24]);
            ids.insert(fp, first + i as u64);
        }
    }
    ids.trim();
    Ok(ids)
}
