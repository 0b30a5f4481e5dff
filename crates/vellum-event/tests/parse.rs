#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Parsing and validation, driven by tables of inputs and the error each must produce.

use vellum_event::{
    BatchError, BodyFormat, Canonical, Category, Event, EventError, Limits, MAX_NESTING, Outcome,
    parse_batch,
};

fn parse(s: &str) -> Result<Event, EventError> {
    Event::parse(s.as_bytes(), &Limits::default())
}

#[test]
fn native_event_round_trips_canonically() {
    let input = r#"{"id":"e1","time":"2026-11-26T16:55:08.976526Z","category":"authentication","action":"api_key.used","outcome":"failure","actor":{"user":"alice","key_id":"k_3f9a2c"},"source":{"ip":"203.0.113.7","user_agent":"OpenAI/Python 1.82.0"},"target":{"type":"model","name":"gpt-4o"},"request":{"status":200,"stream":true},"reason":"invalid api key","details":{ "a" : [1, 2] }}"#;
    let ev = parse(input).unwrap();
    assert_eq!(ev.category, Category::Authentication);
    assert_eq!(ev.outcome, Outcome::Failure);
    assert_eq!(ev.user().as_deref(), Some("alice"));
    assert_eq!(ev.ip().as_deref(), Some("203.0.113.7"));
    let body = String::from_utf8(ev.canonical_body()).unwrap();
    assert_eq!(
        body,
        r#"{"id":"e1","time":"2026-11-26T16:55:08.976526Z","category":"authentication","action":"api_key.used","outcome":"failure","actor":{"key_id":"k_3f9a2c","user":"alice"},"source":{"ip":"203.0.113.7","user_agent":"OpenAI/Python 1.82.0"},"target":{"name":"gpt-4o","type":"model"},"request":{"status":200,"stream":true},"reason":"invalid api key","details":{"a":[1,2]}}"#
    );
    // The canonical body parses back to itself.
    assert_eq!(parse(&body).unwrap().canonical_body(), body.as_bytes());
}

