//! Malformed checkpoints, checkpoints that cannot be signed, and signed checkpoints that
//! must not open, each rejected with the error that names the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use vellum_merkle::{Hash, TreeSize};
use vellum_note::{Checkpoint, CheckpointError, KeyName, KeyNameError, NoteError, Signer};

fn signer() -> Signer {
    Signer::from_seed(KeyName::new("vellum/test").unwrap(), [42; 32])
}

fn stranger() -> Signer {
    Signer::from_seed(KeyName::new("stranger.example").unwrap(), [43; 32])
}

const ROOT: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

#[test]
fn malformed_checkpoints() {
    let root_31 = STANDARD.encode([7u8; 31]);
    let root_33 = STANDARD.encode([7u8; 33]);
    let cases: Vec<(&str, String, CheckpointError)> = vec![
        ("empty", String::new(), CheckpointError::MissingFinalNewline),
        (
            "no final newline",
            format!("o\n1\n{ROOT}"),
            CheckpointError::MissingFinalNewline,
        ),
        (
            "one line",
            "o\n".into(),
            CheckpointError::MissingLines { lines: 1 },
        ),
        (
            "two lines",
            "o\n1\n".into(),
            CheckpointError::MissingLines { lines: 2 },
        ),
        (
            "just a newline",
            "\n".into(),
            CheckpointError::EmptyLine { line: 1 },
        ),
        (
            "empty origin",
            format!("\n1\n{ROOT}\n"),
            CheckpointError::EmptyLine { line: 1 },
        ),
        (
            "empty line inside",
            format!("o\n\n1\n{ROOT}\n"),
            CheckpointError::EmptyLine { line: 2 },
        ),
        (
            "empty extension",
            format!("o\n1\n{ROOT}\n\n"),
            CheckpointError::EmptyLine { line: 4 },
        ),
        (
            "empty line after extension",
            format!("o\n1\n{ROOT}\next\n\n"),
            CheckpointError::EmptyLine { line: 5 },
        ),
        (
            "CRLF",
            format!("o\r\n1\r\n{ROOT}\r\n"),
            CheckpointError::ControlCharacter { line: 1 },
        ),
        (
            "tab in extension",
            format!("o\n1\n{ROOT}\na\tb\n"),
            CheckpointError::ControlCharacter { line: 4 },
        ),
        (
            "space in origin",
            format!("my log\n1\n{ROOT}\n"),
            CheckpointError::InvalidOrigin(KeyNameError::Whitespace { offset: 2 }),
        ),
        (
            "plus in origin",
            format!("a+b\n1\n{ROOT}\n"),
            CheckpointError::InvalidOrigin(KeyNameError::Plus { offset: 1 }),
        ),
        (
            "leading zero",
            format!("o\n01\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "double zero",
            format!("o\n00\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "plus sign",
            format!("o\n+1\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "minus sign",
            format!("o\n-1\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "space before size",
            format!("o\n 1\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "hex size",
            format!("o\n0x10\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "exponent",
            format!("o\n1e3\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "non-ASCII digit",
            format!("o\n١\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "u64::MAX + 1",
            format!("o\n18446744073709551616\n{ROOT}\n"),
            CheckpointError::InvalidTreeSize,
        ),
        (
            "31-byte root",
            format!("o\n1\n{root_31}\n"),
            CheckpointError::InvalidRootHash,
        ),
        (
            "33-byte root",
            format!("o\n1\n{root_33}\n"),
            CheckpointError::InvalidRootHash,
        ),
        (
            "unpadded root",
            format!("o\n1\n{}\n", ROOT.trim_end_matches('=')),
            CheckpointError::InvalidRootHash,
        ),
        (
            "url-safe root",
            format!("o\n1\n{}\n", ROOT.replace('/', "_")),
            CheckpointError::InvalidRootHash,
        ),
        (
            "hex root",
            format!("o\n1\n{}\n", "ab".repeat(32)),
            CheckpointError::InvalidRootHash,
        ),
        (
            "non-canonical root",
            format!("o\n1\n{}\n", ROOT.replacen("2I=", "2J=", 1)),
            CheckpointError::InvalidRootHash,
        ),
        (
            "root and size swapped",
            format!("o\n{ROOT}\n1\n"),
            CheckpointError::InvalidTreeSize,
        ),
    ];
    for (what, input, expected) in cases {
        assert_eq!(
            Checkpoint::parse_text(&input),
            Err(expected),
            "{what}: {input:?}"
        );
    }
}

#[test]
fn checkpoint_limits_are_accepted() {
    let text = format!("o\n18446744073709551615\n{ROOT}\n");
    assert_eq!(
        Checkpoint::parse_text(&text).unwrap().size,
        TreeSize(u64::MAX)
    );
    let text = format!("o\n0\n{ROOT}\nextension one\n\u{2014} two\n");
    let checkpoint = Checkpoint::parse_text(&text).unwrap();
    assert_eq!(checkpoint.size, TreeSize(0));
    assert_eq!(checkpoint.extensions, ["extension one", "\u{2014} two"]);
    assert_eq!(checkpoint.to_text(), text);
}

fn checkpoint(origin: &str) -> Checkpoint {
    Checkpoint {
        origin: origin.to_owned(),
        size: TreeSize(5),
        root: Hash([3; 32]),
        extensions: vec![],
    }
}

#[test]
fn checkpoint_signing_refuses_bad_fields() {
    let signer = signer();
    let invalid = |e| NoteError::InvalidCheckpoint(Box::new(e));
    let with_extensions = |extensions: &[&str]| Checkpoint {
        extensions: extensions.iter().map(|&s| s.to_owned()).collect(),
        ..checkpoint("vellum/test")
    };
    let cases: Vec<(&str, Checkpoint, NoteError)> = vec![
        (
            "origin is not the signer's name",
            checkpoint("vellum/other"),
            NoteError::OriginMismatch {
                origin: "vellum/other".into(),
                signer: signer.name().clone(),
            },
        ),
        (
            "empty origin",
            checkpoint(""),
            invalid(CheckpointError::InvalidOrigin(KeyNameError::Empty)),
        ),
        (
            "origin with newline",
            checkpoint("vellum/test\n"),
            invalid(CheckpointError::InvalidOrigin(KeyNameError::Whitespace {
                offset: 11,
            })),
        ),
        (
            "empty extension",
            with_extensions(&["a", ""]),
            invalid(CheckpointError::EmptyLine { line: 5 }),
        ),
        (
            "extension with newline",
            with_extensions(&["a\nb"]),
            invalid(CheckpointError::NewlineInExtension { index: 0 }),
        ),
        (
            "extension with CR",
            with_extensions(&["a\r"]),
            invalid(CheckpointError::ControlCharacter { line: 4 }),
        ),
    ];
    for (what, checkpoint, expected) in cases {
        assert_eq!(checkpoint.sign(&signer), Err(expected), "{what}");
    }
}

#[test]
fn checkpoint_open_rejects() {
    let signer = signer();
    let key = signer.verifier_key();
    let good = checkpoint("vellum/test");
    let note = good.sign(&signer).unwrap();
    assert_eq!(Checkpoint::open(&note, &key), Ok(good.clone()));

    // Signed by someone else.
    let by_stranger = Checkpoint {
        origin: "stranger.example".into(),
        ..good.clone()
    }
    .sign(&stranger())
    .unwrap();
    assert_eq!(
        Checkpoint::open(&by_stranger, &key),
        Err(CheckpointError::Note(NoteError::NoTrustedSignature))
    );

    // Validly signed, but the origin names another log.
    let foreign = signer.sign(&checkpoint("vellum/other").to_text()).unwrap();
    assert_eq!(
        Checkpoint::open(&foreign, &key),
        Err(CheckpointError::OriginMismatch {
            origin: "vellum/other".into(),
            key_name: signer.name().clone(),
        })
    );

    // Validly signed, but not a checkpoint.
    let not_a_checkpoint = signer.sign("hello\n").unwrap();
    assert_eq!(
        Checkpoint::open(&not_a_checkpoint, &key),
        Err(CheckpointError::MissingLines { lines: 1 })
    );

    // Tampered size.
    let tampered = note.replacen("\n5\n", "\n6\n", 1);
    assert!(matches!(
        Checkpoint::open(&tampered, &key),
        Err(CheckpointError::Note(NoteError::InvalidSignature { .. }))
    ));

    // Malformed note.
    assert_eq!(
        Checkpoint::open("vellum/test\n5\n", &key),
        Err(CheckpointError::Note(NoteError::MissingSeparator))
    );
}
