//! The per-endpoint pend table: a preallocated slab of entries, indexed by id (slot + generation)
//! and by transport endpoint handle, with an age list for timeouts and delivery order.
//!
//! This is a plain data structure: every method runs under the core's lock, performs no allocation
//! and no call into WFP. The state machine that uses it is documented in [`crate::lifecycle`].
#![deny(unsafe_code)]

use alloc::vec::Vec;

use foldhash::fast::FixedState;
use hashbrown::HashMap;

use crate::platform::Ticks;
use crate::types::{ConnectionKey, Direction, EndpointHandle, PendId, Resolution};

pub(crate) const NIL: u32 = u32::MAX;

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
}

/// What the connection looked like when it was pended (delivered to user mode).
pub(crate) struct EntryFacts {
    pub(crate) key: ConnectionKey,
    pub(crate) direction: Direction,
    pub(crate) local_address: core::net::IpAddr,
    pub(crate) local_port: u16,
    pub(crate) process_id: u64,
    pub(crate) app_path: Vec<u16>,
    pub(crate) pended_at: Ticks,
}

pub(crate) struct Slot<C> {
    pub(crate) generation: u32,
    pub(crate) state: SlotState,
    /// Free list link (Free) or age-list successor (Pended).
    next: u32,
    /// Age-list predecessor (Pended).
    prev: u32,
    /// Next slot of the same endpoint, while `in_endpoint_chain`.
    endpoint_next: u32,
    in_endpoint_chain: bool,
    /// The endpoint's teardown is waiting for this slot's in-flight completion.
    pub(crate) teardown_waiting: bool,
    pub(crate) context: Option<C>,
    pub(crate) facts: Option<EntryFacts>,
}

/// The result of winning a claim: everything the winner needs to complete outside the lock.
pub(crate) struct Claimed<C> {
    pub(crate) id: PendId,
    pub(crate) context: C,
    pub(crate) key: ConnectionKey,
    pub(crate) resolution: Resolution,
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

pub(crate) struct PendTable<C> {
    slots: Vec<Slot<C>>,
    free_head: u32,
    by_endpoint: HashMap<EndpointHandle, u32, FixedState>,
    age_head: u32,
    age_tail: u32,
    /// The oldest pended entry not yet delivered to user mode. Delivery takes entries in age order,
    /// so delivered entries always form a prefix of the age list and one cursor suffices.
    deliver_cursor: u32,
    /// Slots not Free.
    pub(crate) in_use: u32,
    pub(crate) reserved: u32,
    pub(crate) peak_in_use: u32,
}

impl<C> PendTable<C> {
    /// Allocates `capacity` slots and the endpoint index. IRQL: PASSIVE_LEVEL (driver start).
    pub(crate) fn try_new(capacity: u32, seed: u64) -> Result<Self, TableAllocError> {
        let len = capacity.min(NIL - 1) as usize;
        let mut slots = Vec::new();
        slots.try_reserve_exact(len).map_err(|_| TableAllocError)?;
        for index in 0..len as u32 {
            slots.push(Slot {
                generation: 1,
                state: SlotState::Free,
                next: if index + 1 < len as u32 { index + 1 } else { NIL },
                prev: NIL,
                endpoint_next: NIL,
                in_endpoint_chain: false,
                teardown_waiting: false,
                context: None,
                facts: None,
            });
        }
        let mut by_endpoint = HashMap::with_hasher(FixedState::with_seed(seed));
        // Twice the slots, so hashbrown never needs to grow (it rehashes in place while at most
        // half full) and an insert never allocates.
        by_endpoint.try_reserve(len.saturating_mul(2)).map_err(|_| TableAllocError)?;
        Ok(PendTable {
            slots,
            free_head: if len == 0 { NIL } else { 0 },
            by_endpoint,
            age_head: NIL,
            age_tail: NIL,
            deliver_cursor: NIL,
            in_use: 0,
            reserved: 0,
            peak_in_use: 0,
        })
    }

    pub(crate) fn capacity(&self) -> u32 {
        self.slots.len() as u32
    }

