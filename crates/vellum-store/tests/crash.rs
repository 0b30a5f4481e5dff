#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash safety: a writer process killed with SIGKILL at random instants, many times over.
//! Afterwards every append it had reported done is present exactly once, at the index it
//! was given, nothing is stored twice, recovery succeeds and `verify` passes.
//!
//! The test binary re-executes itself as the writer: when `VELLUM_CRASH_CHILD=<dir>` is set,
//! [`crash_child_writer`] runs as the child and everything else is skipped. The child prints
//! `start <batch>` before it submits a batch and `done <batch> <first> <last> <indexes>` once
//! the append has returned Ok; the parent treats every complete `done` line as an
//! acknowledgement it may hold the store to.
//!
//! Event ids are deterministic (`b<batch>-<i>`, batch sizes a function of the batch number),
//! so the parent can ask a later child to re-send batches that were started but never
//! acknowledged: the ones that became durable before the kill must come back as duplicates.
//!
//! The other tests here put a data directory in the exact state a kill at one particular
//! instant leaves (a kill between two system calls), which random kills rarely hit.
//!
//! `VELLUM_CRASH_SEED` repeats the random test's choices (kill delays, the children's
//! seeds; timing still varies); `VELLUM_CRASH_ROUNDS` (default 30) and
//! `VELLUM_CRASH_SECONDS` (default 25) bound it, and can be raised for a longer soak.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use vellum_event::{Category, Event, Outcome, StoredEvent, Timestamp};
use vellum_store::{LogReader, Options, Retention, Store, StoreError, VerifyOptions, verify};

const CHILD_ENV: &str = "VELLUM_CRASH_CHILD";
const START_ENV: &str = "VELLUM_CRASH_START";
const RESEND_ENV: &str = "VELLUM_CRASH_RESEND";
const SEED_ENV: &str = "VELLUM_CRASH_SEED";
const ROUNDS_ENV: &str = "VELLUM_CRASH_ROUNDS";
const SECONDS_ENV: &str = "VELLUM_CRASH_SECONDS";
/// The name of the child's test function, as `--exact` wants it.
const CHILD_TEST: &str = "crash_child_writer";

/// Writer threads in the child, and appends each keeps in flight.
const CHILD_THREADS: usize = 2;
const IN_FLIGHT: usize = 3;
/// A child that is never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// The random test stops starting rounds after this long (it always runs a few), unless
/// `VELLUM_CRASH_SECONDS` says otherwise.
const TIME_BUDGET: Duration = Duration::from_secs(25);
const MIN_ROUNDS: usize = 8;
/// Every this many rounds the test starts a fresh log: the checks read the whole log each
/// round, so this bounds their cost while keeping rounds short.
const ROUNDS_PER_LOG: usize = 4;

fn options() -> Options {
    Options {
        create: true,
        origin: Some("vellum/crash-test".into()),
        // Small enough that most rounds rotate. Not smaller: in a debug build every scan of
        // a segment (verify, `for_each`, recovery) zero-fills an 8 MiB buffer first, so the
        // checks cost about 40 ms per segment.
        segment_max_bytes: 256 << 10,
        checkpoint_interval: Duration::from_millis(50),
        ..Options::default()
    }
}

/// SplitMix64: a tiny deterministic generator, enough for timings and sizes.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How many events batch `batch` holds: fixed, so a re-sent batch is the same. Mostly
/// 1..=200; one in eight holds 2,048..=2,303, a commit large enough to be synced on the
/// writer's sync thread while the next is written.
fn batch_size(batch: u64) -> usize {
    let m = mix(batch ^ 0x5EED);
    if m.is_multiple_of(8) {
        2048 + ((m >> 8) % 256) as usize
    } else {
        1 + (m % 200) as usize
    }
}

fn event_id(batch: u64, i: usize) -> String {
    format!("b{batch}-{i}")
}

