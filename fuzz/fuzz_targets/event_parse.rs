//! `Event::parse` on arbitrary bytes: the native shape and the chapter's legacy shape
//! (`{timestamp,event_type,user,details,source_ip}`), as one event from outside.
//!
//! Checks, for every accepted event: the canonical body re-parses to the identical canonical
//! body, the stored form round-trips through `StoredEvent::parse` (see `vellum_fuzz::check_event`),
//! the size limit is enforced, and the category/action/id the input named are the ones kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vellum_event::{Event, EventError, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(event) = Event::parse(data, &Limits::default()) else {
        return;
    };
    vellum_fuzz::check_event(&event, data.len() as u64);

    // One byte over the limit is always refused, before anything else is looked at.
    if let Some(max) = data.len().checked_sub(1) {
        let tight = Limits {
            max_event_bytes: max,
        };
        assert!(matches!(
            Event::parse(data, &tight),
            Err(EventError::TooLarge { .. })
        ));
    }

    // What the input said is what was kept. serde_json's own reading of the input is the
    // reference; an input it cannot read into a Value (e.g. a number out of range inside
    // `details`) is skipped here.
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let string = |key: &str| input.get(key).and_then(Value::as_str);
    if let Some(category) = string("category").or(string("event_type")) {
        assert_eq!(event.category.as_str(), category, "category");
    }
    if string("category").is_some() {
        if let Some(action) = string("action") {
            assert_eq!(event.action, action, "action");
        }
        if let Some(id) = string("id") {
            assert_eq!(event.id.as_str(), id, "id");
        }
    }
});