    pub(crate) fn slot(&self, index: u32) -> Option<&Slot<C>> {
        self.slots.get(index as usize)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<C>> {
        self.slots.get_mut(index as usize)
    }

    /// Takes a free slot for a classify about to pend, or `None` when the table is full.
    pub(crate) fn reserve(&mut self) -> Option<PendId> {
        let index = self.free_head;
        let slot = self.slots.get_mut(index as usize)?;
        self.free_head = slot.next;
        slot.next = NIL;
        slot.state = SlotState::Reserved;
        self.in_use += 1;
        self.reserved += 1;
        self.peak_in_use = self.peak_in_use.max(self.in_use);
        Some(PendId::new(index, slot.generation))
    }

    /// Returns a reserved slot whose pend failed.
    pub(crate) fn unreserve(&mut self, id: PendId) {
        if self.slot(id.slot()).is_some_and(|s| s.state == SlotState::Reserved && s.generation == id.generation()) {
            self.reserved -= 1;
            self.free(id.slot());
        }
    }

    /// Makes a reserved slot visible: Pended, at the tail of the age list, on its endpoint's chain.
    pub(crate) fn publish(&mut self, id: PendId, context: C, mut facts: EntryFacts) {
        let index = id.slot();
        let tail = self.age_tail;
        if let Some(tail_slot) = self.slot(tail).and_then(|s| s.facts.as_ref()) {
            // Keep the age list ordered even if two CPUs read the clock in the other order.
            facts.pended_at = facts.pended_at.max(tail_slot.pended_at);
        }
        let endpoint = facts.key.endpoint;
        let chain_head = self.by_endpoint.get(&endpoint).copied().unwrap_or(NIL);
        let Some(slot) = self.slot_mut(index) else { return };
        if slot.state != SlotState::Reserved || slot.generation != id.generation() {
            return;
        }
        slot.state = SlotState::Pended;
        slot.context = Some(context);
        slot.facts = Some(facts);
        slot.teardown_waiting = false;
        slot.prev = tail;
        slot.next = NIL;
        slot.endpoint_next = chain_head;
        slot.in_endpoint_chain = true;
        self.by_endpoint.insert(endpoint, index);
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
        match slot.state {
            SlotState::Pended => {}
            SlotState::Completing => return Err(VerdictError::BeingResolved),
            SlotState::Reserved | SlotState::Free => return Err(VerdictError::UnknownId),
        }
        self.claim_slot(id.slot(), resolution).ok_or(VerdictError::UnknownId)
    }

    /// Claims the oldest pended entry (timeout, service cleanup, unload sweeps).
    pub(crate) fn oldest(&self) -> Option<(u32, Ticks)> {
        let slot = self.slot(self.age_head)?;
        Some((self.age_head, slot.facts.as_ref().map_or(Ticks(0), |f| f.pended_at)))
    }

    /// The claim itself. `None` if the slot is not Pended.
    pub(crate) fn claim_slot(&mut self, index: u32, resolution: Resolution) -> Option<Claimed<C>> {
        let slot = self.slot_mut(index)?;
        if slot.state != SlotState::Pended {
            return None;
        }
        let context = slot.context.take()?;
        let key = slot.facts.as_ref()?.key;
        slot.state = SlotState::Completing;
        let id = PendId::new(index, slot.generation);
        self.unlink_age(index);
        Some(Claimed { id, context, key, resolution })
    }

    /// The first Pended entry on `endpoint`'s chain, and how many of its entries are Completing.
    pub(crate) fn scan_endpoint(&self, endpoint: EndpointHandle) -> (Option<u32>, u32) {
        let mut index = self.by_endpoint.get(&endpoint).copied().unwrap_or(NIL);
        let mut completing = 0;
        while let Some(slot) = self.slot(index) {
            match slot.state {
                SlotState::Pended => return (Some(index), completing),
                SlotState::Completing => completing += 1,
                SlotState::Reserved | SlotState::Free => {}
            }
            index = slot.endpoint_next;
        }
        (None, completing)
    }

    /// Detaches `endpoint`'s chain (its teardown): no lookup by endpoint finds these entries again.
    /// Marks every Completing one `teardown_waiting` and returns how many there are.
    pub(crate) fn detach_endpoint(&mut self, endpoint: EndpointHandle) -> u32 {
        let mut index = self.by_endpoint.remove(&endpoint).unwrap_or(NIL);
        let mut waiting = 0;
        while let Some(slot) = self.slot_mut(index) {
            slot.in_endpoint_chain = false;
            if slot.state == SlotState::Completing {
                slot.teardown_waiting = true;
                waiting += 1;
            }
            index = core::mem::replace(&mut slot.endpoint_next, NIL);
        }
        waiting
    }

    /// Completing → Free after the completion returned. Returns the endpoint if its teardown was
    /// waiting for this completion.
    pub(crate) fn finish(&mut self, id: PendId) -> Option<EndpointHandle> {
        let index = id.slot();
        let slot = self.slot(index)?;
        if slot.state != SlotState::Completing || slot.generation != id.generation() {
            return None;
        }
        let waited = slot.teardown_waiting;
        let endpoint = slot.facts.as_ref().map(|f| f.key.endpoint);
        if let (true, Some(endpoint)) = (slot.in_endpoint_chain, endpoint) {
            self.unlink_endpoint(endpoint, index);
        }
        self.free(index);
        if waited { endpoint } else { None }
    }

    /// Visits up to `max` undelivered entries in age order, marking each delivered if `visit`
    /// accepts it (returns true). Returns how many were delivered.
    pub(crate) fn deliver(&mut self, max: usize, mut visit: impl FnMut(PendId, &EntryFacts) -> bool) -> usize {
        let mut delivered = 0;
        while delivered < max {
            let index = self.deliver_cursor;
            let Some(slot) = self.slots.get_mut(index as usize) else { break };
            let Some(facts) = slot.facts.as_ref() else { break };
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

    fn unlink_endpoint(&mut self, endpoint: EndpointHandle, index: u32) {
        let next = self.slot(index).map_or(NIL, |s| s.endpoint_next);
        if let Some(slot) = self.slot_mut(index) {
            slot.in_endpoint_chain = false;
            slot.endpoint_next = NIL;
        }
        let Some(head) = self.by_endpoint.get_mut(&endpoint) else { return };
        if *head == index {
            if next == NIL {
                self.by_endpoint.remove(&endpoint);
            } else {
                *head = next;
            }
            return;
        }
        let mut cursor = *head;
        while let Some(slot) = self.slots.get_mut(cursor as usize) {
            if slot.endpoint_next == index {
                slot.endpoint_next = next;
                return;
            }
            cursor = slot.endpoint_next;
        }
    }

    fn free(&mut self, index: u32) {
        let free_head = self.free_head;
        let Some(slot) = self.slot_mut(index) else { return };
        slot.state = SlotState::Free;
        // Generation 0 is never issued, so a zero id is always unknown.
        slot.generation = match slot.generation.wrapping_add(1) {
            0 => 1,
            g => g,
        };
        slot.context = None;
        slot.facts = None;
        slot.teardown_waiting = false;
        slot.in_endpoint_chain = false;
        slot.endpoint_next = NIL;
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
        if slot.generation != id.generation() || slot.state != SlotState::Pended {
            return None;
        }
        Some((slot.context?, slot.facts.as_ref()?.key))
    }

    /// Number of Pended (unclaimed) entries. O(n); for checks and statistics, not hot paths.
    pub(crate) fn count_in_state(&self, state: SlotState) -> u32 {
        self.slots.iter().filter(|s| s.state == state).count() as u32
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::types::PendLayer;

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
            app_path: Vec::new(),
            pended_at: Ticks(0),
        }
    }

    fn pended(table: &mut PendTable<u32>, endpoint: u64, context: u32) -> PendId {
        let id = table.reserve().unwrap();
        table.publish(id, context, facts(endpoint));
        id
    }

    #[test]
    fn ids_are_checked_and_die_with_their_entry() {
        let mut table = PendTable::<u32>::try_new(2, 0).unwrap();
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
        let mut table = PendTable::<u32>::try_new(1, 0).unwrap();
        let id = table.reserve().unwrap();
        assert!(table.reserve().is_none(), "capacity is a hard ceiling");
        assert_eq!(table.claim_by_id(id, Resolution::Verdict).err(), Some(VerdictError::UnknownId));
        assert!(table.oldest().is_none());
        table.unreserve(id);
        assert_eq!(table.in_use, 0);
        assert!(table.reserve().is_some());
    }

    #[test]
    fn teardown_detaches_and_counts_in_flight() {
        let mut table = PendTable::<u32>::try_new(4, 0).unwrap();
        let a = pended(&mut table, 1, 1);
        let _b = pended(&mut table, 1, 2);
        let c = pended(&mut table, 2, 3);
        let claimed = table.claim_by_id(a, Resolution::Verdict).unwrap();
        let (next, _) = table.scan_endpoint(EndpointHandle(1));
        let other = table.claim_slot(next.unwrap(), Resolution::Teardown).unwrap();
        assert_eq!(table.finish(other.id), None);
        assert_eq!(table.scan_endpoint(EndpointHandle(1)), (None, 1), "one completion still in flight");
        assert_eq!(table.detach_endpoint(EndpointHandle(1)), 1);
        assert_eq!(table.scan_endpoint(EndpointHandle(1)), (None, 0));
        // The in-flight completion's finish reports the waiting teardown.
        assert_eq!(table.finish(claimed.id), Some(EndpointHandle(1)));
        // Endpoint 2 is untouched.
        assert_eq!(table.scan_endpoint(EndpointHandle(2)).0, Some(c.slot()));
    }

    #[test]
    fn delivery_follows_age_order_and_skips_resolved() {
        let mut table = PendTable::<u32>::try_new(4, 0).unwrap();
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
