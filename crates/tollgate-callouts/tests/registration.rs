//! Host tests of the WFP registration sequencer against a recording fake `FilterEngine` that
//! models the parts of WFP the sequence depends on: the transaction (nothing is live before the
//! commit, an abort drops it), the dynamic session (closing it deletes everything added in it),
//! run-time callout registration outside the transaction, `STATUS_DEVICE_BUSY` while flow
//! contexts exist, and the rule that a live filter naming an unregistered callout acts as BLOCK.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, missing_docs)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use tollgate_callouts::registration::{
    CALLOUT_COUNT, CalloutSpec, ClassifyKind, FilterAction, FilterEngine, FilterSpec, FilterWeight, Guid, Plan,
    PlanError, ProviderSpec, RegisteredCallout, RegistrationStep, SessionSpec, SublayerSpec, TOLLGATE_PLAN,
    TOLLGATE_PROVIDER_KEY, TOLLGATE_SUBLAYER_KEY, TollgateLayer, WideStr, register, unregister,
};
use tollgate_wfp_sys::{
    FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION, FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, FWPM_LAYER_STREAM_V6, NTSTATUS,
    STATUS_DEVICE_BUSY, STATUS_FWP_ALREADY_EXISTS, STATUS_FWP_FILTER_NOT_FOUND, STATUS_FWP_NO_TXN_IN_PROGRESS,
    STATUS_INVALID_PARAMETER, STATUS_UNSUCCESSFUL,
};

/// Number of engine calls of a complete, successful registration: open, begin, provider,
/// sublayer, 12 x (register + add), 12 filters, commit.
const FULL_REGISTRATION_CALLS: usize = 4 + 2 * CALLOUT_COUNT + CALLOUT_COUNT + 1;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Call {
    Open,
    Begin,
    ProviderAdd,
    SublayerAdd,
    Register(TollgateLayer),
    CalloutAdd(TollgateLayer),
    FilterAdd(TollgateLayer),
    Commit,
    Abort,
    FilterDelete(u64),
    Unregister(u32),
    Close,
}

/// An open fake session (like an engine handle: not `Clone`).
#[derive(Debug)]
struct FakeSession(u32);

#[derive(Default)]
struct FakeEngine {
    /// Every call, failed ones included, in order.
    calls: Vec<Call>,
    /// Indices (into `calls`) of the calls that fail with `fail_status`.
    failing_calls: Vec<usize>,
    fail_status: NTSTATUS,
    /// Status of a failing `Close` or `FilterDelete` configured separately.
    fail_close: Option<NTSTATUS>,
    fail_filter_delete: Option<NTSTATUS>,

    next_session: u32,
    open_session: Option<u32>,
    in_transaction: bool,
    /// Filters added in the current transaction: (id, callout key).
    txn_filters: Vec<(u64, Guid)>,
    txn_callouts: Vec<Guid>,
    /// Committed (live) filters: (id, callout key).
    live_filters: Vec<(u64, Guid)>,
    live_callout_objects: Vec<Guid>,
    /// Run-time registrations: id -> callout key.
    registered: HashMap<u32, Guid>,
    next_callout_id: u32,
    next_filter_id: u64,
    commits: usize,
    /// Flow contexts per run-time callout id (shared with the test's `remove_flow_contexts`).
    flow_contexts: Rc<RefCell<HashMap<u32, u32>>>,
    /// Broken WFP rules (a live filter naming an unregistered callout, ...).
    violations: Vec<String>,
}

impl FakeEngine {
    fn new() -> Self {
        Self {
            next_session: 1,
            next_callout_id: 100,
            next_filter_id: 5000,
            fail_status: STATUS_UNSUCCESSFUL,
            ..Self::default()
        }
    }

    fn failing_at(indices: &[usize]) -> Self {
        Self { failing_calls: indices.to_vec(), ..Self::new() }
    }

    /// Logs the call; `Err` if this call was told to fail.
    fn enter(&mut self, call: Call) -> Result<(), NTSTATUS> {
        let index = self.calls.len();
        self.calls.push(call);
        if self.failing_calls.contains(&index) { Err(self.fail_status) } else { Ok(()) }
    }

