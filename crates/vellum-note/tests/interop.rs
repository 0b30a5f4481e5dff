//! Interop with an independent implementation: `tests/interop/signed_note.py`, a signed-note
//! implementation in Python on the `cryptography` package, written from the specification.
//!
//! Rust signs and Python verifies, Python signs and Rust verifies, and since Ed25519 is
//! deterministic both must produce the very same bytes. These tests need `python3` with
//! `cryptography`; without them they fail (they never skip), saying how to install it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use vellum_merkle::{Hash, TreeSize};
use vellum_note::{Checkpoint, KeyName, Signer, VerifierKey, verify_note};

const INSTALL_HINT: &str = "the interop tests need python3 with the `cryptography` package; \
                            install python3, then run: pip install cryptography";

const SPEC_KEY: &str = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k";
const SPEC_NOTE: &str = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";

/// Texts that exercise the format: plain, checkpoint-shaped, blank lines inside, non-ASCII,
/// a line that looks like a signature line, DEL and NEL (allowed: only < U+0020 is banned).
const TEXTS: &[&str] = &[
    "hello\n",
    "vellum/host-1\n42\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
    "first\n\nthird, after a blank line\n",
    "\n",
    "Grüße, 世界 — ✓\n",
    "a\n\n\u{2014} fake.example AAAAAAA=\nstill text\n",
    "del \u{7f} nel \u{85} nbsp \u{a0}\n",
];

/// Taken from the environment `cargo test` runs the test in, not the one it was compiled in:
/// another clone sharing the target directory may have built this binary.
fn script() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("tests/interop/signed_note.py")
}

/// Fails the test, loudly and with the fix, if python3 or `cryptography` is missing.
fn require_python() {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    let check = CHECK.get_or_init(|| {
        let output = Command::new("python3")
            .args([
                "-c",
                "import cryptography.hazmat.primitives.asymmetric.ed25519",
            ])
            .output()
            .map_err(|e| format!("cannot run python3 ({e}): {INSTALL_HINT}"))?;
        if !output.status.success() {
            return Err(format!(
                "python3 cannot import cryptography ({}): {INSTALL_HINT}",
                String::from_utf8_lossy(&output.stderr)
                    .lines()
                    .last()
                    .unwrap_or("no error message")
            ));
        }
        Ok(())
    });
    if let Err(message) = check {
        panic!("{message}");
    }
}

/// Runs the Python implementation with `args`, feeding it `stdin`.
fn python(args: &[&str], stdin: &str) -> Output {
    require_python();
    let mut child = Command::new("python3")
        .arg(script())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {INSTALL_HINT}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_ne!(
        output.status.code(),
        Some(3),
        "{}: {INSTALL_HINT}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs the Python implementation and returns its stdout, failing on any error.
fn python_ok(args: &[&str], stdin: &str) -> String {
    let output = python(args, stdin);
    assert!(
        output.status.success(),
        "signed_note.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seeds() -> Vec<[u8; 32]> {
    vec![
        [0; 32],
        [0xff; 32],
        std::array::from_fn(|i| i as u8 * 7 + 3),
    ]
}

#[test]
fn verifier_keys_are_identical() {
    for seed in seeds() {
        let signer = Signer::from_seed(KeyName::new("example.com/interop").unwrap(), seed);
        let from_python = python_ok(&["key", "example.com/interop", &hex(&seed)], "");
        assert_eq!(from_python, format!("{}\n", signer.verifier_key()));
    }
}

#[test]
fn rust_signs_python_verifies() {
    for seed in seeds() {
        let signer = Signer::from_seed(KeyName::new("vellum/host-1").unwrap(), seed);
        let vkey = signer.verifier_key().to_string();
        for text in TEXTS {
            let note = signer.sign(text).unwrap();
            assert_eq!(python_ok(&["verify", &vkey], &note), *text);
        }
    }
}

#[test]
fn python_signs_rust_verifies_byte_identical() {
    for seed in seeds() {
        let signer = Signer::from_seed(KeyName::new("vellum/host-1").unwrap(), seed);
        let vkey: VerifierKey = python_ok(&["key", "vellum/host-1", &hex(&seed)], "")
            .trim_end()
            .parse()
            .unwrap();
        assert_eq!(vkey, signer.verifier_key());
        for text in TEXTS {
            let note = python_ok(&["sign", "vellum/host-1", &hex(&seed)], text);
            let verified = verify_note(&note, std::slice::from_ref(&vkey)).unwrap();
            assert_eq!(verified.text, *text);
            // Ed25519 is deterministic: the same key and text give the same note.
            assert_eq!(signer.sign(text).unwrap(), note, "text {text:?}");
        }
    }
}

#[test]
fn python_verifies_rust_checkpoint() {
    let signer = Signer::from_seed(KeyName::new("vellum/host-1").unwrap(), [9; 32]);
    let checkpoint = Checkpoint {
        origin: "vellum/host-1".to_owned(),
        size: TreeSize(20_852_163),
        root: Hash([0x0a; 32]),
        extensions: vec![],
    };
    let note = checkpoint.sign(&signer).unwrap();
    let text = python_ok(&["verify", &signer.verifier_key().to_string()], &note);
    assert_eq!(text, checkpoint.to_text());
}

#[test]
fn python_verifies_the_spec_example() {
    assert_eq!(
        python_ok(&["verify", SPEC_KEY], SPEC_NOTE),
        "This is an example message.\n"
    );
}

#[test]
fn python_rejects_what_rust_rejects() {
    // Guards against a Python verifier that accepts everything.
    let signer = Signer::from_seed(KeyName::new("vellum/host-1").unwrap(), [1; 32]);
    let vkey = signer.verifier_key().to_string();
    let note = signer.sign("hello\n").unwrap();
    let other = Signer::from_seed(KeyName::new("vellum/host-1").unwrap(), [2; 32]);
    let cases = [
        ("tampered text", note.replacen("hello", "hellp", 1)),
        ("CRLF", note.replace('\n', "\r\n")),
        ("no blank line", note.replacen("\n\n", "\n", 1)),
        ("no signature", "hello\n\n".to_owned()),
        ("unknown signer only", other.sign("hello\n").unwrap()),
    ];
    for (what, bad) in cases {
        assert!(
            verify_note(&bad, &[signer.verifier_key()]).is_err(),
            "rust accepted {what}"
        );
        let output = python(&["verify", &vkey], &bad);
        assert_eq!(output.status.code(), Some(1), "python accepted {what}");
    }
}
