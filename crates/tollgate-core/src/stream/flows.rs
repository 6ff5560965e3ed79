//! The stream callout's flow table: one entry per TCP flow Tollgate inspects, keyed by the flow
//! context Tollgate hands to `FwpsFlowAssociateContext0`.
//!
//! The stream callout is where the 0xD1 crash in `NETIO!StreamInvokeCalloutAndNormalizeAction`
//! lives (ARCHITECTURE.md §1), so the rules here are strict (S6):
//! - the callout **copies** the client's first bytes *within* classifyFn
//!   (`FwpsCopyStreamDataToBuffer0`) into a buffer the table owns, and never keeps a pointer to
//!   `layerData`, `streamData` or a `NET_BUFFER_LIST`: the [`FlowTable::on_segment`] closure is the
//!   only place the segment's bytes are read, and it cannot outlive the call;
//!   <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscopystreamdatatobuffer0>
//! - a NULL `layerData` / `streamData`, or an empty segment, is counted and permitted;
//! - every classify ends with an explicit [`StreamAction`] that the shim writes to both
//!   `actionType` and `streamAction`; the table never asks for more data (no
//!   `FWPS_STREAM_ACTION_NEED_MORE_DATA` at all, so never with `FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA`),
//!   and never defers or injects: inspection is inline only, and every byte is permitted (or the
//!   connection dropped) in the classify that sees it;
//!   <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_>
//! - once a flow is identified (its first message read, a bound reached, or the peer gone), the
//!   table answers [`StreamAction::AllowConnection`] (`FWPS_STREAM_ACTION_ALLOW_CONNECTION`: "WFP
//!   stops classifying any data segments to the callout"), so the rest of the stream costs nothing —
//!   unless the driver was configured to count every byte ([`AfterInspection::KeepCounting`]).
//!
//! # What is read, and how much
//! Only the **client's** bytes (outbound for a connection this machine opened, inbound for one it
//! accepted), from the first byte of the stream, into a per-flow reassembly buffer of
//! [`REASSEMBLY_CAPACITY`] bytes, over at most [`MAX_INSPECTED_SEGMENTS`] segments. The buffer is
//! taken from a preallocated pool when the first client bytes arrive and returned as soon as
//! inspection ends (almost always in that same classify: a ClientHello or a request head fits in
//! one segment), so memory is bounded by the pool, not by the number of flows. When the pool is
//! empty the flow is not inspected ([`InspectionEnd::NoBuffer`], counted): inspection fails open,
//! because the connection itself was already authorized at ALE_AUTH_CONNECT.
//!
//! The parsers ([`tollgate_inspect::inspect`]) run outside the table's lock on the flow's own
//! buffer, which the classify takes out of the slot for the duration (a `Vec` moved out and back:
//! no aliasing, no `unsafe`). They are re-run only once the bytes reach the length the previous
//! run asked for, so a hostile sender of one-byte segments cannot make the work quadratic.
//!
//! # Domain blocklist
//! When inspection of a connection this machine opened ends with a name (TLS SNI, HTTP `Host`, or
//! an HTTP request target's authority) that the [`DomainBlocklist`] matches, the answer is
//! [`StreamAction::DropConnection`]. Inbound (accepted) flows are identified and reported but never
//! dropped: the blocklist is about where this machine connects to.
//!
//! # Events
//! Each flow yields at most one [`FlowEventKind::Identified`] event (when inspection ends, if the
//! client sent anything) and one [`FlowEventKind::Closed`] event (flowDeleteFn), into a bounded
//! queue that user mode drains with `IOCTL_TOLLGATE_GET_STREAM_EVENTS`; when it is full, new events
//! are dropped and counted ([`StreamStats::events_lost`]), never blocking a classify.
//!
//! # Names, not pointers
//! The flow context value is a slot + generation ([`FlowId`]), never a pointer (S3): a stale or
//! forged context (flowDeleteFn racing unload, say) finds nothing instead of freed memory.
//!
//! # IRQL
//! Every method runs at ≤ DISPATCH_LEVEL and never waits, except [`FlowTable::new`] (PASSIVE,
//! DriverEntry) and [`FlowTable::live_flows`] (PASSIVE, unload). Nothing allocates after `new`.
#![deny(unsafe_code)]

