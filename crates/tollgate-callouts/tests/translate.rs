//! The translation layer on hand-built FWPS structures (as the engine lays them out): every field
//! read is bounds- and type-checked, NULL is tolerated everywhere, and classifyOut gets exactly the
//! core's decision. Runs under Miri in CI, which checks the unsafe reads themselves.
// Test fixtures: every `unsafe` here either zero-initializes a plain C structure (all-zero is a
// valid FWPS/FWP value: integers, NULL pointers, FWP_EMPTY) or calls a reader on the fixture built
// just above, which stays alive for the call; Miri checks these tests in CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block,
    missing_docs
)]

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tollgate_callouts::translate::{
    ClassifyKind, IncomingValues, IpVersion, Metadata, StreamIndication, can_write_action, filter_is_callout_unknown,
    layer_of, read_flow_established, read_pendable, write_continue, write_decision, write_stream,
};
use tollgate_core::stream::StreamAction;
use tollgate_core::{ClassifyDecision, DecisionReason, Direction, PendId, PendLayer, Verdict};
use tollgate_wfp_sys as sys;

fn value_u8(v: u8) -> sys::FWPS_INCOMING_VALUE0 {
    let mut value: sys::FWPS_INCOMING_VALUE0 = unsafe { core::mem::zeroed() };
    value.value.r#type = sys::FWP_UINT8;
    value.value.Anonymous.uint8 = v;
    value
}

fn value_u16(v: u16) -> sys::FWPS_INCOMING_VALUE0 {
    let mut value: sys::FWPS_INCOMING_VALUE0 = unsafe { core::mem::zeroed() };
    value.value.r#type = sys::FWP_UINT16;
    value.value.Anonymous.uint16 = v;
    value
}

fn value_u32(v: u32) -> sys::FWPS_INCOMING_VALUE0 {
    let mut value: sys::FWPS_INCOMING_VALUE0 = unsafe { core::mem::zeroed() };
    value.value.r#type = sys::FWP_UINT32;
    value.value.Anonymous.uint32 = v;
    value
}

fn value_blob(blob: &mut sys::FWP_BYTE_BLOB) -> sys::FWPS_INCOMING_VALUE0 {
    let mut value: sys::FWPS_INCOMING_VALUE0 = unsafe { core::mem::zeroed() };
    value.value.r#type = sys::FWP_BYTE_BLOB_TYPE;
    value.value.Anonymous.byteBlob = blob;
    value
}

fn value_array16(array: &mut sys::FWP_BYTE_ARRAY16) -> sys::FWPS_INCOMING_VALUE0 {
    let mut value: sys::FWPS_INCOMING_VALUE0 = unsafe { core::mem::zeroed() };
    value.value.r#type = sys::FWP_BYTE_ARRAY16_TYPE;
    value.value.Anonymous.byteArray16 = array;
    value
}

fn empty() -> sys::FWPS_INCOMING_VALUE0 {
    unsafe { core::mem::zeroed() }
}

/// The app path as WFP gives it: UTF-16, NUL-terminated, in a byte blob.
fn app_blob(path: &str, storage: &mut Vec<u16>) -> sys::FWP_BYTE_BLOB {
    storage.clear();
    storage.extend(path.encode_utf16());
    storage.push(0);
    sys::FWP_BYTE_BLOB { size: (storage.len() * 2) as u32, data: storage.as_mut_ptr().cast() }
}

fn metadata(endpoint: u64, process: u64) -> sys::FWPS_INCOMING_METADATA_VALUES0 {
    let mut meta: sys::FWPS_INCOMING_METADATA_VALUES0 = unsafe { core::mem::zeroed() };
    meta.currentMetadataValues = sys::FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE
        | sys::FWPS_METADATA_FIELD_PROCESS_ID
        | sys::FWPS_METADATA_FIELD_COMPLETION_HANDLE;
    meta.transportEndpointHandle = endpoint;
    meta.processId = process;
    meta.completionHandle = core::ptr::without_provenance_mut(0x1234);
    meta
}

#[test]
fn layers_map_to_tollgate_layers() {
    assert_eq!(layer_of(sys::FWPS_LAYER_ALE_AUTH_CONNECT_V6), Some((ClassifyKind::AuthConnect, IpVersion::V6)));
    assert_eq!(layer_of(sys::FWPS_LAYER_STREAM_V4), Some((ClassifyKind::Stream, IpVersion::V4)));
    assert_eq!(layer_of(sys::FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4), None);
}

