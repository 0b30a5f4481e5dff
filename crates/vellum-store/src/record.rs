//! Record framing, shared by segments and the checkpoint log.
//!
//! A record is `len: u32 LE | crc: u32 LE | payload (len bytes)`, where `crc` is CRC-32C over
//! the four length bytes followed by the payload. A zero length marks the end of the
//! written part of a file (the active segment is preallocated with zeros).

pub(crate) const HEADER_LEN: usize = 8;
/// Larger frames are corruption, not records: no event or note comes near this.
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// What is wrong with bytes that are not an intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Damage {
    /// The file ends inside a record's header.
    HeaderCutShort,
    /// The file ends inside a record's payload.
    CutShort,
    /// A record's checksum does not match its bytes.
    BadChecksum,
    /// A zero length with a non-zero checksum.
    ZeroLengthWithChecksum,
    /// A length no record can have.
    LengthBeyondAny,
    /// A zero header (the end of the records) followed by bytes that are not zeros.
    BytesAfterEnd,
}

impl Damage {
    /// Whether bytes are missing at the end of the file, rather than bytes present wrong.
    pub(crate) fn is_cut_short(self) -> bool {
        matches!(self, Damage::HeaderCutShort | Damage::CutShort)
    }

    pub(crate) fn what(self) -> &'static str {
        match self {
            Damage::HeaderCutShort => "a record header is cut short",
            Damage::CutShort => "a record is cut short",
            Damage::BadChecksum => "a record's checksum does not match its bytes",
            Damage::ZeroLengthWithChecksum => "a zero-length record with a checksum",
            Damage::LengthBeyondAny => "a record length beyond any record's",
            Damage::BytesAfterEnd => "non-zero bytes after the end of the records",
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.what())
    }
}

/// Appends a framed record to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends `payload` as one record to the append-only log `file` (`len` bytes long) and
/// makes it durable; its new length. If the write or the sync fails (a full disk after a
/// short write), the file is cut back to `len`, so that no torn record is left for the next
/// append to follow (if that fails too, the torn record is cut on the next open).
pub(crate) fn append_synced(
    file: &mut std::fs::File,
    len: u64,
    payload: &[u8],
    path: &std::path::Path,
) -> crate::error::Result<u64> {
    use crate::error::{IoContext, SyncContext};
    use std::io::Write;
    let mut framed = Vec::with_capacity(payload.len() + HEADER_LEN);
    encode(&mut framed, payload);
    let result = file
        .write_all(&framed)
        .ctx(|| format!("appending to {}", path.display()))
        .and_then(|()| {
            file.sync_data()
                .sync_ctx(|| format!("syncing {}", path.display()))
        });
    if result.is_err() {
        let _ = file.set_len(len).and_then(|()| file.sync_data());
    }
    result?;
    Ok(len + framed.len() as u64)
}

/// The checksum a record of `payload` carries: CRC-32C of its four length bytes, then of the
/// payload.
pub(crate) fn checksum(payload: &[u8]) -> u32 {
    let len = (payload.len() as u32).to_le_bytes();
    crc32c::crc32c_append(crc32c::crc32c(&len), payload)
}

/// What the bytes at some offset hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// A whole, intact record.
    Record(&'a [u8]),
    /// The written part ends here: end of the buffer or a zero header.
    End,
    /// More bytes are needed to tell (the buffer ends inside a frame).
    Incomplete { needed: usize },
    /// Bytes that are not an intact record.
    Bad(Damage),
}

/// Decodes the frame at the start of `buf`. `at_eof` says that no bytes follow `buf`.
pub(crate) fn decode(buf: &[u8], at_eof: bool) -> Frame<'_> {
    match decode_unchecked(buf, at_eof) {
        (Frame::Record(payload), crc) if checksum(payload) != crc => {
            Frame::Bad(Damage::BadChecksum)
        }
        (frame, _) => frame,
    }
}

/// [`decode`] without comparing a record's checksum: a [`Frame::Record`] comes with the
/// checksum its header claims (0 for any other frame), for the caller to compare with
/// [`checksum`] — later, or on another core. Everything else is decided as by `decode`.
pub(crate) fn decode_unchecked(buf: &[u8], at_eof: bool) -> (Frame<'_>, u32) {
    let frame = |f| (f, 0);
    if buf.is_empty() {
        // The buffer ending is not the file ending: a record may start right here.
        return frame(if at_eof {
            Frame::End
        } else {
            Frame::Incomplete { needed: HEADER_LEN }
        });
    }
    if buf.len() < HEADER_LEN {
        if buf.iter().all(|&b| b == 0) && at_eof {
            return frame(Frame::End);
        }
        return frame(if at_eof {
            Frame::Bad(Damage::HeaderCutShort)
        } else {
            Frame::Incomplete { needed: HEADER_LEN }
        });
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 {
        return frame(if crc == 0 {
            Frame::End
        } else {
            Frame::Bad(Damage::ZeroLengthWithChecksum)
        });
    }
    if len > MAX_PAYLOAD {
        return frame(Frame::Bad(Damage::LengthBeyondAny));
    }
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return frame(if at_eof {
            Frame::Bad(Damage::CutShort)
        } else {
            Frame::Incomplete {
                needed: HEADER_LEN + len,
            }
        });
    };
    (Frame::Record(payload), crc)
}

