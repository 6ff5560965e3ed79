//! What the stream callout reports to user mode about a flow: [`FlowEvent`]s, read through
//! `IOCTL_TOLLGATE_GET_STREAM_EVENTS`.
//!
//! Events are plain data (`Copy`, no pointers): a flow is named by its [`FlowId`] (slot +
//! generation), never by the flow handle or the endpoint handle, which are kernel addresses (S9).

use core::net::IpAddr;

use tollgate_inspect::identity::Identity;

use crate::platform::Ticks;
use crate::stream::flows::FlowId;
use crate::types::Direction;

/// Why an event was raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowEventKind {
    /// Inspection of the flow finished: its identity (names, ALPN) and what was done about it.
    Identified,
    /// The flow is gone (flowDeleteFn): its final counters.
    Closed,
}

/// How inspection of a flow ended (or where it is, for a flow that closed first).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum InspectionEnd {
    /// Still reading when the flow closed (or no client bytes at all).
    #[default]
    Unfinished,
    /// The first message was read to its end, or the bytes were not TLS or HTTP, or malformed.
    Complete,
    /// The byte or segment bound was reached first; the identity holds what was read by then.
    Bounded,
    /// The connection ended (FIN or RST) before the first message did.
    Disconnected,
    /// No reassembly buffer was free when the first bytes came: the flow was not inspected
    /// (inspection fails open; the connection itself was already authorized at ALE_AUTH_CONNECT).
    NoBuffer,
    /// Two classifies of the flow overlapped (WFP indicates a stream's segments one at a time, so
    /// this is not expected): the flow was not inspected further rather than read out of order.
    Overlapped,
}

/// What the stream callout did with the flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum StreamVerdict {
    /// Permitted (no name matched the domain blocklist, or there was no name).
    #[default]
    Permitted,
    /// A name matched the domain blocklist: `FWPS_STREAM_ACTION_DROP_CONNECTION`.
    Dropped,
}

/// The connection a flow belongs to, as ALE_FLOW_ESTABLISHED reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowEndpoints {
    /// IP protocol (6 for the flows the stream callout inspects).
    pub ip_protocol: u8,
    /// Who initiated the connection.
    pub direction: Direction,
    /// Local address.
    pub local_address: IpAddr,
    /// Local port.
    pub local_port: u16,
    /// Remote address.
    pub remote_address: IpAddr,
    /// Remote port.
    pub remote_port: u16,
    /// `FWPS_METADATA_FIELD_PROCESS_ID`, 0 when absent.
    pub process_id: u64,
}

/// Byte and segment counts of a flow, and when its data started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowCounters {
    /// Outbound bytes (`FWPS_STREAM_FLAG_SEND`).
    pub bytes_out: u64,
    /// Inbound bytes.
    pub bytes_in: u64,
    /// Outbound stream indications, empty ones included.
    pub segments_out: u64,
    /// Inbound stream indications, empty ones included.
    pub segments_in: u64,
    /// When the flow was established (its context associated).
    pub established_at: Ticks,
    /// When the first non-empty indication came, either way.
    pub first_data_at: Option<Ticks>,
}

/// One event about one flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    /// Why it was raised.
    pub kind: FlowEventKind,
    /// The flow (slot + generation; the same id in both of a flow's events).
    pub flow: FlowId,
    /// When it was raised.
    pub at: Ticks,
    /// The connection.
    pub endpoints: FlowEndpoints,
    /// What the client's first bytes said (names, ALPN, protocol, problems).
    pub identity: Identity,
    /// How inspection ended.
    pub end: InspectionEnd,
    /// What was done.
    pub verdict: StreamVerdict,
    /// The counts when the event was raised.
    pub counters: FlowCounters,
}

/// The stream callout's counters, for `IOCTL_TOLLGATE_GET_STATS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StreamStats {
    /// Flows whose context was associated (ever).
    pub flows_tracked: u64,
    /// Flows tracked now.
    pub flows_live: u64,
    /// Flows not tracked because the flow table was full at ALE_FLOW_ESTABLISHED.
    pub flows_untracked: u64,
    /// Flows whose inspection ended with at least one name read.
    pub flows_named: u64,
    /// Flows dropped because a name matched the domain blocklist.
    pub flows_dropped: u64,
    /// Flows not inspected because no reassembly buffer was free.
    pub flows_no_buffer: u64,
    /// Flows whose first message went past the byte or segment bound.
    pub flows_bounded: u64,
    /// Events dropped because the event queue was full (user mode did not read them in time).
    pub events_lost: u64,
    /// Patterns in the domain blocklist now.
    pub blocklist_patterns: u64,
    /// How many times the blocklist has been replaced since the driver started.
    pub blocklist_generation: u64,
}
