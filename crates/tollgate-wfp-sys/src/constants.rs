//! Constants of fwpsk.h that windows-sys does not have (it has no kernel headers), and of rpcdce.h
//! that Tollgate needs for `FwpmEngineOpen0`. Each group names its header; values are as in
//! WDK 10.0.22621.0. `layout/check.sh` checks every value here against `layout/fwp_layout.c`.
//!
//! The FWPS constants that windows-sys *does* have (`FWPS_METADATA_FIELD_*`,
//! `FWPS_CLASSIFY_OUT_FLAG_*`, `FWPS_RIGHT_ACTION_WRITE`, ...) are re-exported from it at the crate
//! root, with their values asserted in `layout.rs`.

use crate::types::{FWPS_CALLOUT_NOTIFY_TYPE, FWPS_DISCARD_MODULE0, FWPS_STREAM_ACTION_TYPE};

// ---- fwpsk.h: FWPS_BUILTIN_LAYERS ------------------------------------------------------------

/// `FWPS_BUILTIN_LAYERS` (fwpsk.h): run-time layer identifiers, as found in
/// `FWPS_INCOMING_VALUES0::layerId` and passed as the `layerId` of `FwpsFlowAssociateContext0`
/// and flowDeleteFn.
///
/// A C enumeration; here `u16` because every field and parameter that carries it is `UINT16`.
/// Only the kernel-mode ids of the layers Tollgate may use are declared. They have been stable since
/// Windows 8; the user-mode ids that follow them in the enumeration moved between WDK 10.0.22000
/// and 10.0.22621 and are deliberately not declared.
/// The management-side (GUID) counterparts are the re-exported `FWPM_LAYER_*` constants.
/// <https://learn.microsoft.com/windows-hardware/drivers/network/run-time-filtering-layer-identifiers>
pub type FWPS_BUILTIN_LAYERS = u16;

