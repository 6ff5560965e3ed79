//! Translation between WFP's classify structures and the core's FFI-free types.
//!
//! This is the only code that reads `FWPS_INCOMING_VALUES0`, `FWPS_INCOMING_METADATA_VALUES0` and
//! `FWPS_STREAM_CALLOUT_IO_PACKET0`, and the only code that writes `FWPS_CLASSIFY_OUT0`. It makes no
//! decision: it reads what the layer offers, hands it to the core, and writes back exactly what the
//! core's [`ClassifyDecision::classify_out`] says.
//!
//! Every read is defensive, because a wrong read in classifyFn is a bugcheck:
//! - an incoming value is read only if its index is below `valueCount` **and** its `FWP_VALUE0`
//!   type tag is the one the field is documented to have; otherwise the field is absent;
//! - a metadata field is read only if its `FWPS_METADATA_FIELD_*` bit is set in
//!   `currentMetadataValues` (`FWPS_IS_METADATA_FIELD_PRESENT`,
//!   <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_incoming_metadata_values0_>);
//! - `layerData` and `streamData` may be NULL at the stream layer (S6).
//!
//! The readers return borrowed views whose lifetime is the classify's: nothing here can keep a
//! pointer past classifyFn.
//!
//! IRQL: every function here runs at ≤ DISPATCH_LEVEL and touches only the nonpaged structures WFP
//! passed in.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tollgate_core::stream::{FlowEndpoints, StreamActionCode, StreamOutWrite, StreamSegment};
use tollgate_core::{ClassifyDecision, ConnectionFacts, Direction, PendLayer, Verdict};
use tollgate_wfp_sys as sys;

pub use crate::registration::ClassifyKind;

/// IP version of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpVersion {
    /// The `_V4` layer.
    V4,
    /// The `_V6` layer.
    V6,
}

/// Maps `FWPS_INCOMING_VALUES0::layerId` to the kind of Tollgate callout registered there; `None` for a layer Tollgate does not
/// register at.
#[must_use]
pub const fn layer_of(layer_id: u16) -> Option<(ClassifyKind, IpVersion)> {
    Some(match layer_id {
        sys::FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4 => (ClassifyKind::ResourceAssignment, IpVersion::V4),
        sys::FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V6 => (ClassifyKind::ResourceAssignment, IpVersion::V6),
        sys::FWPS_LAYER_ALE_AUTH_CONNECT_V4 => (ClassifyKind::AuthConnect, IpVersion::V4),
        sys::FWPS_LAYER_ALE_AUTH_CONNECT_V6 => (ClassifyKind::AuthConnect, IpVersion::V6),
        sys::FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4 => (ClassifyKind::FlowEstablished, IpVersion::V4),
        sys::FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6 => (ClassifyKind::FlowEstablished, IpVersion::V6),
        sys::FWPS_LAYER_STREAM_V4 => (ClassifyKind::Stream, IpVersion::V4),
        sys::FWPS_LAYER_STREAM_V6 => (ClassifyKind::Stream, IpVersion::V6),
        sys::FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4 => (ClassifyKind::EndpointClosure, IpVersion::V4),
        sys::FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6 => (ClassifyKind::EndpointClosure, IpVersion::V6),
        sys::FWPS_LAYER_ALE_RESOURCE_RELEASE_V4 => (ClassifyKind::ResourceRelease, IpVersion::V4),
        sys::FWPS_LAYER_ALE_RESOURCE_RELEASE_V6 => (ClassifyKind::ResourceRelease, IpVersion::V6),
        _ => return None,
    })
}

/// Where a pendable layer keeps the fields Tollgate reads (`FWPS_FIELD_*` indices).
#[derive(Clone, Copy, Debug)]
struct FieldMap {
    app_id: usize,
    local_address: usize,
    local_port: usize,
    protocol: usize,
    remote_address: Option<usize>,
    remote_port: Option<usize>,
    flags: usize,
}

const RESOURCE_ASSIGNMENT_V4: FieldMap = FieldMap {
    app_id: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V4_ALE_APP_ID,
    local_address: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V4_IP_LOCAL_ADDRESS,
    local_port: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V4_IP_LOCAL_PORT,
    protocol: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V4_IP_PROTOCOL,
    remote_address: None,
    remote_port: None,
    flags: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V4_FLAGS,
};

