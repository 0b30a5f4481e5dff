//! Malformed verifier keys and key names, each rejected with the error that names the
//! problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use vellum_note::{KeyId, KeyName, KeyNameError, VerifierKey, VerifierKeyError};

fn vkey_with(name_and_id: &str, material: &[u8]) -> String {
    format!("{name_and_id}+{}", STANDARD.encode(material))
}

#[test]
fn malformed_verifier_keys() {
    const GOOD: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
    let material = STANDARD.decode(GOOD.rsplit('+').next().unwrap()).unwrap();
    let public = &material[1..];
    let mut identity = [0u8; 32];
    identity[0] = 1; // y = 1: the neutral point, of small order
    let mut off_curve = [0u8; 32];
    off_curve[0] = 2; // y = 2 has no x on the curve
    let cases: Vec<(&str, String, VerifierKeyError)> = vec![
        ("empty", String::new(), VerifierKeyError::Malformed),
        (
            "name only",
            "example.com/foo".into(),
            VerifierKeyError::Malformed,
        ),
        (
            "no key",
            "example.com/foo+530d903a".into(),
            VerifierKeyError::Malformed,
        ),
        (
            "empty name",
            GOOD.replacen("example.com/foo", "", 1),
            VerifierKeyError::InvalidName(KeyNameError::Empty),
        ),
        (
            "space in name",
            GOOD.replacen("example.com/foo", "example com", 1),
            VerifierKeyError::InvalidName(KeyNameError::Whitespace { offset: 7 }),
        ),
        (
            "uppercase key id",
            GOOD.replacen("530d903a", "530D903A", 1),
            VerifierKeyError::InvalidKeyId,
        ),
        (
            "short key id",
            GOOD.replacen("530d903a", "530d903", 1),
            VerifierKeyError::InvalidKeyId,
        ),
        (
            "long key id",
            GOOD.replacen("530d903a", "0530d903a", 1),
            VerifierKeyError::InvalidKeyId,
        ),
        (
            "non-hex key id",
            GOOD.replacen("530d903a", "530d903g", 1),
            VerifierKeyError::InvalidKeyId,
        ),
        (
            "empty key id",
            GOOD.replacen("530d903a", "", 1),
            VerifierKeyError::InvalidKeyId,
        ),
        (
            "wrong key id",
            GOOD.replacen("530d903a", "530d903b", 1),
            VerifierKeyError::KeyIdMismatch {
                stated: KeyId([0x53, 0x0d, 0x90, 0x3b]),
                computed: KeyId([0x53, 0x0d, 0x90, 0x3a]),
            },
        ),
        (
            "key id of another name",
            GOOD.replacen("example.com/foo", "example.com/bar", 1),
            VerifierKeyError::KeyIdMismatch {
                stated: KeyId([0x53, 0x0d, 0x90, 0x3a]),
                computed: KeyId::ed25519(
                    &KeyName::new("example.com/bar").unwrap(),
                    public.try_into().unwrap(),
                ),
            },
        ),
        (
            "trailing newline",
            format!("{GOOD}\n"),
            VerifierKeyError::InvalidBase64,
        ),
        (
            "leading space",
            format!(" {GOOD}"),
            VerifierKeyError::InvalidName(KeyNameError::Whitespace { offset: 0 }),
        ),
        (
            "bad base64",
            "example.com/foo+530d903a+!!!!".into(),
            VerifierKeyError::InvalidBase64,
        ),
        (
            "unpadded base64",
            format!(
                "example.com/foo+530d903a+{}",
                STANDARD_NO_PAD.encode(&material[..32])
            ),
            VerifierKeyError::InvalidBase64,
        ),
        (
            "empty key",
            "example.com/foo+530d903a+".into(),
            VerifierKeyError::WrongKeyLength(0),
        ),
        (
            "ECDSA type byte",
            vkey_with("example.com/foo+530d903a", &[&[2u8][..], public].concat()),
            VerifierKeyError::UnsupportedType(2),
        ),
        (
            "no type byte",
            vkey_with("example.com/foo+530d903a", public),
            VerifierKeyError::UnsupportedType(public[0]),
        ),
        (
            "31-byte key",
            vkey_with("example.com/foo+530d903a", &material[..32]),
            VerifierKeyError::WrongKeyLength(31),
        ),
        (
            "33-byte key",
            vkey_with("example.com/foo+530d903a", &[&material[..], &[0]].concat()),
            VerifierKeyError::WrongKeyLength(33),
        ),
        (
            "point not on the curve",
            vkey_with(
                "example.com/foo+530d903a",
                &[&[1u8][..], &off_curve].concat(),
            ),
            VerifierKeyError::InvalidPublicKey,
        ),
        (
            "small-order point",
            vkey_with(
                "example.com/foo+530d903a",
                &[&[1u8][..], &identity].concat(),
            ),
            VerifierKeyError::InvalidPublicKey,
        ),
    ];
    for (what, input, expected) in cases {
        assert_eq!(
            input.parse::<VerifierKey>(),
            Err(expected),
            "{what}: {input:?}"
        );
    }
    assert!(GOOD.parse::<VerifierKey>().is_ok());
}

#[test]
fn malformed_key_names() {
    let cases: Vec<(&str, KeyNameError)> = vec![
        ("", KeyNameError::Empty),
        ("a b", KeyNameError::Whitespace { offset: 1 }),
        ("a\tb", KeyNameError::Whitespace { offset: 1 }),
        ("a\nb", KeyNameError::Whitespace { offset: 1 }),
        ("a\u{3000}b", KeyNameError::Whitespace { offset: 1 }),
        ("a\u{2028}", KeyNameError::Whitespace { offset: 1 }),
        ("a+b", KeyNameError::Plus { offset: 1 }),
        ("a\u{1}b", KeyNameError::ControlCharacter { offset: 1 }),
    ];
    for (input, expected) in cases {
        assert_eq!(input.parse::<KeyName>(), Err(expected), "{input:?}");
    }
    for good in ["example.com/foo", "vellum/host-1", "ünïcödé", "a", "\u{7f}"] {
        assert_eq!(good.parse::<KeyName>().unwrap().as_str(), good);
    }
}
