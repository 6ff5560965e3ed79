//! Builds the `FWPM_*`/`FWPS_CALLOUT3` structures the kernel engine passes to fwpkclnt.sys from
//! the FFI-free specifications. Pure and safe (building a raw pointer is safe; only the kernel
//! engine dereferences nothing and hands them to WFP), so that the host tests can check every
//! field; only the Windows build calls them.
//!
//! # Pointers in the returned structures
//! - Display strings point to `'static` [`WideStr`] data. `FWPM_DISPLAY_DATA0` declares them
//!   `wchar_t*` (windows-sys: `PWSTR`, a `*mut u16`), so the `*const` is cast to `*mut`: every
//!   function they are passed to takes its structure as `const FWPM_xxx0*` (`[in]`) and does not
//!   write through it (e.g. <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutadd0>:
//!   "`[in] const FWPM_CALLOUT0 *callout`"). Nothing in Tollgate writes through them either.
//! - `providerKey` (`GUID*`) points to a caller-provided `GUID`, which must outlive the call the
//!   structure is passed to (the kernel engine keeps it in a local next to the structure).

// Only the Windows build (the kernel engine) and the host unit tests use these builders.
#![cfg_attr(not(any(windows, test)), allow(dead_code))]

use core::ptr;

use tollgate_wfp_sys::{
    FWP_ACTION_CALLOUT_INSPECTION, FWP_ACTION_CALLOUT_TERMINATING, FWP_ACTION_CALLOUT_UNKNOWN, FWP_ACTION_TYPE,
    FWP_EMPTY, FWP_UINT8, FWP_VALUE0, FWP_VALUE0_0, FWPM_ACTION0, FWPM_ACTION0_0, FWPM_CALLOUT0, FWPM_DISPLAY_DATA0,
    FWPM_FILTER_FLAG_NONE, FWPM_FILTER0, FWPM_PROVIDER0, FWPM_SESSION_FLAG_DYNAMIC, FWPM_SESSION0, FWPM_SUBLAYER0,
    FWPS_CALLOUT_CLASSIFY_FN3, FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0, FWPS_CALLOUT_NOTIFY_FN3, FWPS_CALLOUT3, GUID,
    NTSTATUS, STATUS_INVALID_PARAMETER,
};

use super::spec::{
    CalloutSpec, ClassifyKind, FilterAction, FilterSpec, FilterWeight, ProviderSpec, SessionSpec, SublayerSpec, WideStr,
};

/// The callout functions of one [`ClassifyKind`], as the shims export them.
#[derive(Clone, Copy, Default)]
pub struct CalloutFunctions {
    /// classifyFn (required).
    pub classify: FWPS_CALLOUT_CLASSIFY_FN3,
    /// notifyFn (required).
    pub notify: FWPS_CALLOUT_NOTIFY_FN3,
    /// flowDeleteFn (required for callouts whose spec has `has_flow_delete`, ignored otherwise).
    pub flow_delete: FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0,
}

/// The callout functions of every [`ClassifyKind`] (v4 and v6 callouts share them; the shims tell
/// the layers apart by `inFixedValues->layerId`).
#[derive(Clone, Copy, Default)]
pub struct CalloutFunctionTable {
    /// ALE_AUTH_CONNECT_V4/V6.
    pub auth_connect: CalloutFunctions,
    /// ALE_RESOURCE_ASSIGNMENT_V4/V6.
    pub resource_assignment: CalloutFunctions,
    /// ALE_ENDPOINT_CLOSURE_V4/V6.
    pub endpoint_closure: CalloutFunctions,
    /// ALE_RESOURCE_RELEASE_V4/V6.
    pub resource_release: CalloutFunctions,
    /// ALE_FLOW_ESTABLISHED_V4/V6.
    pub flow_established: CalloutFunctions,
    /// STREAM_V4/V6.
    pub stream: CalloutFunctions,
}

impl CalloutFunctionTable {
    /// The functions of `kind`.
    #[must_use]
    pub const fn get(&self, kind: ClassifyKind) -> &CalloutFunctions {
        match kind {
            ClassifyKind::AuthConnect => &self.auth_connect,
            ClassifyKind::ResourceAssignment => &self.resource_assignment,
            ClassifyKind::EndpointClosure => &self.endpoint_closure,
            ClassifyKind::ResourceRelease => &self.resource_release,
            ClassifyKind::FlowEstablished => &self.flow_established,
            ClassifyKind::Stream => &self.stream,
        }
    }
}

