//! The filter engine: endpoints, pended operations, classify handles, flow contexts, stream data,
//! registered callouts and filters, and the hazard oracles.
//!
//! One engine models one machine. Its state sits behind one mutex that is never held while a
//! callout runs, so drivers call back into it (the `fwps_*` methods) from classifyFn and flowDeleteFn
//! exactly as a real driver calls `Fwps*` from its callouts. Once a bugcheck is recorded the machine
//! is stopped: every later call returns at once and does nothing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tollgate_core::Ticks;
use tollgate_wfp_sys::{
    FWPS_STREAM_FLAG_RECEIVE, FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, FWPS_STREAM_FLAG_SEND,
    FWPS_STREAM_FLAG_SEND_DISCONNECT, NTSTATUS, STATUS_DEVICE_BUSY, STATUS_FWP_CALLOUT_NOT_FOUND,
    STATUS_FWP_CANNOT_PEND, STATUS_FWP_FILTER_NOT_FOUND, STATUS_FWP_NULL_POINTER, STATUS_INVALID_PARAMETER,
    STATUS_OBJECT_NAME_EXISTS, STATUS_PENDING, STATUS_SUCCESS,
};

use crate::bugcheck::{BugCheck, Hazard, StopCode};
use crate::callout::{
    Action, CalloutDriver, ClassifyCall, ClassifyContext, ClassifyHandle, ClassifyOut, CompletionContext,
    CompletionHandle, ConnectionValues, FilterAction, Layer, Metadata, Protocol, StreamAction, StreamDataRef,
    StreamPacket,
};
use crate::faults::{FaultPlan, Faults, FwpsCall, InjectedFault};
use crate::irql::{self, Irql};

/// A connection the workload opened (the model's name for it; drivers never see it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// The application closes the socket: FIN (a disconnect indication on an established stream).
    Graceful,
    /// The peer resets the connection (RST).
    Reset,
    /// The process is killed: tcpip tears every endpoint down at once.
    ProcessKill,
}

/// How a stream indication is shaped (the cases S6 says a callout must survive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamShape {
    /// `layerData` and `streamData` present.
    Normal,
    /// `layerData` is NULL.
    NullLayerData,
    /// `layerData` present, `streamData` NULL.
    NullStreamData,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Its ALE_RESOURCE_ASSIGNMENT classify is pended.
    BindPended,
    /// Its ALE_AUTH_CONNECT classify is pended.
    ConnectPended,
    /// Connected (TCP) or authorized (UDP).
    Established,
    /// Being torn down: notifications in progress.
    Closing,
    /// Torn down; the endpoint's memory is released.
    Closed,
}

/// How a connection ended up, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It was authorized.
    Established,
    /// A callout (or an orphaned filter) blocked it.
    Blocked,
    /// It was torn down while one of its classifies was pended.
    TornDownWhilePended,
}

/// Knobs of the model's own nondeterminism (seeded, so a run is reproducible).
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    /// Seeds the engine's choices.
    pub seed: u64,
    /// Percentage of flowDeleteFn calls the engine runs later instead of synchronously (both are
    /// documented for `FwpsFlowRemoveContext0` and for teardown).
    pub deferred_flow_delete_percent: u8,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { seed: 1, deferred_flow_delete_percent: 50 }
    }
}

/// Counts of what the engine did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Connections opened.
    pub opened: u64,
    /// Connections authorized.
    pub established: u64,
    /// Connections blocked.
    pub blocked: u64,
    /// Connections torn down while pended.
    pub torn_down_while_pended: u64,
    /// Connections fully closed (endpoint memory released).
    pub closed: u64,
    /// classifyFn invocations.
    pub classifies: u64,
    /// Successful `FwpsPendOperation0`.
    pub pends: u64,
    /// `FwpsCompleteOperation0`.
    pub completions: u64,
    /// Reauthorization classifies.
    pub reauthorizations: u64,
    /// `FwpsPendClassify0` on teardown notifications.
    pub notifications_pended: u64,
    /// flowDeleteFn invocations.
    pub flow_deletes: u64,
    /// Stream indications.
    pub stream_indications: u64,
    /// Stream bytes indicated.
    pub stream_bytes: u64,
    /// Stream indications not classified because the flow was allowed with
    /// FWPS_STREAM_ACTION_ALLOW_CONNECTION.
    pub stream_indications_allowed_through: u64,
    /// Bytes in those indications.
    pub stream_bytes_allowed_through: u64,
    /// Connections dropped by a stream callout (FWPS_STREAM_ACTION_DROP_CONNECTION).
    pub stream_drops: u64,
    /// Connections blocked because their filter's callout was unregistered.
    pub blocked_by_orphaned_filter: u64,
    /// Endpoint handles reused after their endpoint was freed.
    pub endpoint_handles_reused: u64,
    /// Live connections at the busiest moment.
    pub peak_live_connections: u64,
}

/// Leaks and hazards at the end of a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineReport {
    /// Counters.
    pub counters: EngineCounters,
    /// The bugcheck, if the machine stopped.
    pub bugcheck: Option<BugCheck>,
    /// Contract violations that did not stop the machine.
    pub hazards: Vec<Hazard>,
    /// What was still held when the report was taken (pends, classify handles, flow contexts).
    pub leaks: Vec<String>,
}

struct Registration {
    layer: Layer,
    driver: Arc<dyn CalloutDriver>,
    has_flow_delete: bool,
    registered: bool,
}

