//! Key names and key ids: how a signature line says which key made it.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use crate::error::KeyNameError;

/// The signature type byte of Ed25519 in signed notes and verifier keys.
pub(crate) const ED25519_TYPE: u8 = 0x01;

/// The name of a signing key, such as `vellum/host-1`.
///
/// Valid by construction: non-empty, no Unicode white space, no `+`, no control character.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyName(String);

impl KeyName {
    /// Checks `name` against the signed-note rules for key names.
    pub fn new(name: impl Into<String>) -> Result<Self, KeyNameError> {
        let name = name.into();
        check_name(&name)?;
        Ok(Self(name))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The first error in `name` under the key-name rules, if any.
pub(crate) fn check_name(name: &str) -> Result<(), KeyNameError> {
    if name.is_empty() {
        return Err(KeyNameError::Empty);
    }
    for (offset, c) in name.char_indices() {
        // White space first: "\n" and "\t" are both, and white space is the rule people know.
        if c.is_whitespace() {
            return Err(KeyNameError::Whitespace { offset });
        }
        if c < '\u{20}' {
            return Err(KeyNameError::ControlCharacter { offset });
        }
        if c == '+' {
            return Err(KeyNameError::Plus { offset });
        }
    }
    Ok(())
}

impl FromStr for KeyName {
    type Err = KeyNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for KeyName {
    type Error = KeyNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl AsRef<str> for KeyName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for KeyName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// The 4-byte id of a key, as it appears (big-endian) at the start of each signature.
///
/// Displayed as 8 lowercase hex digits, as in a verifier key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct KeyId(pub [u8; 4]);

impl KeyId {
    /// The id of an Ed25519 key: `SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4]`.
    pub fn ed25519(name: &KeyName, public_key: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(name.as_str().as_bytes())
            .chain_update([b'\n', ED25519_TYPE])
            .chain_update(public_key)
            .finalize();
        let mut id = [0u8; 4];
        id.copy_from_slice(&digest[..4]);
        Self(id)
    }

    /// Parses exactly 8 lowercase hex digits (the form [`Display`](fmt::Display) writes).
    pub(crate) fn from_hex(s: &str) -> Option<Self> {
        let digits = s.as_bytes();
        if digits.len() != 8 {
            return None;
        }
        let mut id = [0u8; 4];
        for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
        }
        Some(Self(id))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a:02x}{b:02x}{c:02x}{d:02x}")
    }
}
