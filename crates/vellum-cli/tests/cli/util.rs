//! Running the binary, generating events, and reading and rewriting the framed files of a
//! data directory (segments and `checkpoints.log`, see `vellum-store`'s `record` and
//! `segment` modules) the way an attacker with write access to the disk would.

use std::collections::BTreeMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const BIN: &str = env!("CARGO_BIN_EXE_vellum");
/// The origin (and key name) of every log the tests create.
pub const ORIGIN: &str = "test/log";
/// Events per append in [`Log::standard`].
pub const PER_APPEND: u64 = 300;
/// Segment header length (`segment.rs`).
pub const SEG_HEADER: usize = 32;

// ---------------------------------------------------------------------------------------
// Running the binary.

/// What one run of `vellum` did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics, showing both streams, unless the exit status is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit status {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "the binary panicked:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Asserts stderr contains every one of `parts`.
    #[track_caller]
    pub fn stderr_has(&self, parts: &[&str]) -> &Self {
        for p in parts {
            assert!(
                self.stderr.contains(p),
                "stderr lacks {p:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// The line of `vellum verify`'s stderr that reports the first problem.
    #[track_caller]
    pub fn headline(&self) -> &str {
        self.stderr
            .lines()
            .find(|l| l.contains("verification FAILED"))
            .unwrap_or_else(|| panic!("no failure headline in:\n{}", self.stderr))
    }

    /// Asserts `vellum verify` failed (exit 1) and that its headline names `index` and a
    /// path ending in `file`.
    #[track_caller]
    pub fn fails_at(&self, index: u64, file: &str) -> &Self {
        self.expect_code(1);
        let line = self.headline();
        assert!(
            line.contains(&format!("index {index}:")),
            "the failure should name index {index}:\n{}",
            self.stderr
        );
        assert!(
            line.contains(file),
            "the failure should name {file}:\n{}",
            self.stderr
        );
        self
    }
}

/// How a test hands `vellum` its standard input: `vellum append` reads a pipe once and a
/// regular file twice (validating, then appending), so tests of its input take both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stdin {
    Pipe,
    File,
}

/// Runs `vellum ARGS` with `stdin` as its standard input (through a pipe), in a clean
/// environment.
pub fn vellum(args: &[&std::ffi::OsStr], stdin: &[u8]) -> Run {
    vellum_from(args, stdin, Stdin::Pipe)
}

/// Runs `vellum ARGS` with `stdin` as its standard input, given the way `how` says.
pub fn vellum_from(args: &[&std::ffi::OsStr], stdin: &[u8], how: Stdin) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("VELLUM_DATA")
        .env_remove("VELLUM_ORIGIN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = match how {
        Stdin::File => {
            let mut file = tempfile::tempfile().expect("a temporary input file");
            file.write_all(stdin).expect("writing the input file");
            file.rewind().expect("rewinding the input file");
            cmd.stdin(Stdio::from(file))
                .output()
                .expect("running vellum")
        }
        Stdin::Pipe => {
            let mut child = cmd.stdin(Stdio::piped()).spawn().expect("running vellum");
            let mut pipe = child.stdin.take().expect("stdin");
            let input = stdin.to_vec();
            // A writer thread, so a child that does not read its stdin cannot deadlock the
            // test.
            let writer = std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
            let out = child.wait_with_output().expect("waiting for vellum");
            writer.join().expect("stdin writer");
            out
        }
    };
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `vellum` with string arguments and no input.
pub fn vellum_args(args: &[&str]) -> Run {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    vellum(&args, b"")
}

// ---------------------------------------------------------------------------------------
// Events.

/// One generated event, in the native shape.
#[derive(Clone, Debug)]
pub struct Ev {
    pub id: String,
    pub time: String,
    pub category: &'static str,
    pub action: &'static str,
    pub outcome: &'static str,
    pub user: String,
    pub ip: String,
    /// Bytes of padding in `details`, to fill segments quickly.
    pub pad: usize,
}

const KINDS: [(&str, &str); 6] = [
    ("authentication", "api_key.used"),
    ("api_request", "chat.completions"),
    ("data_access", "document.retrieved"),
    ("admin", "config.changed"),
    ("security", "injection.detected"),
    ("malfunction", "upstream.failure"),
];

impl Ev {
    pub fn json(&self) -> String {
        let mut v = serde_json::json!({
            "id": self.id,
            "time": self.time,
            "category": self.category,
            "action": self.action,
            "outcome": self.outcome,
            "actor": {"user": self.user},
            "source": {"ip": self.ip, "user_agent": "OpenAI/Python 1.82.0"},
        });
        if self.pad > 0 {
            v["details"] = serde_json::json!({"pad": "x".repeat(self.pad)});
        }
        v.to_string()
    }
}

/// `n` deterministic events; `batch` (< 8) keeps ids and times of different calls apart.
/// Times are one second apart, starting at 2026-11-18T00:00:00Z + batch × 10,000 s.
pub fn events(batch: u64, n: usize, pad: usize) -> Vec<Ev> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (batch + 1).wrapping_mul(0x1234_5678_9ABC_DEF1);
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    (0..n)
        .map(|i| {
            let (category, action) = KINDS[(next() % 6) as usize];
            let outcome = if next() % 3 == 0 {
                "failure"
            } else {
                "success"
            };
            let t = batch * 10_000 + i as u64;
            Ev {
                id: format!("ev-{batch}-{i:05}"),
                time: time_at(t),
                category,
                action,
                outcome,
                user: format!("user{}", next() % 5),
                ip: format!("10.0.{batch}.{}", next() % 4 + 1),
                pad,
            }
        })
        .collect()
}

