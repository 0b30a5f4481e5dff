//! Signed notes: parsing, printing and verification.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{NoteError, SignatureLineProblem};
use crate::key::VerifierKey;
use crate::name::{KeyId, KeyName};

/// The largest note, in bytes, that this crate parses or produces (1 MiB).
pub const MAX_NOTE_LEN: usize = 1 << 20;

/// The most signature lines a note may have (the limit Go's `sumdb/note` uses; the spec
/// requires accepting at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// What starts every signature line: U+2014 EM DASH and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A syntactically valid signed note whose signatures have **not** been checked.
///
/// Only [`verify_note`] (or [`Note::verify`]) says whether the text can be trusted. A note
/// from [`Note::parse`] prints back exactly as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// The signed text, final newline included, separating blank line excluded.
    pub text: String,
    /// The signatures, in the order they appear.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line of a note: who claims to have signed, and the signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name on the line.
    pub name: KeyName,
    /// The key id (the first 4 decoded bytes).
    pub key_id: KeyId,
    /// The signature (the decoded bytes after the key id; at least one byte).
    pub signature: Vec<u8>,
}

/// The text of a note that at least one trusted key has validly signed.
///
/// Only [`verify_note`] and [`Note::verify`] make one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedNote {
    /// The signed text, final newline included.
    pub text: String,
    /// The names of the trusted keys that signed it, each once, in signature order.
    pub verified_by: Vec<KeyName>,
}

impl Note {
    /// Parses a signed note without checking its signatures.
    pub fn parse(s: &str) -> Result<Note, NoteError> {
        if s.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLong {
                len: s.len(),
                max: MAX_NOTE_LEN,
            });
        }
        check_characters(s)?;
        if !s.ends_with('\n') {
            return Err(NoteError::MissingFinalNewline);
        }
        // The text ends at the last blank line: the text may hold blank lines, the signature
        // lines cannot.
        let separator = s.rfind("\n\n").ok_or(NoteError::MissingSeparator)?;
        let (text, signature_block) = (&s[..=separator], &s[separator + 2..]);
        if signature_block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let first_line = text.matches('\n').count() + 2;
        let mut signatures = Vec::new();
        for (i, line) in signature_block.split_terminator('\n').enumerate() {
            if i == MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures {
                    max: MAX_SIGNATURES,
                });
            }
            let signature = parse_signature_line(line).map_err(|problem| {
                NoteError::MalformedSignatureLine {
                    line: first_line + i,
                    problem,
                }
            })?;
            signatures.push(signature);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Parses a signed note from bytes, which must be UTF-8.
    pub fn from_bytes(bytes: &[u8]) -> Result<Note, NoteError> {
        if bytes.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLong {
                len: bytes.len(),
                max: MAX_NOTE_LEN,
            });
        }
        let s = std::str::from_utf8(bytes).map_err(|_| NoteError::InvalidUtf8)?;
        Note::parse(s)
    }

    /// Checks the signatures against the trusted `keys`; see [`verify_note`].
    pub fn verify(self, keys: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
        let mut verified_by: Vec<KeyName> = Vec::new();
        for signature in &self.signatures {
            let mut candidates = keys.iter().filter(|key| key.matches(signature)).peekable();
            if candidates.peek().is_none() {
                // Unknown (name, key id): someone else's signature, e.g. a witness's.
                continue;
            }
            if !candidates.any(|key| key.verifies(&self.text, &signature.signature)) {
                return Err(NoteError::InvalidSignature {
                    name: signature.name.clone(),
                    key_id: signature.key_id,
                });
            }
            if !verified_by.contains(&signature.name) {
                verified_by.push(signature.name.clone());
            }
        }
        if verified_by.is_empty() {
            return Err(NoteError::NoTrustedSignature);
        }
        Ok(VerifiedNote {
            text: self.text,
            verified_by,
        })
    }
}

/// Parses `note` and verifies it against the trusted `keys`.
///
/// Signatures whose (name, key id) pair matches no trusted key are ignored, even if the name
/// or the id alone matches one. Every signature whose pair does match must verify, or the
/// whole note is rejected ([`NoteError::InvalidSignature`]). At least one must, or the note is
/// rejected ([`NoteError::NoTrustedSignature`]).
pub fn verify_note(note: &str, keys: &[VerifierKey]) -> Result<VerifiedNote, NoteError> {
    Note::parse(note)?.verify(keys)
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for signature in &self.signatures {
            writeln!(f, "{signature}")?;
        }
        Ok(())
    }
}

impl fmt::Display for NoteSignature {
    /// The signature line, without its final newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.0);
        bytes.extend_from_slice(&self.signature);
        write!(
            f,
            "{SIGNATURE_PREFIX}{} {}",
            self.name,
            STANDARD.encode(bytes)
        )
    }
}

/// Checks that `text` can be signed: non-empty, newline-terminated, no control characters,
/// not over the size limit.
pub(crate) fn check_text(text: &str) -> Result<(), NoteError> {
    if text.len() > MAX_NOTE_LEN {
        return Err(NoteError::TooLong {
            len: text.len(),
            max: MAX_NOTE_LEN,
        });
    }
    check_characters(text)?;
    if !text.ends_with('\n') {
        return Err(NoteError::MissingFinalNewline);
    }
    Ok(())
}

/// Rejects characters below U+0020 other than newline.
fn check_characters(s: &str) -> Result<(), NoteError> {
    match s.char_indices().find(|&(_, c)| c < ' ' && c != '\n') {
        Some((offset, c)) => Err(NoteError::ControlCharacter {
            offset,
            code: u32::from(c),
        }),
        None => Ok(()),
    }
}

/// Parses `— <name> <base64(key id ‖ signature)>` (without the newline).
fn parse_signature_line(line: &str) -> Result<NoteSignature, SignatureLineProblem> {
    let rest = line
        .strip_prefix(SIGNATURE_PREFIX)
        .ok_or(SignatureLineProblem::MissingEmDash)?;
    let (name, encoded) = rest
        .split_once(' ')
        .ok_or(SignatureLineProblem::MissingSignature)?;
    let name = KeyName::new(name).map_err(SignatureLineProblem::InvalidKeyName)?;
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| SignatureLineProblem::InvalidBase64)?;
    match bytes.split_first_chunk::<4>() {
        Some((&key_id, signature)) if !signature.is_empty() => Ok(NoteSignature {
            name,
            key_id: KeyId(key_id),
            signature: signature.to_vec(),
        }),
        _ => Err(SignatureLineProblem::TooShort { len: bytes.len() }),
    }
}
