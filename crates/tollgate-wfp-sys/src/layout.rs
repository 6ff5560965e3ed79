//! Compile-time checks of the x86_64 ABI of every structure this crate declares or re-exports,
//! and of the values of the windows-sys constants and GUIDs it re-exports.
//!
//! Evaluated by every build for a 64-bit target (`cargo check --target x86_64-pc-windows-msvc`
//! included); the module is compiled out on 32-bit targets, whose layouts differ.
//!
//! Where the numbers come from: clang's MSVC record layout (`-fdump-record-layouts`,
//! `--target=x86_64-pc-windows-msvc`) of `layout/fwp_layout.c`, an independent C transcription of
//! the declarations in fwpsk.h (WDK 10.0.22621.0), fwpstypes.h / fwptypes.h / fwpmtypes.h and the
//! ws2def.h / netioapi.h types they use. `layout/check.sh` re-runs clang and fails if any
//! `assert_layout!` below disagrees with it (size, alignment, offset of each listed field, and
//! no field missing), and checks every `assert_value!` and every `pub const` of the crate against
//! the C definitions. The GUIDs are checked against the `DEFINE_GUID`s of fwpmk.h, transcribed.
//!
//! Field names are the C names (windows-sys spells the GUID fields in lower case and names
//! anonymous unions `Anonymous`, as does the C transcription).

use core::mem::{align_of, offset_of, size_of};

use crate::*;

/// `assert_layout!(T { size: N, align: A, field @ offset, ... })`: one const assertion per fact.
/// Keep one field per line; `layout/check.sh` parses these blocks.
macro_rules! assert_layout {
    ($ty:ident { size: $size:literal, align: $align:literal, $($field:ident @ $offset:literal,)* }) => {
        const _: () = assert!(
            size_of::<$ty>() == $size,
            concat!("size_of::<", stringify!($ty), ">() differs from the C header")
        );
        const _: () = assert!(
            align_of::<$ty>() == $align,
            concat!("align_of::<", stringify!($ty), ">() differs from the C header")
        );
        $(
            const _: () = assert!(
                offset_of!($ty, $field) == $offset,
                concat!("offset_of!(", stringify!($ty), ", ", stringify!($field), ") differs from the C header")
            );
        )*
    };
}

/// `assert_value!(NAME == VALUE)`: a re-exported constant has the value of the C header (compared
/// as the 32-bit pattern, so NTSTATUS values are written as in ntstatus.h).
/// `layout/check.sh` checks VALUE against the C definition of NAME.
macro_rules! assert_value {
    ($name:ident == $value:literal) => {
        const _: () = assert!($name as u32 == $value, concat!(stringify!($name), " differs from the C header"));
    };
}

/// `assert_guid!(NAME == 0x...)`: a re-exported GUID equals the `DEFINE_GUID` of fwpmk.h.
macro_rules! assert_guid {
    ($name:ident == $value:literal) => {
        const _: () =
            assert!(guid_eq($name, GUID::from_u128($value)), concat!(stringify!($name), " differs from fwpmk.h"));
    };
}

const fn guid_eq(a: GUID, b: GUID) -> bool {
    a.data1 == b.data1
        && a.data2 == b.data2
        && a.data3 == b.data3
        && u64::from_ne_bytes(a.data4) == u64::from_ne_bytes(b.data4)
}

// ---- Record layouts (x86_64, MSVC) -------------------------------------------------------------
// Generated from clang's dump of layout/fwp_layout.c; verified by layout/check.sh.