/// 2026-11-18T00:00:00Z plus `secs` seconds, as RFC 3339 with microseconds.
pub fn time_at(secs: u64) -> String {
    let day = 18 + secs / 86_400;
    let s = secs % 86_400;
    format!(
        "2026-11-{day:02}T{:02}:{:02}:{:02}.000000Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

pub fn ndjson(evs: &[Ev]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in evs {
        out.extend_from_slice(e.json().as_bytes());
        out.push(b'\n');
    }
    out
}

// ---------------------------------------------------------------------------------------
// A log in a temporary directory.

/// A data directory (`<tmp>/data`) and the events appended to it, in index order.
#[derive(Debug)]
pub struct Log {
    tmp: TempDir,
    pub data: PathBuf,
    pub events: Vec<Ev>,
}

impl Log {
    /// A temporary folder with no data directory in it yet.
    pub fn empty() -> Log {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        Log {
            tmp,
            data,
            events: Vec::new(),
        }
    }

    /// A log of `n` small events, appended at once.
    pub fn small(n: usize) -> Log {
        let mut log = Log::empty();
        log.append(events(0, n, 0));
        log
    }

    /// Three appends of [`PER_APPEND`] events of ~2 KB with 1 MiB segments: the segments
    /// start at 0, 300 and 600 (the last one active), and the checkpoints cover 0, 300,
    /// 600 and 900 events. Built once per test run and copied, to keep the suite fast.
    pub fn standard() -> Log {
        let (template, evs) = standard_template();
        let log = Log::empty();
        copy_dir(template, &log.data);
        Log {
            events: evs.clone(),
            ..log
        }
    }

    /// A path inside the temporary folder, outside the data directory.
    pub fn outside(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `vellum --data DATA --origin test/log --segment-mib 1 ARGS` with `stdin`.
    pub fn run_in(&self, data: &Path, args: &[&str], stdin: &[u8]) -> Run {
        self.run_in_from(data, args, stdin, Stdin::Pipe)
    }

    /// [`Log::run_in`], with `stdin` given the way `how` says.
    pub fn run_in_from(&self, data: &Path, args: &[&str], stdin: &[u8], how: Stdin) -> Run {
        let mut all: Vec<&std::ffi::OsStr> = vec![
            "--data".as_ref(),
            data.as_os_str(),
            "--origin".as_ref(),
            ORIGIN.as_ref(),
            "--segment-mib".as_ref(),
            "1".as_ref(),
        ];
        all.extend(args.iter().map(std::ffi::OsStr::new));
        vellum_from(&all, stdin, how)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(&self.data, args, b"")
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_in(&self.data, args, stdin)
    }

    pub fn run_stdin_from(&self, args: &[&str], stdin: &[u8], how: Stdin) -> Run {
        self.run_in_from(&self.data, args, stdin, how)
    }

    /// Appends events, which must succeed.
    pub fn append(&mut self, evs: Vec<Ev>) {
        let run = self.run_stdin(&["append"], &ndjson(&evs));
        run.ok();
        self.events.extend(evs);
        assert!(
            run.stdout
                .contains(&format!("tree size {}", self.events.len())),
            "{}",
            run.stdout
        );
    }

    pub fn verify(&self) -> Run {
        self.run(&["verify"])
    }

    /// The latest checkpoint (signed note).
    pub fn checkpoint(&self) -> String {
        let run = self.run(&["checkpoint"]);
        run.ok();
        run.stdout
    }

    /// The log's verifier key line.
    pub fn key(&self) -> String {
        let run = self.run(&["key"]);
        run.ok();
        run.stdout.trim().to_string()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.data.join(rel)
    }

    pub fn segment(&self, first: u64) -> PathBuf {
        self.data.join("segments").join(seg_name(first))
    }

    pub fn segment_index(&self, first: u64) -> PathBuf {
        self.data.join("segments").join(format!("{first:020}.idx"))
    }

    pub fn segment_firsts(&self) -> Vec<u64> {
        let mut firsts: Vec<u64> = std::fs::read_dir(self.data.join("segments"))
            .expect("segments dir")
            .filter_map(|e| {
                let name = e.ok()?.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        firsts.sort_unstable();
        firsts
    }

    /// Everything in the data directory except `LOCK` (which every writer rewrites with
    /// its pid before it looks at anything else).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        snapshot(&self.data)
    }
}

/// Builds the standard log in `CARGO_TARGET_TMPDIR/standard-log-<pid>` (once per test
/// process), after removing those that earlier, finished runs left behind.
fn standard_template() -> &'static (PathBuf, Vec<Ev>) {
    static TEMPLATE: OnceLock<(PathBuf, Vec<Ev>)> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(scratch).expect("target tmp dir");
        for entry in std::fs::read_dir(scratch)
            .expect("target tmp dir")
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("standard-log-")
                && !Path::new("/proc").join(pid).exists()
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let data = scratch.join(format!("standard-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut log = Log {
            tmp: tempfile::tempdir().expect("tempdir"),
            data: data.clone(),
            events: Vec::new(),
        };
        for batch in 0..3 {
            log.append(events(batch, PER_APPEND as usize, 1800));
        }
        assert_eq!(
            log.segment_firsts(),
            vec![0, PER_APPEND, 2 * PER_APPEND],
            "the standard log should have one segment per append"
        );
        (data, log.events)
    })
}

/// `<first, 20 digits>.seg`.
pub fn seg_name(first: u64) -> String {
    format!("{first:020}.seg")
}

/// Every file under `dir` with its contents (directories as empty entries), except `LOCK`.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let rel = path.strip_prefix(root).expect("prefix").to_path_buf();
            if path.is_dir() {
                out.insert(rel.join(""), Vec::new());
                walk(root, &path, out);
            } else if rel != Path::new("LOCK") {
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Asserts two snapshots are equal, naming the first file that differs.
#[track_caller]
pub fn assert_same(before: &BTreeMap<PathBuf, Vec<u8>>, after: &BTreeMap<PathBuf, Vec<u8>>) {
    let names = |m: &BTreeMap<PathBuf, Vec<u8>>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(before), names(after), "files were added or removed");
    for (path, bytes) in before {
        assert!(
            after[path] == *bytes,
            "{} was changed ({} bytes before, {} after)",
            path.display(),
            bytes.len(),
            after[path].len()
        );
    }
}

/// Copies a directory tree (for forks and rollbacks), keeping file modes.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Framed files: `len u32 LE | crc u32 LE | payload`, crc = CRC-32C(len bytes ‖ payload).

/// One framed record.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// A framed file taken apart: what precedes the records, the records (with the offset of
/// each frame), and what follows them (the zeroed space of an active segment).
#[derive(Clone, Debug)]
pub struct Framed {
    pub head: Vec<u8>,
    pub records: Vec<Vec<u8>>,
    pub offsets: Vec<usize>,
    pub tail: Vec<u8>,
}

impl Framed {
    /// Parses the records of `bytes` from `start` up to a zero length or the end.
    pub fn parse(bytes: &[u8], start: usize) -> Framed {
        let mut pos = start;
        let (mut records, mut offsets) = (Vec::new(), Vec::new());
        while pos + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            if len == 0 {
                break;
            }
            offsets.push(pos);
            records.push(bytes[pos + 8..pos + 8 + len].to_vec());
            pos += 8 + len;
        }
        Framed {
            head: bytes[..start].to_vec(),
            records,
            offsets,
            tail: bytes[pos..].to_vec(),
        }
    }

    pub fn read_segment(path: &Path) -> Framed {
        Framed::parse(&std::fs::read(path).expect("reading segment"), SEG_HEADER)
    }

    pub fn read_checkpoints(path: &Path) -> Framed {
        Framed::parse(&std::fs::read(path).expect("reading checkpoints.log"), 0)
    }

    /// The file again, every record freshly framed (valid checksums).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.head.clone();
        for r in &self.records {
            out.extend_from_slice(&frame(r));
        }
        out.extend_from_slice(&self.tail);
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.to_bytes()).expect("writing framed file");
    }
}

