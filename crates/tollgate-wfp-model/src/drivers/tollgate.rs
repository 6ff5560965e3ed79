//! Tollgate's real driver logic on the model: the core's [`Core`] and [`FlowTable`] behind the
//! model's counterpart of the callout shims, plus DriverEntry's registration and DriverUnload's
//! S5 sequence.
//!
//! This file only translates: the model's classify call into the core's request, the core's
//! decision into classifyOut (through [`ClassifyDecision::classify_out`], the mapping the kernel
//! shims use too). Every decision is the core's.

use std::sync::{Arc, Mutex, PoisonError};

use tollgate_core::stream::{
    DomainBlocklist, FlowEndpoints, FlowId, FlowOwner, FlowTable, FlowTableConfig, StreamActionCode, StreamSegment,
};
use tollgate_core::{
    ClassifyDecision, ClassifyRequest, ConnectionFacts, Core, CoreConfig, CoreError, Direction, EndpointHandle,
    PendLayer, Platform, TeardownSource, Verdict,
};
use tollgate_wfp_sys::{
    FWPS_STREAM_FLAG_RECEIVE_ABORT, FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, FWPS_STREAM_FLAG_SEND,
    FWPS_STREAM_FLAG_SEND_ABORT, FWPS_STREAM_FLAG_SEND_DISCONNECT, STATUS_DEVICE_BUSY, STATUS_SUCCESS,
};

use crate::callout::{Action, CalloutDriver, ClassifyCall, ClassifyOut, FilterAction, Layer, StreamAction};
use crate::engine::Engine;
use crate::platform::{ModelPlatform, ModelRundown, ModelSpinLock, NotificationRequest};

/// How many flows the stream callout tracks at once.
pub const FLOW_CAPACITY: u32 = 4_096;

/// How many `STATUS_DEVICE_BUSY` answers unload tolerates per callout (the kernel shell's
/// `MAX_BUSY_RETRIES`).
const MAX_BUSY_RETRIES: u32 = 1_000;

/// What DriverUnload did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnloadReport {
    /// Pends completed with the default verdict by the unload sweep.
    pub pends_completed: u32,
    /// Flow contexts removed before unregistering.
    pub flow_contexts_removed: u32,
    /// `STATUS_DEVICE_BUSY` answers before the callouts unregistered.
    pub unregister_retries: u32,
}

/// Tollgate's driver on the model.
pub struct TollgateDriver {
    /// A known bug planted on purpose, so tests can show they catch it (feature `planted-bugs`).
    #[cfg(feature = "planted-bugs")]
    ignore_teardown: std::sync::atomic::AtomicBool,
    /// A known bug planted on purpose: the stream shim keeps the last `streamData` and reads it in
    /// the next classify (the naive stream callout's bug).
    #[cfg(feature = "planted-bugs")]
    keep_stream_data: Mutex<Option<Option<crate::callout::StreamDataRef>>>,
    /// A known bug planted on purpose: a flow whose context could not be associated stays in the
    /// flow table (never forgotten).
    #[cfg(feature = "planted-bugs")]
    keep_unassociated_flow: std::sync::atomic::AtomicBool,
    core: Core<ModelPlatform>,
    flows: FlowTable<ModelSpinLock>,
    blocklist: DomainBlocklist,
    registered: Mutex<Registered>,
}

#[derive(Default)]
struct Registered {
    callouts: Vec<(Layer, u32)>,
    filters: Vec<u64>,
}

/// Why the driver could not load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The core could not allocate its tables.
    Core(CoreError),
    /// The flow table could not be allocated.
    FlowTable,
    /// `FwpsCalloutRegister3` failed.
    Register(i32),
}

impl TollgateDriver {
    /// DriverEntry: allocates the core, registers a callout at every layer and adds a filter for
    /// each (the kernel shell does the same in one Fwpm transaction on a dynamic session).
    ///
    /// # Errors
    /// [`LoadError`] when any step fails; everything already registered is undone.
    pub fn load(engine: &Arc<Engine>, config: CoreConfig) -> Result<Arc<TollgateDriver>, LoadError> {
        Self::load_with(engine, config, FlowTableConfig { flows: FLOW_CAPACITY, ..FlowTableConfig::default() })
    }

