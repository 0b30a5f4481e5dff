//! Receipts: `vellum receipt` output verifies offline with only the verifier key, and any
//! change to it (event, proof, checkpoint) or a wrong key makes `verify-receipt` exit 1;
//! a file that is not a receipt is an input error (exit 2).

use super::util::{Log, b64, leaf_hash, unb64, vellum_args};

/// A log of 40 events and the receipt of the first successful event at or after 17,
/// written to a file outside the data directory.
struct Fixture {
    log: Log,
    index: u64,
    text: String,
    path: std::path::PathBuf,
}

fn fixture() -> Fixture {
    let log = Log::small(40);
    let index = (17..40)
        .find(|&i| log.events[i as usize].outcome == "success")
        .unwrap();
    let run = log.run(&["receipt", "--index", &index.to_string()]);
    run.ok();
    let path = log.outside("receipt.json");
    std::fs::write(&path, &run.stdout).unwrap();
    Fixture {
        log,
        index,
        text: run.stdout,
        path,
    }
}

impl Fixture {
    /// `vellum verify-receipt --key KEY FILE` on `text` written to a fresh file.
    fn verify_text(&self, text: &str, key: &str) -> super::util::Run {
        let path = self.log.outside("edited-receipt.json");
        std::fs::write(&path, text).unwrap();
        vellum_args(&["verify-receipt", "--key", key, path.to_str().unwrap()])
    }

    /// The embedded event's exact bytes, as they stand in the receipt's text.
    fn event_text(&self) -> String {
        let start = self.text.find("\"event\": ").unwrap() + "\"event\": ".len();
        let end = self.text.rfind('}').unwrap();
        self.text[start..end].trim_end().to_string()
    }

    fn field(&self, name: &str) -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&self.text).unwrap();
        v[name].clone()
    }
}

#[test]
fn receipt_verifies_offline() {
    let f = fixture();
    let key = f.log.key();
    let run = vellum_args(&["verify-receipt", "--key", &key, f.path.to_str().unwrap()]);
    run.ok();
    assert!(
        run.stdout.contains(&format!(
            "ok: event {} is in test/log at tree size 40",
            f.index
        )),
        "{}",
        run.stdout
    );
    // The key may also be given as a file holding it.
    let key_file = f.log.outside("key.txt");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    vellum_args(&[
        "verify-receipt",
        "--key",
        key_file.to_str().unwrap(),
        f.path.to_str().unwrap(),
    ])
    .ok();
    // The receipt's leaf hash is SHA-256(0x00 ‖ the embedded event's exact bytes).
    let event = f.event_text();
    assert!(event.starts_with(&format!("{{\"index\":{},", f.index)));
    assert_eq!(
        f.field("leaf_hash").as_str().unwrap(),
        b64(&leaf_hash(event.as_bytes()))
    );
}

#[test]
fn receipt_with_changed_event() {
    let f = fixture();
    let text = f
        .text
        .replacen("\"outcome\":\"success\"", "\"outcome\":\"failure\"", 1);
    assert_ne!(text, f.text);
    f.verify_text(&text, &f.log.key())
        .expect_code(1)
        .stderr_has(&["receipt INVALID", "the event was changed"]);
}

#[test]
fn receipt_with_changed_event_and_leaf_hash() {
    let f = fixture();
    let event = f.event_text();
    let changed = event.replacen("\"outcome\":\"success\"", "\"outcome\":\"failure\"", 1);
    let old_leaf = f.field("leaf_hash").as_str().unwrap().to_string();
    let new_leaf = b64(&leaf_hash(changed.as_bytes()));
    let text = f
        .text
        .replace(&event, &changed)
        .replace(&old_leaf, &new_leaf);
    f.verify_text(&text, &f.log.key())
        .expect_code(1)
        .stderr_has(&["receipt INVALID", "inclusion proof"]);
}

#[test]
fn receipt_with_changed_proof_hash() {
    let f = fixture();
    let proof = f.field("proof");
    let first = proof[0].as_str().unwrap();
    let text = f.text.replacen(first, &b64(&[0x5a; 32]), 1);
    f.verify_text(&text, &f.log.key())
        .expect_code(1)
        .stderr_has(&["receipt INVALID", "inclusion proof"]);
}

#[test]
fn receipt_with_a_proof_hash_missing() {
    let f = fixture();
    let proof = f.field("proof");
    let last = proof.as_array().unwrap().last().unwrap().as_str().unwrap();
    let text = f.text.replace(&format!(",\n    \"{last}\""), "");
    assert_ne!(text, f.text);
    f.verify_text(&text, &f.log.key())
        .expect_code(1)
        .stderr_has(&["receipt INVALID", "inclusion proof"]);
}

#[test]
fn receipt_with_changed_checkpoint_signature() {
    let f = fixture();
    let checkpoint = f.field("checkpoint");
    let sig_b64 = checkpoint
        .as_str()
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let mut sig = unb64(&sig_b64);
    sig[40] ^= 0x04;
    let text = f.text.replace(&sig_b64, &b64(&sig));
    assert_ne!(text, f.text);
    f.verify_text(&text, &f.log.key())
        .expect_code(1)
        .stderr_has(&["receipt INVALID", "checkpoint"]);
}

#[test]
fn receipt_with_changed_tree_size() {
    let f = fixture();
    let text = f.text.replacen("\"tree_size\": 40", "\"tree_size\": 39", 1);
    assert_ne!(text, f.text);
    f.verify_text(&text, &f.log.key())
        .expect_code(1)
        .stderr_has(&["receipt INVALID"]);
}

#[test]
fn receipt_with_wrong_key() {
    let f = fixture();
    // Another log with the same origin: same key name, different key.
    let other = Log::small(1);
    let other_key = other.key();
    assert_ne!(other_key, f.log.key());
    vellum_args(&[
        "verify-receipt",
        "--key",
        &other_key,
        f.path.to_str().unwrap(),
    ])
    .expect_code(1)
    .stderr_has(&["receipt INVALID"]);
}

#[test]
fn receipt_that_is_not_json() {
    let f = fixture();
    let path = f.log.outside("not-json.txt");
    std::fs::write(&path, "this is not a receipt\n").unwrap();
    vellum_args(&[
        "verify-receipt",
        "--key",
        &f.log.key(),
        path.to_str().unwrap(),
    ])
    .expect_code(2)
    .stderr_has(&["not-json.txt", "is not a receipt"]);
}

#[test]
fn receipt_for_an_index_beyond_the_log() {
    let f = fixture();
    f.log
        .run(&["receipt", "--index", "40"])
        .expect_code(2)
        .stderr_has(&["index 40", "beyond the log"]);
    f.log
        .run(&["receipt", "--index", "18446744073709551615"])
        .expect_code(2)
        .stderr_has(&["beyond the log"]);
}