#[test]
fn an_auth_connect_v4_classify_reads_every_field() {
    let mut path = Vec::new();
    let mut blob = app_blob(r"\device\harddiskvolume3\app.exe", &mut path);
    let mut fields = vec![empty(); sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_MAX];
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_ALE_APP_ID] = value_blob(&mut blob);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_PROTOCOL] = value_u8(6);
    // IPv4 addresses are host-order UINT32s.
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_LOCAL_ADDRESS] = value_u32(0x0A00_0002);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_LOCAL_PORT] = value_u16(50_000);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_ADDRESS] = value_u32(0x5DB8_D822);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_REMOTE_PORT] = value_u16(443);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_FLAGS] = value_u32(sys::FWP_CONDITION_FLAG_IS_REAUTHORIZE);
    let incoming = sys::FWPS_INCOMING_VALUES0 {
        layerId: sys::FWPS_LAYER_ALE_AUTH_CONNECT_V4,
        valueCount: fields.len() as u32,
        incomingValue: fields.as_mut_ptr(),
    };
    let meta = metadata(0xFFFF_B000_0000_1200, 4242);
    let values = unsafe { IncomingValues::new(&incoming) };
    let metadata = unsafe { Metadata::read(&meta) };
    assert_eq!(metadata.transport_endpoint_handle, Some(0xFFFF_B000_0000_1200));
    assert_eq!(metadata.completion_handle, Some(0x1234));
    assert_eq!(metadata.flow_handle, None, "its bit is not set");
    let read = read_pendable(ClassifyKind::AuthConnect, IpVersion::V4, &values, &metadata).unwrap();
    assert!(read.is_reauthorization);
    let facts = read.facts;
    assert_eq!(facts.layer, PendLayer::AuthConnect);
    assert_eq!(facts.protocol, 6);
    assert_eq!(facts.local_address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    assert_eq!(facts.remote_address, IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)));
    assert_eq!((facts.local_port, facts.remote_port, facts.process_id), (50_000, 443, 4242));
    assert_eq!(String::from_utf16(facts.app_path).unwrap(), r"\device\harddiskvolume3\app.exe");
}

#[test]
fn a_resource_assignment_v6_classify_has_no_remote() {
    let mut local = sys::FWP_BYTE_ARRAY16 { byteArray16: Ipv6Addr::LOCALHOST.octets() };
    let mut fields = vec![empty(); sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_MAX];
    fields[sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_IP_PROTOCOL] = value_u8(17);
    fields[sys::FWPS_FIELD_ALE_RESOURCE_ASSIGNMENT_V6_IP_LOCAL_ADDRESS] = value_array16(&mut local);
    let incoming = sys::FWPS_INCOMING_VALUES0 {
        layerId: sys::FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V6,
        valueCount: fields.len() as u32,
        incomingValue: fields.as_mut_ptr(),
    };
    let values = unsafe { IncomingValues::new(&incoming) };
    let read = read_pendable(ClassifyKind::ResourceAssignment, IpVersion::V6, &values, &Metadata::default()).unwrap();
    assert!(!read.is_reauthorization);
    assert_eq!(read.facts.local_address, IpAddr::V6(Ipv6Addr::LOCALHOST));
    assert_eq!(read.facts.remote_address, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    assert!(read.facts.app_path.is_empty(), "absent app id reads as empty");
}

#[test]
fn wrong_types_short_arrays_and_null_pointers_read_as_absent() {
    // A protocol field with the wrong type tag, and a value array shorter than the layer's.
    let mut fields = vec![empty(); 3];
    fields[0] = value_u32(6);
    let incoming = sys::FWPS_INCOMING_VALUES0 {
        layerId: sys::FWPS_LAYER_ALE_AUTH_CONNECT_V4,
        valueCount: fields.len() as u32,
        incomingValue: fields.as_mut_ptr(),
    };
    let values = unsafe { IncomingValues::new(&incoming) };
    assert!(read_pendable(ClassifyKind::AuthConnect, IpVersion::V4, &values, &Metadata::default()).is_none());
    // NULL everywhere.
    let values = unsafe { IncomingValues::new(core::ptr::null()) };
    assert!(read_pendable(ClassifyKind::AuthConnect, IpVersion::V4, &values, &Metadata::default()).is_none());
    assert_eq!(unsafe { Metadata::read(core::ptr::null()) }, Metadata::default());
    // A NULL byte-array pointer behind a correct type tag.
    let mut fields = vec![empty(); sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_MAX];
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_PROTOCOL] = value_u8(6);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V6_IP_LOCAL_ADDRESS].value.r#type = sys::FWP_BYTE_ARRAY16_TYPE;
    let incoming = sys::FWPS_INCOMING_VALUES0 {
        layerId: sys::FWPS_LAYER_ALE_AUTH_CONNECT_V6,
        valueCount: fields.len() as u32,
        incomingValue: fields.as_mut_ptr(),
    };
    let values = unsafe { IncomingValues::new(&incoming) };
    assert!(read_pendable(ClassifyKind::AuthConnect, IpVersion::V6, &values, &Metadata::default()).is_none());
    // An odd-sized app blob reads as empty rather than past its end.
    let mut storage = [0x41_u16, 0x42, 0];
    let mut blob = sys::FWP_BYTE_BLOB { size: 5, data: storage.as_mut_ptr().cast() };
    let mut fields = vec![empty(); sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_MAX];
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_ALE_APP_ID] = value_blob(&mut blob);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_PROTOCOL] = value_u8(6);
    fields[sys::FWPS_FIELD_ALE_AUTH_CONNECT_V4_IP_LOCAL_ADDRESS] = value_u32(1);
    let incoming = sys::FWPS_INCOMING_VALUES0 {
        layerId: sys::FWPS_LAYER_ALE_AUTH_CONNECT_V4,
        valueCount: fields.len() as u32,
        incomingValue: fields.as_mut_ptr(),
    };
    let values = unsafe { IncomingValues::new(&incoming) };
    let read = read_pendable(ClassifyKind::AuthConnect, IpVersion::V4, &values, &Metadata::default()).unwrap();
    assert_eq!(read.facts.app_path, &[0x41, 0x42], "size 5 → 2 whole units, terminator absent");
}