    fn check_session(&mut self, session: &FakeSession) {
        if self.open_session != Some(session.0) {
            self.violations.push(format!("call on a closed or unknown session {}", session.0));
        }
    }

    fn live_filters_naming(&self, key: Guid) -> usize {
        self.live_filters.iter().filter(|(_, callout)| *callout == key).count()
    }
}

impl FilterEngine for FakeEngine {
    type Session = FakeSession;

    fn engine_open_dynamic_session(&mut self, _session: &SessionSpec) -> Result<FakeSession, NTSTATUS> {
        self.enter(Call::Open)?;
        if self.open_session.is_some() {
            self.violations.push("second session opened".into());
        }
        let id = self.next_session;
        self.next_session += 1;
        self.open_session = Some(id);
        Ok(FakeSession(id))
    }

    fn transaction_begin(&mut self, session: &FakeSession) -> Result<(), NTSTATUS> {
        self.enter(Call::Begin)?;
        self.check_session(session);
        if self.in_transaction {
            self.violations.push("nested transaction".into());
        }
        self.in_transaction = true;
        Ok(())
    }

    fn provider_add(&mut self, session: &FakeSession, provider: &ProviderSpec) -> Result<(), NTSTATUS> {
        self.enter(Call::ProviderAdd)?;
        self.check_session(session);
        assert_eq!(provider.key, TOLLGATE_PROVIDER_KEY);
        if !self.in_transaction {
            self.violations.push("provider added outside the transaction".into());
        }
        Ok(())
    }

    fn sublayer_add(&mut self, session: &FakeSession, sublayer: &SublayerSpec) -> Result<(), NTSTATUS> {
        self.enter(Call::SublayerAdd)?;
        self.check_session(session);
        assert_eq!(sublayer.key, TOLLGATE_SUBLAYER_KEY);
        if !self.in_transaction {
            self.violations.push("sublayer added outside the transaction".into());
        }
        Ok(())
    }

    fn callout_register(&mut self, callout: &CalloutSpec) -> Result<u32, NTSTATUS> {
        self.enter(Call::Register(callout.layer))?;
        if self.registered.values().any(|key| *key == callout.key) {
            return Err(STATUS_FWP_ALREADY_EXISTS);
        }
        let id = self.next_callout_id;
        self.next_callout_id += 1;
        self.registered.insert(id, callout.key);
        Ok(id)
    }

    fn callout_add(&mut self, session: &FakeSession, callout: &CalloutSpec) -> Result<u32, NTSTATUS> {
        self.enter(Call::CalloutAdd(callout.layer))?;
        self.check_session(session);
        if !self.in_transaction {
            self.violations.push("callout added outside the transaction".into());
        }
        self.txn_callouts.push(callout.key);
        let id = self.registered.iter().find(|(_, key)| **key == callout.key).map_or(0, |(id, _)| *id);
        Ok(id)
    }

    fn filter_add(&mut self, session: &FakeSession, filter: &FilterSpec) -> Result<u64, NTSTATUS> {
        self.enter(Call::FilterAdd(filter.layer))?;
        self.check_session(session);
        if !self.txn_callouts.contains(&filter.callout) {
            self.violations.push(format!("filter at {:?} names a callout object not added", filter.layer));
        }
        let id = self.next_filter_id;
        self.next_filter_id += 1;
        self.txn_filters.push((id, filter.callout));
        Ok(id)
    }

    fn transaction_commit(&mut self, session: &FakeSession) -> Result<(), NTSTATUS> {
        self.enter(Call::Commit)?;
        self.check_session(session);
        if !self.in_transaction {
            return Err(STATUS_FWP_NO_TXN_IN_PROGRESS);
        }
        for (_, callout) in &self.txn_filters {
            if !self.registered.values().any(|key| key == callout) {
                self.violations.push(format!("filter committed while callout {callout} is unregistered (BLOCK)"));
            }
        }
        self.live_filters.append(&mut self.txn_filters);
        self.live_callout_objects.append(&mut self.txn_callouts);
        self.in_transaction = false;
        self.commits += 1;
        Ok(())
    }

