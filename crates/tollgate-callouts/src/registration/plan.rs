//! Tollgate's fixed registration plan: keys, names, flags, actions and weights (the reasons are in
//! the module documentation of [`registration`](super)).
//!
//! The GUIDs below were generated once (random, version 4) for Tollgate and must never change:
//! they identify Tollgate's objects in the filter engine (`netsh wfp show state`) and a second
//! driver instance collides with them (`STATUS_FWP_ALREADY_EXISTS`) instead of registering twice.

use tollgate_wfp_sys::FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW;

use super::spec::{
    CALLOUT_COUNT, CalloutSpec, ClassifyKind, FilterAction, FilterSpec, FilterWeight, Guid, Plan, ProviderSpec,
    SessionSpec, SublayerSpec, TollgateLayer, WideStr,
};

/// `{1F1C1A8A-EE10-4093-BDE6-84A96E9E76F0}`: Tollgate's provider key (generated once).
pub const TOLLGATE_PROVIDER_KEY: Guid = Guid(0x1f1c1a8a_ee10_4093_bde6_84a96e9e76f0);

/// `{A16E8A60-C840-4CED-A8CA-1BA8CB36EEF8}`: Tollgate's sublayer key (generated once).
pub const TOLLGATE_SUBLAYER_KEY: Guid = Guid(0xa16e8a60_c840_4ced_a8ca_1ba8cb36eef8);

/// Weight of Tollgate's sublayer: low, so that other sublayers' hard decisions come first
/// ("Higher-weighted sublayers are invoked first",
/// <https://learn.microsoft.com/windows/win32/api/fwpmtypes/ns-fwpmtypes-fwpm_sublayer0>).
pub const TOLLGATE_SUBLAYER_WEIGHT: u16 = 0x0100;

impl TollgateLayer {
    /// Tollgate's callout key at this layer (generated once).
    #[must_use]
    pub const fn callout_key(self) -> Guid {
        Guid(match self {
            Self::AleAuthConnectV4 => 0xb6030c23_42a9_4eae_b50d_297b06c6cf70,
            Self::AleAuthConnectV6 => 0xdff9256b_a4ce_4106_98a1_fedd12fa8134,
            Self::AleResourceAssignmentV4 => 0x0724b1f2_bf10_46d7_a77f_b2a426169cf6,
            Self::AleResourceAssignmentV6 => 0x95219b5a_f4b8_49b5_9a77_327c3eaee2ea,
            Self::AleEndpointClosureV4 => 0x3f23dee0_95c1_4fcd_aee6_d6dbce2e41f7,
            Self::AleEndpointClosureV6 => 0x2b413cf3_9b74_4768_a10e_f9cbe512fe02,
            Self::AleResourceReleaseV4 => 0x257efdcc_d288_47a7_900c_4098e649c100,
            Self::AleResourceReleaseV6 => 0x7edcf35f_dc21_4715_bc35_5ff661cab384,
            Self::AleFlowEstablishedV4 => 0x38f9f346_7e69_4fe9_9789_9b96701b1a87,
            Self::AleFlowEstablishedV6 => 0xda3f6be4_690e_4f34_b088_1b5f2fb49d00,
            Self::StreamV4 => 0x451c5638_767c_4630_a331_14086377cd84,
            Self::StreamV6 => 0xa0648730_c5df_4435_b442_3d37bb7e17ae,
        })
    }

    /// Tollgate's filter key at this layer (generated once).
    #[must_use]
    pub const fn filter_key(self) -> Guid {
        Guid(match self {
            Self::AleAuthConnectV4 => 0x8500cdff_0f23_478f_8b00_e4c96f10ed81,
            Self::AleAuthConnectV6 => 0xcbe1fa28_4447_497f_8d0f_fbe7a9dcbba8,
            Self::AleResourceAssignmentV4 => 0x5aefd36c_fb58_4b53_b704_caf3e8c20698,
            Self::AleResourceAssignmentV6 => 0xcaf08586_f6ed_4651_877c_3a559e430214,
            Self::AleEndpointClosureV4 => 0xfbcf8e74_ca7f_4364_bd35_75cdd85c7742,
            Self::AleEndpointClosureV6 => 0x287a9faf_3bef_45f9_a18c_866513b0a503,
            Self::AleResourceReleaseV4 => 0x7821d0b2_e3b5_4559_b2f2_f960bdd3e4a8,
            Self::AleResourceReleaseV6 => 0xd46adea1_4591_47a3_80f6_0d6a69454ae1,
            Self::AleFlowEstablishedV4 => 0xb396c450_569e_4662_a5fc_aade889438be,
            Self::AleFlowEstablishedV6 => 0x910a4196_228d_4726_8c2a_7e75aa2bca13,
            Self::StreamV4 => 0x6af38362_35f0_4b42_8738_01e77080cbda,
            Self::StreamV6 => 0x2d84d826_5329_442b_9b08_610af1b06a5c,
        })
    }