use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr};

use tollgate_inspect::identity::Identity;
use tollgate_inspect::{Progress, inspect};

use crate::platform::{RawSpinLock, Ticks};
use crate::stream::blocklist::DomainBlocklist;
use crate::stream::event::{
    FlowCounters, FlowEndpoints, FlowEvent, FlowEventKind, InspectionEnd, StreamStats, StreamVerdict,
};
use crate::sync::SpinLock;
use crate::types::{Direction, EndpointHandle};

/// How many of the client's first bytes a flow's reassembly buffer holds. A TLS ClientHello is
/// 0.5–2 KB today (post-quantum key shares and ECH padding make it grow), an HTTP/1.1 request head
/// well under that.
pub const REASSEMBLY_CAPACITY: usize = 4096;

/// How many client segments a flow is inspected over, at most.
pub const MAX_INSPECTED_SEGMENTS: u16 = 16;

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
    /// `streamData->dataLength`, or 0 when `layerData` or `streamData` is NULL or the chain empty.
    pub length: usize,
    /// A `*_DISCONNECT` or `*_ABORT` flag is set.
    pub disconnect: bool,
}

/// What the callout writes to classifyOut and the stream packet. Every variant sets both
/// `actionType` and `streamAction` (S6), `countBytesRequired` = 0, and `countBytesEnforced` = the
/// segment's length (the action covers all of it: nothing is left for WFP to indicate again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamAction {
    /// `FWP_ACTION_PERMIT`, `FWPS_STREAM_ACTION_NONE`: keep calling for this flow.
    Permit,
    /// `FWP_ACTION_PERMIT`, `FWPS_STREAM_ACTION_ALLOW_CONNECTION`: inspection of this flow is over;
    /// WFP stops classifying its data. Also the answer for a flow the table does not know.
    AllowConnection,
    /// `FWP_ACTION_BLOCK`, `FWPS_STREAM_ACTION_DROP_CONNECTION`: a name matched the blocklist. WFP
    /// honours it only when the filter's action type is `FWP_ACTION_CALLOUT_UNKNOWN`, so the
    /// stream filters are registered with that action.
    DropConnection,
}

/// `FWPS_STREAM_ACTION_*` as the shims write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamActionCode {
    /// `FWPS_STREAM_ACTION_NONE`.
    None,
    /// `FWPS_STREAM_ACTION_ALLOW_CONNECTION`.
    AllowConnection,
    /// `FWPS_STREAM_ACTION_DROP_CONNECTION`.
    DropConnection,
}

/// Exactly what a stream classify writes: `actionType` (PERMIT or BLOCK) and `streamAction`;
/// `countBytesRequired` is always 0 and `countBytesEnforced` the segment's length. The kernel
/// shim and the WFP model's driver both write this and nothing else, so they cannot drift apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamOutWrite {
    /// `FWP_ACTION_BLOCK` instead of `FWP_ACTION_PERMIT`.
    pub block: bool,
    /// `streamAction`.
    pub stream_action: StreamActionCode,
}

impl StreamAction {
    /// What to write. `filter_is_callout_unknown` is whether the matching filter's `action.type`
    /// is `FWP_ACTION_CALLOUT_UNKNOWN`: WFP honours `FWPS_STREAM_ACTION_DROP_CONNECTION` only
    /// then ("A callout's classifyFn callout function should only set the streamAction member to
    /// this value if the action.type member of the FWPS_FILTER0 structure … contains
    /// FWP_ACTION_CALLOUT_UNKNOWN",
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_>).
    /// Tollgate registers its stream filters that way; under any other filter the drop falls back
    /// to blocking the segment.
    #[must_use]
    pub const fn classify_out(self, filter_is_callout_unknown: bool) -> StreamOutWrite {
        match self {
            StreamAction::Permit => StreamOutWrite { block: false, stream_action: StreamActionCode::None },
            StreamAction::AllowConnection => {
                StreamOutWrite { block: false, stream_action: StreamActionCode::AllowConnection }
            }
            StreamAction::DropConnection if filter_is_callout_unknown => {
                StreamOutWrite { block: true, stream_action: StreamActionCode::DropConnection }
            }
            StreamAction::DropConnection => StreamOutWrite { block: true, stream_action: StreamActionCode::None },
        }
    }
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