    fn transaction_abort(&mut self, session: &FakeSession) -> Result<(), NTSTATUS> {
        self.enter(Call::Abort)?;
        self.check_session(session);
        if !self.in_transaction {
            return Err(STATUS_FWP_NO_TXN_IN_PROGRESS);
        }
        self.txn_filters.clear();
        self.txn_callouts.clear();
        self.in_transaction = false;
        Ok(())
    }

    fn filter_delete_by_id(&mut self, session: &FakeSession, filter_id: u64) -> Result<(), NTSTATUS> {
        self.enter(Call::FilterDelete(filter_id))?;
        self.check_session(session);
        if let Some(status) = self.fail_filter_delete {
            return Err(status);
        }
        let before = self.live_filters.len();
        self.live_filters.retain(|(id, _)| *id != filter_id);
        if self.live_filters.len() == before { Err(STATUS_FWP_FILTER_NOT_FOUND) } else { Ok(()) }
    }

    fn callout_unregister_by_id(&mut self, callout_id: u32) -> Result<(), NTSTATUS> {
        self.enter(Call::Unregister(callout_id))?;
        let Some(&key) = self.registered.get(&callout_id) else {
            self.violations.push(format!("unregister of unknown callout id {callout_id}"));
            return Err(STATUS_INVALID_PARAMETER);
        };
        if self.flow_contexts.borrow().get(&callout_id).copied().unwrap_or(0) > 0 {
            return Err(STATUS_DEVICE_BUSY);
        }
        if self.live_filters_naming(key) > 0 {
            self.violations.push(format!("callout {key} unregistered while a live filter names it (BLOCK)"));
        }
        self.registered.remove(&callout_id);
        Ok(())
    }

    fn engine_close(&mut self, session: FakeSession) -> Result<(), NTSTATUS> {
        self.enter(Call::Close)?;
        self.check_session(&session);
        // Ending a dynamic session aborts its transaction and deletes everything added in it,
        // even when the call reports a failure.
        self.txn_filters.clear();
        self.txn_callouts.clear();
        self.in_transaction = false;
        self.live_filters.clear();
        self.live_callout_objects.clear();
        self.open_session = None;
        match self.fail_close {
            Some(status) => Err(status),
            None => Ok(()),
        }
    }
}

/// The expected calls of a complete registration, in order.
fn expected_registration_calls() -> Vec<Call> {
    let mut calls = vec![Call::Open, Call::Begin, Call::ProviderAdd, Call::SublayerAdd];
    for layer in TollgateLayer::ALL {
        calls.push(Call::Register(layer));
        calls.push(Call::CalloutAdd(layer));
    }
    calls.extend(TollgateLayer::ALL.map(Call::FilterAdd));
    calls.push(Call::Commit);
    calls
}

// ---- The plan ---------------------------------------------------------------------------------------

#[test]
fn tollgate_plan_is_valid_and_complete() {
    let plan = &TOLLGATE_PLAN;
    assert_eq!(plan.validate(), Ok(()));
    assert_eq!(plan.callouts.map(|c| c.layer), TollgateLayer::ALL);
    assert_eq!(plan.filters.map(|f| f.layer), TollgateLayer::ALL);
    assert_eq!(plan.sublayer.provider, TOLLGATE_PROVIDER_KEY);

    for (callout, filter) in plan.callouts.iter().zip(&plan.filters) {
        assert_eq!(filter.callout, callout.key);
        assert_eq!(callout.layer.classify_kind(), callout.classify);
        assert!(!callout.name.units().is_empty() && !filter.name.units().is_empty());
        assert_eq!(filter.weight, FilterWeight::Auto);
        assert_eq!(callout.flags & FWP_CALLOUT_FLAG_ALLOW_MID_STREAM_INSPECTION, 0);
        let (flags, flow_delete, action) = match callout.classify {
            ClassifyKind::Stream => (FWP_CALLOUT_FLAG_CONDITIONAL_ON_FLOW, true, FilterAction::CalloutUnknown),
            ClassifyKind::AuthConnect | ClassifyKind::ResourceAssignment => {
                (0, false, FilterAction::CalloutTerminating)
            }
            ClassifyKind::EndpointClosure | ClassifyKind::ResourceRelease | ClassifyKind::FlowEstablished => {
                (0, false, FilterAction::CalloutInspection)
            }
        };
        assert_eq!(callout.flags, flags, "{:?}", callout.layer);
        assert_eq!(callout.has_flow_delete, flow_delete, "{:?}", callout.layer);
        assert_eq!(filter.action, action, "{:?}", filter.layer);
    }

    let mut keys: Vec<Guid> = plan.callouts.iter().map(|c| c.key).chain(plan.filters.iter().map(|f| f.key)).collect();
    keys.extend([TOLLGATE_PROVIDER_KEY, TOLLGATE_SUBLAYER_KEY]);
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 2 * CALLOUT_COUNT + 2, "every Tollgate GUID is distinct");
}

