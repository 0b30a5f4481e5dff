//! `VerifierKey::from_str` on arbitrary text (`vellum verify-receipt --key VKEY`, the
//! auditor's trust anchor).
//!
//! Checks: an accepted key prints back to the identical text, and its key id is the one
//! computed from its name and public key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vellum_note::{KeyId, VerifierKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = text.parse::<VerifierKey>() else {
        return;
    };
    assert_eq!(key.to_string(), text, "key does not print back");
    assert_eq!(key.key_id(), KeyId::ed25519(key.name(), &key.public_key()));
});
