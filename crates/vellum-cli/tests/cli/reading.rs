//! Reading a log back: query filters return exactly the matching events, export's leaf
//! lines are the bytes the signed tree is built from, proofs check against checkpoints,
//! tail prints the last events, and API key management is audited in the log itself.

use vellum_merkle::{Hash, LeafIndex, TreeSize, verify_consistency, verify_inclusion};

use super::util::{
    Ev, Log, b64, checkpoint_fields, events, leaf_hash, ndjson, node_hash, time_at, unb64,
};

/// The ids of the NDJSON events printed by a command.
fn ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("an NDJSON line");
            v["id"].as_str().expect("an id").to_string()
        })
        .collect()
}

fn ids_where(evs: &[Ev], keep: impl Fn(&Ev) -> bool) -> Vec<String> {
    evs.iter()
        .filter(|e| keep(e))
        .map(|e| e.id.clone())
        .collect()
}

/// How the query index stands when `vellum query` runs: the CLI uses a closed index
/// read-only (scanning what it does not cover) and scans the log when there is none or a
/// server's indexer has it open. The answers are the same in every case.
#[derive(Debug, Clone, Copy)]
enum IndexState {
    None,
    Partial,
    Full,
    /// A server's indexer has it open (and has indexed part of the log).
    HeldOpen,
    /// A writer that shares it with no one (redb's default mode, an older Vellum) has it open.
    HeldExclusively,
}

