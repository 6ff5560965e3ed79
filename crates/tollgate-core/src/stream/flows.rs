//! Inline stream inspection state: one entry per inspected flow, keyed by a flow id that is the
//! flow context Tollgate hands to `FwpsFlowAssociateContext0`.
//!
//! The stream callout is where the 0xD1 crash in `NETIO!StreamInvokeCalloutAndNormalizeAction`
//! lives (ARCHITECTURE.md §1), so the rules here are strict (S6):
//! - the callout copies a bounded prefix of each segment *within* classifyFn
//!   (`FwpsCopyStreamDataToBuffer0`) into a buffer the table owns, and never keeps a pointer to
//!   `layerData`, `streamData` or a `NET_BUFFER_LIST`;
//!   <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscopystreamdatatobuffer0>
//! - a NULL `layerData` / `streamData`, or an empty segment, is counted and permitted;
//! - every classify ends with an explicit action: the callout always writes `actionType` and
//!   `streamAction`, and never asks for more data (no `NEED_MORE_DATA` at all, so never with
//!   `FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA` set);
//!   <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_>
//! - once a flow has what it needs (its outbound prefix is full, or the peer disconnected), the
//!   callout tells WFP to stop: the rest of the stream costs nothing.
//!
//! The flow context value is a slot + generation, never a pointer (S3): a stale or forged context
//! (flowDeleteFn racing unload, say) finds nothing instead of freed memory.
//!
//! What the prefix is used for (TLS SNI / HTTP Host, domain rules) is the stream issue's; this
//! module keeps the accounting and the copy discipline that any use of it relies on.
#![deny(unsafe_code)]

use alloc::vec::Vec;

use crate::platform::{RawSpinLock, Ticks};
use crate::sync::SpinLock;
use crate::types::EndpointHandle;

/// How many outbound bytes of a flow are kept for inspection (a TLS ClientHello or an HTTP
/// request head fits in the first segment in practice; the stream issue may raise this).
pub const PREFIX_CAPACITY: usize = 512;

/// The flow context Tollgate associates with a flow: slot + generation, never a pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId(u64);

impl FlowId {
    const fn new(slot: u32, generation: u32) -> FlowId {
        FlowId(((generation as u64) << 32) | slot as u64)
    }

    /// The 64-bit value passed to `FwpsFlowAssociateContext0` and received back in classifyFn
    /// (`flowContext`) and flowDeleteFn.
    #[must_use]
    pub const fn to_raw(self) -> u64 {
        self.0
    }

    /// A flow context as WFP handed it back.
    #[must_use]
    pub const fn from_raw(raw: u64) -> FlowId {
        FlowId(raw)
    }

    const fn slot(self) -> u32 {
        self.0 as u32
    }

    const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// One stream classify, as the callout shim reads it from `FWPS_STREAM_CALLOUT_IO_PACKET0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamSegment {
    /// `FWPS_STREAM_FLAG_SEND` is set (outbound data).
    pub outbound: bool,
    /// `streamData->dataLength`, or 0 when `layerData` or `streamData` is NULL.
    pub length: usize,
    /// A `*_DISCONNECT` or `*_ABORT` flag is set.
    pub disconnect: bool,
}

/// What the callout writes to classifyOut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamAction {
    /// `FWP_ACTION_PERMIT`, `FWPS_STREAM_ACTION_NONE`, `countBytesEnforced = length`: keep
    /// inspecting this flow.
    Continue,
    /// `FWP_ACTION_PERMIT`, `FWPS_STREAM_ACTION_NONE`: inspection of this flow is finished (or the
    /// flow is unknown); the shim may stop asking for its data.
    Done,
}

/// Where WFP keeps a flow's context: what `FwpsFlowRemoveContext0` needs to take it back (unload).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowOwner {
    /// `FWPS_METADATA_FIELD_FLOW_HANDLE` of the flow.
    pub flow_handle: u64,
    /// The run-time layer the context was associated at (`FWPS_LAYER_STREAM_V4/V6`).
    pub layer_id: u16,
    /// The run-time id of the callout that owns the context.
    pub callout_id: u32,
}