fn batch_events(batch: u64) -> Vec<Event> {
    (0..batch_size(batch))
        .map(|i| {
            let pad = (mix((batch << 8) ^ i as u64) % 96) as usize;
            let mut ev = Event::new(Category::ApiRequest, "chat.completion", Outcome::Success)
                .with_details(serde_json::json!({
                    "batch": batch,
                    "i": i,
                    "pad": "x".repeat(pad),
                }));
            ev.id = event_id(batch, i).parse().unwrap();
            ev
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The child: a writer that appends until it is killed.

/// Runs as the crash test's writer process when `VELLUM_CRASH_CHILD` is set; otherwise
/// does nothing.
#[test]
fn crash_child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var(START_ENV).unwrap().parse().unwrap();
    let resend: VecDeque<u64> = std::env::var(RESEND_ENV)
        .unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let seed: u64 = std::env::var(SEED_ENV).unwrap().parse().unwrap();

    let store = Store::open(PathBuf::from(dir), options()).expect("recovery must succeed");
    let torn = store.recovered().torn_tail.as_ref().map_or(0, |t| t.2);
    say(&format!("opened {} {torn}", store.tree_size()));

    let next = Arc::new(AtomicU64::new(start));
    let resend = Arc::new(Mutex::new(resend));
    let born = Instant::now();
    let threads: Vec<_> = (0..CHILD_THREADS)
        .map(|t| {
            let store = store.clone();
            let next = next.clone();
            let resend = resend.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed ^ mix(t as u64 + 1));
                let mut in_flight = VecDeque::new();
                while born.elapsed() < CHILD_LIFETIME {
                    let again = resend.lock().unwrap().pop_front();
                    let batch = again.unwrap_or_else(|| next.fetch_add(1, Ordering::Relaxed));
                    // Announced before it is submitted: whatever may become durable is known.
                    say(&format!("start {batch}"));
                    let pending = store.append_deferred(batch_events(batch)).unwrap();
                    in_flight.push_back((batch, pending));
                    if in_flight.len() >= IN_FLIGHT {
                        let (batch, pending) = in_flight.pop_front().unwrap();
                        acknowledge(batch, pending.wait().unwrap());
                    }
                    // Keeps the log (and the parent's checks of it) a manageable size.
                    std::thread::sleep(Duration::from_millis(rng.below(20)));
                }
                for (batch, pending) in in_flight {
                    acknowledge(batch, pending.wait().unwrap());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn acknowledge(batch: u64, a: vellum_store::Appended) {
    let opt = |i: Option<u64>| i.map_or("-".to_string(), |i| i.to_string());
    let indexes: Vec<String> = a
        .indexes
        .iter()
        .map(|&(i, dup)| if dup { format!("d{i}") } else { i.to_string() })
        .collect();
    say(&format!(
        "done {batch} {} {} {}",
        opt(a.first_index),
        opt(a.last_index),
        indexes.join(",")
    ));
}

/// Marks the child's own lines: the test harness prints `test … ` without a newline
/// before the test's output starts.
const TAG: &str = "@vellum ";

/// Prints one whole line and flushes it, so the parent never reads half an announcement.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // The parent may be gone (it panicked); then so is the point of going on.
    if out
        .write_all(format!("{TAG}{line}\n").as_bytes())
        .and_then(|()| out.flush())
        .is_err()
    {
        std::process::exit(3);
    }
}

// ---------------------------------------------------------------------------------------
// The parent.

/// Kills the child if the parent panics before it has waited for it.
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What the parent knows: every batch a child started, and every acknowledged event.
#[derive(Debug, Default)]
struct Ledger {
    started: BTreeSet<u64>,
    acked_batches: HashSet<u64>,
    /// Acknowledged event id -> the index the store said it has.
    acked: HashMap<String, u64>,
    next_batch: u64,
}

impl Ledger {
    fn unacknowledged(&self) -> Vec<u64> {
        self.started
            .iter()
            .filter(|b| !self.acked_batches.contains(b))
            .copied()
            .collect()
    }

    /// Takes one line of the child's output; returns how many events it acknowledged as
    /// duplicates.
    fn take_line(&mut self, line: &str, round: usize) -> usize {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("start") => {
                let batch: u64 = words.next().unwrap().parse().unwrap();
                self.started.insert(batch);
                self.next_batch = self.next_batch.max(batch + 1);
                0
            }
            Some("done") => {
                let batch: u64 = words.next().unwrap().parse().unwrap();
                let (first, last) = (words.next().unwrap(), words.next().unwrap());
                let indexes: Vec<&str> = words.next().unwrap().split(',').collect();
                assert_eq!(indexes.len(), batch_size(batch), "round {round}: {line}");
                // The events stored by one append get consecutive indexes.
                let stored: Vec<u64> = indexes
                    .iter()
                    .filter(|i| !i.starts_with('d'))
                    .map(|i| i.parse().unwrap())
                    .collect();
                let opt = |i: Option<&u64>| i.map_or("-".to_string(), u64::to_string);
                assert_eq!(
                    (first, last),
                    (opt(stored.first()).as_str(), opt(stored.last()).as_str()),
                    "round {round}: {line}"
                );
                assert!(
                    stored.windows(2).all(|w| w[1] == w[0] + 1),
                    "round {round}: {line}"
                );
                for (i, idx) in indexes.iter().enumerate() {
                    let index: u64 = idx.trim_start_matches('d').parse().unwrap();
                    let id = event_id(batch, i);
                    if let Some(&before) = self.acked.get(&id) {
                        assert_eq!(
                            before, index,
                            "round {round}: {id} was acknowledged at {before}, now at {index}"
                        );
                    }
                    self.acked.insert(id, index);
                }
                self.acked_batches.insert(batch);
                indexes.iter().filter(|i| i.starts_with('d')).count()
            }
            _ => 0, // "opened"
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    killed: usize,
    recoveries_by_parent: usize,
    torn_tails_cut: usize,
    torn_bytes: u64,
    resent_batches: usize,
    duplicates_acked: usize,
    killed_before_open: usize,
    verify_false_alarms: usize,
    batches_started: usize,
    batches_acked: usize,
    events_acked: usize,
}

#[test]
fn sigkill_at_random_instants_loses_and_duplicates_no_acknowledged_append() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let seed = std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Timestamp::now().unix_micros() as u64);
    let rounds: usize = std::env::var(ROUNDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let budget = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(TIME_BUDGET, Duration::from_secs);
    eprintln!("crash test seed {seed} (replay with {SEED_ENV}={seed})");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut dir = PathBuf::new();
    let exe = std::env::current_exe().unwrap();
    let began = Instant::now();
    let mut ledger = Ledger::default();
    let mut tally = Tally::default();
    let mut cache = Vec::new();

    for round in 0..rounds {
        if round >= MIN_ROUNDS && began.elapsed() > budget {
            break;
        }
        if round % ROUNDS_PER_LOG == 0 {
            if round > 0 {
                finish_log(&dir, &mut ledger, &mut cache, &mut tally);
            }
            dir = tmp.path().join(format!("log-{}", round / ROUNDS_PER_LOG));
            // Created here, not by a child that may be killed while creating it: that
            // instant is tested on its own (`a_kill_while_creating_the_data_directory_…`).
            drop(Store::open(&dir, options()).unwrap());
        }
        tally.rounds += 1;
        // Every third round first re-sends what earlier rounds never saw acknowledged.
        let resend: Vec<u64> = if round % 3 == 2 {
            ledger.unacknowledged().into_iter().take(16).collect()
        } else {
            Vec::new()
        };
        tally.resent_batches += resend.len();
        let resend_list: Vec<String> = resend.iter().map(u64::to_string).collect();
        let stderr_path = tmp.path().join(format!("child-{round}.stderr"));
        let child = Command::new(&exe)
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .env(START_ENV, ledger.next_batch.to_string())
            .env(RESEND_ENV, resend_list.join(","))
            .env(SEED_ENV, rng.next().to_string())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        let mut guard = KillOnDrop(Some(child));
        let stdout = guard.0.as_mut().unwrap().stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    // A line cut short by the kill was never a whole announcement.
                    Ok(_) if line.ends_with('\n') => {
                        let Some(at) = line.find(TAG) else { continue };
                        if tx
                            .send(line[at + TAG.len()..].trim_end().to_string())
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(_) => break,
                }
            }
        });

        // Half the rounds count the delay (0-600 ms) from the spawn, so that some kills land
        // in start-up and recovery; half count it (0-300 ms) from the moment the store is
        // open, so that most land among appends.
        let mut lines = Vec::new();
        let delay = Duration::from_millis(rng.below(if round % 2 == 1 { 300 } else { 600 }));
        if round % 2 == 1 {
            let deadline = Instant::now() + Duration::from_secs(20);
            while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                let opened = line.starts_with("opened ");
                lines.push(line);
                if opened {
                    break;
                }
            }
        }
        std::thread::sleep(delay);
        let mut child = guard.0.take().unwrap();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        if status.signal() == Some(9) {
            tally.killed += 1;
        } else {
            assert!(
                status.success(),
                "round {round}: the writer failed on its own ({status}):\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        if !lines.iter().any(|l| l.starts_with("opened ")) {
            tally.killed_before_open += 1;
        }
        for line in &lines {
            if let Some(rest) = line.strip_prefix("opened ") {
                let torn: u64 = rest.split(' ').nth(1).unwrap().parse().unwrap();
                if torn > 0 {
                    tally.torn_tails_cut += 1;
                    tally.torn_bytes += torn;
                }
            }
            tally.duplicates_acked += ledger.take_line(line, round);
        }

        // Even rounds: the parent recovers, then checks and verifies the recovered log.
        // Odd rounds: the parent checks and verifies the directory exactly as the kill left
        // it, and leaves recovery to the next child (which may be killed while recovering).
        // (One scan and one `verify` a round keep the test within its time in a debug build.)
        let ctx = format!("round {round}");
        let events = if round % 2 == 0 {
            let store = Store::open(&dir, options())
                .unwrap_or_else(|e| panic!("{ctx}: recovery failed: {e}"));
            tally.recoveries_by_parent += 1;
            let rec = store.recovered().clone();
            assert_eq!(rec.tree_size, store.tree_size(), "{ctx}");
            if let Some((path, at, cut)) = &rec.torn_tail {
                eprintln!(
                    "{ctx}: recovery cut a torn tail of {cut} bytes at {at} in {}",
                    path.display()
                );
                tally.torn_tails_cut += 1;
                tally.torn_bytes += cut;
            }
            drop(store);
            let events = check_log(&dir, &ledger, &mut cache, &ctx, When::Recovered, &mut 0);
            assert_eq!(rec.tree_size, events, "{ctx}");
            events
        } else {
            check_log(
                &dir,
                &ledger,
                &mut cache,
                &ctx,
                When::AsKilled,
                &mut tally.verify_false_alarms,
            )
        };
        eprintln!(
            "{ctx}: killed after {} ms, {events} events, {} acknowledged, {:.1} s",
            delay.as_millis(),
            ledger.acked.len(),
            began.elapsed().as_secs_f64()
        );
    }

    finish_log(&dir, &mut ledger, &mut cache, &mut tally);
    eprintln!(
        "crash test: {} rounds ({} killed, {} before the store was open), {} batches started, \
         {} acknowledged, {} events acknowledged, {} batches re-sent, {} acknowledged as \
         duplicates, {} recoveries by the parent, {} torn tails cut ({} bytes), {} verify \
         false alarms before recovery, {:.1} s",
        tally.rounds,
        tally.killed,
        tally.killed_before_open,
        tally.batches_started,
        tally.batches_acked,
        tally.events_acked,
        tally.resent_batches,
        tally.duplicates_acked,
        tally.recoveries_by_parent,
        tally.torn_tails_cut,
        tally.torn_bytes,
        tally.verify_false_alarms,
        began.elapsed().as_secs_f64()
    );
    assert!(
        tally.events_acked > 0,
        "no append was ever acknowledged: the test proved nothing"
    );
}

/// Ends one log: a last recovery, the whole log checked once more; then a fresh ledger.
fn finish_log(dir: &Path, ledger: &mut Ledger, cache: &mut Parsed, tally: &mut Tally) {
    let store = Store::open(dir, options()).expect("final recovery");
    if let Some((_, _, cut)) = &store.recovered().torn_tail {
        tally.torn_tails_cut += 1;
        tally.torn_bytes += cut;
    }
    let size = store.tree_size();
    drop(store);
    let ctx = format!("{} at the end", dir.display());
    let events = check_log(dir, ledger, cache, &ctx, When::Recovered, &mut 0);
    assert_eq!(events, size);
    tally.batches_started += ledger.started.len();
    tally.batches_acked += ledger.acked_batches.len();
    tally.events_acked += ledger.acked.len();
    *ledger = Ledger::default();
    cache.clear();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// The data directory exactly as the kill left it: nothing has recovered it.
    AsKilled,
    /// After a writer has opened (and so recovered) it.
    Recovered,
}

/// Stored bytes already parsed, and the id they hold, by index: a debug build parses slowly,
/// and most of the log is the same from one round to the next.
type Parsed = Vec<(Vec<u8>, String)>;

/// Checks the log against the ledger and runs `verify`; returns how many events it holds.
fn check_log(
    dir: &Path,
    ledger: &Ledger,
    cache: &mut Parsed,
    ctx: &str,
    when: When,
    false_alarms: &mut usize,
) -> u64 {
    let ctx = format!("{ctx}, {when:?}");
    let reader = LogReader::open(dir).unwrap();
    assert_eq!(
        reader.first_index().unwrap(),
        0,
        "{ctx}: nothing is pruned here"
    );
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut next = 0u64;
    reader
        .for_each(0, u64::MAX, |index, bytes| {
            assert_eq!(index, next, "{ctx}: the scan skipped an index");
            next += 1;
            let i = index as usize;
            if cache.get(i).is_none_or(|(b, _)| b != bytes) {
                let stored = StoredEvent::parse(bytes)
                    .unwrap_or_else(|e| panic!("{ctx}: index {index} does not parse: {e}"));
                assert_eq!(stored.index, index, "{ctx}");
                cache.truncate(i);
                cache.push((bytes.to_vec(), stored.event.id.as_str().to_string()));
            }
            let id = cache[i].1.clone();
            if let Some(other) = seen.insert(id.clone(), index) {
                panic!("{ctx}: {id} is stored twice, at {other} and at {index}");
            }
            Ok(())
        })
        .unwrap();
    let size = next;
    cache.truncate(size as usize);
    match (when, reader.size()) {
        (When::Recovered, n) => assert_eq!(n.unwrap(), size, "{ctx}"),
        // Before recovery the reader counts what the `.idx` files hold: every acknowledged
        // event, and perhaps not the durable ones past them that were never acknowledged.
        (When::AsKilled, Ok(n)) => {
            assert!(n <= size, "{ctx}: the reader counts {n} events of {size}");
            if let Some((id, &i)) = ledger.acked.iter().find(|&(_, &i)| i >= n) {
                panic!("{ctx}: the reader counts {n} events, without acknowledged {id} ({i})");
            }
        }
        // It fails if the kill came between creating a segment and its `.idx`: see
        // `a_reader_sees_a_log_killed_between_a_new_segment_and_its_index`.
        (When::AsKilled, Err(StoreError::Io { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound => {}
        (When::AsKilled, Err(e)) => panic!("{ctx}: the reader's size: {e}"),
    }

    for (id, &index) in &ledger.acked {
        match seen.get(id) {
            Some(&at) => assert_eq!(
                at, index,
                "{ctx}: {id} was acknowledged at index {index} but is stored at {at}"
            ),
            None => panic!("{ctx}: acknowledged {id} (index {index}) is missing"),
        }
    }
    // Random access too: acknowledged indexes hold the acknowledged ids.
    for (id, &index) in ledger.acked.iter().step_by(61) {
        let bytes = reader.read(index).unwrap();
        let stored = StoredEvent::parse(&bytes).unwrap();
        assert_eq!(stored.event.id.as_str(), id, "{ctx}: read({index})");
    }

    let mut report = verify(dir, &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{ctx}: verify failed to run: {e}"));
    if when == When::AsKilled {
        // A kill after a commit's fdatasync and before the tree file of a new level was
        // created makes verify report the missing file: a false alarm, reproduced on its
        // own by `verify_accepts_a_log_killed_before_its_tree_grew_a_level`. Recovery
        // must clear it, which the checks after recovery hold it to.
        let before = report.problems.len();
        report
            .problems
            .retain(|p| !(p.what.starts_with("tree file") && p.what.ends_with("is missing")));
        if report.problems.len() < before {
            // verify stopped at that index; the rest is checked after recovery.
            *false_alarms += 1;
            assert!(report.ok(), "{ctx}: verify found {:#?}", report.problems);
            return size;
        }
    }
    assert!(report.ok(), "{ctx}: verify found {:#?}", report.problems);
    assert_eq!(
        report.tree_size, size,
        "{ctx}: verify and the scan disagree"
    );
    size
}

// ---------------------------------------------------------------------------------------
// Kills at one particular instant, reproduced exactly.

fn small_options() -> Options {
    Options {
        segment_max_bytes: 2048,
        ..options()
    }
}

/// Where the records of a segment file end (the rest is the zeroed space ahead of them).
fn records_end(segment: &Path) -> u64 {
    let bytes = std::fs::read(segment).unwrap();
    let mut end = 32usize;
    while end + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        end += 8 + len;
    }
    end as u64
}

/// Does to the last segment of a closed store what `rotate()` does first: cut the zeroed
/// space after its records (its `.idx` is already complete). Returns the next segment's path.
fn seal_last_segment(dir: &Path, size: u64) -> PathBuf {
    let segments = dir.join("segments");
    let last = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .unwrap();
    let end = records_end(&last);
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(end).unwrap();
    let next = segments.join(format!("{size:020}.seg"));
    assert!(!next.exists());
    next
}

fn append_batches(store: &Store, batches: std::ops::Range<u64>) {
    for b in batches {
        store.append(batch_events(b)).unwrap();
    }
}

/// A kill inside `rotate()` right after the next segment file was created (`create_new`)
/// and before its header was written leaves an empty `<first>.seg`. Nothing acknowledged is
/// missing, so the store must open and carry on, and `verify` must pass.
#[test]
fn a_kill_between_creating_a_segment_and_writing_its_header_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, small_options()).unwrap();
    append_batches(&store, 0..3);
    let size = store.tree_size();
    drop(store);
    // The previous segment sealed, the next one created (`create_new`) and still empty.
    let next_segment = seal_last_segment(&dir, size);
    std::fs::File::create(&next_segment).unwrap();

    let store = Store::open(&dir, small_options())
        .unwrap_or_else(|e| panic!("a kill mid-rotation must be recoverable: {e}"));
    assert_eq!(store.tree_size(), size);
    append_batches(&store, 3..4);
    drop(store);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:#?}", report.problems);
}

/// A kill while a new data directory is being created, after `segments/` and `tree/` exist
/// and before `vellum.json` is renamed into place. Nothing was ever acknowledged, so opening
/// again must finish the creation rather than call the directory foreign.
#[test]
fn a_kill_while_creating_the_data_directory_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // What the first open leaves behind up to that instant: the directory, `LOCK`,
    // `signing.key` (0600), `segments/` and `tree/`; `vellum.json` comes last.
    for sub in ["segments", "tree"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("LOCK"), "4242\n").unwrap();
    let key = dir.join("signing.key");
    std::fs::write(&key, format!("ed25519-seed-hex {}\n", "5a".repeat(32))).unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();

    let store = Store::open(&dir, options())
        .unwrap_or_else(|e| panic!("a kill mid-creation must be recoverable: {e}"));
    append_batches(&store, 0..1);
    drop(store);
    assert!(verify(&dir, &VerifyOptions::default()).unwrap().ok());
}

/// Retention writes `prunes.log` (synced) and only then removes the segment files. A kill
/// in between leaves the pruned segments in place; the pruning was recorded and its event
/// is in the log, so the store must open (finishing or ignoring the removal), reads of the
/// pruned indexes must say "pruned", and `verify` must pass.
#[test]
fn a_kill_between_recording_a_prune_and_removing_its_files_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let opts = Options {
        retention: Retention {
            max_age: Duration::ZERO,
            legal_hold: false,
        },
        ..small_options()
    };
    let store = Store::open(&dir, opts.clone()).unwrap();
    append_batches(&store, 0..4);
    // Keep a copy of the segments that are about to be removed.
    let segments = dir.join("segments");
    let saved = tmp.path().join("saved");
    std::fs::create_dir_all(&saved).unwrap();
    let before: Vec<_> = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for name in &before {
        std::fs::copy(segments.join(name), saved.join(name)).unwrap();
    }
    let later =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 3_600_000_000).unwrap();
    let report = store.prune(later).unwrap();
    let pruned = report.pruned.expect("sealed segments to prune");
    drop(store);
    // Put back what the removal removed: the state of a kill just before `remove_file`.
    for name in &before {
        if !segments.join(name).exists() {
            std::fs::copy(saved.join(name), segments.join(name)).unwrap();
        }
    }

    let store = Store::open(&dir, opts)
        .unwrap_or_else(|e| panic!("a kill mid-prune must be recoverable: {e}"));
    append_batches(&store, 4..5);
    drop(store);
    let reader = LogReader::open(&dir).unwrap();
    assert_eq!(reader.first_index().unwrap(), pruned.end_index);
    assert!(matches!(
        reader.read(pruned.first_index),
        Err(StoreError::Pruned { .. })
    ));
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:#?}", report.problems);
}