assert_layout!(GUID {
    size: 16,
    align: 4,
    data1 @ 0,
    data2 @ 4,
    data3 @ 6,
    data4 @ 8,
});
assert_layout!(SCOPE_ID {
    size: 4,
    align: 4,
    Anonymous @ 0,
});
assert_layout!(SOCKADDR {
    size: 16,
    align: 2,
    sa_family @ 0,
    sa_data @ 2,
});
assert_layout!(CMSGHDR {
    size: 16,
    align: 8,
    cmsg_len @ 0,
    cmsg_level @ 8,
    cmsg_type @ 12,
});
assert_layout!(IP_ADDRESS_PREFIX {
    size: 32,
    align: 4,
    Prefix @ 0,
    PrefixLength @ 28,
});
assert_layout!(FWP_BYTE_BLOB {
    size: 16,
    align: 8,
    size @ 0,
    data @ 8,
});
assert_layout!(FWP_BYTE_ARRAY16 {
    size: 16,
    align: 1,
    byteArray16 @ 0,
});
assert_layout!(FWP_VALUE0 {
    size: 16,
    align: 8,
    r#type @ 0,
    Anonymous @ 8,
});
assert_layout!(FWP_CONDITION_VALUE0 {
    size: 16,
    align: 8,
    r#type @ 0,
    Anonymous @ 8,
});
assert_layout!(FWPM_DISPLAY_DATA0 {
    size: 16,
    align: 8,
    name @ 0,
    description @ 8,
});
assert_layout!(FWPM_SESSION0 {
    size: 72,
    align: 8,
    sessionKey @ 0,
    displayData @ 16,
    flags @ 32,
    txnWaitTimeoutInMSec @ 36,
    processId @ 40,
    sid @ 48,
    username @ 56,
    kernelMode @ 64,
});
assert_layout!(FWPM_PROVIDER0 {
    size: 64,
    align: 8,
    providerKey @ 0,
    displayData @ 16,
    flags @ 32,
    providerData @ 40,
    serviceName @ 56,
});
assert_layout!(FWPM_SUBLAYER0 {
    size: 72,
    align: 8,
    subLayerKey @ 0,
    displayData @ 16,
    flags @ 32,
    providerKey @ 40,
    providerData @ 48,
    weight @ 64,
});
assert_layout!(FWPM_CALLOUT0 {
    size: 88,
    align: 8,
    calloutKey @ 0,
    displayData @ 16,
    flags @ 32,
    providerKey @ 40,
    providerData @ 48,
    applicableLayer @ 64,
    calloutId @ 80,
});
assert_layout!(FWPM_ACTION0 {
    size: 20,
    align: 4,
    r#type @ 0,
    Anonymous @ 4,
});
assert_layout!(FWPM_FILTER_CONDITION0 {
    size: 40,
    align: 8,
    fieldKey @ 0,
    matchType @ 16,
    conditionValue @ 24,
});
assert_layout!(FWPM_FILTER0 {
    size: 200,
    align: 8,
    filterKey @ 0,
    displayData @ 16,
    flags @ 32,
    providerKey @ 40,
    providerData @ 48,
    layerKey @ 64,
    subLayerKey @ 80,
    weight @ 96,
    numFilterConditions @ 112,
    filterCondition @ 120,
    action @ 128,
    Anonymous @ 152,
    reserved @ 168,
    filterId @ 176,
    effectiveWeight @ 184,
});
assert_layout!(FWPS_FILTER_CONDITION0 {
    size: 24,
    align: 8,
    fieldId @ 0,
    reserved @ 2,
    matchType @ 4,
    conditionValue @ 8,
});
assert_layout!(FWPS_ACTION0 {
    size: 8,
    align: 4,
    r#type @ 0,
    calloutId @ 4,
});
assert_layout!(FWPS_FILTER3 {
    size: 64,
    align: 8,
    filterId @ 0,
    weight @ 8,
    subLayerWeight @ 24,
    flags @ 26,
    numFilterConditions @ 28,
    filterCondition @ 32,
    action @ 40,
    context @ 48,
    providerContext @ 56,
});
assert_layout!(FWPS_INCOMING_VALUE0 {
    size: 16,
    align: 8,
    value @ 0,
});
assert_layout!(FWPS_INCOMING_VALUES0 {
    size: 16,
    align: 8,
    layerId @ 0,
    valueCount @ 4,
    incomingValue @ 8,
});
assert_layout!(FWPS_DISCARD_METADATA0 {
    size: 16,
    align: 8,
    discardModule @ 0,
    discardReason @ 4,
    filterId @ 8,
});
assert_layout!(FWPS_INBOUND_FRAGMENT_METADATA0 {
    size: 12,
    align: 4,
    fragmentIdentification @ 0,
    fragmentOffset @ 4,
    fragmentLength @ 8,
});
assert_layout!(FWPS_CLASSIFY_OUT0 {
    size: 40,
    align: 8,
    actionType @ 0,
    outContext @ 8,
    filterId @ 16,
    rights @ 24,
    flags @ 28,
    reserved @ 32,
});
assert_layout!(FWPS_INCOMING_METADATA_VALUES0 {
    size: 280,
    align: 8,
    currentMetadataValues @ 0,
    flags @ 4,
    reserved @ 8,
    discardMetadata @ 16,
    flowHandle @ 32,
    ipHeaderSize @ 40,
    transportHeaderSize @ 44,
    processPath @ 48,
    token @ 56,
    processId @ 64,
    sourceInterfaceIndex @ 72,
    destinationInterfaceIndex @ 76,
    compartmentId @ 80,
    fragmentMetadata @ 84,
    pathMtu @ 96,
    completionHandle @ 104,
    transportEndpointHandle @ 112,
    remoteScopeId @ 120,
    controlData @ 128,
    controlDataLength @ 136,
    packetDirection @ 140,
    headerIncludeHeader @ 144,
    headerIncludeHeaderLength @ 152,
    destinationPrefix @ 156,
    frameLength @ 188,
    parentEndpointHandle @ 192,
    icmpIdAndSequence @ 200,
    localRedirectTargetPID @ 204,
    originalDestination @ 208,
    redirectRecords @ 216,
    currentL2MetadataValues @ 224,
    l2Flags @ 228,
    ethernetMacHeaderSize @ 232,
    wiFiOperationMode @ 236,
    vSwitchSourcePortId @ 240,
    vSwitchSourceNicIndex @ 244,
    vSwitchDestinationPortId @ 248,
    vSwitchPacketContext @ 256,
    subProcessTag @ 264,
    reserved1 @ 272,
});
assert_layout!(FWPS_CALLOUT3 {
    size: 48,
    align: 8,
    calloutKey @ 0,
    flags @ 16,
    classifyFn @ 24,
    notifyFn @ 32,
    flowDeleteFn @ 40,
});
assert_layout!(FWPS_STREAM_DATA_OFFSET0 {
    size: 40,
    align: 8,
    netBufferList @ 0,
    netBuffer @ 8,
    mdl @ 16,
    mdlOffset @ 24,
    netBufferOffset @ 28,
    streamDataOffset @ 32,
});
assert_layout!(FWPS_STREAM_DATA0 {
    size: 64,
    align: 8,
    flags @ 0,
    dataOffset @ 8,
    dataLength @ 48,
    netBufferListChain @ 56,
});
assert_layout!(FWPS_STREAM_CALLOUT_IO_PACKET0 {
    size: 40,
    align: 8,
    streamData @ 0,
    missedBytes @ 8,
    countBytesRequired @ 16,
    countBytesEnforced @ 24,
    streamAction @ 32,
});

