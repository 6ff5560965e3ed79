//! What the engine hands a callout driver, and what the driver hands back: the model's
//! counterparts of `FWPS_INCOMING_VALUES0`, `FWPS_INCOMING_METADATA_VALUES0`,
//! `FWPS_STREAM_CALLOUT_IO_PACKET0` and `FWPS_CLASSIFY_OUT0`, reduced to the fields the drivers read.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::engine::Engine;

/// The run-time filtering layers the model implements (each stands for its V4 and V6 layer; the
/// connection's addresses say which).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layer {
    /// FWPS_LAYER_ALE_RESOURCE_ASSIGNMENT_V4/V6: bind; pendable.
    ResourceAssignment,
    /// FWPS_LAYER_ALE_AUTH_CONNECT_V4/V6: connect (and each new UDP remote); pendable.
    AuthConnect,
    /// FWPS_LAYER_ALE_FLOW_ESTABLISHED_V4/V6: the connection is up; a flow handle exists.
    FlowEstablished,
    /// FWPS_LAYER_STREAM_V4/V6: TCP data, for callouts with a flow context.
    Stream,
    /// FWPS_LAYER_ALE_ENDPOINT_CLOSURE_V4/V6: the endpoint is going away.
    EndpointClosure,
    /// FWPS_LAYER_ALE_RESOURCE_RELEASE_V4/V6: the bind is released.
    ResourceRelease,
}

impl Layer {
    /// Every layer, in the order of a connection's life.
    pub const ALL: [Layer; 6] = [
        Layer::ResourceAssignment,
        Layer::AuthConnect,
        Layer::FlowEstablished,
        Layer::Stream,
        Layer::EndpointClosure,
        Layer::ResourceRelease,
    ];

    /// `FwpsPendOperation0` is documented at ALE_RESOURCE_ASSIGNMENT, ALE_AUTH_LISTEN,
    /// ALE_AUTH_CONNECT and ALE_AUTH_RECV_ACCEPT only:
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0>.
    #[must_use]
    pub const fn can_pend_operation(self) -> bool {
        matches!(self, Layer::ResourceAssignment | Layer::AuthConnect)
    }
}

/// IP protocol of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP (6): has a flow, stream data, and a teardown with RST or FIN.
    Tcp,
    /// UDP (17): datagram endpoint, no stream layer.
    Udp,
}

impl Protocol {
    /// The IP protocol number.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }
}

/// `FWP_ACTION_*` as the callout left it in classifyOut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// FWP_ACTION_PERMIT.
    Permit,
    /// FWP_ACTION_BLOCK.
    Block,
    /// FWP_ACTION_CONTINUE.
    Continue,
}

/// `FWPS_STREAM_ACTION_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamAction {
    /// FWPS_STREAM_ACTION_NONE.
    None,
    /// FWPS_STREAM_ACTION_NEED_MORE_DATA.
    NeedMoreData,
    /// FWPS_STREAM_ACTION_DROP_CONNECTION.
    DropConnection,
    /// FWPS_STREAM_ACTION_DEFER.
    Defer,
    /// FWPS_STREAM_ACTION_ALLOW_CONNECTION: permit the rest of the flow; WFP stops classifying it.
    AllowConnection,
}

/// `FWPS_FILTER3::action.type` of the filter that invoked the callout (`FWP_ACTION_CALLOUT_*`).
/// <https://learn.microsoft.com/en-us/windows/win32/api/fwptypes/ns-fwptypes-fwpm_action0>
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilterAction {
    /// FWP_ACTION_CALLOUT_TERMINATING: the callout always returns PERMIT or BLOCK.
    #[default]
    CalloutTerminating,
    /// FWP_ACTION_CALLOUT_INSPECTION: the callout never returns PERMIT or BLOCK.
    CalloutInspection,
    /// FWP_ACTION_CALLOUT_UNKNOWN: the callout may or may not decide; the only filter action under
    /// which WFP honours FWPS_STREAM_ACTION_DROP_CONNECTION.
    CalloutUnknown,
}

/// What identifies a connection in every ALE classify (the incoming values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionValues {
    /// IP protocol.
    pub protocol: Protocol,
    /// Local address and port.
    pub local: SocketAddr,
    /// Remote address and port (unspecified at resource assignment).
    pub remote: SocketAddr,
    /// `FWPS_FIELD_*_ALE_APP_ID`: the NT device path of the application, UTF-16.
    pub app_id: Arc<[u16]>,
    /// `FWPS_METADATA_FIELD_PROCESS_ID`.
    pub process_id: u64,
}

