//! The checkpoint log, `checkpoints.log`: every signed checkpoint the log ever issued, in
//! order, each a framed record (see `record`) holding the signed-note text.
//! Appended with fsync; never rewritten.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::PathBuf;

use vellum_note::{Checkpoint, VerifierKey};

use crate::error::{IoContext, Result, StoreError};
use crate::layout::{self, Layout};
use crate::record::{self, Frame};

/// One checkpoint as kept in the log: its position in the file and its note text.
#[derive(Clone, Debug)]
pub struct StoredCheckpoint {
    /// 0-based position in `checkpoints.log`.
    pub seq: usize,
    pub note: String,
}

/// Reads every checkpoint note in the log. A torn last record (a crash while appending)
/// is reported through `torn`, not as an error.
pub(crate) fn read_all(layout: &Layout) -> Result<(Vec<StoredCheckpoint>, Option<u64>)> {
    let path = layout.file(layout::CHECKPOINTS);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes)
                .ctx(|| format!("reading {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        match record::decode(&bytes[pos..], true) {
            Frame::Record(p) => {
                let note = std::str::from_utf8(p).map_err(|_| {
                    StoreError::corrupt(&path, format!("checkpoint {} is not UTF-8", out.len()))
                })?;
                out.push(StoredCheckpoint {
                    seq: out.len(),
                    note: note.to_string(),
                });
                pos += record::HEADER_LEN + p.len();
            }
            Frame::End => return Ok((out, None)),
            Frame::Incomplete { .. } | Frame::Bad(_) => return Ok((out, Some(pos as u64))),
        }
    }
}

/// The latest checkpoint, verified with `key`.
pub(crate) fn latest(layout: &Layout, key: &VerifierKey) -> Result<Option<(Checkpoint, String)>> {
    let (all, _) = read_all(layout)?;
    match all.last() {
        None => Ok(None),
        Some(c) => {
            let cp = Checkpoint::open(&c.note, key).map_err(|e| {
                StoreError::corrupt(
                    layout.file(layout::CHECKPOINTS),
                    format!("latest checkpoint: {e}"),
                )
            })?;
            Ok(Some((cp, c.note.clone())))
        }
    }
}

/// Appends checkpoints durably.
#[derive(Debug)]
pub(crate) struct CheckpointWriter {
    path: PathBuf,
    file: File,
    len: u64,
}

impl CheckpointWriter {
    /// Opens the log for appending, cutting a torn last record.
    pub(crate) fn open(layout: &Layout) -> Result<(Self, Option<u64>)> {
        let path = layout.file(layout::CHECKPOINTS);
        let (_, torn) = read_all(layout)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        if let Some(at) = torn {
            file.set_len(at)
                .ctx(|| format!("cutting {}", path.display()))?;
            file.sync_all()
                .ctx(|| format!("syncing {}", path.display()))?;
        }
        layout::sync_dir(layout.root())?;
        let len = file
            .metadata()
            .ctx(|| format!("reading {}", path.display()))?
            .len();
        Ok((Self { path, file, len }, torn))
    }

    pub(crate) fn append(&mut self, note: &str) -> Result<()> {
        let mut buf = Vec::with_capacity(note.len() + record::HEADER_LEN);
        record::encode(&mut buf, note.as_bytes());
        let result = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        if result.is_err() {
            // Leave no torn record behind: later checkpoints must follow the last good one.
            let _ = self.file.set_len(self.len);
        } else {
            self.len += buf.len() as u64;
        }
        result.ctx(|| format!("appending to {}", self.path.display()))
    }
}