const RESOURCE_ASSIGNMENT_V6: FieldMap = FieldMap {
    app_id: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_ALE_APP_ID,
    local_address: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_IP_LOCAL_ADDRESS,
    local_port: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_IP_LOCAL_PORT,
    protocol: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_IP_PROTOCOL,
    remote_address: None,
    remote_port: None,
    flags: sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_FLAGS,
};

const AUTH_CONNECT_V4: FieldMap = FieldMap {
    app_id: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_ALE_APP_ID,
    local_address: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_LOCAL_ADDRESS,
    local_port: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_LOCAL_PORT,
    protocol: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_PROTOCOL,
    remote_address: Some(sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_ADDRESS),
    remote_port: Some(sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_PORT),
    flags: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_FLAGS,
};

const AUTH_CONNECT_V6: FieldMap = FieldMap {
    app_id: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_ALE_APP_ID,
    local_address: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_LOCAL_ADDRESS,
    local_port: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_LOCAL_PORT,
    protocol: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_PROTOCOL,
    remote_address: Some(sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_REMOTE_ADDRESS),
    remote_port: Some(sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_REMOTE_PORT),
    flags: sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_FLAGS,
};

/// Where ALE_FLOW_ESTABLISHED keeps the fields a flow's events report (`FWPS_FIELD_*` indices).
#[derive(Clone, Copy, Debug)]
struct FlowFieldMap {
    protocol: usize,
    local_address: usize,
    local_port: usize,
    remote_address: usize,
    remote_port: usize,
    direction: usize,
}

const FLOW_ESTABLISHED_V4: FlowFieldMap = FlowFieldMap {
    protocol: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL,
    local_address: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS,
    local_port: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT,
    remote_address: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS,
    remote_port: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT,
    direction: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION,
};

const FLOW_ESTABLISHED_V6: FlowFieldMap = FlowFieldMap {
    protocol: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_PROTOCOL,
    local_address: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_ADDRESS,
    local_port: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_LOCAL_PORT,
    remote_address: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_ADDRESS,
    remote_port: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_IP_REMOTE_PORT,
    direction: sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V6_DIRECTION,
};

const fn flow_fields(version: IpVersion) -> FlowFieldMap {
    match version {
        IpVersion::V4 => FLOW_ESTABLISHED_V4,
        IpVersion::V6 => FLOW_ESTABLISHED_V6,
    }
}

/// The incoming values of one classify, bounds- and type-checked.
pub struct IncomingValues<'a> {
    values: &'a [sys::FWPS_INCOMING_VALUE0],
}