/// Run-time id of the `STREAM_V4` layer (`FWPM_LAYER_STREAM_V4`).
pub const FWPS_LAYER_STREAM_V4: FWPS_BUILTIN_LAYERS = 20;
/// Run-time id of the `STREAM_V6` layer (`FWPM_LAYER_STREAM_V6`).
pub const FWPS_LAYER_STREAM_V6: FWPS_BUILTIN_LAYERS = 22;
/// Run-time id of the `ALE_RESOURCE_ASSIGNMENT_V4` layer (`FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V4`).
pub const FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4: FWPS_BUILTIN_LAYERS = 36;
/// Run-time id of the `ALE_RESOURCE_ASSIGNMENT_V6` layer (`FWPM_LAYER_ALE_RESOURCE_ASSIGNMENT_V6`).
pub const FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V6: FWPS_BUILTIN_LAYERS = 38;
/// Run-time id of the `ALE_AUTH_LISTEN_V4` layer (`FWPM_LAYER_ALE_AUTH_LISTEN_V4`).
pub const FWPS_LAYER_ALE_AUTH_LISTEN_V4: FWPS_BUILTIN_LAYERS = 40;
/// Run-time id of the `ALE_AUTH_LISTEN_V6` layer (`FWPM_LAYER_ALE_AUTH_LISTEN_V6`).
pub const FWPS_LAYER_ALE_AUTH_LISTEN_V6: FWPS_BUILTIN_LAYERS = 42;
/// Run-time id of the `ALE_AUTH_RECV_ACCEPT_V4` layer (`FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V4`).
pub const FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V4: FWPS_BUILTIN_LAYERS = 44;
/// Run-time id of the `ALE_AUTH_RECV_ACCEPT_V6` layer (`FWPM_LAYER_ALE_AUTH_RECV_ACCEPT_V6`).
pub const FWPS_LAYER_ALE_AUTH_RECV_ACCEPT_V6: FWPS_BUILTIN_LAYERS = 46;
/// Run-time id of the `ALE_AUTH_CONNECT_V4` layer (`FWPM_LAYER_ALE_AUTH_CONNECT_V4`).
pub const FWPS_LAYER_ALE_AUTH_CONNECT_V4: FWPS_BUILTIN_LAYERS = 48;
/// Run-time id of the `ALE_AUTH_CONNECT_V6` layer (`FWPM_LAYER_ALE_AUTH_CONNECT_V6`).
pub const FWPS_LAYER_ALE_AUTH_CONNECT_V6: FWPS_BUILTIN_LAYERS = 50;
/// Run-time id of the `ALE_FLOW_ESTABLISHED_V4` layer (`FWPM_LAYER_ALE_FLOW_ESTABLISHED_V4`).
pub const FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4: FWPS_BUILTIN_LAYERS = 52;
/// Run-time id of the `ALE_FLOW_ESTABLISHED_V6` layer (`FWPM_LAYER_ALE_FLOW_ESTABLISHED_V6`).
pub const FWPS_LAYER_ALE_FLOW_ESTABLISHED_V6: FWPS_BUILTIN_LAYERS = 54;
/// Run-time id of the `ALE_RESOURCE_RELEASE_V4` layer (`FWPM_LAYER_ALE_RESOURCE_RELEASE_V4`).
pub const FWPS_LAYER_ALE_RESOURCE_RELEASE_V4: FWPS_BUILTIN_LAYERS = 62;
/// Run-time id of the `ALE_RESOURCE_RELEASE_V6` layer (`FWPM_LAYER_ALE_RESOURCE_RELEASE_V6`).
pub const FWPS_LAYER_ALE_RESOURCE_RELEASE_V6: FWPS_BUILTIN_LAYERS = 63;
/// Run-time id of the `ALE_ENDPOINT_CLOSURE_V4` layer (`FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V4`).
pub const FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4: FWPS_BUILTIN_LAYERS = 64;
/// Run-time id of the `ALE_ENDPOINT_CLOSURE_V6` layer (`FWPM_LAYER_ALE_ENDPOINT_CLOSURE_V6`).
pub const FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V6: FWPS_BUILTIN_LAYERS = 65;
/// Run-time id of the `ALE_CONNECT_REDIRECT_V4` layer (`FWPM_LAYER_ALE_CONNECT_REDIRECT_V4`).
pub const FWPS_LAYER_ALE_CONNECT_REDIRECT_V4: FWPS_BUILTIN_LAYERS = 66;
/// Run-time id of the `ALE_CONNECT_REDIRECT_V6` layer (`FWPM_LAYER_ALE_CONNECT_REDIRECT_V6`).
pub const FWPS_LAYER_ALE_CONNECT_REDIRECT_V6: FWPS_BUILTIN_LAYERS = 67;
/// Run-time id of the `ALE_BIND_REDIRECT_V4` layer (`FWPM_LAYER_ALE_BIND_REDIRECT_V4`).
pub const FWPS_LAYER_ALE_BIND_REDIRECT_V4: FWPS_BUILTIN_LAYERS = 68;
/// Run-time id of the `ALE_BIND_REDIRECT_V6` layer (`FWPM_LAYER_ALE_BIND_REDIRECT_V6`).
pub const FWPS_LAYER_ALE_BIND_REDIRECT_V6: FWPS_BUILTIN_LAYERS = 69;
/// Run-time id of the `STREAM_PACKET_V4` layer (`FWPM_LAYER_STREAM_PACKET_V4`).
pub const FWPS_LAYER_STREAM_PACKET_V4: FWPS_BUILTIN_LAYERS = 70;
/// Run-time id of the `STREAM_PACKET_V6` layer (`FWPM_LAYER_STREAM_PACKET_V6`).
pub const FWPS_LAYER_STREAM_PACKET_V6: FWPS_BUILTIN_LAYERS = 71;

// ---- fwpstypes.h -------------------------------------------------------------------------------

/// `FWPS_CALLOUT_NOTIFY_ADD_FILTER` (fwpstypes.h): a filter that references the callout is being added.
pub const FWPS_CALLOUT_NOTIFY_ADD_FILTER: FWPS_CALLOUT_NOTIFY_TYPE = 0;
/// `FWPS_CALLOUT_NOTIFY_DELETE_FILTER` (fwpstypes.h): such a filter is being deleted.
pub const FWPS_CALLOUT_NOTIFY_DELETE_FILTER: FWPS_CALLOUT_NOTIFY_TYPE = 1;
/// `FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT` (fwpstypes.h): sent after the transaction that
/// added the filter commits (needs `FWP_CALLOUT_FLAG_ENABLE_COMMIT_ADD_NOTIFY`).
pub const FWPS_CALLOUT_NOTIFY_ADD_FILTER_POST_COMMIT: FWPS_CALLOUT_NOTIFY_TYPE = 2;

/// `FWPS_DISCARD_MODULE_NETWORK` (fwpstypes.h).
pub const FWPS_DISCARD_MODULE_NETWORK: FWPS_DISCARD_MODULE0 = 0;
/// `FWPS_DISCARD_MODULE_TRANSPORT` (fwpstypes.h).
pub const FWPS_DISCARD_MODULE_TRANSPORT: FWPS_DISCARD_MODULE0 = 1;
/// `FWPS_DISCARD_MODULE_GENERAL` (fwpstypes.h).
pub const FWPS_DISCARD_MODULE_GENERAL: FWPS_DISCARD_MODULE0 = 2;