/// A power loss while a prune record was being appended leaves a torn record at the end of
/// `prunes.log` (that pruning never happened: its files are still there). The next pruning
/// must still be recorded so that it is seen: after it, the store opens, the log starts
/// where the pruning says and `verify` passes.
#[test]
fn a_torn_prune_record_does_not_hide_the_next_pruning() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let opts = Options {
        retention: Retention {
            max_age: Duration::ZERO,
            legal_hold: false,
        },
        ..small_options()
    };
    let store = Store::open(&dir, opts.clone()).unwrap();
    append_batches(&store, 0..4);
    drop(store);
    // A torn record: a frame header promising 200 bytes, and only 20 of them.
    let mut torn = Vec::new();
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&0xDEAD_BEEFu32.to_le_bytes());
    torn.extend_from_slice(&[b'{'; 20]);
    std::fs::write(dir.join("prunes.log"), &torn).unwrap();

    let store = Store::open(&dir, opts.clone()).expect("a torn prune record is no pruning");
    let later =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 3_600_000_000).unwrap();
    let pruned = store
        .prune(later)
        .unwrap()
        .pruned
        .expect("something to prune");
    append_batches(&store, 4..5);
    drop(store);

    let store = Store::open(&dir, opts)
        .unwrap_or_else(|e| panic!("the store must open after a pruning: {e}"));
    drop(store);
    let reader = LogReader::open(&dir).unwrap();
    assert_eq!(reader.first_index().unwrap(), pruned.end_index);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:#?}", report.problems);
}

