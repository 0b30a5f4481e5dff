//! Read-only access to a data directory, safe beside a running writer: no lock is taken
//! and nothing is written. Readers see every committed event (the `.idx` files are written
//! right after each commit) and prove against signed checkpoints.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::{Arc, Mutex, RwLock};

use vellum_merkle::{Hash, LeafIndex, NodeId, NodeSource, TreeSize};
use vellum_note::{Checkpoint, VerifierKey};

use crate::checkpoints::{self, StoredCheckpoint};
use crate::error::{IoContext, Result, StoreError};
use crate::layout::Layout;
use crate::meta::Meta;
use crate::retention::{self, PruneRecord};
use crate::segment::{self, IDX_ENTRY};
use crate::tree::TreeReader;

/// A read-only view of a log.
#[derive(Debug)]
pub struct LogReader {
    layout: Layout,
    origin: String,
    key: VerifierKey,
    tree: TreeReader,
    /// Open segment and `.idx` files by first index, refreshed when a read misses.
    open: RwLock<OpenSegments>,
    /// How far `checkpoints.log` has been read, so the latest checkpoint costs a read of
    /// what was appended since, not of the whole (ever-growing) file.
    latest: Mutex<LatestCheckpoint>,
}

#[derive(Debug, Default)]
struct LatestCheckpoint {
    offset: u64,
    seq: usize,
    note: Option<String>,
}

/// A segment file and its `.idx`, open.
type SegmentFiles = Arc<(File, File)>;

#[derive(Debug, Default)]
struct OpenSegments {
    firsts: Vec<u64>,
    files: HashMap<u64, SegmentFiles>,
}

/// Segments whose files a reader keeps open at once.
const MAX_OPEN: usize = 16;

/// An inclusion proof, as the CLI and the server hand it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: Hash,
    pub proof: Vec<Hash>,
}

