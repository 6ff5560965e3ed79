//! The verdict cache: answers the reauthorization classify that follows every completion (S8).
//!
//! `FwpsCompleteOperation0` makes WFP classify the connection again with
//! `FWP_CONDITION_FLAG_IS_REAUTHORIZE`, and a pend there fails with `STATUS_FWP_CANNOT_PEND`
//! (<https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0>,
//! <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0>),
//! so the verdict must be stored before the completion starts. WFP also reauthorizes established
//! connections on policy changes, so entries live until the endpoint's teardown, their expiry, or
//! eviction by newer entries when the cache is full (oldest insertion first).
//!
//! All memory is allocated when the cache is created: a fixed ring of slots and two bucket arrays
//! (a power of two at least the slot count), one indexing the slots by connection key and one by
//! endpoint, each bucket the head of a chain threaded through the slots. Nothing is allocated
//! afterwards (an allocation failure at DISPATCH_LEVEL would be a bugcheck), nothing ever needs to
//! grow or rehash, and an entry costs its slot plus two bucket heads: about 64 bytes, where hash
//! maps reserved to twice the slot count (so that they always rehash in place) cost about 280.
//! With at most one entry per bucket on average, a lookup or an unlink walks a chain of about one
//! slot; the endpoint chains are doubly linked, so an eviction unlinks in O(1) even from an
//! endpoint with many remotes.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::hash::BuildHasher;

use foldhash::fast::FixedState;

use crate::platform::Ticks;
use crate::types::{ConnectionKey, EndpointHandle, Verdict};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct CacheSlot {
    key: Option<ConnectionKey>,
    expires: Ticks,
    /// Next slot in the same key bucket, or `NIL`.
    key_next: u32,
    /// Next and previous slot in the same endpoint bucket, or `NIL`.
    endpoint_next: u32,
    endpoint_prev: u32,
    verdict: Verdict,
}

const EMPTY: CacheSlot = CacheSlot {
    key: None,
    expires: Ticks(0),
    key_next: NIL,
    endpoint_next: NIL,
    endpoint_prev: NIL,
    verdict: Verdict::Block,
};

/// Bounded map from connection to verdict with per-endpoint purge.
pub(crate) struct VerdictCache {
    slots: Vec<CacheSlot>,
    /// Heads of the key chains, indexed by the key's hash.
    by_key: Vec<u32>,
    /// Heads of the endpoint chains, indexed by the endpoint's hash.
    by_endpoint: Vec<u32>,
    key_hasher: FixedState,
    endpoint_hasher: FixedState,
    len: usize,
    /// The ring position the next insertion takes (evicting what is there).
    cursor: u32,
    ttl: Ticks,
}

/// The cache could not allocate its fixed memory.
#[derive(Debug)]
pub(crate) struct CacheAllocError;

/// A bucket array for `slots` entries: a power of two, at least `slots` and at least 1, all `NIL`.
pub(crate) fn try_buckets(slots: usize) -> Option<Vec<u32>> {
    let len = slots.max(1).checked_next_power_of_two()?;
    let mut buckets = Vec::new();
    buckets.try_reserve_exact(len).ok()?;
    buckets.resize(len, NIL);
    Some(buckets)
}

/// The bucket of `hash` in an array of power-of-two length `len`.
pub(crate) fn bucket(hash: u64, len: usize) -> usize {
    (hash as usize) & len.wrapping_sub(1)
}

impl VerdictCache {
    /// Allocates everything the cache will ever use. IRQL: PASSIVE_LEVEL (driver start).
    pub(crate) fn try_new(capacity: u32, ttl: Ticks, seed: u64) -> Result<Self, CacheAllocError> {
        let len = capacity.min(NIL - 1) as usize;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).map_err(|_| CacheAllocError)?;
        slots.resize(len, EMPTY);
        let by_key = try_buckets(len).ok_or(CacheAllocError)?;
        let by_endpoint = try_buckets(len).ok_or(CacheAllocError)?;
        Ok(VerdictCache {
            slots,
            by_key,
            by_endpoint,
            key_hasher: FixedState::with_seed(seed),
            endpoint_hasher: FixedState::with_seed(seed.rotate_left(17)),
            len: 0,
            cursor: 0,
            ttl,
        })
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn key_bucket(&self, key: &ConnectionKey) -> usize {
        bucket(self.key_hasher.hash_one(key), self.by_key.len())
    }

    fn endpoint_bucket(&self, endpoint: EndpointHandle) -> usize {
        bucket(self.endpoint_hasher.hash_one(endpoint), self.by_endpoint.len())
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: &ConnectionKey) -> Option<u32> {
        let mut index = self.by_key.get(self.key_bucket(key)).copied().unwrap_or(NIL);
        while let Some(slot) = self.slots.get(index as usize) {
            if slot.key.as_ref() == Some(key) {
                return Some(index);
            }
            index = slot.key_next;
        }
        None
    }