/// A kill inside `rotate()` after the next segment's header was written and before its
/// `.idx` was created (a reader beside a live writer sees the same for a moment). Readers
/// take no lock and do not recover: they must still answer for the log as it is.
#[test]
fn a_reader_sees_a_log_killed_between_a_new_segment_and_its_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, small_options()).unwrap();
    append_batches(&store, 0..3);
    let size = store.tree_size();
    drop(store);
    let next_segment = seal_last_segment(&dir, size);
    // Rotation writes the header of the next segment (32 bytes: magic, first index,
    // created, reserved, CRC-32C) before it creates the `.idx`.
    let mut header = Vec::new();
    header.extend_from_slice(b"VELLSEG1");
    header.extend_from_slice(&size.to_le_bytes());
    header.extend_from_slice(&(Timestamp::now().unix_micros() as i64).to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    std::fs::write(&next_segment, &header).unwrap();

    let reader = LogReader::open(&dir).unwrap();
    assert_eq!(
        reader
            .size()
            .unwrap_or_else(|e| panic!("the reader must see the log: {e}")),
        size
    );
    assert!(reader.read(size - 1).is_ok());
    assert!(matches!(
        reader.read(size),
        Err(StoreError::IndexOutOfRange { .. })
    ));
    assert!(verify(&dir, &VerifyOptions::default()).unwrap().ok());
    // The writer finishes the rotation on open.
    let store = Store::open(&dir, small_options()).unwrap();
    assert_eq!(store.tree_size(), size);
}

