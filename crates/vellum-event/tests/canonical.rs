#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The quick path to a canonical body against the full parse: whenever the quick path
//! accepts an input, the full parse accepts it and makes the same bytes. Inputs are
//! generated from the pieces events are made of, with the variations that change the
//! canonical form (escapes, key order, whitespace, numbers, nulls, duplicates, bad values).

use proptest::prelude::*;
use vellum_event::canonical::differential::{disagreement, full, quick};
use vellum_event::{BodyFormat, Canonical, Limits, parse_batch_canonical, parse_batch_map};

fn limits() -> Limits {
    Limits::default()
}

/// A JSON string literal, as written on the wire (escapes included).
fn string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9._/-]{1,12}".prop_map(|s| format!("\"{s}\"")),
        1 => Just("\"\"".to_string()),
        1 => Just("\"caf\u{e9} \u{1f600}\"".to_string()),
        1 => Just("\"a\\\"b\"".to_string()),
        1 => Just("\"\\u0041\"".to_string()),
        1 => Just("\"\\/x\"".to_string()),
        1 => Just("\"tab\\there\"".to_string()),
        1 => Just("\"del\u{7f}\"".to_string()),
        1 => Just("\"c1\u{85}\"".to_string()),
        1 => Just("\"raw\ttab\"".to_string()),
        1 => Just(format!("\"{}\"", "a".repeat(129))),
    ]
}

fn number_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-0".to_string()),
        Just("007".to_string()),
        Just("1.50".to_string()),
        Just("1e3".to_string()),
        Just("-2E-2".to_string()),
        Just("123456789012345678".to_string()),
        Just("1234567890123456789012".to_string()),
        Just("-9223372036854775808".to_string()),
        Just("1.".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// Whitespace between tokens.
fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![6 => Just(""), 1 => Just(" "), 1 => Just("\n"), 1 => Just("\t "), 1 => Just("\r\n ")]
}

/// Any JSON value (and a few things that are not quite JSON).
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => string_literal(),
        2 => number_literal(),
        1 => Just("true".to_string()),
        1 => Just("false".to_string()),
        1 => Just("null".to_string()),
        1 => Just("nul".to_string()),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec((inner.clone(), ws()), 0..4).prop_map(|items| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(v, w)| format!("{w}{v}{w}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec(("[a-z]{1,3}", inner, ws()), 0..4).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// An object like `actor` or `source`: a few members, keys in any order, maybe repeated.
fn small_object() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("user"),
        Just("key_id"),
        Just("ip"),
        Just("user_agent"),
        Just("via"),
        Just("Z"),
        Just("a"),
    ];
    let member_value = prop_oneof![
        12 => "[a-zA-Z0-9 ./]{0,12}".prop_map(|s| format!("\"{s}\"")),
        4 => string_literal(),
        2 => prop_oneof![
            Just("\"10.1.2.3\"".to_string()),
            Just("\"2001:db8::1\"".to_string()),
            Just("\"999.1.1.1\"".to_string()),
        ],
        1 => number_literal(),
        1 => Just("true".to_string()),
        1 => Just("null".to_string()),
        1 => Just("{}".to_string()),
        1 => Just("[1]".to_string()),
    ];
    (
        prop::collection::vec((key, member_value, ws()), 0..4),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(mut members, sort)| {
            if sort {
                members.sort_by(|a, b| a.0.cmp(b.0));
            }
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, v, w)| format!("{w}\"{k}\"{w}:{w}{v}{w}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
}

/// One top-level member: `"key": value`.
fn member() -> impl Strategy<Value = (String, String)> {
    let times = prop_oneof![
        Just("\"2026-11-26T16:55:08.976526Z\""),
        Just("\"2026-11-26T16:55:08Z\""),
        Just("\"2026-11-26T17:55:08.1+01:00\""),
        Just("\"2026-11-26T16:55:08\""),
        Just("\"0000-01-01T00:00:00Z\""),
        Just("\"2026-02-30T00:00:00Z\""),
        Just("\"yesterday\""),
    ];
    let categories = prop_oneof![
        3 => Just("\"api_request\""),
        1 => Just("\"authentication\""),
        1 => Just("\"admin\""),
        1 => Just("\"data_access\""),
        1 => Just("\"security\""),
        1 => Just("\"malfunction\""),
        1 => Just("\"Admin\""),
        1 => Just("\"adm\\u0069n\""),
    ];
    let outcomes = prop_oneof![
        Just("\"success\""),
        Just("\"failure\""),
        Just("\"unknown\""),
        Just("\"maybe\""),
    ];
    prop_oneof![
        3 => string_literal().prop_map(|v| ("id".to_string(), v)),
        3 => times.prop_map(|v| ("time".to_string(), v.to_string())),
        4 => categories.prop_map(|v| ("category".to_string(), v.to_string())),
        4 => string_literal().prop_map(|v| ("action".to_string(), v)),
        2 => outcomes.prop_map(|v| ("outcome".to_string(), v.to_string())),
        2 => string_literal().prop_map(|v| ("reason".to_string(), v)),
        3 => small_object().prop_map(|v| ("actor".to_string(), v)),
        3 => small_object().prop_map(|v| ("source".to_string(), v)),
        1 => small_object().prop_map(|v| ("target".to_string(), v)),
        1 => small_object().prop_map(|v| ("request".to_string(), v)),
        3 => value().prop_map(|v| ("details".to_string(), v)),
        1 => value().prop_map(|v| (
            ["id", "action", "actor", "timestamp", "index", "colour", "user"][v.len() % 7]
                .to_string(),
            v
        )),
        1 => Just(("category".to_string(), "null".to_string())),
    ]
}

/// A member's value, plain most of the time and anything from `other` otherwise.
fn mostly<S: Strategy<Value = String> + 'static>(
    plain: &'static [&'static str],
    other: S,
) -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop::sample::select(plain).prop_map(|v| format!("\"{v}\"")),
        1 => other,
    ]
    .boxed()
}