    /// Display name of Tollgate's callout at this layer.
    const fn callout_name(self) -> WideStr {
        match self {
            Self::AleAuthConnectV4 => wide!("Tollgate ALE_AUTH_CONNECT_V4 callout"),
            Self::AleAuthConnectV6 => wide!("Tollgate ALE_AUTH_CONNECT_V6 callout"),
            Self::AleResourceAssignmentV4 => wide!("Tollgate ALE_RESOURCE_ASSIGNMENT_V4 callout"),
            Self::AleResourceAssignmentV6 => wide!("Tollgate ALE_RESOURCE_ASSIGNMENT_V6 callout"),
            Self::AleEndpointClosureV4 => wide!("Tollgate ALE_ENDPOINT_CLOSURE_V4 callout"),
            Self::AleEndpointClosureV6 => wide!("Tollgate ALE_ENDPOINT_CLOSURE_V6 callout"),
            Self::AleResourceReleaseV4 => wide!("Tollgate ALE_RESOURCE_RELEASE_V4 callout"),
            Self::AleResourceReleaseV6 => wide!("Tollgate ALE_RESOURCE_RELEASE_V6 callout"),
            Self::AleFlowEstablishedV4 => wide!("Tollgate ALE_FLOW_ESTABLISHED_V4 callout"),
            Self::AleFlowEstablishedV6 => wide!("Tollgate ALE_FLOW_ESTABLISHED_V6 callout"),
            Self::StreamV4 => wide!("Tollgate STREAM_V4 callout"),
            Self::StreamV6 => wide!("Tollgate STREAM_V6 callout"),
        }
    }

    /// Display name of Tollgate's filter at this layer.
    const fn filter_name(self) -> WideStr {
        match self {
            Self::AleAuthConnectV4 => wide!("Tollgate ALE_AUTH_CONNECT_V4 filter"),
            Self::AleAuthConnectV6 => wide!("Tollgate ALE_AUTH_CONNECT_V6 filter"),
            Self::AleResourceAssignmentV4 => wide!("Tollgate ALE_RESOURCE_ASSIGNMENT_V4 filter"),
            Self::AleResourceAssignmentV6 => wide!("Tollgate ALE_RESOURCE_ASSIGNMENT_V6 filter"),
            Self::AleEndpointClosureV4 => wide!("Tollgate ALE_ENDPOINT_CLOSURE_V4 filter"),
            Self::AleEndpointClosureV6 => wide!("Tollgate ALE_ENDPOINT_CLOSURE_V6 filter"),
            Self::AleResourceReleaseV4 => wide!("Tollgate ALE_RESOURCE_RELEASE_V4 filter"),
            Self::AleResourceReleaseV6 => wide!("Tollgate ALE_RESOURCE_RELEASE_V6 filter"),
            Self::AleFlowEstablishedV4 => wide!("Tollgate ALE_FLOW_ESTABLISHED_V4 filter"),
            Self::AleFlowEstablishedV6 => wide!("Tollgate ALE_FLOW_ESTABLISHED_V6 filter"),
            Self::StreamV4 => wide!("Tollgate STREAM_V4 filter"),
            Self::StreamV6 => wide!("Tollgate STREAM_V6 filter"),
        }
    }
}

impl ClassifyKind {
    /// Description shared by the callout and the filter of this kind.
    const fn description(self) -> WideStr {
        match self {
            Self::AuthConnect => wide!("Holds new outbound connections until the Tollgate service gives a verdict"),
            Self::ResourceAssignment => wide!("Holds new bindings until the Tollgate service gives a verdict"),
            Self::EndpointClosure => wide!("Tollgate teardown signal: completes held connects of closing endpoints"),
            Self::ResourceRelease => wide!("Tollgate teardown signal: completes held bindings of released resources"),
            Self::FlowEstablished => wide!("Associates Tollgate's stream flow context with new flows"),
            Self::Stream => wide!("Tollgate inline stream inspection (flows with a Tollgate context only)"),
        }
    }