    /// [`TollgateDriver::load`] with the stream callout's table sized and configured by `stream`.
    ///
    /// # Errors
    /// As [`TollgateDriver::load`].
    pub fn load_with(
        engine: &Arc<Engine>,
        config: CoreConfig,
        stream: FlowTableConfig,
    ) -> Result<Arc<TollgateDriver>, LoadError> {
        let core = Core::new(ModelPlatform::new(engine.clone()), ModelRundown::new(engine.clone()), config)
            .map_err(LoadError::Core)?;
        let flows = FlowTable::new(stream).map_err(|_| LoadError::FlowTable)?;
        let driver = Arc::new(TollgateDriver {
            #[cfg(feature = "planted-bugs")]
            ignore_teardown: std::sync::atomic::AtomicBool::new(false),
            #[cfg(feature = "planted-bugs")]
            keep_stream_data: Mutex::new(None),
            #[cfg(feature = "planted-bugs")]
            keep_unassociated_flow: std::sync::atomic::AtomicBool::new(false),
            core,
            flows,
            blocklist: DomainBlocklist::new(),
            registered: Mutex::new(Registered::default()),
        });
        for layer in Layer::ALL {
            let has_flow_delete = layer == Layer::Stream;
            match engine.register_callout(layer, driver.clone(), has_flow_delete) {
                Ok(id) => driver.registered().callouts.push((layer, id)),
                Err(status) => {
                    driver.unregister_all(engine, &mut UnloadReport::default());
                    return Err(LoadError::Register(status));
                }
            }
        }
        let callouts = driver.registered().callouts.clone();
        for (layer, id) in callouts {
            // The filter actions of the kernel's registration plan: terminating where Tollgate
            // decides, inspection where it only watches, and CALLOUT_UNKNOWN at the stream layer
            // (the only action under which FWPS_STREAM_ACTION_DROP_CONNECTION is honoured).
            let action = match layer {
                Layer::ResourceAssignment | Layer::AuthConnect => FilterAction::CalloutTerminating,
                Layer::Stream => FilterAction::CalloutUnknown,
                Layer::FlowEstablished | Layer::EndpointClosure | Layer::ResourceRelease => {
                    FilterAction::CalloutInspection
                }
            };
            let filter = engine.add_filter_with_action(layer, id, action);
            driver.registered().filters.push(filter);
        }
        Ok(driver)
    }

    fn registered(&self) -> std::sync::MutexGuard<'_, Registered> {
        self.registered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn unregister_all(&self, engine: &Engine, report: &mut UnloadReport) {
        let callouts = std::mem::take(&mut self.registered().callouts);
        for (_, id) in callouts {
            // STATUS_DEVICE_BUSY while a flow context is still associated: remove them (again: a
            // removal may have failed) and retry, as the kernel's registration teardown does.
            // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0
            let mut retries = 0_u32;
            while engine.unregister_callout(id) == STATUS_DEVICE_BUSY && !engine.halted() {
                retries = retries.saturating_add(1);
                report.unregister_retries = report.unregister_retries.saturating_add(1);
                report.flow_contexts_removed =
                    report.flow_contexts_removed.saturating_add(self.remove_flow_contexts(engine));
                engine.pump();
                self.core.platform().relax_at_passive();
                if retries > MAX_BUSY_RETRIES {
                    break;
                }
            }
        }
    }

    /// `FwpsFlowRemoveContext0` for every flow the stream callout still tracks (the kernel shell's
    /// `remove_all_flow_contexts`). Returns how many removals WFP accepted. PASSIVE_LEVEL.
    fn remove_flow_contexts(&self, engine: &Engine) -> u32 {
        let mut flows = Vec::with_capacity(self.flows.live_count());
        self.flows.live_flows(&mut flows);
        let mut removed = 0_u32;
        for (_, owner) in flows {
            // SUCCESS: flowDeleteFn ran; PENDING: it will run (the engine's queue). Either way the
            // context is gone from the flow. Any other status: it is still there, and the next
            // STATUS_DEVICE_BUSY brings us back here.
            // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowremovecontext0
            let status = engine.fwps_flow_remove_context0(owner.flow_handle, Layer::Stream, owner.callout_id);
            if status == STATUS_SUCCESS || status == tollgate_wfp_sys::STATUS_PENDING {
                removed = removed.saturating_add(1);
            }
        }
        removed
    }

