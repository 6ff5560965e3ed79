//! The per-endpoint pend table: a preallocated slab of entries, indexed by id (slot + generation)
//! and by transport endpoint handle, with an age list for timeouts and delivery order.
//!
//! This is a plain data structure: every method runs under the core's lock, performs no allocation
//! and no call into WFP. The state machine that uses it is documented in [`crate::lifecycle`].
//!
//! # Layout
//! Everything is allocated at start: the slots, and a fixed hash index ([`crate::index`]) whose
//! buckets head chains threaded through the slots, indexing Pended and Completing entries by
//! endpoint. A lookup by endpoint hashes once and walks a chain of about one slot plus the
//! endpoint's own entries (or, for an endpoint with nothing here, usually reads its bucket word
//! alone); nothing ever grows or rehashes.
//!
//! A teardown that must wait for completions in flight keeps its bookkeeping (how many are still
//! outstanding, and its pended notification) *in one of those Completing slots*, the wait's
//! **anchor**: a Completing entry no longer needs its connection's facts, so the room is free, and
//! no table sized for the worst case (a wait per slot) has to be reserved beside the slots. If
//! the anchor's own completion finishes before the others, the slot is **retired**: its id dies
//! (the generation moves on) but it stays out of the free list, holding the wait, until the wait is
//! resolved; a notification whose completions all finished before it was pended waits in its
//! retired anchor, on the ready list, for deferred work to complete it. A retired slot counts as in
//! use (it holds a pended notification).
#![deny(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::index::Buckets;
pub(crate) use crate::index::NIL;
use crate::platform::Ticks;
use crate::types::{ConnectionKey, Direction, EndpointHandle, PendId, Resolution};

/// The claim state of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Not in use; on the free list.
    Free,
    /// Taken by a classify that is calling `FwpsPendOperation0`; not yet visible to any claim.
    Reserved,
    /// Pended and unclaimed: every resolution path may claim it.
    Pended,
    /// Claimed: exactly one path owns it and is completing it (or about to).
    Completing,
    /// Its completion finished, but it anchors a teardown wait that is not resolved yet (or
    /// holds a notification queued for deferred completion). Its id is dead.
    Retired,
}

/// What the connection looked like when it was pended (delivered to user mode).
pub(crate) struct EntryFacts {
    pub(crate) key: ConnectionKey,
    pub(crate) direction: Direction,
    pub(crate) local_address: core::net::IpAddr,
    pub(crate) local_port: u16,
    pub(crate) process_id: u64,
    pub(crate) app_path: Box<[u16]>,
    pub(crate) pended_at: Ticks,
}

/// A teardown waiting for the completions in flight on its endpoint (kept in its anchor slot).
struct Wait<N> {
    /// Completions of the endpoint not finished yet (the anchor's own included).
    outstanding: u32,
    /// The teardown has decided what happens when they finish: complete `pend`, or nothing (it
    /// could not pend its notification). Until then the last completion leaves the wait alone.
    registered: bool,
    /// The pended notification to complete when the last one finishes.
    pend: Option<N>,
}

/// One slot's entry; its variant is the slot's state.
enum Entry<C, N> {
    Free,
    Reserved,
    /// On the age list and on its endpoint's chain.
    Pended {
        context: C,
        facts: EntryFacts,
    },
    /// Claimed, completion in flight. `in_chain`: still on its endpoint's chain (no teardown has
    /// detached it); `anchor`: the slot holding the wait of the teardown waiting for it, or `NIL`.
    Completing {
        endpoint: EndpointHandle,
        in_chain: bool,
        anchor: u32,
    },
    /// The anchor of a teardown wait: Completing while `in_flight`, Retired after.
    Anchor {
        in_flight: bool,
        wait: Wait<N>,
    },
    /// Retired: a pended notification whose completions all finished, on the ready list.
    Ready(N),
}

impl<C, N> Entry<C, N> {
    const fn state(&self) -> SlotState {
        match self {
            Entry::Free => SlotState::Free,
            Entry::Reserved => SlotState::Reserved,
            Entry::Pended { .. } => SlotState::Pended,
            Entry::Completing { .. } | Entry::Anchor { in_flight: true, .. } => SlotState::Completing,
            Entry::Anchor { in_flight: false, .. } | Entry::Ready(_) => SlotState::Retired,
        }
    }
}

