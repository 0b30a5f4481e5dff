//! `parse_batch`, the HTTP ingest body parsers: the first byte picks JSON (even) or NDJSON
//! (odd), the rest is the body.
//!
//! Checks: an NDJSON batch holds one event per non-blank line, and is accepted exactly when
//! every non-blank line is an event on its own (else the error names the first bad line, with
//! that line's own error); a JSON batch holds one event per array element, or one for a single
//! object; an empty batch is refused; every accepted event round-trips canonically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use vellum_event::{BatchError, BodyFormat, Event, Limits, parse_batch};
use vellum_fuzz::{check_event, is_blank_line, ndjson_lines};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    if selector & 1 == 1 {
        check_ndjson(body, &limits);
    } else {
        check_json(body, &limits);
    }
});

fn check_ndjson(body: &[u8], limits: &Limits) {
    let result = parse_batch(body, BodyFormat::Ndjson, limits);
    let non_blank: Vec<(usize, &[u8])> = ndjson_lines(body)
        .filter(|(_, line)| !is_blank_line(line))
        .collect();
    // The reference: every non-blank line parsed on its own.
    let first_bad = non_blank
        .iter()
        .find_map(|&(n, line)| Event::parse(line, limits).err().map(|e| (n, e)));
    match (&result, first_bad) {
        (Ok(events), None) => {
            assert_eq!(
                events.len(),
                non_blank.len(),
                "one event per non-blank line"
            );
            for (i, event) in events.iter().enumerate() {
                check_event(event, i as u64);
            }
        }
        (Err(BatchError::Empty), None) => assert!(non_blank.is_empty(), "Empty with events"),
        (Err(BatchError::Item { kind, item, error }), Some((n, e))) => {
            assert_eq!(*kind, "line");
            assert_eq!(*item, n, "error names the first bad line");
            assert_eq!(*error, e, "the line's own error");
        }
        (result, reference) => {
            panic!("NDJSON batch: {result:?}, but line by line: {reference:?}")
        }
    }
}

fn check_json(body: &[u8], limits: &Limits) {
    let result = parse_batch(body, BodyFormat::Json, limits);
    let Ok(events) = result else {
        return;
    };
    assert!(!events.is_empty(), "an accepted batch is never empty");
    let text = std::str::from_utf8(body).expect("an accepted JSON body is UTF-8");
    if text.trim_start().starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).expect("an accepted JSON array is JSON");
        assert_eq!(events.len(), items.len(), "one event per array element");
        for (item, event) in items.iter().zip(&events) {
            let alone = Event::parse(item.get().as_bytes(), limits)
                .expect("each element of an accepted array is an event on its own");
            assert_eq!(alone.category, event.category);
        }
    } else {
        assert_eq!(events.len(), 1, "a single object is one event");
        assert!(Event::parse(body, limits).is_ok());
    }
    for (i, event) in events.iter().enumerate() {
        check_event(event, i as u64);
    }
}
