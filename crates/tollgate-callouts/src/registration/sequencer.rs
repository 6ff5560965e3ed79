//! The registration sequencer: [`register`] runs a [`Plan`] against a [`FilterEngine`] in one
//! transaction and unwinds every failure; [`unregister`] tears a [`Registration`] down in S5's
//! order. FFI-free: the engine does the calls.

use core::fmt;

use tollgate_wfp_sys::{NTSTATUS, STATUS_DEVICE_BUSY, STATUS_FWP_CALLOUT_NOT_FOUND, STATUS_FWP_FILTER_NOT_FOUND};

use super::spec::{
    CALLOUT_COUNT, CalloutSpec, FilterSpec, Plan, PlanError, ProviderSpec, SessionSpec, SublayerSpec, TollgateLayer,
};

/// One method per Fwpm/Fwps step of Tollgate's registration, each returning the step's NTSTATUS
/// on failure.
///
/// IRQL: every method is called at `PASSIVE_LEVEL` only (so are the functions the kernel
/// implementation calls). The engine owns nothing the sequencer needs to free: a session is
/// handed back to [`FilterEngine::engine_close`] by value.
pub trait FilterEngine {
    /// An open filter-engine session (an engine handle).
    type Session;

    /// `FwpmEngineOpen0` with an `FWPM_SESSION0` whose flags are `FWPM_SESSION_FLAG_DYNAMIC`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn engine_open_dynamic_session(&mut self, session: &SessionSpec) -> Result<Self::Session, NTSTATUS>;

    /// `FwpmTransactionBegin0(session, 0)`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn transaction_begin(&mut self, session: &Self::Session) -> Result<(), NTSTATUS>;

    /// `FwpmProviderAdd0`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn provider_add(&mut self, session: &Self::Session, provider: &ProviderSpec) -> Result<(), NTSTATUS>;

    /// `FwpmSubLayerAdd0`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn sublayer_add(&mut self, session: &Self::Session, sublayer: &SublayerSpec) -> Result<(), NTSTATUS>;

    /// `FwpsCalloutRegister3`: run-time registration of the callout's functions with the driver's
    /// device object. Returns the run-time callout id. Not part of the transaction.
    ///
    /// # Errors
    /// The status of the failed call (the callout is then not registered).
    fn callout_register(&mut self, callout: &CalloutSpec) -> Result<u32, NTSTATUS>;

    /// `FwpmCalloutAdd0`: the management object of the callout. Returns the run-time id the
    /// engine reports (the same id `FwpsCalloutRegister3` returned).
    ///
    /// # Errors
    /// The status of the failed call.
    fn callout_add(&mut self, session: &Self::Session, callout: &CalloutSpec) -> Result<u32, NTSTATUS>;

    /// `FwpmFilterAdd0`. Returns the run-time filter id.
    ///
    /// # Errors
    /// The status of the failed call.
    fn filter_add(&mut self, session: &Self::Session, filter: &FilterSpec) -> Result<u64, NTSTATUS>;

    /// `FwpmTransactionCommit0`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn transaction_commit(&mut self, session: &Self::Session) -> Result<(), NTSTATUS>;

    /// `FwpmTransactionAbort0`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn transaction_abort(&mut self, session: &Self::Session) -> Result<(), NTSTATUS>;

    /// `FwpmFilterDeleteById0`.
    ///
    /// # Errors
    /// The status of the failed call.
    fn filter_delete_by_id(&mut self, session: &Self::Session, filter_id: u64) -> Result<(), NTSTATUS>;

    /// `FwpsCalloutUnregisterById0`. `Err(STATUS_DEVICE_BUSY)` while flows carry contexts of this
    /// callout.
    ///
    /// # Errors
    /// The status of the failed call.
    fn callout_unregister_by_id(&mut self, callout_id: u32) -> Result<(), NTSTATUS>;

    /// `FwpmEngineClose0`. Ends the dynamic session, which deletes every object added in it.
    ///
    /// # Errors
    /// The status of the failed call.
    fn engine_close(&mut self, session: Self::Session) -> Result<(), NTSTATUS>;
}

/// A callout that `FwpsCalloutRegister3` accepted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RegisteredCallout {
    /// Its layer (its run-time layer id is `layer.runtime_id()`; its key is the plan's
    /// callout key at this layer).
    pub layer: TollgateLayer,
    /// Its run-time id (for `FwpsFlowAssociateContext0`, `FwpsFlowRemoveContext0`,
    /// `FwpsCalloutUnregisterById0`).
    pub runtime_id: u32,
}