/// A whole event: usually valid, in any member order, with now and then a bad value, a
/// duplicate or an unknown member.
fn event_text() -> impl Strategy<Value = String> {
    let category = mostly(
        &["api_request", "authentication", "admin", "security"],
        member().prop_map(|(_, v)| v),
    );
    let action = mostly(
        &["chat.completions", "login", "key.created"],
        string_literal(),
    );
    let id = mostly(
        &["e1", "099950d8-36f6-45cc-81e7-4ef5e8e25d94"],
        string_literal(),
    );
    let time = mostly(
        &["2026-11-18T11:06:40.000000Z", "2026-11-26T17:55:08.1+01:00"],
        member().prop_map(|(_, v)| v),
    );
    let outcome = mostly(&["success", "failure"], string_literal());
    let reason = string_literal();
    let optional = |s: BoxedStrategy<String>, p: f64| prop::option::weighted(p, s);
    let members = (
        (category, action),
        (
            optional(id, 0.7),
            optional(time, 0.7),
            optional(outcome, 0.6),
            optional(reason.boxed(), 0.2),
        ),
        (
            optional(small_object().boxed(), 0.6),
            optional(small_object().boxed(), 0.6),
            optional(small_object().boxed(), 0.2),
            optional(small_object().boxed(), 0.2),
            optional(value().boxed(), 0.6),
        ),
        prop::option::weighted(0.1, member()),
    );
    (members, any::<u64>(), prop::collection::vec(ws(), 16), ws()).prop_map(
        |(members, seed, spaces, outer)| {
            let ((category, action), (id, time, outcome, reason), objects, extra) = members;
            let (actor, source, target, request, details) = objects;
            let mut all: Vec<(String, String)> = [
                ("category", Some(category)),
                ("action", Some(action)),
                ("id", id),
                ("time", time),
                ("outcome", outcome),
                ("reason", reason),
                ("actor", actor),
                ("source", source),
                ("target", target),
                ("request", request),
                ("details", details),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?)))
            .collect();
            all.extend(extra);
            // A fixed shuffle from the seed: any member order.
            let mut state = seed | 1;
            for i in (1..all.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                all.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let members: Vec<String> = all
                .into_iter()
                .enumerate()
                .map(|(n, (k, v))| {
                    let w = spaces[n % spaces.len()];
                    format!("{w}\"{k}\"{w}:{w}{v}{w}")
                })
                .collect();
            format!("{outer}{{{}}}{outer}", members.join(","))
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn quick_path_agrees_with_the_full_parse(text in event_text()) {
        prop_assert_eq!(disagreement(text.as_bytes(), &limits()), None);
    }

    #[test]
    fn quick_path_agrees_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert_eq!(disagreement(&bytes, &limits()), None);
    }
}

/// The generated inputs exercise both paths: a good share is taken by the quick path (so the
/// property above compares two different parsers), and many are rejected.
#[test]
fn generated_inputs_reach_both_paths() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = event_text();
    let (mut quick_taken, mut rejected) = (0, 0);
    for _ in 0..2000 {
        let text = strategy.new_tree(&mut runner).unwrap().current();
        if quick(text.as_bytes(), &limits()).is_some() {
            quick_taken += 1;
        }
        if full(text.as_bytes(), &limits()).is_err() {
            rejected += 1;
        }
    }
    assert!(
        quick_taken >= 150,
        "only {quick_taken} of 2000 took the quick path"
    );
    assert!(rejected >= 200, "only {rejected} of 2000 were rejected");
}

