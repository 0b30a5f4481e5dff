//! The idempotency window: fingerprints of the ids of the most recent events, so that a
//! re-sent id is answered with the index it already has instead of being stored twice.
//! Bounded: it remembers the last `capacity` events (default 1,000,000), and is rebuilt on
//! open from the segments' `.idx` files.
//!
//! Stored events have consecutive indexes, so the window is a ring of fingerprints (the
//! fingerprint of index `i` at `i - start`) and a hash table of indexes found through
//! their fingerprint's first 8 bytes. Each fingerprint is kept once: 16 bytes in the ring
//! and an 8-byte index (and a control byte) in the table: about 36 MB for 1,000,000 ids,
//! less than half of a map from fingerprint to index beside a queue of both. Its pages are
//! touched by every bulk load, so its size shows in `vellum append`.
//!
//! The window grows with the log, doubling, up to the room its capacity needs, and is not
//! allocated whole up front: the table's slots are spread at random over its memory, so a
//! full-size table would have every page of it faulted in (and zeroed) by the first few
//! thousand appends of a new or small log, on the writer thread, between two syncs.

use std::collections::VecDeque;

use hashbrown::HashTable;

use crate::segment::Fingerprint;

/// Fingerprints are truncated SHA-256, already uniformly random: their first 8 bytes are
/// the hash.
fn hash(fp: &Fingerprint) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&fp[..8]);
    u64::from_le_bytes(b)
}

/// The fingerprint of `index` in a ring whose first is that of `start`.
fn slot(ring: &VecDeque<Fingerprint>, start: u64, index: u64) -> Option<&Fingerprint> {
    let at = usize::try_from(index.checked_sub(start)?).ok()?;
    ring.get(at)
}

#[derive(Debug)]
pub(crate) struct IdWindow {
    /// The indexes in the window, each found by its fingerprint.
    table: HashTable<u64>,
    /// The fingerprints of indexes `start..start + ring.len()`, in order.
    ring: VecDeque<Fingerprint>,
    start: u64,
    capacity: usize,
    /// How many ids the window grows to hold (the capacity and some slack). A commit
    /// larger than the slack grows it past that, to what it needs; [`IdWindow::trim`]
    /// gives the memory back only beyond twice the room (the table with the ring), so
    /// that such commits, which may come one after another, do not grow and shrink it
    /// each time.
    room: usize,
}

/// Room beyond the capacity: the ids of an append not yet known to be stored (see
/// [`IdWindow::trim`]); a larger append grows the window while it is laid out.
const SLACK: usize = 1 << 16;

/// The fewest ids a window grows by.
const MIN_GROWTH: usize = 1 << 10;

/// A commit of this many ids or more (a bulk load) grows the window at once to its room,
/// or to [`BULK_ROOM`] ids if that is less: the load is about to fill it, and growing it
/// step by step would rehash the table at every step.
const BULK: usize = 1 << 12;

/// The most a bulk commit grows the window to at once (about 36 MB of ring and table).
const BULK_ROOM: usize = (1 << 20) + SLACK;

