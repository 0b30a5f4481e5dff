//! Bad NDJSON on `vellum append`'s stdin: exit 2 with a message naming the line and the
//! problem, and nothing written — an existing log is byte for byte unchanged (same
//! checkpoint, still verifies), and on a fresh directory no data directory appears. Every
//! case is fed both through a pipe and as a regular file (which `vellum append` reads in
//! two passes).

use super::util::{Log, Stdin, assert_same, events, ndjson};

const GOOD: &str = r#"{"category":"admin","action":"config.changed"}"#;

/// Feeds `input` to `vellum [ARGS] append` on an existing log and on a fresh directory;
/// both must fail with every one of `expect` in the message and write nothing.
#[track_caller]
fn rejects(input: &[u8], args: &[&str], expect: &[&str]) {
    let mut argv = args.to_vec();
    argv.push("append");
    let log = Log::small(5);
    for how in [Stdin::Pipe, Stdin::File] {
        let before = log.snapshot();
        let checkpoint = log.checkpoint();
        log.run_stdin_from(&argv, input, how)
            .expect_code(2)
            .stderr_has(expect);
        assert_same(&before, &log.snapshot());
        assert_eq!(log.checkpoint(), checkpoint, "{how:?}");
        log.verify().ok();

        let fresh = Log::empty();
        fresh
            .run_stdin_from(&argv, input, how)
            .expect_code(2)
            .stderr_has(expect);
        assert!(
            !fresh.data.exists(),
            "a rejected append ({how:?}) created {}",
            fresh.data.display()
        );
    }
}

fn lines(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[test]
fn malformed_json() {
    rejects(
        &lines(&[GOOD.as_bytes(), b"{\"category\":\"admin\",\"action\":"]),
        &[],
        &["line 2", "malformed JSON"],
    );
}

#[test]
fn trailing_garbage_after_an_event() {
    rejects(
        &lines(&[GOOD.as_bytes(), format!("{GOOD} trailing").as_bytes()]),
        &[],
        &["line 2", "malformed JSON"],
    );
}

#[test]
fn wrong_type_of_a_string_field() {
    rejects(
        &lines(&[GOOD.as_bytes(), br#"{"category":"admin","action":5}"#]),
        &[],
        &["line 2", "field `action` must be a string"],
    );
}

#[test]
fn wrong_type_of_an_object_field() {
    rejects(
        &lines(&[
            GOOD.as_bytes(),
            br#"{"category":"admin","action":"x","actor":"alice"}"#,
        ]),
        &[],
        &["line 2", "field `actor` must be an object"],
    );
}

#[test]
fn not_an_object() {
    rejects(
        &lines(&[format!("[{GOOD}]").as_bytes()]),
        &[],
        &["line 1", "must be a JSON object"],
    );
}

#[test]
fn oversize_event() {
    let big = format!(
        r#"{{"category":"admin","action":"x","details":{{"pad":"{}"}}}}"#,
        "x".repeat(200)
    );
    assert!(GOOD.len() <= 100);
    rejects(
        &lines(&[GOOD.as_bytes(), big.as_bytes()]),
        &["--max-event-bytes", "100"],
        &["line 2", "over the limit of 100 bytes"],
    );
}

#[test]
fn invalid_utf8() {
    rejects(
        &lines(&[
            GOOD.as_bytes(),
            b"{\"category\":\"admin\",\"action\":\"\xff\xfe\"}",
        ]),
        &[],
        &["line 2", "not valid UTF-8"],
    );
}

#[test]
fn unknown_category() {
    rejects(
        &lines(&[GOOD.as_bytes(), br#"{"category":"gossip","action":"x"}"#]),
        &[],
        &["line 2", "unknown category `gossip`"],
    );
}

#[test]
fn unknown_field() {
    rejects(
        &lines(&[
            GOOD.as_bytes(),
            br#"{"category":"admin","action":"x","colour":"red"}"#,
        ]),
        &[],
        &["line 2", "unknown field `colour`"],
    );
}

#[test]
fn index_chosen_by_the_client() {
    rejects(
        &lines(&[
            GOOD.as_bytes(),
            br#"{"category":"admin","action":"x","index":7}"#,
        ]),
        &[],
        &["line 2", "`index`"],
    );
}

#[test]
fn empty_stdin() {
    rejects(b"", &[], &["no events"]);
}

#[test]
fn only_blank_lines() {
    rejects(b"\n  \r\n\n", &[], &["no events"]);
}

/// All or nothing: one bad line among good ones stores none of them. Blank lines count
/// in the line numbers.
#[test]
fn one_bad_line_among_good_ones() {
    let good = ndjson(&events(3, 20, 0));
    let mut input = Vec::new();
    let good_lines: Vec<&[u8]> = good
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for l in &good_lines[..10] {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    input.extend_from_slice(b"\n"); // line 11, blank
    input.extend_from_slice(b"{\"category\":\"admin\"}\n"); // line 12: no action
    for l in &good_lines[10..] {
        input.extend_from_slice(l);
        input.push(b'\n');
    }
    rejects(&input, &[], &["line 12", "missing required field `action`"]);
}

/// The same good lines, without the bad one, are accepted (CRLF line ends included), from
/// a pipe and from a file.
#[test]
fn good_lines_are_accepted() {
    let mut log = Log::small(5);
    for (batch, how, expect) in [
        (
            3,
            Stdin::Pipe,
            "appended 20 events, indexes 5..24, tree size 25",
        ),
        (
            4,
            Stdin::File,
            "appended 20 events, indexes 25..44, tree size 45",
        ),
    ] {
        let evs = events(batch, 20, 0);
        let input: Vec<u8> = evs
            .iter()
            .flat_map(|e| format!("{}\r\n", e.json()).into_bytes())
            .collect();
        let run = log.run_stdin_from(&["append"], &input, how);
        run.ok();
        assert!(run.stdout.contains(expect), "{how:?}: {}", run.stdout);
        log.events.extend(evs);
        log.verify().ok();
    }
}

#[test]
fn a_byte_order_mark_is_named() {
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(GOOD.as_bytes());
    rejects(&lines(&[&bom]), &[], &["line 1", "byte order mark"]);
}

#[test]
fn a_string_that_does_not_decode_is_not_called_the_wrong_type() {
    rejects(
        &lines(&[
            GOOD.as_bytes(),
            br#"{"category":"admin","action":"x\ud800y"}"#,
        ]),
        &[],
        &["line 2", "field `action` does not decode"],
    );
}

#[test]
fn the_two_shapes_mixed() {
    rejects(
        &lines(&[
            GOOD.as_bytes(),
            br#"{"timestamp":"2026-11-26T00:00:00Z","category":"admin","action":"x"}"#,
        ]),
        &[],
        &["line 2", "`timestamp` belongs to the chapter's shape"],
    );
}