    /// Plants the bug of the naive driver in Tollgate's shim: teardown notifications are ignored.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_ignore_teardown(&self) {
        self.ignore_teardown.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Plants the naive stream callout's bug in Tollgate's shim: the previous indication's
    /// `streamData` is kept and read again in the next stream classify.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_keep_stream_data(&self) {
        *self.keep_stream_data.lock().unwrap_or_else(PoisonError::into_inner) = Some(None);
    }

    /// Plants a leak: a flow whose `FwpsFlowAssociateContext0` failed is never forgotten, so its
    /// slot stays taken for good.
    #[cfg(feature = "planted-bugs")]
    pub fn plant_keep_unassociated_flow(&self) {
        self.keep_unassociated_flow.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The core (for the IOCTL dispatch and the report).
    #[must_use]
    pub fn core(&self) -> &Core<ModelPlatform> {
        &self.core
    }

    /// Flows being inspected now.
    #[must_use]
    pub fn live_flows(&self) -> usize {
        self.flows.live_count()
    }

    /// The stream callout's flow table (for the IOCTL dispatch and the report).
    #[must_use]
    pub fn flows(&self) -> &FlowTable<ModelSpinLock> {
        &self.flows
    }

    /// The domain blocklist (for the IOCTL dispatch).
    #[must_use]
    pub fn blocklist(&self) -> &DomainBlocklist {
        &self.blocklist
    }

    /// The DPC / work item: runs the core's deferred work if it asked for it, and timeouts.
    /// IRQL: DISPATCH_LEVEL (a DPC).
    pub fn run_timer(&self) -> u32 {
        let _dispatch = crate::irql::raise(crate::irql::Irql::Dispatch);
        let _ = self.core.platform().take_deferred_request();
        self.core.run_deferred_work()
    }

    /// DriverUnload, S5: close the core's gate and complete every pend (first, while the
    /// teardown notifications still reach us: a pend swept after the closure and release filters
    /// are gone could belong to an endpoint that was torn down in between, unseen), remove the
    /// filters (nothing is left to act as BLOCK), remove every flow context, then unregister the
    /// callouts (retrying on `STATUS_DEVICE_BUSY`), then wait for every callback still running.
    /// PASSIVE_LEVEL.
    pub fn unload(&self, engine: &Engine) -> UnloadReport {
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0
        let mut report = UnloadReport { pends_completed: self.core.begin_unload(), ..UnloadReport::default() };
        engine.pump();
        let filters = std::mem::take(&mut self.registered().filters);
        for filter in filters {
            let _ = engine.delete_filter(filter);
        }
        engine.pump();
        report.flow_contexts_removed = self.remove_flow_contexts(engine);
        engine.pump();
        self.unregister_all(engine, &mut report);
        engine.pump();
        self.core.wait_for_callbacks();
        report
    }

    fn facts<'a>(call: &'a ClassifyCall, layer: PendLayer) -> ConnectionFacts<'a> {
        ConnectionFacts {
            layer,
            protocol: call.values.protocol.number(),
            direction: Direction::Outbound,
            local_address: call.values.local.ip(),
            local_port: call.values.local.port(),
            remote_address: call.values.remote.ip(),
            remote_port: call.values.remote.port(),
            process_id: call.values.process_id,
            app_path: &call.values.app_id,
        }
    }

    fn classify_pendable(&self, call: &ClassifyCall, out: &mut ClassifyOut, layer: PendLayer) {
        let Some(endpoint) = call.metadata.transport_endpoint_handle else {
            // No endpoint handle: nothing to key a pend on; decide by default (fail-closed).
            write_decision(out, self.core.runtime_config().default_verdict, false);
            return;
        };
        let decision = self.core.classify(ClassifyRequest {
            endpoint: EndpointHandle(endpoint),
            completion_handle: call.metadata.completion_handle,
            is_reauthorization: call.is_reauthorize,
            can_write_action: out.write_right,
            facts: Self::facts(call, layer),
        });
        apply(out, decision);
    }

    fn classify_teardown(&self, call: &ClassifyCall, out: &mut ClassifyOut, source: TeardownSource) {
        #[cfg(feature = "planted-bugs")]
        if self.ignore_teardown.load(std::sync::atomic::Ordering::Relaxed) {
            out.action = Some(Action::Continue);
            return;
        }
        if let Some(endpoint) = call.metadata.transport_endpoint_handle {
            let request = NotificationRequest { classify_context: call.classify_context, filter_id: call.filter_id };
            let _ = self.core.endpoint_teardown(EndpointHandle(endpoint), source, Some(request));
        }
        if out.write_right {
            out.action = Some(Action::Continue);
        }
    }

    fn classify_flow_established(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut) {
        if out.write_right {
            out.action = Some(Action::Continue);
        }
        let (Some(flow), Some(endpoint)) = (call.metadata.flow_handle, call.metadata.transport_endpoint_handle) else {
            return;
        };
        if call.values.protocol != crate::callout::Protocol::Tcp {
            return;
        }
        let Some(stream_callout) =
            self.registered().callouts.iter().find(|(l, _)| *l == Layer::Stream).map(|(_, id)| *id)
        else {
            return;
        };
        // The model's engine has one stream layer; the id stands for FWPS_LAYER_STREAM_V4/V6.
        let owner = FlowOwner { flow_handle: flow, layer_id: 0, callout_id: stream_callout };
        let endpoints = FlowEndpoints {
            ip_protocol: call.values.protocol.number(),
            // The model's connections are all opened by this machine (ALE_AUTH_CONNECT).
            direction: Direction::Outbound,
            local_address: call.values.local.ip(),
            local_port: call.values.local.port(),
            remote_address: call.values.remote.ip(),
            remote_port: call.values.remote.port(),
            process_id: call.values.process_id,
        };
        let Some(id) = self.flows.attach(EndpointHandle(endpoint), owner, endpoints, engine.now()) else {
            return;
        };
        // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0
        if engine.fwps_flow_associate_context0(flow, Layer::Stream, stream_callout, id.to_raw()) != STATUS_SUCCESS {
            // Not associated: WFP will never call flowDeleteFn for it; the flow is not inspected.
            #[cfg(feature = "planted-bugs")]
            if self.keep_unassociated_flow.load(std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            self.flows.forget(id);
        }
    }

    fn classify_stream(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut) {
        // S6: layerData and streamData may be NULL; read only within this call; always set both
        // actions; never NEED_MORE_DATA.
        let (segment, data, length) = match call.stream {
            Some(packet) => {
                let disconnect_flags = FWPS_STREAM_FLAG_SEND_DISCONNECT
                    | FWPS_STREAM_FLAG_RECEIVE_DISCONNECT
                    | FWPS_STREAM_FLAG_SEND_ABORT
                    | FWPS_STREAM_FLAG_RECEIVE_ABORT;
                let length = if packet.stream_data.is_some() { packet.data_length } else { 0 };
                (
                    StreamSegment {
                        outbound: packet.flags & FWPS_STREAM_FLAG_SEND != 0,
                        length,
                        disconnect: packet.flags & disconnect_flags != 0,
                    },
                    packet.stream_data,
                    length,
                )
            }
            None => (StreamSegment { outbound: false, length: 0, disconnect: false }, None, 0),
        };
        let now = engine.now();
        #[cfg(feature = "planted-bugs")]
        {
            let mut kept = self.keep_stream_data.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(previous) = kept.as_mut() {
                if let Some(stale) = previous.take() {
                    let _ = engine.fwps_copy_stream_data_to_buffer0(stale, &mut [0_u8; 16]);
                }
                *previous = data;
            }
        }
        let action =
            self.flows.on_segment(FlowId::from_raw(call.flow_context), segment, now, &self.blocklist, |buffer| {
                match data {
                    Some(data) => engine.fwps_copy_stream_data_to_buffer0(data, buffer),
                    None => 0,
                }
            });
        let write = action.classify_out(call.filter_action == FilterAction::CalloutUnknown);
        out.action = Some(if write.block { Action::Block } else { Action::Permit });
        out.stream_action = Some(match write.stream_action {
            StreamActionCode::None => StreamAction::None,
            StreamActionCode::AllowConnection => StreamAction::AllowConnection,
            StreamActionCode::DropConnection => StreamAction::DropConnection,
        });
        out.count_bytes_enforced = length;
    }
}

