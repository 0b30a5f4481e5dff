//! Helpers shared by Vellum's benchmark binaries (see `BENCHMARKS.md` at the repository root).
//!
//! The binaries are plain programs, not timed tests: each repeats its measurement a number of
//! times, prints every run, and ends with one `RESULT` line holding the medians, which the
//! drivers in `bench/` collect.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use rayon::prelude::*;
use vellum_event::{Event, EventId, Limits};

/// The same allocator as the `vellum` binary, so the benchmarks measure what ships.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Reads an NDJSON file (as `gen_events.py` writes it) and parses every line, on every core.
/// With `limit`, only the first `limit` events are read (the rest of the file is not loaded).
pub fn load_events(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Event>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for line in std::io::BufReader::with_capacity(1 << 20, file).split(b'\n') {
        if limit.is_some_and(|n| lines.len() >= n) {
            break;
        }
        let line = line.with_context(|| format!("reading {}", path.display()))?;
        if !line.iter().all(u8::is_ascii_whitespace) {
            lines.push(line);
        }
    }
    let limits = Limits::default();
    let events: Result<Vec<Event>, String> = lines
        .par_iter()
        .enumerate()
        .map(|(n, l)| Event::parse(l, &limits).map_err(|e| format!("event {}: {e}", n + 1)))
        .collect();
    let events = events.map_err(anyhow::Error::msg)?;
    if events.is_empty() {
        bail!("{} holds no events", path.display());
    }
    Ok(events)
}

/// A UUID-shaped id (36 characters, like the generator's) unique for each `n`, so that
/// events reused from a pool are not answered as duplicates.
pub fn unique_id(n: u64) -> anyhow::Result<EventId> {
    let s = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (n >> 32) as u32,
        (n >> 16) as u16,
        (n >> 4) & 0xfff,
        n & 0xf,
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16
    );
    s.parse::<EventId>().map_err(anyhow::Error::msg)
}

/// Mean bytes of an event's canonical body (what the store frames, before `index`/`received`).
pub fn mean_body_bytes(events: &[Event]) -> f64 {
    let sample = &events[..events.len().min(10_000)];
    let total: usize = sample.iter().map(|e| e.canonical_body().len()).sum();
    total as f64 / sample.len().max(1) as f64
}

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (0..=100) of sorted values, nearest-rank.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds, as a float, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_kib(field: &str) -> anyhow::Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kib = rest.trim().trim_end_matches("kB").trim();
            return kib
                .parse()
                .with_context(|| format!("parsing {field} in /proc/self/status"));
        }
    }
    bail!("no {field} in /proc/self/status")
}

/// CPU time of the store's writer thread (named `vellum-writer`) from
/// `/proc/self/task/*/schedstat`: (ns on a CPU, ns runnable but waiting for a CPU).
/// The second figure shows how much a shared, busy machine held the writer back.
pub fn writer_schedstat() -> anyhow::Result<(u64, u64)> {
    // The thread names itself once it runs, which may be just after `Store::open` returns.
    for _ in 0..100 {
        if let Some(found) = find_writer_schedstat()? {
            return Ok(found);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("no vellum-writer thread in this process")
}

fn find_writer_schedstat() -> anyhow::Result<Option<(u64, u64)>> {
    let mut found = None;
    for entry in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task")? {
        let task = entry.context("reading /proc/self/task")?.path();
        let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
        if comm.trim() != "vellum-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("schedstat"))
            .with_context(|| format!("reading {}/schedstat", task.display()))?;
        let mut it = stat.split_whitespace().map(str::parse::<u64>);
        match (it.next(), it.next()) {
            (Some(Ok(run)), Some(Ok(wait))) => found = Some((run, wait)),
            _ => bail!("unexpected {}/schedstat: {stat}", task.display()),
        }
    }
    Ok(found)
}

/// CPU time of this whole process so far (user + system, every thread, exited ones too),
/// from `/proc/self/stat`, in seconds (resolution: one clock tick, 10 ms). Divided by the
/// events of a run it gives the CPU an event costs, a figure a busy machine disturbs less
/// than wall time.
pub fn process_cpu_secs() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .context("unexpected /proc/self/stat")
    };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

/// A new, empty directory `base/name` (an old one of that name is removed first).
pub fn fresh_dir(base: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = base.join(name);
    remove_dir(&dir)?;
    std::fs::create_dir_all(base).with_context(|| format!("creating {}", base.display()))?;
    Ok(dir)
}

/// Removes a directory tree if it exists.
pub fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

/// Total bytes of the segment files (`segments/*.seg`) of a data directory.
pub fn segment_bytes(data: &Path) -> anyhow::Result<u64> {
    let dir = data.join("segments");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        if entry.path().extension().is_some_and(|e| e == "seg") {
            total += entry
                .metadata()
                .with_context(|| format!("reading {}", entry.path().display()))?
                .len();
        }
    }
    Ok(total)
}

/// SplitMix64: a small, seedable generator for picking random indexes reproducibly.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is negligible for the sizes used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Options for a store under benchmark: the defaults, with the origin fixed so that runs do
/// not depend on the host name.
pub fn store_options() -> vellum_store::Options {
    vellum_store::Options {
        origin: Some("vellum/bench".into()),
        ..Default::default()
    }
}

/// Creates (or empties) `path` and writes `len` bytes of zeros into it, then syncs it, as
/// the store zero-fills ahead of small commits: writes into it and their `fdatasync`s then
/// change no file size.
pub fn zeroed_file(path: &Path, len: u64) -> anyhow::Result<std::fs::File> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        file.write_all_at(&zeros, at)
            .with_context(|| format!("writing {}", path.display()))?;
        at += zeros.len() as u64;
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_valid() {
        let a = unique_id(1).unwrap();
        let b = unique_id(2).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 36);
    }

    #[test]
    fn medians_and_percentiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let d: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&d, 50.0), Duration::from_micros(50));
        assert_eq!(percentile(&d, 99.0), Duration::from_micros(99));
    }
}
