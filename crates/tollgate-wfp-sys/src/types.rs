//! The callout-side (`Fwps*`) structures, transcribed from fwpsk.h (WDK 10.0.22621.0) and
//! fwpstypes.h (SDK shared headers), field for field, in C order, with C field names.
//!
//! windows-sys does not have these (it has no kernel headers); the `FWP_*`/`FWPM_*` types they
//! contain come from windows-sys (see the crate root). Every structure here has a size, alignment
//! and per-field offset assertion for x86_64 in `layout.rs`, derived independently from the C
//! declarations with clang (`layout/check.sh`).
//!
//! Pointers keep C's mutability (`T*` is `*mut T`, `const T*` is `*const T`). Function-pointer
//! fields are `Option<unsafe extern "system" fn ...>` so that `None` is C's `NULL`.

use core::ffi::c_void;
use core::marker::{PhantomData, PhantomPinned};

use windows_sys::Win32::Foundation::{HANDLE, NTSTATUS};
use windows_sys::Win32::NetworkManagement::IpHelper::IP_ADDRESS_PREFIX;
use windows_sys::Win32::NetworkManagement::WindowsFilteringPlatform::{
    FWP_ACTION_TYPE, FWP_BYTE_BLOB, FWP_CONDITION_VALUE0, FWP_DIRECTION, FWP_MATCH_TYPE, FWP_VALUE0,
    FWPM_PROVIDER_CONTEXT3,
};
use windows_sys::Win32::Networking::WinSock::{CMSGHDR, SCOPE_ID, SOCKADDR};
use windows_sys::core::GUID;

/// Declares a type that Rust only ever sees behind a pointer (the "opaque type" pattern of the
/// Rustonomicon): not constructible, not `Send`/`Sync`/`Unpin`, zero-sized.
macro_rules! opaque {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    };
}

opaque!(
    /// NDIS `NET_BUFFER_LIST` (ndis/nbl.h). Opaque here: the stream callout only passes it back to
    /// WFP (`FwpsCopyStreamDataToBuffer0`) and never dereferences it (ARCHITECTURE.md S6).
    NET_BUFFER_LIST
);
opaque!(
    /// NDIS `NET_BUFFER` (ndis/nbl.h). Opaque here.
    NET_BUFFER
);
opaque!(
    /// Kernel `MDL` (wdm.h). Opaque here.
    MDL
);

/// `FWPS_FILTER_CONDITION0` (fwpstypes.h): one run-time filter condition.
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_filter_condition0>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_FILTER_CONDITION0 {
    /// Index of the condition's field in the layer's `FWPS_FIELDS_*` enumeration.
    pub fieldId: u16,
    /// Reserved.
    pub reserved: u16,
    /// How `conditionValue` is compared (`FWP_MATCH_*`).
    pub matchType: FWP_MATCH_TYPE,
    /// The value the field is compared with.
    pub conditionValue: FWP_CONDITION_VALUE0,
}

/// `FWPS_ACTION0` (fwpstypes.h): a filter's run-time action.
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_action0>
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FWPS_ACTION0 {
    /// `FWP_ACTION_*`.
    pub r#type: FWP_ACTION_TYPE,
    /// Run-time id of the callout, for callout actions.
    pub calloutId: u32,
}

/// `FWPS_FILTER3` (fwpstypes.h, `NTDDI_WIN10_RS3`+): the filter passed to a version-3 classifyFn
/// and notifyFn.
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_filter3>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_FILTER3 {
    /// Run-time filter id (the id `FwpmFilterAdd0` returned).
    pub filterId: u64,
    /// Filter weight.
    pub weight: FWP_VALUE0,
    /// Weight of the filter's sublayer.
    pub subLayerWeight: u16,
    /// `FWPS_FILTER_FLAG_*`.
    pub flags: u16,
    /// Number of entries at `filterCondition`.
    pub numFilterConditions: u32,
    /// The filter's conditions (`numFilterConditions` entries).
    pub filterCondition: *mut FWPS_FILTER_CONDITION0,
    /// The filter's action.
    pub action: FWPS_ACTION0,
    /// Filter context (`FWPM_FILTER0::rawContext` at add time).
    pub context: u64,
    /// Provider context, or NULL.
    pub providerContext: *mut FWPM_PROVIDER_CONTEXT3,
}

/// `FWPS_INCOMING_VALUE0` (fwpstypes.h): one data field of a classify.
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_incoming_value0>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INCOMING_VALUE0 {
    /// The value.
    pub value: FWP_VALUE0,
}

