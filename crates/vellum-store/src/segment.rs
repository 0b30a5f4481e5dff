//! Segment files: a 32-byte header, then framed records (see `record`), one per event.
//!
//! Header: magic `VELLSEG1` | first index u64 LE | created (µs since epoch) i64 LE |
//! reserved u32 (0) | CRC-32C of the preceding 28 bytes, u32 LE.
//!
//! Every record's payload is the event's stored JSON, which begins `{"index":N,` with N the
//! record's index. The active (last) segment may end in a zero-filled region that later
//! records overwrite; a sealed segment ends exactly after its last record.
//!
//! Beside each segment, `<first>.idx` holds 24 bytes per record: its byte offset (u64 LE)
//! and the first 16 bytes of SHA-256 of the event id (the idempotency fingerprint).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result, StoreError};
use crate::record::{self, Damage, Frame};

pub(crate) const MAGIC: &[u8; 8] = b"VELLSEG1";
pub(crate) const HEADER_LEN: u64 = 32;
pub(crate) const IDX_ENTRY: usize = 24;
/// A chunk is read this much at a time (and framed as it arrives).
const READ_SLICE: usize = 256 << 10;

/// An id fingerprint: the first 16 bytes of SHA-256 of the event id.
pub(crate) type Fingerprint = [u8; 16];