#[test]
fn query_filters_return_exactly_the_matching_events() {
    let log = Log::small(150);
    let evs = &log.events;
    let combined = ids_where(evs, |e| {
        e.category == "api_request" && e.outcome == "success" && e.user == "user1"
    });
    assert!(!combined.is_empty());
    let security = ids_where(evs, |e| e.category == "security");
    assert!(!security.is_empty());
    let auth: Vec<String> = ids_where(evs, |e| e.category == "authentication");
    let since = time_at(40);
    let until = time_at(90);
    let until3 = time_at(3);
    let table: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec![], ids_where(evs, |_| true)),
        (vec!["--category", "security"], security),
        (
            vec!["--user", "user3"],
            ids_where(evs, |e| e.user == "user3"),
        ),
        (
            vec!["--outcome", "failure"],
            ids_where(evs, |e| e.outcome == "failure"),
        ),
        (
            vec!["--action", "injection.detected"],
            ids_where(evs, |e| e.action == "injection.detected"),
        ),
        (
            vec!["--ip", "10.0.0.2"],
            ids_where(evs, |e| e.ip == "10.0.0.2"),
        ),
        (
            vec![
                "--category",
                "api_request",
                "--outcome",
                "success",
                "--user",
                "user1",
            ],
            combined,
        ),
        (vec!["--limit", "7"], ids_where(&evs[..7], |_| true)),
        (
            vec!["--category", "authentication", "--limit", "3"],
            auth[..3].to_vec(),
        ),
        // --since is inclusive, --until exclusive; event i has time 00:00:00 + i s.
        (
            vec!["--since", &since, "--until", &until],
            ids_where(&evs[40..90], |_| true),
        ),
        // A --since with an offset is the same instant in UTC.
        (
            vec!["--since", "2026-11-18T01:00:00+01:00", "--until", &until3],
            ids_where(&evs[..3], |_| true),
        ),
        (vec!["--category", "security", "--user", "nobody"], vec![]),
    ];
    let layout = vellum_store::Layout::new(&log.data);
    let reader = vellum_store::LogReader::open(&log.data).unwrap();
    for state in [
        IndexState::None,
        IndexState::Partial,
        IndexState::Full,
        IndexState::HeldOpen,
        IndexState::HeldExclusively,
    ] {
        let index_file = layout.index_dir().join("postings.redb");
        let (_held, _held_exclusively) = match state {
            IndexState::None => (None, None),
            IndexState::Partial | IndexState::Full => {
                let index = vellum_index::Index::open(&layout).unwrap();
                let n = if matches!(state, IndexState::Partial) {
                    100
                } else {
                    150
                };
                index.catch_up(&reader, n).unwrap();
                (None, None)
            }
            IndexState::HeldOpen => {
                std::fs::remove_dir_all(layout.index_dir()).unwrap();
                let index = vellum_index::Index::open(&layout).unwrap();
                index.catch_up(&reader, 100).unwrap();
                (Some(index), None)
            }
            IndexState::HeldExclusively => {
                (None, Some(redb::Database::create(&index_file).unwrap()))
            }
        };
        for (args, want) in &table {
            let mut argv = vec!["query"];
            argv.extend_from_slice(args);
            let run = log.run(&argv);
            run.ok();
            assert_eq!(&ids(&run.stdout), want, "{state:?}: query {args:?}");
            // The index is used beside a server's indexer. Scanning because it cannot be
            // opened says so; no index at all is the usual case and says nothing.
            assert_eq!(
                run.stderr.contains("scanning the log"),
                matches!(state, IndexState::HeldExclusively),
                "{state:?}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn query_rejects_bad_filters() {
    let log = Log::small(3);
    log.run(&["query", "--category", "gossip"])
        .expect_code(2)
        .stderr_has(&["gossip"]);
    log.run(&["query", "--outcome", "maybe"])
        .expect_code(2)
        .stderr_has(&["maybe"]);
    log.run(&["query", "--since", "yesterday"])
        .expect_code(2)
        .stderr_has(&["yesterday"]);
    // No stored event can have it: refused rather than answered with nothing.
    log.run(&["query", "--ip", "10.0.0"])
        .expect_code(2)
        .stderr_has(&["invalid IP address", "10.0.0"]);
    log.run(&["export", "--ip", "10.0.0"]).expect_code(2);
}

/// RFC 6962 Merkle tree hash of a list of leaf hashes.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => unreachable!("no empty trees here"),
        1 => leaves[0],
        n => {
            // The largest power of two smaller than n.
            let mut k = 1;
            while k * 2 < n {
                k *= 2;
            }
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

fn hashes(v: &serde_json::Value) -> Vec<Hash> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|h| Hash::from_slice(&unb64(h.as_str().unwrap())).unwrap())
        .collect()
}

#[test]
fn export_leaf_lines_are_the_hashed_bytes() {
    let mut log = Log::small(30);
    log.append(events(1, 7, 0));
    let leaf_lines = log.run(&["export", "--format", "leaf"]);
    leaf_lines.ok();
    let ndjson = log.run(&["export"]);
    ndjson.ok();
    let bytes: Vec<Vec<u8>> = leaf_lines.stdout.lines().map(unb64).collect();
    assert_eq!(bytes.len(), 37);
    let nd: Vec<&str> = ndjson.stdout.lines().collect();
    for (i, b) in bytes.iter().enumerate() {
        assert_eq!(
            b,
            nd[i].as_bytes(),
            "leaf {i} differs from the NDJSON export"
        );
        assert!(b.starts_with(format!("{{\"index\":{i},").as_bytes()));
    }

    // The signed root is the tree over exactly these bytes.
    let leaves: Vec<[u8; 32]> = bytes.iter().map(|b| leaf_hash(b)).collect();
    let (size, root) = checkpoint_fields(&log.checkpoint());
    assert_eq!(size, 37);
    assert_eq!(mth(&leaves), root);

    for index in [0usize, 1, 13, 29, 36] {
        let run = log.run(&["prove", "inclusion", "--index", &index.to_string()]);
        run.ok();
        let p: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(p["index"], index);
        assert_eq!(p["tree_size"], 37);
        assert_eq!(p["leaf_hash"].as_str().unwrap(), b64(&leaves[index]));
        verify_inclusion(
            &Hash(leaves[index]),
            LeafIndex(index as u64),
            TreeSize(37),
            &hashes(&p["proof"]),
            &Hash(root),
        )
        .unwrap_or_else(|e| panic!("inclusion proof of {index}: {e}"));
    }
    log.run(&["prove", "inclusion", "--index", "37"])
        .expect_code(2);
}

#[test]
fn prove_consistency_links_two_checkpoints() {
    let mut log = Log::small(30);
    let (size_a, root_a) = checkpoint_fields(&log.checkpoint());
    log.append(events(1, 47, 0));
    let (size_b, root_b) = checkpoint_fields(&log.checkpoint());
    assert_eq!((size_a, size_b), (30, 77));

    let run = log.run(&["prove", "consistency", "--from", "30"]);
    run.ok();
    let p: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        (p["size1"].as_u64(), p["size2"].as_u64()),
        (Some(30), Some(77))
    );
    let proof = hashes(&p["proof"]);
    verify_consistency(
        TreeSize(30),
        TreeSize(77),
        &proof,
        &Hash(root_a),
        &Hash(root_b),
    )
    .unwrap();
    // The proof is not vacuous: it fails for another old root.
    assert!(
        verify_consistency(
            TreeSize(30),
            TreeSize(77),
            &proof,
            &Hash([0; 32]),
            &Hash(root_b)
        )
        .is_err()
    );

    // To an explicit size, checked against the root computed here from the export.
    let leaves: Vec<[u8; 32]> = log
        .run(&["export", "--format", "leaf"])
        .stdout
        .lines()
        .map(|l| leaf_hash(&unb64(l)))
        .collect();
    let run = log.run(&["prove", "consistency", "--from", "30", "--to", "50"]);
    run.ok();
    let p: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    verify_consistency(
        TreeSize(30),
        TreeSize(50),
        &hashes(&p["proof"]),
        &Hash(root_a),
        &Hash(mth(&leaves[..50])),
    )
    .unwrap();
    log.run(&["prove", "consistency", "--from", "50", "--to", "30"])
        .expect_code(2);
    log.run(&["prove", "consistency", "--from", "30", "--to", "78"])
        .expect_code(2);
    // From past the log: beyond it, whatever `--to` says.
    log.run(&["prove", "consistency", "--from", "100000"])
        .expect_code(2)
        .stderr_has(&["beyond the log"]);
    // From the empty tree there is nothing to prove, to any size.
    for to in ["0", "30"] {
        log.run(&["prove", "consistency", "--from", "0", "--to", to])
            .expect_code(2)
            .stderr_has(&["at least 1 event"]);
    }
}