// ---- fwpsk.h: asynchronous classify ------------------------------------------------------------

/// `FWPS_CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS` (fwpsk.h): a `flags` value of
/// `FwpsCompleteClassify0`.
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteclassify0>
pub const FWPS_CLASSIFY_FLAG_REAUTHORIZE_IF_MODIFIED_BY_OTHERS: u32 = 0x00000001;

// ---- fwpsk.h: stream layer ---------------------------------------------------------------------
// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_data0_>

/// `FWPS_STREAM_FLAG_RECEIVE` (fwpsk.h): inbound data.
pub const FWPS_STREAM_FLAG_RECEIVE: u32 = 0x00000001;
/// `FWPS_STREAM_FLAG_RECEIVE_EXPEDITED` (fwpsk.h): inbound urgent data.
pub const FWPS_STREAM_FLAG_RECEIVE_EXPEDITED: u32 = 0x00000002;
/// `FWPS_STREAM_FLAG_RECEIVE_DISCONNECT` (fwpsk.h): the remote end sent FIN.
pub const FWPS_STREAM_FLAG_RECEIVE_DISCONNECT: u32 = 0x00000004;
/// `FWPS_STREAM_FLAG_RECEIVE_ABORT` (fwpsk.h): the remote end sent RST.
pub const FWPS_STREAM_FLAG_RECEIVE_ABORT: u32 = 0x00000008;
/// `FWPS_STREAM_FLAG_RECEIVE_PUSH` (fwpsk.h, `NTDDI_WIN6SP1`+): PSH was set.
pub const FWPS_STREAM_FLAG_RECEIVE_PUSH: u32 = 0x00000010;
/// `FWPS_STREAM_FLAG_SEND` (fwpsk.h): outbound data.
pub const FWPS_STREAM_FLAG_SEND: u32 = 0x00010000;
/// `FWPS_STREAM_FLAG_SEND_EXPEDITED` (fwpsk.h): outbound urgent data.
pub const FWPS_STREAM_FLAG_SEND_EXPEDITED: u32 = 0x00020000;
/// `FWPS_STREAM_FLAG_SEND_NODELAY` (fwpsk.h): Nagle is off for this send.
pub const FWPS_STREAM_FLAG_SEND_NODELAY: u32 = 0x00040000;
/// `FWPS_STREAM_FLAG_SEND_DISCONNECT` (fwpsk.h): the local end is sending FIN.
pub const FWPS_STREAM_FLAG_SEND_DISCONNECT: u32 = 0x00080000;
/// `FWPS_STREAM_FLAG_SEND_ABORT` (fwpsk.h): the local end is aborting (RST).
pub const FWPS_STREAM_FLAG_SEND_ABORT: u32 = 0x00100000;

/// `FWPS_STREAM_ACTION_NONE` (fwpsk.h): no stream action; WFP honours `actionType`.
pub const FWPS_STREAM_ACTION_NONE: FWPS_STREAM_ACTION_TYPE = 0;
/// `FWPS_STREAM_ACTION_NEED_MORE_DATA` (fwpsk.h): give me at least `countBytesRequired` bytes.
/// Never valid when `FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA` is set (ARCHITECTURE.md S6).
pub const FWPS_STREAM_ACTION_NEED_MORE_DATA: FWPS_STREAM_ACTION_TYPE = 1;
/// `FWPS_STREAM_ACTION_DROP_CONNECTION` (fwpsk.h): drop the connection.
pub const FWPS_STREAM_ACTION_DROP_CONNECTION: FWPS_STREAM_ACTION_TYPE = 2;
/// `FWPS_STREAM_ACTION_DEFER` (fwpsk.h): defer the stream (inbound only; resume with
/// `FwpsStreamContinue0`).
pub const FWPS_STREAM_ACTION_DEFER: FWPS_STREAM_ACTION_TYPE = 3;
/// `FWPS_STREAM_ACTION_ALLOW_CONNECTION` (fwpsk.h, `NTDDI_WIN7`+): permit all future data of the
/// connection without further classifies.
pub const FWPS_STREAM_ACTION_ALLOW_CONNECTION: FWPS_STREAM_ACTION_TYPE = 4;

// ---- rpcdce.h: authnService of FwpmEngineOpen0 -------------------------------------------------
// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmengineopen0>

/// `RPC_C_AUTHN_WINNT` (rpcdce.h): the value Microsoft's WFP samples pass as `authnService`.
pub const RPC_C_AUTHN_WINNT: u32 = 10;
/// `RPC_C_AUTHN_DEFAULT` (rpcdce.h): the other documented `authnService` value.
pub const RPC_C_AUTHN_DEFAULT: u32 = 0xFFFFFFFF;