#[test]
fn layers_map_to_windows_keys_and_runtime_ids() {
    assert_eq!(TollgateLayer::StreamV6.layer_key(), Guid::from_windows(&FWPM_LAYER_STREAM_V6));
    assert_eq!(TollgateLayer::AleAuthConnectV4.runtime_id(), 48);
    assert_eq!(TollgateLayer::StreamV4.runtime_id(), 20);
    let mut ids: Vec<u16> = TollgateLayer::ALL.iter().map(|l| l.runtime_id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), CALLOUT_COUNT);
    assert_eq!(TollgateLayer::ALL.iter().filter(|l| l.is_v6()).count(), CALLOUT_COUNT / 2);
}

#[test]
fn guid_round_trips_and_prints_canonically() {
    let key = TOLLGATE_PROVIDER_KEY;
    assert_eq!(Guid::from_windows(&key.to_windows()), key);
    assert_eq!(key.to_string(), "{1F1C1A8A-EE10-4093-BDE6-84A96E9E76F0}");
    let windows = key.to_windows();
    assert_eq!((windows.data1, windows.data2, windows.data3), (0x1f1c_1a8a, 0xee10, 0x4093));
    assert_eq!(windows.data4, [0xbd, 0xe6, 0x84, 0xa9, 0x6e, 0x9e, 0x76, 0xf0]);
}

#[test]
fn wide_strings_are_nul_terminated_utf16() {
    static GOOD: [u16; 3] = [b'o' as u16, b'k' as u16, 0];
    static INTERIOR: [u16; 3] = [b'o' as u16, 0, 0];
    static UNTERMINATED: [u16; 2] = [b'o' as u16, b'k' as u16];
    let good = WideStr::new(&GOOD).unwrap();
    assert_eq!(good.units(), &GOOD[..2]);
    assert_eq!(format!("{good:?}"), "L\"ok\"");
    assert_eq!(WideStr::new(&INTERIOR), None);
    assert_eq!(WideStr::new(&UNTERMINATED), None);
    assert_eq!(WideStr::new(&[]), None);

    let name = TOLLGATE_PLAN.callouts[0].name;
    assert_eq!(name.units_with_nul().last(), Some(&0));
    assert_eq!(String::from_utf16(name.units()).unwrap(), "Tollgate ALE_AUTH_CONNECT_V4 callout");
}

#[test]
fn invalid_plan_calls_nothing() {
    let mut plan: Plan = TOLLGATE_PLAN;
    plan.callouts[10].has_flow_delete = false;
    let mut engine = FakeEngine::new();
    let error = register(&mut engine, &plan).unwrap_err();
    assert_eq!(
        error.step,
        RegistrationStep::ValidatePlan(PlanError::ConditionalOnFlowWithoutFlowDelete(plan.callouts[10].key))
    );
    assert!(engine.calls.is_empty());

    let mut plan: Plan = TOLLGATE_PLAN;
    plan.filters[3].callout = plan.callouts[2].key;
    assert_eq!(plan.validate(), Err(PlanError::FilterCallout(plan.filters[3].key)));
    let mut plan: Plan = TOLLGATE_PLAN;
    plan.filters[0].weight = FilterWeight::Range(16);
    assert_eq!(plan.validate(), Err(PlanError::FilterWeightRange(plan.filters[0].key)));
    let mut plan: Plan = TOLLGATE_PLAN;
    plan.callouts[1].key = plan.callouts[0].key;
    assert_eq!(plan.validate(), Err(PlanError::DuplicateCalloutKey(plan.callouts[0].key)));
}