/// `FWPS_INCOMING_METADATA_VALUES0::completionHandle`: usable with `FwpsPendOperation0` only during
/// the classify that received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompletionHandle(pub(crate) u64);

/// The `completionContext` that `FwpsPendOperation0` returned: the engine's pointer to the pended
/// operation (and, through it, to the transport endpoint). There is no API to validate one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CompletionContext(pub(crate) u64);

/// The `classifyContext` argument of classifyFn: what `FwpsAcquireClassifyHandle0` takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassifyContext(pub(crate) u64);

/// A handle from `FwpsAcquireClassifyHandle0`; every acquired handle must be released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClassifyHandle(pub(crate) u64);

/// `FWPS_STREAM_DATA0*` (and the NET_BUFFER_LIST chain behind it): valid only until classifyFn
/// returns. It is `Copy` on purpose: a real driver can keep the pointer, and the model must be able
/// to catch a driver that does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StreamDataRef(pub(crate) u64);

/// `FWPS_STREAM_CALLOUT_IO_PACKET0` (the stream layer's `layerData`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPacket {
    /// `streamData->flags` (`FWPS_STREAM_FLAG_*`).
    pub flags: u32,
    /// `streamData`, possibly NULL.
    pub stream_data: Option<StreamDataRef>,
    /// `streamData->dataLength` (0 when `stream_data` is NULL).
    pub data_length: usize,
}

/// Run-time metadata (`FWPS_INCOMING_METADATA_VALUES0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// `FWPS_METADATA_FIELD_TRANSPORT_ENDPOINT_HANDLE` (ALE layers).
    pub transport_endpoint_handle: Option<u64>,
    /// `FWPS_METADATA_FIELD_COMPLETION_HANDLE` (pendable layers).
    pub completion_handle: Option<CompletionHandle>,
    /// `FWPS_METADATA_FIELD_FLOW_HANDLE` (flow-established and stream layers).
    pub flow_handle: Option<u64>,
}

/// One classifyFn invocation.
#[derive(Clone, Debug)]
pub struct ClassifyCall {
    /// The layer.
    pub layer: Layer,
    /// The callout's run-time id.
    pub callout_id: u32,
    /// The filter that matched.
    pub filter_id: u64,
    /// The matching filter's `action.type`.
    pub filter_action: FilterAction,
    /// The incoming values.
    pub values: ConnectionValues,
    /// The metadata.
    pub metadata: Metadata,
    /// `FWP_CONDITION_FLAG_IS_REAUTHORIZE` in the layer's flags field.
    pub is_reauthorize: bool,
    /// The classifyContext argument.
    pub classify_context: ClassifyContext,
    /// The stream layer's `layerData` (`None` is a NULL `layerData`).
    pub stream: Option<StreamPacket>,
    /// The flow context associated with this flow and layer (stream layer), or 0.
    pub flow_context: u64,
}

/// `FWPS_CLASSIFY_OUT0` as the engine passes it in and reads it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassifyOut {
    /// `actionType`; `None` while nobody set it.
    pub action: Option<Action>,
    /// `FWPS_RIGHT_ACTION_WRITE` in `rights`.
    pub write_right: bool,
    /// `FWPS_CLASSIFY_OUT_FLAG_ABSORB` in `flags`.
    pub absorb: bool,
    /// `FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA` in `flags` (set by the engine at the stream layer).
    pub no_more_data: bool,
    /// `streamAction` (stream layer); `None` while nobody set it.
    pub stream_action: Option<StreamAction>,
    /// `countBytesEnforced` (stream layer).
    pub count_bytes_enforced: usize,
}

impl ClassifyOut {
    pub(crate) const fn fresh(write_right: bool, no_more_data: bool) -> ClassifyOut {
        ClassifyOut {
            action: None,
            write_right,
            absorb: false,
            no_more_data,
            stream_action: None,
            count_bytes_enforced: 0,
        }
    }
}

/// A callout driver as the engine sees it: its classifyFn and flowDeleteFn.
///
/// The engine never holds its own lock while it calls these, so a driver may call back into the
/// engine (the Fwps* functions) from them, as a real driver does.
pub trait CalloutDriver: Send + Sync {
    /// classifyFn. Runs at DISPATCH_LEVEL in the model.
    fn classify(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut);

    /// flowDeleteFn: the flow `flow_id` is going away and `flow_context` was associated with it at
    /// `layer` by `callout_id`. Runs at DISPATCH_LEVEL in the model.
    fn flow_delete(&self, engine: &Engine, layer: Layer, callout_id: u32, flow_context: u64);
}