/// What happens to a flow's classifies once it is identified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AfterInspection {
    /// `FWPS_STREAM_ACTION_ALLOW_CONNECTION`: no more classifies for the flow; its byte counts stop
    /// where inspection ended.
    #[default]
    AllowConnection,
    /// Keep classifying to count every byte and segment until the flow closes (the classify is then
    /// a counter update under the table's lock: no copy, no parse).
    KeepCounting,
}

/// Sizes and policy of a [`FlowTable`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTableConfig {
    /// Flows tracked at once; more are not inspected.
    pub flows: u32,
    /// Reassembly buffers ([`REASSEMBLY_CAPACITY`] bytes each): flows being identified at once.
    pub reassembly_buffers: u32,
    /// Events queued for user mode at most.
    pub events: u32,
    /// What happens after inspection.
    pub after_inspection: AfterInspection,
}

impl Default for FlowTableConfig {
    /// 4096 flows, 64 buffers (256 KiB), 512 events.
    fn default() -> Self {
        FlowTableConfig {
            flows: 4_096,
            reassembly_buffers: 64,
            events: 512,
            after_inspection: AfterInspection::AllowConnection,
        }
    }
}

/// Why the flow table could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowTableOutOfMemory;

/// A flow's entry as the table reports it (tests, the model's report, unload).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowFacts {
    /// The endpoint the flow belongs to (its transport endpoint handle: never leaves the kernel).
    pub endpoint: EndpointHandle,
    /// Where WFP keeps the flow's context.
    pub owner: FlowOwner,
    /// The connection.
    pub endpoints: FlowEndpoints,
    /// Counts so far.
    pub counters: FlowCounters,
    /// Client bytes read into the reassembly buffer so far.
    pub client_bytes_read: usize,
    /// Inspection is still running.
    pub inspecting: bool,
    /// How inspection ended (or [`InspectionEnd::Unfinished`]).
    pub end: InspectionEnd,
    /// What was done.
    pub verdict: StreamVerdict,
}

struct FlowSlot {
    generation: u32,
    live: bool,
    facts: FlowFacts,
    /// The reassembly buffer while inspection runs and the flow has one; `None` while a classify
    /// has it out (`copying`) or before the first client bytes.
    buffer: Option<Vec<u8>>,
    /// A classify has the buffer out of the slot right now.
    copying: bool,
    /// The total the parser asked for last time: do not parse again before this many bytes.
    parse_at: usize,
    /// Client segments inspected so far.
    inspected_segments: u16,
}

/// A bounded FIFO of events, preallocated.
struct EventQueue {
    events: Vec<FlowEvent>,
    head: usize,
    len: usize,
}

impl EventQueue {
    fn capacity(&self) -> usize {
        self.events.len()
    }

    /// Appends, or returns false when full.
    fn push_back(&mut self, event: FlowEvent) -> bool {
        let capacity = self.capacity();
        if self.len >= capacity {
            return false;
        }
        let index = self.head.saturating_add(self.len) % capacity;
        match self.events.get_mut(index) {
            Some(slot) => {
                *slot = event;
                self.len = self.len.saturating_add(1);
                true
            }
            None => false,
        }
    }

    /// Puts an event back at the front (it did not fit in user mode's buffer), or returns false.
    fn push_front(&mut self, event: FlowEvent) -> bool {
        let capacity = self.capacity();
        if self.len >= capacity {
            return false;
        }
        let index = self.head.checked_sub(1).unwrap_or(capacity.saturating_sub(1));
        match self.events.get_mut(index) {
            Some(slot) => {
                *slot = event;
                self.head = index;
                self.len = self.len.saturating_add(1);
                true
            }
            None => false,
        }
    }

