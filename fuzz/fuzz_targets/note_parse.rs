//! `Note::from_bytes` / `Note::parse` and `verify_note` on arbitrary bytes (C2SP signed notes,
//! as an auditor or a witness receives them).
//!
//! Checks: a parsed note prints back (`Display`) to the identical text; bytes and text parsing
//! agree; `verify_note` accepts only parsed notes, returns their text and names only trusted
//! keys that have a signature line; a note whose text is a checkpoint prints back from
//! `Checkpoint::to_text`.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use vellum_note::{Checkpoint, Note, VerifierKey, verify_note};

static KEYS: LazyLock<Vec<VerifierKey>> = LazyLock::new(vellum_fuzz::trusted_keys);

fuzz_target!(|data: &[u8]| {
    let parsed = Note::from_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(parsed, Note::parse(text), "from_bytes and parse disagree");
        let verified = verify_note(text, &KEYS);
        if let Ok(v) = &verified {
            let note = parsed.as_ref().expect("a verified note parses");
            assert_eq!(v.text, note.text);
            assert!(!v.verified_by.is_empty());
            for name in &v.verified_by {
                assert!(KEYS.iter().any(|k| k.name() == name));
                assert!(note.signatures.iter().any(|s| &s.name == name));
            }
        }
    }
    let Ok(note) = parsed else {
        return;
    };
    let printed = note.to_string();
    assert!(
        printed.as_bytes() == data,
        "note does not print back\nin:  {:?}\nout: {printed:?}",
        String::from_utf8_lossy(data)
    );
    assert!(!note.signatures.is_empty());
    assert!(note.text.ends_with('\n'));
    if let Ok(checkpoint) = Checkpoint::parse_text(&note.text) {
        assert_eq!(checkpoint.to_text(), note.text);
    }
});