// ---- Values of the re-exported windows-sys constants (fwptypes.h, fwpmtypes.h, fwpstypes.h,
// fwpsk.h, ntstatus.h); verified against the C definitions by layout/check.sh.

assert_value!(FWPM_CALLOUT_FLAG_PERSISTENT == 0x10000);
assert_value!(FWPM_CALLOUT_FLAG_REGISTERED == 0x40000);
assert_value!(FWPM_CALLOUT_FLAG_USES_PROVIDER_CONTEXT == 0x20000);
assert_value!(FWPM_FILTER_FLAG_BOOTTIME == 0x2);
assert_value!(FWPM_FILTER_FLAG_CLEAR_ACTION_RIGHT == 0x8);
assert_value!(FWPM_FILTER_FLAG_DISABLED == 0x20);
assert_value!(FWPM_FILTER_FLAG_HAS_PROVIDER_CONTEXT == 0x4);
assert_value!(FWPM_FILTER_FLAG_INDEXED == 0x40);
assert_value!(FWPM_FILTER_FLAG_NONE == 0x0);
assert_value!(FWPM_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED == 0x10);
assert_value!(FWPM_FILTER_FLAG_PERSISTENT == 0x1);
assert_value!(FWPM_PROVIDER_FLAG_PERSISTENT == 0x1);
assert_value!(FWPM_SESSION_FLAG_DYNAMIC == 0x1);
assert_value!(FWPM_SUBLAYER_FLAG_PERSISTENT == 0x1);
assert_value!(FWPS_CLASSIFY_OUT_FLAG_ABSORB == 0x1);
assert_value!(FWPS_CLASSIFY_OUT_FLAG_ALE_FAST_CACHE_CHECK == 0x8);
assert_value!(FWPS_CLASSIFY_OUT_FLAG_ALE_FAST_CACHE_POSSIBLE == 0x10);
assert_value!(FWPS_CLASSIFY_OUT_FLAG_BUFFER_LIMIT_REACHED == 0x2);
assert_value!(FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA == 0x4);
assert_value!(FWPS_FILTER_FLAG_CLEAR_ACTION_RIGHT == 0x1);
assert_value!(FWPS_FILTER_FLAG_HAS_SECURITY_REALM_PROVIDER_CONTEXT == 0x8);
assert_value!(FWPS_FILTER_FLAG_IPSEC_NO_ACQUIRE_INITIATE == 0x20);
assert_value!(FWPS_FILTER_FLAG_OR_CONDITIONS == 0x4);
assert_value!(FWPS_FILTER_FLAG_PERMIT_IF_CALLOUT_UNREGISTERED == 0x2);
assert_value!(FWPS_FILTER_FLAG_SILENT_MODE == 0x10);
assert_value!(FWPS_INCOMING_FLAG_ABSORB == 0x4);
assert_value!(FWPS_INCOMING_FLAG_CACHE_SAFE == 0x1);
assert_value!(FWPS_INCOMING_FLAG_CONNECTION_FAILING_INDICATION == 0x8);
assert_value!(FWPS_INCOMING_FLAG_ENFORCE_QUERY == 0x2);
assert_value!(FWPS_INCOMING_FLAG_IS_LOCAL_ONLY_FLOW == 0x80);
assert_value!(FWPS_INCOMING_FLAG_IS_LOOSE_SOURCE_FLOW == 0x40);
assert_value!(FWPS_INCOMING_FLAG_MID_STREAM_INSPECTION == 0x10);
assert_value!(FWPS_INCOMING_FLAG_RECLASSIFY == 0x20);
assert_value!(FWPS_L2_METADATA_FIELD_ETHERNET_MAC_HEADER_SIZE == 0x1);
assert_value!(FWPS_L2_METADATA_FIELD_VSWITCH_DESTINATION_PORT_ID == 0x20);
assert_value!(FWPS_L2_METADATA_FIELD_VSWITCH_PACKET_CONTEXT == 0x10);
assert_value!(FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_NIC_INDEX == 0x8);
assert_value!(FWPS_L2_METADATA_FIELD_VSWITCH_SOURCE_PORT_ID == 0x4);
assert_value!(FWPS_L2_METADATA_FIELD_WIFI_OPERATION_MODE == 0x2);
assert_value!(FWPS_METADATA_FIELD_ALE_CLASSIFY_REQUIRED == 0x400000);
assert_value!(FWPS_METADATA_FIELD_COMPARTMENT_ID == 0x800);
assert_value!(FWPS_METADATA_FIELD_COMPLETION_HANDLE == 0x4000);
assert_value!(FWPS_METADATA_FIELD_DESTINATION_INTERFACE_INDEX == 0x200);
assert_value!(FWPS_METADATA_FIELD_DESTINATION_PREFIX == 0x1000000);
assert_value!(FWPS_METADATA_FIELD_DISCARD_REASON == 0x1);
assert_value!(FWPS_METADATA_FIELD_ETHER_FRAME_LENGTH == 0x2000000);
assert_value!(FWPS_METADATA_FIELD_FLOW_HANDLE == 0x2);
assert_value!(FWPS_METADATA_FIELD_FORWARD_LAYER_INBOUND_PASS_THRU == 0x200000);
assert_value!(FWPS_METADATA_FIELD_FORWARD_LAYER_OUTBOUND_PASS_THRU == 0x100000);
assert_value!(FWPS_METADATA_FIELD_FRAGMENT_DATA == 0x1000);
assert_value!(FWPS_METADATA_FIELD_ICMP_ID_AND_SEQUENCE == 0x8000000);
assert_value!(FWPS_METADATA_FIELD_IP_HEADER_SIZE == 0x4);
assert_value!(FWPS_METADATA_FIELD_LOCAL_REDIRECT_TARGET_PID == 0x10000000);
assert_value!(FWPS_METADATA_FIELD_ORIGINAL_DESTINATION == 0x20000000);
assert_value!(FWPS_METADATA_FIELD_PACKET_DIRECTION == 0x40000);
assert_value!(FWPS_METADATA_FIELD_PACKET_SYSTEM_CRITICAL == 0x80000);
assert_value!(FWPS_METADATA_FIELD_PARENT_ENDPOINT_HANDLE == 0x4000000);
assert_value!(FWPS_METADATA_FIELD_PATH_MTU == 0x2000);
assert_value!(FWPS_METADATA_FIELD_PROCESS_ID == 0x20);
assert_value!(FWPS_METADATA_FIELD_PROCESS_PATH == 0x8);
assert_value!(FWPS_METADATA_FIELD_REDIRECT_RECORD_HANDLE == 0x40000000);
assert_value!(FWPS_METADATA_FIELD_REMOTE_SCOPE_ID == 0x20000);
assert_value!(FWPS_METADATA_FIELD_RESERVED == 0x80);
assert_value!(FWPS_METADATA_FIELD_SOURCE_INTERFACE_INDEX == 0x100);
assert_value!(FWPS_METADATA_FIELD_SUB_PROCESS_TAG == 0x80000000);
assert_value!(FWPS_METADATA_FIELD_SYSTEM_FLAGS == 0x40);
assert_value!(FWPS_METADATA_FIELD_TOKEN == 0x10);
assert_value!(FWPS_METADATA_FIELD_TRANSPORT_CONTROL_DATA == 0x10000);
assert_value!(FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE == 0x8000);
assert_value!(FWPS_METADATA_FIELD_TRANSPORT_HEADER_INCLUDE_HEADER == 0x800000);
assert_value!(FWPS_METADATA_FIELD_TRANSPORT_HEADER_SIZE == 0x400);
assert_value!(FWPS_RIGHT_ACTION_WRITE == 0x1);
assert_value!(FWP_ACTION_BLOCK == 0x1001);
assert_value!(FWP_ACTION_CALLOUT_INSPECTION == 0x6004);
assert_value!(FWP_ACTION_CALLOUT_TERMINATING == 0x5003);
assert_value!(FWP_ACTION_CALLOUT_UNKNOWN == 0x4005);
assert_value!(FWP_ACTION_CONTINUE == 0x2006);
assert_value!(FWP_ACTION_FLAG_CALLOUT == 0x4000);
assert_value!(FWP_ACTION_FLAG_NON_TERMINATING == 0x2000);
assert_value!(FWP_ACTION_FLAG_TERMINATING == 0x1000);
assert_value!(FWP_ACTION_NONE == 0x7);
assert_value!(FWP_ACTION_NONE_NO_MATCH == 0x8);
assert_value!(FWP_ACTION_PERMIT == 0x1002);
assert_value!(FWP_BYTE_ARRAY16_TYPE == 0xb);
assert_value!(FWP_BYTE_BLOB_TYPE == 0xc);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_L2_BATCH_CLASSIFY == 0x80);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION == 0x8);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_OFFLOAD == 0x2);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_RECLASSIFY == 0x10);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_RSC == 0x40);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_URO == 0x200);
assert_value!(FWP_CALLOUT_FLAG_ALLOW_USO == 0x100);
assert_value!(FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW == 0x1);
assert_value!(FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY == 0x4);
assert_value!(FWP_CONDITION_FLAG_IS_APPCONTAINER_LOOPBACK == 0x400000);
assert_value!(FWP_CONDITION_FLAG_IS_AUTH_FW == 0x10000);
assert_value!(FWP_CONDITION_FLAG_IS_CONNECTION_REDIRECTED == 0x100000);
assert_value!(FWP_CONDITION_FLAG_IS_FRAGMENT == 0x20);
assert_value!(FWP_CONDITION_FLAG_IS_FRAGMENT_GROUP == 0x40);
assert_value!(FWP_CONDITION_FLAG_IS_HONORING_POLICY_AUTHORIZE == 0x2000000);
assert_value!(FWP_CONDITION_FLAG_IS_IMPLICIT_BIND == 0x200);
assert_value!(FWP_CONDITION_FLAG_IS_INBOUND_PASS_THRU == 0x80000);
assert_value!(FWP_CONDITION_FLAG_IS_IPSEC_NATT_RECLASSIFY == 0x80);
assert_value!(FWP_CONDITION_FLAG_IS_IPSEC_SECURED == 0x2);
assert_value!(FWP_CONDITION_FLAG_IS_LOOPBACK == 0x1);
assert_value!(FWP_CONDITION_FLAG_IS_NAME_APP_SPECIFIED == 0x4000);
assert_value!(FWP_CONDITION_FLAG_IS_NON_APPCONTAINER_LOOPBACK == 0x800000);
assert_value!(FWP_CONDITION_FLAG_IS_OUTBOUND_PASS_THRU == 0x40000);
assert_value!(FWP_CONDITION_FLAG_IS_PROMISCUOUS == 0x8000);
assert_value!(FWP_CONDITION_FLAG_IS_PROXY_CONNECTION == 0x200000);
assert_value!(FWP_CONDITION_FLAG_IS_RAW_ENDPOINT == 0x10);
assert_value!(FWP_CONDITION_FLAG_IS_REASSEMBLED == 0x400);
assert_value!(FWP_CONDITION_FLAG_IS_REAUTHORIZE == 0x4);
assert_value!(FWP_CONDITION_FLAG_IS_RECLASSIFY == 0x20000);
assert_value!(FWP_CONDITION_FLAG_IS_RESERVED == 0x1000000);
assert_value!(FWP_CONDITION_FLAG_IS_WILDCARD_BIND == 0x8);
assert_value!(FWP_CONDITION_FLAG_REQUIRES_ALE_CLASSIFY == 0x100);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_CLASSIFY_COMPLETION == 0x10);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_IPSEC_PROPERTIES_CHANGED == 0x20);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_MID_STREAM_INSPECTION == 0x40);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_NEW_ARRIVAL_INTERFACE == 0x2);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_NEW_NEXTHOP_INTERFACE == 0x4);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_POLICY_CHANGE == 0x1);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_PROFILE_CROSSING == 0x8);
assert_value!(FWP_CONDITION_REAUTHORIZE_REASON_SOCKET_PROPERTY_CHANGED == 0x80);
assert_value!(FWP_DIRECTION_INBOUND == 0x1);
assert_value!(FWP_DIRECTION_OUTBOUND == 0x0);
assert_value!(FWP_DOUBLE == 0xa);
assert_value!(FWP_EMPTY == 0x0);
assert_value!(FWP_FLOAT == 0x9);
assert_value!(FWP_INT16 == 0x6);
assert_value!(FWP_INT32 == 0x7);
assert_value!(FWP_INT64 == 0x8);
assert_value!(FWP_INT8 == 0x5);
assert_value!(FWP_MATCH_EQUAL == 0x0);
assert_value!(FWP_MATCH_FLAGS_ALL_SET == 0x6);
assert_value!(FWP_MATCH_FLAGS_ANY_SET == 0x7);
assert_value!(FWP_MATCH_FLAGS_NONE_SET == 0x8);
assert_value!(FWP_MATCH_GREATER == 0x1);
assert_value!(FWP_MATCH_GREATER_OR_EQUAL == 0x3);
assert_value!(FWP_MATCH_LESS == 0x2);
assert_value!(FWP_MATCH_LESS_OR_EQUAL == 0x4);
assert_value!(FWP_MATCH_NOT_EQUAL == 0xa);
assert_value!(FWP_MATCH_RANGE == 0x5);
assert_value!(FWP_RANGE_TYPE == 0x102);
assert_value!(FWP_SECURITY_DESCRIPTOR_TYPE == 0xe);
assert_value!(FWP_SID == 0xd);
assert_value!(FWP_TOKEN_ACCESS_INFORMATION_TYPE == 0x10);
assert_value!(FWP_TOKEN_INFORMATION_TYPE == 0xf);
assert_value!(FWP_UINT16 == 0x2);
assert_value!(FWP_UINT32 == 0x3);
assert_value!(FWP_UINT64 == 0x4);
assert_value!(FWP_UINT8 == 0x1);
assert_value!(FWP_UNICODE_STRING_TYPE == 0x11);
assert_value!(FWP_V4_ADDR_MASK == 0x100);
assert_value!(FWP_V6_ADDR_MASK == 0x101);
assert_value!(STATUS_DEVICE_BUSY == 0x80000011);
assert_value!(STATUS_FWP_ALREADY_EXISTS == 0xc0220009);
assert_value!(STATUS_FWP_CALLOUT_NOT_FOUND == 0xc0220001);
assert_value!(STATUS_FWP_CANNOT_PEND == 0xc0220103);
assert_value!(STATUS_FWP_FILTER_NOT_FOUND == 0xc0220003);
assert_value!(STATUS_FWP_INJECT_HANDLE_CLOSING == 0xc0220101);
assert_value!(STATUS_FWP_INJECT_HANDLE_STALE == 0xc0220102);
assert_value!(STATUS_FWP_INVALID_PARAMETER == 0xc0220035);
assert_value!(STATUS_FWP_IN_USE == 0xc022000a);
assert_value!(STATUS_FWP_NOT_FOUND == 0xc0220008);
assert_value!(STATUS_FWP_NO_TXN_IN_PROGRESS == 0xc022000d);
assert_value!(STATUS_FWP_NULL_POINTER == 0xc022001c);
assert_value!(STATUS_FWP_PROVIDER_NOT_FOUND == 0xc0220005);
assert_value!(STATUS_FWP_SUBLAYER_NOT_FOUND == 0xc0220007);
assert_value!(STATUS_FWP_TCPIP_NOT_READY == 0xc0220100);
assert_value!(STATUS_FWP_TIMEOUT == 0xc0220012);
assert_value!(STATUS_FWP_TOO_MANY_CALLOUTS == 0xc0220018);
assert_value!(STATUS_FWP_TXN_ABORTED == 0xc022000f);
assert_value!(STATUS_FWP_TXN_IN_PROGRESS == 0xc022000e);
assert_value!(STATUS_INSUFFICIENT_RESOURCES == 0xc000009a);
assert_value!(STATUS_INVALID_PARAMETER == 0xc000000d);
assert_value!(STATUS_NOT_FOUND == 0xc0000225);
assert_value!(STATUS_NOT_SUPPORTED == 0xc00000bb);
assert_value!(STATUS_NO_MEMORY == 0xc0000017);
assert_value!(STATUS_OBJECT_NAME_EXISTS == 0x40000000);
assert_value!(STATUS_PENDING == 0x103);
assert_value!(STATUS_SUCCESS == 0x0);
assert_value!(STATUS_UNSUCCESSFUL == 0xc0000001);