struct Filter {
    layer: Layer,
    callout_id: u32,
    action: FilterAction,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TeardownStep {
    Closure,
    FlowDelete,
    Release,
    Free,
}

struct Connection {
    values: ConnectionValues,
    endpoint: u64,
    phase: Phase,
    /// Which classify a pend is waiting on (for the reauthorization that follows completion).
    pended_layer: Option<Layer>,
    ra_indicated: bool,
    connect_indicated: bool,
    flow: Option<u64>,
    next_step: TeardownStep,
    /// A teardown notification pended with `FwpsPendClassify0`, not yet completed.
    waiting_on: Option<u64>,
    /// A stream classify answered FWPS_STREAM_ACTION_ALLOW_CONNECTION: no more stream classifies.
    stream_allowed: bool,
}

struct PendRecord {
    conn: ConnId,
    endpoint: u64,
    endpoint_generation: u64,
    completed: bool,
}

struct ClassifyHandleRecord {
    conn: ConnId,
    /// Set by `FwpsPendClassify0`; cleared by `FwpsCompleteClassify0`.
    pended: bool,
    /// The classify that pended it is still running.
    classify_running: bool,
}

struct InFlight {
    serial: u64,
    conn: ConnId,
    layer: Layer,
    is_reauthorize: bool,
    pended_operation: bool,
    pended_classify: Option<u64>,
}

enum Work {
    /// A pended classify was completed: reauthorize the connection.
    Reauthorize(ConnId),
    /// A pended teardown notification was completed: go on tearing down.
    ContinueTeardown(ConnId),
    /// A deferred flowDeleteFn.
    FlowDelete { layer: Layer, callout_id: u32, context: u64 },
}

struct State {
    config: EngineConfig,
    rng: u64,
    now: Ticks,
    next_id: u64,
    registrations: HashMap<u32, Registration>,
    next_callout_id: u32,
    filters: HashMap<u64, Filter>,
    driver_unloaded: bool,
    connections: HashMap<ConnId, Connection>,
    live_connections: u64,
    /// Endpoint handle → generation, for endpoints alive now.
    live_endpoints: HashMap<u64, u64>,
    /// Freed endpoint handles, reused first (the allocator reuses addresses).
    free_endpoint_handles: Vec<u64>,
    endpoint_generation: u64,
    next_endpoint_handle: u64,
    pends: HashMap<u64, PendRecord>,
    classify_handles: HashMap<u64, ClassifyHandleRecord>,
    /// (flow, layer) → (callout id, context).
    flow_contexts: HashMap<(u64, Layer), (u32, u64)>,
    live_stream_data: HashMap<u64, Vec<Vec<u8>>>,
    issued_stream_data: HashSet<u64>,
    in_flight: Vec<InFlight>,
    work: VecDeque<Work>,
    counters: EngineCounters,
    bugcheck: Option<BugCheck>,
    hazards: Vec<Hazard>,
    faults: Faults,
    /// Connections torn down "on another processor" while their pend's completion returns.
    close_during_completion: HashMap<ConnId, CloseKind>,
    /// Connections torn down right after the driver's Nth filter deletion.
    close_after_filter_deletes: Vec<(u64, ConnId, CloseKind)>,
    filter_deletes: u64,
}

impl State {
    fn id(&mut self) -> u64 {
        self.next_id = self.next_id.wrapping_add(1);
        self.next_id
    }

    /// SplitMix64: the engine's own seeded choices.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn stop(&mut self, stop: StopCode, faulting_routine: &'static str, cause: String) {
        if self.bugcheck.is_none() {
            self.bugcheck = Some(BugCheck { stop, faulting_routine, cause, at_millis: self.now.as_millis() });
        }
    }

    fn hazard(&mut self, rule: &'static str, detail: String) {
        // Bounded: a broken driver in a long run must not eat the host's memory.
        if self.hazards.len() < 1_000 {
            self.hazards.push(Hazard { rule, detail });
        }
    }

    fn filter_for(&self, layer: Layer) -> Option<(u64, u32, FilterAction)> {
        self.filters.iter().filter(|(_, f)| f.layer == layer).map(|(id, f)| (*id, f.callout_id, f.action)).min()
    }

    fn allocate_endpoint(&mut self) -> (u64, u64) {
        self.endpoint_generation = self.endpoint_generation.wrapping_add(1);
        let handle = if let Some(handle) = self.free_endpoint_handles.pop() {
            self.counters.endpoint_handles_reused = self.counters.endpoint_handles_reused.saturating_add(1);
            handle
        } else {
            // Kernel-pool-looking addresses, 0x200 apart.
            self.next_endpoint_handle = self.next_endpoint_handle.wrapping_add(0x200);
            self.next_endpoint_handle
        };
        self.live_endpoints.insert(handle, self.endpoint_generation);
        (handle, self.endpoint_generation)
    }
}

/// What a classify invocation produced.
struct Invocation {
    out: ClassifyOut,
    pended_operation: bool,
    pended_classify: Option<u64>,
    /// No callout ran (no filter at the layer): the layer's default, permit.
    no_callout: bool,
    /// The matching filter's action type (default when there was none).
    filter_action: FilterAction,
}

/// The modelled filter engine (plus the parts of tcpip and NETIO it stands for).
pub struct Engine {
    state: Mutex<State>,
}

