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
//! All memory is allocated when the cache is created: a fixed ring of slots and two fixed hash
//! indexes over it ([`crate::index`]), one by connection key and one by endpoint, whose buckets
//! head chains threaded through the slots. Nothing is allocated afterwards (an allocation failure
//! at DISPATCH_LEVEL would be a bugcheck), nothing ever needs to grow or rehash, and an entry costs
//! its slot plus two bucket words: 64 to 72 bytes on x64, where hash maps reserved to twice the slot count
//! (so that they always rehash in place) cost about 280. A lookup walks a chain of about one slot,
//! and one for an absent key is usually answered by its bucket's filter alone. The endpoint chains
//! are doubly linked, so an eviction unlinks in O(1) even from an endpoint with many remotes.
#![deny(unsafe_code)]

use alloc::vec::Vec;

use crate::index::{Buckets, NIL};
use crate::platform::Ticks;
use crate::types::{ConnectionKey, EndpointHandle, Verdict};

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
    /// Chains of slots by connection key.
    by_key: Buckets,
    /// Chains of slots by endpoint.
    by_endpoint: Buckets,
    len: usize,
    /// The ring position the next insertion takes (evicting what is there).
    cursor: u32,
    ttl: Ticks,
}

/// The cache could not allocate its fixed memory.
#[derive(Debug)]
pub(crate) struct CacheAllocError;

impl VerdictCache {
    /// Allocates everything the cache will ever use. IRQL: PASSIVE_LEVEL (driver start).
    pub(crate) fn try_new(capacity: u32, ttl: Ticks, seed: u64) -> Result<Self, CacheAllocError> {
        let len = capacity.min(crate::index::MAX_SLOTS) as usize;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).map_err(|_| CacheAllocError)?;
        slots.resize(len, EMPTY);
        let by_key = Buckets::try_new(len, seed).ok_or(CacheAllocError)?;
        let by_endpoint = Buckets::try_new(len, seed.rotate_left(17)).ok_or(CacheAllocError)?;
        Ok(VerdictCache { slots, by_key, by_endpoint, len: 0, cursor: 0, ttl })
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: &ConnectionKey) -> Option<u32> {
        let mut index = self.by_key.candidates(self.by_key.locate(key));
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
        let key_next = self.by_key.push_front(self.by_key.locate(&key), index);
        let endpoint_next = self.by_endpoint.push_front(self.by_endpoint.locate(&key.endpoint), index);
        if let Some(next) = self.slots.get_mut(endpoint_next as usize) {
            next.endpoint_prev = index;
        }
        if let Some(slot) = self.slots.get_mut(index as usize) {
            *slot = CacheSlot { key: Some(key), expires, key_next, endpoint_next, endpoint_prev: NIL, verdict };
            self.len += 1;
        }
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
        let mut index = self.by_endpoint.candidates(self.by_endpoint.locate(&endpoint));
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
        // The key chain is singly linked: walk it to the predecessor (chains average one slot),
        // and recompute the bucket's filter from the members that stay.
        let at = self.by_key.locate(&key);
        let mut head = self.by_key.head(at.bucket);
        let mut filter = 0;
        let (mut prev, mut cursor) = (NIL, head);
        while let Some(member) = self.slots.get(cursor as usize) {
            let next = member.key_next;
            if cursor == index {
                match self.slots.get_mut(prev as usize) {
                    Some(prev) => prev.key_next = next,
                    None => head = next,
                }
            } else {
                if let Some(member_key) = &member.key {
                    filter |= self.by_key.locate(member_key).tag;
                }
                prev = cursor;
            }
            cursor = next;
        }
        self.by_key.set(at.bucket, head, filter);
        // The endpoint chain is doubly linked. Its filter is only cleared when the chain empties
        // (a stale bit costs a walk, never a wrong answer).
        match self.slots.get_mut(slot.endpoint_prev as usize) {
            Some(prev) => prev.endpoint_next = slot.endpoint_next,
            None => {
                let at = self.by_endpoint.locate(&key.endpoint);
                let filter = if slot.endpoint_next == NIL { 0 } else { self.by_endpoint.filter(at.bucket) };
                self.by_endpoint.set(at.bucket, slot.endpoint_next, filter);
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