#[test]
fn classify_out_gets_exactly_the_cores_decision() {
    let fresh = || sys::FWPS_CLASSIFY_OUT0 { rights: sys::FWPS_RIGHT_ACTION_WRITE, ..Default::default() };
    let mut out = fresh();
    assert!(unsafe { can_write_action(&out) });
    unsafe { write_decision(&mut out, ClassifyDecision::Pended(PendId::from_raw(1))) };
    assert_eq!(out.actionType, sys::FWP_ACTION_BLOCK);
    assert_eq!(out.flags & sys::FWPS_CLASSIFY_OUT_FLAG_ABSORB, sys::FWPS_CLASSIFY_OUT_FLAG_ABSORB);
    assert_eq!(out.rights & sys::FWPS_RIGHT_ACTION_WRITE, 0);

    let mut out = fresh();
    unsafe {
        write_decision(
            &mut out,
            ClassifyDecision::Decide { verdict: Verdict::Permit, reason: DecisionReason::ReauthCached },
        )
    };
    assert_eq!((out.actionType, out.flags, out.rights), (sys::FWP_ACTION_PERMIT, 0, sys::FWPS_RIGHT_ACTION_WRITE));

    let mut out = fresh();
    unsafe {
        write_decision(
            &mut out,
            ClassifyDecision::Decide { verdict: Verdict::Block, reason: DecisionReason::NoService },
        )
    };
    assert_eq!((out.actionType, out.rights), (sys::FWP_ACTION_BLOCK, 0));

    // No write right: classifyOut is left exactly as it was.
    let mut out = sys::FWPS_CLASSIFY_OUT0 { actionType: sys::FWP_ACTION_PERMIT, ..Default::default() };
    assert!(!unsafe { can_write_action(&out) });
    unsafe { write_decision(&mut out, ClassifyDecision::NoRight) };
    unsafe { write_continue(&mut out) };
    assert_eq!((out.actionType, out.flags, out.rights), (sys::FWP_ACTION_PERMIT, 0, 0));
    unsafe { write_decision(core::ptr::null_mut(), ClassifyDecision::Pended(PendId::from_raw(1))) };
}

