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
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{IoContext, Result, StoreError};
use crate::record::{self, Frame};

pub(crate) const MAGIC: &[u8; 8] = b"VELLSEG1";
pub(crate) const HEADER_LEN: u64 = 32;
pub(crate) const IDX_ENTRY: usize = 24;

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
    pub damage: Option<&'static str>,
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
    let mut file = File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let file_len = file
        .metadata()
        .ctx(|| format!("reading {}", path.display()))?
        .len();
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))
        .ctx(|| format!("seeking {}", path.display()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(chunk_bytes);
    let mut buf_offset = start; // file offset of buf[0]
    let mut eof = false;
    let mut need = record::HEADER_LEN;
    loop {
        // Top up the buffer.
        if !eof {
            let have = buf.len();
            // Never allocate (and zero) more than the file has left.
            let left = file_len.saturating_sub(buf_offset + have as u64) as usize;
            let want = chunk_bytes
                .max(have + record::HEADER_LEN)
                .max(need)
                .min(have + left.max(1));
            buf.resize(want, 0);
            let mut filled = have;
            while filled < want {
                let n = file
                    .read(&mut buf[filled..])
                    .ctx(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    eof = true;
                    break;
                }
                filled += n;
            }
            buf.truncate(filled);
        }
        let mut pos = 0usize;
        let mut stop: Option<Option<&'static str>> = None;
        let mut seen = Vec::with_capacity(chunk_bytes / 300);
        loop {
            match record::decode(&buf[pos..], eof) {
                Frame::Record(payload) => {
                    seen.push(Seen {
                        offset: buf_offset + pos as u64,
                        payload,
                    });
                    pos += record::HEADER_LEN + payload.len();
                }
                Frame::End => {
                    stop = Some(None);
                    break;
                }
                Frame::Incomplete { needed } => {
                    need = needed;
                    break;
                }
                Frame::Bad(why) => {
                    stop = Some(Some(why));
                    break;
                }
            }
        }
        let flow = f(&seen)?;
        let end = buf_offset + pos as u64;
        if flow.is_break() {
            return Ok(ScanEnd {
                end,
                damage: None,
                file_len,
            });
        }
        if let Some(damage) = stop {
            // A zero header that is followed by anything but zeros is damage too.
            let damage = match damage {
                None if !eof || pos < buf.len() => {
                    if rest_is_zero(&mut file, &buf[pos..], eof, path)? {
                        None
                    } else {
                        Some("non-zero bytes after the end of the records")
                    }
                }
                other => other,
            };
            return Ok(ScanEnd {
                end,
                damage,
                file_len,
            });
        }
        if eof && pos == buf.len() {
            return Ok(ScanEnd {
                end,
                damage: None,
                file_len,
            });
        }
        buf.drain(..pos);
        buf_offset = end;
        if eof {
            // An incomplete frame at end of file cannot happen: decode() reports it as Bad.
            return Ok(ScanEnd {
                end,
                damage: Some("a record is cut short"),
                file_len,
            });
        }
    }
}

fn rest_is_zero(file: &mut File, tail: &[u8], eof: bool, path: &Path) -> Result<bool> {
    if tail.iter().any(|&b| b != 0) {
        return Ok(false);
    }
    if eof {
        return Ok(true);
    }
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

/// Reads the record at `offset`.
pub(crate) fn read_record_at(file: &File, path: &Path, offset: u64) -> Result<Vec<u8>> {
    let mut header = [0u8; record::HEADER_LEN];
    file.read_exact_at(&mut header, offset)
        .ctx(|| format!("reading {} at {offset}", path.display()))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 || len > record::MAX_PAYLOAD {
        return Err(StoreError::corrupt(
            path,
            format!("no record at offset {offset}"),
        ));
    }
    let mut buf = vec![0u8; record::HEADER_LEN + len];
    file.read_exact_at(&mut buf, offset)
        .ctx(|| format!("reading {} at {offset}", path.display()))?;
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