// ---- GUIDs Tollgate uses, against the DEFINE_GUIDs of fwpmk.h (WDK 10.0.22621.0).

assert_guid!(FWPM_LAYER_ALE_AUTH_CONNECT_V4 == 0xc38d57d1_05a7_4c33_904f_7fbceee60e82);
assert_guid!(FWPM_LAYER_ALE_AUTH_CONNECT_V6 == 0x4a72393b_319f_44bc_84c3_ba54dcb3b6b4);
assert_guid!(FWPM_LAYER_ALE_AUTH_LISTEN_V4 == 0x88bb5dad_76d7_4227_9c71_df0a3ed7be7e);
assert_guid!(FWPM_LAYER_ALE_AUTH_LISTEN_V6 == 0x7ac9de24_17dd_4814_b4bd_a9fbc95a321b);
assert_guid!(FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4 == 0xe1cd9fe7_f4b5_4273_96c0_592e487b8650);
assert_guid!(FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6 == 0xa3b42c97_9f04_4672_b87e_cee9c483257f);
assert_guid!(FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4 == 0xb4766427_e2a2_467a_bd7e_dbcd1bd85a09);
assert_guid!(FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6 == 0xbb536ccd_4755_4ba9_9ff7_f9edf8699c7b);
assert_guid!(FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4 == 0xaf80470a_5596_4c13_9992_539e6fe57967);
assert_guid!(FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6 == 0x7021d2b3_dfa4_406e_afeb_6afaf7e70efd);
assert_guid!(FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V4 == 0x1247d66d_0b60_4a15_8d44_7155d0f53a0c);
assert_guid!(FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V6 == 0x55a650e1_5f0a_4eca_a653_88f53b26aa8c);
assert_guid!(FWPM_LAYER_ALE_RESOURCE_RELEASE_V4 == 0x74365cce_ccb0_401a_bfc1_b89934ad7e15);
assert_guid!(FWPM_LAYER_ALE_RESOURCE_RELEASE_V6 == 0xf4e5ce80_edcc_4e13_8a2f_b91454bb057b);
assert_guid!(FWPM_LAYER_STREAM_V4 == 0x3b89653c_c170_49e4_b1cd_e0eeeee19a3e);
assert_guid!(FWPM_LAYER_STREAM_V6 == 0x47c9137a_7ec4_46b3_b6e4_48e926b1eda4);
assert_guid!(FWPM_SUBLAYER_UNIVERSAL == 0xeebecc03_ced4_4380_819a_2734397b2b74);
assert_guid!(FWPM_CONDITION_ALE_APP_ID == 0xd78e1e87_8644_4ea5_9437_d809ecefc971);
assert_guid!(FWPM_CONDITION_FLAGS == 0x632ce23b_5167_435c_86d7_e903684aa80c);
assert_guid!(FWPM_CONDITION_IP_LOCAL_ADDRESS == 0xd9ee00de_c1ef_4617_bfe3_ffd8f5a08957);
assert_guid!(FWPM_CONDITION_IP_LOCAL_PORT == 0x0c1ba1af_5765_453f_af22_a8f791ac775b);
assert_guid!(FWPM_CONDITION_IP_PROTOCOL == 0x3971ef2b_623e_4f9a_8cb1_6e79b806b9a7);
assert_guid!(FWPM_CONDITION_IP_REMOTE_ADDRESS == 0xb235ae9a_1d64_49b8_a44c_5ff3d9095045);
assert_guid!(FWPM_CONDITION_IP_REMOTE_PORT == 0xc35a604d_d22b_4e1a_91b4_68f674ee674b);