pub(crate) fn fingerprint(id: &str) -> Fingerprint {
    let digest = Sha256::digest(id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

pub(crate) fn encode_header(first_index: u64, created_micros: i64) -> [u8; 32] {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&first_index.to_le_bytes());
    h[16..24].copy_from_slice(&created_micros.to_le_bytes());
    let crc = crc32c::crc32c(&h[..28]);
    h[28..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads and checks a segment header; returns (first index, created µs).
pub(crate) fn read_header(file: &File, path: &Path) -> Result<(u64, i64)> {
    let mut h = [0u8; 32];
    file.read_exact_at(&mut h, 0)
        .map_err(|_| StoreError::corrupt(path, "not a Vellum segment (header is cut short)"))?;
    if &h[..8] != MAGIC {
        return Err(StoreError::corrupt(
            path,
            "not a Vellum segment (bad magic)",
        ));
    }
    let crc = u32::from_le_bytes([h[28], h[29], h[30], h[31]]);
    if crc32c::crc32c(&h[..28]) != crc {
        return Err(StoreError::corrupt(
            path,
            "segment header checksum mismatch",
        ));
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h[8..16]);
    let mut created = [0u8; 8];
    created.copy_from_slice(&h[16..24]);
    Ok((u64::from_le_bytes(first), i64::from_le_bytes(created)))
}

/// The id of a stored event, read from its fixed position after `index` and `received`.
pub(crate) fn stored_id(payload: &[u8]) -> Option<String> {
    let at = find(payload, b",\"id\":")? + 6;
    let mut de = serde_json::Deserializer::from_slice(&payload[at..]);
    serde::Deserialize::deserialize(&mut de).ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// How a scan of a segment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Offset just past the last intact record.
    pub end: u64,
    /// Set when bytes after `end` are neither zeros nor the end of the file.
    pub damage: Option<Damage>,
    /// Length of the file.
    pub file_len: u64,
}

/// One record seen by a scan.
#[derive(Debug)]
pub(crate) struct Seen<'a> {
    pub offset: u64,
    pub payload: &'a [u8],
}

/// Reads the records of a segment from `start` in large chunks and hands them to `f` one
/// chunk at a time. Stops at the first zero header, end of file, or damaged frame, or when
/// `f` breaks.
pub(crate) fn scan(
    path: &Path,
    start: u64,
    chunk_bytes: usize,
    mut f: impl FnMut(&[Seen<'_>]) -> Result<std::ops::ControlFlow<()>>,
) -> Result<ScanEnd> {
    let mut reader = ChunkReader::open(path, start, chunk_bytes)?;
    let mut spare = ChunkMemory::default();
    loop {
        let chunk = match reader.next(&mut spare)? {
            Next::Chunk(chunk) => chunk,
            Next::End(end) => return Ok(end),
        };
        let intact = (0..chunk.len())
            .position(|i| !chunk.checksum_matches(i))
            .unwrap_or(chunk.len());
        if intact < chunk.len() {
            reader.bad_checksum(&chunk, intact);
        }
        let seen: Vec<Seen<'_>> = (0..intact)
            .map(|i| Seen {
                offset: chunk.offset_of(i),
                payload: chunk.payload(i),
            })
            .collect();
        if f(&seen)?.is_break() {
            return Ok(ScanEnd {
                end: chunk.end_of(intact),
                damage: None,
                file_len: reader.file_len,
            });
        }
        spare = chunk.into_memory();
    }
}

/// Reads a segment's records in large chunks of whole frames, each in a buffer of its own, so
/// one chunk can be checked while the next is read; [`scan`] on top of it checks them in turn.
/// Checksums are left to the caller ([`Chunk::checksum_matches`], for instance on every
/// core), who reports the first that does not match with [`ChunkReader::bad_checksum`].
#[derive(Debug)]
pub(crate) struct ChunkReader {
    file: File,
    path: PathBuf,
    file_len: u64,
    chunk_bytes: usize,
    /// The bytes read after the last whole frame, and their file offset.
    carry: Vec<u8>,
    carry_offset: u64,
    eof: bool,
    /// The size of the last frame that did not fit in a chunk: later chunks are as large.
    need: usize,
    state: ReadState,
}

#[derive(Debug)]
enum ReadState {
    Reading,
    /// The last chunk ended in a zero header at `end`; whether only zeros follow it is
    /// decided (reading the rest of the file) when the next chunk is asked for.
    ZeroHeader {
        end: u64,
        tail_is_zero: bool,
    },
    Ended(ScanEnd),
}

/// What [`ChunkReader::next`] found.
#[derive(Debug)]
pub(crate) enum Next {
    Chunk(Chunk),
    /// No more records: how the scan ended.
    End(ScanEnd),
}

/// Whole frames read in one go; their checksums are not checked yet.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// May be longer than what was read for this chunk (see [`ChunkMemory`]).
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    offset: u64,
    frames: Vec<FrameAt>,
    /// Just past the last whole frame.
    end: usize,
}

/// The memory of a chunk that is done with, to read a later chunk into without allocating
/// (and having the kernel zero) it again.
#[derive(Debug, Default)]
pub(crate) struct ChunkMemory {
    buf: Vec<u8>,
    frames: Vec<FrameAt>,
}

#[derive(Debug, Clone, Copy)]
struct FrameAt {
    /// Position of the frame's header in the chunk's buffer.
    at: usize,
    len: u32,
    crc: u32,
}

impl ChunkReader {
    pub(crate) fn open(path: &Path, start: u64, chunk_bytes: usize) -> Result<Self> {
        let mut file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
        let file_len = file
            .metadata()
            .ctx(|| format!("reading {}", path.display()))?
            .len();
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))
            .ctx(|| format!("seeking {}", path.display()))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            file_len,
            chunk_bytes,
            carry: Vec::new(),
            carry_offset: start,
            eof: false,
            need: record::HEADER_LEN,
            state: ReadState::Reading,
        })
    }

    /// Reads the next chunk into the memory `spare` holds (that of an earlier chunk, or
    /// none yet), which the chunk then owns; or says how the records ended.
    pub(crate) fn next(&mut self, spare: &mut ChunkMemory) -> Result<Next> {
        match std::mem::replace(&mut self.state, ReadState::Reading) {
            ReadState::Reading => {}
            ReadState::Ended(end) => {
                self.state = ReadState::Ended(end.clone());
                return Ok(Next::End(end));
            }
            ReadState::ZeroHeader { end, tail_is_zero } => {
                // A zero header that is followed by anything but zeros is damage too.
                let zeros = tail_is_zero && (self.eof || rest_is_zero(&mut self.file, &self.path)?);
                let end = ScanEnd {
                    end,
                    damage: (!zeros).then_some(Damage::BytesAfterEnd),
                    file_len: self.file_len,
                };
                self.state = ReadState::Ended(end.clone());
                return Ok(Next::End(end));
            }
        }
        // Top up: what was left over from the last chunk, then fresh bytes.
        let ChunkMemory {
            mut buf,
            mut frames,
        } = std::mem::take(spare);
        frames.clear();
        let have = self.carry.len();
        if buf.len() < have {
            buf.resize(have, 0);
        }
        buf[..have].copy_from_slice(&self.carry);
        self.carry.clear();
        let offset = self.carry_offset;
        let mut len = have;
        // Never allocate (and zero) more than the file has left.
        let mut left = self.file_len.saturating_sub(offset + have as u64) as usize;
        if left == 0 && !self.eof {
            // The file may have grown since it was opened (a live writer's active segment):
            // without looking again, it would be read a byte at a time from here on.
            let now = self
                .file
                .metadata()
                .ctx(|| format!("reading {}", self.path.display()))?
                .len();
            self.file_len = self.file_len.max(now);
            left = self.file_len.saturating_sub(offset + have as u64) as usize;
        }
        let want = if self.eof {
            have
        } else {
            self.chunk_bytes
                .max(have + record::HEADER_LEN)
                .max(self.need)
                .min(have + left.max(1))
        };
        // A recycled buffer is only zeroed where it grows.
        if buf.len() < want {
            buf.resize(want, 0);
        }
        // Bytes are framed as they are read, a slice at a time, while they are still in the
        // CPU's cache: reading the headers of a whole chunk after copying it costs more.
        let mut pos = 0usize;
        let end_at = |pos: usize| offset + pos as u64;
        loop {
            match record::decode_unchecked(&buf[pos..len], self.eof) {
                (Frame::Record(payload), crc) => {
                    frames.push(FrameAt {
                        at: pos,
                        len: payload.len() as u32,
                        crc,
                    });
                    pos += record::HEADER_LEN + payload.len();
                }
                // Not a decision while the chunk is not fully read: read on.
                (Frame::Incomplete { .. }, _) if !self.eof && len < want => {
                    let to = want.min(len + READ_SLICE);
                    let n = self
                        .file
                        .read(&mut buf[len..to])
                        .ctx(|| format!("reading {}", self.path.display()))?;
                    if n == 0 {
                        self.eof = true;
                    }
                    len += n;
                }
                (Frame::End, _) => {
                    let tail_is_zero = buf[pos..len].iter().all(|&b| b == 0);
                    self.state = ReadState::ZeroHeader {
                        end: end_at(pos),
                        tail_is_zero,
                    };
                    break;
                }
                (Frame::Incomplete { needed }, _) => {
                    self.need = needed;
                    if self.eof {
                        // Cannot happen: at the end of the file decode() says Bad instead.
                        self.state = ReadState::Ended(ScanEnd {
                            end: end_at(pos),
                            damage: Some(Damage::CutShort),
                            file_len: self.file_len,
                        });
                    } else {
                        self.carry.extend_from_slice(&buf[pos..len]);
                        self.carry_offset = end_at(pos);
                    }
                    break;
                }
                (Frame::Bad(why), _) => {
                    self.state = ReadState::Ended(ScanEnd {
                        end: end_at(pos),
                        damage: Some(why),
                        file_len: self.file_len,
                    });
                    break;
                }
            }
        }
        Ok(Next::Chunk(Chunk {
            buf,
            offset,
            frames,
            end: pos,
        }))
    }

    /// Ends the scan before record `i` of `chunk` (the last chunk read), whose checksum does
    /// not match: that record and everything after it are damage.
    pub(crate) fn bad_checksum(&mut self, chunk: &Chunk, i: usize) {
        self.state = ReadState::Ended(ScanEnd {
            end: chunk.offset_of(i),
            damage: Some(Damage::BadChecksum),
            file_len: self.file_len,
        });
    }
}

