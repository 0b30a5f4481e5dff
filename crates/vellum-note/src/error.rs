//! The crate's error types, one per thing being parsed.
//!
//! Messages never echo the rejected input itself (it may be large or hostile); they say where
//! the problem is and what the rule is.

use thiserror::Error;

use crate::name::{KeyId, KeyName};

/// Why a string is not a valid [`KeyName`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyNameError {
    /// The name is the empty string.
    #[error("key name is empty")]
    Empty,
    /// The name contains a Unicode white-space character.
    #[error("key name contains white space at byte {offset}")]
    Whitespace {
        /// Byte offset of the character in the name.
        offset: usize,
    },
    /// The name contains `+`, which separates the fields of a verifier key.
    #[error("key name contains '+' at byte {offset}")]
    Plus {
        /// Byte offset of the character in the name.
        offset: usize,
    },
    /// The name contains a control character (below U+0020).
    #[error("key name contains a control character at byte {offset}")]
    ControlCharacter {
        /// Byte offset of the character in the name.
        offset: usize,
    },
}

/// Why a string is not a valid [`VerifierKey`](crate::VerifierKey).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VerifierKeyError {
    /// Not three fields `<name>+<key id>+<key>`.
    #[error("verifier key is not of the form <name>+<8 hex digit key id>+<base64 key>")]
    Malformed,
    /// The name field is not a valid key name.
    #[error("verifier key name: {0}")]
    InvalidName(#[source] KeyNameError),
    /// The key id field is not exactly 8 lowercase hex digits.
    #[error("verifier key id is not 8 lowercase hex digits")]
    InvalidKeyId,
    /// The key field is not canonical standard padded base64.
    #[error("verifier key material is not valid base64")]
    InvalidBase64,
    /// The key's signature type byte is not `0x01` (Ed25519).
    #[error("unsupported signature type {0:#04x} (only Ed25519, 0x01, is supported)")]
    UnsupportedType(u8),
    /// The key material is not a type byte followed by a 32-byte public key.
    #[error("Ed25519 public key is {0} bytes, expected 32")]
    WrongKeyLength(usize),
    /// The 32 bytes are not a usable Ed25519 public key (not a curve point, or of small order).
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    /// The stated key id is not the one computed from the name and the public key.
    #[error("verifier key id {stated} does not match the computed key id {computed}")]
    KeyIdMismatch {
        /// The key id written in the verifier key.
        stated: KeyId,
        /// The key id computed from the name and public key.
        computed: KeyId,
    },
}

/// What is wrong with one signature line of a note.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignatureLineProblem {
    /// The line does not start with U+2014 EM DASH and a space.
    #[error("does not start with \"— \" (U+2014 EM DASH, space)")]
    MissingEmDash,
    /// There is no space between the key name and the signature.
    #[error("has no space between key name and signature")]
    MissingSignature,
    /// The key name is invalid.
    #[error("invalid key name: {0}")]
    InvalidKeyName(KeyNameError),
    /// The signature is not canonical standard padded base64.
    #[error("signature is not valid base64")]
    InvalidBase64,
    /// The decoded signature is shorter than a 4-byte key id plus one byte.
    #[error("signature is {len} bytes, shorter than a key id plus a signature")]
    TooShort {
        /// Decoded length in bytes.
        len: usize,
    },
}