/// `FWPM_DISPLAY_DATA0` pointing to two `'static` strings (the `*mut` cast is explained in the
/// module documentation).
fn display(name: WideStr, description: WideStr) -> FWPM_DISPLAY_DATA0 {
    FWPM_DISPLAY_DATA0 { name: name.as_ptr().cast_mut(), description: description.as_ptr().cast_mut() }
}

/// The `FWPM_SESSION0` of `FwpmEngineOpen0`: dynamic, so that everything added in the session is
/// deleted when it ends.
/// <https://learn.microsoft.com/windows/win32/api/fwpmtypes/ns-fwpmtypes-fwpm_session0>
pub(crate) fn session(spec: &SessionSpec) -> FWPM_SESSION0 {
    FWPM_SESSION0 {
        displayData: display(spec.name, spec.description),
        flags: FWPM_SESSION_FLAG_DYNAMIC,
        txnWaitTimeoutInMSec: spec.txn_wait_timeout_ms,
        // sessionKey zero: BFE generates one; processId, sid, username, kernelMode are filled by
        // BFE, not by the caller (FWPM_SESSION0 page).
        ..FWPM_SESSION0::default()
    }
}

/// The `FWPM_PROVIDER0` of `FwpmProviderAdd0` (not persistent, no service name).
pub(crate) fn provider(spec: &ProviderSpec) -> FWPM_PROVIDER0 {
    FWPM_PROVIDER0 {
        providerKey: spec.key.to_windows(),
        displayData: display(spec.name, spec.description),
        flags: 0,
        ..FWPM_PROVIDER0::default()
    }
}

/// The `FWPM_SUBLAYER0` of `FwpmSubLayerAdd0` (not persistent). `provider_key` must hold
/// `spec.provider` and outlive the call.
pub(crate) fn sublayer(spec: &SublayerSpec, provider_key: &mut GUID) -> FWPM_SUBLAYER0 {
    *provider_key = spec.provider.to_windows();
    FWPM_SUBLAYER0 {
        subLayerKey: spec.key.to_windows(),
        displayData: display(spec.name, spec.description),
        flags: 0,
        providerKey: ptr::from_mut(provider_key),
        weight: spec.weight,
        ..FWPM_SUBLAYER0::default()
    }
}

/// The `FWPM_CALLOUT0` of `FwpmCalloutAdd0` (not persistent). `provider_key` must outlive the
/// call.
pub(crate) fn callout(spec: &CalloutSpec, provider_key: &mut GUID) -> FWPM_CALLOUT0 {
    *provider_key = spec.provider.to_windows();
    FWPM_CALLOUT0 {
        calloutKey: spec.key.to_windows(),
        displayData: display(spec.name, spec.description),
        flags: 0,
        providerKey: ptr::from_mut(provider_key),
        applicableLayer: spec.layer.layer_key().to_windows(),
        ..FWPM_CALLOUT0::default()
    }
}

/// The `FWPS_CALLOUT3` of `FwpsCalloutRegister3`, with the functions of the spec's kind.
///
/// # Errors
/// `STATUS_INVALID_PARAMETER` if classifyFn or notifyFn is missing (both are required,
/// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_callout3>), or
/// if the spec needs a flowDeleteFn and none is given.
pub(crate) fn runtime_callout(spec: &CalloutSpec, functions: &CalloutFunctionTable) -> Result<FWPS_CALLOUT3, NTSTATUS> {
    let fns = functions.get(spec.classify);
    if fns.classify.is_none() || fns.notify.is_none() || (spec.has_flow_delete && fns.flow_delete.is_none()) {
        return Err(STATUS_INVALID_PARAMETER);
    }
    Ok(FWPS_CALLOUT3 {
        calloutKey: spec.key.to_windows(),
        flags: spec.flags,
        classifyFn: fns.classify,
        notifyFn: fns.notify,
        // A callout that associates no context with the flows it processes sets flowDeleteFn to
        // NULL (FWPS_CALLOUT3 page, flowDeleteFn member).
        flowDeleteFn: if spec.has_flow_delete { fns.flow_delete } else { None },
    })
}

