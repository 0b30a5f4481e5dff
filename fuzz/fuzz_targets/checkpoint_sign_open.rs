//! Checkpoints by structure: sign fuzzed checkpoint fields, open the note, then tamper with it.
//!
//! Checks: `sign` accepts exactly the checkpoints whose text parses back to themselves (it may
//! also refuse one too long for a note); a signed checkpoint opens with the signer's key to the
//! same checkpoint and with no other key; a tampered note never opens to a different
//! checkpoint; a verifier key prints and parses back to itself.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vellum_merkle::{Hash, TreeSize};
use vellum_note::{Checkpoint, KeyName, NoteError, Signer, VerifierKey};

#[derive(Arbitrary, Debug)]
struct Input {
    origin: String,
    size: u64,
    root: [u8; 32],
    extensions: Vec<String>,
    seed: [u8; 32],
    /// Byte edits to the signed note: (position, new byte).
    edits: Vec<(u16, u8)>,
    /// Bytes inserted at a position of the signed note.
    insert: Option<(u16, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let Ok(name) = KeyName::new(input.origin.clone()) else {
        return;
    };
    let signer = Signer::from_seed(name, input.seed);
    let key = signer.verifier_key();
    let key_line = key.to_string();
    let key_again: VerifierKey = key_line.parse().expect("a verifier key line parses");
    assert_eq!(key_again, key);
    assert_eq!(key_again.to_string(), key_line);

    let checkpoint = Checkpoint {
        origin: input.origin,
        size: TreeSize(input.size),
        root: Hash(input.root),
        extensions: input.extensions,
    };
    let round_trips = Checkpoint::parse_text(&checkpoint.to_text()).as_ref() == Ok(&checkpoint);
    let note = match checkpoint.sign(&signer) {
        Ok(note) => {
            assert!(
                round_trips,
                "signed a checkpoint that does not parse back: {checkpoint:?}"
            );
            note
        }
        Err(NoteError::TooLong { .. }) => return,
        Err(e) => {
            assert!(
                !round_trips,
                "refused a valid checkpoint ({e}): {checkpoint:?}"
            );
            return;
        }
    };
    assert_eq!(Checkpoint::open(&note, &key).as_ref(), Ok(&checkpoint));

    let other = Signer::from_seed(key.name().clone(), [0x55; 32]).verifier_key();
    if other != key {
        assert!(
            Checkpoint::open(&note, &other).is_err(),
            "opened with another key"
        );
    }

    let mut tampered = note.clone().into_bytes();
    for &(pos, byte) in &input.edits {
        let len = tampered.len();
        tampered[usize::from(pos) % len] = byte;
    }
    if let Some((pos, bytes)) = &input.insert {
        let at = usize::from(*pos) % (tampered.len() + 1);
        tampered.splice(at..at, bytes.iter().copied());
    }
    let Ok(tampered) = String::from_utf8(tampered) else {
        return;
    };
    if let Ok(opened) = Checkpoint::open(&tampered, &key) {
        assert_eq!(
            opened, checkpoint,
            "a tampered note opened to another checkpoint\nsigned:   {note:?}\ntampered: {tampered:?}"
        );
    }
});