/// A live registration: the open dynamic session, the twelve run-time callout ids and the twelve
/// filter ids, in plan order. Dropping it without [`unregister`] leaks the registration (and
/// keeps the driver from unloading safely): always pass it to [`unregister`].
#[must_use = "a registration must be torn down with `unregister` before the driver unloads"]
#[derive(Debug)]
pub struct Registration<S> {
    session: S,
    callouts: [RegisteredCallout; CALLOUT_COUNT],
    filter_ids: [u64; CALLOUT_COUNT],
}

impl<S> Registration<S> {
    /// The open session.
    pub const fn session(&self) -> &S {
        &self.session
    }

    /// The registered callouts, in plan order.
    #[must_use]
    pub const fn callouts(&self) -> &[RegisteredCallout; CALLOUT_COUNT] {
        &self.callouts
    }

    /// The registered callout at `layer`.
    #[must_use]
    pub fn callout(&self, layer: TollgateLayer) -> Option<&RegisteredCallout> {
        self.callouts.iter().find(|callout| callout.layer == layer)
    }

    /// The run-time filter ids, in plan order.
    #[must_use]
    pub const fn filter_ids(&self) -> &[u64; CALLOUT_COUNT] {
        &self.filter_ids
    }
}

/// A callout that could not be unregistered, with the last status.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct CalloutFailure {
    /// The callout, still registered.
    pub callout: RegisteredCallout,
    /// The last status of `FwpsCalloutUnregisterById0`.
    pub status: NTSTATUS,
}

/// The callouts still registered after an unwind or a teardown (fixed capacity, no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CalloutFailures {
    entries: [Option<CalloutFailure>; CALLOUT_COUNT],
}

impl CalloutFailures {
    /// Records a failure; a failure beyond the capacity (impossible: at most one per callout) is
    /// dropped.
    fn push(&mut self, failure: CalloutFailure) {
        if let Some(slot) = self.entries.iter_mut().find(|slot| slot.is_none()) {
            *slot = Some(failure);
        }
    }

    /// The failures, in the order they happened.
    pub fn iter(&self) -> impl Iterator<Item = &CalloutFailure> {
        self.entries.iter().flatten()
    }

    /// How many callouts are still registered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether every callout was unregistered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(Option::is_none)
    }
}

/// What the unwind of a failed [`register`] did.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UnwindReport {
    /// `FwpmTransactionAbort0`'s result, or `None` if no transaction was begun.
    pub transaction_abort: Option<Result<(), NTSTATUS>>,
    /// How many run-time callouts were unregistered.
    pub callouts_unregistered: usize,
    /// Run-time callouts that could not be unregistered. **If not empty, the driver must not
    /// unload** ("A callout driver cannot be unloaded until all of the callouts that were
    /// previously registered with the filter engine have been successfully unregistered",
    /// <https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0>).
    pub callouts_left_registered: CalloutFailures,
    /// `FwpmEngineClose0`'s result, or `None` if the engine was not opened.
    pub engine_close: Option<Result<(), NTSTATUS>>,
}

/// The step of [`register`] that failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RegistrationStep {
    /// [`Plan::validate`] rejected the plan; nothing was called.
    ValidatePlan(PlanError),
    /// `FwpmEngineOpen0`.
    EngineOpen,
    /// `FwpmTransactionBegin0`.
    TransactionBegin,
    /// `FwpmProviderAdd0`.
    ProviderAdd,
    /// `FwpmSubLayerAdd0`.
    SublayerAdd,
    /// `FwpsCalloutRegister3` of the callout at this layer.
    CalloutRegister(TollgateLayer),
    /// `FwpmCalloutAdd0` of the callout at this layer.
    CalloutAdd(TollgateLayer),
    /// `FwpmFilterAdd0` of the filter at this layer.
    FilterAdd(TollgateLayer),
    /// `FwpmTransactionCommit0`.
    TransactionCommit,
}

/// A failed [`register`]: the failed step, its status, and what the unwind did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RegistrationError {
    /// The step that failed.
    pub step: RegistrationStep,
    /// Its status (`STATUS_INVALID_PARAMETER` for [`RegistrationStep::ValidatePlan`]).
    pub status: NTSTATUS,
    /// What was undone.
    pub unwind: UnwindReport,
}

impl RegistrationError {
    /// Whether the unwind left nothing registered (the driver may unload).
    #[must_use]
    pub fn is_fully_unwound(&self) -> bool {
        self.unwind.callouts_left_registered.is_empty()
    }
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WFP registration failed at {:?} with status {:#010X}", self.step, self.status)?;
        if !self.is_fully_unwound() {
            write!(f, "; {} callout(s) are still registered", self.unwind.callouts_left_registered.len())?;
        }
        Ok(())
    }
}