#[test]
fn tail_prints_the_last_events() {
    let log = Log::small(20);
    let tail = |args: &[&str]| {
        let mut argv = vec!["tail"];
        argv.extend_from_slice(args);
        let run = log.run(&argv);
        run.ok();
        ids(&run.stdout)
    };
    assert_eq!(tail(&["-n", "3"]), ids_where(&log.events[17..], |_| true));
    assert_eq!(tail(&[]), ids_where(&log.events[10..], |_| true));
    assert_eq!(tail(&["-n", "50"]), ids_where(&log.events, |_| true));
    assert!(tail(&["-n", "0"]).is_empty());
}

#[test]
fn keys_create_list_revoke_are_audited() {
    let log = Log::small(3);
    // No keys yet: an empty list, not an error.
    let none = log.run(&["keys", "list"]);
    none.ok().stderr_has(&["no API keys"]);
    assert!(none.stdout.is_empty(), "{}", none.stdout);
    // No log at all: refused as every other command refuses it.
    log.run_in(&log.outside("nothing"), &["keys", "list"], b"")
        .expect_code(2)
        .stderr_has(&["no data directory"]);
    let run = log.run(&["keys", "create", "--name", "ci-ingest", "--role", "ingest"]);
    run.ok().stderr_has(&["shown only now"]);
    let token = run.stdout.trim().to_string();
    assert!(token.starts_with("vk-"), "{token}");
    let keys_json = std::fs::read_to_string(log.file("keys.json")).unwrap();
    assert!(!keys_json.contains(&token), "the secret landed on disk");
    assert!(
        !keys_json.contains(token.rsplit('-').next().unwrap()),
        "the secret part of the token landed on disk"
    );
    let keys: serde_json::Value = serde_json::from_str(&keys_json).unwrap();
    let id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    assert!(token.starts_with(&format!("vk-{}-", id.trim_start_matches("k_"))));

    let list = log.run(&["keys", "list"]);
    list.ok();
    let row = list.stdout.lines().find(|l| l.contains(&id)).unwrap();
    assert!(row.contains("ci-ingest") && row.contains("ingest"), "{row}");
    assert!(!list.stdout.contains(&token));
    assert!(keys["keys"][0].get("revoked").is_none());

    log.run(&["keys", "revoke", &id]).ok();
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log.file("keys.json")).unwrap()).unwrap();
    let revoked = keys["keys"][0]["revoked"].as_str().unwrap().to_string();
    let list = log.run(&["keys", "list"]);
    let row = list.stdout.lines().find(|l| l.contains(&id)).unwrap();
    assert!(row.contains(&revoked), "revocation not listed: {row}");
    // Revoking again says so, keeps the first time and records nothing.
    let before = std::fs::read(log.file("keys.json")).unwrap();
    let again = log.run(&["keys", "revoke", &id]);
    again.ok();
    assert!(
        again.stdout.contains("already revoked") && again.stdout.contains(&revoked),
        "{}",
        again.stdout
    );
    assert_eq!(std::fs::read(log.file("keys.json")).unwrap(), before);

    let admin = log.run(&["query", "--category", "admin"]);
    admin.ok();
    let audit: Vec<serde_json::Value> = admin
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["details"]["key_id"] == id.as_str())
        .collect();
    let actions: Vec<&str> = audit
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["key.created", "key.revoked"]);
    // Who did it: a name (from the environment, else the uid) and the uid itself.
    for e in &audit {
        assert!(e["actor"]["uid"].is_u64(), "{e}");
        assert!(
            e["actor"]["user"]
                .as_str()
                .is_some_and(|u| !u.is_empty() && u != "unknown"),
            "{e}"
        );
    }
    assert_eq!(audit[0]["index"], 3);
    assert_eq!(audit[0]["details"]["role"], "ingest");
    assert!(!admin.stdout.contains(&token));

    log.run(&["keys", "revoke", "k_nosuchkey"])
        .expect_code(2)
        .stderr_has(&["k_nosuchkey"]);
    log.run(&["keys", "create", "--name", "x", "--role", "root"])
        .expect_code(2)
        .stderr_has(&["root"]);
    for name in ["", "   "] {
        log.run(&["keys", "create", "--name", name, "--role", "ingest"])
            .expect_code(2)
            .stderr_has(&["key name"]);
    }
    log.verify().ok();
}

