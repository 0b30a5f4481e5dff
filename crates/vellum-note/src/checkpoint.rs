//! Checkpoints: a log's signed tree head as the text of a signed note.

use std::fmt::Write as _;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use vellum_merkle::{Hash, TreeSize};

use crate::error::{CheckpointError, NoteError};
use crate::key::{Signer, VerifierKey};
use crate::name::check_name;
use crate::note::verify_note;

/// A log's tree head: origin, tree size, root hash and optional extension lines.
///
/// The fields are public so a log can build one; [`Checkpoint::sign`] refuses one whose
/// fields would not print as a valid checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, e.g. `vellum/host-1`; a valid key name (no spaces, no `+`).
    pub origin: String,
    /// The number of leaves in the tree.
    pub size: TreeSize,
    /// The RFC 6962 root hash of the tree at `size`.
    pub root: Hash,
    /// Opaque extension lines, each non-empty and without newline (Vellum writes none).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// Parses checkpoint text (the text of the signed note, final newline included).
    pub fn parse_text(text: &str) -> Result<Checkpoint, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            if line.is_empty() {
                return Err(CheckpointError::EmptyLine { line: i + 1 });
            }
            if line.chars().any(|c| c < ' ') {
                return Err(CheckpointError::ControlCharacter { line: i + 1 });
            }
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::MissingLines { lines: lines.len() });
        };
        check_name(origin).map_err(CheckpointError::InvalidOrigin)?;
        Ok(Checkpoint {
            origin: (*origin).to_owned(),
            size: parse_tree_size(size).ok_or(CheckpointError::InvalidTreeSize)?,
            root: parse_root(root).ok_or(CheckpointError::InvalidRootHash)?,
            extensions: extensions.iter().map(|&line| line.to_owned()).collect(),
        })
    }

    /// The checkpoint text: origin, size, base64 root and extensions, one per line.
    ///
    /// For a checkpoint from [`parse_text`](Self::parse_text) this is the text it was parsed
    /// from. Fields that break the format (see [`sign`](Self::sign)) are written as they are.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size.0,
            STANDARD.encode(self.root.0)
        );
        for extension in &self.extensions {
            // Writing to a String cannot fail.
            let _ = writeln!(text, "{extension}");
        }
        text
    }

    /// Signs the checkpoint as a signed note; the signer's key name must be the origin.
    pub fn sign(&self, signer: &Signer) -> Result<String, NoteError> {
        self.check_fields()
            .map_err(|e| NoteError::InvalidCheckpoint(Box::new(e)))?;
        if signer.name() != self.origin.as_str() {
            return Err(NoteError::OriginMismatch {
                origin: self.origin.clone(),
                signer: signer.name().clone(),
            });
        }
        signer.sign(&self.to_text())
    }

    /// Verifies a signed checkpoint against the log's key and parses it.
    ///
    /// The note must carry a valid signature by `key` (signatures by other keys, such as
    /// witnesses, are ignored), and the checkpoint's origin must be the key's name.
    pub fn open(note: &str, key: &VerifierKey) -> Result<Checkpoint, CheckpointError> {
        let verified = verify_note(note, std::slice::from_ref(key))?;
        let checkpoint = Checkpoint::parse_text(&verified.text)?;
        if key.name() != checkpoint.origin.as_str() {
            return Err(CheckpointError::OriginMismatch {
                origin: checkpoint.origin,
                key_name: key.name().clone(),
            });
        }
        Ok(checkpoint)
    }

    /// Checks that [`to_text`](Self::to_text) would parse back to `self`.
    fn check_fields(&self) -> Result<(), CheckpointError> {
        check_name(&self.origin).map_err(CheckpointError::InvalidOrigin)?;
        for (index, extension) in self.extensions.iter().enumerate() {
            let line = index + 4;
            if extension.is_empty() {
                return Err(CheckpointError::EmptyLine { line });
            }
            if extension.contains('\n') {
                return Err(CheckpointError::NewlineInExtension { index });
            }
            if extension.chars().any(|c| c < ' ') {
                return Err(CheckpointError::ControlCharacter { line });
            }
        }
        Ok(())
    }
}

/// A decimal `u64` with no sign, no leading zeros (except `0` itself) and nothing else.
fn parse_tree_size(s: &str) -> Option<TreeSize> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return None;
    }
    s.parse().ok().map(TreeSize)
}

/// Canonical standard padded base64 of exactly 32 bytes.
fn parse_root(s: &str) -> Option<Hash> {
    let bytes = STANDARD.decode(s).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Hash)
}