impl<'a> IncomingValues<'a> {
    /// Views `inFixedValues`.
    ///
    /// # Safety
    /// `values` is the `inFixedValues` pointer classifyFn received (or NULL), valid for the whole
    /// classify, and `'a` does not outlive the classify. When non-NULL, its `incomingValue` points
    /// to `valueCount` initialized entries (the engine's contract).
    #[must_use]
    pub unsafe fn new(values: *const sys::FWPS_INCOMING_VALUES0) -> IncomingValues<'a> {
        // SAFETY: the caller guarantees `values` is NULL or valid for 'a.
        let Some(header) = (unsafe { values.as_ref() }) else {
            return IncomingValues { values: &[] };
        };
        let count = usize::try_from(header.valueCount).unwrap_or(0);
        if header.incomingValue.is_null() || count == 0 {
            return IncomingValues { values: &[] };
        }
        // SAFETY: the engine's contract (caller's guarantee): `incomingValue` points to
        // `valueCount` initialized, aligned entries that live for the classify ('a).
        let values = unsafe { core::slice::from_raw_parts(header.incomingValue, count) };
        IncomingValues { values }
    }

    /// The run-time layer id, read with the values (`FWPS_INCOMING_VALUES0::layerId`).
    ///
    /// # Safety
    /// As [`IncomingValues::new`].
    #[must_use]
    pub unsafe fn layer_id(values: *const sys::FWPS_INCOMING_VALUES0) -> Option<u16> {
        // SAFETY: the caller guarantees `values` is NULL or valid.
        unsafe { values.as_ref() }.map(|header| header.layerId)
    }

    fn value(&self, index: usize, expected: sys::FWP_DATA_TYPE) -> Option<&'a sys::FWP_VALUE0> {
        let value = &self.values.get(index)?.value;
        (value.r#type == expected).then_some(value)
    }

    fn uint8(&self, index: usize) -> Option<u8> {
        let value = self.value(index, sys::FWP_UINT8)?;
        // SAFETY: the type tag is FWP_UINT8, so `uint8` is the initialized union member.
        Some(unsafe { value.Anonymous.uint8 })
    }

    fn uint16(&self, index: usize) -> Option<u16> {
        let value = self.value(index, sys::FWP_UINT16)?;
        // SAFETY: the type tag is FWP_UINT16, so `uint16` is the initialized union member.
        Some(unsafe { value.Anonymous.uint16 })
    }

    fn uint32(&self, index: usize) -> Option<u32> {
        let value = self.value(index, sys::FWP_UINT32)?;
        // SAFETY: the type tag is FWP_UINT32, so `uint32` is the initialized union member.
        Some(unsafe { value.Anonymous.uint32 })
    }

    /// An address field: `FWP_UINT32` (IPv4, host byte order) or `FWP_BYTE_ARRAY16_TYPE` (IPv6,
    /// network order), per
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/network/data-field-identifiers>.
    fn address(&self, index: usize, version: IpVersion) -> Option<IpAddr> {
        match version {
            IpVersion::V4 => self.uint32(index).map(|host_order| IpAddr::V4(Ipv4Addr::from(host_order))),
            IpVersion::V6 => {
                let value = self.value(index, sys::FWP_BYTE_ARRAY16_TYPE)?;
                // SAFETY: the type tag is FWP_BYTE_ARRAY16_TYPE, so `byteArray16` is the
                // initialized union member.
                let array = unsafe { value.Anonymous.byteArray16 };
                // SAFETY: for this type the engine points at an FWP_BYTE_ARRAY16 that lives for
                // the classify; NULL is handled by `as_ref`.
                let bytes = unsafe { array.as_ref() }?.byteArray16;
                Some(IpAddr::V6(Ipv6Addr::from(bytes)))
            }
        }
    }

    /// `FWPS_FIELD_*_ALE_APP_ID`: an `FWP_BYTE_BLOB_TYPE` holding the NUL-terminated UTF-16 NT
    /// path. Returned without the terminator; empty when absent, odd-sized or misaligned.
    fn app_id(&self, index: usize) -> &'a [u16] {
        let Some(value) = self.value(index, sys::FWP_BYTE_BLOB_TYPE) else {
            return &[];
        };
        // SAFETY: the type tag is FWP_BYTE_BLOB_TYPE, so `byteBlob` is the initialized member.
        let blob = unsafe { value.Anonymous.byteBlob };
        // SAFETY: for this type the engine points at an FWP_BYTE_BLOB that lives for the classify.
        let Some(blob) = (unsafe { blob.as_ref() }) else {
            return &[];
        };
        let size = usize::try_from(blob.size).unwrap_or(0);
        if blob.data.is_null() || size < 2 || !blob.data.cast::<u16>().is_aligned() {
            return &[];
        }
        // SAFETY: `data` points to `size` bytes that live for the classify; it is non-NULL and
        // aligned for u16 (checked above), and `size / 2` u16s fit in `size` bytes.
        let units = unsafe { core::slice::from_raw_parts(blob.data.cast::<u16>(), size / 2) };
        match units.split_last() {
            Some((0, path)) => path,
            _ => units,
        }
    }
}

/// The metadata fields Tollgate reads, each present only if its bit is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// `FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE`.
    pub transport_endpoint_handle: Option<u64>,
    /// `FWPS_METADATA_FIELD_COMPLETION_HANDLE` (a HANDLE, kept as its address).
    pub completion_handle: Option<usize>,
    /// `FWPS_METADATA_FIELD_FLOW_HANDLE`.
    pub flow_handle: Option<u64>,
    /// `FWPS_METADATA_FIELD_PROCESS_ID`.
    pub process_id: Option<u64>,
}

