//! Ed25519 signing and verifier keys in their signed-note forms.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};

use crate::error::{NoteError, VerifierKeyError};
use crate::name::{ED25519_TYPE, KeyId, KeyName};
use crate::note::{MAX_NOTE_LEN, Note, NoteSignature, check_text};

/// An Ed25519 signing key with its name; signs note texts.
///
/// Holds the secret key (wiped from memory on drop); its `Debug` output shows only the name
/// and key id.
pub struct Signer {
    name: KeyName,
    key: SigningKey,
    key_id: KeyId,
}

impl Signer {
    /// The signer for the Ed25519 key with this 32-byte seed (the RFC 8032 private key).
    pub fn from_seed(name: KeyName, seed: [u8; 32]) -> Self {
        let key = SigningKey::from_bytes(&seed);
        let key_id = KeyId::ed25519(&name, key.verifying_key().as_bytes());
        Self { name, key, key_id }
    }

    /// The key's name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public half, to hand to verifiers.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` and returns the whole signed note: the text, a blank line and one
    /// signature line.
    ///
    /// `text` must be non-empty, end with `\n` and contain no control character other than
    /// `\n`, and the note must fit in [`MAX_NOTE_LEN`] bytes.
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let note = Note {
            text: text.to_owned(),
            signatures: vec![self.signature_for(text)?],
        }
        .to_string();
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLong {
                len: note.len(),
                max: MAX_NOTE_LEN,
            });
        }
        Ok(note)
    }

    /// One signature over `text`, to add to a note's signatures (for example a cosignature).
    pub fn signature_for(&self, text: &str) -> Result<NoteSignature, NoteError> {
        check_text(text)?;
        Ok(NoteSignature {
            name: self.name.clone(),
            key_id: self.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        })
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("name", &self.name)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A trusted Ed25519 public key with its name, in the form
/// `<name>+<8 hex digit key id>+<base64(0x01 ‖ 32-byte public key)>`.
///
/// Parsing is strict: the key id must be the one computed from the name and key, the type
/// byte must be `0x01`, the key must be a valid Ed25519 point not of small order, and
/// nothing (such as a trailing newline) may surround it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: KeyName,
    key_id: KeyId,
    key: VerifyingKey,
}

impl VerifierKey {
    /// The key's name.
    pub fn name(&self) -> &KeyName {
        &self.name
    }

    /// The key's id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Whether `signature` claims to be by this key: same name and same key id.
    pub(crate) fn matches(&self, signature: &NoteSignature) -> bool {
        self.name == signature.name && self.key_id == signature.key_id
    }

    /// Whether `signature` is a 64-byte Ed25519 signature by this key over `text` that passes
    /// strict verification (RFC 8032 plus no small-order points, canonical encodings).
    pub(crate) fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        let Ok(bytes) = <&[u8; 64]>::try_from(signature) else {
            return false;
        };
        let signature = Signature::from_bytes(bytes);
        self.key.verify_strict(text.as_bytes(), &signature).is_ok()
    }
}

impl FromStr for VerifierKey {
    type Err = VerifierKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // The name has no '+' and the id is hex, but base64 may contain '+': split twice only.
        let (name, rest) = s.split_once('+').ok_or(VerifierKeyError::Malformed)?;
        let (id, key) = rest.split_once('+').ok_or(VerifierKeyError::Malformed)?;
        let name = KeyName::new(name).map_err(VerifierKeyError::InvalidName)?;
        let stated = KeyId::from_hex(id).ok_or(VerifierKeyError::InvalidKeyId)?;
        let key = STANDARD
            .decode(key)
            .map_err(|_| VerifierKeyError::InvalidBase64)?;
        let (&key_type, key) = key
            .split_first()
            .ok_or(VerifierKeyError::WrongKeyLength(0))?;
        if key_type != ED25519_TYPE {
            return Err(VerifierKeyError::UnsupportedType(key_type));
        }
        let key =
            <&[u8; 32]>::try_from(key).map_err(|_| VerifierKeyError::WrongKeyLength(key.len()))?;
        let key = VerifyingKey::from_bytes(key).map_err(|_| VerifierKeyError::InvalidPublicKey)?;
        if key.is_weak() {
            return Err(VerifierKeyError::InvalidPublicKey);
        }
        let computed = KeyId::ed25519(&name, key.as_bytes());
        if computed != stated {
            return Err(VerifierKeyError::KeyIdMismatch { stated, computed });
        }
        Ok(Self {
            name,
            key_id: computed,
            key,
        })
    }
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("VerifierKey")
            .field(&format_args!("{self}"))
            .finish()
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut material = [0u8; 33];
        material[0] = ED25519_TYPE;
        material[1..].copy_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            self.key_id,
            STANDARD.encode(material)
        )
    }
}