// ---- register ----------------------------------------------------------------------------------------

#[test]
fn successful_registration_adds_twelve_callouts_and_filters_in_one_transaction() {
    let mut engine = FakeEngine::new();
    let registration = register(&mut engine, &TOLLGATE_PLAN).unwrap();

    assert_eq!(engine.calls, expected_registration_calls());
    assert_eq!(engine.calls.len(), FULL_REGISTRATION_CALLS);
    assert_eq!(engine.calls.iter().filter(|c| **c == Call::Begin).count(), 1);
    assert_eq!(engine.commits, 1);
    assert_eq!(engine.registered.len(), CALLOUT_COUNT);
    assert_eq!(engine.live_filters.len(), CALLOUT_COUNT);
    assert_eq!(engine.live_callout_objects.len(), CALLOUT_COUNT);
    assert!(engine.open_session.is_some(), "the dynamic session stays open while registered");
    assert!(engine.violations.is_empty(), "{:?}", engine.violations);

    // Every run-time registration happened inside the transaction, before the commit.
    let commit = engine.calls.iter().position(|c| *c == Call::Commit).unwrap();
    let begin = engine.calls.iter().position(|c| *c == Call::Begin).unwrap();
    for (i, call) in engine.calls.iter().enumerate() {
        if matches!(call, Call::Register(_)) {
            assert!(begin < i && i < commit);
        }
    }

    // The registration reports the ids the engine handed out, in plan order.
    for (registered, layer) in registration.callouts().iter().zip(TollgateLayer::ALL) {
        assert_eq!(registered.layer, layer);
        assert_eq!(engine.registered.get(&registered.runtime_id), Some(&layer.callout_key()));
    }
    let live_ids: Vec<u64> = engine.live_filters.iter().map(|(id, _)| *id).collect();
    assert_eq!(registration.filter_ids().to_vec(), live_ids);
    assert_eq!(registration.callout(TollgateLayer::StreamV4).map(|c| c.layer), Some(TollgateLayer::StreamV4));
    assert_eq!(registration.session().0, 1);
}

#[test]
fn every_failure_is_unwound_completely_in_reverse_order() {
    let plan_calls = expected_registration_calls();
    for n in 0..FULL_REGISTRATION_CALLS {
        let mut engine = FakeEngine::failing_at(&[n]);
        let error = register(&mut engine, &TOLLGATE_PLAN).expect_err("the n-th call fails");
        let failed = plan_calls[n];

        // The calls up to the failing one are the plan's, in order.
        assert_eq!(engine.calls[..=n], plan_calls[..=n], "n = {n}");
        assert_eq!(error.status, STATUS_UNSUCCESSFUL);
        let expected_step = match failed {
            Call::Open => RegistrationStep::EngineOpen,
            Call::Begin => RegistrationStep::TransactionBegin,
            Call::ProviderAdd => RegistrationStep::ProviderAdd,
            Call::SublayerAdd => RegistrationStep::SublayerAdd,
            Call::Register(layer) => RegistrationStep::CalloutRegister(layer),
            Call::CalloutAdd(layer) => RegistrationStep::CalloutAdd(layer),
            Call::FilterAdd(layer) => RegistrationStep::FilterAdd(layer),
            Call::Commit => RegistrationStep::TransactionCommit,
            other => panic!("not a registration call: {other:?}"),
        };
        assert_eq!(error.step, expected_step, "n = {n}");

        // The unwind: abort (if a transaction was begun), unregister the run-time callouts
        // newest first, close (if the engine was opened) — and nothing else.
        let registered_ids: Vec<u32> = {
            let mut ids = Vec::new();
            let mut next = 100;
            for call in &engine.calls[..n] {
                if matches!(call, Call::Register(_)) {
                    ids.push(next);
                    next += 1;
                }
            }
            ids
        };
        let mut expected_unwind = Vec::new();
        if n > 1 {
            expected_unwind.push(Call::Abort);
        }
        expected_unwind.extend(registered_ids.iter().rev().map(|id| Call::Unregister(*id)));
        if n > 0 {
            expected_unwind.push(Call::Close);
        }
        assert_eq!(engine.calls[n + 1..], expected_unwind[..], "n = {n}");

        // Nothing is left: no run-time callout, no transaction, no session, no live filter.
        assert!(engine.registered.is_empty(), "n = {n}: callouts left registered");
        assert!(!engine.in_transaction, "n = {n}");
        assert_eq!(engine.open_session, None, "n = {n}");
        assert!(engine.live_filters.is_empty() && engine.txn_filters.is_empty(), "n = {n}");
        assert_eq!(engine.commits, 0, "n = {n}");
        assert!(engine.violations.is_empty(), "n = {n}: {:?}", engine.violations);

        // The report says the same.
        assert!(error.is_fully_unwound(), "n = {n}");
        assert_eq!(error.unwind.callouts_unregistered, registered_ids.len(), "n = {n}");
        assert_eq!(error.unwind.transaction_abort, (n > 1).then_some(Ok(())), "n = {n}");
        assert_eq!(error.unwind.engine_close, (n > 0).then_some(Ok(())), "n = {n}");
    }
}