    fn pop_front(&mut self) -> Option<FlowEvent> {
        if self.len == 0 {
            return None;
        }
        let event = *self.events.get(self.head)?;
        self.head = self.head.saturating_add(1) % self.capacity().max(1);
        self.len = self.len.saturating_sub(1);
        Some(event)
    }
}

struct Flows {
    slots: Vec<FlowSlot>,
    free: Vec<u32>,
    buffers: Vec<Vec<u8>>,
    events: EventQueue,
    stats: StreamStats,
    after_inspection: AfterInspection,
}

impl Flows {
    fn slot_mut(&mut self, id: FlowId) -> Option<&mut FlowSlot> {
        let slot = self.slots.get_mut(usize::try_from(id.slot()).ok()?)?;
        (slot.live && slot.generation == id.generation()).then_some(slot)
    }

    fn queue(&mut self, event: FlowEvent) {
        if !self.events.push_back(event) {
            self.stats.events_lost = self.stats.events_lost.saturating_add(1);
        }
    }

    /// Returns a reassembly buffer to the pool (capacity reserved at start: cannot reallocate).
    fn recycle(&mut self, buffer: Vec<u8>) {
        if self.buffers.len() < self.buffers.capacity() {
            self.buffers.push(buffer);
        }
    }

    /// The answer for a flow whose inspection is over.
    fn after(&self, verdict: StreamVerdict) -> StreamAction {
        match (verdict, self.after_inspection) {
            (StreamVerdict::Dropped, _) => StreamAction::DropConnection,
            (StreamVerdict::Permitted, AfterInspection::AllowConnection) => StreamAction::AllowConnection,
            (StreamVerdict::Permitted, AfterInspection::KeepCounting) => StreamAction::Permit,
        }
    }

    /// Ends inspection of the flow in `id`'s slot: the buffer back to the pool, the counters, and
    /// the Identified event (if the client sent anything).
    fn finish(&mut self, id: FlowId, end: InspectionEnd, verdict: StreamVerdict, identity: Identity, now: Ticks) {
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        let buffer = slot.buffer.take();
        slot.facts.inspecting = false;
        slot.facts.end = end;
        slot.facts.verdict = verdict;
        let raise = slot.facts.client_bytes_read > 0 || end == InspectionEnd::NoBuffer;
        let event = FlowEvent {
            kind: FlowEventKind::Identified,
            flow: id,
            at: now,
            endpoints: slot.facts.endpoints,
            identity,
            end,
            verdict,
            counters: slot.facts.counters,
        };
        if let Some(buffer) = buffer {
            self.recycle(buffer);
        }
        let stats = &mut self.stats;
        match end {
            InspectionEnd::NoBuffer => stats.flows_no_buffer = stats.flows_no_buffer.saturating_add(1),
            InspectionEnd::Bounded => stats.flows_bounded = stats.flows_bounded.saturating_add(1),
            _ => {}
        }
        if !identity.names.is_empty() {
            stats.flows_named = stats.flows_named.saturating_add(1);
        }
        if verdict == StreamVerdict::Dropped {
            stats.flows_dropped = stats.flows_dropped.saturating_add(1);
        }
        if raise {
            self.queue(event);
        }
    }
}

/// The first half of a segment, decided under the lock.
enum Begin {
    /// Answer now.
    Answer(StreamAction),
    /// Copy the segment's bytes into `buffer` at `fill` (up to `want` bytes), then parse.
    Copy {
        buffer: Vec<u8>,
        fill: usize,
        want: usize,
        parse_at: usize,
        last_segment: bool,
        blockable: bool,
        ending: Option<InspectionEnd>,
    },
}

/// The preallocated table of inspected flows.
pub struct FlowTable<L: RawSpinLock> {
    flows: SpinLock<L, Flows>,
}

/// An [`EndpointHandle`]-free stand-in used to fill preallocated slots and events.
const NO_ENDPOINTS: FlowEndpoints = FlowEndpoints {
    ip_protocol: 0,
    direction: Direction::Outbound,
    local_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    local_port: 0,
    remote_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    remote_port: 0,
    process_id: 0,
};