/// A kill after a commit's `fdatasync` and before its Merkle nodes were written, at the
/// commit that completes the first subtree of a new level (tree size 256 here): the event
/// is durable, `level-08.hashes` does not exist yet. Nothing is wrong with the log (the
/// next open re-hashes the leaf), so `verify`, which is meant to run on such a directory,
/// must not report an integrity failure.
#[test]
fn verify_accepts_a_log_killed_before_its_tree_grew_a_level() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, options()).unwrap();
    let events: Vec<Event> = (0..255)
        .map(|i| Event::new(Category::Admin, format!("a{i}"), Outcome::Success))
        .collect();
    store.append(events).unwrap();
    let first = store
        .layout()
        .root()
        .join("segments")
        .join(format!("{:020}.seg", 0));
    drop(store);
    assert!(!dir.join("tree").join("level-08.hashes").exists());

    // The 256th event's record, written and synced, nothing after it.
    let end = records_end(&first);
    let ev = Event::new(Category::Admin, "a255", Outcome::Success);
    let mut payload = Vec::new();
    ev.write_stored(&mut payload, 255, &Timestamp::now().to_string());
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), &payload);
    let mut record = len.to_vec();
    record.extend_from_slice(&crc.to_le_bytes());
    record.extend_from_slice(&payload);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &record, end).unwrap();
    drop(file);

    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(
        report.ok(),
        "a killed writer is not a tampered log: {:#?}",
        report.problems
    );
    assert_eq!(report.tree_size, 256);
    let store = Store::open(&dir, options()).unwrap();
    assert_eq!(store.recovered().rehashed, 1);
    assert_eq!(store.tree_size(), 256);
    drop(store);
    assert!(verify(&dir, &VerifyOptions::default()).unwrap().ok());
}

