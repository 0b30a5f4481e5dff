//! The store's errors, grouped by who is at fault: the caller, the disk, or the data on it.

use std::path::PathBuf;

use thiserror::Error;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    // The caller's mistakes.
    #[error("index {index} is beyond the log (tree size {size})")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is beyond the log (tree size {available})")]
    SizeOutOfRange { size: u64, available: u64 },
    #[error("index {index} was pruned by retention (the log now starts at {first})")]
    Pruned { index: u64, first: u64 },
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A bug in the store, not the caller's input nor the disk (the server answers 500).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("no data directory at {0} (run `vellum append` to create one)")]
    NotFound(PathBuf),
    #[error(
        "{path} is locked by another writer{holder}: only one process may write to a data directory"
    )]
    Locked { path: PathBuf, holder: String },
    #[error(
        "index {index} is not covered by the latest checkpoint (size {size}) yet; try again in a few seconds"
    )]
    NotYetCheckpointed { index: u64, size: u64 },
    #[error("the log has no checkpoint yet")]
    NoCheckpoint,
    /// An event under the id of a stored event, with other content. A re-sent event (the
    /// same content) is a duplicate instead; nothing of the append is stored.
    #[error(
        "id `{id}` is already in the log at index {index}, with other content (a re-sent event keeps its content; a new event needs a new id)"
    )]
    IdConflict { id: String, index: u64 },
    /// Two events under one id in one append, with other content.
    #[error("id `{id}` is given to two events with other content in this append")]
    IdRepeated { id: String },
    /// An append of an [`crate::AppendChain`] after one that was refused.
    #[error("not stored: an earlier append of the same input was refused")]
    ChainBroken,
    /// A directory the store will not use, through no damage: not a Vellum data directory
    /// (a wrong `--data`), a format this build does not read, a signing key others can read.
    #[error("{path}: {reason}")]
    Unusable { path: PathBuf, reason: String },

    // The environment's.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// An fsync or fdatasync failed. Unlike a failed write it is never retried: the kernel
    /// may have dropped the pages it was to write (a second sync then succeeds without
    /// them), so the writer stops until a reopen rebuilds its state from the disk.
    #[error("{context}: {source}")]
    SyncFailed {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the store stopped accepting writes after an earlier failure ({0}); restart to recover"
    )]
    Poisoned(String),
    #[error("the writer's queue is full; retry shortly")]
    Busy,
    #[error("the store is closed")]
    Closed,

    // The data's: something on disk is not what the store wrote.
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl StoreError {
    pub(crate) fn unusable(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::Unusable {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn corrupt(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        StoreError::Corrupt {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The same failure, for another caller whose append shared the failed commit: keeps
    /// what callers act on (the OS error code, the variant), not the original error object.
    pub(crate) fn for_another_caller(&self) -> StoreError {
        match self {
            StoreError::Io { context, source } => StoreError::Io {
                context: context.clone(),
                source: copy_io_error(source),
            },
            StoreError::SyncFailed { context, source } => StoreError::SyncFailed {
                context: context.clone(),
                source: copy_io_error(source),
            },
            StoreError::Poisoned(why) => StoreError::Poisoned(why.clone()),
            StoreError::Busy => StoreError::Busy,
            StoreError::Closed => StoreError::Closed,
            StoreError::Corrupt { path, reason } => StoreError::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            StoreError::Internal(why) => StoreError::Internal(why.clone()),
            // Not "poisoned": the writer may well go on.
            other => StoreError::Internal(other.to_string()),
        }
    }

    /// True when the failure came from the disk being full, before anything was handed to
    /// it (a write, not a sync): nothing was lost, and the same work can be tried again.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.raw_os_error() == Some(28))
    }

    /// True when an fsync or fdatasync failed (see [`StoreError::SyncFailed`]).
    pub fn is_sync_failure(&self) -> bool {
        matches!(self, StoreError::SyncFailed { .. })
    }
}

/// The OS error code (or kind and message) of `source`, for a second caller.
fn copy_io_error(source: &std::io::Error) -> std::io::Error {
    match source.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(source.kind(), source.to_string()),
    }
}

/// Adds a description of what was being done to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            context: context(),
            source,
        })
    }
}

/// Adds a description of what was being synced to the error of an fsync or fdatasync.
pub(crate) trait SyncContext<T> {
    fn sync_ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SyncContext<T> for std::io::Result<T> {
    fn sync_ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| StoreError::SyncFailed {
            context: context(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_caller_of_a_failed_commit_is_told_the_same_failure() {
        let cases = [
            StoreError::Io {
                context: "writing".into(),
                source: std::io::Error::from_raw_os_error(28),
            },
            StoreError::SyncFailed {
                context: "syncing".into(),
                source: std::io::Error::from_raw_os_error(5),
            },
            StoreError::Poisoned("an fsync failed".into()),
            StoreError::Busy,
            StoreError::Closed,
            StoreError::corrupt("segments/0.seg", "bad record"),
            StoreError::Internal("the sync thread stopped".into()),
        ];
        for e in &cases {
            let other = e.for_another_caller();
            assert_eq!(other.to_string(), e.to_string());
            assert_eq!(
                std::mem::discriminant(&other),
                std::mem::discriminant(e),
                "{e}"
            );
            assert_eq!(other.is_disk_full(), e.is_disk_full());
            assert_eq!(other.is_sync_failure(), e.is_sync_failure());
        }
        // Anything else is an internal error for the others, never "stopped": the writer
        // may go on.
        let other = StoreError::ChainBroken.for_another_caller();
        assert!(matches!(other, StoreError::Internal(_)), "{other}");
    }
}