pub(crate) struct Slot<C, N> {
    pub(crate) generation: u32,
    /// Free list link (Free), age-list successor (Pended) or ready-list link (Ready).
    next: u32,
    /// Age-list predecessor (Pended).
    prev: u32,
    /// Next slot in the same endpoint bucket (Pended, and Completing while `in_chain`).
    chain_next: u32,
    entry: Entry<C, N>,
}

impl<C, N> Slot<C, N> {
    pub(crate) const fn state(&self) -> SlotState {
        self.entry.state()
    }

    fn endpoint(&self) -> Option<EndpointHandle> {
        match &self.entry {
            Entry::Pended { facts, .. } => Some(facts.key.endpoint),
            Entry::Completing { endpoint, in_chain: true, .. } => Some(*endpoint),
            _ => None,
        }
    }
}

/// The result of winning a claim: everything the winner needs to complete outside the lock.
pub(crate) struct Claimed<C> {
    pub(crate) id: PendId,
    pub(crate) context: C,
    pub(crate) key: ConnectionKey,
    pub(crate) resolution: Resolution,
    /// The entry's app-path copy, taken out so that it is freed after the lock is released (a
    /// pool free under the table's spin lock would lengthen every critical section behind it).
    pub(crate) app_path: Box<[u16]>,
}

/// What became of a teardown's pended notification when it was registered with its wait.
pub(crate) enum Registration<N> {
    /// Completions are still in flight: the last of them completes the notification.
    Waiting,
    /// They had all finished: the notification is queued for deferred work
    /// ([`PendTable::pop_ready`]).
    Queued,
    /// The anchor was not a wait (impossible by construction): complete it now.
    Unexpected(N),
}

/// Why a verdict's id did not name a pended connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictError {
    /// Never issued, or not yet visible to user mode.
    UnknownId,
    /// Issued, but already resolved (answered, timed out, torn down, cleaned up).
    LateVerdict,
    /// Another path (a duplicate verdict, a teardown, a timeout, a cleanup) has claimed this id
    /// and is completing it right now.
    BeingResolved,
    /// The driver is unloading.
    Unloading,
}

/// The table could not allocate its fixed memory.
#[derive(Debug)]
pub(crate) struct TableAllocError;

pub(crate) struct PendTable<C, N> {
    slots: Vec<Slot<C, N>>,
    free_head: u32,
    /// Chains of Pended and in-chain Completing slots by endpoint.
    buckets: Buckets,
    age_head: u32,
    age_tail: u32,
    /// The oldest pended entry not yet delivered to user mode. Delivery takes entries in age order,
    /// so delivered entries always form a prefix of the age list and one cursor suffices.
    deliver_cursor: u32,
    /// Notifications queued for deferred completion (retired anchors, oldest first).
    ready_head: u32,
    ready_tail: u32,
    /// Slots not Free.
    pub(crate) in_use: u32,
    pub(crate) reserved: u32,
    pub(crate) peak_in_use: u32,
}

/// The generation after `generation` (0 is never issued, so a zero id is always unknown).
const fn next_generation(generation: u32) -> u32 {
    match generation.wrapping_add(1) {
        0 => 1,
        g => g,
    }
}

