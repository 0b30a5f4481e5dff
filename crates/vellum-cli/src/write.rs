//! Commands that write: append, keys create/revoke, prune.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;
use vellum_event::{
    BatchError, BodyFormat, Canonical, Category, Event, JsonObject, Limits, Outcome, Timestamp,
    check_batch, parse_batch_canonical,
};
use vellum_store::{ApiKeys, AppendChain, Pending, Prepared, Revocation, Role, Store, StoreError};

use crate::args::{AppendArgs, PruneArgs, StoreArgs};
use crate::output::open_store;

pub(crate) fn append(data: &Path, store_args: &StoreArgs, args: AppendArgs) -> anyhow::Result<()> {
    let limits = store_args.limits();
    let open = || open_store(data, store_args);
    // Validate everything before anything is written: a bad line anywhere rejects it all.
    // Parsing and preparing (canonical bytes, id fingerprints) run on every core, a chunk of
    // stdin at a time. The input is read twice (validated, then appended), so memory stays
    // bounded: a file in place, a pipe from a copy spooled to a temporary file.
    let appended = match stdin_file()? {
        Some(mut file) => append_file(&mut file, CHUNK, &limits, open, args.batch)?,
        None => append_stream(
            &mut std::io::stdin(),
            spool_file()?,
            CHUNK,
            &limits,
            open,
            args.batch,
        )?,
    };
    let Totals {
        accepted,
        duplicates,
        first,
        last,
        size,
    } = appended;
    // The interface contract's line, in the same words for one event as for many, so
    // that scripts can parse it.
    let mut summary = match (first, last) {
        (Some(a), Some(b)) => {
            format!("appended {accepted} events, indexes {a}..{b}, tree size {size}\n")
        }
        _ => format!("appended 0 events, tree size {size}\n"),
    };
    match duplicates {
        0 => {}
        1 => summary.push_str(
            "1 duplicate (its id is already in the log, or earlier in this input) was not stored again\n",
        ),
        n => summary.push_str(&format!(
            "{n} duplicates (ids already in the log, or earlier in this input) were not stored again\n"
        )),
    }
    // The events are durable by now: a summary that cannot be written must not read as a
    // failed append (exit 0, and say so on stderr), or a retry would store events without
    // ids twice.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(summary.as_bytes())
        .and_then(|()| stdout.flush())
    {
        errln!(
            "vellum: the events were appended ({}), but writing this summary to stdout failed: {e}",
            summary.lines().next().unwrap_or_default()
        );
    }
    Ok(())
}

/// Bytes of input parsed at a time.
const CHUNK: u64 = 16 << 20;

/// Chunks of events sent to the store and not yet known durable during the second pass:
/// enough to keep the writer busy while the next chunk is parsed.
const IN_FLIGHT_CHUNKS: usize = 2;

/// Standard input as a file, when it is a regular file (`vellum append < events.ndjson`),
/// positioned where reading starts.
fn stdin_file() -> anyhow::Result<Option<File>> {
    let fd = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("reading stdin")?;
    let file = File::from(fd);
    let is_file = file
        .metadata()
        .map(|m| m.file_type().is_file())
        .unwrap_or(false);
    Ok(is_file.then_some(file))
}

/// Appends the NDJSON in a file (from where it is positioned) in two passes, so that memory
/// stays bounded however large it is: the first validates every line ([`validate`]); the
/// second reads the same bytes again and appends them ([`append_validated`]). The store is
/// opened (or created) only once the whole input is known good.
fn append_file<R: Read + Seek + Send>(
    input: &mut R,
    chunk: u64,
    limits: &Limits,
    open: impl FnOnce() -> anyhow::Result<Store>,
    batch: usize,
) -> anyhow::Result<Totals> {
    let start = input.stream_position().context("reading stdin")?;
    let mut bufs = ChunkBufs::default();
    let validated = validate(input, chunk, &mut bufs, ReadAhead::Yes, limits, |_| Ok(()))?;
    input
        .seek(SeekFrom::Start(start))
        .context("reading stdin again")?;
    append_validated(input, validated, chunk, &mut bufs, limits, open, batch)
}

