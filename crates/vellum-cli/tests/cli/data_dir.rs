//! Corrupt or foreign files in a data directory. A command that opens the store for
//! writing (`append`) must refuse with exit 2 and a message naming the file, must not
//! panic, and must write nothing: damage is evidence, and only a torn, unacknowledged tail
//! may be cut. Read-only commands must not panic either.

use std::os::unix::fs::PermissionsExt;

use super::util::{Framed, Log, PER_APPEND, assert_same, events, ndjson, seg_name};

/// `vellum append` of one good event must exit 2 naming every one of `expect`, and leave
/// the data directory as it was.
#[track_caller]
fn append_refused(log: &Log, code: i32, expect: &[&str]) {
    let before = log.snapshot();
    log.run_stdin(&["append"], &ndjson(&events(5, 1, 0)))
        .expect_code(code)
        .stderr_has(expect);
    assert_same(&before, &log.snapshot());
}

/// Read-only commands end cleanly: an exit status of the contract, no panic. (Some, like
/// `checkpoint`, need not read the damaged file at all.)
#[track_caller]
fn readers_do_not_panic(log: &Log) {
    for args in [
        &["verify"][..],
        &["checkpoint"],
        &["query", "--limit", "1"],
        &["export", "--format", "leaf"],
        &["tail", "-n", "1"],
        &["receipt", "--index", "0"],
    ] {
        let run = log.run(args);
        assert!(
            (0..=2).contains(&run.code),
            "`vellum {}` exited {}:\n{}",
            args.join(" "),
            run.code,
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn foreign_file_in_segments_dir() {
    let log = Log::small(5);
    std::fs::write(log.file("segments/notes.txt"), "remember the milk\n").unwrap();
    append_refused(&log, 1, &["segments/notes.txt", "foreign file"]);
    readers_do_not_panic(&log);
    log.run(&["verify"])
        .expect_code(1)
        .stderr_has(&["segments/notes.txt"]);
}

#[test]
fn garbage_vellum_json() {
    let log = Log::small(5);
    std::fs::write(log.file("vellum.json"), "{\"format\": 1, oops").unwrap();
    append_refused(&log, 1, &["vellum.json"]);
    readers_do_not_panic(&log);
    log.run(&["verify"])
        .expect_code(1)
        .stderr_has(&["vellum.json"]);
}

#[test]
fn vellum_json_of_an_unknown_format() {
    let log = Log::small(5);
    let text = std::fs::read_to_string(log.file("vellum.json")).unwrap();
    let text = text.replacen("\"format\": 1", "\"format\": 99", 1);
    std::fs::write(log.file("vellum.json"), text).unwrap();
    append_refused(&log, 2, &["vellum.json", "format 99"]);
    readers_do_not_panic(&log);
}

#[test]
fn segment_with_bad_magic() {
    let log = Log::standard();
    let path = log.segment(PER_APPEND);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(b"NOTVELLM");
    std::fs::write(&path, bytes).unwrap();
    append_refused(&log, 1, &[&seg_name(PER_APPEND), "bad magic"]);
    log.verify().fails_at(PER_APPEND, &seg_name(PER_APPEND));
}

#[test]
fn segment_with_bad_header_checksum() {
    let log = Log::small(5);
    let path = log.segment(0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[20] ^= 0x01; // the creation time; its checksum left stale
    std::fs::write(&path, bytes).unwrap();
    append_refused(&log, 1, &[&seg_name(0), "checksum"]);
    log.verify().fails_at(0, &seg_name(0));
}

#[test]
fn signing_key_readable_by_others() {
    let log = Log::small(5);
    let key = log.file("signing.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    append_refused(&log, 2, &["signing.key", "mode 644"]);
    // Auditors need no secret: reading and verifying still work.
    log.verify().ok();
}

#[test]
fn signing_key_of_another_log() {
    let log = Log::small(5);
    let other = Log::small(1);
    std::fs::copy(other.file("signing.key"), log.file("signing.key")).unwrap();
    append_refused(
        &log,
        1,
        &["signing.key", "not the key this log was created with"],
    );
}

#[test]
fn directory_that_is_not_a_data_directory() {
    let log = Log::empty();
    std::fs::create_dir_all(&log.data).unwrap();
    std::fs::write(log.data.join("notes.txt"), "mine\n").unwrap();
    append_refused(&log, 2, &["notes.txt", "not a Vellum data directory"]);
    let names: Vec<_> = std::fs::read_dir(&log.data)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["notes.txt"]);
}

/// A damaged record in the middle of the active segment is covered by a checkpoint: it
/// is not a torn tail. Opening must refuse without zeroing the acknowledged events after
/// it (or rewriting the segment's `.idx`).
#[test]
fn damaged_record_in_active_segment_is_not_cut() {
    let log = Log::standard();
    let path = log.segment(2 * PER_APPEND);
    let seg = Framed::read_segment(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[seg.offsets[57] + 8 + 100] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    append_refused(&log, 1, &[&seg_name(2 * PER_APPEND)]);
    // The evidence is still there for `vellum verify` to point at.
    log.verify()
        .fails_at(2 * PER_APPEND + 57, &seg_name(2 * PER_APPEND));
}

/// A damaged checkpoint record followed by intact ones is not a torn last record; opening
/// must not cut `checkpoints.log` there (which would discard later signed checkpoints).
#[test]
fn damaged_checkpoint_record_is_not_cut() {
    let log = Log::standard();
    let path = log.file("checkpoints.log");
    let cps = Framed::read_checkpoints(&path);
    assert!(cps.records.len() >= 4, "0, 300, 600 and 900 events");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[cps.offsets[1] + 8 + 12] ^= 0x01; // in its text; the checksum left stale
    std::fs::write(&path, bytes).unwrap();
    append_refused(&log, 1, &["checkpoints.log"]);
}

/// The one thing recovery may cut: a record torn by a crash after the last checkpoint.
#[test]
fn torn_tail_of_active_segment_is_cut_and_reported() {
    let log = Log::standard();
    let path = log.segment(2 * PER_APPEND);
    let mut bytes = std::fs::read(&path).unwrap();
    let seg = Framed::parse(&bytes, super::util::SEG_HEADER);
    assert!(seg.tail.iter().all(|&b| b == 0));
    // A frame header promising 500 bytes, and only 100 of them.
    let end = bytes.len() - seg.tail.len();
    let mut torn = 500u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xab; 4 + 100]);
    bytes.splice(end..end + torn.len().min(seg.tail.len()), torn);
    std::fs::write(&path, &bytes).unwrap();

    let run = log.verify();
    run.ok();
    assert!(run.stderr.contains("torn"), "{}", run.stderr);

    let run = log.run_stdin(&["append"], &ndjson(&events(5, 1, 0)));
    run.ok().stderr_has(&[
        "after the last intact record",
        &seg_name(2 * PER_APPEND),
        "kept in",
    ]);
    // What was cut is kept, up to its last non-zero byte: the torn frame's 108 bytes.
    let kept = log.file(&format!(
        "recovered/{}.{end}.tail",
        seg_name(2 * PER_APPEND)
    ));
    let mut want = 500u32.to_le_bytes().to_vec();
    want.extend_from_slice(&[0xab; 4 + 100]);
    assert_eq!(std::fs::read(&kept).unwrap(), want);

    // Torn twice at one place (opened with nothing appended in between): the first copy
    // stays, the second gets a name of its own.
    let torn_at_end = |bytes: &[u8]| {
        let mut seg = std::fs::read(&path).unwrap();
        let parsed = Framed::parse(&seg, super::util::SEG_HEADER);
        let end = seg.len() - parsed.tail.len();
        seg[end..end + bytes.len()].copy_from_slice(bytes);
        std::fs::write(&path, &seg).unwrap();
        end
    };
    let first_tear = torn_at_end(&[9, 0, 0, 0, 0xcd, 0xcd]);
    // Every writing command says what recovery cut, prune too.
    log.run(&["prune", "--max-age-days", "36500"])
        .ok()
        .stderr_has(&["after the last intact record", "kept in"]);
    assert_eq!(torn_at_end(&[9, 0, 0, 0, 0xef, 0xef]), first_tear);
    log.run(&["prune", "--max-age-days", "36500"]).ok();
    let copy = |suffix: &str| {
        std::fs::read(log.file(&format!(
            "recovered/{}.{first_tear}{suffix}.tail",
            seg_name(2 * PER_APPEND)
        )))
        .unwrap()
    };
    assert_eq!(copy(""), [9, 0, 0, 0, 0xcd, 0xcd]);
    assert_eq!(copy(".1"), [9, 0, 0, 0, 0xef, 0xef]);
    assert!(
        run.stdout
            .contains("appended 1 events, indexes 900..900, tree size 901"),
        "{}",
        run.stdout
    );
    log.verify().ok();
}

/// `prune` names the indexes it deleted inclusively, as `append` does, and what is left
/// still verifies; with nothing old enough it says so.
#[test]
fn prune_reports_what_it_deleted() {
    // Three segments, two of them sealed.
    let log = Log::standard();
    let firsts = log.segment_firsts();
    assert!(firsts.len() >= 2, "a sealed segment to prune: {firsts:?}");
    log.run(&["prune", "--max-age-days", "1"])
        .ok()
        .stdout
        .contains("nothing to prune")
        .then_some(())
        .expect("nothing is a day old");
    let run = log.run(&["prune", "--max-age-days", "0"]);
    run.ok();
    let sealed = firsts.len() - 1;
    let want = format!(
        "pruned indexes 0..{} ({sealed} segment{})",
        firsts[sealed] - 1,
        if sealed == 1 { "" } else { "s" }
    );
    assert!(run.stdout.contains(&want), "{} (want {want})", run.stdout);
    // The pruned event's bytes are gone (its Merkle nodes stay, so proofs still work).
    let last_pruned = (firsts[sealed] - 1).to_string();
    log.run(&["receipt", "--index", &last_pruned])
        .expect_code(2)
        .stderr_has(&["pruned"]);
    log.run(&["prove", "inclusion", "--index", &last_pruned])
        .ok();
    log.run(&["receipt", "--index", &firsts[sealed].to_string()])
        .ok();
    log.verify().ok();
}

/// A record damaged inside a sealed segment that no checkpoint covers yet (a writer killed
/// before signing it, then the disk or someone changed a byte). Recovery must not rehash
/// the tree short and go on under the wrong indexes, and readers must not skip the events
/// after it: the writer refuses to open and changes nothing, and `export` fails.
#[test]
fn damage_in_a_sealed_segment_past_the_checkpoint_is_refused() {
    let log = Log::standard();
    // Keep only the checkpoints of 0 and 300 events: segment 300 (sealed) is past them.
    let cps = Framed::read_checkpoints(&log.file("checkpoints.log"));
    let keep = cps.offsets[2];
    let bytes = std::fs::read(log.file("checkpoints.log")).unwrap();
    std::fs::write(log.file("checkpoints.log"), &bytes[..keep]).unwrap();
    let path = log.segment(PER_APPEND);
    let seg = Framed::read_segment(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[seg.offsets[100] + 8 + seg.records[100].len() / 2] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();

    append_refused(
        &log,
        1,
        &[&seg_name(PER_APPEND), "index 400", "missing or damaged"],
    );
    // Readers meeting the damage report an integrity failure, like `verify`.
    log.run(&["export"]).expect_code(1).stderr_has(&[
        "integrity failure",
        &seg_name(PER_APPEND),
        "index 400",
    ]);
    log.verify().fails_at(400, &seg_name(PER_APPEND));
}

/// `vellum --data DATA --origin ORIGIN append` of `evs`, without the test log's own flags.
fn append_with_origin(log: &Log, origin: &str, evs: &[super::util::Ev]) -> super::util::Run {
    super::util::vellum_from(
        &[
            "--data".as_ref(),
            log.data.as_os_str(),
            "--origin".as_ref(),
            origin.as_ref(),
            "append".as_ref(),
        ],
        &ndjson(evs),
        super::util::Stdin::Pipe,
    )
}

/// `--origin` names a new log; on an existing one with another origin it is ignored, and
/// says so rather than silently.
#[test]
fn origin_of_an_existing_log_is_not_changed_and_says_so() {
    let log = Log::small(3);
    let run = append_with_origin(&log, "another/name", &events(7, 1, 0));
    run.ok()
        .stderr_has(&["--origin another/name is ignored", "test/log"]);
    // The usual flags name the log's own origin: nothing to say.
    let run = log.run_stdin(&["append"], &ndjson(&events(8, 1, 0)));
    run.ok();
    assert!(!run.stderr.contains("ignored"), "{}", run.stderr);
}

/// A new log's `--origin` that is not a valid key name is refused before anything is made.
#[test]
fn an_invalid_origin_makes_nothing() {
    let log = Log::empty();
    let run = append_with_origin(&log, "bad origin", &events(1, 1, 0));
    run.expect_code(2)
        .stderr_has(&["origin `bad origin`", "white space"]);
    assert!(!log.data.exists(), "{} was made", log.data.display());
}

/// A disk that fills during a bulk append: what is stored is a prefix of the input, and
/// the error says how long, so that a resumed load starts where it should.
#[test]
fn a_disk_full_during_a_bulk_append_leaves_a_prefix_and_says_how_long() {
    let log = Log::empty();
    let small = log.outside("small");
    // Room for the first commit whatever it gathers (at most 16 MiB of events), not for
    // the whole input.
    let _mount = vellum_testkit::mount_tmpfs(&small, "28m");
    let data = small.join("data");
    let input = events(0, 50_000, 800);
    let run = log.run_in(&data, &["append", "--batch", "500"], &ndjson(&input));
    run.expect_code(2).stderr_has(&["No space left"]);
    let kept: usize = run
        .stderr
        .split("the first ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no prefix named: {}", run.stderr));
    assert!(kept > 0 && kept < input.len(), "{}", run.stderr);
    let stored = log.run_in(&data, &["export"], b"");
    stored.ok();
    let ids: Vec<String> = stored
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].to_string())
        .collect();
    let sent: Vec<String> = input[..kept]
        .iter()
        .map(|e| serde_json::Value::String(e.id.clone()).to_string())
        .collect();
    assert_eq!(
        ids, sent,
        "the log holds exactly the first {kept} events of the input"
    );
}

/// The events are durable before the summary is printed; when stdout cannot take it (a
/// full disk), the append still succeeds and stderr says what was appended, so nobody
/// retries and stores them twice.
#[test]
fn a_summary_that_cannot_be_written_says_the_events_were_appended() {
    use std::io::Write as _;
    let log = Log::small(3);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = std::process::Command::new(super::util::BIN)
        .args(["--data", log.data.to_str().unwrap(), "append"])
        .stdin(std::process::Stdio::piped())
        .stdout(full)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&ndjson(&events(7, 2, 0)))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Success: the append happened, and a retry would store id-less events twice.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the events were appended (appended 2 events, indexes 3..4, tree size 5)"),
        "{stderr}"
    );
    log.run(&["tail", "-n", "2"]).ok();
}

