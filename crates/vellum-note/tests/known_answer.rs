//! The signed-note specification's own example, and what a verifier must do with variations
//! of it: ignore unknown signers, reject tampering, reject notes no trusted key signed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use vellum_note::{KeyName, Note, NoteError, Signer, VerifierKey, verify_note};

const KEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

fn key() -> VerifierKey {
    KEY.parse().unwrap()
}

fn other_signer(name: &str) -> Signer {
    Signer::from_seed(KeyName::new(name).unwrap(), [7; 32])
}

/// Appends a signature by `signer` to a note, as a cosigner (or an attacker) would.
fn add_signature(note: &str, signer: &Signer) -> String {
    let mut note = Note::parse(note).unwrap();
    let signature = signer.signature_for(&note.text).unwrap();
    note.signatures.push(signature);
    note.to_string()
}

#[test]
fn spec_example_verifies() {
    let verified = verify_note(NOTE, &[key()]).unwrap();
    assert_eq!(verified.text, "This is an example message.\n");
    assert_eq!(
        verified.verified_by,
        vec![KeyName::new("example.com/foo").unwrap()]
    );
}

#[test]
fn spec_key_round_trips_and_exposes_its_parts() {
    let key = key();
    assert_eq!(key.to_string(), KEY);
    assert_eq!(key.name().as_str(), "example.com/foo");
    assert_eq!(key.key_id().0, [0x53, 0x0d, 0x90, 0x3a]);
    assert_eq!(key.key_id().to_string(), "530d903a");
}

#[test]
fn spec_note_parses_and_prints_back_exactly() {
    let note = Note::parse(NOTE).unwrap();
    assert_eq!(note.text, "This is an example message.\n");
    assert_eq!(note.signatures.len(), 1);
    assert_eq!(note.signatures[0].name.as_str(), "example.com/foo");
    assert_eq!(note.signatures[0].key_id, key().key_id());
    assert_eq!(note.signatures[0].signature.len(), 64);
    assert_eq!(note.to_string(), NOTE);
}

#[test]
fn extra_signature_by_unknown_key_is_ignored() {
    for position in ["after", "before"] {
        let note = match position {
            "after" => add_signature(NOTE, &other_signer("witness.example/w1")),
            _ => {
                // Put the unknown signature first.
                let mut parsed =
                    Note::parse(&add_signature(NOTE, &other_signer("w.example/2"))).unwrap();
                parsed.signatures.reverse();
                parsed.to_string()
            }
        };
        let verified = verify_note(&note, &[key()]).unwrap();
        assert_eq!(verified.text, "This is an example message.\n", "{position}");
        assert_eq!(
            verified.verified_by,
            vec![KeyName::new("example.com/foo").unwrap()]
        );
    }
}

#[test]
fn both_signers_reported_when_both_trusted() {
    let witness = other_signer("witness.example/w1");
    let note = add_signature(NOTE, &witness);
    let verified = verify_note(&note, &[witness.verifier_key(), key()]).unwrap();
    let names: Vec<&str> = verified.verified_by.iter().map(KeyName::as_str).collect();
    assert_eq!(names, ["example.com/foo", "witness.example/w1"]);
}

#[test]
fn flipped_text_byte_fails() {
    let tampered = NOTE.replacen("example", "exbmple", 1);
    assert!(matches!(
        verify_note(&tampered, &[key()]),
        Err(NoteError::InvalidSignature { ref name, key_id }) if name.as_str() == "example.com/foo" && key_id == key().key_id()
    ));
}

#[test]
fn flipped_signature_bytes_fail() {
    let note = Note::parse(NOTE).unwrap();
    for i in 0..64 {
        let mut tampered = note.clone();
        tampered.signatures[0].signature[i] ^= 0x01;
        let result = verify_note(&tampered.to_string(), &[key()]);
        assert!(
            matches!(result, Err(NoteError::InvalidSignature { .. })),
            "byte {i}: {result:?}"
        );
    }
}

#[test]
fn flipped_key_id_makes_the_signature_unknown() {
    let mut note = Note::parse(NOTE).unwrap();
    note.signatures[0].key_id.0[3] ^= 0x01;
    assert_eq!(
        verify_note(&note.to_string(), &[key()]),
        Err(NoteError::NoTrustedSignature)
    );
}

#[test]
fn bad_signature_by_trusted_key_rejects_the_note_even_if_another_is_good() {
    // A second line claiming to be the trusted key, with a forged signature.
    let mut note = Note::parse(NOTE).unwrap();
    let mut forged = note.signatures[0].clone();
    forged.signature[10] ^= 0x80;
    note.signatures.push(forged);
    assert!(matches!(
        verify_note(&note.to_string(), &[key()]),
        Err(NoteError::InvalidSignature { .. })
    ));
}

#[test]
fn note_signed_only_by_unknown_keys_fails() {
    let a = other_signer("example.com/foo"); // same name, different key: different id
    let b = other_signer("witness.example/w1");
    let note = b.sign("This is an example message.\n").unwrap();
    let note = add_signature(&note, &a);
    assert_eq!(
        verify_note(&note, &[key()]),
        Err(NoteError::NoTrustedSignature)
    );
    assert_eq!(verify_note(NOTE, &[]), Err(NoteError::NoTrustedSignature));
}

#[test]
fn own_signature_round_trip() {
    let signer = other_signer("vellum/test");
    let text = "line one\n\nline three after a blank line\n";
    let note = signer.sign(text).unwrap();
    assert!(note.starts_with(text));
    let verified = verify_note(&note, &[signer.verifier_key()]).unwrap();
    assert_eq!(verified.text, text);
    let vkey: VerifierKey = signer.verifier_key().to_string().parse().unwrap();
    assert_eq!(vkey, signer.verifier_key());
    assert_eq!(vkey.key_id(), signer.key_id());
}