/// Appends the NDJSON of a stream (a pipe) as [`append_file`] does a file, from a copy of it
/// that the first pass writes to `spool` (an unlinked temporary file) as it validates.
fn append_stream(
    input: &mut (impl Read + Send),
    mut spool: File,
    chunk: u64,
    limits: &Limits,
    open: impl FnOnce() -> anyhow::Result<Store>,
    batch: usize,
) -> anyhow::Result<Totals> {
    let mut bufs = ChunkBufs::default();
    let validated = validate(input, chunk, &mut bufs, ReadAhead::No, limits, |part| {
        spool
            .write_all(part)
            .context("copying stdin to a temporary file (its directory is $TMPDIR)")
    })?;
    spool.rewind().context("reading the copy of stdin")?;
    append_validated(&mut spool, validated, chunk, &mut bufs, limits, open, batch)
}

/// What the first pass found good: each chunk's length and CRC-32C, in order.
#[derive(Debug)]
struct Validated {
    chunks: Vec<(usize, u32)>,
}

/// Parses and checks every line, a chunk at a time, handing each chunk's bytes to `keep`;
/// fails on the first bad line (named) or if there is no event at all.
fn validate(
    input: &mut (impl Read + Send),
    chunk: u64,
    bufs: &mut ChunkBufs,
    ahead: ReadAhead,
    limits: &Limits,
    mut keep: impl FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<Validated> {
    let mut chunks = Vec::new();
    let mut events = 0usize;
    for_each_chunk(
        input,
        chunk,
        bufs,
        ahead,
        limits,
        |part, lines_before, crc| {
            events += check_ndjson_parallel(part, lines_before, limits)?;
            keep(part)?;
            chunks.push((part.len(), crc));
            Ok(())
        },
    )?;
    if events == 0 {
        bail!("no events on stdin");
    }
    Ok(Validated { chunks })
}

/// The second pass: reads exactly the validated bytes again, checks each chunk against the
/// first pass, and appends it while the next is parsed (at most `IN_FLIGHT_CHUNKS` in
/// flight). A chunk that reads differently (the file was changed meanwhile) stops the
/// append with an error saying what was appended before it.
fn append_validated(
    input: &mut (impl Read + Send),
    validated: Validated,
    chunk: u64,
    bufs: &mut ChunkBufs,
    limits: &Limits,
    open: impl FnOnce() -> anyhow::Result<Store>,
    batch: usize,
) -> anyhow::Result<Totals> {
    let store = open()?;
    let mut appending = Appending::new(&store, batch);
    let total: usize = validated.chunks.iter().map(|(len, _)| len).sum();
    let mut expected = validated.chunks.into_iter();
    let second = for_each_chunk(
        &mut input.by_ref().take(total as u64),
        chunk,
        bufs,
        // A file, or the copy of a pipe the first pass made.
        ReadAhead::Yes,
        limits,
        |part, lines_before, crc| {
            if expected.next() != Some((part.len(), crc)) {
                bail!("stdin changed while it was being appended");
            }
            appending.send(parse_ndjson_parallel(
                part,
                lines_before,
                limits,
                Prepared::from_canonical,
            )?)
        },
    );
    let (done, waited) = appending.finish();
    match second.and(waited) {
        Ok(()) => Ok(done),
        Err(e) => {
            // Whatever failed, the store stored a prefix of the input (the chain refuses
            // every append after a failed one, and nothing is sent after a failure here).
            let kept = done.accepted + done.duplicates;
            let what = match (done.first, done.last) {
                _ if kept == 0 => "nothing of the input was appended".to_string(),
                (Some(a), Some(b)) => format!(
                    "the first {kept} events of the input are in the log ({} appended, indexes {a}..{b}, {} already there), none after them",
                    done.accepted, done.duplicates
                ),
                _ => format!(
                    "the first {kept} events of the input were already in the log, none after them was appended"
                ),
            };
            Err(e.context(what))
        }
    }
}

/// A new temporary file in `$TMPDIR` (else `/tmp`), already unlinked: it holds a copy of a
/// piped stdin and disappears when closed, however the process ends.
fn spool_file() -> anyhow::Result<File> {
    let dir = std::env::temp_dir();
    for attempt in 0..100u32 {
        let path = dir.join(format!(".vellum-append-{}-{attempt}", std::process::id()));
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "creating a temporary file in {} for stdin (set TMPDIR to another directory)",
                        dir.display()
                    )
                });
            }
        }
    }
    bail!(
        "could not create a temporary file in {} for stdin",
        dir.display()
    )
}