/// What [`unregister`] could not do.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct UnregisterError {
    /// How many `FwpmFilterDeleteById0` calls failed (closing the dynamic session deletes those
    /// filters too).
    pub filter_delete_failures: usize,
    /// The first failed filter deletion: filter id and status.
    pub first_filter_delete_failure: Option<(u64, NTSTATUS)>,
    /// `FwpmEngineClose0`'s failure status, if it failed.
    pub engine_close_failure: Option<NTSTATUS>,
    /// Run-time callouts still registered. **If not empty, the driver must not unload.**
    pub callouts_left_registered: CalloutFailures,
}

impl UnregisterError {
    /// Whether every callout is unregistered, i.e. no callout function of the driver can be
    /// called any more and the image may be unloaded (after the shell's own rundown).
    #[must_use]
    pub fn is_safe_to_unload(&self) -> bool {
        self.callouts_left_registered.is_empty()
    }
}

impl fmt::Display for UnregisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WFP teardown incomplete: {} filter deletion(s) failed, engine close {}, {} callout(s) still registered",
            self.filter_delete_failures,
            if self.engine_close_failure.is_some() { "failed" } else { "succeeded" },
            self.callouts_left_registered.len()
        )
    }
}

/// Progress of [`register`], so that a failure undoes exactly what was done.
struct Progress {
    callouts: [RegisteredCallout; CALLOUT_COUNT],
    registered: usize,
    filter_ids: [u64; CALLOUT_COUNT],
}

/// Registers `plan` with `engine`: opens a dynamic session, then in one transaction adds the
/// provider and the sublayer, registers (`FwpsCalloutRegister3`) and adds (`FwpmCalloutAdd0`)
/// each callout, adds each filter, and commits. See the [module documentation](super) for the
/// order and its reasons.
///
/// IRQL: `PASSIVE_LEVEL`.
///
/// # Errors
/// The failed step and its status. Before returning, everything already done is undone, newest
/// first: the transaction is aborted, every run-time callout is unregistered in reverse order and
/// the session is closed; [`RegistrationError::unwind`] says how that went.
#[allow(
    clippy::result_large_err,
    reason = "no allocation at DriverEntry by design (fixed arrays); returned once per driver load"
)]
pub fn register<E: FilterEngine>(engine: &mut E, plan: &Plan) -> Result<Registration<E::Session>, RegistrationError> {
    if let Err(plan_error) = plan.validate() {
        return Err(RegistrationError {
            step: RegistrationStep::ValidatePlan(plan_error),
            status: tollgate_wfp_sys::STATUS_INVALID_PARAMETER,
            unwind: UnwindReport::default(),
        });
    }

    let session = engine.engine_open_dynamic_session(&plan.session).map_err(|status| RegistrationError {
        step: RegistrationStep::EngineOpen,
        status,
        unwind: UnwindReport::default(),
    })?;

    if let Err(status) = engine.transaction_begin(&session) {
        let unwind = UnwindReport { engine_close: Some(engine.engine_close(session)), ..UnwindReport::default() };
        return Err(RegistrationError { step: RegistrationStep::TransactionBegin, status, unwind });
    }

    let mut progress = Progress {
        callouts: plan.callouts.map(|spec| RegisteredCallout { layer: spec.layer, runtime_id: 0 }),
        registered: 0,
        filter_ids: [0; CALLOUT_COUNT],
    };

    match add_in_transaction(engine, &session, plan, &mut progress) {
        Ok(()) => Ok(Registration { session, callouts: progress.callouts, filter_ids: progress.filter_ids }),
        Err((step, status)) => {
            let mut unwind =
                UnwindReport { transaction_abort: Some(engine.transaction_abort(&session)), ..Default::default() };
            // Newest first. Nothing of ours was ever committed, so no flow can carry a context of
            // these callouts: one attempt each.
            for callout in progress.callouts.iter().take(progress.registered).rev() {
                match engine.callout_unregister_by_id(callout.runtime_id) {
                    Ok(()) => unwind.callouts_unregistered += 1,
                    Err(status) => unwind.callouts_left_registered.push(CalloutFailure { callout: *callout, status }),
                }
            }
            unwind.engine_close = Some(engine.engine_close(session));
            Err(RegistrationError { step, status, unwind })
        }
    }
}