/// `keys list` is a table: every column starts where its heading does.
#[test]
fn keys_list_columns_line_up() {
    let log = Log::small(1);
    log.run(&["keys", "create", "--name", "ops", "--role", "admin"])
        .ok();
    let keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log.file("keys.json")).unwrap()).unwrap();
    let created = keys["keys"][0]["created"].as_str().unwrap();
    let list = log.run(&["keys", "list"]);
    list.ok();
    let mut lines = list.stdout.lines();
    let header = lines.next().unwrap();
    let row = lines.next().unwrap();
    for (heading, value) in [("ROLE", "admin"), ("CREATED", created), ("NAME", "ops")] {
        assert_eq!(
            header.find(heading),
            row.find(value),
            "column {heading} is misaligned:\n{header}\n{row}"
        );
    }
}

/// The README's first command: the sample events append and the log verifies. Sent again,
/// the events that carry an `id` are answered as duplicates; those in the chapter's shape
/// (no `id`, so a fresh one each time) are stored again.
#[test]
fn readme_sample_events_append_and_verify() {
    let sample =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/events.ndjson");
    let text = std::fs::read(&sample).expect("examples/events.ndjson");
    let lines: Vec<serde_json::Value> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect();
    let with_id = lines.iter().filter(|v| v.get("id").is_some()).count();
    let n = lines.len();
    assert!(with_id > 0 && with_id < n, "the sample mixes both shapes");

    let log = Log::empty();
    let run = log.run_stdin(&["append"], &text);
    run.ok();
    assert!(
        run.stdout.contains(&format!(
            "appended {n} events, indexes 0..{}, tree size {n}",
            n - 1
        )),
        "{}",
        run.stdout
    );
    log.verify().ok();

    let again = log.run_stdin(&["append"], &text);
    again.ok();
    assert!(
        again.stdout.contains(&format!("{with_id} duplicates")),
        "{}",
        again.stdout
    );
    log.verify().ok();
    let all = log.run(&["export"]);
    all.ok();
    assert_eq!(all.stdout.lines().count(), 2 * n - with_id);
}

