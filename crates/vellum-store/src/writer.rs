//! The writer: one thread that owns the active segment, the tree files and the signing key,
//! and commits appends in groups — every append waiting when a commit starts shares its one
//! `fdatasync`, and no append is answered before its events are durable.
//!
//! Order of a commit: assign indexes (skipping duplicate ids) → frame the stored bytes →
//! write → fdatasync → append `.idx` entries and Merkle nodes (no sync; rebuilt on open) →
//! answer. A failure before the fdatasync leaves the segment as it was and fails only that
//! commit; a failure of the fdatasync or after it poisons the writer (restart recovers).
//!
//! Large commits (≥ `PIPELINE_MIN_EVENTS`) are synced on a sync thread — and, when they are
//! direct writes, written there too, in order, just before the sync: while one is being
//! written and synced, the writer lays out the next after it. Commits still finish (tree,
//! `.idx`, answers) one at a time, in order, each only after a sync that began after its
//! write returned. A failed write or sync there fails every commit written since the last
//! good one and poisons the writer.

use std::collections::VecDeque;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vellum_event::{Canonical, Event, Timestamp};
use vellum_merkle::{Frontier, Hash, TreeSize, leaf_hash};
use vellum_note::{Checkpoint, Signer};

use crate::Options;
use crate::active::{ActiveSegment, CommitBuf, DirectWrite};
use crate::checkpoints::CheckpointWriter;
use crate::error::{IoContext, Result, StoreError};
use crate::ids::IdWindow;
use crate::layout::Layout;
use crate::record;
use crate::recovery::{self, Recovered};
use crate::retention::{self, PruneReport};
use crate::segment::{self, IDX_ENTRY};
use crate::stats::StoreStats;
use crate::tree::TreeWriter;

/// What one append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Events stored by this append.
    pub accepted: u64,
    /// Events whose id was already in the log; they were not stored again.
    pub duplicates: u64,
    /// For each event, in order: its index, and whether it was a duplicate.
    pub indexes: Vec<(u64, bool)>,
    /// Indexes of the first and last stored event (None when all were duplicates).
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
    /// The tree size once this append was durable.
    pub tree_size: u64,
}

/// An event made ready for the writer: its id fingerprint and canonical body. Preparing
/// is the CPU work of an append that does not depend on the log, so it happens on the
/// caller's thread, not the writer's.
#[derive(Clone, Debug)]
pub struct Prepared {
    fingerprint: segment::Fingerprint,
    body: Vec<u8>,
}

impl Prepared {
    pub fn new(event: &Event) -> Self {
        Self {
            fingerprint: segment::fingerprint(event.id.as_str()),
            body: event.canonical_body(),
        }
    }

    /// From an event parsed straight to its canonical body (`Canonical::parse`).
    pub fn from_canonical(canonical: Canonical) -> Self {
        Self {
            fingerprint: segment::fingerprint(canonical.id().as_str()),
            body: canonical.into_body(),
        }
    }

