//! Tampering with a log on disk: `vellum verify` must exit 1 and its first complaint must
//! name the first bad index and the file it is in.
//!
//! Most tests start from [`Log::standard`]: segments starting at 0 and 300 (sealed) and
//! 600 (active), 300 events each, checkpoints of 0, 300, 600 and 900 events.

use vellum_note::{KeyName, Signer};

use super::util::{
    Framed, Log, PER_APPEND, b64, copy_dir, events, ndjson, rebuild_tree_files, replace_once,
    seg_name, unb64,
};

const SEALED: u64 = 0;
const ACTIVE: u64 = 2 * PER_APPEND;

/// The first index at or after `from` whose event succeeded.
fn first_success(log: &Log, from: u64) -> u64 {
    (from..log.events.len() as u64)
        .find(|&i| log.events[i as usize].outcome == "success")
        .expect("a successful event")
}

#[test]
fn untouched_log_verifies() {
    let log = Log::standard();
    let run = log.verify();
    run.ok();
    assert!(
        run.stdout.contains("ok: 900 events (") && run.stdout.contains("4 checkpoints"),
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);
}

/// A writer killed between syncing a commit and writing its `.idx` entries leaves intact
/// events the other commands do not see until the next writer recovers them; `verify`
/// counts them and says so.
#[test]
fn events_past_the_idx_are_counted_and_noted() {
    let log = Log::standard();
    let idx = log.segment_index(600);
    let len = std::fs::metadata(&idx).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&idx)
        .unwrap()
        .set_len(len - 10 * 24)
        .unwrap();
    let run = log.verify();
    run.ok()
        .stderr_has(&["10 events (indexes 890..899) are intact but not in the segment's .idx"]);
    assert!(run.stdout.contains("tree size 900"), "{}", run.stdout);
    log.run(&["tail", "-n", "1"]).ok();
    // The next writer recovers them: nothing is left to note.
    log.run_stdin(&["append"], &ndjson(&events(9, 1, 0))).ok();
    let run = log.verify();
    run.ok();
    assert!(!run.stderr.contains("note:"), "{}", run.stderr);
}

// --- Changed events ---------------------------------------------------------------------

