//! `same_event` on arbitrary bytes: how the store tells a re-sent event (one side from a
//! client, as parsed) from another event under the same id.
//!
//! Checks: no panic and no overflow however the input nests; the answer does not depend on
//! the order of the two sides; when both halves are events and the answer is "the same",
//! their `details` are one value to a JSON reader (the answer never hides a change); a JSON
//! object written once with its members in byte order and once in reverse byte order, at
//! every depth, is the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vellum_event::{Event, Limits, MAX_NESTING, same_event};

/// `value` as compact JSON, object members in byte order or in reverse.
fn write(value: &Value, reverse: bool, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            if reverse {
                members.reverse();
            }
            out.push('{');
            for (i, (key, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write(v, reverse, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(v, reverse, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let (a, b) = data.split_at(data.len() / 2);
    assert_eq!(same_event(a, b), same_event(b, a), "not symmetric");

    let limits = Limits::default();
    if let (Ok(one), Ok(other)) = (Event::parse(a, &limits), Event::parse(b, &limits)) {
        let (x, y) = (one.canonical_body(), other.canonical_body());
        if same_event(&x[1..], &y[1..]) {
            let details = |e: &Event| {
                e.details
                    .as_ref()
                    .map(|d| serde_json::from_str::<Value>(d.get()).ok())
            };
            assert_eq!(
                details(&one),
                details(&other),
                "the same event with other details"
            );
        }
    }

    let Ok(value @ Value::Object(_)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    // The comparison follows what a client's event may hold: its members, and `details`
    // at most `MAX_NESTING` levels below them.
    if depth(&value) > MAX_NESTING + 1 {
        return;
    }
    let (mut forward, mut backward) = (String::new(), String::new());
    write(&value, false, &mut forward);
    write(&value, true, &mut backward);
    // Members: the text after the opening brace, as the store compares them.
    assert!(
        same_event(&forward.as_bytes()[1..], &backward.as_bytes()[1..]),
        "a reordering is not the same:\n{forward}\n{backward}"
    );
});