#[test]
fn a_failed_commit_is_still_aborted_and_unwound() {
    let commit = FULL_REGISTRATION_CALLS - 1;
    let mut engine = FakeEngine::failing_at(&[commit]);
    let error = register(&mut engine, &TOLLGATE_PLAN).unwrap_err();
    assert_eq!(error.step, RegistrationStep::TransactionCommit);
    assert_eq!(engine.calls[commit + 1], Call::Abort);
    assert_eq!(error.unwind.callouts_unregistered, CALLOUT_COUNT);
    assert!(engine.registered.is_empty());
}

#[test]
fn a_failing_unwind_is_reported_and_the_rest_still_runs() {
    // Fail the 3rd filter add, then the first unwind unregister (the newest callout).
    let filter_add = 4 + 2 * CALLOUT_COUNT + 2;
    let first_unregister = filter_add + 2; // after the abort
    let mut engine = FakeEngine::failing_at(&[filter_add, first_unregister]);
    let error = register(&mut engine, &TOLLGATE_PLAN).unwrap_err();
    assert_eq!(error.step, RegistrationStep::FilterAdd(TollgateLayer::ALL[2]));
    assert!(!error.is_fully_unwound());
    let left: Vec<RegisteredCallout> = error.unwind.callouts_left_registered.iter().map(|f| f.callout).collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].layer, TollgateLayer::StreamV6);
    assert_eq!(error.unwind.callouts_unregistered, CALLOUT_COUNT - 1);
    assert_eq!(engine.calls.last(), Some(&Call::Close), "the session is closed regardless");
    assert_eq!(engine.registered.len(), 1);
    assert!(error.to_string().contains("1 callout(s) are still registered"));
}

// ---- unregister ----------------------------------------------------------------------------------------

#[test]
fn unregister_removes_filters_before_unregistering_callouts() {
    let mut engine = FakeEngine::new();
    let registration = register(&mut engine, &TOLLGATE_PLAN).unwrap();
    let filter_ids = *registration.filter_ids();
    let callout_ids: Vec<u32> = registration.callouts().iter().map(|c| c.runtime_id).collect();
    let start = engine.calls.len();

    unregister(&mut engine, registration, |_| panic!("no flow contexts"), 3).unwrap();

    let teardown = &engine.calls[start..];
    let mut expected: Vec<Call> = filter_ids.iter().rev().map(|id| Call::FilterDelete(*id)).collect();
    expected.push(Call::Close);
    expected.extend(callout_ids.iter().rev().map(|id| Call::Unregister(*id)));
    assert_eq!(teardown, &expected[..]);

    let last_filter_delete = teardown.iter().rposition(|c| matches!(c, Call::FilterDelete(_))).unwrap();
    let first_unregister = teardown.iter().position(|c| matches!(c, Call::Unregister(_))).unwrap();
    assert!(last_filter_delete < first_unregister);
    assert!(engine.registered.is_empty());
    assert!(engine.live_filters.is_empty());
    assert_eq!(engine.open_session, None);
    assert!(engine.violations.is_empty(), "{:?}", engine.violations);
}

