//! Malformed notes and bad signatures, each rejected with the error that names the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use vellum_note::{
    KeyId, KeyName, KeyNameError, MAX_NOTE_LEN, MAX_SIGNATURES, Note, NoteError,
    SignatureLineProblem, Signer, verify_note,
};

const EM: &str = "\u{2014}";

fn signer() -> Signer {
    Signer::from_seed(KeyName::new("vellum/test").unwrap(), [42; 32])
}

fn stranger() -> Signer {
    Signer::from_seed(KeyName::new("stranger.example").unwrap(), [43; 32])
}

/// A signature line `— <name> <base64(payload)>` followed by a newline.
fn line(name: &str, payload: &[u8]) -> String {
    format!("{EM} {name} {}\n", STANDARD.encode(payload))
}

fn malformed(line: usize, problem: SignatureLineProblem) -> NoteError {
    NoteError::MalformedSignatureLine { line, problem }
}

#[test]
fn malformed_notes() {
    let good = signer().sign("hello\n").unwrap();
    let sig_line = good.strip_prefix("hello\n\n").unwrap().to_owned();
    let payload = STANDARD
        .decode(sig_line.trim_end().rsplit(' ').next().unwrap())
        .unwrap();
    let encoded = STANDARD.encode(&payload);
    let over_limit = format!("{}\n\n{sig_line}", "x".repeat(MAX_NOTE_LEN));
    let too_many = format!("hello\n\n{}", sig_line.repeat(MAX_SIGNATURES + 1));

    let cases: Vec<(&str, String, NoteError)> = vec![
        ("empty", String::new(), NoteError::MissingFinalNewline),
        (
            "no final newline",
            good.trim_end().to_owned(),
            NoteError::MissingFinalNewline,
        ),
        (
            "trailing junk without newline",
            format!("{good}junk"),
            NoteError::MissingFinalNewline,
        ),
        (
            "CRLF line ends",
            good.replace('\n', "\r\n"),
            NoteError::ControlCharacter {
                offset: 5,
                code: 0x0d,
            },
        ),
        (
            "tab in text",
            good.replacen("hello", "hel\tlo", 1),
            NoteError::ControlCharacter {
                offset: 3,
                code: 0x09,
            },
        ),
        (
            "NUL in signature line",
            format!("hello\n\n{EM} vellum/test\0 {encoded}\n"),
            NoteError::ControlCharacter {
                offset: 22,
                code: 0,
            },
        ),
        (
            "missing blank line",
            format!("hello\n{sig_line}"),
            NoteError::MissingSeparator,
        ),
        (
            "text only",
            "hello\n".to_owned(),
            NoteError::MissingSeparator,
        ),
        (
            "missing signatures",
            "hello\n\n".to_owned(),
            NoteError::NoSignatures,
        ),
        (
            "blank line after the signatures",
            format!("{good}\n"),
            NoteError::NoSignatures,
        ),
        (
            "trailing junk line",
            format!("{good}junk\n"),
            malformed(4, SignatureLineProblem::MissingEmDash),
        ),
        (
            "hyphens instead of em dash",
            good.replacen(EM, "--", 1),
            malformed(3, SignatureLineProblem::MissingEmDash),
        ),
        (
            "en dash instead of em dash",
            good.replacen(EM, "\u{2013}", 1),
            malformed(3, SignatureLineProblem::MissingEmDash),
        ),
        (
            "no space after em dash",
            good.replacen(&format!("{EM} "), EM, 1),
            malformed(3, SignatureLineProblem::MissingEmDash),
        ),
        (
            "no signature after the name",
            format!("hello\n\n{EM} vellum/test\n"),
            malformed(3, SignatureLineProblem::MissingSignature),
        ),
        (
            "two spaces before the signature",
            format!("hello\n\n{EM} vellum/test  {encoded}\n"),
            malformed(3, SignatureLineProblem::InvalidBase64),
        ),
        (
            "trailing space after the signature",
            format!("hello\n\n{EM} vellum/test {encoded} \n"),
            malformed(3, SignatureLineProblem::InvalidBase64),
        ),
        (
            "empty key name",
            format!("hello\n\n{EM}  {encoded}\n"),
            malformed(3, SignatureLineProblem::InvalidKeyName(KeyNameError::Empty)),
        ),
        (
            "plus in key name",
            format!("hello\n\n{EM} vellum+test {encoded}\n"),
            malformed(
                3,
                SignatureLineProblem::InvalidKeyName(KeyNameError::Plus { offset: 6 }),
            ),
        ),
        (
            "no-break space in key name",
            format!("hello\n\n{EM} vellum\u{a0}test {encoded}\n"),
            malformed(
                3,
                SignatureLineProblem::InvalidKeyName(KeyNameError::Whitespace { offset: 6 }),
            ),
        ),
        (
            "base64 with bad characters",
            format!("hello\n\n{EM} vellum/test !!!!\n"),
            malformed(3, SignatureLineProblem::InvalidBase64),
        ),
        (
            "url-safe base64",
            format!("hello\n\n{EM} vellum/test AAAAAAAA-_-_\n"),
            malformed(3, SignatureLineProblem::InvalidBase64),
        ),
        (
            "unpadded base64",
            format!(
                "hello\n\n{EM} vellum/test {}\n",
                STANDARD_NO_PAD.encode(&payload)
            ),
            malformed(3, SignatureLineProblem::InvalidBase64),
        ),
        (
            "non-canonical base64 (stray bits)",
            format!("hello\n\n{EM} vellum/test AAAAAAB=\n"),
            malformed(3, SignatureLineProblem::InvalidBase64),
        ),
        (
            "empty signature",
            format!("hello\n\n{EM} vellum/test \n"),
            malformed(3, SignatureLineProblem::TooShort { len: 0 }),
        ),
        (
            "payload shorter than 5 bytes",
            format!("hello\n\n{}", line("vellum/test", &payload[..4])),
            malformed(3, SignatureLineProblem::TooShort { len: 4 }),
        ),
        (
            "second signature line malformed",
            format!("{good}{EM} x\n"),
            malformed(4, SignatureLineProblem::MissingSignature),
        ),
        (
            "over 1 MiB",
            over_limit.clone(),
            NoteError::TooLong {
                len: over_limit.len(),
                max: MAX_NOTE_LEN,
            },
        ),
        (
            "over 100 signature lines",
            too_many,
            NoteError::TooManySignatures {
                max: MAX_SIGNATURES,
            },
        ),
    ];
    let keys = [signer().verifier_key()];
    for (what, input, expected) in cases {
        assert_eq!(
            Note::parse(&input),
            Err(expected.clone()),
            "Note::parse: {what}"
        );
        assert_eq!(
            verify_note(&input, &keys),
            Err(expected),
            "verify_note: {what}"
        );
    }
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut bytes = signer().sign("hello\n").unwrap().into_bytes();
    bytes[1] = 0xff;
    assert_eq!(Note::from_bytes(&bytes), Err(NoteError::InvalidUtf8));
}