impl Chunk {
    /// The number of whole frames.
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// The payload of frame `i`.
    pub(crate) fn payload(&self, i: usize) -> &[u8] {
        let f = self.frames[i];
        &self.buf[f.at + record::HEADER_LEN..f.at + record::HEADER_LEN + f.len as usize]
    }

    /// Whether frame `i` carries the checksum of its bytes.
    pub(crate) fn checksum_matches(&self, i: usize) -> bool {
        record::checksum(self.payload(i)) == self.frames[i].crc
    }

    /// The file offset of frame `i`.
    pub(crate) fn offset_of(&self, i: usize) -> u64 {
        self.offset + self.frames[i].at as u64
    }

    /// The file offset just past the first `n` frames.
    pub(crate) fn end_of(&self, n: usize) -> u64 {
        match self.frames.get(n) {
            Some(f) => self.offset + f.at as u64,
            None => self.offset + self.end as u64,
        }
    }

    /// Its memory, to read a later chunk into.
    pub(crate) fn into_memory(self) -> ChunkMemory {
        ChunkMemory {
            buf: self.buf,
            frames: self.frames,
        }
    }
}

/// Whether the rest of `file`, from where it was read up to, holds only zeros.
fn rest_is_zero(file: &mut File, path: &Path) -> Result<bool> {
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut chunk)
            .ctx(|| format!("reading {}", path.display()))?;
        if n == 0 {
            return Ok(true);
        }
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
}