const EMPTY_FACTS: FlowFacts = FlowFacts {
    endpoint: EndpointHandle(0),
    owner: FlowOwner { flow_handle: 0, layer_id: 0, callout_id: 0 },
    endpoints: NO_ENDPOINTS,
    counters: FlowCounters {
        bytes_out: 0,
        bytes_in: 0,
        segments_out: 0,
        segments_in: 0,
        established_at: Ticks(0),
        first_data_at: None,
    },
    client_bytes_read: 0,
    inspecting: false,
    end: InspectionEnd::Unfinished,
    verdict: StreamVerdict::Permitted,
};

fn empty_event() -> FlowEvent {
    FlowEvent {
        kind: FlowEventKind::Closed,
        flow: FlowId(0),
        at: Ticks(0),
        endpoints: NO_ENDPOINTS,
        identity: Identity::default(),
        end: InspectionEnd::Unfinished,
        verdict: StreamVerdict::Permitted,
        counters: EMPTY_FACTS.counters,
    }
}

fn try_vec<T>(count: usize) -> Result<Vec<T>, FlowTableOutOfMemory> {
    let mut out = Vec::new();
    out.try_reserve_exact(count).map_err(|_| FlowTableOutOfMemory)?;
    Ok(out)
}

impl<L: RawSpinLock> FlowTable<L> {
    /// Allocates everything up front: the slots, the reassembly pool and the event queue
    /// (PASSIVE_LEVEL, at driver start).
    ///
    /// # Errors
    /// [`FlowTableOutOfMemory`] when an allocation fails (nothing is leaked).
    pub fn new(config: FlowTableConfig) -> Result<Self, FlowTableOutOfMemory> {
        let count = usize::try_from(config.flows).map_err(|_| FlowTableOutOfMemory)?;
        let buffers = usize::try_from(config.reassembly_buffers).map_err(|_| FlowTableOutOfMemory)?;
        let events = usize::try_from(config.events).map_err(|_| FlowTableOutOfMemory)?.max(1);
        let mut slots = try_vec(count)?;
        for _ in 0..count {
            slots.push(FlowSlot {
                generation: 0,
                live: false,
                facts: EMPTY_FACTS,
                buffer: None,
                copying: false,
                parse_at: 0,
                inspected_segments: 0,
            });
        }
        let mut free = try_vec(count)?;
        // Pop order: lowest slot first.
        free.extend((0..config.flows).rev());
        let mut pool = try_vec(buffers)?;
        for _ in 0..buffers {
            let mut buffer = try_vec::<u8>(REASSEMBLY_CAPACITY)?;
            buffer.resize(REASSEMBLY_CAPACITY, 0);
            pool.push(buffer);
        }
        let mut queue = try_vec(events)?;
        queue.resize(events, empty_event());
        Ok(FlowTable {
            flows: SpinLock::new(Flows {
                slots,
                free,
                buffers: pool,
                events: EventQueue { events: queue, head: 0, len: 0 },
                stats: StreamStats::default(),
                after_inspection: config.after_inspection,
            }),
        })
    }

    /// Starts tracking a flow (classifyFn at ALE_FLOW_ESTABLISHED, before
    /// `FwpsFlowAssociateContext0`). `None` when the table is full: the flow is then simply not
    /// inspected (inspection fails open; the connection was already authorized).
    /// IRQL: ≤ DISPATCH_LEVEL.
    pub fn attach(
        &self,
        endpoint: EndpointHandle,
        owner: FlowOwner,
        endpoints: FlowEndpoints,
        now: Ticks,
    ) -> Option<FlowId> {
        self.flows.with(|flows| {
            let Some(slot_index) = flows.free.pop() else {
                flows.stats.flows_untracked = flows.stats.flows_untracked.saturating_add(1);
                return None;
            };
            let slot = flows.slots.get_mut(usize::try_from(slot_index).ok()?)?;
            slot.generation = slot.generation.wrapping_add(1);
            slot.live = true;
            slot.facts = FlowFacts {
                endpoint,
                owner,
                endpoints,
                counters: FlowCounters { established_at: now, ..EMPTY_FACTS.counters },
                inspecting: true,
                ..EMPTY_FACTS
            };
            slot.buffer = None;
            slot.copying = false;
            slot.parse_at = 0;
            slot.inspected_segments = 0;
            let id = FlowId::new(slot_index, slot.generation);
            flows.stats.flows_tracked = flows.stats.flows_tracked.saturating_add(1);
            Some(id)
        })
    }