/// The facts gathered about one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowFacts {
    /// The endpoint the flow belongs to.
    pub endpoint: EndpointHandle,
    /// Where WFP keeps the flow's context.
    pub owner: FlowOwner,
    /// Outbound bytes seen.
    pub bytes_out: u64,
    /// Inbound bytes seen.
    pub bytes_in: u64,
    /// Outbound segments seen (including empty ones).
    pub segments_out: u64,
    /// Inbound segments seen (including empty ones).
    pub segments_in: u64,
    /// When the first non-empty segment arrived.
    pub first_data: Option<Ticks>,
    /// How many bytes of the outbound prefix were copied.
    pub prefix_len: usize,
    /// Inspection finished: no more copying for this flow.
    pub done: bool,
}

struct FlowSlot {
    generation: u32,
    live: bool,
    facts: FlowFacts,
    prefix: [u8; PREFIX_CAPACITY],
}

struct Flows {
    slots: Vec<FlowSlot>,
    free: Vec<u32>,
}

impl Flows {
    fn slot_mut(&mut self, id: FlowId) -> Option<&mut FlowSlot> {
        let slot = self.slots.get_mut(usize::try_from(id.slot()).ok()?)?;
        (slot.live && slot.generation == id.generation()).then_some(slot)
    }
}

/// Why the flow table could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTableOutOfMemory;

/// The preallocated table of inspected flows.
pub struct FlowTable<L: RawSpinLock> {
    flows: SpinLock<L, Flows>,
}

impl<L: RawSpinLock> FlowTable<L> {
    /// Allocates `capacity` flow slots up front (PASSIVE_LEVEL, at driver start).
    ///
    /// # Errors
    /// [`FlowTableOutOfMemory`] when the allocation fails.
    pub fn new(capacity: u32) -> Result<Self, FlowTableOutOfMemory> {
        let count = usize::try_from(capacity).map_err(|_| FlowTableOutOfMemory)?;
        let mut slots = Vec::new();
        slots.try_reserve_exact(count).map_err(|_| FlowTableOutOfMemory)?;
        let mut free = Vec::new();
        free.try_reserve_exact(count).map_err(|_| FlowTableOutOfMemory)?;
        let empty = FlowFacts {
            endpoint: EndpointHandle(0),
            owner: FlowOwner { flow_handle: 0, layer_id: 0, callout_id: 0 },
            bytes_out: 0,
            bytes_in: 0,
            segments_out: 0,
            segments_in: 0,
            first_data: None,
            prefix_len: 0,
            done: false,
        };
        for _ in 0..count {
            slots.push(FlowSlot { generation: 0, live: false, facts: empty, prefix: [0; PREFIX_CAPACITY] });
        }
        // Pop order: lowest slot first.
        free.extend((0..capacity).rev());
        Ok(FlowTable { flows: SpinLock::new(Flows { slots, free }) })
    }

    /// Starts tracking a flow (classifyFn at ALE_FLOW_ESTABLISHED, before
    /// `FwpsFlowAssociateContext0`). `None` when the table is full: the flow is then simply not
    /// inspected (fail-open for inspection only; the connection was already authorized).
    /// IRQL: ≤ DISPATCH_LEVEL.
    pub fn attach(&self, endpoint: EndpointHandle, owner: FlowOwner) -> Option<FlowId> {
        self.flows.with(|flows| {
            let slot_index = flows.free.pop()?;
            let slot = flows.slots.get_mut(usize::try_from(slot_index).ok()?)?;
            slot.generation = slot.generation.wrapping_add(1);
            slot.live = true;
            slot.facts = FlowFacts {
                endpoint,
                owner,
                bytes_out: 0,
                bytes_in: 0,
                segments_out: 0,
                segments_in: 0,
                first_data: None,
                prefix_len: 0,
                done: false,
            };
            Some(FlowId::new(slot_index, slot.generation))
        })
    }

    /// Forgets a flow whose context could not be associated (`FwpsFlowAssociateContext0` failed),
    /// or whose flowDeleteFn ran. Returns its final facts. IRQL: ≤ DISPATCH_LEVEL.
    pub fn remove(&self, id: FlowId) -> Option<FlowFacts> {
        self.flows.with(|flows| {
            let slot = flows.slot_mut(id)?;
            slot.live = false;
            let facts = slot.facts;
            flows.free.push(id.slot());
            Some(facts)
        })
    }