fn flip_middle_of_record(log: &Log, first: u64, n: usize) {
    let path = log.segment(first);
    let seg = Framed::read_segment(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = seg.offsets[n] + 8 + seg.records[n].len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn flipped_bit_in_record_of_sealed_segment() {
    let log = Log::standard();
    flip_middle_of_record(&log, SEALED, 57);
    log.verify()
        .fails_at(57, &seg_name(SEALED))
        .stderr_has(&["checksum"]);
}

#[test]
fn flipped_bit_in_record_of_active_segment() {
    let log = Log::standard();
    flip_middle_of_record(&log, ACTIVE, 57);
    // Not taken for a torn tail: a checkpoint covers it, and its bytes are there.
    log.verify()
        .fails_at(ACTIVE + 57, &seg_name(ACTIVE))
        .stderr_has(&["checksum", "altered or damaged"]);
}

fn change_outcome(log: &Log, first: u64, index: u64) {
    let path = log.segment(first);
    let mut seg = Framed::read_segment(&path);
    let rec = &mut seg.records[(index - first) as usize];
    replace_once(rec, b"\"outcome\":\"success\"", b"\"outcome\":\"failure\"");
    seg.write(&path);
}

#[test]
fn field_changed_with_checksum_recomputed_in_sealed_segment() {
    let log = Log::standard();
    let index = first_success(&log, PER_APPEND + 42);
    change_outcome(&log, PER_APPEND, index);
    log.verify()
        .fails_at(index, &seg_name(PER_APPEND))
        .stderr_has(&["leaf hash"]);
}

#[test]
fn field_changed_with_checksum_recomputed_in_active_segment() {
    let log = Log::standard();
    let index = first_success(&log, ACTIVE + 100);
    change_outcome(&log, ACTIVE, index);
    log.verify()
        .fails_at(index, &seg_name(ACTIVE))
        .stderr_has(&["leaf hash"]);
}

/// The attacker also rewrites the tree files to match: only the signed roots can tell.
#[test]
fn field_changed_with_tree_files_rewritten() {
    let log = Log::standard();
    let index = first_success(&log, 57);
    change_outcome(&log, SEALED, index);
    rebuild_tree_files(&log);
    // The first signed root that covers the event is checkpoint #1, of 300 events.
    log.verify()
        .fails_at(PER_APPEND - 1, &seg_name(SEALED))
        .stderr_has(&["checkpoint #1"]);
}

// --- Removed, inserted, reordered events ------------------------------------------------

#[test]
fn record_removed_from_sealed_segment() {
    let log = Log::standard();
    let path = log.segment(SEALED);
    let mut seg = Framed::read_segment(&path);
    seg.records.remove(57);
    seg.write(&path);
    log.verify()
        .fails_at(57, &seg_name(SEALED))
        .stderr_has(&["holds index 58"]);
}

#[test]
fn record_removed_from_active_segment() {
    let log = Log::standard();
    let path = log.segment(ACTIVE);
    let mut seg = Framed::read_segment(&path);
    seg.records.remove(57);
    seg.write(&path);
    log.verify()
        .fails_at(ACTIVE + 57, &seg_name(ACTIVE))
        .stderr_has(&[&format!("holds index {}", ACTIVE + 58)]);
}

/// Removing the last event of a sealed segment leaves every frame and index prefix
/// valid; the segment that lost it is the one to name, not the next one.
#[test]
fn last_record_of_sealed_segment_removed() {
    let log = Log::standard();
    let path = log.segment(SEALED);
    let mut seg = Framed::read_segment(&path);
    seg.records.pop();
    seg.write(&path);
    log.verify().fails_at(PER_APPEND - 1, &seg_name(SEALED));
}

#[test]
fn record_inserted() {
    let log = Log::standard();
    let path = log.segment(SEALED);
    let mut seg = Framed::read_segment(&path);
    let copy = seg.records[10].clone();
    seg.records.insert(57, copy);
    seg.write(&path);
    log.verify()
        .fails_at(57, &seg_name(SEALED))
        .stderr_has(&["holds index 10"]);
}

#[test]
fn two_records_swapped() {
    let log = Log::standard();
    let path = log.segment(SEALED);
    let mut seg = Framed::read_segment(&path);
    seg.records.swap(57, 58);
    seg.write(&path);
    log.verify()
        .fails_at(57, &seg_name(SEALED))
        .stderr_has(&["holds index 58"]);
}

/// Swapped bodies under unchanged `{"index":N,` prefixes: only the leaf hashes differ.
#[test]
fn two_records_swapped_with_indexes_rewritten() {
    let log = Log::standard();
    let path = log.segment(SEALED);
    let mut seg = Framed::read_segment(&path);
    seg.records.swap(57, 58);
    replace_once(&mut seg.records[57], b"{\"index\":58,", b"{\"index\":57,");
    replace_once(&mut seg.records[58], b"{\"index\":57,", b"{\"index\":58,");
    seg.write(&path);
    log.verify()
        .fails_at(57, &seg_name(SEALED))
        .stderr_has(&["leaf hash"]);
}

// --- Truncated and deleted segments -----------------------------------------------------

fn cut_in_record(log: &Log, first: u64, n: usize) {
    let path = log.segment(first);
    let seg = Framed::read_segment(&path);
    let at = seg.offsets[n] + 8 + seg.records[n].len() / 2;
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(at as u64).unwrap();
}

#[test]
fn segment_truncated_sealed() {
    let log = Log::standard();
    cut_in_record(&log, SEALED, 57);
    log.verify()
        .fails_at(57, &seg_name(SEALED))
        .stderr_has(&["cut short"]);
}

#[test]
fn segment_truncated_active() {
    let log = Log::standard();
    cut_in_record(&log, ACTIVE, 57);
    log.verify()
        .fails_at(ACTIVE + 57, &seg_name(ACTIVE))
        .stderr_has(&["truncated"]);
}

/// Cut exactly between two records, a sealed segment looks whole on its own; the chain
/// of first indexes shows events are missing, and they are missing from this segment.
#[test]
fn segment_truncated_at_record_boundary() {
    let log = Log::standard();
    let path = log.segment(SEALED);
    let seg = Framed::read_segment(&path);
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(seg.offsets[57] as u64).unwrap();
    log.verify().fails_at(57, &seg_name(SEALED));
}

#[test]
fn segment_deleted() {
    let log = Log::standard();
    std::fs::remove_file(log.segment(PER_APPEND)).unwrap();
    std::fs::remove_file(log.segment_index(PER_APPEND)).unwrap();
    log.verify()
        .fails_at(PER_APPEND, &seg_name(ACTIVE))
        .stderr_has(&["a segment was removed"]);
}

#[test]
fn first_segment_deleted() {
    let log = Log::standard();
    std::fs::remove_file(log.segment(0)).unwrap();
    std::fs::remove_file(log.segment_index(0)).unwrap();
    log.verify()
        .fails_at(0, &seg_name(PER_APPEND))
        .stderr_has(&["a segment was removed"]);
}

// --- Checkpoints ------------------------------------------------------------------------

/// The stored checkpoints and the position of the one of `size` in `checkpoints.log`.
fn stored_checkpoint(log: &Log, size: u64) -> (Framed, usize) {
    let cps = Framed::read_checkpoints(&log.file("checkpoints.log"));
    let sizes: Vec<u64> = cps
        .records
        .iter()
        .map(|r| super::util::checkpoint_fields(&String::from_utf8_lossy(r)).0)
        .collect();
    for want in [0, 300, 600, 900] {
        assert!(sizes.contains(&want), "no checkpoint of {want}: {sizes:?}");
    }
    let seq = sizes.iter().position(|&s| s == size).unwrap();
    (cps, seq)
}

/// The signed text of a note: everything up to and including the blank line's `\n`.
fn note_text(note: &str) -> &str {
    let end = note.find("\n\n").expect("a blank line") + 1;
    &note[..end]
}

#[test]
fn checkpoint_replaced_by_one_signed_with_another_key() {
    let log = Log::standard();
    let (mut cps, seq) = stored_checkpoint(&log, 600);
    let original = String::from_utf8(cps.records[seq].clone()).unwrap();
    // The very same checkpoint text (size and root are right), signed by a stranger.
    let stranger = Signer::from_seed("test/log".parse::<KeyName>().unwrap(), [7; 32]);
    let forged = stranger.sign(note_text(&original)).unwrap();
    assert_ne!(forged, original);
    cps.records[seq] = forged.into_bytes();
    cps.write(&log.file("checkpoints.log"));
    log.verify().expect_code(1).stderr_has(&[
        &format!("checkpoint #{seq} does not verify"),
        "checkpoints.log",
    ]);
}

#[test]
fn checkpoint_replaced_with_signature_altered() {
    let log = Log::standard();
    let (mut cps, seq) = stored_checkpoint(&log, 600);
    let note = String::from_utf8(cps.records[seq].clone()).unwrap();
    let sig_line = note.lines().last().unwrap();
    let sig_b64 = sig_line.rsplit(' ').next().unwrap();
    let mut sig = unb64(sig_b64);
    assert_eq!(sig.len(), 4 + 64, "key id and Ed25519 signature");
    sig[4 + 10] ^= 0x01;
    let altered = note.replace(sig_b64, &b64(&sig));
    cps.records[seq] = altered.into_bytes();
    cps.write(&log.file("checkpoints.log"));
    log.verify().expect_code(1).stderr_has(&[
        &format!("checkpoint #{seq} does not verify"),
        "checkpoints.log",
    ]);
}

/// A checkpoint record in the middle of `checkpoints.log` whose bytes no longer match its
/// checksum is damage, not a torn tail: a crash only ever tears the last record.
#[test]
fn checkpoint_record_damaged_mid_log() {
    let log = Log::standard();
    let (cps, seq) = stored_checkpoint(&log, 300);
    let path = log.file("checkpoints.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[cps.offsets[seq] + 8 + 12] ^= 0x01; // in its text; the checksum left stale
    std::fs::write(&path, bytes).unwrap();
    let run = log.verify();
    run.expect_code(1);
    assert!(
        run.headline().contains("checkpoints.log"),
        "the failure should name checkpoints.log:\n{}",
        run.stderr
    );
}

/// Without the signing key, an attacker changes an event, rewrites the tree files to
/// match, and damages the first record of `checkpoints.log` so that no signed root is
/// checked any more. The log must not verify.
#[test]
fn field_changed_tree_rewritten_and_checkpoint_log_damaged() {
    let log = Log::standard();
    let index = first_success(&log, 57);
    change_outcome(&log, SEALED, index);
    rebuild_tree_files(&log);
    let path = log.file("checkpoints.log");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[4] ^= 0x01; // checkpoint #0's checksum
    std::fs::write(&path, bytes).unwrap();
    log.verify().expect_code(1);
}

/// The whole signed history removed: a log with events and no checkpoint cannot have come
/// from a writer (each signs one when it creates or opens a log).
#[test]
fn checkpoint_log_emptied_or_deleted() {
    for how in ["emptied", "deleted"] {
        let log = Log::standard();
        let path = log.file("checkpoints.log");
        if how == "emptied" {
            std::fs::write(&path, b"").unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        log.verify().expect_code(1).stderr_has(&[
            "no signed checkpoint",
            "900 events",
            "checkpoints.log",
        ]);
    }
}

/// The checkpoint log cut back to its first record (the empty tree's), and an event
/// changed with its checksum and the tree files rewritten. Without the key nothing signed
/// covers the change, so only `--trusted` can fail it; plain `verify` must at least say
/// which events no signature covers.
#[test]
fn checkpoint_log_cut_back_leaves_events_uncovered() {
    let log = Log::standard();
    let index = first_success(&log, 57);
    change_outcome(&log, SEALED, index);
    rebuild_tree_files(&log);
    let (stored, seq) = stored_checkpoint(&log, 0);
    assert_eq!(seq, 0, "the empty tree's checkpoint comes first");
    let path = log.file("checkpoints.log");
    let bytes = std::fs::read(&path).unwrap();
    let end = stored.offsets[0] + 8 + stored.records[0].len();
    std::fs::write(&path, &bytes[..end]).unwrap();
    log.verify()
        .ok()
        .stderr_has(&["900 events (indexes 0..899) are not covered by a signed checkpoint"]);
}

// --- Rollbacks and forks ----------------------------------------------------------------

#[test]
fn rolled_back_and_resigned() {
    let mut log = Log::small(50);
    let state_a = log.outside("state-a");
    copy_dir(&log.data, &state_a);
    log.append(events(1, 50, 0));
    let trusted_b = log.outside("checkpoint-b.txt");
    std::fs::write(&trusted_b, log.checkpoint()).unwrap();
    let b_arg = trusted_b.to_str().unwrap();

    // Restore the earlier state: consistent and validly signed on its own.
    std::fs::remove_dir_all(&log.data).unwrap();
    copy_dir(&state_a, &log.data);
    log.verify().ok();
    log.run(&["verify", "--trusted", b_arg])
        .fails_at(50, &seg_name(0))
        .stderr_has(&["rolled back", "checkpoint-b.txt"]);

    // The attacker, holding the key, grows the old state past B with other events.
    log.events.truncate(50);
    log.append(events(2, 60, 0));
    log.verify().ok();
    log.run(&["verify", "--trusted", b_arg])
        .fails_at(99, &seg_name(0))
        .stderr_has(&["forked", "checkpoint-b.txt"]);
}

#[test]
fn fork_with_same_key() {
    let log = Log::small(50);
    let fork1 = log.outside("fork1");
    let fork2 = log.outside("fork2");
    copy_dir(&log.data, &fork1);
    copy_dir(&log.data, &fork2);
    let append = |dir: &std::path::Path, batch| {
        log.run_in(
            dir,
            &["append"],
            &super::util::ndjson(&events(batch, 40, 0)),
        )
        .ok();
    };
    append(&fork1, 1);
    append(&fork2, 2);
    let cp1 = log.run_in(&fork1, &["checkpoint"], b"");
    cp1.ok();
    let cp1_path = log.outside("fork1-checkpoint.txt");
    std::fs::write(&cp1_path, &cp1.stdout).unwrap();
    let trusted = ["verify", "--trusted", cp1_path.to_str().unwrap()];

    log.run_in(&fork1, &trusted, b"").ok();
    log.run_in(&fork2, &["verify"], b"").ok();
    log.run_in(&fork2, &trusted, b"")
        .fails_at(89, &seg_name(0))
        .stderr_has(&["forked", "fork1-checkpoint.txt"]);
}

// --- Tree files -------------------------------------------------------------------------

fn flip_tree_entry(log: &Log, level: u8, entry: usize) {
    let path = log.file(&format!("tree/level-{level:02}.hashes"));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[entry * 32 + 5] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn tree_file_changed() {
    let log = Log::standard();
    flip_tree_entry(&log, 0, 57);
    log.verify().fails_at(57, &seg_name(SEALED));
}

#[test]
fn tree_file_changed_above_the_leaves() {
    let log = Log::standard();
    // Node 7 of level 3 covers leaves 56..64; it is complete once leaf 63 is in.
    flip_tree_entry(&log, 3, 7);
    log.verify()
        .fails_at(63, &seg_name(SEALED))
        .stderr_has(&["level-03.hashes"]);
}

/// The tree files are synced before each checkpoint is signed, so up to the latest
/// checkpoint they must be whole (the writer refuses to open otherwise, and proofs fail).
#[test]
fn tree_file_truncated() {
    let log = Log::standard();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(log.file("tree/level-00.hashes"))
        .unwrap();
    f.set_len(100 * 32).unwrap();
    log.verify().fails_at(100, "level-00.hashes");
}

/// A `--trusted` file that is not a signed checkpoint at all is a wrong argument (exit 2);
/// a real checkpoint that does not verify with this log's key is a failed check (exit 1).
#[test]
fn trusted_file_that_is_not_a_checkpoint_is_refused_as_an_argument() {
    let log = Log::small(5);
    let cases: [(&str, &[u8]); 3] = [
        ("garbage.txt", b"hello\n"),
        ("empty.txt", b""),
        ("checkpoint-text-only.txt", b"test/log\n5\nAAAA\n"),
    ];
    for (name, bytes) in cases {
        let path = log.outside(name);
        std::fs::write(&path, bytes).unwrap();
        log.run(&["verify", "--trusted", path.to_str().unwrap()])
            .expect_code(2)
            .stderr_has(&[name, "is not a signed checkpoint"]);
    }
    // A key argument that names a file that is not there.
    log.run(&["verify", "--key", "/nonexistent/key.txt"])
        .expect_code(2)
        .stderr_has(&["no such file /nonexistent/key.txt"]);
    // A real checkpoint whose signature line was damaged is checked, and fails (exit 1).
    let damaged = log.outside("damaged-signature.txt");
    let cp = log.checkpoint();
    let (text, sig) = cp.split_once("\n\n").unwrap();
    std::fs::write(&damaged, format!("{text}\n\n{}!!\n", sig.trim_end())).unwrap();
    log.run(&["verify", "--trusted", damaged.to_str().unwrap()])
        .expect_code(1);
    let other = Log::small(5);
    let foreign = log.outside("other-log.txt");
    std::fs::write(&foreign, other.checkpoint()).unwrap();
    log.run(&["verify", "--trusted", foreign.to_str().unwrap()])
        .expect_code(1);
}

/// A checkpoint record's length changed to run past the end of the file looks like a torn
/// last record, but intact records follow it: `verify` fails, and no writer cuts the signed
/// checkpoints after it (one did, silently).
#[test]
fn checkpoint_length_changed_to_run_past_the_end() {
    let log = Log::standard();
    let path = log.file("checkpoints.log");
    let cps = Framed::read_checkpoints(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[cps.offsets[1] + 1] = 0x7f;
    std::fs::write(&path, &bytes).unwrap();
    log.verify()
        .expect_code(1)
        .stderr_has(&["checkpoints.log", "intact records follow"]);
    let before = log.snapshot();
    log.run_stdin(&["append"], &ndjson(&events(9, 1, 0)))
        .expect_code(1)
        .stderr_has(&["checkpoints.log"]);
    super::util::assert_same(&before, &log.snapshot());
}

/// A sealed segment's `.idx` removed or emptied: the records are intact, but readers can
/// no longer find them and no writer opens the log; `verify` names the file.
#[test]
fn sealed_segment_index_file_emptied() {
    for how in ["emptied", "cut short"] {
        let log = Log::standard();
        let idx = log.segment_index(PER_APPEND);
        let len = if how == "emptied" {
            0
        } else {
            std::fs::metadata(&idx).unwrap().len() - 24
        };
        std::fs::OpenOptions::new()
            .write(true)
            .open(&idx)
            .unwrap()
            .set_len(len)
            .unwrap();
        log.verify()
            .expect_code(1)
            .stderr_has(&[&format!("{PER_APPEND:020}.idx"), "index file lists"]);
    }
}
