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
//! All memory is allocated when the cache is created: a fixed ring of slots, and hash maps reserved
//! to twice the slot count so that hashbrown always rehashes in place and never allocates on insert
//! (an allocation failure there would be a bugcheck).
#![deny(unsafe_code)]

use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::platform::Ticks;
use crate::types::{ConnectionKey, EndpointHandle, Verdict};

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct CacheSlot {
    key: Option<ConnectionKey>,
    verdict: Verdict,
    expires: Ticks,
    /// Next slot of the same endpoint, or `NIL`.
    endpoint_next: u32,
}

/// Bounded map from connection to verdict with per-endpoint purge.
pub(crate) struct VerdictCache {
    slots: Vec<CacheSlot>,
    by_key: HashMap<ConnectionKey, u32, FixedState>,
    by_endpoint: HashMap<EndpointHandle, u32, FixedState>,
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
        let len = capacity as usize;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).map_err(|_| CacheAllocError)?;
        slots.resize(len, CacheSlot { key: None, verdict: Verdict::Block, expires: Ticks(0), endpoint_next: NIL });
        let mut by_key = HashMap::with_hasher(FixedState::with_seed(seed));
        by_key.try_reserve(len.saturating_mul(2)).map_err(|_| CacheAllocError)?;
        let mut by_endpoint = HashMap::with_hasher(FixedState::with_seed(seed.rotate_left(17)));
        by_endpoint.try_reserve(len.saturating_mul(2)).map_err(|_| CacheAllocError)?;
        Ok(VerdictCache { slots, by_key, by_endpoint, cursor: 0, ttl })
    }

    /// Number of live entries.
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Records `verdict` for `key`, replacing an older one. IRQL: ≤ DISPATCH_LEVEL, no allocation.
    pub(crate) fn insert(&mut self, key: ConnectionKey, verdict: Verdict, now: Ticks) {
        let expires = now.saturating_add(self.ttl);
        if let Some(&index) = self.by_key.get(&key) {
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
        let head = self.by_endpoint.get(&key.endpoint).copied().unwrap_or(NIL);
        if let Some(slot) = self.slots.get_mut(index as usize) {
            *slot = CacheSlot { key: Some(key), verdict, expires, endpoint_next: head };
            self.by_key.insert(key, index);
            self.by_endpoint.insert(key.endpoint, index);
        }
    }

    /// The cached verdict for `key`, if present and not expired. IRQL: ≤ DISPATCH_LEVEL.
    pub(crate) fn lookup(&mut self, key: &ConnectionKey, now: Ticks) -> Option<Verdict> {
        let index = *self.by_key.get(key)?;
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
        let mut index = match self.by_endpoint.remove(&endpoint) {
            Some(head) => head,
            None => return 0,
        };
        let mut purged = 0;
        while let Some(slot) = self.slots.get_mut(index as usize) {
            if let Some(key) = slot.key.take() {
                self.by_key.remove(&key);
                purged += 1;
            }
            index = core::mem::replace(&mut slot.endpoint_next, NIL);
        }
        purged
    }

    /// Empties slot `index` if it is in use, unlinking it from its endpoint's chain.
    fn remove_slot(&mut self, index: u32) {
        let Some(key) = self.slots.get_mut(index as usize).and_then(|slot| slot.key.take()) else {
            return;
        };
        self.by_key.remove(&key);
        let next = self.slots.get(index as usize).map_or(NIL, |slot| slot.endpoint_next);
        let Some(head) = self.by_endpoint.get_mut(&key.endpoint) else {
            return;
        };
        if *head == index {
            if next == NIL {
                self.by_endpoint.remove(&key.endpoint);
            } else {
                *head = next;
            }
            return;
        }
        // Per-endpoint chains are short (one entry per remote of one endpoint), so a walk is cheap.
        let mut cursor = *head;
        while let Some(slot) = self.slots.get_mut(cursor as usize) {
            if slot.endpoint_next == index {
                slot.endpoint_next = next;
                return;
            }
            cursor = slot.endpoint_next;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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

    #[test]
    fn zero_capacity_caches_nothing() {
        let mut cache = VerdictCache::try_new(0, Ticks(1_000), 1).unwrap();
        cache.insert(key(1, 1), Verdict::Permit, Ticks(0));
        assert_eq!(cache.lookup(&key(1, 1), Ticks(1)), None);
    }
}