/// The transactional part of [`register`]; records every run-time registration and filter id in
/// `progress` as it goes.
fn add_in_transaction<E: FilterEngine>(
    engine: &mut E,
    session: &E::Session,
    plan: &Plan,
    progress: &mut Progress,
) -> Result<(), (RegistrationStep, NTSTATUS)> {
    engine.provider_add(session, &plan.provider).map_err(|status| (RegistrationStep::ProviderAdd, status))?;
    engine.sublayer_add(session, &plan.sublayer).map_err(|status| (RegistrationStep::SublayerAdd, status))?;

    for (spec, slot) in plan.callouts.iter().zip(progress.callouts.iter_mut()) {
        // Run-time registration first, inside the transaction, so that it is complete before the
        // commit makes any filter naming this callout live (FwpmCalloutAdd0 remarks: a terminating
        // filter whose callout is not registered acts as BLOCK).
        // https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpmk/nf-fwpmk-fwpmcalloutadd0
        let runtime_id =
            engine.callout_register(spec).map_err(|status| (RegistrationStep::CalloutRegister(spec.layer), status))?;
        slot.runtime_id = runtime_id;
        progress.registered += 1;
        engine.callout_add(session, spec).map_err(|status| (RegistrationStep::CalloutAdd(spec.layer), status))?;
    }

    for (spec, slot) in plan.filters.iter().zip(progress.filter_ids.iter_mut()) {
        *slot = engine.filter_add(session, spec).map_err(|status| (RegistrationStep::FilterAdd(spec.layer), status))?;
    }

    engine.transaction_commit(session).map_err(|status| (RegistrationStep::TransactionCommit, status))
}

/// Tears `registration` down in ARCHITECTURE.md S5's order: deletes every filter (newest first),
/// closes the dynamic session (which deletes everything else Tollgate added), then unregisters
/// every run-time callout (newest first). When `FwpsCalloutUnregisterById0` returns
/// `STATUS_DEVICE_BUSY`, calls `remove_flow_contexts` with that callout (it must call
/// `FwpsFlowRemoveContext0` for every flow that carries a context of it, and may wait at
/// PASSIVE_LEVEL for flowDeleteFn calls that `FwpsFlowRemoveContext0` reported as pending) and
/// retries, at most `max_busy_retries` times per callout.
///
/// Failures never stop the teardown: every step is attempted.
///
/// IRQL: `PASSIVE_LEVEL` (`remove_flow_contexts` is called at `PASSIVE_LEVEL` too).
///
/// # Errors
/// What could not be done. If [`UnregisterError::is_safe_to_unload`] is false, callout functions
/// are still registered and the driver image must not be unloaded.
#[allow(
    clippy::result_large_err,
    reason = "no allocation at unload by design (fixed arrays); returned once per driver unload"
)]
pub fn unregister<E, F>(
    engine: &mut E,
    registration: Registration<E::Session>,
    mut remove_flow_contexts: F,
    max_busy_retries: u32,
) -> Result<(), UnregisterError>
where
    E: FilterEngine,
    F: FnMut(&RegisteredCallout),
{
    let Registration { session, callouts, filter_ids } = registration;
    let mut error = UnregisterError::default();

    // 1. Filters first: once a callout is unregistered, a terminating filter that still names it
    //    acts as BLOCK (FwpsCalloutUnregisterById0 remarks).
    //    https://learn.microsoft.com/windows-hardware/drivers/ddi/fwpsk/nf-fwpsk-fwpscalloutunregisterbyid0
    for &filter_id in filter_ids.iter().rev() {
        match engine.filter_delete_by_id(&session, filter_id) {
            Ok(()) => {}
            Err(status) if status == STATUS_FWP_FILTER_NOT_FOUND => {}
            Err(status) => {
                error.filter_delete_failures += 1;
                if error.first_filter_delete_failure.is_none() {
                    error.first_filter_delete_failure = Some((filter_id, status));
                }
            }
        }
    }

    // 2. Ending the dynamic session deletes every object added in it (filters whose deletion
    //    failed included). https://learn.microsoft.com/windows/win32/fwp/object-management
    if let Err(status) = engine.engine_close(session) {
        error.engine_close_failure = Some(status);
    }

    // 3. Run-time callouts, retrying on STATUS_DEVICE_BUSY after removing the flow contexts.
    for callout in callouts.iter().rev() {
        let mut retries = 0_u32;
        loop {
            match engine.callout_unregister_by_id(callout.runtime_id) {
                Ok(()) => break,
                Err(status) if status == STATUS_FWP_CALLOUT_NOT_FOUND => break,
                Err(status) if status == STATUS_DEVICE_BUSY && retries < max_busy_retries => {
                    retries += 1;
                    remove_flow_contexts(callout);
                }
                Err(status) => {
                    error.callouts_left_registered.push(CalloutFailure { callout: *callout, status });
                    break;
                }
            }
        }
    }

    if error == UnregisterError::default() { Ok(()) } else { Err(error) }
}
