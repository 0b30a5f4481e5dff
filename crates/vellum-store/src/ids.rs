//! The idempotency window: fingerprints of the ids of the most recent events, so that a
//! re-sent id is answered with the index it already has instead of being stored twice.
//! Bounded: it remembers the last `capacity` events (default 1,000,000), and is rebuilt on
//! open from the segments' `.idx` files.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::segment::Fingerprint;

/// Fingerprints are already uniformly random; hashing them again would be wasted work.
#[derive(Default)]
pub(crate) struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

#[derive(Debug)]
pub(crate) struct IdWindow {
    map: HashMap<Fingerprint, u64, BuildHasherDefault<FingerprintHasher>>,
    order: VecDeque<(Fingerprint, u64)>,
    capacity: usize,
}

impl IdWindow {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::with_capacity_and_hasher(capacity.min(1 << 20), Default::default()),
            order: VecDeque::with_capacity(capacity.min(1 << 20)),
            capacity,
        }
    }

    pub(crate) fn get(&self, fp: &Fingerprint) -> Option<u64> {
        self.map.get(fp).copied()
    }

    /// Remembers `fp` as stored at `index`; indexes must be inserted in increasing order.
    pub(crate) fn insert(&mut self, fp: Fingerprint, index: u64) {
        if self.capacity == 0 {
            return;
        }
        // Make room first, so the queue never grows past the capacity it was allocated with.
        while self.order.len() >= self.capacity {
            match self.order.pop_front() {
                Some((old, at)) => {
                    if self.map.get(&old) == Some(&at) {
                        self.map.remove(&old);
                    }
                }
                None => break,
            }
        }
        self.map.insert(fp, index);
        self.order.push_back((fp, index));
    }

    /// Forgets every index `< end` (pruned events).
    pub(crate) fn forget_below(&mut self, end: u64) {
        while let Some(&(fp, at)) = self.order.front() {
            if at >= end {
                break;
            }
            self.order.pop_front();
            if self.map.get(&fp) == Some(&at) {
                self.map.remove(&fp);
            }
        }
    }

    /// Forgets every index `>= from` (a write that failed after ids were provisionally added).
    pub(crate) fn forget_from(&mut self, from: u64) {
        while let Some(&(fp, at)) = self.order.back() {
            if at < from {
                break;
            }
            self.order.pop_back();
            if self.map.get(&fp) == Some(&at) {
                self.map.remove(&fp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(n: u8) -> Fingerprint {
        [n; 16]
    }

    #[test]
    fn remembers_the_last_capacity_ids_without_growing() {
        let mut w = IdWindow::new(3);
        let allocated = w.order.capacity();
        for i in 0..10u8 {
            w.insert(fp(i), u64::from(i));
            assert!(w.order.len() <= 3);
            assert_eq!(w.order.capacity(), allocated, "after inserting {i}");
        }
        for i in 0..7u8 {
            assert_eq!(w.get(&fp(i)), None, "{i} should be forgotten");
        }
        for i in 7..10u8 {
            assert_eq!(w.get(&fp(i)), Some(u64::from(i)));
        }
        w.forget_from(9);
        assert_eq!(w.get(&fp(9)), None);
        w.forget_below(8);
        assert_eq!(w.get(&fp(7)), None);
        assert_eq!(w.get(&fp(8)), Some(8));
    }
}