    /// One stream classify. `copy` is the shim's `FwpsCopyStreamDataToBuffer0`: it fills the
    /// buffer it is given from the segment's data *now*, within classifyFn, and returns how many
    /// bytes it copied. It is called outside the table's lock (no WFP call under a lock) and at
    /// most once. IRQL: ≤ DISPATCH_LEVEL.
    pub fn on_segment(
        &self,
        id: FlowId,
        segment: StreamSegment,
        now: Ticks,
        copy: impl FnOnce(&mut [u8]) -> usize,
    ) -> StreamAction {
        // Decide under the lock how much we want; copy outside it; account under it again.
        let wanted = self.flows.with(|flows| {
            let slot = flows.slot_mut(id)?;
            let facts = &mut slot.facts;
            let length = segment.length as u64;
            if segment.outbound {
                facts.bytes_out = facts.bytes_out.saturating_add(length);
                facts.segments_out = facts.segments_out.saturating_add(1);
            } else {
                facts.bytes_in = facts.bytes_in.saturating_add(length);
                facts.segments_in = facts.segments_in.saturating_add(1);
            }
            if length > 0 && facts.first_data.is_none() {
                facts.first_data = Some(now);
            }
            if segment.disconnect {
                facts.done = true;
            }
            if facts.done || !segment.outbound || segment.length == 0 {
                return Some(0);
            }
            Some(PREFIX_CAPACITY.saturating_sub(facts.prefix_len).min(segment.length))
        });
        let Some(wanted) = wanted else {
            return StreamAction::Done;
        };
        if wanted == 0 {
            return self.status(id);
        }
        // A bounded stack copy: the only place the segment's bytes are read, within classifyFn.
        let mut scratch = [0_u8; PREFIX_CAPACITY];
        let copied = scratch.get_mut(..wanted).map_or(0, |window| copy(window).min(wanted));
        self.flows.with(|flows| {
            let Some(slot) = flows.slot_mut(id) else {
                return StreamAction::Done;
            };
            let start = slot.facts.prefix_len;
            let end = start.saturating_add(copied).min(PREFIX_CAPACITY);
            if let (Some(target), Some(source)) =
                (slot.prefix.get_mut(start..end), scratch.get(..end.saturating_sub(start)))
            {
                target.copy_from_slice(source);
                slot.facts.prefix_len = end;
            }
            if slot.facts.prefix_len >= PREFIX_CAPACITY {
                slot.facts.done = true;
            }
            if slot.facts.done { StreamAction::Done } else { StreamAction::Continue }
        })
    }

    fn status(&self, id: FlowId) -> StreamAction {
        self.flows.with(|flows| match flows.slot_mut(id) {
            Some(slot) if !slot.facts.done => StreamAction::Continue,
            _ => StreamAction::Done,
        })
    }

    /// The facts of a live flow and a copy of its prefix, for reporting. IRQL: ≤ DISPATCH_LEVEL.
    pub fn inspect<R>(&self, id: FlowId, visit: impl FnOnce(&FlowFacts, &[u8]) -> R) -> Option<R> {
        self.flows.with(|flows| {
            let slot = flows.slot_mut(id)?;
            let prefix = slot.prefix.get(..slot.facts.prefix_len).unwrap_or(&[]);
            Some(visit(&slot.facts, prefix))
        })
    }

    /// Every live flow and where WFP keeps its context (unload: each needs
    /// `FwpsFlowRemoveContext0` before the stream callout can be unregistered). Fills `out` up to
    /// its capacity. PASSIVE_LEVEL.
    pub fn live_flows(&self, out: &mut Vec<(FlowId, FlowOwner)>) {
        self.flows.with(|flows| {
            for (index, slot) in flows.slots.iter().enumerate() {
                // Capacity was reserved by the caller; a flow that does not fit is skipped, and
                // unload's retry loop finds it again.
                if let (true, Ok(index)) = (slot.live, u32::try_from(index))
                    && out.len() < out.capacity()
                {
                    out.push((FlowId::new(index, slot.generation), slot.facts.owner));
                }
            }
        });
    }

    /// How many flows are tracked. IRQL: ≤ DISPATCH_LEVEL.
    pub fn live_count(&self) -> usize {
        self.flows.with(|flows| flows.slots.len().saturating_sub(flows.free.len()))
    }
}