#[test]
fn unregister_retries_on_device_busy_after_removing_flow_contexts() {
    const K: u32 = 3;
    let mut engine = FakeEngine::new();
    let registration = register(&mut engine, &TOLLGATE_PLAN).unwrap();
    let stream = *registration.callout(TollgateLayer::StreamV4).unwrap();
    engine.flow_contexts.borrow_mut().insert(stream.runtime_id, K);

    let contexts = Rc::clone(&engine.flow_contexts);
    let mut removals: Vec<RegisteredCallout> = Vec::new();
    let result = unregister(
        &mut engine,
        registration,
        |callout| {
            removals.push(*callout);
            // Each pass removes one context (the others' flowDeleteFn is still pending).
            if let Some(left) = contexts.borrow_mut().get_mut(&callout.runtime_id) {
                *left = left.saturating_sub(1);
            }
        },
        K,
    );

    assert_eq!(result, Ok(()));
    assert_eq!(removals, vec![stream; K as usize]);
    let attempts = engine.calls.iter().filter(|c| **c == Call::Unregister(stream.runtime_id)).count();
    assert_eq!(attempts, K as usize + 1, "K busy answers, then success");
    assert!(engine.registered.is_empty());
    assert!(engine.violations.is_empty(), "{:?}", engine.violations);
}

#[test]
fn unregister_gives_up_after_the_retry_bound_and_says_unload_is_unsafe() {
    let mut engine = FakeEngine::new();
    let registration = register(&mut engine, &TOLLGATE_PLAN).unwrap();
    let stream = *registration.callout(TollgateLayer::StreamV6).unwrap();
    // A context that never goes away (e.g. the closure cannot find the flow).
    engine.flow_contexts.borrow_mut().insert(stream.runtime_id, u32::MAX);

    let mut removals = 0;
    let error = unregister(&mut engine, registration, |_| removals += 1, 2).unwrap_err();

    assert_eq!(removals, 2);
    assert!(!error.is_safe_to_unload());
    let left: Vec<_> = error.callouts_left_registered.iter().copied().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].callout, stream);
    assert_eq!(left[0].status, STATUS_DEVICE_BUSY);
    // Every other callout was still unregistered.
    assert_eq!(engine.registered.len(), 1);
    assert!(engine.registered.contains_key(&stream.runtime_id));
    assert!(engine.violations.is_empty(), "{:?}", engine.violations);
}

#[test]
fn unregister_continues_past_filter_and_close_failures() {
    let mut engine = FakeEngine::new();
    let registration = register(&mut engine, &TOLLGATE_PLAN).unwrap();
    engine.fail_filter_delete = Some(STATUS_UNSUCCESSFUL);
    engine.fail_close = Some(STATUS_UNSUCCESSFUL);
    let first_filter = *registration.filter_ids().last().unwrap();

    let error = unregister(&mut engine, registration, |_| {}, 0).unwrap_err();

    assert_eq!(error.filter_delete_failures, CALLOUT_COUNT);
    assert_eq!(error.first_filter_delete_failure, Some((first_filter, STATUS_UNSUCCESSFUL)));
    assert_eq!(error.engine_close_failure, Some(STATUS_UNSUCCESSFUL));
    assert!(error.is_safe_to_unload(), "every callout was still unregistered");
    assert!(engine.registered.is_empty());
    // Closing the dynamic session deleted the filters the deletions could not.
    assert!(engine.violations.is_empty(), "{:?}", engine.violations);
}

#[test]
fn unregister_treats_already_deleted_filters_as_deleted() {
    let mut engine = FakeEngine::new();
    let registration = register(&mut engine, &TOLLGATE_PLAN).unwrap();
    engine.live_filters.retain(|(id, _)| *id != registration.filter_ids()[0]);
    assert_eq!(unregister(&mut engine, registration, |_| {}, 0), Ok(()));
}