/// `source.ip` is stored in its one canonical text, whichever way it was written, by the
/// quick path and the full parse alike (the chapter's `source_ip` too).
#[test]
fn addresses_are_stored_in_canonical_form() {
    let cases = [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        // IPv4-mapped (a dual-stack socket's view of an IPv4 client) is the IPv4 address.
        ("::FFFF:192.0.2.1", "192.0.2.1"),
        ("::ffff:c000:201", "192.0.2.1"),
        // Not mapped: the deprecated IPv4-compatible form stays IPv6.
        ("::192.0.2.1", "::c000:201"),
    ];
    for (given, stored) in cases {
        let native = format!(
            r#"{{"id":"a","time":"2026-11-26T00:00:00Z","category":"security","action":"x","source":{{"ip":"{given}"}}}}"#
        );
        let ev = parse(&native).unwrap();
        assert_eq!(ev.ip().as_deref(), Some(stored), "{given}");
        let body = ev.canonical_body();
        assert_eq!(
            Canonical::parse(native.as_bytes(), &Limits::default()).map(|c| c.body().to_vec()),
            Ok(body.clone()),
            "{given}"
        );
        assert!(
            String::from_utf8(body)
                .unwrap()
                .contains(&format!(r#""ip":"{stored}""#))
        );
        let chapter = format!(
            r#"{{"timestamp":"2026-11-26T00:00:00Z","event_type":"security","user":"u","source_ip":"{given}"}}"#
        );
        assert_eq!(
            parse(&chapter).unwrap().ip().as_deref(),
            Some(stored),
            "{given}"
        );
    }
}

#[test]
fn chapter_shape_is_accepted() {
    let input = r#"{"timestamp":"2026-11-18T01:02:03.123456","event_type":"authentication","user":"bob","details":{"success":false,"ip":"10.0.0.1","reason":"bad password"},"source_ip":"10.0.0.1"}"#;
    let ev = parse(input).unwrap();
    assert_eq!(ev.category, Category::Authentication);
    assert_eq!(ev.outcome, Outcome::Failure);
    assert_eq!(ev.user().as_deref(), Some("bob"));
    assert_eq!(ev.ip().as_deref(), Some("10.0.0.1"));
    assert_eq!(ev.reason.as_deref(), Some("bad password"));
    assert_eq!(ev.time.to_string(), "2026-11-18T01:02:03.123456Z");
    let unknown_ip = r#"{"timestamp":"2026-11-18T01:02:03","event_type":"api_request","user":"bob","details":{},"source_ip":"unknown"}"#;
    assert_eq!(parse(unknown_ip).unwrap().ip(), None);
}

#[test]
fn long_numbers_keep_a_stable_canonical_form() {
    let input = format!(
        r#"{{"id":"a","category":"admin","action":"x","actor":{{"n":{}00}}}}"#,
        "2".repeat(121)
    );
    let body = parse(&input).unwrap().canonical_body();
    assert_eq!(
        Event::parse(&body, &Limits::default())
            .unwrap()
            .canonical_body(),
        body
    );
}

#[test]
fn defaults_fill_optional_members() {
    let ev = parse(r#"{"category":"admin","action":"config.changed"}"#).unwrap();
    assert_eq!(ev.outcome, Outcome::Unknown);
    assert_eq!(ev.id.as_str().len(), 36);
}

/// Surrogate escapes that are text: a pair, and an escaped backslash before `ud800`.
#[test]
fn surrogate_pairs_and_escaped_backslashes_are_text() {
    for details in [r#"{"k":"\ud83d\ude00"}"#, r#"{"k":"a\\ud800"}"#] {
        let e = format!(r#"{{"category":"admin","action":"x","details":{details}}}"#);
        assert!(parse(&e).is_ok(), "{e}");
    }
}

#[test]
fn bad_events_get_the_right_error() {
    use EventError as E;
    type Case = (&'static str, fn(&EventError) -> bool);
    let cases: &[Case] = &[
        ("", |e| matches!(e, E::Json(_))),
        ("{", |e| matches!(e, E::Json(_))),
        // One line is placed by its column (the caller names the line); more by both.
        (
            r#"{"category":"admin""#,
            |e| matches!(e, E::Json(m) if m == "EOF while parsing an object at column 19"),
        ),
        (
            "{\n\"category\":\"admin\",",
            |e| matches!(e, E::Json(m) if m.ends_with("at line 2 column 19")),
        ),
        ("[1]", |e| matches!(e, E::NotAnObject)),
        ("42", |e| matches!(e, E::NotAnObject)),
        ("\u{feff}{\"category\":\"admin\",\"action\":\"x\"}", |e| {
            matches!(e, E::ByteOrderMark)
        }),
        // A string of the right type that does not decode is not "of the wrong type".
        (
            r#"{"category":"admin","action":"x\ud800y"}"#,
            |e| matches!(e, E::Undecodable { field, reason } if field == "action" && reason.contains("escape")),
        ),
        (
            r#"{"category":"admin","action":"x","actor":{"user":"\udc00"}}"#,
            |e| matches!(e, E::Undecodable { field, .. } if field == "actor"),
        ),
        // Anywhere in `details`, keys too (I-JSON); a proper pair is text.
        (
            r#"{"category":"admin","action":"x","details":{"k":"\ud800"}}"#,
            |e| matches!(e, E::Undecodable { field, .. } if field == "details"),
        ),
        (
            r#"{"category":"admin","action":"x","details":{"\udfff":1}}"#,
            |e| matches!(e, E::Undecodable { field, .. } if field == "details"),
        ),
        // One shape or the other, not both.
        (
            r#"{"timestamp":"2026-11-26T00:00:00Z","category":"admin","action":"x"}"#,
            |e| matches!(e, E::MixedShapes("timestamp")),
        ),
        (r#"{"action":"x"}"#, |e| {
            matches!(e, E::MissingField("category"))
        }),
        (r#"{"category":"admin"}"#, |e| {
            matches!(e, E::MissingField("action"))
        }),
        (r#"{"category":"hacking","action":"x"}"#, |e| {
            matches!(e, E::UnknownCategory(_))
        }),
        (
            r#"{"category":5,"action":"x"}"#,
            |e| matches!(e, E::WrongType { field, .. } if field == "category"),
        ),
        (
            r#"{"category":"admin","action":"x","outcome":"meh"}"#,
            |e| matches!(e, E::UnknownOutcome(_)),
        ),
        (
            r#"{"category":"admin","action":"x","actor":"alice"}"#,
            |e| matches!(e, E::WrongType { field, .. } if field == "actor"),
        ),
        (
            r#"{"category":"admin","action":"x","actor":{"user":7}}"#,
            |e| matches!(e, E::WrongType { field, .. } if field == "actor.user"),
        ),
        (
            r#"{"category":"admin","action":"x","source":{"ip":"999.1.1.1"}}"#,
            |e| matches!(e, E::InvalidIp(_)),
        ),
        (
            r#"{"category":"admin","action":"x","details":[1]}"#,
            |e| matches!(e, E::WrongType { field, .. } if field == "details"),
        ),
        (
            r#"{"category":"admin","action":"x","time":"yesterday"}"#,
            |e| matches!(e, E::InvalidTime { .. }),
        ),
        (
            r#"{"category":"admin","action":"x","colour":"red"}"#,
            |e| matches!(e, E::UnknownField(f) if f == "colour"),
        ),
        (r#"{"category":"admin","action":"x","index":3}"#, |e| {
            matches!(e, E::Invalid { field: "index", .. })
        }),
        (r#"{"category":"admin","action":""}"#, |e| {
            matches!(
                e,
                E::Invalid {
                    field: "action",
                    ..
                }
            )
        }),
        (r#"{"category":"admin","action":"x","id":""}"#, |e| {
            matches!(e, E::Invalid { field: "id", .. })
        }),
        (
            r#"{"category":"admin","action":"x","category":"admin"}"#,
            |e| matches!(e, E::Json(m) if m.contains("duplicate")),
        ),
        (r#"{"event_type":"nope","user":"u"}"#, |e| {
            matches!(e, E::UnknownCategory(_))
        }),
        (
            r#"{"event_type":"admin","user":"u","source_ip":"nope"}"#,
            |e| matches!(e, E::InvalidIp(_)),
        ),
        (r#"{"event_type":"admin","action":"x"}"#, |e| {
            matches!(e, E::UnknownField(_))
        }),
    ];
    for (input, want) in cases {
        let err = parse(input).expect_err(input);
        assert!(want(&err), "{input}: got {err:?}");
        assert!(!err.to_string().is_empty());
        // Parsing straight to the canonical body reports the same error.
        let canonical = Canonical::parse(input.as_bytes(), &Limits::default());
        assert_eq!(canonical, Err(err), "{input}");
    }
}