    /// Forgets a flow whose context could not be associated (`FwpsFlowAssociateContext0` failed):
    /// no event, counted as untracked. IRQL: ≤ DISPATCH_LEVEL.
    pub fn forget(&self, id: FlowId) {
        self.flows.with(|flows| {
            if Self::free_slot(flows, id).is_some() {
                flows.stats.flows_tracked = flows.stats.flows_tracked.saturating_sub(1);
                flows.stats.flows_untracked = flows.stats.flows_untracked.saturating_add(1);
            }
        });
    }

    /// flowDeleteFn: the flow is gone. Queues its Closed event and returns its final facts (the
    /// shim then runs the endpoint's teardown with them). IRQL: ≤ DISPATCH_LEVEL.
    pub fn remove(&self, id: FlowId, now: Ticks) -> Option<FlowFacts> {
        self.flows.with(|flows| {
            let facts = Self::free_slot(flows, id)?;
            flows.queue(FlowEvent {
                kind: FlowEventKind::Closed,
                flow: id,
                at: now,
                endpoints: facts.endpoints,
                identity: Identity::default(),
                end: facts.end,
                verdict: facts.verdict,
                counters: facts.counters,
            });
            Some(facts)
        })
    }

    fn free_slot(flows: &mut Flows, id: FlowId) -> Option<FlowFacts> {
        let slot = flows.slot_mut(id)?;
        slot.live = false;
        let facts = slot.facts;
        // A buffer a classify has out (`copying`) comes back through `end_segment`, which finds
        // the slot gone and recycles it.
        let buffer = slot.buffer.take();
        if let Some(buffer) = buffer {
            flows.recycle(buffer);
        }
        if flows.free.len() < flows.free.capacity() {
            flows.free.push(id.slot());
        }
        Some(facts)
    }

    /// One stream classify. `copy` is the shim's `FwpsCopyStreamDataToBuffer0`: it fills the
    /// buffer it is given from the start of the segment's data *now*, within classifyFn, and
    /// returns how many bytes it copied. It is called at most once, outside the table's lock (no
    /// WFP call under a lock), and only for the client's bytes of a flow still being inspected.
    /// IRQL: ≤ DISPATCH_LEVEL; never waits, never allocates.
    pub fn on_segment(
        &self,
        id: FlowId,
        segment: StreamSegment,
        now: Ticks,
        blocklist: &DomainBlocklist,
        copy: impl FnOnce(&mut [u8]) -> usize,
    ) -> StreamAction {
        let (mut buffer, fill, want, parse_at, last_segment, blockable, ending) =
            match self.flows.with(|flows| Self::begin_segment(flows, id, segment, now)) {
                Begin::Answer(action) => return action,
                Begin::Copy { buffer, fill, want, parse_at, last_segment, blockable, ending } => {
                    (buffer, fill, want, parse_at, last_segment, blockable, ending)
                }
            };
        // The only read of the segment's bytes, within classifyFn, into the flow's own buffer.
        let copied = if want == 0 {
            0
        } else {
            buffer.get_mut(fill..fill.saturating_add(want)).map_or(0, |window| copy(window).min(want))
        };
        let total = fill.saturating_add(copied);
        let must_decide = ending.is_some() || last_segment || total >= REASSEMBLY_CAPACITY;
        let (inspection_end, identity, next_parse_at) = if total >= parse_at || must_decide {
            let inspection = inspect(buffer.get(..total).unwrap_or_default());
            match inspection.progress {
                Progress::Done => (Some(InspectionEnd::Complete), inspection.identity, total),
                Progress::NeedMore { at_least } => {
                    let end = ending.or_else(|| {
                        (last_segment || total >= REASSEMBLY_CAPACITY || at_least > REASSEMBLY_CAPACITY)
                            .then_some(InspectionEnd::Bounded)
                    });
                    (end, inspection.identity, at_least)
                }
            }
        } else {
            (None, Identity::default(), parse_at)
        };
        // The blocklist is read lock-free, outside the table's lock.
        let verdict = if inspection_end.is_some() && blockable && blocklist.blocks(&identity.names) {
            StreamVerdict::Dropped
        } else {
            StreamVerdict::Permitted
        };
        self.flows.with(|flows| {
            let Some(slot) = flows.slot_mut(id) else {
                // flowDeleteFn ran meanwhile (it cannot while a classify of the flow runs, but a
                // stale context must not matter): the buffer goes back to the pool.
                flows.recycle(buffer);
                return StreamAction::AllowConnection;
            };
            slot.copying = false;
            if !slot.facts.inspecting {
                // Another classify of the flow ended inspection while we copied (Overlapped).
                let verdict = slot.facts.verdict;
                flows.recycle(buffer);
                return flows.after(verdict);
            }
            slot.facts.client_bytes_read = total;
            slot.parse_at = next_parse_at;
            match inspection_end {
                None => {
                    slot.buffer = Some(buffer);
                    StreamAction::Permit
                }
                Some(end) => {
                    flows.recycle(buffer);
                    flows.finish(id, end, verdict, identity, now);
                    flows.after(verdict)
                }
            }
        })
    }

