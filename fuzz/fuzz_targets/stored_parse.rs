//! `StoredEvent::parse` on arbitrary bytes (what `vellum verify`, queries and sinks read back
//! from segment files, which an attacker with disk access may have edited).
//!
//! Checks: an accepted record written again with `write_stored` parses back to the same index,
//! received time and canonical body; `index_of` agrees with the parsed index whenever it reads
//! one from the prefix; the event's stored form round-trips (not its parse as a client's
//! event: the log may hold events under limits a client no longer has).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_event::StoredEvent;

fuzz_target!(|data: &[u8]| {
    let prefix_index = StoredEvent::index_of(data);
    let Ok(stored) = StoredEvent::parse(data) else {
        return;
    };
    if let Some(index) = prefix_index {
        assert_eq!(index, stored.index, "index_of disagrees with parse");
    }

    let received = stored.received.to_string();
    let mut again = Vec::new();
    stored
        .event
        .write_stored(&mut again, stored.index, &received);
    let back = match StoredEvent::parse(&again) {
        Ok(back) => back,
        Err(e) => panic!(
            "rewritten record does not parse: {e}\n{}",
            String::from_utf8_lossy(&again)
        ),
    };
    assert_eq!(back.index, stored.index);
    assert_eq!(back.received, stored.received);
    assert!(back.event.canonical_body() == stored.event.canonical_body());
    // What the log holds need not be what a client may send now (limits change): only
    // the stored form's round trip must hold.
    vellum_fuzz::check_stored_form(&stored.event, stored.index);
});