/// Each object member of a client's event (`details`, `target`, `request`, `actor`,
/// `source`) nests at most `MAX_NESTING` (64) levels, itself the first, in either shape
/// and through either parser (the quick one hands deep input to the full one); one level
/// more is a clear error that names the member.
#[test]
fn object_members_nest_at_most_64_levels() {
    let nested = |depth: usize| {
        format!(
            "{{\"a\":{}1{}}}",
            "[ ".repeat(depth - 1),
            " ]".repeat(depth - 1)
        )
    };
    let native = |member: &str, value: &str| {
        format!(
            r#"{{"id":"d-1","time":"2026-11-27T10:00:00Z","category":"admin","action":"x","{member}":{value}}}"#
        )
    };
    for (depth, ok) in [(1, true), (MAX_NESTING, true), (MAX_NESTING + 1, false)] {
        let value = nested(depth);
        let inputs = [
            ("details", native("details", &value)),
            ("target", native("target", &value)),
            ("request", native("request", &value)),
            ("actor", native("actor", &value)),
            ("source", native("source", &value)),
            (
                "details",
                format!(
                    r#"{{"timestamp":"2026-11-27T10:00:00","event_type":"admin","user":"u","details":{value}}}"#
                ),
            ),
        ];
        for (member, input) in inputs {
            let parsed = parse(&input);
            let canonical = Canonical::parse(input.as_bytes(), &Limits::default());
            match (ok, parsed) {
                (true, Ok(ev)) => {
                    let body = canonical.unwrap().body().to_vec();
                    // The chapter's shape has no id: each parse makes one of its own.
                    if input.contains(r#""id""#) {
                        assert_eq!(body, ev.canonical_body());
                    }
                }
                (false, Err(e)) => {
                    assert!(
                        matches!(&e, EventError::Invalid { field, reason } if *field == member && reason.contains("64 levels")),
                        "{member}: {e:?}"
                    );
                    assert_eq!(canonical, Err(e));
                }
                (ok, got) => panic!("{member}, depth {depth}: expected ok={ok}, got {got:?}"),
            }
        }
    }
}