/// The offset `idx` (`.idx` entries) gives record `i` of its segment.
pub(crate) fn indexed_offset(idx: &[u8], i: u64) -> Option<u64> {
    let at = usize::try_from(i).ok()?.checked_mul(IDX_ENTRY)?;
    let entry: [u8; 8] = idx.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(entry))
}

/// Bytes of a file read ahead by a [`ReadWindow`] when reads go in order.
const WINDOW_BYTES: usize = 1 << 20;

/// How far past the window a read may start and still count as in order.
const IN_ORDER_SLACK: u64 = 64 << 10;

/// A stretch of a file read at once, so that reads in order (a retried bulk load's
/// duplicates, in index order) cost one read a MiB, not one each; reads out of order cost
/// one small read each, as alone. Only bytes that never change again are kept: a sealed
/// segment's (or its `.idx`'s), an active one's below the end of its written records.
#[derive(Debug, Default)]
pub(crate) struct ReadWindow {
    /// The file (a segment's first index) and the offset the bytes start at.
    at: Option<(u64, u64)>,
    /// Allocated (and zeroed) once; `len` of it read.
    bytes: Vec<u8>,
    len: usize,
}

impl ReadWindow {
    /// The bytes of file `key` from `offset` to the end of the window, if it holds them.
    fn from(&self, key: u64, offset: u64) -> Option<&[u8]> {
        let (at_key, start) = self.at?;
        let from = usize::try_from(offset.checked_sub(start)?).ok()?;
        if at_key != key {
            return None;
        }
        self.bytes.get(from..self.len)
    }

    /// Reads from `offset` (at least `small` bytes, or a MiB when reads go in order), never
    /// past `limit`. On failure the window is empty.
    fn fill(&mut self, (key, file): (u64, &File), offset: u64, small: usize, limit: u64) -> bool {
        let in_order = self.at.is_some_and(|(at_key, start)| {
            at_key == key && offset >= start && offset <= start + self.len as u64 + IN_ORDER_SLACK
        });
        let ahead = if in_order { WINDOW_BYTES } else { small };
        let want = usize::try_from(limit.saturating_sub(offset))
            .unwrap_or(ahead)
            .min(ahead);
        if self.bytes.len() < want {
            self.bytes.resize(want, 0);
        }
        self.at = None;
        let Some(buf) = self.bytes.get_mut(..want) else {
            return false;
        };
        match read_up_to(file, buf, offset) {
            Ok(got) => {
                self.len = got;
                self.at = Some((key, offset));
                true
            }
            Err(_) => false,
        }
    }

    /// `parse` of the bytes from `offset` of file `key`: from the window if it holds them
    /// (and `parse` finds what it wants there), else after filling the window from
    /// `offset`. `None` if neither gives it; the caller reads alone.
    fn read<T>(
        &mut self,
        (key, file): (u64, &File),
        offset: u64,
        small: usize,
        limit: u64,
        parse: impl Fn(&[u8]) -> Option<T>,
    ) -> Option<T> {
        if let Some(found) = self.from(key, offset).and_then(&parse) {
            return Some(found);
        }
        if !self.fill((key, file), offset, small, limit) {
            return None;
        }
        self.from(key, offset).and_then(parse)
    }

