//! The key of a posting: `partition u32 | value hash u64 | offset u32`, 16 bytes big-endian.
//!
//! The log is cut into partitions of [`PART_LEN`] indexes; an event's postings go into its
//! partition. Within one, keys sort by value, then index, so one range scan per partition
//! yields a value's events in log order from any cursor. Partitioning bounds what a batch
//! of new postings rewrites: redb is a copy-on-write B-tree, and postings scattered over the
//! whole log's key space would make every batch copy pages across all of it (its cost would
//! grow with the log); new events only ever land in the last partition or two.
//!
//! Values are hashed ([`crate::fields::hash64`]) so keys have a fixed width and compare as
//! two integers. Two values with equal hashes share postings: candidates are a superset,
//! and every event a query returns is checked on the event itself.

use std::cmp::Ordering;

use redb::{Key, TypeName, Value};

/// log2 of the indexes per partition. (Small in unit tests, so a few hundred events cross
/// partitions.)
#[cfg(not(test))]
pub(crate) const PART_BITS: u32 = 20;
#[cfg(test)]
pub(crate) const PART_BITS: u32 = 6;
/// Indexes per partition.
pub(crate) const PART_LEN: u64 = 1 << PART_BITS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PostingKey {
    pub part: u32,
    pub value: u64,
    pub offset: u32,
}

impl PostingKey {
    /// The key of `index`'s posting for the value hashed to `value`; `None` past 2^52 events.
    pub fn new(value: u64, index: u64) -> Option<PostingKey> {
        Some(PostingKey {
            part: u32::try_from(index >> PART_BITS).ok()?,
            value,
            offset: (index & (PART_LEN - 1)) as u32,
        })
    }

    pub fn index(&self) -> u64 {
        (u64::from(self.part) << PART_BITS) | u64::from(self.offset)
    }

    fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&self.part.to_be_bytes());
        b[4..12].copy_from_slice(&self.value.to_be_bytes());
        b[12..].copy_from_slice(&self.offset.to_be_bytes());
        b
    }

    /// The two big-endian halves: comparing them compares keys.
    fn halves(data: &[u8]) -> (u64, u64) {
        let mut b = [0u8; 16];
        let n = data.len().min(16);
        b[..n].copy_from_slice(&data[..n]);
        let mut hi = [0u8; 8];
        let mut lo = [0u8; 8];
        hi.copy_from_slice(&b[..8]);
        lo.copy_from_slice(&b[8..]);
        (u64::from_be_bytes(hi), u64::from_be_bytes(lo))
    }
}

impl Value for PostingKey {
    type SelfType<'a> = PostingKey;
    type AsBytes<'a> = [u8; 16];

    fn fixed_width() -> Option<usize> {
        Some(16)
    }

    fn from_bytes<'a>(data: &'a [u8]) -> PostingKey
    where
        Self: 'a,
    {
        let (hi, lo) = Self::halves(data);
        PostingKey {
            part: (hi >> 32) as u32,
            value: (hi << 32) | (lo >> 32),
            offset: lo as u32,
        }
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a PostingKey) -> [u8; 16]
    where
        Self: 'b,
    {
        value.to_bytes()
    }

    fn type_name() -> TypeName {
        TypeName::new("vellum_index::PostingKey")
    }
}

impl Key for PostingKey {
    fn compare(data1: &[u8], data2: &[u8]) -> Ordering {
        Self::halves(data1).cmp(&Self::halves(data2))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bytes_round_trip_and_order_like_the_struct() {
        let keys = [
            PostingKey::new(5, 0).unwrap(),
            PostingKey::new(5, 1).unwrap(),
            PostingKey::new(u64::MAX, 7).unwrap(),
            PostingKey::new(0, PART_LEN).unwrap(),
            PostingKey::new(3, 3 * PART_LEN + 9).unwrap(),
        ];
        for a in keys {
            let ab = a.to_bytes();
            assert_eq!(PostingKey::from_bytes(&ab), a);
            for b in keys {
                assert_eq!(PostingKey::compare(&ab, &b.to_bytes()), a.cmp(&b));
            }
        }
        assert_eq!(keys[4].index(), 3 * PART_LEN + 9);
        assert!(PostingKey::new(1, u64::MAX).is_none());
    }
}
