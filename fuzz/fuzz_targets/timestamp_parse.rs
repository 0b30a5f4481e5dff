//! `Timestamp::parse` on arbitrary text (RFC 3339 and the chapter's offset-less ISO 8601).
//!
//! Checks: an accepted time prints in the one stored form (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, 27
//! bytes), that form parses back to the same instant, and the microsecond conversions
//! round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_event::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Timestamp::parse(text) else {
        return;
    };
    let printed = t.to_string();
    let b = printed.as_bytes();
    let shape_ok = b.len() == 27
        && b[26] == b'Z'
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 26].contains(&i) || c.is_ascii_digit());
    assert!(shape_ok, "{text:?} prints as {printed:?}");
    match Timestamp::parse(&printed) {
        Ok(again) => assert_eq!(again, t, "{text:?} -> {printed:?}"),
        Err(e) => panic!("{text:?} prints as {printed:?}, which does not parse: {e}"),
    }
    assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
});