impl Metadata {
    /// Reads `inMetaValues`.
    ///
    /// # Safety
    /// `meta` is the pointer classifyFn received (or NULL), valid for the classify.
    #[must_use]
    pub unsafe fn read(meta: *const sys::FWPS_INCOMING_METADATA_VALUES0) -> Metadata {
        // SAFETY: the caller guarantees `meta` is NULL or valid.
        let Some(meta) = (unsafe { meta.as_ref() }) else {
            return Metadata::default();
        };
        let present = |bit: u32| meta.currentMetadataValues & bit != 0;
        Metadata {
            transport_endpoint_handle: present(sys::FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE)
                .then_some(meta.transportEndpointHandle),
            completion_handle: present(sys::FWPS_METADATA_FIELD_COMPLETION_HANDLE)
                .then_some(meta.completionHandle as usize)
                .filter(|handle| *handle != 0),
            flow_handle: present(sys::FWPS_METADATA_FIELD_FLOW_HANDLE).then_some(meta.flowHandle),
            process_id: present(sys::FWPS_METADATA_FIELD_PROCESS_ID).then_some(meta.processId),
        }
    }
}

/// What a pendable classify (ALE_RESOURCE_ASSIGNMENT / ALE_AUTH_CONNECT) tells the core.
#[derive(Clone, Copy, Debug)]
pub struct PendableClassify<'a> {
    /// The facts.
    pub facts: ConnectionFacts<'a>,
    /// `FWP_CONDITION_FLAG_IS_REAUTHORIZE` is set in the layer's flags field.
    pub is_reauthorization: bool,
}

/// Reads a classify at ALE_RESOURCE_ASSIGNMENT or ALE_AUTH_CONNECT. `None` at any other layer, or
/// when the protocol or local address is missing (the shim then decides by default).
#[must_use]
pub fn read_pendable<'a>(
    layer: ClassifyKind,
    version: IpVersion,
    values: &IncomingValues<'a>,
    metadata: &Metadata,
) -> Option<PendableClassify<'a>> {
    let (map, pend_layer) = match (layer, version) {
        (ClassifyKind::ResourceAssignment, IpVersion::V4) => (RESOURCE_ASSIGNMENT_V4, PendLayer::ResourceAssignment),
        (ClassifyKind::ResourceAssignment, IpVersion::V6) => (RESOURCE_ASSIGNMENT_V6, PendLayer::ResourceAssignment),
        (ClassifyKind::AuthConnect, IpVersion::V4) => (AUTH_CONNECT_V4, PendLayer::AuthConnect),
        (ClassifyKind::AuthConnect, IpVersion::V6) => (AUTH_CONNECT_V6, PendLayer::AuthConnect),
        _ => return None,
    };
    let unspecified = match version {
        IpVersion::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpVersion::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let flags = values.uint32(map.flags).unwrap_or(0);
    Some(PendableClassify {
        facts: ConnectionFacts {
            layer: pend_layer,
            protocol: values.uint8(map.protocol)?,
            // ALE_AUTH_CONNECT is the outbound authorization; a bind has no direction of its own.
            direction: Direction::Outbound,
            local_address: values.address(map.local_address, version)?,
            local_port: values.uint16(map.local_port).unwrap_or(0),
            remote_address: map.remote_address.and_then(|i| values.address(i, version)).unwrap_or(unspecified),
            remote_port: map.remote_port.and_then(|i| values.uint16(i)).unwrap_or(0),
            process_id: metadata.process_id.unwrap_or(0),
            app_path: values.app_id(map.app_id),
        },
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/network/filtering-condition-flags
        is_reauthorization: flags & sys::FWP_CONDITION_FLAG_IS_REAUTHORIZE != 0,
    })
}

/// The IP protocol at ALE_FLOW_ESTABLISHED (the stream flow context is only for TCP).
#[must_use]
pub fn flow_established_protocol(version: IpVersion, values: &IncomingValues<'_>) -> Option<u8> {
    values.uint8(flow_fields(version).protocol)
}

