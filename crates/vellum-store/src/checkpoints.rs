//! The checkpoint log, `checkpoints.log`: every signed checkpoint the log ever issued, in
//! order, each a framed record (see `record`) holding the signed-note text.
//! Appended with fsync; never rewritten.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::PathBuf;

use vellum_note::{Checkpoint, VerifierKey};

use crate::error::{IoContext, Result, StoreError, SyncContext};
use crate::layout::{self, Layout};
use crate::record::{self, LogEnd};

/// One checkpoint as kept in the log: its position in the file and its note text.
#[derive(Clone, Debug)]
pub struct StoredCheckpoint {
    /// 0-based position in `checkpoints.log`.
    pub seq: usize,
    pub note: String,
}

/// What `checkpoints.log` holds.
#[derive(Debug, Default)]
pub(crate) struct CheckpointLog {
    /// The intact records before any damage, in order.
    pub list: Vec<StoredCheckpoint>,
    /// A torn last record (a crash while appending) starts here; it is cut on next open.
    pub torn: Option<u64>,
    /// A damaged record that is not the last one: the log was altered or the disk lost data.
    pub damaged: Option<(u64, &'static str)>,
}

impl CheckpointLog {
    /// The intact checkpoints, or an error if a record before the end is damaged.
    pub(crate) fn intact(self, layout: &Layout) -> Result<Vec<StoredCheckpoint>> {
        match self.damaged {
            Some((at, why)) => Err(StoreError::corrupt(
                layout.file(layout::CHECKPOINTS),
                format!("{why} at offset {at}, before the end of the log: it was altered"),
            )),
            None => Ok(self.list),
        }
    }
}

/// Reads every checkpoint note in the log. Only a bad record that runs to the end of the
/// file is a torn tail; one followed by more bytes is damage.
pub(crate) fn read_all(layout: &Layout) -> Result<CheckpointLog> {
    Ok(read_from(layout, 0, 0)?.0)
}

/// Reads the checkpoints from byte `offset` on (the `seq`-th record starts there); returns
/// them and the offset just past the last intact one.
pub(crate) fn read_from(layout: &Layout, offset: u64, seq: usize) -> Result<(CheckpointLog, u64)> {
    let path = layout.file(layout::CHECKPOINTS);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(mut f) => {
            std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))
                .and_then(|_| f.read_to_end(&mut bytes))
                .ctx(|| format!("reading {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((CheckpointLog::default(), 0));
        }
        Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
    }
    let (records, end) = record::read_log(&bytes, offset);
    let mut out = CheckpointLog::default();
    let mut next = offset;
    for (at, payload) in records {
        let Ok(note) = std::str::from_utf8(payload) else {
            out.damaged = Some((at, "a checkpoint that is not UTF-8"));
            return Ok((out, next));
        };
        out.list.push(StoredCheckpoint {
            seq: seq + out.list.len(),
            note: note.to_string(),
        });
        next = at + (record::HEADER_LEN + payload.len()) as u64;
    }
    match end {
        LogEnd::Clean => {}
        LogEnd::Torn(at) => out.torn = Some(at),
        LogEnd::Damaged(at, why) => out.damaged = Some((at, why)),
    }
    Ok((out, next))
}

/// Opens a checkpoint note with the log's key.
pub(crate) fn open_note(layout: &Layout, note: &str, key: &VerifierKey) -> Result<Checkpoint> {
    Checkpoint::open(note, key).map_err(|e| {
        StoreError::corrupt(
            layout.file(layout::CHECKPOINTS),
            format!("latest checkpoint: {e}"),
        )
    })
}

/// The latest checkpoint, verified with `key`.
pub(crate) fn latest(layout: &Layout, key: &VerifierKey) -> Result<Option<(Checkpoint, String)>> {
    match read_all(layout)?.intact(layout)?.pop() {
        None => Ok(None),
        Some(c) => Ok(Some((open_note(layout, &c.note, key)?, c.note))),
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
        let log = read_all(layout)?;
        let torn = log.torn;
        log.intact(layout)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        if let Some(at) = torn {
            file.set_len(at)
                .ctx(|| format!("cutting {}", path.display()))?;
            file.sync_all()
                .sync_ctx(|| format!("syncing {}", path.display()))?;
        }
        layout::sync_dir(layout.root())?;
        let len = file
            .metadata()
            .ctx(|| format!("reading {}", path.display()))?
            .len();
        Ok((Self { path, file, len }, torn))
    }

    pub(crate) fn append(&mut self, note: &str) -> Result<()> {
        self.len = record::append_synced(&mut self.file, self.len, note.as_bytes(), &self.path)?;
        Ok(())
    }
}