#[test]
fn exactly_100_signatures_are_accepted() {
    let good = signer().sign("hello\n").unwrap();
    let unknown = stranger().signature_for("hello\n").unwrap().to_string();
    let note = format!(
        "{good}{}",
        format!("{unknown}\n").repeat(MAX_SIGNATURES - 1)
    );
    let parsed = Note::parse(&note).unwrap();
    assert_eq!(parsed.signatures.len(), MAX_SIGNATURES);
    assert_eq!(parsed.to_string(), note);
    assert!(verify_note(&note, &[signer().verifier_key()]).is_ok());
}

#[test]
fn bad_signatures() {
    let signer = signer();
    let key = signer.verifier_key();
    let id = signer.key_id().0;
    let good = Note::parse(&signer.sign("hello\n").unwrap()).unwrap();
    let with_signature = |signature: Vec<u8>| {
        let mut note = good.clone();
        note.signatures[0].signature = signature;
        note.to_string()
    };
    let mut long = good.signatures[0].signature.clone();
    long.push(0);
    let mut zero_s = good.signatures[0].signature.clone();
    zero_s[32..].fill(0);
    let invalid = NoteError::InvalidSignature {
        name: signer.name().clone(),
        key_id: KeyId(id),
    };
    let cases: Vec<(&str, String, NoteError)> = vec![
        (
            "63-byte signature",
            with_signature(good.signatures[0].signature[..63].to_vec()),
            invalid.clone(),
        ),
        ("65-byte signature", with_signature(long), invalid.clone()),
        ("1-byte signature", with_signature(vec![1]), invalid.clone()),
        ("zeroed S", with_signature(zero_s), invalid.clone()),
        (
            "all-zero signature",
            with_signature(vec![0; 64]),
            invalid.clone(),
        ),
        (
            "signature over other text",
            with_signature(signer.signature_for("hellp\n").unwrap().signature),
            invalid,
        ),
        (
            "known key id under another name",
            format!(
                "hello\n\n{}",
                line(
                    "vellum/other",
                    &[&id[..], &good.signatures[0].signature].concat()
                )
            ),
            NoteError::NoTrustedSignature,
        ),
        (
            "known name with another key id",
            format!(
                "hello\n\n{}",
                line(
                    "vellum/test",
                    &[&[0, 0, 0, 0][..], &good.signatures[0].signature].concat()
                )
            ),
            NoteError::NoTrustedSignature,
        ),
        (
            "signed by a stranger only",
            stranger().sign("hello\n").unwrap(),
            NoteError::NoTrustedSignature,
        ),
    ];
    for (what, input, expected) in cases {
        assert!(Note::parse(&input).is_ok(), "{what} should parse");
        assert_eq!(
            verify_note(&input, std::slice::from_ref(&key)),
            Err(expected),
            "{what}"
        );
    }
}

#[test]
fn signing_rejects_bad_text() {
    let signer = signer();
    let cases: Vec<(&str, String, NoteError)> = vec![
        ("empty", String::new(), NoteError::MissingFinalNewline),
        (
            "no final newline",
            "hello".to_owned(),
            NoteError::MissingFinalNewline,
        ),
        (
            "CR",
            "hello\r\n".to_owned(),
            NoteError::ControlCharacter {
                offset: 5,
                code: 13,
            },
        ),
        (
            "escape",
            "\u{1b}[31m\n".to_owned(),
            NoteError::ControlCharacter {
                offset: 0,
                code: 0x1b,
            },
        ),
        (
            "too long",
            "x".repeat(MAX_NOTE_LEN) + "\n",
            NoteError::TooLong {
                len: MAX_NOTE_LEN + 1,
                max: MAX_NOTE_LEN,
            },
        ),
        (
            "note would be too long",
            "x".repeat(MAX_NOTE_LEN - 10) + "\n",
            NoteError::TooLong {
                len: MAX_NOTE_LEN - 9 + 1 + "\u{2014} vellum/test ".len() + 92 + 1,
                max: MAX_NOTE_LEN,
            },
        ),
    ];
    for (what, text, expected) in cases {
        assert_eq!(signer.sign(&text), Err(expected), "{what}");
    }
}