    /// Accounting and the decision whether to copy, under the lock.
    fn begin_segment(flows: &mut Flows, id: FlowId, segment: StreamSegment, now: Ticks) -> Begin {
        let after_inspection = flows.after_inspection;
        let Some(slot) = flows.slot_mut(id) else {
            // Not ours, or stale: stop being called for it.
            return Begin::Answer(StreamAction::AllowConnection);
        };
        let counters = &mut slot.facts.counters;
        let length = u64::try_from(segment.length).unwrap_or(u64::MAX);
        if segment.outbound {
            counters.bytes_out = counters.bytes_out.saturating_add(length);
            counters.segments_out = counters.segments_out.saturating_add(1);
        } else {
            counters.bytes_in = counters.bytes_in.saturating_add(length);
            counters.segments_in = counters.segments_in.saturating_add(1);
        }
        if length > 0 && counters.first_data_at.is_none() {
            counters.first_data_at = Some(now);
        }
        if !slot.facts.inspecting {
            let verdict = slot.facts.verdict;
            return Begin::Answer(match (verdict, after_inspection) {
                (StreamVerdict::Dropped, _) => StreamAction::DropConnection,
                (_, AfterInspection::AllowConnection) => StreamAction::AllowConnection,
                (_, AfterInspection::KeepCounting) => StreamAction::Permit,
            });
        }
        let client_direction = match slot.facts.endpoints.direction {
            Direction::Outbound => segment.outbound,
            Direction::Inbound => !segment.outbound,
        };
        let client_bytes = client_direction && segment.length > 0;
        if slot.copying {
            if client_bytes {
                // Two classifies of one flow at once, both with client bytes: reading on would
                // mean reading out of order. Give up on the flow instead (it is permitted).
                flows.finish(id, InspectionEnd::Overlapped, StreamVerdict::Permitted, Identity::default(), now);
                return Begin::Answer(flows.after(StreamVerdict::Permitted));
            }
            return Begin::Answer(StreamAction::Permit);
        }
        if !client_bytes && !segment.disconnect {
            return Begin::Answer(StreamAction::Permit);
        }
        let ending = segment.disconnect.then_some(InspectionEnd::Disconnected);
        let fill = slot.facts.client_bytes_read;
        let buffer = match slot.buffer.take() {
            Some(buffer) => buffer,
            None if fill > 0 => {
                // Bytes were read but the buffer is not in the slot: only an overlapping classify
                // could have it. Never parse a pool buffer holding another flow's bytes.
                flows.finish(id, InspectionEnd::Overlapped, StreamVerdict::Permitted, Identity::default(), now);
                return Begin::Answer(flows.after(StreamVerdict::Permitted));
            }
            None if !client_bytes => {
                // The peer hung up before the client sent anything: nothing to read.
                flows.finish(id, InspectionEnd::Disconnected, StreamVerdict::Permitted, Identity::default(), now);
                return Begin::Answer(flows.after(StreamVerdict::Permitted));
            }
            None => match flows.buffers.pop() {
                Some(buffer) => buffer,
                None => {
                    flows.finish(id, InspectionEnd::NoBuffer, StreamVerdict::Permitted, Identity::default(), now);
                    return Begin::Answer(flows.after(StreamVerdict::Permitted));
                }
            },
        };
        let Some(slot) = flows.slot_mut(id) else {
            flows.recycle(buffer);
            return Begin::Answer(StreamAction::AllowConnection);
        };
        let want = if client_bytes { REASSEMBLY_CAPACITY.saturating_sub(fill).min(segment.length) } else { 0 };
        if client_bytes {
            slot.inspected_segments = slot.inspected_segments.saturating_add(1);
        }
        slot.copying = true;
        Begin::Copy {
            buffer,
            fill,
            want,
            parse_at: slot.parse_at,
            last_segment: slot.inspected_segments >= MAX_INSPECTED_SEGMENTS,
            blockable: slot.facts.endpoints.direction == Direction::Outbound,
            ending,
        }
    }