/// A record cut short at the end of the active segment (a power loss mid-write, or a kill
/// inside a large `write`): never acknowledged, so `verify` notes it without failing, and
/// the next open cuts it, says where, keeps every whole record, and appends after them.
#[test]
fn a_torn_tail_is_cut_reported_and_written_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, options()).unwrap();
    append_batches(&store, 0..2);
    let size = store.tree_size();
    drop(store);
    let segment = dir.join("segments").join(format!("{:020}.seg", 0));
    let end = records_end(&segment);
    // A frame header promising 300 bytes, and 100 of them.
    let mut torn = 300u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&0x1234_5678u32.to_le_bytes());
    torn.extend_from_slice(&[b'{'; 100]);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &torn, end).unwrap();
    drop(file);

    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:#?}", report.problems);
    assert_eq!(report.tree_size, size);
    assert!(
        report.notes.iter().any(|n| n.contains("torn tail")),
        "{:?}",
        report.notes
    );

    let store = Store::open(&dir, options()).unwrap();
    let (path, at, cut) = store
        .recovered()
        .torn_tail
        .clone()
        .expect("a torn tail cut");
    assert_eq!((path, at), (segment.clone(), end));
    assert!(cut >= torn.len() as u64);
    assert_eq!(store.tree_size(), size);
    let appended = store.append(batch_events(2)).unwrap();
    assert_eq!(appended.first_index, Some(size));
    drop(store);
    let store = Store::open(&dir, options()).unwrap();
    assert_eq!(store.recovered().torn_tail, None, "cut once, for good");
    drop(store);
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(report.ok(), "{:#?}", report.problems);
    assert!(report.notes.is_empty(), "{:?}", report.notes);
    assert_eq!(
        records_end(&segment),
        end + appended_bytes(&dir, size, appended.tree_size)
    );
}