/// What an append did, summed over its commits.
#[derive(Debug, Default, PartialEq, Eq)]
struct Totals {
    accepted: u64,
    duplicates: u64,
    first: Option<u64>,
    last: Option<u64>,
    size: u64,
}

/// Sends prepared events to the store in commits of `batch`, keeping at most
/// `IN_FLIGHT_CHUNKS` sends waiting for durability, and sums up what they did.
struct Appending<'s> {
    store: &'s Store,
    /// Once the store refuses one append, it refuses every later one: what is stored is a
    /// prefix of the input.
    chain: AppendChain,
    batch: usize,
    in_flight: VecDeque<Vec<Pending>>,
    done: Totals,
}

impl<'s> Appending<'s> {
    fn new(store: &'s Store, batch: usize) -> Self {
        Self {
            store,
            chain: AppendChain::new(),
            batch: batch.max(1),
            in_flight: VecDeque::new(),
            done: Totals::default(),
        }
    }

    fn send(&mut self, events: Vec<Prepared>) -> anyhow::Result<()> {
        let mut pending = Vec::new();
        let mut events = events.into_iter();
        loop {
            let commit: Vec<Prepared> = events.by_ref().take(self.batch).collect();
            if commit.is_empty() {
                break;
            }
            pending.push(self.store.append_deferred_in(&self.chain, commit)?);
        }
        self.in_flight.push_back(pending);
        while self.in_flight.len() > IN_FLIGHT_CHUNKS {
            self.wait_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest chunk's appends, every one of them, and counts what they
    /// stored; fails with the first failure among them.
    fn wait_oldest(&mut self) -> anyhow::Result<()> {
        let mut failed = None;
        for p in self.in_flight.pop_front().unwrap_or_default() {
            let r = match p.wait() {
                Ok(r) => r,
                // Refused for the refusal before it, which was reported.
                Err(StoreError::ChainBroken) => continue,
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            let d = &mut self.done;
            d.accepted += r.accepted;
            d.duplicates += r.duplicates;
            d.first = d.first.or(r.first_index);
            d.last = r.last_index.or(d.last);
            d.size = d.size.max(r.tree_size);
        }
        match failed {
            Some(e) => Err(anyhow::Error::new(e).context("appending")),
            None => Ok(()),
        }
    }

    /// Waits for every send, then signs a checkpoint covering them: what was stored, and
    /// the first failure.
    fn finish(mut self) -> (Totals, anyhow::Result<()>) {
        let mut outcome = Ok(());
        while !self.in_flight.is_empty() {
            let waited = self.wait_oldest();
            outcome = outcome.and(waited);
        }
        let signed = self.store.checkpoint().context("signing the checkpoint");
        (self.done, outcome.and(signed.map(drop)))
    }
}

/// Whitespace a line may carry beyond the largest event before it is refused unread.
const LINE_SLACK: usize = 64 << 10;

/// The longest line read before it is refused unread.
fn longest_line(limits: &Limits) -> usize {
    limits.max_event_bytes.saturating_add(LINE_SLACK)
}

/// The most a chunk buffer is sized for up front, for the chunk and again for the line
/// carried over (larger ones grow it as it fills).
const MAX_CHUNK_BUF: usize = 64 << 20;

/// The two buffers chunks are read into: one is handed on while the next chunk is read
/// into the other. Both passes use the same two.
type ChunkBufs = [Vec<u8>; 2];

/// Whether the next chunk is read while the current one is handed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReadAhead {
    /// A file: reading it never waits on anyone.
    Yes,
    /// A pipe: its writer may be slow or stall, and a bad line must be reported as soon
    /// as it is read, not once the next chunk has arrived.
    No,
}

/// Reads NDJSON to the end, about `chunk` bytes at a time, and hands each run of complete
/// lines to `each` with the number of lines before it and its CRC-32C. From a file
/// (`ahead`), the next chunk is read (and its CRC and lines counted) on a thread of its own
/// while `each` works on the current one, so the cores parsing are not left idle while it
/// is read. A line that runs past the largest event (plus `LINE_SLACK`) without ending is
/// refused as soon as that is seen, so memory stays bounded whatever the input; an error
/// of `each` comes first, as its lines come first.
///
/// The buffers are sized once, for a chunk and the longest line carried over: growing
/// them as they fill would copy them and touch fresh pages each time, which costs more
/// than the reading itself.
fn for_each_chunk(
    input: &mut (impl Read + Send),
    chunk: u64,
    bufs: &mut ChunkBufs,
    ahead: ReadAhead,
    limits: &Limits,
    mut each: impl FnMut(&[u8], usize, u32) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let longest = longest_line(limits);
    let sized = usize::try_from(chunk)
        .unwrap_or(usize::MAX)
        .min(MAX_CHUNK_BUF)
        .saturating_add(longest.min(MAX_CHUNK_BUF));
    for buf in bufs.iter_mut() {
        buf.clear();
        if buf.capacity() < sized {
            *buf = Vec::with_capacity(sized);
        }
    }
    let [cur, next] = bufs;
    let mut lines_before = 0usize;
    let mut filled = fill(input, chunk, cur, limits, lines_before)?;
    loop {
        let after = lines_before + filled.lines;
        next.clear();
        next.extend_from_slice(cur.get(filled.complete..).unwrap_or_default());
        let part = cur.get(..filled.complete).unwrap_or_default();
        if filled.eof {
            return match part.is_empty() {
                true => Ok(()),
                false => each(part, lines_before, filled.crc),
            };
        }
        // Not at the end, `part` holds at least one line.
        filled = match ahead {
            ReadAhead::Yes => {
                let (handed, read) = std::thread::scope(|s| {
                    let reader = s.spawn(|| fill(input, chunk, next, limits, after));
                    (each(part, lines_before, filled.crc), reader.join())
                });
                handed?;
                read.map_err(|_| anyhow::anyhow!("the thread reading stdin failed"))??
            }
            ReadAhead::No => {
                each(part, lines_before, filled.crc)?;
                fill(input, chunk, next, limits, after)?
            }
        };
        std::mem::swap(cur, next);
        lines_before = after;
    }
}

/// What [`fill`] read: `buf[..complete]` is whole lines (`lines` newlines, CRC-32C `crc`);
/// the rest is the start of a line to carry over. At the end of the input (`eof`) all of
/// it counts, a last line without a newline too.
#[derive(Debug)]
struct Filled {
    complete: usize,
    crc: u32,
    lines: usize,
    eof: bool,
}

/// Reads into `buf` (holding a carried-over partial line, from `lines_before + 1`) about
/// `chunk` more bytes, and more until a line ends or the input does.
fn fill(
    input: &mut impl Read,
    chunk: u64,
    buf: &mut Vec<u8>,
    limits: &Limits,
    lines_before: usize,
) -> anyhow::Result<Filled> {
    let longest = longest_line(limits);
    loop {
        let read = input
            .by_ref()
            .take(chunk)
            .read_to_end(buf)
            .context("reading events from stdin")?;
        let eof = read == 0;
        let complete = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', buf) {
                Some(at) => at + 1,
                None if buf.len() > longest => bail!(
                    "line {}: over {longest} bytes and not ended; events are at most {} bytes; nothing was appended",
                    lines_before + 1,
                    limits.max_event_bytes
                ),
                None => continue,
            }
        };
        let part = buf.get(..complete).unwrap_or_default();
        return Ok(Filled {
            complete,
            crc: crc32c::crc32c(part),
            lines: memchr::memchr_iter(b'\n', part).count(),
            eof,
        });
    }
}