impl IdWindow {
    /// An empty window that will remember up to `capacity` ids; it allocates as ids come.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            table: HashTable::new(),
            ring: VecDeque::new(),
            start: 0,
            capacity,
            room: capacity.saturating_add(SLACK.min(capacity)),
        }
    }

    /// Makes room for `more` ids beyond those held, at once: at least doubling (for a bulk
    /// load, to the room or [`BULK_ROOM`]), and up to the room; past it, to what is needed.
    pub(crate) fn reserve(&mut self, more: usize) {
        let len = self.ring.len();
        let want = len.saturating_add(more);
        if self.capacity == 0 {
            return;
        }
        if want <= self.ring.capacity() {
            // The table too, at once (a no-op when it has the room): grown id by id, it
            // would double in the middle of the commit.
            let (ring, start) = (&self.ring, self.start);
            self.table
                .reserve(more, |&i| slot(ring, start, i).map_or(0, hash));
            return;
        }
        let target = if want > self.room {
            // A quarter more than it holds, so that inserting id by id stays linear.
            want.max(len.saturating_add(len / 4))
        } else {
            let doubled = want.max(len.saturating_mul(2)).max(MIN_GROWTH);
            let bulk = if more >= BULK {
                self.room.min(BULK_ROOM)
            } else {
                0
            };
            doubled.max(bulk).min(self.room)
        };
        self.grow_to(target);
    }

    /// Room for `target` ids in the ring and the table; `target` is at least what the ring
    /// holds.
    fn grow_to(&mut self, target: usize) {
        self.ring.reserve_exact(target - self.ring.len());
        let (ring, start) = (&self.ring, self.start);
        self.table
            .reserve(target.saturating_sub(self.table.len()), |&i| {
                slot(ring, start, i).map_or(0, hash)
            });
    }

    /// Sized exactly for `n` ids about to be read back (on open), not grown to a bulk
    /// load's first step: a small log keeps a small window.
    pub(crate) fn reserve_exact(&mut self, n: usize) {
        let n = n.min(self.room);
        if self.capacity != 0 && n > self.ring.capacity() {
            self.grow_to(n);
        }
    }

    /// One past the newest index remembered.
    fn end(&self) -> u64 {
        self.start + self.ring.len() as u64
    }

    fn fingerprint(&self, index: u64) -> Option<&Fingerprint> {
        slot(&self.ring, self.start, index)
    }

    pub(crate) fn get(&self, fp: &Fingerprint) -> Option<u64> {
        self.table
            .find(hash(fp), |&i| self.fingerprint(i) == Some(fp))
            .copied()
    }

    /// Remembers `fp` as stored at `index`: the index after the newest remembered (stored
    /// events have consecutive indexes). After a gap, which the store never makes, the
    /// window starts again from `index`. Nothing is forgotten to make room until
    /// [`IdWindow::trim`]: an append refused after its ids were added ([`IdWindow::forget_from`])
    /// leaves the window as it was.
    pub(crate) fn insert(&mut self, fp: Fingerprint, index: u64) {
        if self.capacity == 0 {
            return;
        }
        if index != self.end() {
            self.table.clear();
            self.ring.clear();
            self.start = index;
        }
        // Callers reserve for a whole commit (`reserve`) or read-back (`reserve_exact`):
        // this grows the window only for one that did not, and costs one comparison else.
        if self.ring.len() == self.ring.capacity() {
            self.reserve(1);
        }
        let (ring, start) = (&self.ring, self.start);
        let at = |i: u64| slot(ring, start, i);
        match self.table.entry(
            hash(&fp),
            |&i| at(i) == Some(&fp),
            |&i| at(i).map_or(0, hash),
        ) {
            // Only if the window was grown on reopen: the newer index is the answer.
            hashbrown::hash_table::Entry::Occupied(mut e) => *e.get_mut() = index,
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(index);
            }
        }
        self.ring.push_back(fp);
    }

    /// Forgets the oldest ids past the capacity (once a commit's ids are there to stay),
    /// and gives back what an append larger than the room grew the window by, so that its
    /// memory stays bounded.
    pub(crate) fn trim(&mut self) {
        while self.ring.len() > self.capacity {
            self.evict_oldest();
        }
        // Only past twice the room, so that commits larger than the slack, one after
        // another, find the room there.
        if self.ring.capacity() > 2 * self.room {
            self.ring.shrink_to(self.room);
        }
        // The table to what the ring's ids need (a no-op unless it has more slots): it
        // doubles when the slots evictions leave marked run out (every ten-odd times the
        // window's size in appends), and would otherwise keep that for good.
        let (ring, start) = (&self.ring, self.start);
        self.table
            .shrink_to(ring.capacity(), |&i| slot(ring, start, i).map_or(0, hash));
    }

    /// Drops index `i`'s table entry (if it still points at `i`).
    fn unlink(&mut self, i: u64, fp: &Fingerprint) {
        if let Ok(e) = self.table.find_entry(hash(fp), |&j| j == i) {
            e.remove();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(fp) = self.ring.pop_front() {
            self.unlink(self.start, &fp);
            self.start += 1;
        }
    }

    /// Forgets every index `< end` (pruned events).
    pub(crate) fn forget_below(&mut self, end: u64) {
        while self.start < end && !self.ring.is_empty() {
            self.evict_oldest();
        }
    }

    /// Forgets every index `>= from` (a write that failed after ids were provisionally added).
    pub(crate) fn forget_from(&mut self, from: u64) {
        while self.end() > from {
            let Some(fp) = self.ring.pop_back() else {
                break;
            };
            self.unlink(self.end(), &fp);
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
    fn remembers_the_last_capacity_ids_growing_only_to_its_room() {
        let mut w = IdWindow::new(3);
        assert_eq!(
            w.ring.capacity(),
            0,
            "nothing allocated before the first id"
        );
        for i in 0..10u8 {
            w.insert(fp(i), u64::from(i));
            w.trim();
            assert!(w.ring.len() <= 3);
            assert!(w.ring.capacity() <= w.room, "after inserting {i}");
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

    /// Fingerprints as random as truncated SHA-256 (SplitMix64's finalizer): evenly spaced
    /// ones would leave no marked slots behind evictions.
    fn fp_of(i: u64) -> Fingerprint {
        let mut z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let mut f = [0u8; 16];
        f[..8].copy_from_slice(&z.to_le_bytes());
        f[8..].copy_from_slice(&i.to_le_bytes());
        f
    }

    #[test]
    fn grows_with_the_log_not_to_its_capacity_at_once() {
        let mut w = IdWindow::new(1_000_000);
        for i in 0..5_000 {
            w.insert(fp_of(i), i);
        }
        w.trim();
        // Doubling from the smallest step: a few thousand slots, not a million.
        assert!(w.ring.capacity() < 20_000, "ring {}", w.ring.capacity());
        assert!(w.table.capacity() < 40_000, "table {}", w.table.capacity());
        for i in 0..5_000 {
            assert_eq!(w.get(&fp_of(i)), Some(i));
        }
        // A bulk load takes the whole room at once.
        let mut bulk = IdWindow::new(1_000_000);
        bulk.reserve(BULK);
        assert_eq!(bulk.ring.capacity(), bulk.room);
        // A huge window does not: a bulk commit takes a first step of BULK_ROOM.
        let mut huge = IdWindow::new(100_000_000);
        huge.reserve(BULK);
        assert_eq!(huge.ring.capacity(), BULK_ROOM);
        // Grown ahead in one step for an append of more than twice the room, it gives
        // the memory back once the append is in.
        w.reserve(3_000_000);
        assert!(
            w.ring.capacity() >= 3_005_000,
            "an append larger than the room grows it"
        );
        w.trim();
        assert!(w.ring.capacity() <= w.room);
        assert!(w.table.capacity() <= 2 * w.room);
    }

    /// A window larger than a bulk commit's first step: once full, a commit neither grows
    /// nor shrinks it (each would copy the ring and rehash the table on the writer).
    #[test]
    fn a_full_window_larger_than_a_bulk_step_stays_put() {
        let capacity = BULK_ROOM + 5_000;
        let mut w = IdWindow::new(capacity);
        w.reserve(capacity);
        for i in 0..capacity as u64 {
            w.insert(fp_of(i), i);
        }
        w.trim();
        // The first commit past full grows it to its room, once.
        let next = capacity as u64;
        w.reserve(1);
        w.insert(fp_of(next), next);
        w.trim();
        assert_eq!(w.ring.capacity(), w.room);
        let (ring, table) = (w.ring.capacity(), w.table.capacity());
        for i in next + 1..next + 4 {
            w.reserve(1);
            w.insert(fp_of(i), i);
            w.trim();
            assert_eq!((w.ring.capacity(), w.table.capacity()), (ring, table));
        }
        assert_eq!(w.ring.len(), capacity);
        assert_eq!(w.get(&fp_of(next + 3)), Some(next + 3));
        assert_eq!(w.get(&fp_of(2)), None);
    }

    /// Commits larger than the slack on a full window, one after another: the first grows
    /// it, the next ones find the room there (no copy of the ring, no rehash each time).
    #[test]
    fn commits_larger_than_the_slack_do_not_grow_and_shrink_the_window_each_time() {
        let capacity = 1_000;
        let mut w = IdWindow::new(capacity);
        let mut next = 0u64;
        let mut commit = |w: &mut IdWindow, n: u64| {
            w.reserve(n as usize);
            for i in next..next + n {
                w.insert(fp_of(i), i);
            }
            next += n;
            w.trim();
        };
        commit(&mut w, capacity as u64);
        // 1,500: past the room; 2,700: the table then needs more than twice the room's
        // slots, the ring not. Fifty commits each: the slots evictions leave marked run
        // out several times (the table doubles in the commit, and is given back).
        for size in [1_500, 2_700] {
            commit(&mut w, size);
            let (ring, table) = (w.ring.capacity(), w.table.allocation_size());
            assert!(ring <= 2 * w.room);
            for _ in 0..50 {
                commit(&mut w, size);
                assert_eq!(
                    (w.ring.capacity(), w.table.allocation_size()),
                    (ring, table),
                    "commits of {size}"
                );
            }
        }
        assert_eq!(w.ring.len(), capacity);
        assert_eq!(w.get(&fp_of(next - 1)), Some(next - 1));
    }

    /// A full window taking small commits for fifty times its size: the slots evictions
    /// leave marked run out again and again, and the table, doubled each time, is given
    /// back (it used to keep the doubled size for good).
    #[test]
    fn a_full_window_keeps_its_size_through_many_evictions() {
        let capacity = 1_000;
        let mut w = IdWindow::new(capacity);
        let mut next = 0u64;
        let mut sizes = Vec::new();
        for _ in 0..5_000 {
            w.reserve(10);
            for i in next..next + 10 {
                w.insert(fp_of(i), i);
            }
            next += 10;
            w.trim();
            if next > 2 * capacity as u64 {
                sizes.push((w.ring.capacity(), w.table.allocation_size()));
            }
        }
        sizes.dedup();
        assert_eq!(sizes.len(), 1, "the window's memory changed: {sizes:?}");
    }

    /// Reading back a small log sizes the window for it, not for a bulk load.
    #[test]
    fn a_window_read_back_is_sized_for_what_it_holds() {
        let mut w = IdWindow::new(1_000_000);
        w.reserve_exact(5_000);
        assert!(w.ring.capacity() < 10_000, "ring {}", w.ring.capacity());
    }

    #[test]
    fn an_append_larger_than_the_room_gives_its_memory_back() {
        let mut w = IdWindow::new(10);
        for i in 0..1000 {
            w.insert(fp_of(i), i);
        }
        assert!(w.ring.capacity() > w.room, "the append grew it");
        w.trim();
        assert!(w.ring.capacity() <= w.room && w.table.capacity() <= 2 * w.room);
        assert_eq!(w.get(&fp_of(989)), None);
        for i in 990..1000 {
            assert_eq!(w.get(&fp_of(i)), Some(i));
        }
    }

    /// What the window must answer: the last `capacity` inserted, minus what was forgotten.
    #[derive(Default)]
    struct Model {
        kept: Vec<(Fingerprint, u64)>,
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Insert the next index with fingerprint `[n; 16]`, unless already remembered
        /// (as the writer does: a remembered id is a duplicate).
        Append(u8),
        ForgetBelow(u8),
        ForgetFrom(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            8 => any::<u8>().prop_map(Op::Append),
            1 => any::<u8>().prop_map(Op::ForgetBelow),
            1 => any::<u8>().prop_map(Op::ForgetFrom),
        ]
    }

    proptest::proptest! {
        #[test]
        fn answers_as_a_list_of_the_last_ids_would(
            capacity in 1usize..12,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut w = IdWindow::new(capacity);
            let mut model = Model::default();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let f = fp(n % 16);
                        let want = model.kept.iter().rev().find(|(k, _)| *k == f).map(|&(_, i)| i);
                        proptest::prop_assert_eq!(w.get(&f), want);
                        if want.is_none() {
                            w.insert(f, next);
                            w.trim();
                            model.kept.push((f, next));
                            if model.kept.len() > capacity {
                                model.kept.remove(0);
                            }
                            next += 1;
                        }
                    }
                    Op::ForgetBelow(n) => {
                        let end = next.saturating_sub(u64::from(n % 8));
                        w.forget_below(end);
                        model.kept.retain(|&(_, i)| i >= end);
                    }
                    Op::ForgetFrom(n) => {
                        // A failed commit: its indexes are handed out again.
                        let from = next.saturating_sub(u64::from(n % 4));
                        w.forget_from(from);
                        model.kept.retain(|&(_, i)| i < from);
                        next = from;
                    }
                }
                // Nothing forgotten lingers in the table.
                proptest::prop_assert_eq!(w.table.len(), model.kept.len());
                for n in 0..16u8 {
                    let f = fp(n);
                    let want = model.kept.iter().rev().find(|(k, _)| *k == f).map(|&(_, i)| i);
                    proptest::prop_assert_eq!(w.get(&f), want, "fingerprint {}", n);
                }
            }
        }
    }
}
