//! The functions WFP calls — classifyFn, notifyFn, flowDeleteFn — and the driver-wide state they
//! reach.
//!
//! A shim only translates ([`crate::translate`]) and calls the core; every decision is the
//! core's. WFP passes no driver context to a classifyFn, so the shims find the driver's state
//! through one published pointer, guarded by a small rundown of their own (the core's rundown
//! lives *inside* that state, so it cannot protect the pointer itself):
//! - [`publish`] stores the state before any callout is registered;
//! - every shim enters the gate (`ACTIVE += 1`, then checks `CLOSING`) before it reads the pointer
//!   and leaves it on return;
//! - [`retire`] (DriverUnload, after the callouts are unregistered) closes the gate, waits at
//!   PASSIVE_LEVEL until no shim is inside, and only then hands the state back to be freed (S3, S5).
//!
//! `ACTIVE` and `CLOSING` are `SeqCst`: a shim's increment-then-check and the unload's
//! set-then-check form a Dekker pair, so either the shim sees `CLOSING` and leaves, or the unload
//! sees the shim and waits for it.
//!
//! IRQL: every shim runs at ≤ DISPATCH_LEVEL
//! (<https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_classify_fn3>,
//! <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_flow_delete_notify_fn0>)
//! and never waits.

use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use tollgate_core::stream::{DomainBlocklist, FlowId, FlowOwner, FlowTable};
use tollgate_core::{ClassifyDecision, ClassifyRequest, Core, EndpointHandle, Platform, TeardownSource};
use tollgate_kernel::{ClosureRequest, KernelPlatform, KernelSpinLock};
use tollgate_wfp_sys as sys;

use crate::translate::{
    ClassifyKind, IncomingValues, IpVersion, Metadata, StreamIndication, can_write_action, filter_is_callout_unknown,
    layer_of, read_flow_established, read_pendable, write_continue, write_decision, write_stream,
};

/// Everything the callouts need: the core, the stream flow table, the domain blocklist and the
/// stream callouts' run-time ids (for `FwpsFlowAssociateContext0`). Allocated by the shell at
/// DriverEntry, freed after [`retire`].
pub struct DriverState {
    /// The pend-lifecycle core.
    pub core: Core<KernelPlatform>,
    /// Flows being inspected by the stream callout.
    pub flows: FlowTable<KernelSpinLock>,
    /// Domain patterns whose flows the stream callout drops.
    pub blocklist: DomainBlocklist,
    stream_callout_v4: AtomicU32,
    stream_callout_v6: AtomicU32,
}

impl DriverState {
    /// The state over `core` and `flows`, with an empty blocklist; the stream callout ids are set
    /// after registration.
    pub fn new(core: Core<KernelPlatform>, flows: FlowTable<KernelSpinLock>) -> DriverState {
        DriverState {
            core,
            flows,
            blocklist: DomainBlocklist::new(),
            stream_callout_v4: AtomicU32::new(0),
            stream_callout_v6: AtomicU32::new(0),
        }
    }

    /// Records the run-time ids `FwpsCalloutRegister3` gave the STREAM_V4 and STREAM_V6 callouts.
    /// PASSIVE_LEVEL (DriverEntry), before the flow-established filters are added.
    pub fn set_stream_callout_ids(&self, v4: u32, v6: u32) {
        self.stream_callout_v4.store(v4, Ordering::Release);
        self.stream_callout_v6.store(v6, Ordering::Release);
    }
}

static STATE: AtomicPtr<DriverState> = AtomicPtr::new(core::ptr::null_mut());
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static CLOSING: AtomicBool = AtomicBool::new(false);

/// Makes `state` reachable from the callouts. PASSIVE_LEVEL (DriverEntry), before any callout is
/// registered.
pub fn publish(state: &'static DriverState) {
    CLOSING.store(false, Ordering::SeqCst);
    STATE.store(core::ptr::from_ref(state).cast_mut(), Ordering::SeqCst);
}

/// Closes the gate, waits until no callout is inside (calling `relax` between checks: the shell
/// passes `KeDelayExecutionThread`), and returns the state for the shell to free. PASSIVE_LEVEL
/// only (DriverUnload, after every callout is unregistered).
pub fn retire(mut relax: impl FnMut()) -> Option<&'static DriverState> {
    CLOSING.store(true, Ordering::SeqCst);
    while ACTIVE.load(Ordering::SeqCst) != 0 {
        relax();
    }
    let state = STATE.swap(core::ptr::null_mut(), Ordering::SeqCst);
    // SAFETY: `state` is NULL or the `&'static DriverState` that `publish` stored; no callout is
    // inside the gate and none can enter (CLOSING), so nothing else refers to it now.
    unsafe { state.cast_const().as_ref() }
}

/// A callout inside the gate.
struct Entered {
    state: &'static DriverState,
}