#[test]
fn invalid_utf8_and_oversize_are_rejected() {
    let bad = b"{\"category\":\"admin\",\"action\":\"\xff\"}";
    assert!(matches!(
        Event::parse(bad, &Limits::default()),
        Err(EventError::InvalidUtf8 { offset: 30 })
    ));
    let limits = Limits {
        max_event_bytes: 64,
    };
    let big = format!(
        r#"{{"category":"admin","action":"x","reason":"{}"}}"#,
        "a".repeat(100)
    );
    assert!(matches!(
        Event::parse(big.as_bytes(), &limits),
        Err(EventError::TooLarge { max: 64, .. })
    ));
}

#[test]
fn batches_are_all_or_nothing_and_name_the_bad_item() {
    let limits = Limits::default();
    let ok = b"{\"category\":\"admin\",\"action\":\"a\"}\n\n{\"category\":\"security\",\"action\":\"b\"}\r\n";
    assert_eq!(
        parse_batch(ok, BodyFormat::Ndjson, &limits).unwrap().len(),
        2
    );
    let bad =
        b"{\"category\":\"admin\",\"action\":\"a\"}\n{\"category\":\"nope\",\"action\":\"b\"}\n";
    let err = parse_batch(bad, BodyFormat::Ndjson, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            BatchError::Item {
                kind: "line",
                item: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("line 2: unknown category"),
        "{err}"
    );
    let arr = br#"[{"category":"admin","action":"a"},{"category":"admin"}]"#;
    let err = parse_batch(arr, BodyFormat::Json, &limits).unwrap_err();
    assert!(
        matches!(
            err,
            BatchError::Item {
                kind: "element",
                item: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        parse_batch(b"  \n", BodyFormat::Ndjson, &limits),
        Err(BatchError::Empty)
    ));
    assert!(matches!(
        parse_batch(b"[]", BodyFormat::Json, &limits),
        Err(BatchError::Empty)
    ));
    let one = br#"{"category":"admin","action":"a"}"#;
    assert_eq!(
        parse_batch(one, BodyFormat::Json, &limits).unwrap().len(),
        1
    );
}

proptest::proptest! {
    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = Event::parse(&bytes, &Limits::default());
        let _ = parse_batch(&bytes, BodyFormat::Ndjson, &Limits::default());
        let _ = parse_batch(&bytes, BodyFormat::Json, &Limits::default());
        let _ = vellum_event::StoredEvent::parse(&bytes);
    }

    #[test]
    fn canonical_body_is_a_fixed_point(user in "[a-z\\u{e9}\"\\\\ ]{0,12}", reason in "\\PC{0,20}", n in 0u64..1_000_000) {
        let ev = Event::new(Category::DataAccess, "query", Outcome::Success)
            .with_details(serde_json::json!({"n": n, "note": reason}));
        let mut ev = ev;
        ev.actor = Some(serde_json::from_value(serde_json::json!({"user": user})).unwrap());
        let body = ev.canonical_body();
        let again = Event::parse(&body, &Limits::default()).unwrap();
        proptest::prop_assert_eq!(again.canonical_body(), body);
    }
}

/// Large bodies are parsed on every core, yet the error is always the first bad item's,
/// whichever item the workers happen to reach first.
#[test]
fn large_batches_report_their_first_bad_item() {
    let limits = Limits::default();
    let good = r#"{"category":"admin","action":"a"}"#;
    let bad = r#"{"category":"nope","action":"b"}"#;
    for first_bad in [1usize, 300, 2999] {
        let lines: Vec<&str> = (1..=3000)
            .map(|n| {
                if n >= first_bad && n % 7 == first_bad % 7 {
                    bad
                } else {
                    good
                }
            })
            .collect();
        let ndjson = lines.join("\n");
        let err = parse_batch(ndjson.as_bytes(), BodyFormat::Ndjson, &limits).unwrap_err();
        assert!(
            matches!(err, BatchError::Item { kind: "line", item, .. } if item == first_bad),
            "want line {first_bad}: {err:?}"
        );
        let array = format!("[{}]", lines.join(","));
        let err = parse_batch(array.as_bytes(), BodyFormat::Json, &limits).unwrap_err();
        assert!(
            matches!(err, BatchError::Item { kind: "element", item, .. } if item == first_bad),
            "want element {first_bad}: {err:?}"
        );
    }
    let all_good = vec![good; 3000].join("\n");
    let parsed = parse_batch(all_good.as_bytes(), BodyFormat::Ndjson, &limits).unwrap();
    assert_eq!(parsed.len(), 3000);
}