/// Replaces the first occurrence of `from` in `hay` with `to` (same length).
#[track_caller]
pub fn replace_once(hay: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let at = hay
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(from)));
    hay[at..at + to.len()].copy_from_slice(to);
}

// ---------------------------------------------------------------------------------------
// Merkle hashing, independently of the library (RFC 6962).

pub fn leaf_hash(bytes: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    h.finalize().into()
}

pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Rewrites `tree/level-LL.hashes` from the segments as they now are, the way the store
/// lays them out (entry i of level L = complete subtree over leaves [i·2^L, (i+1)·2^L)).
pub fn rebuild_tree_files(log: &Log) {
    let mut level: Vec<[u8; 32]> = Vec::new();
    for first in log.segment_firsts() {
        let seg = Framed::read_segment(&log.segment(first));
        level.extend(seg.records.iter().map(|r| leaf_hash(r)));
    }
    let mut n = 0;
    while !level.is_empty() {
        let path = log.file(&format!("tree/level-{n:02}.hashes"));
        std::fs::write(path, level.concat()).expect("writing tree level");
        level = level
            .chunks_exact(2)
            .map(|p| node_hash(&p[0], &p[1]))
            .collect();
        n += 1;
    }
}

pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64")
}

/// The (size, root) a checkpoint note states.
pub fn checkpoint_fields(note: &str) -> (u64, [u8; 32]) {
    let mut lines = note.lines();
    let _origin = lines.next().expect("origin line");
    let size = lines.next().expect("size line").parse().expect("size");
    let root = unb64(lines.next().expect("root line"));
    (size, root.try_into().expect("32-byte root"))
}