    /// `FWPS_CALLOUT3::flags` of this kind's callouts.
    const fn callout_flags(self) -> u32 {
        match self {
            // FWPS_CALLOUT3 page: only invoked for flows with a context (the one the
            // flow-established callout associates). No ALLOW_MID_STREAM_INSPECTION (module docs).
            // https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_callout3
            Self::Stream => FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW,
            // The ALE callouts must see every connection: no flags.
            Self::AuthConnect
            | Self::ResourceAssignment
            | Self::EndpointClosure
            | Self::ResourceRelease
            | Self::FlowEstablished => 0,
        }
    }

    /// Whether this kind's callouts have a flowDeleteFn.
    const fn has_flow_delete(self) -> bool {
        // FwpsFlowAssociateContext0 needs a flowDeleteFn on the callout whose id it is given; the
        // flow-established classify passes the *stream* callout's id and layer.
        // https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0
        matches!(self, Self::Stream)
    }

    /// The action of this kind's filters.
    const fn filter_action(self) -> FilterAction {
        // Terminating: the callout must return PERMIT or BLOCK; inspection: CONTINUE.
        // https://learn.microsoft.com/windows/win32/api/fwpstypes/ns-fwpstypes-fwps_action0
        // Stream: CALLOUT_UNKNOWN, because FWPS_STREAM_ACTION_DROP_CONNECTION (the domain
        // blocklist's answer) is honoured only under it.
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_
        match self {
            Self::AuthConnect | Self::ResourceAssignment => FilterAction::CalloutTerminating,
            Self::Stream => FilterAction::CalloutUnknown,
            Self::EndpointClosure | Self::ResourceRelease | Self::FlowEstablished => FilterAction::CalloutInspection,
        }
    }
}

/// The callout spec of `layer`.
const fn callout(layer: TollgateLayer) -> CalloutSpec {
    let kind = layer.classify_kind();
    CalloutSpec {
        layer,
        key: layer.callout_key(),
        provider: TOLLGATE_PROVIDER_KEY,
        name: layer.callout_name(),
        description: kind.description(),
        flags: kind.callout_flags(),
        has_flow_delete: kind.has_flow_delete(),
        classify: kind,
    }
}

/// The filter spec of `layer`.
const fn filter(layer: TollgateLayer) -> FilterSpec {
    let kind = layer.classify_kind();
    FilterSpec {
        layer,
        key: layer.filter_key(),
        provider: TOLLGATE_PROVIDER_KEY,
        sublayer: TOLLGATE_SUBLAYER_KEY,
        name: layer.filter_name(),
        description: kind.description(),
        callout: layer.callout_key(),
        action: kind.filter_action(),
        // One Tollgate filter per layer in Tollgate's own sublayer: let BFE pick (FWP_EMPTY).
        // https://learn.microsoft.com/windows/win32/fwp/filter-weight-assignment
        weight: FilterWeight::Auto,
    }
}

/// Applies `f` to every layer of [`TollgateLayer::ALL`], in order.
macro_rules! per_layer {
    ($f:ident) => {{
        let all = TollgateLayer::ALL;
        let [l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11] = all;
        [$f(l0), $f(l1), $f(l2), $f(l3), $f(l4), $f(l5), $f(l6), $f(l7), $f(l8), $f(l9), $f(l10), $f(l11)]
    }};
}

const _: () = assert!(CALLOUT_COUNT == 12, "per_layer! destructures exactly twelve layers");

/// Tollgate's registration plan: a dynamic session, provider [`TOLLGATE_PROVIDER_KEY`], sublayer
/// [`TOLLGATE_SUBLAYER_KEY`] (weight [`TOLLGATE_SUBLAYER_WEIGHT`]), then one callout and one
/// filter at each [`TollgateLayer`], in [`TollgateLayer::ALL`] order.
pub const TOLLGATE_PLAN: Plan = Plan {
    session: SessionSpec {
        name: wide!("Tollgate"),
        description: wide!("Tollgate callout driver (dynamic session)"),
        txn_wait_timeout_ms: 0,
    },
    provider: ProviderSpec {
        key: TOLLGATE_PROVIDER_KEY,
        name: wide!("Tollgate"),
        description: wide!("Tollgate: holds new connections until a user-mode verdict"),
    },
    sublayer: SublayerSpec {
        key: TOLLGATE_SUBLAYER_KEY,
        provider: TOLLGATE_PROVIDER_KEY,
        name: wide!("Tollgate sublayer"),
        description: wide!("Tollgate's filters (one per layer)"),
        weight: TOLLGATE_SUBLAYER_WEIGHT,
    },
    callouts: per_layer!(callout),
    filters: per_layer!(filter),
};