    /// Hands queued events to `visit` in order until it returns false (user mode's buffer is
    /// full: that event stays first in the queue) or `max` were taken. Each event is taken under
    /// the lock and visited outside it, so encoding never runs with the lock held.
    /// Returns how many were taken. IRQL: ≤ DISPATCH_LEVEL.
    pub fn drain_events(&self, max: usize, mut visit: impl FnMut(&FlowEvent) -> bool) -> usize {
        let mut taken = 0_usize;
        while taken < max {
            let Some(event) = self.flows.with(|flows| flows.events.pop_front()) else {
                break;
            };
            if !visit(&event) {
                self.flows.with(|flows| {
                    if !flows.events.push_front(event) {
                        flows.stats.events_lost = flows.stats.events_lost.saturating_add(1);
                    }
                });
                break;
            }
            taken = taken.saturating_add(1);
        }
        taken
    }

    /// Events waiting for user mode. IRQL: ≤ DISPATCH_LEVEL.
    pub fn queued_events(&self) -> usize {
        self.flows.with(|flows| flows.events.len)
    }

    /// The table's counters, with the blocklist's. IRQL: ≤ DISPATCH_LEVEL.
    pub fn stats(&self, blocklist: &DomainBlocklist) -> StreamStats {
        let mut stats = self.flows.with(|flows| {
            let mut stats = flows.stats;
            stats.flows_live = u64::try_from(flows.slots.len().saturating_sub(flows.free.len())).unwrap_or(u64::MAX);
            stats
        });
        stats.blocklist_patterns = blocklist.len();
        stats.blocklist_generation = blocklist.generation();
        stats
    }

    /// The facts of a live flow. IRQL: ≤ DISPATCH_LEVEL.
    pub fn facts(&self, id: FlowId) -> Option<FlowFacts> {
        self.flows.with(|flows| flows.slot_mut(id).map(|slot| slot.facts))
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

    /// Reassembly buffers in the pool now (all of them when no flow is mid-identification).
    /// IRQL: ≤ DISPATCH_LEVEL.
    pub fn free_buffers(&self) -> usize {
        self.flows.with(|flows| flows.buffers.len())
    }

    /// Reassembly buffers the table owns in all ([`FlowTableConfig::reassembly_buffers`]).
    /// IRQL: ≤ DISPATCH_LEVEL.
    pub fn total_buffers(&self) -> usize {
        // The pool's capacity was reserved exactly and never grows.
        self.flows.with(|flows| flows.buffers.capacity())
    }
}