    /// The event's canonical body (see `Event::canonical_body`).
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// Appends of at least this many events are prepared (and their events dropped) on every
/// core rather than on the calling thread alone.
const PARALLEL_PREPARE: usize = 1024;

/// Prepares a caller's events, consuming them: dropping an event (its maps and strings)
/// costs about as much as preparing it, so large batches do both on the rayon pool.
fn prepare(events: Vec<Event>) -> Vec<Prepared> {
    if events.len() >= PARALLEL_PREPARE {
        use rayon::prelude::*;
        events
            .into_par_iter()
            .with_min_len(256)
            .map(|e| Prepared::new(&e))
            .collect()
    } else {
        events.iter().map(Prepared::new).collect()
    }
}

/// An append in flight (see [`Store::append_deferred`]).
#[derive(Debug)]
pub struct Pending(tokio::sync::oneshot::Receiver<Result<Appended>>);

impl Pending {
    /// Blocks until the append is durable (or failed).
    pub fn wait(self) -> Result<Appended> {
        self.0.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// A signed checkpoint just issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub checkpoint: Checkpoint,
    pub note: String,
}

type Reply<T> = tokio::sync::oneshot::Sender<Result<T>>;

/// Appends that stand or fall in order (see [`Store::append_deferred_in`]): once one is
/// refused (an id conflict), the writer refuses every later one, so that what is stored is a
/// prefix of what was sent.
#[derive(Clone, Debug, Default)]
pub struct AppendChain(Arc<AtomicBool>);

impl AppendChain {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an append of the chain was refused.
    pub fn is_broken(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn break_off(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// An append queued for the writer: its events, who to answer, its chain if any.
type Queued = (Vec<Prepared>, Reply<Appended>, Option<AppendChain>);

/// One append of a commit, as the writer lays it out.
pub(crate) type Group<'a> = (&'a [Prepared], Option<&'a AppendChain>);

enum Command {
    Append(Vec<Prepared>, Reply<Appended>, Option<AppendChain>),
    Checkpoint(Reply<Issued>),
    Prune(Timestamp, Reply<PruneReport>),
}

/// Room in a record for what the store puts before an event's body (`{"index":N,
/// "received":"…",`), with a wide margin.
const STORED_PREFIX_ROOM: usize = 256;

/// Refuses, before anything is queued, an append holding an event no record can hold (the
/// CLI and the server refuse far smaller ones; this guards the library's own callers).
fn check_sizes(cmd: &Command) -> Result<()> {
    if let Command::Append(events, _, _) = cmd
        && let Some(big) = events
            .iter()
            .find(|e| e.body.len() + STORED_PREFIX_ROOM > record::MAX_PAYLOAD)
    {
        return Err(StoreError::InvalidOption(format!(
            "an event of {} bytes is larger than a record may be ({} bytes)",
            big.body.len(),
            record::MAX_PAYLOAD - STORED_PREFIX_ROOM
        )));
    }
    Ok(())
}

/// A store open for writing. Cloning shares the one writer thread.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tx: Option<SyncSender<Command>>,
    thread: Option<JoinHandle<()>>,
    layout: Layout,
    size: Arc<AtomicU64>,
    recovered: Recovered,
    stats: Arc<StoreStats>,
    health: Arc<std::sync::Mutex<Option<String>>>,
    origin: String,
    verifier_key: vellum_note::VerifierKey,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `dir` for writing: takes the directory lock,
    /// recovers from any crash, and starts the writer thread.
    pub fn open(dir: impl Into<std::path::PathBuf>, options: Options) -> Result<Store> {
        let layout = Layout::new(dir);
        let (mut writer, recovered) = recovery::open_writer(&layout, &options)?;
        let size = Arc::new(AtomicU64::new(writer.frontier.size().0));
        writer.size_out = Some(size.clone());
        let stats = writer.stats.clone();
        let health = writer.health.clone();
        let origin = writer.origin.clone();
        let verifier_key = writer.signer.verifier_key();
        let (tx, rx) = mpsc::sync_channel(options.queue_depth.max(1));
        let thread = std::thread::Builder::new()
            .name("vellum-writer".into())
            .spawn(move || writer.run(rx))
            .ctx(|| "starting the writer thread".to_string())?;
        Ok(Store {
            inner: Arc::new(Inner {
                tx: Some(tx),
                thread: Some(thread),
                layout,
                size,
                recovered,
                stats,
                health,
                origin,
                verifier_key,
            }),
        })
    }

    /// Counters and histograms of the writer's work.
    pub fn stats(&self) -> &StoreStats {
        &self.inner.stats
    }

    /// `None` while the writer accepts appends; otherwise why it stopped (it is poisoned
    /// until reopened).
    pub fn poisoned(&self) -> Option<String> {
        self.inner.health.lock().ok().and_then(|h| h.clone())
    }

    /// What recovery found when the store was opened.
    pub fn recovered(&self) -> &Recovered {
        &self.inner.recovered
    }

    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    pub fn verifier_key(&self) -> &vellum_note::VerifierKey {
        &self.inner.verifier_key
    }

    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Events durably in the log.
    pub fn tree_size(&self) -> u64 {
        self.inner.size.load(Ordering::Acquire)
    }

    fn send(&self, cmd: Command) -> Result<()> {
        check_sizes(&cmd)?;
        let tx = self.inner.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.send(cmd).map_err(|_| StoreError::Closed)
    }

    /// Queues without blocking, for async callers: a full queue is back-pressure.
    fn try_send(&self, cmd: Command) -> Result<()> {
        check_sizes(&cmd)?;
        let tx = self.inner.tx.as_ref().ok_or(StoreError::Closed)?;
        tx.try_send(cmd).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => StoreError::Busy,
            mpsc::TrySendError::Disconnected(_) => StoreError::Closed,
        })
    }

    /// Queues events without waiting and without blocking; nobody is told when they are
    /// durable (for audit records whose request is answered regardless). Fails with
    /// [`StoreError::Busy`] when the writer's queue is full.
    pub fn append_detached(&self, events: Vec<Event>) -> Result<()> {
        let (reply, _rx) = tokio::sync::oneshot::channel();
        self.try_send(Command::Append(prepare(events), reply, None))
    }

    /// Appends events and returns once they are durable (blocking).
    pub fn append(&self, events: Vec<Event>) -> Result<Appended> {
        self.append_prepared(prepare(events))
    }

    /// Like [`Store::append`], for events already prepared (e.g. on several threads).
    pub fn append_prepared(&self, events: Vec<Prepared>) -> Result<Appended> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Append(events, reply, None))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Queues events for appending without waiting; [`Pending::wait`] returns once they
    /// are durable. Lets one caller keep several commits in flight.
    pub fn append_deferred(&self, events: Vec<Event>) -> Result<Pending> {
        self.append_deferred_prepared(prepare(events))
    }

    /// Like [`Store::append_deferred`], for events already prepared.
    pub fn append_deferred_prepared(&self, events: Vec<Prepared>) -> Result<Pending> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Append(events, reply, None))?;
        Ok(Pending(rx))
    }

    /// Like [`Store::append_deferred_prepared`], as the next append of `chain`: it is
    /// refused ([`StoreError::ChainBroken`]) if an earlier one of the chain was. A bulk load
    /// keeping several appends in flight stores a prefix of its input, whatever is refused.
    pub fn append_deferred_in(
        &self,
        chain: &AppendChain,
        events: Vec<Prepared>,
    ) -> Result<Pending> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Append(events, reply, Some(chain.clone())))?;
        Ok(Pending(rx))
    }

    /// Appends events and resolves once they are durable. Never blocks the caller's thread:
    /// when the writer's queue is full it fails at once with [`StoreError::Busy`].
    pub async fn append_async(&self, events: Vec<Event>) -> Result<Appended> {
        self.append_prepared_async(prepare(events)).await
    }

    /// Like [`Store::append_async`], for events already prepared (e.g. off the runtime's
    /// threads).
    pub async fn append_prepared_async(&self, events: Vec<Prepared>) -> Result<Appended> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.try_send(Command::Append(events, reply, None))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Signs a checkpoint of the current tree now (blocking).
    pub fn checkpoint(&self) -> Result<Issued> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Checkpoint(reply))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Signs a checkpoint of the current tree now.
    pub async fn checkpoint_async(&self) -> Result<Issued> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.try_send(Command::Checkpoint(reply))?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Applies retention as of `now` (blocking): see [`crate::Retention`].
    pub fn prune(&self, now: Timestamp) -> Result<PruneReport> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.send(Command::Prune(now, reply))?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// The state owned by the writer thread.