/// Bytes of the framed records of indexes `[from, to)`.
fn appended_bytes(dir: &Path, from: u64, to: u64) -> u64 {
    let reader = LogReader::open(dir).unwrap();
    (from..to)
        .map(|i| 8 + reader.read(i).unwrap().len() as u64)
        .sum()
}

/// Killed while rotating: the new last segment exists but its header never reached the disk
/// (shorter than a header, or preallocated zeros). It holds nothing, so `verify` reports it
/// as a torn tail, not tampering; unless a checkpoint covers events it should have held.
#[test]
fn verify_accepts_a_log_killed_before_a_new_segment_had_a_header() {
    for contents in [&b""[..], &b"VELLUMS"[..], &[0u8; 4096][..]] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let store = Store::open(&dir, options()).unwrap();
        let events: Vec<Event> = (0..10)
            .map(|i| Event::new(Category::Admin, format!("a{i}"), Outcome::Success))
            .collect();
        store.append(events).unwrap();
        store.checkpoint().unwrap();
        drop(store);
        // As `rotate` leaves it: the old segment sealed (cut to its records), then the new
        // one created.
        let sealed = dir.join("segments").join(format!("{:020}.seg", 0));
        let end = records_end(&sealed);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&sealed)
            .unwrap()
            .set_len(end)
            .unwrap();
        let next = dir.join("segments").join(format!("{:020}.seg", 10));
        std::fs::write(&next, contents).unwrap();

        let report = verify(&dir, &VerifyOptions::default()).unwrap();
        assert!(
            report.ok(),
            "a killed writer is not a tampered log: {:#?}",
            report.problems
        );
        assert_eq!(report.tree_size, 10);
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("header was never written")),
            "{:#?}",
            report.notes
        );
        // Recovery removes it; the log verifies without a note.
        let store = Store::open(&dir, options()).unwrap();
        assert_eq!(store.tree_size(), 10);
        drop(store);
        assert!(verify(&dir, &VerifyOptions::default()).unwrap().ok());
    }

    // The same empty segment where a checkpoint covers events it should hold: those events
    // were removed, and verify says so.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let store = Store::open(&dir, options()).unwrap();
    store
        .append(vec![Event::new(Category::Admin, "a", Outcome::Success)])
        .unwrap();
    store.checkpoint().unwrap();
    drop(store);
    let only = dir.join("segments").join(format!("{:020}.seg", 0));
    std::fs::write(&only, b"").unwrap();
    let report = verify(&dir, &VerifyOptions::default()).unwrap();
    assert!(!report.ok(), "a checkpointed event was removed");
}
