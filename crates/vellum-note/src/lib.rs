//! C2SP signed notes (Ed25519) and C2SP transparency-log checkpoints, as text.
//!
//! This crate turns Vellum's tree heads into the two interoperable text formats that auditors
//! and other tools (Go's `sumdb/note`, the transparency-dev witnesses) understand, and back.
//!
//! # Signed note (<https://c2sp.org/signed-note>)
//!
//! ```text
//! <text, one or more lines, each ending in "\n">
//! <blank line: "\n">
//! — <key name> <base64(key id ‖ signature)>\n      (one line per signature, at least one)
//! ```
//!
//! - The whole note is UTF-8 with no character below U+0020 other than `\n` (so no CR, no tab).
//! - The text is everything before the **last** blank line, its final `\n` included; the spec
//!   lets the text itself contain blank lines. Every signature covers exactly that text.
//! - A signature line is U+2014 EM DASH, a space, the key name, a space, and standard padded
//!   base64 of 4+n bytes: the key id (big-endian `u32`) followed by the signature.
//! - A key name ([`KeyName`]) is non-empty and contains no Unicode white space, no `+` and no
//!   control character.
//! - Ed25519 (signature type `0x01`): the signature is 64 bytes (RFC 8032) and the key id
//!   ([`KeyId`]) is `SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]`.
//! - A verifier key ([`VerifierKey`]) is written
//!   `<key name>+<key id as 8 lowercase hex digits>+<base64(0x01 ‖ 32-byte public key)>`.
//! - [`verify_note`] ignores signatures whose (name, key id) pair is not among the trusted
//!   keys, rejects the note if any signature by a trusted key fails to verify (strict
//!   Ed25519: no small-order keys or points, no non-canonical scalars), and rejects it if no
//!   trusted key signed it.
//!
//! # Checkpoint (<https://c2sp.org/tlog-checkpoint>)
//!
//! The text of a signed note, one field per line, every line non-empty:
//!
//! ```text
//! <origin>\n                   the log's name; Vellum requires it to be a valid key name
//! <tree size>\n                decimal u64, no sign, no leading zeros ("0" for the empty tree)
//! <root hash>\n                standard padded base64 of the 32-byte RFC 6962 root
//! [<extension line>\n]...      optional, opaque
//! ```
//!
//! Vellum signs a checkpoint with the key whose name equals the origin, and
//! [`Checkpoint::open`] insists on that.
//!
//! # Parsing
//!
//! Parsers are strict and total: every malformed input is an error naming what is wrong,
//! never a panic. Base64 must be canonical (padded, no stray bits), so a parsed
//! [`Note`] prints back byte for byte. A note may be at most [`MAX_NOTE_LEN`] bytes with at
//! most [`MAX_SIGNATURES`] signature lines. Nothing is trimmed: a trailing `\r\n` or a missing
//! final newline is an error, so callers reading files must not "fix up" what they read.
//!
//! # Example
//!
//! ```
//! use vellum_merkle::{Hash, TreeSize};
//! use vellum_note::{Checkpoint, KeyName, Signer, VerifierKey};
//!
//! let name: KeyName = "vellum/host-1".parse()?;
//! let signer = Signer::from_seed(name, [7; 32]); // the store keeps the seed
//! let key_line = signer.verifier_key().to_string(); // what `vellum key` prints
//!
//! let checkpoint = Checkpoint {
//!     origin: "vellum/host-1".to_owned(),
//!     size: TreeSize(3),
//!     root: Hash([0; 32]),
//!     extensions: vec![],
//! };
//! let note = checkpoint.sign(&signer)?;
//! assert!(note.starts_with("vellum/host-1\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n— vellum/host-1 "));
//!
//! // An auditor, holding only the key line:
//! let key: VerifierKey = key_line.parse()?;
//! assert_eq!(Checkpoint::open(&note, &key)?, checkpoint);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate deliberately does not do
//!
//! - No I/O, no clocks, no randomness: keys come in as 32-byte seeds, and storing or generating
//!   them is the store's job.
//! - Only Ed25519. Signatures of other types (ECDSA, timestamped cosignatures, ML-DSA) can only
//!   come from keys this crate cannot represent, so [`verify_note`] ignores them as unknown.
//! - No witnessing or cosignature protocol, and no checks *between* checkpoints: whether two
//!   checkpoints are consistent is a question for `vellum-merkle`'s consistency proofs.
//! - No Merkle hashing: a [`Checkpoint`] carries a root, it does not compute one.

mod checkpoint;
mod error;
mod key;
mod name;
mod note;

pub use checkpoint::Checkpoint;
pub use error::{CheckpointError, KeyNameError, NoteError, SignatureLineProblem, VerifierKeyError};
pub use key::{Signer, VerifierKey};
pub use name::{KeyId, KeyName};
pub use note::{MAX_NOTE_LEN, MAX_SIGNATURES, Note, NoteSignature, VerifiedNote, verify_note};
