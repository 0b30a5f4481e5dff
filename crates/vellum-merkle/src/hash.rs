//! The 32-byte hash type and the three RFC 6962 hash functions: leaf, interior node, empty tree.
//!
//! These sit on the store's hot path (one `leaf_hash` per event, about one `node_hash` per
//! event), so they hash straight from the caller's bytes into a fresh SHA-256 state: no
//! buffer, no allocation.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{HashLenError, HexError};

/// Domain-separation prefix of a leaf hash (RFC 6962 §2.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of an interior node hash (RFC 6962 §2.1).
const NODE_PREFIX: u8 = 0x01;

/// A SHA-256 output: a leaf hash, an interior node hash or a tree root.
///
/// `Debug` and `Display` print lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The length of a hash in bytes.
    pub const LEN: usize = 32;

    /// Reads a hash from exactly 32 bytes; any other length is an error.
    pub fn from_slice(b: &[u8]) -> Result<Hash, HashLenError> {
        <[u8; 32]>::try_from(b)
            .map(Hash)
            .map_err(|_| HashLenError { got: b.len() })
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(s: &str) -> Result<Hash, HexError> {
        let digits = s.as_bytes();
        if digits.len() != 2 * Self::LEN {
            return Err(HexError::Length { got: digits.len() });
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
                return Err(HexError::Digit);
            };
            *byte = (hi << 4) | lo;
        }
        Ok(Hash(out))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(2 * Self::LEN);
        for b in self.0 {
            s.push(char::from(HEX_DIGITS[usize::from(b >> 4)]));
            s.push(char::from(HEX_DIGITS[usize::from(b & 0x0f)]));
        }
        s
    }
}

impl From<[u8; 32]> for Hash {
    fn from(bytes: [u8; 32]) -> Self {
        Hash(bytes)
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({self})")
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The hash of one leaf: SHA-256(0x00 ‖ data).
#[inline]
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(data);
    Hash(h.finalize().into())
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
#[inline]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the empty tree: SHA-256 of nothing (`e3b0c442…b855`).
pub fn empty_root() -> Hash {
    Hash(Sha256::new().finalize().into())
}

/// MTH over a slice of leaf hashes (the RFC 6962 §2.1 recursion), any length including 0.
///
/// For the root of a tree that is being appended to, keep a [`crate::Frontier`] instead:
/// this function rehashes every interior node.
pub fn root_of_leaves(leaves: &[Hash]) -> Hash {
    // Recursion depth is at most log2(len) + 1.
    match leaves {
        [] => empty_root(),
        [only] => *only,
        _ => {
            let (left, right) = leaves.split_at(split_point_usize(leaves.len()));
            node_hash(&root_of_leaves(left), &root_of_leaves(right))
        }
    }
}

/// The largest power of two strictly less than `n`, for `n >= 2`.
fn split_point_usize(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(
            empty_root().to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(root_of_leaves(&[]), empty_root());
    }

    #[test]
    fn hex_round_trip() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_hex().to_uppercase()), Ok(h));
        assert_eq!(h.to_string(), h.to_hex());
        assert_eq!(format!("{h:?}"), format!("Hash({})", h.to_hex()));
        assert_eq!(Hash::from_hex("ab"), Err(HexError::Length { got: 2 }));
        assert_eq!(Hash::from_hex(&"g".repeat(64)), Err(HexError::Digit));
    }

    #[test]
    fn from_slice_wants_32_bytes() {
        assert_eq!(Hash::from_slice(&[7; 32]), Ok(Hash([7; 32])));
        assert_eq!(Hash::from_slice(&[7; 31]), Err(HashLenError { got: 31 }));
        assert_eq!(Hash::from_slice(&[]), Err(HashLenError { got: 0 }));
    }

    #[test]
    fn split_points() {
        assert_eq!(split_point_usize(2), 1);
        assert_eq!(split_point_usize(3), 2);
        assert_eq!(split_point_usize(4), 2);
        assert_eq!(split_point_usize(5), 4);
        assert_eq!(split_point_usize(usize::MAX), 1 << (usize::BITS - 1));
    }
}