#[derive(Debug)]
pub(crate) struct Writer {
    pub layout: Layout,
    pub options: Options,
    pub origin: String,
    pub signer: Signer,
    pub seg: ActiveSegment,
    pub tree: TreeWriter,
    pub frontier: Frontier,
    pub ids: IdWindow,
    /// The sealed segments last read to compare re-sent events, kept open, the most
    /// recent first.
    sealed: Vec<segment::SealedFiles>,
    /// Records, and `.idx` entries, read ahead for those comparisons.
    window: segment::ReadWindow,
    idx_window: segment::ReadWindow,
    pub checkpoints: CheckpointWriter,
    pub checkpointed: u64,
    pub last_checkpoint: Instant,
    pub poisoned: Option<String>,
    pub size_out: Option<Arc<AtomicU64>>,
    pub dir_lock: Option<crate::recovery::DirLock>,
    pub stats: Arc<StoreStats>,
    pub health: Arc<std::sync::Mutex<Option<String>>>,
    /// Derived state (idx, tree files) that could not be written yet; retried every commit.
    pub derived_error: Option<String>,
    /// Commit buffers to reuse (the sync thread hands back those it wrote).
    spare: Vec<CommitBuf>,
    /// Commits written whose `fdatasync` is still running, oldest first.
    unsynced: VecDeque<Unsynced>,
    /// The sync thread, while `run` runs.
    syncer: Option<Syncer>,
    next_sync: u64,
}

/// A commit written to the segment, waiting for its `fdatasync` (`sync`, on the sync
/// thread) before anything of it is acknowledged or folded into the tree.
#[derive(Debug)]
struct Unsynced {
    /// The sync request that covers it.
    sync: u64,
    replies: Vec<Answer>,
    written: Written,
}

/// What writing one commit produced; nothing of it is durable yet.
#[derive(Debug)]
struct Written {
    /// One per append: refused alone (an id conflict, or a stored event it could not read
    /// to compare), or what it stored.
    results: Vec<Result<Appended>>,
    start_index: u64,
    /// Records written (duplicates excluded).
    events: u64,
    bytes: u64,
    leaves: Vec<Hash>,
    idx: Vec<u8>,
    /// Synced on the sync thread.
    pipelined: bool,
    /// Written on the sync thread too (a direct write, handed over in `later`).
    staged: bool,
    later: Option<DirectWrite>,
}

impl Written {
    /// The index after this commit's records.
    fn end(&self) -> u64 {
        self.start_index + self.events
    }

    /// Whether `index` is one of this commit's records.
    fn holds(&self, index: u64) -> bool {
        (self.start_index..self.end()).contains(&index)
    }
}

/// Runs the active segment's `fdatasync`s on a thread of its own, so that the writer lays out
/// and writes the next commit meanwhile. Requests waiting together get one sync (that of
/// the latest: a sync covers every write completed before it started). A request may carry
/// a commit's direct write: the thread performs the writes in the order they were sent,
/// then syncs, and hands their buffers back. After a failed write it writes nothing more
/// (the writes after it rewrite the block it ended in) and fails every request.
#[derive(Debug)]
struct Syncer {
    requests: Option<mpsc::Sender<SyncRequest>>,
    done: Receiver<SyncDone>,
    thread: Option<JoinHandle<()>>,
}

struct SyncRequest {
    seq: u64,
    file: Arc<File>,
    write: Option<DirectWrite>,
}

/// The latest request synced (or failed), and the buffers of the writes performed.
type SyncDone = (u64, std::io::Result<Duration>, Vec<CommitBuf>);

