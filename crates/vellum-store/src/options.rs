//! How a store is opened: the knobs, with safe defaults.

use std::time::Duration;

/// Options for opening a store for writing.
#[derive(Clone, Debug)]
pub struct Options {
    /// Create the data directory when it does not exist.
    pub create: bool,
    /// The origin (also the checkpoint key name) for a new log; `vellum/<hostname>` if unset.
    /// Ignored for an existing log, whose origin never changes.
    pub origin: Option<String>,
    /// A segment is sealed once it holds this many bytes…
    pub segment_max_bytes: u64,
    /// …or once it is this old.
    pub segment_max_age: Duration,
    /// While events arrive, a checkpoint is signed at least this often.
    pub checkpoint_interval: Duration,
    /// How many recent event ids are remembered to answer re-sent events as duplicates.
    pub dedupe_window: usize,
    /// How many appends may wait for the writer before callers block (back-pressure).
    pub queue_depth: usize,
    pub retention: Retention,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            create: true,
            origin: None,
            segment_max_bytes: 64 << 20,
            segment_max_age: Duration::from_secs(24 * 3600),
            checkpoint_interval: Duration::from_secs(2),
            dedupe_window: 1_000_000,
            queue_depth: 4096,
            retention: Retention::default(),
        }
    }
}

/// Age-based retention. Only whole sealed segments are ever deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Segments whose newest event was received longer ago than this are pruned.
    pub max_age: Duration,
    /// When set, nothing is pruned, whatever its age.
    pub legal_hold: bool,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(90 * 24 * 3600),
            legal_hold: false,
        }
    }
}