/// Errors parsing, signing or verifying a signed note.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum NoteError {
    // --- The input is not a well-formed note (the sender is at fault). ---
    /// The note (or text to sign) is longer than [`MAX_NOTE_LEN`](crate::MAX_NOTE_LEN).
    #[error("note is {len} bytes, over the limit of {max}")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not UTF-8.
    #[error("note is not valid UTF-8")]
    InvalidUtf8,
    /// A character below U+0020 other than newline (for example CR or tab).
    #[error("note contains control character U+{code:04X} at byte {offset}")]
    ControlCharacter {
        /// Byte offset of the character.
        offset: usize,
        /// The character's code point.
        code: u32,
    },
    /// The note, or the text to sign, is empty or does not end with a newline.
    #[error("note text is empty or does not end with a newline")]
    MissingFinalNewline,
    /// There is no blank line between the text and the signatures.
    #[error("note has no blank line separating text and signatures")]
    MissingSeparator,
    /// There are no signature lines after the blank line.
    #[error("note has no signature lines")]
    NoSignatures,
    /// More signature lines than [`MAX_SIGNATURES`](crate::MAX_SIGNATURES).
    #[error("note has more than {max} signature lines")]
    TooManySignatures {
        /// The limit.
        max: usize,
    },
    /// A signature line is malformed.
    #[error("note line {line}: signature line {problem}")]
    MalformedSignatureLine {
        /// 1-based line number within the note.
        line: usize,
        /// What is wrong with it.
        problem: SignatureLineProblem,
    },

    // --- The note is well-formed but not trustworthy. ---
    /// A signature by a trusted key does not verify (tampered text or signature).
    #[error("signature by trusted key {name}+{key_id} does not verify")]
    InvalidSignature {
        /// The key's name.
        name: KeyName,
        /// The key's id.
        key_id: KeyId,
    },
    /// No trusted key signed the note.
    #[error("note is not signed by any trusted key")]
    NoTrustedSignature,

    // --- The caller asked for something that cannot be signed (our side is at fault). ---
    /// A checkpoint was to be signed by a key whose name is not the checkpoint's origin.
    #[error("checkpoint origin {origin:?} is not the signer's key name {signer}")]
    OriginMismatch {
        /// The checkpoint's origin.
        origin: String,
        /// The signer's key name.
        signer: KeyName,
    },
    /// A checkpoint was to be signed whose fields do not form a valid checkpoint.
    #[error("refusing to sign an invalid checkpoint: {0}")]
    InvalidCheckpoint(#[source] Box<CheckpointError>),
}

/// Errors parsing or opening a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed note around the checkpoint is malformed or not validly signed.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The text is empty or does not end with a newline.
    #[error("checkpoint text is empty or does not end with a newline")]
    MissingFinalNewline,
    /// A character below U+0020 other than newline.
    #[error("checkpoint line {line} contains a control character")]
    ControlCharacter {
        /// 1-based line number.
        line: usize,
    },
    /// An empty line; every line of a checkpoint is non-empty.
    #[error("checkpoint line {line} is empty")]
    EmptyLine {
        /// 1-based line number.
        line: usize,
    },
    /// Fewer than the three lines origin, tree size and root hash.
    #[error("checkpoint has {lines} lines, needs at least origin, tree size and root hash")]
    MissingLines {
        /// How many lines there were.
        lines: usize,
    },
    /// The origin is not a valid key name.
    #[error("checkpoint origin: {0}")]
    InvalidOrigin(#[source] KeyNameError),
    /// The tree size is not a decimal `u64` without sign or leading zeros.
    #[error("checkpoint tree size is not a decimal u64 without leading zeros")]
    InvalidTreeSize,
    /// The root hash is not canonical padded base64 of exactly 32 bytes.
    #[error("checkpoint root hash is not base64 of 32 bytes")]
    InvalidRootHash,
    /// An extension line contains a newline (only possible in a constructed [`Checkpoint`]).
    ///
    /// [`Checkpoint`]: crate::Checkpoint
    #[error("checkpoint extension {index} contains a newline")]
    NewlineInExtension {
        /// 0-based index into `extensions`.
        index: usize,
    },
    /// The checkpoint's origin is not the name of the key that signed it.
    #[error("checkpoint origin {origin:?} is not the verifier key's name {key_name}")]
    OriginMismatch {
        /// The checkpoint's origin.
        origin: String,
        /// The verifier key's name.
        key_name: KeyName,
    },
}
