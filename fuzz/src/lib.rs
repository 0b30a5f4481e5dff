//! Checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every target feeds outside input to one parser and, when the parser accepts it, checks a
//! property of what came out; a failed property panics, which libFuzzer reports as a crash.
//! The properties live here when more than one target needs them.

use vellum_event::{Event, Limits, StoredEvent};
use vellum_note::VerifierKey;

/// The signed-note specification's example key (C2SP signed-note, "Verifier keys").
pub const SPEC_KEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";

/// A Vellum-style key: name `vellum/fuzz`, seed `[7; 32]`.
pub const VELLUM_KEY_NAME: &str = "vellum/fuzz";
pub const VELLUM_KEY_SEED: [u8; 32] = [7; 32];

/// The keys the note and checkpoint targets verify against: the spec's and a Vellum one.
pub fn trusted_keys() -> Vec<VerifierKey> {
    let spec: VerifierKey = SPEC_KEY.parse().expect("the spec's key parses");
    let name = VELLUM_KEY_NAME.parse().expect("a valid key name");
    let vellum = vellum_note::Signer::from_seed(name, VELLUM_KEY_SEED).verifier_key();
    vec![spec, vellum]
}

/// What every accepted event must satisfy:
///
/// - its canonical body parses back (as a new event from a client would) to the identical
///   canonical body, so the bytes the store hashes are a fixed point;
/// - its stored form (`{"index":N,"received":"…",` + body) parses back with
///   [`StoredEvent::parse`] to the same index, received time and canonical body, and
///   [`StoredEvent::index_of`] reads the same index from the prefix.
pub fn check_event(event: &Event, index: u64) {
    let body = event.canonical_body();
    let again = match Event::parse(&body, &Limits::default()) {
        Ok(again) => again,
        Err(e) => panic!(
            "canonical body does not parse back: {e}\nbody: {}",
            String::from_utf8_lossy(&body)
        ),
    };
    let body_again = again.canonical_body();
    assert!(
        body_again == body,
        "canonical body is not a fixed point\nfirst:  {}\nsecond: {}",
        String::from_utf8_lossy(&body),
        String::from_utf8_lossy(&body_again)
    );

    check_stored_form(event, index);
}

/// The second half of [`check_event`], alone: what every event read back from the log must
/// satisfy, though it may be one a client could no longer send (an older build stored it
/// under other limits).
pub fn check_stored_form(event: &Event, index: u64) {
    let body = event.canonical_body();
    let received = event.time.to_string();
    let mut stored = Vec::new();
    event.write_stored(&mut stored, index, &received);
    let back = match StoredEvent::parse(&stored) {
        Ok(back) => back,
        Err(e) => panic!(
            "stored form does not parse back: {e}\nstored: {}",
            String::from_utf8_lossy(&stored)
        ),
    };
    assert_eq!(back.index, index, "stored index");
    assert_eq!(back.received.to_string(), received, "stored received time");
    assert!(
        back.event.canonical_body() == body,
        "stored event's body differs\nstored: {}",
        String::from_utf8_lossy(&stored)
    );
    assert_eq!(StoredEvent::index_of(&stored), Some(index), "index_of");
}

/// Whether NDJSON's batch parser skips this line (after dropping a trailing `\r`).
pub fn is_blank_line(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

/// The lines of an NDJSON body as `parse_batch` numbers them (1-based), `\r` dropped.
pub fn ndjson_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .enumerate()
        .map(|(n, line)| (n + 1, line))
}