/// `FWPS_INCOMING_VALUES0` (fwpstypes.h): the data fields of a classify (`inFixedValues`).
/// Index `incomingValue` with the layer's `FWPS_FIELD_*` constants, after checking the index
/// against `valueCount`.
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_incoming_values0>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INCOMING_VALUES0 {
    /// Run-time layer id (`FWPS_LAYER_*`).
    pub layerId: u16,
    /// Number of entries at `incomingValue`.
    pub valueCount: u32,
    /// The values (`valueCount` entries).
    pub incomingValue: *mut FWPS_INCOMING_VALUE0,
}

/// `FWPS_DISCARD_MODULE0` (fwpstypes.h), a C enumeration.
pub type FWPS_DISCARD_MODULE0 = i32;

/// `FWPS_DISCARD_METADATA0` (fwpstypes.h): why a packet was discarded (discard layers only).
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_discard_metadata0>
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FWPS_DISCARD_METADATA0 {
    /// `FWPS_DISCARD_MODULE_*`.
    pub discardModule: FWPS_DISCARD_MODULE0,
    /// Module-specific reason.
    pub discardReason: u32,
    /// Filter that discarded, if any.
    pub filterId: u64,
}

/// `FWPS_INBOUND_FRAGMENT_METADATA0` (fwpstypes.h).
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_inbound_fragment_metadata0>
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FWPS_INBOUND_FRAGMENT_METADATA0 {
    /// IP identification of the fragment.
    pub fragmentIdentification: u32,
    /// Fragment offset.
    pub fragmentOffset: u16,
    /// Fragment length (`ULONG`).
    pub fragmentLength: u32,
}

/// `FWPS_INCOMING_METADATA_VALUES0` (fwpsk.h): the metadata of a classify (`inMetaValues`).
///
/// A field is valid only when its `FWPS_METADATA_FIELD_*` bit is set in `currentMetadataValues`
/// (`FWPS_IS_METADATA_FIELD_PRESENT`); L2 fields likewise with `currentL2MetadataValues`.
/// This is the newest (`NTDDI_WIN8`+) definition; the three vSwitch fields are `padding0/1/2` of the
/// same types when NDIS 6.30 is not targeted, which does not change the layout.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_incoming_metadata_values0_>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_INCOMING_METADATA_VALUES0 {
    /// Bitmask of the `FWPS_METADATA_FIELD_*` values present.
    pub currentMetadataValues: u32,
    /// Internal flags (`FWPS_METADATA_FIELD_SYSTEM_FLAGS`).
    pub flags: u32,
    /// Reserved for system use.
    pub reserved: u64,
    /// `FWPS_METADATA_FIELD_DISCARD_REASON`.
    pub discardMetadata: FWPS_DISCARD_METADATA0,
    /// `FWPS_METADATA_FIELD_FLOW_HANDLE`: the flow id for `FwpsFlowAssociateContext0`.
    pub flowHandle: u64,
    /// `FWPS_METADATA_FIELD_IP_HEADER_SIZE`.
    pub ipHeaderSize: u32,
    /// `FWPS_METADATA_FIELD_TRANSPORT_HEADER_SIZE`.
    pub transportHeaderSize: u32,
    /// `FWPS_METADATA_FIELD_PROCESS_PATH`: full path of the process (UTF-16, NUL-terminated blob).
    pub processPath: *mut FWP_BYTE_BLOB,
    /// `FWPS_METADATA_FIELD_TOKEN`.
    pub token: u64,
    /// `FWPS_METADATA_FIELD_PROCESS_ID`.
    pub processId: u64,
    /// `FWPS_METADATA_FIELD_SOURCE_INTERFACE_INDEX`.
    pub sourceInterfaceIndex: u32,
    /// `FWPS_METADATA_FIELD_DESTINATION_INTERFACE_INDEX`.
    pub destinationInterfaceIndex: u32,
    /// `FWPS_METADATA_FIELD_COMPARTMENT_ID` (`ULONG`).
    pub compartmentId: u32,
    /// `FWPS_METADATA_FIELD_FRAGMENT_DATA`.
    pub fragmentMetadata: FWPS_INBOUND_FRAGMENT_METADATA0,
    /// `FWPS_METADATA_FIELD_PATH_MTU` (`ULONG`).
    pub pathMtu: u32,
    /// `FWPS_METADATA_FIELD_COMPLETION_HANDLE`: the handle `FwpsPendOperation0` needs.
    pub completionHandle: HANDLE,
    /// `FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE`: identifies the endpoint (Tollgate's table
    /// key).
    pub transportEndpointHandle: u64,
    /// `FWPS_METADATA_FIELD_REMOTE_SCOPE_ID`.
    pub remoteScopeId: SCOPE_ID,
    /// `FWPS_METADATA_FIELD_TRANSPORT_CONTROL_DATA` (`WSACMSGHDR*`).
    pub controlData: *mut CMSGHDR,
    /// Length of `controlData` (`ULONG`).
    pub controlDataLength: u32,
    /// `FWPS_METADATA_FIELD_PACKET_DIRECTION` (`FWP_DIRECTION_*`).
    pub packetDirection: FWP_DIRECTION,
    /// `FWPS_METADATA_FIELD_TRANSPORT_HEADER_INCLUDE_HEADER` (`NTDDI_WIN6SP1`+).
    pub headerIncludeHeader: *mut c_void,
    /// Length of `headerIncludeHeader` (`ULONG`).
    pub headerIncludeHeaderLength: u32,
    /// `FWPS_METADATA_FIELD_DESTINATION_PREFIX` (`NTDDI_WIN7`+).
    pub destinationPrefix: IP_ADDRESS_PREFIX,
    /// `FWPS_METADATA_FIELD_ETHER_FRAME_LENGTH`.
    pub frameLength: u16,
    /// `FWPS_METADATA_FIELD_PARENT_ENDPOINT_HANDLE`.
    pub parentEndpointHandle: u64,
    /// `FWPS_METADATA_FIELD_ICMP_ID_AND_SEQUENCE`.
    pub icmpIdAndSequence: u32,
    /// `FWPS_METADATA_FIELD_LOCAL_REDIRECT_TARGET_PID` (`DWORD`).
    pub localRedirectTargetPID: u32,
    /// `FWPS_METADATA_FIELD_ORIGINAL_DESTINATION`.
    pub originalDestination: *mut SOCKADDR,
    /// `FWPS_METADATA_FIELD_REDIRECT_RECORD_HANDLE` (`NTDDI_WIN8`+).
    pub redirectRecords: HANDLE,
    /// Bitmask of the `FWPS_L2_METADATA_FIELD_*` values present.
    pub currentL2MetadataValues: u32,
    /// L2 flags.
    pub l2Flags: u32,
    /// `FWPS_L2_METADATA_FIELD_ETHERNET_MAC_HEADER_SIZE`.
    pub ethernetMacHeaderSize: u32,
    /// `FWPS_L2_METADATA_FIELD_WIFI_OPERATION_MODE`.
    pub wiFiOperationMode: u32,
    /// `FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_PORT_ID` (`NDIS_SWITCH_PORT_ID`).
    pub vSwitchSourcePortId: u32,
    /// `FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_NIC_INDEX` (`NDIS_SWITCH_NIC_INDEX`).
    pub vSwitchSourceNicIndex: u16,
    /// `FWPS_L2_METADATA_FIELD_VSWITCH_DESTINATION_PORT_ID` (`NDIS_SWITCH_PORT_ID`).
    pub vSwitchDestinationPortId: u32,
    /// `FWPS_L2_METADATA_FIELD_VSWITCH_PACKET_CONTEXT`.
    pub vSwitchPacketContext: HANDLE,
    /// `FWPS_METADATA_FIELD_SUB_PROCESS_TAG` (`NTDDI_WIN8`+).
    pub subProcessTag: *mut c_void,
    /// Reserved for system use.
    pub reserved1: u64,
}