/// `--dedupe-window N`: a re-sent id among the last N events is a duplicate; one older is
/// stored again (the window is bounded, and documented so).
#[test]
fn the_dedupe_window_bounds_what_is_a_duplicate() {
    let log = Log::empty();
    let evs = events(0, 5, 0);
    log.run_stdin(&["--dedupe-window", "2", "append"], &ndjson(&evs))
        .ok();
    let resend = |i: usize, window: &str| {
        let run = log.run_stdin(&["--dedupe-window", window, "append"], &ndjson(&evs[i..=i]));
        run.ok();
        run.stdout.clone()
    };
    assert!(
        resend(4, "2").contains("1 duplicate ("),
        "the newest is remembered"
    );
    assert!(
        resend(0, "2").contains("appended 1 events, indexes 5..5"),
        "the oldest is not"
    );
    // The default window remembers them all: index 1 is still a duplicate.
    assert!(resend(1, "1000000").contains("1 duplicate ("));
    log.verify().ok();
}

/// Another event under a stored id is refused, not dropped as a duplicate (a re-sent one
/// may differ in its `time`, which a sender rebuilding it fills in anew). In a bulk append,
/// what is stored is everything before the refused event, and nothing from it on, however
/// many commits were in flight.
#[test]
fn another_event_under_a_stored_id_is_refused_and_stops_the_append_there() {
    let mut log = Log::empty();
    let first = events(0, 5, 0);
    log.append(first.clone());

    let mut resent = first[2].clone();
    resent.time = "2030-01-01T00:00:00Z".into();
    let run = log.run_stdin(&["append"], &ndjson(&[resent]));
    run.ok();
    assert!(run.stdout.contains("1 duplicate ("), "{}", run.stdout);

    let mut other = first[2].clone();
    other.user = "mallory".into();
    let mut input = events(1, 3000, 0);
    input.insert(1500, other);
    log.run_stdin(&["append", "--batch", "100"], &ndjson(&input))
        .expect_code(2)
        .stderr_has(&[
            &format!("id `{}` is already in the log at index 2", first[2].id),
            "the first 1500 events of the input are in the log (1500 appended, indexes 5..1504, 0 already there), none after them",
        ]);
    let stored = log.run(&["export"]);
    stored.ok();
    assert_eq!(stored.stdout.lines().count(), 1505);

    // Twice in one input, with other content.
    let mut twice = events(2, 2, 0);
    twice[1].id = twice[0].id.clone();
    log.run_stdin(&["append"], &ndjson(&twice))
        .expect_code(2)
        .stderr_has(&[
            "is given to two events with other content",
            "nothing of the input was appended",
        ]);
    log.verify().ok();
}