#[test]
fn stream_indications_tolerate_null_and_always_get_both_actions() {
    // NULL layerData.
    let indication = unsafe { StreamIndication::read(core::ptr::null()) };
    assert!(!indication.has_data());
    assert_eq!(indication.segment.length, 0);
    // layerData with NULL streamData.
    let mut packet = sys::FWPS_STREAM_CALLOUT_IO_PACKET0 {
        streamData: core::ptr::null_mut(),
        missedBytes: 0,
        countBytesRequired: 7,
        countBytesEnforced: 7,
        streamAction: sys::FWPS_STREAM_ACTION_NEED_MORE_DATA,
    };
    let indication = unsafe { StreamIndication::read(&packet) };
    assert!(!indication.has_data());
    // A disconnect with no NBL chain: no data to copy, but the flags are read.
    let mut data: sys::FWPS_STREAM_DATA0 = unsafe { core::mem::zeroed() };
    data.flags = sys::FWPS_STREAM_FLAG_SEND | sys::FWPS_STREAM_FLAG_SEND_DISCONNECT;
    data.dataLength = 99;
    packet.streamData = &mut data;
    let indication = unsafe { StreamIndication::read(&packet) };
    assert!(indication.segment.outbound && indication.segment.disconnect);
    assert_eq!(indication.segment.length, 0, "no chain, no bytes, whatever dataLength says");
    assert!(!indication.has_data());
    // The answer always sets both actions, covers the whole indication and never asks for more
    // data, whatever the core decided.
    let cases = [
        (StreamAction::Permit, true, sys::FWP_ACTION_PERMIT, sys::FWPS_STREAM_ACTION_NONE),
        (StreamAction::AllowConnection, true, sys::FWP_ACTION_PERMIT, sys::FWPS_STREAM_ACTION_ALLOW_CONNECTION),
        (StreamAction::DropConnection, true, sys::FWP_ACTION_BLOCK, sys::FWPS_STREAM_ACTION_DROP_CONNECTION),
        // Under a filter that is not CALLOUT_UNKNOWN, WFP ignores DROP_CONNECTION: block instead.
        (StreamAction::DropConnection, false, sys::FWP_ACTION_BLOCK, sys::FWPS_STREAM_ACTION_NONE),
    ];
    for (action, unknown, action_type, stream_action) in cases {
        let mut out = sys::FWPS_CLASSIFY_OUT0::default();
        unsafe { write_stream(&mut out, &mut packet, action.classify_out(unknown), 1460) };
        assert_eq!((out.actionType, packet.streamAction), (action_type, stream_action), "{action:?}");
        assert_eq!((packet.countBytesEnforced, packet.countBytesRequired), (1460, 0));
    }
    unsafe { write_stream(core::ptr::null_mut(), core::ptr::null_mut(), StreamAction::Permit.classify_out(true), 5) };
}

#[test]
fn the_filter_action_type_is_read_null_safely() {
    let mut filter: sys::FWPS_FILTER3 = unsafe { core::mem::zeroed() };
    filter.action.r#type = sys::FWP_ACTION_CALLOUT_UNKNOWN;
    assert!(unsafe { filter_is_callout_unknown(&filter) });
    filter.action.r#type = sys::FWP_ACTION_CALLOUT_TERMINATING;
    assert!(!unsafe { filter_is_callout_unknown(&filter) });
    assert!(!unsafe { filter_is_callout_unknown(core::ptr::null()) });
}

#[test]
fn a_flow_established_v4_classify_reads_the_connection() {
    let mut values = vec![empty(); sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION + 1];
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL] = value_u8(6);
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_ADDRESS] = value_u32(0x0A00_0001);
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_LOCAL_PORT] = value_u16(50_000);
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_ADDRESS] = value_u32(0xC000_0207);
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_REMOTE_PORT] = value_u16(443);
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_DIRECTION] =
        value_u32(u32::try_from(sys::FWP_DIRECTION_INBOUND).unwrap());
    let header = sys::FWPS_INCOMING_VALUES0 {
        layerId: sys::FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4,
        valueCount: u32::try_from(values.len()).unwrap(),
        incomingValue: values.as_mut_ptr(),
    };
    let view = unsafe { IncomingValues::new(&header) };
    let meta = metadata(0x1000, 4242);
    let read = unsafe { Metadata::read(&meta) };
    let flow = read_flow_established(IpVersion::V4, &view, &read).unwrap();
    assert_eq!(flow.ip_protocol, 6);
    assert_eq!(flow.direction, Direction::Inbound);
    assert_eq!(flow.local_address, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!((flow.local_port, flow.remote_port), (50_000, 443));
    assert_eq!(flow.remote_address, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    assert_eq!(flow.process_id, 4242);
    // No protocol: not a flow Tollgate can describe.
    values[sys::FWPS_FIELD_ALE_FLOW_ESTABLISHED_V4_IP_PROTOCOL] = empty();
    let view = unsafe { IncomingValues::new(&header) };
    assert!(read_flow_established(IpVersion::V4, &view, &read).is_none());
}