impl LogReader {
    pub fn open(dir: impl Into<std::path::PathBuf>) -> Result<LogReader> {
        let layout = Layout::new(dir);
        let meta = Meta::load(&layout)?;
        let key = meta.key(&layout)?;
        Ok(LogReader {
            tree: TreeReader::new(layout.clone()),
            layout,
            origin: meta.origin,
            key,
            open: RwLock::new(OpenSegments::default()),
            latest: Mutex::new(LatestCheckpoint::default()),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }
    pub fn origin(&self) -> &str {
        &self.origin
    }
    /// The log's verifier key, as recorded when it was created.
    pub fn verifier_key(&self) -> &VerifierKey {
        &self.key
    }

    /// First index still stored (events before it were pruned).
    pub fn first_index(&self) -> Result<u64> {
        Ok(self.prunes()?.last().map_or(0, |p| p.end_index))
    }

    pub fn prunes(&self) -> Result<Vec<PruneRecord>> {
        retention::read_prunes(&self.layout)
    }

    /// Events committed so far.
    pub fn size(&self) -> Result<u64> {
        let firsts = self.layout.list_segments()?;
        match firsts.last() {
            None => self.first_index(),
            Some(&first) => Ok(first + crate::recovery::idx_len(&self.layout, first)?),
        }
    }

    /// Leaves whose hashes are in the tree files (proofs can be made up to this size).
    pub fn tree_files_size(&self) -> Result<u64> {
        self.tree.level_len(0)
    }

    /// Every checkpoint note ever issued, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>> {
        checkpoints::read_all(&self.layout)?.intact(&self.layout)
    }

    /// The latest checkpoint, verified with the log's key, and its note.
    pub fn latest_checkpoint(&self) -> Result<(Checkpoint, String)> {
        let mut latest = self
            .latest
            .lock()
            .map_err(|_| StoreError::InvalidOption("checkpoint cursor lock poisoned".into()))?;
        let len =
            std::fs::metadata(self.layout.file(crate::layout::CHECKPOINTS)).map_or(0, |m| m.len());
        if len < latest.offset {
            // The writer cut a torn record we had not read past: start over.
            *latest = LatestCheckpoint::default();
        }
        let (log, next) = checkpoints::read_from(&self.layout, latest.offset, latest.seq)?;
        let mut fresh = log.intact(&self.layout)?;
        if let Some(last) = fresh.pop() {
            latest.seq = last.seq + 1;
            latest.note = Some(last.note);
            latest.offset = next;
        }
        let note = latest.note.clone().ok_or(StoreError::NoCheckpoint)?;
        Ok((
            checkpoints::open_note(&self.layout, &note, &self.key)?,
            note,
        ))
    }

    /// The segment holding `index` and its open files; `fresh` re-lists the directory.
    fn segment_for(&self, index: u64, fresh: bool) -> Result<Option<(u64, SegmentFiles)>> {
        if fresh {
            let firsts = self.layout.list_segments()?;
            if let Ok(mut open) = self.open.write() {
                open.files.retain(|f, _| firsts.binary_search(f).is_ok());
                open.firsts = firsts;
            }
        }
        let first = {
            let Ok(open) = self.open.read() else {
                return Ok(None);
            };
            let Some(pos) = open.firsts.partition_point(|&f| f <= index).checked_sub(1) else {
                return Ok(None);
            };
            let first = open.firsts[pos];
            if let Some(files) = open.files.get(&first) {
                // A file retention has deleted since it was opened must not be served.
                let live = files.0.metadata().map(|m| m.nlink() > 0).unwrap_or(false);
                if live {
                    return Ok(Some((first, files.clone())));
                }
                if !fresh {
                    drop(open);
                    return self.segment_for(index, true);
                }
                return Ok(None);
            }
            first
        };
        let seg_path = self.layout.segment(first);
        let idx_path = self.layout.segment_index(first);
        let open = |p: &std::path::Path| match File::open(p) {
            Ok(f) => Ok(Some(f)),
            // Removed by retention, or (`.idx`) not created yet: nothing to read there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("opening {}", p.display())),
        };
        let (Some(seg), Some(idx)) = (open(&seg_path)?, open(&idx_path)?) else {
            return Ok(None);
        };
        let files = Arc::new((seg, idx));
        if let Ok(mut open) = self.open.write() {
            if open.files.len() >= MAX_OPEN {
                open.files.clear();
            }
            open.files.insert(first, files.clone());
        }
        Ok(Some((first, files)))
    }

    /// The stored bytes of the event at `index` (the exact Merkle leaf bytes).
    pub fn read(&self, index: u64) -> Result<Vec<u8>> {
        let mut found = self.segment_for(index, false)?;
        let mut entry = [0u8; IDX_ENTRY];
        let mut ok = matches!(&found, Some((first, files))
            if files.1.read_exact_at(&mut entry, (index - first) * IDX_ENTRY as u64).is_ok());
        if !ok {
            // A segment sealed or created since the last listing, or a pruned one.
            found = self.segment_for(index, true)?;
            ok = matches!(&found, Some((first, files))
                if files.1.read_exact_at(&mut entry, (index - first) * IDX_ENTRY as u64).is_ok());
        }
        let Some((first, files)) = found.filter(|_| ok) else {
            let firsts = self.layout.list_segments()?;
            return Err(match firsts.first() {
                Some(&first) if index < first => StoreError::Pruned { index, first },
                _ => StoreError::IndexOutOfRange {
                    index,
                    size: self.size()?,
                },
            });
        };
        let path = self.layout.segment(first);
        let offset = segment::indexed_offset(&entry, 0).unwrap_or_default();
        segment::claiming(
            segment::read_record_at(&files.0, &path, offset)?,
            index,
            &path,
        )
    }

    /// Calls `f(index, stored bytes)` for every event in `[from, to)` still stored (a `to`
    /// past the last one stops there). Events the segments promise (a sealed segment up to
    /// the next one's first index, the last one what its `.idx` lists) and do not hold are
    /// an error, never skipped.
    pub fn for_each(
        &self,
        from: u64,
        to: u64,
        f: impl FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let firsts = self.layout.list_segments()?;
        let from = from.max(firsts.first().copied().unwrap_or(0));
        crate::recovery::for_each_record(&self.layout, &firsts, from, to, f)
    }

    /// Calls `f(index, stored bytes)` for events from `from` on, until it breaks or the
    /// log ends. Stops reading as soon as `f` breaks.
    pub fn scan(
        &self,
        from: u64,
        f: impl FnMut(u64, &[u8]) -> Result<std::ops::ControlFlow<()>>,
    ) -> Result<()> {
        let firsts = self.layout.list_segments()?;
        let from = from.max(firsts.first().copied().unwrap_or(0));
        crate::recovery::scan_records(&self.layout, &firsts, from, u64::MAX, f)
    }

    fn check_size(&self, size: u64) -> Result<()> {
        let available = self.tree_files_size()?;
        if size > available {
            return Err(StoreError::SizeOutOfRange { size, available });
        }
        Ok(())
    }

    /// The hash of a leaf, from the tree files.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash> {
        self.tree.node(NodeId { level: 0, index })
    }

    /// The root of the tree of `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash> {
        self.check_size(size)?;
        vellum_merkle::root(&self.tree, TreeSize(size)).map_err(proof_error)
    }

    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<InclusionProof> {
        self.check_size(size)?;
        if index >= size {
            return Err(StoreError::IndexOutOfRange { index, size });
        }
        let proof = vellum_merkle::inclusion_proof(&self.tree, LeafIndex(index), TreeSize(size))
            .map_err(proof_error)?;
        Ok(InclusionProof {
            index,
            tree_size: size,
            leaf_hash: self.leaf_hash(index)?,
            proof,
        })
    }

    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>> {
        self.check_size(to)?;
        if from == 0 {
            // Nothing to be consistent with (RFC 9162 defines proofs from size 1), whatever
            // `to` is.
            return Err(StoreError::InvalidOption(
                "a consistency proof starts from a tree of at least 1 event, not 0".into(),
            ));
        }
        let size = self.tree_files_size()?;
        if from > size {
            return Err(StoreError::SizeOutOfRange {
                size: from,
                available: size,
            });
        }
        if from > to {
            return Err(StoreError::InvalidOption(format!(
                "a consistency proof goes from a smaller tree to a larger one, not {from} to {to}"
            )));
        }
        vellum_merkle::consistency_proof(&self.tree, TreeSize(from), TreeSize(to))
            .map_err(proof_error)
    }

    /// A node source over the tree files, for verification.
    pub(crate) fn tree(&self) -> &TreeReader {
        &self.tree
    }
}

fn proof_error(e: vellum_merkle::ProofError<StoreError>) -> StoreError {
    match e {
        vellum_merkle::ProofError::Source(inner) => inner,
        other => StoreError::InvalidOption(other.to_string()),
    }
}