/// `FWPS_CLASSIFY_OUT0` (fwpstypes.h): the result of a classifyFn.
///
/// Write `actionType` only if `rights` has `FWPS_RIGHT_ACTION_WRITE`.
/// <https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_classify_out0>
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FWPS_CLASSIFY_OUT0 {
    /// `FWP_ACTION_*`.
    pub actionType: FWP_ACTION_TYPE,
    /// Reserved for system use.
    pub outContext: u64,
    /// Reserved for system use.
    pub filterId: u64,
    /// `FWPS_RIGHT_ACTION_WRITE` when the callout may set `actionType`.
    pub rights: u32,
    /// `FWPS_CLASSIFY_OUT_FLAG_*`.
    pub flags: u32,
    /// Reserved for system use.
    pub reserved: u32,
}

/// `FWPS_CALLOUT_NOTIFY_TYPE` (fwpstypes.h), a C enumeration (`FWPS_CALLOUT_NOTIFY_*`).
pub type FWPS_CALLOUT_NOTIFY_TYPE = i32;

/// `FWPS_CALLOUT_CLASSIFY_FN3` (fwpsk.h, `NTDDI_WIN10_RS3`+): the classifyFn of a version-3
/// callout. Called at IRQL <= DISPATCH_LEVEL.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_classify_fn3>
///
/// Parameters in C order: `inFixedValues`, `inMetaValues`, `layerData` (optional; at the stream
/// layer an [`FWPS_STREAM_CALLOUT_IO_PACKET0`]), `classifyContext` (optional; for
/// `FwpsAcquireClassifyHandle0`), `filter`, `flowContext`, `classifyOut`.
pub type FWPS_CALLOUT_CLASSIFY_FN3 = Option<
    unsafe extern "system" fn(
        inFixedValues: *const FWPS_INCOMING_VALUES0,
        inMetaValues: *const FWPS_INCOMING_METADATA_VALUES0,
        layerData: *mut c_void,
        classifyContext: *const c_void,
        filter: *const FWPS_FILTER3,
        flowContext: u64,
        classifyOut: *mut FWPS_CLASSIFY_OUT0,
    ),