impl Engine {
    /// A machine with no callouts registered.
    #[must_use]
    pub fn new(config: EngineConfig) -> Arc<Engine> {
        Arc::new(Engine {
            state: Mutex::new(State {
                config,
                rng: config.seed,
                now: Ticks(0),
                next_id: 0x1000,
                registrations: HashMap::new(),
                next_callout_id: 0,
                filters: HashMap::new(),
                driver_unloaded: false,
                connections: HashMap::new(),
                live_connections: 0,
                live_endpoints: HashMap::new(),
                free_endpoint_handles: Vec::new(),
                endpoint_generation: 0,
                next_endpoint_handle: 0xFFFF_B00C_0000_0000,
                pends: HashMap::new(),
                classify_handles: HashMap::new(),
                flow_contexts: HashMap::new(),
                live_stream_data: HashMap::new(),
                issued_stream_data: HashSet::new(),
                in_flight: Vec::new(),
                work: VecDeque::new(),
                counters: EngineCounters::default(),
                bugcheck: None,
                hazards: Vec::new(),
                faults: Faults::default(),
                close_during_completion: HashMap::new(),
                close_after_filter_deletes: Vec::new(),
                filter_deletes: 0,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ------------------------------------------------------------------ machine

    /// Model time (`KeQueryInterruptTime`).
    pub fn now(&self) -> Ticks {
        self.lock().now
    }

    /// Moves model time forward to `t` (never back).
    pub fn advance_to(&self, t: Ticks) {
        let mut state = self.lock();
        state.now = state.now.max(t);
    }

    /// The bugcheck, once the machine has stopped.
    pub fn bugcheck(&self) -> Option<BugCheck> {
        self.lock().bugcheck.clone()
    }

    /// Whether the machine has stopped.
    pub fn halted(&self) -> bool {
        self.lock().bugcheck.is_some()
    }

    /// Counters so far.
    pub fn counters(&self) -> EngineCounters {
        self.lock().counters
    }

    // ------------------------------------------------------------------ faults (see `faults`)

    /// Which fallible `Fwps*` calls fail from now on (calls are counted from the engine's
    /// creation; set the plan before loading the driver to count its registration too). Setting
    /// a plan also starts the log that [`Engine::fallible_calls`] returns.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        let mut state = self.lock();
        state.faults.plan = plan;
        if state.faults.log.is_none() {
            state.faults.log = Some(Vec::new());
        }
    }

    /// Every fallible call since the first [`Engine::set_fault_plan`], in order.
    pub fn fallible_calls(&self) -> Vec<FwpsCall> {
        self.lock().faults.log.clone().unwrap_or_default()
    }

    /// How many fallible calls were made since the engine was created.
    pub fn fallible_call_count(&self) -> u64 {
        self.lock().faults.total
    }

    /// The failures injected so far.
    pub fn injected_faults(&self) -> Vec<InjectedFault> {
        self.lock().faults.injected.clone()
    }

    /// The second processor: when the driver calls `FwpsCompleteOperation0` for a pend of
    /// `conn`, the connection is torn down (`kind`) after WFP took the completion and before the
    /// call returns to the driver, i.e. while the driver's completion is still in flight.
    pub fn race_close_during_completion(&self, conn: ConnId, kind: CloseKind) {
        self.lock().close_during_completion.insert(conn, kind);
    }

    /// The second processor: `conn` is torn down (`kind`) right after the driver's `n`th
    /// `FwpmFilterDeleteById0` (1-based, counted from the engine's creation): in the middle of an
    /// unload.
    pub fn race_close_after_filter_deletes(&self, n: u64, conn: ConnId, kind: CloseKind) {
        self.lock().close_after_filter_deletes.push((n, conn, kind));
    }

    /// Callouts registered now.
    pub fn registered_callouts(&self) -> usize {
        self.lock().registrations.values().filter(|r| r.registered).count()
    }

    /// Filters present now.
    pub fn filter_count(&self) -> usize {
        self.lock().filters.len()
    }

    /// A wait (`KeWaitForSingleObject`, `ExWaitForRundownProtectionRelease`,
    /// `KeDelayExecutionThread`) on the calling processor: legal only at IRQL ≤ APC_LEVEL. Waiting at
    /// DISPATCH_LEVEL stops the machine.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/kernel/managing-hardware-priorities>
    pub fn wait(&self, routine: &'static str) {
        let level = irql::current();
        if level > Irql::Apc {
            self.lock().stop(
                StopCode::IrqlNotLessOrEqual,
                routine,
                format!("{routine} called at {level:?} level: a wait is legal only at IRQL <= APC_LEVEL"),
            );
        }
    }

    // ------------------------------------------------------------------ registration

    /// `FwpsCalloutRegister3`: registers `driver`'s classifyFn (and flowDeleteFn, if it has one) at
    /// `layer`. PASSIVE_LEVEL.
    ///
    /// # Errors
    /// Only an injected failure ([`Engine::set_fault_plan`]): `STATUS_INSUFFICIENT_RESOURCES`,
    /// nothing registered.
    pub fn register_callout(
        &self,
        layer: Layer,
        driver: Arc<dyn CalloutDriver>,
        has_flow_delete: bool,
    ) -> Result<u32, NTSTATUS> {
        let mut state = self.lock();
        if let Some(status) = state.faults.on_call(FwpsCall::CalloutRegister) {
            return Err(status);
        }
        state.next_callout_id = state.next_callout_id.wrapping_add(1);
        let id = state.next_callout_id;
        state.registrations.insert(id, Registration { layer, driver, has_flow_delete, registered: true });
        state.driver_unloaded = false;
        Ok(id)
    }

    /// `FwpsCalloutUnregisterById0`. PASSIVE_LEVEL. `STATUS_DEVICE_BUSY` while a flow still has a
    /// context from this callout: <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0>.
    pub fn unregister_callout(&self, callout_id: u32) -> NTSTATUS {
        let mut state = self.lock();
        if state.flow_contexts.values().any(|(owner, _)| *owner == callout_id) {
            return STATUS_DEVICE_BUSY;
        }
        match state.registrations.get_mut(&callout_id) {
            Some(registration) if registration.registered => {
                registration.registered = false;
                STATUS_SUCCESS
            }
            _ => STATUS_FWP_CALLOUT_NOT_FOUND,
        }
    }

    /// `FwpmFilterAdd0` with a callout action at `layer` (in the dynamic session). PASSIVE_LEVEL.
    pub fn add_filter(&self, layer: Layer, callout_id: u32) -> u64 {
        self.add_filter_with_action(layer, callout_id, FilterAction::default())
    }

    /// `FwpmFilterAdd0` with the filter's `action.type` (`FWP_ACTION_CALLOUT_*`). PASSIVE_LEVEL.
    pub fn add_filter_with_action(&self, layer: Layer, callout_id: u32, action: FilterAction) -> u64 {
        let mut state = self.lock();
        let id = state.id();
        state.filters.insert(id, Filter { layer, callout_id, action });
        id
    }

    /// `FwpmFilterDeleteById0`. PASSIVE_LEVEL.
    pub fn delete_filter(&self, filter_id: u64) -> NTSTATUS {
        let (status, races) = {
            let mut state = self.lock();
            if state.filters.remove(&filter_id).is_none() {
                return STATUS_FWP_FILTER_NOT_FOUND;
            }
            state.filter_deletes = state.filter_deletes.saturating_add(1);
            let n = state.filter_deletes;
            let (due, rest): (Vec<_>, Vec<_>) =
                std::mem::take(&mut state.close_after_filter_deletes).into_iter().partition(|(at, _, _)| *at == n);
            state.close_after_filter_deletes = rest;
            (STATUS_SUCCESS, due)
        };
        // Another processor tears these connections down now, while the driver's unload goes on.
        for (_, conn, kind) in races {
            self.close(conn, kind);
            self.pump();
        }
        status
    }

    /// The driver image is unloaded (after its DriverUnload returned). Pended operations that were
    /// never completed stop the machine; a callout left registered will stop it at its next classify.
    pub fn driver_unloaded(&self) {
        let mut state = self.lock();
        let outstanding = state.pends.values().filter(|p| !p.completed).count();
        let pended_notifications = state.classify_handles.values().filter(|h| h.pended).count();
        state.driver_unloaded = true;
        if outstanding > 0 || pended_notifications > 0 {
            state.stop(
                StopCode::DriverUnloadedWithoutCancellingPendingOperations,
                "nt!MiUnloadSystemImage",
                format!(
                    "driver unloaded with {outstanding} pended operation(s) and {pended_notifications} pended \
                     classify(ies) never completed"
                ),
            );
        }
    }

    // ------------------------------------------------------------------ workload

    /// A process opens a connection: the endpoint is created and its ALE classifies run (bind,
    /// then connect, then flow established) until one is pended or the connection is decided.
    pub fn open(&self, values: ConnectionValues) -> ConnId {
        let id = {
            let mut state = self.lock();
            let id = ConnId(state.id());
            let (endpoint, _) = state.allocate_endpoint();
            state.connections.insert(
                id,
                Connection {
                    values,
                    endpoint,
                    phase: Phase::BindPended,
                    pended_layer: None,
                    ra_indicated: false,
                    connect_indicated: false,
                    flow: None,
                    next_step: TeardownStep::Closure,
                    waiting_on: None,
                    stream_allowed: false,
                },
            );
            state.counters.opened = state.counters.opened.saturating_add(1);
            state.live_connections = state.live_connections.saturating_add(1);
            state.counters.peak_live_connections = state.counters.peak_live_connections.max(state.live_connections);
            id
        };
        self.run_from(id, Layer::ResourceAssignment, false);
        id
    }

    /// The connection goes away now, whatever it is doing (a pend outstanding, data in flight).
    /// Returns false if it was already closing or closed.
    pub fn close(&self, conn: ConnId, kind: CloseKind) -> bool {
        let (was, is_tcp) = {
            let mut state = self.lock();
            if state.bugcheck.is_some() {
                return false;
            }
            let Some(c) = state.connections.get_mut(&conn) else {
                return false;
            };
            let was = c.phase;
            if matches!(was, Phase::Closing | Phase::Closed) {
                return false;
            }
            c.phase = Phase::Closing;
            let is_tcp = c.values.protocol == Protocol::Tcp;
            if matches!(was, Phase::BindPended | Phase::ConnectPended) {
                state.counters.torn_down_while_pended = state.counters.torn_down_while_pended.saturating_add(1);
            }
            (was, is_tcp)
        };
        if was == Phase::Established && is_tcp && kind == CloseKind::Graceful {
            // FIN: the stream callout sees the disconnect before the endpoint goes.
            self.indicate_stream(conn, FWPS_STREAM_FLAG_SEND_DISCONNECT, Vec::new(), StreamShape::Normal, true);
            self.indicate_stream(conn, FWPS_STREAM_FLAG_RECEIVE_DISCONNECT, Vec::new(), StreamShape::Normal, true);
        }
        self.advance_teardown(conn);
        true
    }

    /// Data on an established TCP connection: one stream indication made of `chain` (one buffer per
    /// NET_BUFFER_LIST in the chain; a buffer may be empty). Freed as soon as classifyFn returns.
    pub fn send(&self, conn: ConnId, outbound: bool, chain: Vec<Vec<u8>>, shape: StreamShape) {
        let flags = if outbound { FWPS_STREAM_FLAG_SEND } else { FWPS_STREAM_FLAG_RECEIVE };
        self.indicate_stream(conn, flags, chain, shape, false);
    }

    /// Runs the engine's queued work (reauthorizations after completions, continued teardowns,
    /// deferred flowDeleteFn calls) until none is left. Returns how many items ran.
    pub fn pump(&self) -> usize {
        let mut ran = 0_usize;
        loop {
            let next = {
                let mut state = self.lock();
                if state.bugcheck.is_some() {
                    return ran;
                }
                state.work.pop_front()
            };
            let Some(work) = next else {
                return ran;
            };
            ran = ran.saturating_add(1);
            match work {
                Work::Reauthorize(conn) => self.reauthorize(conn),
                Work::ContinueTeardown(conn) => self.advance_teardown(conn),
                Work::FlowDelete { layer, callout_id, context } => self.call_flow_delete(layer, callout_id, context),
            }
        }
    }

    /// Where a connection is.
    pub fn phase(&self, conn: ConnId) -> Option<Phase> {
        self.lock().connections.get(&conn).map(|c| c.phase)
    }

    /// The transport endpoint handle of a connection (as drivers see it).
    pub fn endpoint_handle(&self, conn: ConnId) -> Option<u64> {
        self.lock().connections.get(&conn).map(|c| c.endpoint)
    }

    /// Live (not closed) connections.
    pub fn live_connections(&self) -> u64 {
        self.lock().live_connections
    }

    /// The end-of-run report: counters, bugcheck, hazards and everything still held.
    pub fn report(&self) -> EngineReport {
        let state = self.lock();
        let mut leaks = Vec::new();
        let outstanding = state.pends.values().filter(|p| !p.completed).count();
        if outstanding > 0 {
            leaks.push(format!(
                "{outstanding} pended operation(s) never completed (S1: FwpsCompleteOperation0 missing)"
            ));
        }
        let handles = state.classify_handles.len();
        if handles > 0 {
            leaks.push(format!("{handles} classify handle(s) never released (FwpsReleaseClassifyHandle0 missing)"));
        }
        if state.driver_unloaded && !state.flow_contexts.is_empty() {
            leaks.push(format!("{} flow context(s) still associated after unload", state.flow_contexts.len()));
        }
        if state.driver_unloaded && state.registrations.values().any(|r| r.registered) {
            leaks.push("callout(s) still registered after unload".to_string());
        }
        EngineReport {
            counters: state.counters,
            bugcheck: state.bugcheck.clone(),
            hazards: state.hazards.clone(),
            leaks,
        }
    }

    // ------------------------------------------------------------------ Fwps* (driver-facing)

    /// `FwpsPendOperation0`. Legal only inside the classifyFn that received `handle`, at a pendable
    /// layer, and never in a reauthorization (`STATUS_FWP_CANNOT_PEND`).
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendoperation0>
    ///
    /// # Errors
    /// `STATUS_FWP_CANNOT_PEND` in a reauthorization or at a layer that cannot pend;
    /// `STATUS_FWP_NULL_POINTER` for a handle that is not the running classify's.
    pub fn fwps_pend_operation0(&self, handle: CompletionHandle) -> Result<CompletionContext, NTSTATUS> {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return Err(STATUS_FWP_NULL_POINTER);
        }
        let Some(index) = state.in_flight.iter().rposition(|f| f.serial == handle.0) else {
            state.hazard(
                "FwpsPendOperation0",
                "completion handle used outside the classifyFn that received it".to_string(),
            );
            return Err(STATUS_FWP_NULL_POINTER);
        };
        let (conn, layer, reauth) = match state.in_flight.get(index) {
            Some(f) => (f.conn, f.layer, f.is_reauthorize),
            None => return Err(STATUS_FWP_NULL_POINTER),
        };
        if let Some(status) = state.faults.on_call(FwpsCall::PendOperation) {
            return Err(status);
        }
        if reauth || !layer.can_pend_operation() {
            return Err(STATUS_FWP_CANNOT_PEND);
        }
        let Some((endpoint, generation)) =
            state.connections.get(&conn).and_then(|c| state.live_endpoints.get(&c.endpoint).map(|g| (c.endpoint, *g)))
        else {
            return Err(STATUS_FWP_NULL_POINTER);
        };
        let context = state.id();
        state.pends.insert(context, PendRecord { conn, endpoint, endpoint_generation: generation, completed: false });
        if let Some(f) = state.in_flight.get_mut(index) {
            f.pended_operation = true;
        }
        state.counters.pends = state.counters.pends.saturating_add(1);
        Ok(CompletionContext(context))
    }

    /// `FwpsCompleteOperation0(completionContext, NULL)`. There is no way to validate a context:
    /// completing one whose endpoint was torn down dereferences freed memory (the crash of
    /// ARCHITECTURE.md §1), and completing one twice corrupts the engine's list.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteoperation0>
    pub fn fwps_complete_operation0(&self, context: CompletionContext) {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return;
        }
        if irql::current() > Irql::Dispatch {
            state.stop(StopCode::IrqlNotLessOrEqual, "NETIO!FwpsCompleteOperation0", "above DISPATCH".to_string());
            return;
        }
        let Some(record) = state.pends.get(&context.0) else {
            state.stop(
                StopCode::PageFaultInNonpagedArea,
                "NETIO!FwppCompleteOperation",
                format!("FwpsCompleteOperation0 on {context:?}, which FwpsPendOperation0 never returned"),
            );
            return;
        };
        let (conn, endpoint, generation, completed) =
            (record.conn, record.endpoint, record.endpoint_generation, record.completed);
        if completed {
            state.stop(
                StopCode::KernelSecurityCheckFailure,
                "NETIO!FwppCompleteOperation",
                format!("FwpsCompleteOperation0 called twice for {context:?} (S1: exactly once)"),
            );
            return;
        }
        if state.live_endpoints.get(&endpoint) != Some(&generation) {
            state.stop(
                StopCode::PageFaultInNonpagedArea,
                "tcpip!TcpCompletePendedConnect",
                format!(
                    "FwpsCompleteOperation0 on {context:?} after its TCP endpoint 0x{endpoint:X} was torn down and \
                     freed (tcpip!TcpCleanupEndpointWorkQueueRoutine); S2 violated"
                ),
            );
            return;
        }
        if let Some(record) = state.pends.get_mut(&context.0) {
            record.completed = true;
        }
        state.counters.completions = state.counters.completions.saturating_add(1);
        let waiting =
            state.connections.get(&conn).is_some_and(|c| matches!(c.phase, Phase::BindPended | Phase::ConnectPended));
        if waiting {
            state.work.push_back(Work::Reauthorize(conn));
        }
        let race = state.close_during_completion.remove(&conn);
        drop(state);
        if let Some(kind) = race {
            // Another processor tears the endpoint down now: WFP has the completion, the driver's
            // completion path has not finished (it is still inside this call).
            self.close(conn, kind);
        }
    }

    /// `FwpsAcquireClassifyHandle0`, from within classifyFn.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsacquireclassifyhandle0>
    ///
    /// # Errors
    /// `STATUS_INVALID_PARAMETER` for a classifyContext that is not the running classify's.
    pub fn fwps_acquire_classify_handle0(&self, context: ClassifyContext) -> Result<ClassifyHandle, NTSTATUS> {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return Err(STATUS_INVALID_PARAMETER);
        }
        let Some(conn) = state.in_flight.iter().rev().find(|f| f.serial == context.0).map(|f| f.conn) else {
            state.hazard("FwpsAcquireClassifyHandle0", "classifyContext used outside its classifyFn".to_string());
            return Err(STATUS_INVALID_PARAMETER);
        };
        if let Some(status) = state.faults.on_call(FwpsCall::AcquireClassifyHandle) {
            return Err(status);
        }
        state.classify_handles.insert(context.0, ClassifyHandleRecord { conn, pended: false, classify_running: true });
        Ok(ClassifyHandle(context.0))
    }

    /// `FwpsPendClassify0`: the running teardown notification waits for `FwpsCompleteClassify0`.
    /// The endpoint stays alive until then. (Legal at ALE_ENDPOINT_CLOSURE per ARCHITECTURE.md §3/§4;
    /// at ALE_RESOURCE_RELEASE it is this model's assumption, listed in the crate docs.)
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpspendclassify0>
    pub fn fwps_pend_classify0(&self, handle: ClassifyHandle, _filter_id: u64) -> NTSTATUS {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return STATUS_INVALID_PARAMETER;
        }
        let Some(index) = state.in_flight.iter().rposition(|f| f.serial == handle.0) else {
            state.hazard("FwpsPendClassify0", "pend of a classify that already returned".to_string());
            return STATUS_INVALID_PARAMETER;
        };
        let layer = state.in_flight.get(index).map(|f| f.layer);
        if let Some(status) = state.faults.on_call(FwpsCall::PendClassify) {
            return status;
        }
        if !matches!(layer, Some(Layer::EndpointClosure | Layer::ResourceRelease)) {
            return STATUS_FWP_CANNOT_PEND;
        }
        match state.classify_handles.get_mut(&handle.0) {
            Some(record) if !record.pended => record.pended = true,
            _ => return STATUS_INVALID_PARAMETER,
        }
        if let Some(f) = state.in_flight.get_mut(index) {
            f.pended_classify = Some(handle.0);
        }
        state.counters.notifications_pended = state.counters.notifications_pended.saturating_add(1);
        STATUS_SUCCESS
    }