/// Parses and prepares NDJSON on every core, keeping line numbers (counted from
/// `lines_before + 1`) for errors.
fn parse_ndjson_parallel<T: Send>(
    input: &[u8],
    lines_before: usize,
    limits: &Limits,
    then: impl Fn(Canonical) -> T + Sync + Send,
) -> anyhow::Result<Vec<T>> {
    parse_batch_canonical(input, BodyFormat::Ndjson, limits, then)
        .or_else(|e| no_events_or_line(e, lines_before).map(|()| Vec::new()))
}

/// Checks NDJSON on every core as [`parse_ndjson_parallel`] parses it, making nothing;
/// the number of events.
fn check_ndjson_parallel(
    input: &[u8],
    lines_before: usize,
    limits: &Limits,
) -> anyhow::Result<usize> {
    check_batch(input, BodyFormat::Ndjson, limits)
        .or_else(|e| no_events_or_line(e, lines_before).map(|()| 0))
}

/// A chunk of blank lines is fine; any other error names its line in the whole input.
fn no_events_or_line(e: BatchError, lines_before: usize) -> anyhow::Result<()> {
    match e {
        BatchError::Empty => Ok(()),
        BatchError::Item { kind, item, error } => Err(BatchError::Item {
            kind,
            item: lines_before + item,
            error,
        })
        .context("nothing was appended"),
        e => Err(e).context("nothing was appended"),
    }
}