/// An address is stored in its canonical text, so a query finds it however the event and
/// the filter wrote it.
#[test]
fn addresses_match_however_they_are_written() {
    let log = Log::empty();
    let line = |id: &str, ip: &str| {
        format!(
            r#"{{"id":"{id}","time":"2026-11-26T00:00:00Z","category":"security","action":"probe","source":{{"ip":"{ip}"}}}}"#
        )
    };
    let input = [
        line("a", "2001:DB8::7"),
        line("b", "2001:db8:0:0:0:0:0:7"),
        line("c", "2001:db8::8"),
        // What a dual-stack socket reports for an IPv4 client is that IPv4 address.
        line("d", "::ffff:198.51.100.9"),
        line("e", "198.51.100.9"),
    ]
    .join("\n");
    log.run_stdin(&["append"], input.as_bytes()).ok();
    let run = log.run(&["query", "--ip", "2001:0db8::0007"]);
    run.ok();
    assert_eq!(ids(&run.stdout), ["a", "b"], "{}", run.stdout);
    assert!(
        run.stdout
            .lines()
            .all(|l| l.contains(r#""ip":"2001:db8::7""#)),
        "{}",
        run.stdout
    );
    for given in ["198.51.100.9", "::ffff:198.51.100.9", "::FFFF:c633:6409"] {
        let run = log.run(&["query", "--ip", given]);
        run.ok();
        assert_eq!(ids(&run.stdout), ["d", "e"], "{given}: {}", run.stdout);
    }
    log.verify().ok();
}

/// `tail -f` prints what another process appends, and stops by itself when nobody reads
/// its output any more or when the log is removed.
#[test]
fn tail_follow_prints_new_events_and_stops_when_unread_or_gone() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let mut log = Log::small(5);
    let spawn = |log: &Log| {
        Command::new(super::util::BIN)
            .args([
                "--data",
                log.data.to_str().unwrap(),
                "tail",
                "-f",
                "-n",
                "2",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_exit = |child: &mut std::process::Child| {
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "tail -f did not stop"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    let mut child = spawn(&log);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let index_of = |line: &str| -> u64 {
        serde_json::from_str::<serde_json::Value>(line).unwrap()["index"]
            .as_u64()
            .unwrap()
    };
    let first: Vec<u64> = (0..2)
        .map(|_| index_of(&lines.next().unwrap().unwrap()))
        .collect();
    assert_eq!(first, [3, 4]);
    log.append(events(1, 3, 0));
    let next: Vec<u64> = (0..3)
        .map(|_| index_of(&lines.next().unwrap().unwrap()))
        .collect();
    assert_eq!(next, [5, 6, 7]);
    // Nobody reads any more: it stops, successfully, without waiting for another event.
    drop(lines);
    assert!(wait_exit(&mut child).success());

    // The log removed under it: it says so and fails.
    let mut child = spawn(&log);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    lines.next().unwrap().unwrap();
    std::fs::remove_dir_all(&log.data).unwrap();
    let status = wait_exit(&mut child);
    assert_eq!(status.code(), Some(2));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("is gone"), "{stderr}");
}

/// A revocation whose audit event failed (the key file says revoked, not yet recorded) is
/// recorded when it is retried; only then does revoking again record nothing.
#[test]
fn a_revocation_whose_event_failed_is_recorded_on_retry() {
    let log = Log::small(3);
    log.run(&["keys", "create", "--name", "ci", "--role", "ingest"])
        .ok();
    // What a revocation whose `key.revoked` append failed leaves behind.
    let path = log.file("keys.json");
    let mut keys: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    keys["keys"][0]["revoked"] = "2026-11-27T00:00:00.000000Z".into();
    keys["keys"][0]["revocation_recorded"] = false.into();
    std::fs::write(&path, serde_json::to_vec(&keys).unwrap()).unwrap();

    let revoked_events = || {
        log.run(&["query", "--action", "key.revoked"])
            .stdout
            .lines()
            .count()
    };
    assert_eq!(revoked_events(), 0);
    log.run(&["keys", "revoke", &id])
        .ok()
        .stdout
        .contains("revoked");
    assert_eq!(revoked_events(), 1, "the retry recorded it");
    let again = log.run(&["keys", "revoke", &id]);
    again.ok();
    assert!(
        again
            .stdout
            .contains("already revoked at 2026-11-27T00:00:00"),
        "{}",
        again.stdout
    );
    assert_eq!(revoked_events(), 1, "and nothing more");
}