    /// `FwpsCompleteClassify0`: completes a pended classify, asynchronously (not from the classifyFn
    /// that pended it). The teardown it held goes on.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscompleteclassify0>
    pub fn fwps_complete_classify0(&self, handle: ClassifyHandle, _filter_id: u64) {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return;
        }
        let conn = match state.classify_handles.get_mut(&handle.0) {
            Some(record) if record.pended && !record.classify_running => {
                record.pended = false;
                record.conn
            }
            Some(record) if record.pended => {
                state.hazard(
                    "FwpsCompleteClassify0",
                    "completed from within the classifyFn that pended it (must be asynchronous)".to_string(),
                );
                return;
            }
            _ => {
                state.stop(
                    StopCode::PageFaultInNonpagedArea,
                    "NETIO!FwpsCompleteClassify0",
                    format!("FwpsCompleteClassify0 on {handle:?}, which is not a pended classify"),
                );
                return;
            }
        };
        if let Some(c) = state.connections.get_mut(&conn)
            && c.waiting_on == Some(handle.0)
        {
            c.waiting_on = None;
            state.work.push_back(Work::ContinueTeardown(conn));
        }
    }

    /// `FwpsReleaseClassifyHandle0`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsreleaseclassifyhandle0>
    pub fn fwps_release_classify_handle0(&self, handle: ClassifyHandle) {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return;
        }
        match state.classify_handles.get(&handle.0) {
            Some(record) if record.pended => state.hazard(
                "FwpsReleaseClassifyHandle0",
                "classify handle released while its classify is still pended".to_string(),
            ),
            Some(_) => {
                state.classify_handles.remove(&handle.0);
            }
            None => state.stop(
                StopCode::PageFaultInNonpagedArea,
                "NETIO!FwpsReleaseClassifyHandle0",
                format!("{handle:?} released twice or never acquired"),
            ),
        }
    }

    /// `FwpsFlowAssociateContext0`: needs a callout registered with a flowDeleteFn; a second context
    /// for the same flow, layer and callout is `STATUS_OBJECT_NAME_EXISTS`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowassociatecontext0>
    pub fn fwps_flow_associate_context0(&self, flow: u64, layer: Layer, callout_id: u32, context: u64) -> NTSTATUS {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return STATUS_INVALID_PARAMETER;
        }
        if let Some(status) = state.faults.on_call(FwpsCall::FlowAssociateContext) {
            return status;
        }
        match state.registrations.get(&callout_id) {
            Some(r) if r.registered && r.has_flow_delete && r.layer == layer => {}
            _ => return STATUS_INVALID_PARAMETER,
        }
        let live_flow = state.connections.values().any(|c| c.flow == Some(flow) && c.phase == Phase::Established);
        if !live_flow {
            return STATUS_INVALID_PARAMETER;
        }
        if state.flow_contexts.contains_key(&(flow, layer)) {
            return STATUS_OBJECT_NAME_EXISTS;
        }
        state.flow_contexts.insert((flow, layer), (callout_id, context));
        STATUS_SUCCESS
    }

    /// `FwpsFlowRemoveContext0`: `STATUS_SUCCESS` when flowDeleteFn already ran synchronously,
    /// `STATUS_PENDING` when it will run later.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpsflowremovecontext0>
    pub fn fwps_flow_remove_context0(&self, flow: u64, layer: Layer, callout_id: u32) -> NTSTATUS {
        let (context, deferred) = {
            let mut state = self.lock();
            if state.bugcheck.is_some() {
                return STATUS_INVALID_PARAMETER;
            }
            if let Some(status) = state.faults.on_call(FwpsCall::FlowRemoveContext) {
                // The context stays associated.
                return status;
            }
            match state.flow_contexts.get(&(flow, layer)) {
                Some((owner, _)) if *owner == callout_id => {}
                _ => return STATUS_INVALID_PARAMETER,
            }
            let Some((_, context)) = state.flow_contexts.remove(&(flow, layer)) else {
                return STATUS_INVALID_PARAMETER;
            };
            let deferred = state.random() % 100 < u64::from(state.config.deferred_flow_delete_percent);
            if deferred {
                state.work.push_back(Work::FlowDelete { layer, callout_id, context });
            }
            (context, deferred)
        };
        if deferred {
            STATUS_PENDING
        } else {
            self.call_flow_delete(layer, callout_id, context);
            STATUS_SUCCESS
        }
    }

    /// `FwpsCopyStreamDataToBuffer0`: copies up to `buffer.len()` bytes of the indication's data.
    /// The data lives only until classifyFn returns; touching it later is the 0xD1 crash in
    /// `NETIO!StreamInvokeCalloutAndNormalizeAction`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscopystreamdatatobuffer0>
    pub fn fwps_copy_stream_data_to_buffer0(&self, data: StreamDataRef, buffer: &mut [u8]) -> usize {
        let mut state = self.lock();
        if state.bugcheck.is_some() {
            return 0;
        }
        let Some(chain) = state.live_stream_data.get(&data.0) else {
            let detail = if state.issued_stream_data.contains(&data.0) {
                "stream data (FWPS_STREAM_DATA0 / NET_BUFFER_LIST) touched after classifyFn returned: NETIO already dropped it"
            } else {
                "a stream data pointer that NETIO never indicated"
            };
            state.stop(
                StopCode::DriverIrqlNotLessOrEqual,
                "NETIO!StreamInvokeCalloutAndNormalizeAction",
                format!("{detail}; read of freed memory at DISPATCH_LEVEL (S6 violated)"),
            );
            return 0;
        };
        let mut written = 0_usize;
        for byte in chain.iter().flatten() {
            let Some(slot) = buffer.get_mut(written) else {
                break;
            };
            *slot = *byte;
            written = written.saturating_add(1);
        }
        written
    }

    // ------------------------------------------------------------------ internals

    /// Invokes the callout of the filter at `layer` for `conn`, at DISPATCH_LEVEL, without the lock.
    fn invoke(
        &self,
        conn: ConnId,
        layer: Layer,
        is_reauthorize: bool,
        stream: Option<StreamPacket>,
        no_more_data: bool,
    ) -> Option<Invocation> {
        let (driver, call) = {
            let mut state = self.lock();
            if state.bugcheck.is_some() {
                return None;
            }
            let Some((filter_id, callout_id, filter_action)) = state.filter_for(layer) else {
                return Some(Invocation {
                    out: ClassifyOut::fresh(true, no_more_data),
                    pended_operation: false,
                    pended_classify: None,
                    no_callout: true,
                    filter_action: FilterAction::default(),
                });
            };
            let registration = state.registrations.get(&callout_id).map(|r| (r.registered, r.driver.clone()));
            let driver = match registration {
                Some((true, driver)) => driver,
                _ => {
                    // A filter whose callout is gone acts as BLOCK (terminating callout action):
                    // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0
                    state.counters.blocked_by_orphaned_filter =
                        state.counters.blocked_by_orphaned_filter.saturating_add(1);
                    let mut out = ClassifyOut::fresh(false, no_more_data);
                    out.action = Some(Action::Block);
                    out.stream_action = Some(StreamAction::None);
                    return Some(Invocation {
                        out,
                        pended_operation: false,
                        pended_classify: None,
                        no_callout: false,
                        filter_action,
                    });
                }
            };
            if state.driver_unloaded {
                state.stop(
                    StopCode::DriverUnloadedWithoutCancellingPendingOperations,
                    "NETIO!ProcessCallout",
                    format!("classifyFn at {layer:?} called into an unloaded driver (callout {callout_id} never unregistered)"),
                );
                return None;
            }
            let c = state.connections.get(&conn)?;
            let values = c.values.clone();
            let endpoint = c.endpoint;
            let flow = c.flow;
            let flow_context = match (layer, flow) {
                (Layer::Stream, Some(flow)) => state.flow_contexts.get(&(flow, layer)).map_or(0, |(_, ctx)| *ctx),
                _ => 0,
            };
            let serial = state.id();
            state.in_flight.push(InFlight {
                serial,
                conn,
                layer,
                is_reauthorize,
                pended_operation: false,
                pended_classify: None,
            });
            state.counters.classifies = state.counters.classifies.saturating_add(1);
            if is_reauthorize {
                state.counters.reauthorizations = state.counters.reauthorizations.saturating_add(1);
            }
            let ale = !matches!(layer, Layer::Stream);
            let call = ClassifyCall {
                layer,
                callout_id,
                filter_id,
                filter_action,
                values,
                metadata: Metadata {
                    transport_endpoint_handle: ale.then_some(endpoint),
                    completion_handle: layer.can_pend_operation().then_some(CompletionHandle(serial)),
                    flow_handle: if matches!(layer, Layer::FlowEstablished | Layer::Stream) { flow } else { None },
                },
                is_reauthorize,
                classify_context: ClassifyContext(serial),
                stream,
                flow_context,
            };
            (driver, call)
        };
        let mut out = ClassifyOut::fresh(true, no_more_data);
        {
            let _dispatch = irql::raise(Irql::Dispatch);
            driver.classify(self, &call, &mut out);
        }
        let mut state = self.lock();
        let serial = call.classify_context.0;
        let position = state.in_flight.iter().rposition(|f| f.serial == serial)?;
        let finished = state.in_flight.remove(position);
        if let Some(record) = state.classify_handles.get_mut(&serial) {
            record.classify_running = false;
        }
        if finished.pended_operation && !out.absorb {
            state.hazard(
                "FwpsPendOperation0",
                format!("{layer:?} pended without FWPS_CLASSIFY_OUT_FLAG_ABSORB: the packet is also processed"),
            );
        }
        Some(Invocation {
            out,
            pended_operation: finished.pended_operation,
            pended_classify: finished.pended_classify,
            no_callout: false,
            filter_action: call.filter_action,
        })
    }

    /// Runs the ALE classifies of `conn` from `layer` on until one is pended or the connection is
    /// decided.
    fn run_from(&self, conn: ConnId, mut layer: Layer, mut is_reauthorize: bool) {
        loop {
            {
                let mut state = self.lock();
                let Some(c) = state.connections.get_mut(&conn) else {
                    return;
                };
                if matches!(c.phase, Phase::Closing | Phase::Closed) {
                    return;
                }
                match layer {
                    Layer::ResourceAssignment => c.ra_indicated = true,
                    Layer::AuthConnect => c.connect_indicated = true,
                    _ => {}
                }
            }
            let Some(result) = self.invoke(conn, layer, is_reauthorize, None, false) else {
                return;
            };
            if result.pended_operation {
                let mut state = self.lock();
                if let Some(c) = state.connections.get_mut(&conn) {
                    if !matches!(c.phase, Phase::Closing | Phase::Closed) {
                        c.phase =
                            if layer == Layer::ResourceAssignment { Phase::BindPended } else { Phase::ConnectPended };
                    }
                    c.pended_layer = Some(layer);
                }
                return;
            }
            let blocked = matches!(result.out.action, Some(Action::Block)) || result.out.absorb;
            if blocked {
                {
                    let mut state = self.lock();
                    state.counters.blocked = state.counters.blocked.saturating_add(1);
                    if let Some(c) = state.connections.get_mut(&conn) {
                        c.phase = Phase::Closing;
                    }
                }
                // The application sees the failure and closes the socket.
                self.advance_teardown(conn);
                return;
            }
            let _ = result.no_callout;
            match layer {
                Layer::ResourceAssignment => {
                    layer = Layer::AuthConnect;
                    is_reauthorize = false;
                }
                Layer::AuthConnect => {
                    self.establish(conn);
                    return;
                }
                _ => return,
            }
        }
    }

    fn establish(&self, conn: ConnId) {
        {
            let mut state = self.lock();
            let flow = state.id();
            let Some(c) = state.connections.get_mut(&conn) else {
                return;
            };
            c.phase = Phase::Established;
            c.pended_layer = None;
            c.flow = Some(flow);
            state.counters.established = state.counters.established.saturating_add(1);
        }
        let _ = self.invoke(conn, Layer::FlowEstablished, false, None, false);
    }

    fn reauthorize(&self, conn: ConnId) {
        let layer = {
            let state = self.lock();
            match state.connections.get(&conn) {
                Some(c) if matches!(c.phase, Phase::BindPended | Phase::ConnectPended) => c.pended_layer,
                _ => None,
            }
        };
        if let Some(layer) = layer {
            // Completing a pended ALE classify makes the engine classify it again, flagged
            // FWP_CONDITION_FLAG_IS_REAUTHORIZE (documented for ALE_AUTH_CONNECT; this model's
            // assumption for ALE_RESOURCE_ASSIGNMENT, listed in the crate docs).
            self.run_from(conn, layer, true);
        }
    }

    fn indicate_stream(&self, conn: ConnId, flags: u32, chain: Vec<Vec<u8>>, shape: StreamShape, no_more_data: bool) {
        let (id, length) = {
            let mut state = self.lock();
            if state.bugcheck.is_some() {
                return;
            }
            let Some(c) = state.connections.get(&conn) else {
                return;
            };
            if c.values.protocol != Protocol::Tcp {
                return;
            }
            let allowed = c.stream_allowed;
            let Some(flow) = c.flow else {
                return;
            };
            // Our stream callout is FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW: no context, no classify.
            // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_callout3_
            if !state.flow_contexts.contains_key(&(flow, Layer::Stream)) {
                return;
            }
            let length: usize = chain.iter().map(Vec::len).sum();
            // FWPS_STREAM_ACTION_ALLOW_CONNECTION: "WFP stops classifying any data segments to the
            // callout" for this flow.
            // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_
            if allowed {
                state.counters.stream_indications_allowed_through =
                    state.counters.stream_indications_allowed_through.saturating_add(1);
                state.counters.stream_bytes_allowed_through =
                    state.counters.stream_bytes_allowed_through.saturating_add(length as u64);
                return;
            }
            let id = state.id();
            state.issued_stream_data.insert(id);
            state.live_stream_data.insert(id, chain);
            state.counters.stream_indications = state.counters.stream_indications.saturating_add(1);
            state.counters.stream_bytes = state.counters.stream_bytes.saturating_add(length as u64);
            (id, length)
        };
        let packet = match shape {
            StreamShape::Normal => {
                Some(StreamPacket { flags, stream_data: Some(StreamDataRef(id)), data_length: length })
            }
            StreamShape::NullStreamData => Some(StreamPacket { flags, stream_data: None, data_length: 0 }),
            StreamShape::NullLayerData => None,
        };
        let result = self.invoke(conn, Layer::Stream, false, packet, no_more_data);
        let drop_connection = {
            let mut state = self.lock();
            // NETIO frees the indication as soon as classifyFn returns.
            state.live_stream_data.remove(&id);
            let Some(result) = result else {
                return;
            };
            let out = result.out;
            // S6: actionType and streamAction are always set; never NEED_MORE_DATA with
            // NO_MORE_DATA; countBytesEnforced never exceeds the data.
            // https://learn.microsoft.com/en-us/windows-hardware/drivers/ddi/fwpsk/ns-fwpsk-fwps_stream_callout_io_packet0_
            if out.action.is_none() {
                state.hazard("S6", "stream classify returned without setting actionType".to_string());
            }
            if out.stream_action.is_none() {
                state.hazard("S6", "stream classify returned without setting streamAction".to_string());
            }
            if out.stream_action == Some(StreamAction::NeedMoreData) && no_more_data {
                state.hazard(
                    "S6",
                    "FWPS_STREAM_ACTION_NEED_MORE_DATA with FWPS_CLASSIFY_OUT_FLAG_NO_MORE_DATA".to_string(),
                );
            }
            if out.count_bytes_enforced > length {
                state.hazard("S6", format!("countBytesEnforced {} > dataLength {length}", out.count_bytes_enforced));
            }
            let drop_requested = out.stream_action == Some(StreamAction::DropConnection);
            if drop_requested && result.filter_action != FilterAction::CalloutUnknown {
                // Honoured only under FWP_ACTION_CALLOUT_UNKNOWN: anywhere else the connection
                // is not torn down and the application hangs on it.
                state.hazard(
                    "S6",
                    format!(
                        "FWPS_STREAM_ACTION_DROP_CONNECTION under a {:?} filter (only FWP_ACTION_CALLOUT_UNKNOWN honours it)",
                        result.filter_action
                    ),
                );
            }
            if out.stream_action == Some(StreamAction::AllowConnection)
                && let Some(c) = state.connections.get_mut(&conn)
            {
                c.stream_allowed = true;
            }
            let dropped = (drop_requested && result.filter_action == FilterAction::CalloutUnknown)
                || out.action == Some(Action::Block);
            if dropped {
                state.counters.stream_drops = state.counters.stream_drops.saturating_add(1);
            }
            dropped
        };
        if drop_connection && !no_more_data {
            self.close(conn, CloseKind::Reset);
        }
    }

    /// The teardown sequence: ALE_ENDPOINT_CLOSURE (for an endpoint that had ALE_AUTH_CONNECT),
    /// flowDeleteFn for its flow contexts, ALE_RESOURCE_RELEASE (for one that had
    /// ALE_RESOURCE_ASSIGNMENT), then the endpoint's memory is freed. A pended notification holds the
    /// sequence (and the endpoint) until `FwpsCompleteClassify0`.
    /// <https://learn.microsoft.com/en-us/windows-hardware/drivers/network/ale-endpoint-lifetime-management>
    fn advance_teardown(&self, conn: ConnId) {
        loop {
            let step = {
                let state = self.lock();
                if state.bugcheck.is_some() {
                    return;
                }
                match state.connections.get(&conn) {
                    Some(c) if c.phase == Phase::Closing && c.waiting_on.is_none() => c.next_step,
                    _ => return,
                }
            };
            match step {
                TeardownStep::Closure | TeardownStep::Release => {
                    let (indicated, layer, next) = {
                        let mut state = self.lock();
                        let Some(c) = state.connections.get_mut(&conn) else {
                            return;
                        };
                        if step == TeardownStep::Closure {
                            c.next_step = TeardownStep::FlowDelete;
                            (c.connect_indicated, Layer::EndpointClosure, TeardownStep::FlowDelete)
                        } else {
                            c.next_step = TeardownStep::Free;
                            (c.ra_indicated, Layer::ResourceRelease, TeardownStep::Free)
                        }
                    };
                    let _ = next;
                    if indicated {
                        let Some(result) = self.invoke(conn, layer, false, None, false) else {
                            return;
                        };
                        if let Some(handle) = result.pended_classify {
                            let mut state = self.lock();
                            let still_pended = state.classify_handles.get(&handle).is_some_and(|h| h.pended);
                            if still_pended {
                                if let Some(c) = state.connections.get_mut(&conn) {
                                    c.waiting_on = Some(handle);
                                }
                                return;
                            }
                        }
                    }
                }
                TeardownStep::FlowDelete => {
                    let contexts: Vec<(Layer, u32, u64, bool)> = {
                        let mut state = self.lock();
                        let Some(c) = state.connections.get_mut(&conn) else {
                            return;
                        };
                        c.next_step = TeardownStep::Release;
                        let Some(flow) = c.flow else {
                            continue;
                        };
                        let keys: Vec<(u64, Layer)> =
                            state.flow_contexts.keys().filter(|(f, _)| *f == flow).copied().collect();
                        let mut contexts = Vec::new();
                        for key in keys {
                            if let Some((callout_id, context)) = state.flow_contexts.remove(&key) {
                                let deferred =
                                    state.random() % 100 < u64::from(state.config.deferred_flow_delete_percent);
                                contexts.push((key.1, callout_id, context, deferred));
                            }
                        }
                        contexts
                    };
                    for (layer, callout_id, context, deferred) in contexts {
                        if deferred {
                            self.lock().work.push_back(Work::FlowDelete { layer, callout_id, context });
                        } else {
                            self.call_flow_delete(layer, callout_id, context);
                        }
                    }
                }
                TeardownStep::Free => {
                    let mut state = self.lock();
                    let Some(c) = state.connections.get_mut(&conn) else {
                        return;
                    };
                    c.phase = Phase::Closed;
                    let endpoint = c.endpoint;
                    // The endpoint's memory is released now; its handle value may be reused.
                    state.connections.remove(&conn);
                    state.live_endpoints.remove(&endpoint);
                    state.free_endpoint_handles.push(endpoint);
                    state.live_connections = state.live_connections.saturating_sub(1);
                    state.counters.closed = state.counters.closed.saturating_add(1);
                    return;
                }
            }
        }
    }

    fn call_flow_delete(&self, layer: Layer, callout_id: u32, context: u64) {
        let driver = {
            let mut state = self.lock();
            if state.bugcheck.is_some() {
                return;
            }
            state.counters.flow_deletes = state.counters.flow_deletes.saturating_add(1);
            let registration = state.registrations.get(&callout_id).map(|r| r.driver.clone());
            if state.driver_unloaded {
                state.stop(
                    StopCode::DriverUnloadedWithoutCancellingPendingOperations,
                    "NETIO!FwppFlowDelete",
                    "flowDeleteFn called into an unloaded driver (flow context never removed)".to_string(),
                );
                return;
            }
            registration
        };
        if let Some(driver) = driver {
            let _dispatch = irql::raise(Irql::Dispatch);
            driver.flow_delete(self, layer, callout_id, context);
        }
    }
}

/// The connection values for a workload's connection.
#[must_use]
pub fn connection_values(
    protocol: Protocol,
    local: SocketAddr,
    remote: SocketAddr,
    app_path: &str,
    process_id: u64,
) -> ConnectionValues {
    let app_id: Vec<u16> = app_path.encode_utf16().collect();
    ConnectionValues { protocol, local, remote, app_id: Arc::from(app_id), process_id }
}