/// Inputs the quick path must take on itself (else it would be a test that cannot fail: the
/// full parse agrees with itself), each with the body both paths make.
#[test]
fn common_events_take_the_quick_path() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"id":"e1","time":"2026-11-18T11:06:40.000000Z","category":"api_request","action":"chat.completions","outcome":"success","actor":{"user":"user2652"},"source":{"ip":"10.1.202.167","user_agent":"OpenAI/Python 1.82.0"},"details":{"endpoint":"/v1/chat/completions","model":"llama-3.1-70b","prompt_length":4794,"status":200}}"#,
            r#"{"id":"e1","time":"2026-11-18T11:06:40.000000Z","category":"api_request","action":"chat.completions","outcome":"success","actor":{"user":"user2652"},"source":{"ip":"10.1.202.167","user_agent":"OpenAI/Python 1.82.0"},"details":{"endpoint":"/v1/chat/completions","model":"llama-3.1-70b","prompt_length":4794,"status":200}}"#,
        ),
        (
            // Members in another order, whitespace, an offset time, nested details.
            " { \"details\" : { \"a\" : [ 1 , 2.5e3 , { } ] , \"b\" : null } ,\n\"reason\":\"r\", \"outcome\" : \"failure\",\"action\":\"login\",\"category\":\"authentication\",\"time\":\"2026-11-26T17:55:08.5+01:00\",\"id\":\"x\",\"request\":{\"n\":-12,\"ok\":true} }\n",
            r#"{"id":"x","time":"2026-11-26T16:55:08.500000Z","category":"authentication","action":"login","outcome":"failure","request":{"n":-12,"ok":true},"reason":"r","details":{"a":[1,2.5e3,{}],"b":null}}"#,
        ),
        (
            r#"{"category":"admin","action":"key.created","id":"k","time":"2026-11-26T16:55:08Z","actor":{"key_id":"k1","user":"root"},"target":{}}"#,
            r#"{"id":"k","time":"2026-11-26T16:55:08.000000Z","category":"admin","action":"key.created","outcome":"unknown","actor":{"key_id":"k1","user":"root"},"target":{}}"#,
        ),
    ];
    for (input, want) in cases {
        let quick = quick(input.as_bytes(), &limits()).expect(input);
        assert_eq!(String::from_utf8_lossy(quick.body()), *want, "{input}");
        assert_eq!(full(input.as_bytes(), &limits()).unwrap(), quick);
    }
}

/// Inputs the quick path leaves to the full parse, which still accepts them: their
/// canonical form is not a copy of the input.
#[test]
fn unusual_events_take_the_full_parse() {
    for input in [
        // Keys out of order inside an object are sorted.
        r#"{"category":"admin","action":"a","actor":{"user":"u","key_id":"k"}}"#,
        // Escapes are rewritten.
        r#"{"category":"admin","action":"\u0061"}"#,
        r#"{"category":"admin","action":"a","details":{"s":"\/"}}"#,
        // Numbers other than small integers inside an object are normalised.
        r#"{"category":"admin","action":"a","request":{"n":1.50}}"#,
        r#"{"category":"admin","action":"a","request":{"n":-0}}"#,
        // A null member is absent.
        r#"{"category":"admin","action":"a","reason":null}"#,
        // Nested objects inside `request`.
        r#"{"category":"admin","action":"a","request":{"h":{"b":1,"a":2}}}"#,
        // The chapter's shape.
        r#"{"timestamp":"2026-11-18T01:02:03","event_type":"admin","user":"bob","details":{}}"#,
    ] {
        assert!(quick(input.as_bytes(), &limits()).is_none(), "{input}");
        let canonical = Canonical::parse(input.as_bytes(), &limits()).expect(input);
        assert_eq!(disagreement(input.as_bytes(), &limits()), None);
        assert!(!canonical.body().is_empty());
    }
}

/// A batch parsed straight to canonical bodies holds the same bodies, in order, and the
/// same first error, as one parsed into events.
#[test]
fn canonical_batches_match_event_batches() {
    let good = r#"{"id":"a","time":"2026-11-26T16:55:08Z","category":"admin","action":"a","actor":{"user":"u"}}"#;
    let odd = r#"{"id":"b","time":"2026-11-26T16:55:08Z","category":"admin","action":"b","actor":{"user":"u","key_id":"k"}}"#;
    let bad = r#"{"id":"c","time":"2026-11-26T16:55:08Z","category":"nope","action":"c"}"#;
    for n in [1usize, 10, 600] {
        let lines: Vec<&str> = (0..n)
            .map(|i| if i % 3 == 1 { odd } else { good })
            .collect();
        let body = lines.join("\n");
        let events = parse_batch_map(body.as_bytes(), BodyFormat::Ndjson, &limits(), |e| {
            e.canonical_body()
        })
        .unwrap();
        let canonical =
            parse_batch_canonical(body.as_bytes(), BodyFormat::Ndjson, &limits(), |c| {
                c.into_body()
            })
            .unwrap();
        assert_eq!(events, canonical);
        let array = format!("[{}]", lines.join(","));
        let from_array =
            parse_batch_canonical(array.as_bytes(), BodyFormat::Json, &limits(), |c| {
                c.into_body()
            })
            .unwrap();
        assert_eq!(from_array, canonical);

        let mut with_bad = lines.clone();
        with_bad.insert(n / 2, bad);
        let body = with_bad.join("\n");
        let want = parse_batch_map(body.as_bytes(), BodyFormat::Ndjson, &limits(), |e| e)
            .map(|_| ())
            .unwrap_err();
        let got = parse_batch_canonical(body.as_bytes(), BodyFormat::Ndjson, &limits(), |c| c)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(got, want);
    }
}