fn write_decision(out: &mut ClassifyOut, verdict: Verdict, absorb: bool) {
    out.action = Some(match verdict {
        Verdict::Permit => Action::Permit,
        Verdict::Block => Action::Block,
    });
    out.absorb |= absorb;
}

fn apply(out: &mut ClassifyOut, decision: ClassifyDecision) {
    if let Some(write) = decision.classify_out() {
        write_decision(out, write.action, write.absorb);
        if write.clear_write_right {
            out.write_right = false;
        }
    }
}

impl CalloutDriver for TollgateDriver {
    fn classify(&self, engine: &Engine, call: &ClassifyCall, out: &mut ClassifyOut) {
        match call.layer {
            Layer::ResourceAssignment => self.classify_pendable(call, out, PendLayer::ResourceAssignment),
            Layer::AuthConnect => self.classify_pendable(call, out, PendLayer::AuthConnect),
            Layer::FlowEstablished => self.classify_flow_established(engine, call, out),
            Layer::Stream => self.classify_stream(engine, call, out),
            Layer::EndpointClosure => self.classify_teardown(call, out, TeardownSource::EndpointClosure),
            Layer::ResourceRelease => self.classify_teardown(call, out, TeardownSource::ResourceRelease),
        }
    }

    fn flow_delete(&self, engine: &Engine, _layer: Layer, _callout_id: u32, flow_context: u64) {
        // One table-removal path for every teardown signal (ARCHITECTURE.md §3).
        if let Some(facts) = self.flows.remove(FlowId::from_raw(flow_context), engine.now()) {
            let _ = self.core.endpoint_teardown(facts.endpoint, TeardownSource::FlowDelete, None);
        }
    }
}
