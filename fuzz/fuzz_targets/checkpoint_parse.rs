//! `Checkpoint::parse_text` and `Checkpoint::open` on arbitrary text (C2SP tlog-checkpoint, as
//! `vellum verify --trusted` and `verify-receipt` read them).
//!
//! The first byte picks what the rest is: odd, a checkpoint's text for `parse_text`; even, a
//! whole signed note for `open`. Checks: parsed text prints back (`to_text`) to the identical
//! text with a canonical size and a 32-byte root; `open` returns only what the note's text
//! parses to, and only for a key whose name is the origin.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vellum_note::{Checkpoint, Note, VerifierKey};

static KEYS: LazyLock<Vec<VerifierKey>> = LazyLock::new(vellum_fuzz::trusted_keys);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if selector & 1 == 1 {
        let Ok(checkpoint) = Checkpoint::parse_text(text) else {
            return;
        };
        assert_eq!(checkpoint.to_text(), text, "checkpoint does not print back");
        assert_eq!(
            checkpoint.size.0.to_string(),
            text.split('\n').nth(1).unwrap_or("")
        );
        return;
    }
    for key in KEYS.iter() {
        let Ok(checkpoint) = Checkpoint::open(text, key) else {
            continue;
        };
        let note = Note::parse(text).expect("an opened checkpoint is a note");
        assert_eq!(Checkpoint::parse_text(&note.text).as_ref(), Ok(&checkpoint));
        assert_eq!(key.name(), checkpoint.origin.as_str());
    }
});
