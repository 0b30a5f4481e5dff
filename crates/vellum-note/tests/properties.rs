//! Properties: the parsers are total (any string in, a value or an error out, never a panic),
//! and signing, parsing and printing round-trip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use vellum_merkle::{Hash, TreeSize};
use vellum_note::{Checkpoint, KeyName, Note, Signer, VerifierKey, verify_note};

/// Pieces that, strung together, often come close to a valid note, key or checkpoint, so the
/// parsers' deeper branches get exercised too, not just the first check.
const FRAGMENTS: &[&str] = &[
    "\n",
    "\n\n",
    "\u{2014} ",
    "\u{2014}",
    " ",
    "+",
    "=",
    "\r",
    "\t",
    "0",
    "42",
    "example.com/foo",
    "vellum/test",
    "530d903a",
    "AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=",
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
    "AAAA",
    "AAAAAA==",
    "This is an example message.",
    "é",
    "\u{0}",
];

fn near_miss() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..24).prop_map(|parts| parts.concat())
}

fn any_input() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), near_miss()]
}

fn trusted_keys() -> Vec<VerifierKey> {
    vec![
        "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
            .parse()
            .unwrap(),
        Signer::from_seed(KeyName::new("vellum/test").unwrap(), [1; 32]).verifier_key(),
    ]
}

/// A valid note text: lines of any characters at or above U+0020 (blank lines included),
/// each ending in a newline.
fn note_text() -> impl Strategy<Value = String> {
    prop::collection::vec("[^\\x00-\\x1f]{0,30}", 1..6)
        .prop_map(|lines| lines.iter().map(|line| format!("{line}\n")).collect())
}

fn key_name() -> impl Strategy<Value = KeyName> {
    "[a-z0-9.]{1,12}(/[a-zA-Z0-9_\\-]{1,12}){0,2}".prop_map(|s| KeyName::new(s).unwrap())
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        key_name(),
        any::<u64>(),
        any::<[u8; 32]>(),
        prop::collection::vec("[^\\x00-\\x1f]{1,20}", 0..3),
    )
        .prop_map(|(origin, size, root, extensions)| Checkpoint {
            origin: origin.to_string(),
            size: TreeSize(size),
            root: Hash(root),
            extensions,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsers_never_panic(input in any_input()) {
        let keys = trusted_keys();
        let _ = Note::parse(&input);
        let _ = Note::from_bytes(input.as_bytes());
        let _ = verify_note(&input, &keys);
        let _ = Checkpoint::parse_text(&input);
        let _ = Checkpoint::open(&input, &keys[0]);
        let _ = input.parse::<VerifierKey>();
        let _ = input.parse::<KeyName>();
    }

    #[test]
    fn parsed_notes_print_back_exactly(input in any_input()) {
        if let Ok(note) = Note::parse(&input) {
            prop_assert_eq!(note.to_string(), input);
        }
    }

    #[test]
    fn parsed_checkpoints_print_back_exactly(input in any_input()) {
        if let Ok(checkpoint) = Checkpoint::parse_text(&input) {
            prop_assert_eq!(checkpoint.to_text(), input);
        }
    }

    #[test]
    fn parsed_verifier_keys_print_back_exactly(input in any_input()) {
        if let Ok(key) = input.parse::<VerifierKey>() {
            prop_assert_eq!(key.to_string(), input);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sign_parse_display_round_trips(
        name in key_name(),
        seed in any::<[u8; 32]>(),
        text in note_text(),
    ) {
        let signer = Signer::from_seed(name.clone(), seed);
        let signed = signer.sign(&text).unwrap();
        let note = Note::parse(&signed).unwrap();
        prop_assert_eq!(&note.text, &text);
        prop_assert_eq!(note.signatures.len(), 1);
        prop_assert_eq!(&note.signatures[0].name, &name);
        prop_assert_eq!(note.signatures[0].key_id, signer.key_id());
        prop_assert_eq!(note.to_string(), signed.clone());

        let verified = verify_note(&signed, &[signer.verifier_key()]).unwrap();
        prop_assert_eq!(verified.text, text);
        prop_assert_eq!(verified.verified_by, vec![name]);

        let key: VerifierKey = signer.verifier_key().to_string().parse().unwrap();
        prop_assert_eq!(key, signer.verifier_key());
    }

    #[test]
    fn checkpoints_round_trip(checkpoint in checkpoint(), seed in any::<[u8; 32]>()) {
        let text = checkpoint.to_text();
        prop_assert_eq!(Checkpoint::parse_text(&text).unwrap(), checkpoint.clone());

        let signer = Signer::from_seed(KeyName::new(checkpoint.origin.clone()).unwrap(), seed);
        let note = checkpoint.sign(&signer).unwrap();
        prop_assert!(note.starts_with(&text));
        prop_assert_eq!(Checkpoint::open(&note, &signer.verifier_key()).unwrap(), checkpoint);
    }
}