fn audit(store: &vellum_store::Store, event: Event) -> anyhow::Result<()> {
    store
        .append(vec![event])
        .context("recording the audit event")?;
    store.checkpoint().context("signing the checkpoint")?;
    Ok(())
}

/// Who ran the command, as far as the process can tell: the login name from the
/// environment (else `uid:N`), the numeric uid always (the environment can say anything),
/// and the user behind `sudo` when there is one.
fn cli_actor() -> JsonObject {
    let uid = rustix::process::getuid().as_raw();
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let mut m = serde_json::Map::new();
    let user = env("USER")
        .or_else(|| env("LOGNAME"))
        .unwrap_or_else(|| format!("uid:{uid}"));
    m.insert("user".into(), json!(user));
    m.insert("uid".into(), json!(uid));
    if let Some(sudo) = env("SUDO_USER") {
        m.insert("sudo_user".into(), json!(sudo));
    }
    m.insert("via".into(), json!("vellum-cli"));
    m.into()
}

pub(crate) fn keys_create(
    data: &Path,
    store_args: &StoreArgs,
    name: &str,
    role: &str,
) -> anyhow::Result<()> {
    let role: Role = role.parse()?;
    let store = open_store(data, store_args)?;
    let new = ApiKeys::new(data).create(name, role)?;
    let mut ev = Event::new(Category::Admin, "key.created", Outcome::Success)
        .with_details(json!({"key_id": new.key.id, "name": new.key.name, "role": role.as_str()}));
    ev.actor = Some(cli_actor());
    audit(&store, ev)?;
    // The key exists now: a secret that cannot be printed is lost, so say which key to
    // revoke rather than only that stdout failed.
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{}", new.token).and_then(|()| stdout.flush()) {
        // Said, not ended quietly as a closed pipe ends other commands (the kind, not the
        // message, is quoted, so it cannot read as one): the key is lost otherwise.
        anyhow::bail!(
            "key {} was created, but its secret could not be written to stdout ({:?}); it cannot be shown again: revoke it (vellum keys revoke {}) and create another",
            new.key.id,
            e.kind(),
            new.key.id
        );
    }
    errln!(
        "vellum: created key {} ({}, role {}); the secret above is shown only now",
        new.key.id,
        new.key.name,
        new.key.role
    );
    Ok(())
}