impl Drop for Entered {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Enters the gate. IRQL: any; never waits.
fn enter() -> Option<Entered> {
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    let pointer = STATE.load(Ordering::SeqCst);
    if CLOSING.load(Ordering::SeqCst) || pointer.is_null() {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        return None;
    }
    // SAFETY: non-NULL `STATE` is the `&'static DriverState` from `publish`; it is not freed until
    // `retire` has seen ACTIVE drop to zero, and we hold one count until `Entered` drops.
    let state = unsafe { pointer.cast_const().as_ref() }?;
    Some(Entered { state })
}

/// classifyFn for every Tollgate callout (the layer is read from `inFixedValues`).
///
/// IRQL: ≤ DISPATCH_LEVEL.
///
/// # Safety
/// Called by the filter engine with the arguments its documentation describes: each pointer NULL
/// or valid for the duration of the call.
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_classify_fn3>
pub unsafe extern "system" fn classify(
    in_fixed_values: *const sys::FWPS_INCOMING_VALUES0,
    in_meta_values: *const sys::FWPS_INCOMING_METADATA_VALUES0,
    layer_data: *mut c_void,
    classify_context: *const c_void,
    filter: *const sys::FWPS_FILTER3,
    flow_context: u64,
    classify_out: *mut sys::FWPS_CLASSIFY_OUT0,
) {
    // SAFETY: `in_fixed_values` is the engine's, NULL or valid for this call.
    let layer = unsafe { IncomingValues::layer_id(in_fixed_values) }.and_then(layer_of);
    let Some((layer, version)) = layer else {
        return;
    };
    let Some(entered) = enter() else {
        // Unloading: the filters are already gone, so this is a classify that raced the unload.
        // Fail closed at the pendable layers, step aside elsewhere.
        if matches!(layer, ClassifyKind::ResourceAssignment | ClassifyKind::AuthConnect) {
            // SAFETY: `classify_out` is the engine's, NULL or valid and writable for this call.
            unsafe { write_block_if_allowed(classify_out) };
        } else {
            // SAFETY: as above.
            unsafe { write_continue(classify_out) };
        }
        return;
    };
    let state = entered.state;
    // SAFETY: `in_fixed_values` / `in_meta_values` are the engine's, valid for this call, and the
    // views do not outlive it.
    let values = unsafe { IncomingValues::new(in_fixed_values) };
    // SAFETY: as above.
    let metadata = unsafe { Metadata::read(in_meta_values) };
    match layer {
        ClassifyKind::ResourceAssignment | ClassifyKind::AuthConnect => {
            // SAFETY: `classify_out` is the engine's, valid for this call.
            if !unsafe { can_write_action(classify_out) } {
                // Another callout owns the decision: leave classifyOut alone.
                // https://learn.microsoft.com/en-us/windows-hardware/drivers/network/processing-classify-callouts
                return;
            }
            let decision = match (read_pendable(layer, version, &values, &metadata), metadata.transport_endpoint_handle)
            {
                (Some(read), Some(endpoint)) => state.core.classify(ClassifyRequest {
                    endpoint: EndpointHandle(endpoint),
                    completion_handle: metadata.completion_handle,
                    is_reauthorization: read.is_reauthorization,
                    can_write_action: true,
                    facts: read.facts,
                }),
                _ => state.core.decide_unreadable(),
            };
            if matches!(decision, ClassifyDecision::Pended(_)) {
                // Wake the inverted call: the shell's DPC fills a parked GET_PENDED request.
                state.core.platform().request_deferred_work();
            }
            // SAFETY: `classify_out` is the engine's, valid and writable for this call.
            unsafe { write_decision(classify_out, decision) };
        }
        ClassifyKind::EndpointClosure | ClassifyKind::ResourceRelease => {
            // Written before the teardown so that, if the notification is pended, the copy of
            // classifyOut taken for FwpsCompleteClassify0 already holds it.
            // SAFETY: `classify_out` is the engine's, valid and writable for this call.
            unsafe { write_continue(classify_out) };
            let source = if layer == ClassifyKind::EndpointClosure {
                TeardownSource::EndpointClosure
            } else {
                TeardownSource::ResourceRelease
            };
            if let Some(endpoint) = metadata.transport_endpoint_handle {
                // SAFETY: `filter` is the engine's, NULL or valid for this call.
                let filter_id = unsafe { filter.as_ref() }.map_or(0, |f| f.filterId);
                let request = ClosureRequest { classify_context, filter_id, classify_out };
                let _ = state.core.endpoint_teardown(EndpointHandle(endpoint), source, Some(request));
            }
        }
        ClassifyKind::FlowEstablished => {
            // SAFETY: `classify_out` is the engine's, valid and writable for this call.
            unsafe { write_continue(classify_out) };
            associate_stream_context(state, version, &values, &metadata);
        }
        ClassifyKind::Stream => {
            let packet = layer_data.cast::<sys::FWPS_STREAM_CALLOUT_IO_PACKET0>();
            // SAFETY: at the stream layer `layerData` is the engine's FWPS_STREAM_CALLOUT_IO_PACKET0,
            // NULL or valid for this call (S6: NULL is handled).
            let indication = unsafe { StreamIndication::read(packet.cast_const()) };
            let now = state.core.platform().now();
            let stream_data = indication.stream_data();
            let flow = FlowId::from_raw(flow_context);
            let action = state.flows.on_segment(flow, indication.segment, now, &state.blocklist, |buffer| {
                if stream_data.is_null() {
                    return 0;
                }
                let mut copied = 0_usize;
                // Copy out now: the data is valid only during this classifyFn.
                // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscopystreamdatatobuffer0
                // SAFETY: within this classifyFn (the only place the data is valid, S6);
                // `buffer` is writable for its length, which the flow table bounds by the
                // segment's `dataLength`; `copied` is a local.
                unsafe {
                    sys::FwpsCopyStreamDataToBuffer0(
                        stream_data,
                        buffer.as_mut_ptr().cast(),
                        buffer.len(),
                        &raw mut copied,
                    );
                }
                copied
            });
            // SAFETY: `filter` is the engine's, NULL or valid for this call.
            let unknown = unsafe { filter_is_callout_unknown(filter) };
            // SAFETY: `classify_out` and `layer_data` are the engine's, valid and writable.
            unsafe { write_stream(classify_out, packet, action.classify_out(unknown), indication.segment.length) };
        }
    }
}

/// BLOCK, if we have the write right (the fail-closed answer while unloading).
///
/// # Safety
/// `out` is NULL or classifyFn's valid, writable classifyOut.
unsafe fn write_block_if_allowed(out: *mut sys::FWPS_CLASSIFY_OUT0) {
    // SAFETY: the caller's guarantee.
    if let Some(out) = unsafe { out.as_mut() }
        && out.rights & sys::FWPS_RIGHT_ACTION_WRITE != 0
    {
        out.actionType = sys::FWP_ACTION_BLOCK;
        out.rights &= !sys::FWPS_RIGHT_ACTION_WRITE;
    }
}

/// At ALE_FLOW_ESTABLISHED of a TCP connection: start inspecting its stream. IRQL: ≤ DISPATCH.
fn associate_stream_context(state: &DriverState, version: IpVersion, values: &IncomingValues<'_>, metadata: &Metadata) {
    const TCP: u8 = 6;
    let Some(endpoints) = read_flow_established(version, values, metadata) else {
        return;
    };
    if endpoints.ip_protocol != TCP {
        return;
    }
    let (Some(flow), Some(endpoint)) = (metadata.flow_handle, metadata.transport_endpoint_handle) else {
        return;
    };
    let (layer_id, callout_id) = match version {
        IpVersion::V4 => (sys::FWPS_LAYER_STREAM_V4, state.stream_callout_v4.load(Ordering::Acquire)),
        IpVersion::V6 => (sys::FWPS_LAYER_STREAM_V6, state.stream_callout_v6.load(Ordering::Acquire)),
    };
    if callout_id == 0 {
        return;
    }
    let owner = FlowOwner { flow_handle: flow, layer_id, callout_id };
    let now = state.core.platform().now();
    let Some(id) = state.flows.attach(EndpointHandle(endpoint), owner, endpoints, now) else {
        // Table full: this flow is not inspected (the connection was already authorized).
        return;
    };
    // The stream callout is registered with a flowDeleteFn, as FwpsFlowAssociateContext0 requires.
    // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0
    // SAFETY: plain values; the call is legal at ≤ DISPATCH_LEVEL within classifyFn.
    let status = unsafe { sys::FwpsFlowAssociateContext0(flow, layer_id, callout_id, id.to_raw()) };
    if status != sys::STATUS_SUCCESS {
        state.flows.forget(id);
    }
}

/// notifyFn: Tollgate keeps no per-filter state. IRQL: ≤ DISPATCH_LEVEL.
///
/// # Safety
/// Called by the filter engine; the arguments are not read.
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_notify_fn3>
pub unsafe extern "system" fn notify(
    _notify_type: sys::FWPS_CALLOUT_NOTIFY_TYPE,
    _filter_key: *const sys::GUID,
    _filter: *mut sys::FWPS_FILTER3,
) -> sys::NTSTATUS {
    sys::STATUS_SUCCESS
}

/// flowDeleteFn of the stream callouts: the flow is gone; its entry goes through the same removal
/// path as the other teardown signals. IRQL: ≤ DISPATCH_LEVEL; may fire with no classify first.
///
/// # Safety
/// Called by the filter engine with the flow context Tollgate associated (a slot + generation,
/// never a pointer: a stale or foreign value finds nothing).
/// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nc-fwpsk-fwps_callout_flow_delete_notify_fn0>
pub unsafe extern "system" fn flow_delete(_layer_id: u16, _callout_id: u32, flow_context: u64) {
    let Some(entered) = enter() else {
        return;
    };
    let state = entered.state;
    let now = state.core.platform().now();
    if let Some(facts) = state.flows.remove(FlowId::from_raw(flow_context), now) {
        let _ = state.core.endpoint_teardown(facts.endpoint, TeardownSource::FlowDelete, None);
    }
}

// The shims must have exactly the engine's callback types.
const _: sys::FWPS_CALLOUT_CLASSIFY_FN3 = Some(classify);
const _: sys::FWPS_CALLOUT_NOTIFY_FN3 = Some(notify);
const _: sys::FWPS_CALLOUT_FLOW_DELETE_NOTIFY_FN0 = Some(flow_delete);