    /// The record at `offset` of segment `first`, whose written records end at `limit`.
    /// A record the window cannot hold, or a read that fails, is read alone (and its
    /// error is the record's own).
    pub(crate) fn record(
        &mut self,
        (first, file, path): (u64, &File, &Path),
        offset: u64,
        limit: u64,
    ) -> Result<Vec<u8>> {
        let decoded = |bytes: &[u8]| match record::decode(bytes, false) {
            Frame::Record(payload) => Some(payload.to_vec()),
            _ => None,
        };
        match self.read((first, file), offset, RECORD_GUESS, limit, decoded) {
            Some(record) => Ok(record),
            None => read_record_at(file, path, offset),
        }
    }

    /// The offset `.idx` entry `at` of segment `first` gives, from the `.idx` file whose
    /// entries end at `limit` bytes.
    pub(crate) fn idx_entry(
        &mut self,
        (first, idx, seg_path): (u64, &File, &Path),
        at: u64,
        limit: u64,
    ) -> Result<u64> {
        let offset = at * IDX_ENTRY as u64;
        let entry = |bytes: &[u8]| indexed_offset(bytes, 0);
        if let Some(found) = self.read((first, idx), offset, IDX_ENTRY, limit, entry) {
            return Ok(found);
        }
        let mut bytes = [0u8; IDX_ENTRY];
        idx.read_exact_at(&mut bytes, offset)
            .ctx(|| format!("reading the .idx entry {at} of {}", seg_path.display()))?;
        indexed_offset(&bytes, 0)
            .ok_or_else(|| StoreError::corrupt(seg_path, format!("its .idx has no entry {at}")))
    }
}

/// A sealed segment (`first..end`) and its `.idx`, open: neither ever changes.
#[derive(Debug)]
pub(crate) struct SealedFiles {
    pub first: u64,
    pub end: u64,
    pub idx: File,
    pub seg: File,
    pub path: PathBuf,
}

impl SealedFiles {
    pub(crate) fn open(layout: &crate::Layout, first: u64, end: u64) -> Result<Self> {
        let (path, idx_path) = (layout.segment(first), layout.segment_index(first));
        Ok(Self {
            first,
            end,
            idx: File::open(&idx_path).ctx(|| format!("opening {}", idx_path.display()))?,
            seg: File::open(&path).ctx(|| format!("opening {}", path.display()))?,
            path,
        })
    }
}

/// `payload`, read as the record of `index` (through an `.idx` entry) from `path`, if it
/// claims that index.
pub(crate) fn claiming(payload: Vec<u8>, index: u64, path: &Path) -> Result<Vec<u8>> {
    if vellum_event::StoredEvent::index_of(&payload) != Some(index) {
        return Err(StoreError::corrupt(
            path,
            format!("the record for index {index} claims another index"),
        ));
    }
    Ok(payload)
}