    /// Records `verdict` for `key`, replacing an older one. IRQL: ≤ DISPATCH_LEVEL, no allocation.
    pub(crate) fn insert(&mut self, key: ConnectionKey, verdict: Verdict, now: Ticks) {
        let expires = now.saturating_add(self.ttl);
        if let Some(index) = self.find(&key) {
            if let Some(slot) = self.slots.get_mut(index as usize) {
                slot.verdict = verdict;
                slot.expires = expires;
            }
            return;
        }
        let capacity = self.slots.len() as u32;
        if capacity == 0 {
            return;
        }
        let index = self.cursor;
        self.cursor = if index + 1 >= capacity { 0 } else { index + 1 };
        self.remove_slot(index);
        let key_bucket = self.key_bucket(&key);
        let endpoint_bucket = self.endpoint_bucket(key.endpoint);
        let (Some(key_head), Some(endpoint_head)) =
            (self.by_key.get(key_bucket).copied(), self.by_endpoint.get(endpoint_bucket).copied())
        else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index as usize) else { return };
        *slot = CacheSlot {
            key: Some(key),
            expires,
            key_next: key_head,
            endpoint_next: endpoint_head,
            endpoint_prev: NIL,
            verdict,
        };
        if let Some(next) = self.slots.get_mut(endpoint_head as usize) {
            next.endpoint_prev = index;
        }
        if let Some(head) = self.by_key.get_mut(key_bucket) {
            *head = index;
        }
        if let Some(head) = self.by_endpoint.get_mut(endpoint_bucket) {
            *head = index;
        }
        self.len += 1;
    }

    /// The cached verdict for `key`, if present and not expired. IRQL: ≤ DISPATCH_LEVEL.
    pub(crate) fn lookup(&mut self, key: &ConnectionKey, now: Ticks) -> Option<Verdict> {
        let index = self.find(key)?;
        let slot = self.slots.get(index as usize)?;
        if slot.expires <= now {
            self.remove_slot(index);
            return None;
        }
        Some(slot.verdict)
    }

    /// Forgets every verdict of `endpoint` (its teardown: the handle value may be reused by a new
    /// endpoint afterwards). IRQL: ≤ DISPATCH_LEVEL.
    pub(crate) fn purge_endpoint(&mut self, endpoint: EndpointHandle) -> usize {
        let mut index = self.by_endpoint.get(self.endpoint_bucket(endpoint)).copied().unwrap_or(NIL);
        let mut purged = 0;
        while let Some(slot) = self.slots.get(index as usize) {
            let next = slot.endpoint_next;
            if slot.key.is_some_and(|key| key.endpoint == endpoint) {
                self.remove_slot(index);
                purged += 1;
            }
            index = next;
        }
        purged
    }

    /// Empties slot `index` if it is in use, unlinking it from its key and endpoint chains.
    fn remove_slot(&mut self, index: u32) {
        let Some(slot) = self.slots.get(index as usize).copied() else { return };
        let Some(key) = slot.key else { return };
        // The key chain is singly linked: find the predecessor (chains average one slot).
        let key_bucket = self.key_bucket(&key);
        let head = self.by_key.get(key_bucket).copied().unwrap_or(NIL);
        if head == index {
            if let Some(head) = self.by_key.get_mut(key_bucket) {
                *head = slot.key_next;
            }
        } else {
            let mut cursor = head;
            while let Some(other) = self.slots.get_mut(cursor as usize) {
                if other.key_next == index {
                    other.key_next = slot.key_next;
                    break;
                }
                cursor = other.key_next;
            }
        }
        // The endpoint chain is doubly linked.
        match self.slots.get_mut(slot.endpoint_prev as usize) {
            Some(prev) => prev.endpoint_next = slot.endpoint_next,
            None => {
                let endpoint_bucket = self.endpoint_bucket(key.endpoint);
                if let Some(head) = self.by_endpoint.get_mut(endpoint_bucket) {
                    *head = slot.endpoint_next;
                }
            }
        }
        if let Some(next) = self.slots.get_mut(slot.endpoint_next as usize) {
            next.endpoint_prev = slot.endpoint_prev;
        }
        if let Some(slot) = self.slots.get_mut(index as usize) {
            *slot = EMPTY;
        }
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use alloc::vec;

    use super::*;
    use crate::types::PendLayer;

    fn key(endpoint: u64, remote: u8) -> ConnectionKey {
        ConnectionKey {
            endpoint: EndpointHandle(endpoint),
            layer: PendLayer::AuthConnect,
            protocol: 17,
            remote_address: [192, 0, 2, remote].into(),
            remote_port: 53,
        }
    }

    #[test]
    fn answers_until_expiry() {
        let mut cache = VerdictCache::try_new(4, Ticks(100), 1).unwrap();
        cache.insert(key(1, 1), Verdict::Permit, Ticks(10));
        assert_eq!(cache.lookup(&key(1, 1), Ticks(109)), Some(Verdict::Permit));
        assert_eq!(cache.lookup(&key(1, 1), Ticks(110)), None);
        assert_eq!(cache.len(), 0, "an expired entry is dropped when seen");
    }

    #[test]
    fn newer_verdict_replaces_older() {
        let mut cache = VerdictCache::try_new(4, Ticks(100), 1).unwrap();
        cache.insert(key(1, 1), Verdict::Permit, Ticks(0));
        cache.insert(key(1, 1), Verdict::Block, Ticks(0));
        assert_eq!(cache.lookup(&key(1, 1), Ticks(1)), Some(Verdict::Block));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn full_cache_evicts_oldest_insertion() {
        let mut cache = VerdictCache::try_new(3, Ticks(1_000), 1).unwrap();
        for remote in 0..5 {
            cache.insert(key(7, remote), Verdict::Permit, Ticks(0));
        }
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.lookup(&key(7, 0), Ticks(1)), None);
        assert_eq!(cache.lookup(&key(7, 1), Ticks(1)), None);
        for remote in 2..5 {
            assert_eq!(cache.lookup(&key(7, remote), Ticks(1)), Some(Verdict::Permit));
        }
        // The endpoint chain survived the evictions: purge finds exactly the live three.
        assert_eq!(cache.purge_endpoint(EndpointHandle(7)), 3);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn purge_forgets_only_that_endpoint() {
        let mut cache = VerdictCache::try_new(8, Ticks(1_000), 1).unwrap();
        cache.insert(key(1, 1), Verdict::Permit, Ticks(0));
        cache.insert(key(2, 1), Verdict::Block, Ticks(0));
        cache.insert(key(1, 2), Verdict::Block, Ticks(0));
        assert_eq!(cache.purge_endpoint(EndpointHandle(1)), 2);
        assert_eq!(cache.lookup(&key(1, 1), Ticks(1)), None);
        assert_eq!(cache.lookup(&key(2, 1), Ticks(1)), Some(Verdict::Block));
        assert_eq!(cache.purge_endpoint(EndpointHandle(1)), 0);
    }

    /// The cache against a reference: the same ring of slots with eviction at the cursor, searched
    /// linearly. Random inserts, lookups (with expiry) and purges over few endpoints and remotes
    /// in a small cache, so chains collide, entries are evicted from the middle of chains and
    /// endpoints have many entries.
    #[test]
    fn matches_a_linear_reference() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let steps = if cfg!(miri) { 300 } else { 20_000 };
        for capacity in [1_u32, 3, 8, 13] {
            let mut cache = VerdictCache::try_new(capacity, Ticks(50), 7).unwrap();
            let mut ring: Vec<Option<(ConnectionKey, Verdict, Ticks)>> = vec![None; capacity as usize];
            let mut cursor = 0;
            let mut now = Ticks(0);
            for _ in 0..steps {
                let k = key(random(5), random(4) as u8);
                match random(10) {
                    0..=3 => {
                        let verdict = if random(2) == 0 { Verdict::Permit } else { Verdict::Block };
                        cache.insert(k, verdict, now);
                        let expires = now.saturating_add(Ticks(50));
                        if let Some(entry) = ring.iter_mut().flatten().find(|entry| entry.0 == k) {
                            *entry = (k, verdict, expires);
                        } else {
                            ring[cursor] = Some((k, verdict, expires));
                            cursor = (cursor + 1) % ring.len();
                        }
                    }
                    4..=7 => {
                        let position = ring.iter().position(|entry| entry.is_some_and(|entry| entry.0 == k));
                        let expected = position.and_then(|position| {
                            let (_, verdict, expires) = ring[position]?;
                            if expires <= now {
                                ring[position] = None;
                                None
                            } else {
                                Some(verdict)
                            }
                        });
                        assert_eq!(cache.lookup(&k, now), expected);
                    }
                    8 => {
                        let endpoint = k.endpoint;
                        let expected = ring.iter().flatten().filter(|entry| entry.0.endpoint == endpoint).count();
                        for entry in &mut ring {
                            if entry.is_some_and(|entry| entry.0.endpoint == endpoint) {
                                *entry = None;
                            }
                        }
                        assert_eq!(cache.purge_endpoint(endpoint), expected);
                    }
                    _ => now = now.saturating_add(Ticks(random(20))),
                }
                assert_eq!(cache.len(), ring.iter().flatten().count());
            }
        }
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut cache = VerdictCache::try_new(0, Ticks(1_000), 1).unwrap();
        cache.insert(key(1, 1), Verdict::Permit, Ticks(0));
        assert_eq!(cache.lookup(&key(1, 1), Ticks(1)), None);
    }
}