impl Syncer {
    fn start() -> std::io::Result<Syncer> {
        let (requests, rx) = mpsc::channel::<SyncRequest>();
        let (tx, done) = mpsc::channel::<SyncDone>();
        let thread = std::thread::Builder::new()
            .name("vellum-sync".into())
            .spawn(move || {
                let mut failed = false;
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter());
                    let started = Instant::now();
                    let mut result = Ok(());
                    let mut buffers = Vec::new();
                    let mut last = None;
                    for request in batch {
                        if let Some(write) = request.write {
                            if !failed && result.is_ok() {
                                result = write.perform();
                            }
                            buffers.push(write.into_buf());
                        }
                        last = Some((request.seq, request.file));
                    }
                    let Some((seq, file)) = last else { continue };
                    failed |= result.is_err();
                    let result = if failed {
                        result.and(Err(std::io::Error::other(
                            "an earlier write of this segment failed",
                        )))
                    } else {
                        file.sync_data().map(|()| started.elapsed())
                    };
                    if tx.send((seq, result, buffers)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Syncer {
            requests: Some(requests),
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Commit buffers kept for reuse: as many as commits can be in flight, plus the one being
/// laid out. Fewer, and a bulk load keeps allocating fresh ones (megabytes of pages for the
/// kernel to zero each time); they are dropped once the writer is idle.
const SPARE_BUFFERS: usize = MAX_UNSYNCED + 1;

/// Commits of at least this many events sync on the sync thread.
const PIPELINE_MIN_EVENTS: u64 = 2048;

/// Most commits written and not yet known durable.
const MAX_UNSYNCED: usize = 4;

/// Commits with at least this many events frame their records and hash their leaves on
/// every core.
const PARALLEL_FRAMING: usize = 2048;

/// Fills `buf` (laid out by `offsets`: each record's start and payload length) with the
/// framed records of `events`, indexes from `first_index` on, and returns their Merkle leaf
/// hashes.
fn frame(
    buf: &mut [u8],
    offsets: &[(usize, usize)],
    events: &[&Prepared],
    first_index: u64,
    received: &str,
) -> Result<Vec<Hash>> {
    // One disjoint slice per record, so that they can be filled independently.
    let mut records: Vec<(u64, &mut [u8], &Prepared)> = Vec::with_capacity(events.len());
    let mut rest = buf;
    for ((i, &(_, len)), ev) in offsets.iter().enumerate().zip(events) {
        let (record, tail) = rest.split_at_mut(record::HEADER_LEN + len);
        records.push((first_index + i as u64, record, ev));
        rest = tail;
    }
    let one = |(index, record, ev): (u64, &mut [u8], &Prepared)| -> Option<Hash> {
        let (header, payload) = record.split_at_mut(record::HEADER_LEN);
        if !vellum_event::fill_stored(payload, index, received, &ev.body) {
            return None;
        }
        let len_bytes = (payload.len() as u32).to_le_bytes();
        let crc = record::checksum(payload);
        header[..4].copy_from_slice(&len_bytes);
        header[4..8].copy_from_slice(&crc.to_le_bytes());
        Some(leaf_hash(payload))
    };
    let hashed: Option<Vec<Hash>> = if records.len() >= PARALLEL_FRAMING {
        use rayon::prelude::*;
        records.into_par_iter().with_min_len(256).map(one).collect()
    } else {
        records.into_iter().map(one).collect()
    };
    // The layout came from `stored_len` with the same arguments: a mismatch is a bug here.
    hashed.ok_or_else(|| StoreError::Internal("a record did not fit its layout".into()))
}

/// A canonical body's members: without its opening brace.
fn members(body: &[u8]) -> &[u8] {
    body.get(1..).unwrap_or_default()
}

/// The id at the head of a canonical body (`{"id":"…",`), for messages.
fn id_of(body: &[u8]) -> String {
    body.strip_prefix(b"{\"id\":")
        .and_then(|rest| {
            let mut de = serde_json::Deserializer::from_slice(rest);
            serde::Deserialize::deserialize(&mut de).ok()
        })
        .unwrap_or_default()
}

/// Who to answer for one append, and its chain: a failed append breaks it, whatever the
/// failure, so that the chain's later appends are refused.
type Answer = (Reply<Appended>, Option<AppendChain>);

/// Answers the appends of one commit: each its own result, or all the same error.
fn reply_all(replies: Vec<Answer>, outcome: Result<Vec<Result<Appended>>>) {
    let answer = |(reply, chain): Answer, result: Result<Appended>| {
        if let (Err(_), Some(chain)) = (&result, chain) {
            chain.break_off();
        }
        let _ = reply.send(result);
    };
    match outcome {
        Ok(results) => {
            for (to, result) in replies.into_iter().zip(results) {
                answer(to, result);
            }
        }
        Err(e) => {
            for to in replies {
                answer(to, Err(e.for_another_caller()));
            }
        }
    }
}

/// Sealed segments kept open to compare re-sent events with.
const SEALED_OPEN: usize = 8;

/// Most events gathered into one commit.
const MAX_GROUP_EVENTS: usize = 1 << 16;

/// Most bytes of event bodies gathered into one commit (a single larger append is still
/// one commit). It bounds the commit buffers kept for reuse, whose fresh pages are a large
/// part of the cost of a bulk load.
const MAX_GROUP_BYTES: usize = 16 << 20;

fn body_bytes(events: &[Prepared]) -> usize {
    events.iter().map(|e| e.body.len()).sum()
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        layout: Layout,
        options: Options,
        origin: String,
        signer: Signer,
        seg: ActiveSegment,
        tree: TreeWriter,
        frontier: Frontier,
        ids: IdWindow,
        checkpoints: CheckpointWriter,
        checkpointed: u64,
    ) -> Self {
        Self {
            layout,
            options,
            origin,
            signer,
            seg,
            tree,
            frontier,
            ids,
            sealed: Vec::new(),
            window: segment::ReadWindow::default(),
            idx_window: segment::ReadWindow::default(),
            checkpoints,
            checkpointed,
            last_checkpoint: Instant::now(),
            poisoned: None,
            size_out: None,
            dir_lock: None,
            stats: Arc::new(StoreStats::default()),
            health: Arc::new(std::sync::Mutex::new(None)),
            derived_error: None,
            spare: Vec::new(),
            unsynced: VecDeque::new(),
            syncer: None,
            next_sync: 0,
        }
    }

    fn run(mut self, rx: Receiver<Command>) {
        // Without a sync thread, every commit syncs inline (as `commit` does).
        self.syncer = Syncer::start().ok();
        let mut pending: Option<Command> = None;
        loop {
            self.reap(false);
            let cmd = match pending.take() {
                Some(c) => c,
                None if self.unsynced.is_empty() => {
                    match rx.recv_timeout(self.options.checkpoint_interval) {
                        Ok(c) => c,
                        Err(RecvTimeoutError::Timeout) => {
                            // Idle: nothing to keep buffers for, and time to zero space
                            // ahead so that the next burst does not.
                            self.spare.clear();
                            self.tick();
                            self.zero_ahead();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                // Commits are waiting for their sync: take new work if there is some,
                // otherwise wait for the sync.
                None => match rx.try_recv() {
                    Ok(c) => c,
                    Err(TryRecvError::Empty) => {
                        self.reap(true);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                },
            };
            match cmd {
                Command::Append(events, reply, chain) => {
                    let (mut n, mut bytes) = (events.len(), body_bytes(&events));
                    let mut group = vec![(events, reply, chain)];
                    while n < MAX_GROUP_EVENTS && bytes < MAX_GROUP_BYTES {
                        match rx.try_recv() {
                            Ok(Command::Append(e, r, c)) => {
                                let more = body_bytes(&e);
                                if bytes + more > MAX_GROUP_BYTES {
                                    // The next commit starts with it.
                                    pending = Some(Command::Append(e, r, c));
                                    break;
                                }
                                (n, bytes) = (n + e.len(), bytes + more);
                                group.push((e, r, c));
                            }
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    while self.unsynced.len() >= MAX_UNSYNCED {
                        self.reap(true);
                    }
                    self.commit_group(group);
                    self.tick();
                }
                Command::Checkpoint(reply) => {
                    self.drain();
                    let _ = reply.send(self.issue_checkpoint());
                }
                Command::Prune(now, reply) => {
                    self.drain();
                    let pruned = retention::prune(&mut self, now);
                    let _ = reply.send(self.stop_on_sync_failure(pruned));
                }
            }
        }
        self.drain();
        self.syncer = None;
        // Closing: a final checkpoint covers everything appended.
        if self.poisoned.is_none() && self.frontier.size().0 > self.checkpointed {
            let _ = self.issue_checkpoint();
        }
    }

    /// Finishes the commits whose sync has completed; with `block`, waits for one answer
    /// of the sync thread first (if any commit is waiting for it).
    fn reap(&mut self, block: bool) {
        let Some(syncer) = &self.syncer else {
            return;
        };
        if self.unsynced.is_empty() {
            return;
        }
        let answer = if block {
            syncer.done.recv().ok()
        } else {
            syncer.done.try_recv().ok()
        };
        let Some((synced, result, buffers)) = answer else {
            if block {
                // The sync thread is gone: nothing waiting can be known durable.
                let e = StoreError::Internal("the sync thread stopped".into());
                self.fail_unsynced(&e);
            }
            return;
        };
        self.recycle(buffers);
        match result {
            Ok(took) => {
                self.stats.fsync_seconds.observe(took.as_secs_f64());
                while self.unsynced.front().is_some_and(|u| u.sync <= synced) {
                    if let Some(u) = self.unsynced.pop_front() {
                        reply_all(u.replies, self.finish(u.written));
                    }
                }
            }
            Err(source) => {
                // A direct write performed there, or the sync: either way the commit was
                // counted as written, and nothing after it can be trusted.
                let e = StoreError::SyncFailed {
                    context: format!("writing and syncing {}", self.seg.path.display()),
                    source,
                };
                self.fail_unsynced(&e);
            }
        }
    }

    /// Keeps a few commit buffers for reuse; more would only hold memory after a burst.
    fn recycle(&mut self, buffers: impl IntoIterator<Item = CommitBuf>) {
        for buf in buffers {
            if self.spare.len() < SPARE_BUFFERS {
                self.spare.push(buf);
            }
        }
    }

    /// The index the next event will take, once every commit written is durable (or
    /// failed): what retention announces its event under.
    pub(crate) fn settled_size(&mut self) -> u64 {
        self.drain();
        self.frontier.size().0
    }

    /// [`Writer::drain`], then fails if a sync failed (now or before).
    fn drain_healthy(&mut self) -> Result<()> {
        self.drain();
        match &self.poisoned {
            Some(why) => Err(StoreError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Waits until every written commit is durable (or failed).
    fn drain(&mut self) {
        while !self.unsynced.is_empty() {
            self.reap(true);
        }
    }

    /// A sync failed: the page cache cannot be trusted, nothing written since the last good
    /// sync is acknowledged, and the writer stops until reopened.
    fn fail_unsynced(&mut self, e: &StoreError) {
        self.poison(e);
        if let Some(first) = self.unsynced.front().map(|u| u.written.start_index) {
            self.ids.forget_from(first);
        }
        for u in std::mem::take(&mut self.unsynced) {
            reply_all(u.replies, Err(e.for_another_caller()));
        }
    }

    /// Periodic work: a checkpoint when due, sealing an old segment.
    fn tick(&mut self) {
        if self.poisoned.is_some() {
            return;
        }
        let size = self.frontier.size().0;
        if size > self.checkpointed
            && self.last_checkpoint.elapsed() >= self.options.checkpoint_interval
            && let Err(e) = self.issue_checkpoint()
        {
            self.background_failure(&e);
        }
        let age = Duration::from_micros(
            (Timestamp::now().unix_micros() as i64 - self.seg.created_micros).max(0) as u64,
        );
        if self.seg.count > 0 && age >= self.options.segment_max_age {
            self.drain();
            if self.poisoned.is_none()
                && let Err(e) = self.rotate()
            {
                self.background_failure(&e);
            }
        }
    }

    /// Keeps zeroed, durable space ahead of the records while idle (see
    /// [`ActiveSegment::zero_ahead_when_idle`]); a full disk is retried on the next idle tick.
    fn zero_ahead(&mut self) {
        if self.poisoned.is_some() || !self.unsynced.is_empty() {
            return;
        }
        let limit = self.options.segment_max_bytes.max(self.seg.pos());
        if let Err(e) = self.seg.zero_ahead_when_idle(limit) {
            self.background_failure(&e);
        }
    }

    /// A periodic checkpoint or rotation failed. With the disk full, nothing was changed
    /// that a retry cannot redo (queued `.idx` bytes are rewritten at the same offset, a torn
    /// checkpoint record is truncated away): count it and retry on the next tick. Any
    /// other failure (an fsync error) cannot be trusted to have left the files as they
    /// look, so the writer stops.
    fn background_failure(&mut self, e: &StoreError) {
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        if !e.is_disk_full() {
            self.poison(e);
        }
    }

    /// Stops the writer when `result` is a failed fsync: what it was to make durable may
    /// be lost, and a second sync would succeed without it.
    fn stop_on_sync_failure<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_sync_failure()
        {
            self.poison(e);
        }
        result
    }

    fn poison(&mut self, e: &StoreError) {
        if self.poisoned.is_none() {
            self.poisoned = Some(e.to_string());
            if let Ok(mut h) = self.health.lock() {
                *h = self.poisoned.clone();
            }
        }
    }

    fn commit_group(&mut self, group: Vec<Queued>) {
        let mut replies = Vec::with_capacity(group.len());
        let mut events = Vec::with_capacity(group.len());
        for (e, reply, chain) in group {
            replies.push((reply, chain.clone()));
            events.push((e, chain));
        }
        let slices: Vec<Group<'_>> = events
            .iter()
            .map(|(e, c)| (e.as_slice(), c.as_ref()))
            .collect();
        let laid_out = self.write_group(&slices, true);
        let mut written = match self.stop_on_sync_failure(laid_out) {
            Ok(w) => w,
            Err(e) => return reply_all(replies, Err(e)),
        };
        drop(slices);
        drop(events);
        // Small commits (and those of duplicates only) sync inline, once the commits before
        // them are durable: handing a short sync to another thread costs more than it
        // overlaps. Large ones (milliseconds of writeback) are written (if direct) and
        // synced on the sync thread while the next commit is laid out.
        if !written.pipelined {
            self.drain();
            let outcome = self.sync_and_finish(written);
            return reply_all(replies, outcome);
        }
        let seq = self.next_sync + 1;
        let request = SyncRequest {
            seq,
            file: Arc::clone(&self.seg.file),
            write: written.later.take(),
        };
        let sent = self
            .syncer
            .as_ref()
            .and_then(|s| s.requests.as_ref())
            .is_some_and(|requests| requests.send(request).is_ok());
        if !sent {
            // The segment counts a write that will never be made: stop until reopened.
            let e = StoreError::Internal("the sync thread stopped".into());
            self.ids.forget_from(written.start_index);
            self.poison(&e);
            return reply_all(replies, Err(e));
        }
        self.next_sync = seq;
        self.unsynced.push_back(Unsynced {
            sync: seq,
            replies,
            written,
        });
    }

    /// Makes a group of appends durable; one result per append. Waits for commits already
    /// written first.
    pub(crate) fn commit(&mut self, groups: &[Group<'_>]) -> Result<Vec<Appended>> {
        self.drain();
        let laid_out = self.write_group(groups, false);
        let written = self.stop_on_sync_failure(laid_out)?;
        self.sync_and_finish(written)?.into_iter().collect()
    }

    /// Syncs the segment on this thread, then finishes the commit.
    fn sync_and_finish(&mut self, written: Written) -> Result<Vec<Result<Appended>>> {
        if let Some(why) = &self.poisoned {
            // A commit written before this one failed its sync while this one waited: the
            // page cache cannot be trusted, and a second fsync would not say so.
            let e = StoreError::Poisoned(why.clone());
            self.ids.forget_from(written.start_index);
            return Err(e);
        }
        if written.events > 0 {
            let started = Instant::now();
            if let Err(e) = self.seg.sync() {
                // After a failed fsync the page cache cannot be trusted: stop until reopened.
                self.ids.forget_from(written.start_index);
                self.poison(&e);
                return Err(e);
            }
            self.stats
                .fsync_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        self.finish(written)
    }

    /// Lays out, frames and writes a group of appends after everything written before.
    /// Nothing is durable, acknowledged or in the tree yet. A failure leaves the segment as
    /// it was and fails only this group.
    fn write_group(&mut self, groups: &[Group<'_>], may_pipeline: bool) -> Result<Written> {
        if let Some(why) = &self.poisoned {
            return Err(StoreError::Poisoned(why.clone()));
        }
        // Once per commit, shared by every record in it.
        let received = Timestamp::now().to_string();
        let received = received.as_str();
        let start_index = self
            .unsynced
            .back()
            .map_or(self.frontier.size().0, |u| u.written.end());
        let mut next = start_index;
        // The commit's `.idx` entries: offset (filled in once written) and fingerprint.
        let mut idx = Vec::new();
        // First, in order: skip duplicates, assign indexes and lay the records out.
        let mut accepted: Vec<&Prepared> = Vec::new();
        let mut offsets: Vec<(usize, usize)> = Vec::new(); // (start in buf, payload len)
        let mut total = 0usize;
        let mut results = Vec::with_capacity(groups.len());
        // Room for every id of the commit at once, not a growth step in the middle of it.
        self.ids
            .reserve(groups.iter().map(|(events, _)| events.len()).sum());
        for &(events, chain) in groups {
            if chain.is_some_and(AppendChain::is_broken) {
                results.push(Err(StoreError::ChainBroken));
                continue;
            }
            let mut r = Appended {
                accepted: 0,
                duplicates: 0,
                indexes: Vec::with_capacity(events.len()),
                first_index: None,
                last_index: None,
                tree_size: 0,
            };
            // Where this append began, to take it back alone if one of its ids conflicts
            // or its stored event cannot be read to compare.
            let undo = (next, offsets.len(), total, idx.len());
            let mut refused = None;
            for ev in events.iter() {
                let fp = ev.fingerprint;
                if let Some(existing) = self.ids.get(&fp) {
                    // A re-sent event is a duplicate; another event under a stored id is
                    // refused, never dropped as one.
                    let same = match existing.checked_sub(start_index) {
                        Some(k) => accepted.get(k as usize).is_some_and(|a| {
                            vellum_event::same_event(members(&a.body), members(&ev.body))
                        }),
                        None => match self.same_as_stored(existing, &ev.body) {
                            Ok(same) => same,
                            Err(e) => {
                                refused = Some(e);
                                break;
                            }
                        },
                    };
                    if !same {
                        let id = id_of(&ev.body);
                        refused = Some(if existing >= undo.0 {
                            StoreError::IdRepeated { id }
                        } else {
                            StoreError::IdConflict {
                                id,
                                index: existing,
                            }
                        });
                        break;
                    }
                    r.duplicates += 1;
                    r.indexes.push((existing, true));
                    continue;
                }
                let len = vellum_event::stored_len(next, received, &ev.body);
                offsets.push((total, len));
                total += record::HEADER_LEN + len;
                accepted.push(ev);
                self.ids.insert(fp, next);
                idx.extend_from_slice(&[0u8; 8]);
                idx.extend_from_slice(&fp);
                r.indexes.push((next, false));
                r.first_index.get_or_insert(next);
                r.last_index = Some(next);
                r.accepted += 1;
                next += 1;
            }
            if let Some(e) = refused {
                let (at, records, bytes, idx_len) = undo;
                self.ids.forget_from(at);
                next = at;
                offsets.truncate(records);
                accepted.truncate(records);
                total = bytes;
                idx.truncate(idx_len);
                if let Some(chain) = chain {
                    chain.break_off();
                }
                results.push(Err(e));
                continue;
            }
            results.push(Ok(r));
        }
        if let Some(why) = &self.poisoned {
            // Waiting to compare a re-sent event with a commit still syncing met a failed
            // sync: everything after the last good sync is failed, and this commit's indexes
            // follow commits that will never be. Nothing of it may be written.
            self.ids.forget_from(start_index);
            return Err(StoreError::Poisoned(why.clone()));
        }
        for r in results.iter_mut().flatten() {
            r.tree_size = next;
        }
        let events = next - start_index;
        let pipelined = may_pipeline && events >= PIPELINE_MIN_EVENTS && self.syncer.is_some();
        match self.lay_out_and_write(
            &offsets,
            &accepted,
            &mut idx,
            (start_index, received),
            pipelined,
        ) {
            Ok((leaves, later)) => {
                // Written: only now may the oldest ids make room for the commit's.
                self.ids.trim();
                Ok(Written {
                    results,
                    start_index,
                    events,
                    bytes: total as u64,
                    leaves,
                    idx,
                    pipelined,
                    staged: later.is_some(),
                    later,
                })
            }
            Err(e) => {
                self.ids.forget_from(start_index);
                Err(e)
            }
        }
    }

    /// Closes the sealed segments kept open for comparisons (retention is about to remove
    /// segments: an open one would keep its space).
    pub(crate) fn close_sealed(&mut self) {
        self.sealed.clear();
        self.window = segment::ReadWindow::default();
        self.idx_window = segment::ReadWindow::default();
    }

    /// Whether the stored event at `index`, of an earlier commit, holds `body`'s members:
    /// a re-sent event, not another one under the same id.
    fn same_as_stored(&mut self, index: u64, body: &[u8]) -> Result<bool> {
        // A direct write handed to the sync thread may not be in the file yet (every other
        // write is made at once): wait for the one holding `index`.
        if self
            .unsynced
            .iter()
            .any(|u| u.written.staged && u.written.holds(index))
        {
            self.drain_healthy()?;
        }
        let stored = self.read_stored(index)?;
        Ok(vellum_event::StoredEvent::members_of(&stored)
            .is_some_and(|stored| vellum_event::same_event(stored, members(body))))
    }

    /// The stored bytes of `index`, found through its `.idx` entry: one of a commit waiting
    /// for its sync, one still queued, or one in a `.idx` file.
    pub(crate) fn read_stored(&mut self, index: u64) -> Result<Vec<u8>> {
        if index < self.seg.first_index {
            // Re-sent events come in runs, in order or not: the sealed segments last read
            // stay open, the most recent first.
            let at = match self
                .sealed
                .iter()
                .position(|s| (s.first..s.end).contains(&index))
            {
                Some(at) => at,
                None => {
                    let firsts = self.layout.list_segments()?;
                    let after = firsts.partition_point(|&f| f <= index);
                    let first = after
                        .checked_sub(1)
                        .and_then(|i| firsts.get(i))
                        .copied()
                        .ok_or_else(|| {
                            StoreError::Internal(format!("no segment holds index {index}"))
                        })?;
                    let end = firsts.get(after).copied().unwrap_or(self.seg.first_index);
                    let files = segment::SealedFiles::open(&self.layout, first, end)?;
                    self.sealed.truncate(SEALED_OPEN - 1);
                    self.sealed.insert(0, files);
                    0
                }
            };
            if at > 0 {
                let files = self.sealed.remove(at);
                self.sealed.insert(0, files);
            }
            let files = self
                .sealed
                .first()
                .ok_or_else(|| StoreError::Internal("no sealed segment open".into()))?;
            let offset = self.idx_window.idx_entry(
                (files.first, &files.idx, &files.path),
                index - files.first,
                u64::MAX,
            )?;
            let payload =
                self.window
                    .record((files.first, &files.seg, &files.path), offset, u64::MAX)?;
            return segment::claiming(payload, index, &files.path);
        }
        let seg = &self.seg;
        let i = index - seg.first_index;
        let offset = match self.unsynced.iter().find(|u| u.written.holds(index)) {
            Some(u) => segment::indexed_offset(&u.written.idx, index - u.written.start_index),
            None if i >= seg.idx_written => {
                segment::indexed_offset(&seg.idx_pending, i - seg.idx_written)
            }
            // The entries written to the `.idx` file do not change again.
            None => Some(self.idx_window.idx_entry(
                (seg.first_index, &seg.idx, &seg.path),
                i,
                seg.idx_written * segment::IDX_ENTRY as u64,
            )?),
        }
        .ok_or_else(|| StoreError::Internal(format!("no .idx entry for index {index}")))?;
        // Below the end of the written records nothing changes again.
        let payload =
            self.window
                .record((seg.first_index, &seg.file, &seg.path), offset, seg.pos())?;
        segment::claiming(payload, index, &seg.path)
    }

    /// Lays the commit out where it will be written (in a new segment if this one is full),
    /// frames every record in its place and hashes its leaf (on every core for large
    /// commits, the bytes still in cache when hashed), then writes it — or, for a large
    /// direct write to be synced on the sync thread (`pipelined`), hands it back to be
    /// performed there. A write made here waits for every write handed over before it.
    fn lay_out_and_write(
        &mut self,
        offsets: &[(usize, usize)],
        accepted: &[&Prepared],
        idx: &mut [u8],
        (start_index, received): (u64, &str),
        pipelined: bool,
    ) -> Result<(Vec<Hash>, Option<DirectWrite>)> {
        let total = offsets
            .last()
            .map_or(0, |(at, len)| at + record::HEADER_LEN + len);
        self.make_room(total as u64)?;
        self.tree
            .ensure_levels(start_index + offsets.len() as u64)?;
        let mut buf = self.spare.pop().unwrap_or_default();
        self.seg.lay_out(&mut buf, total);
        let leaves = frame(buf.records_mut(), offsets, accepted, start_index, received)?;
        if accepted.is_empty() {
            self.recycle([buf]);
            return Ok((leaves, None));
        }
        let later = pipelined && buf.is_direct();
        if !later && self.unsynced.iter().any(|u| u.written.staged) {
            self.drain_healthy()?;
        }
        let base = self.seg.pos();
        for (i, (at, _)) in offsets.iter().enumerate() {
            let off = (base + *at as u64).to_le_bytes();
            idx[i * IDX_ENTRY..i * IDX_ENTRY + 8].copy_from_slice(&off);
        }
        let written = if later {
            self.seg.write_later(buf).map(Some)
        } else {
            self.seg.write(&buf).map(|()| {
                self.recycle([buf]);
                None
            })
        };
        let later = written.inspect_err(|_| {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        })?;
        self.seg.count += offsets.len() as u64;
        Ok((leaves, later))
    }

    /// Rotates first if `len` more bytes would make the active segment too large; a new
    /// segment is started only once every written commit is durable.
    fn make_room(&mut self, len: u64) -> Result<()> {
        if len > 0 && self.seg.count > 0 && self.seg.pos() + len > self.options.segment_max_bytes {
            self.drain_healthy()?;
            self.rotate()?;
        }
        Ok(())
    }

    /// Everything of a commit that follows its sync: the counters, its `.idx` entries, its
    /// leaves folded into the tree. Failing to write the `.idx` or tree files (disk full)
    /// does not fail the append: the bytes stay queued and are retried.
    fn finish(&mut self, written: Written) -> Result<Vec<Result<Appended>>> {
        let Written {
            results,
            events,
            bytes,
            leaves,
            idx,
            ..
        } = written;
        if events > 0 {
            self.stats.commits.fetch_add(1, Ordering::Relaxed);
            self.stats.commit_events.observe(events as f64);
            self.stats
                .events_appended
                .fetch_add(events, Ordering::Relaxed);
            self.stats
                .bytes_appended
                .fetch_add(bytes, Ordering::Relaxed);
        }
        self.seg.idx_pending.extend_from_slice(&idx);
        let tree = &mut self.tree;
        let mut failed = None;
        for leaf in &leaves {
            self.frontier.push(*leaf, |id, h| {
                if let Err(e) = tree.push(id, h) {
                    failed.get_or_insert(e);
                }
            });
        }
        if let Some(e) = failed {
            // A tree level file could not even be created: the frontier and the files
            // disagree now, so stop until reopened.
            self.poison(&e);
            return Err(e);
        }
        if let Some(size) = &self.size_out {
            size.store(self.frontier.size().0, Ordering::Release);
        }
        self.flush_derived();
        // Counted once answered as such: a commit that failed stored nothing and reported
        // no duplicates.
        let duplicates: u64 = results.iter().flatten().map(|r| r.duplicates).sum();
        self.stats
            .duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
        Ok(results)
    }

    /// Writes queued `.idx` entries and tree nodes; remembers a failure for the next try.
    fn flush_derived(&mut self) {
        let result = self.seg.flush_idx().and_then(|()| self.tree.flush());
        self.derived_error = result.err().map(|e| {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            e.to_string()
        });
    }

    /// Seals the active segment and starts the next. A failed sync stops the writer: the
    /// `.idx` entries it was to make durable may be lost.
    pub(crate) fn rotate(&mut self) -> Result<()> {
        let rotated = self.seal_and_start_next();
        self.stop_on_sync_failure(rotated)
    }

    fn seal_and_start_next(&mut self) -> Result<()> {
        self.seg.flush_idx()?;
        self.seg.seal()?;
        let first = self.seg.first_index + self.seg.count;
        self.seg =
            ActiveSegment::create(&self.layout, first, Timestamp::now().unix_micros() as i64)?;
        Ok(())
    }

    /// Syncs the tree files, then signs and durably records a checkpoint of the tree. A
    /// failed sync stops the writer: the tree nodes it was to make durable may be lost, and
    /// a checkpoint signed after a second sync would cover a tree the disk does not hold.
    pub(crate) fn issue_checkpoint(&mut self) -> Result<Issued> {
        let issued = self.sign_checkpoint();
        self.stop_on_sync_failure(issued)
    }

    fn sign_checkpoint(&mut self) -> Result<Issued> {
        if let Some(why) = &self.poisoned {
            return Err(StoreError::Poisoned(why.clone()));
        }
        self.seg.flush_idx()?;
        self.tree.sync()?;
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size: TreeSize(self.frontier.size().0),
            root: self.frontier.root(),
            extensions: Vec::new(),
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| StoreError::Internal(format!("signing a checkpoint: {e}")))?;
        self.checkpoints.append(&note)?;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        self.checkpointed = checkpoint.size.0;
        self.last_checkpoint = Instant::now();
        Ok(Issued { checkpoint, note })
    }
}