/// Fills `buf` from `offset`, or as much of it as the file holds; returns how much.
fn read_up_to(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Bytes read at once for a record whose length is not known yet: most records fit.
const RECORD_GUESS: usize = 2048;

/// Reads the record at `offset` (usually in one read).
pub(crate) fn read_record_at(file: &File, path: &Path, offset: u64) -> Result<Vec<u8>> {
    let failed = |source| StoreError::Io {
        context: format!("reading {} at {offset}", path.display()),
        source,
    };
    let mut buf = vec![0u8; RECORD_GUESS];
    let got = read_up_to(file, &mut buf, offset).map_err(failed)?;
    let len = match buf.get(..got.min(4)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize,
        _ => 0,
    };
    if got < record::HEADER_LEN || len == 0 || len > record::MAX_PAYLOAD {
        return Err(StoreError::corrupt(
            path,
            format!("no record at offset {offset}"),
        ));
    }
    let whole = record::HEADER_LEN + len;
    if whole > got {
        buf.resize(whole, 0);
        match file.read_exact_at(&mut buf[got..], offset + got as u64) {
            Ok(()) => {}
            // The file ends inside the record: cut short, as a cut header is.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(StoreError::corrupt(
                    path,
                    format!("the record at offset {offset} is cut short by the end of the file"),
                ));
            }
            Err(e) => return Err(failed(e)),
        }
    }
    buf.truncate(whole);
    match record::decode(&buf, true) {
        Frame::Record(p) => Ok(p.to_vec()),
        Frame::Bad(why) => Err(StoreError::corrupt(
            path,
            format!("{why} at offset {offset}"),
        )),
        _ => Err(StoreError::corrupt(
            path,
            format!("no record at offset {offset}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::ops::ControlFlow;

    use super::*;

    /// Scans `bytes` (a segment) in chunks of every size; all must see the same.
    fn scan_all(bytes: &[u8]) -> (Vec<(u64, Vec<u8>)>, ScanEnd) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        std::fs::write(&path, bytes).unwrap();
        let outcomes = [1, 7, 100, 999, 1 << 20].map(|chunk| {
            let mut seen = Vec::new();
            let end = scan(&path, HEADER_LEN, chunk, |s| {
                seen.extend(s.iter().map(|s| (s.offset, s.payload.to_vec())));
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
            (seen, end)
        });
        for other in &outcomes[1..] {
            assert_eq!(other, &outcomes[0]);
        }
        let [first, ..] = outcomes;
        first
    }

    fn segment(records: usize) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = encode_header(0, 0).to_vec();
        let mut offsets = Vec::new();
        for i in 0..records {
            offsets.push(bytes.len() as u64);
            record::encode(
                &mut bytes,
                format!("record {i} {}", "x".repeat(i * 7)).as_bytes(),
            );
        }
        (bytes, offsets)
    }

    /// A segment that grows after the reader opened it (a live writer's) is read in chunks
    /// as large as asked for, not a byte at a time past the length it had at first.
    #[test]
    fn a_growing_segment_is_read_in_whole_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.seg");
        let (bytes, _) = segment(200);
        let half = usize::try_from(segment(100).1[99]).unwrap();
        std::fs::write(&path, &bytes[..half]).unwrap();
        let mut reader = ChunkReader::open(&path, HEADER_LEN, 1 << 20).unwrap();
        let mut spare = ChunkMemory::default();
        let mut chunks = 0;
        let mut records = 0;
        let mut grown = false;
        loop {
            match reader.next(&mut spare).unwrap() {
                Next::Chunk(chunk) => {
                    chunks += 1;
                    records += chunk.len();
                    spare = chunk.into_memory();
                }
                Next::End(end) => {
                    assert_eq!(end.damage, None);
                    break;
                }
            }
            if !grown {
                std::fs::write(&path, &bytes).unwrap();
                grown = true;
            }
        }
        assert_eq!(records, 200);
        assert!(chunks <= 3, "{chunks} chunks for 200 records");
    }

    #[test]
    fn every_chunk_size_sees_the_same_records_and_end() {
        let (clean, offsets) = segment(40);
        let end = clean.len() as u64;

        let (seen, how) = scan_all(&clean);
        assert_eq!(seen.len(), 40);
        assert_eq!((how.end, how.damage), (end, None));

        let mut zeros = clean.clone();
        zeros.extend_from_slice(&[0; 3000]);
        let (seen, how) = scan_all(&zeros);
        assert_eq!((seen.len(), how.end, how.damage), (40, end, None));

        let mut garbage = zeros.clone();
        garbage[clean.len() + 2500] = 1;
        let (seen, how) = scan_all(&garbage);
        assert_eq!(seen.len(), 40);
        assert_eq!(how.end, end);
        assert_eq!(how.damage, Some(Damage::BytesAfterEnd));

        let mut bad = clean.clone();
        bad[offsets[25] as usize + 12] ^= 1;
        let (seen, how) = scan_all(&bad);
        assert_eq!(seen.len(), 25);
        assert_eq!(
            (how.end, how.damage),
            (offsets[25], Some(Damage::BadChecksum))
        );

        let cut = &clean[..clean.len() - 3];
        let (seen, how) = scan_all(cut);
        assert_eq!(seen.len(), 39);
        assert_eq!((how.end, how.damage), (offsets[39], Some(Damage::CutShort)));
    }
}