pub(crate) fn keys_revoke(data: &Path, store_args: &StoreArgs, id: &str) -> anyhow::Result<()> {
    let store = open_store(data, store_args)?;
    let keys = ApiKeys::new(data);
    match keys.revoke(id)? {
        Revocation::Revoked(key) => {
            let mut ev = Event::new(Category::Admin, "key.revoked", Outcome::Success).with_details(
                json!({"key_id": key.id, "name": key.name, "role": key.role.as_str(), "revoked": key.revoked}),
            );
            ev.actor = Some(cli_actor());
            audit(&store, ev)?;
            keys.revocation_recorded(&key.id)?;
            outln!("revoked {} ({})", key.id, key.name);
        }
        Revocation::AlreadyRevoked { key, at } => outln!(
            "{} ({}) was already revoked at {at}; nothing changed",
            key.id,
            key.name
        ),
    }
    Ok(())
}

pub(crate) fn prune(data: &Path, store_args: &StoreArgs, args: PruneArgs) -> anyhow::Result<()> {
    let mut options = vellum_store::Options {
        create: false,
        ..store_args.options()
    };
    options.retention.max_age = Duration::from_secs(args.max_age_days.saturating_mul(86400));
    options.retention.legal_hold = args.legal_hold;
    let store = crate::output::open_store_with(data, store_args, options)?;
    let report = store.prune(Timestamp::now())?;
    match (&report.pruned, report.held_segments) {
        (Some(p), _) => outln!(
            "pruned indexes {}..{} ({} segment{}); recorded as event {}",
            p.first_index,
            p.end_index.saturating_sub(1),
            p.segments.len(),
            if p.segments.len() == 1 { "" } else { "s" },
            p.event_index
        ),
        (None, 0) => outln!("nothing to prune"),
        (None, n) => outln!("legal hold: {n} expired segments kept"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: [&str; 3] = [
        r#"{"id":"a-1","time":"2026-11-26T10:00:00Z","category":"admin","action":"key.created","outcome":"success"}"#,
        r#"{"id":"a-2","time":"2026-11-26T10:00:01Z","category":"security","action":"alert","outcome":"failure"}"#,
        r#"{"id":"a-3","time":"2026-11-26T10:00:02Z","category":"authentication","action":"login","outcome":"failure","actor":{"user":"bob"}}"#,
    ];

    use std::io::Cursor;

    use vellum_store::{LogReader, Options};

    fn bodies(input: &str, chunk: u64, ahead: ReadAhead) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        for_each_chunk(
            &mut input.as_bytes(),
            chunk,
            &mut ChunkBufs::default(),
            ahead,
            &Limits::default(),
            |part, lines_before, _| {
                let prepared =
                    parse_ndjson_parallel(part, lines_before, &Limits::default(), |c| {
                        c.into_body()
                    })?;
                out.extend(prepared);
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Chunks cut lines anywhere: the events and the line numbers of errors are those of
    /// reading the input whole.
    #[test]
    fn chunks_do_not_change_what_is_read() {
        for input in [
            format!("{}\n{}\r\n\n  \n{}\n", LINES[0], LINES[1], LINES[2]),
            format!("{}\n{}\n{}", LINES[0], LINES[1], LINES[2]),
        ] {
            let whole = bodies(&input, u64::MAX, ReadAhead::No).unwrap();
            assert_eq!(whole.len(), 3);
            for ahead in [ReadAhead::Yes, ReadAhead::No] {
                for chunk in [1, 2, 7, 64, 100, 1000] {
                    assert_eq!(
                        bodies(&input, chunk, ahead).unwrap(),
                        whole,
                        "chunk {chunk}, {ahead:?}"
                    );
                }
            }
        }
        let bad = format!("{}\n\n{}\n{{\"id\":1}}\n{}\n", LINES[0], LINES[1], LINES[2]);
        for ahead in [ReadAhead::Yes, ReadAhead::No] {
            for chunk in [1, 5, 80, u64::MAX] {
                let err = format!("{:#}", bodies(&bad, chunk, ahead).unwrap_err());
                assert!(err.contains("line 4"), "chunk {chunk}, {ahead:?}: {err}");
            }
        }
    }

    /// `n` good lines of the same length, ids `e-000`, `e-001`, …
    fn numbered(n: usize) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"id\":\"e-{i:03}\",\"time\":\"2026-11-26T10:00:00Z\",\"category\":\"admin\",\"action\":\"x\",\"outcome\":\"success\"}}\n"
                )
            })
            .collect()
    }

    /// The ids stored in the log at `dir`, in index order.
    fn stored_ids(dir: &Path) -> Vec<String> {
        let reader = LogReader::open(dir).unwrap();
        (0..reader.size().unwrap())
            .map(|i| {
                let v: serde_json::Value =
                    serde_json::from_slice(&reader.read(i).unwrap()).unwrap();
                v["id"].as_str().unwrap().to_string()
            })
            .collect()
    }

    fn open_in(dir: &Path) -> impl FnOnce() -> anyhow::Result<Store> + '_ {
        move || Ok(Store::open(dir, Options::default())?)
    }

    /// A file (read in place) or a pipe (read from its spooled copy) is validated, then
    /// appended a chunk at a time: whatever the chunk and commit sizes, every event is stored
    /// once, in order, and the totals add up.
    #[test]
    fn input_is_appended_in_order_whatever_the_chunks() {
        let input = numbered(40);
        let want: Vec<String> = (0..40).map(|i| format!("e-{i:03}")).collect();
        let cases = [(1, 1), (7, 3), (150, 8192), (1000, 5), (u64::MAX, 8192)];
        for ((chunk, batch), piped) in cases.into_iter().flat_map(|c| [(c, false), (c, true)]) {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().join("log");
            let limits = Limits::default();
            let totals = if piped {
                let spool = spool_file().unwrap();
                append_stream(
                    &mut input.as_bytes(),
                    spool,
                    chunk,
                    &limits,
                    open_in(&dir),
                    batch,
                )
            } else {
                let mut file = Cursor::new(input.clone().into_bytes());
                append_file(&mut file, chunk, &limits, open_in(&dir), batch)
            }
            .unwrap();
            assert_eq!(
                totals,
                Totals {
                    accepted: 40,
                    duplicates: 0,
                    first: Some(0),
                    last: Some(39),
                    size: 40
                },
                "chunk {chunk}, batch {batch}, piped {piped}"
            );
            assert_eq!(
                stored_ids(&dir),
                want,
                "chunk {chunk}, batch {batch}, piped {piped}"
            );
        }
    }

    /// A bad line anywhere in a file or a pipe: the store is never opened, and the line is
    /// named.
    #[test]
    fn a_bad_line_opens_nothing() {
        let mut input = numbered(30);
        input.push_str("{\"category\":\"admin\"}\n");
        for (chunk, piped) in [1, 64, u64::MAX]
            .into_iter()
            .flat_map(|c| [(c, false), (c, true)])
        {
            let mut opened = false;
            let open = || {
                opened = true;
                anyhow::bail!("the store should not be opened")
            };
            let limits = Limits::default();
            let err = if piped {
                let spool = spool_file().unwrap();
                append_stream(&mut input.as_bytes(), spool, chunk, &limits, open, 8192)
            } else {
                let mut file = Cursor::new(input.clone().into_bytes());
                append_file(&mut file, chunk, &limits, open, 8192)
            }
            .unwrap_err();
            assert!(
                format!("{err:#}").contains("line 31"),
                "chunk {chunk}: {err:#}"
            );
            assert!(!opened, "chunk {chunk}, piped {piped}");
        }
    }

    /// A line that never ends is refused once it is longer than any event could be, not
    /// read into memory to the end (here: an endless stream of one character).
    #[test]
    fn an_endless_line_is_refused_without_reading_it_all() {
        let limits = Limits {
            max_event_bytes: 1000,
        };
        for ahead in [ReadAhead::Yes, ReadAhead::No] {
            let mut endless = b"{}\n".chain(std::io::repeat(b'x'));
            let mut seen = 0;
            let err = for_each_chunk(
                &mut endless,
                4096,
                &mut ChunkBufs::default(),
                ahead,
                &limits,
                |part, _, _| {
                    seen += part.len();
                    Ok(())
                },
            )
            .unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains("line 2"), "{ahead:?}: {msg}");
            assert!(msg.contains("events are at most 1000 bytes"), "{msg}");
            assert_eq!(seen, 3, "{ahead:?}: the complete first line was handed on");
        }
    }

    /// Input that records being read: after a pipe's bad line, what its writer sends
    /// next (or never sends) must not hold up the error.
    struct Watched<'a>(&'a std::sync::atomic::AtomicBool);

    impl Read for Watched<'_> {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(0)
        }
    }

    #[test]
    fn a_pipe_is_not_read_past_a_chunk_with_a_bad_line() {
        let first = format!("{}\n{{\"id\":1}}\n", LINES[0]);
        for (ahead, reads_on) in [(ReadAhead::No, false), (ReadAhead::Yes, true)] {
            let touched = std::sync::atomic::AtomicBool::new(false);
            let mut input = first.as_bytes().chain(Watched(&touched));
            // The first chunk ends exactly where the watched input begins.
            let err = for_each_chunk(
                &mut input,
                first.len() as u64,
                &mut ChunkBufs::default(),
                ahead,
                &Limits::default(),
                |part, lines_before, _| {
                    parse_ndjson_parallel(part, lines_before, &Limits::default(), |_| ())
                        .map(|_| ())
                },
            )
            .unwrap_err();
            assert!(format!("{err:#}").contains("line 2"), "{ahead:?}: {err:#}");
            assert_eq!(
                touched.load(std::sync::atomic::Ordering::SeqCst),
                reads_on,
                "{ahead:?}"
            );
        }
    }

    /// A file that reads differently the second time (changed between the passes): a
    /// test double for another process rewriting the input while it is appended.
    struct Rewritten {
        now: Cursor<Vec<u8>>,
        later: Option<Vec<u8>>,
    }

    impl Read for Rewritten {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.now.read(buf)
        }
    }

    impl Seek for Rewritten {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            // Rewinding starts the second pass (asking for the position does not).
            if matches!(to, SeekFrom::Start(_))
                && let Some(later) = self.later.take()
            {
                self.now = Cursor::new(later);
            }
            self.now.seek(to)
        }
    }

    /// The chunks that still read as validated are appended; the first that does not
    /// stops the append, and the error says how far it got.
    #[test]
    fn a_file_changed_between_the_passes_stops_where_it_changed() {
        let before = numbered(40);
        let after = before.replace("\"e-025\"", "\"E-025\"");
        let line_len = before.find('\n').unwrap() as u64 + 1;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut file = Rewritten {
            now: Cursor::new(before.into_bytes()),
            later: Some(after.into_bytes()),
        };
        // Chunks of 10 lines: lines 1-20 are appended, the chunk of lines 21-30 changed.
        let err = append_file(
            &mut file,
            10 * line_len,
            &Limits::default(),
            open_in(&dir),
            4,
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("stdin changed"), "{msg}");
        assert!(
            msg.contains(
                "the first 20 events of the input are in the log (20 appended, indexes 0..19"
            ),
            "{msg}"
        );
        let want: Vec<String> = (0..20).map(|i| format!("e-{i:03}")).collect();
        assert_eq!(stored_ids(&dir), want);
    }
}
