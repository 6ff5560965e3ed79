//! A fixed hash index over a slab: one 32-bit word per bucket, holding the head of a chain that the
//! slab threads through its slots (24 bits) and an 8-bit filter of the chain's members.
//!
//! The bucket count is a power of two at least the slot count, allocated once, so a chain holds
//! about one slot and nothing ever grows or rehashes (no allocation after start). The filter holds
//! two bits per member (chosen by hash bits the bucket index does not use), so a lookup for a key
//! that is absent usually reads only its bucket word, not the slots (at one member per bucket,
//! about 7% of such lookups walk a chain anyway): at 1M entries the slots are
//! far outside the CPU caches, while the bucket words (4 bytes each) mostly are not, and a lookup
//! that misses is the common case for some lookups (the endpoint closure that ends every
//! connection usually finds nothing pended). The owner keeps the filter a superset of its
//! members' bits: it sets a member's bit when linking it, and clears or recomputes the filter when
//! it unlinks members.
//!
//! Slot indexes are 24 bits: a slab indexed this way has at most [`MAX_SLOTS`] slots.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

/// No slot.
pub(crate) const NIL: u32 = u32::MAX;

/// The most slots an index can address (slot indexes are 24 bits; the all-ones value is "none").
pub const MAX_SLOTS: u32 = (1 << 24) - 1;

const HEAD_MASK: u32 = (1 << 24) - 1;
const EMPTY: u32 = HEAD_MASK;

/// Where a key lives: its bucket, and its bits in that bucket's filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) bucket: usize,
    pub(crate) tag: u32,
}

/// The bucket words and the hasher (see the module docs).
pub(crate) struct Buckets {
    words: Vec<u32>,
    hasher: FixedState,
}

const fn word(head: u32, filter: u32) -> u32 {
    ((filter & 0xff) << 24) | (head & HEAD_MASK)
}

const fn head_of(word: u32) -> u32 {
    match word & HEAD_MASK {
        EMPTY => NIL,
        head => head,
    }
}

impl Buckets {
    /// Buckets for `slots` slots (at most [`MAX_SLOTS`]), all empty. `None` if there are too many
    /// slots or the allocation fails. IRQL: PASSIVE_LEVEL.
    pub(crate) fn try_new(slots: usize, seed: u64) -> Option<Buckets> {
        if slots > MAX_SLOTS as usize {
            return None;
        }
        let len = slots.max(1).checked_next_power_of_two()?;
        let mut words = Vec::new();
        words.try_reserve_exact(len).ok()?;
        words.resize(len, EMPTY);
        Some(Buckets { words, hasher: FixedState::with_seed(seed) })
    }

    /// The bucket and filter bit of `key`.
    pub(crate) fn locate<K: Hash>(&self, key: &K) -> Located {
        let hash = self.hasher.hash_one(key);
        // The low bits pick the bucket; the top six pick two filter bits.
        let bucket = (hash as usize) & self.words.len().wrapping_sub(1);
        Located { bucket, tag: (1 << (hash >> 61)) | (1 << ((hash >> 58) & 7)) }
    }

    /// The first slot of `bucket`'s chain, or `NIL`.
    pub(crate) fn head(&self, bucket: usize) -> u32 {
        self.words.get(bucket).map_or(NIL, |&word| head_of(word))
    }

    /// `bucket`'s filter.
    pub(crate) fn filter(&self, bucket: usize) -> u32 {
        self.words.get(bucket).map_or(0, |&word| word >> 24)
    }

    /// The first slot of the chain `at` is in, or `NIL` if the filter says the key is not there.
    pub(crate) fn candidates(&self, at: Located) -> u32 {
        match self.words.get(at.bucket) {
            Some(&word) if (word >> 24) & at.tag == at.tag => head_of(word),
            _ => NIL,
        }
    }

    /// Makes `index` (below [`MAX_SLOTS`]) the head of `at`'s chain; returns the previous head
    /// (the new head's successor).
    pub(crate) fn push_front(&mut self, at: Located, index: u32) -> u32 {
        let Some(slot) = self.words.get_mut(at.bucket) else { return NIL };
        let previous = head_of(*slot);
        *slot = word(index, (*slot >> 24) | at.tag);
        previous
    }

    /// Sets `bucket`'s head and filter (after an unlink).
    pub(crate) fn set(&mut self, bucket: usize, head: u32, filter: u32) {
        if let Some(slot) = self.words.get_mut(bucket) {
            *slot = word(head, filter);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn buckets_are_a_power_of_two_covering_the_slots() {
        for (slots, len) in [(0, 1), (1, 1), (2, 2), (3, 4), (4_096, 4_096), (4_097, 8_192)] {
            let buckets = Buckets::try_new(slots, 1).unwrap();
            assert_eq!(buckets.words.len(), len);
            assert!((0..len).all(|bucket| buckets.head(bucket) == NIL));
        }
    }

    #[test]
    fn heads_and_filters_round_trip() {
        let mut buckets = Buckets::try_new(8, 2).unwrap();
        for head in [0, 1, MAX_SLOTS - 1, NIL] {
            buckets.set(3, head, 0xa5);
            assert_eq!((buckets.head(3), buckets.filter(3)), (head, 0xa5));
        }
        assert!(Buckets::try_new(MAX_SLOTS as usize + 1, 0).is_none(), "24-bit slot indexes");
    }

    #[test]
    fn the_filter_rejects_what_was_never_linked() {
        let mut buckets = Buckets::try_new(64, 9).unwrap();
        let at = buckets.locate(&42_u64);
        assert_eq!(buckets.candidates(at), NIL);
        assert_eq!(buckets.push_front(at, 7), NIL);
        assert_eq!(buckets.candidates(at), 7);
        assert_eq!(buckets.push_front(at, 8), 7);
        assert_eq!(buckets.candidates(at), 8);
        // Another key in the same bucket with a bit the chain lacks is rejected without a walk.
        let other = (0_u64..)
            .map(|key| buckets.locate(&key))
            .find(|other| other.bucket == at.bucket && other.tag & !at.tag != 0)
            .unwrap();
        assert_eq!(buckets.candidates(other), NIL);
        buckets.set(at.bucket, NIL, 0);
        assert_eq!(buckets.candidates(at), NIL);
    }
}