/// `FWP_ACTION_TYPE` of a [`FilterAction`].
pub(crate) const fn action_type(action: FilterAction) -> FWP_ACTION_TYPE {
    match action {
        FilterAction::CalloutTerminating => FWP_ACTION_CALLOUT_TERMINATING,
        FilterAction::CalloutInspection => FWP_ACTION_CALLOUT_INSPECTION,
        FilterAction::CalloutUnknown => FWP_ACTION_CALLOUT_UNKNOWN,
    }
}

/// `FWP_VALUE0` of a [`FilterWeight`]: `FWP_EMPTY` or `FWP_UINT8`.
/// <https://learn.microsoft.com/windows/win32/fwp/filter-weight-assignment>
fn weight(weight: FilterWeight) -> FWP_VALUE0 {
    match weight {
        FilterWeight::Auto => FWP_VALUE0 { r#type: FWP_EMPTY, ..FWP_VALUE0::default() },
        FilterWeight::Range(range) => FWP_VALUE0 { r#type: FWP_UINT8, Anonymous: FWP_VALUE0_0 { uint8: range } },
    }
}

/// The `FWPM_FILTER0` of `FwpmFilterAdd0`: no conditions, a callout action, not persistent.
/// `provider_key` must outlive the call.
pub(crate) fn filter(spec: &FilterSpec, provider_key: &mut GUID) -> FWPM_FILTER0 {
    *provider_key = spec.provider.to_windows();
    FWPM_FILTER0 {
        filterKey: spec.key.to_windows(),
        displayData: display(spec.name, spec.description),
        flags: FWPM_FILTER_FLAG_NONE,
        providerKey: ptr::from_mut(provider_key),
        layerKey: spec.layer.layer_key().to_windows(),
        subLayerKey: spec.sublayer.to_windows(),
        weight: weight(spec.weight),
        numFilterConditions: 0,
        filterCondition: ptr::null_mut(),
        action: FWPM_ACTION0 {
            r#type: action_type(spec.action),
            Anonymous: FWPM_ACTION0_0 { calloutKey: spec.callout.to_windows() },
        },
        ..FWPM_FILTER0::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tollgate_wfp_sys::{
        FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, FWPM_FILTER0, FWPS_CLASSIFY_OUT0, FWPS_FILTER3,
        FWPS_INCOMING_METADATA_VALUES0, FWPS_INCOMING_VALUES0,
    };

    use super::*;
    use crate::registration::{Guid, TOLLGATE_PLAN, TollgateLayer};

    unsafe extern "system" fn classify(
        _: *const FWPS_INCOMING_VALUES0,
        _: *const FWPS_INCOMING_METADATA_VALUES0,
        _: *mut core::ffi::c_void,
        _: *const core::ffi::c_void,
        _: *const FWPS_FILTER3,
        _: u64,
        _: *mut FWPS_CLASSIFY_OUT0,
    ) {
    }
    unsafe extern "system" fn notify(_: i32, _: *const GUID, _: *mut FWPS_FILTER3) -> NTSTATUS {
        0
    }
    unsafe extern "system" fn flow_delete(_: u16, _: u32, _: u64) {}

    const FNS: CalloutFunctions =
        CalloutFunctions { classify: Some(classify), notify: Some(notify), flow_delete: Some(flow_delete) };
    const TABLE: CalloutFunctionTable = CalloutFunctionTable {
        auth_connect: FNS,
        resource_assignment: FNS,
        endpoint_closure: FNS,
        resource_release: FNS,
        flow_established: FNS,
        stream: FNS,
    };

    fn callout_spec(layer: TollgateLayer) -> CalloutSpec {
        TOLLGATE_PLAN.callouts.iter().copied().find(|c| c.layer == layer).unwrap()
    }

    #[test]
    fn session_is_dynamic() {
        let s = session(&TOLLGATE_PLAN.session);
        assert_eq!(s.flags, FWPM_SESSION_FLAG_DYNAMIC);
        assert_eq!(Guid::from_windows(&s.sessionKey), Guid::NULL);
        assert_eq!(s.displayData.name.cast_const(), TOLLGATE_PLAN.session.name.as_ptr());
    }

    #[test]
    fn sublayer_names_provider_and_weight() {
        let mut key = GUID::default();
        let s = sublayer(&TOLLGATE_PLAN.sublayer, &mut key);
        assert_eq!(s.weight, TOLLGATE_PLAN.sublayer.weight);
        assert_eq!(s.providerKey.cast_const(), &raw const key);
        assert_eq!(Guid::from_windows(&key), TOLLGATE_PLAN.provider.key);
    }

    #[test]
    fn provider_is_not_persistent() {
        let p = provider(&TOLLGATE_PLAN.provider);
        assert_eq!(Guid::from_windows(&p.providerKey), TOLLGATE_PLAN.provider.key);
        assert_eq!(p.flags, 0);
        assert!(p.serviceName.is_null());
    }

    #[test]
    fn callout_objects_name_their_layer_and_provider() {
        for spec in &TOLLGATE_PLAN.callouts {
            let mut key = GUID::default();
            let c = callout(spec, &mut key);
            assert_eq!(Guid::from_windows(&c.calloutKey), spec.key);
            assert_eq!(Guid::from_windows(&c.applicableLayer), spec.layer.layer_key());
            assert_eq!(c.providerKey.cast_const(), &raw const key);
            assert_eq!(Guid::from_windows(&key), TOLLGATE_PLAN.provider.key);
            assert_eq!(c.flags, 0);
        }
    }

    #[test]
    fn runtime_callout_flow_delete_only_where_specified() {
        let stream = runtime_callout(&callout_spec(TollgateLayer::StreamV4), &TABLE).unwrap();
        assert!(stream.flowDeleteFn.is_some());
        assert_eq!(stream.flags, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW);
        let connect = runtime_callout(&callout_spec(TollgateLayer::AleAuthConnectV6), &TABLE).unwrap();
        assert!(connect.flowDeleteFn.is_none());
        assert_eq!(connect.flags, 0);
        assert_eq!(Guid::from_windows(&connect.calloutKey), TollgateLayer::AleAuthConnectV6.callout_key());
    }

    #[test]
    fn runtime_callout_rejects_missing_functions() {
        let mut table = TABLE;
        table.stream.flow_delete = None;
        assert_eq!(
            runtime_callout(&callout_spec(TollgateLayer::StreamV6), &table).err(),
            Some(STATUS_INVALID_PARAMETER)
        );
        let mut table = TABLE;
        table.auth_connect.classify = None;
        assert_eq!(
            runtime_callout(&callout_spec(TollgateLayer::AleAuthConnectV4), &table).err(),
            Some(STATUS_INVALID_PARAMETER)
        );
        let mut table = TABLE;
        table.endpoint_closure.notify = None;
        assert_eq!(
            runtime_callout(&callout_spec(TollgateLayer::AleEndpointClosureV4), &table).err(),
            Some(STATUS_INVALID_PARAMETER)
        );
    }

    fn check_filter(f: &FWPM_FILTER0, spec: &FilterSpec, key: &GUID) {
        assert_eq!(Guid::from_windows(&f.filterKey), spec.key);
        assert_eq!(Guid::from_windows(&f.layerKey), spec.layer.layer_key());
        assert_eq!(Guid::from_windows(&f.subLayerKey), spec.sublayer);
        assert_eq!(f.numFilterConditions, 0);
        assert!(f.filterCondition.is_null());
        assert_eq!(f.flags, FWPM_FILTER_FLAG_NONE);
        assert_eq!(f.providerKey.cast_const(), ptr::from_ref(key));
        assert_eq!(f.action.r#type, action_type(spec.action));
        // SAFETY: `filter` wrote the `calloutKey` member of the action union (a callout action).
        let callout_key = unsafe { f.action.Anonymous.calloutKey };
        assert_eq!(Guid::from_windows(&callout_key), spec.callout);
        assert_eq!(f.weight.r#type, FWP_EMPTY);
        assert_eq!(f.displayData.name.cast_const(), spec.name.as_ptr());
    }

    #[test]
    fn filters_match_their_specs() {
        for spec in &TOLLGATE_PLAN.filters {
            let mut key = GUID::default();
            let f = filter(spec, &mut key);
            check_filter(&f, spec, &key);
        }
    }

    #[test]
    fn weight_range_is_uint8() {
        let w = weight(FilterWeight::Range(15));
        assert_eq!(w.r#type, FWP_UINT8);
        // SAFETY: `weight` wrote the `uint8` member for a range weight.
        let range = unsafe { w.Anonymous.uint8 };
        assert_eq!(range, 15);
    }
}