/// The connection of a flow at ALE_FLOW_ESTABLISHED, for its events: `None` when the protocol or
/// an address is missing (the flow is then not inspected). `FWP_DIRECTION_INBOUND` marks a
/// connection this machine accepted; anything else is read as outbound.
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/network/filtering-layer-identifiers>
#[must_use]
pub fn read_flow_established(
    version: IpVersion,
    values: &IncomingValues<'_>,
    metadata: &Metadata,
) -> Option<FlowEndpoints> {
    let map = flow_fields(version);
    // FWP_DIRECTION is a C enum (i32); the field is an FWP_UINT32.
    let inbound = u32::try_from(sys::FWP_DIRECTION_INBOUND).unwrap_or(u32::MAX);
    let direction =
        if values.uint32(map.direction) == Some(inbound) { Direction::Inbound } else { Direction::Outbound };
    Some(FlowEndpoints {
        ip_protocol: values.uint8(map.protocol)?,
        direction,
        local_address: values.address(map.local_address, version)?,
        local_port: values.uint16(map.local_port).unwrap_or(0),
        remote_address: values.address(map.remote_address, version)?,
        remote_port: values.uint16(map.remote_port).unwrap_or(0),
        process_id: metadata.process_id.unwrap_or(0),
    })
}

/// One stream indication: the segment for the core and the stream data to copy from (NULL-safe).
#[derive(Clone, Copy, Debug)]
pub struct StreamIndication {
    /// What the core accounts.
    pub segment: StreamSegment,
    /// `streamData`, if `layerData` and `streamData` are both non-NULL. Valid only during this
    /// classify: it must be used only through [`StreamIndication::copy_prefix`] within it.
    stream_data: *const sys::FWPS_STREAM_DATA0,
}

/// The flags that end a direction of the stream.
const DISCONNECT_FLAGS: u32 = sys::FWPS_STREAM_FLAG_SEND_DISCONNECT
    | sys::FWPS_STREAM_FLAG_RECEIVE_DISCONNECT
    | sys::FWPS_STREAM_FLAG_SEND_ABORT
    | sys::FWPS_STREAM_FLAG_RECEIVE_ABORT;

impl StreamIndication {
    /// Reads the stream layer's `layerData` (`FWPS_STREAM_CALLOUT_IO_PACKET0*`).
    ///
    /// # Safety
    /// `layer_data` is classifyFn's `layerData` at a stream layer (or NULL), valid for the classify.
    #[must_use]
    pub unsafe fn read(layer_data: *const sys::FWPS_STREAM_CALLOUT_IO_PACKET0) -> StreamIndication {
        let none = StreamIndication {
            segment: StreamSegment { outbound: false, length: 0, disconnect: false },
            stream_data: core::ptr::null(),
        };
        // SAFETY: the caller guarantees `layer_data` is NULL or valid for the classify.
        let Some(packet) = (unsafe { layer_data.as_ref() }) else {
            return none;
        };
        // SAFETY: `streamData` is NULL or points to the engine's FWPS_STREAM_DATA0 for the classify.
        let Some(data) = (unsafe { packet.streamData.cast_const().as_ref() }) else {
            return none;
        };
        let has_data = !data.netBufferListChain.is_null();
        StreamIndication {
            segment: StreamSegment {
                outbound: data.flags & sys::FWPS_STREAM_FLAG_SEND != 0,
                length: if has_data { data.dataLength } else { 0 },
                disconnect: data.flags & DISCONNECT_FLAGS != 0,
            },
            stream_data: if has_data { packet.streamData.cast_const() } else { core::ptr::null() },
        }
    }

    /// Whether there is data to copy.
    #[must_use]
    pub fn has_data(&self) -> bool {
        !self.stream_data.is_null()
    }

    /// The raw `streamData` for `FwpsCopyStreamDataToBuffer0`, called by the shim within classifyFn.
    #[must_use]
    pub fn stream_data(&self) -> *const sys::FWPS_STREAM_DATA0 {
        self.stream_data
    }
}