impl<C, N> PendTable<C, N> {
    /// Allocates `capacity` slots and the endpoint index. IRQL: PASSIVE_LEVEL (driver start).
    pub(crate) fn try_new(capacity: u32, seed: u64) -> Result<Self, TableAllocError> {
        let len = capacity.min(crate::index::MAX_SLOTS) as usize;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).map_err(|_| TableAllocError)?;
        for index in 0..len as u32 {
            slots.push(Slot {
                generation: 1,
                next: if index + 1 < len as u32 { index + 1 } else { NIL },
                prev: NIL,
                chain_next: NIL,
                entry: Entry::Free,
            });
        }
        let buckets = Buckets::try_new(len, seed).ok_or(TableAllocError)?;
        Ok(PendTable {
            slots,
            free_head: if len == 0 { NIL } else { 0 },
            buckets,
            age_head: NIL,
            age_tail: NIL,
            deliver_cursor: NIL,
            ready_head: NIL,
            ready_tail: NIL,
            in_use: 0,
            reserved: 0,
            peak_in_use: 0,
        })
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    pub(crate) fn slot(&self, index: u32) -> Option<&Slot<C, N>> {
        self.slots.get(index as usize)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<C, N>> {
        self.slots.get_mut(index as usize)
    }

    /// Takes a free slot for a classify about to pend, or `None` when the table is full.
    pub(crate) fn reserve(&mut self) -> Option<PendId> {
        let index = self.free_head;
        let slot = self.slots.get_mut(index as usize)?;
        self.free_head = slot.next;
        slot.next = NIL;
        slot.entry = Entry::Reserved;
        self.in_use += 1;
        self.reserved += 1;
        self.peak_in_use = self.peak_in_use.max(self.in_use);
        Some(PendId::new(index, slot.generation))
    }

    /// Returns a reserved slot whose pend failed.
    pub(crate) fn unreserve(&mut self, id: PendId) {
        if self.slot(id.slot()).is_some_and(|s| s.state() == SlotState::Reserved && s.generation == id.generation()) {
            self.reserved -= 1;
            self.free(id.slot());
        }
    }

    /// Makes a reserved slot visible: Pended, at the tail of the age list, on its endpoint's chain.
    pub(crate) fn publish(&mut self, id: PendId, context: C, mut facts: EntryFacts) {
        let index = id.slot();
        let tail = self.age_tail;
        if let Some(Entry::Pended { facts: tail_facts, .. }) = self.slot(tail).map(|s| &s.entry) {
            // Keep the age list ordered even if two CPUs read the clock in the other order.
            facts.pended_at = facts.pended_at.max(tail_facts.pended_at);
        }
        if !self.slot(index).is_some_and(|s| s.state() == SlotState::Reserved && s.generation == id.generation()) {
            return;
        }
        let chain_next = self.buckets.push_front(self.buckets.locate(&facts.key.endpoint), index);
        let Some(slot) = self.slot_mut(index) else { return };
        slot.entry = Entry::Pended { context, facts };
        slot.prev = tail;
        slot.next = NIL;
        slot.chain_next = chain_next;
        match self.slot_mut(tail) {
            Some(tail_slot) => tail_slot.next = index,
            None => self.age_head = index,
        }
        self.age_tail = index;
        if self.deliver_cursor == NIL {
            self.deliver_cursor = index;
        }
        self.reserved -= 1;
    }

    /// Pended → Completing for the entry `id` names. The claim: whoever gets `Some` owns the
    /// completion; everyone else gets `None` / an error and does nothing.
    pub(crate) fn claim_by_id(&mut self, id: PendId, resolution: Resolution) -> Result<Claimed<C>, VerdictError> {
        let slot = self.slot(id.slot()).ok_or(VerdictError::UnknownId)?;
        if id.generation() == 0 {
            return Err(VerdictError::UnknownId);
        }
        if slot.generation != id.generation() {
            // Generations only grow (wrapping), so an id from the past is "late"; any other is forged.
            let age = slot.generation.wrapping_sub(id.generation());
            return Err(if age < (1 << 31) { VerdictError::LateVerdict } else { VerdictError::UnknownId });
        }
        match slot.state() {
            SlotState::Pended => {}
            SlotState::Completing => return Err(VerdictError::BeingResolved),
            SlotState::Reserved | SlotState::Free | SlotState::Retired => return Err(VerdictError::UnknownId),
        }
        self.claim_slot(id.slot(), resolution).ok_or(VerdictError::UnknownId)
    }

    /// Claims the oldest pended entry (timeout, service cleanup, unload sweeps).
    pub(crate) fn oldest(&self) -> Option<(u32, Ticks)> {
        let slot = self.slot(self.age_head)?;
        let pended_at = match &slot.entry {
            Entry::Pended { facts, .. } => facts.pended_at,
            _ => Ticks(0),
        };
        Some((self.age_head, pended_at))
    }

    /// The claim itself. `None` if the slot is not Pended. The connection's facts leave the slot
    /// here (a Completing entry needs only its endpoint); the app-path copy goes to the claimer,
    /// who frees it outside the lock.
    pub(crate) fn claim_slot(&mut self, index: u32, resolution: Resolution) -> Option<Claimed<C>> {
        let slot = self.slot_mut(index)?;
        let key = match &slot.entry {
            Entry::Pended { facts, .. } => facts.key,
            _ => return None,
        };
        let completing = Entry::Completing { endpoint: key.endpoint, in_chain: true, anchor: NIL };
        let Entry::Pended { context, facts } = core::mem::replace(&mut slot.entry, completing) else {
            return None;
        };
        let id = PendId::new(index, slot.generation);
        self.unlink_age(index);
        Some(Claimed { id, context, key, resolution, app_path: facts.app_path })
    }

    /// The first Pended entry on `endpoint`'s chain, and how many of its entries are Completing.
    pub(crate) fn scan_endpoint(&self, endpoint: EndpointHandle) -> (Option<u32>, u32) {
        let mut index = self.buckets.candidates(self.buckets.locate(&endpoint));
        let mut completing = 0;
        while let Some(slot) = self.slot(index) {
            if slot.endpoint() == Some(endpoint) {
                match slot.state() {
                    SlotState::Pended => return (Some(index), completing),
                    SlotState::Completing => completing += 1,
                    SlotState::Reserved | SlotState::Free | SlotState::Retired => {}
                }
            }
            index = slot.chain_next;
        }
        (None, completing)
    }

    /// Detaches `endpoint`'s Completing entries (its teardown): no lookup by endpoint finds them
    /// again. If there are any, the first becomes the anchor of a new wait for all of them, and
    /// its index is returned; `None` if no completion is in flight.
    pub(crate) fn detach_endpoint(&mut self, endpoint: EndpointHandle) -> Option<u32> {
        let at = self.buckets.locate(&endpoint);
        let mut index = self.buckets.candidates(at);
        if index == NIL {
            return None;
        }
        let (mut head, mut prev, mut filter) = (index, NIL, 0);
        let (mut anchor, mut outstanding) = (NIL, 0_u32);
        while let Some(slot) = self.slots.get_mut(index as usize) {
            let next = slot.chain_next;
            let member = match &mut slot.entry {
                Entry::Completing { endpoint: own, in_chain, anchor: waits_on } if *own == endpoint && *in_chain => {
                    if anchor == NIL {
                        anchor = index;
                    }
                    *in_chain = false;
                    *waits_on = anchor;
                    true
                }
                _ => false,
            };
            if member {
                slot.chain_next = NIL;
                match self.slots.get_mut(prev as usize) {
                    Some(prev) => prev.chain_next = next,
                    None => head = next,
                }
                outstanding += 1;
            } else {
                // It stays: its bit stays in the recomputed filter.
                if let Some(other) = slot.endpoint() {
                    filter |= self.buckets.locate(&other).tag;
                }
                prev = index;
            }
            index = next;
        }
        self.buckets.set(at.bucket, head, filter);
        let slot = self.slot_mut(anchor)?;
        slot.entry = Entry::Anchor { in_flight: true, wait: Wait { outstanding, registered: false, pend: None } };
        Some(anchor)
    }

    /// Completing → Free after the completion returned (an anchor is retired instead, keeping its
    /// wait). Returns the pended teardown notification to complete now, if this was the last
    /// completion a registered wait was waiting for.
    pub(crate) fn finish(&mut self, id: PendId) -> Option<N> {
        let index = id.slot();
        let slot = self.slot_mut(index)?;
        if slot.generation != id.generation() {
            return None;
        }
        match &mut slot.entry {
            Entry::Completing { endpoint, in_chain, anchor } => {
                let (endpoint, in_chain, anchor) = (*endpoint, *in_chain, *anchor);
                if in_chain {
                    self.unlink_chain(endpoint, index);
                }
                self.free(index);
                self.wait_finished(anchor)
            }
            Entry::Anchor { in_flight: in_flight @ true, .. } => {
                // Its id dies now; the slot keeps the wait until the wait is resolved.
                *in_flight = false;
                slot.generation = next_generation(slot.generation);
                self.wait_finished(index)
            }
            _ => None,
        }
    }

    /// One completion `anchor`'s wait was waiting for has finished. If it was the last and the
    /// wait is registered, the wait is resolved: the anchor is freed and its notification returned.
    fn wait_finished(&mut self, anchor: u32) -> Option<N> {
        let slot = self.slot_mut(anchor)?;
        let Entry::Anchor { in_flight, wait } = &mut slot.entry else { return None };
        wait.outstanding = wait.outstanding.saturating_sub(1);
        if wait.outstanding > 0 || !wait.registered || *in_flight {
            return None;
        }
        let pend = wait.pend.take();
        self.free(anchor);
        pend
    }

    /// The teardown pended its notification: hand it to the wait. IRQL: ≤ DISPATCH_LEVEL.
    pub(crate) fn register_wait(&mut self, anchor: u32, pend: N) -> Registration<N> {
        let tail = self.ready_tail;
        let Some(slot) = self.slot_mut(anchor) else { return Registration::Unexpected(pend) };
        match &mut slot.entry {
            Entry::Anchor { wait, .. } if wait.outstanding > 0 => {
                wait.registered = true;
                wait.pend = Some(pend);
                Registration::Waiting
            }
            Entry::Anchor { in_flight: false, .. } => {
                // They all finished while the notification was being pended: it must not be
                // completed from the classifyFn that pended it, so deferred work does it.
                slot.entry = Entry::Ready(pend);
                slot.next = NIL;
                match self.slot_mut(tail) {
                    Some(tail) => tail.next = anchor,
                    None => self.ready_head = anchor,
                }
                self.ready_tail = anchor;
                Registration::Queued
            }
            _ => Registration::Unexpected(pend),
        }
    }

    /// Completions `anchor`'s wait still waits for (0 if it is not a wait).
    pub(crate) fn wait_outstanding(&self, anchor: u32) -> u32 {
        match self.slot(anchor).map(|slot| &slot.entry) {
            Some(Entry::Anchor { wait, .. }) => wait.outstanding,
            _ => 0,
        }
    }

    /// The teardown stops waiting (its notification could not be pended; it returns now): if
    /// completions are still in flight the last of them frees the anchor, otherwise it is freed
    /// now.
    pub(crate) fn abandon_wait(&mut self, anchor: u32) {
        let Some(slot) = self.slot_mut(anchor) else { return };
        let Entry::Anchor { in_flight, wait } = &mut slot.entry else { return };
        if wait.outstanding > 0 || *in_flight {
            wait.registered = true;
            wait.pend = None;
        } else {
            self.free(anchor);
        }
    }

    /// The oldest notification queued for deferred completion; frees its slot.
    pub(crate) fn pop_ready(&mut self) -> Option<N> {
        let index = self.ready_head;
        let slot = self.slot_mut(index)?;
        if !matches!(slot.entry, Entry::Ready(_)) {
            return None;
        }
        let next = slot.next;
        let Entry::Ready(pend) = core::mem::replace(&mut slot.entry, Entry::Free) else { return None };
        self.ready_head = next;
        if next == NIL {
            self.ready_tail = NIL;
        }
        self.free(index);
        Some(pend)
    }

    /// Visits up to `max` undelivered entries in age order, marking each delivered if `visit`
    /// accepts it (returns true). Returns how many were delivered.
    pub(crate) fn deliver(&mut self, max: usize, mut visit: impl FnMut(PendId, &EntryFacts) -> bool) -> usize {
        let mut delivered = 0;
        while delivered < max {
            let index = self.deliver_cursor;
            let Some(slot) = self.slots.get(index as usize) else { break };
            let Entry::Pended { facts, .. } = &slot.entry else { break };
            if !visit(PendId::new(index, slot.generation), facts) {
                break;
            }
            self.deliver_cursor = slot.next;
            delivered += 1;
        }
        delivered
    }

    /// Pended entries not yet delivered.
    pub(crate) fn has_undelivered(&self) -> bool {
        self.deliver_cursor != NIL
    }

    fn unlink_age(&mut self, index: u32) {
        let Some(slot) = self.slot(index) else { return };
        let (prev, next) = (slot.prev, slot.next);
        match self.slot_mut(prev) {
            Some(p) => p.next = next,
            None => self.age_head = next,
        }
        match self.slot_mut(next) {
            Some(n) => n.prev = prev,
            None => self.age_tail = prev,
        }
        if self.deliver_cursor == index {
            self.deliver_cursor = next;
        }
        if let Some(slot) = self.slot_mut(index) {
            slot.prev = NIL;
            slot.next = NIL;
        }
    }

    /// Takes slot `index` off `endpoint`'s bucket chain. The bucket's filter is cleared when the
    /// chain empties, and otherwise kept (a stale bit costs a walk, never a wrong answer).
    fn unlink_chain(&mut self, endpoint: EndpointHandle, index: u32) {
        let next = self.slot(index).map_or(NIL, |s| s.chain_next);
        if let Some(slot) = self.slot_mut(index) {
            slot.chain_next = NIL;
        }
        let at = self.buckets.locate(&endpoint);
        let head = self.buckets.head(at.bucket);
        if head == index {
            let filter = if next == NIL { 0 } else { self.buckets.filter(at.bucket) };
            self.buckets.set(at.bucket, next, filter);
            return;
        }
        let mut cursor = head;
        while let Some(slot) = self.slots.get_mut(cursor as usize) {
            if slot.chain_next == index {
                slot.chain_next = next;
                return;
            }
            cursor = slot.chain_next;
        }
    }

    fn free(&mut self, index: u32) {
        let free_head = self.free_head;
        let Some(slot) = self.slot_mut(index) else { return };
        slot.entry = Entry::Free;
        slot.generation = next_generation(slot.generation);
        slot.chain_next = NIL;
        slot.prev = NIL;
        slot.next = free_head;
        self.free_head = index;
        self.in_use -= 1;
    }

    /// Reads a Pended entry's context without claiming it. Only for the planted test-then-set bug.
    #[cfg(any(loom, feature = "planted-bugs"))]
    pub(crate) fn peek_pended(&self, id: PendId) -> Option<(C, ConnectionKey)>
    where
        C: Copy,
    {
        let slot = self.slot(id.slot())?;
        if slot.generation != id.generation() {
            return None;
        }
        match &slot.entry {
            Entry::Pended { context, facts } => Some((*context, facts.key)),
            _ => None,
        }
    }

    /// Number of entries in `state`. O(n); for checks and statistics, not hot paths.
    pub(crate) fn count_in_state(&self, state: SlotState) -> u32 {
        self.slots.iter().filter(|s| s.state() == state).count() as u32
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::types::PendLayer;

    /// Contexts are numbers, notifications are names.
    type Table = PendTable<u32, &'static str>;

    fn facts(endpoint: u64) -> EntryFacts {
        EntryFacts {
            key: ConnectionKey {
                endpoint: EndpointHandle(endpoint),
                layer: PendLayer::AuthConnect,
                protocol: 6,
                remote_address: [192, 0, 2, 1].into(),
                remote_port: 443,
            },
            direction: Direction::Outbound,
            local_address: [10, 0, 0, 1].into(),
            local_port: 1234,
            process_id: 1,
            app_path: Box::default(),
            pended_at: Ticks(0),
        }
    }

    fn pended(table: &mut Table, endpoint: u64, context: u32) -> PendId {
        let id = table.reserve().unwrap();
        table.publish(id, context, facts(endpoint));
        id
    }

    #[test]
    fn ids_are_checked_and_die_with_their_entry() {
        let mut table = Table::try_new(2, 0).unwrap();
        let id = pended(&mut table, 1, 10);
        assert_eq!(table.claim_by_id(PendId::from_raw(0), Resolution::Verdict).err(), Some(VerdictError::UnknownId));
        let forged = PendId::new(id.slot(), id.generation() + 5);
        assert_eq!(table.claim_by_id(forged, Resolution::Verdict).err(), Some(VerdictError::UnknownId));
        let out_of_range = PendId::new(99, 1);
        assert_eq!(table.claim_by_id(out_of_range, Resolution::Verdict).err(), Some(VerdictError::UnknownId));
        let claimed = table.claim_by_id(id, Resolution::Verdict).unwrap();
        assert_eq!(claimed.context, 10);
        assert_eq!(table.claim_by_id(id, Resolution::Verdict).err(), Some(VerdictError::BeingResolved));
        assert_eq!(table.finish(id), None);
        assert_eq!(table.claim_by_id(id, Resolution::Verdict).err(), Some(VerdictError::LateVerdict));
        // The slot is reused under a new generation; the old id still cannot reach it.
        let reused = pended(&mut table, 2, 20);
        assert_eq!(reused.slot(), id.slot());
        assert_ne!(reused, id);
        assert_eq!(table.claim_by_id(id, Resolution::Verdict).err(), Some(VerdictError::LateVerdict));
    }

    #[test]
    fn reserved_entries_are_invisible_until_published() {
        let mut table = Table::try_new(1, 0).unwrap();
        let id = table.reserve().unwrap();
        assert!(table.reserve().is_none(), "capacity is a hard ceiling");
        assert_eq!(table.claim_by_id(id, Resolution::Verdict).err(), Some(VerdictError::UnknownId));
        assert!(table.oldest().is_none());
        table.unreserve(id);
        assert_eq!(table.in_use, 0);
        assert!(table.reserve().is_some());
    }

    #[test]
    fn teardown_detaches_and_waits_for_in_flight() {
        let mut table = Table::try_new(4, 0).unwrap();
        let a = pended(&mut table, 1, 1);
        let _b = pended(&mut table, 1, 2);
        let c = pended(&mut table, 2, 3);
        let claimed = table.claim_by_id(a, Resolution::Verdict).unwrap();
        let (next, _) = table.scan_endpoint(EndpointHandle(1));
        let other = table.claim_slot(next.unwrap(), Resolution::Teardown).unwrap();
        assert_eq!(table.finish(other.id), None);
        assert_eq!(table.scan_endpoint(EndpointHandle(1)), (None, 1), "one completion still in flight");
        let anchor = table.detach_endpoint(EndpointHandle(1)).unwrap();
        assert_eq!(anchor, a.slot(), "the in-flight slot anchors the wait");
        assert_eq!(table.wait_outstanding(anchor), 1);
        assert_eq!(table.scan_endpoint(EndpointHandle(1)), (None, 0));
        assert_eq!(table.detach_endpoint(EndpointHandle(1)), None, "nothing left to wait for");
        assert!(matches!(table.register_wait(anchor, "closure 1"), Registration::Waiting));
        // The in-flight completion's finish hands back the waiting notification and frees all.
        assert_eq!(table.finish(claimed.id), Some("closure 1"));
        assert_eq!(table.in_use, 1);
        // Endpoint 2 is untouched.
        assert_eq!(table.scan_endpoint(EndpointHandle(2)).0, Some(c.slot()));
    }

    #[test]
    fn an_anchor_that_finishes_first_is_retired_until_the_wait_resolves() {
        let mut table = Table::try_new(4, 0).unwrap();
        let ids = [pended(&mut table, 7, 1), pended(&mut table, 7, 2), pended(&mut table, 7, 3)];
        let claims: Vec<_> = ids.iter().map(|&id| table.claim_by_id(id, Resolution::Verdict).unwrap()).collect();
        let anchor = table.detach_endpoint(EndpointHandle(7)).unwrap();
        assert_eq!(table.wait_outstanding(anchor), 3);
        let anchor_claim = claims.iter().find(|claim| claim.id.slot() == anchor).unwrap();
        // The anchor's own completion finishes first: its id dies, its slot stays (retired).
        assert_eq!(table.finish(anchor_claim.id), None);
        assert_eq!(table.claim_by_id(anchor_claim.id, Resolution::Verdict).err(), Some(VerdictError::LateVerdict));
        assert_eq!(table.count_in_state(SlotState::Retired), 1);
        assert_eq!(table.in_use, 3, "a retired anchor is in use");
        assert!(matches!(table.register_wait(anchor, "closure"), Registration::Waiting));
        let mut notified = Vec::new();
        for claim in claims.iter().filter(|claim| claim.id.slot() != anchor) {
            notified.extend(table.finish(claim.id));
        }
        assert_eq!(notified, ["closure"], "the last completion completes the notification, once");
        assert_eq!(table.in_use, 0);
        assert_eq!(table.count_in_state(SlotState::Free), 4);
    }

    #[test]
    fn a_notification_pended_after_the_last_completion_is_queued() {
        let mut table = Table::try_new(2, 0).unwrap();
        let id = pended(&mut table, 9, 1);
        let claim = table.claim_by_id(id, Resolution::Verdict).unwrap();
        let anchor = table.detach_endpoint(EndpointHandle(9)).unwrap();
        // The completion finishes before the teardown has pended its notification.
        assert_eq!(table.finish(claim.id), None);
        assert_eq!(table.wait_outstanding(anchor), 0);
        assert!(matches!(table.register_wait(anchor, "late"), Registration::Queued));
        assert_eq!(table.in_use, 1, "held until deferred work completes it");
        assert_eq!(table.pop_ready(), Some("late"));
        assert_eq!(table.pop_ready(), None);
        assert_eq!(table.in_use, 0);
    }

    #[test]
    fn an_abandoned_wait_is_freed_by_whoever_comes_last() {
        // Abandoned while the completion is in flight: its finish frees everything, no notification.
        let mut table = Table::try_new(2, 0).unwrap();
        let id = pended(&mut table, 5, 1);
        let claim = table.claim_by_id(id, Resolution::Verdict).unwrap();
        let anchor = table.detach_endpoint(EndpointHandle(5)).unwrap();
        table.abandon_wait(anchor);
        assert_eq!(table.finish(claim.id), None);
        assert_eq!(table.in_use, 0);
        // Abandoned after it finished: freed at once.
        let id = pended(&mut table, 5, 2);
        let claim = table.claim_by_id(id, Resolution::Verdict).unwrap();
        let anchor = table.detach_endpoint(EndpointHandle(5)).unwrap();
        assert_eq!(table.finish(claim.id), None);
        assert_eq!(table.in_use, 1);
        table.abandon_wait(anchor);
        assert_eq!(table.in_use, 0);
        assert_eq!(table.count_in_state(SlotState::Free), 2);
    }

    #[test]
    fn endpoints_sharing_buckets_stay_apart() {
        // 64 slots, 64 buckets, 200 endpoints: chains mix endpoints.
        let mut table = Table::try_new(64, 3).unwrap();
        let mut live = Vec::new();
        for round in 0..200_u64 {
            let endpoint = round % 50;
            live.push((endpoint, pended(&mut table, endpoint, round as u32)));
            if live.len() == 64 {
                // Tear down the endpoint of the oldest: every entry of it, and nothing else.
                let (victim, _) = *live.first().unwrap();
                while let (Some(index), _) = table.scan_endpoint(EndpointHandle(victim)) {
                    let claim = table.claim_slot(index, Resolution::Teardown).unwrap();
                    assert_eq!(table.finish(claim.id), None);
                }
                assert_eq!(table.detach_endpoint(EndpointHandle(victim)), None);
                live.retain(|&(endpoint, _)| endpoint != victim);
                assert_eq!(table.in_use as usize, live.len());
            }
        }
        for &(endpoint, id) in &live {
            let claim = table.claim_by_id(id, Resolution::Verdict).unwrap();
            assert_eq!(claim.key.endpoint, EndpointHandle(endpoint));
            assert_eq!(table.finish(claim.id), None);
        }
        for endpoint in 0..50 {
            assert_eq!(table.scan_endpoint(EndpointHandle(endpoint)), (None, 0));
        }
        assert_eq!(table.in_use, 0);
    }

    #[test]
    fn delivery_follows_age_order_and_skips_resolved() {
        let mut table = Table::try_new(4, 0).unwrap();
        let a = pended(&mut table, 1, 1);
        let b = pended(&mut table, 2, 2);
        let c = pended(&mut table, 3, 3);
        let mut seen = Vec::new();
        assert_eq!(
            table.deliver(1, |id, _| {
                seen.push(id);
                true
            }),
            1
        );
        let claimed = table.claim_by_id(b, Resolution::Timeout).unwrap();
        table.finish(claimed.id);
        assert_eq!(
            table.deliver(10, |id, _| {
                seen.push(id);
                true
            }),
            1
        );
        assert_eq!(seen, [a, c]);
        assert!(!table.has_undelivered());
        // A visitor that refuses (buffer full) leaves the entry undelivered.
        let d = pended(&mut table, 4, 4);
        assert_eq!(table.deliver(10, |_, _| false), 0);
        assert!(table.has_undelivered());
        assert_eq!(table.deliver(10, |id, _| id == d), 1);
    }
}