>;

/// `FWPS_CALLOUT_NOTIFY_FN3` (fwpsk.h, `NTDDI_WIN10_RS3`+): notifies the callout that a filter
/// that references it was added or deleted. Called at IRQL <= DISPATCH_LEVEL.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_notify_fn3>
pub type FWPS_CALLOUT_NOTIFY_FN3 = Option<
    unsafe extern "system" fn(
        notifyType: FWPS_CALLOUT_NOTIFY_TYPE,
        filterKey: *const GUID,
        filter: *mut FWPS_FILTER3,
    ) -> NTSTATUS,
>;

/// `FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0` (fwpsk.h): notifies the callout that a flow it associated a
/// context with (`FwpsFlowAssociateContext0`) is being deleted. Called at IRQL <= DISPATCH_LEVEL.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_flow_delete_notify_fn>
pub type FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 =
    Option<unsafe extern "system" fn(layerId: u16, calloutId: u32, flowContext: u64)>;

/// `FWPS_CALLOUT3` (fwpsk.h, `NTDDI_WIN10_RS3`+): what `FwpsCalloutRegister3` registers.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_callout3>
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct FWPS_CALLOUT3 {
    /// The callout's key; the same GUID as `FWPM_CALLOUT0::calloutKey`.
    pub calloutKey: GUID,
    /// `FWP_CALLOUT_FLAG_*`.
    pub flags: u32,
    /// Required.
    pub classifyFn: FWPS_CALLOUT_CLASSIFY_FN3,
    /// Required.
    pub notifyFn: FWPS_CALLOUT_NOTIFY_FN3,
    /// Optional; required for `FwpsFlowAssociateContext0`.
    pub flowDeleteFn: FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0,
}

/// `FWPS_STREAM_DATA_OFFSET0` (fwpsk.h): a position inside an [`FWPS_STREAM_DATA0`].
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_data_offset0_>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_STREAM_DATA_OFFSET0 {
    /// NET_BUFFER_LIST in which the offset lies.
    pub netBufferList: *mut NET_BUFFER_LIST,
    /// NET_BUFFER in which the offset lies.
    pub netBuffer: *mut NET_BUFFER,
    /// MDL in which the offset lies.
    pub mdl: *mut MDL,
    /// Byte offset from the start of `mdl`.
    pub mdlOffset: u32,
    /// Offset relative to the NET_BUFFER's DataOffset.
    pub netBufferOffset: u32,
    /// Offset from the start of the stream data (`SIZE_T`).
    pub streamDataOffset: usize,
}

/// `FWPS_STREAM_DATA0` (fwpsk.h): a section of a TCP stream given to a stream callout.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_data0_>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_STREAM_DATA0 {
    /// `FWPS_STREAM_FLAG_*`.
    pub flags: u32,
    /// Where the data starts.
    pub dataOffset: FWPS_STREAM_DATA_OFFSET0,
    /// Number of bytes (`SIZE_T`).
    pub dataLength: usize,
    /// The data; may be NULL (e.g. a disconnect indication with no data).
    pub netBufferListChain: *mut NET_BUFFER_LIST,
}

/// `FWPS_STREAM_ACTION_TYPE` (fwpsk.h), a C enumeration (`FWPS_STREAM_ACTION_*`).
pub type FWPS_STREAM_ACTION_TYPE = i32;

/// `FWPS_STREAM_CALLOUT_IO_PACKET0` (fwpsk.h): the `layerData` of a classify at the stream layer.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_>
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FWPS_STREAM_CALLOUT_IO_PACKET0 {
    /// In: the stream data.
    pub streamData: *mut FWPS_STREAM_DATA0,
    /// In: bytes the callout missed (mid-stream inspection) (`SIZE_T`).
    pub missedBytes: usize,
    /// Out: with `FWPS_STREAM_ACTION_NEED_MORE_DATA`, how many bytes are needed.
    pub countBytesRequired: u32,
    /// Out: how many bytes of `streamData` the action applies to (`SIZE_T`).
    pub countBytesEnforced: usize,
    /// Out: `FWPS_STREAM_ACTION_*`; anything but `NONE` makes WFP ignore `actionType`.
    pub streamAction: FWPS_STREAM_ACTION_TYPE,
}