/// Writes the core's decision into classifyOut (nothing at all when it has no write right).
///
/// # Safety
/// `out` is classifyFn's `classifyOut` (or NULL), valid and writable for the classify.
pub unsafe fn write_decision(out: *mut sys::FWPS_CLASSIFY_OUT0, decision: ClassifyDecision) {
    let Some(write) = decision.classify_out() else {
        return;
    };
    // SAFETY: the caller guarantees `out` is NULL or valid and writable.
    let Some(out) = (unsafe { out.as_mut() }) else {
        return;
    };
    out.actionType = match write.action {
        Verdict::Permit => sys::FWP_ACTION_PERMIT,
        Verdict::Block => sys::FWP_ACTION_BLOCK,
    };
    if write.absorb {
        out.flags |= sys::FWPS_CLASSIFY_OUT_FLAG_ABSORB;
    }
    if write.clear_write_right {
        out.rights &= !sys::FWPS_RIGHT_ACTION_WRITE;
    }
}

/// Whether classifyOut grants `FWPS_RIGHT_ACTION_WRITE`.
///
/// # Safety
/// `out` is classifyFn's `classifyOut` (or NULL), valid for the classify.
#[must_use]
pub unsafe fn can_write_action(out: *const sys::FWPS_CLASSIFY_OUT0) -> bool {
    // SAFETY: the caller guarantees `out` is NULL or valid.
    unsafe { out.as_ref() }.is_some_and(|out| out.rights & sys::FWPS_RIGHT_ACTION_WRITE != 0)
}

/// Permits without a decision of ours (teardown and flow-established layers, and the stream layer
/// once inspection is done): `FWP_ACTION_CONTINUE` if we may write.
///
/// # Safety
/// As [`write_decision`].
pub unsafe fn write_continue(out: *mut sys::FWPS_CLASSIFY_OUT0) {
    // SAFETY: the caller guarantees `out` is NULL or valid and writable.
    if let Some(out) = unsafe { out.as_mut() }
        && out.rights & sys::FWPS_RIGHT_ACTION_WRITE != 0
    {
        out.actionType = sys::FWP_ACTION_CONTINUE;
    }
}

/// The stream layer's answer, exactly as the core's [`StreamOutWrite`] says: `actionType` PERMIT
/// or BLOCK and `streamAction` NONE, ALLOW_CONNECTION or DROP_CONNECTION, always both (S6);
/// `countBytesRequired` = 0 (never NEED_MORE_DATA) and `countBytesEnforced` = the indication's
/// length (the action covers all of it).
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_>
///
/// # Safety
/// `out` as [`write_decision`]; `layer_data` as [`StreamIndication::read`] (writable).
pub unsafe fn write_stream(
    out: *mut sys::FWPS_CLASSIFY_OUT0,
    layer_data: *mut sys::FWPS_STREAM_CALLOUT_IO_PACKET0,
    write: StreamOutWrite,
    length: usize,
) {
    // SAFETY: the caller guarantees `out` is NULL or valid and writable.
    if let Some(out) = unsafe { out.as_mut() } {
        out.actionType = if write.block { sys::FWP_ACTION_BLOCK } else { sys::FWP_ACTION_PERMIT };
    }
    // SAFETY: the caller guarantees `layer_data` is NULL or valid and writable.
    if let Some(packet) = unsafe { layer_data.as_mut() } {
        packet.streamAction = match write.stream_action {
            StreamActionCode::None => sys::FWPS_STREAM_ACTION_NONE,
            StreamActionCode::AllowConnection => sys::FWPS_STREAM_ACTION_ALLOW_CONNECTION,
            StreamActionCode::DropConnection => sys::FWPS_STREAM_ACTION_DROP_CONNECTION,
        };
        packet.countBytesEnforced = length;
        packet.countBytesRequired = 0;
    }
}

/// Whether the filter that invoked the callout has the action type `FWP_ACTION_CALLOUT_UNKNOWN`
/// (the only one under which WFP honours `FWPS_STREAM_ACTION_DROP_CONNECTION`).
///
/// # Safety
/// `filter` is classifyFn's `filter` argument (or NULL), valid for the classify.
#[must_use]
pub unsafe fn filter_is_callout_unknown(filter: *const sys::FWPS_FILTER3) -> bool {
    // SAFETY: the caller guarantees `filter` is NULL or valid.
    unsafe { filter.as_ref() }.is_some_and(|filter| filter.action.r#type == sys::FWP_ACTION_CALLOUT_UNKNOWN)
}