/// A directory holding other things is not a log: read-only commands say so (rather than
/// suggest creating one there, which `append` refuses), and so does `append`.
#[test]
fn a_directory_of_other_files_is_not_a_log() {
    let log = Log::empty();
    let other = log.outside("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("notes.txt"), b"x").unwrap();
    log.run_in(&other, &["verify"], b"")
        .expect_code(2)
        .stderr_has(&["not a Vellum data directory"]);
    log.run_in(&other, &["append"], &ndjson(&events(1, 1, 0)))
        .expect_code(2)
        .stderr_has(&["not a Vellum data directory"]);
    // A path under a file: the cause is named once.
    let run = log.run_in(&other.join("notes.txt").join("sub"), &["verify"], b"");
    run.expect_code(2);
    assert_eq!(
        run.stderr.matches("Not a directory").count(),
        1,
        "{}",
        run.stderr
    );
}

/// A stderr that cannot be written (`2>/dev/full`) loses the notes, and nothing else: no
/// panic, and a new log is made whole (creating one prints its key on stderr).
#[test]
fn a_stderr_that_cannot_be_written_does_not_stop_a_command() {
    use std::io::Write as _;
    let log = Log::empty();
    let run = |args: &[&str], stdin: &[u8]| {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let mut child = std::process::Command::new(super::util::BIN)
            .arg("--data")
            .arg(&log.data)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(full)
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait().unwrap().code()
    };
    assert_eq!(run(&["append"], &ndjson(&events(1, 3, 0))), Some(0));
    assert_eq!(run(&["query", "--category", "bogus"], b""), Some(2));
    assert_eq!(run(&["verify"], b""), Some(0));
    log.verify().ok();
    // A key's secret that stdout cannot take is lost: the error names the key to revoke,
    // on a full disk and through a pipe nobody reads (not ended quietly, as a closed pipe
    // ends other commands).
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (reader, closed) = std::io::pipe().unwrap();
    drop(reader);
    let stdouts: [(&str, std::process::Stdio); 2] =
        [("lost", full.into()), ("lost-too", closed.into())];
    for (name, stdout) in stdouts {
        let out = std::process::Command::new(super::util::BIN)
            .arg("--data")
            .arg(&log.data)
            .args(["keys", "create", "--name", name, "--role", "ingest"])
            .stdout(stdout)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("was created") && stderr.contains("vellum keys revoke k_"),
            "{name}: {stderr}"
        );
    }
    // The 3 events and the lost keys' `key.created`.
    assert_eq!(log.run(&["tail", "-n", "5"]).stdout.lines().count(), 5);
}