/// How an append-only framed log (the checkpoint and prune logs: no preallocation) ends
/// after its last intact record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogEnd {
    Clean,
    /// A bad record that runs to the end of the file, or zeros to the end: a crash while
    /// appending. It starts at this offset and is cut on the next open.
    Torn(u64),
    /// A bad record followed by more bytes: not a crash; the file was altered or damaged.
    Damaged(u64, &'static str),
}

/// Whether an intact record starts anywhere in `bytes` after its first byte, or the bytes
/// hold more frames to check than any torn record could (a torn record is one record's
/// text and zeros: almost no offset in it even claims a length that fits). Checking every
/// offset's checksum would cost the square of the length on large garbage.
fn holds_a_record(bytes: &[u8]) -> bool {
    /// Payload bytes checksummed before deciding that this is no torn record.
    const BUDGET: usize = 16 << 20;
    let mut budget = BUDGET;
    for i in 1..bytes.len() {
        let rest = &bytes[i..];
        let Some(head) = rest.first_chunk::<4>() else {
            break;
        };
        let len = u32::from_le_bytes(*head) as usize;
        if len == 0 || len > rest.len().saturating_sub(HEADER_LEN) {
            continue;
        }
        if len > budget {
            return true;
        }
        budget -= len;
        if matches!(decode(rest, true), Frame::Record(_)) {
            return true;
        }
    }
    false
}

/// Splits an append-only framed log into its intact records (with their offsets, relative
/// to `base`) and says how it ends.
pub(crate) fn read_log(bytes: &[u8], base: u64) -> (Vec<(u64, &[u8])>, LogEnd) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    loop {
        let rest = &bytes[pos..];
        let at = base + pos as u64;
        let end = match decode(rest, true) {
            Frame::Record(p) => {
                records.push((at, p));
                pos += HEADER_LEN + p.len();
                continue;
            }
            Frame::End if rest.is_empty() => LogEnd::Clean,
            Frame::End if rest.iter().all(|&b| b == 0) => LogEnd::Torn(at),
            Frame::End => LogEnd::Damaged(at, "a zeroed record header"),
            Frame::Incomplete { .. } | Frame::Bad(_) => {
                let claimed_end = (rest.len() >= HEADER_LEN).then(|| {
                    HEADER_LEN + u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize
                });
                match claimed_end {
                    Some(end) if end < rest.len() => {
                        LogEnd::Damaged(at, "a record whose checksum does not match")
                    }
                    // A crash tears only the last record: bytes that hold an intact record
                    // after its start are a changed length, not a torn append.
                    _ if holds_a_record(rest) => LogEnd::Damaged(
                        at,
                        "a record whose length runs past the end of the file, though intact records follow it",
                    ),
                    _ => LogEnd::Torn(at),
                }
            }
        };
        return (records, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_damage_is_seen() {
        let mut buf = Vec::new();
        encode(&mut buf, b"hello");
        assert_eq!(decode(&buf, true), Frame::Record(b"hello"));
        assert_eq!(decode(&buf[..10], true), Frame::Bad(Damage::CutShort));
        assert!(matches!(
            decode(&buf[..10], false),
            Frame::Incomplete { needed: 13 }
        ));
        assert_eq!(decode(&[0; 16], true), Frame::End);
        assert_eq!(decode(&[0; 3], true), Frame::End);
        assert_eq!(decode(&[], true), Frame::End);
        // A chunk boundary exactly between two records is not the end of the records.
        assert!(matches!(
            decode(&[], false),
            Frame::Incomplete { needed: HEADER_LEN }
        ));
        for i in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                !matches!(decode(&bad, true), Frame::Record(p) if p == b"hello"),
                "bit {i}"
            );
        }
    }

    #[test]
    fn only_a_bad_last_record_is_torn() {
        let mut log = Vec::new();
        encode(&mut log, b"one");
        encode(&mut log, b"two");
        let (recs, end) = read_log(&log, 0);
        assert_eq!((recs.len(), end), (2, LogEnd::Clean));
        assert_eq!(read_log(&log[..log.len() - 1], 0).1, LogEnd::Torn(11));
        let mut zeros = log.clone();
        zeros.extend_from_slice(&[0; 9]);
        assert_eq!(read_log(&zeros, 0).1, LogEnd::Torn(22));
        let mut bad = log.clone();
        bad[9] ^= 1;
        assert!(matches!(read_log(&bad, 100).1, LogEnd::Damaged(100, _)));
        // A length changed to run past the end is not a torn last record when intact
        // records follow (the first's, or a middle one's).
        for record in [0usize, 1] {
            let mut three = log.clone();
            encode(&mut three, b"three");
            three[record * 11 + 1] = 0x7f;
            let (recs, end) = read_log(&three, 0);
            assert_eq!(recs.len(), record, "{record}");
            assert!(
                matches!(end, LogEnd::Damaged(at, _) if at == record as u64 * 11),
                "{end:?}"
            );
        }
        // Garbage after a bad header, whose offsets claim lengths that fit: more to check
        // than any torn record holds, so damage (and decided without checksumming every
        // offset); a genuine torn record (the start of one, where the file ends) stays torn.
        let mut garbage = log.clone();
        garbage.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        garbage.extend((0..4u32 << 20).map(|i| [1, 0, 8, 0][i as usize % 4]));
        assert!(matches!(read_log(&garbage, 0).1, LogEnd::Damaged(22, _)));
        let mut torn = log.clone();
        let mut next = Vec::new();
        encode(&mut next, b"a signed note's text\n\n- sig\n");
        torn.extend_from_slice(&next[..20]);
        assert_eq!(read_log(&torn, 0).1, LogEnd::Torn(22));
    }
}
